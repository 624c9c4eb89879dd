#!/usr/bin/env python3
"""Compiles every CUDA kernel source with NVRTC and ptxas, without a GPU, and fails on a broken kernel.

    python3 scripts/check_kernels.py [--arch sm_80 --arch sm_90] [--self-test] [FILE.cu ...]

With no FILE it checks every *.cu under solvers/src and models/src (relative to the repository
root, the parent of this script's folder). For each file and each architecture:

- NVRTC compiles it to PTX (options --gpu-architecture=compute_XY --fmad=false -std=c++17
  --generate-line-info), with every *.h / *.cuh of the file's folder given as an in-memory header
  under its file name, so `#include "elementwise.h"` resolves. A compile error fails the check and
  prints the NVRTC log.
- The PTX must hold no floating-point fused multiply-add (fma.* / mad.* on f16/bf16/f32/f64): with
  --fmad=false NVRTC only emits one where the source asks for it (fma(), __fma_rn, ...), and such a
  kernel rounds differently from the CPU code. Each one is named with its kernel, source line and
  PTX line.
- ptxas -arch=sm_XY -v assembles the PTX; it must succeed and no function may spill registers
  (spill stores or loads above 0 bytes).

--self-test first checks that three deliberately broken kernels are caught (a syntax error, an
explicit fma() on doubles, a kernel that spills under ptxas --maxrregcount 16) and that a clean
kernel computing a*b+c in double passes.

Tools: libnvrtc from the nvidia-cuda-nvrtc wheel and ptxas from the nvidia-cuda-nvcc wheel (13.x:
nvidia/cu13/lib/libnvrtc.so.13 and nvidia/cu13/bin/ptxas; 12.x: nvidia/cuda_nvrtc/lib and
nvidia/cuda_nvcc/bin), found through the `nvidia` namespace package on sys.path (e.g. PYTHONPATH set
by scripts/check_kernels.sh), site-packages, or ${NEURODE_KERNEL_TOOLS:-target/kernel-tools}/site.
NVRTC_LIB and PTXAS override them. Exit status 0 only if everything passes.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import importlib.util
import os
import re
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("solvers/src", "models/src")
HEADER_SUFFIXES = (".h", ".cuh")
DEFAULT_ARCHS = ("sm_80", "sm_90")

# A floating-point fused multiply-add: fma.rn.f64, fma.rn.ftz.f32, fma.rn.f32x2, mad.rn.f32, mad.f32,
# fma.rn.relu.bf16x2, ... (integer mad.lo.s32 / mad.wide.u32 are index arithmetic and allowed).
FMA_RE = re.compile(r"^\s*(?:@!?%\w+\s+)?((?:fma|mad)(?:\.\w+)*?\.(?:f16x2|f16|bf16x2|bf16|f32x2|f32|f64)\b[^;]*;?)")
ENTRY_RE = re.compile(r"^\s*(?:\.(?:visible|weak|extern)\s+)*\.entry\s+([\w$.]+)")
FUNC_RE = re.compile(r"^\s*(?:\.(?:visible|weak)\s+)*\.func\s+(?:\([^)]*\)\s*)?([\w$.]+)")
FILE_RE = re.compile(r'^\s*\.file\s+(\d+)\s+"([^"]*)"')
LOC_RE = re.compile(r"^\s*\.loc\s+(\d+)\s+(\d+)")
PTXAS_ENTRY_RE = re.compile(r"Compiling entry function '([^']+)'")
PTXAS_PROPS_RE = re.compile(r"Function properties for (\S+)")
PTXAS_SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
PTXAS_REGS_RE = re.compile(r"Used (\d+) registers")


# ---------------------------------------------------------------- locating the tools

def _candidate_roots() -> list[Path]:
    """Folders that may hold the `nvidia` namespace package of the wheels."""
    roots: list[Path] = []
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        roots += [Path(p) for p in (spec.submodule_search_locations or [])]
    tools = Path(os.environ.get("NEURODE_KERNEL_TOOLS", "target/kernel-tools"))
    if not tools.is_absolute():
        tools = ROOT / tools
    paths = [*sys.path, str(tools / "site")]
    try:
        paths += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # some virtualenvs lack getsitepackages
        pass
    for p in paths:
        if p and (Path(p) / "nvidia").is_dir():
            roots.append(Path(p) / "nvidia")
    seen, out = set(), []
    for r in roots:
        key = r.resolve()
        if key not in seen and r.is_dir():
            seen.add(key)
            out.append(r)
    return out


def _find_in_wheels(patterns: list[str]) -> Path | None:
    for pattern in patterns:
        for root in _candidate_roots():
            hits = sorted(glob.glob(str(root / pattern)))
            if hits:
                return Path(hits[0])
    return None


def find_libnvrtc() -> Path:
    env = os.environ.get("NVRTC_LIB")
    if env:
        return Path(env)
    # Not the ".alt" variant (a build for other C++ ABIs) nor the builtins.
    lib = _find_in_wheels(["cu13/lib/libnvrtc.so.*[0-9]", "cu*/lib/libnvrtc.so*", "cuda_nvrtc/lib/libnvrtc.so*",
                           "*/lib/libnvrtc.so*"])
    if lib is None:
        sys.exit("check_kernels: libnvrtc not found; install nvidia-cuda-nvrtc (scripts/check_kernels.sh does) "
                 "or set NVRTC_LIB")
    return lib


def find_ptxas() -> Path:
    env = os.environ.get("PTXAS")
    if env:
        return Path(env)
    exe = _find_in_wheels(["cu13/bin/ptxas", "cu*/bin/ptxas", "cuda_nvcc/bin/ptxas", "*/bin/ptxas"])
    if exe is None:
        sys.exit("check_kernels: ptxas not found; install nvidia-cuda-nvcc (scripts/check_kernels.sh does) "
                 "or set PTXAS")
    return exe


class Nvrtc:
    def __init__(self, path: Path):
        # libnvrtc dlopens libnvrtc-builtins.so.<major>.<minor> by name at compile time; the wheel puts it
        # beside libnvrtc, which is on no search path, so load it first into the global namespace.
        self.builtins = None
        for b in sorted(glob.glob(str(path.parent / "libnvrtc-builtins.so*"))):
            if ".alt." not in b:
                self.builtins = ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
                self.builtins_path = b
                break
        self.path = path
        self.lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        L = self.lib
        L.nvrtcGetErrorString.restype = ctypes.c_char_p
        L.nvrtcGetErrorString.argtypes = [ctypes.c_int]
        L.nvrtcVersion.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        L.nvrtcCreateProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                                         ctypes.POINTER(ctypes.c_char_p)]
        L.nvrtcCompileProgram.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        L.nvrtcGetProgramLogSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
        L.nvrtcGetProgramLog.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        L.nvrtcGetPTXSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
        L.nvrtcGetPTX.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        L.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p)]

    def version(self) -> str:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._ok(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return f"{major.value}.{minor.value}"

    def _ok(self, rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what}: {self.lib.nvrtcGetErrorString(rc).decode()} ({rc})")

    def compile(self, name: str, src: str, headers: dict[str, str], options: list[str]) -> tuple[bool, str, str]:
        """Returns (ok, log, ptx)."""
        L = self.lib
        prog = ctypes.c_void_p()
        hnames = list(headers)
        n = len(hnames)
        hsrc = (ctypes.c_char_p * max(n, 1))(*[headers[h].encode() for h in hnames])
        hinc = (ctypes.c_char_p * max(n, 1))(*[h.encode() for h in hnames])
        self._ok(L.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), n, hsrc, hinc),
                 "nvrtcCreateProgram")
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            rc = L.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self._ok(L.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            buf = ctypes.create_string_buffer(size.value)
            self._ok(L.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
            log = buf.value.decode(errors="replace").strip()
            if rc != 0:
                return False, f"{L.nvrtcGetErrorString(rc).decode()}\n{log}", ""
            self._ok(L.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
            buf = ctypes.create_string_buffer(size.value)
            self._ok(L.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
            return True, log, buf.value.decode()
        finally:
            L.nvrtcDestroyProgram(ctypes.byref(prog))


# ---------------------------------------------------------------- one check

@dataclass
class Result:
    name: str
    arch: str
    stage: str = "ok"  # "nvrtc", "ptxas", "fma", "spill" or "ok" (the first failing stage)
    errors: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)
    registers: dict[str, int] = field(default_factory=dict)
    stack: dict[str, int] = field(default_factory=dict)
    spills: int = 0
    fmas: int = 0
    libm: int = 0  # fused multiply-adds inside the nd_libm_* functions (exp / log1p)
    warnings: str = ""

    def fail(self, stage: str, msg: str) -> None:
        if self.stage == "ok":
            self.stage = stage
        self.errors.append(msg)

    def summary(self) -> str:
        regs = ", ".join(f"{k} {self.registers.get(k, '?')}" for k in self.kernels)
        stack = {k: v for k, v in self.stack.items() if v}
        extra = f"; stack frame bytes: {', '.join(f'{k} {v}' for k, v in stack.items())}" if stack else ""
        status = "ok" if self.stage == "ok" else f"FAILED ({self.stage})"
        return (f"{self.name} [{self.arch}]: {status}: {len(self.kernels)} kernels; registers: {regs or '-'}; "
                f"spills {self.spills}; fma {self.fmas} (inside nd_libm_* functions: {self.libm}){extra}")


def find_fmas(ptx: str) -> list[tuple[str, str, int, str]]:
    """Floating-point fma/mad instructions of the PTX: (function, source location, PTX line, instruction)."""
    lines = [raw.split("//", 1)[0] for raw in ptx.splitlines()]
    # NVRTC puts the .file table after the code.
    files = {m.group(1): m.group(2) for line in lines if (m := FILE_RE.match(line))}
    func, loc, out = "<module scope>", "?", []
    for lineno, line in enumerate(lines, 1):
        if m := LOC_RE.match(line):
            loc = f"{os.path.basename(files.get(m.group(1), '?'))}:{m.group(2)}"
        elif m := ENTRY_RE.match(line):
            func, loc = f"kernel {m.group(1)}", "?"
        elif m := FUNC_RE.match(line):
            func, loc = f"device function {m.group(1)}", "?"
        elif m := FMA_RE.match(line):
            out.append((func, loc, lineno, m.group(1).strip()))
    return out


def in_libm_function(func: str) -> bool:
    """Whether an fma lies in an out-of-line `nd_libm_*` device function (elementwise.h: the only
    callers of the platform's exp / log1p, whose CUDA versions fuse inside)."""
    return func.startswith("device function ") and "nd_libm_" in func


def check(nvrtc: Nvrtc, ptxas: Path, name: str, src: str, headers: dict[str, str], arch: str,
          ptxas_extra: list[str] | None = None, keep_ptx: Path | None = None) -> Result:
    res = Result(name, arch)
    m = re.fullmatch(r"sm_(\d+[a-z]?)", arch)
    if not m:
        res.fail("nvrtc", f"bad architecture {arch!r} (expected sm_XY)")
        return res
    opts = [f"--gpu-architecture=compute_{m.group(1)}", "--fmad=false", "-std=c++17", "--generate-line-info"]
    ok, log, ptx = nvrtc.compile(name, src, headers, opts)
    if not ok:
        res.fail("nvrtc", f"{name} [{arch}]: NVRTC compile failed:\n{log}")
        return res
    res.warnings = log
    res.kernels = [m.group(1) for line in ptx.splitlines() if (m := ENTRY_RE.match(line))]
    if keep_ptx is not None:
        keep_ptx.write_text(ptx)

    # One error per function and source line (a math function inlines dozens of them).
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for func, loc, lineno, insn in find_fmas(ptx):
        res.fmas += 1
        groups.setdefault((func, loc), []).append((lineno, insn))
    for (func, loc), hits in groups.items():
        lineno, insn = hits[0]
        if in_libm_function(func):
            # Inside exp / log1p (libdevice fuses), as glibc's may on the CPU; the results of
            # these functions are not promised bit for bit.
            res.fmas -= len(hits)
            res.libm += len(hits)
            continue
        more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
        res.fail("fma", f"{name} [{arch}]: fused multiply-add in {func} at {loc}: PTX line {lineno}: "
                        f"{' '.join(insn.rstrip(';').split())}{more}; the CPU code does not fuse. Write a*b+c (compiled with "
                        "--fmad=false) instead of fma()/__fma_rn; CUDA math functions (exp, tanh, log1p, pow, "
                        "sin, ...) called on that line use fma internally, whatever --fmad says")

    with tempfile.TemporaryDirectory(prefix="check_kernels.") as tmp:
        ptx_path = Path(tmp) / (Path(name).stem + f".{arch}.ptx")
        ptx_path.write_text(ptx)
        cmd = [str(ptxas), f"-arch={arch}", "-v", *(ptxas_extra or []), "-o", os.devnull, str(ptx_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        res.fail("ptxas", f"{name} [{arch}]: ptxas failed ({proc.returncode}):\n{out.strip()}")
        return res
    current = None
    for line in out.splitlines():
        if m := PTXAS_ENTRY_RE.search(line):
            current = m.group(1)
        elif m := PTXAS_PROPS_RE.search(line):
            current = m.group(1)
        elif m := PTXAS_SPILL_RE.search(line):
            stack, stores, loads = map(int, m.groups())
            res.stack[current or "?"] = stack
            if stores or loads:
                res.spills += stores + loads
                kind = "kernel" if current in res.kernels else "function"
                res.fail("spill", f"{name} [{arch}]: {kind} {current} spills registers: {stores} bytes spill "
                                  f"stores, {loads} bytes spill loads")
        elif m := PTXAS_REGS_RE.search(line):
            res.registers[current or "?"] = int(m.group(1))
    missing = [k for k in res.kernels if k not in res.registers]
    if missing:
        res.fail("ptxas", f"{name} [{arch}]: no register count in the ptxas -v output for {', '.join(missing)}:\n"
                          f"{out.strip()}")
    return res


def headers_beside(cu: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(cu.parent.iterdir())
            if p.is_file() and p.suffix in HEADER_SUFFIXES}


# ---------------------------------------------------------------- self-test

SELF_TEST_SYNTAX = r"""
extern "C" __global__ void broken(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x
    if (i < n) y[i] = x[i];
}
"""

SELF_TEST_FMA = r"""
extern "C" __global__ void fused(const double* a, const double* b, double* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = fma(a[i], b[i], c[i]);
}
"""


# An explicit fma in an out-of-line helper that is not one of the nd_libm_* functions.
SELF_TEST_FMA_HELPER = r"""
__device__ __noinline__ double helper(double a, double b, double c) { return fma(a, b, c); }
extern "C" __global__ void fused_helper(const double* a, const double* b, double* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = helper(a[i], b[i], c[i]);
}
"""


# The allowance: exp inside an nd_libm_* function passes (libdevice fuses inside).
SELF_TEST_LIBM = r"""
__device__ __noinline__ double nd_libm_exp(double x) { return exp(x); }
extern "C" __global__ void libm(const double* a, double* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = nd_libm_exp(a[i]) + a[i];
}
"""


SELF_TEST_CLEAN = r"""
__device__ __forceinline__ double madd(double a, double b, double c) { return a * b + c; }
extern "C" __global__ void clean(const double* a, const double* b, double* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = madd(a[i], b[i], c[i]);
}
"""


def self_test_spill_source(n: int = 48) -> str:
    """A kernel keeping n doubles live across a loop: far over 16 registers."""
    decl = "\n".join(f"    double a{k} = x[(i + {k}) % n];" for k in range(n))
    step = "\n".join(f"        a{k} = a{k} * a{(k + 1) % n} + v;" for k in range(n))
    total = " + ".join(f"a{k}" for k in range(n))
    return f"""
extern "C" __global__ void hungry(const double* x, double* y, int n, int steps) {{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
{decl}
    for (int t = 0; t < steps; ++t) {{
        double v = x[t % n];
{step}
    }}
    y[i] = {total};
}}
"""


def self_test(nvrtc: Nvrtc, ptxas: Path, arch: str) -> bool:
    cases = [
        ("self-test/syntax_error.cu", SELF_TEST_SYNTAX, [], "nvrtc"),
        ("self-test/explicit_fma.cu", SELF_TEST_FMA, [], "fma"),
        ("self-test/fma_in_helper.cu", SELF_TEST_FMA_HELPER, [], "fma"),
        ("self-test/libm.cu", SELF_TEST_LIBM, [], "ok"),
        ("self-test/spills.cu", self_test_spill_source(), ["--maxrregcount", "16"], "spill"),
        # The control: a*b+c stays unfused under --fmad=false and this kernel passes.
        ("self-test/clean.cu", SELF_TEST_CLEAN, [], "ok"),
    ]
    ok = True
    for name, src, extra, expected in cases:
        res = check(nvrtc, ptxas, name, src, {}, arch, ptxas_extra=extra)
        caught = res.stage == expected
        ok &= caught
        if expected == "ok":
            verdict = "passes as it should" if caught else f"WRONGLY REJECTED ({res.stage})"
        else:
            verdict = "caught" if caught else f"NOT CAUGHT (expected a {expected} failure, got {res.stage})"
        first = res.errors[0].splitlines() if res.errors else [res.summary()]
        detail = " | ".join(l.strip() for l in first[:4] if l.strip())
        print(f"self-test {name} [{arch}]: {verdict}: {detail}")
    return ok


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", action="append", help="sm_XY target (repeatable; default sm_80 and sm_90)")
    ap.add_argument("--self-test", action="store_true", help="first check that broken kernels are caught")
    ap.add_argument("--keep-ptx", type=Path, help="write the PTX of each file and arch into this folder")
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    archs = args.arch or list(DEFAULT_ARCHS)

    t0 = time.monotonic()
    libpath, ptxas = find_libnvrtc(), find_ptxas()
    nvrtc = Nvrtc(libpath)
    pv = subprocess.run([str(ptxas), "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    pv = [l for l in pv if "release" in l] or pv or ["?"]
    print(f"check_kernels: NVRTC {nvrtc.version()} ({libpath}); ptxas: {pv[-1]} ({ptxas})")

    ok = True
    if args.self_test:
        if not self_test(nvrtc, ptxas, archs[0]):
            print("error: check_kernels: SELF-TEST FAILED")
            ok = False

    files = args.files or sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.cu"))
    if not files:
        print(f"check_kernels: no *.cu files under {', '.join(SOURCE_DIRS)}")
    if args.keep_ptx:
        args.keep_ptx.mkdir(parents=True, exist_ok=True)
    for cu in files:
        try:
            shown = str(cu.resolve().relative_to(ROOT))
        except ValueError:
            shown = str(cu)
        try:
            src, headers = cu.read_text(), headers_beside(cu)
        except OSError as e:
            print(f"error: {shown}: cannot read: {e}")
            ok = False
            continue
        for arch in archs:
            keep = args.keep_ptx / f"{cu.stem}.{arch}.ptx" if args.keep_ptx else None
            res = check(nvrtc, ptxas, shown, src, headers, arch, keep_ptx=keep)
            if res.warnings:
                print(f"{shown} [{arch}]: NVRTC warnings:\n{res.warnings}")
            for err in res.errors:
                print(f"error: {err}")
            print(res.summary())
            ok &= res.stage == "ok"
    print(f"check_kernels: {'passed' if ok else 'FAILED'} ({len(files)} files x {len(archs)} archs, "
          f"{time.monotonic() - t0:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
