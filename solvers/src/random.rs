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

/// Layers of the 32-bit ziggurat of [`Normal::fill_standard_32`].
const ZIG_LAYERS: usize = 128;
/// The start of its tail (Marsaglia & Tsang 2000, 128 layers).
const ZIG_R: f64 = 3.442_619_855_899;
/// The area of each of its layers.
const ZIG_V: f64 = 9.912_563_035_262_17e-3;
/// Scale of the 25-bit signed magnitude of a draw.
const ZIG_M: f64 = (1u32 << 24) as f64;

/// The ziggurat's tables: per layer, the acceptance bound `k` (on the magnitude), the scale
/// `w` and the density `f` at the layer's edge.
struct Ziggurat {
    k: [u32; ZIG_LAYERS],
    w: [f64; ZIG_LAYERS],
    f: [f64; ZIG_LAYERS],
}

/// Marsaglia & Tsang's (2000) tables for 128 layers, with a 25-bit magnitude.
fn ziggurat() -> &'static Ziggurat {
    static TABLES: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut z = Ziggurat {
            k: [0; ZIG_LAYERS],
            w: [0.0; ZIG_LAYERS],
            f: [0.0; ZIG_LAYERS],
        };
        let mut dn = ZIG_R;
        let mut tn = dn;
        let q = ZIG_V / (-0.5 * dn * dn).exp();
        z.k[0] = ((dn / q) * ZIG_M) as u32;
        z.k[1] = 0;
        z.w[0] = q / ZIG_M;
        z.w[ZIG_LAYERS - 1] = dn / ZIG_M;
        z.f[0] = 1.0;
        z.f[ZIG_LAYERS - 1] = (-0.5 * dn * dn).exp();
        for i in (1..ZIG_LAYERS - 1).rev() {
            dn = (-2.0 * (ZIG_V / dn + (-0.5 * dn * dn).exp()).ln()).sqrt();
            z.k[i + 1] = ((dn / tn) * ZIG_M) as u32;
            tn = dn;
            z.f[i] = (-0.5 * dn * dn).exp();
            z.w[i] = dn / ZIG_M;
        }
        z
    })
}

impl Normal {
    /// Fills `out` with standard normal numbers from 32 random bits each: the ziggurat of
    /// Marsaglia & Tsang (2000, 128 layers), its layer from 7 bits and a signed 25-bit
    /// magnitude from the other 25 (so the two do not share bits). Half the random bits of
    /// [`fill_standard`](Self::fill_standard) (whose ziggurat takes 64 per number), for
    /// bulk noise where a resolution of 2⁻²⁴ of a layer's width is plenty: a spiking
    /// network's voltage noise, 4 million numbers a trial. A stream of its own.
    ///
    /// Hand-written: `rand_distr`'s `StandardNormal` draws 64 bits per number in `f32` too
    /// (a 32-bit version is a to-do there), and the random bits were a third of a trial.
    pub fn fill_standard_32(&mut self, out: &mut [f64]) {
        let z = ziggurat();
        for v in out.iter_mut() {
            *v = self.zig32(z);
        }
    }

    #[inline(always)]
    fn zig32(&mut self, z: &Ziggurat) -> f64 {
        loop {
            let bits = self.rng.next_u32();
            let i = (bits & 0x7f) as usize;
            // The upper 25 bits as a signed number.
            let hz = (bits as i32) >> 7;
            let x = hz as f64 * z.w[i];
            if hz.unsigned_abs() < z.k[i] {
                return x;
            }
            if i == 0 {
                // The tail beyond R (Marsaglia's method).
                loop {
                    let a = -(1.0 - self.uniform()).ln() / ZIG_R;
                    let b = -(1.0 - self.uniform()).ln();
                    if b + b >= a * a {
                        return if hz > 0 { ZIG_R + a } else { -ZIG_R - a };
                    }
                }
            }
            if z.f[i] + self.uniform() * (z.f[i - 1] - z.f[i]) < (-0.5 * x * x).exp() {
                return x;
            }
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

    /// The 32-bit ziggurat is a seeded standard normal: its histogram over 2 million draws
    /// against Φ on 40 bins of [−4, 4] plus both tails (χ² below the 0.999 quantile of its
    /// 41 degrees of freedom, 74.7), its moments up to the fourth, and the fraction beyond
    /// ±3.5 (the ziggurat's tail method starts at 3.44) within 5 standard errors.
    #[test]
    fn the_32_bit_ziggurat_is_a_standard_normal() {
        use errorfunctions::RealErrorFunctions;
        let n = 2_000_000;
        let mut a = vec![0.0; n];
        Normal::new(11).fill_standard_32(&mut a);
        let mut b = vec![0.0; n];
        Normal::new(11).fill_standard_32(&mut b);
        assert_eq!(a, b);
        let phi = |x: f64| 0.5 * RealErrorFunctions::erfc(-x / 2f64.sqrt());
        let mut counts = vec![0usize; 42];
        for &x in &a {
            let bin = if x < -4.0 {
                0
            } else if x >= 4.0 {
                41
            } else {
                1 + ((x + 4.0) / 0.2) as usize
            };
            counts[bin.min(41)] += 1;
        }
        let nf = n as f64;
        let mut chi2 = 0.0;
        for (k, &c) in counts.iter().enumerate() {
            let p = match k {
                0 => phi(-4.0),
                41 => 1.0 - phi(4.0),
                _ => phi(-4.0 + 0.2 * k as f64) - phi(-4.0 + 0.2 * (k - 1) as f64),
            };
            chi2 += (c as f64 - nf * p).powi(2) / (nf * p);
        }
        assert!(chi2 < 74.7, "chi2 {chi2} over 41 degrees of freedom");
        let mean = a.iter().sum::<f64>() / nf;
        let m2 = a.iter().map(|x| x * x).sum::<f64>() / nf;
        let m4 = a.iter().map(|x| x.powi(4)).sum::<f64>() / nf;
        assert!(mean.abs() < 5.0 / nf.sqrt(), "mean {mean}");
        assert!((m2 - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(), "variance {m2}");
        assert!(
            (m4 - 3.0).abs() < 5.0 * (96.0 / nf).sqrt(),
            "fourth moment {m4}"
        );
        let tail = a.iter().filter(|x| x.abs() > 3.5).count() as f64 / nf;
        let p = 2.0 * phi(-3.5);
        assert!(
            (tail - p).abs() < 5.0 * (p / nf).sqrt(),
            "tail {tail} vs {p}"
        );
    }
}
