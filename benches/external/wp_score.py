#!/usr/bin/env python3
"""Scores saved states against a reference, as grid_diffrax.py --work-precision does.

Usage: python wp_score.py --ref ref.npy states1.npy [states2.npy ...]
All arrays have shape (10, nb, N) (save times t = 10..100, trials, units). Per trial b,
err_b = max over save times and units of |x - x_ref|; printed per file:
    wp_score file=<path> worst_err=<max_b err_b> median_err=<median_b err_b>
"""
import argparse

import numpy as np


def trial_errors(x, ref):
    """err_b = max over save times and units of |x - x_ref|, one per trial b; x and ref
    (10, nb, N)."""
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert x.shape == ref.shape and ref.ndim == 3, (x.shape, ref.shape)
    return np.abs(x - ref).max(axis=(0, 2))

def score(x, ref):
    """(worst_err, median_err) over trials of trial_errors(x, ref)."""
    err = trial_errors(x, ref)
    return float(err.max()), float(np.median(err))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="reference saves, shape (10, nb, N)")
    ap.add_argument("files", nargs="+", help="saved states, shape (10, nb, N)")
    cli = ap.parse_args()
    ref = np.load(cli.ref)
    for path in cli.files:
        worst, med = score(np.load(path), ref)
        print(f"wp_score file={path} worst_err={worst:.6e} median_err={med:.6e}")

if __name__ == "__main__":
    main()
