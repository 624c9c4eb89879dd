//! # neurode
//!
//! Continuous-time models of neural circuits that can be simulated **and differentiated**.
//!
//! This facade re-exports the solver centre ([`neurode_solvers`]) and the models
//! ([`neurode_models`]); [`prelude`] brings the everyday names into scope.
//!
//! ```
//! use neurode::prelude::*;
//! use neurode::models::{LowRankInit, LowRankRnn};
//!
//! // A random low-rank RNN (N = 100), 8 trials whose stimulus switches on at t = 15 ms.
//! let init = LowRankInit { n: 100, ..LowRankInit::default() };
//! let (mut rnn, _readout) = LowRankRnn::<f64>::random(&init, 1)?;
//! let u = PiecewiseConstant::new(4, vec![15.0], vec![0.0, 0.0, 0.08, 0.0, 0.5, 0.0, 0.08, 0.0])?;
//! rnn.set_inputs(vec![u; 8])?;
//! let sol = integrate(&rnn, (0.0, 50.0)).run()?;
//! println!("{} accepted steps per trial", sol.trial_stats(0).accepted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub use neurode_models as models;
pub use neurode_solvers as solvers;

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

pub mod analysis;
pub mod analyze;
pub mod config;
pub mod config_file;
pub mod conversion;
pub mod export;
pub mod invalid;
pub mod io;
pub mod jobs;
pub mod kind;
pub mod mat;
pub mod meanfield;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod params;
pub mod plot;
pub mod regions;
pub mod run;
pub mod run_dir;
pub mod run_error;
pub mod simulate;
pub mod spiking;
pub mod sweep;
pub mod tasks;
pub mod train;
pub mod trained;
