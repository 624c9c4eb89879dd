//! A run directory, the one owner of its files: every file of a run (`neurode train`,
//! `neurode eval`) is written through a [`RunDir`], under the names below, the data files
//! crash-safely (write-then-rename; the PNG plots are drawn in place); the commands that
//! read a run (`eval`, `simulate`, `analyze`) open it here too.
//!
//! | file | written by |
//! |---|---|
//! | `config.toml` | [`RunDir::write_config`], at the start of a run |
//! | `checkpoint.safetensors` | [`RunDir::write_checkpoint`], every `save_every` iterations and at the end |
//! | `metrics.csv` | [`RunDir::write_metrics`], with each checkpoint and at the end |
//! | `params.safetensors`, `best.safetensors` | [`RunDir::write_params`], at the end |
//! | `structure.json`, `summary.json`, `eval.json` | [`RunDir::write_json`] |
//! | `training.png`, `readout.png`, `latent.png` (and `eval_`) | [`RunDir::write_training_plot`], [`RunDir::write_example_plots`] |
//! | the kind's own files (the Kim `.mat`) | [`RunDir::write_kind_exports`] |

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use neurode_solvers::Real;

use crate::config::TrainConfig;
use crate::io::{check_dir_writable, write_atomic, write_safetensors, IoError, NamedArray};
use crate::metrics::Metrics;
use crate::plot;
use crate::run_error::RunError;
use crate::train::{ExampleTraces, Trainer};

/// The run's configuration, every setting included.
pub const CONFIG: &str = "config.toml";
/// The optimiser state, for `--resume`.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The final parameters.
pub const PARAMS: &str = "params.safetensors";
/// The parameters of the best validation accuracy (ties to the lower validation loss).
pub const BEST: &str = "best.safetensors";
/// One row per iteration.
pub const METRICS: &str = "metrics.csv";
/// What the run reports at its end.
pub const SUMMARY: &str = "summary.json";
/// The kind's summary of the trained parameters.
pub const STRUCTURE: &str = "structure.json";
/// `neurode eval`'s report.
pub const EVAL: &str = "eval.json";

/// The text of `config.toml` for `cfg`: every setting, defaults included; an error (not a
/// panic) for a config TOML cannot hold.
pub fn config_text(cfg: &TrainConfig) -> Result<String, RunError> {
    toml::to_string(cfg).map_err(|e| RunError::ConfigText {
        message: e.to_string(),
    })
}

/// A run directory (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Where a run of `cfg` goes: `out`, or `runs/<name>`.
    pub fn for_config(cfg: &TrainConfig, out: Option<&Path>) -> RunDir {
        RunDir {
            path: out
                .map(Path::to_path_buf)
                .unwrap_or_else(|| Path::new("runs").join(&cfg.name)),
        }
    }
    /// A directory to start a fresh run in, checked but not yet created (see
    /// [`make`](Self::make)): refused if it holds a run, if it exists and holds other
    /// files but no run, or if it cannot be created or written. Changes nothing on disk.
    pub fn check_fresh(path: &Path) -> Result<RunDir, RunError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        if dir.file(CHECKPOINT).exists() || dir.file(SUMMARY).exists() {
            return Err(RunError::Occupied {
                path: path.to_path_buf(),
            });
        }
        if path.is_dir() && !dir.file(CONFIG).exists() {
            let mut names: Vec<String> = std::fs::read_dir(path)
                .map_err(|e| IoError::fs("cannot list", path, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !names.is_empty() {
                names.sort();
                let more = names.len().saturating_sub(3);
                names.truncate(3);
                let mut entries = names.join(", ");
                if more > 0 {
                    entries.push_str(&format!(" and {more} more"));
                }
                return Err(RunError::NotEmpty {
                    path: path.to_path_buf(),
                    entries,
                });
            }
        }
        check_dir_writable(path)?;
        Ok(dir)
    }
    /// Creates the directory (and its parents); whether it did not exist before.
    pub fn make(&self) -> Result<bool, RunError> {
        let new = !self.path.exists();
        std::fs::create_dir_all(&self.path)
            .map_err(|e| IoError::fs("cannot create run directory", &self.path, e))?;
        Ok(new)
    }
    /// A directory to write a command's files into (`neurode eval --out`), created if
    /// missing.
    pub fn output(path: &Path) -> Result<RunDir, RunError> {
        std::fs::create_dir_all(path)
            .map_err(|e| IoError::fs("cannot create directory", path, e))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }
    /// A directory whose run to resume: refused without a checkpoint.
    pub fn resume(path: &Path) -> Result<RunDir, RunError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        if !dir.file(CHECKPOINT).exists() {
            return Err(RunError::NothingToResume {
                path: path.to_path_buf(),
            });
        }
        Ok(dir)
    }
    /// A run written by `neurode train`, and its config.
    pub fn open(path: &Path) -> Result<(RunDir, TrainConfig), RunError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        let cfg = TrainConfig::load(dir.file(CONFIG)).map_err(|source| RunError::NotARun {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((dir, cfg))
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The path of its file `name` (one of this module's names, or a kind's export).
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `config.toml`: every setting of `cfg`, defaults included.
    pub fn write_config(&self, cfg: &TrainConfig) -> Result<(), RunError> {
        self.write_config_text(&config_text(cfg)?)
    }
    /// `config.toml` from [`config_text`]'s text.
    pub fn write_config_text(&self, text: &str) -> Result<(), RunError> {
        Ok(write_atomic(&self.file(CONFIG), text.as_bytes())?)
    }
    /// `checkpoint.safetensors`: the trainer's state.
    pub fn write_checkpoint<T: Real>(&self, tr: &Trainer<T>) -> Result<(), RunError> {
        Ok(tr.save_checkpoint(&self.file(CHECKPOINT))?)
    }
    /// `metrics.csv`: one row per metrics row, a validation accuracy column per condition.
    pub fn write_metrics(&self, rows: &[Metrics], conditions: &[&str]) -> Result<(), RunError> {
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
        Ok(write_atomic(&self.file(METRICS), s.as_bytes())?)
    }
    /// A parameter file (`params.safetensors`, `best.safetensors`).
    pub fn write_params<T: Real>(
        &self,
        name: &str,
        arrays: &[NamedArray<T>],
        metadata: HashMap<String, String>,
    ) -> Result<(), RunError> {
        Ok(write_safetensors(&self.file(name), arrays, metadata)?)
    }
    /// A JSON file, pretty-printed.
    pub fn write_json(&self, name: &str, value: &serde_json::Value) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
        Ok(write_atomic(&self.file(name), text.as_bytes())?)
    }
    /// A JSON file of the run (`summary.json`), `None` if it does not exist.
    pub fn read_json(&self, name: &str) -> Result<Option<serde_json::Value>, RunError> {
        let path = self.file(name);
        if !path.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| IoError::fs("cannot read", &path, e))?;
        let value = serde_json::from_str(&text)
            .map_err(|e| IoError::format(&path, format!("not valid JSON ({e})")))?;
        Ok(Some(value))
    }
    /// `training.png`: the loss and accuracy curves.
    pub fn write_training_plot(
        &self,
        rows: &[Metrics],
        conditions: &[&str],
    ) -> Result<(), RunError> {
        plot::training_curves(&self.file("training.png"), rows, conditions).map_err(RunError::Plot)
    }
    /// `<prefix>readout.png` (readout traces of the example trials) and `<prefix>latent.png`
    /// (their state-space trajectories on the first two principal components; skipped
    /// when the states do not vary).
    pub fn write_example_plots(
        &self,
        prefix: &str,
        traces: &ExampleTraces,
        what: &str,
        time_unit: &str,
    ) -> Result<(), RunError> {
        plot::lines(
            &self.file(&format!("{prefix}readout.png")),
            &format!("readout of {what}"),
            &format!("t ({time_unit})"),
            "readout y",
            &traces.readout,
        )
        .map_err(RunError::Plot)?;
        let Some([e1, e2]) = traces.explained else {
            return Ok(());
        };
        plot::lines(
            &self.file(&format!("{prefix}latent.png")),
            &format!("state-space trajectories of {what}"),
            &format!("PC1 ({:.1} % of variance)", 100.0 * e1),
            &format!("PC2 ({:.1} % of variance)", 100.0 * e2),
            &traces.latent,
        )
        .map_err(RunError::Plot)
    }
    /// The run's kind's own files (the Kim `.mat`); their paths.
    pub fn write_kind_exports<T: Real>(&self, tr: &Trainer<T>) -> Result<Vec<PathBuf>, RunError> {
        Ok(crate::export::write_kind_exports(tr, &self.path)?)
    }
}
