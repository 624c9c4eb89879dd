#!/usr/bin/env bash
# Work-precision of neurode (the default I controller and the earlier PI setting) beside
# diffrax on one problem of the P1 family, all in one call, scored against one Dopri8
# reference (benches/external/wp_table.py):
#   N=500 NB=32 bash benches/external/compare_wp.sh /path/to/venv-diffrax/bin/python
# f64 at rtol 1e-3 ... 1e-10, f32 at 1e-3 ... 1e-6 (neurode refuses an f32 rtol below the f32
# machine epsilon, 1.2e-7, as one no step could meet; diffrax took 1,408 steps at 1e-7).
# OUT (default: a fresh mktemp -d) keeps the outputs, the table and wp.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:?usage: compare_wp.sh /path/to/python-with-jax-and-diffrax}
n=${N:-500}
nb=${NB:-32}
reps=${REPS:-5}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
f64=1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-9,1e-10
f32=1e-3,1e-4,1e-5,1e-6
echo "# $(date -u +%FT%TZ) $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); N=$n nb=$nb"
common=(--work-precision --sizes "$n" --trials "$nb" --reps "$reps" --save-states "$out")
{
    "$py" benches/external/grid_diffrax.py "${common[@]}" --precisions f64 --rtols $f64 --save-ref "$out/ref.npy"
    "$py" benches/external/grid_diffrax.py "${common[@]}" --precisions f32 --rtols $f32
} | tee "$out/diffrax.txt"
for c in i pi; do
    {
        cargo bench --bench grid -- "${common[@]}" --controller "$c" --precisions f64 --rtols $f64
        cargo bench --bench grid -- "${common[@]}" --controller "$c" --precisions f32 --rtols $f32
    } | tee "$out/neurode_$c.txt"
done
"$py" benches/external/wp_table.py "$out" --plot "$out/wp.png" | tee "$out/table.md"
