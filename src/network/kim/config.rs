//! The `[model]` table of the Kim et al. (2019) rate RNN (the original's knobs, same names
//! and defaults), its checks, its network, and its arrays and summary for a run's files.

use neurode_models::{Activation, KimInit, KimRateRnn, ModelError, Readout, WeightDist};
use neurode_solvers::Real;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::io::NamedArray;
use crate::kind::Net;
use crate::kind::{check_noise, Invalid, Role};

/// Activation of the Kim et al. rate RNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KimActivation {
    /// The logistic sigmoid (the paper's default).
    #[default]
    Sigmoid,
    /// `min(max(x, 0), 20)`.
    ClippedRelu,
    /// `min(ln(1 + e^x), 20)`.
    Softplus,
}

impl KimActivation {
    /// The name the original uses (`sigmoid`, `clipped_relu`, `softplus`).
    pub fn name(self) -> &'static str {
        match self {
            KimActivation::Sigmoid => "sigmoid",
            KimActivation::ClippedRelu => "clipped_relu",
            KimActivation::Softplus => "softplus",
        }
    }
    /// The activation function.
    pub fn activation(self) -> Activation {
        match self {
            KimActivation::Sigmoid => Activation::Sigmoid,
            KimActivation::ClippedRelu => Activation::ClippedRelu { cap: 20.0 },
            KimActivation::Softplus => Activation::ClippedSoftplus { cap: 20.0 },
        }
    }
}

/// Initial weight distribution (the original's `w_dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KimWeights {
    /// Gaussian, `gain / sqrt(N P_rec)` (`gaus`).
    #[default]
    Gaus,
    /// Gamma(2, 0.003) (`gamma`).
    Gamma,
}

/// The Kim et al. (2019) rate RNN (see `neurode_models::KimRateRnn`):
/// `[model] kind = "kim"`. Times are in steps of 5 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KimConfig {
    /// Units N.
    pub n: usize,
    /// Probability that a unit is inhibitory.
    pub p_inh: f64,
    /// Connection probability.
    pub p_rec: f64,
    /// SOM units (the first `som_n` inhibitory units receive no inhibitory input).
    pub som_n: usize,
    /// Gain of the Gaussian initial weights.
    pub gain: f64,
    /// `gaus` or `gamma`.
    pub w_dist: KimWeights,
    /// Dale's law.
    pub apply_dale: bool,
    /// `[tau]` (fixed) or `[tau_min, tau_max]` (trained), in steps (`[4, 20]` = 20-100 ms).
    pub taus: Vec<f64>,
    /// `sigmoid`, `clipped_relu` or `softplus`.
    pub act: KimActivation,
    /// E/I-balanced initialisation (not in the paper; see `neurode_models::KimInit`).
    pub balanced_init: bool,
    /// SD of the noise added each noise step (0.1 in the paper).
    pub noise_sd: f64,
    /// The noise step (1 step).
    pub noise_dt: f64,
    /// SD of the initial state (0.01 in the paper).
    pub x0_sd: f64,
    /// Train the recurrent weights W.
    pub train_w: bool,
    /// Train the time constants (with two `taus`).
    pub train_taus: bool,
    /// Train the input weights W_in (fixed in the paper).
    pub train_w_in: bool,
    /// Train the readout w_out, b_out.
    pub train_readout: bool,
}

impl Default for KimConfig {
    fn default() -> Self {
        KimConfig {
            n: 200,
            p_inh: 0.2,
            p_rec: 0.2,
            som_n: 0,
            gain: 1.5,
            w_dist: KimWeights::Gaus,
            apply_dale: true,
            taus: vec![4.0, 20.0],
            act: KimActivation::Sigmoid,
            balanced_init: false,
            noise_sd: 0.1,
            noise_dt: 1.0,
            x0_sd: 0.01,
            train_w: true,
            train_taus: true,
            train_w_in: false,
            train_readout: true,
        }
    }
}

impl KimConfig {
    fn init(&self, n_in: usize) -> KimInit {
        KimInit {
            n: self.n,
            p_inh: self.p_inh,
            p_rec: self.p_rec,
            som_n: self.som_n,
            gain: self.gain,
            w_dist: match self.w_dist {
                KimWeights::Gaus => WeightDist::Gaussian,
                KimWeights::Gamma => WeightDist::Gamma,
            },
            apply_dale: self.apply_dale,
            taus: self.taus.clone(),
            n_in,
            act: self.act.activation(),
            balanced: self.balanced_init,
        }
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let err = |k: &str, msg: String| Err(Invalid::new(k, msg));
        if let Err(e) = self.init(1).check() {
            let key = match &e {
                ModelError::Invalid { name, .. } => name.to_lowercase(),
                ModelError::Shape(_) | ModelError::Region(_) => "taus".to_string(),
            };
            return err(&key, e.to_string());
        }
        check_noise(&[("noise_sd", self.noise_sd), ("x0_sd", self.x0_sd)])?;
        if !(self.noise_dt.is_finite() && self.noise_dt > 0.0) {
            return err(
                "noise_dt",
                format!(
                    "noise_dt = {}: must be a positive number of steps",
                    self.noise_dt
                ),
            );
        }
        Ok(())
    }

    pub(super) fn build_network<T: Real>(
        &self,
        seed: u64,
        n_in: usize,
    ) -> Result<(Net<T>, Readout<T>), ModelError> {
        let (rnn, readout) = KimRateRnn::random(&self.init(n_in), seed)?;
        Ok((Net::new(rnn), readout))
    }

    pub(super) fn trainable(&self, name: &str) -> bool {
        match name {
            "W" => self.train_w,
            "B" => self.train_w_in,
            "tau_g" => self.train_taus,
            _ => self.train_readout,
        }
    }

    /// Row-major `W` (raw), `w_in`, `tau_g` (trained time constants only), `w_out`,
    /// `b_out` (θ); `signs`, `som` (fixed); `W_eff`, `taus` (derived).
    pub(super) fn arrays<T: Real>(
        &self,
        rnn: &KimRateRnn<T>,
        theta: &[T],
    ) -> Vec<(NamedArray<T>, Role)> {
        let n = self.n;
        let n_in = rnn.n_in();
        let mut at = 0;
        let mut take = |len: usize| {
            let s = &theta[at..at + len];
            at += len;
            s
        };
        let w = take(n * n);
        let w_in = take(n * n_in);
        let tau_g = (rnn.time_constants_trained()).then(|| take(n).to_vec());
        let w_out = take(n).to_vec();
        let b_out = take(1).to_vec();
        let vec = |name: &str, data: Vec<T>| NamedArray {
            name: name.into(),
            shape: vec![data.len()],
            data,
        };
        // W_eff and τ of these parameters.
        let mut f = rnn.clone();
        let nf = neurode_solvers::VectorField::n_params(&f);
        neurode_solvers::VjpParams::set_params(&mut f, &theta[..nf]);
        let conn = f.connectivity();
        let mut out = vec![
            (NamedArray::from_col_major("W", n, n, w), Role::Theta),
            (
                NamedArray::from_col_major("w_in", n, n_in, w_in),
                Role::Theta,
            ),
        ];
        if let Some(g) = tau_g {
            out.push((vec("tau_g", g), Role::Theta));
        }
        out.extend([
            (vec("w_out", w_out), Role::Theta),
            (vec("b_out", b_out), Role::Theta),
            (vec("signs", conn.signs().to_vec()), Role::Fixed),
            (
                vec(
                    "som",
                    conn.som()
                        .iter()
                        .map(|&s| if s { T::one() } else { T::zero() })
                        .collect(),
                ),
                Role::Fixed,
            ),
            (
                NamedArray::from_col_major("W_eff", n, n, conn.effective()),
                Role::Derived,
            ),
        ]);
        let taus = f.time_constants().values();
        let taus = if taus.len() == 1 {
            vec![taus[0]; n]
        } else {
            taus
        };
        out.push((vec("taus", taus), Role::Derived));
        out
    }

    pub(super) fn structure<T: Real>(&self, arrays: &[NamedArray<T>]) -> serde_json::Value {
        let get = |name: &str| arrays.iter().find(|a| a.name == name);
        let (Some(signs), Some(taus), Some(weff)) = (get("signs"), get("taus"), get("W_eff"))
        else {
            return json!({"error": "the parameter arrays of a Kim rate RNN are incomplete"});
        };
        let n_inh = signs.data.iter().filter(|s| s.as_f64() < 0.0).count();
        let ms: Vec<f64> = taus.data.iter().map(|t| 5.0 * t.as_f64()).collect();
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        let sd =
            (ms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / ms.len().max(1) as f64).sqrt();
        let nonzero = weff.data.iter().filter(|w| w.as_f64() != 0.0).count();
        // A dense eigensolve is O(N³): skipped (null) above N = 2000, where it would take
        // seconds at the end of every run.
        let radius = (self.n <= 2000).then(|| {
            let eff: Vec<f64> = weff.data.iter().map(|w| w.as_f64()).collect();
            neurode_models::spectral_radius(self.n, &eff)
        });
        json!({
            "N": self.n,
            "excitatory": self.n - n_inh,
            "inhibitory": n_inh,
            "som": self.som_n.min(n_inh),
            "tau_ms": {"mean": mean, "sd": sd,
                       "min": ms.iter().copied().fold(f64::INFINITY, f64::min),
                       "max": ms.iter().copied().fold(f64::NEG_INFINITY, f64::max)},
            "connections": nonzero,
            "spectral_radius": radius,
            "activation": self.act.name(),
        })
    }
}
