//! The rate RNN of Kim, Li & Sejnowski (2019), "Simple framework for constructing
//! functional spiking recurrent neural networks", PNAS 116(45):22811–22820, and its
//! original TensorFlow code (`rkim35/spikeRNN`, `rate/model.py`):
//!
//! `τ ⊙ dx/dt = -x + W_eff φ(x) + W_in u(t)` (+ per-step noise), readout
//! `o = w_out φ(x) + b_out`,
//!
//! with `W_eff = (relu(W) D) ⊙ M_som` ([`Dale`]), `W_in` fixed, `w_out`, `b_out`, `W` and
//! the synaptic decay constants `τ = σ(g) (τ_max - τ_min) + τ_min` trained. Times are in
//! steps of the original's `Δt = 1` (5 ms): Euler with `dt = 1` and the noise bound as a
//! per-step signal ([`LeakyRnn::set_noise`]) reproduces the paper's discrete update
//! `x_t = (1 - 1/τ) x_{t-1} + (1/τ)(W_eff r_{t-1} + W_in u_{t-1}) + ξ_t`.

use neurode_solvers::{derive_seed, Activation, Normal, Real};

use crate::dale::Dale;
use crate::leaky::{LeakyRnn, TimeConstants};
use crate::readout::Readout;
use crate::ModelError;

/// The Kim et al. rate RNN: a [`LeakyRnn`] with [`Dale`] connectivity. Parameters `θ` are
/// `W` (raw), `B` (= `W_in`, kept fixed in training) and `tau_g` when the time constants
/// are trained.
pub type KimRateRnn<T> = LeakyRnn<T, Dale<T>>;

/// Distribution of the initial recurrent weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDist {
    /// `N(0, 1) · gain / √(N P_rec)` (the original's `gaus`, the only one its training
    /// script uses).
    Gaussian,
    /// `Gamma(shape 2, scale 0.003)`, no gain (the original's `gamma`).
    Gamma,
}

/// Settings of a Kim et al. rate RNN (the original's defaults: `N = 200`, `P_inh = 0.2`,
/// `P_rec = 0.2`, `som_N = 0`, gain 1.5, Gaussian weights, Dale's law, `τ` in `[4, 20]`
/// steps, sigmoid, one input).
#[derive(Debug, Clone, PartialEq)]
pub struct KimInit {
    /// Units `N`.
    pub n: usize,
    /// Probability that a unit is inhibitory (drawn per unit).
    pub p_inh: f64,
    /// Probability of each connection (drawn per entry, self-connections allowed).
    pub p_rec: f64,
    /// Number of SOM units (the first `som_n` inhibitory units).
    pub som_n: usize,
    /// Gain of the Gaussian initial weights.
    pub gain: f64,
    /// Initial weight distribution.
    pub w_dist: WeightDist,
    /// Dale's law (excitatory and inhibitory units).
    pub apply_dale: bool,
    /// `[τ]` (fixed) or `[τ_min, τ_max]` (trained), in steps.
    pub taus: Vec<f64>,
    /// Input channels.
    pub n_in: usize,
    /// Activation: sigmoid, clipped ReLU (`[0, 20]`) or softplus (clamped at 20).
    pub act: Activation,
    /// Scale each row's inhibitory weights so that its excitatory and inhibitory inputs
    /// cancel at initialisation (`Σ_j W_eff[i, j] = 0`), which removes the outlier
    /// eigenvalue the original initialisation leaves (about `N (1 - 2 P_inh) · mean|w|`,
    /// 4.5 at the paper's settings, against a bulk of radius about `gain`). The inhibitory
    /// weights grow by about `(1 - P_inh) / P_inh`, so the bulk widens to a radius of about
    /// `gain · sqrt((1 - P_inh) / P_inh)` (3.0 at the paper's settings), with no eigenvalue
    /// outside it. Not in the paper: off by default.
    pub balanced: bool,
}

impl Default for KimInit {
    fn default() -> Self {
        KimInit {
            n: 200,
            p_inh: 0.2,
            p_rec: 0.2,
            som_n: 0,
            gain: 1.5,
            w_dist: WeightDist::Gaussian,
            apply_dale: true,
            taus: vec![4.0, 20.0],
            n_in: 1,
            act: Activation::Sigmoid,
            balanced: false,
        }
    }
}

impl KimInit {
    /// Checks the settings; the error names the setting and what is allowed.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad = ModelError::invalid;
        if self.n == 0 {
            return Err(bad("N", 0.0, "a network needs at least one unit"));
        }
        if self.n_in == 0 {
            return Err(bad("n_in", 0.0, "the network needs at least one input"));
        }
        for (name, p) in [("P_inh", self.p_inh), ("P_rec", self.p_rec)] {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(bad(name, p, "a probability must lie in [0, 1]"));
            }
        }
        if self.p_rec == 0.0 {
            return Err(bad(
                "P_rec",
                0.0,
                "P_rec = 0 leaves no connections; use (0, 1]",
            ));
        }
        if !(self.gain.is_finite() && self.gain >= 0.0) {
            return Err(bad("gain", self.gain, "must be finite and >= 0"));
        }
        if self.som_n > self.n {
            return Err(bad(
                "som_N",
                self.som_n as f64,
                "more SOM units than units: som_N counts inhibitory units, at most N (and \
                 about P_inh N are inhibitory)",
            ));
        }
        if !self.apply_dale && self.p_inh > 0.0 && self.som_n > 0 {
            return Err(bad(
                "som_N",
                self.som_n as f64,
                "SOM units are inhibitory: they need Dale's law",
            ));
        }
        match self.taus[..] {
            [t] if t.is_finite() && t > 0.0 => {}
            [a, b] if a.is_finite() && b.is_finite() && a > 0.0 && b >= a => {}
            _ => {
                return Err(ModelError::Shape(format!(
                    "taus = {:?}: give one time constant or [min, max] with 0 < min <= max \
                     (in steps of 5 ms; the paper's 20-50 ms is [4, 10])",
                    self.taus
                )))
            }
        }
        Ok(())
    }
}

impl<T: Real> KimRateRnn<T> {
    /// A seeded random network and readout as in the original: units inhibitory with
    /// probability `P_inh`; connections with probability `P_rec`, Gaussian (`|·|` under
    /// Dale's law) or Gamma; `W_in ~ N(0, 1)`; `w_out ~ N(0, 1) / 100`, `b_out = 0`;
    /// `g ~ N(0, 1)` for trained time constants. Each has its own stream derived from
    /// `seed`.
    pub fn random(init: &KimInit, seed: u64) -> Result<(Self, Readout<T>), ModelError> {
        init.check()?;
        let n = init.n;
        let mut rng = Normal::new(derive_seed(seed, &[0]));
        let inh: Vec<bool> = (0..n)
            .map(|_| init.apply_dale && rng.uniform() < init.p_inh)
            .collect();
        let mut som = vec![false; n];
        for i in (0..n).filter(|&i| inh[i]).take(init.som_n) {
            som[i] = true;
        }
        let mut conn = Normal::new(derive_seed(seed, &[1]));
        let mut vals = Normal::new(derive_seed(seed, &[2]));
        let sd = init.gain / (n as f64 * init.p_rec).sqrt();
        let mut w = vec![0.0f64; n * n];
        // Row-major draws (`W[i, j]` for i, then j), stored column-major.
        for i in 0..n {
            for j in 0..n {
                let on = conn.uniform() < init.p_rec;
                let v = match init.w_dist {
                    WeightDist::Gaussian => vals.sample() * sd,
                    // Gamma(2, θ) is the sum of two exponentials of mean θ.
                    WeightDist::Gamma => {
                        -0.003 * ((1.0 - vals.uniform()).ln() + (1.0 - vals.uniform()).ln())
                    }
                };
                if on {
                    w[i + j * n] = if init.apply_dale { v.abs() } else { v };
                }
            }
        }
        if init.balanced && init.apply_dale {
            balance(n, &mut w, &inh, &som);
        }
        let mut rin = Normal::new(derive_seed(seed, &[3]));
        let w_in: Vec<T> = (0..n * init.n_in)
            .map(|_| T::from_f64(rin.sample()))
            .collect();
        let mut rout = Normal::new(derive_seed(seed, &[4]));
        let w_out: Vec<T> = (0..n).map(|_| T::from_f64(rout.sample() / 100.0)).collect();
        let tau = match init.taus[..] {
            [a, b] => {
                let mut rg = Normal::new(derive_seed(seed, &[5]));
                TimeConstants::Bounded {
                    g: (0..n).map(|_| T::from_f64(rg.sample())).collect(),
                    min: T::from_f64(a),
                    max: T::from_f64(b),
                }
            }
            _ => TimeConstants::Shared(T::from_f64(init.taus[0])),
        };
        let w: Vec<T> = w.into_iter().map(T::from_f64).collect();
        let dale = Dale::new(n, w, &inh, &som, init.apply_dale)?;
        let rnn = LeakyRnn::new(dale, T::one(), init.n_in, w_in)?
            .with_activation(init.act)?
            .with_time_constants(tau)?;
        let readout = Readout::rates(w_out, T::zero(), init.act)?;
        Ok((rnn, readout))
    }
}

/// Scales each row's inhibitory weights so that they cancel its excitatory ones.
fn balance(n: usize, w: &mut [f64], inh: &[bool], som: &[bool]) {
    for i in 0..n {
        let (mut e, mut s) = (0.0, 0.0);
        for j in 0..n {
            let v = w[i + j * n];
            if !inh[j] {
                e += v;
            } else if !som[i] {
                s += v;
            }
        }
        if s > 0.0 {
            for j in (0..n).filter(|&j| inh[j]) {
                w[i + j * n] *= e / s;
            }
        }
    }
}
