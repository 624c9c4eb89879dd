//! Seeded randomness: every random number in neurode comes from a ChaCha stream with an
//! explicit seed, so that runs are reproducible bit for bit.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded source of standard normal numbers (ChaCha8 + Box–Muller).
#[derive(Debug, Clone)]
pub struct Normal {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Normal {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Normal {
            rng: ChaCha8Rng::seed_from_u64(seed),
            spare: None,
        }
    }
    /// Uniform on `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Standard normal.
    pub fn sample(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

impl Normal {
    /// Fills `out` with standard normal numbers by the ziggurat method (`rand_distr`'s
    /// `StandardNormal`): several times faster than [`sample`](Self::sample), for bulk
    /// draws such as per-step noise. A stream of its own: the numbers differ from
    /// `sample`'s for the same seed.
    pub fn fill_standard(&mut self, out: &mut [f64]) {
        use rand_distr::{Distribution, StandardNormal};
        for v in out.iter_mut() {
            *v = StandardNormal.sample(&mut self.rng);
        }
    }
}

/// A seeded stream of uniform numbers (ChaCha8): the randomness of simulators that draw
/// many numbers per step (the spiking network's connectivity and Poisson input).
#[derive(Debug, Clone)]
pub struct Stream {
    rng: ChaCha8Rng,
}

impl Stream {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Stream {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
    /// Uniform on `[0, 1)` (53 random bits).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform on `(0, 1]`: never zero, so its logarithm is finite.
    #[inline]
    pub fn uniform_open0(&mut self) -> f64 {
        1.0 - self.uniform()
    }
}

/// Derives an independent seed from a base seed and a path of indices (run, iteration,
/// trial, ...) with the SplitMix64 finaliser, so that streams for different purposes never
/// overlap and any one can be regenerated on its own.
pub fn derive_seed(base: u64, path: &[u64]) -> u64 {
    let mut h = base ^ 0x9E37_79B9_7F4A_7C15;
    for &p in path {
        h = splitmix(h ^ splitmix(p.wrapping_add(0x632B_E59B_D9B4_E019)));
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk draws are seeded, standard normal (mean, variance and the fraction beyond
    /// two SD over 200,000 draws, within 5 standard errors), and their own stream.
    #[test]
    fn fill_standard_is_a_seeded_standard_normal() {
        let mut a = vec![0.0; 200_000];
        Normal::new(3).fill_standard(&mut a);
        let mut b = vec![0.0; 200_000];
        Normal::new(3).fill_standard(&mut b);
        assert_eq!(a, b);
        let n = a.len() as f64;
        let mean = a.iter().sum::<f64>() / n;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let tail = a.iter().filter(|v| v.abs() > 2.0).count() as f64 / n;
        assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {var}");
        let p = 0.045_500_263_9;
        assert!(
            (tail - p).abs() < 5.0 * (p * (1.0 - p) / n).sqrt(),
            "tail {tail}"
        );
        let mut c = vec![0.0; 8];
        Normal::new(4).fill_standard(&mut c);
        assert_ne!(c[..], a[..8]);
    }
}
