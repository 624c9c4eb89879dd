#!/usr/bin/env python3
"""Time the original VectorialNeuroModulators LIFNet on neurode's clustered LIF network.

Usage:
    python lif_original.py --checkout PATH --network outputs.npz [--seed S] [--steps K]
        [--threads T] [--out result.json]
    python lif_original.py --checkout PATH --own-network --config YAML --seed S [--steps K]
        [--threads T] [--out result.json]

PATH is a checkout of github.com/evaisd/VectorialNeuroModulators (cited at commit
4d271c6). Its package is imported from there (sys.path); nothing of it is copied
here. It needs torch, numpy, scipy and pyyaml.

--network: the original's LIFNet on exactly neurode's network, read from the
    outputs.npz written by `neurode simulate` (dense W from the CSC arrays,
    per-neuron parameters, j/c/nu of the external input, the stimulus profile on
    the stimulated neurons). The external Poisson counts come from the original's
    ExternalCurrentsGenerator with np.random.default_rng(--seed) (default 256, the
    template's seed), so they are a different draw from neurode's.
--own-network: the original's whole pipeline for one seed, as its StageSimulation
    does it (its connectivity generator, stimulus and external currents sharing one
    np.random.default_rng(seed), LIFNet forward with the config's mechanism),
    with the writing of files and plots switched off. The config is the original's
    YAML (e.g. configs/spiking_network_simulation_config_template.yaml of the
    checkout); --seed replaces its simulation.random_seed.

Timed: time.perf_counter around the LIFNet forward call only (the original's
per-step loop, including its stacking of the voltage/current/spike histories).
The generation of the stimulus and external counts is timed separately (gen_s),
and the network construction too (build_s, --own-network only).

At start-up the checkout must reproduce a single-neuron oracle (analytic step,
tau_m = 0.02, tau_s = 0.005, dt = 1e-3, V0 = 0, I0 = 100, no spikes, 3 steps).

Printed:
    original: steps=.. neurons=.. forward_s=.. gen_s=.. spikes=.. rates_hz: e_clusters=..
        e_background=.. i_clusters=.. i_background=.. i_all=..
(one line; rates are spikes / (neurons of the group * steps * dt)); --out writes the
same with per-block rates as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lif_rates import group_rates, load_network  # noqa: E402

LIF_NET_PATH = os.path.join("neuro_mod", "spiking_neuron_net", "lif_net.py")

# (V, I) after steps 1, 2, 3 of the analytic update, tau_m = 0.02, tau_s = 0.005,
# dt = 1e-3, V0 = 0, I0 = 100, no input, no spikes.
ORACLE = [(0.0883324476, 81.8730753078),
          (0.1563449147, 67.0320046036),
          (0.2079308936, 54.8811636094)]
ORACLE_TOL = 1e-9
GROUPS = ("e_clusters", "e_background", "i_clusters", "i_background", "i_all")


def commit_of(checkout):
    try:
        return subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_original(checkout):
    if not os.path.isfile(os.path.join(checkout, LIF_NET_PATH)):
        sys.exit(f"error: {os.path.join(checkout, LIF_NET_PATH)} not found "
                 "(is --checkout a VectorialNeuroModulators checkout?)")
    sys.path.insert(0, os.path.abspath(checkout))
    from neuro_mod.spiking_neuron_net import external
    from neuro_mod.spiking_neuron_net.execution.staging import StageSimulation
    from neuro_mod.spiking_neuron_net.lif_net import LIFNet
    return LIFNet, external, StageSimulation


def check_oracle(LIFNet):
    import torch
    net = LIFNet(synaptic_weights=torch.zeros((1, 1), dtype=torch.float64), j_ext=[0.0, 0.0],
                 tau_membrane=0.02, tau_synaptic=0.005, tau_refractory=0.005,
                 threshold=1e9, reset_voltage=0.0, delta_t=1e-3)
    v, c, s = net(voltage=torch.zeros(1, dtype=torch.float64),
                  synaptic_current=torch.full((1,), 100.0, dtype=torch.float64),
                  stimulus=torch.zeros((3, 1), dtype=torch.float64),
                  external_currents=torch.zeros((3, 2, 1), dtype=torch.float64),
                  mechanism="analytic")
    got = [(float(v[k, 0]), float(c[k, 0])) for k in range(3)]
    err = max(max(abs(a - b), abs(x - y)) for (a, x), (b, y) in zip(got, ORACLE))
    if err > ORACLE_TOL or float(s.sum()) != 0.0:
        sys.exit(f"error: single-neuron oracle not reproduced: got {got}, want {ORACLE}")
    print(f"oracle: single-neuron analytic step reproduced (max error {err:.1e})")


def duration_for(steps, dt):
    """A duration whose int(duration / dt) is exactly `steps` (the original truncates)."""
    duration = steps * dt
    if int(duration / dt) != steps:
        duration = (steps + 0.5) * dt
    return duration


def as_param(x):
    """Uniform per-neuron values go in as a Python float (the original's scalar path,
    float64); non-uniform ones as a list (torch.tensor(list), float64). A torch
    tensor would be cast to float32 by LIFNet._broadcast_param (`param.float()`)."""
    x = np.asarray(x, dtype=np.float64)
    return float(x[0]) if np.all(x == x[0]) else x.tolist()


def run_network(args, LIFNet, external, notes):
    import torch
    d, n_steps, dt, boundaries, n_blocks, q, n, n_exc, csc = load_network(args.network)
    steps = min(args.steps, n_steps) if args.steps else n_steps
    clusters = d["clusters"]

    import scipy.sparse as sp
    w = sp.csc_matrix(csc, shape=(n, n)).toarray()
    tau_ref = d["tau_refractory"]
    orig_ref = np.round(tau_ref / dt).astype(np.int64)
    if np.any(np.abs(tau_ref / dt - np.round(tau_ref / dt)) > 1e-6):
        notes.append("tau_refractory is not a multiple of dt: the original's timer never "
                     "returns to 0 (round(timer, 6) == 0 test), such neurons stay refractory")
    if "refractory_steps" in d.files and not np.array_equal(orig_ref, d["refractory_steps"]):
        notes.append(f"refractory: the original clamps round(tau_ref/dt) = {sorted(set(orig_ref.tolist()))} "
                     f"steps after the spike step; the npz says {sorted(set(d['refractory_steps'].tolist()))}")

    j_ext, c_ext, nu_ext = (np.asarray(d[k], dtype=np.float64) for k in ("j_ext", "c_ext", "nu_ext"))
    # LIFNet keeps j_ext[:2] and applies it as (weight of the E-source counts, weight of
    # the I-source counts) to every target: pairs (EE, EI, IE, II) get (j0, j0, j1, j1).
    effective = np.array([j_ext[0], j_ext[0], j_ext[1], j_ext[1]])
    active = nu_ext * c_ext > 0
    native = bool(np.all(effective[active] == j_ext[active]))

    t0 = time.perf_counter()
    gen = external.ExternalCurrentsGenerator(
        n_neurons=n, n_excitatory=n_exc, c_ext=c_ext.tolist(), nu_ext_baseline=nu_ext.tolist(),
        random_generator=np.random.default_rng(args.seed))
    ext = gen.generate_external_currents(duration=duration_for(steps, dt), delta_t=dt)
    if ext.shape != (steps, 2, n):
        sys.exit(f"error: external currents have shape {ext.shape}, want {(steps, 2, n)}")
    if not native:
        # Weight the counts per (source, target) pair here and give LIFNet unit weights.
        for src in range(2):
            ext[:, src, :n_exc] *= j_ext[2 * src]
            ext[:, src, n_exc:] *= j_ext[2 * src + 1]
        j_pass = [1.0, 1.0, 0.0, 0.0]
        notes.append("j_ext: the original would use j_ext[:2] per source for both targets; "
                     "counts pre-weighted per (source, target) pair instead")
    else:
        j_pass = j_ext.tolist()
    stim = np.zeros((steps, n))
    stim[:, d["stimulated_neurons"].astype(np.int64)] = d["stimulus"][:steps, None]
    ext_t = torch.from_numpy(ext)
    stim_t = torch.from_numpy(stim)
    gen_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    net = LIFNet(synaptic_weights=torch.from_numpy(w), j_ext=j_pass,
                 tau_membrane=as_param(d["tau_membrane"]), tau_synaptic=as_param(d["tau_synaptic"]),
                 tau_refractory=as_param(tau_ref), threshold=as_param(d["threshold"]),
                 reset_voltage=as_param(d["reset_voltage"]), delta_t=dt)
    build_s = time.perf_counter() - t0
    v0 = torch.zeros(n, dtype=torch.float64)
    i0 = torch.zeros(n, dtype=torch.float64)

    t0 = time.perf_counter()
    _, _, spikes = net(voltage=v0, synaptic_current=i0, stimulus=stim_t,
                       external_currents=ext_t, mechanism="analytic")
    forward_s = time.perf_counter() - t0

    counts = spikes.sum(dim=0).numpy().astype(np.int64)
    return dict(mode="network", network=os.path.abspath(args.network), seed=args.seed,
                steps=steps, neurons=n, delta_t=dt, forward_s=forward_s, gen_s=gen_s,
                build_s=build_s, counts=counts, clusters=clusters, n_blocks=n_blocks)


def run_own(args, StageSimulation, notes):
    import yaml
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    cfg["simulation"]["random_seed"] = args.seed
    for name, value in cfg["architecture"]["network"].items():
        if isinstance(value, list) and len(value) == 2:
            lost = any(float(np.float32(x)) != float(x) for x in value)
            notes.append(f"{name} = {value}: StageSimulation makes a float64 tensor of it, which "
                         "LIFNet casts to float32 (param.float())"
                         + ("; this changes its values" if lost else "; exact for these values"))
    dt = float(cfg["simulation"]["delta_t"])
    if args.steps:
        cfg["simulation"]["duration_sec"] = duration_for(args.steps, dt)

    class NoFiles(StageSimulation):
        """The original's StageSimulation with its file/plot writing switched off."""

        def _set_stage(self):
            pass

        def _save(self, voltage, current, spikes):
            self.captured_spikes = spikes

        def _plot(self, spikes):
            pass

    timings = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        t0 = time.perf_counter()
        sim = NoFiles(path)
        build_s = time.perf_counter() - t0
    sim._gen_stimulus = timed("gen", sim._gen_stimulus)
    sim.currents_generator.generate_external_currents = timed(
        "gen", sim.currents_generator.generate_external_currents)
    sim.lif_net.forward = timed("forward", sim.lif_net.forward)
    sim.execute()

    spikes = sim.captured_spikes
    steps, n = spikes.shape
    n_blocks = 2 * int(cfg["architecture"]["clusters"]["n_clusters"]) + 2
    return dict(mode="own-network", config=os.path.abspath(args.config), seed=args.seed,
                steps=int(steps), neurons=int(n), delta_t=dt, forward_s=timings["forward"],
                gen_s=timings["gen"], build_s=build_s,
                counts=spikes.sum(axis=0).astype(np.int64), clusters=sim.clusters,
                n_blocks=n_blocks, mechanism=sim.mechanism)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkout", required=True, help="VectorialNeuroModulators checkout")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--network", help="neurode's outputs.npz")
    mode.add_argument("--own-network", action="store_true",
                      help="the original's own pipeline (needs --config)")
    ap.add_argument("--config", help="the original's YAML config (--own-network)")
    ap.add_argument("--seed", type=int, default=256,
                    help="np.random.default_rng seed (default 256, the template's)")
    ap.add_argument("--steps", type=int, help="run only the first K steps")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--out", help="write the result as JSON")
    args = ap.parse_args()
    if args.own_network and not args.config:
        ap.error("--own-network needs --config")

    commit = commit_of(args.checkout)
    print(f"original checkout commit: {commit}")
    LIFNet, external, StageSimulation = load_original(args.checkout)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} threads: {torch.get_num_threads()}")
    check_oracle(LIFNet)

    notes = []
    if args.network:
        r = run_network(args, LIFNet, external, notes)
    else:
        r = run_own(args, StageSimulation, notes)
    counts = r.pop("counts")
    groups, blocks = group_rates(counts, r.pop("clusters"), r.pop("n_blocks"),
                                 r["steps"], r["delta_t"])
    r.update(peer="original", commit=commit, threads=torch.get_num_threads(),
             spikes=int(counts.sum()), rates_hz=groups, block_rates_hz=blocks, notes=notes)
    report(r)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)


def report(r):
    for note in r["notes"]:
        print(f"note: {note}")
    print(f"original: build_s={r['build_s']:.3f} ({r['mode']}, seed {r['seed']}, "
          f"dt {r['delta_t']:g} s)")
    rates = " ".join(f"{g}={r['rates_hz'][g]:.4f}" for g in GROUPS)
    print(f"original: steps={r['steps']} neurons={r['neurons']} forward_s={r['forward_s']:.3f} "
          f"gen_s={r['gen_s']:.3f} spikes={r['spikes']} rates_hz: {rates}")


if __name__ == "__main__":
    main()
