//! The networks a run trains, as the training pipeline sees them: each model says how it
//! is built from its `[model]` table and a seed, which of its parameters are trained, what
//! it draws per trial (initial state, noise) and what it exports. The pipeline
//! ([`crate::train`], [`crate::run`]) is written once over [`Net`] and [`ModelConfig`].
//!
//! The parameter vector `θ` of a run is the field's parameters (its
//! [`VjpParams::param_views`] in order), then the readout weights, then the readout bias.

mod kim;
mod lowrank;
mod multiregion;

use neurode_models::{KimRateRnn, LowRankRnn, ModelError, MultiRegionRnn, Readout};
use neurode_solvers::{
    derive_seed, Normal, ParamView, PiecewiseConstant, Real, VectorField, VjpParams,
};
use serde::{Deserialize, Serialize};

use crate::io::NamedArray;
use crate::tasks::grid;

pub use kim::{KimActivation, KimConfig, KimWeights};
pub use lowrank::{structure_summary, LowRankConfig};
pub use multiregion::{MultiRegionConfig, RegionActivation};

/// A network of one of the models, with its parameters current.
#[derive(Debug, Clone)]
pub enum Net<T: Real> {
    /// The low-rank RNN.
    LowRank(LowRankRnn<T>),
    /// The Kim et al. (2019) rate RNN.
    Kim(KimRateRnn<T>),
    /// A multi-region RNN (mRNNTorch).
    MultiRegion(MultiRegionRnn<T>),
}

/// Runs `$body` with `$f` bound to the network's vector field, whatever its model.
macro_rules! with_net {
    ($net:expr, $f:ident => $body:expr) => {
        match $net {
            $crate::network::Net::LowRank($f) => $body,
            $crate::network::Net::Kim($f) => $body,
            $crate::network::Net::MultiRegion($f) => $body,
        }
    };
}
pub(crate) use with_net;

impl<T: Real> Net<T> {
    /// Units.
    pub fn dim(&self) -> usize {
        with_net!(self, f => f.dim())
    }
    /// Input channels.
    pub fn n_in(&self) -> usize {
        with_net!(self, f => f.n_in())
    }
    /// Number of field parameters.
    pub fn n_params(&self) -> usize {
        with_net!(self, f => f.n_params())
    }
    /// The field's parameter views.
    pub fn param_views(&self) -> Vec<ParamView> {
        with_net!(self, f => f.param_views())
    }
    /// Copies the field's parameters into `out`.
    pub fn params(&self, out: &mut [T]) {
        with_net!(self, f => f.params(out))
    }
    /// Replaces the field's parameters.
    pub fn set_params(&mut self, theta: &[T]) {
        with_net!(self, f => f.set_params(theta))
    }
    /// Input weights `B` (`n x n_in`, column-major).
    pub fn input_weights(&self) -> &[T] {
        with_net!(self, f => f.input_weights())
    }
    /// Binds one input and (if any) one noise signal per trial.
    pub fn bind(
        &mut self,
        inputs: Vec<PiecewiseConstant<T>>,
        noise: Vec<PiecewiseConstant<T>>,
    ) -> Result<(), ModelError> {
        with_net!(self, f => {
            f.set_inputs(inputs)?;
            f.set_noise(noise)
        })
    }
}

/// The `[model]` table of a config: `kind` picks the model, the other keys are its
/// settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// [`LowRankConfig`].
    Lowrank(LowRankConfig),
    /// [`KimConfig`].
    Kim(KimConfig),
    /// [`MultiRegionConfig`].
    Multiregion(MultiRegionConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Lowrank(LowRankConfig::default())
    }
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

/// Per-trial draws of a model: the initial state and the per-step noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrialDraws {
    /// SD of the initial state (0: start at 0).
    pub x0_sd: f64,
    /// SD of the noise added per noise step (0: none).
    pub noise_sd: f64,
    /// The noise step (task time units).
    pub noise_dt: f64,
    /// SD of the noise added to each input channel per noise step, before the input
    /// weights (0: none).
    pub input_noise_sd: f64,
}

impl ModelConfig {
    /// The model's name as written in configs (`kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Lowrank(_) => "lowrank",
            ModelConfig::Kim(_) => "kim",
            ModelConfig::Multiregion(_) => "multiregion",
        }
    }
    /// Units.
    pub fn n(&self) -> usize {
        match self {
            ModelConfig::Lowrank(m) => m.n,
            ModelConfig::Kim(m) => m.n,
            ModelConfig::Multiregion(m) => m.n(),
        }
    }
    /// Checks the settings; the error is `(key under model., message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            ModelConfig::Lowrank(m) => m.validate(),
            ModelConfig::Kim(m) => m.validate(),
            ModelConfig::Multiregion(m) => m.validate(),
        }
    }
    /// The network and readout of `seed` for `n_in` input channels.
    pub fn build<T: Real>(
        &self,
        seed: u64,
        n_in: usize,
    ) -> Result<(Net<T>, Readout<T>), ModelError> {
        match self {
            ModelConfig::Lowrank(m) => m.build(seed, n_in),
            ModelConfig::Kim(m) => m.build(seed, n_in),
            ModelConfig::Multiregion(m) => m.build(seed, n_in),
        }
    }
    /// Whether the parameters of view `name` are trained (field views, then the readout's
    /// `readout_w` and `readout_b`).
    pub fn trainable(&self, name: &str) -> bool {
        match self {
            ModelConfig::Lowrank(m) => m.trainable(name),
            ModelConfig::Kim(m) => m.trainable(name),
            ModelConfig::Multiregion(m) => m.trainable(name),
        }
    }
    /// Per entry of the view `name` (`len` entries): whether it is trained. Whole views
    /// follow [`trainable`](Self::trainable); a multi-region network's tonic input
    /// follows each region's `learnable_bias`.
    pub fn trainable_entries(&self, name: &str, len: usize) -> Vec<bool> {
        match self {
            ModelConfig::Multiregion(m) if name == "bias" => m
                .bias_flags()
                .filter(|f| f.len() == len)
                .unwrap_or_else(|| vec![self.trainable(name); len]),
            _ => vec![self.trainable(name); len],
        }
    }
    /// What the model draws per trial.
    pub fn draws(&self) -> TrialDraws {
        match self {
            ModelConfig::Lowrank(_) => TrialDraws {
                x0_sd: 0.0,
                noise_sd: 0.0,
                noise_dt: 1.0,
                input_noise_sd: 0.0,
            },
            ModelConfig::Kim(m) => TrialDraws {
                x0_sd: m.x0_sd,
                noise_sd: m.noise_sd,
                noise_dt: m.noise_dt,
                input_noise_sd: 0.0,
            },
            ModelConfig::Multiregion(m) => m.draws(),
        }
    }
    /// The network's arrays for a parameter file, with what each is to the run, for
    /// parameters `theta` (`θ` layout).
    pub fn arrays<T: Real>(&self, net: &Net<T>, theta: &[T]) -> Vec<(NamedArray<T>, Role)> {
        match (self, net) {
            (ModelConfig::Lowrank(m), Net::LowRank(f)) => m.arrays(f, theta),
            (ModelConfig::Kim(m), Net::Kim(f)) => m.arrays(f, theta),
            (ModelConfig::Multiregion(m), Net::MultiRegion(f)) => m.arrays(f, theta),
            _ => unreachable!("a network is built from its own config"),
        }
    }
    /// Metadata of a parameter file (the model's fixed scalars).
    pub fn metadata(&self) -> Vec<(String, String)> {
        match self {
            ModelConfig::Lowrank(m) => vec![
                ("format".into(), "neurode low-rank RNN".into()),
                ("layout".into(), "row-major; W = g C + M N^T / N".into()),
                ("g".into(), m.g.to_string()),
                ("tau".into(), m.tau.to_string()),
            ],
            ModelConfig::Kim(m) => vec![
                ("format".into(), "neurode Kim et al. 2019 rate RNN".into()),
                (
                    "layout".into(),
                    "row-major; W_eff = (relu(W) diag(signs)) * som_mask; tau = sigmoid(tau_g) (tau_max - tau_min) + tau_min (steps of 5 ms)".into(),
                ),
                ("activation".into(), m.act.name().into()),
                ("taus".into(), format!("{:?}", m.taus)),
            ],
            ModelConfig::Multiregion(m) => vec![
                ("format".into(), "neurode multi-region RNN (mRNNTorch)".into()),
                (
                    "layout".into(),
                    "row-major, rows = destination; W_eff = |W| * signed_mask (Dale) or W * signed_mask; bias = tonic input".into(),
                ),
                ("tau".into(), m.tau.to_string()),
            ],
        }
    }
    /// A summary of trained parameters for `structure.json` (model-specific).
    pub fn structure<T: Real>(&self, arrays: &[NamedArray<T>]) -> serde_json::Value {
        match self {
            ModelConfig::Lowrank(m) => structure_summary(arrays, m.n, m.rank),
            ModelConfig::Kim(m) => m.structure(arrays),
            ModelConfig::Multiregion(m) => m.structure(arrays),
        }
    }
    /// Bytes a run of this model needs at least (parameters, optimiser state, workers'
    /// copies, products packed for the solver), for `workers` workers: checked against
    /// memory before anything is allocated.
    pub fn memory_estimate(&self, workers: usize) -> f64 {
        let n = self.n() as f64;
        let bytes = 8.0;
        match self {
            // C, Cᵀ panels per worker (shared), parameters and Adam: ~ 3 n² + small.
            ModelConfig::Lowrank(m) => {
                bytes * (3.0 * n * n + (6.0 + workers as f64) * n * (2.0 * m.rank as f64 + 8.0))
            }
            // W, W_eff, both panels, the VJP scratch per worker, Adam (2), best copy.
            ModelConfig::Kim(_) | ModelConfig::Multiregion(_) => {
                bytes * n * n * (8.0 + 2.0 * workers as f64)
            }
        }
    }
}

/// Checks that every `(key, value)` is finite and `>= 0`; the error names the key.
pub(crate) fn check_non_negative(values: &[(&str, f64)]) -> Result<(), (String, String)> {
    match values.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        Some((k, v)) => Err((k.to_string(), format!("{k} = {v}: must be >= 0"))),
        None => Ok(()),
    }
}

/// The initial states of `seeds.len()` trials (`dim x trials`), `None` for zero states.
pub fn initial_states<T: Real>(draws: &TrialDraws, dim: usize, seeds: &[u64]) -> Option<Vec<T>> {
    (draws.x0_sd > 0.0).then(|| {
        seeds
            .iter()
            .flat_map(|&s| {
                let mut rng = Normal::new(derive_seed(s, &[0]));
                (0..dim)
                    .map(move |_| T::from_f64(draws.x0_sd * rng.sample()))
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// The per-step noise of every trial over `[0, t_end]` (one signal of `dim` channels per
/// trial, `noise_sd · ξ / noise_dt` on each step `[k dt, (k + 1) dt)`, so that a step of
/// `noise_dt` adds `noise_sd · ξ`), empty without noise.
///
/// With `input_noise_sd > 0`, each step also adds `B ξ_u · input_noise_sd` (`B` =
/// `b_in`, `dim x n_in` column-major; `ξ_u` one standard normal per input channel, from a
/// stream of its own): noise on the inputs before the input weights, as mRNNTorch adds it.
pub fn noise_signals<T: Real>(
    draws: &TrialDraws,
    dim: usize,
    t_end: f64,
    seeds: &[u64],
    b_in: &[T],
) -> Vec<PiecewiseConstant<T>> {
    let input_noise = draws.input_noise_sd > 0.0 && dim > 0 && !b_in.is_empty();
    if draws.noise_sd <= 0.0 && !input_noise {
        return Vec::new();
    }
    let steps = (t_end / draws.noise_dt - 1e-9).ceil().max(1.0) as u64;
    let times: Vec<T> = grid(draws.noise_dt, 1, steps - 1)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let scale = draws.noise_sd / draws.noise_dt;
    seeds
        .iter()
        .map(|&s| {
            let mut rng = Normal::new(derive_seed(s, &[1]));
            // Drawn in blocks through a small buffer: no second trial-sized array.
            let len = dim * steps as usize;
            let mut values = Vec::with_capacity(len);
            let mut xi = [0.0; 256];
            if draws.noise_sd > 0.0 {
                while values.len() < len {
                    let k = (len - values.len()).min(xi.len());
                    rng.fill_standard(&mut xi[..k]);
                    values.extend(xi[..k].iter().map(|&v| T::from_f64(scale * v)));
                }
            } else {
                values.resize(len, T::zero());
            }
            if input_noise {
                let n_in = b_in.len() / dim;
                let mut rin = Normal::new(derive_seed(s, &[2]));
                let mut u = vec![0.0; n_in];
                let iscale = draws.input_noise_sd / draws.noise_dt;
                for step in values.chunks_exact_mut(dim) {
                    rin.fill_standard(&mut u);
                    for (c, &uc) in u.iter().enumerate() {
                        let a = iscale * uc;
                        for (v, &b) in step.iter_mut().zip(&b_in[c * dim..(c + 1) * dim]) {
                            *v += T::from_f64(a * b.as_f64());
                        }
                    }
                }
            }
            PiecewiseConstant::new(dim, times.clone(), values)
                .expect("a valid signal by construction")
        })
        .collect()
}
