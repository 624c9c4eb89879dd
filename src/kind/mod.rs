//! What a model kind is to the app: [`ModelKind`] (every kind: its `[model]` table's
//! checks, size, memory, per-trial draws, `--set` overrides) and the capability
//! [`TaskModel`] (a network with a readout run on a task's trials: what `train`, `eval`,
//! `simulate` and `analyze` need), with what they use: the network object [`Net`]
//! ([`Field`]) and the per-trial draws. A kind implements the capabilities it has and
//! answers the others' getters with `None`; the commands then refuse it with
//! [`KindError::Unsupported`].
//!
//! These traits sit below the kinds and their registry ([`crate::network`]), so a kind's
//! module anywhere in the crate uses them (`use crate::kind::...`) without an import
//! circle. See [`crate::network`] for how to add a kind.

mod draws;
mod field;

pub use draws::{initial_states, noise_signals, TrialDraws};
pub use field::{Field, Net, SolveSpec, Stepping};

use std::path::{Path, PathBuf};

use neurode_models::{ModelError, Readout};
use neurode_solvers::Real;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::invalid::{check_noise, check_non_negative, check_step_within_tau, Invalid};
use crate::io::NamedArray;
use crate::mat::MatError;
use crate::metrics::Metrics;
use crate::tasks::TaskConfig;

/// Bytes a run of a dense `n x n` connectivity needs at least with `workers` workers: `W`,
/// `W_eff`, both packed panels, the VJP scratch per worker, Adam's two moments and the best
/// copy, in `f64`. Shared by the kinds whose weights are a dense masked matrix.
pub fn dense_memory_estimate(n: usize, workers: usize) -> f64 {
    let n = n as f64;
    8.0 * n * n * (8.0 + 2.0 * workers as f64)
}

/// Errors of a `--set key=value` override of a kind's setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetError {
    /// The kind has no such setting.
    #[error("`{key}` is not a setting of this model kind")]
    Unknown {
        /// The key.
        key: String,
    },
    /// The value does not fit the setting.
    #[error("`{key}`: {message}")]
    Value {
        /// The key.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Sets `key` of a serde table `config` to `value` by a round trip through TOML, so that
/// every key of the `[model]` table can be set and the value is checked as the config
/// file's would be.
pub fn set_by_key<C: Serialize + DeserializeOwned>(
    config: &mut C,
    key: &str,
    value: toml::Value,
) -> Result<(), SetError> {
    let value_err = |message: String| SetError::Value {
        key: key.to_string(),
        message,
    };
    let mut table = toml::Table::try_from(&*config).map_err(|e| value_err(e.to_string()))?;
    table.insert(key.to_string(), value);
    match table.try_into::<C>() {
        Ok(c) => {
            *config = c;
            Ok(())
        }
        Err(e) if e.to_string().contains("unknown field") => Err(SetError::Unknown {
            key: key.to_string(),
        }),
        Err(e) => Err(value_err(
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )),
    }
}

/// What a command needs of a kind that the kind may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// `neurode train` and `sweep`.
    Train,
    /// `neurode eval`.
    Evaluate,
    /// `neurode simulate`.
    Simulate,
    /// `neurode analyze`.
    Analyze,
}

impl Capability {
    fn verb(self) -> &'static str {
        match self {
            Capability::Train => "be trained",
            Capability::Evaluate => "be evaluated",
            Capability::Simulate => "be simulated on a task",
            Capability::Analyze => "be analysed by `neurode analyze`",
        }
    }
}

/// Errors of a kind asked for what it cannot do.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// The kind lacks the capability.
    #[error("model kind `{kind}` cannot {}; {}", .capability.verb(), .instead.map_or_else(|| "pick a model kind that can".to_string(), |c| format!("use `{c}`")))]
    Unsupported {
        /// The kind.
        kind: &'static str,
        /// What was asked.
        capability: Capability,
        /// The command that serves this kind instead, if any.
        instead: Option<&'static str>,
    },
    /// `--regions` on a kind without regions.
    #[error("--regions needs a multi-region network; this run's model is `{kind}`")]
    NoRegions {
        /// The kind.
        kind: &'static str,
    },
    /// `--regions` names that do not fit the run's regions.
    #[error("--regions: {0}")]
    Regions(String),
    /// A kind's own export (the Kim network's MATLAB file) failed.
    #[error("MATLAB export: {0}")]
    Export(#[from] MatError),
}

/// What an exported array is to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Part of `θ` (loaded back in `θ`'s order).
    Theta,
    /// Fixed by the config's seed: a file must carry the same values.
    Fixed,
    /// Computed from the others (written for readers, ignored when loading).
    Derived,
}

/// A finished training run, as a kind's own exports see it.
#[derive(Debug, Clone, Copy)]
pub struct TrainedRun<'a, T: Real> {
    /// The network (its parameters current).
    pub net: &'a Net<T>,
    /// The task.
    pub task: &'a TaskConfig,
    /// The trained parameters (`θ`).
    pub theta: &'a [T],
    /// The parameters at initialisation.
    pub theta0: &'a [T],
    /// The training loss of every iteration.
    pub losses: &'a [f64],
    /// The metrics rows.
    pub metrics: &'a [Metrics],
    /// Training trials done.
    pub trials: usize,
}

/// The plane of a kind's flow field: `x = c + a₁ e₁ + a₂ e₂` with `c` the input's direct
/// drive `B u` (the low-rank network's `κ` plane).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowAxes {
    /// `e₁`, `e₂` (`n` entries each).
    pub axes: [Vec<f64>; 2],
    /// Their names.
    pub names: [&'static str; 2],
}

/// Every model kind: the `[model]` table of one kind (`kind = "..."`), registered in
/// [`ModelConfig`](crate::network::ModelConfig).
pub trait ModelKind: std::fmt::Debug + Send + Sync {
    /// The kind in words (`the Kim et al. (2019) rate RNN`), for messages.
    fn title(&self) -> &'static str;
    /// Units.
    fn units(&self) -> usize;
    /// Checks the settings; the key is relative to `[model]`.
    fn validate(&self) -> Result<(), Invalid>;
    /// Checks the settings against the solver's: `euler_dt` is the step of a fixed-step
    /// Euler solver, `None` for an adaptive one (default: nothing to check).
    fn check_solver(&self, _euler_dt: Option<f64>) -> Result<(), Invalid> {
        Ok(())
    }
    /// Reads what the table names in other files (relative to `config_dir`), so that the
    /// table stands alone (default: nothing to read).
    fn resolve(&mut self, _config_dir: &Path) -> Result<(), Invalid> {
        Ok(())
    }
    /// Sets one key of the table (`--set key=value`); see [`set_by_key`].
    fn set(&mut self, key: &str, value: toml::Value) -> Result<(), SetError>;
    /// Bytes a run of this model needs at least (parameters, optimiser state, workers'
    /// copies, products packed for the solver) for `workers` workers: checked against
    /// memory before anything is allocated.
    fn memory_estimate(&self, workers: usize) -> f64;
    /// What the model draws per trial (default: nothing).
    fn draws(&self) -> TrialDraws {
        TrialDraws::NONE
    }
    /// The units of the named regions (`neurode analyze --regions`), sorted; `None` for
    /// a kind without regions (the default).
    fn region_units(&self, _names: &[String]) -> Option<Result<Vec<usize>, KindError>> {
        None
    }
    /// The command that serves this kind where the generic ones cannot (`neurode
    /// meanfield`), for the message of [`KindError::Unsupported`].
    fn own_command(&self) -> Option<&'static str> {
        None
    }
    /// The capability [`TaskModel`] at precision `T`, if the kind has it.
    fn task_model<T: Real>(&self) -> Option<&dyn TaskModel<T>>
    where
        Self: Sized,
    {
        None
    }
}

/// A network with a readout, run on a task's trials: trained, evaluated, simulated and
/// analysed by the generic pipeline. The parameter vector `θ` of a run is the field's
/// parameters (its [`param_views`](Field::param_views) in order), then the readout
/// weights, then the readout bias.
pub trait TaskModel<T: Real>: Sync {
    /// The network and readout of `seed` for `n_in` input channels.
    fn build(&self, seed: u64, n_in: usize) -> Result<(Net<T>, Readout<T>), ModelError>;
    /// Whether the parameters of view `name` are trained (field views, then the readout's
    /// `readout_w` and `readout_b`).
    fn trainable(&self, name: &str) -> bool;
    /// Per entry of the view `name` (`len` entries): whether it is trained (default: as
    /// the whole view).
    fn trainable_entries(&self, name: &str, len: usize) -> Vec<bool> {
        vec![self.trainable(name); len]
    }
    /// The network's arrays for a parameter file, with what each is to the run, for
    /// parameters `theta` (`θ` layout); `net` is one this kind built.
    fn arrays(&self, net: &Net<T>, theta: &[T]) -> Vec<(NamedArray<T>, Role)>;
    /// Metadata of a parameter file (the model's fixed scalars).
    fn metadata(&self) -> Vec<(String, String)>;
    /// A summary of trained parameters for `structure.json`.
    fn structure(&self, arrays: &[NamedArray<T>]) -> serde_json::Value;
    /// The plane of the flow field (default: `None`, the principal components of the
    /// trajectories).
    fn flow_axes(&self, _net: &Net<T>) -> Option<FlowAxes> {
        None
    }
    /// Writes the kind's own files of a finished run into `dir` (the Kim .mat); returns
    /// their paths (default: none).
    fn export(&self, _run: &TrainedRun<'_, T>, _dir: &Path) -> Result<Vec<PathBuf>, KindError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Table {
        n: usize,
        taus: Vec<f64>,
    }

    #[test]
    fn a_kind_without_a_capability_is_refused_with_its_command() {
        let e = KindError::Unsupported {
            kind: "meanfield",
            capability: Capability::Train,
            instead: Some("neurode meanfield"),
        };
        assert_eq!(
            e.to_string(),
            "model kind `meanfield` cannot be trained; use `neurode meanfield`"
        );
    }

    #[test]
    fn set_by_key_sets_a_key_and_names_an_unknown_or_bad_one() {
        let mut t = Table::default();
        set_by_key(
            &mut t,
            "taus",
            toml::Value::Array(vec![4.into(), 20.5.into()]),
        )
        .unwrap();
        set_by_key(&mut t, "n", 7.into()).unwrap();
        assert_eq!(
            t,
            Table {
                n: 7,
                taus: vec![4.0, 20.5]
            }
        );
        assert_eq!(
            set_by_key(&mut t, "m", 1.into()),
            Err(SetError::Unknown { key: "m".into() })
        );
        assert!(matches!(
            set_by_key(&mut t, "n", "many".into()),
            Err(SetError::Value { key, .. }) if key == "n"
        ));
        assert_eq!(t.n, 7);
    }
}
