//! Run configurations in TOML: unknown keys are rejected and every error names the key (and
//! its line where the file has one). A config is tagged by model and task:
//! `[model] kind = "lowrank" | "kim" | "multiregion"` (the kinds of
//! [`ModelConfig`]'s registry), `[task] kind = "contextual_switch" | "go_nogo" | "xor" |
//! "mante"`; the other keys of each table are that model's or task's settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::network::{kinds_with_key, Invalid, ModelConfig, SetError, Stepping, KIND_NAMES};
use crate::tasks::{Task, TaskConfig};

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

/// The error of an out-of-range key of the config `text` read from `origin`.
fn invalid(origin: &str, text: &str, e: Invalid) -> ConfigError {
    ConfigError::Invalid {
        path: origin.to_string(),
        line: line_of(text, &e.key)
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default(),
        key: e.key,
        message: e.message,
    }
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

/// The loss of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Squared error of the averaged readout against the ±1 target, or the mean squared
    /// error over a trace target's mask.
    #[default]
    Mse,
    /// Binary cross-entropy with the averaged readout as logit, target (label + 1) / 2
    /// (averaged-readout targets only).
    Bce,
    /// Root of the summed squared error over a trace target's mask (Kim et al. 2019,
    /// Eq. 8; the original's `l2`).
    #[serde(alias = "l2")]
    Rmse,
    /// Summed absolute error over a trace target's mask (the original's `l1`).
    L1,
}

/// Which trials validation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// One fixed seeded set of `n_val_trials` trials.
    #[default]
    Fixed,
    /// `n_val_trials` fresh trials at every validation (as Kim et al. evaluate).
    Fresh,
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

impl SolverConfig {
    /// How the solves of a run step.
    pub fn stepping(&self) -> Stepping {
        match self.stepper {
            StepperName::Euler => Stepping::Euler {
                dt: self.dt.unwrap_or(0.1),
            },
            StepperName::Tsit5 => Stepping::Tsit5 {
                rtol: self.rtol,
                atol: self.atol,
                dt0: self.dt,
            },
        }
    }
    /// The step of a fixed-step Euler solver (`None` for an adaptive one).
    pub fn euler_dt(&self) -> Option<f64> {
        match self.stepper {
            StepperName::Euler => self.dt,
            StepperName::Tsit5 => None,
        }
    }
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
    /// `mse`, `bce`, `rmse` or `l1`.
    pub loss: LossKind,
    /// `fixed` (one seeded validation set) or `fresh` (new trials each time).
    pub validation: Validation,
    /// Stop once a validation's mean loss is below this (with `stop_accuracy_above`).
    pub stop_loss_below: Option<f64>,
    /// Stop once a validation's accuracy is above this (with `stop_loss_below`).
    pub stop_accuracy_above: Option<f64>,
    /// Never stop early before this many training trials (go/no-go: 1500).
    pub stop_min_trials: usize,
    /// Cosine decay of the learning rate to `cosine_alpha` times its start over the run.
    pub cosine_decay: bool,
    /// Final learning-rate fraction of the cosine decay.
    pub cosine_alpha: f64,
    /// Worker threads; the batch is split among them (results depend on this number, not
    /// on the machine).
    pub threads: usize,
    /// With one worker thread and a spare core: draw the next batch's trials and noise on
    /// a helper thread while the current batch trains (the same bits as drawing them in
    /// place; a batch depends only on the seed and the iteration).
    pub prefetch: bool,
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
            validation: Validation::Fixed,
            stop_loss_below: None,
            stop_accuracy_above: None,
            stop_min_trials: 0,
            cosine_decay: false,
            cosine_alpha: 0.01,
            threads: 2,
            prefetch: true,
        }
    }
}

/// A training run: a model on a task.
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
    /// The model (`kind` = one of [`KIND_NAMES`]); every config has a `[model]` table.
    pub model: ModelConfig,
    /// The task (`kind` = `contextual_switch`, `go_nogo`, `xor` or `mante`); every config
    /// has a `[task]` table.
    pub task: TaskConfig,
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
        let origin = p.display().to_string();
        let mut cfg = Self::parse(&text, &origin)?;
        // Files the model names (a region file) are read now and kept inline (a run's
        // config.toml stands alone).
        let before = cfg.model.clone();
        cfg.model
            .kind_mut()
            .resolve(p.parent().unwrap_or(Path::new(".")))
            .map_err(|e| invalid(&origin, &text, e.under("model")))?;
        if cfg.model != before {
            cfg.validate().map_err(|e| invalid(&origin, &text, e))?;
        }
        Ok(cfg)
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| {
            let mut message = e.to_string().trim_end().to_string();
            // Inside a tagged table the parser points at the table: name the key's line too.
            if let Some(key) = message
                .split("unknown field `")
                .nth(1)
                .and_then(|r| r.split('`').next())
            {
                if let Some(line) = text
                    .lines()
                    .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
                {
                    message.push_str(&format!("\n(`{key}` is on line {})", line + 1));
                }
            }
            // Another family's config: name the command that runs it.
            let top = toml::from_str::<toml::Table>(text).ok();
            let has = |k: &str| top.as_ref().is_some_and(|t| t.contains_key(k));
            if has("architecture") {
                message = "this is a spiking-network config (it has [architecture]), which is \
                           not trained: run it with `neurode simulate <config>` (add \
                           --mean-field for its mean field)"
                    .to_string();
            } else if has("network") && !has("model") {
                message = "this is a mean-field config (it has [network]): use `neurode \
                           meanfield <config>`"
                    .to_string();
            }
            for (field, table) in [("model", "[model]"), ("task", "[task]")] {
                if message.contains(&format!("missing field `{field}`")) {
                    message.push_str(&format!(
                        "\nthe config has no {table} table; every config names its model and its \
                         task (a missing table is not filled with defaults): add {table} with \
                         `kind = ...` (see configs/ for complete configs)"
                    ));
                }
            }
            // A wrong type inside a tagged table: the parser points at the table's header;
            // read the table again as its kind's own settings, whose error names the key.
            if let Some((key, what)) = locate_in_tagged_table(text) {
                let line = line_of(text, &key).map_or(String::new(), |l| format!(" (line {l})"));
                message = format!("`{key}`{line}: {what}");
            }
            if message.contains("missing field `kind`") {
                message.push_str(&format!(
                    "\n[model] and [task] start with `kind`: [model] kind = {}; \
                         [task] kind = \"contextual_switch\", \"go_nogo\", \"xor\" or \"mante\"",
                    KIND_NAMES
                        .iter()
                        .map(|k| format!("\"{k}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            ConfigError::Parse {
                path: origin.to_string(),
                message,
            }
        })?;
        cfg.validate().map_err(|e| invalid(origin, text, e))?;
        Ok(cfg)
    }

    /// Number of training iterations.
    pub fn iterations(&self) -> usize {
        self.training.n_train_trials / self.training.batch_size.max(1)
    }

    /// Range checks; the error names the dotted key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let err = |k: &str, msg: String| Err(Invalid::new(k, msg));
        check_name(&self.name)?;
        let model = self.model.kind();
        model.validate().map_err(|e| e.under("model"))?;
        self.task.validate().map_err(|e| e.under("task"))?;
        let s = &self.solver;
        let spec = self.task.spec();
        match (s.stepper, s.dt) {
            (StepperName::Euler, None) => {
                return err("solver.dt", "Euler needs a step: set dt (e.g. 0.1)".into())
            }
            (_, Some(dt)) if !(dt.is_finite() && dt > 0.0) => {
                return err(
                    "solver.dt",
                    format!("dt = {dt}: the step must be a positive number (task time units)"),
                )
            }
            (_, Some(dt)) if dt > spec.t_end => {
                return err(
                    "solver.dt",
                    format!(
                        "dt = {dt} is longer than the trial ({} long): the solver would not take \
                         a single step inside it; use a step well below the trial length \
                         (e.g. {})",
                        spec.t_end,
                        spec.t_end / 100.0
                    ),
                )
            }
            (StepperName::Euler, Some(dt)) if spec.t_end / dt > MAX_STEPS as f64 => {
                let (key, what) = self.task.length_key();
                // The Kim et al. tasks step once per step of the original: the trial is what
                // to shorten there.
                if spec.time_unit.starts_with("step") && dt >= 1.0 {
                    return err(
                        &format!("task.{key}"),
                        format!(
                            "the trial is {} steps long: {:.3e} Euler steps of dt = {dt}, at \
                             most {MAX_STEPS} are allowed; shorten the trial ({key})",
                            spec.t_end,
                            spec.t_end / dt
                        ),
                    );
                }
                return err(
                    "solver.dt",
                    format!(
                        "dt = {dt} makes {:.3e} Euler steps per trial of length {} {}; at most \
                         {MAX_STEPS} are allowed: use a larger step (at least {:.3e}) or a \
                         shorter trial (task.{key}, {what})",
                        spec.t_end / dt,
                        spec.t_end,
                        spec.time_unit,
                        spec.t_end / MAX_STEPS as f64
                    ),
                );
            }
            _ => {}
        }
        model
            .check_solver(s.euler_dt())
            .map_err(|e| e.under("model"))?;
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
        self.check_loss()?;
        self.check_memory()?;
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
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0 && t.learning_rate <= 1.0) {
            return err(
                "training.learning_rate",
                format!(
                    "{}: Adam's learning rate is the size of each parameter's step: use a \
                     positive number at most 1 (1e-3 to 1e-2 is usual)",
                    t.learning_rate
                ),
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
        self.check_stop_rule()?;
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

/// Command-line overrides of a config: `--set key=value` for any key of the `[model]`
/// table, the knobs of the Kim et al. original's `main.py` (`--N`, `--P_inh`, ...: aliases
/// of `--set` keys), the training's trial count and loss, and the run's seed. `None` (or
/// nothing to set) leaves the config's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--set key=value`: keys of the `[model]` table (`model.` in front is optional),
    /// values in TOML (`4`, `[4, 20]`, `true`, `"softplus"`; a bare word is a string).
    pub set: Vec<(String, String)>,
    /// `--N`: `model.n`.
    pub n: Option<usize>,
    /// `--P_inh`: `model.p_inh`.
    pub p_inh: Option<f64>,
    /// `--P_rec`: `model.p_rec`.
    pub p_rec: Option<f64>,
    /// `--som_N`: `model.som_n`.
    pub som_n: Option<usize>,
    /// `--gain`: `model.gain`.
    pub gain: Option<f64>,
    /// `--apply_dale`: `model.apply_dale`.
    pub apply_dale: Option<bool>,
    /// `--act`: `model.act` (`sigmoid`, `clipped_relu` or `softplus`).
    pub act: Option<String>,
    /// `training.loss`: `mse`, `bce`, `rmse` (or `l2`), `l1`.
    pub loss_fn: Option<String>,
    /// `--decay_taus`: `model.taus` (one value or min and max, in steps).
    pub decay_taus: Option<Vec<f64>>,
    /// `training.n_train_trials`: the maximum number of training trials.
    pub n_trials: Option<usize>,
    /// `seed`.
    pub seed: Option<u64>,
}

/// One override of a `[model]` key: the key, its value, and the option that gave it.
struct ModelSetting {
    key: String,
    value: toml::Value,
    from: String,
}

impl Overrides {
    /// The `[model]` keys these overrides set, in order: the aliases, then `--set`.
    fn model_settings(&self) -> Vec<ModelSetting> {
        use toml::Value;
        let one = |key: &str, from: &str, value: Option<Value>| {
            value.map(|value| ModelSetting {
                key: key.into(),
                value,
                from: from.into(),
            })
        };
        // Beyond i64 a count is no size anyway: saturate, and the kind's check names it.
        let int =
            |v: Option<usize>| v.map(|v| Value::Integer(i64::try_from(v).unwrap_or(i64::MAX)));
        let float = |v: Option<f64>| v.map(Value::Float);
        let aliases = [
            one("n", "--N", int(self.n)),
            one("p_inh", "--P_inh", float(self.p_inh)),
            one("p_rec", "--P_rec", float(self.p_rec)),
            one("som_n", "--som_N", int(self.som_n)),
            one("gain", "--gain", float(self.gain)),
            one(
                "apply_dale",
                "--apply_dale",
                self.apply_dale.map(Value::Boolean),
            ),
            one("act", "--act", self.act.clone().map(Value::String)),
            one(
                "taus",
                "--decay_taus",
                self.decay_taus
                    .as_ref()
                    .map(|t| Value::Array(t.iter().copied().map(Value::Float).collect())),
            ),
        ];
        let sets = self.set.iter().map(|(k, v)| {
            let key = k.strip_prefix("model.").unwrap_or(k).trim().to_string();
            ModelSetting {
                from: format!("--set {key}"),
                key,
                value: toml_value(v),
            }
        });
        aliases.into_iter().flatten().chain(sets).collect()
    }
}

/// A command-line value as TOML (`4`, `[4, 20]`, `true`, `"x"`), or the text itself as a
/// string where it is not TOML (`softplus`).
fn toml_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.trim().to_string()))
}

impl TrainConfig {
    /// Applies command-line overrides and checks the result; the error names the key and
    /// the option, and leaves the config as it was.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let mut c = self.clone();
        c.apply_unchecked(o)?;
        *self = c;
        Ok(())
    }

    fn apply_unchecked(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let bad = |key: String, from: &str, message: String| ConfigError::Invalid {
            path: "command line".into(),
            key,
            line: format!(" (from {from})"),
            message,
        };
        let settings = o.model_settings();
        for s in &settings {
            let kind = self.model.name();
            let title = self.model.kind().title();
            match self.model.kind_mut().set(&s.key, s.value.clone()) {
                Ok(()) => {}
                Err(SetError::Unknown { key }) => {
                    let others = kinds_with_key(&key, &s.value);
                    let hint = if others.is_empty() {
                        "see the keys of its [model] table".to_string()
                    } else {
                        format!("it is a setting of {}", others.join(", "))
                    };
                    return Err(bad(
                        format!("model.{key}"),
                        &s.from,
                        format!("not a setting of model kind `{kind}` ({title}); {hint}"),
                    ));
                }
                Err(SetError::Value { key, message }) => {
                    return Err(bad(format!("model.{key}"), &s.from, message))
                }
            }
        }
        if let Some(l) = &o.loss_fn {
            self.training.loss = toml::Value::String(l.clone()).try_into().map_err(|_| {
                bad(
                    "training.loss".into(),
                    "--loss_fn",
                    format!("`{l}`: use mse, bce, rmse (l2) or l1"),
                )
            })?;
        }
        if let Some(n) = o.n_trials {
            self.training.n_train_trials = n;
        }
        if let Some(s) = o.seed {
            self.seed = s;
        }
        self.validate().map_err(|e| {
            // The option that set the key, where one did.
            let model_keys = settings
                .iter()
                .map(|s| (format!("model.{}", s.key), s.from.clone()));
            let training = [
                ("training.loss", "--loss_fn", o.loss_fn.is_some()),
                (
                    "training.n_train_trials",
                    "--n_trials",
                    o.n_trials.is_some(),
                ),
            ]
            .into_iter()
            .filter(|(_, _, set)| *set)
            .map(|(k, f, _)| (k.to_string(), f.to_string()));
            let line = model_keys
                .chain(training)
                .find(|(k, _)| *k == e.key)
                .map_or(String::new(), |(_, from)| format!(" (from {from})"));
            ConfigError::Invalid {
                path: "with the command-line options".into(),
                key: e.key,
                line,
                message: e.message,
            }
        })
    }
}

/// Most Euler steps a trial may take (the solver's adaptive step budget).
pub const MAX_STEPS: usize = neurode_solvers::DEFAULT_MAX_STEPS;

impl TrainConfig {
    /// The loss must fit the task's targets.
    fn check_loss(&self) -> Result<(), Invalid> {
        let trial = self.task.trial::<f64>(0, 0);
        let trace = matches!(trial.target, crate::tasks::Target::Trace { .. });
        let loss = self.training.loss;
        let ok = match loss {
            LossKind::Mse => true,
            LossKind::Bce => !trace,
            LossKind::Rmse | LossKind::L1 => trace,
        };
        if ok {
            return Ok(());
        }
        let name = format!("{loss:?}").to_lowercase();
        Err(Invalid::new(
            "training.loss",
            if trace {
                format!("`{name}` needs a target that is one value per trial; task `{}` has trace targets: use rmse, l1 or mse", self.task.kind())
            } else {
                format!("`{name}` needs trace targets; task `{}` has one target value per trial: use mse or bce", self.task.kind())
            },
        ))
    }

    /// The stop rule must be one that a run can meet.
    fn check_stop_rule(&self) -> Result<(), Invalid> {
        let t = &self.training;
        if let Some(v) = t.stop_loss_below {
            if !(v.is_finite() && v > 0.0) {
                return Err(Invalid::new(
                    "training.stop_loss_below",
                    format!(
                        "{v}: a loss is never below this; use a positive number (or leave the \
                         key out to stop on accuracy alone)"
                    ),
                ));
            }
        }
        if let Some(v) = t.stop_accuracy_above {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(Invalid::new(
                    "training.stop_accuracy_above",
                    format!(
                        "{v}: an accuracy (a fraction in [0, 1]) is never above this; use a \
                         fraction below 1, e.g. 0.95 (or leave the key out)"
                    ),
                ));
            }
        }
        if t.stop_min_trials > 0 && t.stop_min_trials >= t.n_train_trials {
            return Err(Invalid::new(
                "training.stop_min_trials",
                format!(
                    "{}: not below n_train_trials = {}, so the run ends before it may stop \
                     early; raise n_train_trials (--n_trials) above {} or lower \
                     stop_min_trials (0: no minimum)",
                    t.stop_min_trials, t.n_train_trials, t.stop_min_trials
                ),
            ));
        }
        Ok(())
    }

    /// The bytes a training run of this config holds: the model's arrays (parameters,
    /// optimiser state, per-worker scratch) and the trials' (saved states at the loss times in
    /// every worker, the noise of a batch or of the validation set).
    pub fn memory_estimate(&self) -> f64 {
        let (model, trials) = self.memory_parts();
        model + trials
    }

    fn memory_parts(&self) -> (f64, f64) {
        let spec = self.task.spec();
        let t = &self.training;
        let n = self.model.n() as f64;
        let noise_steps = self.noise_steps();
        let held = t.batch_size.max(t.n_val_trials) as f64;
        let saves = 8.0 * n * spec.loss_times.len() as f64 * held;
        let noise = 8.0 * n * noise_steps * held;
        (
            self.model.kind().memory_estimate(t.threads),
            2.0 * saves + noise,
        )
    }

    /// The noise steps of a trial: the task's length over the model's noise step (0 for a
    /// model without noise).
    pub fn noise_steps(&self) -> f64 {
        let draws = self.model.kind().draws();
        if draws.noise_sd > 0.0 {
            self.task.spec().t_end / draws.noise_dt
        } else {
            0.0
        }
    }

    /// Refuses a run that would not fit in memory, before anything is allocated.
    fn check_memory(&self) -> Result<(), Invalid> {
        let spec = self.task.spec();
        let t = &self.training;
        let draws = self.model.kind().draws();
        let noise_steps = self.noise_steps();
        if noise_steps > crate::tasks::MAX_SAMPLES as f64 {
            return Err(Invalid::new(
                "model.noise_dt",
                format!(
                    "noise_dt = {} makes {noise_steps:.3e} noise steps in a trial of length {}; \
                     at most {} are allowed: use a noise step of at least {}",
                    draws.noise_dt,
                    spec.t_end,
                    crate::tasks::MAX_SAMPLES,
                    spec.t_end / crate::tasks::MAX_SAMPLES as f64
                ),
            ));
        }
        let (model, trials) = self.memory_parts();
        let bytes = model + trials;
        let limit = crate::memory::limit();
        if bytes.is_nan() || bytes > limit {
            // The key to change: the trial count where the trials' states dominate.
            if model < trials {
                let (key, count) = if t.n_val_trials >= t.batch_size {
                    ("training.n_val_trials", t.n_val_trials)
                } else {
                    ("training.batch_size", t.batch_size)
                };
                return Err(Invalid::new(
                    key,
                    format!(
                        "{count} trials of N = {} units held at once (states at {} loss \
                         times{}) need about {:.1} GiB, more than this machine's {:.1} GiB: use \
                         fewer trials",
                        self.model.n(),
                        spec.loss_times.len(),
                        if noise_steps > 0.0 {
                            " and their noise"
                        } else {
                            ""
                        },
                        bytes / crate::memory::GIB,
                        limit / crate::memory::GIB
                    ),
                ));
            }
            return Err(Invalid::new(
                "model.n",
                format!(
                    "N = {} needs about {:.1} GiB (parameters, optimiser state, saved states of \
                     {} trials at {} loss times), more than this machine's {:.1} GiB: use a \
                     smaller network, fewer trials per batch or validation, or fewer loss \
                     times",
                    self.model.n(),
                    bytes / crate::memory::GIB,
                    t.batch_size.max(t.n_val_trials),
                    spec.loss_times.len(),
                    limit / crate::memory::GIB
                ),
            ));
        }
        Ok(())
    }
}

/// A run's name names its directory `runs/<name>`: one plain path component.
fn check_name(name: &str) -> Result<(), Invalid> {
    let bad = if name.trim().is_empty() {
        Some("is empty")
    } else if name.contains(['/', '\\']) || Path::new(name).is_absolute() {
        Some("holds a path separator")
    } else if name == "." || name == ".." {
        Some("is a directory reference")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    };
    match bad {
        None => Ok(()),
        Some(why) => Err(Invalid::new(
            "name",
            format!(
                "name = {name:?} {why}: the run is written to runs/<name>, so the name must be \
                 one plain file name such as \"my_run\" (choose another folder with --out)"
            ),
        )),
    }
}

/// The dotted key and the parser's message of the first bad value in the `[model]` or
/// `[task]` table of config `text`, read as the settings of the table's `kind` (`None` where
/// the tables read cleanly, or have no known kind).
fn locate_in_tagged_table(text: &str) -> Option<(String, String)> {
    let doc: toml::Table = text.parse().ok()?;
    ["model", "task"].into_iter().find_map(|section| {
        let mut table = doc.get(section)?.as_table()?.clone();
        let kind = table.remove("kind")?;
        let snippet = toml::to_string(&table).ok()?;
        let result = match section {
            "model" => ModelConfig::parse_settings(kind.as_str()?, &snippet)?,
            _ => TaskConfig::parse_settings(kind.as_str()?, &snippet)?,
        };
        let e = result.err()?;
        // The key is the `key = value` line (or `[table]` header) the error's span starts on.
        let at = e.span().map_or(0, |r| r.start).min(snippet.len());
        let line = snippet[..at].rsplit('\n').next().unwrap_or("").to_string()
            + snippet[at..].split('\n').next().unwrap_or("");
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .or_else(|| {
                let h = line.trim().trim_start_matches('[').trim_end_matches(']');
                (!h.is_empty()).then(|| h.to_string())
            })?;
        let key = key.strip_prefix(&format!("{section}.")).unwrap_or(&key);
        Some((
            format!("{section}.{key}"),
            e.message().trim_end().to_string(),
        ))
    })
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
