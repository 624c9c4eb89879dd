//! The one source of Runge–Kutta arithmetic.
//!
//! Every combination of stage derivatives that any part of the centre forms lives here: the
//! stage states `X_i = x + h Σ_{j<i} a_ij k_j`, the solution `x + h Σ b_j k_j`, the
//! per-trial weighted RMS error norm of `h Σ e_j k_j`, the dense output
//! `x + h Σ b_j(θ) k_j`, the stage times, and the transposes of those combinations that the
//! discrete adjoint needs. The forward solve, the adjoint's replay of a step and the
//! interpolating adjoint all call these functions, so the replay repeats the forward
//! arithmetic operation for operation and the discrete adjoint is exact by construction.
//! The CUDA kernels will be generated from the same tableau data ([`Coeffs`]) and follow
//! the same order of operations.
//!
//! Layout: stage derivatives are stored stage-major, `k[j * stride + col ..][..dim]` is
//! stage `j` of the column that starts at `col`; `stride` is the length of one stage block
//! (`dim x columns`). Each function works on one column (one trial), whose step size is
//! its own.

use crate::backend::{Backend, Cpu, Terms, MAX_TERMS};
use crate::scalar::Real;
use crate::tableau::ButcherTableau;

/// Most stages a tableau may have (dense-output weights live on the stack; every
/// combination is a [`Terms`] list).
pub const MAX_STAGES: usize = MAX_TERMS;

/// Tableau coefficients converted once to the solve's scalar type.
#[derive(Debug, Clone)]
pub(crate) struct Coeffs<T> {
    pub(crate) tableau: &'static ButcherTableau,
    pub(crate) s: usize,
    pub(crate) a: Vec<T>,
    pub(crate) b: Vec<T>,
    pub(crate) c: Vec<T>,
    pub(crate) fsal: bool,
}

impl<T: Real> Coeffs<T> {
    pub(crate) fn new(tab: &'static ButcherTableau) -> Self {
        let cv = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        Coeffs {
            tableau: tab,
            s: tab.stages,
            a: cv(tab.a),
            b: cv(tab.b),
            c: cv(tab.c),
            fsal: tab.fsal,
        }
    }

    /// `a[i][j]`.
    #[inline]
    pub(crate) fn a(&self, i: usize, j: usize) -> T {
        self.a[i * self.s + j]
    }

    /// Stage `i`'s state: `(j, a_ij)` for `j < i`, zero weights left out.
    pub(crate) fn stage_terms(&self, i: usize) -> Terms<T> {
        self.tableau.stage_terms(i)
    }

    /// The solution: `(j, b_j)`, zero weights left out.
    pub(crate) fn solution_terms(&self) -> Terms<T> {
        self.tableau.solution_terms()
    }

    /// The error estimate: `(j, e_j)` for every stage, zero weights included.
    pub(crate) fn error_terms(&self) -> Option<Terms<T>> {
        self.tableau.error_terms()
    }

    /// The dense output's terms at `θ` (`(j, b_j(θ))`, zero weights left out).
    pub(crate) fn dense_terms(&self, w: &[T; MAX_STAGES]) -> Terms<T> {
        Terms::nonzero(&w[..self.s])
    }

    /// Dense-output weights `b_j(θ)` for every stage (zero past the last stage).
    ///
    /// # Panics
    /// If the tableau has no dense output (callers check before the first step).
    pub(crate) fn dense_weights(&self, theta: f64) -> [T; MAX_STAGES] {
        let d = self
            .tableau
            .dense
            .as_ref()
            .expect("dense output is checked before the first step");
        let mut w = [T::zero(); MAX_STAGES];
        for (i, wi) in w.iter_mut().enumerate().take(self.s) {
            *wi = T::from_f64(d.weight(i, theta));
        }
        w
    }
}

/// Stage derivatives of a batch, stage-major (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Stages<'a, T> {
    pub(crate) k: &'a [T],
    pub(crate) stride: usize,
}

impl<'a, T> Stages<'a, T> {
    /// Stage `j` of the column starting at `col`, `dim` long.
    #[inline]
    pub(crate) fn col(&self, j: usize, col: usize, dim: usize) -> &'a [T] {
        let o = j * self.stride + col;
        &self.k[o..o + dim]
    }
}

/// `out = x + h Σ_t w_t k_{s_t}` over the terms (one fused pass): the one combination
/// behind stage states, solutions and dense output, for one column. A batch runs the same
/// terms through [`Backend::combine_columns`](crate::Backend::combine_columns), whose CPU
/// version calls the same function per column.
#[inline]
fn combine<T: Real>(x: &[T], h: T, terms: &Terms<T>, k: Stages<'_, T>, col: usize, out: &mut [T]) {
    Cpu.combine_terms(terms, h, x, k.k, col, k.stride, out);
}

/// Stage state `X_i = x + h Σ_{j<i} a_ij k_j` of one column.
#[inline]
pub(crate) fn stage_state<T: Real>(
    co: &Coeffs<T>,
    i: usize,
    h: T,
    x: &[T],
    k: Stages<'_, T>,
    col: usize,
    out: &mut [T],
) {
    combine(x, h, &co.stage_terms(i), k, col, out);
}

/// Solution `x + h Σ_j b_j k_j` of one column (methods without FSAL; with FSAL the last
/// stage state is the solution).
#[inline]
pub(crate) fn solution<T: Real>(
    co: &Coeffs<T>,
    h: T,
    x: &[T],
    k: Stages<'_, T>,
    col: usize,
    out: &mut [T],
) {
    combine(x, h, &co.solution_terms(), k, col, out);
}

/// Dense output `x + h Σ_j w_j k_j` of one column, with weights from
/// [`Coeffs::dense_weights`].
#[inline]
pub(crate) fn dense<T: Real>(
    co: &Coeffs<T>,
    w: &[T; MAX_STAGES],
    h: T,
    x: &[T],
    k: Stages<'_, T>,
    col: usize,
    out: &mut [T],
) {
    combine(x, h, &co.dense_terms(w), k, col, out);
}

/// Weighted RMS norm of the local error estimate `h Σ_j e_j k_j` of one column, each
/// component scaled by `atol + rtol max(|x|, |x_new|)`. `NaN` for methods without an
/// embedded pair.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn error_norm<T: Real>(
    co: &Coeffs<T>,
    h: T,
    rtol: T,
    atol: T,
    x: &[T],
    x_new: &[T],
    k: Stages<'_, T>,
    col: usize,
) -> f64 {
    let Some(terms) = co.error_terms() else {
        return f64::NAN;
    };
    Cpu::error_norm_column(&terms, x.len(), h, rtol, atol, x, x_new, k.k, col, k.stride).as_f64()
}

/// Time of a stage with node `c` in the step `[t, t_end]` of size `h`.
///
/// A node at the step's end is evaluated at `t_end` exactly (so the FSAL stage equals the
/// next step's first stage), or just below it when the step ends on a breakpoint: the step
/// then sees only the smooth piece of a right-continuous input it started in.
#[inline]
pub(crate) fn stage_time<T: Real>(t: T, h: T, c: T, t_end: T, ends_on_break: bool) -> T {
    let ts = if c == T::one() {
        t_end
    } else {
        (t + c * h).min(t_end)
    };
    if ends_on_break && ts >= t_end {
        t_end.next_down()
    } else {
        ts
    }
}

/// Reverse of the stage assembly for stage `i` of one column: adds to the stage cotangent
/// `g_i` the contributions `h b_i λ` (through the solution) and `h a_ji μ_j` of every later
/// stage `j` whose state cotangent `μ_j` is live (`mu_live[j]`).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage_cotangent<T: Real>(
    co: &Coeffs<T>,
    i: usize,
    h: T,
    lam: &[T],
    mu: Stages<'_, T>,
    mu_live: &[bool],
    col: usize,
    g: &mut [T],
) {
    let dim = g.len();
    if co.b[i] != T::zero() {
        Cpu.axpy(h * co.b[i], lam, g);
    }
    for (j, &live) in mu_live.iter().enumerate().take(co.s).skip(i + 1) {
        let a = co.a(j, i);
        if live && a != T::zero() {
            Cpu.axpy(h * a, mu.col(j, col, dim), g);
        }
    }
}

/// Reverse of the dense output for one column: adds `h w_j d` to the stage cotangent `g_j`
/// of every stage with a non-zero weight; returns which stages received something.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn dense_cotangent<T: Real>(
    co: &Coeffs<T>,
    w: &[T; MAX_STAGES],
    h: T,
    d: &[T],
    g: &mut [T],
    stride: usize,
    col: usize,
    live: &mut [bool; MAX_STAGES],
) {
    let dim = d.len();
    for j in 0..co.s {
        if w[j] != T::zero() {
            let o = j * stride + col;
            Cpu.axpy(h * w[j], d, &mut g[o..o + dim]);
            live[j] = true;
        }
    }
}
