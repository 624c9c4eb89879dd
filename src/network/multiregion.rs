//! The multi-region RNN kind (mRNNTorch; `[model] kind = "multiregion"`): its `[model]`
//! table, what it trains, draws per trial and exports, and its regions for `neurode
//! analyze --regions`.
//!
//! The regions come from a region file (`regions_file`, mRNNTorch's JSON or its TOML
//! form, read when the config is loaded) or inline (`[model.regions]`, the same keys).
//! A run's `config.toml` keeps them inline, so a run directory stands on its own.

use std::path::{Path, PathBuf};

use neurode_models::{Activation, ModelError, MultiRegionRnn, Readout, RegionSettings, Regions};
use neurode_solvers::{derive_seed, Normal, Real, VectorField, VjpParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::io::NamedArray;
use crate::kind::Net;
use crate::kind::TrialDraws;
use crate::kind::{
    check_noise, check_step_within_tau, set_by_key, Invalid, KindError, ModelKind, Role, SetError,
    TaskModel,
};
use crate::regions::RegionFile;

/// Activation of a multi-region network (mRNNTorch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegionActivation {
    /// `max(x, 0)` (the original's default).
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// The logistic sigmoid.
    Sigmoid,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x`.
    Linear,
}

impl RegionActivation {
    fn activation(self) -> Activation {
        match self {
            RegionActivation::Relu => Activation::Relu,
            RegionActivation::Tanh => Activation::Tanh,
            RegionActivation::Sigmoid => Activation::Sigmoid,
            RegionActivation::Softplus => Activation::Softplus,
            RegionActivation::Linear => Activation::Identity,
        }
    }
}

/// A multi-region RNN (see `neurode_models::RegionBuilder`): `[model] kind =
/// "multiregion"`. Times are in the task's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiRegionConfig {
    /// A region file (mRNNTorch JSON, or TOML), relative to the working directory or to
    /// the config's folder.
    pub regions_file: Option<PathBuf>,
    /// The regions and connections (read from `regions_file` when it is given).
    pub regions: Option<RegionFile>,
    /// `relu` (default), `tanh`, `sigmoid`, `softplus` or `linear`.
    pub act: RegionActivation,
    /// Time constant τ (task time units).
    pub tau: f64,
    /// The Elman variant `h ← φ(W h + W_in u + b)` (no leak): Euler with `dt = τ`, which
    /// the config must then set.
    pub elman: bool,
    /// Dale's law on the recurrent weights (signs of the source regions).
    pub rec_constrained: bool,
    /// Dale's law on the input weights.
    pub inp_constrained: bool,
    /// Scale the recurrent weights at initialisation to this spectral radius of `W_eff`.
    pub spectral_radius: Option<f64>,
    /// The original's `noise_level_act` (σ_rec): each noise step adds noise of SD
    /// `sqrt(2 noise_dt / τ) σ_rec` to every unit, as its discrete update does.
    pub noise_rec: f64,
    /// The original's `noise_level_inp` (σ_inp): each noise step adds noise of SD
    /// `sqrt(2 noise_dt / τ) σ_inp` to every input channel before the input weights (the
    /// original adds SD `sqrt(2/α) σ_inp` to `u` and multiplies by `α`).
    pub noise_inp: f64,
    /// The noise step (the original's `dt`).
    pub noise_dt: f64,
    /// Train the recurrent weights.
    pub train_w: bool,
    /// Train the input weights (under their mask and signs, as mRNNTorch does).
    pub train_w_in: bool,
    /// Train the tonic input of every unit (default: per region, as its `learnable_bias`
    /// says).
    pub train_bias: Option<bool>,
    /// Train the readout.
    pub train_readout: bool,
}

impl Default for MultiRegionConfig {
    fn default() -> Self {
        MultiRegionConfig {
            regions_file: None,
            regions: None,
            act: RegionActivation::Relu,
            tau: 100.0,
            elman: false,
            rec_constrained: true,
            inp_constrained: true,
            spectral_radius: None,
            noise_rec: 0.0,
            noise_inp: 0.0,
            noise_dt: 10.0,
            train_w: true,
            train_w_in: true,
            train_bias: None,
            train_readout: true,
        }
    }
}

impl MultiRegionConfig {
    /// Reads `regions_file` into `regions` (relative to the working directory, else to
    /// `config_dir`) and drops the file name; a no-op when the regions are inline, an error
    /// when both are given.
    pub fn resolve(&mut self, config_dir: &Path) -> Result<(), String> {
        let Some(file) = &self.regions_file else {
            return Ok(());
        };
        if self.regions.is_some() {
            return Err(format!(
                "both regions_file ({}) and inline [model.regions] are given; keep one",
                file.display()
            ));
        }
        let path = if file.exists() {
            file.clone()
        } else {
            config_dir.join(file)
        };
        let regions = RegionFile::load(&path).map_err(|e| e.to_string())?;
        // Inline from now on: a run's config.toml carries the regions themselves.
        self.regions = Some(regions);
        self.regions_file = None;
        Ok(())
    }

    /// Units: the recurrent regions' total (0 before the regions are read).
    pub fn n(&self) -> usize {
        self.layout().map_or(0, |l| l.n_rec())
    }

    /// The regions' layout (`None` before the regions are read or when they are invalid).
    fn layout(&self) -> Option<Regions> {
        Some(self.regions.as_ref()?.builder().ok()?.layout())
    }

    fn settings(&self) -> RegionSettings {
        RegionSettings {
            act: self.act.activation(),
            tau: self.tau,
            rec_constrained: self.rec_constrained,
            inp_constrained: self.inp_constrained,
            spectral_radius: self.spectral_radius,
        }
    }

    /// Per unit, whether its tonic input is trained: `train_bias` for every unit when set,
    /// else its region's `learnable_bias` (`None` before the regions are read).
    fn bias_flags(&self) -> Option<Vec<bool>> {
        let flags = self.layout()?.learnable_bias();
        Some(match self.train_bias {
            Some(t) => vec![t; flags.len()],
            None => flags,
        })
    }

    fn check(&self) -> Result<(), Invalid> {
        let err = |k: &str, msg: String| Err(Invalid::new(k, msg));
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return err(
                "tau",
                format!("tau = {}: must be a positive time", self.tau),
            );
        }
        check_noise(&[("noise_rec", self.noise_rec), ("noise_inp", self.noise_inp)])?;
        if !(self.noise_dt.is_finite() && self.noise_dt > 0.0) {
            return err(
                "noise_dt",
                format!("noise_dt = {}: must be > 0", self.noise_dt),
            );
        }
        if let Some(r) = self.spectral_radius {
            if !(r.is_finite() && r > 0.0) {
                return err(
                    "spectral_radius",
                    format!("spectral_radius = {r}: must be > 0"),
                );
            }
        }
        if let (Some(file), Some(_)) = (&self.regions_file, &self.regions) {
            return err(
                "regions_file",
                format!(
                    "both regions_file ({}) and inline [model.regions] are given; keep one",
                    file.display()
                ),
            );
        }
        let Some(regions) = &self.regions else {
            if self.regions_file.is_some() {
                // Read (and checked) when the config is loaded from its file.
                return Ok(());
            }
            return err(
                "regions",
                "a multi-region model needs its regions: set regions_file (e.g. \
                 \"configs/regions/cbgtcl.json\") or a [model.regions] table"
                    .into(),
            );
        };
        let key = if self.regions_file.is_some() {
            "regions_file"
        } else {
            "regions"
        };
        // The entries are checked here; the weights are drawn (and the spectral radius
        // scaled) when the network is built, after the memory check.
        let b = regions.builder().map_err(|e| Invalid::new(key, e))?;
        b.check_complete()
            .map_err(|e| Invalid::new(key, e.to_string()))
    }

    fn build_network<T: Real>(
        &self,
        seed: u64,
        n_in: usize,
    ) -> Result<(Net<T>, Readout<T>), ModelError> {
        let (rnn, regions) = self.network::<T>(seed)?;
        if regions.n_inp() != n_in {
            return Err(ModelError::Shape(format!(
                "the regions have {} input units but the task gives {n_in} input channels; \
                 make the input regions add up to {n_in} units",
                regions.n_inp()
            )));
        }
        let n = rnn.dim();
        let mut rng = Normal::new(derive_seed(seed, &[1]));
        let w_out = (0..n)
            .map(|_| T::from_f64(rng.sample() / (n as f64).sqrt()))
            .collect();
        let readout = Readout::rates(w_out, T::zero(), self.act.activation())?;
        Ok((Net::new(rnn), readout))
    }

    /// The network and its region layout for `seed`.
    pub fn network<T: Real>(&self, seed: u64) -> Result<(MultiRegionRnn<T>, Regions), ModelError> {
        let file = self.regions.as_ref().ok_or_else(|| {
            ModelError::Region("the multi-region model's regions were not read".into())
        })?;
        let mut b = file.builder().map_err(ModelError::Region)?;
        b.finalize(&self.settings(), derive_seed(seed, &[0]))
    }

    fn trainable(&self, name: &str) -> bool {
        match name {
            "W" => self.train_w,
            "B" => self.train_w_in,
            "bias" => self
                .train_bias
                .unwrap_or_else(|| self.bias_flags().is_some_and(|f| f.iter().any(|&b| b))),
            _ => self.train_readout,
        }
    }

    fn trial_draws(&self) -> TrialDraws {
        TrialDraws {
            x0_sd: 0.0,
            noise_sd: (2.0 * self.noise_dt / self.tau).sqrt() * self.noise_rec,
            noise_dt: self.noise_dt,
            input_noise_sd: (2.0 * self.noise_dt / self.tau).sqrt() * self.noise_inp,
        }
    }

    /// Row-major `W` (raw), `w_in` (raw), `bias` (tonic input), `w_out`, `b_out` (θ);
    /// `signed_mask` (fixed); `W_eff`, `w_in_eff` (derived).
    fn arrays<T: Real>(&self, rnn: &MultiRegionRnn<T>, theta: &[T]) -> Vec<(NamedArray<T>, Role)> {
        let n = rnn.dim();
        let n_in = rnn.n_in();
        let nf = rnn.n_params();
        let w = &theta[..n * n];
        let w_in = &theta[n * n..n * n + n * n_in];
        let bias = theta[n * n + n * n_in..nf].to_vec();
        let vec = |name: &str, data: Vec<T>| NamedArray {
            name: name.into(),
            shape: vec![data.len()],
            data,
        };
        let mut f = rnn.clone();
        f.set_params(&theta[..nf]);
        let conn = f.connectivity();
        vec![
            (NamedArray::from_col_major("W", n, n, w), Role::Theta),
            (
                NamedArray::from_col_major("w_in", n, n_in, w_in),
                Role::Theta,
            ),
            (vec("bias", bias), Role::Theta),
            (vec("w_out", theta[nf..nf + n].to_vec()), Role::Theta),
            (
                vec("b_out", theta[nf + n..nf + n + 1].to_vec()),
                Role::Theta,
            ),
            (
                NamedArray::from_col_major("signed_mask", n, n, conn.signed_mask()),
                Role::Fixed,
            ),
            (
                NamedArray::from_col_major("W_eff", n, n, conn.effective()),
                Role::Derived,
            ),
            (
                NamedArray::from_col_major("w_in_eff", n, n_in, f.input_weights()),
                Role::Derived,
            ),
        ]
    }

    fn structure<T: Real>(&self, arrays: &[NamedArray<T>]) -> serde_json::Value {
        let get = |name: &str| arrays.iter().find(|a| a.name == name);
        let (Some(mask), Some(weff)) = (get("signed_mask"), get("W_eff")) else {
            return json!({"error": "the parameter arrays of a multi-region RNN are incomplete"});
        };
        let regions = self.regions.as_ref().map_or(Vec::new(), |r| {
            r.recurrent_regions
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    json!({
                        "name": e.name.clone().unwrap_or_else(|| format!("region_{k}")),
                        "units": e.num_units,
                        "sign": e.sign.clone().unwrap_or_else(|| "pos".into()),
                    })
                })
                .collect()
        });
        json!({
            "N": self.n(),
            "regions": regions,
            "allowed_connections": mask.data.iter().filter(|v| v.as_f64() != 0.0).count(),
            "nonzero_effective_weights": weff.data.iter().filter(|v| v.as_f64() != 0.0).count(),
            "activation": format!("{:?}", self.act).to_lowercase(),
        })
    }
}

impl ModelKind for MultiRegionConfig {
    fn title(&self) -> &'static str {
        "the multi-region RNN (mRNNTorch)"
    }
    fn units(&self) -> usize {
        self.n()
    }
    fn validate(&self) -> Result<(), Invalid> {
        self.check()
    }
    fn check_solver(&self, euler_dt: Option<f64>) -> Result<(), Invalid> {
        let noisy = self.noise_rec > 0.0 || self.noise_inp > 0.0;
        if noisy && euler_dt != Some(self.noise_dt) {
            return Err(Invalid::new(
                "noise_dt",
                format!(
                    "the noise is drawn once per noise_dt = {} with the original's scaling: \
                     use [solver] stepper = \"euler\" with dt = noise_dt",
                    self.noise_dt
                ),
            ));
        }
        check_step_within_tau("tau", self.tau, euler_dt)?;
        if self.elman && euler_dt != Some(self.tau) {
            return Err(Invalid::new(
                "elman",
                format!(
                    "the Elman update is Euler with dt = tau: set [solver] stepper = \"euler\" \
                     and dt = {} (or make tau the step)",
                    self.tau
                ),
            ));
        }
        Ok(())
    }
    fn resolve(&mut self, config_dir: &Path) -> Result<(), Invalid> {
        MultiRegionConfig::resolve(self, config_dir).map_err(|e| Invalid::new("regions_file", e))
    }
    fn set(&mut self, key: &str, value: toml::Value) -> Result<(), SetError> {
        if key == "n" {
            return Err(SetError::Value {
                key: key.into(),
                message: "a multi-region network's size is its regions': edit the region file"
                    .into(),
            });
        }
        // The regions were read from the config's file before any override: a new file
        // named here would never be read.
        if key == "regions_file" || key == "regions" {
            return Err(SetError::Value {
                key: key.into(),
                message: "the regions are read with the config: edit `regions_file` (or \
                          [model.regions]) in the config file"
                    .into(),
            });
        }
        set_by_key(self, key, value)
    }
    fn memory_estimate(&self, workers: usize) -> f64 {
        crate::kind::dense_memory_estimate(self.n(), workers)
    }
    fn draws(&self) -> TrialDraws {
        self.trial_draws()
    }
    fn region_units(&self, names: &[String]) -> Option<Result<Vec<usize>, KindError>> {
        let units = || -> Result<Vec<usize>, String> {
            let layout = self
                .regions
                .as_ref()
                .ok_or_else(|| "the run's config has no regions".to_string())?
                .builder()
                .map_err(|e| format!("the run's regions: {e}"))?
                .layout();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut units = layout.units(&names).map_err(|e| e.to_string())?;
            units.sort_unstable();
            units.dedup();
            Ok(units)
        };
        Some(units().map_err(KindError::Regions))
    }
    fn task_model<T: Real>(&self) -> Option<&dyn TaskModel<T>> {
        Some(self)
    }
}

impl<T: Real> TaskModel<T> for MultiRegionConfig {
    fn build(&self, seed: u64, n_in: usize) -> Result<(Net<T>, Readout<T>), ModelError> {
        self.build_network(seed, n_in)
    }
    fn trainable(&self, name: &str) -> bool {
        MultiRegionConfig::trainable(self, name)
    }
    /// The tonic input follows each region's `learnable_bias` (or `train_bias`).
    fn trainable_entries(&self, name: &str, len: usize) -> Vec<bool> {
        let whole = || vec![MultiRegionConfig::trainable(self, name); len];
        if name != "bias" {
            return whole();
        }
        self.bias_flags()
            .filter(|f| f.len() == len)
            .unwrap_or_else(whole)
    }
    fn arrays(&self, net: &Net<T>, theta: &[T]) -> Vec<(NamedArray<T>, Role)> {
        let rnn: &MultiRegionRnn<T> = net
            .downcast_ref()
            .expect("a network is built by its own config's kind");
        MultiRegionConfig::arrays(self, rnn, theta)
    }
    fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("format".into(), "neurode multi-region RNN (mRNNTorch)".into()),
            (
                "layout".into(),
                "row-major, rows = destination; W_eff = |W| * signed_mask (Dale) or W * signed_mask; bias = tonic input".into(),
            ),
            ("tau".into(), self.tau.to_string()),
        ]
    }
    fn structure(&self, arrays: &[NamedArray<T>]) -> serde_json::Value {
        MultiRegionConfig::structure(self, arrays)
    }
}
