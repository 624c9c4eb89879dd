#!/usr/bin/env python3
"""Work-precision table (and plot) of neurode beside diffrax on one problem of the P1
family, from the outputs that benches/external/compare_wp.sh collects in one folder:

  diffrax.txt       grid_diffrax.py --work-precision lines (scored by diffrax itself)
  neurode_<c>.txt   cargo bench --bench grid -- --work-precision lines, one file per
                    controller c (i: the default, pi: the earlier default)
  ref.npy           the Dopri8 reference saves (10, nb, N)
  neurode_<c>_<prec>_rtol<r>.npy   neurode's saves, scored here against ref.npy
                                   exactly as wp_score.py scores them

For each precision and rtol: time, steps, worst-trial and median-trial error of each, and
the verdict of acceptance 2 of the grid issue: neurode's worst-trial error is no larger than
diffrax's at that rtol, or neurode's time is lower than diffrax's time at neurode's error
(diffrax's time interpolated log-log between its neighbouring rtols). With --plot PATH and
matplotlib installed, worst-trial error against time, log-log.
Usage: wp_table.py DIR [--plot wp.png]
"""
import argparse, math, os, re

import numpy as np

from wp_score import score

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--plot", default=None)
cli = ap.parse_args()

LINE = re.compile(r"^(neurode|diffrax) wp (.*)$")

def read(path):
    rows = []
    for line in open(path):
        m = LINE.match(line.strip())
        if not m or " ref " in line or "refcheck" in line or "skipped" in line:
            continue
        kv = dict(p.split("=", 1) for p in m.group(2).split() if "=" in p)
        if "median_ms" not in kv or kv["median_ms"] == "nan":
            continue
        rows.append(kv)
    return rows

ref = np.load(os.path.join(cli.dir, "ref.npy"))

peer = {}
for r in read(os.path.join(cli.dir, "diffrax.txt")):
    peer[(r["prec"], float(r["rtol"]))] = (float(r["median_ms"]), int(r["steps"]),
                                           float(r["worst_err"]), float(r["median_err"]))
ours = {}
for name in sorted(os.listdir(cli.dir)):
    m = re.match(r"neurode_(\w+)\.txt$", name)
    if not m:
        continue
    ctl = m.group(1)
    for r in read(os.path.join(cli.dir, name)):
        worst, med = score(np.load(os.path.join(cli.dir, r["states"])), ref)
        ours[(ctl, r["prec"], float(r["rtol"]))] = (float(r["median_ms"]), int(r["steps"]),
                                                    worst, med)

def peer_time_at(prec, err):
    """diffrax's time at worst-trial error `err`, log-log between its rtols (None outside)."""
    pts = sorted((v[2], v[0]) for (p, _), v in peer.items() if p == prec)
    for (e0, t0), (e1, t1) in zip(pts, pts[1:]):
        if e0 <= err <= e1 and e0 > 0:
            w = math.log(err / e0) / math.log(e1 / e0) if e1 != e0 else 0.0
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
    return None

ctls = sorted({k[0] for k in ours}, key=lambda c: c != "i")
head = "| prec | rtol | diffrax ms / steps / worst / median |"
for c in ctls:
    head += f" neurode ({c}) ms / steps / worst / median |"
print(head + " acceptance 2 (default controller) |")
print("|---|---:|---|" + "---|" * len(ctls) + "---|")
failed = 0
for prec in ("f64", "f32"):
    for rtol in sorted({k[1] for k in peer if k[0] == prec}, reverse=True):
        d = peer[(prec, rtol)]
        row = f"| {prec} | {rtol:g} | {d[0]:.1f} / {d[1]} / {d[2]:.2e} / {d[3]:.2e} |"
        for c in ctls:
            o = ours.get((c, prec, rtol))
            row += (f" {o[0]:.1f} / {o[1]} / {o[2]:.2e} / {o[3]:.2e} |" if o else " — |")
        o = ours.get(("i", prec, rtol))
        if o is None:
            verdict = "not run"
        elif o[2] <= d[2]:
            verdict = f"met: error {o[2] / d[2]:.2f}x diffrax's"
        else:
            t = peer_time_at(prec, o[2])
            if t is not None and o[0] < t:
                verdict = f"met: {t / o[0]:.2f}x faster at equal error"
            else:
                verdict = "MISSED" + ("" if t is None else f" (diffrax {t:.1f} ms at that error)")
                failed += 1
        print(row + f" {verdict} |")
print(f"\nrows missing acceptance 2: {failed}")

if cli.plot:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no plot")
    else:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, prec in zip(axes, ("f64", "f32")):
            series = [("diffrax", {k[1]: v for k, v in peer.items() if k[0] == prec})]
            series += [(f"neurode ({c})", {k[2]: v for k, v in ours.items()
                                           if k[0] == c and k[1] == prec}) for c in ctls]
            for label, pts in series:
                if not pts:
                    continue
                rt = sorted(pts, reverse=True)
                ax.loglog([pts[r][0] for r in rt], [pts[r][2] for r in rt], "o-", label=label)
            ax.set_xlabel("median time per solve (ms)")
            ax.set_ylabel("worst-trial max |x - x_ref|")
            ax.set_title(f"{prec}: rtol " + ", ".join(f"{r:g}" for r in
                         sorted({k[1] for k in peer if k[0] == prec}, reverse=True)[:1]) + " ...")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(cli.plot, dpi=120)
        print(f"plot: {cli.plot}")
