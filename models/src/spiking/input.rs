//! The inputs of the spiking network: external Poisson input per (source, target) class
//! pair, drawn per step in place, and a deterministic stimulus current.

use neurode_solvers::Stream;

use super::neuron::steps_in;
use super::SpikingError;

/// Draws Poisson counts of one mean by inversion of a cumulative table (one uniform number
/// per draw).
#[derive(Debug, Clone, PartialEq)]
pub struct Poisson {
    mean: f64,
    cdf: Vec<f64>,
}

impl Poisson {
    /// Largest mean per draw: the table holds about `mean + 12 √mean` entries.
    pub const MAX_MEAN: f64 = 1e6;

    /// A sampler of mean `mean` (≥ 0, at most [`MAX_MEAN`](Self::MAX_MEAN)).
    pub fn new(mean: f64) -> Result<Poisson, SpikingError> {
        if !(mean.is_finite() && (0.0..=Self::MAX_MEAN).contains(&mean)) {
            return Err(SpikingError::Invalid {
                key: "external input".into(),
                value: mean,
                requirement: format!(
                    "the mean count per step, dt·nu·c, is a number in [0, {:e}]",
                    Self::MAX_MEAN
                ),
            });
        }
        let mut cdf = Vec::new();
        if mean > 0.0 {
            // Terms from the mode outwards in logs, so large means do not underflow.
            let upper = (mean + 12.0 * mean.sqrt() + 20.0).ceil() as usize;
            let ln_mean = mean.ln();
            let mut ln_fact = 0.0;
            let mut total = 0.0;
            for k in 0..=upper {
                if k > 0 {
                    ln_fact += (k as f64).ln();
                }
                total += (k as f64 * ln_mean - mean - ln_fact).exp();
                cdf.push(total);
            }
            // The tail beyond the table (below 1e-30) goes to its last entry.
            if let Some(last) = cdf.last_mut() {
                *last = f64::INFINITY;
            }
        }
        Ok(Poisson { mean, cdf })
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// One count.
    #[inline]
    pub fn draw(&self, s: &mut Stream) -> u32 {
        if self.cdf.is_empty() {
            return 0;
        }
        let u = s.uniform();
        if self.cdf.len() <= 32 {
            let mut k = 0;
            while u >= self.cdf[k] {
                k += 1;
            }
            k as u32
        } else {
            self.cdf.partition_point(|&c| c <= u) as u32
        }
    }
}

/// The time course of a stimulus (the original's `StimulusGenerator` shapes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `amplitude` on `[onset, onset + duration)`.
    Box,
    /// A ramp from 0 rising by `amplitude/duration` per second of `[onset, onset +
    /// duration)`, 0 outside.
    Linear,
    /// `amplitude γ (e^{−(t−t0)/τd} − e^{−(t−t0)/τr})` from the onset to the end of the
    /// run (the duration is not used), with `γ` normalising the peak to `amplitude`.
    DiffOfExp {
        /// Rise time τr (s).
        tau_rise: f64,
        /// Decay time τd (s, > τr).
        tau_decay: f64,
    },
}

/// A stimulus current on some neurons: one shape at one or more onsets (summed). Onsets and
/// durations are converted to steps by [`steps_in`] (the original's `int(t/dt)` is one
/// step earlier wherever `t/dt` falls just below an integer in floating point).
#[derive(Debug, Clone, PartialEq)]
pub struct Stimulus {
    /// The shape.
    pub shape: Shape,
    /// Peak current (voltage per second).
    pub amplitude: f64,
    /// Onsets (s).
    pub onsets: Vec<f64>,
    /// Duration (s).
    pub duration: f64,
}

/// The peak normaliser `γ = 1/((τr/τd)^{τr/(τd−τr)} − (τr/τd)^{τd/(τd−τr)})` of a
/// difference of exponentials.
pub fn diff_exp_normaliser(tau_rise: f64, tau_decay: f64) -> f64 {
    let r = tau_rise / tau_decay;
    let d = tau_decay - tau_rise;
    1.0 / (r.powf(tau_rise / d) - r.powf(tau_decay / d))
}

impl Stimulus {
    /// Checks the stimulus against a run of `steps` steps of `dt` (the key is relative to
    /// `stimulus`).
    pub fn check(&self, dt: f64, steps: usize) -> Result<(), SpikingError> {
        let bad = |key: &str, value: f64, requirement: String| SpikingError::Invalid {
            key: format!("stimulus.{key}"),
            value,
            requirement,
        };
        let end = steps as f64 * dt;
        if !self.amplitude.is_finite() {
            return Err(bad("amplitude", self.amplitude, "a finite current".into()));
        }
        if !(self.duration.is_finite() && self.duration >= 0.0) {
            return Err(bad("duration", self.duration, "a duration ≥ 0 (s)".into()));
        }
        for (k, &t) in self.onsets.iter().enumerate() {
            if !(t.is_finite() && t >= 0.0) {
                return Err(bad(&format!("onsets[{k}]"), t, "an onset ≥ 0 (s)".into()));
            }
            if steps_in(t, dt) >= steps {
                return Err(bad(
                    if self.onsets.len() == 1 {
                        "onset"
                    } else {
                        "onsets"
                    },
                    t,
                    format!(
                        "the onset is past the end of the run ({end} s = simulation.duration_sec); \
                         use an earlier onset or a longer run"
                    ),
                ));
            }
        }
        if let Shape::DiffOfExp {
            tau_rise,
            tau_decay,
        } = self.shape
        {
            if !(tau_rise.is_finite() && tau_rise > 0.0) {
                return Err(bad("tau_rise", tau_rise, "a time > 0 (s)".into()));
            }
            if !(tau_decay.is_finite() && tau_decay > tau_rise) {
                return Err(bad(
                    "tau_decay",
                    tau_decay,
                    format!("a time longer than tau_rise = {tau_rise} s"),
                ));
            }
        }
        if matches!(self.shape, Shape::Box | Shape::Linear)
            && self.duration > 0.0
            && steps_in(self.duration, dt) == 0
        {
            return Err(bad(
                "duration",
                self.duration,
                format!("at least one step (dt = {dt} s)"),
            ));
        }
        Ok(())
    }

    /// The current at step `k` (0-based) of steps of `dt`.
    pub fn at(&self, k: usize, dt: f64) -> f64 {
        let mut total = 0.0;
        let dur = steps_in(self.duration, dt);
        for &t0 in &self.onsets {
            let on = steps_in(t0, dt);
            if k < on {
                continue;
            }
            total += match self.shape {
                Shape::Box => {
                    if k - on < dur {
                        self.amplitude
                    } else {
                        0.0
                    }
                }
                Shape::Linear => {
                    if k - on < dur {
                        self.amplitude / dur as f64 * (k - on) as f64
                    } else {
                        0.0
                    }
                }
                Shape::DiffOfExp {
                    tau_rise,
                    tau_decay,
                } => {
                    let s = (k - on) as f64 * dt;
                    self.amplitude
                        * diff_exp_normaliser(tau_rise, tau_decay)
                        * ((-s / tau_decay).exp() - (-s / tau_rise).exp())
                }
            };
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts have the Poisson mean and variance, and the probability of zero.
    #[test]
    fn poisson_counts_have_the_poisson_moments() {
        for mean in [0.3, 2.24, 40.0, 5000.0] {
            let p = Poisson::new(mean).unwrap();
            let mut s = Stream::new(5);
            let n = 200_000;
            let draws: Vec<f64> = (0..n).map(|_| p.draw(&mut s) as f64).collect();
            let m = draws.iter().sum::<f64>() / n as f64;
            let v = draws.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            let se = (mean / n as f64).sqrt();
            assert!((m - mean).abs() < 5.0 * se, "mean {m} vs {mean}");
            assert!(
                (v / mean - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt() + 0.01,
                "var {v}"
            );
            let zeros = draws.iter().filter(|&&x| x == 0.0).count() as f64 / n as f64;
            let p0 = (-mean).exp();
            assert!((zeros - p0).abs() < 5.0 * (p0 * (1.0 - p0) / n as f64).sqrt() + 1e-12);
        }
        assert_eq!(Poisson::new(0.0).unwrap().draw(&mut Stream::new(1)), 0);
        assert!(Poisson::new(-1.0).is_err());
    }

    /// `seed-numbers.md` §A4: γ = 9.481481481 for τr = 75 ms, τd = 100 ms, and the peak
    /// (1.0 at 86.3 ms after the onset).
    #[test]
    fn the_difference_of_exponentials_peaks_at_its_amplitude() {
        let g = diff_exp_normaliser(0.075, 0.1);
        assert!((g - 9.481481481).abs() < 1e-8, "{g}");
        let st = Stimulus {
            shape: Shape::DiffOfExp {
                tau_rise: 0.075,
                tau_decay: 0.1,
            },
            amplitude: 1.0,
            onsets: vec![1.0],
            duration: 10.0,
        };
        let dt = 1e-4;
        let (k, peak) = (0..40_000)
            .map(|k| (k, st.at(k, dt)))
            .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
        assert!((peak - 1.0).abs() < 1e-6, "{peak}");
        let t_peak = 0.075 * 0.1 / 0.025 * (0.1f64 / 0.075).ln();
        assert!(((k as f64 * dt - 1.0) - t_peak).abs() < 2e-4);
        assert_eq!(st.at(9_999, dt), 0.0);
    }

    #[test]
    fn box_and_ramp_follow_the_original_step_conversion() {
        let b = Stimulus {
            shape: Shape::Box,
            amplitude: 2.0,
            onsets: vec![0.005, 0.02],
            duration: 0.003,
        };
        let v: Vec<f64> = (0..25).map(|k| b.at(k, 1e-3)).collect();
        assert_eq!(&v[4..9], &[0.0, 2.0, 2.0, 2.0, 0.0]);
        assert_eq!(v[20], 2.0);
        let r = Stimulus {
            shape: Shape::Linear,
            ..b.clone()
        };
        assert!((r.at(6, 1e-3) - 2.0 / 3.0).abs() < 1e-15 && r.at(5, 1e-3) == 0.0);
        assert!(
            b.check(1e-3, 20).is_err(),
            "the second onset is at step 20 of 20"
        );
        assert!(b.check(1e-3, 21).is_ok());
    }
}
