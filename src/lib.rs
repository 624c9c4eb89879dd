//! # neurode
//!
//! Continuous-time models of neural circuits that can be simulated **and differentiated**.
//!
//! This facade re-exports the solver centre ([`neurode_solvers`]) and the models
//! ([`neurode_models`]); [`prelude`] brings the everyday names into scope.
//!
//! ```
//! use neurode::prelude::*;
//! use neurode::testing::LeakyTanhRnn;
//!
//! let rnn = LeakyTanhRnn::<f64>::random(100, 2, 1.5, 1.0, 1).with_step_inputs(8, 15.0, 1.0, 2);
//! let sol = integrate(&rnn, (0.0, 50.0)).run()?;
//! println!("{} accepted steps per trial", sol.trial_stats(0).accepted);
//! # Ok::<(), SolveError<f64>>(())
//! ```

#![warn(missing_docs)]

pub use neurode_models as models;
pub use neurode_solvers as solvers;
pub use neurode_solvers::testing;

/// The names almost every program uses.
pub mod prelude {
    pub use neurode_solvers::{
        integrate, Adjoint, Checkpoints, Gradients, PiecewiseConstant, Real, Solution, SolveError,
        Status, Stepper, VectorField,
    };
}

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod config;
pub mod io;
pub mod plot;
pub mod run;
pub mod tasks;
pub mod train;
