//! A training run on disk: the run directory, its files, checkpoints and resume.
//!
//! Written once for every model and task. `runs/<name>/` (or `--out DIR`) holds
//! `config.toml` (every setting, defaults included), `checkpoint.safetensors` (optimiser
//! state, written every `save_every` iterations by write-then-rename), `params.safetensors`
//! (final parameters, row-major, named by the model: `C`, `M`, `N`, `B`, `w`, `b` for the
//! low-rank RNN; `W`, `w_in`, `tau_g`, `w_out`, `b_out`, `signs`, `som`, `W_eff`, `taus` for
//! the Kim et al. rate RNN), `best.safetensors` (the parameters of the best validation
//! accuracy), `metrics.csv` (a validation accuracy column per task condition),
//! `summary.json`, `structure.json` (a model-specific summary), the plots `training.png`
//! (loss and accuracy curves), `readout.png` (readout traces of example trials per
//! condition) and `latent.png` (their state-space trajectories on the first two principal
//! components), and for the Kim et al. rate RNN the MATLAB file
//! `Task_<task>_N_<N>_Taus_<min>_<max>_Act_<act>_<timestamp>.mat` that the original's
//! spiking code reads (see [`crate::export`]). `neurode eval` adds `eval.json`,
//! `eval_readout.png` and `eval_latent.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use neurode_solvers::Real;
use serde_json::json;

use crate::config::{Precision, TrainConfig};
use crate::io::{write_atomic, write_safetensors, IoError};
use crate::plot;
use crate::train::{example_traces, ExampleTraces, Metrics, TrainError, Trainer};
use neurode_solvers::derive_seed;

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Files.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The run's config.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The model kind cannot do what was asked, or its own export failed.
    #[error(transparent)]
    Kind(#[from] crate::network::KindError),
    /// A plot could not be drawn.
    #[error("{0}")]
    Plot(String),
    /// A command-line option out of range.
    #[error("{option} {message}")]
    Option {
        /// The option (`--trials`).
        option: &'static str,
        /// What it must be (`must be at least 1`), with the value given.
        message: String,
    },
    /// The path is not a run directory (its `config.toml` does not load).
    #[error("{source} ({} is not a run directory written by `neurode train`)", .path.display())]
    NotARun {
        /// The path given.
        path: PathBuf,
        /// Why its config does not load.
        source: crate::config::ConfigError,
    },
    /// `--resume` on a directory without a checkpoint.
    #[error("nothing to resume in {}: it has no checkpoint.safetensors. Run without --resume to start this run", .path.display())]
    NothingToResume {
        /// The run directory.
        path: PathBuf,
    },
    /// A fresh run into a directory that holds one.
    #[error("{} already holds a run; pass --resume to continue it, --out DIR for a new run, or delete the directory", .path.display())]
    Occupied {
        /// The run directory.
        path: PathBuf,
    },
    /// The task's trials do not fit the network.
    #[error("the task's inputs do not fit the network: {0}")]
    Inputs(Box<TrainError>),
    /// Binding inputs to the network failed.
    #[error("binding the inputs failed: {0}")]
    Bind(#[from] neurode_models::ModelError),
    /// A solve of `simulate` or `analyze` failed.
    #[error("{what} failed: {message}")]
    Solve {
        /// What was solved.
        what: &'static str,
        /// The solver's message.
        message: String,
    },
    /// A step of the analysis failed.
    #[error("{step}: {source}")]
    Analysis {
        /// The step (`fixed-point search, group 2`).
        step: String,
        /// What went wrong.
        source: crate::analysis::AnalysisError,
    },
}

impl RunError {
    /// The error of an option out of range.
    pub(crate) fn option(option: &'static str, message: impl Into<String>) -> Self {
        RunError::Option {
            option,
            message: message.into(),
        }
    }
}

/// The checkpoint file of a run directory.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// Where a run of `cfg` goes: `out`, or `runs/<name>`.
pub fn run_dir(cfg: &TrainConfig, out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new("runs").join(&cfg.name))
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// The `summary.json` contents.
    pub json: serde_json::Value,
}

/// Trains `cfg` into `dir` (fresh, or resumed from its checkpoint), calling `on_step` after
/// every iteration with the iteration count, the total and the metrics row.
pub fn train(
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(usize, usize, &Metrics),
) -> Result<RunSummary, RunError> {
    match cfg.precision {
        Precision::F64 => train_as::<f64>(cfg, dir, resume, on_step),
        Precision::F32 => train_as::<f32>(cfg, dir, resume, on_step),
    }
}

fn fs<'p>(action: &'static str, p: &'p Path) -> impl FnOnce(std::io::Error) -> IoError + 'p {
    move |e| IoError::fs(action, p, e)
}

fn train_as<T: Real>(
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(usize, usize, &Metrics),
) -> Result<RunSummary, RunError> {
    let ckpt = checkpoint_path(dir);
    let mut trainer = if resume {
        if !ckpt.exists() {
            return Err(RunError::NothingToResume {
                path: dir.to_path_buf(),
            });
        }
        Trainer::<T>::resume(cfg, &ckpt)?
    } else {
        if ckpt.exists() || dir.join("summary.json").exists() {
            return Err(RunError::Occupied {
                path: dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(dir).map_err(fs("cannot create run directory", dir))?;
        Trainer::<T>::new(cfg)?
    };
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string(cfg)
            .expect("a config serialises")
            .as_bytes(),
    )?;
    let start = Instant::now();
    let total = trainer.total_iterations();
    let save_every = cfg.training.save_every;
    while !trainer.finished() {
        let row = trainer.step()?;
        on_step(trainer.iteration(), total, &row);
        if save_every > 0 && trainer.iteration() % save_every == 0 {
            trainer.save_checkpoint(&ckpt)?;
            write_metrics(dir, trainer.metrics(), &trainer.spec().conditions)?;
        }
    }
    trainer.save_checkpoint(&ckpt)?;
    let wall = start.elapsed().as_secs_f64();
    finish(&trainer, dir, wall)
}

fn write_metrics(dir: &Path, rows: &[Metrics], conditions: &[&str]) -> Result<(), IoError> {
    let mut s = String::from("iteration,train_loss,train_accuracy,val_loss,val_accuracy");
    for c in conditions {
        s.push_str(&format!(",val_{c}_accuracy"));
    }
    s.push_str(",learning_rate,steps_per_trial\n");
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for r in rows {
        let c = r.val_condition_accuracy.clone().unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{}",
            r.iteration,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
        ));
        for k in 0..conditions.len() {
            s.push_str(&format!(",{}", opt(c.get(k).copied())));
        }
        s.push_str(&format!(",{},{}\n", r.learning_rate, r.steps_per_trial));
    }
    write_atomic(&dir.join("metrics.csv"), s.as_bytes())
}

/// `{"<prefix><condition>_accuracy": value}` for every condition of the task.
fn per_condition(
    prefix: &str,
    conditions: &[&str],
    acc: &[f64],
) -> serde_json::Map<String, serde_json::Value> {
    conditions
        .iter()
        .zip(acc)
        .map(|(c, a)| (format!("{prefix}{c}_accuracy"), json!(a)))
        .collect()
}

fn finish<T: Real>(tr: &Trainer<T>, dir: &Path, wall: f64) -> Result<RunSummary, RunError> {
    let cfg = tr.config();
    let meta = |kind: &str| {
        tr.model()
            .metadata()
            .into_iter()
            .chain([("kind".to_string(), kind.to_string())])
            .collect()
    };
    write_safetensors(
        &dir.join("params.safetensors"),
        &tr.param_arrays(tr.theta()),
        meta("final"),
    )?;
    if let Some((_, _, best)) = tr.best() {
        write_safetensors(
            &dir.join("best.safetensors"),
            &tr.param_arrays(best),
            meta("best validation accuracy"),
        )?;
    }
    let conditions = tr.spec().conditions.clone();
    write_metrics(dir, tr.metrics(), &conditions)?;
    let structure = tr.model().structure(&tr.param_arrays(tr.theta()));
    write_json(&dir.join("structure.json"), &structure)?;
    let last_val = tr.metrics().iter().rev().find(|m| m.val_accuracy.is_some());
    let steps: Vec<f64> = tr.metrics().iter().map(|m| m.steps_per_trial).collect();
    let exported = crate::export::write_kind_exports(tr, dir)?;
    let json = json!({
        "name": cfg.name,
        "model": cfg.model.name(),
        "task": cfg.task.kind(),
        "iterations": tr.iteration(),
        "trials": tr.iteration() * cfg.training.batch_size,
        "stopped_early": tr.stopped_at().is_some(),
        "precision": format!("{:?}", cfg.precision).to_lowercase(),
        "stepper": format!("{:?}", cfg.solver.stepper).to_lowercase(),
        "wall_seconds": wall,
        "final": last_val.map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("iteration".into(), json!(m.iteration));
            o.insert("val_loss".into(), json!(m.val_loss));
            o.insert("val_accuracy".into(), json!(m.val_accuracy));
            o.extend(per_condition(
                "val_",
                &conditions,
                m.val_condition_accuracy.as_deref().unwrap_or(&[]),
            ));
            serde_json::Value::Object(o)
        }),
        "best": tr.best().map(|(acc, it, _)| json!({"iteration": it, "val_accuracy": acc})),
        "mean_steps_per_trial": steps.iter().sum::<f64>() / steps.len().max(1) as f64,
        "mat_file": exported.first().map(|p| p.display().to_string()),
    });
    write_json(&dir.join("summary.json"), &json)?;
    plot::training_curves(&dir.join("training.png"), tr.metrics(), &conditions)
        .map_err(RunError::Plot)?;
    let traces = example_traces(tr, derive_seed(cfg.seed, &[4]))?;
    example_plots(
        dir,
        "",
        &traces,
        "example trials (after training)",
        tr.spec().time_unit,
    )?;
    Ok(RunSummary {
        dir: dir.to_path_buf(),
        json,
    })
}

/// Evaluates the trained parameters of run directory `dir` on `n` fresh trials of the
/// stream `seed` (never used in training); writes and returns `eval.json`.
pub fn evaluate(dir: &Path, n: usize, seed: u64) -> Result<serde_json::Value, RunError> {
    let cfg_path = dir.join("config.toml");
    let cfg = TrainConfig::load(&cfg_path).map_err(|source| RunError::NotARun {
        path: dir.to_path_buf(),
        source,
    })?;
    match cfg.precision {
        Precision::F64 => evaluate_as::<f64>(&cfg, dir, n, seed),
        Precision::F32 => evaluate_as::<f32>(&cfg, dir, n, seed),
    }
}

fn evaluate_as<T: Real>(
    cfg: &TrainConfig,
    dir: &Path,
    n: usize,
    seed: u64,
) -> Result<serde_json::Value, RunError> {
    if n == 0 {
        return Err(RunError::option("--trials", "must be at least 1"));
    }
    let mut tr = Trainer::<T>::new(cfg)?;
    tr.load_params_file(&dir.join("params.safetensors"))?;
    let ev = tr.evaluate_fresh(derive_seed(seed, &[3]), n)?;
    let mut json = json!({
        "run": dir.display().to_string(),
        "trials": n,
        "seed": seed,
        "loss": ev.loss,
        "accuracy": ev.accuracy,
        "mean_steps_per_trial": ev.accepted_steps as f64 / n as f64,
    });
    if let Some(o) = json.as_object_mut() {
        o.extend(per_condition(
            "",
            &tr.spec().conditions,
            &ev.condition_accuracy,
        ));
    }
    write_json(&dir.join("eval.json"), &json)?;
    let traces = example_traces(&tr, derive_seed(seed, &[4]))?;
    example_plots(dir, "eval_", &traces, "fresh trials", tr.spec().time_unit)?;
    Ok(json)
}

/// `<prefix>readout.png` (readout traces of the example trials) and `<prefix>latent.png`
/// (their state-space trajectories on the first two principal components; skipped when
/// the states do not vary).
fn example_plots(
    dir: &Path,
    prefix: &str,
    traces: &ExampleTraces,
    what: &str,
    spec_unit: &str,
) -> Result<(), RunError> {
    plot::lines(
        &dir.join(format!("{prefix}readout.png")),
        &format!("readout of {what}"),
        &format!("t ({})", spec_unit),
        "readout y",
        &traces.readout,
    )
    .map_err(RunError::Plot)?;
    let Some([e1, e2]) = traces.explained else {
        return Ok(());
    };
    plot::lines(
        &dir.join(format!("{prefix}latent.png")),
        &format!("state-space trajectories of {what}"),
        &format!("PC1 ({:.1} % of variance)", 100.0 * e1),
        &format!("PC2 ({:.1} % of variance)", 100.0 * e2),
        &traces.latent,
    )
    .map_err(RunError::Plot)
}

/// Writes `value` as pretty-printed JSON, crash-safely.
fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), IoError> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    write_atomic(path, text.as_bytes())
}
