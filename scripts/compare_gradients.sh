#!/usr/bin/env bash
# Compares the gradients of examples/gradient_snapshot.rs at this tree with those at a base
# revision (default 174e4c3, the commit before the centre was rebuilt): the largest relative
# difference per problem (relative to the problem's largest gradient entry).
#   bash scripts/compare_gradients.sh [rev]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-174e4c3}
base=$(mktemp -d)
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$base" "$rev" >/dev/null
mkdir -p "$base/examples"
cp examples/gradient_snapshot.rs "$base/examples/"
(cd "$base" && CARGO_TARGET_DIR="$PWD/../neurode-base-target" cargo run --quiet --release --example gradient_snapshot) >"$base/base.txt"
cargo run --quiet --release --example gradient_snapshot >"$base/head.txt"
python3 - "$base/base.txt" "$base/head.txt" <<'PY'
import struct, sys
def load(p):
    out = {}
    for line in open(p):
        name, *bits = line.split()
        out[name] = [struct.unpack(">d", bytes.fromhex(b))[0] for b in bits]
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
worst = 0.0
for name in a:
    x, y = a[name], b[name]
    assert len(x) == len(y), name
    scale = max(abs(v) for v in x)
    d = max(abs(u - v) for u, v in zip(x, y)) / scale
    same = sum(u == v for u, v in zip(x, y))
    worst = max(worst, d)
    print(f"{name:24s} {len(x):6d} values, {same:6d} bit-identical, max rel diff {d:.2e}")
print(f"largest relative difference: {worst:.2e} (acceptance: <= 1e-13)")
sys.exit(0 if worst <= 1e-13 else 1)
PY
