//! Tasks as declarations: epochs with durations, named input channels, targets and the
//! window over which the loss is taken, with trials generated from a seed.
//!
//! A task hands the solver piecewise-constant input signals whose jump times the adaptive
//! stepper lands on (no rejected steps at stimulus onsets). Times are in ms.

pub mod contextual_switch;

use neurode_solvers::{PiecewiseConstant, Real};

pub use contextual_switch::ContextualSwitch;

/// A named stretch of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    /// Name (`"burn"`, `"stimulus"`, ...).
    pub name: &'static str,
    /// Start time (ms).
    pub start: f64,
    /// End time (ms).
    pub end: f64,
}

/// What a task declares: its channels, epochs, the trial length and the loss window.
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
    /// Trial length (ms).
    pub t_end: f64,
    /// Times at which the readout enters the loss (averaged over them).
    pub loss_times: Vec<f64>,
}

/// A batch of trials.
#[derive(Debug, Clone, Default)]
pub struct TrialBatch<T> {
    /// One input signal per trial.
    pub inputs: Vec<PiecewiseConstant<T>>,
    /// The target of each trial's averaged readout.
    pub targets: Vec<T>,
    /// The condition index of each trial (into [`TaskSpec::conditions`]).
    pub conditions: Vec<usize>,
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

/// A task: a declaration plus a seeded trial generator.
pub trait Task {
    /// The declaration.
    fn spec(&self) -> TaskSpec;
    /// Trial `index` of the stream `seed` (every trial regenerates on its own).
    fn trial<T: Real>(&self, seed: u64, index: u64) -> (PiecewiseConstant<T>, T, usize);
    /// Trials `first..first + n` of the stream `seed`.
    fn batch<T: Real>(&self, seed: u64, first: u64, n: usize) -> TrialBatch<T> {
        let mut b = TrialBatch {
            inputs: Vec::with_capacity(n),
            targets: Vec::with_capacity(n),
            conditions: Vec::with_capacity(n),
        };
        for i in 0..n as u64 {
            let (u, y, c) = self.trial(seed, first + i);
            b.inputs.push(u);
            b.targets.push(y);
            b.conditions.push(c);
        }
        b
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
