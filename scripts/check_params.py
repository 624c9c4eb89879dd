"""Reads a neurode parameter file with the `safetensors` package alone (no neurode) and
re-simulates the trained low-rank RNN with numpy's Euler steps.

Usage: python3 scripts/check_params.py RUN_DIR
Prints the arrays and, for one trial per context and cued sign, the readout averaged over
the task's last t_avg ms; exits 1 if a sign is wrong, 2 on a bad invocation (no or an
unreadable run directory, not a low-rank run, numpy or safetensors missing).
"""
import os
import sys

USAGE = "usage: python3 scripts/check_params.py RUN_DIR\n" \
    "  RUN_DIR: a run directory written by `neurode train` of a low-rank config\n" \
    "  (it holds params.safetensors and config.toml)"

if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
    print(USAGE, file=sys.stderr)
    sys.exit(2)
run = sys.argv[1]
for name in ("params.safetensors", "config.toml"):
    if not os.path.isfile(os.path.join(run, name)):
        print(f"error: {os.path.join(run, name)} does not exist; is {run} a run directory "
              "written by `neurode train`?\n" + USAGE, file=sys.stderr)
        sys.exit(2)

try:
    import tomllib

    import numpy as np
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"error: {e}; this script needs Python 3.11+ with numpy and safetensors "
          "(pip install numpy safetensors)", file=sys.stderr)
    sys.exit(2)

p = load_file(os.path.join(run, "params.safetensors"))
with open(os.path.join(run, "config.toml"), "rb") as f:
    cfg = tomllib.load(f)
if cfg.get("model", {}).get("kind") != "lowrank":
    print(f"error: {run} is not a low-rank run (model.kind = {cfg.get('model', {}).get('kind')!r}); "
          "this script re-simulates the low-rank RNN only", file=sys.stderr)
    sys.exit(2)
m, t, s = cfg["model"], cfg["task"], cfg["solver"]
C, M, N, B, w, b = (p[k] for k in ("C", "M", "N", "B", "w", "b"))
print({k: (str(v.dtype), v.shape) for k, v in p.items()})
n = M.shape[0]
J = m["g"] * C + M @ N.T / n
dt = s["dt"]
steps = round((t["t_burn"] + t["t_stim"]) / dt)
window = round(t["t_avg"] / dt)
ok = True
for ctx in (0, 1):
    for sign in (-1.0, 1.0):
        c = (t["gamma_on"], t["gamma_off"]) if ctx == 0 else (t["gamma_off"], t["gamma_on"])
        stim = [sign, -sign] if ctx == 0 else [-sign, sign]
        x = np.zeros(n)
        ys = []
        for k in range(steps):
            on = k * dt >= t["t_burn"]
            u = np.array([*(t["stim_mean_abs"] * np.array(stim) * on), *c])
            x = x + dt * (-x + J @ np.tanh(x) + B @ u) / m["tau"]
            if k + 1 >= steps - window:
                ys.append(w @ np.tanh(x) / n + b[0])
        y = float(np.mean(ys))
        print(f"ctx{ctx + 1}, cued sign {sign:+.0f}: mean readout {y:+.3f}")
        ok &= np.sign(y) == sign
sys.exit(0 if ok else 1)
