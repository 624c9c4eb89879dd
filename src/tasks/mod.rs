//! Tasks as declarations: epochs with durations, named input channels and conditions, the
//! times at which the readout enters the loss, each trial's target (a value for the
//! readout averaged over those times, or a trace with a loss mask) and the rule that
//! scores a trial, with trials generated from a seed.
//!
//! A task hands the solver piecewise-constant input signals whose jump times the adaptive
//! stepper lands on (no rejected steps at stimulus onsets). Times are in the task's units:
//! ms for the contextual switch task, steps of 5 ms for the Kim et al. (2019) tasks.
//!
//! [`TaskConfig`] is the `[task]` table of a config: one of the tasks, chosen by `kind`.

pub mod contextual_switch;
pub mod kim;

use neurode_solvers::{derive_seed, PiecewiseConstant, Real};
use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

pub use contextual_switch::ContextualSwitch;
pub use kim::{GoNogo, Mante, Xor};

/// A named stretch of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    /// Name (`"burn"`, `"stimulus"`, ...).
    pub name: &'static str,
    /// Start time.
    pub start: f64,
    /// End time.
    pub end: f64,
}

/// What a task declares: its channels, conditions, epochs, the trial length and the loss
/// times.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Task name.
    pub name: &'static str,
    /// The paper or code the task follows.
    pub reference: &'static str,
    /// Input channel names, in order.
    pub channels: Vec<&'static str>,
    /// Condition names (the accuracy is reported per condition).
    pub conditions: Vec<&'static str>,
    /// The epochs, in order, covering `[0, t_end]`.
    pub epochs: Vec<Epoch>,
    /// Trial length.
    pub t_end: f64,
    /// Times at which the readout enters the loss and the scoring (the same for every
    /// trial).
    pub loss_times: Vec<f64>,
    /// Spacing of the example traces in plots.
    pub plot_dt: f64,
    /// The unit of the task's times (for plots and messages).
    pub time_unit: &'static str,
}

/// What a trial's readout should do at the task's loss times.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The readout averaged over the loss times should be this value (±1).
    Mean(f64),
    /// The readout at each loss time should follow `values` where `mask` is true.
    Trace {
        /// One value per loss time.
        values: Vec<f64>,
        /// One flag per loss time: whether it enters the loss.
        mask: Vec<bool>,
    },
}

/// One trial: its input, target, condition and label.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial<T> {
    /// The input signal.
    pub input: PiecewiseConstant<T>,
    /// The target.
    pub target: Target,
    /// The condition index (into [`TaskSpec::conditions`]).
    pub condition: usize,
    /// The trial's correct answer as a number (the sign of the cued stimulus, 1 for go and
    /// 0 for no-go, ...): with the condition, it picks example trials for plots.
    pub label: f64,
}

/// A batch of trials.
#[derive(Debug, Clone, Default)]
pub struct TrialBatch<T> {
    /// One input signal per trial.
    pub inputs: Vec<PiecewiseConstant<T>>,
    /// The target of each trial.
    pub targets: Vec<Target>,
    /// The condition index of each trial (into [`TaskSpec::conditions`]).
    pub conditions: Vec<usize>,
    /// The label of each trial.
    pub labels: Vec<f64>,
    /// A seed per trial for what the model draws per trial (initial state, noise).
    pub seeds: Vec<u64>,
}

impl<T> TrialBatch<T> {
    /// Number of trials.
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    /// No trials.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// A task: a declaration, a seeded trial generator and a scoring rule.
pub trait Task {
    /// The declaration.
    fn spec(&self) -> TaskSpec;
    /// Trial `index` of the stream `seed` (every trial regenerates on its own).
    fn trial<T: Real>(&self, seed: u64, index: u64) -> Trial<T>;
    /// Whether a trial whose readout at the loss times is `outputs` is correct.
    fn correct(&self, outputs: &[f64], trial: &Target, condition: usize) -> bool;
    /// Trials `first..first + n` of the stream `seed`.
    fn batch<T: Real>(&self, seed: u64, first: u64, n: usize) -> TrialBatch<T> {
        let mut b = TrialBatch {
            inputs: Vec::with_capacity(n),
            targets: Vec::with_capacity(n),
            conditions: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            seeds: Vec::with_capacity(n),
        };
        for i in first..first + n as u64 {
            let t = self.trial(seed, i);
            b.inputs.push(t.input);
            b.targets.push(t.target);
            b.conditions.push(t.condition);
            b.labels.push(t.label);
            b.seeds.push(derive_seed(seed, &[i, MODEL_STREAM]));
        }
        b
    }
}

/// Most samples (loss times, noise bins) a task may put in one trial.
pub const MAX_SAMPLES: usize = 1_000_000;

/// The sub-stream of a trial's seed that the model draws from.
const MODEL_STREAM: u64 = 0x006d_6f64_656c;

/// Whether the mean of `outputs` has the sign of `target` (the contextual switch task's
/// rule; also the rule for any [`Target::Mean`]).
pub fn mean_has_sign(outputs: &[f64], target: f64) -> bool {
    let y = outputs.iter().sum::<f64>() / outputs.len().max(1) as f64;
    (y > 0.0) == (target > 0.0)
}

/// The `[task]` table of a config: `kind` picks the task, the other keys are its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskConfig {
    /// [`ContextualSwitch`].
    ContextualSwitch(ContextualSwitch),
    /// [`GoNogo`].
    GoNogo(GoNogo),
    /// [`Xor`].
    Xor(Xor),
    /// [`Mante`].
    Mante(Mante),
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig::ContextualSwitch(ContextualSwitch::default())
    }
}

macro_rules! each_task {
    ($cfg:expr, $t:ident => $body:expr) => {
        match $cfg {
            TaskConfig::ContextualSwitch($t) => $body,
            TaskConfig::GoNogo($t) => $body,
            TaskConfig::Xor($t) => $body,
            TaskConfig::Mante($t) => $body,
        }
    };
}

impl TaskConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        each_task!(self, t => t.validate())
    }
    /// The task's name as written in configs (`kind`).
    /// Reads `text` (a `[task]` table without `kind`) as the settings of task `kind`: the
    /// parser's error names the key (`None` for an unknown kind).
    pub fn parse_settings(kind: &str, text: &str) -> Option<Result<(), toml::de::Error>> {
        Some(match kind {
            "contextual_switch" => toml::from_str::<ContextualSwitch>(text).map(|_| ()),
            "go_nogo" => toml::from_str::<GoNogo>(text).map(|_| ()),
            "xor" => toml::from_str::<Xor>(text).map(|_| ()),
            "mante" => toml::from_str::<Mante>(text).map(|_| ()),
            _ => return None,
        })
    }
    /// The key that sets the trial's length, and what it is.
    pub fn length_key(&self) -> (&'static str, &'static str) {
        match self {
            TaskConfig::ContextualSwitch(_) => ("t_stim", "the stimulus period in ms"),
            _ => ("t_steps", "the trial's steps of 5 ms"),
        }
    }
    /// The task's name as written in configs (`kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            TaskConfig::ContextualSwitch(_) => "contextual_switch",
            TaskConfig::GoNogo(_) => "go_nogo",
            TaskConfig::Xor(_) => "xor",
            TaskConfig::Mante(_) => "mante",
        }
    }
}

impl Task for TaskConfig {
    fn spec(&self) -> TaskSpec {
        each_task!(self, t => t.spec())
    }
    fn trial<T: Real>(&self, seed: u64, index: u64) -> Trial<T> {
        each_task!(self, t => t.trial(seed, index))
    }
    fn correct(&self, outputs: &[f64], target: &Target, condition: usize) -> bool {
        each_task!(self, t => t.correct(outputs, target, condition))
    }
}

/// `k · dt` for `k` in `first..=last`, computed so that grid points land on round numbers
/// (`900 · 0.1` is `90`, not `90.00000000000001`).
pub fn grid(dt: f64, first: u64, last: u64) -> Vec<f64> {
    let inv = 1.0 / dt;
    let exact = (inv - inv.round()).abs() < 1e-9 * inv.abs();
    (first..=last)
        .map(|k| {
            if exact {
                k as f64 / inv.round()
            } else {
                k as f64 * dt
            }
        })
        .collect()
}
