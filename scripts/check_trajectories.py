"""Reads a `neurode simulate` archive with NumPy alone and checks it against the run's
parameters: the readout equals w . tanh(x) / N + b at every saved time, the times are the
saved grid, and the inputs are the task's (context cues constant, stimulus off at t = 0).

Usage: python3 scripts/check_trajectories.py <run dir> <simulation dir>
"""
import sys

import numpy as np
from safetensors.numpy import load_file

run, sim = sys.argv[1], sys.argv[2]
p = load_file(f"{run}/params.safetensors")
d = np.load(f"{sim}/trajectories.npz")
print({k: (str(d[k].dtype), d[k].shape) for k in d.files})
times, states, inputs, readout = d["times"], d["states"], d["inputs"], d["readout"]
trials, nt, n = states.shape
assert times.shape == (nt,) and readout.shape == (trials, nt), "shapes disagree"
assert inputs.shape[:2] == (trials, nt), "inputs shape"
assert np.all(np.diff(times) > 0) and times[0] == 0.0, "times must increase from 0"
w, b = p["w"].reshape(-1), p["b"].reshape(-1)[0]
assert w.shape == (n,), f"w has {w.shape}, states have {n} units"
mine = np.tanh(states) @ w / n + b
err = np.max(np.abs(mine - readout))
print(f"readout recomputed from the states: max |difference| = {err:.3e}")
assert err < 1e-12, "the readout does not match the states"
assert np.all(inputs[:, 0, :2] == 0.0), "the stimulus must be off at t = 0"
assert np.any(inputs[:, -1, :2] != 0.0), "the stimulus must be on at the end"
assert np.all(np.isfinite(states)), "non-finite states"
print("ok")
