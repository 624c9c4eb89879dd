//! The backend seam: see [`Backend`].

mod cpu;
mod cuda;
pub(crate) mod kernels;
mod team;

pub use team::with_team;
pub(crate) use team::{for_parts, MIN_SHARED_WORK};

pub use cpu::Cpu;
pub use cuda::Cuda;

use crate::scalar::Real;

/// Whether a GEMM operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    /// `op(A) = A`.
    No,
    /// `op(A) = Aᵀ`.
    Yes,
}

impl Transpose {
    fn is_yes(self) -> bool {
        self == Transpose::Yes
    }
}

/// An elementwise nonlinearity `φ` of a rate model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// The logistic sigmoid `1 / (1 + e^-x)`.
    Sigmoid,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), cap)`.
    ClippedRelu {
        /// The upper bound (> 0).
        cap: f64,
    },
    /// `min(ln(1 + e^x), cap)` (the softplus of Kim et al. 2019, clamped at 20).
    ClippedSoftplus {
        /// The upper bound (> 0).
        cap: f64,
    },
    /// `x` (mRNNTorch's `linear`).
    Identity,
}

/// A matrix kept for repeated products `A x`: row panels of [`Panels::panel_rows`] rows
/// (192 bytes of a column: three 64-byte vectors, the row count of the AVX-512 GEMM
/// kernels), each stored contiguously, column-major.
///
/// A GEMM over a plain column-major matrix repacks it into this layout on every call; a
/// network's weight matrix is multiplied thousands of times per solve, often by few
/// columns (trials), so it is packed once here. The products give the same bits as with
/// the plain matrix (faer runs the same kernel on each panel; tested in the CPU backend).
/// Panels are also the unit the CPU backend shares a product out by among a team of
/// threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Panels<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Real> Panels<T> {
    /// Rows per panel: 24 for `f64`, 48 for `f32`.
    pub fn panel_rows() -> usize {
        192 / std::mem::size_of::<T>()
    }

    /// The panels of the `rows x cols` column-major matrix `a`.
    ///
    /// # Panics
    /// If `a.len() != rows * cols`.
    pub fn from_col_major(rows: usize, cols: usize, a: &[T]) -> Self {
        let mut p = Panels {
            rows: 0,
            cols: 0,
            data: Vec::new(),
        };
        p.set_col_major(rows, cols, a);
        p
    }

    /// The panels of the square `n x n` column-major matrix `a` and of its transpose (a
    /// network's weights, for `W h` and `Wᵀ v`).
    ///
    /// # Panics
    /// If `a.len() != n * n`.
    pub fn with_transpose(n: usize, a: &[T]) -> (Self, Self) {
        let mut t = Self::from_col_major(0, 0, &[]);
        t.set_transpose_of(n, n, a);
        (Self::from_col_major(n, n, a), t)
    }

    /// Makes these the panels of the `rows x cols` column-major matrix `a`, in the memory
    /// they hold when the shape is unchanged (a trained network's weights, rewritten after
    /// every update).
    ///
    /// # Panics
    /// If `a.len() != rows * cols`.
    pub fn set_col_major(&mut self, rows: usize, cols: usize, a: &[T]) {
        assert_eq!(a.len(), rows * cols, "a {rows} x {cols} matrix");
        let mr = Self::panel_rows();
        for (r0, nr, panel) in self.reshape(rows, cols) {
            for (j, col) in panel.chunks_exact_mut(mr).enumerate() {
                col[..nr].copy_from_slice(&a[r0 + j * rows..r0 + j * rows + nr]);
            }
        }
    }

    /// Makes these the panels of `aᵀ`, the transpose of the `cols x rows` column-major
    /// matrix `a` (so `rows x cols`), in place as [`set_col_major`](Self::set_col_major).
    ///
    /// # Panics
    /// If `a.len() != rows * cols`.
    pub fn set_transpose_of(&mut self, rows: usize, cols: usize, a: &[T]) {
        assert_eq!(a.len(), rows * cols, "a {cols} x {rows} matrix");
        let mr = Self::panel_rows();
        for (r0, nr, panel) in self.reshape(rows, cols) {
            // Row `i` of `aᵀ` is column `i` of `a`.
            for r in 0..nr {
                let src = &a[(r0 + r) * cols..(r0 + r + 1) * cols];
                for (j, &v) in src.iter().enumerate() {
                    panel[j * mr + r] = v;
                }
            }
        }
    }

    /// Sets the shape to `rows x cols` (reusing the memory), zeroes the padding rows of
    /// the last panel, and returns each panel's first row, real rows and data, for the
    /// caller to fill every real element.
    fn reshape(
        &mut self,
        rows: usize,
        cols: usize,
    ) -> impl Iterator<Item = (usize, usize, &mut [T])> {
        let mr = Self::panel_rows();
        let np = rows.div_ceil(mr);
        self.rows = rows;
        self.cols = cols;
        self.data.resize(np * mr * cols, T::zero());
        self.data
            .chunks_exact_mut(mr * cols.max(1))
            .take(np)
            .enumerate()
            .map(move |(p, panel)| {
                let r0 = p * mr;
                let nr = mr.min(rows - r0);
                if nr < mr {
                    for col in panel.chunks_exact_mut(mr) {
                        col[nr..].fill(T::zero());
                    }
                }
                (r0, nr, panel)
            })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Panel `p`: its first row, its rows, and its data (`panel_rows x cols`).
    fn panel(&self, p: usize) -> (usize, usize, &[T]) {
        let mr = Self::panel_rows();
        let len = mr * self.cols;
        (
            p * mr,
            mr.min(self.rows - p * mr),
            &self.data[p * len..(p + 1) * len],
        )
    }

    /// Number of panels.
    fn n_panels(&self) -> usize {
        self.rows.div_ceil(Self::panel_rows())
    }
}

/// Errors of choosing or creating a backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// This build has no CUDA support.
    #[error(
        "built without CUDA: rebuild with `--features cuda` to use the CUDA backend, or use `Cpu`"
    )]
    CudaNotCompiled,
    /// CUDA support is compiled in but cannot run here.
    #[error("the CUDA backend is unavailable: {0}; use `Cpu`")]
    CudaUnavailable(String),
}

/// The backend seam: where buffers live and the hot operations run.
///
/// A [`Backend`] owns the operations every model and the integrator spend their time in:
/// GEMM with transposes, the activations and their derivatives, `axpy`, and the fused
/// combinations the Runge–Kutta module builds the stage states, solutions, dense output and
/// error estimate from. Models
/// evaluate their right-hand sides, VJPs and JVPs through a backend; per-trial step control
/// (times, step sizes, accept/reject, breakpoints, saves) stays on the host, so that only
/// batch-length vectors would cross per step.
///
/// [`Cpu`] is the implementation today: column-major host buffers, faer for GEMM,
/// branch-free vectorised activations compiled for AVX-512, AVX2 and the baseline and
/// picked at run time. Each call runs on the calling thread, or, inside [`with_team`],
/// shares its work with the team's threads (products with [`Panels`] by row panels, large
/// plain products by output columns, elementwise passes by ranges, [`Backend::leak`] by
/// columns, [`Backend::drive_vjp`] by rows; the same bits either way).
///
/// # How each operation maps to CUDA
///
/// [`Cuda`] has the same names; without the `cuda` feature (and, until the CUDA backend
/// lands, with it) [`Cuda::new`] returns [`BackendError::CudaNotCompiled`] /
/// [`BackendError::CudaUnavailable`], so nothing outside this module says
/// `cfg(feature = "cuda")`. The mapping the CUDA backend follows:
///
/// | operation | CPU | CUDA |
/// | --- | --- | --- |
/// | [`Backend::gemm`], [`Backend::gemm_panels`] | faer `matmul`, sequential (panels: one call per panel of a matrix packed once) | cuBLAS `cublas{S,D}gemm` on the backend's stream, column-major, `op(A)` / `op(B)` from [`Transpose`] |
/// | [`Backend::axpy`] | vectorised loop | cuBLAS `axpy`, or fused into the kernels below |
/// | [`Backend::activate`], [`Backend::activate_grad`] | branch-free vectorised loops | one elementwise NVRTC kernel per activation, grid over `dim x batch` |
/// | [`Backend::combine`]: stage state, solution, dense output | one fused pass over the terms | one fused kernel per stage: coefficients generated from the same tableau constants, per-trial `h` as a batch-length vector, batch on the second grid dimension |
/// | error norm (`rk`) | per-column loop | one block per trial, shared-memory reduction, the batch-length result copied to the host for step control |
/// | [`Backend::leak_vjp`] | one vectorised pass | one elementwise kernel |
/// | [`Backend::leak`]: leak and input drive gather | per column, the cached `B u` piece of its trial | a kernel indexed by batch-length vectors of trial and piece indices |
/// | [`Backend::drive_vjp`]: `dB += α V Uᵀ` | per row range, the columns in order | the batch's input values gathered into a `channels x cols` matrix (batch-length piece indices), then cuBLAS `gemm` (another summation order: bit-identity with the CPU is not promised) |
/// | team (CPU only) | large products and elementwise passes shared by [`with_team`]'s threads | one stream; the GPU is the team |
///
/// Matrices are column-major with explicit leading dimensions. Implementations must give
/// the same bits for a column whatever the number of columns in the call, so that a
/// trial's result does not depend on its batch-mates (the CPU backend does: faer computes
/// each column of a product with the same kernel and summation order).
pub trait Backend<T: Real>: Send + Sync + std::fmt::Debug {
    /// Name, for messages.
    fn name(&self) -> &'static str;

    /// `c = alpha op(a) op(b) + beta c`; `op(a)` is `m x k`, `op(b)` is `k x n`, `lda`/`ldb`
    /// are the leading dimensions of the stored buffers. With `beta == 0` the previous
    /// contents of `c` are ignored (NaN included).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        ta: Transpose,
        tb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        lda: usize,
        b: &[T],
        ldb: usize,
        beta: T,
        c: &mut [T],
        ldc: usize,
    );

    /// `c = alpha A b + beta c` for a matrix kept as [`Panels`] (`A` is `rows x k`, `b` is
    /// `k x n` with leading dimension `ldb`, `c` is `rows x n` with leading dimension
    /// `ldc`): the same as [`gemm`](Self::gemm) without repacking `A`.
    #[allow(clippy::too_many_arguments)]
    fn gemm_panels(
        &self,
        a: &Panels<T>,
        n: usize,
        alpha: T,
        b: &[T],
        ldb: usize,
        beta: T,
        c: &mut [T],
        ldc: usize,
    ) {
        let (k, mr) = (a.cols(), Panels::<T>::panel_rows());
        if n == 0 {
            return;
        }
        for p in 0..a.n_panels() {
            let (r0, rows, data) = a.panel(p);
            let no = Transpose::No;
            self.gemm(
                no,
                no,
                rows,
                n,
                k,
                alpha,
                data,
                mr,
                b,
                ldb,
                beta,
                &mut c[r0..],
                ldc,
            );
        }
    }

    /// `y = A x` for a matrix kept as [`Panels`] and one column `x` (`A.cols()` values),
    /// `y` with `A.rows()` values: a matrix-vector product with its own kernel (a network
    /// stepped one trial at a time makes thousands of these). Its bits may differ from
    /// [`gemm_panels`](Self::gemm_panels) with one column; it is the same for every run.
    fn gemv_panels(&self, a: &Panels<T>, x: &[T], y: &mut [T]);

    /// The leak and input of a rate model, per column `b` of `dim` values, in place:
    /// `out_b = (out_b + d_b - x_b) * inv_tau + e_b` with `d_b = drive(b)` the column's
    /// input drive (`B u` of its trial's current input piece; left out when `None`) and
    /// `e_b = direct(b)` a term added unscaled (a per-step noise; left out when `None`).
    /// `inv_tau` holds one value for every unit or one per unit (`dim` values). `out` holds
    /// the recurrent term on entry.
    fn leak<'d>(
        &self,
        dim: usize,
        x: &[T],
        drive: &(dyn Fn(usize) -> Option<&'d [T]> + Sync + 'd),
        inv_tau: &[T],
        direct: &(dyn Fn(usize) -> Option<&'d [T]> + Sync + 'd),
        out: &mut [T],
    );

    /// The transpose of [`leak`](Self::leak) and the activation, in place:
    /// `out += (φ'(x) ∘ g - v) * inv_tau` elementwise over `out`'s length, with `φ'` from
    /// `x` and `phi = φ(x)` as in [`activate_grad`](Self::activate_grad) and `g` the
    /// transposed product with the weights (a rate model's state VJP). With one value per
    /// unit in `inv_tau` (`out` is then a whole number of `inv_tau.len()` columns) the
    /// scale must go inside the product: `g = Wᵀ (v ∘ inv_tau)`, and
    /// `out += φ'(x) ∘ g - v ∘ inv_tau`.
    #[allow(clippy::too_many_arguments)]
    fn leak_vjp(
        &self,
        act: Activation,
        x: &[T],
        phi: &[T],
        g: &[T],
        v: &[T],
        inv_tau: &[T],
        out: &mut [T],
    );

    /// The input weights' side of [`leak`](Self::leak)'s transpose: for every column `c` of
    /// `v` (`dim` values each) whose `input(c)` is `Some(u_c)` (its input values, one per
    /// channel), `out[.., ch] += (u_c[ch] * alpha) v_c` for the channels with `u_c[ch] != 0`,
    /// the columns in order for every element; `out` is `dim x channels`, column-major (a
    /// rate model's `dB += α V Uᵀ`, the same bits as one [`axpy`](Self::axpy) per column
    /// and channel).
    fn drive_vjp<'d>(
        &self,
        dim: usize,
        v: &[T],
        input: &(dyn Fn(usize) -> Option<&'d [T]> + Sync + 'd),
        alpha: T,
        out: &mut [T],
    );

    /// `y += alpha x` over the common length.
    fn axpy(&self, alpha: T, x: &[T], y: &mut [T]);

    /// `out = x + Σ_j c_j k_j` over the terms `(c_j, k_j)`, in their order for every
    /// element (the same bits as one `axpy` per term), all slices as long as `out`: the
    /// Runge–Kutta combinations (stage states, solutions, dense output).
    fn combine(&self, x: &[T], terms: &[(T, &[T])], out: &mut [T]);

    /// `x = φ(x)` in place.
    fn activate(&self, act: Activation, x: &mut [T]);

    /// `out = φ(x)` elementwise over `out`'s length (`x` at least as long): [`activate`]
    /// without a separate copy.
    ///
    /// [`activate`]: Self::activate
    fn activate_to(&self, act: Activation, x: &[T], out: &mut [T]) {
        out.copy_from_slice(&x[..out.len()]);
        self.activate(act, out);
    }

    /// `out = φ'(x)`, given `x` and `phi = φ(x)` (whichever the derivative is cheaper from).
    fn activate_grad(&self, act: Activation, x: &[T], phi: &[T], out: &mut [T]);
}
