//! Vectorisable elementary functions for the CPU backend's hot path.
//!
//! libm's scalar `tanh` is a function call per element that the compiler cannot vectorise;
//! on an N = 500 leaky RNN it costs as much as the GEMM. These versions are branch-free
//! (both branches are computed and one is selected), use only `+ - * /`, bit operations and
//! a magic-number rounding, and so vectorise on any x86-64 or aarch64 target.
//!
//! Method: for small `|x|` the Cephes rational approximation `x + x^3 P(x^2)/Q(x^2)`; for
//! larger `|x|`, `(1 - e) / (1 + e)` with `e = exp(-2|x|)` from a Cody–Waite range reduction
//! and a Taylor polynomial. Accuracy (tested over dense sweeps against `std`): a few ulp.

// Published constants are kept with all their digits.
#![allow(clippy::excessive_precision)]

/// Defines a slice kernel once and compiles it three times on x86-64: for AVX-512, for
/// AVX2 (+FMA available, though the compiler does not contract) and for the baseline, picking
/// the widest one the CPU has at run time. The body only uses IEEE `+ - * /` and bit
/// operations in the same order in every version, so all three give identical bits.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn wide512($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide256($($arg: $ty),*) $body
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features `wide512` was compiled for.
                    return unsafe { wide512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `wide256` was compiled for.
                    return unsafe { wide256($($arg),*) };
                }
            }
            $body
        }
    };
}

/// How many columns ahead the matrix-vector kernels ask for a panel's data. A panel is read
/// once per product, from L2 (a 200 x 200 `f32` matrix does not fit in L1); the hardware's
/// own prefetch leaves the kernel waiting on it. Asking 12 columns (about 2 kB) ahead took a
/// Kim step's 400 products from 0.71 to 0.64 ms (4 to 32 measured; 8-16 alike).
const PREFETCH_COLUMNS: usize = 12;

/// Asks for the `bytes` bytes from `p` to be brought into L1 (on x86-64; a no-op
/// elsewhere). `p` may point past its slice: a prefetch reads nothing and never faults.
#[inline(always)]
fn prefetch_l1<T>(p: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = p as *const i8;
        let mut o = 0;
        while o < bytes {
            // SAFETY: a prefetch is a hint: it reads no memory the program sees and does
            // not fault, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_add(o),
                )
            };
            o += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// `y = A x` for the first `LOAD` rows of one row panel `A` of `MR` rows (column-major,
/// `MR x k`, `panel.len() = MR k`), writing `y.len() <= LOAD` rows: two interleaved
/// accumulators over the columns (even and odd), summed at the end. A panel with fewer
/// real rows than `MR` (the last one) is read only as far as its rows need: each row's
/// arithmetic is the same whatever `LOAD` is.
macro_rules! panel_gemv {
    ($(#[$meta:meta])* $name:ident, $t:ty, $mr:expr, $load:expr) => {
        multiversion! {
            $(#[$meta])*
            pub fn $name(panel: &[$t], x: &[$t], y: &mut [$t]) {
                const MR: usize = $mr;
                const LOAD: usize = $load;
                let k = x.len();
                let (mut a0, mut a1) = ([0.0 as $t; LOAD], [0.0 as $t; LOAD]);
                let mut j = 0;
                while j + 1 < k {
                    for c in [j, j + 1] {
                        prefetch_l1(
                            panel.as_ptr().wrapping_add((c + PREFETCH_COLUMNS) * MR),
                            LOAD * std::mem::size_of::<$t>(),
                        );
                    }
                    let (x0, x1) = (x[j], x[j + 1]);
                    let c0 = &panel[j * MR..j * MR + LOAD];
                    let c1 = &panel[(j + 1) * MR..(j + 1) * MR + LOAD];
                    for r in 0..LOAD {
                        a0[r] += c0[r] * x0;
                        a1[r] += c1[r] * x1;
                    }
                    j += 2;
                }
                if j < k {
                    let x0 = x[j];
                    let c0 = &panel[j * MR..j * MR + LOAD];
                    for r in 0..LOAD {
                        a0[r] += c0[r] * x0;
                    }
                }
                for (r, yr) in y.iter_mut().enumerate().take(LOAD) {
                    *yr = a0[r] + a1[r];
                }
            }
        }
    };
}

panel_gemv!(
    /// `y = A x` for one 48-row panel of `f32` (see `panel_gemv!`).
    panel_gemv_f32, f32, 48, 48
);
panel_gemv!(
    /// `y = A x` for the first 32 rows of a 48-row panel of `f32`.
    panel_gemv_f32_32, f32, 48, 32
);
panel_gemv!(
    /// `y = A x` for the first 16 rows of a 48-row panel of `f32`.
    panel_gemv_f32_16, f32, 48, 16
);
panel_gemv!(
    /// `y = A x` for one 24-row panel of `f64` (see `panel_gemv!`).
    panel_gemv_f64, f64, 24, 24
);
panel_gemv!(
    /// `y = A x` for the first 16 rows of a 24-row panel of `f64`.
    panel_gemv_f64_16, f64, 24, 16
);
panel_gemv!(
    /// `y = A x` for the first 8 rows of a 24-row panel of `f64`.
    panel_gemv_f64_8, f64, 24, 8
);

/// One Adam step on aligned slices: the moments in the working precision, the
/// bias-corrected update in `f64` (see [`Cpu::adam`](super::Cpu::adam)). Moments below
/// `2^30` times the smallest normal number are set to zero: a subnormal operand costs about
/// a hundred cycles on x86, and the moments of a weight that no longer gets gradient decay
/// through that range.
macro_rules! adam {
    ($(#[$meta:meta])* $name:ident, $t:ty) => {
        multiversion! {
            $(#[$meta])*
            pub fn $name(
                theta: &mut [$t],
                m: &mut [$t],
                v: &mut [$t],
                g: &[$t],
                beta: [$t; 4],
                c: [f64; 4],
            ) {
                let [b1, b1c, b2, b2c] = beta;
                let [c1, c2, lr, eps] = c;
                // 2^30 times the smallest normal number: far below any moment that moves a
                // weight, far above the subnormal range.
                const TINY: $t = <$t>::MIN_POSITIVE * (1u64 << 30) as $t;
                let n = theta.len().min(m.len()).min(v.len()).min(g.len());
                let (theta, m, v, g) = (&mut theta[..n], &mut m[..n], &mut v[..n], &g[..n]);
                for i in 0..n {
                    let gi = g[i];
                    let mi = b1 * m[i] + b1c * gi;
                    let vi = b2 * v[i] + b2c * gi * gi;
                    // A moment that decays (its weight gets no more gradient, as a Dale
                    // weight clipped at zero) stops at zero before it turns subnormal.
                    m[i] = if mi.abs() < TINY { 0.0 } else { mi };
                    v[i] = if vi < TINY { 0.0 } else { vi };
                    let mh = m[i] as f64 / c1;
                    let vh = v[i] as f64 / c2;
                    theta[i] -= (lr * mh / (vh.sqrt() + eps)) as $t;
                }
            }
        }
    };
}

adam!(
    /// One Adam step (`f64`).
    adam_f64, f64
);
adam!(
    /// One Adam step (`f32`).
    adam_f32, f32
);

multiversion! {
    /// `tanh` of every element, in place (`f64`).
    pub fn tanh_slice_f64(xs: &mut [f64]) {
        for x in xs.iter_mut() {
            *x = tanh_f64(*x);
        }
    }
}

multiversion! {
    /// `tanh` of every element, in place (`f32`).
    pub fn tanh_slice_f32(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = tanh_f32(*x);
        }
    }
}

multiversion! {
    /// `y += alpha * x` (`f64`).
    pub fn axpy_f64(alpha: f64, x: &[f64], y: &mut [f64]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += alpha * x;
        }
    }
}

multiversion! {
    /// `y += alpha * x` (`f32`).
    pub fn axpy_f32(alpha: f32, x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += alpha * x;
        }
    }
}

/// Elements per block of [`combine_f64`]/[`combine_f32`]: the accumulators of a block
/// stay in vector registers while the terms stream through.
const BLOCK: usize = 32;

macro_rules! combine_body {
    ($t:ty, $x:ident, $terms:ident, $out:ident) => {{
        let n = $out.len();
        let mut e = 0;
        while e + BLOCK <= n {
            let mut acc = [0.0 as $t; BLOCK];
            acc.copy_from_slice(&$x[e..e + BLOCK]);
            for &(c, k) in $terms.iter() {
                let k = &k[e..e + BLOCK];
                for l in 0..BLOCK {
                    acc[l] += c * k[l];
                }
            }
            $out[e..e + BLOCK].copy_from_slice(&acc);
            e += BLOCK;
        }
        for i in e..n {
            let mut acc = $x[i];
            for &(c, k) in $terms.iter() {
                acc += c * k[i];
            }
            $out[i] = acc;
        }
    }};
}

multiversion! {
    /// `out = x + Σ_j c_j k_j`, summed in the order of `terms` for every element: the same
    /// bits as copying `x` and applying one [`axpy_f64`] per term, in one pass (`f64`).
    pub fn combine_f64(x: &[f64], terms: &[(f64, &[f64])], out: &mut [f64]) {
        combine_body!(f64, x, terms, out)
    }
}

multiversion! {
    /// `out = x + Σ_j c_j k_j` in one pass (`f32`); see [`combine_f64`].
    pub fn combine_f32(x: &[f32], terms: &[(f32, &[f32])], out: &mut [f32]) {
        combine_body!(f32, x, terms, out)
    }
}

const SHIFT_F64: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
const SHIFT_F32: f32 = 12_582_912.0; // 1.5 * 2^23

/// `exp(y)` for `y` in `[-708, 0]` (where `2^n` of the range reduction is a normal
/// number), branch-free. Outside that range the result is garbage.
#[inline(always)]
fn exp_neg_f64(y: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    let kf = y * std::f64::consts::LOG2_E + SHIFT_F64;
    let bits = kf.to_bits();
    let n = kf - SHIFT_F64;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    // Taylor series to degree 13: truncation error < 5e-18 for |r| <= ln2/2.
    const C: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let mut p = C[13];
    for c in C[..13].iter().rev() {
        p = p * r + c;
    }
    // The low bits of `bits` hold 2^51 + n; 2^51 vanishes in the 12 bits kept by the shift.
    let scale = f64::from_bits(bits.wrapping_add(1023) << 52);
    p * scale
}

/// `tanh` in `f64`, branch-free (see the module docs). NaN in, NaN out.
#[inline(always)]
pub fn tanh_f64(x: f64) -> f64 {
    // Cephes tanh.c, |x| < 0.625.
    const P0: f64 = -9.643_991_794_250_522_386_28e-1;
    const P1: f64 = -9.928_772_310_019_185_865_64e1;
    const P2: f64 = -1.614_687_684_417_084_479_52e3;
    const Q0: f64 = 1.128_116_784_916_329_314_02e2;
    const Q1: f64 = 2.235_488_390_601_004_485_83e3;
    const Q2: f64 = 4.844_063_053_251_254_860_48e3;
    let a = x.abs().min(20.0); // tanh(20) rounds to 1
    let z = a * a;
    let p = (P0 * z + P1) * z + P2;
    let q = ((z + Q0) * z + Q1) * z + Q2;
    let small = a + a * z * (p / q);
    let e = exp_neg_f64(-2.0 * a);
    let large = (1.0 - e) / (1.0 + e);
    let r = if a < 0.625 { small } else { large };
    let r = r.copysign(x);
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// `exp(y)` for `y` in `[-87, 0]` in `f32` (where `2^n` of the range reduction is a normal
/// number), branch-free.
#[inline(always)]
fn exp_neg_f32(y: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let kf = y * std::f32::consts::LOG2_E + SHIFT_F32;
    let bits = kf.to_bits();
    let n = kf - SHIFT_F32;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    const C: [f32; 9] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
    ];
    let mut p = C[8];
    for c in C[..8].iter().rev() {
        p = p * r + c;
    }
    let scale = f32::from_bits(bits.wrapping_add(127) << 23);
    p * scale
}

/// `tanh` in `f32`, branch-free (see the module docs). NaN in, NaN out.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    // Cephes tanhf.c, |x| < 0.625.
    let a = x.abs().min(10.0); // tanh(10) rounds to 1
    let z = a * a;
    let small = ((((-5.704_988_727_45e-3 * z + 2.063_908_879_54e-2) * z - 5.373_971_555_31e-2)
        * z
        + 1.333_144_220_36e-1)
        * z
        - 3.333_328_194_22e-1)
        * z
        * a
        + a;
    let e = exp_neg_f32(-2.0 * a);
    let large = (1.0 - e) / (1.0 + e);
    let r = if a < 0.625 { small } else { large };
    let r = r.copysign(x);
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// Defines the logistic sigmoid `1 / (1 + e^{-x})` of one precision, branch-free:
/// `1 / (1 + e)` or `e / (1 + e)` with `e = exp(-|x|)`, `|x|` capped inside the range of the
/// exponential's scaling, so nothing overflows. NaN in, NaN out.
macro_rules! sigmoid {
    ($(#[$meta:meta])* $name:ident, $t:ty, $exp_neg:ident, $cap:expr) => {
        $(#[$meta])*
        #[inline(always)]
        pub fn $name(x: $t) -> $t {
            let a = x.abs().min($cap);
            let e = $exp_neg(-a);
            let pos = 1.0 / (1.0 + e);
            let r = if x < 0.0 { e * pos } else { pos };
            if x.is_nan() {
                x
            } else {
                r
            }
        }
    };
}

sigmoid!(
    /// The logistic sigmoid in `f64` (see `sigmoid!`).
    sigmoid_f64, f64, exp_neg_f64, 700.0
);
sigmoid!(
    /// The logistic sigmoid in `f32` (see `sigmoid!`).
    sigmoid_f32, f32, exp_neg_f32, 80.0
);

multiversion! {
    /// The logistic sigmoid of every element, in place (`f64`).
    pub fn sigmoid_slice_f64(xs: &mut [f64]) {
        for x in xs.iter_mut() {
            *x = sigmoid_f64(*x);
        }
    }
}

multiversion! {
    /// The logistic sigmoid of every element, in place (`f32`).
    pub fn sigmoid_slice_f32(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = sigmoid_f32(*x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulp_diff_f64(a: f64, b: f64) -> u64 {
        let (a, b) = (a.to_bits() as i64, b.to_bits() as i64);
        (a - b).unsigned_abs()
    }
    fn ulp_diff_f32(a: f32, b: f32) -> u32 {
        let (a, b) = (a.to_bits() as i32, b.to_bits() as i32);
        (a - b).unsigned_abs()
    }

    #[test]
    fn tanh_f64_within_few_ulp_of_std() {
        let mut worst = 0;
        let mut x = -25.0f64;
        while x < 25.0 {
            for s in [x, x * 1e-3, x * 1e-9] {
                let d = ulp_diff_f64(tanh_f64(s), s.tanh());
                worst = worst.max(d);
            }
            x += 1.37e-4;
        }
        assert!(worst <= 4, "worst error {worst} ulp");
        assert!(tanh_f64(f64::NAN).is_nan());
        assert_eq!(tanh_f64(f64::INFINITY), 1.0);
        assert_eq!(tanh_f64(f64::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f64(0.0), 0.0);
        assert!(tanh_f64(-0.0).is_sign_negative());
    }

    #[test]
    fn tanh_f32_within_few_ulp_of_std() {
        let mut worst = 0;
        let mut x = -12.0f32;
        while x < 12.0 {
            for s in [x, x * 1e-3, x * 1e-9] {
                let d = ulp_diff_f32(tanh_f32(s), s.tanh());
                worst = worst.max(d);
            }
            x += 7.3e-5;
        }
        assert!(worst <= 4, "worst error {worst} ulp");
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
    }

    /// The sigmoids against `1 / (1 + exp(-x))` in `f64` (libm), rounded: within a few
    /// ulp over the range where the value is a normal number, and the limits.
    #[test]
    fn sigmoids_within_few_ulp_of_std() {
        let (mut worst32, mut worst64) = (0, 0);
        let mut x = -80.0f64;
        while x < 80.0 {
            for s in [x, x * 1e-3, x * 1e-9] {
                let want = 1.0 / (1.0 + (-s).exp());
                worst64 = worst64.max(ulp_diff_f64(sigmoid_f64(s), want));
                let s32 = s as f32;
                let want32 = (1.0 / (1.0 + (-(s32 as f64)).exp())) as f32;
                worst32 = worst32.max(ulp_diff_f32(sigmoid_f32(s32), want32));
            }
            x += 3.1e-4;
        }
        assert!(worst64 <= 4, "f64: worst error {worst64} ulp");
        assert!(worst32 <= 4, "f32: worst error {worst32} ulp");
        assert!(sigmoid_f64(f64::NAN).is_nan() && sigmoid_f32(f32::NAN).is_nan());
        assert_eq!(sigmoid_f64(f64::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert!(sigmoid_f64(f64::NEG_INFINITY) < 1e-300);
        assert!(sigmoid_f32(f32::NEG_INFINITY) < 1e-34);
        // Far out, where the value is tiny but still a normal number.
        for x in [-100.0f64, -300.0, -500.0, -700.0] {
            let want = 1.0 / (1.0 + (-x).exp());
            assert!(ulp_diff_f64(sigmoid_f64(x), want) <= 4, "{x}");
        }
        assert_eq!(sigmoid_f64(0.0), 0.5);
        assert_eq!(sigmoid_f32(0.0), 0.5);
    }
}
