#!/usr/bin/env bash
# Trains a config (default: the main job's) at this tree and at a base revision (default
# 174e4c3, the commit before the centre was rebuilt) and compares the final parameters and
# the final validation accuracy per context:
#   bash scripts/compare_training.sh [config] [rev]
# Needs Python with numpy and safetensors. Takes two trainings' time (about 4-11 min each
# for the default config on 2 cores) and a build of the base revision (reused with
# BASE_TARGET=dir).
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-configs/lowrank_context_switch.toml}
rev=${2:-174e4c3}
work=$(mktemp -d)
base="$work/base"
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$base" "$rev" >/dev/null
# Configs are tagged by model and task since the pipeline became generic; a base revision
# from before knows one model and one task and no `kind` keys.
if git grep -q 'start with `kind`' "$rev" -- src/config.rs; then
    cp "$cfg" "$work/base.toml"
else
    grep -v '^kind = ' "$cfg" >"$work/base.toml"
fi
(cd "$base" && CARGO_TARGET_DIR="${BASE_TARGET:-$work/target}" cargo run --quiet --release -- \
    train "$work/base.toml" --quiet --out "$work/run_base" >/dev/null)
cargo run --quiet --release -- train "$cfg" --quiet --out "$work/run_head" >/dev/null
python3 - "$work/run_base" "$work/run_head" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import load_file
a, b = (load_file(f"{d}/params.safetensors") for d in sys.argv[1:3])
worst = 0.0
for k in a:
    x, y = a[k], b[k]
    d = float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-300))
    worst = max(worst, d)
    print(f"{k}: {x.size} values, {int(np.sum(x == y))} bit-identical, max rel diff {d:.2e}")
print(f"largest relative parameter difference: {worst:.2e}")
for d in sys.argv[1:3]:
    s = json.load(open(f"{d}/summary.json"))
    print(d.split("/")[-1], "final:", s["final"], "wall s:", round(s["wall_seconds"], 1))
PY
