#!/usr/bin/env python3
"""Joins the lines of `cargo bench --bench grid` and `grid_diffrax.py` (same cells) into a
markdown table: median ms of both, ratio diffrax / neurode (above 1: neurode is faster),
steps (most of a trial for neurode, of the whole batch for diffrax) and whether the checks
agree. Usage: grid_table.py neurode.txt diffrax.txt [--forward-target 1.5 --gradient-target 2]
Standard library only."""
import argparse, re

ap = argparse.ArgumentParser()
ap.add_argument("neurode")
ap.add_argument("diffrax")
ap.add_argument("--forward-target", type=float, default=1.5)
ap.add_argument("--gradient-target", type=float, default=2.0)
cli = ap.parse_args()

LINE = re.compile(r"^(neurode|diffrax) grid N=(\d+) nb=(\d+) prec=(\w+) mode=(\w+) (.*)$")

def read(path):
    cells = {}
    for line in open(path):
        m = LINE.match(line.strip())
        if not m:
            continue
        kv = dict(p.split("=", 1) for p in m.group(6).split() if "=" in p)
        key = (int(m.group(2)), int(m.group(3)), m.group(4), m.group(5))
        cells[key] = kv
    return cells

ours, peer = read(cli.neurode), read(cli.diffrax)
print("| N | nb | prec | mode | neurode ms | diffrax ms | ratio | target | steps n / d | check rel. diff |")
print("|---:|---:|---|---|---:|---:|---:|---|---:|---:|")
missed = 0
for key in sorted(ours, key=lambda k: (k[2] != "f64", k[0], k[1], k[3] != "forward")):
    if key not in peer:
        continue
    n, nb, prec, mode = key
    a, b = ours[key], peer[key]
    t_ours, t_peer = float(a["median_ms"]), float(b["median_ms"])
    ratio = t_peer / t_ours if t_ours > 0 else float("nan")
    target = cli.forward_target if mode == "forward" else cli.gradient_target
    if prec == "f64":
        ok = "met" if ratio >= target else "MISSED"
        missed += ok == "MISSED"
        tgt = f">= {target:g}: {ok}"
    else:
        tgt = "(f32: see work-precision)"
    ca, cb = float(a["check"]), float(b["check"])
    rel = abs(ca - cb) / max(abs(cb), 1e-300)
    print(f"| {n} | {nb} | {prec} | {mode} | {t_ours:.1f} | {t_peer:.1f} | {ratio:.2f} | {tgt} "
          f"| {a['steps']} / {b['steps']} | {rel:.1e} |")
print(f"\nf64 cells below target: {missed}")
