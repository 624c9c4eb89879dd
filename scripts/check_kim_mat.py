"""Reads a Kim et al. rate RNN's MATLAB export with SciPy, as the original's spiking code
would, and checks it against the run's params.safetensors:

    python3 scripts/check_kim_mat.py RUN_DIR

- shapes: w, w0, m, som_m N x N; w_in N x inputs; w_out 1 x N; taus_gaus N x 1; exc, inh
  N x 1 logical; N, som_N, b_out, tr scalars; losses 1 x tr; activation a string;
- W_eff = (w @ m) * som_m (the spiking code's formula) equals the run's W_eff;
- tau = sigmoid(taus_gaus) (taus[1] - taus[0]) + taus[0] equals the run's taus;
- w_out, b_out, w_in equal the run's; exc = not inh; m's diagonal is +1 / -1 by exc / inh;
- structure.json's spectral radius is NumPy's for that W_eff.
Exits non-zero with a message on any mismatch.
"""
import glob
import json
import sys

import numpy as np
import scipy.io
from safetensors.numpy import load_file

run = sys.argv[1]
mats = glob.glob(f"{run}/Task_*.mat")
assert len(mats) == 1, f"expected one Task_*.mat in {run}, found {mats}"
m = scipy.io.loadmat(mats[0])
p = load_file(f"{run}/params.safetensors")
N = int(m["N"][0, 0])
n_in = p["w_in"].shape[1]
fail = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fail.append(what)


for k, shape in [("w", (N, N)), ("w0", (N, N)), ("m", (N, N)), ("som_m", (N, N)),
                 ("w_in", (N, n_in)), ("w_out", (1, N)), ("taus_gaus", (N, 1)),
                 ("taus_gaus0", (N, 1)), ("exc", (N, 1)), ("inh", (N, 1)),
                 ("b_out", (1, 1)), ("som_N", (1, 1)), ("tr", (1, 1))]:
    check(m[k].shape == shape, f"{k} has shape {m[k].shape}, expected {shape}")
tr = int(m["tr"][0, 0])
check(m["losses"].shape == (1, tr), f"losses has shape {m['losses'].shape} for {tr} trials")
check(str(m["activation"][0]) == "sigmoid", f"activation is {m['activation']}")
w_eff = (m["w"] @ m["m"]) * m["som_m"]
check(np.allclose(w_eff, p["W_eff"], rtol=1e-6, atol=1e-7), "(w @ m) .* som_m is the run's W_eff")
taus = m["taus"].ravel()
tau = 1.0 / (1.0 + np.exp(-m["taus_gaus"].ravel())) * (taus[1] - taus[0]) + taus[0]
check(np.allclose(tau, p["taus"], rtol=1e-6), "sigmoid(taus_gaus) (max - min) + min is the run's taus")
check(np.allclose(m["w_out"].ravel(), p["w_out"]), "w_out is the run's")
check(np.allclose(m["b_out"].ravel(), p["b_out"]), "b_out is the run's")
check(np.allclose(m["w_in"], p["w_in"]), "w_in is the run's (row i = unit i)")
inh = m["inh"].ravel().astype(bool)
check(np.array_equal(m["exc"].ravel().astype(bool), ~inh), "exc = not inh")
check(np.array_equal(np.diag(m["m"]), np.where(inh, -1.0, 1.0)), "diag(m) = +1 exc / -1 inh")
check(np.array_equal(inh, p["signs"] < 0), "inh matches the run's signs")
check(not np.any(m["w"] < 0), "w is relu'd (the original saves relu(W))")
check(inh.sum() > 0, "the network has inhibitory units")
with open(f"{run}/structure.json") as f:
    radius = json.load(f)["spectral_radius"]
expected = np.abs(np.linalg.eigvals(w_eff)).max()
check(abs(radius - expected) <= 1e-5 * expected,
      f"structure.json's spectral radius {radius} is NumPy's {expected}")
if fail:
    sys.exit(f"{len(fail)} checks failed")
print(f"{mats[0]}: all checks passed (N = {N}, {tr} trials)")
