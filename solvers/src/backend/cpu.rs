//! The CPU backend: faer GEMM and vectorised elementwise kernels on host slices.

use std::any::TypeId;

use super::kernels;
use super::{Activation, Backend, Transpose};
use crate::scalar::Real;

/// The CPU backend (see the [`Backend`](super::Backend) docs). Stateless: `Cpu` is a value you can
/// copy anywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu;

/// Views a slice of a sealed scalar as `f64` / `f32` when it is one.
macro_rules! cast {
    ($x:expr, $t:ty, $to:ty) => {
        if TypeId::of::<$t>() == TypeId::of::<$to>() {
            // SAFETY: `$t` is exactly `$to` (same TypeId), so the layout is identical.
            Some(unsafe { &*($x as *const [$t] as *const [$to]) })
        } else {
            None
        }
    };
    (mut $x:expr, $t:ty, $to:ty) => {
        if TypeId::of::<$t>() == TypeId::of::<$to>() {
            // SAFETY: as above.
            Some(unsafe { &mut *($x as *mut [$t] as *mut [$to]) })
        } else {
            None
        }
    };
}

fn scalar_as<T: Real, U: Real>(v: T) -> U {
    U::from_f64(v.as_f64())
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

macro_rules! faer_gemm {
    ($name:ident, $t:ty) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(
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

faer_gemm!(gemm_f64, f64);
faer_gemm!(gemm_f32, f32);

/// `φ'` from `x` and `φ(x)`, elementwise (scalar; the vectorised loops call it).
#[inline(always)]
fn grad_of<T: Real>(act: Activation, x: T, phi: T) -> T {
    let one = T::one();
    match act {
        Activation::Tanh => one - phi * phi,
        Activation::Sigmoid => phi * (one - phi),
        // d/dx ln(1 + e^x) = sigmoid(x).
        Activation::Softplus => one / (one + (-x).exp()),
        Activation::Relu => {
            if x > T::zero() {
                one
            } else {
                T::zero()
            }
        }
        Activation::ClippedRelu { cap } => {
            if x > T::zero() && x < T::from_f64(cap) {
                one
            } else {
                T::zero()
            }
        }
    }
}

impl<T: Real> Backend<T> for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

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
    ) {
        let (ta, tb) = (ta.is_yes(), tb.is_yes());
        if let (Some(a), Some(b), Some(c)) =
            (cast!(a, T, f64), cast!(b, T, f64), cast!(mut c, T, f64))
        {
            gemm_f64(
                ta,
                tb,
                m,
                n,
                k,
                scalar_as(alpha),
                a,
                lda,
                b,
                ldb,
                scalar_as(beta),
                c,
                ldc,
            );
        } else if let (Some(a), Some(b), Some(c)) =
            (cast!(a, T, f32), cast!(b, T, f32), cast!(mut c, T, f32))
        {
            gemm_f32(
                ta,
                tb,
                m,
                n,
                k,
                scalar_as(alpha),
                a,
                lda,
                b,
                ldb,
                scalar_as(beta),
                c,
                ldc,
            );
        } else {
            unreachable!("Real is sealed to f32 and f64")
        }
    }

    #[inline]
    fn axpy(&self, alpha: T, x: &[T], y: &mut [T]) {
        if let (Some(x), Some(y)) = (cast!(x, T, f64), cast!(mut y, T, f64)) {
            kernels::axpy_f64(scalar_as(alpha), x, y)
        } else if let (Some(x), Some(y)) = (cast!(x, T, f32), cast!(mut y, T, f32)) {
            kernels::axpy_f32(scalar_as(alpha), x, y)
        } else {
            unreachable!("Real is sealed to f32 and f64")
        }
    }

    #[inline]
    fn combine(&self, x: &[T], terms: &[(T, &[T])], out: &mut [T]) {
        if let (Some(x), Some(o)) = (cast!(x, T, f64), cast!(mut out, T, f64)) {
            // SAFETY: `T` is `f64` (checked by the casts above), so `(T, &[T])` is
            // `(f64, &[f64])` with the same layout.
            let terms = unsafe { &*(terms as *const [(T, &[T])] as *const [(f64, &[f64])]) };
            kernels::combine_f64(x, terms, o)
        } else if let (Some(x), Some(o)) = (cast!(x, T, f32), cast!(mut out, T, f32)) {
            // SAFETY: as above, for `f32`.
            let terms = unsafe { &*(terms as *const [(T, &[T])] as *const [(f32, &[f32])]) };
            kernels::combine_f32(x, terms, o)
        } else {
            unreachable!("Real is sealed to f32 and f64")
        }
    }

    fn activate(&self, act: Activation, x: &mut [T]) {
        match act {
            Activation::Tanh => {
                if let Some(x) = cast!(mut x, T, f64) {
                    kernels::tanh_slice_f64(x)
                } else if let Some(x) = cast!(mut x, T, f32) {
                    kernels::tanh_slice_f32(x)
                }
            }
            Activation::Sigmoid => {
                // σ(x) = (1 + tanh(x / 2)) / 2: the vectorised tanh, a few ulp.
                let half = T::from_f64(0.5);
                for v in x.iter_mut() {
                    *v *= half;
                }
                self.activate(Activation::Tanh, x);
                for v in x.iter_mut() {
                    *v = (T::one() + *v) * half;
                }
            }
            Activation::Softplus => {
                for v in x.iter_mut() {
                    // ln(1 + e^x) = max(x, 0) + ln(1 + e^{-|x|}), no overflow.
                    *v = v.max(T::zero()) + (-v.abs()).exp().ln_1p();
                }
            }
            Activation::Relu => {
                for v in x.iter_mut() {
                    *v = v.max(T::zero());
                }
            }
            Activation::ClippedRelu { cap } => {
                let cap = T::from_f64(cap);
                for v in x.iter_mut() {
                    *v = v.max(T::zero()).min(cap);
                }
            }
        }
    }

    fn activate_grad(&self, act: Activation, x: &[T], phi: &[T], out: &mut [T]) {
        for ((o, &xi), &pi) in out.iter_mut().zip(x).zip(phi) {
            *o = grad_of(act, xi, pi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Panels;

    /// Every activation's derivative against central differences of the activation.
    #[test]
    fn activation_derivatives_match_finite_differences() {
        let acts = [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softplus,
            Activation::Relu,
            Activation::ClippedRelu { cap: 2.0 },
        ];
        let xs: Vec<f64> = (0..81).map(|i| -4.05 + 0.1 * i as f64).collect();
        for act in acts {
            let mut phi = xs.clone();
            Cpu.activate(act, &mut phi);
            let mut d = vec![0.0; xs.len()];
            Cpu.activate_grad(act, &xs, &phi, &mut d);
            for (i, &x) in xs.iter().enumerate() {
                let h = 1e-6;
                let (mut p, mut m) = ([x + h], [x - h]);
                Cpu.activate(act, &mut p);
                Cpu.activate(act, &mut m);
                let fd = (p[0] - m[0]) / (2.0 * h);
                assert!((fd - d[i]).abs() < 1e-7, "{act:?} at {x}: {} vs {fd}", d[i]);
            }
        }
        // Reference values.
        let mut v = [0.0f64, 1.0, -30.0, 40.0];
        Cpu.activate(Activation::Sigmoid, &mut v);
        assert!(
            (v[1] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15,
            "{v:?}"
        );
        assert_eq!(v[0], 0.5);
        let mut v = [0.0f64, 50.0, -50.0];
        Cpu.activate(Activation::Softplus, &mut v);
        assert!(
            (v[0] - 2f64.ln()).abs() < 1e-15 && (v[1] - 50.0).abs() < 1e-12,
            "{v:?}"
        );
        assert!(v[2] > 0.0 && v[2] < 1e-20);
    }

    /// A column of a product does not depend on how many columns share the call.
    #[test]
    fn gemm_columns_do_not_depend_on_their_neighbours() {
        for (m, k) in [
            (500, 500),
            (4, 4),
            (7, 7),
            (64, 64),
            (2, 500),
            (500, 2),
            (33, 17),
        ] {
            columns_are_independent(m, k);
        }
    }

    /// The product with a matrix kept as panels gives the bits of the plain product, for
    /// row counts that are and are not a multiple of the panel height, in f64 and f32.
    #[test]
    fn panel_products_equal_plain_products() {
        fn check<T: Real>(m: usize, k: usize, n: usize) {
            let a: Vec<T> = (0..m * k)
                .map(|i| T::from_f64(((i * 7919) % 1000) as f64 / 997.0 - 0.5))
                .collect();
            let b: Vec<T> = (0..k * n)
                .map(|i| T::from_f64(((i * 104_729) % 1000) as f64 / 991.0 - 0.5))
                .collect();
            let (alpha, beta) = (T::from_f64(0.8), T::from_f64(0.5));
            let init: Vec<T> = (0..m * n).map(|i| T::from_f64(i as f64 * 1e-3)).collect();
            let (mut plain, mut panels) = (init.clone(), init);
            let no = Transpose::No;
            Cpu.gemm(no, no, m, n, k, alpha, &a, m, &b, k, beta, &mut plain, m);
            let p = Panels::from_col_major(m, k, &a);
            Cpu.gemm_panels(&p, n, alpha, &b, k, beta, &mut panels, m);
            assert_eq!(plain, panels, "{} {m} x {k} x {n}", T::NAME);
        }
        for (m, k, n) in [
            (500, 500, 32),
            (500, 500, 1),
            (500, 500, 16),
            (64, 64, 5),
            (7, 3, 2),
        ] {
            check::<f64>(m, k, n);
            check::<f32>(m, k, n);
        }
    }

    fn columns_are_independent(m: usize, k: usize) {
        let a: Vec<f64> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f64 / 997.0 - 0.5)
            .collect();
        let b: Vec<f64> = (0..k * 32)
            .map(|i| ((i * 104_729) % 1000) as f64 / 991.0 - 0.5)
            .collect();
        let mut full = vec![0.0; m * 32];
        Cpu.gemm(
            Transpose::No,
            Transpose::No,
            m,
            32,
            k,
            1.0,
            &a,
            m,
            &b,
            k,
            0.0,
            &mut full,
            m,
        );
        for n in 1..=32 {
            let mut part = vec![0.0; m * n];
            Cpu.gemm(
                Transpose::No,
                Transpose::No,
                m,
                n,
                k,
                1.0,
                &a,
                m,
                &b,
                k,
                0.0,
                &mut part,
                m,
            );
            assert_eq!(part[..], full[..m * n], "{m} x {k}: {n} columns");
        }
    }
}
