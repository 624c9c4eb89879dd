//! The problem both benches measure: a leaky tanh RNN, N = 500, batch 32, t in [0, 100],
//! a random step stimulus from t = 15, and a fixed non-zero initial state.

use neurode_solvers::testing::LeakyTanhRnn;
use neurode_solvers::Real;

/// Units.
pub const N: usize = 500;
/// Trials per batch.
pub const BATCH: usize = 32;
/// End of the time span.
pub const T1: f64 = 100.0;
/// Stimulus onset (a breakpoint).
pub const T_ON: f64 = 15.0;

/// The seeded network with its inputs.
pub fn model<T: Real>() -> LeakyTanhRnn<T> {
    LeakyTanhRnn::<T>::random(N, 4, 1.5, 1.0, 42).with_step_inputs(BATCH, T_ON, 1.0, 43)
}

/// The initial state of every trial.
pub fn x0<T: Real>() -> Vec<T> {
    (0..N * BATCH)
        .map(|i| T::from_f64(0.1 * ((i as f64) * 0.37).sin()))
        .collect()
}
