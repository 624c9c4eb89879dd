#!/usr/bin/env bash
# neurode's clustered spiking LIF network, the original VectorialNeuroModulators LIFNet and
# Brian2 (Cython target) on the same network, one after the other in one call:
#   bash benches/external/compare_lif.sh <checkout of the original> <python> [neurode binary]
# and the rate comparison over seeds (neurode with the original's dead time against the
# original's own pipeline, each with its own network draw per seed):
#   SEEDS="1 2 3 4 5" bash benches/external/compare_lif.sh <checkout> <python> [neurode binary] --rates
# python needs torch, numpy<2.4, scipy, pyyaml and brian2==2.9.* (see benches/external/README.md).
# Without a binary, neurode runs as `cargo run --release --quiet --`.
# Environment: CONFIG (neurode's config; default configs/lif_clustered.toml), WORK (folder for
# the outputs and JSON results; default: a fresh mktemp -d), STEPS (run the peers on only the
# first STEPS steps; times are then compared per step), THREADS (torch threads of the original;
# default torch's), SEED (timing run: neurode's --seed, and the seed of the original's external
# counts), SEEDS (rate mode; default "1 2 3 4 5"), ORIG_CONFIG (rate mode: the original's YAML;
# default configs/spiking_network_simulation_config_template.yaml of the checkout),
# NEURODE_EXTRA (rate mode: the option that gives neurode the original's dead time).
set -euo pipefail
NEURODE_EXTRA=${NEURODE_EXTRA-"--set simulation.refractory=original"}

rates=0
pos=()
for a in "$@"; do
    case $a in
        --rates) rates=1 ;;
        *) pos+=("$a") ;;
    esac
done
if [ ${#pos[@]} -lt 2 ]; then
    echo "usage: bash benches/external/compare_lif.sh <checkout of the original> <python> [neurode binary] [--rates]" >&2
    exit 2
fi
checkout=$(cd "${pos[0]}" && pwd)
py=${pos[1]}
bin=${pos[2]:-}
if [ -n "$bin" ]; then
    bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
fi
if [[ $py == */* ]]; then
    py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")
fi
CONFIG=${CONFIG:-configs/lif_clustered.toml}
SEEDS=${SEEDS:-"1 2 3 4 5"}
ORIG_CONFIG=${ORIG_CONFIG:-$checkout/configs/spiking_network_simulation_config_template.yaml}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$(dirname "$0")/../.."
here=benches/external

if git -C "$checkout" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    commit=$(git -C "$checkout" rev-parse HEAD)
else
    commit=unknown
fi
echo "original checkout: $checkout commit: $commit"
echo "config: $CONFIG work: $work${STEPS:+ steps: $STEPS}"

neurode() {
    if [ -n "$bin" ]; then
        "$bin" "$@"
    else
        cargo run --release --quiet -- "$@"
    fi
}

# summary MODE WORK [SEEDS...]: times, speedups and rates (MODE time) or the per-seed table (MODE rates)
summary() {
    "$py" - "$@" <<'EOF'
import json, math, os, re, sys
import numpy as np
sys.path.insert(0, os.path.join(os.getcwd(), "benches", "external"))
from lif_rates import group_rates

mode, work, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
LINE = re.compile(r"simulated (\S+) s of (\d+) neurons in (\S+) s \(.*?\), (\d+) spikes; "
                  r"network built in (\S+) s")

def neurode_run(out, log, steps=None):
    """neurode's wall and build seconds (its printed line, else summary.json) and its rates
    over the first `steps` steps, from outputs.npz."""
    m = None
    if os.path.exists(log):
        m = LINE.search(open(log).read())
    if m:
        wall, build = float(m.group(3)), float(m.group(5))
    else:
        s = json.load(open(os.path.join(out, "summary.json")))
        wall, build = float(s["run_seconds"]), float(s["build_seconds"])
    d = np.load(os.path.join(out, "outputs.npz"))
    n_steps, dt = int(d["n_steps"]), float(d["delta_t"])
    steps = min(steps or n_steps, n_steps)
    sp = d["spikes"]
    sp = sp[sp[:, 0] < steps]
    clusters = d["clusters"].astype(np.int64)
    counts = np.bincount(sp[:, 1].astype(np.int64), minlength=len(clusters))
    n_blocks = len(d["boundaries"]) - 1
    groups, _ = group_rates(counts, clusters, n_blocks, steps, dt)
    return dict(wall=wall, build=build, n_steps=n_steps, steps=steps, spikes=int(len(sp)),
                rates=groups)

def fmt(x):
    return f"{x:.3f}" if x == x else "nan"

if mode == "time":
    o = json.load(open(os.path.join(work, "original.json")))
    b = json.load(open(os.path.join(work, "brian2.json")))
    n = neurode_run(os.path.join(work, "neurode"), os.path.join(work, "neurode.log"), o["steps"])
    print(f"neurode: run_s={n['wall']:.3f} build_s={n['build']:.3f} steps={n['n_steps']}")
    print(f"original: forward_s={o['forward_s']:.3f} gen_s={o['gen_s']:.3f} steps={o['steps']} "
          f"threads={o['threads']}")
    print(f"brian2: run_s={b['run_s']:.3f} prep_s={b['prep_s']:.3f} build_s={b['build_s']:.3f} "
          f"compile_s={b['compile_s']:.3f} steps={b['steps']}")
    ours = n["wall"] / n["n_steps"]
    per_step = o["steps"] != n["n_steps"] or b["steps"] != n["n_steps"]
    note = " (per step: the peers ran fewer steps)" if per_step else " (one run)"
    print(f"speedup vs original: {o['forward_s'] / o['steps'] / ours:.1f}x{note}")
    print(f"speedup vs brian2: {b['run_s'] / b['steps'] / ours:.1f}x{note}")
    print(f"rates (Hz) over the first {o['steps']} steps   neurode   original    brian2")
    for g in ("e_clusters", "e_background", "i_clusters", "i_background", "i_all"):
        print(f"  {g:<37}{fmt(n['rates'][g]):>9}  {fmt(o['rates_hz'][g]):>9} {fmt(b['rates_hz'][g]):>9}")
    print(f"  {'spikes':<37}{n['spikes']:>9}  {o['spikes']:>9} {b['spikes']:>9}")
else:
    groups = (("e_clusters", "E clusters"), ("e_background", "E background"), ("i_all", "I"))
    rows = []
    for s in seeds:
        o = json.load(open(os.path.join(work, f"original_seed{s}.json")))
        n = neurode_run(os.path.join(work, f"neurode_seed{s}"),
                        os.path.join(work, f"neurode_seed{s}.log"), o["steps"])
        rows.append((s, n["rates"], o["rates_hz"]))
    head = "".join(f"{label:>14}" for _, label in groups)
    width = 14 * len(groups)
    print(f"rates (Hz) per seed\n{'':<8}{'neurode':>{width}} | {'original':>{width}}")
    print(f"{'seed':<8}{head} | {head}")
    for s, nr, orr in rows:
        a = "".join(f"{fmt(nr[g]):>14}" for g, _ in groups)
        c = "".join(f"{fmt(orr[g]):>14}" for g, _ in groups)
        print(f"{s:<8}{a} | {c}")
    print(f"mean ± SD over {len(rows)} seeds (SD: sample, ddof=1); agree when the means differ "
          "by less than the larger SD")
    for g, label in groups:
        x = np.array([r[1][g] for r in rows])
        y = np.array([r[2][g] for r in rows])
        sx = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
        sy = float(np.std(y, ddof=1)) if len(y) > 1 else float("nan")
        diff = abs(float(x.mean()) - float(y.mean()))
        bound = max(sx, sy)
        verdict = "agree" if bound == bound and diff < bound else "DIFFER"
        print(f"  {label:<13} neurode {x.mean():.3f} ± {fmt(sx)}   original {y.mean():.3f} ± "
              f"{fmt(sy)}   |diff| {diff:.3f}  {verdict}")
EOF
}

if [ "$rates" = 0 ]; then
    neurode simulate "$CONFIG" --out "$work/neurode" --quiet ${SEED:+--seed "$SEED"} \
        | tee "$work/neurode.log"
    "$py" "$here/lif_original.py" --checkout "$checkout" --network "$work/neurode/outputs.npz" \
        --out "$work/original.json" ${STEPS:+--steps "$STEPS"} ${THREADS:+--threads "$THREADS"} \
        ${SEED:+--seed "$SEED"}
    "$py" "$here/lif_brian2.py" --network "$work/neurode/outputs.npz" --out "$work/brian2.json" \
        ${STEPS:+--steps "$STEPS"} ${SEED:+--seed "$SEED"}
    summary time "$work"
else
    echo "rate mode: seeds $SEEDS; neurode extra options: $NEURODE_EXTRA; original config: $ORIG_CONFIG"
    for s in $SEEDS; do
        # shellcheck disable=SC2086  # NEURODE_EXTRA is a list of words
        neurode simulate "$CONFIG" --out "$work/neurode_seed$s" --seed "$s" --quiet $NEURODE_EXTRA \
            | tee "$work/neurode_seed$s.log"
        "$py" "$here/lif_original.py" --checkout "$checkout" --own-network --config "$ORIG_CONFIG" \
            --seed "$s" --out "$work/original_seed$s.json" ${STEPS:+--steps "$STEPS"} \
            ${THREADS:+--threads "$THREADS"}
    done
    # shellcheck disable=SC2086
    summary rates "$work" $SEEDS
fi
