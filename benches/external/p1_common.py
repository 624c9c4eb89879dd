"""Shared pieces of the P1-family peer scripts (p1_diffrax.py, grid_diffrax.py).

The inputs of shared/reference/benchmark-problems.md (sections 0 and 1), rebuilt
bit-exactly from the counter-based SplitMix64 generator, and the diffrax model of
the P1 family (P1's formulas with N units and nb trials).
This module imports jax: import it only after XLA_FLAGS has been set.
"""
import math

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

G, TAU, T_ON, T1 = 0.8, 1.0, 15.0, 100.0
TS = [10.0 * i for i in range(1, 11)]  # save times 10, 20, ..., 100

# ----------------------------------------------------------------- model ----
def vf(t, x, args):
    """Row-vector form: one row of x per trial; J = g C + M Nv^T / N never formed.
    N (the unit count) is the static row count of M, a Python int at trace time."""
    C, M, Nv, B, u = args
    p = jnp.tanh(x)
    s = (t >= T_ON).astype(x.dtype)  # input switch
    return (-x + G * (p @ C.T) + ((p @ Nv) @ M.T) / M.shape[0] + s * (u @ B.T)) / TAU

SOLVERS = {"tsit5": dfx.Tsit5, "dopri8": dfx.Dopri8}

def make_solve(method, tdt, field=vf, rtol=1e-6, atol=1e-8, max_steps=100_000):
    """Returns solve(C, M, Nv, B, x0, u) -> Solution. tdt = time dtype (state follows it).
    method: "tsit5" or "dopri8" (adaptive, PIDController with jump_ts=[15], dt0=None,
    saves at 10..100) or "euler" (dt = 0.1, 1000 steps; rtol/atol/max_steps unused)."""
    T = lambda v: jnp.asarray(v, dtype=tdt)
    term = dfx.ODETerm(field)
    def solve(C, M, Nv, B, x0, u):
        common = dict(args=(C, M, Nv, B, u), saveat=dfx.SaveAt(ts=T(TS)))
        if method in SOLVERS:
            ctrl = dfx.PIDController(rtol=rtol, atol=atol, jump_ts=T([T_ON]))
            return dfx.diffeqsolve(term, SOLVERS[method](), T(0.0), T(T1), None, x0,
                                   stepsize_controller=ctrl, max_steps=max_steps, **common)
        # Euler: ConstantStepSize places t_k = 0 + 100*(k/1000), so t_150 == 15 exactly
        return dfx.diffeqsolve(term, dfx.Euler(), T(0.0), T(T1), T(0.1), x0,
                               stepsize_controller=dfx.ConstantStepSize(),
                               max_steps=1000, **common)
    return solve

def make_loss_grad(solve):
    """jit(grad) of L = 0.5 * sum x(100)^2 w.r.t. (M, Nv, B, x0), C and u held fixed;
    called as grad(M, Nv, B, x0, C, u)."""
    def loss(M, Nv, B, x0, C, u):
        return 0.5 * jnp.sum(solve(C, M, Nv, B, x0, u).ys[-1] ** 2)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))


def timed(fn, *args, reps=7, max_seconds=0.0):
    """(median_ms, min_ms, runs) of fn(*args): compile + warm-up (two untimed runs), then
    `reps` timed runs, each ended with block_until_ready; with max_seconds > 0, stops after
    a run longer than that once 3 runs are done."""
    import statistics, time
    jax.block_until_ready(fn(*args))  # compile + warm-up
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append((time.perf_counter() - t0) * 1e3)
        if max_seconds > 0 and len(ts) >= 3 and ts[-1] > max_seconds * 1e3:
            break
    return statistics.median(ts), min(ts), len(ts)
