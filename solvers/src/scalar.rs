//! The scalar types neurode computes in: `f32` and `f64`.
//!
//! [`Real`] is sealed: the solvers, the vectorised activations and the GEMM dispatch are
//! written once, generically, and instantiated for exactly these two types.

use std::fmt::{Debug, Display, LowerExp};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point scalar: `f32` or `f64`.
///
/// Beyond [`num_traits::Float`], it carries the default tolerances that make sense at its
/// precision, lossless-enough conversions to and from `f64`, and the two kernels every
/// rate model needs on the hot path: a vectorisable `tanh` over a slice and a GEMM.
pub trait Real:
    num_traits::Float
    + sealed::Sealed
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + LowerExp
    + Send
    + Sync
    + 'static
{
    /// Default relative tolerance of adaptive solves (`1e-6` for `f64`, `1e-4` for `f32`).
    const DEFAULT_RTOL: f64;
    /// Default absolute tolerance of adaptive solves (`1e-8` for `f64`, `1e-6` for `f32`).
    const DEFAULT_ATOL: f64;
    /// Name of the type, for messages (`"f32"` / `"f64"`).
    const NAME: &'static str;

    /// Converts from `f64` (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn as_f64(self) -> f64;
    /// The largest value strictly below `self` (towards −∞).
    fn next_down(self) -> Self;
    /// Machine epsilon as `f64`.
    fn eps() -> f64 {
        <Self as num_traits::Float>::epsilon().as_f64()
    }
    /// Converts a count to this type.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }

    /// In-place `tanh` of every element, branch-free so that the compiler vectorises it.
    ///
    /// Accurate to a few ulp over the whole real line (tested against `std`); several times
    /// faster than calling the scalar libm `tanh` in a loop.
    fn tanh_slice(xs: &mut [Self]);

    /// `y += alpha * x` over the common length, vectorised for the widest SIMD the CPU has.
    fn axpy(alpha: Self, x: &[Self], y: &mut [Self]);

    /// `c = alpha * a * b + beta * c` on column-major buffers.
    ///
    /// `a` is `m x k` with leading dimension `lda` (`>= m`), `b` is `k x n` with leading
    /// dimension `ldb`, `c` is `m x n` with leading dimension `ldc`. When `beta == 0` the
    /// previous contents of `c` are ignored (NaN included). Runs on one thread, through faer.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        n: usize,
        k: usize,
        alpha: Self,
        a: &[Self],
        lda: usize,
        b: &[Self],
        ldb: usize,
        beta: Self,
        c: &mut [Self],
        ldc: usize,
    ) {
        Self::gemm_t(false, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// `c = alpha * op(a) * op(b) + beta * c`, where `op(a)` is `a` or its transpose.
    ///
    /// `op(a)` is `m x k` and `op(b)` is `k x n`; `lda`/`ldb` are the leading dimensions of
    /// the stored (untransposed) buffers. Otherwise as [`gemm`](Self::gemm).
    #[allow(clippy::too_many_arguments)]
    fn gemm_t(
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: Self,
        a: &[Self],
        lda: usize,
        b: &[Self],
        ldb: usize,
        beta: Self,
        c: &mut [Self],
        ldc: usize,
    );
}

/// Clears the upper halves of the AVX registers after faer's AVX/AVX-512 kernels.
///
/// Code compiled for the x86-64 baseline uses legacy SSE encodings; run after AVX code that
/// left the upper register state dirty, every SSE instruction pays a merge penalty (measured
/// here: the vectorised `tanh` went from 5.6 to 20 ns per element after one GEMM). One
/// `vzeroupper` per GEMM removes it.
#[inline]
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the instruction exists on this CPU (checked just above) and only
            // zeroes the upper vector halves, which no live Rust value occupies here.
            unsafe { zeroupper() }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zeroupper() {
    std::arch::x86_64::_mm256_zeroupper();
}

macro_rules! impl_gemm {
    ($t:ty) => {
        #[allow(clippy::too_many_arguments)]
        fn gemm_t(
            trans_a: bool,
            trans_b: bool,
            m: usize,
            n: usize,
            k: usize,
            alpha: $t,
            a: &[$t],
            lda: usize,
            b: &[$t],
            ldb: usize,
            beta: $t,
            c: &mut [$t],
            ldc: usize,
        ) {
            use faer::linalg::matmul::matmul;
            use faer::{Accum, MatMut, MatRef, Par};
            // Stored shapes of a and b.
            let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
            let (br, bc) = if trans_b { (n, k) } else { (k, n) };
            assert!(
                lda >= ar.max(1) && ldb >= br.max(1) && ldc >= m.max(1),
                "gemm: bad stride"
            );
            if m == 0 || n == 0 {
                return;
            }
            assert!(c.len() >= ldc * (n - 1) + m, "gemm: c too short");
            if k == 0 || alpha == 0.0 {
                for j in 0..n {
                    for v in &mut c[j * ldc..j * ldc + m] {
                        *v = if beta == 0.0 { 0.0 } else { *v * beta };
                    }
                }
                return;
            }
            assert!(a.len() >= lda * (ac - 1) + ar, "gemm: a too short");
            assert!(b.len() >= ldb * (bc - 1) + br, "gemm: b too short");
            let a = MatRef::from_column_major_slice_with_stride(a, ar, ac, lda);
            let b = MatRef::from_column_major_slice_with_stride(b, br, bc, ldb);
            let a = if trans_a { a.transpose() } else { a };
            let b = if trans_b { b.transpose() } else { b };
            let mut cm = MatMut::from_column_major_slice_with_stride_mut(c, m, n, ldc);
            if beta == 0.0 {
                matmul(cm.as_mut(), Accum::Replace, a, b, alpha, Par::Seq);
            } else {
                if beta != 1.0 {
                    for j in 0..n {
                        for i in 0..m {
                            cm[(i, j)] *= beta;
                        }
                    }
                }
                matmul(cm.as_mut(), Accum::Add, a, b, alpha, Par::Seq);
            }
            clear_upper_vector_state();
        }
    };
}

impl Real for f64 {
    const DEFAULT_RTOL: f64 = 1e-6;
    const DEFAULT_ATOL: f64 = 1e-8;
    const NAME: &'static str = "f64";

    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn next_down(self) -> Self {
        f64::next_down(self)
    }
    fn tanh_slice(xs: &mut [Self]) {
        crate::math::tanh_slice_f64(xs)
    }
    fn axpy(alpha: Self, x: &[Self], y: &mut [Self]) {
        crate::math::axpy_f64(alpha, x, y)
    }
    impl_gemm!(f64);
}

impl Real for f32 {
    const DEFAULT_RTOL: f64 = 1e-4;
    const DEFAULT_ATOL: f64 = 1e-6;
    const NAME: &'static str = "f32";

    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn next_down(self) -> Self {
        f32::next_down(self)
    }
    fn tanh_slice(xs: &mut [Self]) {
        crate::math::tanh_slice_f32(xs)
    }
    fn axpy(alpha: Self, x: &[Self], y: &mut [Self]) {
        crate::math::axpy_f32(alpha, x, y)
    }
    impl_gemm!(f32);
}
