//! Flow fields of `dx/dt = f(x)` on a plane of state space: the top-2 principal
//! components of trajectories, or any two directions (for a low-rank network, its `m`
//! vectors: the overlap coordinates `κ`).

use neurode_solvers::{Columns, Real, VectorField};
use serde::Serialize;

use super::{cast, AnalysisError, Probe};

/// A plane `x = c + a₁ e₁ + a₂ e₂` of state space, with the map from a state to its
/// coordinates `(a₁, a₂)` (least squares: `(AᵀA)⁻¹ Aᵀ (x - c)`, `A = [e₁ e₂]`).
#[derive(Debug, Clone, Serialize)]
pub struct Plane {
    /// The origin `c`.
    pub center: Vec<f64>,
    /// The two directions.
    pub axes: [Vec<f64>; 2],
    /// Names of the coordinates (`PC1`, `kappa1`, ...).
    pub names: [String; 2],
    /// Fraction of the trajectories' variance along each axis (principal components only).
    pub explained: Option<[f64; 2]>,
    /// Rows of `(AᵀA)⁻¹ Aᵀ`.
    #[serde(skip)]
    proj: [Vec<f64>; 2],
}

impl Plane {
    /// The plane through `center` along `e1`, `e2` (linearly independent).
    pub fn new(
        center: Vec<f64>,
        e1: Vec<f64>,
        e2: Vec<f64>,
        names: [&str; 2],
    ) -> Result<Plane, AnalysisError> {
        let n = center.len();
        if e1.len() != n || e2.len() != n {
            return Err(AnalysisError::Input(format!(
                "plane directions of {} and {} values for a {n}-unit state",
                e1.len(),
                e2.len()
            )));
        }
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let (a11, a12, a22) = (dot(&e1, &e1), dot(&e1, &e2), dot(&e2, &e2));
        let det = a11 * a22 - a12 * a12;
        if det.is_nan() || det <= 1e-12 * a11 * a22 {
            return Err(AnalysisError::Input(
                "the two plane directions are (nearly) parallel or zero".into(),
            ));
        }
        let p1 = e1
            .iter()
            .zip(&e2)
            .map(|(x, y)| (a22 * x - a12 * y) / det)
            .collect();
        let p2 = e1
            .iter()
            .zip(&e2)
            .map(|(x, y)| (a11 * y - a12 * x) / det)
            .collect();
        Ok(Plane {
            center,
            axes: [e1, e2],
            names: [names[0].into(), names[1].into()],
            explained: None,
            proj: [p1, p2],
        })
    }

    /// The coordinates of state `x`.
    pub fn coords(&self, x: &[f64]) -> [f64; 2] {
        let c = |p: &[f64]| {
            p.iter()
                .zip(x.iter().zip(&self.center))
                .map(|(p, (x, c))| p * (x - c))
                .sum()
        };
        [c(&self.proj[0]), c(&self.proj[1])]
    }

    /// The coordinates of a velocity `v` (no origin).
    pub fn velocity(&self, v: &[f64]) -> [f64; 2] {
        let c = |p: &[f64]| p.iter().zip(v).map(|(p, v)| p * v).sum();
        [c(&self.proj[0]), c(&self.proj[1])]
    }

    /// The state at coordinates `(a, b)`.
    pub fn point(&self, a: f64, b: f64) -> Vec<f64> {
        self.center
            .iter()
            .zip(self.axes[0].iter().zip(&self.axes[1]))
            .map(|(c, (e1, e2))| c + a * e1 + b * e2)
            .collect()
    }
}

/// The plane of the top two principal components of `states` (`dim x K`, column-major,
/// K >= 3): through their mean.
pub fn pca_plane(dim: usize, states: &[f64]) -> Result<Plane, AnalysisError> {
    if dim < 2 || !states.len().is_multiple_of(dim) || states.len() / dim < 3 {
        return Err(AnalysisError::Input(format!(
            "principal components need at least 3 states of at least 2 units ({} values, {dim} \
             units)",
            states.len()
        )));
    }
    let k = states.len() / dim;
    let mean: Vec<f64> = (0..dim)
        .map(|i| (0..k).map(|c| states[i + c * dim]).sum::<f64>() / k as f64)
        .collect();
    let x = faer::Mat::<f64>::from_fn(k, dim, |c, i| states[i + c * dim] - mean[i]);
    let svd = x.thin_svd().map_err(|e| {
        AnalysisError::Numerics(format!(
            "the SVD of the trajectories did not converge ({e:?})"
        ))
    })?;
    let (v, s) = (svd.V(), svd.S());
    let total: f64 = (0..s.dim()).map(|i| s[i] * s[i]).sum();
    let axis = |j: usize| (0..dim).map(|i| v[(i, j)]).collect::<Vec<f64>>();
    let mut plane = Plane::new(mean, axis(0), axis(1), ["PC1", "PC2"])?;
    if total > 0.0 {
        plane.explained = Some([s[0] * s[0] / total, s[1] * s[1] / total]);
    }
    Ok(plane)
}

/// A flow field on a plane: velocities of the full field at grid points, in plane
/// coordinates.
#[derive(Debug, Clone, Serialize)]
pub struct FlowField {
    /// Grid coordinates along the first axis.
    pub xs: Vec<f64>,
    /// Grid coordinates along the second axis.
    pub ys: Vec<f64>,
    /// Velocity along the first axis at `(xs[i], ys[j])`: `u[j * xs.len() + i]`.
    pub u: Vec<f64>,
    /// Velocity along the second axis, same layout.
    pub v: Vec<f64>,
    /// Speed `|dx/dt|` of the full state (not only its in-plane part), same layout.
    pub speed: Vec<f64>,
}

/// The flow of `f` (at `probe`) on a `points x points` grid over `x_range x y_range` of
/// `plane`. Held units (a region-restricted probe) take their values from `base`
/// (`None`: zero, the other regions cancelled).
pub fn flow_field<F>(
    f: &F,
    probe: &Probe,
    plane: &Plane,
    x_range: (f64, f64),
    y_range: (f64, f64),
    points: usize,
    base: Option<&[f64]>,
) -> Result<FlowField, AnalysisError>
where
    F: VectorField,
{
    let n = f.dim();
    if plane.center.len() != n {
        return Err(AnalysisError::Input(format!(
            "the plane is of {}-unit states but the field has {n} units",
            plane.center.len()
        )));
    }
    if points < 2 {
        return Err(AnalysisError::Input(format!(
            "a flow-field grid needs at least 2 points per axis (got {points})"
        )));
    }
    let free = probe.free_units(n);
    let lin = |(a, b): (f64, f64)| -> Vec<f64> {
        (0..points)
            .map(|i| a + (b - a) * i as f64 / (points - 1) as f64)
            .collect()
    };
    let (xs, ys) = (lin(x_range), lin(y_range));
    let k = points * points;
    let mut states = Vec::with_capacity(n * k);
    for &y in &ys {
        for &x in &xs {
            let p = plane.point(x, y);
            let mut s = base.map_or_else(|| vec![0.0; n], |b| b.to_vec());
            if s.len() != n {
                return Err(AnalysisError::Input(format!(
                    "base state of {} values for {n} units",
                    s.len()
                )));
            }
            free.iter().for_each(|&i| s[i] = p[i]);
            states.extend(s);
        }
    }
    let xt: Vec<F::Scalar> = cast(&states);
    probe.check(f, &xt, k)?;
    let mut out = vec![super::zero::<F::Scalar>(); n * k];
    let ts = vec![F::Scalar::from_f64(probe.t); k];
    let trials = vec![probe.trial; k];
    let mut ws = f.workspace(k);
    f.rhs(Columns::with_trials(&ts, &trials), &xt, &mut out, &mut ws);
    let (mut u, mut v, mut speed) = (
        Vec::with_capacity(k),
        Vec::with_capacity(k),
        Vec::with_capacity(k),
    );
    for col in out.chunks_exact(n) {
        let mut d: Vec<f64> = col.iter().map(|x| x.as_f64()).collect();
        // Held units do not move.
        (0..n)
            .filter(|i| free.binary_search(i).is_err())
            .for_each(|i| d[i] = 0.0);
        let [a, b] = plane.velocity(&d);
        u.push(a);
        v.push(b);
        speed.push(d.iter().map(|x| x * x).sum::<f64>().sqrt());
    }
    Ok(FlowField {
        xs,
        ys,
        u,
        v,
        speed,
    })
}
