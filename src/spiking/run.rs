//! One run of a spiking-network config: build, step with a recorder, and the outputs
//! (`outputs.npz`, `rates.csv`, `summary.json`, `raster.png`, `rates.png`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;
use neurode_models::spiking::{Blocks, ClusterSpec, LifNetwork, Setup, Synapses};
use neurode_solvers::{derive_seed, Real, Stream};
use serde_json::json;

use super::config::SpikingConfig;
use super::size::MAX_WEIGHT_DATA;
use super::{plot, SpikingRunError};
use crate::io::IoError;

/// What one run recorded.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Spikes as (step, neuron).
    pub spikes: Vec<(u32, u32)>,
    /// Spike counts per rate bin and block, row-major (bin, block).
    pub counts: Vec<u32>,
    /// Steps per rate bin.
    pub bin_steps: usize,
    /// Recorded neurons.
    pub recorded: Vec<usize>,
    /// Their voltages, row-major (step, recorded neuron).
    pub voltage: Vec<f64>,
    /// Their currents, as `voltage`.
    pub current: Vec<f64>,
    /// Every neuron's spikes per step (steps x N), when the config asks for dense arrays.
    pub dense: Option<Vec<u8>>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct SpikingRun {
    /// The config, overrides applied.
    pub config: SpikingConfig,
    /// Output folder.
    pub out: PathBuf,
    /// The blocks.
    pub blocks: Blocks,
    /// Steps.
    pub steps: usize,
    /// Seconds building the network (synapses and inputs).
    pub build_seconds: f64,
    /// Seconds stepping.
    pub run_seconds: f64,
    /// Synapses.
    pub synapses: usize,
    /// Bytes the synapses take.
    pub synapse_bytes: usize,
    /// The recording.
    pub recording: Recording,
}

/// Everything drawn for a run at precision `T`: architecture, setup and network.
pub struct Built<T: Real> {
    /// The architecture.
    pub spec: ClusterSpec,
    /// The blocks.
    pub blocks: Blocks,
    /// Block weights (rows postsynaptic).
    pub weights: Vec<f64>,
    /// Block probabilities (rows postsynaptic).
    pub probs: Vec<f64>,
    /// Neurons and inputs.
    pub setup: Setup,
    /// The network.
    pub network: LifNetwork<T>,
}

/// Builds the network of `cfg` (seeded by `simulation.random_seed`).
pub fn build<T: Real>(cfg: &SpikingConfig) -> Result<Built<T>, SpikingRunError> {
    let spec = cfg.cluster_spec()?;
    let blocks = spec.blocks();
    let (weights, probs) = spec.block_tables(&blocks);
    let mut stream = Stream::new(derive_seed(cfg.simulation.random_seed, &[1]));
    let synapses = Synapses::<T>::draw(&blocks, &weights, &probs, spec.mask, &mut stream)?;
    let setup = cfg.setup(&spec)?;
    let network = LifNetwork::new(&setup, synapses)?;
    Ok(Built {
        spec,
        blocks,
        weights,
        probs,
        setup,
        network,
    })
}

/// Steps `net` for `steps` steps, recording as `cfg.record` says (rates per block of the
/// network's synapses); `progress(done)` is called every few hundred steps.
pub fn record<T: Real>(
    net: &mut LifNetwork<T>,
    cfg: &SpikingConfig,
    steps: usize,
    progress: &dyn Fn(usize),
) -> Recording {
    let n = net.neurons();
    let nb = net.synapses().blocks();
    // The blocks of the neurons (a copy: `net` steps below).
    let labels = net.synapses().labels().to_vec();
    let rec = &cfg.record;
    let bin_steps = ((rec.rate_bin / cfg.simulation.delta_t).round() as usize).max(1);
    let bins = steps.div_ceil(bin_steps);
    let recorded: Vec<usize> = if rec.dense {
        (0..n).collect()
    } else {
        rec.neurons.clone()
    };
    let mut r = Recording {
        spikes: Vec::new(),
        counts: vec![0; bins * nb],
        bin_steps,
        voltage: Vec::with_capacity(steps * recorded.len()),
        current: Vec::with_capacity(steps * recorded.len()),
        recorded,
        dense: rec.dense.then(|| vec![0u8; steps * n]),
    };
    for k in 0..steps {
        let spikes = net.step();
        let bin = k / bin_steps;
        for &j in spikes {
            r.spikes.push((k as u32, j));
            r.counts[bin * nb + labels[j as usize] as usize] += 1;
            if let Some(d) = r.dense.as_mut() {
                d[k * n + j as usize] = 1;
            }
        }
        let (v, i) = (net.voltage(), net.current());
        for &x in &r.recorded {
            r.voltage.push(v[x].to_f64().unwrap_or(f64::NAN));
            r.current.push(i[x].to_f64().unwrap_or(f64::NAN));
        }
        if k % 250 == 249 {
            progress(k + 1);
        }
    }
    progress(steps);
    r
}

impl Recording {
    /// Population rates (Hz) per bin and block, with the bins' centre times (s).
    pub fn rates(&self, blocks: &Blocks, dt: f64, steps: usize) -> (Vec<f64>, Array2<f64>) {
        let nb = blocks.len();
        let bins = self.counts.len() / nb.max(1);
        let mut rates = Array2::zeros((bins, nb));
        let mut times = Vec::with_capacity(bins);
        for b in 0..bins {
            let s0 = b * self.bin_steps;
            let len = (steps - s0).min(self.bin_steps) as f64 * dt;
            times.push((s0 as f64 * dt) + len / 2.0);
            for k in 0..nb {
                let size = blocks.size(k);
                if size > 0 {
                    rates[[b, k]] = self.counts[b * nb + k] as f64 / (size as f64 * len);
                }
            }
        }
        (times, rates)
    }

    /// Mean rate (Hz) of every block over steps `from..steps`.
    pub fn block_means(&self, blocks: &Blocks, dt: f64, from: usize, steps: usize) -> Vec<f64> {
        let mut counts = vec![0usize; blocks.len()];
        let labels = blocks.labels();
        for &(k, j) in &self.spikes {
            if k as usize >= from {
                counts[labels[j as usize] as usize] += 1;
            }
        }
        let t = (steps - from) as f64 * dt;
        (0..blocks.len())
            .map(|b| match blocks.size(b) {
                0 => f64::NAN,
                s => counts[b] as f64 / (s as f64 * t),
            })
            .collect()
    }
}

/// The four groups of a clustered network (E clusters, E background, I clusters, I
/// background; an empty group left out) with their blocks.
pub fn groups(blocks: &Blocks) -> Vec<(&'static str, Vec<usize>)> {
    use neurode_models::spiking::Class;
    let mut g: Vec<(&'static str, Vec<usize>)> = vec![
        ("E clusters", vec![]),
        ("E background", vec![]),
        ("I clusters", vec![]),
        ("I background", vec![]),
    ];
    for b in 0..blocks.len() {
        if blocks.size(b) == 0 {
            continue;
        }
        let k = match (blocks.class(b), blocks.cluster(b)) {
            (Class::E, Some(_)) => 0,
            (Class::E, None) => 1,
            (Class::I, Some(_)) => 2,
            (Class::I, None) => 3,
        };
        g[k].1.push(b);
    }
    // Without clusters the backgrounds are the whole classes.
    let clustered = g[0].1.len() + g[2].1.len() > 0;
    g.retain(|(_, b)| !b.is_empty());
    if !clustered {
        for (name, _) in g.iter_mut() {
            *name = if name.starts_with('E') { "E" } else { "I" };
        }
    }
    g
}

/// The neuron-weighted mean of `values` (per block) over `members`.
pub fn group_mean(blocks: &Blocks, members: &[usize], values: &[f64]) -> f64 {
    let n: usize = members.iter().map(|&b| blocks.size(b)).sum();
    members
        .iter()
        .map(|&b| values[b] * blocks.size(b) as f64)
        .sum::<f64>()
        / n as f64
}

/// Writes the run's files into `out`.
pub fn write_outputs<T: Real>(
    run: &SpikingRun,
    built: &Built<T>,
    config_path: &Path,
) -> Result<Vec<PathBuf>, SpikingRunError> {
    let out = &run.out;
    let cfg = &run.config;
    let dt = cfg.simulation.delta_t;
    let steps = run.steps;
    std::fs::create_dir_all(out).map_err(|e| IoError::fs("create", out, e))?;
    let rec = &run.recording;
    let (times, rates) = rec.rates(&run.blocks, dt, steps);

    // outputs.npz
    let npz = out.join("outputs.npz");
    let file = std::fs::File::create(&npz).map_err(|e| IoError::fs("create", &npz, e))?;
    let fail = |e: ndarray_npy::WriteNpzError| IoError::format(&npz, e.to_string());
    let mut w = NpzWriter::new(file);
    let n = built.network.neurons();
    let mut ev = Array2::<i64>::zeros((rec.spikes.len(), 2));
    for (r, &(k, j)) in rec.spikes.iter().enumerate() {
        ev[[r, 0]] = k as i64;
        ev[[r, 1]] = j as i64;
    }
    w.add_array("spikes", &ev).map_err(fail)?;
    let labels = Array1::from_iter(run.blocks.labels().iter().map(|&l| l + 1));
    w.add_array("clusters", &labels).map_err(fail)?;
    let bounds = Array1::from_iter(run.blocks.offsets().iter().map(|&o| o as i64));
    w.add_array("boundaries", &bounds).map_err(fail)?;
    // W in compressed sparse column form (column = presynaptic neuron), and its block
    // table; the per-synapse values only up to MAX_WEIGHT_DATA synapses (beyond, a reader
    // makes them from the table: weights_block[clusters[post] - 1, clusters[pre] - 1]).
    let syn = built.network.synapses();
    let indptr = Array1::from_iter(syn.column_starts().iter().map(|&r| r as i64));
    let indices = Array1::from_iter(syn.all_targets().iter().map(|&t| t as i32));
    w.add_array("weights_indptr", &indptr).map_err(fail)?;
    w.add_array("weights_indices", &indices).map_err(fail)?;
    drop(indices);
    let nb = run.blocks.len();
    let table = Array2::from_shape_fn((nb, nb), |(a, b)| built.weights[a * nb + b]);
    w.add_array("weights_block", &table).map_err(fail)?;
    if syn.len() <= MAX_WEIGHT_DATA {
        let (data, _, _) = syn.csc();
        w.add_array("weights_data", &Array1::from(data))
            .map_err(fail)?;
    }
    let per = |f: &dyn Fn(&neurode_models::spiking::NeuronParams) -> f64| {
        Array1::from_iter(built.setup.neurons.iter().map(f))
    };
    w.add_array("tau_membrane", &per(&|p| p.tau_m))
        .map_err(fail)?;
    w.add_array("tau_synaptic", &per(&|p| p.tau_s))
        .map_err(fail)?;
    w.add_array("tau_refractory", &per(&|p| p.tau_ref))
        .map_err(fail)?;
    w.add_array("threshold", &per(&|p| p.threshold))
        .map_err(fail)?;
    w.add_array("reset_voltage", &per(&|p| p.reset))
        .map_err(fail)?;
    let hold = Array1::from_iter(built.network.hold_steps().iter().map(|&h| h as i64));
    w.add_array("refractory_steps", &hold).map_err(fail)?;
    let ext = &built.setup.external;
    w.add_array("j_ext", &Array1::from(ext.j.to_vec()))
        .map_err(fail)?;
    w.add_array("c_ext", &Array1::from(ext.c.to_vec()))
        .map_err(fail)?;
    w.add_array("nu_ext", &Array1::from(ext.nu.to_vec()))
        .map_err(fail)?;
    w.add_array("delta_t", &ndarray::arr0(dt)).map_err(fail)?;
    w.add_array("n_steps", &ndarray::arr0(steps as i64))
        .map_err(fail)?;
    let stim = Array1::from_iter((0..steps).map(|k| built.network.stimulus_at(k)));
    w.add_array("stimulus", &stim).map_err(fail)?;
    let stimulated: Vec<i64> = built
        .setup
        .stimulus
        .as_ref()
        .map(|(_, v)| v.iter().map(|&i| i as i64).collect())
        .unwrap_or_default();
    w.add_array("stimulated_neurons", &Array1::from(stimulated))
        .map_err(fail)?;
    w.add_array("rates", &rates).map_err(fail)?;
    w.add_array("rate_times", &Array1::from(times.clone()))
        .map_err(fail)?;
    let k = rec.recorded.len();
    let rec_idx = Array1::from_iter(rec.recorded.iter().map(|&i| i as i64));
    w.add_array("recorded", &rec_idx).map_err(fail)?;
    let shape = (steps, k);
    let bad = |e: ndarray::ShapeError| IoError::format(&npz, e.to_string());
    let v = ndarray::ArrayView2::from_shape(shape, &rec.voltage).map_err(bad)?;
    let c = ndarray::ArrayView2::from_shape(shape, &rec.current).map_err(bad)?;
    w.add_array("voltage", &v).map_err(fail)?;
    w.add_array("current", &c).map_err(fail)?;
    if let Some(d) = &rec.dense {
        let a = ndarray::ArrayView2::from_shape((steps, n), d).map_err(bad)?;
        w.add_array("spikes_dense", &a).map_err(fail)?;
    }
    w.finish().map_err(fail)?;

    // rates.csv
    let csv = out.join("rates.csv");
    let mut text = String::from("time_s");
    for b in 0..run.blocks.len() {
        text.push(',');
        text.push_str(&run.blocks.name(b));
    }
    text.push('\n');
    for (r, t) in times.iter().enumerate() {
        text.push_str(&format!("{t}"));
        for b in 0..run.blocks.len() {
            text.push_str(&format!(",{}", rates[[r, b]]));
        }
        text.push('\n');
    }
    crate::io::write_atomic(&csv, text.as_bytes())?;

    // summary.json
    let means = rec.block_means(&run.blocks, dt, 0, steps);
    let group_rates: serde_json::Map<String, serde_json::Value> = groups(&run.blocks)
        .iter()
        .map(|(name, m)| (name.to_string(), json!(group_mean(&run.blocks, m, &means))))
        .collect();
    let summary = json!({
        "config": config_path.display().to_string(),
        "name": cfg.name(&stem(config_path)),
        "seed": cfg.simulation.random_seed,
        "neurons": n,
        "steps": steps,
        "delta_t": dt,
        "simulated_seconds": steps as f64 * dt,
        "build_seconds": run.build_seconds,
        "run_seconds": run.run_seconds,
        "simulated_seconds_per_wall_second": steps as f64 * dt / run.run_seconds.max(1e-12),
        "spikes": rec.spikes.len(),
        "synapses": run.synapses,
        "synapse_bytes": run.synapse_bytes,
        "weights_data_written": run.synapses <= MAX_WEIGHT_DATA,
        "mechanism": cfg.simulation.mechanism,
        "refractory": cfg.simulation.refractory,
        "precision": cfg.simulation.precision,
        "group_rates_hz": group_rates,
        "block_rates_hz": (0..run.blocks.len()).map(|b| json!({
            "block": run.blocks.name(b),
            "label": b + 1,
            "neurons": run.blocks.size(b),
            "rate_hz": means[b],
        })).collect::<Vec<_>>(),
    });
    let js = out.join("summary.json");
    let pretty =
        serde_json::to_string_pretty(&summary).map_err(|e| IoError::format(&js, e.to_string()))?;
    crate::io::write_atomic(&js, pretty.as_bytes())?;

    let raster = out.join("raster.png");
    plot::raster(&raster, &rec.spikes, &run.blocks, dt, steps).map_err(SpikingRunError::Plot)?;
    let rp = out.join("rates.png");
    plot::rates(&rp, &times, &rates, &run.blocks).map_err(SpikingRunError::Plot)?;
    Ok(vec![npz, csv, js, raster, rp])
}

/// The file stem of a config path (the default run name).
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("spiking")
        .to_string()
}

/// Steps a built network for the config's run and writes the outputs.
pub fn execute<T: Real>(
    cfg: SpikingConfig,
    built: &mut Built<T>,
    build_seconds: f64,
    config_path: &Path,
    out: PathBuf,
    progress: &dyn Fn(usize, usize, f64),
) -> Result<SpikingRun, SpikingRunError> {
    let steps = cfg.steps();
    let t1 = Instant::now();
    let recording = record(&mut built.network, &cfg, steps, &|k| {
        progress(k, steps, cfg.simulation.delta_t)
    });
    let run_seconds = t1.elapsed().as_secs_f64();
    let run = SpikingRun {
        out,
        blocks: built.blocks.clone(),
        steps,
        build_seconds,
        run_seconds,
        synapses: built.network.synapses().len(),
        synapse_bytes: built.network.synapses().bytes(),
        recording,
        config: cfg,
    };
    write_outputs(&run, built, config_path)?;
    Ok(run)
}
