"""The original PyTorch LIF conversion of a Kim et al. (2019) rate RNN (spikeRNN's
`spiking/LIF_network_fnc.py`, NuttidaLab/spikeRNN at 57e4032) run against neurode's
`neurode spiking ... --record FILE.npz`, and timed.

    python benches/external/spiking_original.py --checkout PATH --mat FILE_OR_RUN_DIR --compare trials.npz [--out summary.json]
    python benches/external/spiking_original.py --checkout PATH --mat FILE_OR_RUN_DIR --time K [--lambda L] [--out summary.json]
    python benches/external/spiking_original.py --checkout PATH --mat FILE_OR_RUN_DIR --self-test [--trials 2] [--lambda L] [--out summary.json]

--compare: for each trial k of the npz (keys u, v0_uniform, out, spikes, lambda, noise_sd, dt,
condition, label), runs LIF_network_fnc(loadmat(mat), lambda, u[k], {'mode': 'none'}, 1, False)
with the draw of the initial voltages (torch.rand(N)) replaced by v0_uniform[k] and the
voltage noise (torch.randn(N)) replaced by zeros; the npz must have noise_sd == 0. Per trial it
prints both spike counts, the first step where the rasters differ, the divergence step (spikes
of each neuron paired in order: the first pair more than one step apart, or the first spike
without a partner), max |out_neurode - out_original| before the divergence step, before the
first raster difference and over the trial. PASS (exit 0) when, in every trial, the largest
|out difference| before the divergence step is <= 1e-6 and the divergence comes no earlier
than --min-fraction of the trial (default 0.5: a trial whose spike trains part at once is no
agreement); FAIL exits 1. It also counts the trials with identical rasters.

--time K: times LIF_network_fnc unpatched (noise on), as lambda_grid_search.py's workers call
it (torch.set_num_threads(1), CPU, a fresh loadmat per trial, untimed), on K go/no-go trials
(u = zeros((1, 201)), u[0, 50:75] = 1 on trials 0, 2, 4, ...) after one untimed warm-up trial.
Prints `original: per_trial_s=<median> min_s=<min> trials=K`.

--self-test: runs the original with patched draws (v0 uniforms from numpy's default_rng(--seed),
noise off) to fabricate a trials.npz from its own outputs, compares it (must PASS with no
difference), then checks that a removed spike, a spike moved by one step and a perturbed output
are reported at the right steps. Exits 1 if any check fails.

The lambda of --time and --self-test is --lambda, else the mat's opt_scaling_factor, else 50.
Needs torch, numpy and scipy. CUDA is hidden (the grid search's workers run on the CPU).
"""
import argparse
import contextlib
import glob
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
import torch  # noqa: E402

TOL = 1e-6
# A trial passes only when its spike trains agree for at least this fraction of it.
MIN_FRACTION = 0.5
DT = 0.00005  # the original's dt with downsample = 1


def find_mat(path):
    if os.path.isdir(path):
        mats = sorted(glob.glob(os.path.join(path, "Task_*.mat"))) or sorted(
            glob.glob(os.path.join(path, "*.mat")))
        if len(mats) != 1:
            sys.exit(f"expected one .mat in {path}, found {mats}")
        return mats[0]
    return path


def commit_of(checkout):
    try:
        return subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fresh(model):
    """A copy of the loadmat dict: LIF_network_fnc converts its arrays to float64 in place."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in model.items()}


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(size[0])
    return tuple(size)


@contextlib.contextmanager
def patched_draws(v0_uniform, noise_off):
    """torch.rand(N) returns v0_uniform (float64); with noise_off torch.randn returns zeros."""
    real_rand, real_randn = torch.rand, torch.randn
    n = len(v0_uniform)
    calls = {"rand_v0": 0, "randn": 0}

    def rand(*size, **kw):
        if _shape(size) == (n,):
            calls["rand_v0"] += 1
            return torch.tensor(np.asarray(v0_uniform, dtype=np.float64), dtype=torch.float64,
                                device=kw.get("device"))
        return real_rand(*size, **kw)

    def randn(*size, **kw):
        calls["randn"] += 1
        return torch.zeros(_shape(size), dtype=kw.get("dtype") or torch.get_default_dtype(),
                           device=kw.get("device"))

    torch.rand = rand
    if noise_off:
        torch.randn = randn
    try:
        yield calls
    finally:
        torch.rand, torch.randn = real_rand, real_randn


def run_original(lif, model, lam, u, v0_uniform):
    """The original on one trial with the given initial uniforms and the noise off:
    (spk as uint8 (N, nt), out (nt,))."""
    with patched_draws(v0_uniform, noise_off=True) as calls:
        _, _, spk, _, _, out, params = lif(fresh(model), lam, np.asarray(u, dtype=np.float64),
                                           {"mode": "none"}, 1, False)
    assert calls["rand_v0"] == 1, f"torch.rand(N) was called {calls['rand_v0']} times"
    assert calls["randn"] == params["nt"], f"torch.randn called {calls['randn']} times"
    return spk.astype(np.uint8), np.asarray(out, dtype=np.float64).ravel()


def divergence_step(a, b):
    """First step at which some neuron's spike train differs by more than one step: spikes of
    each neuron paired in order; the first pair more than 1 step apart (its earlier time) or the
    first spike without a partner. Returns the number of steps when there is none."""
    steps = a.shape[1]
    div = steps
    for n in range(a.shape[0]):
        ta, tb = np.flatnonzero(a[n]), np.flatnonzero(b[n])
        k = min(len(ta), len(tb))
        bad = np.flatnonzero(np.abs(ta[:k] - tb[:k]) > 1)
        if bad.size:
            div = min(div, int(min(ta[bad[0]], tb[bad[0]])))
        if len(ta) > k:
            div = min(div, int(ta[k]))
        if len(tb) > k:
            div = min(div, int(tb[k]))
    return div


def maxabs(x):
    return float(np.max(np.abs(x))) if x.size else 0.0


def compare_trial(spk_n, out_n, spk_o, out_o):
    steps = spk_o.shape[1]
    assert spk_n.shape == spk_o.shape, f"spikes {spk_n.shape} vs the original's {spk_o.shape}"
    assert out_n.shape == out_o.shape, f"out {out_n.shape} vs the original's {out_o.shape}"
    diff_steps = np.flatnonzero((spk_n != spk_o).any(axis=0))
    first = int(diff_steps[0]) if diff_steps.size else steps
    div = divergence_step(spk_n, spk_o)
    d = np.abs(out_n - out_o)
    return dict(spikes_neurode=int(spk_n.sum()), spikes_original=int(spk_o.sum()),
                first_raster_diff=first, divergence=div, steps=steps,
                fraction_before_divergence=div / steps, max_out_diff_before_divergence=maxabs(d[:div]),
                max_out_diff_before_raster_diff=maxabs(d[:first]), max_out_diff=maxabs(d),
                passed=bool(maxabs(d[:div]) <= TOL and div / steps >= MIN_FRACTION))


def load_trials(path):
    z = np.load(path)
    data = {k: z[k] for k in z.files}
    for k in ("u", "v0_uniform", "out", "spikes", "lambda", "noise_sd", "dt"):
        if k not in data:
            sys.exit(f"{path}: no key {k!r}")
    return data


def evaluate(data, originals):
    """Per-trial comparisons of the npz's spikes and out with the original's (spk, out) list."""
    rows = []
    for k, (spk_o, out_o) in enumerate(originals):
        r = compare_trial(data["spikes"][k].astype(np.uint8), data["out"][k].astype(np.float64),
                          spk_o, out_o)
        r["trial"] = k
        if "condition" in data:
            r["condition"] = int(data["condition"][k])
        rows.append(r)
    return rows


def print_rows(rows):
    for r in rows:
        cond = f" condition={r['condition']}" if "condition" in r else ""
        div = r["divergence"] if r["divergence"] < r["steps"] else "none"
        first = r["first_raster_diff"] if r["first_raster_diff"] < r["steps"] else "none"
        print(f"trial {r['trial']}{cond}: spikes neurode={r['spikes_neurode']} "
              f"original={r['spikes_original']} first_raster_diff={first} divergence={div} "
              f"(fraction before: {r['fraction_before_divergence']:.4f}) max|dout| "
              f"before_divergence={r['max_out_diff_before_divergence']:.3e} "
              f"before_raster_diff={r['max_out_diff_before_raster_diff']:.3e} "
              f"whole={r['max_out_diff']:.3e} {'ok' if r['passed'] else 'FAIL'}")


def run_compare(lif, model, path):
    data = load_trials(path)
    noise = float(data["noise_sd"])
    if noise != 0:
        sys.exit(f"{path}: noise_sd = {noise}; an exact comparison needs neurode run with --noise 0")
    lam = float(data["lambda"])
    dt = float(data["dt"])
    trials, n = data["v0_uniform"].shape
    n_mat = int(np.asarray(model["N"]).item())
    if n != n_mat:
        sys.exit(f"{path}: {n} neurons, the mat has {n_mat}")
    if abs(dt - DT) > 1e-15:
        print(f"note: the npz's dt = {dt}, the original's is {DT}")
    print(f"compare: {path}: {trials} trials, N = {n}, lambda = {lam}, noise off, "
          f"steps = {data['spikes'].shape[2]}")
    originals = []
    for k in range(trials):
        t0 = time.perf_counter()
        originals.append(run_original(lif, model, lam, data["u"][k], data["v0_uniform"][k]))
        print(f"  original trial {k}: {time.perf_counter() - t0:.2f} s", flush=True)
    rows = evaluate(data, originals)
    print_rows(rows)
    ok = all(r["passed"] for r in rows)
    same = sum(r["first_raster_diff"] == r["steps"] for r in rows)
    print(f"identical rasters over the whole trial: {same} of {len(rows)} trials")
    print(f"{'PASS' if ok else 'FAIL'}: in every trial, max |out difference| before the "
          f"divergence step <= {TOL:g} and the divergence at or after {MIN_FRACTION:g} of "
          f"the trial" if ok else
          f"FAIL: in some trial the output differs by more than {TOL:g} before the "
          f"divergence step, or the spike trains part before {MIN_FRACTION:g} of the trial")
    return dict(npz=path, **{"lambda": lam}, noise_sd=noise, dt=dt, tolerance=TOL, trials=rows,
                passed=ok), originals


def go_nogo_u(go):
    u = np.zeros((1, 201))
    if go:
        u[0, 50:75] = 1.0
    return u


def run_time(lif, mat, lam, k_trials):
    torch.set_num_threads(1)
    times = []
    for k in range(-1, k_trials):  # k = -1: warm-up
        model = scipy.io.loadmat(mat)
        u = go_nogo_u(k % 2 == 0)
        t0 = time.perf_counter()
        lif(model, lam, u, {"mode": "none"}, 1, False)
        if k >= 0:
            times.append(time.perf_counter() - t0)
    med, mn = statistics.median(times), min(times)
    print(f"original: per_trial_s={med:.3f} min_s={mn:.3f} trials={k_trials}")
    return dict(per_trial_s=med, min_s=mn, trials=k_trials, times_s=times, threads=1,
                **{"lambda": lam}, torch=torch.__version__)


def self_test(lif, model, lam, trials, seed):
    n = int(np.asarray(model["N"]).item())
    rng = np.random.default_rng(seed)
    v0 = rng.random((trials, n))
    cond = np.arange(trials) % 2 == 0
    us = np.stack([go_nogo_u(c) for c in cond])
    spikes, outs = [], []
    for k in range(trials):
        s, o = run_original(lif, model, lam, us[k], v0[k])
        spikes.append(s)
        outs.append(o)
    spikes, outs = np.stack(spikes), np.stack(outs)
    checks = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        checks.append(dict(ok=bool(ok), what=what))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trials.npz")
        np.savez(path, u=us, v0_uniform=v0, out=outs, spikes=spikes,
                 **{"lambda": np.float64(lam)}, noise_sd=np.float64(0.0), dt=np.float64(DT),
                 condition=cond.astype(np.int64), label=cond.astype(np.float64))
        summary, originals = run_compare(lif, model, path)
    rows = summary["trials"]
    steps = spikes.shape[2]
    check(summary["passed"], "self-comparison passes")
    check(all(r["first_raster_diff"] == steps and r["max_out_diff"] == 0.0 for r in rows),
          "self-comparison: identical rasters and outputs (the original is deterministic when patched)")

    # a spike in the middle third of trial 0, of a neuron with no spike within 2 steps of it
    spk0 = spikes[0]
    cand = [(t, i) for i, t in zip(*np.nonzero(spk0)) if steps // 3 <= t < 2 * steps // 3
            and spk0[i, max(t - 2, 0):t + 3].sum() == 1]
    t, i = cand[len(cand) // 2]
    t, i = int(t), int(i)
    print(f"perturbing trial 0, neuron {i}, spike at step {t}")

    def variant(edit):
        data = dict(spikes=spikes.copy(), out=outs.copy())
        edit(data)
        return evaluate(data, originals)[0]

    def remove(d):
        d["spikes"][0, i, t] = 0

    r = variant(remove)
    check(r["first_raster_diff"] == t and r["divergence"] == t,
          f"removed spike: first raster diff {r['first_raster_diff']} and divergence "
          f"{r['divergence']} at step {t}")
    check(r["passed"], "removed spike: out unchanged, still passes")

    def move(d):
        d["spikes"][0, i, t] = 0
        d["spikes"][0, i, t + 1] = 1

    r = variant(move)
    check(r["first_raster_diff"] == t and r["divergence"] == steps,
          f"spike moved by one step: first raster diff {r['first_raster_diff']} (expected {t}), "
          f"divergence {'none' if r['divergence'] == steps else r['divergence']} (expected none)")

    def perturb(d):
        remove(d)
        d["out"][0, t - 1] += 1e-5

    r = variant(perturb)
    check(not r["passed"] and abs(r["max_out_diff_before_divergence"] - 1e-5) < 1e-12,
          f"out perturbed by 1e-5 one step before the divergence: fails "
          f"(max before divergence {r['max_out_diff_before_divergence']:.3e})")

    def perturb_after(d):
        remove(d)
        d["out"][0, t] += 1e-3

    r = variant(perturb_after)
    check(r["passed"] and abs(r["max_out_diff"] - 1e-3) < 1e-12,
          "out perturbed by 1e-3 at the divergence step: passes, counted in the whole-trial max")
    def first_step(d):
        # trial 0 parts at once: a step-0 spike of neuron j removed
        j = int(np.flatnonzero(spikes[0][:, 0])[0])
        d["spikes"][0, j, 0] = 0

    r = variant(first_step)
    check(not r["passed"] and r["divergence"] == 0,
          "a spike of step 0 removed: the trains part at once, which fails")
    ok = all(c["ok"] for c in checks)
    print(f"self-test: {'PASS' if ok else 'FAIL'}")
    return dict(passed=ok, checks=checks, compare=summary, perturbed=dict(neuron=i, step=t),
                spikes_per_trial=[int(s.sum()) for s in spikes])


def main():
    global MIN_FRACTION
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkout", required=True, help="spikeRNN checkout (57e4032)")
    ap.add_argument("--mat", required=True, help="the rate RNN's .mat, or a run dir with one")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--compare", metavar="TRIALS_NPZ")
    mode.add_argument("--time", type=int, metavar="K")
    mode.add_argument("--self-test", action="store_true")
    ap.add_argument("--lambda", dest="lam", type=float, help="--time/--self-test scaling factor")
    ap.add_argument("--trials", type=int, default=2, help="--self-test trials (default 2)")
    ap.add_argument("--seed", type=int, default=1, help="--self-test seed of the v0 uniforms")
    ap.add_argument("--out", help="JSON summary")
    ap.add_argument("--min-fraction", type=float, default=MIN_FRACTION,
                    help="--compare: the least fraction of a trial before the divergence "
                         "(default 0.5)")
    a = ap.parse_args()
    MIN_FRACTION = a.min_fraction

    checkout = os.path.abspath(a.checkout)
    sys.path.insert(0, checkout)
    # the module itself: spiking/__init__ rebinds spiking.LIF_network_fnc to the function
    mod = importlib.import_module("spiking.LIF_network_fnc")
    lif = mod.LIF_network_fnc
    commit = commit_of(checkout)
    mat = find_mat(a.mat)
    if a.time is not None:
        torch.set_num_threads(1)
    print(f"original checkout: {checkout} commit: {commit} ({mod.__file__})")
    print(f"mat: {mat}; torch {torch.__version__}, numpy {np.__version__}, threads "
          f"{torch.get_num_threads()}")
    model = scipy.io.loadmat(mat)
    lam = a.lam
    if lam is None:
        lam = float(model["opt_scaling_factor"].item()) if "opt_scaling_factor" in model else 50.0
    result = dict(checkout=checkout, commit=commit, mat=mat)
    if a.compare:
        result["compare"], _ = run_compare(lif, model, a.compare)
        ok = result["compare"]["passed"]
    elif a.time is not None:
        result["time"] = run_time(lif, mat, lam, a.time)
        ok = True
    else:
        result["self_test"] = self_test(lif, model, lam, a.trials, a.seed)
        ok = result["self_test"]["passed"]
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
