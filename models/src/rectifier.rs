//! How raw weights become magnitudes under Dale's law: the rectifier of
//! [`crate::Dale`] and of the input weights of a [`crate::LeakyRnn`].

use neurode_solvers::Real;

/// How the raw weights become magnitudes under Dale's law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rectifier {
    /// `max(W, 0)` (Kim et al. 2019): a weight pushed below zero is pruned.
    Relu,
    /// `|W|` (mRNNTorch): the magnitude of any weight counts.
    Abs,
    /// `W` as it is (no Dale's law; the mask alone applies).
    Identity,
}

impl Rectifier {
    /// `rect(w)`.
    pub(crate) fn apply<T: Real>(self, w: T) -> T {
        match self {
            Rectifier::Relu => w.max(T::zero()),
            Rectifier::Abs => w.abs(),
            Rectifier::Identity => w,
        }
    }
    /// `rect(raw) ⊙ s`, elementwise.
    pub(crate) fn masked<'a, T: Real>(
        self,
        raw: &'a [T],
        s: &'a [T],
    ) -> impl Iterator<Item = T> + 'a {
        raw.iter().zip(s).map(move |(&w, &m)| self.apply(w) * m)
    }

    /// `out += d ⊙ rect'(raw) ⊙ s`: a gradient with respect to the effective weights
    /// mapped to the raw ones.
    pub(crate) fn add_masked_slope<T: Real>(self, d: &[T], raw: &[T], s: &[T], out: &mut [T]) {
        let slope = raw.iter().zip(s);
        match self {
            // The Kim et al. network's hot path, kept branch-light.
            Rectifier::Relu => {
                for ((o, &dk), (&w, &m)) in out.iter_mut().zip(d).zip(slope) {
                    *o += dk * if w > T::zero() { m } else { T::zero() };
                }
            }
            r => {
                for ((o, &dk), (&w, &m)) in out.iter_mut().zip(d).zip(slope) {
                    *o += dk * (r.slope(w) * m);
                }
            }
        }
    }

    /// The derivative (0 at a kink).
    pub(crate) fn slope<T: Real>(self, w: T) -> T {
        match self {
            Rectifier::Relu if w > T::zero() => T::one(),
            Rectifier::Relu => T::zero(),
            Rectifier::Abs if w > T::zero() => T::one(),
            Rectifier::Abs if w < T::zero() => -T::one(),
            Rectifier::Abs => T::zero(),
            Rectifier::Identity => T::one(),
        }
    }
}
