//! The backend seam: see [`Backend`].

mod cpu;
mod cuda;
pub(crate) mod kernels;
mod team;

pub use team::with_team;
pub(crate) use team::{for_parts, MIN_SHARED_WORK};

pub use cpu::Cpu;
pub use cuda::{
    Cuda, CudaBuffer, CudaMatrix, CudaView, CudaViewMut, KERNEL_HEADERS, KERNEL_SOURCES,
};

use std::ops::Range;

use crate::scalar::Real;

mod terms;
pub use terms::{Terms, MAX_TERMS};

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

impl Activation {
    /// The activation's number and cap as the CUDA kernels take them (`ND_TANH`, ... in
    /// `solvers/src/backend/cuda/elementwise.h`; the cap is 0 where there is none).
    pub fn kernel_code(self) -> (i32, f64) {
        match self {
            Activation::Tanh => (0, 0.0),
            Activation::Sigmoid => (1, 0.0),
            Activation::Softplus => (2, 0.0),
            Activation::Relu => (3, 0.0),
            Activation::ClippedRelu { cap } => (4, cap),
            Activation::ClippedSoftplus { cap } => (5, cap),
            Activation::Identity => (6, 0.0),
        }
    }
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
    /// The backend could not hold a buffer.
    #[error("the {backend} backend could not allocate {bytes} bytes: {reason}; use fewer trials or a smaller network")]
    OutOfMemory {
        /// The backend's name.
        backend: &'static str,
        /// The size asked for.
        bytes: usize,
        /// What the backend said.
        reason: String,
    },
    /// A queued operation failed on the device.
    #[error("the {backend} backend failed while {during}: {reason}")]
    Device {
        /// The backend's name.
        backend: &'static str,
        /// The operation.
        during: String,
        /// What the device said.
        reason: String,
    },
}

/// The backend seam: where buffers live and the hot operations run.
///
/// A backend owns its buffers ([`Backend::Buffer`], opaque to the code that uses them;
/// [`Backend::View`] and [`Backend::ViewMut`] are borrowed ranges of one), the transfers
/// between them and the host ([`upload`](Backend::upload), [`download`](Backend::download))
/// and the synchronisation ([`synchronize`](Backend::synchronize)), and the operations
/// every model and the integrator spend their time in: GEMM with transposes, the
/// activations and their derivatives, `axpy`, and the Runge–Kutta term lists
/// ([`Terms`]) executed per column with a per-column step size
/// ([`combine_columns`](Backend::combine_columns), [`error_norms`](Backend::error_norms)).
/// Per-trial step control (times, step sizes, accept/reject, breakpoints, saves) stays on
/// the host; only batch-length vectors cross per step.
///
/// [`Cpu`]: host memory (`Vec<T>`, views are slices), faer for GEMM, branch-free
/// vectorised activations compiled for AVX-512, AVX2 and the baseline and picked at run
/// time. Each call runs on the calling thread, or, inside [`with_team`], shares its work
/// with the team's threads (products with [`Panels`] by row panels, large plain products
/// by output columns, elementwise passes by ranges; the same bits either way). Its
/// operations run before they return, so its `synchronize` has nothing to wait for.
///
/// [`Cuda`] (the `cuda` feature): device memory, cuBLAS on one stream (true FP32, no
/// TF32), and kernels compiled by NVRTC with `fmad=false` from `.cu` sources in this
/// crate whose element arithmetic is the CPU's, operation for operation (but for softplus
/// and its derivative, which call each platform's own `exp` / `log1p`). Its operations
/// are queued on the stream; errors of a queued operation are kept and returned by the
/// next [`synchronize`](Backend::synchronize) or [`download`](Backend::download), as CUDA
/// itself reports them. A buffer belongs to the backend value that made it: using it with
/// another is a race.
///
/// | operation | CPU | CUDA |
/// | --- | --- | --- |
/// | [`Backend::gemm`], [`Backend::gemm_panels`], [`Backend::gemv_panels`] | faer `matmul` (panels: one call per panel of a matrix packed once) | cuBLAS `gemm` / `gemv`, column-major, `op(A)` / `op(B)` from [`Transpose`]; [`Backend::Matrix`] is a column-major device copy |
/// | [`Backend::axpy`], [`Backend::combine`] | vectorised loop | elementwise kernel (`combine`: a copy, then one `axpy` per term) |
/// | [`Backend::activate`], [`Backend::activate_to`], [`Backend::activate_grad`] | branch-free vectorised loops | elementwise kernels, the same polynomials |
/// | [`Backend::combine_columns`]: stage states, solutions, dense output | per column, one fused pass over the terms | one kernel over `dim x cols`, the term list as a kernel argument, `h` a batch-length buffer |
/// | [`Backend::error_norms`] | per column, in element order | one thread per column, in element order (the same bits) |
/// | [`Backend::non_finite`] | per column | one thread per column |
/// | team (CPU only) | large products and elementwise passes shared by [`with_team`]'s threads | one stream; the GPU is the team |
///
/// Matrices are column-major with explicit leading dimensions. A column's bits must not
/// depend on the values of the other columns of the call, so that a trial's result does
/// not depend on its batch-mates. The CPU backend also gives the same bits whatever the
/// number of columns (faer computes each column of a product with the same kernel and
/// summation order); cuBLAS may choose another kernel for another shape, which is why the
/// CUDA solve masks finished trials (`h = 0`) instead of compacting them, keeping the
/// shape.
///
/// Model-specific fused operations (a rate model's leak and its transposes) are not part
/// of this trait: they belong to the model side ([`Cpu::leak`], [`Cpu::leak_vjp`] and
/// [`Cpu::drive_vjp`] for now).
pub trait Backend<T: Real>: Send + Sync + std::fmt::Debug {
    /// An owned buffer of `T` values (host memory on the CPU, device memory on a GPU).
    type Buffer: Send + Sync + std::fmt::Debug;
    /// A borrowed, read-only range of a [`Buffer`](Self::Buffer).
    type View<'a>: Copy
    where
        Self: 'a,
        T: 'a;
    /// A borrowed, writable range of a [`Buffer`](Self::Buffer).
    type ViewMut<'a>
    where
        Self: 'a,
        T: 'a;
    /// A matrix kept for repeated products `A x` (see [`Panels`]).
    type Matrix: Send + Sync + std::fmt::Debug;

    /// Name, for messages.
    fn name(&self) -> &'static str;

    /// A new buffer of `len` zeros.
    ///
    /// # Errors
    /// [`BackendError::OutOfMemory`] when the backend cannot hold it.
    fn zeros(&self, len: usize) -> Result<Self::Buffer, BackendError>;

    /// Elements of `b`.
    fn buffer_len(&self, b: &Self::Buffer) -> usize;

    /// Elements `r` of `b`, to read.
    ///
    /// # Panics
    /// If `r` is not inside `b`.
    fn view<'a>(&self, b: &'a Self::Buffer, r: Range<usize>) -> Self::View<'a>;

    /// Elements `r` of `b`, to write.
    ///
    /// # Panics
    /// If `r` is not inside `b`.
    fn view_mut<'a>(&self, b: &'a mut Self::Buffer, r: Range<usize>) -> Self::ViewMut<'a>;

    /// Copies host values into `dst` (as long as `src`).
    ///
    /// # Panics
    /// If the lengths differ.
    fn upload(&self, src: &[T], dst: Self::ViewMut<'_>);

    /// Waits for the operations queued so far and copies `src` to the host (as long as
    /// `dst`).
    ///
    /// # Errors
    /// The first error of an operation queued since the last check (a GPU's launch or
    /// execution error), with what it was doing.
    ///
    /// # Panics
    /// If the lengths differ.
    fn download(&self, src: Self::View<'_>, dst: &mut [T]) -> Result<(), BackendError>;

    /// Waits for the operations queued so far.
    ///
    /// # Errors
    /// As [`download`](Self::download).
    fn synchronize(&self) -> Result<(), BackendError>;

    /// The `rows x cols` column-major matrix `a`, kept for products.
    ///
    /// # Errors
    /// [`BackendError::OutOfMemory`] when the backend cannot hold it.
    ///
    /// # Panics
    /// If `a.len() != rows * cols`.
    fn matrix(&self, rows: usize, cols: usize, a: &[T]) -> Result<Self::Matrix, BackendError>;

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
        a: Self::View<'_>,
        lda: usize,
        b: Self::View<'_>,
        ldb: usize,
        beta: T,
        c: Self::ViewMut<'_>,
        ldc: usize,
    );

    /// `c = alpha A b + beta c` for a kept [`Matrix`](Self::Matrix) (`A` is `rows x k`,
    /// `b` is `k x n` with leading dimension `ldb`, `c` is `rows x n` with leading
    /// dimension `ldc`): the same as [`gemm`](Self::gemm) without repacking `A`.
    #[allow(clippy::too_many_arguments)]
    fn gemm_panels(
        &self,
        a: &Self::Matrix,
        n: usize,
        alpha: T,
        b: Self::View<'_>,
        ldb: usize,
        beta: T,
        c: Self::ViewMut<'_>,
        ldc: usize,
    );

    /// `y = A x` for a kept [`Matrix`](Self::Matrix) and one column `x` (`A.cols()`
    /// values), `y` with `A.rows()` values: a matrix-vector product with its own kernel (a
    /// network stepped one trial at a time makes thousands of these). Its bits may differ
    /// from [`gemm_panels`](Self::gemm_panels) with one column; it is the same for every
    /// run.
    fn gemv_panels(&self, a: &Self::Matrix, x: Self::View<'_>, y: Self::ViewMut<'_>);

    /// `y += alpha x` over the common length.
    fn axpy(&self, alpha: T, x: Self::View<'_>, y: Self::ViewMut<'_>);

    /// `out = x + Σ_j c_j k_j` over the terms `(c_j, k_j)`, in their order for every
    /// element (the same bits as one `axpy` per term), all slices as long as `out`: the
    /// Runge–Kutta combinations of one column (stage states, solutions, dense output).
    fn combine(&self, x: Self::View<'_>, terms: &[(T, Self::View<'_>)], out: Self::ViewMut<'_>);

    /// The Runge–Kutta term list over a batch: for every column `c < cols` (`dim` values
    /// each, column `c` at `c * dim`) with `h[c] != 0`,
    /// `out_c = x_c + Σ_t (h[c] w_t) k_{s_t, c}` over the terms `(s_t, w_t)` in their
    /// order, where stage `s` of column `c` starts at `s * stride + c * dim` in `k`; the
    /// columns with `h[c] == 0` (finished trials) are left as they are. The same bits as
    /// [`combine`](Self::combine) per column with the coefficients `h[c] w_t`.
    #[allow(clippy::too_many_arguments)]
    fn combine_columns(
        &self,
        terms: &Terms<T>,
        dim: usize,
        cols: usize,
        h: Self::View<'_>,
        x: Self::View<'_>,
        k: Self::View<'_>,
        stride: usize,
        out: Self::ViewMut<'_>,
    );

    /// The weighted RMS norm of the local error estimate of every column `c < cols` with
    /// `h[c] != 0`: with `d = 0 + Σ_t e_t k_{s_t, c}` over the terms in their order (every
    /// stage, zero weights included, so that a NaN propagates) and
    /// `q_i = h[c] d_i / (atol + rtol max(|x_i|, |x_new,i|))`,
    /// `out[c] = sqrt((Σ_i q_i²) / dim)`, summed in element order. Columns with
    /// `h[c] == 0` keep their `out[c]`.
    #[allow(clippy::too_many_arguments)]
    fn error_norms(
        &self,
        terms: &Terms<T>,
        dim: usize,
        cols: usize,
        h: Self::View<'_>,
        rtol: T,
        atol: T,
        x: Self::View<'_>,
        x_new: Self::View<'_>,
        k: Self::View<'_>,
        stride: usize,
        out: Self::ViewMut<'_>,
    );

    /// The first non-finite value of every column `c < cols` (`dim` values each) with
    /// `h[c] != 0`: `out[c]` is its index within the column (as `T`, exact below `2^24` in
    /// `f32`), or `-1` when the column is finite; columns with `h[c] == 0` keep their
    /// `out[c]`. A trial whose new state is not finite fails with that index.
    fn non_finite(
        &self,
        dim: usize,
        cols: usize,
        h: Self::View<'_>,
        x: Self::View<'_>,
        out: Self::ViewMut<'_>,
    );

    /// `x = φ(x)` in place.
    fn activate(&self, act: Activation, x: Self::ViewMut<'_>);

    /// `out = φ(x)` elementwise over `out`'s length (`x` at least as long): [`activate`]
    /// without a separate copy.
    ///
    /// [`activate`]: Self::activate
    fn activate_to(&self, act: Activation, x: Self::View<'_>, out: Self::ViewMut<'_>);

    /// `out = φ'(x)`, given `x` and `phi = φ(x)` (whichever the derivative is cheaper from).
    fn activate_grad(
        &self,
        act: Activation,
        x: Self::View<'_>,
        phi: Self::View<'_>,
        out: Self::ViewMut<'_>,
    );
}
