//! Dense connectivity under Dale's principle, as in Kim, Li & Sejnowski (2019), "Simple
//! framework for constructing functional spiking recurrent neural networks", PNAS
//! 116(45):22811–22820:
//!
//! `W_eff = (relu(W) D) ⊙ M_som`,
//!
//! with `W` the trainable raw weights (`W[i, j]` is the connection from unit `j` to unit
//! `i`), `D = diag(±1)` the sign of each presynaptic unit (excitatory `+1`, inhibitory
//! `-1`) and `M_som` zero where a SOM unit (the first `som_N` inhibitory units) would
//! receive inhibitory input. Every column of `W_eff` carries its unit's sign whatever the
//! raw weights are, so gradient steps on `W` cannot break Dale's law. Without Dale's law
//! `W_eff = W`.

use std::sync::Arc;

use neurode_solvers::{recycle, reused_zeros, Backend, Cpu, Panels, ParamView, Real, Transpose};

use crate::leaky::{check_finite, check_len, Connectivity};
use crate::ModelError;

/// `W_eff = (relu(W) D) ⊙ M_som` (or `W` without Dale's law), `n x n`, with `W` trainable.
#[derive(Debug, Clone)]
pub struct Dale<T> {
    n: usize,
    dale: bool,
    /// Raw weights `W`, column-major.
    w: Vec<T>,
    /// `+1` (excitatory) or `-1` (inhibitory) per unit.
    sign: Vec<T>,
    /// Per unit: a SOM unit (receives no inhibitory input).
    som: Arc<Vec<bool>>,
    /// `W_eff` (column-major) and `W_eff`, `W_effᵀ` as panels.
    eff: Arc<(Vec<T>, Panels<T>, Panels<T>)>,
    /// `sign_j M_som[i, j]` (column-major; empty without Dale's law).
    signed_mask: Arc<Vec<T>>,
}

/// `out = A h` for `h.len() / n` columns: a matrix-vector kernel for one column (a trial
/// stepped alone), the GEMM for more.
fn product<T: Real>(a: &Panels<T>, n: usize, h: &[T], out: &mut [T]) {
    let cols = h.len() / n;
    if cols == 1 {
        Cpu.gemv_panels(a, h, out);
    } else {
        Cpu.gemm_panels(a, cols, T::one(), h, n, T::zero(), out, n);
    }
}

/// Columns of parameter VJPs gathered per product (see [`Connectivity::defer_columns`]).
const DEFER_COLUMNS: usize = 128;

/// Scratch of [`Dale`]: the `n x n` product `V Hᵀ`.
#[derive(Debug)]
pub struct DaleScratch<T: Real> {
    d: Vec<T>,
}

impl<T: Real> Drop for DaleScratch<T> {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.d));
    }
}

impl<T: Real> Dale<T> {
    /// From raw weights `w` (`n x n`, column-major), the inhibitory units `inh` and the
    /// SOM units `som` (each a subset of the inhibitory ones), with (`dale = true`) or
    /// without Dale's law (then `inh` and `som` must be all `false`).
    pub fn new(
        n: usize,
        w: Vec<T>,
        inh: &[bool],
        som: &[bool],
        dale: bool,
    ) -> Result<Self, ModelError> {
        if n == 0 {
            return Err(ModelError::invalid(
                "N",
                0.0,
                "a network needs at least one unit",
            ));
        }
        check_len("W", &w, n * n, &format!("{n} x {n}"))?;
        check_finite("W", &w)?;
        check_len("inh", inh, n, &format!("{n} (one flag per unit)"))?;
        check_len("som", som, n, &format!("{n} (one flag per unit)"))?;
        if let Some(i) = (0..n).find(|&i| som[i] && !inh[i]) {
            return Err(ModelError::Shape(format!(
                "unit {i} is marked SOM but not inhibitory; SOM units are inhibitory units"
            )));
        }
        if !dale && inh.iter().any(|&b| b) {
            return Err(ModelError::Shape(
                "inhibitory units need Dale's law (apply_dale = true)".into(),
            ));
        }
        let sign = inh
            .iter()
            .map(|&i| if i { -T::one() } else { T::one() })
            .collect();
        let mut c = Dale {
            n,
            dale,
            w,
            sign,
            som: Arc::new(som.to_vec()),
            eff: Arc::new((
                Vec::new(),
                Panels::from_col_major(0, 0, &[]),
                Panels::from_col_major(0, 0, &[]),
            )),
            signed_mask: Arc::new(Vec::new()),
        };
        c.update();
        Ok(c)
    }

    /// Whether Dale's law applies.
    pub fn dale(&self) -> bool {
        self.dale
    }
    /// The raw weights `W` (`n x n`, column-major).
    pub fn raw(&self) -> &[T] {
        &self.w
    }
    /// The effective weights `W_eff` (`n x n`, column-major).
    pub fn effective(&self) -> &[T] {
        &self.eff.0
    }
    /// `+1` (excitatory) or `-1` (inhibitory) per unit: the diagonal of `D`.
    pub fn signs(&self) -> &[T] {
        &self.sign
    }
    /// Per unit: whether it is inhibitory.
    pub fn inhibitory(&self) -> Vec<bool> {
        self.sign.iter().map(|&s| s < T::zero()).collect()
    }
    /// Per unit: whether it is a SOM unit.
    pub fn som(&self) -> &[bool] {
        &self.som
    }
    /// `M_som[i, j]`: 0 where SOM unit `i` would receive input from inhibitory unit `j`.
    pub fn mask(&self, i: usize, j: usize) -> T {
        if self.som[i] && self.sign[j] < T::zero() {
            T::zero()
        } else {
            T::one()
        }
    }

    fn update(&mut self) {
        let n = self.n;
        // `sign_j M_som[i, j]`, fixed: W_eff = relu(W) ⊙ it, ∂W_eff/∂W = [W > 0] ⊙ it.
        if self.dale && self.signed_mask.len() != n * n {
            let m = (0..n * n)
                .map(|k| self.sign[k / n] * self.mask(k % n, k / n))
                .collect();
            self.signed_mask = Arc::new(m);
        }
        // In the memory of the previous weights when no one else holds them.
        let (eff, p, pt) = &mut *Arc::make_mut(&mut self.eff);
        eff.clear();
        if self.dale {
            let relu = |(&w, &m): (&T, &T)| w.max(T::zero()) * m;
            eff.extend(self.w.iter().zip(self.signed_mask.iter()).map(relu));
        } else {
            eff.extend_from_slice(&self.w);
        }
        p.set_col_major(n, n, eff);
        pt.set_transpose_of(n, n, eff);
    }
}

impl<T: Real> Connectivity<T> for Dale<T> {
    type Scratch = DaleScratch<T>;
    fn n(&self) -> usize {
        self.n
    }
    fn n_params(&self) -> usize {
        self.n * self.n
    }
    fn scratch(&self, _cols: usize) -> DaleScratch<T> {
        DaleScratch { d: Vec::new() }
    }
    /// `out = W_eff h`.
    fn apply(&self, h: &[T], out: &mut [T], _s: &mut DaleScratch<T>) {
        product(&self.eff.1, self.n, h, out);
    }
    /// `out = W_effᵀ v`.
    fn apply_t(&self, v: &[T], out: &mut [T], _s: &mut DaleScratch<T>) {
        product(&self.eff.2, self.n, v, out);
    }
    /// `dW += α (V Hᵀ) ⊙ ∂W_eff/∂W` (`∂W_eff/∂W = 1` without Dale's law).
    fn vjp(&self, alpha: T, v: &[T], h: &[T], out: &mut [T], s: &mut DaleScratch<T>) {
        let n = self.n;
        let cols = v.len() / n;
        let (no, yes) = (Transpose::No, Transpose::Yes);
        if !self.dale {
            Cpu.gemm(no, yes, n, n, cols, alpha, v, n, h, n, T::one(), out, n);
            return;
        }
        // Made on first use (only a parameter VJP needs it), in memory kept from the
        // previous gradient.
        if s.d.len() < n * n {
            s.d = reused_zeros(n * n);
        }
        let d = &mut s.d[..n * n];
        Cpu.gemm(no, yes, n, n, cols, alpha, v, n, h, n, T::zero(), d, n);
        // `∂W_eff/∂W = [W > 0] ⊙ sign_j M_som[i, j]`.
        let slope = self.w.iter().zip(self.signed_mask.iter());
        for ((o, &dk), (&w, &m)) in out[..n * n].iter_mut().zip(&*d).zip(slope) {
            *o += dk * if w > T::zero() { m } else { T::zero() };
        }
    }
    /// A dense `W`: gather up to 128 columns (time steps) per product.
    fn defer_columns(&self) -> usize {
        DEFER_COLUMNS
    }
    fn param_views(&self) -> Vec<ParamView> {
        vec![ParamView {
            name: "W".into(),
            offset: 0,
            shape: vec![self.n, self.n],
        }]
    }
    fn params(&self, out: &mut [T]) {
        out[..self.w.len()].copy_from_slice(&self.w);
    }
    fn set_params(&mut self, theta: &[T]) {
        let len = self.w.len();
        self.w.copy_from_slice(&theta[..len]);
        self.update();
    }
}
