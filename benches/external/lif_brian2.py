#!/usr/bin/env python3
"""Time Brian2 (2.9, Cython runtime target) on neurode's clustered LIF network.

Usage:
    python lif_brian2.py --network outputs.npz [--seed S] [--steps K] [--ext poissoninput|poisson]
        [--threads T] [--out result.json]

The network is read from the outputs.npz written by `neurode simulate`: W[post, pre]
from the CSC arrays, per-neuron tau_m, tau_s, tau_ref, threshold and reset, the
external input (j, c, nu per (source, target) pair), the stimulus profile on the
stimulated neurons, dt and the number of steps. Model (dimensionless v, I_syn in Hz):

    dv/dt = -v/tau_m + I_syn + stim(t)*on : 1 (unless refractory)
    dI_syn/dt = -I_syn/tau_s : Hz

integrated with method='exact' (the same propagators as the analytic step, the
stimulus held constant over a step), threshold v >= theta, reset v = v_reset,
refractory=tau_ref. Recurrent synapses: on_pre 'I_syn_post += w/tau_s_post', no
delay (acts from the next step, like the original). External input, per target
group (E, I) and source (E, I) with nu*c > 0: PoissonInput(N=c, rate=nu,
weight='j/tau_s') (--ext poissoninput, default; Brian2 draws Binomial(c, nu*dt)
per neuron per step), or a run_regularly adding j*poisson(c*nu*dt)/tau_s in the
same 'synapses' slot (--ext poisson, exactly the model's Poisson count).

Refractoriness differs from the original: Brian2 holds v for tau_ref after the
spike (the spike step plus round(tau_ref/dt) - 1 clamped steps; neurode's default),
the original clamps round(tau_ref/dt) steps after the spike step (tau_ref + dt).

Timed: build_s (groups, synapses, inputs, monitor), compile_s (a short warm-up run
that generates and compiles the Cython code; the state is store()d before and
restore()d after it), then the full run: run_s is Brian2's own timer of its main
loop (device._last_run_time), prep_s the rest of that run() call (per-run code
preparation). The Cython runtime target runs on one thread (--threads is recorded
only).

Printed:
    brian2: run_s=.. prep_s=.. build_s=.. compile_s=.. steps=.. neurons=.. spikes=..
        rates_hz: e_clusters=.. e_background=.. i_clusters=.. i_background=.. i_all=..
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lif_rates import group_rates, load_network  # noqa: E402

GROUPS = ("e_clusters", "e_background", "i_clusters", "i_background", "i_all")
WARMUP_STEPS = 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", required=True, help="neurode's outputs.npz")
    ap.add_argument("--seed", type=int, default=1, help="brian2.seed (default 1)")
    ap.add_argument("--steps", type=int, help="run only the first K steps")
    ap.add_argument("--ext", choices=["poissoninput", "poisson"], default="poissoninput",
                    help="external input as PoissonInput (binomial counts) or exact Poisson counts")
    ap.add_argument("--threads", type=int, help="recorded only: the Cython target is single-threaded")
    ap.add_argument("--out", help="write the result as JSON")
    args = ap.parse_args()

    import brian2 as b2
    from brian2 import Hz, second
    b2.prefs.codegen.target = "cython"
    b2.prefs.logging.console_log_level = "WARNING"
    print(f"brian2 {b2.__version__} target: cython threads: 1 (Cython runtime target; "
          f"--threads {args.threads} not used)" if args.threads else
          f"brian2 {b2.__version__} target: cython threads: 1 (Cython runtime target)")

    d, n_steps, dt, boundaries, n_blocks, q, n, n_exc, (weights, post, indptr) = \
        load_network(args.network)
    steps = min(args.steps, n_steps) if args.steps else n_steps
    pre = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    stim_profile = np.asarray(d["stimulus"], dtype=np.float64)[:steps]
    stim_on = np.zeros(n)
    stim_on[d["stimulated_neurons"].astype(np.int64)] = 1.0
    use_stim = bool(np.any(stim_profile != 0) and np.any(stim_on))
    j_ext, c_ext, nu_ext = (np.asarray(d[k], dtype=np.float64) for k in ("j_ext", "c_ext", "nu_ext"))

    b2.seed(args.seed)
    b2.defaultclock.dt = dt * second
    namespace = {}
    stim_term = ""
    if use_stim:
        namespace["stim_profile"] = b2.TimedArray(stim_profile * Hz, dt=dt * second)
        stim_term = " + stim_on * stim_profile(t)"
    eqs = f"""
    dv/dt = -v/tau_m + I_syn{stim_term} : 1 (unless refractory)
    dI_syn/dt = -I_syn/tau_s : Hz
    tau_m : second (constant)
    tau_s : second (constant)
    tau_ref : second (constant)
    theta : 1 (constant)
    v_reset : 1 (constant)
    stim_on : 1 (constant)
    """

    t0 = time.perf_counter()
    g = b2.NeuronGroup(n, eqs, threshold="v >= theta", reset="v = v_reset",
                       refractory="tau_ref", method="exact", namespace=namespace, name="lif")
    g.tau_m = d["tau_membrane"] * second
    g.tau_s = d["tau_synaptic"] * second
    g.tau_ref = d["tau_refractory"] * second
    g.theta = d["threshold"]
    g.v_reset = d["reset_voltage"]
    g.stim_on = stim_on
    g.v = 0.0
    g.I_syn = 0 * Hz
    syn = b2.Synapses(g, g, "w : 1", on_pre="I_syn_post += w/tau_s_post", name="recurrent")
    syn.connect(i=pre, j=post)
    if not (np.array_equal(syn.i[:], pre) and np.array_equal(syn.j[:], post)):
        sys.exit("error: Brian2 reordered the synapses")
    syn.w = weights
    inputs = []
    targets = (("e", g[:n_exc]), ("i", g[n_exc:]))
    for k, (src, tgt) in enumerate([(s, t) for s in (0, 1) for t in (0, 1)]):
        if nu_ext[k] * c_ext[k] <= 0:
            continue
        name, sub = targets[tgt]
        label = f"ext_{'ei'[src]}{name}"
        if args.ext == "poissoninput":
            if c_ext[k] != round(c_ext[k]):
                sys.exit(f"error: PoissonInput needs an integer c, got {c_ext[k]}")
            inputs.append(b2.PoissonInput(sub, "I_syn", N=int(round(c_ext[k])), rate=nu_ext[k] * Hz,
                                          weight=f"{float(j_ext[k])!r}/tau_s"))
        else:
            lam = float(dt * nu_ext[k] * c_ext[k])
            inputs.append(sub.run_regularly(f"I_syn += {float(j_ext[k])!r}*poisson({lam!r})/tau_s",
                                            when="synapses", name=label))
    mon = b2.SpikeMonitor(g, name="spikes")
    net = b2.Network(g, syn, *inputs, mon)
    net.store("init")
    build_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    net.run(WARMUP_STEPS * dt * second, namespace={})
    compile_s = time.perf_counter() - t0
    net.restore("init")
    b2.seed(args.seed)

    t0 = time.perf_counter()
    net.run(steps * dt * second, namespace={})
    wall_s = time.perf_counter() - t0
    run_s = float(b2.get_device()._last_run_time)
    done = int(round(float(net.t / second) / dt))
    if done != steps:
        sys.exit(f"error: Brian2 ran {done} steps, want {steps}")

    counts = np.asarray(mon.count[:], dtype=np.int64)
    groups, blocks = group_rates(counts, d["clusters"], n_blocks, steps, dt)
    r = dict(peer="brian2", version=b2.__version__, target="cython", network=os.path.abspath(args.network),
             seed=args.seed, ext=args.ext, steps=steps, neurons=n, delta_t=dt, synapses=int(len(weights)),
             run_s=run_s, run_wall_s=wall_s, prep_s=wall_s - run_s, build_s=build_s,
             compile_s=compile_s, warmup_steps=WARMUP_STEPS, spikes=int(counts.sum()),
             rates_hz=groups, block_rates_hz=blocks, stimulus=use_stim, threads=1)
    rates = " ".join(f"{k}={groups[k]:.4f}" for k in GROUPS)
    print(f"brian2: run_s={run_s:.3f} prep_s={wall_s - run_s:.3f} build_s={build_s:.3f} "
          f"compile_s={compile_s:.3f} steps={steps} neurons={n} spikes={r['spikes']} rates_hz: {rates}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
