//! The Kim et al. (2019) rate RNN kind (`[model] kind = "kim"`): its `[model]` table
//! ([`config`]), and its MATLAB export ([`export`]) for the original's spiking code.

mod config;
mod export;

use std::path::{Path, PathBuf};

use neurode_models::{KimRateRnn, ModelError, Readout};
use neurode_solvers::Real;

pub use config::{KimActivation, KimConfig, KimWeights};
pub use export::{mat_file_name, mat_variables};

use crate::io::NamedArray;
use crate::kind::Net;
use crate::kind::TrialDraws;
use crate::kind::{
    check_step_within_tau, set_by_key, Invalid, KindError, ModelKind, Role, SetError, TaskModel,
    TrainedRun,
};

impl ModelKind for KimConfig {
    fn title(&self) -> &'static str {
        "the Kim et al. (2019) rate RNN"
    }
    fn units(&self) -> usize {
        self.n
    }
    fn validate(&self) -> Result<(), Invalid> {
        self.check()
    }
    // The fastest time constant (in steps) against the step.
    fn check_solver(&self, euler_dt: Option<f64>) -> Result<(), Invalid> {
        let fastest = self.taus.iter().copied().fold(f64::INFINITY, f64::min);
        check_step_within_tau("taus", fastest, euler_dt)
    }
    fn set(&mut self, key: &str, value: toml::Value) -> Result<(), SetError> {
        set_by_key(self, key, value)
    }
    // W, W_eff, both panels, the VJP scratch per worker, Adam (2), best copy.
    fn memory_estimate(&self, workers: usize) -> f64 {
        crate::kind::dense_memory_estimate(self.n, workers)
    }
    fn draws(&self) -> TrialDraws {
        TrialDraws {
            x0_sd: self.x0_sd,
            noise_sd: self.noise_sd,
            noise_dt: self.noise_dt,
            input_noise_sd: 0.0,
        }
    }
    fn task_model<T: Real>(&self) -> Option<&dyn TaskModel<T>> {
        Some(self)
    }
}

impl<T: Real> TaskModel<T> for KimConfig {
    fn build(&self, seed: u64, n_in: usize) -> Result<(Net<T>, Readout<T>), ModelError> {
        self.build_network(seed, n_in)
    }
    fn trainable(&self, name: &str) -> bool {
        KimConfig::trainable(self, name)
    }
    fn arrays(&self, net: &Net<T>, theta: &[T]) -> Vec<(NamedArray<T>, Role)> {
        KimConfig::arrays(self, own_network(net), theta)
    }
    fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("format".into(), "neurode Kim et al. 2019 rate RNN".into()),
            (
                "layout".into(),
                "row-major; W_eff = (relu(W) diag(signs)) * som_mask; tau = sigmoid(tau_g) (tau_max - tau_min) + tau_min (steps of 5 ms)".into(),
            ),
            ("activation".into(), self.act.name().into()),
            ("taus".into(), format!("{:?}", self.taus)),
        ]
    }
    fn structure(&self, arrays: &[NamedArray<T>]) -> serde_json::Value {
        KimConfig::structure(self, arrays)
    }
    /// `Task_<task>_N_<N>_Taus_<min>_<max>_Act_<act>_<timestamp>.mat` (`kim/export.rs`).
    fn export(&self, run: &TrainedRun<'_, T>, dir: &Path) -> Result<Vec<PathBuf>, KindError> {
        Ok(vec![export::write_mat_export(
            self,
            own_network(run.net),
            run,
            dir,
        )?])
    }
}

/// The rate RNN of a network this kind built.
fn own_network<T: Real>(net: &Net<T>) -> &KimRateRnn<T> {
    net.downcast_ref()
        .expect("a network is built by its own config's kind")
}
