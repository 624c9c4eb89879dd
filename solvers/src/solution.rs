//! What a solve returns: saved states, per-trial status and statistics.

use std::fmt;

use crate::scalar::Real;

/// Why a trial stopped before `t1`.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// The trial used its whole step budget (accepted plus rejected steps).
    MaxSteps {
        /// The budget that was exhausted.
        max_steps: usize,
    },
    /// The controller asked for a step below the smallest step allowed (the user's
    /// `dt_min`, or what the floating-point resolution of `t` permits). Usually the solution
    /// blows up or the problem is stiff.
    StepSizeUnderflow {
        /// The smallest step allowed at that `t`.
        dt_min: f64,
    },
    /// The state became NaN or infinite in a step that could not be retried (a fixed step).
    NonFinite {
        /// Row of the first non-finite component.
        index: usize,
    },
}

/// A structured failure of one trial: what, where, and the step size at the time.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The trial (column of the batch).
    pub trial: usize,
    /// Time of the last good state of the trial.
    pub t: f64,
    /// The step size being tried when it failed.
    pub dt: f64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Failure { trial, t, dt, .. } = self;
        match &self.kind {
            FailureKind::MaxSteps { max_steps } => write!(
                f,
                "trial {trial} used all {max_steps} steps and stopped at t = {t:e} (dt = {dt:e}); \
                 raise `.max_steps(..)`, loosen the tolerances, or check the model for stiffness"
            ),
            FailureKind::StepSizeUnderflow { dt_min } => write!(
                f,
                "trial {trial}: step size underflow at t = {t:e}: the controller asked for \
                 dt = {dt:e}, below the smallest allowed {dt_min:e}; the solution probably blows \
                 up near this time, or the problem is stiff"
            ),
            FailureKind::NonFinite { index } => write!(
                f,
                "trial {trial}: state component {index} became non-finite in the step from \
                 t = {t:e} with dt = {dt:e}; use a smaller fixed step or an adaptive solve"
            ),
        }
    }
}

/// Outcome of one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Reached `t1`.
    Success,
    /// Stopped early; the solution holds everything up to its last good step.
    Failed(Failure),
}

impl Status {
    /// Whether the trial reached `t1`.
    pub fn is_success(&self) -> bool {
        matches!(self, Status::Success)
    }
}

/// Counters of a whole batched solve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Iterations of the batched stepping loop (with several threads: the most any block
    /// of trials took).
    pub steps: usize,
    /// Accepted steps, summed over trials.
    pub accepted: usize,
    /// Rejected steps, summed over trials.
    pub rejected: usize,
    /// Calls of the batched right-hand side (summed over threads).
    pub rhs_evals: usize,
    /// Columns (trials) evaluated, summed over those calls: a call evaluates only the
    /// trials that need it, so this is the sum of [`TrialStats::rhs_evals`] over trials.
    pub columns: usize,
}

/// Something about a solve that is not a failure but that the caller should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// The relative tolerance is below what the scalar type can deliver on typical
    /// problems: round-off in the right-hand side (a GEMM of hundreds of terms) puts a floor
    /// under the error estimate near the tolerance, and the step-size controller then takes
    /// many more, smaller steps than the tolerance calls for (or stalls). The floor is
    /// [`Real::ROUNDOFF_RTOL`]: `3e-5` for `f32`, `5e-14` for `f64` (about 250 machine epsilons).
    ToleranceBelowPrecision {
        /// The relative tolerance asked for.
        rtol: f64,
        /// The smallest relative tolerance the scalar type delivers.
        floor: f64,
        /// `"f32"` or `"f64"`.
        scalar: &'static str,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ToleranceBelowPrecision {
                rtol,
                floor,
                scalar,
            } => write!(
                f,
                "rtol = {rtol:e} is below what {scalar} delivers ({floor:e}): round-off in the \
                 right-hand side dominates the error estimate, so the solve takes many more \
                 steps than needed; use rtol >= {floor:e}, or f64"
            ),
        }
    }
}

/// Counters of one trial. They depend only on the trial, never on its batch-mates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrialStats {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
    /// Right-hand-side evaluations this trial needed.
    pub rhs_evals: usize,
}

/// One attempted step of one trial (recorded with `.record_steps(true)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// Start of the step.
    pub t: f64,
    /// Step size tried.
    pub dt: f64,
    /// Scaled error norm (`NaN` for fixed steps); the step is accepted when it is `<= 1`.
    pub err: f64,
    /// Whether the step was accepted.
    pub accepted: bool,
}

/// The result of [`integrate`](crate::integrate).
///
/// States are stored at the save times [`ts`](Self::ts) for every trial
/// ([`state`](Self::state)); a trial that failed has `NaN` after its last good save, and
/// its last good state in [`final_state`](Self::final_state).
pub struct Solution<T: Real> {
    pub(crate) dim: usize,
    pub(crate) batch: usize,
    pub(crate) ts: Vec<T>,
    pub(crate) xs: Vec<T>,
    pub(crate) saved: Vec<usize>,
    pub(crate) t_final: Vec<T>,
    pub(crate) x_final: Vec<T>,
    pub(crate) status: Vec<Status>,
    pub(crate) stats: Stats,
    pub(crate) trial_stats: Vec<TrialStats>,
    pub(crate) step_ts: Option<Vec<Vec<T>>>,
    pub(crate) step_xs: Option<Vec<Vec<T>>>,
    pub(crate) step_log: Option<Vec<Vec<StepRecord>>>,
    pub(crate) warnings: Vec<Warning>,
}

impl<T: Real> Solution<T> {
    /// State dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of trials.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Save times (shared by all trials).
    pub fn ts(&self) -> &[T] {
        &self.ts
    }
    /// All trials at save time `i`: a `dim x batch` column-major slice.
    pub fn states_at(&self, i: usize) -> &[T] {
        let n = self.dim * self.batch;
        &self.xs[i * n..(i + 1) * n]
    }
    /// Trial `trial` at save time `i` (length `dim`).
    pub fn state(&self, i: usize, trial: usize) -> &[T] {
        let n = self.dim * self.batch;
        let o = i * n + trial * self.dim;
        &self.xs[o..o + self.dim]
    }
    /// Every saved state: `ts().len()` blocks of `dim x batch`.
    pub fn states(&self) -> &[T] {
        &self.xs
    }
    /// How many save times trial `trial` reached (all of them unless it failed).
    pub fn saved(&self, trial: usize) -> usize {
        self.saved[trial]
    }
    /// Time of the last accepted state of a trial (`t1` on success).
    pub fn t_final(&self, trial: usize) -> T {
        self.t_final[trial]
    }
    /// The last accepted state of a trial (at `t1` on success).
    pub fn final_state(&self, trial: usize) -> &[T] {
        &self.x_final[trial * self.dim..(trial + 1) * self.dim]
    }
    /// Final states of all trials, `dim x batch`.
    pub fn final_states(&self) -> &[T] {
        &self.x_final
    }
    /// Per-trial outcome.
    pub fn status(&self) -> &[Status] {
        &self.status
    }
    /// Whether every trial reached `t1`.
    pub fn is_success(&self) -> bool {
        self.status.iter().all(Status::is_success)
    }
    /// Counters of the batched solve.
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// Counters of one trial.
    pub fn trial_stats(&self, trial: usize) -> TrialStats {
        self.trial_stats[trial]
    }
    /// Times of every accepted step of a trial, `t0` first (with `.save_steps(true)`).
    pub fn step_times(&self, trial: usize) -> Option<&[T]> {
        self.step_ts.as_ref().map(|v| v[trial].as_slice())
    }
    /// States after every accepted step of a trial, `dim` each, `x0` first (with
    /// `.save_steps(true)`).
    pub fn step_states(&self, trial: usize) -> Option<&[T]> {
        self.step_xs.as_ref().map(|v| v[trial].as_slice())
    }
    /// What the solve wants the caller to know (see [`Warning`]); empty for most solves.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
    /// Every attempted step of a trial (with `.record_steps(true)`).
    pub fn step_log(&self, trial: usize) -> Option<&[StepRecord]> {
        self.step_log.as_ref().map(|v| v[trial].as_slice())
    }
}

impl<T: Real> fmt::Debug for Solution<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.status.iter().filter(|s| !s.is_success()).count();
        f.debug_struct("Solution")
            .field("dim", &self.dim)
            .field("batch", &self.batch)
            .field("n_saves", &self.ts.len())
            .field("failed_trials", &failed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
