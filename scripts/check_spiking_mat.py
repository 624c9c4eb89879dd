"""Checks that a Kim et al. rate RNN's .mat, after neurode's λ grid search, reads as the
original spikeRNN code (NuttidaLab/spikeRNN 57e4032) expects, with SciPy:

    python3 scripts/check_spiking_mat.py MAT_OR_RUN_DIR [--grid-len K]

- the variables LIF_network_fnc reads: w, w0, m, som_m, w_in, w_out, taus, taus_gaus,
  taus_gaus0, N, som_N, exc, inh (w, w0, m, som_m N x N; w_in N rows; w_out 1 x N);
- N and som_N are integer (1, 1) arrays, usable as sizes the way the original's rate
  model uses settings['N'][0][0] (np.zeros((N, T)));
- opt_scaling_factor is (1, 1); all_perfs and scaling_factors are (1, K) float arrays
  (K = --grid-len, default 12); all_perfs lies in [0, 1]; opt_scaling_factor is
  scaling_factors[argmax(all_perfs)] (the grid search's rule: the first maximum).
Prints `ok: ...` and exits 0, or prints each problem and exits 1.
"""
import argparse
import glob
import os
import sys

import numpy as np
import scipy.io

ap = argparse.ArgumentParser()
ap.add_argument("mat", help="the .mat, or a run dir holding one Task_*.mat")
ap.add_argument("--grid-len", type=int, default=12, help="expected number of λ values (default 12)")
a = ap.parse_args()
path = a.mat
if os.path.isdir(path):
    mats = glob.glob(os.path.join(path, "Task_*.mat"))
    if len(mats) != 1:
        sys.exit(f"expected one Task_*.mat in {path}, found {mats}")
    path = mats[0]
m = scipy.io.loadmat(path)
bad = []


def check(cond, what):
    if not cond:
        bad.append(what)
    return cond


needed = ["w", "w0", "m", "som_m", "w_in", "w_out", "taus", "taus_gaus", "taus_gaus0", "N",
          "som_N", "exc", "inh", "opt_scaling_factor", "all_perfs", "scaling_factors"]
missing = [k for k in needed if k not in m]
if missing:
    sys.exit(f"{path}: missing {', '.join(missing)}")

for k in ("N", "som_N"):
    v = m[k]
    check(v.dtype.kind in "iu" and v.shape == (1, 1),
          f"{k} is {v.dtype} {v.shape}, expected an integer (1, 1) array")
    try:
        np.zeros((v[0][0], 5))  # as the original's rate model: N = settings['N'][0][0]
    except (TypeError, IndexError, ValueError) as e:
        check(False, f"np.zeros(({k}[0][0], 5)) fails: {e}")
N = int(m["N"].item())
for k in ("w", "w0", "m", "som_m"):
    check(m[k].shape == (N, N), f"{k} has shape {m[k].shape}, expected ({N}, {N})")
check(m["w_in"].shape[0] == N, f"w_in has shape {m['w_in'].shape}, expected {N} rows")
check(m["w_out"].shape == (1, N), f"w_out has shape {m['w_out'].shape}, expected (1, {N})")

K = a.grid_len
opt, perfs, lams = m["opt_scaling_factor"], m["all_perfs"], m["scaling_factors"]
check(opt.shape == (1, 1), f"opt_scaling_factor has shape {opt.shape}, expected (1, 1)")
for k, v in (("all_perfs", perfs), ("scaling_factors", lams)):
    check(v.shape == (1, K) and v.dtype.kind == "f",
          f"{k} is {v.dtype} {v.shape}, expected a float (1, {K}) array")
if perfs.size and perfs.dtype.kind in "fiu":
    check(np.all((perfs >= 0) & (perfs <= 1)), f"all_perfs outside [0, 1]: {perfs.ravel()}")
if perfs.size and perfs.size == lams.size and opt.size == 1:
    best = lams.ravel()[np.argmax(perfs.ravel())]
    check(opt.item() == best, f"opt_scaling_factor {opt.item()} is not scaling_factors"
          f"[argmax(all_perfs)] = {best}")

if bad:
    print(f"{path}:")
    for b in bad:
        print(f"  {b}")
    sys.exit(1)
print(f"ok: {path}: N = {N}, som_N = {int(m['som_N'].item())}, {K} λ values, "
      f"opt_scaling_factor = {opt.item()} (perf {perfs.max():.3f})")
