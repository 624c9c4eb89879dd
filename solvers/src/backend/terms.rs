//! [`Terms`]: a Runge–Kutta combination as data, for every backend to execute.

use crate::scalar::Real;

/// Most terms of one combination (the most stages a tableau may have).
pub const MAX_TERMS: usize = 16;

/// A Runge–Kutta combination as a list of terms `(s_t, w_t)`: stage `s_t` with weight
/// `w_t`, in the order they are summed. Built by the Runge–Kutta module from the tableau
/// (stage states, solution, error estimate, dense output) and executed by a backend per
/// column with the column's own step size ([`Backend::combine_columns`],
/// [`Backend::error_norms`]); a GPU kernel receives it by value, so there is one copy of
/// the arithmetic, this data.
///
/// [`Backend::combine_columns`]: super::Backend::combine_columns
/// [`Backend::error_norms`]: super::Backend::error_norms
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct Terms<T> {
    stages: [u32; MAX_TERMS],
    weights: [T; MAX_TERMS],
    len: u32,
}

// The layout the CUDA kernels read (`nd_terms<T>` in `cuda/core.cu`): 16 `u32` stages at
// 0, 16 weights at 64, the count after them.
const _: () = assert!(std::mem::size_of::<Terms<f32>>() == 132);
const _: () = assert!(std::mem::size_of::<Terms<f64>>() == 200);

impl<T: Real> Terms<T> {
    /// No terms.
    pub fn new() -> Self {
        Terms {
            stages: [0; MAX_TERMS],
            weights: [T::zero(); MAX_TERMS],
            len: 0,
        }
    }

    /// The terms `(stage, weight)` in order.
    ///
    /// # Panics
    /// With more than [`MAX_TERMS`] terms.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (usize, T)>) -> Self {
        let mut t = Self::new();
        for (s, w) in pairs {
            t.push(s, w);
        }
        t
    }

    /// The terms `(j, w_j)` of the weights `w` whose weight is not zero, in stage order.
    ///
    /// # Panics
    /// With more than [`MAX_TERMS`] weights.
    pub fn nonzero(w: &[T]) -> Self {
        Self::from_pairs(
            w.iter()
                .copied()
                .enumerate()
                .filter(|&(_, w)| w != T::zero()),
        )
    }

    /// Appends the term `(stage, weight)`.
    ///
    /// # Panics
    /// With more than [`MAX_TERMS`] terms.
    pub fn push(&mut self, stage: usize, weight: T) {
        let n = self.len as usize;
        assert!(
            n < MAX_TERMS,
            "a combination holds at most {MAX_TERMS} terms"
        );
        self.stages[n] = u32::try_from(stage).expect("a stage index fits u32");
        self.weights[n] = weight;
        self.len += 1;
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The terms `(stage, weight)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, T)> + '_ {
        (0..self.len()).map(|t| (self.stages[t] as usize, self.weights[t]))
    }
}

impl<T: Real> Default for Terms<T> {
    fn default() -> Self {
        Self::new()
    }
}
