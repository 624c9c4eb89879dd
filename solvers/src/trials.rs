//! Per-trial state of a batched solve, as one struct of arrays.
//!
//! Every trial of a batch keeps its own time, step size, controller memory, counters and
//! cursors into its breakpoints and save times. The stepping loop (`solve`) reads and
//! updates these through the methods here; the state matrices themselves live apart, packed
//! by position, because only the trials that still run take part in the products.

use crate::controller::ERR_PREV_INIT;
use crate::scalar::Real;
use crate::solution::{Failure, FailureKind, Status, TrialStats};

/// Where a step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Land {
    /// Strictly inside a smooth piece.
    Free,
    /// On a discontinuity of the field.
    Break,
    /// On `t1`.
    End,
}

/// Whether a trial still steps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TrialState {
    Running,
    Done,
    Failed(Failure),
}

/// The per-trial state of one solve (indexed by the trial's position in the solve's batch).
#[derive(Debug)]
pub(crate) struct Trials<T> {
    /// Index of trial 0 in the caller's batch (for failures).
    pub(crate) offset: usize,
    /// Time of the last accepted state.
    pub(crate) t: Vec<T>,
    /// Size of the step being attempted.
    pub(crate) h: Vec<T>,
    /// Size proposed for the next attempt.
    pub(crate) h_next: Vec<T>,
    /// End of the step being attempted.
    pub(crate) t_end: Vec<T>,
    /// Where the step being attempted ends.
    pub(crate) land: Vec<Land>,
    /// Fixed steps: whether the step ends on the grid `t0 + n dt`, and `n` so far.
    pub(crate) grid_next: Vec<bool>,
    pub(crate) grid_n: Vec<u64>,
    pub(crate) state: Vec<TrialState>,
    /// The first stage must be evaluated (no FSAL value to reuse).
    pub(crate) need_k1: Vec<bool>,
    /// Hairer's initial step must be chosen (start, after a breakpoint).
    pub(crate) need_init: Vec<bool>,
    /// Controller memory.
    pub(crate) err_prev: Vec<f64>,
    pub(crate) after_reject: Vec<bool>,
    /// Cursor into the trial's breakpoints.
    pub(crate) bp_idx: Vec<usize>,
    /// Cursor into the save times.
    pub(crate) save_idx: Vec<usize>,
    pub(crate) stats: Vec<TrialStats>,
}

impl<T: Real> Trials<T> {
    pub(crate) fn new(batch: usize, offset: usize, t0: T, dt0: Option<T>) -> Self {
        Trials {
            offset,
            t: vec![t0; batch],
            h: vec![T::zero(); batch],
            h_next: vec![dt0.unwrap_or(T::zero()); batch],
            t_end: vec![t0; batch],
            land: vec![Land::Free; batch],
            grid_next: vec![false; batch],
            grid_n: vec![0; batch],
            state: vec![TrialState::Running; batch],
            need_k1: vec![true; batch],
            need_init: vec![dt0.is_none(); batch],
            err_prev: vec![ERR_PREV_INIT; batch],
            after_reject: vec![false; batch],
            bp_idx: vec![0; batch],
            save_idx: vec![0; batch],
            stats: vec![TrialStats::default(); batch],
        }
    }

    #[inline]
    pub(crate) fn running(&self, b: usize) -> bool {
        self.state[b] == TrialState::Running
    }

    /// Stops trial `b` with a failure of `kind` at its current time, step size `dt`.
    pub(crate) fn fail(&mut self, b: usize, kind: FailureKind, dt: T) {
        self.state[b] = TrialState::Failed(Failure {
            kind,
            trial: self.offset + b,
            t: self.t[b].as_f64(),
            dt: dt.as_f64(),
        });
    }

    /// Fails trial `b` for a step below `floor`.
    pub(crate) fn underflow(&mut self, b: usize, floor: T, dt: T) {
        self.fail(
            b,
            FailureKind::StepSizeUnderflow {
                dt_min: floor.as_f64(),
            },
            dt,
        );
    }

    /// Fails every running trial that has used its budget of `max_steps` attempts.
    pub(crate) fn check_budget(&mut self, b: usize, max_steps: usize) {
        let st = self.stats[b];
        if self.running(b) && st.accepted + st.rejected >= max_steps {
            self.fail(b, FailureKind::MaxSteps { max_steps }, self.h_next[b]);
        }
    }

    /// The controller's memory after a breakpoint restart.
    pub(crate) fn reset_controller(&mut self, b: usize) {
        self.need_init[b] = false;
        self.err_prev[b] = ERR_PREV_INIT;
        self.after_reject[b] = false;
    }

    /// Final per-trial outcomes.
    pub(crate) fn statuses(&self) -> Vec<Status> {
        self.state
            .iter()
            .map(|s| match s {
                TrialState::Failed(f) => Status::Failed(f.clone()),
                _ => Status::Success,
            })
            .collect()
    }

    /// Slowest running time and number of running trials.
    pub(crate) fn progress(&self) -> (f64, usize) {
        let mut tmin = f64::INFINITY;
        let mut run = 0;
        for (b, st) in self.state.iter().enumerate() {
            if *st == TrialState::Running {
                run += 1;
                tmin = tmin.min(self.t[b].as_f64());
            }
        }
        (tmin, run)
    }

    pub(crate) fn is_zero_step(h: T) -> bool {
        h.is_nan() || h <= T::zero()
    }
}
