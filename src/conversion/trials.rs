//! The trials of a conversion: the rate task's inputs as the columns the LIF network holds,
//! the draws of each trial, and the original's success criteria for the spiking output.

use neurode_models::spiking::converted::{ConvertedNetwork, Record, Workspace};
use neurode_models::spiking::SpikingError;
use neurode_solvers::{derive_seed, Normal, Real};

use crate::tasks::{Task, TaskConfig};

/// Threshold of a correct response of the spiking output (the original's `0.7`); a NoGo
/// trial is correct below [`NOGO_BELOW`].
pub const THRESHOLD: f64 = 0.7;
/// A NoGo trial is correct when the output stays below this (the original's `0.3`).
pub const NOGO_BELOW: f64 = 0.3;

/// One trial: its input columns and what decides success.
#[derive(Debug, Clone)]
pub struct SpikingTrial {
    /// `n_in x columns`, column-major: `T + 1` columns for a task of `T` steps (the last
    /// one held, as the original's grid search passes `T + 1` columns).
    pub input: Vec<f64>,
    /// Columns.
    pub columns: usize,
    /// The condition (index into the task's conditions).
    pub condition: usize,
    /// The label: 1 (Go) or 0 (NoGo); ±1 for XOR and Mante.
    pub label: f64,
    /// Seed of the trial's initial voltages and noise.
    pub seed: u64,
}

/// Path of the conversion's draws under the run seed (apart from the task's own).
const DRAWS: u64 = 0x5350_494b; // "SPIK"

impl SpikingTrial {
    /// The `n` uniforms of the initial voltages.
    pub fn uniforms(&self, n: usize) -> Vec<f64> {
        let mut r = Normal::new(derive_seed(self.seed, &[0]));
        (0..n).map(|_| r.uniform()).collect()
    }
    /// The stream of the voltage noise.
    fn noise(&self) -> Normal {
        Normal::new(derive_seed(self.seed, &[1]))
    }
    /// Runs the trial on `net` (with its initial voltages and noise) into `rec`, with
    /// scratch `ws`.
    pub fn run_on<T: Real>(
        &self,
        net: &ConvertedNetwork<T>,
        ws: &mut Workspace<T>,
        rec: &mut Record<T>,
    ) -> Result<(), SpikingError> {
        let mut noise = self.noise();
        let uniforms = self.uniforms(net.neurons());
        net.run(
            &self.input,
            self.columns,
            &uniforms,
            Some(&mut noise),
            ws,
            rec,
        )
    }
}

/// Trial `index` of `task` under `seed`: the task's own trial (its input and condition, as
/// the rate network is trained on), with the conversion's draws derived from the same
/// seed and index. Every λ of a grid runs the same trials.
pub fn trial(task: &TaskConfig, seed: u64, index: u64) -> SpikingTrial {
    let t = task.trial::<f64>(seed, index);
    let steps = t_steps(task);
    let n_in = t.input.n_channels();
    let mut input = Vec::with_capacity(n_in * (steps + 1));
    for c in 0..steps {
        input.extend_from_slice(t.input.at(c as f64 + 0.5));
    }
    input.extend_from_slice(t.input.at(steps as f64 - 0.5));
    SpikingTrial {
        input,
        columns: steps + 1,
        condition: t.condition,
        label: t.label,
        seed: derive_seed(seed, &[DRAWS, index]),
    }
}

/// The trial's length in rate steps.
pub fn t_steps(task: &TaskConfig) -> usize {
    match task {
        TaskConfig::GoNogo(t) => t.t_steps,
        TaskConfig::Xor(t) => t.t_steps,
        TaskConfig::Mante(t) => t.t_steps,
        TaskConfig::ContextualSwitch(_) => 0,
    }
}

/// The first LIF step of the scoring window: the original's `out[10000:]` (go/no-go),
/// `out[20000:]` (XOR) and `out[26000:]` (Mante) at 100 steps per rate step, i.e. from rate
/// step 100, 200 and 260.
pub fn window_start(task: &TaskConfig, hold: usize) -> usize {
    hold * match task {
        TaskConfig::GoNogo(_) => 100,
        TaskConfig::Xor(_) => 200,
        _ => 260,
    }
}

/// Whether the spiking output `out` performs the trial, by the original's criteria: Go when
/// `max(out[w:]) > 0.7`, NoGo when `max(out[w:]) < 0.3`; XOR and Mante when
/// `max(out[w:]) > 0.7` for label +1 and `min(out[w:]) < −0.7` for −1. A NaN fails.
///
/// XOR is scored as the original means to: its `lambda_grid_search.py` indexes the
/// flattened output as `out[0, 20000:]`, which raises, and its bare `except` counts every
/// XOR trial as failed (so its best λ is always the first).
pub fn correct(task: &TaskConfig, label: f64, out: &[f64], from: usize) -> bool {
    let w = out.get(from..).unwrap_or(&[]);
    if w.is_empty() || w.iter().any(|x| x.is_nan()) {
        return false;
    }
    let max = w.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let min = w.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    match task {
        TaskConfig::GoNogo(_) if label > 0.5 => max > THRESHOLD,
        TaskConfig::GoNogo(_) => max < NOGO_BELOW,
        _ if label > 0.0 => max > THRESHOLD,
        _ => min < -THRESHOLD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{GoNogo, Mante, Xor};

    /// The inputs are the rate task's columns plus the last one held: a Go trial's pulse
    /// on columns 50..75 of 201, as the original's grid search builds it.
    #[test]
    fn go_trials_have_the_originals_columns() {
        let task = TaskConfig::GoNogo(GoNogo::default());
        let mut seen = [false; 2];
        for k in 0..20 {
            let t = trial(&task, 3, k);
            assert_eq!(t.columns, 201);
            let want: Vec<f64> = (0..201)
                .map(|c| f64::from(t.condition == 0 && (50..75).contains(&c)))
                .collect();
            assert_eq!(t.input, want);
            seen[t.condition] = true;
        }
        assert_eq!(seen, [true, true]);
        // XOR: two channels; Mante: four, the context held to the last column.
        let x = trial(&TaskConfig::Xor(Xor::default()), 1, 0);
        assert_eq!((x.columns, x.input.len()), (301, 602));
        let m = trial(&TaskConfig::Mante(Mante::default()), 1, 0);
        assert_eq!((m.columns, m.input.len()), (501, 2004));
        let last = &m.input[4 * 500..];
        assert_eq!(last[0], 0.0);
        assert_eq!(last[2] + last[3], 1.0);
    }

    #[test]
    fn the_criteria_are_the_originals() {
        let go = TaskConfig::GoNogo(GoNogo::default());
        let out = |x: f64| {
            let mut o = vec![0.0; 20000];
            o[15000] = x;
            o
        };
        assert!(correct(&go, 1.0, &out(0.71), 10000));
        assert!(!correct(&go, 1.0, &out(0.69), 10000));
        assert!(correct(&go, 0.0, &out(0.29), 10000));
        assert!(!correct(&go, 0.0, &out(0.31), 10000));
        // Before the window does not count.
        let mut early = vec![0.0; 20000];
        early[9999] = 5.0;
        assert!(correct(&go, 0.0, &early, 10000));
        let xor = TaskConfig::Xor(Xor::default());
        assert!(correct(&xor, -1.0, &out(-0.8), 10000));
        assert!(!correct(&xor, -1.0, &out(0.8), 10000));
        assert!(!correct(&xor, 1.0, &out(f64::NAN), 10000));
        assert_eq!(window_start(&xor, 100), 20000);
        assert_eq!(
            window_start(&TaskConfig::Mante(Mante::default()), 100),
            26000
        );
    }
}
