#!/usr/bin/env python3
"""Peer benchmark: JAX on problem P3 (Kim-style discrete-time rate RNN, N = 200, T = 200).

P3 is specified in shared/reference/benchmark-problems.md (section 2); the inputs are
rebuilt bit-exactly in float64 from the SplitMix64 generator (p1_common.py) and cast.
One training step, as neurode's `P3` bench (benches/kim_step.rs): the loss
L = sum_b sum_{t=1..200} z_t^2 of 200 Euler steps (dt = 1, jax.lax.scan), its gradient
w.r.t. (W, w_in, w_out) (jax.value_and_grad) and one Adam update (lr 0.01, betas 0.9 /
0.999, eps 1e-8, bias-corrected), all in one jitted function
(params, adam_state) -> (params, adam_state, loss).
Batch nb: trial b starts at x0[b, i] = 0.1 * U(773, b*200 + i) (b = 0 is P3's x0), the
same go pulse in every trial, the loss summed over trials.
Timing: compile + 2 warm-up steps, then --rounds rounds of --steps chained steps (the
round ended with block_until_ready); median and minimum ms per step over the rounds.
Usage: python p3_jax.py [--batches 1,32] [--precisions f32,f64] [--steps 200] [--rounds 9]
                        [--threads T] [--json PATH]
"""
import argparse, json, math, os, statistics, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--batches", default="1,32", help="trial counts nb")
ap.add_argument("--precisions", default="f32,f64")
ap.add_argument("--steps", type=int, default=200, help="training steps per timing round")
ap.add_argument("--rounds", type=int, default=9, help="timing rounds (median over them)")
ap.add_argument("--threads", type=int, default=0,
                help="XLA intra-op threads (0 = XLA default: all cores); best effort, "
                     "jax has no documented thread limit")
ap.add_argument("--json", default=None, help="write the results as JSON to this path")
cli = ap.parse_args()
if cli.threads > 0:  # must be set before jax is imported; also honours XLA_FLAGS
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen=true"
                               f" intra_op_parallelism_threads={cli.threads}").strip()

import numpy as np
# The generator (p1_common imports jax with x64 enabled: after XLA_FLAGS).
from p1_common import self_test, U
import jax
import jax.numpy as jnp

N, T, DT = 200, 200, 1.0
LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-8

def build_p3(nb):
    """float64 arrays of P3 (section 2), evaluated in the written order."""
    W = (1.5 * U(769, N * N).reshape(N, N)) * math.sqrt(3.0 / N)
    w_in = U(770, N) * math.sqrt(3.0)
    w_out = U(771, N) * 0.01
    tau = 12.0 + 8.0 * U(772, N)
    x0 = 0.1 * U(773, nb * N).reshape(nb, N)
    u = np.zeros(T)
    u[50:75] = 1.0  # go pulse: stim_on = 50, stim_dur = 25
    return W, w_in, w_out, tau, x0, u

def loss_numpy(W, w_in, w_out, tau, x0, u):
    """Plain float64 reference of the loss (no jax)."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    x, loss = x0.copy(), 0.0
    for t in range(T):
        x = (1.0 - DT / tau) * x + (DT / tau) * (sig(x) @ W.T + w_in * u[t])
        loss += float(np.sum((sig(x) @ w_out) ** 2))
    return loss

def make_step(tau, x0, u, dtype):
    a = jnp.asarray((1.0 - DT / tau).astype(dtype))  # coefficients in f64, then cast
    c = jnp.asarray((DT / tau).astype(dtype))
    x0 = jnp.asarray(x0.astype(dtype))
    u = jnp.asarray(u.astype(dtype))

    def loss_fn(params):
        W, w_in, w_out = params
        def body(carry, ut):
            x, r = carry                                  # r = sigma(x_t)
            x = a * x + c * (r @ W.T + w_in * ut)         # x_{t+1}, one row per trial
            r = jax.nn.sigmoid(x)
            return (x, r), r @ w_out                      # z_{t+1} per trial
        _, zs = jax.lax.scan(body, (x0, jax.nn.sigmoid(x0)), u)
        return jnp.sum(zs * zs)

    @jax.jit
    def step(params, state):
        loss, g = jax.value_and_grad(loss_fn)(params)
        m, v, t = state
        t = t + 1
        tf = t.astype(jnp.float64)
        c1 = (1.0 - B1 ** tf).astype(dtype)  # bias corrections
        c2 = (1.0 - B2 ** tf).astype(dtype)
        m = jax.tree.map(lambda mi, gi: B1 * mi + (1.0 - B1) * gi, m, g)
        v = jax.tree.map(lambda vi, gi: B2 * vi + (1.0 - B2) * gi * gi, v, g)
        params = jax.tree.map(lambda p, mi, vi: p - LR * (mi / c1) / (jnp.sqrt(vi / c2) + EPS),
                              params, m, v)
        return params, (m, v, t), loss

    return step

def fresh(arrs, dtype):
    W, w_in, w_out = (jnp.asarray(a.astype(dtype)) for a in arrs[:3])
    params = (W, w_in, w_out)
    zeros = jax.tree.map(jnp.zeros_like, params)
    return params, (zeros, zeros, jnp.zeros((), jnp.int32))

def main():
    self_test()
    batches = [int(b) for b in cli.batches.split(",") if b]
    precs = [p for p in cli.precisions.split(",") if p]
    dts = {"f32": np.float32, "f64": np.float64}
    assert all(p in dts for p in precs), precs
    print(f"# jax {jax.__version__} numpy {np.__version__} backend {jax.default_backend()} "
          f"cpus {os.cpu_count()} XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}' "
          f"steps {cli.steps} rounds {cli.rounds}", flush=True)
    a1 = build_p3(1)
    print("jax p3 inputs " + " ".join(
        f"sum_{k}={math.fsum(v.ravel()):.17g}"
        for k, v in zip(("W", "w_in", "w_out", "tau", "x0", "u"), a1)), flush=True)
    results = []
    for nb in batches:
        arrs = build_p3(nb)
        # the first step's loss in f64, against a plain numpy loop
        step64 = make_step(arrs[3], arrs[4], arrs[5], np.float64)
        _, _, l0 = step64(*fresh(arrs, np.float64))
        l0, ln = float(l0), loss_numpy(*arrs)
        print(f"jax p3 check nb={nb} prec=f64 loss0={l0:.17g} numpy_loss0={ln:.17g} "
              f"rel_diff={abs(l0 - ln) / abs(ln):.3e}", flush=True)
        for prec in precs:
            dtype = dts[prec]
            step = make_step(arrs[3], arrs[4], arrs[5], dtype)
            params, state = fresh(arrs, dtype)
            params, state, loss0 = step(params, state)  # compile + first step
            params, state, loss1 = step(params, state)  # loss after one Adam update
            loss0, loss1 = float(loss0), float(loss1)
            jax.block_until_ready(params)
            ms = []
            for _ in range(cli.rounds):
                t0 = time.perf_counter()
                for _ in range(cli.steps):
                    params, state, loss = step(params, state)
                jax.block_until_ready((params, state, loss))
                ms.append((time.perf_counter() - t0) * 1e3 / cli.steps)
            assert math.isfinite(float(loss)), (nb, prec, loss)
            med, mn = statistics.median(ms), min(ms)
            results.append(dict(nb=nb, prec=prec, median_ms=med, min_ms=mn, loss0=loss0,
                                loss1=loss1, last_loss=float(loss), steps=cli.steps,
                                rounds=cli.rounds, ms_per_round=ms))
            print(f"jax p3 nb={nb} prec={prec} median_ms={med:.4f} min_ms={mn:.4f} "
                  f"loss0={loss0:.17g} loss1={loss1:.17g}", flush=True)
    if cli.json:
        with open(cli.json, "w") as f:
            json.dump(dict(results=results, versions=dict(
                jax=jax.__version__, numpy=np.__version__, python=sys.version.split()[0],
                cpus=os.cpu_count(), xla_flags=os.environ.get("XLA_FLAGS", ""))), f, indent=1)

if __name__ == "__main__":
    main()
