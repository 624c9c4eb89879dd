#!/usr/bin/env bash
# The GPU checks of the CUDA backend, in two halves (the lent GPU machine has no Rust and no
# network):
#   bash scripts/gpu_check.sh build   # here: builds the CUDA test and bench binaries into gpu-bin/
#   bash scripts/gpu_check.sh run     # there (carry gpu-bin): runs them and prints every figure
# The tests: solvers/tests/backends.rs (every seam operation on the device, the activations'
# bits against the CPU's). The bench: benches/backend_step.rs (one Tsit5 step of N = 500,
# batch 4,096 from seam operations against its GEMMs alone, f32 and f64, on CUDA and on the
# machine's CPU).
# `run` fails if a CUDA test skips (on a GPU machine a skip means the backend could not start)
# or fails, and stops after 280 s. It needs the CUDA 13 driver, libnvrtc and libcublas on the
# library path.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=gpu-bin

case "${1:-}" in
build)
    rm -rf "$bin" && mkdir -p "$bin"
    { cargo test -p neurode-solvers --features cuda --release --no-run --test backends \
        --message-format=json
      cargo bench --features cuda --no-run --bench backend_step --message-format=json; } |
        python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] in (["test"], ["bench"]):
        shutil.copy(m["executable"], sys.argv[1] + "/" + m["target"]["name"])
        print("built", m["target"]["name"])
' "$bin"
    ls -l "$bin"
    ;;
run)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    status=0
    for t in "$bin"/backends; do
        echo "== $t"
        log=$(mktemp)
        if ! NEURODE_REQUIRE_CUDA=1 timeout 280 "$t" --nocapture --test-threads=1 2>&1 | tee "$log"; then
            status=1
        fi
        if grep -q "skipping" "$log"; then
            echo "error: a CUDA test skipped on the GPU machine (see above)" >&2
            status=1
        fi
    done
    echo "== $bin/backend_step"
    timeout 120 "$bin/backend_step" --backend cuda --n 500 --batch 4096 --reps 7 || status=1
    timeout 60 "$bin/backend_step" --backend cpu --n 500 --batch 4096 --reps 3 || status=1
    exit $status
    ;;
*)
    echo "usage: bash scripts/gpu_check.sh build|run" >&2
    exit 2
    ;;
esac
