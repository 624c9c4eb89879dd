#!/usr/bin/env bash
# neurode and JAX on benchmark problem P3 (a Kim-style training step: forward, gradient,
# one Adam update), one after the other in one call, both with both cores:
#   bash benches/external/compare_p3.sh /path/to/venv-diffrax/bin/python [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:?usage: compare_p3.sh /path/to/python-with-jax [rounds]}
rounds=${2:-9}
echo "# $(date -u +%FT%TZ) $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cargo bench --bench kim_step -- --p3 --rounds "$rounds" | tee /dev/stderr | grep '^neurode p3' > "${TMPDIR:-/tmp}/p3_neurode.$$"
"$py" benches/external/p3_jax.py --batches 1,32 --precisions f32,f64 --steps 200 --rounds "$rounds" | tee /dev/stderr | grep '^jax p3 nb' > "${TMPDIR:-/tmp}/p3_jax.$$"
python3 - "${TMPDIR:-/tmp}/p3_neurode.$$" "${TMPDIR:-/tmp}/p3_jax.$$" <<'PY'
import re, sys
def read(path):
    out = {}
    for line in open(path):
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        out[(int(kv["nb"]), kv["prec"])] = kv
    return out
ours, peer = read(sys.argv[1]), read(sys.argv[2])
print("| nb | prec | neurode ms/step | JAX ms/step | ratio (JAX / neurode) | loss0 rel. diff | loss1 rel. diff |")
print("|---:|---|---:|---:|---:|---:|---:|")
for key in sorted(ours):
    if key not in peer:
        continue
    a, b = ours[key], peer[key]
    r = float(b["median_ms"]) / float(a["median_ms"])
    d = [abs(float(a[k]) - float(b[k])) / abs(float(b[k])) for k in ("loss0", "loss1")]
    print(f"| {key[0]} | {key[1]} | {float(a['median_ms']):.3f} | {float(b['median_ms']):.3f} "
          f"| {r:.2f} | {d[0]:.1e} | {d[1]:.1e} |")
PY
rm -f "${TMPDIR:-/tmp}/p3_neurode.$$" "${TMPDIR:-/tmp}/p3_jax.$$"
