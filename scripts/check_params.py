"""Reads a neurode parameter file with the `safetensors` package alone (no neurode) and
re-simulates the trained low-rank RNN with numpy's Euler steps.

Usage: python3 scripts/check_params.py RUN_DIR
Prints the arrays and, for one trial per context and cued sign, the readout averaged over
the task's last t_avg ms; exits 1 if a sign is wrong.
"""
import sys
import tomllib

import numpy as np
from safetensors.numpy import load_file

run = sys.argv[1]
p = load_file(f"{run}/params.safetensors")
cfg = tomllib.load(open(f"{run}/config.toml", "rb"))
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
