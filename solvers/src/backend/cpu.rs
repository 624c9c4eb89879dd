//! The CPU backend: faer GEMM and vectorised elementwise kernels on host slices.

use std::any::TypeId;

use std::ops::Range;

use super::kernels;
use super::{team, Activation, Backend, BackendError, Panels, Terms, Transpose, MAX_TERMS};
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
    ($name:ident, $view:ident, $panels:ident, $t:ty) => {
        /// `c = alpha op(a) op(b) + beta c` on column-major slices (see [`Backend::gemm`]).
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
            use faer::MatRef;
            // Stored shapes of a and b.
            let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
            let (br, bc) = if trans_b { (n, k) } else { (k, n) };
            assert!(
                lda >= ar.max(1) && ldb >= br.max(1) && ldc >= m.max(1),
                "gemm: bad stride"
            );
            let Some(cm) = output(c, m, n, ldc, k, alpha, beta, "gemm") else {
                return;
            };
            assert!(a.len() >= lda * (ac - 1) + ar, "gemm: a too short");
            assert!(b.len() >= ldb * (bc - 1) + br, "gemm: b too short");
            let a = MatRef::from_column_major_slice_with_stride(a, ar, ac, lda);
            let b = MatRef::from_column_major_slice_with_stride(b, br, bc, ldb);
            let a = if trans_a { a.transpose() } else { a };
            let b = if trans_b { b.transpose() } else { b };
            // In a team, a large product is split by output columns, at least
            // `TEAM_MIN_COLUMNS` each (a column's arithmetic is then its own: the same
            // bits whoever computes it; a single column would take faer's matrix-vector
            // path, which sums in another order).
            let members = team::members(m * n * k, TEAM_MIN_PRODUCT, n / TEAM_MIN_COLUMNS);
            if members <= 1 {
                return $view(cm, a, b, alpha, beta);
            }
            let (out, cs) = (SendPtr(cm.as_ptr_mut()), cm.col_stride());
            team::share(members, &|member: usize| {
                let (j0, j1) = (n * member / members, n * (member + 1) / members);
                // SAFETY: columns `j0..j1` of the checked `m x n` view of `c`; the members'
                // column ranges are disjoint, so no element is reached twice.
                let cp = unsafe {
                    faer::MatMut::from_raw_parts_mut(
                        out.get().offset(j0 as isize * cs),
                        m,
                        j1 - j0,
                        1,
                        cs,
                    )
                };
                $view(cp, a, b.subcols(j0, j1 - j0), alpha, beta);
            });
        }

        /// `c = alpha a b + beta c` on faer views.
        fn $view(
            mut cm: faer::MatMut<'_, $t>,
            a: faer::MatRef<'_, $t>,
            b: faer::MatRef<'_, $t>,
            alpha: $t,
            beta: $t,
        ) {
            use faer::linalg::matmul::matmul;
            use faer::{Accum, Par};
            if beta == 0.0 {
                matmul(cm.as_mut(), Accum::Replace, a, b, alpha, Par::Seq);
            } else {
                if beta != 1.0 {
                    scale(cm.as_mut(), beta);
                }
                matmul(cm.as_mut(), Accum::Add, a, b, alpha, Par::Seq);
            }
            clear_upper_vector_state();
        }

        /// `c = alpha A b + beta c` for `A` kept as panels: one product per panel, the
        /// panels shared out among the members of the calling thread's team (see
        /// [`team`](super::team)); every member writes only its panels' rows of `c`.
        #[allow(clippy::too_many_arguments)]
        fn $panels(
            a: &Panels<$t>,
            n: usize,
            alpha: $t,
            b: &[$t],
            ldb: usize,
            beta: $t,
            c: &mut [$t],
            ldc: usize,
        ) {
            use faer::{MatMut, MatRef};
            let (m, k) = (a.rows(), a.cols());
            if m == 0 || n == 0 {
                return;
            }
            assert!(ldb >= k.max(1) && ldc >= m, "gemm_panels: bad stride");
            let Some(cm) = output(c, m, n, ldc, k, alpha, beta, "gemm_panels") else {
                return;
            };
            assert!(b.len() >= ldb * (n - 1) + k, "gemm_panels: b too short");
            let b = MatRef::from_column_major_slice_with_stride(b, k, n, ldb);
            let (np, mr) = (a.n_panels(), Panels::<$t>::panel_rows());
            let members = team::members(m * k * n, TEAM_MIN_PRODUCT, np);
            let out = SendPtr(cm.as_ptr_mut());
            // Member `i` takes panels `first(i)..first(i + 1)`; when they cannot be equal
            // the helpers take the larger shares (measured on P1, 21 panels on 2 threads:
            // 1.71-1.76x against 1.68-1.70x with the calling thread taking 11; it also runs
            // the serial work between products, which evicts its share of the weights).
            let first = |i: usize| np * i / members;
            let backwards = panels_backwards();
            let job = |member: usize| {
                for p in panel_order(first(member)..first(member + 1), backwards) {
                    let (r0, rows, data) = a.panel(p);
                    let ap = MatRef::from_column_major_slice_with_stride(data, rows, k, mr);
                    // SAFETY: rows `r0..r0 + rows` of every column of `c` (inside the
                    // checked `m x n` view, column stride `ldc`); the members' panel
                    // ranges are disjoint, so no element is reached twice.
                    let cp = unsafe {
                        MatMut::from_raw_parts_mut(out.get().add(r0), rows, n, 1, ldc as isize)
                    };
                    $view(cp, ap, b, alpha, beta);
                }
            };
            team::share(members, &job);
        }
    };
}

faer_gemm!(gemm_f64, gemm_view_f64, gemm_panels_f64, f64);
faer_gemm!(gemm_f32, gemm_view_f32, gemm_panels_f32, f32);

/// Fewest multiply-adds (`rows x k`) of a matrix-vector product shared out among a team.
/// Handing half of a product to a helper and having it back costs about a microsecond
/// (measured on the 2-core development machine), so a 200 x 200 product (a Kim network's
/// step, about 2 µs on one core) stays on one thread.
const TEAM_MIN_GEMV: usize = 1 << 17;

thread_local! {
    /// Whether this thread's last product with panels read them last to first.
    static PANELS_BACKWARDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The order of this product's panels: the opposite of the calling thread's last product
/// with panels. A matrix multiplied again and again (a step's `W h`, then the next stage's)
/// then starts with the panels the last product read last, still in cache: a matrix as
/// large as the cache (2,000 units in `f64`: 32 MB, this machine's L3) is otherwise evicted
/// just before each panel is needed again. Panels are independent, so the order changes no
/// bits.
fn panels_backwards() -> bool {
    PANELS_BACKWARDS.with(|b| {
        let now = !b.get();
        b.set(now);
        now
    })
}

/// The panels `mine`, last to first when `backwards`.
fn panel_order(mine: std::ops::Range<usize>, backwards: bool) -> impl Iterator<Item = usize> {
    let (start, end) = (mine.start, mine.end);
    (0..mine.len()).map(move |k| if backwards { end - 1 - k } else { start + k })
}

/// `y = A x` for one panel `A` (`y.len()` real rows), by the kernel that reads only as many
/// of the panel's rows as `y` needs.
fn panel_gemv<T: Real>(data: &[T], x: &[T], y: &mut [T]) {
    let rows = y.len();
    if let (Some(d), Some(x), Some(y)) =
        (cast!(data, T, f64), cast!(x, T, f64), cast!(mut y, T, f64))
    {
        debug_assert_eq!(Panels::<f64>::panel_rows(), 24);
        match rows {
            0..=8 => kernels::panel_gemv_f64_8(d, x, y),
            9..=16 => kernels::panel_gemv_f64_16(d, x, y),
            _ => kernels::panel_gemv_f64(d, x, y),
        }
    } else if let (Some(d), Some(x), Some(y)) =
        (cast!(data, T, f32), cast!(x, T, f32), cast!(mut y, T, f32))
    {
        debug_assert_eq!(Panels::<f32>::panel_rows(), 48);
        match rows {
            0..=16 => kernels::panel_gemv_f32_16(d, x, y),
            17..=32 => kernels::panel_gemv_f32_32(d, x, y),
            _ => kernels::panel_gemv_f32(d, x, y),
        }
    }
}

/// Fewest multiply-adds (`rows x k x n`) of a product shared out among a team: below it,
/// waking the helpers costs more than the product.
const TEAM_MIN_PRODUCT: usize = 1 << 16;

/// Fewest output columns per member of a plain product shared out among a team.
const TEAM_MIN_COLUMNS: usize = 8;

/// A raw output pointer the team's members share (each writes disjoint elements).
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the pointer is only dereferenced for disjoint elements (see `gemm_panels_*`).
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// The `m x n` view of `c` (column stride `ldc`) that a product writes, or `None` when
/// there is nothing to multiply: no rows or columns, or `k == 0` / `alpha == 0`, in which
/// case `c` is already `beta c`.
///
/// # Panics
/// If `c` is too short for the view (`what` names the caller).
#[allow(clippy::too_many_arguments)]
fn output<'c, T: Real>(
    c: &'c mut [T],
    m: usize,
    n: usize,
    ldc: usize,
    k: usize,
    alpha: T,
    beta: T,
    what: &str,
) -> Option<faer::MatMut<'c, T>> {
    if m == 0 || n == 0 {
        return None;
    }
    assert!(c.len() >= ldc * (n - 1) + m, "{what}: c too short");
    let cm = faer::MatMut::from_column_major_slice_with_stride_mut(c, m, n, ldc);
    if k == 0 || alpha == T::zero() {
        scale(cm, beta);
        return None;
    }
    Some(cm)
}

/// `c *= beta` (`c = 0` for `beta == 0`, ignoring what `c` held, NaN included).
fn scale<T: Real>(mut c: faer::MatMut<'_, T>, beta: T) {
    for j in 0..c.ncols() {
        for i in 0..c.nrows() {
            let v = &mut c[(i, j)];
            *v = if beta == T::zero() {
                T::zero()
            } else {
                *v * beta
            };
        }
    }
}

/// `φ'` from `x` and `φ(x)`, elementwise (scalar; the vectorised loops call it).
#[inline(always)]
fn grad_of<T: Real>(act: Activation, x: T, phi: T) -> T {
    let one = T::one();
    match act {
        Activation::Tanh => one - phi * phi,
        Activation::Sigmoid => phi * (one - phi),
        // d/dx ln(1 + e^x) = sigmoid(x).
        Activation::Softplus => one / (one + (-x).exp()),
        Activation::Identity => one,
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
        Activation::ClippedSoftplus { cap } => {
            if phi < T::from_f64(cap) {
                one / (one + (-x).exp())
            } else {
                T::zero()
            }
        }
    }
}

/// One column of [`Backend::leak`] without its direct term.
fn leak_column<T: Real>(out: &mut [T], x: &[T], drive: Option<&[T]>, inv_tau: &[T]) {
    match (drive, inv_tau) {
        (Some(d), [inv_tau]) => {
            for ((o, &xi), &di) in out.iter_mut().zip(x).zip(&d[..x.len()]) {
                *o = (*o + di - xi) * *inv_tau;
            }
        }
        (None, [inv_tau]) => {
            for (o, &xi) in out.iter_mut().zip(x) {
                *o = (*o - xi) * *inv_tau;
            }
        }
        (Some(d), inv) => {
            for (((o, &xi), &di), &k) in out.iter_mut().zip(x).zip(&d[..x.len()]).zip(inv) {
                *o = (*o + di - xi) * k;
            }
        }
        (None, inv) => {
            for ((o, &xi), &k) in out.iter_mut().zip(x).zip(inv) {
                *o = (*o - xi) * k;
            }
        }
    }
}

impl Cpu {
    /// One column of [`Backend::combine_columns`] (`x` and `out` start at the column;
    /// stage `s` of the column starts at `s * stride + at` in `k`):
    /// `out = x + Σ_t (h w_t) k_{s_t}` in one fused pass ([`Backend::combine`]). The
    /// Runge–Kutta module's per-column path runs the same function (its stage store may
    /// hold only the stages the terms name).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn combine_terms<T: Real>(
        &self,
        terms: &Terms<T>,
        h: T,
        x: &[T],
        k: &[T],
        at: usize,
        stride: usize,
        out: &mut [T],
    ) {
        let dim = out.len();
        let mut part: [(T, &[T]); MAX_TERMS] = [(T::zero(), &[]); MAX_TERMS];
        for (p, (s, w)) in part.iter_mut().zip(terms.iter()) {
            let o = s * stride + at;
            *p = (h * w, &k[o..o + dim]);
        }
        self.combine(&x[..dim], &part[..terms.len()], out);
    }

    /// One column of [`Backend::error_norms`] (`x` and `x_new` start at the column, `dim`
    /// values; stage `s` of the column starts at `s * stride + at` in `k`): `d = Σ_t e_t k_t` a block of 64 elements at a time, then the scaled
    /// squares summed in element order. The Runge–Kutta module's per-column path runs the
    /// same function.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn error_norm_column<T: Real>(
        terms: &Terms<T>,
        dim: usize,
        h: T,
        rtol: T,
        atol: T,
        x: &[T],
        x_new: &[T],
        k: &[T],
        at: usize,
        stride: usize,
    ) -> T {
        const B: usize = 64;
        let zeros = [T::zero(); B];
        let mut d = [T::zero(); B];
        let mut part: [(T, &[T]); MAX_TERMS] = [(T::zero(), &[]); MAX_TERMS];
        let mut acc = T::zero();
        let mut a = 0;
        while a < dim {
            let len = B.min(dim - a);
            for (p, (s, e)) in part.iter_mut().zip(terms.iter()) {
                let o = s * stride + at + a;
                *p = (e, &k[o..o + len]);
            }
            Self::combine_here(&zeros[..len], &part[..terms.len()], &mut d[..len]);
            for (l, &dl) in d[..len].iter().enumerate() {
                let i = a + l;
                let sc = atol + rtol * x[i].abs().max(x_new[i].abs());
                acc += (h * dl / sc).powi(2);
            }
            a += len;
        }
        (acc / T::from_usize(dim)).sqrt()
    }
}

impl<T: Real> Backend<T> for Cpu {
    type Buffer = Vec<T>;
    type View<'a>
        = &'a [T]
    where
        T: 'a;
    type ViewMut<'a>
        = &'a mut [T]
    where
        T: 'a;
    type Matrix = Panels<T>;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn zeros(&self, len: usize) -> Result<Vec<T>, BackendError> {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|e| BackendError::OutOfMemory {
                backend: "cpu",
                bytes: len.saturating_mul(std::mem::size_of::<T>()),
                reason: e.to_string(),
            })?;
        v.resize(len, T::zero());
        Ok(v)
    }

    fn buffer_len(&self, b: &Vec<T>) -> usize {
        b.len()
    }

    fn view<'a>(&self, b: &'a Vec<T>, r: Range<usize>) -> &'a [T] {
        &b[r]
    }

    fn view_mut<'a>(&self, b: &'a mut Vec<T>, r: Range<usize>) -> &'a mut [T] {
        &mut b[r]
    }

    fn upload(&self, src: &[T], dst: &mut [T]) {
        dst.copy_from_slice(src);
    }

    fn download(&self, src: &[T], dst: &mut [T]) -> Result<(), BackendError> {
        dst.copy_from_slice(src);
        Ok(())
    }

    fn synchronize(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn matrix(&self, rows: usize, cols: usize, a: &[T]) -> Result<Panels<T>, BackendError> {
        Ok(Panels::from_col_major(rows, cols, a))
    }

    fn combine_columns(
        &self,
        terms: &Terms<T>,
        dim: usize,
        cols: usize,
        h: &[T],
        x: &[T],
        k: &[T],
        stride: usize,
        out: &mut [T],
    ) {
        for c in (0..cols).filter(|&c| h[c] != T::zero()) {
            let r = c * dim..(c + 1) * dim;
            self.combine_terms(terms, h[c], &x[r.clone()], k, r.start, stride, &mut out[r]);
        }
    }

    fn non_finite(&self, dim: usize, cols: usize, h: &[T], x: &[T], out: &mut [T]) {
        for c in (0..cols).filter(|&c| h[c] != T::zero()) {
            let col = &x[c * dim..(c + 1) * dim];
            out[c] = col
                .iter()
                .position(|v| !v.is_finite())
                .map_or(-T::one(), T::from_usize);
        }
    }

    fn error_norms(
        &self,
        terms: &Terms<T>,
        dim: usize,
        cols: usize,
        h: &[T],
        rtol: T,
        atol: T,
        x: &[T],
        x_new: &[T],
        k: &[T],
        stride: usize,
        out: &mut [T],
    ) {
        for c in (0..cols).filter(|&c| h[c] != T::zero()) {
            let o = c * dim;
            out[c] = Self::error_norm_column(
                terms,
                dim,
                h[c],
                rtol,
                atol,
                &x[o..],
                &x_new[o..],
                k,
                o,
                stride,
            );
        }
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
        if let (Some(b), Some(c)) = (cast!(b, T, f64), cast!(mut c, T, f64)) {
            // SAFETY: `T` is `f64` (checked above); `Panels<T>` has the same layout.
            let a = unsafe { &*(a as *const Panels<T> as *const Panels<f64>) };
            gemm_panels_f64(a, n, scalar_as(alpha), b, ldb, scalar_as(beta), c, ldc)
        } else if let (Some(b), Some(c)) = (cast!(b, T, f32), cast!(mut c, T, f32)) {
            // SAFETY: as above, for `f32`.
            let a = unsafe { &*(a as *const Panels<T> as *const Panels<f32>) };
            gemm_panels_f32(a, n, scalar_as(alpha), b, ldb, scalar_as(beta), c, ldc)
        } else {
            unreachable!("Real is sealed to f32 and f64")
        }
    }

    fn gemv_panels(&self, a: &Panels<T>, x: &[T], y: &mut [T]) {
        assert!(
            x.len() >= a.cols() && y.len() >= a.rows(),
            "gemv_panels: x or y too short"
        );
        let x = &x[..a.cols()];
        let np = a.n_panels();
        let members = team::members(a.rows() * a.cols(), TEAM_MIN_GEMV, np);
        let out = SendPtr(y.as_mut_ptr());
        // As in `gemm_panels`: when the shares cannot be equal the helpers take the larger.
        let first = |i: usize| np * i / members;
        let backwards = panels_backwards();
        let job = |member: usize| {
            let mut panel = |p: usize| {
                let (r0, rows, data) = a.panel(p);
                // SAFETY: rows `r0..r0 + rows` of `y` (checked above); the members' panel
                // ranges are disjoint, so no element is reached twice.
                let yp = unsafe { chunk_mut(out, r0..r0 + rows) };
                panel_gemv(data, x, yp);
            };
            panel_order(first(member)..first(member + 1), backwards).for_each(&mut panel);
        };
        team::share(members, &job);
    }

    fn axpy(&self, alpha: T, x: &[T], y: &mut [T]) {
        let len = y.len().min(x.len());
        let yp = SendPtr(y.as_mut_ptr());
        for_chunks(len, &|r| {
            // SAFETY: the members' ranges are disjoint and inside `y`.
            let y = unsafe { chunk_mut(yp, r.clone()) };
            Self::axpy_here(alpha, &x[r], y)
        });
    }

    fn combine(&self, x: &[T], terms: &[(T, &[T])], out: &mut [T]) {
        let len = out.len();
        if terms.len() > MAX_TERMS {
            return Self::combine_here(x, terms, out);
        }
        let op = SendPtr(out.as_mut_ptr());
        for_chunks(len, &|r| {
            let mut part: [(T, &[T]); MAX_TERMS] = [(T::zero(), &[]); MAX_TERMS];
            for (p, &(c, k)) in part.iter_mut().zip(terms) {
                *p = (c, &k[r.clone()]);
            }
            // SAFETY: the members' ranges are disjoint and inside `out`.
            let out = unsafe { chunk_mut(op, r.clone()) };
            Self::combine_here(&x[r], &part[..terms.len()], out)
        });
    }

    fn activate(&self, act: Activation, x: &mut [T]) {
        let xp = SendPtr(x.as_mut_ptr());
        for_chunks(x.len(), &|r| {
            // SAFETY: the members' ranges are disjoint and inside `x`.
            Self::activate_here(act, unsafe { chunk_mut(xp, r) })
        });
    }

    fn activate_to(&self, act: Activation, x: &[T], out: &mut [T]) {
        let x = &x[..out.len()];
        let op = SendPtr(out.as_mut_ptr());
        for_chunks(x.len(), &|r| {
            // SAFETY: the members' ranges are disjoint and inside `out`.
            let o = unsafe { chunk_mut(op, r.clone()) };
            o.copy_from_slice(&x[r]);
            Self::activate_here(act, o)
        });
    }

    fn activate_grad(&self, act: Activation, x: &[T], phi: &[T], out: &mut [T]) {
        let len = out.len().min(x.len()).min(phi.len());
        let op = SendPtr(out.as_mut_ptr());
        for_chunks(len, &|r| {
            // SAFETY: the members' ranges are disjoint and inside `out`.
            let out = unsafe { chunk_mut(op, r.clone()) };
            Self::activate_grad_here(act, &x[r.clone()], &phi[r], out)
        });
    }
}

/// Calls `f` with the ranges of `0..len` the members of the calling thread's team take
/// (whole multiples of 64 elements but the last; just `0..len` without a team or for a
/// short vector). Elementwise results do not depend on the split.
fn for_chunks(len: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    for_chunks_of(len, len, f)
}

/// [`for_chunks`] for a pass that touches `work` elements in all (each index of `0..len`
/// standing for several: the rows of a matrix, say).
fn for_chunks_of(len: usize, work: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    let members = team::members(work, team::MIN_SHARED_WORK, usize::MAX);
    if members <= 1 {
        return f(0..len);
    }
    let lines = len.div_ceil(64);
    team::share(members, &|m| {
        let lo = (lines * m / members * 64).min(len);
        let hi = (lines * (m + 1) / members * 64).min(len);
        f(lo..hi)
    });
}

/// `r` of the buffer `p` points into.
///
/// # Safety
/// `r` lies inside the buffer, and no other live reference reaches its elements.
unsafe fn chunk_mut<'a, T>(p: SendPtr<T>, r: std::ops::Range<usize>) -> &'a mut [T] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(p.get().add(r.start), r.len()) }
}

impl Cpu {
    /// The leak and input of a rate model, per column `b` of `dim` values, in place:
    /// `out_b = (out_b + d_b - x_b) * inv_tau + e_b` with `d_b = drive(b)` the column's
    /// input drive (`B u` of its trial's current input piece; left out when `None`) and
    /// `e_b = direct(b)` a term added unscaled (a per-step noise; left out when `None`).
    /// `inv_tau` holds one value for every unit or one per unit (`dim` values). `out` holds
    /// the recurrent term on entry. Shared by columns among a team.
    ///
    /// A model's own fused operation, kept here until the model side owns its kernels (see
    /// the [`Backend`] docs).
    pub fn leak<'d, T: Real>(
        &self,
        dim: usize,
        x: &[T],
        drive: &(dyn Fn(usize) -> Option<&'d [T]> + Sync + 'd),
        inv_tau: &[T],
        direct: &(dyn Fn(usize) -> Option<&'d [T]> + Sync + 'd),
        out: &mut [T],
    ) {
        if dim == 0 {
            return;
        }
        let cols = out.len() / dim;
        assert!(x.len() >= cols * dim, "leak: x shorter than out");
        assert!(
            inv_tau.len() == 1 || inv_tau.len() == dim,
            "leak: inv_tau must hold 1 or dim values"
        );
        let op = SendPtr(out.as_mut_ptr());
        let members = team::members(cols * dim, team::MIN_SHARED_WORK, cols);
        let job = |m: usize| {
            for b in cols * m / members..cols * (m + 1) / members {
                let r = b * dim..(b + 1) * dim;
                let xb = &x[r.clone()];
                // SAFETY: the members' column ranges are disjoint and inside `out`.
                let ob = unsafe { chunk_mut(op, r) };
                leak_column(ob, xb, drive(b), inv_tau);
                if let Some(e) = direct(b) {
                    for (o, &ei) in ob.iter_mut().zip(&e[..dim]) {
                        *o += ei;
                    }
                }
            }
        };
        team::share(members, &job);
    }

    /// The transpose of [`leak`](Self::leak) and the activation, in place:
    /// `out += (φ'(x) ∘ g - v) * inv_tau` elementwise over `out`'s length, with `φ'` from
    /// `x` and `phi = φ(x)` as in [`Backend::activate_grad`] and `g` the transposed product
    /// with the weights (a rate model's state VJP). With one value per unit in `inv_tau`
    /// (`out` is then a whole number of `inv_tau.len()` columns) the scale must go inside
    /// the product: `g = Wᵀ (v ∘ inv_tau)`, and `out += φ'(x) ∘ g - v ∘ inv_tau`.
    #[allow(clippy::too_many_arguments)]
    pub fn leak_vjp<T: Real>(
        &self,
        act: Activation,
        x: &[T],
        phi: &[T],
        g: &[T],
        v: &[T],
        inv_tau: &[T],
        out: &mut [T],
    ) {
        let len = out.len();
        assert!(
            x.len() >= len && phi.len() >= len && g.len() >= len && v.len() >= len,
            "leak_vjp: inputs shorter than out"
        );
        if let [inv_tau] = *inv_tau {
            let op = SendPtr(out.as_mut_ptr());
            for_chunks(len, &|r| {
                // SAFETY: the members' ranges are disjoint and inside `out`.
                let out = unsafe { chunk_mut(op, r.clone()) };
                let (x, phi, g, v) = (&x[r.clone()], &phi[r.clone()], &g[r.clone()], &v[r]);
                for (i, o) in out.iter_mut().enumerate() {
                    *o += (grad_of(act, x[i], phi[i]) * g[i] - v[i]) * inv_tau;
                }
            });
            return;
        }
        // One time constant per unit: whole columns of `inv_tau.len()` units.
        let dim = inv_tau.len();
        assert!(
            dim > 0 && len.is_multiple_of(dim),
            "leak_vjp: out is not whole columns"
        );
        let op = SendPtr(out.as_mut_ptr());
        for_chunks_of(len / dim, len, &|r| {
            let r = r.start * dim..r.end * dim;
            // SAFETY: the members' ranges are disjoint and inside `out`.
            let out = unsafe { chunk_mut(op, r.clone()) };
            let (x, phi, g, v) = (&x[r.clone()], &phi[r.clone()], &g[r.clone()], &v[r]);
            // Column by column, each unit with its own time constant.
            for (c, o) in out.chunks_exact_mut(dim).enumerate() {
                let cols = c * dim..(c + 1) * dim;
                let (x, phi, g, v) = (
                    &x[cols.clone()],
                    &phi[cols.clone()],
                    &g[cols.clone()],
                    &v[cols],
                );
                for (i, o) in o.iter_mut().enumerate() {
                    *o += grad_of(act, x[i], phi[i]) * g[i] - v[i] * inv_tau[i];
                }
            }
        });
    }

    /// The input weights' side of [`leak`](Self::leak)'s transpose: for every column `c`
    /// of `v` (`dim` values each) whose `input(c)` is `Some(u_c)` (its input values, one per
    /// channel), `out[.., ch] += (u_c[ch] * alpha) v_c` for the channels with
    /// `u_c[ch] != 0`, the columns in order for every element; `out` is `dim x channels`,
    /// column-major (a rate model's `dB += α V Uᵀ`, the same bits as one
    /// [`Backend::axpy`] per column and channel). Shared by rows among a team.
    pub fn drive_vjp<'d, T: Real>(
        &self,
        dim: usize,
        v: &[T],
        input: &(dyn Fn(usize) -> Option<&'d [T]> + Sync + 'd),
        alpha: T,
        out: &mut [T],
    ) {
        if dim == 0 {
            return;
        }
        let (cols, channels) = (v.len() / dim, out.len() / dim);
        // Rows are shared out among the team: every element still sums its columns in
        // order.
        let op = SendPtr(out.as_mut_ptr());
        for_chunks_of(dim, cols * channels * dim, &|r| {
            for c in 0..cols {
                let Some(u) = input(c) else { continue };
                let vc = &v[c * dim + r.start..c * dim + r.end];
                for (ch, &uc) in u.iter().enumerate().take(channels) {
                    if uc != T::zero() {
                        // SAFETY: rows `r` of column `ch` of `out`; the members' row ranges
                        // are disjoint.
                        let o = unsafe { chunk_mut(op, ch * dim + r.start..ch * dim + r.end) };
                        Self::axpy_here(uc * alpha, vc, o);
                    }
                }
            }
        });
    }

    /// One step of Adam (Kingma & Ba 2015) on `theta` with gradient `g` and moments `m`,
    /// `v`: `m = β1 m + (1 − β1) g`, `v = β2 v + (1 − β2) g g`, then
    /// `θ −= lr m̂ / (√v̂ + ε)` with `m̂ = m / c1`, `v̂ = v / c2` (the bias corrections
    /// `c1 = 1 − β1ᵗ`, `c2 = 1 − β2ᵗ`): the moments in the working precision `T`, the update
    /// in `f64`. Vectorised. Moments that fall below `2^30` times `T`'s smallest normal
    /// number are set to zero, so that they never turn subnormal (a subnormal operand
    /// costs about a hundred cycles on x86, and the moments of a weight that no longer gets
    /// gradient, such as a Dale weight clipped at zero, decay through that range).
    #[allow(clippy::too_many_arguments)]
    pub fn adam<T: Real>(
        theta: &mut [T],
        m: &mut [T],
        v: &mut [T],
        g: &[T],
        (b1, b2): (f64, f64),
        (c1, c2): (f64, f64),
        lr: f64,
        eps: f64,
    ) {
        let c = [c1, c2, lr, eps];
        if let (Some(th), Some(m), Some(v), Some(g)) = (
            cast!(mut theta, T, f64),
            cast!(mut m, T, f64),
            cast!(mut v, T, f64),
            cast!(g, T, f64),
        ) {
            kernels::adam_f64(th, m, v, g, [b1, 1.0 - b1, b2, 1.0 - b2], c);
        } else if let (Some(th), Some(m), Some(v), Some(g)) = (
            cast!(mut theta, T, f32),
            cast!(mut m, T, f32),
            cast!(mut v, T, f32),
            cast!(g, T, f32),
        ) {
            let f = |x: f64| x as f32;
            kernels::adam_f32(th, m, v, g, [f(b1), f(1.0 - b1), f(b2), f(1.0 - b2)], c);
        }
    }

    #[inline]
    fn axpy_here<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
        if let (Some(x), Some(y)) = (cast!(x, T, f64), cast!(mut y, T, f64)) {
            kernels::axpy_f64(scalar_as(alpha), x, y)
        } else if let (Some(x), Some(y)) = (cast!(x, T, f32), cast!(mut y, T, f32)) {
            kernels::axpy_f32(scalar_as(alpha), x, y)
        } else {
            unreachable!("Real is sealed to f32 and f64")
        }
    }

    #[inline]
    fn combine_here<T: Real>(x: &[T], terms: &[(T, &[T])], out: &mut [T]) {
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

    fn activate_here<T: Real>(act: Activation, x: &mut [T]) {
        match act {
            Activation::Tanh => {
                if let Some(x) = cast!(mut x, T, f64) {
                    kernels::tanh_slice_f64(x)
                } else if let Some(x) = cast!(mut x, T, f32) {
                    kernels::tanh_slice_f32(x)
                }
            }
            Activation::Sigmoid => {
                if let Some(x) = cast!(mut x, T, f64) {
                    kernels::sigmoid_slice_f64(x)
                } else if let Some(x) = cast!(mut x, T, f32) {
                    kernels::sigmoid_slice_f32(x)
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
            Activation::Identity => {}
            Activation::ClippedRelu { cap } => {
                let cap = T::from_f64(cap);
                for v in x.iter_mut() {
                    *v = v.max(T::zero()).min(cap);
                }
            }
            Activation::ClippedSoftplus { cap } => {
                Self::activate_here(Activation::Softplus, x);
                let cap = T::from_f64(cap);
                for v in x.iter_mut() {
                    *v = v.min(cap);
                }
            }
        }
    }

    fn activate_grad_here<T: Real>(act: Activation, x: &[T], phi: &[T], out: &mut [T]) {
        for ((o, &xi), &pi) in out.iter_mut().zip(x).zip(phi) {
            *o = grad_of(act, xi, pi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{with_team, Panels};

    /// Every activation's derivative against central differences of the activation.
    #[test]
    fn activation_derivatives_match_finite_differences() {
        let acts = [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softplus,
            Activation::Relu,
            Activation::ClippedRelu { cap: 2.0 },
            Activation::ClippedSoftplus { cap: 2.0 },
            Activation::Identity,
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

    /// A `rows x k` column-major matrix and a `k`-vector of exact small values.
    fn gemv_inputs<T: Real>(rows: usize, k: usize) -> (Vec<T>, Vec<T>) {
        let a = (0..rows * k)
            .map(|i| T::from_f64(((i * 7 + 3) % 11) as f64 / 11.0 - 0.45))
            .collect();
        let x = (0..k)
            .map(|i| T::from_f64(((i * 5 + 1) % 13) as f64 / 13.0 - 0.5))
            .collect();
        (a, x)
    }

    /// The panel matrix-vector kernel against the GEMM on the same panels, for sizes with
    /// and without a partial last panel, odd and even column counts.
    #[test]
    fn gemv_panels_matches_the_gemm() {
        fn check<T: Real>(rows: usize, k: usize, tol: f64) {
            let (a, x) = gemv_inputs::<T>(rows, k);
            let p = Panels::from_col_major(rows, k, &a);
            let mut y = vec![T::zero(); rows];
            let mut want = vec![T::zero(); rows];
            Cpu.gemv_panels(&p, &x, &mut y);
            Cpu.gemm_panels(&p, 1, T::one(), &x, k, T::zero(), &mut want, rows);
            for (i, (&g, &w)) in y.iter().zip(&want).enumerate() {
                let scale = (0..k)
                    .map(|j| (a[i + j * rows] * x[j]).as_f64().abs())
                    .sum::<f64>();
                assert!(
                    (g.as_f64() - w.as_f64()).abs() <= tol * scale.max(1e-300),
                    "{rows} x {k}, row {i}: {g} vs {w}"
                );
            }
        }
        // Last panels of every height class: f32 200 = 4 x 48 + 8, 80 = 48 + 32;
        // f64 40 = 24 + 16, 200 = 8 x 24 + 8; and single rows.
        for (rows, k) in [
            (200, 200),
            (7, 5),
            (50, 3),
            (48, 1),
            (97, 64),
            (80, 9),
            (40, 9),
        ] {
            check::<f32>(rows, k, 1e-6);
            check::<f64>(rows, k, 1e-15);
        }
    }

    /// A matrix-vector product shared out among a team gives the bits of one thread.
    #[test]
    fn gemv_panels_on_a_team_gives_the_same_bits() {
        fn check<T: Real>(rows: usize, k: usize) {
            let (a, x) = gemv_inputs::<T>(rows, k);
            let p = Panels::from_col_major(rows, k, &a);
            let mut one = vec![T::zero(); rows];
            Cpu.gemv_panels(&p, &x, &mut one);
            let mut two = vec![T::zero(); rows];
            with_team(2, || Cpu.gemv_panels(&p, &x, &mut two));
            assert_eq!(one, two, "{rows} x {k}");
        }
        // Above `TEAM_MIN_GEMV`, with a partial last panel.
        check::<f32>(500, 400);
        check::<f64>(500, 400);
    }

    /// Adam's vectorised step gives the bits of the element-by-element formula, and a
    /// decaying moment stops at zero instead of turning subnormal.
    #[test]
    fn adam_matches_the_formula_and_never_goes_subnormal() {
        fn check<T: Real>() {
            let n = 301;
            let mut th: Vec<T> = (0..n)
                .map(|i| T::from_f64((i as f64 * 0.37).sin()))
                .collect();
            let (mut m, mut v) = (vec![T::zero(); n], vec![T::zero(); n]);
            let (mut th2, mut m2, mut v2) = (th.clone(), m.clone(), v.clone());
            let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.01);
            let f = T::from_f64;
            for t in 1..=2000 {
                // A gradient for the first 1000 steps, then none: the moments decay.
                let g: Vec<T> = (0..n)
                    .map(|i| {
                        if t <= 1000 {
                            f(((i * t) % 17) as f64 / 17.0 - 0.4)
                        } else {
                            T::zero()
                        }
                    })
                    .collect();
                let c1 = 1.0 - b1.powi(t as i32);
                let c2 = 1.0 - b2.powi(t as i32);
                Cpu::adam(&mut th, &mut m, &mut v, &g, (b1, b2), (c1, c2), lr, eps);
                let tiny = T::min_positive_value() * f((1u64 << 30) as f64);
                for i in 0..n {
                    let mi = f(b1) * m2[i] + f(1.0 - b1) * g[i];
                    let vi = f(b2) * v2[i] + f(1.0 - b2) * g[i] * g[i];
                    m2[i] = if mi.abs() < tiny { T::zero() } else { mi };
                    v2[i] = if vi < tiny { T::zero() } else { vi };
                    let (mh, vh) = (m2[i].as_f64() / c1, v2[i].as_f64() / c2);
                    th2[i] -= f(lr * mh / (vh.sqrt() + eps));
                }
                assert_eq!((&th, &m, &v), (&th2, &m2, &v2), "step {t}");
                assert!(
                    m.iter().chain(&v).all(|x| x.is_zero() || x.is_normal()),
                    "step {t}"
                );
            }
            // f32's first moments have decayed past 2^30 times the smallest normal number.
            if std::mem::size_of::<T>() == 4 {
                assert!(m.iter().all(|x| x.is_zero()));
            }
        }
        check::<f32>();
        check::<f64>();
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

    /// Everything a team shares (products by panels, elementwise passes by ranges, the
    /// leak by columns) gives the same bits with 1, 2 and 3 threads, on sizes above and
    /// below the sharing thresholds; the leak also matches its formula.
    #[test]
    fn teams_give_the_same_bits_as_one_thread() {
        fn val<T: Real>(i: usize, p: usize) -> T {
            T::from_f64(((i * p) % 1009) as f64 / 250.0 - 2.0)
        }
        /// Every shared operation, on `dim x cols` states with a `dim x dim` matrix.
        fn all_ops<T: Real>(dim: usize, cols: usize) -> Vec<Vec<T>> {
            let n = dim * cols;
            let a: Vec<T> = (0..dim * dim).map(|i| val(i, 7919)).collect();
            let x: Vec<T> = (0..n).map(|i| val(i, 104_729)).collect();
            let y: Vec<T> = (0..n).map(|i| val(i, 31)).collect();
            let p = Panels::from_col_major(dim, dim, &a);
            let mut out = Vec::new();
            let mut c: Vec<T> = (0..n).map(|i| val(i, 13)).collect();
            Cpu.gemm_panels(
                &p,
                cols,
                T::from_f64(0.7),
                &x,
                dim,
                T::from_f64(0.3),
                &mut c,
                dim,
            );
            out.push(c);
            // Plain products of a low-rank model's shapes (split by output columns in a
            // team): P = Aᵀ X (r x cols), Y += A P, D += X Pᵀ (dim x r), and a square Aᵀ X.
            let r = 2.min(dim);
            let (no, yes, one) = (Transpose::No, Transpose::Yes, T::one());
            let mut pm = vec![T::zero(); r * cols];
            Cpu.gemm(
                yes,
                no,
                r,
                cols,
                dim,
                one,
                &a,
                dim,
                &x,
                dim,
                T::zero(),
                &mut pm,
                r,
            );
            let mut c = y.clone();
            Cpu.gemm(
                no,
                no,
                dim,
                cols,
                r,
                T::from_f64(0.5),
                &a,
                dim,
                &pm,
                r,
                one,
                &mut c,
                dim,
            );
            out.push(c);
            let mut d: Vec<T> = (0..dim * r).map(|i| val(i, 5)).collect();
            Cpu.gemm(
                no,
                yes,
                dim,
                r,
                cols,
                T::from_f64(0.25),
                &y,
                dim,
                &pm,
                r,
                one,
                &mut d,
                dim,
            );
            out.push(d);
            out.push(pm);
            let mut c = vec![T::zero(); n];
            Cpu.gemm(
                yes,
                no,
                dim,
                cols,
                dim,
                one,
                &a,
                dim,
                &x,
                dim,
                T::zero(),
                &mut c,
                dim,
            );
            out.push(c);
            let mut c = vec![T::zero(); n];
            let terms = [(T::from_f64(0.25), &y[..]), (T::from_f64(-1.5), &x[..])];
            Cpu.combine(&x, &terms, &mut c);
            out.push(c);
            let mut c = y.clone();
            Cpu.axpy(T::from_f64(0.5), &x, &mut c);
            out.push(c);
            for act in [
                Activation::Tanh,
                Activation::Sigmoid,
                Activation::Softplus,
                Activation::ClippedRelu { cap: 1.0 },
            ] {
                let mut phi = x.clone();
                Cpu.activate(act, &mut phi);
                let mut to = vec![T::zero(); n];
                Cpu.activate_to(act, &x, &mut to);
                assert_eq!(phi, to, "activate_to {act:?}");
                let mut d = vec![T::zero(); n];
                Cpu.activate_grad(act, &x, &phi, &mut d);
                out.push(phi);
                out.push(d);
            }
            // The leak's VJP against its formula (tanh: φ' = 1 - φ²).
            let mut phi = x.clone();
            Cpu.activate(Activation::Tanh, &mut phi);
            let (g, inv_tau) = (&y, T::from_f64(0.5));
            let mut c: Vec<T> = (0..n).map(|i| val(i, 3)).collect();
            let before = c.clone();
            Cpu.leak_vjp(Activation::Tanh, &x, &phi, g, &x, &[inv_tau], &mut c);
            for i in 0..n {
                let want = before[i] + ((T::one() - phi[i] * phi[i]) * g[i] - x[i]) * inv_tau;
                assert_eq!(c[i], want, "leak_vjp at {i}");
            }
            out.push(c);
            // The leak: odd columns have a drive.
            let drive: Vec<T> = (0..dim).map(|i| val(i, 17)).collect();
            let input = |b: usize| (b % 2 == 1).then_some(&drive[..]);
            let inv_tau = T::from_f64(0.5);
            let mut c = y.clone();
            Cpu.leak(dim, &x, &input, &[inv_tau], &|_| None, &mut c);
            for (i, &ci) in c.iter().enumerate() {
                let (b, r) = (i / dim, i % dim);
                let d = if b % 2 == 1 { drive[r] } else { T::zero() };
                let want = if b % 2 == 1 {
                    (y[i] + d - x[i]) * inv_tau
                } else {
                    (y[i] - x[i]) * inv_tau
                };
                assert_eq!(ci, want, "leak at {i}");
            }
            out.push(c);
            // Per-unit time constants and a direct term on columns divisible by 3.
            let inv: Vec<T> = (0..dim).map(|i| val::<T>(i, 23).abs() + T::one()).collect();
            let e: Vec<T> = (0..dim).map(|i| val(i, 29)).collect();
            let direct = |b: usize| b.is_multiple_of(3).then_some(&e[..]);
            let mut c = y.clone();
            Cpu.leak(dim, &x, &input, &inv, &direct, &mut c);
            for (i, &ci) in c.iter().enumerate() {
                let (b, r) = (i / dim, i % dim);
                let d = if b % 2 == 1 { drive[r] } else { T::zero() };
                let mut want = if b % 2 == 1 {
                    (y[i] + d - x[i]) * inv[r]
                } else {
                    (y[i] - x[i]) * inv[r]
                };
                if b % 3 == 0 {
                    want += e[r];
                }
                assert_eq!(ci, want, "per-unit leak at {i}");
            }
            out.push(c);
            let mut c: Vec<T> = (0..dim * cols).map(|i| val(i, 31)).collect();
            let before = c.clone();
            Cpu.leak_vjp(
                Activation::Tanh,
                &x,
                &phi[..dim * cols],
                g,
                &x,
                &inv,
                &mut c,
            );
            for i in 0..dim * cols {
                let want = before[i] + ((T::one() - phi[i] * phi[i]) * g[i] - x[i] * inv[i % dim]);
                assert_eq!(c[i], want, "per-unit leak_vjp at {i}");
            }
            out.push(c);
            // The drive's VJP: odd columns have inputs (a zero channel among them), against
            // one axpy per column and channel.
            let us: Vec<[T; 3]> = (0..cols)
                .map(|b| [val(b, 5), T::zero(), val(b, 11)])
                .collect();
            let input = |b: usize| (b % 2 == 1).then(|| &us[b][..]);
            let mut d: Vec<T> = (0..dim * 3).map(|i| val(i, 19)).collect();
            let mut want = d.clone();
            for (b, u) in us.iter().enumerate().filter(|(b, _)| b % 2 == 1) {
                for (ch, &uc) in u.iter().enumerate().filter(|(_, &uc)| uc != T::zero()) {
                    Cpu::axpy_here(
                        uc * inv_tau,
                        &x[b * dim..(b + 1) * dim],
                        &mut want[ch * dim..(ch + 1) * dim],
                    );
                }
            }
            Cpu.drive_vjp(dim, &x, &input, inv_tau, &mut d);
            assert_eq!(d, want, "drive_vjp");
            out.push(d);
            out
        }
        fn check<T: Real>(dim: usize, cols: usize) {
            let one = all_ops::<T>(dim, cols);
            for size in [2, 3] {
                let team = with_team(size, || all_ops::<T>(dim, cols));
                for (i, (a, b)) in one.iter().zip(&team).enumerate() {
                    assert_eq!(a, b, "{} {dim} x {cols}, team of {size}, op {i}", T::NAME);
                }
            }
        }
        // (40, 41): a product big enough to share with fewer panels (2) than members;
        // (2100, 2): a leak big enough to share with fewer columns than members.
        // (300, 200): rank-2 products big enough to share.
        for (dim, cols) in [
            (500, 32),
            (97, 61),
            (300, 5),
            (10, 3),
            (40, 41),
            (2100, 2),
            (300, 200),
        ] {
            check::<f64>(dim, cols);
            check::<f32>(dim, cols);
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
