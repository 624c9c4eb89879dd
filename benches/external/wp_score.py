#!/usr/bin/env python3
"""Scores saved states against a reference, as grid_diffrax.py --work-precision does.

Usage: python wp_score.py --ref ref.npy states1.npy [states2.npy ...]
All arrays have shape (10, nb, N) (save times t = 10..100, trials, units). Per trial b,
err_b = max over save times and units of |x - x_ref|; printed per file:
    wp_score file=<path> worst_err=<max_b err_b> median_err=<median_b err_b>
"""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--ref", required=True, help="reference saves, shape (10, nb, N)")
ap.add_argument("files", nargs="+", help="saved states, shape (10, nb, N)")
cli = ap.parse_args()
ref = np.load(cli.ref).astype(np.float64)
assert ref.ndim == 3, ref.shape
for path in cli.files:
    x = np.load(path).astype(np.float64)
    assert x.shape == ref.shape, (path, x.shape, ref.shape)
    err = np.abs(x - ref).max(axis=(0, 2))  # one per trial
    print(f"wp_score file={path} worst_err={err.max():.6e} median_err={np.median(err):.6e}")
