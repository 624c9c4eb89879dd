#!/usr/bin/env python3
"""Time the original VectorialNeuroModulators mean field on neurode's problems.

Usage:
    python meanfield_original.py --checkout PATH --problems problems.json \
        [--out result.json] [--limit K]

PATH is a checkout of github.com/evaisd/VectorialNeuroModulators (cited at
commit 4d271c6). Its `neuro_mod/mean_field/core/lif_mean_field.py` is loaded
standalone from that file (the package's __init__ pulls in torch; the
mean-field module itself needs only numpy and scipy). Nothing of the original
is copied here.

problems.json is written by `neurode meanfield ... --problems`:
    {"commit_note": "...", "sweep": {"key": "...", "values": [...]},
     "sets": [{"kwargs": {LIFMeanField keyword arguments}, "starts": [[...], ...]}, ...],
     "ours": {"seconds": s, "fixed_points": [[[r1, ..., rn], ...], ...]}}

Timed: ONE loop over all sets and all starts, exactly the original runner's
work per point (MFSweepRunner._single_run / MainMFRunner.run): construct
LIFMeanField(**kwargs) once per set, then for every start
`solve_rates(nu_init=start)` and `determine_stability(x)`. time.perf_counter
around the whole loop, construction included.

Afterwards (untimed) every root that `root` reported as converged is matched
against neurode's fixed points of the same set: a match is
max|x - p| <= 1e-6 * max(max|p|, max|x|).
"""

import argparse
import importlib.util
import inspect
import json
import os
import sys
import time

import numpy as np

MODULE_PATH = os.path.join("neuro_mod", "mean_field", "core", "lif_mean_field.py")

# seed-numbers.md A1: the original README's two-population example.
ORACLE_KWARGS = dict(
    n_clusters=2,
    c_matrix=np.ones((2, 2), dtype=int),
    j_matrix=0.1 * np.ones((2, 2)),
    j_ext=np.array([2.3, 2.3]),
    c_ext=np.array([320, 320]),
    nu_ext=np.array([7.0, 7.0]),
    tau_membrane=[0.02, 0.02],
    tau_synaptic=[0.005, 0.005],
    threshold=[1.5, 0.75],
    reset_voltage=0.0,
    tau_refractory=0.005,
)
ORACLE_NU = np.array([188.2719249891, 193.9813688852])
ORACLE_TOL = 1e-8
MATCH_RTOL = 1e-6


def load_original(checkout):
    path = os.path.join(checkout, MODULE_PATH)
    if not os.path.isfile(path):
        sys.exit(f"error: {path} not found (is --checkout a VectorialNeuroModulators checkout?)")
    spec = importlib.util.spec_from_file_location("vnm_lif_mean_field", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.LIFMeanField, path


def constructor_names(cls):
    """Named parameters of LIFMeanField.__init__ (its *args/**kwargs swallow
    anything else silently, so unknown names must be rejected here)."""
    sig = inspect.signature(cls.__init__)
    return [
        n for n, p in sig.parameters.items()
        if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def check_oracle(cls):
    lif = cls(**ORACLE_KWARGS)
    sol = lif.solve_rates()
    label, _ = lif.determine_stability(sol.x)
    err = float(np.max(np.abs(sol.x - ORACLE_NU)))
    if not (sol.success and err <= ORACLE_TOL and label == "stable node"):
        sys.exit(
            f"error: oracle mismatch: x={sol.x.tolist()} success={sol.success} "
            f"label={label!r}, expected {ORACLE_NU.tolist()} (max err {err:.3e} > {ORACLE_TOL})"
        )
    print(f"oracle: README 2-pop nu*={[f'{v:.10f}' for v in sol.x]} "
          f"max_err={err:.1e} nfev={sol.nfev} label={label!r} ok")


def matches(x, points):
    for k, p in enumerate(points):
        p = np.asarray(p, float)
        if p.shape != x.shape:
            continue
        scale = max(float(np.max(np.abs(p))), float(np.max(np.abs(x))))
        if float(np.max(np.abs(x - p))) <= MATCH_RTOL * scale:
            return k
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkout", required=True, help="VectorialNeuroModulators checkout")
    ap.add_argument("--problems", required=True, help="problems.json written by neurode")
    ap.add_argument("--out", help="write the results here as JSON")
    ap.add_argument("--limit", type=int, help="run only the first K sets")
    args = ap.parse_args()

    LIFMeanField, path = load_original(args.checkout)
    names = constructor_names(LIFMeanField)
    print(f"original: {path}")
    check_oracle(LIFMeanField)

    with open(args.problems) as f:
        prob = json.load(f)
    all_sets = prob["sets"]
    n_total = len(all_sets)
    sets = all_sets[: args.limit] if args.limit is not None else all_sets
    limited = len(sets) < n_total
    sweep = prob.get("sweep") or {}
    print(f"problems: {args.problems} commit_note={prob.get('commit_note', '')!r} "
          f"sweep={sweep.get('key')} ({len(sweep.get('values', []))} values) sets={n_total}"
          + (f" (limited to the first {len(sets)})" if limited else ""))

    # Validate the inputs before timing anything.
    kwargs_list, starts_list = [], []
    for s, st in enumerate(sets):
        kw = st["kwargs"]
        unknown = sorted(set(kw) - set(names))
        if unknown:
            sys.exit(f"error: set {s}: {unknown} are not LIFMeanField arguments {names}")
        n = int(kw["n_clusters"])
        starts = [np.asarray(v, dtype=float) for v in st["starts"]]
        for v in starts:
            if v.shape != (n,):
                sys.exit(f"error: set {s}: start {v.tolist()} is not of length {n}")
        kwargs_list.append(kw)
        starts_list.append(starts)
    n_starts = sum(len(v) for v in starts_list)

    # ---- timed loop: construction + solve_rates + determine_stability ----
    raw = []
    t0 = time.perf_counter()
    for kw, starts in zip(kwargs_list, starts_list):
        lif = LIFMeanField(**kw)
        per = []
        for start in starts:
            sol = lif.solve_rates(nu_init=start)
            stab = lif.determine_stability(sol.x)
            per.append((sol, stab))
        raw.append(per)
    seconds = time.perf_counter() - t0
    # ----------------------------------------------------------------------

    n_success = sum(1 for per in raw for sol, _ in per if sol.success)
    per_set_ms = 1e3 * seconds / max(len(sets), 1)
    per_start_ms = 1e3 * seconds / max(n_starts, 1)
    # m = starts per set when all sets have the same number of starts
    counts = {len(v) for v in starts_list}
    m_str = str(counts.pop()) if len(counts) == 1 else f"{n_starts}/{len(sets)}"
    print(f"original: sets={len(sets)} starts={m_str} seconds={seconds:.6f} "
          f"per_set_ms={per_set_ms:.4f} success={n_success}/{n_starts}"
          + (f" [LIMITED: {len(sets)} of {n_total} sets]" if limited else ""))
    print(f"original: per_start_ms={per_start_ms:.4f} "
          f"(one solve_rates + determine_stability; construction shared per set)")

    # ---- untimed comparison with neurode's fixed points ----
    ours = prob.get("ours") or {}
    ours_fps = ours.get("fixed_points")
    n_match = n_mismatch = n_noref = 0
    mismatches = []
    results = []
    for s, (kw, starts, per) in enumerate(zip(kwargs_list, starts_list, raw)):
        refs = ours_fps[s] if ours_fps is not None and s < len(ours_fps) else None
        rows = []
        for start, (sol, (label, ev)) in zip(starts, per):
            row = {
                "start": start.tolist(),
                "x": np.asarray(sol.x, float).tolist(),
                "success": bool(sol.success),
                "nfev": int(sol.nfev),
                "label": label,
                "eigenvalues": [[float(e.real), float(e.imag)] for e in np.atleast_1d(ev)],
                "match": None,
            }
            if sol.success:
                if not refs:
                    n_noref += 1
                else:
                    k = matches(np.asarray(sol.x, float), refs)
                    row["match"] = k
                    if k is None:
                        n_mismatch += 1
                        mismatches.append((s, row))
                    else:
                        n_match += 1
            rows.append(row)
        results.append(rows)

    # Residual of mismatching roots (is the original's root a true root?).
    for s, row in mismatches:
        lif = LIFMeanField(**kwargs_list[s])
        row["residual_max"] = float(np.max(np.abs(lif._fixed_point_residual(np.asarray(row["x"])))))

    if ours_fps is None:
        print("compare: no ours.fixed_points in the problems file; nothing compared")
    else:
        print(f"compare: matches={n_match} mismatches={n_mismatch} "
              f"no_reference={n_noref} (successful roots; rtol {MATCH_RTOL:g}, max-norm)")
        for s, row in mismatches[:5]:
            print(f"  mismatch set={s} start={row['start']} x={row['x']} "
                  f"|F(x)|max={row['residual_max']:.3e} nfev={row['nfev']} "
                  f"ours={ours_fps[s]}")
        if len(mismatches) > 5:
            print(f"  ... {len(mismatches) - 5} more")

    ours_seconds = ours.get("seconds")
    speedup = None
    if ours_seconds is not None:
        print(f"neurode: seconds={ours_seconds:.6f} per_set_ms={1e3 * ours_seconds / max(n_total, 1):.4f} "
              f"(all {n_total} sets)")
        if limited:
            print(f"speedup: n/a (limited run: original ran {len(sets)} of {n_total} sets; "
                  f"compare per_set_ms)")
        elif ours_seconds > 0:
            speedup = seconds / ours_seconds
            print(f"speedup: {speedup:.2f}x (original / neurode, one run)")

    if args.out:
        out = {
            "checkout": os.path.abspath(args.checkout),
            "module": path,
            "problems": args.problems,
            "commit_note": prob.get("commit_note"),
            "sweep": sweep,
            "sets": len(sets),
            "sets_total": n_total,
            "limited": limited,
            "starts": n_starts,
            "seconds": seconds,
            "per_set_ms": per_set_ms,
            "per_start_ms": per_start_ms,
            "success": n_success,
            "compare": None if ours_fps is None else {
                "matches": n_match, "mismatches": n_mismatch, "no_reference": n_noref,
                "rtol": MATCH_RTOL,
            },
            "ours_seconds": ours_seconds,
            "speedup": speedup,
            "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                         "scipy": __import__("scipy").__version__},
            "results": results,
        }
        with open(args.out, "w") as f:
            json.dump(out, f, allow_nan=True)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
