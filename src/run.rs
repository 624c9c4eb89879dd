//! A training run on disk: the run directory, its files, checkpoints and resume.
//!
//! `runs/<name>/` (or `--out DIR`) holds `config.toml` (every setting, defaults included),
//! `checkpoint.safetensors` (optimiser state, written every `save_every` iterations by
//! write-then-rename), `params.safetensors` (final parameters, row-major `C`, `M`, `N`, `B`,
//! `w`, `b`), `best.safetensors` (the parameters of the best validation accuracy),
//! `metrics.csv`, `summary.json`, `structure.json`, and the plots `training.png` (loss and
//! accuracy curves), `readout.png` (readout traces of example trials per context) and
//! `latent.png` (their state-space trajectories on the first two principal components).
//! `neurode eval` adds `eval.json`, `eval_readout.png` and `eval_latent.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use neurode_solvers::Real;
use serde_json::json;

use crate::config::{Precision, TrainConfig};
use crate::io::{read_safetensors, write_atomic, write_safetensors, IoError, NamedArray};
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
    /// A plot could not be drawn.
    #[error("{0}")]
    Plot(String),
    /// The run directory does not fit the request.
    #[error("{0}")]
    Dir(String),
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
            return Err(RunError::Dir(format!(
                "nothing to resume in {}: it has no checkpoint.safetensors. Run without --resume to start this run",
                dir.display()
            )));
        }
        Trainer::<T>::resume(cfg, &ckpt)?
    } else {
        if ckpt.exists() || dir.join("summary.json").exists() {
            return Err(RunError::Dir(format!(
                "{} already holds a run; pass --resume to continue it, --out DIR for a new run, or delete the directory",
                dir.display()
            )));
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
    while trainer.iteration() < total {
        let row = trainer.step()?;
        on_step(trainer.iteration(), total, &row);
        if save_every > 0 && trainer.iteration() % save_every == 0 {
            trainer.save_checkpoint(&ckpt)?;
            write_metrics(dir, trainer.metrics())?;
        }
    }
    trainer.save_checkpoint(&ckpt)?;
    let wall = start.elapsed().as_secs_f64();
    finish(&trainer, dir, wall)
}

fn write_metrics(dir: &Path, rows: &[Metrics]) -> Result<(), IoError> {
    let mut s = String::from("iteration,train_loss,train_accuracy,val_loss,val_accuracy,val_ctx1_accuracy,val_ctx2_accuracy,learning_rate,steps_per_trial\n");
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for r in rows {
        let c = r.val_condition_accuracy.clone().unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.iteration,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
            opt(c.first().copied()),
            opt(c.get(1).copied()),
            r.learning_rate,
            r.steps_per_trial
        ));
    }
    write_atomic(&dir.join("metrics.csv"), s.as_bytes())
}

fn finish<T: Real>(tr: &Trainer<T>, dir: &Path, wall: f64) -> Result<RunSummary, RunError> {
    let cfg = tr.config();
    let meta = |kind: &str| {
        [
            ("format", "neurode low-rank RNN"),
            ("kind", kind),
            ("layout", "row-major; W = g C + M N^T / N"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            ("g".to_string(), cfg.model.g.to_string()),
            ("tau".to_string(), cfg.model.tau.to_string()),
        ])
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
    write_metrics(dir, tr.metrics())?;
    let structure = structure_summary(&tr.param_arrays(tr.theta()), cfg.model.n, cfg.model.rank);
    write_json(&dir.join("structure.json"), &structure)?;
    let last_val = tr.metrics().iter().rev().find(|m| m.val_accuracy.is_some());
    let steps: Vec<f64> = tr.metrics().iter().map(|m| m.steps_per_trial).collect();
    let json = json!({
        "name": cfg.name,
        "iterations": tr.iteration(),
        "precision": format!("{:?}", cfg.precision).to_lowercase(),
        "stepper": format!("{:?}", cfg.solver.stepper).to_lowercase(),
        "wall_seconds": wall,
        "final": last_val.map(|m| json!({
            "iteration": m.iteration,
            "val_loss": m.val_loss,
            "val_accuracy": m.val_accuracy,
            "val_ctx1_accuracy": m.val_condition_accuracy.as_ref().map(|c| c[0]),
            "val_ctx2_accuracy": m.val_condition_accuracy.as_ref().map(|c| c[1]),
        })),
        "best": tr.best().map(|(acc, it, _)| json!({"iteration": it, "val_accuracy": acc})),
        "mean_steps_per_trial": steps.iter().sum::<f64>() / steps.len().max(1) as f64,
    });
    write_json(&dir.join("summary.json"), &json)?;
    let conditions = &tr.spec().conditions;
    plot::training_curves(&dir.join("training.png"), tr.metrics(), conditions)
        .map_err(RunError::Plot)?;
    let traces = example_traces(tr, derive_seed(cfg.seed, &[4]), 0.5)?;
    example_plots(dir, "", &traces, "example trials (after training)")?;
    Ok(RunSummary {
        dir: dir.to_path_buf(),
        json,
    })
}

/// Norms, cosine overlaps and the singular values of `M Nᵀ / N` of trained low-rank
/// parameters (row-major arrays as written to `params.safetensors`).
pub fn structure_summary<T: Real>(
    arrays: &[NamedArray<T>],
    n: usize,
    r: usize,
) -> serde_json::Value {
    let get = |name: &str| {
        arrays
            .iter()
            .find(|a| a.name == name)
            .expect("array present")
    };
    let col = |a: &NamedArray<T>, j: usize| -> Vec<f64> {
        let cols = a.shape.get(1).copied().unwrap_or(1);
        (0..a.shape[0])
            .map(|i| a.data[i * cols + j].as_f64())
            .collect()
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let frob = |a: &NamedArray<T>| {
        a.data
            .iter()
            .map(|x| x.as_f64().powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let cos = |a: &[f64], b: &[f64]| {
        let d = norm(a) * norm(b);
        if d == 0.0 {
            0.0
        } else {
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / d
        }
    };
    let (m, nv, b, w) = (get("M"), get("N"), get("B"), get("w"));
    let mut vecs: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..r {
        vecs.push((format!("M{}", i + 1), col(m, i)));
    }
    for i in 0..r {
        vecs.push((format!("N{}", i + 1), col(nv, i)));
    }
    vecs.push(("w".into(), col(w, 0)));
    for (j, ch) in ["s1", "s2", "ctx1", "ctx2"].iter().enumerate() {
        vecs.push(((*ch).into(), col(b, j)));
    }
    let mut overlaps = serde_json::Map::new();
    for i in 0..vecs.len() {
        for j in i + 1..vecs.len() {
            overlaps.insert(
                format!("{}_{}", vecs[i].0, vecs[j].0),
                json!(cos(&vecs[i].1, &vecs[j].1)),
            );
        }
    }
    let mat = faer::Mat::<f64>::from_fn(n, n, |i, j| {
        (0..r)
            .map(|k| m.data[i * r + k].as_f64() * nv.data[j * r + k].as_f64())
            .sum::<f64>()
            / n as f64
    });
    let mut sv: Vec<f64> = mat
        .singular_values()
        .map(|v| v.into_iter().take(r.max(1)).collect())
        .unwrap_or_default();
    sv.sort_by(|a, b| b.total_cmp(a));
    json!({
        "N": n,
        "R": r,
        "norms": {"M": frob(m), "N": frob(nv), "B": frob(b), "w": frob(w), "b": get("b").data[0].as_f64().abs()},
        "overlaps": overlaps,
        "low_rank_singular_values": sv,
    })
}

/// Evaluates the trained parameters of run directory `dir` on `n` fresh trials of the
/// stream `seed` (never used in training); writes and returns `eval.json`.
pub fn evaluate(dir: &Path, n: usize, seed: u64) -> Result<serde_json::Value, RunError> {
    let cfg_path = dir.join("config.toml");
    let cfg = TrainConfig::load(&cfg_path)
        .map_err(|e| RunError::Dir(format!("{e} (is {} a run directory?)", dir.display())))?;
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
        return Err(RunError::Dir("--trials must be at least 1".into()));
    }
    let params = dir.join("params.safetensors");
    let (arrays, _) = read_safetensors::<T>(&params)?;
    let mut tr = Trainer::<T>::new(cfg)?;
    tr.load_param_arrays(&arrays, &params.display().to_string())?;
    let ev = tr.evaluate_fresh(derive_seed(seed, &[3]), n)?;
    let json = json!({
        "run": dir.display().to_string(),
        "trials": n,
        "seed": seed,
        "loss": ev.loss,
        "accuracy": ev.accuracy,
        "ctx1_accuracy": ev.condition_accuracy[0],
        "ctx2_accuracy": ev.condition_accuracy[1],
        "mean_steps_per_trial": ev.accepted_steps as f64 / n as f64,
    });
    write_json(&dir.join("eval.json"), &json)?;
    let traces = example_traces(&tr, derive_seed(seed, &[4]), 0.5)?;
    example_plots(dir, "eval_", &traces, "fresh trials")?;
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
) -> Result<(), RunError> {
    plot::lines(
        &dir.join(format!("{prefix}readout.png")),
        &format!("readout of {what}"),
        "t (ms)",
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
