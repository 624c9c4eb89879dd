//! A setting out of range, as every config check reports it: the key and what is wrong
//! and what to do. The config adds the file, the table and the line.

/// A setting out of range: the key (relative to its table until the config prefixes it)
/// and what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct Invalid {
    /// The key (`n`, or dotted: `model.n`).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Invalid {
    /// The error of `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
    /// The same error with its key under the table `prefix` (`n` -> `model.n`).
    pub fn under(self, prefix: &str) -> Self {
        Invalid {
            key: format!("{prefix}.{}", self.key),
            ..self
        }
    }
}

/// Checks that every `(key, value)` is finite and `>= 0`; the error names the key.
pub fn check_non_negative(values: &[(&str, f64)]) -> Result<(), Invalid> {
    match values.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        Some((k, v)) => Err(Invalid::new(*k, format!("{k} = {v}: must be >= 0"))),
        None => Ok(()),
    }
}

/// Largest noise level (standard deviation, in the state's units) a config may set: the
/// models' states are of order 1, and beyond this the per-step noise (the level over the
/// noise step) no longer fits `f32` and drowns every trajectory.
pub const MAX_NOISE: f64 = 1e6;

/// Checks noise levels: each a number in `[0, MAX_NOISE]`.
pub fn check_noise(values: &[(&str, f64)]) -> Result<(), Invalid> {
    check_non_negative(values)?;
    match values.iter().find(|(_, v)| *v > MAX_NOISE) {
        Some((k, v)) => Err(Invalid::new(
            *k,
            format!(
                "{k} = {v}: a noise level is at most {MAX_NOISE:e} (the states are of order \
                 1; a larger noise overflows the per-step noise and drowns the dynamics)"
            ),
        )),
        None => Ok(()),
    }
}

/// Checks that a fixed Euler step `euler_dt` is no longer than the time constant `tau` of
/// key `key` (`None`: an adaptive solver, nothing to check). Beyond `tau` each step overshoots
/// the leak's decay (`x ← x (1 − dt/τ)` changes sign, and grows once `dt > 2τ`): the run
/// diverges or trains on numerical noise.
pub fn check_step_within_tau(key: &str, tau: f64, euler_dt: Option<f64>) -> Result<(), Invalid> {
    match euler_dt {
        Some(dt) if dt > tau => Err(Invalid::new(
            key,
            format!(
                "{key} = {tau} is shorter than the Euler step dt = {dt}: each step would \
                 overshoot the decay (and grow without bound once dt > 2 {key}); use a time \
                 constant of at least the step, a smaller [solver] dt (e.g. {}), or \
                 stepper = \"tsit5\"",
                tau / 10.0
            ),
        )),
        _ => Ok(()),
    }
}
