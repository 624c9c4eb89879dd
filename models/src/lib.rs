//! # neurode-models: neural-circuit vector fields
//!
//! The models of neurode, each a [`VectorField`] of
//! `neurode-solvers` with analytic vector-Jacobian products, so that gradients flow through
//! the solver:
//!
//! - [`LeakyRnn`]: the leaky rate core `τ ⊙ dx/dt = -x + W φ(x) + B u(t) + b` that the RNN
//!   models share (activation, fixed or trained time constants, bias, per-step noise); a
//!   model is a [`Connectivity`] (its parameterisation of `W`).
//! - [`LowRankRnn`]: the low-rank RNN of Mastrogiuseppe & Ostojic (2018), `W = g C + M Nᵀ/N`,
//!   with its linear [`Readout`].
//! - [`KimRateRnn`]: the rate RNN of Kim, Li & Sejnowski (2019) under Dale's law
//!   ([`Dale`]), with trained synaptic time constants.
//!
//! - [`MultiRegionRnn`]: mRNNTorch's multi-region RNNs, assembled from regions and
//!   connections by a [`RegionBuilder`] (masked, signed [`Dale`] connectivity).
//!
//! - [`meanfield`]: the LIF mean field of VectorialNeuroModulators: the Siegert transfer
//!   function with the synaptic shift, the rate dynamics [`meanfield::LifMeanField`], every
//!   fixed point with its stability, implicit-function gradients and sweeps.
//! - [`spiking`]: the clustered spiking LIF network of VectorialNeuroModulators, a
//!   fixed-step simulator with exact propagators and sparse synapses by presynaptic neuron,
//!   and its mean-field reduction.
//!
//! ```
//! use neurode_models::{LowRankInit, LowRankRnn, PiecewiseConstant};
//! use neurode_solvers::integrate;
//!
//! let init = LowRankInit { n: 100, ..LowRankInit::default() };
//! let (mut rnn, readout) = LowRankRnn::<f64>::random(&init, 42)?;
//! // Two trials: context cues from t = 0, a stimulus on channel 0 from t = 15.
//! let u = PiecewiseConstant::new(4, vec![15.0], vec![0.0, 0.0, 0.08, -0.14, 1.2, 0.0, 0.08, -0.14])?;
//! rnn.set_inputs(vec![u.clone(), u])?;
//! let sol = integrate(&rnn, (0.0, 100.0)).save_at(vec![100.0]).run()?;
//! let y = readout.output(sol.state(0, 1));
//! assert!(y.is_finite());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod checks;
mod dale;
mod kim;
mod leaky;
mod lowrank;
pub mod meanfield;
mod readout;
mod rectifier;
mod regions;
pub mod spiking;
mod stability;

pub use dale::{Dale, DaleScratch};
pub use kim::{KimInit, KimRateRnn, WeightDist};
pub use leaky::{Connectivity, Deferred, LeakyRnn, LeakyWorkspace, TimeConstants};
pub use lowrank::{LowRank, LowRankInit, LowRankRnn, LowRankScratch};
pub use neurode_solvers::{Activation, PiecewiseConstant, Real, VectorField};
pub use readout::{dphi, phi, Readout};
pub use rectifier::Rectifier;
pub use regions::{
    spectral_radius, Connection, InputRegion, MultiRegionRnn, RecurrentRegion, RegionBuilder,
    RegionSettings, Regions, Sign,
};
pub use stability::{eigenvalues, EigenError, Stability};

/// Errors of model construction: what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A scalar setting is out of range.
    #[error("invalid model setting `{name}` = {value}: {hint}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What is required.
        hint: &'static str,
    },
    /// An array has the wrong size or a non-finite entry.
    #[error("{0}")]
    Shape(String),
    /// A region or connection of a multi-region network is wrong (the message names it).
    #[error("{0}")]
    Region(String),
}

impl ModelError {
    pub(crate) fn invalid(name: &'static str, value: f64, hint: &'static str) -> Self {
        ModelError::Invalid { name, value, hint }
    }
}
