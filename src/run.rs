//! A training run on disk: training into a run directory (fresh or resumed from its
//! checkpoint), its final files, and `neurode eval`. The directory and its files are
//! [`RunDir`]'s, which writes every one of them.
//!
//! Written once for every model and task. `runs/<name>/` (or `--out DIR`) holds
//! `config.toml` (every setting, defaults included), `checkpoint.safetensors` (optimiser
//! state, written every `save_every` iterations by write-then-rename), `params.safetensors`
//! (final parameters, row-major, named by the model: `C`, `M`, `N`, `B`, `w`, `b` for the
//! low-rank RNN; `W`, `w_in`, `tau_g`, `w_out`, `b_out`, `signs`, `som`, `W_eff`, `taus` for
//! the Kim et al. rate RNN), `best.safetensors` (the parameters of the best validation
//! accuracy, ties to the lower validation loss), `metrics.csv` (a validation accuracy
//! column per task condition), `summary.json`, `structure.json` (a model-specific
//! summary), the plots `training.png` (loss and accuracy curves), `readout.png` (readout
//! traces of example trials per condition) and `latent.png` (their state-space
//! trajectories on the first two principal components), and for the Kim et al. rate RNN
//! the MATLAB file `Task_<task>_N_<N>_Taus_<min>_<max>_Act_<act>_<timestamp>.mat` that
//! the original's spiking code reads (see [`crate::export`]). `neurode eval` adds
//! `eval.json`, `eval_readout.png` and `eval_latent.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use neurode_solvers::{derive_seed, Real};
use serde_json::json;

use crate::config::{Precision, TrainConfig};
use crate::network::Capability;
use crate::run_dir::{self, RunDir};
pub use crate::run_error::RunError;
use crate::train::{example_traces, ExampleTraces, Trainer};

/// The checkpoint file of a run directory.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(run_dir::CHECKPOINT)
}

/// Where a run of `cfg` goes: `out`, or `runs/<name>`.
pub fn run_dir(cfg: &TrainConfig, out: Option<&Path>) -> PathBuf {
    RunDir::for_config(cfg, out).path().to_path_buf()
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// The `summary.json` contents.
    pub json: serde_json::Value,
    /// Whether the run was finished before this command (a `--resume` of a finished run,
    /// which changes nothing on disk).
    pub already_finished: bool,
}

/// Trains `cfg` into `dir` (fresh, or resumed from its checkpoint), calling `on_step` after
/// every iteration with the iteration count, the total and the metrics row.
pub fn train(
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(usize, usize, &crate::metrics::Metrics),
) -> Result<RunSummary, RunError> {
    match cfg.precision {
        Precision::F64 => train_as::<f64>(cfg, dir, resume, on_step),
        Precision::F32 => train_as::<f32>(cfg, dir, resume, on_step),
    }
}

fn train_as<T: Real>(
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(usize, usize, &crate::metrics::Metrics),
) -> Result<RunSummary, RunError> {
    let (run, mut trainer) = if resume {
        let run = RunDir::resume(dir)?;
        let trainer = Trainer::<T>::resume(cfg, &run.file(run_dir::CHECKPOINT))?;
        if trainer.finished() {
            // A finished run is left as it is; only a run whose last files were never
            // written (killed after its final checkpoint) is completed.
            if let Some(json) = run.read_json(run_dir::SUMMARY)? {
                return Ok(RunSummary {
                    dir: run.path().to_path_buf(),
                    json,
                    already_finished: true,
                });
            }
            return finish(&trainer, &run, 0.0);
        }
        run.write_config(cfg)?;
        (run, trainer)
    } else {
        // Every check, and the trainer, before the directory exists: a run refused at
        // setup leaves nothing behind.
        let run = RunDir::check_fresh(dir)?;
        let text = run_dir::config_text(cfg)?;
        let trainer = Trainer::<T>::new(cfg)?;
        let created = run.make()?;
        if let Err(e) = run.write_config_text(&text) {
            // write_atomic leaves nothing behind: the directory is empty again.
            if created {
                let _ = std::fs::remove_dir(run.path());
            }
            return Err(e);
        }
        (run, trainer)
    };
    let start = Instant::now();
    let total = trainer.total_iterations();
    let save_every = cfg.training.save_every;
    while !trainer.finished() {
        let row = trainer.step()?;
        on_step(trainer.iteration(), total, &row);
        if save_every > 0 && trainer.iteration() % save_every == 0 {
            run.write_checkpoint(&trainer)?;
            run.write_metrics(trainer.metrics(), &trainer.spec().conditions)?;
        }
    }
    run.write_checkpoint(&trainer)?;
    let wall = start.elapsed().as_secs_f64();
    finish(&trainer, &run, wall)
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

fn finish<T: Real>(tr: &Trainer<T>, run: &RunDir, wall: f64) -> Result<RunSummary, RunError> {
    let cfg = tr.config();
    let meta = |kind: &str| {
        tr.model()
            .metadata()
            .into_iter()
            .chain([("kind".to_string(), kind.to_string())])
            .collect()
    };
    run.write_params(run_dir::PARAMS, &tr.param_arrays(tr.theta()), meta("final"))?;
    if let Some(best) = tr.best() {
        run.write_params(
            run_dir::BEST,
            &tr.param_arrays(&best.theta),
            meta("best validation accuracy"),
        )?;
    }
    let conditions = tr.spec().conditions.clone();
    run.write_metrics(tr.metrics(), &conditions)?;
    let structure = tr.model().structure(&tr.param_arrays(tr.theta()));
    run.write_json(run_dir::STRUCTURE, &structure)?;
    let last_val = tr.metrics().iter().rev().find(|m| m.val_accuracy.is_some());
    let steps: Vec<f64> = tr.metrics().iter().map(|m| m.steps_per_trial).collect();
    let exported = run.write_kind_exports(tr)?;
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
        "best": tr.best().map(|b| json!({"iteration": b.iteration, "val_accuracy": b.accuracy, "val_loss": b.loss})),
        "mean_steps_per_trial": steps.iter().sum::<f64>() / steps.len().max(1) as f64,
        "mat_file": exported.first().map(|p| p.display().to_string()),
    });
    run.write_json(run_dir::SUMMARY, &json)?;
    run.write_training_plot(tr.metrics(), &conditions)?;
    let traces = example_traces(tr, derive_seed(cfg.seed, &[4]))?;
    run.write_example_plots(
        "",
        &traces,
        "example trials (after training)",
        tr.spec().time_unit,
    )?;
    Ok(RunSummary {
        dir: run.path().to_path_buf(),
        json,
        already_finished: false,
    })
}

/// What `neurode eval` computed: its report (`eval.json`) and example traces, not yet
/// written.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The report, as written to `eval.json`.
    pub json: serde_json::Value,
    traces: ExampleTraces,
    time_unit: &'static str,
}

impl Evaluation {
    /// Writes `eval.json`, `eval_readout.png` and `eval_latent.png` into `out` (created if
    /// missing); the error says where and suggests `--out`.
    pub fn write(&self, out: &Path) -> Result<(), RunError> {
        let wrap = |e: RunError| RunError::EvalOutput {
            dir: out.to_path_buf(),
            source: Box::new(e),
        };
        let run = RunDir::output(out).map_err(wrap)?;
        run.write_json(run_dir::EVAL, &self.json).map_err(wrap)?;
        run.write_example_plots("eval_", &self.traces, "fresh trials", self.time_unit)
            .map_err(wrap)
    }
}

/// Evaluates the trained parameters of run directory `dir` on `n` fresh trials of the
/// stream `seed` (never used in training); writes and returns `eval.json`.
pub fn evaluate(dir: &Path, n: usize, seed: u64) -> Result<serde_json::Value, RunError> {
    let ev = compute_evaluation(dir, n, seed)?;
    ev.write(dir)?;
    Ok(ev.json)
}

/// Evaluates the trained parameters of run directory `dir` on `n` fresh trials of the
/// stream `seed`, writing nothing (see [`Evaluation::write`]).
pub fn compute_evaluation(dir: &Path, n: usize, seed: u64) -> Result<Evaluation, RunError> {
    let (run, cfg) = RunDir::open(dir)?;
    match cfg.precision {
        Precision::F64 => evaluate_as::<f64>(&cfg, &run, n, seed),
        Precision::F32 => evaluate_as::<f32>(&cfg, &run, n, seed),
    }
}

fn evaluate_as<T: Real>(
    cfg: &TrainConfig,
    run: &RunDir,
    n: usize,
    seed: u64,
) -> Result<Evaluation, RunError> {
    if n == 0 {
        return Err(RunError::option("--trials", "must be at least 1"));
    }
    cfg.model.require::<T>(Capability::Evaluate)?;
    // The fresh trials are held at once, as a validation set of `n` trials.
    let mut held = cfg.clone();
    held.training.n_val_trials = n;
    crate::memory::check(
        held.memory_estimate(),
        format!("evaluating {n} trials at once (--trials)"),
        "use fewer --trials",
    )?;
    let mut tr = Trainer::<T>::new(cfg)?;
    tr.load_params_file(&run.file(run_dir::PARAMS))?;
    let ev = tr.evaluate_fresh(derive_seed(seed, &[3]), n)?;
    let mut json = json!({
        "run": run.path().display().to_string(),
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
    let traces = example_traces(&tr, derive_seed(seed, &[4]))?;
    Ok(Evaluation {
        json,
        traces,
        time_unit: tr.spec().time_unit,
    })
}

/// The message of `neurode train`'s progress line: the last training loss and accuracy
/// (3 decimals) and, once validated, the validation accuracy with its worst condition's,
/// short enough that the whole line fits about 100 columns.
pub fn progress_message(m: &crate::metrics::Metrics, last_val: Option<(f64, f64)>) -> String {
    let val = last_val.map_or(String::new(), |(acc, worst)| {
        format!(" val {acc:.3} (min {worst:.3})")
    });
    format!("loss {:.3} acc {:.3}{val}", m.train_loss, m.train_accuracy)
}
