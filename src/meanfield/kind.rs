//! The mean field as a model kind of the app (`[model] kind = "meanfield"`, the keys of a
//! mean-field config's `[network]`): it has fixed points and sweeps of its own, no task and
//! no readout, so it implements [`ModelKind`] only, and `train`, `eval`, `simulate` and
//! `analyze` refuse it, naming `neurode meanfield`.

use crate::kind::{set_by_key, Invalid, ModelKind, SetError};
use neurode_models::meanfield::MeanFieldError;

use super::config::{Network, Values};

impl Default for Network {
    /// The original's README example (two populations).
    fn default() -> Self {
        Network {
            n_clusters: 2,
            c_matrix: Values::Scalar(1.0),
            j_matrix: Values::Scalar(0.1),
            j_ext: Values::Scalar(2.3),
            c_ext: Values::Scalar(320.0),
            nu_ext: Values::Scalar(7.0),
            tau_membrane: Values::Scalar(0.02),
            tau_synaptic: Some(Values::Scalar(0.005)),
            threshold: Values::List(vec![1.5, 0.75]),
            reset_voltage: Some(Values::Scalar(0.0)),
            tau_refractory: Some(Values::Scalar(0.005)),
            tau_rate: None,
        }
    }
}

impl ModelKind for Network {
    fn title(&self) -> &'static str {
        "the LIF mean field (VectorialNeuroModulators)"
    }
    fn units(&self) -> usize {
        self.n_clusters
    }
    fn validate(&self) -> Result<(), Invalid> {
        self.params().map(|_| ()).map_err(|e| {
            let key = match &e {
                MeanFieldError::Invalid { key, .. } => key.clone(),
                MeanFieldError::Shape { key, .. } => key.clone(),
                MeanFieldError::Missing { key } => key.to_string(),
                _ => "n_clusters".to_string(),
            };
            Invalid::new(key, e.to_string())
        })
    }
    fn set(&mut self, key: &str, value: toml::Value) -> Result<(), SetError> {
        set_by_key(self, key, value)
    }
    fn memory_estimate(&self, _workers: usize) -> f64 {
        // C, J and their products, per set: negligible beside any training run.
        let n = self.n_clusters as f64;
        8.0 * (4.0 * n * n + 16.0 * n)
    }
    fn own_command(&self) -> Option<&'static str> {
        Some("neurode meanfield")
    }
}
