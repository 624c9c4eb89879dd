//! Test-support vector fields shared by tests, benches and doc examples (feature `testing`).
//!
//! - [`LeakyTanhRnn`]: the dense leaky tanh RNN `τ dx/dt = -x + W tanh(x) + B u(t)` with
//!   piecewise-constant inputs, the workload every rate model in neurode shares.
//! - Problems with closed-form solutions for convergence tests: [`LinearSystem`] (exact
//!   through a matrix exponential), [`SinY`] (`y' = sin y`), [`Gaussian`] (`y' = -2 t y`),
//!   and [`Quadratic`] (`x' = x²`, which blows up at `t = 1 / x0`).
//! - [`CountingAllocator`]: a global allocator that counts, for memory tests and benches.

mod alloc;

pub use crate::random::Normal;
pub use alloc::CountingAllocator;

use crate::backend::{Activation, Backend, Cpu, Panels, Transpose};
use crate::field::{Columns, JvpState, ParamView, VectorField, VjpParams, VjpState};
use crate::scalar::Real;
use crate::signal::PiecewiseConstant;

/// Workspace of [`LeakyTanhRnn`]: the activations `tanh(x)` of the batch.
#[derive(Debug, Clone)]
pub struct RnnWorkspace<T> {
    h: Vec<T>,
    g: Vec<T>,
}

/// Dense leaky tanh RNN: `τ dx/dt = -x + W tanh(x) + B u_b(t)` for each trial `b`.
///
/// `W` is `n x n`, `B` is `n x n_in` (both column-major), `u_b` a piecewise-constant signal
/// per trial. Without inputs the field accepts any batch; with inputs it is bound to one
/// trial per signal and reports each signal's jump times as discontinuities.
#[derive(Debug, Clone)]
pub struct LeakyTanhRnn<T> {
    n: usize,
    n_in: usize,
    tau: T,
    w: Vec<T>,
    /// `W` and `Wᵀ` packed once for the products (the state VJP is a plain product too).
    wp: Panels<T>,
    wtp: Panels<T>,
    b_in: Vec<T>,
    inputs: Vec<PiecewiseConstant<T>>,
    /// `B u` for every trial and piece: `drive[b][p * n..(p + 1) * n]`.
    drive: Vec<Vec<T>>,
}

impl<T: Real> LeakyTanhRnn<T> {
    /// From explicit matrices (column-major). Panics on mismatched sizes (test support).
    pub fn new(n: usize, n_in: usize, tau: T, w: Vec<T>, b_in: Vec<T>) -> Self {
        assert_eq!(w.len(), n * n, "W must be n x n");
        assert_eq!(b_in.len(), n * n_in, "B must be n x n_in");
        let wtp = Panels::from_col_major(n, n, &transpose(n, &w));
        LeakyTanhRnn {
            n,
            n_in,
            tau,
            wp: Panels::from_col_major(n, n, &w),
            w,
            wtp,
            b_in,
            inputs: Vec::new(),
            drive: Vec::new(),
        }
    }

    /// Random network: `W_ij ~ N(0, g² / n)`, `B_ij ~ N(0, 1)`, seeded.
    pub fn random(n: usize, n_in: usize, g: f64, tau: f64, seed: u64) -> Self {
        let mut rng = Normal::new(seed);
        let sd = g / (n as f64).sqrt();
        let w = (0..n * n).map(|_| T::from_f64(sd * rng.sample())).collect();
        let b_in = (0..n * n_in).map(|_| T::from_f64(rng.sample())).collect();
        Self::new(n, n_in, T::from_f64(tau), w, b_in)
    }

    /// Binds one input signal per trial.
    pub fn with_inputs(mut self, inputs: Vec<PiecewiseConstant<T>>) -> Self {
        for u in &inputs {
            assert_eq!(u.n_channels(), self.n_in, "input channels must equal n_in");
        }
        self.inputs = inputs;
        self.update_drive();
        self
    }

    /// Recomputes the cached `B u` of every input piece.
    fn update_drive(&mut self) {
        let n = self.n;
        self.drive = self
            .inputs
            .iter()
            .map(|u| {
                u.project(&self.b_in, n)
                    .expect("input channels are checked when the inputs are bound")
            })
            .collect();
    }

    /// `batch` trials whose input is 0 until `t_on`, then a random `N(0, amplitude²)` vector
    /// per trial (seeded).
    pub fn with_step_inputs(self, batch: usize, t_on: f64, amplitude: f64, seed: u64) -> Self {
        let mut rng = Normal::new(seed);
        let n_in = self.n_in;
        let inputs = (0..batch)
            .map(|_| {
                let mut v = vec![T::zero(); n_in];
                v.extend((0..n_in).map(|_| T::from_f64(amplitude * rng.sample())));
                PiecewiseConstant::new(n_in, vec![T::from_f64(t_on)], v).expect("valid")
            })
            .collect();
        self.with_inputs(inputs)
    }

    /// Number of units.
    pub fn n(&self) -> usize {
        self.n
    }
    /// The bound input signals.
    pub fn inputs(&self) -> &[PiecewiseConstant<T>] {
        &self.inputs
    }
}

impl<T: Real> VectorField for LeakyTanhRnn<T> {
    type Scalar = T;
    type Workspace = RnnWorkspace<T>;

    fn dim(&self) -> usize {
        self.n
    }
    fn n_params(&self) -> usize {
        self.n * self.n + self.n * self.n_in
    }
    fn batch(&self) -> Option<usize> {
        (!self.inputs.is_empty()).then_some(self.inputs.len())
    }
    fn workspace(&self, batch: usize) -> RnnWorkspace<T> {
        RnnWorkspace {
            h: vec![T::zero(); self.n * batch],
            g: vec![T::zero(); self.n * batch],
        }
    }
    fn rhs(&self, cols: Columns<'_, T>, x: &[T], dxdt: &mut [T], ws: &mut RnnWorkspace<T>) {
        let n = self.n;
        let batch = cols.len();
        let h = &mut ws.h[..n * batch];
        h.copy_from_slice(x);
        Cpu.activate(Activation::Tanh, h);
        Cpu.gemm_panels(&self.wp, batch, T::one(), h, n, T::zero(), dxdt, n);
        let inv_tau = T::one() / self.tau;
        for b in 0..batch {
            let xb = &x[b * n..(b + 1) * n];
            let db = &mut dxdt[b * n..(b + 1) * n];
            if self.inputs.is_empty() {
                for (d, &xi) in db.iter_mut().zip(xb) {
                    *d = (*d - xi) * inv_tau;
                }
            } else {
                let trial = cols.trial(b);
                let p = self.inputs[trial].piece(cols.t()[b]);
                let u = &self.drive[trial][p * n..(p + 1) * n];
                for ((d, &xi), &ui) in db.iter_mut().zip(xb).zip(u) {
                    *d = (*d + ui - xi) * inv_tau;
                }
            }
        }
    }
    fn discontinuities(&self, trial: usize, _t_span: (T, T), out: &mut Vec<T>) {
        if let Some(u) = self.inputs.get(trial) {
            out.extend_from_slice(u.times());
        }
    }
}

/// Transpose of a square column-major matrix.
fn transpose<T: Copy>(n: usize, a: &[T]) -> Vec<T> {
    let mut t = a.to_vec();
    for j in 0..n {
        for i in 0..n {
            t[j + i * n] = a[i + j * n];
        }
    }
    t
}

impl<T: Real> LeakyTanhRnn<T> {
    /// The input value `u(t)` of trial `trial`.
    fn input_at(&self, trial: usize, t: T) -> Option<&[T]> {
        if self.inputs.is_empty() {
            return None;
        }
        let u = &self.inputs[trial];
        Some(u.piece_values(u.piece(t)))
    }
}

impl<T: Real> VjpState for LeakyTanhRnn<T> {
    /// `out += (-v + (1 - tanh²(x)) ∘ (Wᵀ v)) / τ`.
    fn vjp_state(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut RnnWorkspace<T>,
    ) {
        let n = self.n;
        let nc = cols.len();
        let h = &mut ws.h[..n * nc];
        h.copy_from_slice(x);
        Cpu.activate(Activation::Tanh, h);
        let g = &mut ws.g[..n * nc];
        Cpu.gemm_panels(&self.wtp, nc, T::one(), v, n, T::zero(), g, n);
        let inv_tau = T::one() / self.tau;
        for (((o, &gi), &hi), &vi) in out.iter_mut().zip(g.iter()).zip(h.iter()).zip(v) {
            *o += ((T::one() - hi * hi) * gi - vi) * inv_tau;
        }
    }
}

impl<T: Real> VjpParams for LeakyTanhRnn<T> {
    /// `W` (`n x n`) then `B` (`n x n_in`), column-major.
    fn param_views(&self) -> Vec<ParamView> {
        vec![
            ParamView {
                name: "W".into(),
                offset: 0,
                shape: vec![self.n, self.n],
            },
            ParamView {
                name: "B".into(),
                offset: self.n * self.n,
                shape: vec![self.n, self.n_in],
            },
        ]
    }
    fn params(&self, out: &mut [T]) {
        let nw = self.w.len();
        out[..nw].copy_from_slice(&self.w);
        out[nw..nw + self.b_in.len()].copy_from_slice(&self.b_in);
    }
    fn set_params(&mut self, theta: &[T]) {
        assert_eq!(theta.len(), self.n_params(), "theta has the wrong length");
        let nw = self.w.len();
        self.w.copy_from_slice(&theta[..nw]);
        self.wp = Panels::from_col_major(self.n, self.n, &self.w);
        self.wtp = Panels::from_col_major(self.n, self.n, &transpose(self.n, &self.w));
        self.b_in.copy_from_slice(&theta[nw..]);
        self.update_drive();
    }
    /// `dW += V tanh(X)ᵀ / τ`, `dB += V Uᵀ / τ` (one GEMM for all columns).
    fn vjp_params(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut RnnWorkspace<T>,
    ) {
        let n = self.n;
        let nc = cols.len();
        let h = &mut ws.h[..n * nc];
        h.copy_from_slice(x);
        Cpu.activate(Activation::Tanh, h);
        let inv_tau = T::one() / self.tau;
        let (dw, db) = out.split_at_mut(n * n);
        Cpu.gemm(
            Transpose::No,
            Transpose::Yes,
            n,
            n,
            nc,
            inv_tau,
            v,
            n,
            h,
            n,
            T::one(),
            dw,
            n,
        );
        for (c, (trial, tc)) in cols.iter().enumerate() {
            if let Some(u) = self.input_at(trial, tc) {
                let vc = &v[c * n..(c + 1) * n];
                for (ch, &uc) in u.iter().enumerate() {
                    if uc != T::zero() {
                        Cpu.axpy(uc * inv_tau, vc, &mut db[ch * n..(ch + 1) * n]);
                    }
                }
            }
        }
    }
}

impl<T: Real> JvpState for LeakyTanhRnn<T> {
    /// `out = (-v + W ((1 - tanh²(x)) ∘ v)) / τ`.
    fn jvp_state(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut RnnWorkspace<T>,
    ) {
        let n = self.n;
        let nc = cols.len();
        let h = &mut ws.h[..n * nc];
        h.copy_from_slice(x);
        Cpu.activate(Activation::Tanh, h);
        for (hi, &vi) in h.iter_mut().zip(v) {
            *hi = (T::one() - *hi * *hi) * vi;
        }
        Cpu.gemm_panels(&self.wp, nc, T::one(), h, n, T::zero(), out, n);
        let inv_tau = T::one() / self.tau;
        for (o, &vi) in out.iter_mut().zip(v) {
            *o = (*o - vi) * inv_tau;
        }
    }
}

/// Linear system `dx/dt = A x`, exact solution `exp(A t) x0`.
#[derive(Debug, Clone)]
pub struct LinearSystem<T> {
    n: usize,
    a: Vec<T>,
    a64: Vec<f64>,
}

impl<T: Real> LinearSystem<T> {
    /// From a column-major `n x n` matrix given in `f64`.
    pub fn new(n: usize, a: Vec<f64>) -> Self {
        assert_eq!(a.len(), n * n, "A must be n x n");
        LinearSystem {
            n,
            a: a.iter().map(|&v| T::from_f64(v)).collect(),
            a64: a,
        }
    }

    /// The 2-D decaying rotation `A = [[-decay, -omega], [omega, -decay]]`.
    pub fn rotation_decay(decay: f64, omega: f64) -> Self {
        Self::new(2, vec![-decay, omega, -omega, -decay])
    }

    /// A random stable matrix `A = -(α I + G Gᵀ / n) + (H - Hᵀ) / 2` (real parts of the
    /// eigenvalues `<= -α`), seeded.
    pub fn random_stable(n: usize, alpha: f64, seed: u64) -> Self {
        let mut rng = Normal::new(seed);
        let g: Vec<f64> = (0..n * n).map(|_| rng.sample()).collect();
        let hm: Vec<f64> = (0..n * n).map(|_| rng.sample()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut ggt = 0.0;
                for k in 0..n {
                    ggt += g[i + k * n] * g[j + k * n];
                }
                let sym = -(ggt / n as f64) - if i == j { alpha } else { 0.0 };
                a[i + j * n] = sym + 0.5 * (hm[i + j * n] - hm[j + i * n]);
            }
        }
        Self::new(n, a)
    }

    /// The matrix `A` (column-major, `f64`).
    pub fn matrix(&self) -> &[f64] {
        &self.a64
    }

    /// `exp(A t) x0`, computed in `f64` by scaling and squaring with a Taylor series.
    pub fn exact(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        let n = self.n;
        let e = expm(n, &self.a64.iter().map(|v| v * t).collect::<Vec<_>>());
        (0..n)
            .map(|i| (0..n).map(|j| e[i + j * n] * x0[j]).sum())
            .collect()
    }
}

/// Matrix exponential of a column-major `n x n` matrix (scaling and squaring, Taylor to
/// degree 20); accurate to a few ulp times the condition of the problem for small `n`.
pub fn expm(n: usize, m: &[f64]) -> Vec<f64> {
    let norm = (0..n)
        .map(|j| (0..n).map(|i| m[i + j * n].abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let s = if norm > 0.5 {
        (norm / 0.5).log2().ceil() as i32
    } else {
        0
    };
    let scale = 0.5f64.powi(s);
    let a: Vec<f64> = m.iter().map(|v| v * scale).collect();
    let matmul = |x: &[f64], y: &[f64]| -> Vec<f64> {
        let mut z = vec![0.0; n * n];
        for j in 0..n {
            for k in 0..n {
                let ykj = y[k + j * n];
                for i in 0..n {
                    z[i + j * n] += x[i + k * n] * ykj;
                }
            }
        }
        z
    };
    let mut result = vec![0.0; n * n];
    let mut term = vec![0.0; n * n];
    for i in 0..n {
        result[i + i * n] = 1.0;
        term[i + i * n] = 1.0;
    }
    for k in 1..=20 {
        term = matmul(&term, &a);
        for v in term.iter_mut() {
            *v /= k as f64;
        }
        for (r, t) in result.iter_mut().zip(&term) {
            *r += t;
        }
    }
    for _ in 0..s {
        result = matmul(&result, &result);
    }
    result
}

impl<T: Real> VectorField for LinearSystem<T> {
    type Scalar = T;
    type Workspace = ();
    fn dim(&self) -> usize {
        self.n
    }
    fn n_params(&self) -> usize {
        self.n * self.n
    }
    fn workspace(&self, _batch: usize) {}
    fn rhs(&self, cols: Columns<'_, T>, x: &[T], dxdt: &mut [T], _ws: &mut ()) {
        let n = self.n;
        Cpu.gemm(
            Transpose::No,
            Transpose::No,
            n,
            cols.len(),
            n,
            T::one(),
            &self.a,
            n,
            x,
            n,
            T::zero(),
            dxdt,
            n,
        );
    }
}

impl<T: Real> VjpState for LinearSystem<T> {
    /// `out += Aᵀ v`.
    fn vjp_state(&self, cols: Columns<'_, T>, _x: &[T], v: &[T], out: &mut [T], _ws: &mut ()) {
        let n = self.n;
        Cpu.gemm(
            Transpose::Yes,
            Transpose::No,
            n,
            cols.len(),
            n,
            T::one(),
            &self.a,
            n,
            v,
            n,
            T::one(),
            out,
            n,
        );
    }
}

impl<T: Real> VjpParams for LinearSystem<T> {
    /// `A` (`n x n`, column-major).
    fn param_views(&self) -> Vec<ParamView> {
        vec![ParamView {
            name: "A".into(),
            offset: 0,
            shape: vec![self.n, self.n],
        }]
    }
    fn params(&self, out: &mut [T]) {
        out.copy_from_slice(&self.a);
    }
    fn set_params(&mut self, theta: &[T]) {
        assert_eq!(theta.len(), self.n * self.n, "theta has the wrong length");
        self.a.copy_from_slice(theta);
        self.a64 = theta.iter().map(|v| v.as_f64()).collect();
    }
    /// `dA += V Xᵀ`.
    fn vjp_params(&self, cols: Columns<'_, T>, x: &[T], v: &[T], out: &mut [T], _ws: &mut ()) {
        let n = self.n;
        Cpu.gemm(
            Transpose::No,
            Transpose::Yes,
            n,
            n,
            cols.len(),
            T::one(),
            v,
            n,
            x,
            n,
            T::one(),
            out,
            n,
        );
    }
}

impl<T: Real> JvpState for LinearSystem<T> {
    /// `out = A v`.
    fn jvp_state(&self, cols: Columns<'_, T>, _x: &[T], v: &[T], out: &mut [T], _ws: &mut ()) {
        let n = self.n;
        Cpu.gemm(
            Transpose::No,
            Transpose::No,
            n,
            cols.len(),
            n,
            T::one(),
            &self.a,
            n,
            v,
            n,
            T::zero(),
            out,
            n,
        );
    }
}

/// `y' = sin y`, exact `y(t) = 2 atan(e^t tan(y0 / 2))` for `|y0| < π`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinY;

impl SinY {
    /// The exact solution from `y0` at `t`.
    pub fn exact(t: f64, y0: f64) -> f64 {
        2.0 * (t.exp() * (y0 / 2.0).tan()).atan()
    }
}

impl VectorField for SinY {
    type Scalar = f64;
    type Workspace = ();
    fn dim(&self) -> usize {
        1
    }
    fn workspace(&self, _batch: usize) {}
    fn rhs(&self, _cols: Columns<'_, f64>, x: &[f64], dxdt: &mut [f64], _ws: &mut ()) {
        for (d, x) in dxdt.iter_mut().zip(x) {
            *d = x.sin();
        }
    }
    fn initial_state(&self, x0: &mut [f64]) {
        x0.fill(1.0);
    }
}

/// `y' = -2 t y` (time-dependent), exact `y(t) = y0 exp(t0² - t²)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gaussian;

impl Gaussian {
    /// The exact solution from `y0` at `t0`, at `t`.
    pub fn exact(t0: f64, t: f64, y0: f64) -> f64 {
        y0 * (t0 * t0 - t * t).exp()
    }
}

impl VectorField for Gaussian {
    type Scalar = f64;
    type Workspace = ();
    fn dim(&self) -> usize {
        1
    }
    fn workspace(&self, _batch: usize) {}
    fn rhs(&self, cols: Columns<'_, f64>, x: &[f64], dxdt: &mut [f64], _ws: &mut ()) {
        for ((d, x), t) in dxdt.iter_mut().zip(x).zip(cols.t()) {
            *d = -2.0 * t * x;
        }
    }
    fn initial_state(&self, x0: &mut [f64]) {
        x0.fill(1.0);
    }
}

/// `x' = x²` from `x0 = 1`: blows up at `t = 1`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quadratic;

impl VectorField for Quadratic {
    type Scalar = f64;
    type Workspace = ();
    fn dim(&self) -> usize {
        1
    }
    fn workspace(&self, _batch: usize) {}
    fn rhs(&self, _cols: Columns<'_, f64>, x: &[f64], dxdt: &mut [f64], _ws: &mut ()) {
        for (d, x) in dxdt.iter_mut().zip(x) {
            *d = x * x;
        }
    }
    fn initial_state(&self, x0: &mut [f64]) {
        x0.fill(1.0);
    }
}

/// Scalar fields without parameters: state VJPs only (`n_params() == 0`).
macro_rules! scalar_vjp {
    ($ty:ty, |$t:ident, $x:ident| $d:expr) => {
        impl VjpState for $ty {
            fn vjp_state(
                &self,
                cols: Columns<'_, f64>,
                x: &[f64],
                v: &[f64],
                out: &mut [f64],
                _ws: &mut (),
            ) {
                for (((o, &$x), &vi), &$t) in out.iter_mut().zip(x).zip(v).zip(cols.t()) {
                    *o += $d * vi;
                }
            }
        }
        impl VjpParams for $ty {
            fn param_views(&self) -> Vec<ParamView> {
                Vec::new()
            }
            fn params(&self, _out: &mut [f64]) {}
            fn set_params(&mut self, _theta: &[f64]) {}
            fn vjp_params(
                &self,
                _: Columns<'_, f64>,
                _: &[f64],
                _: &[f64],
                _: &mut [f64],
                _: &mut (),
            ) {
            }
        }
    };
}
scalar_vjp!(SinY, |_t, x| x.cos());
scalar_vjp!(Gaussian, |t, _x| -2.0 * t);
scalar_vjp!(Quadratic, |_t, x| 2.0 * x);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expm_matches_rotation_closed_form() {
        let sys = LinearSystem::<f64>::rotation_decay(0.3, 2.0);
        let x = sys.exact(1.7, &[1.0, 0.5]);
        let (c, s, d) = (
            (2.0f64 * 1.7).cos(),
            (2.0f64 * 1.7).sin(),
            (-0.3f64 * 1.7).exp(),
        );
        let want = [d * (c * 1.0 - s * 0.5), d * (s * 1.0 + c * 0.5)];
        for i in 0..2 {
            assert!((x[i] - want[i]).abs() < 1e-14, "{x:?} vs {want:?}");
        }
    }

    #[test]
    fn rnn_rhs_matches_naive_formula() {
        let rnn = LeakyTanhRnn::<f64>::random(7, 2, 1.3, 2.0, 3).with_step_inputs(3, 1.0, 1.0, 4);
        let x: Vec<f64> = (0..21).map(|i| (i as f64 * 0.37).sin()).collect();
        let t = [0.5, 1.0, 2.0];
        let mut d = vec![0.0; 21];
        let mut ws = rnn.workspace(3);
        rnn.rhs(Columns::new(&t), &x, &mut d, &mut ws);
        for b in 0..3 {
            let u = rnn.inputs[b].at(t[b]);
            for i in 0..7 {
                let mut acc = -x[b * 7 + i];
                for j in 0..7 {
                    acc += rnn.w[i + j * 7] * x[b * 7 + j].tanh();
                }
                for (c, uc) in u.iter().enumerate() {
                    acc += rnn.b_in[i + c * 7] * uc;
                }
                assert!((d[b * 7 + i] - acc / 2.0).abs() < 1e-14);
            }
        }
    }
}
