//! Fixed and slow points of `dx/dt = f(x)` from many initial states at once.
//!
//! Each state decreases `q(x) = ½|f_R(x)|²` (`R`: the free units) by inexact Newton
//! steps `J δ = -f` solved matrix-free by GMRES (one batched Jacobian-vector product per
//! Krylov vector, every state of a chunk at once), with a backtracking line search on `q`;
//! where Newton's direction does not decrease `q` (far from a root, or near a minimum of
//! `q` above zero), a steepest-descent step `-α Jᵀf` with the step that is exact on the
//! local quadratic model (`α = |Jᵀf|² / |J Jᵀf|²`). A state stops when `q` is below the
//! tolerance (a fixed point) or when `q` stops decreasing (a slow point: a local minimum of
//! `q` above zero, or the iteration limit). Then duplicates are merged (the lowest `q`
//! kept), points far from the initial states dropped, each unique point polished by Newton
//! steps on the dense Jacobian where it is well conditioned, and linearised (eigenvalues,
//! stability).

use faer::linalg::solvers::Solve;
use neurode_solvers::{Columns, JvpState, Real, VectorField, VjpState};
use serde::Serialize;

use super::linear::{eigenvalues, jacobian, stability_tol, Stability};
use super::{AnalysisError, Probe};

/// Settings of [`find_fixed_points`].
#[derive(Debug, Clone, PartialEq)]
pub struct FixedPointOptions {
    /// Newton (or descent) iterations per state at most.
    pub max_iters: usize,
    /// Krylov vectors per GMRES solve at most.
    pub krylov: usize,
    /// A state whose `q` falls below this is a fixed point (`None`: `½ (100 ε)²` for the
    /// field's precision `ε`).
    pub tol_q: Option<f64>,
    /// Fixed points closer than this (Euclidean) are one point.
    pub tol_unique: f64,
    /// Fixed points closer than this fraction of the state scale (the initial states' mean
    /// distance to their centroid) are one point too: a root found to the precision's
    /// tolerance lies only that far from its copies where the Jacobian is nearly singular.
    pub fixed_unique: f64,
    /// Slow points closer than this fraction of the state scale are one point (a slow
    /// region is often a valley along which `q` hardly changes, where the descent stops
    /// anywhere).
    pub slow_unique: f64,
    /// A slow point closer than this fraction of the state scale to a fixed point is that
    /// fixed point (a state that stalled on its way there).
    pub slow_near_fixed: f64,
    /// A state whose `q` falls by less than this fraction in three iterations running has
    /// stopped at a slow point.
    pub slow_decrease: f64,
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
            max_iters: 100,
            krylov: 40,
            tol_q: None,
            tol_unique: 1e-3,
            fixed_unique: 1e-3,
            slow_unique: 0.5,
            slow_near_fixed: 0.05,
            slow_decrease: 1e-3,
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
    /// Newton (or descent) iterations it took.
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
    let mut x = inits.to_vec();
    let (mut q, iters) = descend(&mut r, &mut x, opts, tol_q);
    let zero = super::zero::<F::Scalar>();
    let size = n * k_all;
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
    let radius = |qa: f64, qb: f64| {
        let scale = match (qa < tol_q, qb < tol_q) {
            (true, true) => opts.fixed_unique,
            (false, false) => opts.slow_unique,
            _ => opts.slow_near_fixed,
        };
        opts.tol_unique.max(scale * spread)
    };
    let mut unique: Vec<(usize, usize)> = Vec::new(); // (state, count)
    for &a in &keep {
        match unique
            .iter_mut()
            .find(|(u, _)| dist(&xs[*u], &xs[a]) <= radius(q[*u], q[a]))
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
            .find(|u| dist(&u.x, &p.x) <= radius(u.q, p.q))
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

/// States per batch of the iteration: the GMRES basis holds `krylov + 1` vectors of this
/// many states.
const CHUNK: usize = 256;

/// Decreases `q` of every column of `x` (see the module docs); returns each column's `q`
/// and iteration count.
fn descend<F>(
    r: &mut Restricted<'_, F>,
    x: &mut [F::Scalar],
    opts: &FixedPointOptions,
    tol_q: f64,
) -> (Vec<f64>, Vec<usize>)
where
    F: VectorField + JvpState + VjpState,
{
    let n = r.n;
    let k_all = x.len() / n;
    let zero = super::zero::<F::Scalar>();
    let mut q = vec![f64::INFINITY; k_all];
    let mut iters = vec![0usize; k_all];
    let mut flat = vec![0usize; k_all];
    let mut active: Vec<usize> = (0..k_all).collect();
    let free = n - r.held.len();
    let krylov = opts.krylov.clamp(1, free.max(1));
    let size = n * CHUNK.min(k_all);
    let (mut xk, mut rk, mut xt, mut rt) = (
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
        vec![zero; size],
    );
    let mut basis = vec![zero; size * (krylov + 1)];
    let (mut d, mut w) = (vec![zero; size], vec![zero; size]);
    for _ in 0..opts.max_iters {
        if active.is_empty() {
            break;
        }
        let mut still = Vec::with_capacity(active.len());
        for chunk in active.chunks(CHUNK) {
            let k = chunk.len();
            let m = n * k;
            for (c, &a) in chunk.iter().enumerate() {
                xk[c * n..(c + 1) * n].copy_from_slice(&x[a * n..(a + 1) * n]);
            }
            r.resid(&xk[..m], &mut rk[..m]);
            let q0: Vec<f64> = dots(n, &rk[..m], &rk[..m])
                .iter()
                .map(|v| 0.5 * v)
                .collect();
            // Newton: J d = -r by GMRES, to a relative residual of 1e-4.
            gmres(
                r,
                &xk[..m],
                &rk[..m],
                &mut d[..m],
                &mut basis,
                &mut w[..m],
                krylov,
                1e-4,
            );
            // Backtracking on q: α = 1, 1/2, ..., 1/64.
            let mut q_new = q0.clone();
            let mut done = vec![false; k];
            let mut alpha = 1.0;
            for _ in 0..7 {
                let al = F::Scalar::from_f64(alpha);
                for i in 0..m {
                    xt[i] = xk[i] + al * d[i];
                }
                r.resid(&xt[..m], &mut rt[..m]);
                let qt = dots(n, &rt[..m], &rt[..m]);
                for c in 0..k {
                    let qt = 0.5 * qt[c];
                    if !done[c] && qt.is_finite() && qt < (1.0 - 1e-4 * alpha) * q0[c] {
                        done[c] = true;
                        q_new[c] = qt;
                        xk[c * n..(c + 1) * n].copy_from_slice(&xt[c * n..(c + 1) * n]);
                    }
                }
                if done.iter().all(|&d| d) {
                    break;
                }
                alpha *= 0.5;
            }
            // Steepest descent where Newton failed: -α Jᵀr, α exact on the quadratic model.
            if done.iter().any(|&d| !d) {
                r.vjp(&xk[..m], &rk[..m], &mut d[..m]);
                r.jvp(&xk[..m], &d[..m], &mut w[..m]);
                let gg = dots(n, &d[..m], &d[..m]);
                let jg = dots(n, &w[..m], &w[..m]);
                for c in (0..k).filter(|&c| !done[c]) {
                    let al = if jg[c] > 0.0 { gg[c] / jg[c] } else { 0.0 };
                    let al = F::Scalar::from_f64(al);
                    for i in c * n..(c + 1) * n {
                        xt[i] = xk[i] - al * d[i];
                    }
                }
                r.resid(&xt[..m], &mut rt[..m]);
                let qt = dots(n, &rt[..m], &rt[..m]);
                for c in (0..k).filter(|&c| !done[c]) {
                    let qt = 0.5 * qt[c];
                    if qt.is_finite() && qt < q0[c] {
                        q_new[c] = qt;
                        xk[c * n..(c + 1) * n].copy_from_slice(&xt[c * n..(c + 1) * n]);
                    }
                }
            }
            for (c, &a) in chunk.iter().enumerate() {
                iters[a] += 1;
                x[a * n..(a + 1) * n].copy_from_slice(&xk[c * n..(c + 1) * n]);
                q[a] = q_new[c];
                if q_new[c] < tol_q {
                    continue;
                }
                // A slow point: q decreasing by less than a relative `slow_decrease` three
                // times running.
                if q_new[c] > (1.0 - opts.slow_decrease) * q0[c] {
                    flat[a] += 1;
                } else {
                    flat[a] = 0;
                }
                if flat[a] < 3 {
                    still.push(a);
                }
            }
        }
        active = still;
    }
    (q, iters)
}

/// GMRES (no restart) for `J d = -res` at every column of `x` at once, each column to a
/// residual of `rel |res|` or `krylov` vectors; `basis` holds the Krylov vectors.
#[allow(clippy::too_many_arguments)]
fn gmres<F>(
    r: &mut Restricted<'_, F>,
    x: &[F::Scalar],
    res: &[F::Scalar],
    d: &mut [F::Scalar],
    basis: &mut [F::Scalar],
    w: &mut [F::Scalar],
    krylov: usize,
    rel: f64,
) where
    F: VectorField + JvpState + VjpState,
{
    let n = r.n;
    let m = x.len();
    let k = m / n;
    let zero = super::zero::<F::Scalar>();
    let beta: Vec<f64> = dots(n, res, res).iter().map(|v| v.sqrt()).collect();
    // v_0 = -res / β.
    for ((v, rc), &b) in basis[..m]
        .chunks_exact_mut(n)
        .zip(res.chunks_exact(n))
        .zip(&beta)
    {
        let s = F::Scalar::from_f64(if b > 0.0 { -1.0 / b } else { 0.0 });
        v.iter_mut().zip(rc).for_each(|(v, &r)| *v = r * s);
    }
    // Per column: the Hessenberg columns (rotated), the rotations, the rotated right side.
    let mut h = vec![vec![0.0f64; (krylov + 1) * krylov]; k];
    let mut rot = vec![vec![(1.0f64, 0.0f64); krylov]; k];
    let mut g: Vec<Vec<f64>> = beta
        .iter()
        .map(|&b| {
            let mut v = vec![0.0; krylov + 1];
            v[0] = b;
            v
        })
        .collect();
    let mut used = vec![0usize; k];
    let mut live: Vec<bool> = beta.iter().map(|&b| b > 0.0).collect();
    for j in 0..krylov {
        if !live.iter().any(|&l| l) {
            break;
        }
        let (head, tail) = basis.split_at_mut((j + 1) * m);
        r.jvp(x, &head[j * m..(j + 1) * m], w);
        // Modified Gram-Schmidt against v_0..v_j, per column.
        for c in 0..k {
            if !live[c] {
                continue;
            }
            let wc = &mut w[c * n..(c + 1) * n];
            let hc = &mut h[c];
            for i in 0..=j {
                let vi = &head[i * m + c * n..i * m + (c + 1) * n];
                let hij: f64 = wc
                    .iter()
                    .zip(vi)
                    .map(|(a, b)| a.as_f64() * b.as_f64())
                    .sum();
                let hs = F::Scalar::from_f64(hij);
                wc.iter_mut().zip(vi).for_each(|(a, &b)| *a -= hs * b);
                hc[i * krylov + j] = hij;
            }
            let norm = wc
                .iter()
                .map(|a| a.as_f64() * a.as_f64())
                .sum::<f64>()
                .sqrt();
            hc[(j + 1) * krylov + j] = norm;
            let next = &mut tail[c * n..(c + 1) * n];
            let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            let s = F::Scalar::from_f64(s);
            next.iter_mut()
                .zip(wc.iter())
                .for_each(|(v, &a)| *v = a * s);
            // Apply the earlier rotations, then make this column's.
            for i in 0..j {
                let (cs, sn) = rot[c][i];
                let (a, b) = (hc[i * krylov + j], hc[(i + 1) * krylov + j]);
                hc[i * krylov + j] = cs * a + sn * b;
                hc[(i + 1) * krylov + j] = -sn * a + cs * b;
            }
            let (a, b) = (hc[j * krylov + j], hc[(j + 1) * krylov + j]);
            let rr = a.hypot(b);
            let (cs, sn) = if rr > 0.0 {
                (a / rr, b / rr)
            } else {
                (1.0, 0.0)
            };
            rot[c][j] = (cs, sn);
            hc[j * krylov + j] = rr;
            hc[(j + 1) * krylov + j] = 0.0;
            let gj = g[c][j];
            g[c][j] = cs * gj;
            g[c][j + 1] = -sn * gj;
            used[c] = j + 1;
            if g[c][j + 1].abs() <= rel * beta[c] || norm == 0.0 {
                live[c] = false;
            }
        }
        if j + 1 == krylov {
            break;
        }
    }
    // d = V y with R y = g.
    d.fill(zero);
    for c in 0..k {
        let u = used[c];
        let hc = &h[c];
        let mut y = vec![0.0f64; u];
        for i in (0..u).rev() {
            let mut s = g[c][i];
            for l in i + 1..u {
                s -= hc[i * krylov + l] * y[l];
            }
            let diag = hc[i * krylov + i];
            y[i] = if diag != 0.0 { s / diag } else { 0.0 };
        }
        for (i, &yi) in y.iter().enumerate() {
            let yi = F::Scalar::from_f64(yi);
            let vi = &basis[i * m + c * n..i * m + (c + 1) * n];
            d[c * n..(c + 1) * n]
                .iter_mut()
                .zip(vi)
                .for_each(|(a, &b)| *a += yi * b);
        }
    }
}
