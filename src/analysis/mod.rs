//! Analysis of trained (or any) networks as continuous-time systems: fixed and slow points,
//! linearisation and stability, flow fields.
//!
//! Everything here is generic over a [`VectorField`] with Jacobian-vector products
//! ([`neurode_solvers::JvpState`]; the fixed-point finder also uses
//! [`neurode_solvers::VjpState`]), so it serves the
//! low-rank, Kim and multi-region networks alike. Fixed points are those of the
//! continuous system `dx/dt = f(x)` (`f(x*) = 0`), and the Jacobian is `∂f/∂x`, which
//! for a leaky network includes the leak `-I/τ` (see DESIGN.md). mRNNTorch's
//! linearisation is of its discrete update instead: with `α = dt/τ`, `D = diag(φ'(x))`
//! and our `J = ∂f/∂x = (-I + W D)/τ`, its `α D W` equals `α D (τ J + I) D⁻¹`, so its
//! eigenvalues are `α (τ λ + 1)` for each eigenvalue `λ` of `J`.
//!
//! A [`Probe`] says where the field is evaluated: which bound trial (so which input, held
//! constant: bind one trial per condition), at which time, and which units are free (a
//! region-restricted analysis holds the others).

mod fixed;
mod flow;
mod linear;

pub use fixed::{find_fixed_points, FixedPoint, FixedPointOptions, FixedPoints};
pub use flow::{flow_field, pca_plane, FlowField, Plane};
pub use linear::{
    eigen, eigenvalues, jacobian, linearize, stability_tol, Linearization, Stability,
};

use neurode_solvers::{Real, VectorField};

/// Errors of an analysis: what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// An argument does not fit the field.
    #[error("{0}")]
    Input(String),
    /// A numerical routine failed.
    #[error("{0}")]
    Numerics(String),
}

/// Where a field is evaluated: trial `trial` of its bound inputs (its input at time `t`,
/// held constant), and the free units (`None`: all; otherwise the others keep the values
/// of the state they are given).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The trial (input condition).
    pub trial: usize,
    /// The time at which the input is read.
    pub t: f64,
    /// The units that move (a region-restricted analysis); `None`: every unit.
    pub free: Option<Vec<usize>>,
}

impl Probe {
    /// Every unit free, trial `trial` at time `t`.
    pub fn new(trial: usize, t: f64) -> Self {
        Probe {
            trial,
            t,
            free: None,
        }
    }

    /// The free units (sorted, without repeats).
    pub fn free_units(&self, n: usize) -> Vec<usize> {
        match &self.free {
            None => (0..n).collect(),
            Some(u) => {
                let mut u = u.clone();
                u.sort_unstable();
                u.dedup();
                u
            }
        }
    }

    fn check<F: VectorField>(
        &self,
        f: &F,
        x: &[F::Scalar],
        cols: usize,
    ) -> Result<(), AnalysisError> {
        let n = f.dim();
        if x.len() != n * cols {
            return Err(AnalysisError::Input(format!(
                "{} state values given for {cols} state(s) of a {n}-unit field",
                x.len()
            )));
        }
        if let Some(k) = x.iter().position(|v| !v.as_f64().is_finite()) {
            return Err(AnalysisError::Input(format!(
                "state value {k} is {}: states must be finite",
                x[k]
            )));
        }
        if let Some(b) = f.batch() {
            if self.trial >= b {
                return Err(AnalysisError::Input(format!(
                    "trial {} asked for, but the field has {b} bound trial(s); bind one trial \
                     per input condition",
                    self.trial
                )));
            }
        }
        if !self.t.is_finite() {
            return Err(AnalysisError::Input(format!(
                "time t = {} is not finite",
                self.t
            )));
        }
        match &self.free {
            Some(u) if u.is_empty() => Err(AnalysisError::Input(
                "no free units: name at least one unit (or region) to analyse".into(),
            )),
            Some(u) => match u.iter().find(|&&i| i >= n) {
                Some(i) => Err(AnalysisError::Input(format!(
                    "free unit {i} is out of range: the field has {n} units"
                ))),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }
}

/// `T` from `f64` for a slice.
fn cast<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

fn zero<T: Real>() -> T {
    T::zero()
}

fn one<T: Real>() -> T {
    T::one()
}
