//! A LIF network converted from a trained rate RNN: the spiking half of Kim, Li &
//! Sejnowski (2019, PNAS), as the original's `LIF_network_fnc` (spikeRNN, `spiking/`) does
//! it.
//!
//! The rate network's effective weights `W = (w m) ⊙ som_m` become synapses of weight
//! `W/λ` (one per nonzero entry, [`Synapses::from_dense`]: a spike of neuron `j` adds
//! column `j`, the spike propagation of every network in [`crate::spiking`]); the readout
//! becomes `w_out/λ`. Per step of `dt` (0.05 ms), for every neuron:
//!
//! ```text
//! I     = (IPSC + bias) + W_in u[col]             col = min(⌊i/hold + 1/2⌋, columns − 1)
//! v     ← v + dt (I − v)/τm     unless refractory: t_{i+1} = dt (i + 1) ≤ t_last + τ_ref
//! v     ← v + σ ξ                ξ ~ N(0, 1), every step (refractory or not)
//! spike when v ≥ v_peak:  t_last ← t_{i+1},  v ← v_reset
//! IPSC  ← IPSC e^{−dt/τd} + h dt,     h  ← h e^{−dt/τr} + (Σ spiking columns of W/λ)/(τr τd)
//! r     ← r e^{−dt/τd} + hr dt,       hr ← hr e^{−dt/τr} + [spiked]/(τr τd)
//! out_i = (w_out/λ) · r
//! ```
//!
//! with the original's constants ([`Constants::original`]): τm = 10 ms, τ_ref = 2 ms,
//! τr = 2 ms, bias = v_peak = −40 mV, v_reset = −65 mV, σ = 0.1 mV, each input column held
//! for 100 steps (5 ms, the rate network's step), initial voltages uniform on
//! `[v_reset, 30)`, `t_last = 0` (so every neuron is refractory for the first 2 ms, and
//! one above threshold at the start spikes in the first step), and the decay constants of
//! the trained rate network, `τd = (σ(g)(τmax − τmin) + τmin) · 5 ms`
//! ([`decay_constants`]). The arithmetic follows the original's expressions operation for
//! operation (its time comparison for the refractory period included), so that with the
//! noise off the two give the same spike trains up to rounding.
//!
//! A step is the one every network here takes ([`propagate`]: the neurons fire, each spike
//! adds its column of `W`, the neurons receive it), with the same synapse store. The neurons
//! differ from the clustered network's ([`crate::spiking::neuron`]: exact propagators,
//! single-exponential synapses, refractory step counts): Euler in the membrane,
//! double-exponential synapses, a refractory clock that freezes the voltage (the noise still
//! acts), and a frozen neuron may still spike. That is the conversion's neuron model, a
//! [`Population`] of its own.
//!
//! ```
//! use neurode_models::spiking::converted::{Constants, ConvertedNetwork, RateNetwork,
//!     Record, Workspace};
//!
//! // Two neurons, one input: it drives neuron 0 above threshold and holds neuron 1 30 mV
//! // below it; neuron 0 excites neuron 1 weakly.
//! let rate = RateNetwork {
//!     n: 2,
//!     n_in: 1,
//!     w_eff: vec![0.0, 0.0, 1.0, 0.0],
//!     w_in: vec![60.0, -30.0],
//!     w_out: vec![0.0, 1.0],
//!     tau_d: vec![0.05, 0.05],
//! };
//! let net = ConvertedNetwork::<f64>::new(&rate, 20.0, &Constants::original())?;
//! let input = vec![1.0; 11]; // 11 columns: 10 × 5 ms = 50 ms
//! let (mut ws, mut rec) = (Workspace::new(), Record::new(true));
//! net.run(&input, 11, &[0.0, 0.0], None, &mut ws, &mut rec)?;
//! assert_eq!(rec.out.len(), 1000);
//! assert!(rec.counts[0] > 0 && rec.spikes.as_ref().unwrap().iter().all(|s| s.1 == 0));
//! # Ok::<(), neurode_models::spiking::SpikingError>(())
//! ```

use neurode_solvers::{Normal, Real};

use super::network::{propagate, Population};
use super::synapses::Synapses;
use super::SpikingError;

/// The LIF constants of a conversion (seconds, millivolts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    /// Step (s).
    pub dt: f64,
    /// Steps each input column is held (the rate network's step over `dt`).
    pub hold: usize,
    /// Membrane time constant τm (s).
    pub tau_m: f64,
    /// Refractory period (s).
    pub tau_ref: f64,
    /// Synaptic rise time τr (s).
    pub tau_rise: f64,
    /// Reset voltage (mV); the lower end of the initial voltages.
    pub v_reset: f64,
    /// Threshold (mV).
    pub v_peak: f64,
    /// The upper end of the initial voltages (mV; the original's spike height).
    pub v_top: f64,
    /// Constant bias current (mV).
    pub bias: f64,
    /// Standard deviation of the voltage noise added every step (mV); 0 switches it off.
    pub noise_sd: f64,
}

impl Constants {
    /// The original's constants (`LIF_network_fnc`, downsample 1).
    pub fn original() -> Constants {
        Constants {
            dt: 5e-5,
            hold: 100,
            tau_m: 0.010,
            tau_ref: 0.002,
            tau_rise: 0.002,
            v_reset: -65.0,
            v_peak: -40.0,
            v_top: 30.0,
            bias: -40.0,
            noise_sd: 0.1,
        }
    }

    /// Checks the constants.
    pub fn check(&self) -> Result<(), SpikingError> {
        let bad = |key: &str, value: f64, requirement: &str| {
            Err(SpikingError::Invalid {
                key: key.into(),
                value,
                requirement: requirement.into(),
            })
        };
        for (key, v) in [
            ("dt", self.dt),
            ("tau_m", self.tau_m),
            ("tau_rise", self.tau_rise),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, v, "a time > 0 (s)");
            }
        }
        if !(self.tau_ref.is_finite() && self.tau_ref >= 0.0) {
            return bad("tau_ref", self.tau_ref, "a time ≥ 0 (s)");
        }
        if !(self.noise_sd.is_finite() && self.noise_sd >= 0.0) {
            return bad(
                "noise",
                self.noise_sd,
                "a standard deviation ≥ 0 (mV; 0 switches the noise off)",
            );
        }
        for (key, v) in [("v_reset", self.v_reset), ("bias", self.bias)] {
            if !v.is_finite() {
                return bad(key, v, "a finite voltage");
            }
        }
        if !(self.v_peak.is_finite() && self.v_peak > self.v_reset) {
            return bad("v_peak", self.v_peak, "a finite threshold above the reset");
        }
        if !(self.v_top.is_finite() && self.v_top >= self.v_reset) {
            return bad("v_top", self.v_top, "a finite voltage ≥ the reset");
        }
        if self.hold == 0 {
            return bad("hold", 0.0, "at least one step per input column");
        }
        Ok(())
    }

    /// Steps of a trial of `columns` input columns: `(columns − 1) hold` (the original's
    /// `round((columns − 1) dt hold / dt)`).
    pub fn steps(&self, columns: usize) -> usize {
        columns.saturating_sub(1) * self.hold
    }
}

/// The synaptic decay constants (s) of a trained rate network, as the original computes
/// them from its variables: `(σ(g)(τmax − τmin) + τmin) · 5/1000` for `taus = [τmin, τmax]`
/// (in rate steps of 5 ms), `τ · 5/1000` for one `taus = [τ]`.
pub fn decay_constants(taus: &[f64], taus_gaus: &[f64], n: usize) -> Vec<f64> {
    match taus {
        [t0, t1, ..] => taus_gaus
            .iter()
            .map(|g| (1.0 / (1.0 + (-g).exp()) * (t1 - t0) + t0) * 5.0 / 1000.0)
            .collect(),
        [t] => vec![t * 5.0 / 1000.0; n],
        [] => Vec::new(),
    }
}

/// The trained rate network's variables that a conversion takes (all `f64`, rows
/// postsynaptic, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct RateNetwork {
    /// Units.
    pub n: usize,
    /// Input channels.
    pub n_in: usize,
    /// Effective recurrent weights `(w m) ⊙ som_m`, `n x n`, `[i * n + j]` onto `i` from
    /// `j`.
    pub w_eff: Vec<f64>,
    /// Input weights, `n x n_in`.
    pub w_in: Vec<f64>,
    /// Readout weights, `n`.
    pub w_out: Vec<f64>,
    /// Synaptic decay constants τd (s), `n` ([`decay_constants`]).
    pub tau_d: Vec<f64>,
}

impl RateNetwork {
    /// Checks shapes and values.
    pub fn check(&self) -> Result<(), SpikingError> {
        let n = self.n;
        for (key, got, want) in [
            ("w", self.w_eff.len(), n * n),
            ("w_in", self.w_in.len(), n * self.n_in),
            ("w_out", self.w_out.len(), n),
            ("taus_gaus", self.tau_d.len(), n),
        ] {
            if got != want {
                return Err(SpikingError::Shape {
                    key: key.into(),
                    got,
                    expected: format!("{want} for N = {n} and {} inputs", self.n_in),
                });
            }
        }
        if n == 0 {
            return Err(SpikingError::Invalid {
                key: "N".into(),
                value: 0.0,
                requirement: "at least one unit".into(),
            });
        }
        for (key, v) in [("w_in", &self.w_in), ("w_out", &self.w_out)] {
            if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                return Err(SpikingError::Invalid {
                    key: format!("{key}[{k}]"),
                    value: v[k],
                    requirement: "a finite weight".into(),
                });
            }
        }
        if let Some(k) = self.tau_d.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
            return Err(SpikingError::Invalid {
                key: format!("synaptic decay constant of unit {k}"),
                value: self.tau_d[k],
                requirement: "a time > 0 (s): check `taus` and `taus_gaus`".into(),
            });
        }
        Ok(())
    }
}

/// A converted network at one scaling factor λ (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ConvertedNetwork<T: Real> {
    n: usize,
    n_in: usize,
    lambda: f64,
    c: Constants,
    synapses: Synapses<T>,
    w_in: Vec<f64>,
    w_out: Vec<T>,
    /// `e^{−dt/τd}` per neuron.
    decay: Vec<T>,
    /// `e^{−dt/τr}`.
    rise: T,
    /// `τr τd` per neuron.
    rise_decay: Vec<T>,
    /// `1/(τr τd)` per neuron, as the original divides: `1.0/(τr τd)`.
    spike_step: Vec<T>,
}

/// Per-trial scratch of [`ConvertedNetwork::run`] (reused across trials: nothing is
/// allocated once it has grown to a trial's size).
#[derive(Debug, Clone, Default)]
pub struct Workspace<T> {
    state: State<T>,
    jd: Vec<T>,
    ext: Vec<T>,
    spiked: Vec<u32>,
}

/// The neurons' state: membrane, last spike time, the two synaptic filters, and the step's
/// noise.
#[derive(Debug, Clone, Default)]
struct State<T> {
    v: Vec<T>,
    t_last: Vec<f64>,
    ipsc: Vec<T>,
    h: Vec<T>,
    r: Vec<T>,
    hr: Vec<T>,
    noise: Vec<f64>,
}

impl<T: Real> Workspace<T> {
    /// An empty workspace.
    pub fn new() -> Workspace<T> {
        Workspace {
            state: State {
                v: Vec::new(),
                t_last: Vec::new(),
                ipsc: Vec::new(),
                h: Vec::new(),
                r: Vec::new(),
                hr: Vec::new(),
                noise: Vec::new(),
            },
            jd: Vec::new(),
            ext: Vec::new(),
            spiked: Vec::new(),
        }
    }
}

/// The converted neurons over one step, as [`propagate`] drives them.
struct Neurons<'a, T: Real> {
    net: &'a ConvertedNetwork<T>,
    state: &'a mut State<T>,
    /// The input current of the step's column.
    ext: &'a [T],
    /// `dt (i + 1)`.
    now: f64,
}

impl<T: Real> Population<T> for Neurons<'_, T> {
    fn fire(&mut self, spikes: &mut Vec<u32>) {
        let c = &self.net.c;
        let t = |x: f64| T::from(x).unwrap_or(T::zero());
        let (dt, tau_m, bias, sd) = (t(c.dt), t(c.tau_m), t(c.bias), t(c.noise_sd));
        let (now, tau_ref) = (self.now, c.tau_ref);
        let n = self.net.n;
        let st = &mut *self.state;
        // The membrane of every neuron (branch-free, so that it vectorises), then the
        // threshold (rare crossings).
        for ((((v, &ipsc), &e), &last), &z) in st.v[..n]
            .iter_mut()
            .zip(&st.ipsc[..n])
            .zip(self.ext)
            .zip(&st.t_last[..n])
            .zip(&st.noise[..n])
        {
            let current = (ipsc + bias) + e;
            let stepped = *v + dt * ((current - *v) / tau_m);
            let free = now > last + tau_ref;
            *v = if free { stepped } else { *v } + t(z) * sd;
        }
        let (v_peak, v_reset) = (t(c.v_peak), t(c.v_reset));
        for (k, (v, last)) in st.v[..n].iter_mut().zip(&mut st.t_last[..n]).enumerate() {
            if *v >= v_peak {
                *last += now - *last;
                *v = v_reset;
                spikes.push(k as u32);
            }
        }
    }

    fn receive(&mut self, jd: &mut [T], spikes: &[u32]) {
        let net = self.net;
        let n = net.n;
        let dt = T::from(net.c.dt).unwrap_or(T::zero());
        let st = &mut *self.state;
        // IPSC and r from the old h and hr, then h and hr.
        for ((((ipsc, &h), r), &hr), &d) in st.ipsc[..n]
            .iter_mut()
            .zip(&st.h[..n])
            .zip(st.r[..n].iter_mut())
            .zip(&st.hr[..n])
            .zip(&net.decay[..n])
        {
            *ipsc = *ipsc * d + h * dt;
            *r = *r * d + hr * dt;
        }
        let rise = net.rise;
        if spikes.is_empty() {
            // Nothing arrives: the original's `h e^{−dt/τr} + 0/(τr τd)` is this.
            st.h[..n].iter_mut().for_each(|h| *h *= rise);
        } else {
            for ((h, jd), &rd) in st.h[..n]
                .iter_mut()
                .zip(jd[..n].iter_mut())
                .zip(&net.rise_decay[..n])
            {
                *h = *h * rise + *jd / rd;
                *jd = T::zero();
            }
        }
        st.hr[..n].iter_mut().for_each(|hr| *hr *= rise);
        for &j in spikes {
            st.hr[j as usize] += net.spike_step[j as usize];
        }
    }
}

/// What a trial leaves: the output at every step, the spike count per neuron, and the
/// spikes themselves when asked for.
#[derive(Debug, Clone, Default)]
pub struct Record<T> {
    /// `out_i` for every step `i`.
    pub out: Vec<T>,
    /// Spikes per neuron.
    pub counts: Vec<u32>,
    /// `(step, neuron)` of every spike, in order (only when recorded).
    pub spikes: Option<Vec<(u32, u32)>>,
}

impl<T: Real> Record<T> {
    /// An empty record; `spikes`: whether to keep every spike.
    pub fn new(spikes: bool) -> Record<T> {
        Record {
            out: Vec::new(),
            counts: Vec::new(),
            spikes: spikes.then(Vec::new),
        }
    }
}

impl<T: Real> ConvertedNetwork<T> {
    /// The spiking network of `rate` at scaling factor `lambda` (`W/λ`, `w_out/λ`).
    pub fn new(
        rate: &RateNetwork,
        lambda: f64,
        c: &Constants,
    ) -> Result<ConvertedNetwork<T>, SpikingError> {
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(SpikingError::Invalid {
                key: "lambda".into(),
                value: lambda,
                requirement: "a scaling factor > 0 (the original's grid is 20 to 75)".into(),
            });
        }
        c.check()?;
        rate.check()?;
        let t = |x: f64| T::from(x).unwrap_or(T::zero());
        let scaled: Vec<f64> = rate.w_eff.iter().map(|w| w / lambda).collect();
        let synapses = Synapses::from_dense(rate.n, &scaled)?;
        let rise_decay: Vec<f64> = rate.tau_d.iter().map(|td| c.tau_rise * td).collect();
        Ok(ConvertedNetwork {
            n: rate.n,
            n_in: rate.n_in,
            lambda,
            c: *c,
            synapses,
            w_in: rate.w_in.clone(),
            w_out: rate.w_out.iter().map(|w| t(w / lambda)).collect(),
            decay: rate.tau_d.iter().map(|td| t((-c.dt / td).exp())).collect(),
            rise: t((-c.dt / c.tau_rise).exp()),
            spike_step: rise_decay.iter().map(|x| t(1.0 / x)).collect(),
            rise_decay: rise_decay.into_iter().map(t).collect(),
        })
    }

    /// Neurons.
    pub fn neurons(&self) -> usize {
        self.n
    }
    /// Input channels.
    pub fn inputs(&self) -> usize {
        self.n_in
    }
    /// The scaling factor λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }
    /// The constants.
    pub fn constants(&self) -> &Constants {
        &self.c
    }
    /// The synapses (`W/λ`).
    pub fn synapses(&self) -> &Synapses<T> {
        &self.synapses
    }

    /// Runs one trial. `input` holds `columns` columns of the rate network's input,
    /// column-major (`input[c * n_in + k]`: channel `k` in column `c`), each held for
    /// [`Constants::hold`] steps; the trial has [`Constants::steps`] steps. `uniforms` are
    /// the `n` draws on `[0, 1)` of the initial voltages `v_reset + u (v_top − v_reset)`;
    /// `noise` draws the voltage noise, 32 random bits a number (`Normal::fill_standard_32`;
    /// `None`, or a standard deviation of 0: none).
    pub fn run(
        &self,
        input: &[f64],
        columns: usize,
        uniforms: &[f64],
        noise: Option<&mut Normal>,
        ws: &mut Workspace<T>,
        rec: &mut Record<T>,
    ) -> Result<(), SpikingError> {
        let n = self.n;
        if columns < 2 || input.len() != columns * self.n_in {
            return Err(SpikingError::Shape {
                key: "input".into(),
                got: input.len(),
                expected: format!(
                    "{} inputs x {columns} columns, at least 2 columns",
                    self.n_in
                ),
            });
        }
        if uniforms.len() != n {
            return Err(SpikingError::Shape {
                key: "initial voltages".into(),
                got: uniforms.len(),
                expected: format!("{n} (one per neuron)"),
            });
        }
        let c = &self.c;
        let t = |x: f64| T::from(x).unwrap_or(T::zero());
        // The input current of every column, W_in u (in f64, as the original).
        ws.ext.clear();
        for col in 0..columns {
            let u = &input[col * self.n_in..(col + 1) * self.n_in];
            ws.ext.extend((0..n).map(|i| {
                let w = &self.w_in[i * self.n_in..(i + 1) * self.n_in];
                t(w.iter().zip(u).map(|(a, b)| a * b).sum::<f64>())
            }));
        }
        let reset = |v: &mut Vec<T>, x: T| {
            v.clear();
            v.resize(n, x);
        };
        let st = &mut ws.state;
        st.v.clear();
        st.v.extend(
            uniforms
                .iter()
                .map(|u| t(c.v_reset + u * (c.v_top - c.v_reset))),
        );
        st.t_last.clear();
        st.t_last.resize(n, 0.0);
        for v in [&mut st.ipsc, &mut st.h, &mut st.r, &mut st.hr, &mut ws.jd] {
            reset(v, T::zero());
        }
        st.noise.clear();
        st.noise.resize(n, 0.0);
        // Without noise the buffer stays zero: `v + 0 σ` is `v`.
        let mut noise = noise.filter(|_| c.noise_sd > 0.0);
        let steps = c.steps(columns);
        rec.out.clear();
        rec.out.reserve(steps);
        rec.counts.clear();
        rec.counts.resize(n, 0);
        if let Some(s) = rec.spikes.as_mut() {
            s.clear();
        }
        let hold = c.hold as f64;
        for i in 0..steps {
            let col = ((i as f64 / hold + 0.5) as usize).min(columns - 1);
            if let Some(z) = noise.as_deref_mut() {
                z.fill_standard_32(&mut ws.state.noise);
            }
            let mut neurons = Neurons {
                net: self,
                state: &mut ws.state,
                ext: &ws.ext[col * n..(col + 1) * n],
                now: c.dt * (i + 1) as f64,
            };
            propagate(&self.synapses, &mut neurons, &mut ws.spiked, &mut ws.jd);
            for &j in &ws.spiked {
                rec.counts[j as usize] += 1;
                if let Some(s) = rec.spikes.as_mut() {
                    s.push((i as u32, j));
                }
            }
            rec.out.push(dot(&self.w_out, &ws.state.r[..n]));
        }
        Ok(())
    }
}

/// `Σ a_k b_k` in eight interleaved partial sums, added pairwise at the end: a fixed order
/// (the same result on every run and thread count) that vectorises, where one running sum
/// is a chain of dependent additions.
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dot_product_is_the_sum_of_products() {
        for n in [0, 1, 7, 8, 9, 200, 203] {
            let a: Vec<f64> = (0..n).map(|k| (k as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n).map(|k| 1.0 + k as f64 * 0.01).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - want).abs() < 1e-13, "n {n}");
        }
    }

    fn lone(tau_d: f64, w_in: f64) -> RateNetwork {
        RateNetwork {
            n: 1,
            n_in: 1,
            w_eff: vec![0.0],
            w_in: vec![w_in],
            w_out: vec![1.0],
            tau_d: vec![tau_d],
        }
    }

    /// A noiseless trial of the one-neuron network `net`: input `u` in every one of
    /// `columns` columns, the initial voltage from the uniform `u0`, every spike kept.
    fn quiet_trial(net: &ConvertedNetwork<f64>, u: f64, columns: usize, u0: f64) -> Record<f64> {
        let (mut ws, mut rec) = (Workspace::new(), Record::new(true));
        net.run(&vec![u; columns], columns, &[u0], None, &mut ws, &mut rec)
            .unwrap();
        rec
    }

    fn quiet() -> Constants {
        Constants {
            noise_sd: 0.0,
            ..Constants::original()
        }
    }

    /// Below threshold the membrane is forward Euler of `τm dv/dt = I − v`: from the reset
    /// under a constant input `I = bias + a` it follows `v_k = I + (v0 − I)(1 − dt/τm)^k`
    /// (after the first 2 ms, when it is frozen).
    #[test]
    fn the_membrane_is_euler_and_frozen_for_the_first_refractory_period() {
        let c = quiet();
        let net = ConvertedNetwork::<f64>::new(&lone(0.02, 20.0), 1.0, &c).unwrap();
        // A drive of −40 + 20 = −20 mV would fire: watch it until the crossing.
        let rec = quiet_trial(&net, 1.0, 21, 0.0);
        let first = rec.spikes.as_ref().unwrap()[0].0 as usize;
        // Frozen at −65 while t ≤ 2 ms (steps 0..39), then Euler from −65 towards −20.
        let a = 1.0 - c.dt / c.tau_m;
        let k_cross = (0..)
            .find(|&k| -20.0 + (-65.0 + 20.0) * a.powi(k) >= -40.0)
            .unwrap();
        assert_eq!(first, 39 + k_cross as usize);
    }

    /// A single spike gives the double-exponential response: `r(t)` for a spike at `t_s`
    /// is `(e^{−t/τd} − e^{−t/τr})/(τd − τr)` sampled after the filter's Euler-in-time
    /// updates; checked against the recursion's closed form, the integral `Σ r dt → 1`
    /// over a long window, and the peak time `τr τd ln(τd/τr)/(τd − τr)` within a step.
    #[test]
    fn a_spike_is_filtered_by_the_double_exponential() {
        let c = quiet();
        let td = 0.03;
        let net = ConvertedNetwork::<f64>::new(&lone(td, 0.0), 1.0, &c).unwrap();
        // Starts just above threshold: one spike in step 0 (the first step may spike), then
        // decays from the reset under the bias (−40, never reached).
        let u0 = (-39.0 - c.v_reset) / (c.v_top - c.v_reset);
        let rec = quiet_trial(&net, 0.0, 301, u0); // 1.5 s: the tail left out is e^{−50}
        assert_eq!(rec.spikes.as_ref().unwrap(), &vec![(0, 0)]);
        // Σ r dt of the recursion: dt² / ((1 − e^{−dt/τd})(1 − e^{−dt/τr}) τr τd), which
        // tends to 1 (the filter's unit area) as dt → 0 (1.013 here).
        let (a, b) = ((-c.dt / td).exp(), (-c.dt / c.tau_rise).exp());
        let total: f64 = rec.out.iter().sum::<f64>() * c.dt;
        let want = c.dt * c.dt / ((1.0 - a) * (1.0 - b) * c.tau_rise * td);
        assert!((total - want).abs() < 1e-9, "integral {total} vs {want}");
        assert!((want - 1.0).abs() < 0.02);
        let peak = rec
            .out
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |m, (k, &x)| if x > m.1 { (k, x) } else { m })
            .0;
        let tr = c.tau_rise;
        let t_peak = tr * td * (td / tr).ln() / (td - tr);
        assert!(
            ((peak as f64) * c.dt - t_peak).abs() < 2.0 * c.dt,
            "peak at {} s vs {t_peak} s",
            peak as f64 * c.dt
        );
        // The exact recursion: hr jumps to 1/(τr τd) at step 0, r from step 1 on.
        let (mut r, mut hr) = (0.0, 1.0 / (tr * td));
        for (k, &o) in rec.out.iter().enumerate().skip(1).take(200) {
            r = r * a + hr * c.dt;
            hr *= b;
            assert!((o - r).abs() <= 1e-12 * r.abs(), "step {k}: {o} vs {r}");
        }
    }

    /// The refractory clock: under a strong drive the interval between spikes is the
    /// refractory period plus the steps to climb back from the reset.
    #[test]
    fn spikes_are_separated_by_the_refractory_period() {
        let c = quiet();
        let net = ConvertedNetwork::<f64>::new(&lone(0.02, 1e5), 1.0, &c).unwrap();
        let s = quiet_trial(&net, 1.0, 11, 0.0).spikes.unwrap();
        let gaps: Vec<u32> = s.windows(2).map(|w| w[1].0 - w[0].0).collect();
        // A drive of 1e5 mV crosses within one free step; free again after the 40 steps
        // of 2 ms, or 39 where the original's clock comparison `dt (i + 1) > t_last +
        // τ_ref` rounds the other way (as it does in the original).
        assert!(gaps.len() > 20, "{gaps:?}");
        assert!(gaps.iter().all(|&g| g == 40 || g == 41), "{gaps:?}");
        assert!(gaps.iter().filter(|&&g| g == 41).count() > gaps.len() / 2);
    }

    /// A spike of neuron `j` reaches neuron `i` through `W[i, j]/λ`: the current of the
    /// target is the double-exponential filter of `W/λ`, so doubling λ halves it.
    #[test]
    fn weights_are_scaled_by_lambda_and_f32_follows_f64() {
        let rate = RateNetwork {
            n: 2,
            n_in: 1,
            w_eff: vec![0.0, 0.0, 0.3, 0.0],
            // Neuron 1 is held far below threshold (−40 − 30 mV): it never spikes.
            w_in: vec![0.0, -30.0],
            w_out: vec![1.0, 2.0],
            tau_d: vec![0.02, 0.04],
        };
        let c = quiet();
        let u0 = (-39.0 - c.v_reset) / (c.v_top - c.v_reset);
        let mut outs = vec![];
        for lambda in [10.0, 20.0] {
            let net = ConvertedNetwork::<f64>::new(&rate, lambda, &c).unwrap();
            let (mut ws, mut rec) = (Workspace::new(), Record::new(false));
            net.run(&[1.0; 21], 21, &[u0, 0.0], None, &mut ws, &mut rec)
                .unwrap();
            assert_eq!(rec.counts, vec![1, 0]);
            outs.push((rec.out.clone(), ws.state.ipsc[1]));
            let n32 = ConvertedNetwork::<f32>::new(&rate, lambda, &c).unwrap();
            let (mut w32, mut r32) = (Workspace::new(), Record::new(false));
            n32.run(&[1.0; 21], 21, &[u0, 0.0], None, &mut w32, &mut r32)
                .unwrap();
            assert_eq!(r32.counts, rec.counts);
            let peak = rec.out.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for (a, b) in r32.out.iter().zip(&rec.out) {
                assert!((*a as f64 - b).abs() <= 1e-5 * peak, "{a} vs {b}");
            }
        }
        // Output: neuron 0's filtered spike times w_out/λ; the current: W/λ filtered.
        for (a, b) in outs[0].0.iter().zip(&outs[1].0) {
            assert!((a - 2.0 * b).abs() <= 1e-12 * a.abs());
        }
        assert!(outs[0].1 > 0.0 && (outs[0].1 - 2.0 * outs[1].1).abs() < 1e-12 * outs[0].1);
    }

    /// The noise moves a frozen neuron too (the original adds it every step), and its
    /// standard deviation is the one asked for.
    #[test]
    fn the_noise_has_its_standard_deviation() {
        let c = Constants {
            tau_ref: 10.0,
            ..Constants::original()
        };
        let net = ConvertedNetwork::<f64>::new(&lone(0.02, 0.0), 1.0, &c).unwrap();
        let mut rng = Normal::new(4);
        let (mut ws, mut rec) = (Workspace::new(), Record::new(false));
        // Frozen for the whole trial: v is a random walk of 1000 steps from −65.
        let mut ends = vec![];
        for _ in 0..400 {
            net.run(&[0.0; 11], 11, &[0.0], Some(&mut rng), &mut ws, &mut rec)
                .unwrap();
            ends.push(ws.state.v[0] + 65.0);
        }
        let var = ends.iter().map(|x| x * x).sum::<f64>() / ends.len() as f64;
        let want = 1000.0 * 0.01;
        assert!((var / want - 1.0).abs() < 0.2, "variance {var} vs {want}");
    }

    #[test]
    fn bad_settings_are_named() {
        let c = Constants::original();
        for lambda in [0.0, -3.0, f64::NAN] {
            let e = ConvertedNetwork::<f64>::new(&lone(0.02, 1.0), lambda, &c).unwrap_err();
            assert!(e.to_string().contains("lambda"), "{e}");
        }
        let e = ConvertedNetwork::<f64>::new(&lone(-1.0, 1.0), 20.0, &c).unwrap_err();
        assert!(e.to_string().contains("decay"), "{e}");
        let net = ConvertedNetwork::<f64>::new(&lone(0.02, 1.0), 20.0, &c).unwrap();
        let (mut ws, mut rec) = (Workspace::new(), Record::new(false));
        assert!(net.run(&[1.0], 1, &[0.0], None, &mut ws, &mut rec).is_err());
        assert!(net
            .run(&[1.0, 1.0], 2, &[0.0, 0.0], None, &mut ws, &mut rec)
            .is_err());
    }

    #[test]
    fn decay_constants_follow_the_originals_formula() {
        let td = decay_constants(&[4.0, 20.0], &[0.0, 1.0], 2);
        assert!((td[0] - 0.06).abs() < 1e-15);
        let s = 1.0 / (1.0 + (-1.0f64).exp());
        assert!((td[1] - (s * 16.0 + 4.0) * 0.005).abs() < 1e-15);
        assert_eq!(decay_constants(&[10.0], &[], 3), vec![0.05; 3]);
    }
}
