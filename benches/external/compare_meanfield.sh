#!/usr/bin/env bash
# neurode's mean-field sweep and the original VectorialNeuroModulators LIFMeanField on the
# same problems, one after the other in one call:
#   bash benches/external/compare_meanfield.sh <checkout of the original> [python]
# python defaults to python3; it needs numpy and scipy (see benches/external/README.md).
# Environment: SWEEP (default nu_ext=5:9:1000), CONFIG (default configs/meanfield_four_pop.toml),
# WORK (folder for the sweep output, problems.json and result.json; default: a fresh mktemp -d),
# LIMIT (run the original on only the first LIMIT sets), THREADS (neurode's threads; default all cores;
# THREADS=1 compares one core with one core).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: bash benches/external/compare_meanfield.sh <checkout of the original> [python]" >&2
    exit 2
fi
checkout=$(cd "$1" && pwd)
py=${2:-python3}
SWEEP=${SWEEP:-nu_ext=5:9:1000}
CONFIG=${CONFIG:-configs/meanfield_four_pop.toml}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$(dirname "$0")/../.."

if git -C "$checkout" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    commit=$(git -C "$checkout" rev-parse HEAD)
else
    commit=unknown
fi
echo "original checkout: $checkout commit: $commit"
echo "sweep: $SWEEP config: $CONFIG work: $work"

cargo run --release --quiet -- meanfield "$CONFIG" --sweep "$SWEEP" \
    --out "$work/sweep" --problems "$work/problems.json" ${THREADS:+--threads "$THREADS"}

"$py" benches/external/meanfield_original.py --checkout "$checkout" \
    --problems "$work/problems.json" --out "$work/result.json" ${LIMIT:+--limit "$LIMIT"}
