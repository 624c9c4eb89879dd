#!/usr/bin/env bash
# neurode and diffrax on P1, one after the other in one call, both with both cores:
#   bash benches/external/compare_p1.sh [path to a python with jax==0.10.2 diffrax==0.7.2]
# (see benches/external/README.md for the virtualenv).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:-python3}
cargo bench --bench p1 -- --summary-only
"$py" benches/external/p1_diffrax.py --reps 9
