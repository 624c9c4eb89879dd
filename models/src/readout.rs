//! The linear readout of a rate network: `y = wᵀ φ(x) / norm + b`.

use neurode_solvers::{Activation, Backend, Cpu, Real};

use crate::ModelError;

/// Linear readout of the rates `y = wᵀ φ(x) / norm + b`: the low-rank RNN's
/// `wᵀ tanh(x) / N + b` ([`Readout::new`]) or the Kim et al. rate RNN's
/// `o = w_out φ(x) + b_out` ([`Readout::rates`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Readout<T> {
    /// Weights `w` (`N`).
    pub w: Vec<T>,
    /// Bias `b`.
    pub b: T,
    act: Activation,
    norm: T,
}

impl<T: Real> Readout<T> {
    /// The low-rank RNN's readout `y = wᵀ tanh(x) / N + b`, `N = w.len()`.
    pub fn new(w: Vec<T>, b: T) -> Result<Self, ModelError> {
        let norm = T::from_usize(w.len());
        Self::build(w, b, Activation::Tanh, norm)
    }

    /// The readout `y = wᵀ φ(x) + b` of rates `φ(x)`.
    pub fn rates(w: Vec<T>, b: T, act: Activation) -> Result<Self, ModelError> {
        Self::build(w, b, act, T::one())
    }

    fn build(w: Vec<T>, b: T, act: Activation, norm: T) -> Result<Self, ModelError> {
        if w.is_empty() {
            return Err(ModelError::Shape(
                "the readout needs at least one weight".into(),
            ));
        }
        crate::checks::check_finite("readout weights", &w)?;
        if !b.is_finite() {
            return Err(ModelError::invalid(
                "readout bias",
                b.as_f64(),
                "must be finite",
            ));
        }
        Ok(Readout { w, b, act, norm })
    }

    /// The activation `φ`.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// `y` for one state column `x` (`φ` computed here).
    pub fn output(&self, x: &[T]) -> T {
        let mut s = T::zero();
        self.rate_blocks(x, |k, h| {
            s = self.w[k..].iter().zip(h).fold(s, |s, (&w, &h)| s + w * h);
        });
        s * (T::one() / self.norm) + self.b
    }

    /// `y` for one state column whose rates `h = φ(x)` are known (see
    /// [`rates_into`](Self::rates_into)); the bits of [`output`](Self::output).
    pub fn output_of_rates(&self, h: &[T]) -> T {
        let s = self
            .w
            .iter()
            .zip(h)
            .fold(T::zero(), |s, (&w, &h)| s + w * h);
        s * (T::one() / self.norm) + self.b
    }

    /// Backward of `y = output(x)` with upstream `dy`: adds `dy ∂y/∂x` to `dx`, `dy ∂y/∂w`
    /// to `dw` and returns `dy ∂y/∂b = dy`.
    pub fn backward(&self, x: &[T], dy: T, dx: &mut [T], dw: &mut [T]) -> T {
        let a = dy / self.norm;
        self.rate_blocks(x, |k, h| self.backward_block(k, &x[k..], h, a, dx, dw));
        dy
    }

    /// [`backward`](Self::backward) for one state column `x` whose rates `h = φ(x)` are
    /// known; the same bits.
    pub fn backward_of_rates(&self, x: &[T], h: &[T], dy: T, dx: &mut [T], dw: &mut [T]) -> T {
        let a = dy / self.norm;
        let n = self.w.len().min(x.len()).min(h.len());
        for k in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - k);
            self.backward_block(k, &x[k..k + len], &h[k..k + len], a, dx, dw);
        }
        dy
    }

    /// `φ` of every element of `x` into `h` (`x` may hold many state columns back to
    /// back): libm's tanh element by element for the low-rank RNN's readout (its bits
    /// kept), the backend's vectorised activation otherwise.
    pub fn rates_into(&self, x: &[T], h: &mut [T]) {
        let x = &x[..h.len()];
        if self.act == Activation::Tanh {
            for (h, &x) in h.iter_mut().zip(x) {
                *h = phi(self.act, x);
            }
        } else {
            Cpu.activate_to(self.act, x, h);
        }
    }

    /// Adds `a ∂y/∂x` and `a ∂y/∂w` (`a = dy / norm`) of the units `k..k + h.len()`, whose
    /// states are `x` and rates `h`.
    fn backward_block(&self, k: usize, x: &[T], h: &[T], a: T, dx: &mut [T], dw: &mut [T]) {
        let len = h.len();
        let mut d = [T::zero(); CHUNK];
        let d = &mut d[..len];
        if self.act == Activation::Tanh {
            for ((d, &xi), &hi) in d.iter_mut().zip(x).zip(h) {
                *d = dphi(self.act, xi, hi);
            }
        } else {
            Cpu.activate_grad(self.act, &x[..len], h, d);
        }
        let (dx, dw, w) = (
            &mut dx[k..k + len],
            &mut dw[k..k + len],
            &self.w[k..k + len],
        );
        for ((((dxi, dwi), &di), &hi), &wi) in dx.iter_mut().zip(dw).zip(&*d).zip(h).zip(w) {
            *dxi += a * wi * di;
            *dwi += a * hi;
        }
    }

    /// Calls `f(k, h)` for consecutive blocks of the rates `h = φ(x[k..])`
    /// ([`rates_into`](Self::rates_into)).
    fn rate_blocks(&self, x: &[T], mut f: impl FnMut(usize, &[T])) {
        let mut h = [T::zero(); CHUNK];
        let n = self.w.len().min(x.len());
        for k in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - k);
            let h = &mut h[..len];
            self.rates_into(&x[k..k + len], h);
            f(k, h);
        }
    }
}

/// Elements per block of the vectorised readout.
const CHUNK: usize = 64;

/// `φ(x)` of one value.
pub fn phi<T: Real>(act: Activation, x: T) -> T {
    let zero = T::zero();
    match act {
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => T::one() / (T::one() + (-x).exp()),
        Activation::Softplus => x.max(zero) + (-x.abs()).exp().ln_1p(),
        Activation::Relu => x.max(zero),
        Activation::Identity => x,
        Activation::ClippedRelu { cap } => x.max(zero).min(T::from_f64(cap)),
        Activation::ClippedSoftplus { cap } => {
            (x.max(zero) + (-x.abs()).exp().ln_1p()).min(T::from_f64(cap))
        }
    }
}

/// `φ'(x)` given `x` and `h = φ(x)`.
pub fn dphi<T: Real>(act: Activation, x: T, h: T) -> T {
    let (zero, one) = (T::zero(), T::one());
    match act {
        Activation::Tanh => one - h * h,
        Activation::Sigmoid => h * (one - h),
        Activation::Softplus => one / (one + (-x).exp()),
        Activation::Identity => one,
        Activation::Relu => {
            if x > zero {
                one
            } else {
                zero
            }
        }
        Activation::ClippedRelu { cap } => {
            if x > zero && x < T::from_f64(cap) {
                one
            } else {
                zero
            }
        }
        Activation::ClippedSoftplus { cap } => {
            if h < T::from_f64(cap) {
                one / (one + (-x).exp())
            } else {
                zero
            }
        }
    }
}
