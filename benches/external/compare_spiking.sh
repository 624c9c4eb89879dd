#!/usr/bin/env bash
# neurode's rate-to-spiking conversion (`neurode spiking`) against the original PyTorch
# LIF_network_fnc of spikeRNN (NuttidaLab/spikeRNN 57e4032), trial by trial with the same
# initial voltages and the noise off, then the original's time per trial:
#   MAT=path/to/Task_....mat bash benches/external/compare_spiking.sh <checkout of the original> <python> [neurode binary]
# python needs torch, numpy and scipy (see benches/external/README.md).
# Without a binary, neurode runs as `cargo run --release --quiet --`.
# Environment: MAT (the rate RNN's .mat or a Kim run dir; required), LAMBDA (scaling factor;
# default 50), TRIALS (compared trials; default 4), SEED (neurode's --seed; default 1),
# TIME_TRIALS (timed trials of the original; default 3), WORK (folder for trials.npz and the
# JSON results; default: a fresh mktemp -d), GRID (1, the default: then also the full default
# grid search, 12 λ x 100 trials on every core, on a copy of the network in WORK, set beside
# the original's time per trial; 0: skip it).
set -euo pipefail

if [ $# -lt 2 ] || [ -z "${MAT:-}" ]; then
    echo "usage: MAT=<mat or run dir> bash benches/external/compare_spiking.sh <checkout of the original> <python> [neurode binary]" >&2
    exit 2
fi
checkout=$(cd "$1" && pwd)
py=$2
bin=${3:-}
if [ -n "$bin" ]; then
    bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
fi
if [[ $py == */* ]]; then
    py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")
fi
mat=$(cd "$(dirname "$MAT")" && pwd)/$(basename "$MAT")
LAMBDA=${LAMBDA:-50}
TRIALS=${TRIALS:-4}
SEED=${SEED:-1}
TIME_TRIALS=${TIME_TRIALS:-3}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$(dirname "$0")/../.."
here=benches/external

echo "mat: $mat lambda: $LAMBDA trials: $TRIALS seed: $SEED time trials: $TIME_TRIALS work: $work"

neurode() {
    if [ -n "$bin" ]; then
        "$bin" "$@"
    else
        cargo run --release --quiet -- "$@"
    fi
}

neurode spiking "$mat" --lambda "$LAMBDA" --trials "$TRIALS" --seed "$SEED" --noise 0 \
    --record "$work/trials.npz" | tee "$work/neurode.log"
status=0
"$py" "$here/spiking_original.py" --checkout "$checkout" --mat "$mat" --compare "$work/trials.npz" \
    --out "$work/compare.json" || status=$?
"$py" "$here/spiking_original.py" --checkout "$checkout" --mat "$mat" --time "$TIME_TRIALS" \
    --lambda "$LAMBDA" --out "$work/time.json"
if [ "${GRID:-1}" = 1 ]; then
    # The whole default grid on a copy (the grid search writes into the .mat).
    rm -rf "$work/grid"
    mkdir -p "$work/grid"
    if [ -d "$mat" ]; then
        cp "$mat"/config.toml "$mat"/Task_*.mat "$work/grid/"
    else
        cp "$mat" "$work/grid/"
    fi
    src=$work/grid
    [ -d "$mat" ] || src=$work/grid/$(basename "$mat")
    neurode spiking "$src" --seed "$SEED" --quiet --no-plots --out "$work/grid" | tee "$work/grid.log"
    "$py" - "$work/grid/spiking_grid.json" "$work/time.json" <<'PY'
import json, os, sys
g = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
orig = t["time"]["per_trial_s"]
cores = os.cpu_count()
per = g["seconds_per_trial"]
print(f"grid: {len(g['scaling_factors'])} lambdas x {g['trials_per_lambda']} trials in "
      f"{g['wall_seconds']:.2f} s on {cores} cores ({1e3 * per:.2f} ms per trial); "
      f"best lambda {g['opt_scaling_factor']} ({g['best_performance']:.2f})")
print(f"original: {orig:.3f} s per trial (one thread)")
print(f"per trial: neurode {orig / per:.0f}x faster (its grid on {cores} cores against one "
      f"trial of the original on one thread); per core: {orig / (per * cores):.0f}x")
print(f"the original's grid ({len(g['scaling_factors']) * g['trials_per_lambda']} trials) at "
      f"that rate on {cores} cores: {orig * len(g['scaling_factors']) * g['trials_per_lambda'] / cores / 60:.1f} min")
PY
fi
echo "results: $work/compare.json $work/time.json"
exit "$status"
