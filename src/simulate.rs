//! `neurode simulate`: run a configured (or trained) network of any model on fresh seeded
//! trials of its task and save the trajectories (with the model's per-trial noise and
//! initial states, as in training).
//!
//! Writes, into the output folder:
//! - `trajectories.npz`: `times` (`T`), `states` (`trials x T x N`), `inputs`
//!   (`trials x T x channels`, the input in force at each time), `readout` (`trials x T`),
//!   `conditions` (`trials`, the task condition of each trial), all float64 (exact for
//!   float32 runs too) but `conditions` (int64); NumPy reads it with `np.load`;
//! - `simulation.png`: the readout of every trial against time (a trial whose readout is an
//!   earlier one's is labelled `on trial <k>` in the legend).

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::NpzWriter;
use neurode_solvers::{derive_seed, Real};

use crate::config::{Precision, TrainConfig};
use crate::io::IoError;
use crate::network::{Capability, SolveSpec};
use crate::plot::{self, Series};
use crate::run::RunError;
use crate::run_dir::{self, RunDir};
use crate::tasks::{grid, Task};
use crate::train::{bind_trials, first_blowup, solve_spec};
use crate::trained::RunNetwork;

/// What to simulate and where to write it.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// A TOML config (the initial, untrained network of its seed) or a run directory (the
    /// trained network in its `params.safetensors`).
    pub source: PathBuf,
    /// Output folder (default: `<run dir>/simulation`, or `simulations/<config name>`).
    pub out: Option<PathBuf>,
    /// Number of fresh trials (at least 1).
    pub trials: usize,
    /// Seed of the fresh trials.
    pub seed: u64,
    /// Spacing of the saved times, in the task's time unit (ms, or steps of 5 ms for the
    /// Kim and multi-region tasks): positive and at most the trial's length.
    pub dt_save: f64,
    /// Solver threads (default: the available cores).
    pub threads: Option<usize>,
}

/// What a simulation wrote.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// The output folder.
    pub out: PathBuf,
    /// Trials simulated.
    pub trials: usize,
    /// Saved times per trial.
    pub times: usize,
    /// Accepted steps, summed over trials.
    pub accepted: usize,
}

/// Runs a simulation (see the [module docs](self)).
pub fn simulate(opts: &SimulateOptions) -> Result<Simulated, RunError> {
    if opts.trials == 0 {
        return Err(RunError::option("--trials", "must be at least 1"));
    }
    if opts.threads == Some(0) {
        return Err(RunError::option("--threads", "must be at least 1"));
    }
    let src = &opts.source;
    let (cfg, params, default_out) = if src.is_dir() {
        let (run, cfg) = RunDir::open(src)?;
        (cfg, Some(run.file(run_dir::PARAMS)), run.file("simulation"))
    } else {
        let cfg = TrainConfig::load(src)?;
        let out = Path::new("simulations").join(&cfg.name);
        (cfg, None, out)
    };
    let spec = cfg.task.spec();
    check_dt_save(opts.dt_save, spec.t_end, spec.time_unit)?;
    check_memory(&cfg, opts)?;
    let out = opts.out.clone().unwrap_or(default_out);
    match cfg.precision {
        Precision::F64 => simulate_as::<f64>(&cfg, params.as_deref(), &out, opts),
        Precision::F32 => simulate_as::<f32>(&cfg, params.as_deref(), &out, opts),
    }
}

/// The saved times of a trial of length `t_end`: `0, dt_save, 2 dt_save, …` and always
/// `t_end` itself (the last spacing is shorter where `dt_save` does not divide the trial).
/// A `dt_save` that is not a positive number or is longer than the trial is an error naming
/// `--dt-save`, its value, the trial's length and `unit` (the task's time unit).
pub fn save_times(dt_save: f64, t_end: f64, unit: &str) -> Result<Vec<f64>, RunError> {
    check_dt_save(dt_save, t_end, unit)?;
    let steps = (t_end / dt_save + 1e-9).floor() as u64;
    let mut times = grid(dt_save, 0, steps);
    let last = times[times.len() - 1];
    // The end, unless the grid already ends there (to within rounding).
    if t_end - last > 1e-9 * t_end.max(1.0) {
        times.push(t_end);
    } else {
        let k = times.len() - 1;
        times[k] = t_end;
    }
    Ok(times)
}

/// Refuses a `--dt-save` that is not a positive number or is longer than the trial.
fn check_dt_save(dt_save: f64, t_end: f64, unit: &str) -> Result<(), RunError> {
    if !(dt_save.is_finite() && dt_save > 0.0) {
        return Err(RunError::option(
            "--dt-save",
            format!(
                "must be a positive number of {unit} (got {dt_save}; the trial lasts {t_end} \
                 {unit})"
            ),
        ));
    }
    if dt_save > t_end {
        return Err(RunError::option(
            "--dt-save",
            format!(
                "is {dt_save} {unit}, longer than the trial ({t_end} {unit}): give at most \
                 {t_end}"
            ),
        ));
    }
    Ok(())
}

fn simulate_as<T: Real>(
    cfg: &TrainConfig,
    params: Option<&Path>,
    out: &Path,
    opts: &SimulateOptions,
) -> Result<Simulated, RunError> {
    let RunNetwork {
        net: mut rnn,
        readout: ro,
    } = RunNetwork::<T>::load(cfg, Capability::Simulate, params)?;
    let spec = cfg.task.spec();
    let batch = cfg
        .task
        .batch::<T>(derive_seed(opts.seed, &[5]), 0, opts.trials);
    let x0 = bind_trials(cfg, &spec, &mut rnn, &batch, 0..batch.len())
        .map_err(|e| RunError::Inputs(Box::new(e)))?;
    let times: Vec<T> = save_times(opts.dt_save, spec.t_end, spec.time_unit)?
        .into_iter()
        .map(T::from_f64)
        .collect();
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sol = rnn
        .solve(&SolveSpec {
            threads,
            ..solve_spec(cfg, spec.t_end, times.clone(), x0)
        })
        .map_err(|e| RunError::Solve {
            what: "the simulation",
            message: e.to_string(),
        })?;

    let (n, nt, nb) = (rnn.dim(), times.len(), opts.trials);
    // Trajectories past the bound are no result: say which trial, when, and what to do.
    if let Some(what) = first_blowup(&sol, n, 0, spec.time_unit) {
        return Err(RunError::Diverged {
            what: "the simulation",
            blowup: what,
        });
    }
    let ch = rnn.n_in();
    let mut states = Array3::<f64>::zeros((nb, nt, n));
    let mut inputs = Array3::<f64>::zeros((nb, nt, ch));
    let mut readout = Array2::<f64>::zeros((nb, nt));
    for b in 0..nb {
        for (i, &t) in times.iter().enumerate() {
            let x = sol.state(i, b);
            for (k, &v) in x.iter().enumerate() {
                states[[b, i, k]] = v.as_f64();
            }
            for (k, &u) in batch.inputs[b].at(t).iter().enumerate() {
                inputs[[b, i, k]] = u.as_f64();
            }
            readout[[b, i]] = ro.output(x).as_f64();
        }
    }
    std::fs::create_dir_all(out).map_err(|e| IoError::fs("create", out, e))?;
    let npz = out.join("trajectories.npz");
    let file = std::fs::File::create(&npz).map_err(|e| IoError::fs("create", &npz, e))?;
    let fail = |e: ndarray_npy::WriteNpzError| IoError::format(&npz, e.to_string());
    let mut w = NpzWriter::new(file);
    let ts = Array1::from_iter(times.iter().map(|t| t.as_f64()));
    w.add_array("times", &ts).map_err(fail)?;
    w.add_array("states", &states).map_err(fail)?;
    w.add_array("inputs", &inputs).map_err(fail)?;
    w.add_array("readout", &readout).map_err(fail)?;
    let conds = Array1::from_iter(batch.conditions.iter().map(|&c| c as i64));
    w.add_array("conditions", &conds).map_err(fail)?;
    w.finish().map_err(fail)?;

    // A trial whose readout is an earlier trial's (the same input, no noise) hides it: the
    // legend says so.
    let twin = |b: usize| (0..b).find(|&a| readout.row(a) == readout.row(b));
    let series: Vec<Series> = (0..nb)
        .map(|b| {
            let cond = spec.conditions[batch.conditions[b]];
            let label = match twin(b) {
                Some(a) => format!("trial {b} ({cond}, on trial {a})"),
                None => format!("trial {b} ({cond})"),
            };
            (label, (0..nt).map(|i| (ts[i], readout[[b, i]])).collect())
        })
        .collect();
    plot::lines(
        &out.join("simulation.png"),
        &format!("{}: readout of {nb} fresh trials", cfg.name),
        &format!("t ({})", spec.time_unit),
        "readout y",
        &series,
    )
    .map_err(RunError::Plot)?;
    Ok(Simulated {
        out: out.to_path_buf(),
        trials: nb,
        times: nt,
        accepted: (0..nb).map(|b| sol.trial_stats(b).accepted).sum(),
    })
}

/// The simulation's arrays (the solver's saved states and the `.npz`'s, the trials' inputs
/// and noise, the model) against this machine's memory, before any is allocated.
fn check_memory(cfg: &TrainConfig, opts: &SimulateOptions) -> Result<(), RunError> {
    let spec = cfg.task.spec();
    let (n, trials) = (cfg.model.n() as f64, opts.trials as f64);
    let times = (spec.t_end / opts.dt_save).floor() + 2.0;
    let channels = spec.channels.len() as f64;
    // The steps of the noise signal, and its value at the end.
    let steps = cfg.noise_steps();
    let noise_steps = if steps > 0.0 { steps + 1.0 } else { 0.0 };
    let real = match cfg.precision {
        Precision::F64 => 8.0,
        Precision::F32 => 4.0,
    };
    let per_time = n * (real + 8.0) + 8.0 * (channels + 1.0);
    let saved = format!(
        "{} trials of N = {} units at {times} saved times",
        opts.trials,
        cfg.model.n()
    );
    let saved_remedy = if times > trials {
        "use a larger --dt-save (fewer saved times) or fewer --trials"
    } else {
        "use fewer --trials (or run several smaller simulations with other --seed values)"
    };
    crate::memory::check_parts(&[
        (trials * times * per_time, saved, saved_remedy.into()),
        (
            trials * (noise_steps * n * real + spec.loss_times.len() as f64 * 8.0),
            format!("the noise of {} trials", opts.trials),
            "use fewer --trials".into(),
        ),
        (
            cfg.model.kind().memory_estimate(1),
            format!("the network (N = {})", cfg.model.n()),
            "use a smaller network".into(),
        ),
    ])?;
    Ok(())
}
