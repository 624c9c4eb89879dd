//! The scalar types neurode computes in: `f32` and `f64`.
//!
//! [`Real`] is sealed: the solvers and the backends are written once, generically, and
//! instantiated for exactly these two types. It is a plain number: the linear algebra and
//! the activations live in the [`Backend`](crate::Backend).

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
/// precision and conversions to and from `f64`.
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
    /// The smallest relative tolerance this type delivers on typical problems (`5e-14` for
    /// `f64`, `3e-5` for `f32`: about 250 machine epsilons); an adaptive solve asked for less reports
    /// [`Warning::ToleranceBelowPrecision`](crate::Warning::ToleranceBelowPrecision).
    ///
    /// Measured on benchmark problem P1 (an `N = 500` low-rank tanh RNN): below it the
    /// round-off of one right-hand side (a GEMM of `N` terms) is no longer small against
    /// the tolerance, and the controller takes several times the steps of `f64` at the same
    /// tolerance.
    const ROUNDOFF_RTOL: f64;

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
}

impl Real for f64 {
    const DEFAULT_RTOL: f64 = 1e-6;
    const DEFAULT_ATOL: f64 = 1e-8;
    const NAME: &'static str = "f64";
    const ROUNDOFF_RTOL: f64 = 5e-14;

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
}

impl Real for f32 {
    const DEFAULT_RTOL: f64 = 1e-4;
    const DEFAULT_ATOL: f64 = 1e-6;
    const NAME: &'static str = "f32";
    const ROUNDOFF_RTOL: f64 = 3e-5;

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
}
