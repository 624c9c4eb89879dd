#!/usr/bin/env python3
"""Peer benchmark: diffrax on the P1 family over a grid, and a work-precision sweep.

The P1 family is P1 of shared/reference/benchmark-problems.md (sections 0 and 1) with N
units and nb trials (problem id 1's streams, g = 0.8, tau = 1, input on at t = 15,
t in [0, 100], saves at 10..100); inputs are built bit-exactly in float64 (p1_common.py)
and cast for f32. Tsit5 with PIDController(rtol, atol, jump_ts=[15]), dt0=None.
Timings exclude compilation: each cell is jitted, warmed up, then the median of --reps
runs (each ended with block_until_ready) is reported.

Grid:            python grid_diffrax.py [--sizes 100,500,2000] [--trials 1,32,256]
                     [--precisions f64,f32] [--modes forward,gradient] [--reps 7]
                     [--rtol 1e-6 --atol 1e-8] [--max-seconds S] [--threads T] [--json PATH]
Work-precision:  python grid_diffrax.py --work-precision [--sizes 500 --trials 32]
                     [--rtols 1e-3,...,1e-10 --atol-ratio 1e-2] [--precisions f64]
                     [--save-ref ref.npy] [--save-states DIR]
"""
import argparse, json, math, os, statistics, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", default=None, help="unit counts N (grid: 100,500,2000; wp: 500)")
ap.add_argument("--trials", default=None, help="trial counts nb (grid: 1,32,256; wp: 32)")
ap.add_argument("--precisions", default=None, help="f64,f32 (grid default); wp default f64")
ap.add_argument("--modes", default="forward,gradient", help="grid: forward,gradient")
ap.add_argument("--reps", type=int, default=7, help="timed runs per cell")
ap.add_argument("--rtol", type=float, default=1e-6, help="grid: Tsit5 rtol")
ap.add_argument("--atol", type=float, default=1e-8, help="grid: Tsit5 atol")
ap.add_argument("--max-steps", type=int, default=100_000,
                help="diffrax max_steps (also sets the gradient's checkpointing)")
ap.add_argument("--max-seconds", type=float, default=0.0,
                help="stop a cell's reps once a single run took more than this (>= 3 reps "
                     "always; 0 = never)")
ap.add_argument("--threads", type=int, default=0,
                help="XLA intra-op threads (0 = XLA default: all cores); best effort, "
                     "jax has no documented thread limit")
ap.add_argument("--json", default=None, help="write all results as JSON to this path")
ap.add_argument("--work-precision", action="store_true",
                help="work-precision sweep against a Dopri8 reference instead of the grid")
ap.add_argument("--rtols", default="1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-9,1e-10",
                help="wp: Tsit5 rtols")
ap.add_argument("--f32-min-rtol", type=float, default=1e-8,
                help="wp: f32 rtols below this are skipped (f32 round-off stalls the "
                     "controller: ~5e4 steps at 1e-9, max_steps reached at 1e-10)")
ap.add_argument("--atol-ratio", type=float, default=1e-2, help="wp: atol = rtol * ratio")
ap.add_argument("--ref-rtol", type=float, default=1e-13, help="wp: Dopri8 reference rtol")
ap.add_argument("--ref-atol", type=float, default=1e-15, help="wp: Dopri8 reference atol")
ap.add_argument("--ref-check", action="store_true",
                help="wp: also solve Dopri8 at 10x the reference rtol and atol and print its "
                     "error against the reference (how settled the reference is)")
ap.add_argument("--save-ref", default=None, help="wp: write the reference saves (10, nb, N) f64")
ap.add_argument("--save-states", default=None,
                help="wp: write DIR/diffrax_<prec>_rtol<rtol>.npy, shape (10, nb, N), f64")
cli = ap.parse_args()
if cli.threads > 0:  # must be set before jax is imported; also honours XLA_FLAGS
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen=true"
                               f" intra_op_parallelism_threads={cli.threads}").strip()

import numpy as np
# Generator, inputs and model (p1_common imports jax with x64 enabled: after XLA_FLAGS).
from p1_common import self_test, build_p1, make_solve, make_loss_grad
from p1_common import timed as timed_runs
from wp_score import trial_errors
import jax
import jax.numpy as jnp
import diffrax as dfx

WP = cli.work_precision
ints = lambda s: [int(v) for v in s.split(",") if v]
SIZES = ints(cli.sizes or ("500" if WP else "100,500,2000"))
TRIALS = ints(cli.trials or ("32" if WP else "1,32,256"))
PRECS = [p for p in (cli.precisions or ("f64" if WP else "f64,f32")).split(",") if p]
MODES = [m for m in cli.modes.split(",") if m]
DT = {"f64": (np.float64, jnp.float64), "f32": (np.float32, jnp.float32)}
assert all(p in DT for p in PRECS), PRECS
assert all(m in ("forward", "gradient") for m in MODES), MODES

def timed(fn, *args):
    """(median_ms, min_ms, reps) with --reps (at least 3) and --max-seconds."""
    return timed_runs(fn, *args, reps=max(cli.reps, 3), max_seconds=cli.max_seconds)

def stats(sol):
    return {k: int(sol.stats[k]) for k in ("num_steps", "num_accepted_steps",
                                         "num_rejected_steps")}

def inputs(N, nb):
    arrs64 = build_p1(1, N, nb)
    print(f"diffrax grid inputs N={N} nb={nb} sum_C={math.fsum(arrs64[0].ravel()):.17g} "
          f"sum_x0={math.fsum(arrs64[4].ravel()):.17g}", flush=True)
    return arrs64

def fmt(x):
    """Short exact-enough float text for rtols: 1e-4, 2.5e-7 (used in lines and names)."""
    m, e = f"{x:e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"

def fsum(a):
    return math.fsum(np.asarray(a, dtype=np.float64).ravel())

def header():
    print(f"# jax {jax.__version__} diffrax {dfx.__version__} numpy {np.__version__} "
          f"backend {jax.default_backend()} cpus {os.cpu_count()} "
          f"XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}' reps {max(cli.reps, 3)} "
          f"max_seconds {cli.max_seconds} max_steps {cli.max_steps}", flush=True)

def versions():
    return dict(jax=jax.__version__, diffrax=dfx.__version__, numpy=np.__version__,
                python=sys.version.split()[0], cpus=os.cpu_count(),
                xla_flags=os.environ.get("XLA_FLAGS", ""))

# ------------------------------------------------------------------ grid ----
def grid():
    print(f"# grid: Tsit5 rtol={cli.rtol:g} atol={cli.atol:g} sizes={SIZES} trials={TRIALS} "
          f"precisions={PRECS} modes={MODES}", flush=True)
    cells = []
    for N in SIZES:
        for nb in TRIALS:
            arrs64 = inputs(N, nb)
            for prec in PRECS:
                ydt, tdt = DT[prec]
                arrs = tuple(jnp.asarray(a.astype(ydt)) for a in arrs64)
                solve = make_solve("tsit5", tdt, rtol=cli.rtol, atol=cli.atol,
                                   max_steps=cli.max_steps)
                fwd = jax.jit(solve)
                try:
                    sol = fwd(*arrs)  # untimed: step counts and forward check
                    st = stats(sol)
                except Exception as e:  # e.g. max_steps reached
                    for mode in MODES:
                        print(f"diffrax grid N={N} nb={nb} prec={prec} mode={mode} "
                              f"median_ms=nan min_ms=nan reps=0 steps=0 accepted=0 "
                              f"rejected=0 check=nan error={type(e).__name__}", flush=True)
                        cells.append(dict(N=N, nb=nb, prec=prec, mode=mode, error=str(e)))
                    continue
                for mode in MODES:
                    if mode == "forward":
                        med, mn, k = timed(lambda *a: fwd(*a).ys, *arrs)
                        check = fsum(sol.ys[-1])
                    else:
                        grad = make_loss_grad(solve)
                        gargs = (arrs[1], arrs[2], arrs[3], arrs[4], arrs[0], arrs[5])
                        g = grad(*gargs)
                        check = fsum(g[3])  # dL/dx0
                        med, mn, k = timed(grad, *gargs)
                    rec = dict(N=N, nb=nb, prec=prec, mode=mode, median_ms=med, min_ms=mn,
                               reps=k, steps=st["num_steps"],
                               accepted=st["num_accepted_steps"],
                               rejected=st["num_rejected_steps"], check=check)
                    cells.append(rec)
                    print(f"diffrax grid N={N} nb={nb} prec={prec} mode={mode} "
                          f"median_ms={med:.3f} min_ms={mn:.3f} reps={k} steps={rec['steps']} "
                          f"accepted={rec['accepted']} rejected={rec['rejected']} "
                          f"check={check:.17g}", flush=True)
    return dict(kind="grid", rtol=cli.rtol, atol=cli.atol, cells=cells)

# -------------------------------------------------------- work-precision ----
def work_precision():
    rtols = [float(v) for v in cli.rtols.split(",") if v]
    print(f"# work-precision: Tsit5 rtol in {','.join(map(fmt, rtols))}, atol = rtol*"
          f"{fmt(cli.atol_ratio)}; reference Dopri8 f64 rtol={fmt(cli.ref_rtol)} "
          f"atol={fmt(cli.ref_atol)}; f32 min rtol {fmt(cli.f32_min_rtol)}", flush=True)
    if cli.save_states:
        os.makedirs(cli.save_states, exist_ok=True)
    runs = []
    for N in SIZES:
        for nb in TRIALS:
            arrs64 = inputs(N, nb)
            a64 = tuple(jnp.asarray(a) for a in arrs64)
            ref_solve = jax.jit(make_solve("dopri8", jnp.float64, rtol=cli.ref_rtol,
                                           atol=cli.ref_atol, max_steps=cli.max_steps))
            t0 = time.perf_counter()
            rsol = jax.block_until_ready(ref_solve(*a64))
            ref_s = time.perf_counter() - t0
            ref = np.asarray(rsol.ys, dtype=np.float64)
            rst = stats(rsol)
            print(f"diffrax wp ref N={N} nb={nb} method=dopri8 rtol={fmt(cli.ref_rtol)} "
                  f"atol={fmt(cli.ref_atol)} steps={rst['num_steps']} "
                  f"accepted={rst['num_accepted_steps']} rejected={rst['num_rejected_steps']} "
                  f"seconds_incl_compile={ref_s:.2f} sum_x100={fsum(ref[-1]):.17g}", flush=True)
            if cli.ref_check:
                chk = jax.jit(make_solve("dopri8", jnp.float64, rtol=10 * cli.ref_rtol,
                                         atol=10 * cli.ref_atol, max_steps=cli.max_steps))
                e = trial_errors(chk(*a64).ys, ref)
                print(f"diffrax wp refcheck N={N} nb={nb} method=dopri8 "
                      f"rtol={fmt(10 * cli.ref_rtol)} atol={fmt(10 * cli.ref_atol)} "
                      f"worst_err={e.max():.6e} median_err={np.median(e):.6e}", flush=True)
            # one (N, nb): the names as given; several: _N<N>_nb<nb> appended
            tag = "" if len(SIZES) * len(TRIALS) == 1 else f"_N{N}_nb{nb}"
            if cli.save_ref:
                np.save(cli.save_ref.removesuffix(".npy") + tag + ".npy", ref)
            for prec in PRECS:
                ydt, tdt = DT[prec]
                arrs = tuple(jnp.asarray(a.astype(ydt)) for a in arrs64)
                for rtol in rtols:
                    atol = rtol * cli.atol_ratio
                    fwd = jax.jit(make_solve("tsit5", tdt, rtol=rtol, atol=atol,
                                             max_steps=cli.max_steps))
                    head = (f"diffrax wp N={N} nb={nb} prec={prec} rtol={fmt(rtol)} "
                            f"atol={fmt(atol)}")
                    if prec == "f32" and rtol < cli.f32_min_rtol:
                        print(f"{head} median_ms=nan steps=0 worst_err=nan median_err=nan "
                              f"skipped=below_f32_min_rtol", flush=True)
                        continue
                    try:
                        sol = fwd(*arrs)
                        ys = np.asarray(sol.ys, dtype=np.float64)
                        if not np.all(np.isfinite(ys)):
                            raise FloatingPointError("non-finite states")
                    except Exception as e:
                        print(f"{head} median_ms=nan steps=0 worst_err=nan median_err=nan "
                              f"error={type(e).__name__}", flush=True)
                        runs.append(dict(N=N, nb=nb, prec=prec, rtol=rtol, atol=atol,
                                         error=str(e)))
                        continue
                    st = stats(sol)
                    err = trial_errors(ys, ref)
                    med, mn, k = timed(lambda *a: fwd(*a).ys, *arrs)
                    rec = dict(N=N, nb=nb, prec=prec, rtol=rtol, atol=atol, median_ms=med,
                               min_ms=mn, reps=k, steps=st["num_steps"],
                               accepted=st["num_accepted_steps"],
                               rejected=st["num_rejected_steps"],
                               worst_err=float(err.max()), median_err=float(np.median(err)),
                               trial_errs=err.tolist())
                    runs.append(rec)
                    print(f"{head} median_ms={med:.3f} steps={rec['steps']} "
                          f"worst_err={rec['worst_err']:.6e} median_err={rec['median_err']:.6e} "
                          f"min_ms={mn:.3f} reps={k}", flush=True)
                    if cli.save_states:
                        np.save(os.path.join(cli.save_states,
                                             f"diffrax_{prec}_rtol{fmt(rtol)}{tag}.npy"), ys)
    return dict(kind="work-precision", atol_ratio=cli.atol_ratio, ref_rtol=cli.ref_rtol,
                ref_atol=cli.ref_atol, runs=runs)

# ------------------------------------------------------------------ main ----
def main():
    self_test()
    header()
    res = work_precision() if WP else grid()
    res["versions"] = versions()
    if cli.json:
        with open(cli.json, "w") as f:
            json.dump(res, f, indent=1)

if __name__ == "__main__":
    main()
