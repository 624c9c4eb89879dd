#!/usr/bin/env bash
# neurode and diffrax on the P1 family grid, one after the other in one call, both with
# both cores, then the table of ratios (diffrax / neurode):
#   bash benches/external/compare_grid.sh /path/to/venv-diffrax/bin/python [grid options]
# Grid options go to both sides (`--sizes 100,500 --trials 1,32 --precisions f64
# --modes forward --reps 5 --max-seconds 10`, ...; defaults: the whole grid, 7 reps).
# OUT (default: a fresh mktemp -d) keeps both outputs and the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:?usage: compare_grid.sh /path/to/python-with-jax-and-diffrax [grid options]}
shift
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# neurode $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes')"
cargo bench --bench grid -- "$@" | tee "$out/neurode.txt"
"$py" benches/external/grid_diffrax.py "$@" | tee "$out/diffrax.txt"
python3 benches/external/grid_table.py "$out/neurode.txt" "$out/diffrax.txt" | tee "$out/table.md"
