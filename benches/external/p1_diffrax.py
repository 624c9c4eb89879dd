#!/usr/bin/env python3
"""Peer benchmark: diffrax on problem P1 (low-rank tanh RNN, N=500, batch 32).

P1 is specified in shared/reference/benchmark-problems.md (sections 0 and 1); the
inputs are rebuilt (p1_common.py) bit-exactly from the counter-based SplitMix64 generator.
Timings exclude compilation: each case is jitted, warmed up, then the median of
--reps runs (each ended with block_until_ready) is reported.
Usage: python p1_diffrax.py [--reps 9] [--threads N]
"""
import argparse, json, math, os, statistics, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=9, help="timed runs per case (>=7)")
ap.add_argument("--threads", type=int, default=0,
                help="XLA intra-op threads (0 = XLA default: all cores); best effort, "
                     "jax has no documented thread limit")
cli = ap.parse_args()
if cli.threads > 0:  # must be set before jax is imported; also honours XLA_FLAGS
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen=true"
                               f" intra_op_parallelism_threads={cli.threads}").strip()

import numpy as np
# Generator, inputs and model, shared with grid_diffrax.py (p1_common imports jax and
# enables x64, so it is imported only after XLA_FLAGS is set):
from p1_common import self_test, build_p1, vf, make_solve, make_loss_grad, timed, T1, T_ON
import jax
import jax.numpy as jnp
import diffrax as dfx

def count_nfe(method, tdt, arrs):
    """Counts RHS evaluations in one (untimed) solve with a host callback."""
    n = [0]
    def bump():
        n[0] += 1
    def counted(t, x, args):
        jax.debug.callback(bump)
        return vf(t, x, args)
    jax.block_until_ready(jax.jit(make_solve(method, tdt, counted))(*arrs).ys)
    return n[0]

def median_ms(fn, *args):
    """(median_ms, min_ms) of --reps (at least 7) runs after compile and warm-up."""
    med, mn, _ = timed(fn, *args, reps=max(cli.reps, 7))
    return med, mn

# ------------------------------------------------------------------ main ----
def main():
    self_test()
    arrs64 = build_p1()
    C, M, Nv, B, x0, u = arrs64
    # Euler grid check: s(t_k) switches exactly at k = 150 (f64 and f32 times)
    for dt in (np.float64, np.float32):
        tk = lambda k: dt(0.0) + (dt(T1) - dt(0.0)) * (dt(k) / dt(1000))
        assert tk(149) < T_ON <= tk(150), (dt, tk(149), tk(150))
    print(f"# jax {jax.__version__} diffrax {dfx.__version__} numpy {np.__version__} "
          f"backend {jax.default_backend()} cpus {os.cpu_count()} "
          f"XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}' reps {max(cli.reps, 7)}")
    # exact (math.fsum, order independent) sums of the inputs for cross-checking
    sums = {k: math.fsum(a.ravel()) for k, a in zip(("C", "M", "Nv", "B", "x0", "u"), arrs64)}
    print("diffrax p1 inputs " + " ".join(f"sum_{k}={v:.17g}" for k, v in sums.items()))
    results = {"inputs": sums, "cases": []}
    for prec, ydt, tdt in (("f64", np.float64, jnp.float64), ("f32", np.float32, jnp.float32)):
        arrs = tuple(jnp.asarray(a.astype(ydt)) for a in arrs64)
        for method in ("tsit5", "euler"):
            case = f"{method}_{prec}"
            solve = make_solve(method, tdt)
            fwd = jax.jit(solve)
            sol = fwd(*arrs)
            xT = np.asarray(sol.ys[-1], dtype=np.float64)
            assert sol.ys.dtype == ydt and np.all(np.isfinite(xT)), (sol.ys.dtype, case)
            st = {k: int(sol.stats[k]) for k in ("num_steps", "num_accepted_steps",
                                                 "num_rejected_steps")}
            nfe = count_nfe(method, tdt, arrs)
            fwd_ms, fwd_min = median_ms(lambda *a: fwd(*a).ys, *arrs)
            rec = dict(case=case, mode="forward", median_ms=fwd_ms, min_ms=fwd_min, **st,
                       nfe=nfe, sum_x100=math.fsum(xT.ravel()),
                       loss=0.5 * math.fsum((xT * xT).ravel()))
            results["cases"].append(rec)
            print(f"diffrax p1 {case} forward median_ms={fwd_ms:.3f} min_ms={fwd_min:.3f} "
                  f"steps={st['num_steps']} accepted={st['num_accepted_steps']} "
                  f"rejected={st['num_rejected_steps']} nfe={nfe} "
                  f"sum_x100={rec['sum_x100']:.17g} loss={rec['loss']:.17g}")
            grad = make_loss_grad(solve)
            gargs = (arrs[1], arrs[2], arrs[3], arrs[4], arrs[0], arrs[5])
            g = grad(*gargs)
            gsum = [math.fsum(np.asarray(gi, dtype=np.float64).ravel()) for gi in g]
            g_ms, g_min = median_ms(grad, *gargs)
            results["cases"].append(dict(case=case, mode="gradient", median_ms=g_ms,
                                         min_ms=g_min, grad_sums_M_Nv_B_x0=gsum))
            print(f"diffrax p1 {case} gradient median_ms={g_ms:.3f} min_ms={g_min:.3f} "
                  f"steps={st['num_steps']} grad_sums(M,Nv,B,x0)="
                  + ",".join(f"{v:.10g}" for v in gsum))
    results["versions"] = dict(jax=jax.__version__, diffrax=dfx.__version__,
                               numpy=np.__version__, python=sys.version.split()[0])
    print("JSON " + json.dumps(results))

if __name__ == "__main__":
    main()
