//! Run configurations in TOML: unknown keys are rejected and every error names the key (and
//! its line where the file has one).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::tasks::ContextualSwitch;

/// Errors of loading or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read config file {path}: {source}. Check the path (configs/ holds ready-made ones)"
    )]
    Io {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (toml's message names key, line, column).
    #[error("config {path}: {message}")]
    Parse {
        /// The path given.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value out of range.
    #[error("config {path}: `{key}`{line}: {message}")]
    Invalid {
        /// The path given.
        path: String,
        /// The dotted key (`model.n`).
        key: String,
        /// " (line N)" where the key appears in the file.
        line: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Floating-point precision of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision.
    F32,
    /// Double precision (default).
    #[default]
    F64,
}

/// Stepper of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StepperName {
    /// Fixed-step forward Euler (needs `dt`).
    #[default]
    Euler,
    /// Adaptive Tsit5 (`rtol`, `atol`; `dt` is the first step if given).
    Tsit5,
}

/// Loss on the averaged readout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Mean squared error against the ±1 target.
    #[default]
    Mse,
    /// Binary cross-entropy with the readout as logit, target (label + 1) / 2.
    Bce,
}

/// The low-rank RNN (see `neurode_models::lowrank`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Units N.
    pub n: usize,
    /// Rank R.
    pub rank: usize,
    /// Bulk gain g.
    pub g: f64,
    /// Time constant tau (ms).
    pub tau: f64,
    /// Scale of M at initialisation (times 1/sqrt(N)).
    pub m_init_std: f64,
    /// Scale of N at initialisation (times 1/sqrt(N)).
    pub n_init_std: f64,
    /// Scale of B at initialisation (times 1/sqrt(inputs)).
    pub b_init_std: f64,
    /// Scale of the readout w at initialisation (times 1/sqrt(N)).
    pub w_init_std: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            n: 500,
            rank: 2,
            g: 0.8,
            tau: 1.0,
            m_init_std: 1.0,
            n_init_std: 1.0,
            b_init_std: 1.0,
            w_init_std: 1.0,
        }
    }
}

/// The solver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolverConfig {
    /// `euler` or `tsit5`.
    pub stepper: StepperName,
    /// Euler's step (ms); Tsit5's first step if set.
    pub dt: Option<f64>,
    /// Tsit5 relative tolerance.
    pub rtol: f64,
    /// Tsit5 absolute tolerance.
    pub atol: f64,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            stepper: StepperName::Euler,
            dt: Some(0.1),
            rtol: 1e-6,
            atol: 1e-8,
        }
    }
}

/// Training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Trials per iteration.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Global gradient-norm clip (0: none).
    pub grad_clip: f64,
    /// Training trials; iterations = n_train_trials / batch_size.
    pub n_train_trials: usize,
    /// Validation trials (a fixed seeded set).
    pub n_val_trials: usize,
    /// Log the training loss every this many iterations.
    pub log_every: usize,
    /// Validate every this many iterations (and at the end).
    pub eval_every: usize,
    /// Write a checkpoint every this many iterations (0: never).
    pub save_every: usize,
    /// `mse` or `bce`.
    pub loss: LossKind,
    /// Cosine decay of the learning rate to `cosine_alpha` times its start over the run.
    pub cosine_decay: bool,
    /// Final learning-rate fraction of the cosine decay.
    pub cosine_alpha: f64,
    /// Train M.
    pub train_m: bool,
    /// Train N.
    pub train_n: bool,
    /// Train B.
    pub train_b: bool,
    /// Train the readout w and its bias b.
    pub train_w: bool,
    /// Worker threads; the batch is split among them (results depend on this number, not
    /// on the machine).
    pub threads: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            batch_size: 32,
            learning_rate: 1e-3,
            grad_clip: 1.0,
            n_train_trials: 10_000,
            n_val_trials: 500,
            log_every: 10,
            eval_every: 100,
            save_every: 50,
            loss: LossKind::Mse,
            cosine_decay: false,
            cosine_alpha: 0.01,
            train_m: true,
            train_n: true,
            train_b: true,
            train_w: true,
            threads: 2,
        }
    }
}

/// A training run: low-rank RNN on the contextual switch task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name (the default run directory is `runs/<name>`).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Seed of everything random (initialisation, trials).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `f64` (default) or `f32`.
    #[serde(default)]
    pub precision: Precision,
    /// The model.
    #[serde(default)]
    pub model: ModelConfig,
    /// The task.
    #[serde(default)]
    pub task: ContextualSwitch,
    /// The solver.
    #[serde(default)]
    pub solver: SolverConfig,
    /// Training.
    #[serde(default)]
    pub training: TrainingConfig,
}

fn default_seed() -> u64 {
    42
}

impl TrainConfig {
    /// Reads and checks a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
            path: p.display().to_string(),
            source,
        })?;
        Self::parse(&text, &p.display().to_string())
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: origin.to_string(),
                line: line_of(text, &key)
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default(),
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// Number of training iterations.
    pub fn iterations(&self) -> usize {
        self.training.n_train_trials / self.training.batch_size.max(1)
    }

    /// Range checks; the error is `(dotted key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let m = &self.model;
        let err = |k: &str, msg: String| Err((k.to_string(), msg));
        if m.n == 0 {
            return err(
                "model.n",
                "N = 0: the network needs at least one unit".into(),
            );
        }
        if !(m.g.is_finite()) {
            return err("model.g", format!("g = {}: must be finite", m.g));
        }
        if !(m.tau.is_finite() && m.tau > 0.0) {
            return err(
                "model.tau",
                format!("tau = {}: must be a positive number of ms", m.tau),
            );
        }
        for (k, v) in [
            ("model.m_init_std", m.m_init_std),
            ("model.n_init_std", m.n_init_std),
            ("model.b_init_std", m.b_init_std),
            ("model.w_init_std", m.w_init_std),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(k, format!("{v}: must be >= 0"));
            }
        }
        self.task
            .validate()
            .map_err(|(k, msg)| (format!("task.{k}"), msg))?;
        let s = &self.solver;
        match (s.stepper, s.dt) {
            (StepperName::Euler, None) => {
                return err("solver.dt", "Euler needs a step: set dt (e.g. 0.1)".into())
            }
            (_, Some(dt)) if !(dt.is_finite() && dt > 0.0) => {
                return err(
                    "solver.dt",
                    format!("dt = {dt}: the step must be a positive number of ms"),
                )
            }
            _ => {}
        }
        if s.stepper == StepperName::Tsit5 {
            for (k, v) in [("solver.rtol", s.rtol), ("solver.atol", s.atol)] {
                if !(v.is_finite() && v > 0.0) {
                    return err(
                        k,
                        format!("{v}: tolerances must be positive (e.g. rtol 1e-6, atol 1e-8)"),
                    );
                }
            }
        }
        let t = &self.training;
        if t.batch_size == 0 {
            return err(
                "training.batch_size",
                "0: at least one trial per batch".into(),
            );
        }
        if t.n_train_trials < t.batch_size {
            return err(
                "training.n_train_trials",
                format!(
                    "{} trials make no batch of {}: raise n_train_trials",
                    t.n_train_trials, t.batch_size
                ),
            );
        }
        if t.n_val_trials == 0 {
            return err("training.n_val_trials", "0: validation needs trials".into());
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return err(
                "training.learning_rate",
                format!("{}: must be positive", t.learning_rate),
            );
        }
        if !(t.grad_clip.is_finite() && t.grad_clip >= 0.0) {
            return err(
                "training.grad_clip",
                format!("{}: must be >= 0 (0 turns clipping off)", t.grad_clip),
            );
        }
        if !(t.cosine_alpha.is_finite() && (0.0..=1.0).contains(&t.cosine_alpha)) {
            return err(
                "training.cosine_alpha",
                format!("{}: must lie in [0, 1]", t.cosine_alpha),
            );
        }
        if t.log_every == 0 || t.eval_every == 0 {
            let k = if t.log_every == 0 {
                "training.log_every"
            } else {
                "training.eval_every"
            };
            return err(k, "0: must be at least 1".into());
        }
        if t.threads == 0 || t.threads > t.batch_size {
            return err(
                "training.threads",
                format!(
                    "{}: must lie in 1..=batch_size ({})",
                    t.threads, t.batch_size
                ),
            );
        }
        Ok(())
    }
}

/// The 1-based line of dotted `key` (`section.name`) in TOML `text`, if written there.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim().to_string();
            continue;
        }
        if current == section {
            if let Some((k, _)) = l.split_once('=') {
                if k.trim() == name {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}
