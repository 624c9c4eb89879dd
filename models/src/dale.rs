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
//!
//! The same connectivity, built by [`Dale::masked`], serves mRNNTorch's multi-region
//! networks: `W_eff = mask ⊙ |W| ⊙ sign` under Dale's law (a [`Rectifier::Abs`] where Kim
//! et al. use a [`Rectifier::Relu`]) and `W_eff = W ⊙ mask` without it.

use std::sync::Arc;

use neurode_solvers::{recycle, reused_zeros, Backend, Cpu, Panels, ParamView, Real, Transpose};

use crate::checks::{check_finite, check_len, check_signed_mask};
use crate::leaky::Connectivity;
use crate::rectifier::Rectifier;
use crate::ModelError;

/// `W_eff = rect(W) ⊙ S`, `n x n`, with `W` trainable: `rect` a [`Rectifier`] and `S` a
/// fixed signed mask (`S[i, j] = sign_j M[i, j]`), or `W` itself without a mask. Kim et
/// al.'s `(relu(W) D) ⊙ M_som` ([`Dale::new`]) and mRNNTorch's `mask ⊙ |W| ⊙ sign`
/// ([`Dale::masked`]) are both of this form.
#[derive(Debug, Clone)]
pub struct Dale<T> {
    n: usize,
    dale: bool,
    rect: Rectifier,
    /// Raw weights `W`, column-major.
    w: Vec<T>,
    /// `+1` (excitatory) or `-1` (inhibitory) per unit.
    sign: Vec<T>,
    /// Per unit: a SOM unit (receives no inhibitory input).
    som: Arc<Vec<bool>>,
    /// `W_eff` (column-major) and `W_eff`, `W_effᵀ` as panels.
    eff: Arc<(Vec<T>, Panels<T>, Panels<T>)>,
    /// `S[i, j] = sign_j M[i, j]` (column-major; empty for no mask).
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

/// Checks `n >= 1` and that `w` is `n x n` and finite.
fn check_weights<T: Real>(n: usize, w: &[T]) -> Result<(), ModelError> {
    if n == 0 {
        return Err(ModelError::invalid(
            "N",
            0.0,
            "a network needs at least one unit",
        ));
    }
    check_len("W", w, n * n, &format!("{n} x {n}"))?;
    check_finite("W", w)
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
        check_weights(n, &w)?;
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
            rect: if dale {
                Rectifier::Relu
            } else {
                Rectifier::Identity
            },
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
        if dale {
            // `sign_j M_som[i, j]`, fixed.
            let m = (0..n * n)
                .map(|k| c.sign[k / n] * c.mask(k % n, k / n))
                .collect();
            c.signed_mask = Arc::new(m);
        }
        c.update();
        Ok(c)
    }

    /// `W_eff = rect(W) ⊙ S` from raw weights `w` and a signed mask `s` (both `n x n`,
    /// column-major): `s[i + j n]` is `±1` where unit `j` may reach unit `i` (its sign),
    /// `0` where it may not. Dale's law holds when `rect` is not
    /// [`Rectifier::Identity`] and each column of `s` has one sign.
    pub fn masked(n: usize, w: Vec<T>, s: Vec<T>, rect: Rectifier) -> Result<Self, ModelError> {
        check_weights(n, &w)?;
        check_len("signed mask", &s, n * n, &format!("{n} x {n}"))?;
        check_signed_mask("signed mask", &s, n)?;
        // A column's sign: that of its first nonzero entry (+1 for an empty column).
        let sign = s
            .chunks_exact(n)
            .map(|col| match col.iter().find(|&&v| v != T::zero()) {
                Some(&v) if v < T::zero() => -T::one(),
                _ => T::one(),
            })
            .collect();
        let mut c = Dale {
            n,
            dale: rect != Rectifier::Identity,
            rect,
            w,
            sign,
            som: Arc::new(vec![false; n]),
            eff: Arc::new((
                Vec::new(),
                Panels::from_col_major(0, 0, &[]),
                Panels::from_col_major(0, 0, &[]),
            )),
            signed_mask: Arc::new(s),
        };
        c.update();
        Ok(c)
    }

    /// How the raw weights are rectified.
    pub fn rectifier(&self) -> Rectifier {
        self.rect
    }
    /// The signed mask `S` (`n x n`, column-major; empty when there is none).
    pub fn signed_mask(&self) -> &[T] {
        &self.signed_mask
    }

    /// Whether Dale's law applies.
    pub fn dale(&self) -> bool {
        self.dale
    }
    /// The raw weights `W` (`n x n`, column-major).
    pub fn raw(&self) -> &[T] {
        &self.w
    }
    /// `D = alpha V Hᵀ` (`n x n`, column-major) in the scratch, made on first use (only a
    /// parameter VJP needs it) in memory kept from the previous gradient.
    fn outer<'s>(&self, alpha: T, v: &[T], h: &[T], s: &'s mut DaleScratch<T>) -> &'s [T] {
        let n = self.n;
        if s.d.len() < n * n {
            s.d = reused_zeros(n * n);
        }
        let d = &mut s.d[..n * n];
        let (no, yes) = (Transpose::No, Transpose::Yes);
        Cpu.gemm(
            no,
            yes,
            n,
            n,
            v.len() / n,
            alpha,
            v,
            n,
            h,
            n,
            T::zero(),
            d,
            n,
        );
        d
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
    /// `M[i, j]`: 0 where unit `j` may not reach unit `i` (for Kim et al.'s networks,
    /// where SOM unit `i` would receive input from inhibitory unit `j`), else 1.
    pub fn mask(&self, i: usize, j: usize) -> T {
        if let Some(&s) = self.signed_mask.get(i + j * self.n) {
            return s.abs();
        }
        if self.som[i] && self.sign[j] < T::zero() {
            T::zero()
        } else {
            T::one()
        }
    }

    fn update(&mut self) {
        let n = self.n;
        // In the memory of the previous weights when no one else holds them.
        let (eff, p, pt) = &mut *Arc::make_mut(&mut self.eff);
        eff.clear();
        if self.signed_mask.is_empty() {
            eff.extend_from_slice(&self.w);
        } else {
            eff.extend(self.rect.masked(&self.w, &self.signed_mask));
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
    /// `dW += α (V Hᵀ) ⊙ ∂W_eff/∂W` (`∂W_eff/∂W = 1` without a mask).
    fn vjp(&self, alpha: T, v: &[T], h: &[T], out: &mut [T], s: &mut DaleScratch<T>) {
        let n = self.n;
        if self.signed_mask.is_empty() {
            let cols = v.len() / n;
            let (no, yes) = (Transpose::No, Transpose::Yes);
            Cpu.gemm(no, yes, n, n, cols, alpha, v, n, h, n, T::one(), out, n);
            return;
        }
        let d = self.outer(alpha, v, h, s);
        // `∂W_eff/∂W = rect'(W) ⊙ S`.
        self.rect
            .add_masked_slope(d, &self.w, &self.signed_mask, &mut out[..n * n]);
    }
    /// The row sums from `D = alpha V Hᵀ`, formed for the weights' gradient anyway:
    /// `rows_i += Σ_j W_eff[i, j] D[i, j]`, `n²` multiply-adds instead of the `n² cols`
    /// of `W_eff H`.
    fn vjp_row_sums(
        &self,
        alpha: T,
        v: &[T],
        h: &[T],
        out: &mut [T],
        rows: &mut [T],
        _z: &mut Vec<T>,
        s: &mut DaleScratch<T>,
    ) {
        let n = self.n;
        let d = self.outer(alpha, v, h, s);
        for (wc, dc) in self.eff.0.chunks_exact(n).zip(d.chunks_exact(n)) {
            for ((r, &w), &dk) in rows.iter_mut().zip(wc).zip(dc) {
                *r += w * dk;
            }
        }
        let out = &mut out[..n * n];
        if self.signed_mask.is_empty() {
            for (o, &dk) in out.iter_mut().zip(d.iter()) {
                *o += dk;
            }
        } else {
            self.rect
                .add_masked_slope(d, &self.w, &self.signed_mask, out);
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
