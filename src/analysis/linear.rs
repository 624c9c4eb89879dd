//! Linearisation of a vector field at a state: the Jacobian `∂f/∂x` of the continuous
//! system (built from Jacobian-vector products, so it includes the leak's `-I/τ`), its
//! eigenvalues, and a stability label.

use neurode_solvers::{Columns, JvpState, Real, VectorField};
use serde::Serialize;

use super::{AnalysisError, Probe};

pub use neurode_models::Stability;

/// The linearisation of a field at one state.
#[derive(Debug, Clone, Serialize)]
pub struct Linearization {
    /// The Jacobian `∂f/∂x` restricted to the probe's free units (`m x m`, row-major for
    /// readers: `jacobian[i][j] = ∂f_i/∂x_j`).
    pub jacobian: Vec<Vec<f64>>,
    /// Eigenvalues `(re, im)`, by decreasing real part.
    pub eigenvalues: Vec<(f64, f64)>,
    /// Unit eigenvectors, one per eigenvalue in the same order: `(re, im)` per unit.
    pub eigenvectors: Vec<Vec<(f64, f64)>>,
    /// The stability label.
    pub stability: Stability,
}

/// The Jacobian `∂f/∂x` at `x` (`dim` values) for the probe's trial and time, restricted
/// to its free units, column-major (`m x m`, `m` free units): one batched
/// Jacobian-vector product with the unit vectors.
pub fn jacobian<F>(f: &F, probe: &Probe, x: &[F::Scalar]) -> Result<Vec<f64>, AnalysisError>
where
    F: VectorField + JvpState,
{
    let n = f.dim();
    probe.check(f, x, 1)?;
    let free = probe.free_units(n);
    let m = free.len();
    let zero = super::zero::<F::Scalar>();
    let one = super::one::<F::Scalar>();
    let mut xs = Vec::with_capacity(n * m);
    for _ in 0..m {
        xs.extend_from_slice(x);
    }
    let mut v = vec![zero; n * m];
    for (c, &u) in free.iter().enumerate() {
        v[u + c * n] = one;
    }
    let ts = vec![F::Scalar::from_f64(probe.t); m];
    let trials = vec![probe.trial; m];
    let mut out = vec![zero; n * m];
    let mut ws = f.workspace(m);
    f.jvp_state(
        Columns::with_trials(&ts, &trials),
        &xs,
        &v,
        &mut out,
        &mut ws,
    );
    let mut j = Vec::with_capacity(m * m);
    for c in 0..m {
        j.extend(free.iter().map(|&r| out[r + c * n].as_f64()));
    }
    Ok(j)
}

/// Eigenvalues `(re, im)` of the `m x m` column-major `a`, by decreasing real part.
pub fn eigenvalues(m: usize, a: &[f64]) -> Result<Vec<(f64, f64)>, AnalysisError> {
    neurode_models::eigenvalues(m, a).map_err(|e| AnalysisError::Numerics(e.to_string()))
}

/// Default tolerance of [`Stability::of`] for a linearisation in `T`.
pub fn stability_tol<T: Real>() -> f64 {
    T::eps().sqrt() * 1e-2
}

/// Eigenvalues `(re, im)` and unit eigenvectors of the `m x m` column-major `a`, by
/// decreasing real part.
#[allow(clippy::type_complexity)]
pub fn eigen(
    m: usize,
    a: &[f64],
) -> Result<(Vec<(f64, f64)>, Vec<Vec<(f64, f64)>>), AnalysisError> {
    let mat = faer::Mat::<f64>::from_fn(m, m, |i, j| a[i + j * m]);
    let e = mat.eigen().map_err(|e| {
        AnalysisError::Numerics(format!(
            "the eigen-decomposition did not converge on the {m} x {m} Jacobian ({e:?})"
        ))
    })?;
    let (u, s) = (e.U(), e.S());
    let mut pairs: Vec<((f64, f64), Vec<(f64, f64)>)> = (0..m)
        .map(|k| {
            let z = s[k];
            let v: Vec<(f64, f64)> = (0..m).map(|i| (u[(i, k)].re, u[(i, k)].im)).collect();
            let norm = v.iter().map(|c| c.0 * c.0 + c.1 * c.1).sum::<f64>().sqrt();
            let v = if norm > 0.0 {
                v.into_iter().map(|c| (c.0 / norm, c.1 / norm)).collect()
            } else {
                v
            };
            ((z.re, z.im), v)
        })
        .collect();
    pairs.sort_by(|a, b| b.0 .0.total_cmp(&a.0 .0).then(b.0 .1.total_cmp(&a.0 .1)));
    Ok(pairs.into_iter().unzip())
}

/// Linearises `f` at `x`: the Jacobian, its eigen-decomposition and the stability label.
pub fn linearize<F>(f: &F, probe: &Probe, x: &[F::Scalar]) -> Result<Linearization, AnalysisError>
where
    F: VectorField + JvpState,
{
    let j = jacobian(f, probe, x)?;
    let m = (j.len() as f64).sqrt().round() as usize;
    let (eigenvalues, eigenvectors) = eigen(m, &j)?;
    let stability = Stability::of(&eigenvalues, stability_tol::<F::Scalar>());
    let jacobian = (0..m)
        .map(|i| (0..m).map(|c| j[i + c * m]).collect())
        .collect();
    Ok(Linearization {
        jacobian,
        eigenvalues,
        eigenvectors,
        stability,
    })
}
