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
        crate::leaky::check_finite("readout weights", &w)?;
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
        let inv_n = T::one() / self.norm;
        let s = if self.act == Activation::Tanh {
            // The low-rank RNN's readout: libm's tanh, element by element (its bits kept).
            self.w
                .iter()
                .zip(x)
                .fold(T::zero(), |s, (&w, &x)| s + w * phi(self.act, x))
        } else {
            let mut s = T::zero();
            self.rate_blocks(x, |_, w, h| {
                s = w.iter().zip(h).fold(s, |s, (&w, &h)| s + w * h);
            });
            s
        };
        s * inv_n + self.b
    }

    /// Backward of `y = output(x)` with upstream `dy`: adds `dy ∂y/∂x` to `dx`, `dy ∂y/∂w`
    /// to `dw` and returns `dy ∂y/∂b = dy`.
    pub fn backward(&self, x: &[T], dy: T, dx: &mut [T], dw: &mut [T]) -> T {
        let a = dy / self.norm;
        if self.act == Activation::Tanh {
            for (((dxi, dwi), &xi), &wi) in dx.iter_mut().zip(dw.iter_mut()).zip(x).zip(&self.w) {
                let h = phi(self.act, xi);
                *dxi += a * wi * dphi(self.act, xi, h);
                *dwi += a * h;
            }
            return dy;
        }
        let mut d = [T::zero(); CHUNK];
        self.rate_blocks(x, |k, w, h| {
            let d = &mut d[..h.len()];
            Cpu.activate_grad(self.act, &x[k..k + h.len()], h, d);
            let (dx, dw) = (&mut dx[k..k + h.len()], &mut dw[k..k + h.len()]);
            for ((((dxi, dwi), &di), &hi), &wi) in dx.iter_mut().zip(dw).zip(&*d).zip(h).zip(w) {
                *dxi += a * wi * di;
                *dwi += a * hi;
            }
        });
        dy
    }

    /// Calls `f(k, w, h)` for consecutive blocks of the weights `w = self.w[k..]` and the
    /// rates `h = φ(x[k..])`, computed by the backend's vectorised activation.
    fn rate_blocks(&self, x: &[T], mut f: impl FnMut(usize, &[T], &[T])) {
        let mut h = [T::zero(); CHUNK];
        let n = self.w.len().min(x.len());
        for k in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - k);
            let h = &mut h[..len];
            Cpu.activate_to(self.act, &x[k..k + len], h);
            f(k, &self.w[k..k + len], h);
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
