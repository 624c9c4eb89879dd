#!/usr/bin/env bash
# Runs the same commands with this tree's binary and a base revision's (default f8c0c59,
# before the model kinds got one home each) and compares every output file bit for bit:
# training of the low-rank sanity config, Kim go/no-go (300 trials; and with the original's
# knob options), multi-region go/no-go (300 trials), then simulate, analyze and eval of each
# run, and a simulation of an untrained Kim network:
#   bash scripts/compare_outputs.sh [rev]
# Needs Python with numpy and scipy. Takes a build of the base revision (reused with
# BASE_TARGET=dir) and a few minutes of runs.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-f8c0c59}
work=$(mktemp -d)
base="$work/base"
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$base" "$rev" >/dev/null
(cd "$base" && CARGO_TARGET_DIR="${BASE_TARGET:-$work/target}" cargo build --quiet --release)
cargo build --quiet --release
base_bin="${BASE_TARGET:-$work/target}/release/neurode"
head_bin="$(pwd)/target/release/neurode"

runs() {
    local bin=$1 root=$2
    mkdir -p "$root"
    "$bin" train configs/lowrank_context_switch_sanity.toml --out "$root/lowrank" --quiet >"$root/lowrank.train.txt"
    "$bin" train configs/kim_go_nogo.toml --n_trials 300 --out "$root/kim" --quiet >"$root/kim.train.txt"
    "$bin" train configs/kim_go_nogo.toml --n_trials 200 --N 60 --P_inh 0.25 --gain 1.4 \
        --decay_taus 4 25 --act softplus --seed 3 --out "$root/kimknobs" --quiet >"$root/kimknobs.train.txt"
    "$bin" train configs/multiregion_go_nogo.toml --n_trials 300 --out "$root/multiregion" --quiet \
        >"$root/multiregion.train.txt"
    for r in lowrank kim kimknobs multiregion; do
        "$bin" simulate "$root/$r" --threads 2 >"$root/$r.sim.txt"
        "$bin" analyze "$root/$r" --quiet --trials 16 --inits 64 >"$root/$r.ana.txt"
        "$bin" eval "$root/$r" --trials 100 >"$root/$r.eval.txt"
    done
    "$bin" simulate configs/kim_go_nogo.toml --out "$root/kim_untrained" --threads 2 >"$root/kim_untrained.sim.txt"
}

(cd "$base" && runs "$base_bin" "$work/out_base")
runs "$head_bin" "$work/out_head"
python3 scripts/compare_outputs.py "$work/out_base" "$work/out_head"
