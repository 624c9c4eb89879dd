//! `neurode spiking`: a trained Kim et al. (2019) rate RNN becomes a LIF network
//! ([`neurode_models::spiking::converted`]), and the scaling factor λ is chosen by the
//! original's grid search.
//!
//! - The network comes from a Kim run directory or any `.mat` with the original's
//!   variables ([`load`]).
//! - Trials are the rate task's trials ([`trials`]): go/no-go, XOR or Mante, `T + 1` input
//!   columns each held for 5 ms; every λ runs the same trials (their inputs, initial
//!   voltages and noise), a paired comparison.
//! - The grid search ([`search`]) runs every trial at every λ on all cores; the best λ is
//!   the first of the highest performance, as the original's `np.argmax`.
//! - The results go into the `.mat` as the original writes them (`opt_scaling_factor`,
//!   `all_perfs`, `scaling_factors`), into `spiking_grid.json`, and into a raster and an
//!   output plot of one trial per condition at the best λ ([`output`]).

pub mod load;
pub mod output;
pub mod search;
pub mod trials;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use neurode_models::spiking::converted::Constants;
use neurode_models::spiking::SpikingError;

use crate::mat::{MatError, MatReadError};

/// The largest raster `--record` writes (bytes: one per neuron, step and trial).
const RECORD_LIMIT: f64 = 512e6;

/// The original's grid of scaling factors: 20 to 75 in steps of 5.
pub fn default_grid() -> Vec<f64> {
    (0..12).map(|k| 20.0 + 5.0 * k as f64).collect()
}

/// Why a conversion failed: what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The source is not a Kim network.
    #[error("{path}: {why}")]
    NotKim {
        /// The source given.
        path: PathBuf,
        /// What it is instead, and what to do.
        why: String,
    },
    /// A `.mat` lacks a variable.
    #[error(
        "{path} has no variable `{name}`; a conversion reads the original's variables \
         (N, w, m, som_m, w_in, w_out, taus, taus_gaus, inh), as `neurode train` and the \
         original's rate code save them"
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The variable missing.
        name: String,
    },
    /// A variable has the wrong shape or kind.
    #[error("{path}: variable `{name}`: {why}")]
    Variable {
        /// The file.
        path: PathBuf,
        /// The variable.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The task could not be told.
    #[error(
        "{path}: cannot tell the task from the file name (the original's is \
         Task_<task>_N_...); give it with --task go_nogo, xor or mante"
    )]
    NoTask {
        /// The file.
        path: PathBuf,
    },
    /// An unknown task.
    #[error("--task {value}: not a Kim task; use go_nogo, xor or mante")]
    Task {
        /// The value given.
        value: String,
    },
    /// No scaling factors to try.
    #[error("the grid of scaling factors is empty; give at least one, e.g. --grid 20:75:5")]
    EmptyGrid,
    /// A bad grid, λ or count.
    #[error("{key} {value}: {requirement}")]
    Invalid {
        /// The option.
        key: &'static str,
        /// Its value, as given.
        value: String,
        /// What is required.
        requirement: String,
    },
    /// The LIF network refused a setting.
    #[error(transparent)]
    Spiking(#[from] SpikingError),
    /// The `.mat` could not be read.
    #[error(transparent)]
    Read(#[from] MatReadError),
    /// The `.mat` could not be written back.
    #[error("cannot write the results into the .mat: {0}")]
    Write(#[from] MatError),
    /// Another output could not be written.
    #[error("{0}")]
    Output(String),
}

/// What `neurode spiking` is asked to do.
#[derive(Debug, Clone)]
pub struct SpikingOptions {
    /// A Kim run directory or a `.mat`.
    pub source: PathBuf,
    /// Evaluate this λ only (no grid search, nothing written into the `.mat`).
    pub lambda: Option<f64>,
    /// The grid (default: [`default_grid`]).
    pub grid: Vec<f64>,
    /// Trials per λ.
    pub trials: usize,
    /// Seed of the trials.
    pub seed: u64,
    /// Voltage noise SD (mV; the original's 0.1; 0 = off).
    pub noise: f64,
    /// The task, overriding the run's or the file name's.
    pub task: Option<String>,
    /// Output folder (default: the run directory, or the `.mat`'s folder).
    pub out: Option<PathBuf>,
    /// Write every trial (input, initial voltages, spikes, output) to this `.npz`
    /// (with `lambda` only).
    pub record: Option<PathBuf>,
    /// Threads (default: every core).
    pub threads: usize,
    /// Write the plots.
    pub plots: bool,
}

/// What a `neurode spiking` run found.
#[derive(Debug, Clone)]
pub struct SpikingReport {
    /// The `.mat` of the network.
    pub mat: PathBuf,
    /// The task's name.
    pub task: &'static str,
    /// Per λ.
    pub evaluations: Vec<search::Evaluation>,
    /// The best λ (the first of the highest performance).
    pub best: f64,
    /// Its performance.
    pub best_performance: f64,
    /// Per condition at the best λ: (name, performed, trials).
    pub per_condition: Vec<(String, usize, usize)>,
    /// Seconds of the simulations (all λ, all trials).
    pub seconds: f64,
    /// Trials simulated.
    pub trials_run: usize,
    /// Files written.
    pub written: Vec<PathBuf>,
}

/// Checks the options before any work.
fn check(o: &SpikingOptions) -> Result<(), ConversionError> {
    if o.trials == 0 {
        return Err(ConversionError::Invalid {
            key: "--trials",
            value: "0".into(),
            requirement: "at least one trial per scaling factor".into(),
        });
    }
    if let Some(l) = o.lambda {
        if !(l.is_finite() && l > 0.0) {
            return Err(ConversionError::Invalid {
                key: "--lambda",
                value: l.to_string(),
                requirement: "a scaling factor > 0 (W/λ; the original's grid is 20 to 75)".into(),
            });
        }
    } else {
        if o.grid.is_empty() {
            return Err(ConversionError::EmptyGrid);
        }
        if let Some(l) = o.grid.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(ConversionError::Invalid {
                key: "--grid",
                value: l.to_string(),
                requirement: "every scaling factor > 0".into(),
            });
        }
    }
    if o.record.is_some() && o.lambda.is_none() {
        return Err(ConversionError::Invalid {
            key: "--record",
            value: "without --lambda".into(),
            requirement: "recording every spike is for one λ: give --lambda too".into(),
        });
    }
    Ok(())
}

/// Runs `neurode spiking` (see the [module docs](self)).
pub fn run(o: &SpikingOptions, progress: &ProgressBar) -> Result<SpikingReport, ConversionError> {
    check(o)?;
    let l = load::load(&o.source, o.task.as_deref())?;
    let c = Constants {
        noise_sd: o.noise,
        ..Constants::original()
    };
    c.check()?;
    let steps = c.steps(trials::t_steps(&l.task) + 1);
    let from = trials::window_start(&l.task, c.hold);
    if from >= steps {
        return Err(ConversionError::Invalid {
            key: "the task's t_steps",
            value: trials::t_steps(&l.task).to_string(),
            requirement: format!(
                "the original's criterion for {} looks at the output from step {from} of \
                 the spiking trial, but a trial has {steps} steps; convert a network trained \
                 on trials of at least {} steps",
                l.task.kind(),
                from / c.hold + 1
            ),
        });
    }
    if let Some(path) = &o.record {
        let bytes = (o.trials * l.rate.n * steps) as f64;
        if bytes > RECORD_LIMIT {
            return Err(ConversionError::Invalid {
                key: "--record",
                value: path.display().to_string(),
                requirement: format!(
                    "the raster of {} trials of {} neurons and {steps} steps takes {:.1} GB; \
                     record fewer trials (--trials)",
                    o.trials,
                    l.rate.n,
                    bytes / 1e9
                ),
            });
        }
    }
    let trials: Vec<trials::SpikingTrial> = (0..o.trials as u64)
        .map(|k| trials::trial(&l.task, o.seed, k))
        .collect();
    let lambdas = match o.lambda {
        Some(x) => vec![x],
        None => o.grid.clone(),
    };
    progress.set_length((lambdas.len() * trials.len()) as u64);
    let start = Instant::now();
    let evals = search::evaluate(
        &l.rate,
        &l.task,
        &lambdas,
        &trials,
        &c,
        o.threads.max(1),
        progress,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let best = search::best(&evals).ok_or(ConversionError::EmptyGrid)?;
    let spec = crate::tasks::Task::spec(&l.task);
    let per_condition = spec
        .conditions
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mine: Vec<bool> = trials
                .iter()
                .zip(&best.correct)
                .filter(|(t, _)| t.condition == k)
                .map(|(_, &ok)| ok)
                .collect();
            (
                name.to_string(),
                mine.iter().filter(|&&x| x).count(),
                mine.len(),
            )
        })
        .collect();
    let (best_lambda, best_performance) = (best.lambda, best.performance);
    let mut report = SpikingReport {
        mat: l.mat.clone(),
        task: l.task.kind(),
        best: best_lambda,
        best_performance,
        evaluations: evals,
        per_condition,
        seconds,
        trials_run: lambdas.len() * trials.len(),
        written: Vec::new(),
    };
    let out = out_dir(o, &l);
    std::fs::create_dir_all(&out)
        .map_err(|e| ConversionError::Output(format!("cannot create {}: {e}", out.display())))?;
    output::write(o, &l, &c, &trials, &mut report, &out)?;
    Ok(report)
}

/// Where the outputs go.
fn out_dir(o: &SpikingOptions, l: &load::Loaded) -> PathBuf {
    if let Some(d) = &o.out {
        return d.clone();
    }
    match &l.run_dir {
        Some(d) => d.clone(),
        None => l
            .mat
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    }
}

/// The lines `neurode spiking` prints: performance per λ, the best, and the files.
pub fn summary_lines(r: &SpikingReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} network of {}: {} trials in {:.2} s ({:.1} ms per trial)",
        r.task,
        r.mat.display(),
        r.trials_run,
        r.seconds,
        1e3 * r.seconds / r.trials_run.max(1) as f64
    )];
    lines.push("  lambda  performance  mean rate (Hz)".into());
    for e in &r.evaluations {
        lines.push(format!(
            "  {:>6}  {:>11.3}  {:>14.2}",
            e.lambda, e.performance, e.mean_rate_hz
        ));
    }
    let per: Vec<String> = r
        .per_condition
        .iter()
        .map(|(n, ok, all)| format!("{n} {ok}/{all}"))
        .collect();
    lines.push(format!(
        "best lambda {} : performance {:.3} ({})",
        r.best,
        r.best_performance,
        per.join(", ")
    ));
    for p in &r.written {
        lines.push(format!("wrote {}", p.display()));
    }
    lines
}

/// Parses a grid `start:stop:step` (inclusive of `stop`, as the original's `parse_range`),
/// `start:stop` (step 1) or a comma-separated list.
pub fn parse_grid(s: &str) -> Result<Vec<f64>, ConversionError> {
    let bad = |why: &str| ConversionError::Invalid {
        key: "--grid",
        value: s.to_string(),
        requirement: why.to_string(),
    };
    let num = |x: &str| {
        x.trim()
            .parse::<f64>()
            .map_err(|_| bad("numbers: start:stop:step, start:stop or a,b,c"))
    };
    let grid = if s.contains(':') {
        let p: Vec<f64> = s.split(':').map(num).collect::<Result<_, _>>()?;
        let (a, b, step) = match p[..] {
            [a, b] => (a, b, 1.0),
            [a, b, st] => (a, b, st),
            _ => return Err(bad("start:stop:step or start:stop")),
        };
        if !(step.is_finite() && step > 0.0) {
            return Err(bad("a step > 0"));
        }
        let count = ((b - a) / step + 1e-9).floor();
        if count < 0.0 {
            return Err(ConversionError::EmptyGrid);
        }
        if count.is_nan() || count >= 1e6 {
            return Err(bad("at most a million scaling factors"));
        }
        (0..=count as usize).map(|k| a + step * k as f64).collect()
    } else {
        s.split(',')
            .filter(|x| !x.trim().is_empty())
            .map(num)
            .collect::<Result<Vec<f64>, _>>()?
    };
    if grid.is_empty() {
        return Err(ConversionError::EmptyGrid);
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_as_the_originals_range() {
        assert_eq!(parse_grid("20:75:5").unwrap(), default_grid());
        assert_eq!(parse_grid("1:3").unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(parse_grid("30, 45").unwrap(), vec![30.0, 45.0]);
        assert!(matches!(
            parse_grid("75:20:5"),
            Err(ConversionError::EmptyGrid)
        ));
        assert!(matches!(parse_grid(""), Err(ConversionError::EmptyGrid)));
        assert!(parse_grid("20:75:0").is_err());
        assert!(parse_grid("a:b").is_err());
    }
}
