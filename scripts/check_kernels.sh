#!/usr/bin/env bash
# Compiles every CUDA kernel source (*.cu under solvers/src and models/src, or the files given) with
# NVRTC 13.0 and ptxas from PyPI, without a GPU, and fails on a compile error, a register spill or a
# fused multiply-add (see scripts/check_kernels.py):
#   bash scripts/check_kernels.sh [--arch sm_80 --arch sm_90] [FILE.cu ...]
# Installs the wheels once into ${NEURODE_KERNEL_TOOLS:-target/kernel-tools}/site (relative to the
# repository root unless absolute; about 330 MB). Where they cannot be installed the check is skipped
# with a note, except with CI=true, where that is an error.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${NEURODE_KERNEL_TOOLS:-target/kernel-tools}"
case "$tools" in
    /*) ;;
    *) tools="$root/$tools" ;;
esac
# --no-deps: nvidia-cuda-nvcc pulls unpinned nvidia-nvvm / -cuda-crt / -cuda-runtime (another 13.x
# release, about 180 MB) that neither NVRTC nor ptxas needs.
wheels=(nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-nvcc==13.0.88)
stamp="$tools/site/.installed"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${wheels[*]}" ]]; then
    echo "check_kernels: installing ${wheels[*]} into $tools/site" >&2
    mkdir -p "$tools"
    rm -rf "$tools/site.new"
    if PIP_ROOT_USER_ACTION=ignore timeout 300 python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$tools/site.new" "${wheels[@]}" >&2; then
        rm -rf "$tools/site"
        mv "$tools/site.new" "$tools/site"
        echo "${wheels[*]}" >"$stamp"
    else
        rm -rf "$tools/site.new"
        if [[ "${CI:-}" == "true" ]]; then
            echo "error: check_kernels: could not install ${wheels[*]} (pip failed or timed out)" >&2
            exit 1
        fi
        echo "note: kernel check skipped: could not install ${wheels[*]} from PyPI (pip failed or timed" \
            "out after 300 s; offline?). Set CI=true to make this an error." >&2
        exit 0
    fi
fi

export PYTHONPATH="$tools/site${PYTHONPATH:+:$PYTHONPATH}"
exec python3 "$root/scripts/check_kernels.py" --self-test "$@"
