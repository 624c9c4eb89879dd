//! # neurode-solvers: the centre of neurode
//!
//! Continuous-time systems `dx/dt = f(t, x; θ)` on a **batch of trials**, integrated with
//! adaptive Tsit5 or fixed-step Euler, with per-trial step control.
//!
//! ## Workflow
//!
//! 1. Implement [`VectorField`] for your model (or use one from `neurode-models`): the
//!    dimension, a workspace, the batched right-hand side and, if it has task inputs, the
//!    times where they jump ([`VectorField::discontinuities`]).
//! 2. Call [`integrate`]`(&field, (t0, t1))`, set options on the builder, then
//!    [`run`](Integrate::run).
//! 3. Read the [`Solution`]: states at the save times, per-trial [`Status`] and [`Stats`].
//!
//! ## Which stepper
//!
//! - [`Stepper::Tsit5`] (default): 5th order, 7 stages with FSAL (6 new evaluations per
//!   step), embedded 4th-order error estimate, free 4th-order dense output. Use it with
//!   adaptive steps for anything smooth between input jumps: it lands exactly on the jumps
//!   and restarts there, so piecewise-constant task inputs cost no rejected steps.
//! - [`Stepper::Euler`]: 1st order, one evaluation per step, fixed steps only
//!   (`.fixed_dt(dt)`). Use it to reproduce discrete-time RNN code (`x += dt/τ (...)`) or
//!   when a fixed compute budget matters more than accuracy.
//!
//! ## Batches and threads
//!
//! A state is a `dim x batch` matrix (column `b` = trial `b`, column-major). The trials
//! that still run are evaluated together (one GEMM for all of them), but each keeps its own
//! time, step size, accept/reject decision and status, and a trial leaves the products as
//! soon as it reaches `t1`: a trial's solution does not depend on which other trials share
//! its batch, and the work follows the sum of the trials' steps. A solve uses the available
//! cores ([`Integrate::threads`]): many trials per core are split into blocks, one solver
//! each; few trials per core share one solver's products ([`with_team`]). The results are
//! the same on any number of threads.
//!
//! ## Gradients
//!
//! [`Integrate::run_with_gradient`] returns the solution and a [`Backward`]; its
//! [`backward`](Backward::backward) turns loss gradients at the save times into `dL/dθ` and
//! `dL/dx0`. The default [`Adjoint::Discrete`] is the exact gradient of the computed
//! solution; [`Checkpoints`] bounds its memory.
//!
//! ## Precision
//!
//! Everything is generic over `f32` and `f64` ([`Real`]). The default tolerances are
//! `rtol = 1e-6`, `atol = 1e-8` in `f64` and `rtol = 1e-4`, `atol = 1e-6` in `f32`. Below
//! [`Real::ROUNDOFF_RTOL`] (`3e-5` in `f32`) round-off in the right-hand side dominates the
//! error estimate and the controller takes many more steps than needed; such a solve
//! carries a [`Warning::ToleranceBelowPrecision`] in [`Solution::warnings`].
//!
//! ## Backends
//!
//! Models run their hot operations (GEMM, activations) through a [`Backend`]; [`Cpu`] is
//! the one implemented. [`Cuda`] has the same names and, until the CUDA kernels land,
//! returns a clear [`BackendError`].
//!
//! ```
//! use neurode_solvers::integrate;
//! use neurode_solvers::testing::LeakyTanhRnn;
//!
//! // tau dx/dt = -x + W tanh(x) + B u(t), 50 units, 4 trials with a stimulus from t = 15.
//! let rnn = LeakyTanhRnn::<f64>::random(50, 2, 1.5, 1.0, 7).with_step_inputs(4, 15.0, 1.0, 8);
//! let sol = integrate(&rnn, (0.0, 40.0)).save_at(vec![10.0, 20.0, 40.0]).run()?;
//! assert!(sol.is_success());
//! assert_eq!(sol.states_at(2).len(), 50 * 4);
//! # Ok::<(), neurode_solvers::SolveError<f64>>(())
//! ```

#![warn(missing_docs)]

mod adjoint;
mod backend;
mod controller;
mod error;
mod field;
mod gradient;
mod integrate;
mod random;
mod rk;
mod scalar;
mod signal;
mod solution;
mod solve;
mod split;
mod tableau;
mod trials;

/// Test-support vector fields (a dense leaky tanh RNN, closed-form problems) and a counting
/// allocator, shared by tests, benches and doc-tests (feature `testing`, off by default).
#[cfg(feature = "testing")]
pub mod testing;

pub use adjoint::{
    recycle, release_gradient_cache, reused_zeros, AdjointStats, Backward, Gradients,
};
pub use backend::{
    with_team, Activation, Backend, BackendError, Cpu, Cuda, CudaBuffer, CudaMatrix, CudaView,
    CudaViewMut, Panels, Terms, Transpose, KERNEL_HEADERS, KERNEL_SOURCES, MAX_TERMS,
};
pub use controller::PiController;
pub use error::SolveError;
pub use field::{Columns, Differentiable, JvpState, ParamView, VectorField, VjpParams, VjpState};
pub use gradient::{Adjoint, Checkpoints, DEFAULT_CHECKPOINT_BYTES};
pub use integrate::{integrate, Integrate, Stepper, DEFAULT_MAX_STEPS};
pub use random::{derive_seed, Normal, Stream};
pub use rk::MAX_STAGES;
pub use scalar::Real;
pub use signal::PiecewiseConstant;
pub use solution::{
    Failure, FailureKind, Solution, Stats, Status, StepRecord, TrialStats, Warning,
};
pub use split::{layout, Progress, MIN_ELEMENTS_PER_THREAD, MIN_TEAM_WORK, MIN_TRIALS_PER_BLOCK};
pub use tableau::{ButcherTableau, DenseOutput, EULER, TSIT5};
