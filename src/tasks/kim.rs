//! The three tasks of the Kim et al. (2019) rate RNN: go/no-go, XOR and context-dependent
//! integration ("Mante").
//!
//! Kim, Li & Sejnowski (2019), "Simple framework for constructing functional spiking
//! recurrent neural networks", PNAS 116(45):22811–22820. The tasks follow the authors'
//! original TensorFlow code (`rkim35/spikeRNN`, `rate/model.py` and `rate/main.py`).
//!
//! # Time convention
//!
//! The time unit is one step of the original (Δt = 1 step = 5 ms). A trial of `t_steps = T`
//! steps starts from the network state at `t = 0` and has one readout value at each of the
//! times `1, 2, …, T − 1`; these are the loss times, so `t_end = T − 1`. Output index `k` of
//! the original (0-based) is the readout at time `k + 1`, and target index `k` of the
//! original is the target for that same time. The original's input column `t` drives the
//! step from `t` to `t + 1`, so an input that the original sets on columns `[a, b)` is a
//! piecewise-constant signal equal to its value on `[a, b)` (jumps at `a` and `b`).
//!
//! Targets are traces with one value per loss time and every entry in the loss (the
//! original sums the error over all `T − 1` outputs, zeros included). The scoring rules are
//! the original's evaluation criteria, applied to the readout at the loss times.
//!
//! # Differences from the PyTorch port
//!
//! The PyTorch port of the code (`NuttidaLab/spikeRNN`) changes two tasks; we follow the
//! TensorFlow original in both:
//! - XOR: the port's first version puts the target on every output from index 200 to the
//!   end; the original puts it on `[170, 270)` and zero elsewhere.
//! - Mante: the port feeds a ±1 context cue on one channel and two constant uniform values
//!   during the stimulus; the original feeds two noisy sensory channels (white noise around
//!   ±0.5, fresh every step) and a one-hot context on two channels for the whole trial.

use neurode_solvers::{derive_seed, Normal};
use neurode_solvers::{PiecewiseConstant, Real};
use serde::{Deserialize, Serialize};

use super::{grid, Epoch, Target, Task, TaskSpec, Trial};
use crate::invalid::Invalid;

/// The reference string of the three tasks.
const REFERENCE: &str = "Kim, Li & Sejnowski (2019), PNAS 116(45):22811-22820; \
                         TensorFlow code rkim35/spikeRNN (rate/model.py, rate/main.py)";

/// Checks that a trial length fits: at least two steps (one output), at most
/// [`super::MAX_SAMPLES`].
fn check_t_steps(t_steps: usize) -> Result<(), Invalid> {
    if !(2..=super::MAX_SAMPLES).contains(&t_steps) {
        return Err(Invalid::new(
            "t_steps",
            format!(
                "t_steps = {t_steps}: a trial needs between 2 and {} steps",
                super::MAX_SAMPLES
            ),
        ));
    }
    Ok(())
}

/// Checks that a count of steps is positive.
fn check_positive_steps(key: &'static str, v: usize) -> Result<(), Invalid> {
    if v == 0 {
        return Err(Invalid::new(
            key,
            format!("{key} = 0: must be at least 1 step"),
        ));
    }
    Ok(())
}

/// Checks that a threshold is a positive finite number.
fn check_threshold(key: &'static str, v: f64) -> Result<(), Invalid> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Invalid::new(
            key,
            format!("{key} = {v}: must be a positive number"),
        ))
    }
}

/// Checks that a window whose end (exclusive) is the sum of `terms` (`(key, steps)`, from
/// the trial's start: `stim_on`, `stim_dur`, ...) ends by step `last`; the error names the
/// first key whose term carries the end past it.
fn check_ends_by(terms: &[(&'static str, usize)], last: usize, what: &str) -> Result<(), Invalid> {
    let mut end = 0usize;
    for &(key, v) in terms {
        end = end.saturating_add(v);
        if end > last {
            return Err(Invalid::new(
                key,
                format!(
                    "{key} = {v}: the window then ends at step {end}, after {what} (step \
                     {last}); lower {key} or lengthen t_steps"
                ),
            ));
        }
    }
    Ok(())
}

/// [`check_ends_by`] the trial's last time, `t_steps - 1`.
fn check_ends_in_trial(terms: &[(&'static str, usize)], t_steps: usize) -> Result<(), Invalid> {
    check_ends_by(terms, t_steps - 1, "the end of the trial (t_steps - 1)")
}

/// The loss times `1, 2, …, T − 1`.
fn loss_times(t_steps: usize) -> Vec<f64> {
    grid(1.0, 1, t_steps.saturating_sub(1) as u64)
}

/// The declaration of a Kim et al. task of `t_steps` steps: outputs at steps
/// `1..t_steps - 1`, the epochs `(name, start, end)` without the empty ones.
fn spec_of(
    name: &'static str,
    channels: Vec<&'static str>,
    conditions: Vec<&'static str>,
    list: &[(&'static str, usize, usize)],
    t_steps: usize,
) -> TaskSpec {
    TaskSpec {
        name,
        reference: REFERENCE,
        channels,
        conditions,
        epochs: epochs(list),
        t_end: t_steps.saturating_sub(1) as f64,
        loss_times: loss_times(t_steps),
        plot_dt: 1.0,
        time_unit: "steps of 5 ms",
    }
}

/// Epochs from `(name, start, end)` in steps, without the empty ones.
fn epochs(list: &[(&'static str, usize, usize)]) -> Vec<Epoch> {
    list.iter()
        .filter(|(_, a, b)| b > a)
        .map(|&(name, start, end)| Epoch {
            name,
            start: start as f64,
            end: end as f64,
        })
        .collect()
}

/// A piecewise-constant signal from one row of `n_channels` values per step
/// (`rows[t * n_channels..]` holds the values on `[t, t + 1)`; the last row also holds
/// after the trial). Jumps are placed only where the values change.
fn signal_from_steps<T: Real>(n_channels: usize, rows: &[f64]) -> PiecewiseConstant<T> {
    let f = T::from_f64;
    let mut times = Vec::new();
    let mut values: Vec<T> = Vec::new();
    let mut last: Option<&[f64]> = None;
    for (t, row) in rows.chunks_exact(n_channels).enumerate() {
        if last == Some(row) {
            continue;
        }
        if last.is_some() {
            times.push(f(t as f64));
        }
        values.extend(row.iter().map(|&v| f(v)));
        last = Some(row);
    }
    if values.is_empty() {
        values = vec![f(0.0); n_channels];
    }
    PiecewiseConstant::new(n_channels, times, values).expect("a valid signal by construction")
}

/// The largest of `f(v)` over a window: `NaN` if any is `NaN` (as NumPy's `max`), `None`
/// for an empty window.
fn window_max(o: &[f64], f: impl Fn(f64) -> f64) -> Option<f64> {
    if o.is_empty() {
        return None;
    }
    let mut m = f64::NEG_INFINITY;
    for &v in o {
        let v = f(v);
        if v.is_nan() {
            return Some(f64::NAN);
        }
        m = m.max(v);
    }
    Some(m)
}

/// Whether the window reaches above `threshold` (label `> 0`) or below `-threshold`
/// (label `< 0`).
fn reaches(o: &[f64], label: f64, threshold: f64) -> bool {
    if label > 0.0 {
        window_max(o, |v| v).is_some_and(|m| m > threshold)
    } else if label < 0.0 {
        window_max(o, |v| -v).is_some_and(|m| m > threshold)
    } else {
        false
    }
}

/// A fair coin as the original draws it: `uniform <= 0.5`.
fn coin(rng: &mut Normal) -> bool {
    rng.uniform() <= 0.5
}

// ---------------------------------------------------------------------------------------
// Go/no-go
// ---------------------------------------------------------------------------------------

/// Settings of the go/no-go task (defaults from the original code).
///
/// One input channel. In a Go trial (probability 0.5) the input is 1 during
/// `[stim_on, stim_on + stim_dur)` and the readout should go to 1 from output index
/// `response_from` on; in a NoGo trial the input stays 0 and the readout should stay at 0.
/// Scoring (the original's): a Go trial is correct when the readout exceeds `threshold`
/// somewhere from output index `response_from` on; a NoGo trial when `|readout|` stays below
/// `nogo_threshold` there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoNogo {
    /// Trial length `T` in steps (`T − 1` outputs).
    pub t_steps: usize,
    /// Stimulus onset (step).
    pub stim_on: usize,
    /// Stimulus duration (steps).
    pub stim_dur: usize,
    /// First output index (0-based, output `k` at time `k + 1`) of the Go response: the
    /// target is 1 from here on and the scoring window starts here.
    pub response_from: usize,
    /// A Go trial is correct when the readout exceeds this in the response window.
    pub threshold: f64,
    /// A NoGo trial is correct when `|readout|` stays below this in the response window.
    pub nogo_threshold: f64,
}

impl Default for GoNogo {
    fn default() -> Self {
        GoNogo {
            t_steps: 200,
            stim_on: 50,
            stim_dur: 25,
            response_from: 75,
            threshold: 0.7,
            nogo_threshold: 0.3,
        }
    }
}

impl GoNogo {
    /// Checks the settings; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_t_steps(self.t_steps)?;
        check_positive_steps("stim_dur", self.stim_dur)?;
        check_ends_in_trial(
            &[("stim_on", self.stim_on), ("stim_dur", self.stim_dur)],
            self.t_steps,
        )?;
        if self.response_from >= self.t_steps - 1 {
            return Err(Invalid::new(
                "response_from",
                format!(
                    "response_from = {}: the response window must hold at least one of the \
                     {} outputs (use at most {})",
                    self.response_from,
                    self.t_steps - 1,
                    self.t_steps - 2
                ),
            ));
        }
        if self.response_from < self.stim_on {
            return Err(Invalid::new(
                "response_from",
                format!(
                    "response_from = {} precedes the stimulus onset stim_on = {}",
                    self.response_from, self.stim_on
                ),
            ));
        }
        check_threshold("threshold", self.threshold)?;
        check_threshold("nogo_threshold", self.nogo_threshold)
    }
}

impl Task for GoNogo {
    fn spec(&self) -> TaskSpec {
        let t_end = self.t_steps.saturating_sub(1);
        let stim_end = self.stim_on.saturating_add(self.stim_dur);
        spec_of(
            "go_nogo",
            vec!["stimulus"],
            vec!["go", "nogo"],
            &[
                ("fixation", 0, self.stim_on),
                ("stimulus", self.stim_on, stim_end),
                ("response", stim_end, t_end),
            ],
            self.t_steps,
        )
    }

    fn trial<T: Real>(&self, seed: u64, index: u64) -> Trial<T> {
        let mut rng = Normal::new(derive_seed(seed, &[index]));
        let go = coin(&mut rng);
        let t = self.t_steps;
        let mut u = vec![0.0; t];
        let n_out = t.saturating_sub(1);
        let mut z = vec![0.0; n_out];
        if go {
            let end = self.stim_on.saturating_add(self.stim_dur).min(t);
            u[self.stim_on.min(t)..end].fill(1.0);
            z[self.response_from.min(n_out)..].fill(1.0);
        }
        Trial {
            input: signal_from_steps(1, &u),
            target: Target::Trace {
                mask: vec![true; z.len()],
                values: z,
            },
            condition: usize::from(!go),
            label: if go { 1.0 } else { 0.0 },
        }
    }

    fn correct(&self, outputs: &[f64], _target: &Target, condition: usize) -> bool {
        let Some(o) = outputs.get(self.response_from..) else {
            return false;
        };
        if condition == 0 {
            reaches(o, 1.0, self.threshold)
        } else {
            window_max(o, f64::abs).is_some_and(|m| m < self.nogo_threshold)
        }
    }
}

// ---------------------------------------------------------------------------------------
// XOR
// ---------------------------------------------------------------------------------------

/// Settings of the XOR task (defaults from the original code).
///
/// Two input channels: `first` is ±1 during `[stim_on, stim_on + stim_dur)`, `second` is ±1
/// during `[stim_on + stim_dur + delay, stim_on + 2 stim_dur + delay)`, with independent
/// signs. The label is +1 when the signs agree ("same") and −1 otherwise ("diff"); the
/// target is the label on output indices `[target_on, target_off)` and 0 elsewhere. Scoring
/// (the original's): from output index `eval_from` on, a "same" trial is correct when the
/// readout exceeds `threshold`, a "diff" trial when it falls below `-threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Xor {
    /// Trial length `T` in steps (`T − 1` outputs).
    pub t_steps: usize,
    /// Onset of the first stimulus (step).
    pub stim_on: usize,
    /// Duration of each stimulus (steps).
    pub stim_dur: usize,
    /// Gap between the two stimuli (steps).
    pub delay: usize,
    /// First output index of the target window.
    pub target_on: usize,
    /// End (exclusive) of the target window, as an output index.
    pub target_off: usize,
    /// First output index of the scoring window (which runs to the end of the trial).
    pub eval_from: usize,
    /// The readout must pass ±`threshold` in the scoring window.
    pub threshold: f64,
}

impl Default for Xor {
    fn default() -> Self {
        Xor {
            t_steps: 300,
            stim_on: 50,
            stim_dur: 50,
            delay: 10,
            target_on: 170,
            target_off: 270,
            eval_from: 200,
            threshold: 0.7,
        }
    }
}

impl Xor {
    /// Onset of the second stimulus (step).
    fn second_on(&self) -> usize {
        self.stim_on
            .saturating_add(self.stim_dur)
            .saturating_add(self.delay)
    }

    /// Checks the settings; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_t_steps(self.t_steps)?;
        check_positive_steps("stim_dur", self.stim_dur)?;
        check_ends_in_trial(
            &[
                ("stim_on", self.stim_on),
                ("stim_dur", self.stim_dur),
                ("delay", self.delay),
                ("stim_dur", self.stim_dur),
            ],
            self.t_steps,
        )?;
        if self.target_off <= self.target_on {
            return Err(Invalid::new(
                "target_off",
                format!(
                    "target_off = {} must come after target_on = {}",
                    self.target_off, self.target_on
                ),
            ));
        }
        if self.target_off > self.t_steps - 1 {
            return Err(Invalid::new(
                "target_off",
                format!(
                    "target_off = {}: the target window must end within the {} outputs",
                    self.target_off,
                    self.t_steps - 1
                ),
            ));
        }
        if self.target_on < self.second_on() {
            return Err(Invalid::new(
                "target_on",
                format!(
                    "target_on = {} precedes the onset of the second stimulus ({})",
                    self.target_on,
                    self.second_on()
                ),
            ));
        }
        if self.eval_from >= self.target_off {
            return Err(Invalid::new(
                "eval_from",
                format!(
                    "eval_from = {}: the scoring window must overlap the target window \
                     (use eval_from < target_off = {})",
                    self.eval_from, self.target_off
                ),
            ));
        }
        check_threshold("threshold", self.threshold)
    }
}

impl Task for Xor {
    fn spec(&self) -> TaskSpec {
        let t_end = self.t_steps.saturating_sub(1);
        let first_end = self.stim_on.saturating_add(self.stim_dur);
        let second_on = self.second_on();
        let second_end = second_on.saturating_add(self.stim_dur);
        spec_of(
            "xor",
            vec!["first", "second"],
            vec!["same", "diff"],
            &[
                ("fixation", 0, self.stim_on),
                ("first", self.stim_on, first_end),
                ("delay", first_end, second_on),
                ("second", second_on, second_end),
                ("response", second_end, t_end),
            ],
            self.t_steps,
        )
    }

    fn trial<T: Real>(&self, seed: u64, index: u64) -> Trial<T> {
        let mut rng = Normal::new(derive_seed(seed, &[index]));
        // The original draws `rand < 0.5` for a positive sign.
        let s1 = if rng.uniform() < 0.5 { 1.0 } else { -1.0 };
        let s2 = if rng.uniform() < 0.5 { 1.0 } else { -1.0 };
        let label = s1 * s2;
        let t = self.t_steps;
        let mut u = vec![0.0; 2 * t];
        let second_on = self.second_on();
        for step in self.stim_on.min(t)..self.stim_on.saturating_add(self.stim_dur).min(t) {
            u[2 * step] = s1;
        }
        for step in second_on.min(t)..second_on.saturating_add(self.stim_dur).min(t) {
            u[2 * step + 1] = s2;
        }
        let n_out = t.saturating_sub(1);
        let mut z = vec![0.0; n_out];
        let on = self.target_on.min(n_out);
        z[on..self.target_off.clamp(on, n_out)].fill(label);
        Trial {
            input: signal_from_steps(2, &u),
            target: Target::Trace {
                mask: vec![true; z.len()],
                values: z,
            },
            condition: usize::from(label < 0.0),
            label,
        }
    }

    fn correct(&self, outputs: &[f64], _target: &Target, condition: usize) -> bool {
        let Some(o) = outputs.get(self.eval_from..) else {
            return false;
        };
        let label = if condition == 0 { 1.0 } else { -1.0 };
        reaches(o, label, self.threshold)
    }
}

// ---------------------------------------------------------------------------------------
// Context-dependent integration (Mante)
// ---------------------------------------------------------------------------------------

/// Settings of the context-dependent integration task (after Mante et al. 2013; defaults
/// from the original code).
///
/// Four input channels. `motion` and `color` carry white noise `N(±offset, noise_sd²)`,
/// drawn fresh every step during `[stim_on, stim_on + stim_dur)` (0 outside), each with its
/// own random sign. The context (probability 0.5 each) is one-hot on `ctx_motion` /
/// `ctx_color` for the whole trial and says which channel to report. The label is the sign
/// of the cued channel's offset; the target is the label from output index
/// `stim_on + stim_dur` to the end and 0 before. Scoring (the original's): over the last
/// `eval_last` outputs, a +1 trial is correct when the readout exceeds `threshold`, a −1
/// trial when it falls below `-threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mante {
    /// Trial length `T` in steps (`T − 1` outputs).
    pub t_steps: usize,
    /// Stimulus onset (step).
    pub stim_on: usize,
    /// Stimulus duration (steps).
    pub stim_dur: usize,
    /// Magnitude of the mean of each sensory channel (its sign is drawn per trial).
    pub offset: f64,
    /// Standard deviation of the per-step sensory noise (0: noise-free).
    pub noise_sd: f64,
    /// Number of outputs at the end of the trial that the scoring looks at.
    pub eval_last: usize,
    /// The readout must pass ±`threshold` in the scoring window.
    pub threshold: f64,
}

impl Default for Mante {
    fn default() -> Self {
        Mante {
            t_steps: 500,
            stim_on: 50,
            stim_dur: 200,
            offset: 0.5,
            noise_sd: 1.0,
            eval_last: 200,
            threshold: 0.7,
        }
    }
}

impl Mante {
    /// Checks the settings; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_t_steps(self.t_steps)?;
        check_positive_steps("stim_dur", self.stim_dur)?;
        // The response needs at least one output after the stimulus.
        check_ends_by(
            &[("stim_on", self.stim_on), ("stim_dur", self.stim_dur)],
            self.t_steps - 2,
            "the last step that leaves an output for the response (t_steps - 2)",
        )?;
        if !(self.offset.is_finite() && self.offset > 0.0) {
            return Err(Invalid::new(
                "offset",
                format!("offset = {}: must be a positive number", self.offset),
            ));
        }
        if !(self.noise_sd.is_finite() && self.noise_sd >= 0.0) {
            return Err(Invalid::new(
                "noise_sd",
                format!("noise_sd = {}: must be >= 0", self.noise_sd),
            ));
        }
        if self.eval_last == 0 || self.eval_last > self.t_steps - 1 {
            return Err(Invalid::new(
                "eval_last",
                format!(
                    "eval_last = {}: must be between 1 and the number of outputs ({})",
                    self.eval_last,
                    self.t_steps - 1
                ),
            ));
        }
        check_threshold("threshold", self.threshold)
    }
}

impl Task for Mante {
    fn spec(&self) -> TaskSpec {
        let t_end = self.t_steps.saturating_sub(1);
        let stim_end = self.stim_on.saturating_add(self.stim_dur);
        spec_of(
            "mante",
            vec!["motion", "color", "ctx_motion", "ctx_color"],
            vec!["ctx_motion", "ctx_color"],
            &[
                ("fixation", 0, self.stim_on),
                ("stimulus", self.stim_on, stim_end),
                ("response", stim_end, t_end),
            ],
            self.t_steps,
        )
    }

    fn trial<T: Real>(&self, seed: u64, index: u64) -> Trial<T> {
        let mut rng = Normal::new(derive_seed(seed, &[index]));
        // The choices first (sign of each channel, then the context, as the original),
        // then the noise of the first channel, then of the second.
        let s = [
            if coin(&mut rng) { 1.0 } else { -1.0 },
            if coin(&mut rng) { 1.0 } else { -1.0 },
        ];
        let ctx = usize::from(!coin(&mut rng));
        let label = s[ctx];
        let t = self.t_steps;
        let mut u = vec![0.0; 4 * t];
        for row in u.chunks_exact_mut(4) {
            row[2 + ctx] = 1.0;
        }
        let stim_end = self.stim_on.saturating_add(self.stim_dur).min(t);
        for (ch, &sign) in s.iter().enumerate() {
            for step in self.stim_on.min(t)..stim_end {
                u[4 * step + ch] = sign * self.offset + self.noise_sd * rng.sample();
            }
        }
        let n_out = t.saturating_sub(1);
        let mut z = vec![0.0; n_out];
        z[stim_end.min(n_out)..].fill(label);
        Trial {
            input: signal_from_steps(4, &u),
            target: Target::Trace {
                mask: vec![true; z.len()],
                values: z,
            },
            condition: ctx,
            label,
        }
    }

    fn correct(&self, outputs: &[f64], target: &Target, _condition: usize) -> bool {
        let label = match target {
            Target::Trace { values, .. } => values.last().copied().unwrap_or(0.0),
            Target::Mean(y) => *y,
        };
        let from = self
            .t_steps
            .saturating_sub(1)
            .saturating_sub(self.eval_last);
        let Some(o) = outputs.get(from..) else {
            return false;
        };
        reaches(o, label, self.threshold)
    }
}
