//! Fixed and slow points of `dx/dt = f(x)` from many initial states at once.
//!
//! Each state minimises `q(x) = ½|f_R(x)|²` (`R`: the free units) by Levenberg–Marquardt
//! steps `(JᵀJ + λI) δ = -Jᵀ f`, solved matrix-free by conjugate gradients with one
//! Jacobian-vector and one vector-Jacobian product per iteration, all states in one
//! batch. A state stops when `q` is below the tolerance (a fixed point) or when its
//! steps stall (a slow point: a local minimum of `q` above zero). Then duplicates are
//! merged (the lowest `q` kept), points far from the initial states dropped, each unique
//! point polished by Newton steps on the dense Jacobian where it is well conditioned, and
//! linearised (eigenvalues, stability).

use faer::linalg::solvers::Solve;
use neurode_solvers::{Columns, JvpState, Real, VectorField, VjpState};
use serde::Serialize;

use super::linear::{eigenvalues, jacobian, stability_tol, Stability};
use super::{AnalysisError, Probe};

/// Settings of [`find_fixed_points`].
#[derive(Debug, Clone, PartialEq)]
pub struct FixedPointOptions {
    /// Levenberg–Marquardt iterations per state at most.
    pub max_iters: usize,
    /// Conjugate-gradient iterations per step at most.
    pub max_cg: usize,
    /// A state whose `q` falls below this is a fixed point (`None`: `½ (100 ε)²` for the
    /// field's precision `ε`).
    pub tol_q: Option<f64>,
    /// A step shorter than `tol_step · (1 + |x|)` has stalled.
    pub tol_step: f64,
    /// Points closer than this (Euclidean) are one point.
    pub tol_unique: f64,
    /// Drop points whose distance to the initial states' centroid exceeds this many times
    /// the initial states' mean distance to it (`None`: keep all).
    pub outlier_distance_scale: Option<f64>,
    /// Newton-polish a point only where the Jacobian's condition number is below this.
    pub newton_max_cond: f64,
    /// Newton steps per point at most.
    pub newton_steps: usize,
}

impl Default for FixedPointOptions {
    fn default() -> Self {
        FixedPointOptions {
            max_iters: 200,
            max_cg: 50,
            tol_q: None,
            tol_step: 1e-13,
            tol_unique: 1e-3,
            outlier_distance_scale: Some(10.0),
            newton_max_cond: 1e10,
            newton_steps: 8,
        }
    }
}

/// One fixed or slow point.
#[derive(Debug, Clone, Serialize)]
pub struct FixedPoint {
    /// The state (all units; held units keep their given values).
    pub x: Vec<f64>,
    /// `q = ½|f_R(x)|²`.
    pub q: f64,
    /// Whether `q` is above the fixed-point tolerance (a slow point).
    pub slow: bool,
    /// Levenberg–Marquardt iterations it took.
    pub iterations: usize,
    /// Newton steps taken in the polish.
    pub newton_steps: usize,
    /// The initial state it came from (its column).
    pub init: usize,
    /// How many initial states ended at it.
    pub count: usize,
    /// Eigenvalues `(re, im)` of `∂f_R/∂x_R` there, by decreasing real part.
    pub eigenvalues: Vec<(f64, f64)>,
    /// Its stability label.
    pub stability: Stability,
}

/// The result of a search.
#[derive(Debug, Clone, Serialize)]
pub struct FixedPoints {
    /// The unique points, by increasing `q`.
    pub points: Vec<FixedPoint>,
    /// Initial states.
    pub n_inits: usize,
    /// States that reached the fixed-point tolerance.
    pub n_converged: usize,
    /// States dropped as distance outliers.
    pub n_outliers: usize,
    /// The fixed-point tolerance on `q` used.
    pub tol_q: f64,
}

/// The batched residual, JVP and VJP of `f` at one probe, restricted to the free units.
struct Restricted<'a, F: VectorField> {
    f: &'a F,
    n: usize,
    held: Vec<usize>,
    ts: Vec<F::Scalar>,
    trials: Vec<usize>,
    ws: F::Workspace,
}

impl<F: VectorField + JvpState + VjpState> Restricted<'_, F> {
    fn zero_held(&self, out: &mut [F::Scalar]) {
        let z = super::zero::<F::Scalar>();
        for col in out.chunks_exact_mut(self.n) {
            self.held.iter().for_each(|&i| col[i] = z);
        }
    }
    fn resid(&mut self, x: &[F::Scalar], out: &mut [F::Scalar]) {
        let k = x.len() / self.n;
        let cols = Columns::with_trials(&self.ts[..k], &self.trials[..k]);
        self.f.rhs(cols, x, out, &mut self.ws);
        self.zero_held(out);
    }
    fn jvp(&mut self, x: &[F::Scalar], v: &[F::Scalar], out: &mut [F::Scalar]) {
        let k = x.len() / self.n;
        let cols = Columns::with_trials(&self.ts[..k], &self.trials[..k]);
        self.f.jvp_state(cols, x, v, out, &mut self.ws);
        self.zero_held(out);
    }
    fn vjp(&mut self, x: &[F::Scalar], v: &[F::Scalar], out: &mut [F::Scalar]) {
        let k = x.len() / self.n;
        out.fill(super::zero::<F::Scalar>());
        let cols = Columns::with_trials(&self.ts[..k], &self.trials[..k]);
        self.f.vjp_state(cols, x, v, out, &mut self.ws);
        self.zero_held(out);
    }
}

/// Per-column `Σ a_i b_i` in `f64`.
fn dots<T: Real>(n: usize, a: &[T], b: &[T]) -> Vec<f64> {
    a.chunks_exact(n)
        .zip(b.chunks_exact(n))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x.as_f64() * y.as_f64()).sum())
        .collect()
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Finds the fixed and slow points of `f` (at `probe`) reached from the initial states
/// `inits` (`dim x K`, column-major; held units keep their values): see the module docs.
pub fn find_fixed_points<F>(
    f: &F,
    probe: &Probe,
    inits: &[F::Scalar],
    opts: &FixedPointOptions,
) -> Result<FixedPoints, AnalysisError>
where
    F: VectorField + JvpState + VjpState,
{
    let n = f.dim();
    if n == 0 || inits.is_empty() || inits.len() % n != 0 {
        return Err(AnalysisError::Input(format!(
            "{} initial values for a {n}-unit field: give dim x K values (K >= 1 states)",
            inits.len()
        )));
    }
    let k_all = inits.len() / n;
    probe.check(f, inits, k_all)?;
    let eps = F::Scalar::eps();
    let tol_q = opts.tol_q.unwrap_or(0.5 * (100.0f64 * eps).powi(2));
    let free = probe.free_units(n);
    let held: Vec<usize> = (0..n).filter(|i| free.binary_search(i).is_err()).collect();
    let mut r = Restricted {
        f,
        n,
        held,
        ts: vec![F::Scalar::from_f64(probe.t); k_all],
        trials: vec![probe.trial; k_all],
        ws: f.workspace(k_all),
    };
    let zero = super::zero::<F::Scalar>();

    let mut x = inits.to_vec();
    let mut q = vec![f64::INFINITY; k_all];
    let mut iters = vec![0usize; k_all];
    let mut lambda = vec![f64::NAN; k_all];
    let mut active: Vec<usize> = (0..k_all).collect();
    // Buffers for the active columns.
    let size = n * k_all;
    let (mut xk, mut rk, mut g, mut d, mut res, mut p, mut jp, mut ap, mut xt, mut rt) = (
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
    );
    for _ in 0..opts.max_iters {
        if active.is_empty() {
            break;
        }
        let k = active.len();
        let m = n * k;
        for (c, &a) in active.iter().enumerate() {
            xk[c * n..(c + 1) * n].copy_from_slice(&x[a * n..(a + 1) * n]);
        }
        r.resid(&xk[..m], &mut rk[..m]);
        let rr = dots(n, &rk[..m], &rk[..m]);
        r.vjp(&xk[..m], &rk[..m], &mut g[..m]);
        let gg = dots(n, &g[..m], &g[..m]);
        let mut lam = vec![0.0; k];
        for (c, &a) in active.iter().enumerate() {
            q[a] = 0.5 * rr[c];
            if lambda[a].is_nan() {
                lambda[a] = if rr[c] > 0.0 {
                    1e-3 * gg[c] / rr[c]
                } else {
                    0.0
                };
            }
            lam[c] = lambda[a];
        }
        // CG on (JᵀJ + λ) δ = -Jᵀ r, per column.
        for ((dv, rv), (pv, gv)) in d[..m]
            .iter_mut()
            .zip(res[..m].iter_mut())
            .zip(p[..m].iter_mut().zip(&g[..m]))
        {
            *dv = zero;
            *rv = -*gv;
            *pv = -*gv;
        }
        let mut rs = gg.clone();
        let rs0 = gg.clone();
        for _ in 0..opts.max_cg.max(1) {
            r.jvp(&xk[..m], &p[..m], &mut jp[..m]);
            r.vjp(&xk[..m], &jp[..m], &mut ap[..m]);
            for ((a, pc), &l) in ap[..m]
                .chunks_exact_mut(n)
                .zip(p[..m].chunks_exact(n))
                .zip(&lam)
            {
                let l = F::Scalar::from_f64(l);
                a.iter_mut().zip(pc).for_each(|(a, &p)| *a += l * p);
            }
            let pap = dots(n, &p[..m], &ap[..m]);
            let mut live = false;
            for c in 0..k {
                let go = pap[c] > 0.0 && rs[c] > 1e-24 * rs0[c] && rs[c] > 0.0;
                if !go {
                    continue;
                }
                live = true;
                let alpha = F::Scalar::from_f64(rs[c] / pap[c]);
                for i in c * n..(c + 1) * n {
                    d[i] += alpha * p[i];
                    res[i] -= alpha * ap[i];
                }
                let rs_new: f64 = res[c * n..(c + 1) * n]
                    .iter()
                    .map(|v| v.as_f64() * v.as_f64())
                    .sum();
                let beta = F::Scalar::from_f64(rs_new / rs[c]);
                for i in c * n..(c + 1) * n {
                    p[i] = res[i] + beta * p[i];
                }
                rs[c] = rs_new;
            }
            if !live {
                break;
            }
        }
        for i in 0..m {
            xt[i] = xk[i] + d[i];
        }
        r.resid(&xt[..m], &mut rt[..m]);
        let rr_t = dots(n, &rt[..m], &rt[..m]);
        let dd = dots(n, &d[..m], &d[..m]);
        let xx = dots(n, &xk[..m], &xk[..m]);
        let mut still = Vec::with_capacity(k);
        for (c, &a) in active.iter().enumerate() {
            iters[a] += 1;
            if q[a] < tol_q {
                continue;
            }
            let q_t = 0.5 * rr_t[c];
            let stalled = dd[c].sqrt() <= opts.tol_step * (1.0 + xx[c].sqrt());
            if q_t.is_finite() && q_t < q[a] {
                x[a * n..(a + 1) * n].copy_from_slice(&xt[c * n..(c + 1) * n]);
                q[a] = q_t;
                lambda[a] /= 3.0;
                if q_t < tol_q || stalled {
                    continue;
                }
            } else {
                lambda[a] = (lambda[a] * 4.0).max(1e-300);
                if stalled || lambda[a] > 1e30 * (1.0 + gg[c] / rr[c].max(f64::MIN_POSITIVE)) {
                    continue;
                }
            }
            still.push(a);
        }
        active = still;
    }
    // Final q of every state.
    {
        let mut rk_all = vec![zero; size];
        r.resid(&x, &mut rk_all);
        for (a, rr) in dots(n, &rk_all, &rk_all).into_iter().enumerate() {
            q[a] = 0.5 * rr;
        }
    }
    let n_converged = q.iter().filter(|&&q| q < tol_q).count();
    let xs: Vec<Vec<f64>> = x
        .chunks_exact(n)
        .map(|c| c.iter().map(|v| v.as_f64()).collect())
        .collect();
    // Distance outliers, measured against the initial states.
    let init64: Vec<Vec<f64>> = inits
        .chunks_exact(n)
        .map(|c| c.iter().map(|v| v.as_f64()).collect())
        .collect();
    let centroid: Vec<f64> = (0..n)
        .map(|i| init64.iter().map(|c| c[i]).sum::<f64>() / k_all as f64)
        .collect();
    let spread = init64.iter().map(|c| dist(c, &centroid)).sum::<f64>() / k_all as f64;
    let mut keep: Vec<usize> = (0..k_all).filter(|&a| q[a].is_finite()).collect();
    let before = keep.len();
    if let (Some(scale), true) = (opts.outlier_distance_scale, spread > 0.0) {
        keep.retain(|&a| dist(&xs[a], &centroid) / spread < scale);
    }
    let n_outliers = before - keep.len();
    // Unique points, lowest q first.
    keep.sort_by(|&a, &b| q[a].total_cmp(&q[b]));
    let mut unique: Vec<(usize, usize)> = Vec::new(); // (state, count)
    for &a in &keep {
        match unique
            .iter_mut()
            .find(|(u, _)| dist(&xs[*u], &xs[a]) <= opts.tol_unique)
        {
            Some(u) => u.1 += 1,
            None => unique.push((a, 1)),
        }
    }
    let mut points = Vec::with_capacity(unique.len());
    for (a, count) in unique {
        let (xp, qp, steps) = polish(&mut r, probe, &x[a * n..(a + 1) * n], q[a], tol_q, opts)?;
        let j = jacobian(f, probe, &xp)?;
        let mdim = free.len();
        let ev = eigenvalues(mdim, &j)?;
        points.push(FixedPoint {
            x: xp.iter().map(|v| v.as_f64()).collect(),
            q: qp,
            slow: qp >= tol_q,
            iterations: iters[a],
            newton_steps: steps,
            init: a,
            count,
            stability: Stability::of(&ev, stability_tol::<F::Scalar>()),
            eigenvalues: ev,
        });
    }
    // Polishing can bring two points together: merge again.
    points.sort_by(|a, b| a.q.total_cmp(&b.q));
    let mut merged: Vec<FixedPoint> = Vec::with_capacity(points.len());
    for p in points {
        match merged
            .iter_mut()
            .find(|u| dist(&u.x, &p.x) <= opts.tol_unique)
        {
            Some(u) => u.count += p.count,
            None => merged.push(p),
        }
    }
    Ok(FixedPoints {
        points: merged,
        n_inits: k_all,
        n_converged,
        n_outliers,
        tol_q,
    })
}

/// Newton steps `J_R δ = -f_R` on the dense Jacobian while it is well conditioned and
/// `q` decreases; returns the state, its `q` and the steps taken.
fn polish<F>(
    r: &mut Restricted<'_, F>,
    probe: &Probe,
    x0: &[F::Scalar],
    q0: f64,
    tol_q: f64,
    opts: &FixedPointOptions,
) -> Result<(Vec<F::Scalar>, f64, usize), AnalysisError>
where
    F: VectorField + JvpState + VjpState,
{
    let n = r.n;
    let free = probe.free_units(n);
    let m = free.len();
    let zero = super::zero::<F::Scalar>();
    let (mut x, mut q) = (x0.to_vec(), q0);
    let mut fx = vec![zero; n];
    let mut steps = 0;
    for _ in 0..opts.newton_steps {
        if q <= tol_q * 1e-6 {
            break;
        }
        let j = jacobian(r.f, probe, &x)?;
        let a = faer::Mat::<f64>::from_fn(m, m, |i, c| j[i + c * m]);
        let sv = a.singular_values().map_err(|e| {
            AnalysisError::Numerics(format!("the SVD of the Jacobian did not converge ({e:?})"))
        })?;
        let (smax, smin) = (
            sv.iter().cloned().fold(0.0, f64::max),
            sv.iter().cloned().fold(f64::INFINITY, f64::min),
        );
        if !(smin > 0.0 && smax / smin < opts.newton_max_cond) {
            break;
        }
        r.resid(&x, &mut fx);
        let mut rhs = faer::Mat::<f64>::from_fn(m, 1, |i, _| -fx[free[i]].as_f64());
        a.partial_piv_lu().solve_in_place(rhs.as_mut());
        let mut xt = x.clone();
        for (i, &u) in free.iter().enumerate() {
            xt[u] = F::Scalar::from_f64(x[u].as_f64() + rhs[(i, 0)]);
        }
        r.resid(&xt, &mut fx);
        let qt = 0.5 * fx.iter().map(|v| v.as_f64() * v.as_f64()).sum::<f64>();
        if qt.is_nan() || qt >= q {
            break;
        }
        x = xt;
        q = qt;
        steps += 1;
    }
    Ok((x, q, steps))
}
