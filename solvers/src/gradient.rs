//! Options of gradients through the solver: which adjoint, how much memory.

/// Which gradient the reverse pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Adjoint {
    /// Exact gradient of the computed discrete solution (default). See the
    /// [adjoint docs](crate::Backward).
    #[default]
    Discrete,
    /// Continuous adjoint ODE integrated backward on the forward grid using the forward
    /// dense output; approximate (error `O(tol)`), needs dense output. See the
    /// [adjoint docs](crate::Backward).
    Interpolating,
}

impl Adjoint {
    /// Name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Adjoint::Discrete => "discrete",
            Adjoint::Interpolating => "interpolating",
        }
    }
}

/// How many states the gradient may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// Keep every accepted state (fastest reverse sweep, memory grows with the steps).
    All,
    /// At most `n` checkpointed states in the forward pass (`n >= 1`), and at most `n` more
    /// states for recomputation in the reverse sweep.
    States(usize),
    /// About this many bytes of stored states in all. Two steps' stages are kept for the
    /// reverse sweep's recomputation pool; the checkpoints take what they need of the rest
    /// (every accepted state while they fit, then every other one, as
    /// [`States`](Self::States)); the stage states of the first steps (as many as fit, so
    /// that their reverse needs no recomputation; the state at a step's start is its
    /// checkpoint, not stored twice) take what the checkpoints leave, give way to them as
    /// they grow, and are dropped when the checkpoints thin; the recomputation pool takes
    /// what both leave.
    Memory(usize),
}

/// Default memory of [`Checkpoints::Memory`]: 256 MiB, enough to hold whole the gradients
/// of the shipped problems (the benchmark problem P1: 500 units, 32 trials, 215 Tsit5 steps,
/// 150 MB; a worker of the main training job: 16 trials, 1100 Euler steps, 71 MB), so that
/// their reverse sweeps recompute nothing. The gradient of a 10 000-step solve of a 500-unit
/// network with 32 trials in `f64` peaks at 290 MB with Tsit5 and 290 MB with Euler,
/// everything included (measured by `tests/adjoint_memory.rs`): the budget bounds the
/// stored states (checkpoints, stage states, recomputation pool); the solver's and the
/// reverse sweep's workspaces and the per-step records (times, step sizes) come on top.
pub const DEFAULT_CHECKPOINT_BYTES: usize = 256 << 20;

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints::Memory(DEFAULT_CHECKPOINT_BYTES)
    }
}

impl Checkpoints {
    /// `(forward checkpoints or None for all, reverse pool in states)`; with a memory
    /// budget the pool is the two steps' stages kept for it, and gets what the checkpoints
    /// and the stage store leave on top (see `Tape::pool_budget`).
    pub(crate) fn budget(self, state_bytes: usize, stages: usize) -> (Option<usize>, usize) {
        match self {
            Checkpoints::All => (None, stages),
            Checkpoints::States(n) => (Some(n.max(1)), n),
            Checkpoints::Memory(bytes) => {
                let kept = 2 * stages;
                let per = (bytes / state_bytes.max(1)).saturating_sub(kept);
                (Some(per.max(2)), kept)
            }
        }
    }
}
