//! The contextual switch task: report the sign of the stimulus the context cue points to.
//!
//! After Mastrogiuseppe & Ostojic (2018), Neuron 99(3):609–623, Fig. 5 (context-dependent
//! discrimination), in the trainable form used with the low-rank RNN: four channels
//! `s1, s2, ctx1, ctx2`. The context cues are on for the whole trial (`ctx1 = γ_on`,
//! `ctx2 = γ_off` in context 1, swapped in context 2); from `t_burn` the two stimuli
//! `s_i = ±stim_mean_abs` (independent random signs, optional noise) switch on and stay on
//! until `t_burn + t_stim`. The target is the sign of the cued stimulus (±1); the loss takes
//! the readout averaged over the last `t_avg` ms, sampled every `sample_dt`.

use neurode_solvers::{derive_seed, Normal};
use neurode_solvers::{PiecewiseConstant, Real};
use serde::{Deserialize, Serialize};

use super::{grid, mean_has_sign, Epoch, Target, Task, TaskSpec, Trial};
use crate::invalid::Invalid;

/// Settings of the contextual switch task (the reference defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextualSwitch {
    /// Context cue of the cued channel.
    pub gamma_on: f64,
    /// Context cue of the other channel.
    pub gamma_off: f64,
    /// Stimulus magnitude `|s|`.
    pub stim_mean_abs: f64,
    /// Standard deviation of stimulus noise per `sample_dt` bin (0: noise-free). Each bin
    /// holds `s + stim_std · ξ`, `ξ ~ N(0, 1)` fresh per bin, so adaptive steppers see every
    /// bin edge as a breakpoint.
    pub stim_std: f64,
    /// Context-only period before the stimulus (ms).
    pub t_burn: f64,
    /// Stimulus period (ms).
    pub t_stim: f64,
    /// Averaging window at the end of the trial (ms).
    pub t_avg: f64,
    /// Sampling interval of the averaging window and of the noise bins (ms).
    pub sample_dt: f64,
}

impl Default for ContextualSwitch {
    fn default() -> Self {
        ContextualSwitch {
            gamma_on: 0.08,
            gamma_off: -0.14,
            stim_mean_abs: 1.2,
            stim_std: 0.0,
            t_burn: 15.0,
            t_stim: 85.0,
            t_avg: 10.0,
            sample_dt: 0.1,
        }
    }
}

impl ContextualSwitch {
    /// Checks the settings; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), Invalid> {
        let pos = |k: &'static str, v: f64| -> Result<(), Invalid> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Invalid::new(
                    k,
                    format!("{k} = {v}: must be a positive number of ms"),
                ))
            }
        };
        pos("t_stim", self.t_stim)?;
        pos("t_avg", self.t_avg)?;
        pos("sample_dt", self.sample_dt)?;
        if !(self.t_burn.is_finite() && self.t_burn >= 0.0) {
            return Err(Invalid::new(
                "t_burn",
                format!("t_burn = {}: must be >= 0 ms", self.t_burn),
            ));
        }
        // The loss window and the noise bins are sampled every `sample_dt`.
        let samples = self.t_stim.max(self.t_avg) / self.sample_dt;
        if samples > super::MAX_SAMPLES as f64 {
            return Err(Invalid::new(
                "sample_dt",
                format!(
                    "sample_dt = {} is too fine for a {} ms stimulus: {samples:.3e} samples \
                     (at most {}); use a sampling interval of at least {} ms",
                    self.sample_dt,
                    self.t_stim,
                    super::MAX_SAMPLES,
                    self.t_stim.max(self.t_avg) / super::MAX_SAMPLES as f64
                ),
            ));
        }
        if self.sample_dt > self.t_avg {
            return Err(Invalid::new(
                "sample_dt",
                format!(
                    "sample_dt = {} is longer than the averaging window t_avg = {}: no sample \
                     would fall in it; use sample_dt <= t_avg",
                    self.sample_dt, self.t_avg
                ),
            ));
        }
        if self.t_avg > self.t_stim {
            return Err(Invalid::new(
                "t_avg",
                format!(
                    "t_avg = {} exceeds t_stim = {}: average within the stimulus period",
                    self.t_avg, self.t_stim
                ),
            ));
        }
        if !(self.stim_std.is_finite() && self.stim_std >= 0.0) {
            return Err(Invalid::new(
                "stim_std",
                format!("stim_std = {}: must be >= 0", self.stim_std),
            ));
        }
        for (k, v) in [
            ("gamma_on", self.gamma_on),
            ("gamma_off", self.gamma_off),
            ("stim_mean_abs", self.stim_mean_abs),
        ] {
            if !v.is_finite() {
                return Err(Invalid::new(k, format!("{k} = {v}: must be finite")));
            }
        }
        Ok(())
    }

    fn t_end(&self) -> f64 {
        self.t_burn + self.t_stim
    }
}

impl Task for ContextualSwitch {
    fn spec(&self) -> TaskSpec {
        let t_end = self.t_end();
        let last = (t_end / self.sample_dt + 1e-9).floor() as u64;
        let first = ((t_end - self.t_avg) / self.sample_dt - 1e-9).ceil() as u64;
        TaskSpec {
            name: "contextual_switch",
            reference: "Mastrogiuseppe & Ostojic (2018), Neuron 99(3):609-623, Fig. 5",
            channels: vec!["s1", "s2", "ctx1", "ctx2"],
            conditions: vec!["ctx1", "ctx2"],
            epochs: vec![
                Epoch {
                    name: "burn",
                    start: 0.0,
                    end: self.t_burn,
                },
                Epoch {
                    name: "stimulus",
                    start: self.t_burn,
                    end: t_end,
                },
            ],
            t_end,
            loss_times: grid(self.sample_dt, first, last),
            plot_dt: 0.5,
            time_unit: "ms",
        }
    }

    fn correct(&self, outputs: &[f64], target: &Target, _condition: usize) -> bool {
        match target {
            Target::Mean(y) => mean_has_sign(outputs, *y),
            Target::Trace { .. } => false,
        }
    }

    fn trial<T: Real>(&self, seed: u64, index: u64) -> Trial<T> {
        let mut rng = Normal::new(derive_seed(seed, &[index]));
        let ctx = usize::from(rng.uniform() >= 0.5);
        let s1 = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        let s2 = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        let (c1, c2) = if ctx == 0 {
            (self.gamma_on, self.gamma_off)
        } else {
            (self.gamma_off, self.gamma_on)
        };
        let label = if ctx == 0 { s1 } else { s2 };
        let a = self.stim_mean_abs;
        let f = T::from_f64;
        let mut times = Vec::new();
        let mut values = vec![f(0.0), f(0.0), f(c1), f(c2)];
        if self.t_burn > 0.0 {
            times.push(f(self.t_burn));
        } else {
            values.clear();
        }
        if self.stim_std > 0.0 {
            let bins = (self.t_stim / self.sample_dt).ceil() as u64;
            let edges = grid(self.sample_dt, 1, bins.saturating_sub(1));
            for k in 0..bins {
                let n1 = self.stim_std * rng.sample();
                let n2 = self.stim_std * rng.sample();
                values.extend([f(s1 * a + n1), f(s2 * a + n2), f(c1), f(c2)]);
                if let Some(&e) = edges.get(k as usize) {
                    times.push(f(self.t_burn + e));
                }
            }
        } else {
            values.extend([f(s1 * a), f(s2 * a), f(c1), f(c2)]);
        }
        let input =
            PiecewiseConstant::new(4, times, values).expect("a valid signal by construction");
        Trial {
            input,
            target: Target::Mean(label),
            condition: ctx,
            label,
        }
    }
}
