//! Stability of a fixed point of a continuous-time system from the eigenvalues of its
//! Jacobian: one classification for every model (the RNNs' analysis and the mean field).

use serde::Serialize;

/// The kind of a fixed point of a continuous-time system, from the eigenvalues of its
/// Jacobian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stability {
    /// Every eigenvalue has a negative real part, all real.
    StableNode,
    /// Every eigenvalue has a negative real part, some complex.
    StableFocus,
    /// Every eigenvalue has a positive real part, all real.
    UnstableNode,
    /// Every eigenvalue has a positive real part, some complex.
    UnstableFocus,
    /// Real parts of both signs.
    Saddle,
    /// Some real part is zero (to the tolerance) or not a number: linearisation does not
    /// decide.
    Marginal,
}

impl Stability {
    /// Classifies eigenvalues `(re, im)`: a real part within `tol · max(1, max|λ|)` of
    /// zero counts as zero, and so does an imaginary part.
    pub fn of(eigenvalues: &[(f64, f64)], tol: f64) -> Stability {
        let scale = eigenvalues
            .iter()
            .map(|&(re, im)| re.hypot(im))
            .fold(1.0, f64::max);
        let zero = tol * scale;
        let undecided =
            |&(re, im): &(f64, f64)| !(re.is_finite() && im.is_finite()) || re.abs() <= zero;
        if eigenvalues.iter().any(undecided) {
            return Stability::Marginal;
        }
        let pos = eigenvalues.iter().filter(|&&(re, _)| re > 0.0).count();
        let complex = eigenvalues.iter().any(|&(_, im)| im.abs() > zero);
        match (pos, complex) {
            (0, false) => Stability::StableNode,
            (0, true) => Stability::StableFocus,
            (p, false) if p == eigenvalues.len() => Stability::UnstableNode,
            (p, true) if p == eigenvalues.len() => Stability::UnstableFocus,
            _ => Stability::Saddle,
        }
    }

    /// Whether small perturbations decay.
    pub fn is_stable(self) -> bool {
        matches!(self, Stability::StableNode | Stability::StableFocus)
    }

    /// The label in words (`"stable node"`).
    pub fn label(self) -> &'static str {
        match self {
            Stability::StableNode => "stable node",
            Stability::StableFocus => "stable focus",
            Stability::UnstableNode => "unstable node",
            Stability::UnstableFocus => "unstable focus",
            Stability::Saddle => "saddle",
            Stability::Marginal => "marginal",
        }
    }
}

/// The eigen-solver did not converge on a matrix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the eigenvalue solver did not converge on the {m} x {m} Jacobian ({detail})")]
pub struct EigenError {
    /// The matrix size.
    pub m: usize,
    /// What the solver said.
    pub detail: String,
}

/// Eigenvalues `(re, im)` of the `m x m` column-major `a`, by decreasing real part.
pub fn eigenvalues(m: usize, a: &[f64]) -> Result<Vec<(f64, f64)>, EigenError> {
    let mat = faer::Mat::<f64>::from_fn(m, m, |i, j| a[i + j * m]);
    let ev = mat.eigenvalues().map_err(|e| EigenError {
        m,
        detail: format!("{e:?}"),
    })?;
    let mut ev: Vec<(f64, f64)> = ev.iter().map(|z| (z.re, z.im)).collect();
    ev.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    Ok(ev)
}
