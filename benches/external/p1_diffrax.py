#!/usr/bin/env python3
"""Peer benchmark: diffrax on problem P1 (low-rank tanh RNN, N=500, batch 32).

P1 is specified in shared/reference/benchmark-problems.md (sections 0 and 1); the
inputs are rebuilt here bit-exactly from the counter-based SplitMix64 generator.
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
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import diffrax as dfx

# ---------------------------------------------------------------- inputs ----
MASK = (1 << 64) - 1
G1, G2, G3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

def splitmix64_int(z):
    """Scalar reference with Python ints (explicit mod 2^64)."""
    z = (z + G1) & MASK
    z = ((z ^ (z >> 30)) * G2) & MASK
    z = ((z ^ (z >> 27)) * G3) & MASK
    return z ^ (z >> 31)

def splitmix64_np(z):
    """Vectorised version; numpy uint64 array arithmetic wraps mod 2^64."""
    z = z + np.uint64(G1)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(G2)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(G3)
    return z ^ (z >> np.uint64(31))

def U(s, n):
    """U(s, k) for k = 0..n-1: top 53 bits scaled to [0, 2), minus 1 (all exact)."""
    z = splitmix64_np((np.uint64(s) << np.uint64(32)) + np.arange(n, dtype=np.uint64))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0

def self_test():
    assert splitmix64_int(0) == 0xE220A8397B1DCDAF
    assert int(splitmix64_np(np.zeros(1, np.uint64))[0]) == 0xE220A8397B1DCDAF
    want = [float.fromhex(h) for h in ("0x1.020686b910980p-4", "0x1.f9029830e9e78p-2",
                                       "0x1.4eb2f82052458p-1", "-0x1.711da6d74ad08p-3")]
    assert U(257, 4).tolist() == want, U(257, 4)
    ks = [0, 1, 12345, 249999]  # vectorised vs Python-int path
    assert all(int(splitmix64_np(np.array([(257 << 32) + k], np.uint64))[0])
               == splitmix64_int((257 << 32) + k) for k in ks)

def build_p1(p=1, N=500, nb=32):
    """Arrays for problem id p, in the order/association the spec prescribes."""
    s3 = math.sqrt(3.0)
    C = U(256 * p + 1, N * N).reshape(N, N) * math.sqrt(3.0 / N)
    M = U(256 * p + 2, N * 2).reshape(N, 2) * s3
    Nv = 2.0 * M + U(256 * p + 3, N * 2).reshape(N, 2) * s3
    B = U(256 * p + 4, N * 4).reshape(N, 4) * s3
    x0 = 0.5 * U(256 * p + 5, nb * N).reshape(nb, N)
    coh = (-0.5, -0.25, 0.25, 0.5)
    u = np.array([[coh[(b // 2) % 4], coh[(b // 8) % 4], float(b % 2 == 0), float(b % 2 == 1)]
                  for b in range(nb)])
    return C, M, Nv, B, x0, u

N, G, TAU, T_ON, T1 = 500, 0.8, 1.0, 15.0, 100.0
TS = [10.0 * i for i in range(1, 11)]  # save times 10, 20, ..., 100

# ----------------------------------------------------------------- model ----
def vf(t, x, args):
    """Row-vector form: one row of x per trial; J = g C + M Nv^T / N never formed."""
    C, M, Nv, B, u = args
    p = jnp.tanh(x)
    s = (t >= T_ON).astype(x.dtype)  # input switch
    return (-x + G * (p @ C.T) + ((p @ Nv) @ M.T) / N + s * (u @ B.T)) / TAU

def make_solve(method, tdt, field=vf):
    """Returns solve(C, M, Nv, B, x0, u) -> Solution. tdt = time dtype (state follows it)."""
    T = lambda v: jnp.asarray(v, dtype=tdt)
    term = dfx.ODETerm(field)
    def solve(C, M, Nv, B, x0, u):
        common = dict(args=(C, M, Nv, B, u), saveat=dfx.SaveAt(ts=T(TS)))
        if method == "tsit5":
            ctrl = dfx.PIDController(rtol=1e-6, atol=1e-8, jump_ts=T([T_ON]))
            return dfx.diffeqsolve(term, dfx.Tsit5(), T(0.0), T(T1), None, x0,
                                   stepsize_controller=ctrl, max_steps=100_000, **common)
        # Euler: ConstantStepSize places t_k = 0 + 100*(k/1000), so t_150 == 15 exactly
        return dfx.diffeqsolve(term, dfx.Euler(), T(0.0), T(T1), T(0.1), x0,
                               stepsize_controller=dfx.ConstantStepSize(),
                               max_steps=1000, **common)
    return solve

def make_loss_grad(solve):
    def loss(M, Nv, B, x0, C, u):  # L = 0.5 * sum x(100)^2, C held fixed
        return 0.5 * jnp.sum(solve(C, M, Nv, B, x0, u).ys[-1] ** 2)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))

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
    jax.block_until_ready(fn(*args))  # compile + warm-up
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(max(cli.reps, 7)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)

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
