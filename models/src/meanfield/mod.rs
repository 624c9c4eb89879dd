//! # The LIF mean field (VectorialNeuroModulators)
//!
//! Self-consistent population rates of clustered networks of leaky integrate-and-fire
//! neurons, their stability, their gradients with respect to the parameters, and sweeps.
//!
//! Conventions, stated once (the original's differences in brackets):
//! - **Transfer function** ([`Lif`], [`transfer`]): the Siegert / Brunel–Hakim rate with
//!   the Fourcaud–Brunel synaptic shift `a √(τs/τm)`, `a = |ζ(1/2)|/√2`, the integral by
//!   Gauss–Legendre quadrature with Dawson's function above zero [scipy `quad` per call].
//! - **Input statistics** ([`MeanFieldParams`]): the **postsynaptic** population's τm
//!   multiplies its input [the presynaptic one]; `σ² = τm Σ C J² ν + …` with no ½.
//! - **Rate dynamics** ([`LifMeanField`]): `τ dν/dt = −ν + Φ(μ(ν), σ(ν))`, `τ` = `tau_rate`
//!   (default 1, so eigenvalues are those of `−I + ∂Φ/∂ν`, the original's convention).
//! - **Fixed points** ([`solve`]): Newton's method on `Φ(ν) − ν` with the analytic Jacobian
//!   and a backtracking line search, from many starts at once; starts where Newton fails are
//!   relaxed along the rate dynamics (Tsit5) and polished by Newton again. Newton finds
//!   unstable points as well as stable ones; relaxation only stable ones. Every start's
//!   outcome is reported [the original: `scipy.optimize.root` from one start].
//! - **Stability** ([`Stability`]): eigenvalues of the analytic Jacobian; every label is
//!   reachable [a cumulative finite-difference perturbation, and focus labels that the
//!   order of its checks never reaches].
//! - **Gradients** ([`fixed_point_vjp`]): `dL/dθ` of a fixed point by the implicit-function
//!   theorem, one transposed solve per point.
//! - **Sweeps** ([`sweep`]): every sweep mode changes the parameters [the original's `new`
//!   mode does nothing]; all sets are solved as one batch, with continuation from the
//!   neighbouring sets' points.

mod field;
mod fixed;
mod params;
mod sweep;
pub mod transfer;

pub use field::{LifMeanField, MeanFieldWorkspace, TRAINED};
pub use fixed::{
    default_starts, effective_response, fixed_point_vjp, solve, FixedPoint, SetSolution,
    SolveOptions, StartOutcome,
};
pub use params::{Local, MeanFieldParams, Mode, Param, Target, SIGMA2_FLOOR};
pub use sweep::{sweep, Sweep, SweepResult, MAX_VALUES};
pub use transfer::{Lif, Response};

pub use crate::stability::Stability;

/// What went wrong in the mean field, with the key and the value, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeanFieldError {
    /// A required parameter is missing.
    #[error("mean field: `{key}` is missing: give it in the network section (one value for all populations, or one per population)")]
    Missing {
        /// The parameter's name.
        key: &'static str,
    },
    /// A parameter has the wrong number of values.
    #[error("mean field: `{key}` has {got} values; give {expected}")]
    Shape {
        /// The parameter's name.
        key: String,
        /// How many values it has.
        got: usize,
        /// What it needs.
        expected: String,
    },
    /// A value breaks its parameter's rule.
    #[error("mean field: `{key}` = {value} is invalid: {requirement}")]
    Invalid {
        /// The entry (`tau_membrane[1]`).
        key: String,
        /// Its value.
        value: f64,
        /// The rule.
        requirement: String,
    },
    /// A starting rate lies above a population's ceiling `1/τ_ref`.
    #[error("mean field: start {start} gives population {population} the rate {rate} Hz, above its ceiling 1/tau_refractory = {ceiling} Hz (tau_refractory = {tau_ref} s): no rate can exceed it; lower the start or the refractory period")]
    AboveCeiling {
        /// The start's index.
        start: usize,
        /// The population.
        population: usize,
        /// The rate given.
        rate: f64,
        /// `1/τ_ref`.
        ceiling: f64,
        /// `τ_ref`.
        tau_ref: f64,
    },
    /// An unknown parameter name or a malformed index.
    #[error("mean field: unknown parameter `{key}`; known: {known}")]
    UnknownKey {
        /// What was given.
        key: String,
        /// The names accepted.
        known: String,
    },
    /// An index beyond the populations.
    #[error("mean field: `{key}` indexes population {index}, but there are {n} (0 to {})", n - 1)]
    IndexOutOfRange {
        /// The target as written.
        key: String,
        /// The index.
        index: usize,
        /// Number of populations.
        n: usize,
    },
    /// No parameter sets were given.
    #[error("mean field: no parameter sets to solve")]
    NoSets,
    /// A sweep has no values.
    #[error("mean field: the sweep `{spec}` has no points: {why}")]
    EmptySweep {
        /// The sweep as written.
        spec: String,
        /// Why.
        why: String,
    },
    /// A linear solve met a singular Jacobian.
    #[error("mean field: the Jacobian of set {set} at rates {rates:?} is singular ({what}); the fixed point is marginal, so its gradient does not exist there")]
    Singular {
        /// The set.
        set: usize,
        /// The rates.
        rates: Vec<f64>,
        /// What was being solved.
        what: &'static str,
    },
    /// The ambient populations of an effective response did not converge.
    #[error("mean field: the ambient populations did not converge from {start:?} with the focus rates {focus_rates:?} ({reason}); try another ambient_nu_init")]
    AmbientNotConverged {
        /// The combined starting rates.
        start: Vec<f64>,
        /// The focus populations' rates.
        focus_rates: Vec<f64>,
        /// Why Newton stopped.
        reason: &'static str,
    },
    /// The eigen-solver did not converge on a fixed point's Jacobian.
    #[error("mean field: {0}")]
    Eigen(#[from] crate::stability::EigenError),
    /// The relaxation fallback's integration failed.
    #[error("mean field: the relaxation fallback failed: {0}")]
    Relaxation(String),
}
