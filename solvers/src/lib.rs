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
//! ## Batches
//!
//! A state is a `dim x batch` matrix (column `b` = trial `b`, column-major). All trials are
//! evaluated together (one GEMM for the whole batch), but each keeps its own time, step
//! size, accept/reject decision and status: a trial's solution does not depend on which
//! other trials share its batch.
//!
//! ```
//! use neurode_solvers::{integrate, testing::LeakyTanhRnn};
//!
//! // tau dx/dt = -x + W tanh(x) + B u(t), 50 units, 4 trials with a stimulus from t = 15.
//! let rnn = LeakyTanhRnn::<f64>::random(50, 2, 1.5, 1.0, 7).with_step_inputs(4, 15.0, 1.0, 8);
//! let sol = integrate(&rnn, (0.0, 40.0)).save_at(vec![10.0, 20.0, 40.0]).run()?;
//! assert!(sol.is_success());
//! assert_eq!(sol.states_at(2).len(), 50 * 4);
//! # Ok::<(), neurode_solvers::SolveError<f64>>(())
//! ```

#![warn(missing_docs)]

pub mod adjoint;
pub mod controller;
pub mod error;
pub mod field;
pub mod integrate;
pub mod math;
pub mod random;
pub mod scalar;
pub mod signal;
pub mod solution;
pub mod tableau;

#[cfg(feature = "testing")]
pub mod testing;

pub use adjoint::{Adjoint, AdjointStats, Backward, Checkpoints, Gradients};
pub use controller::PiController;
pub use error::SolveError;
pub use field::{Differentiable, JvpState, ParamView, VectorField, VjpParams, VjpState};
pub use integrate::{integrate, Integrate, Progress, Stepper, DEFAULT_MAX_STEPS};
pub use scalar::Real;
pub use signal::PiecewiseConstant;
pub use solution::{Failure, FailureKind, Solution, Stats, Status, StepRecord, TrialStats};
pub use tableau::{ButcherTableau, DenseOutput, EULER, TSIT5};
