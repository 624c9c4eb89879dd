//! [`LifNetwork`]: a fixed-step simulator of current-based LIF neurons with exponential
//! synapses, recurrent synapses by presynaptic neuron, external Poisson input and a
//! stimulus. One step costs the neurons' update plus the spikes' fan-out; nothing is
//! allocated once the network is built.
//!
//! The step itself ([`propagate`]) is shared by every network of [`crate::spiking`]: the
//! neurons (a [`Population`]) fire, each spike adds its column of `W`, the neurons receive
//! the sum.

use neurode_solvers::{Real, Stream};

use super::input::{Poisson, Stimulus};
use super::neuron::{advance, refractory_steps, DeadTime, Mechanism, NeuronParams, Propagators};
use super::synapses::Synapses;
use super::SpikingError;

/// External Poisson input: per (source, target) class pair in the order (E→E, E→I, I→E,
/// I→I), `c` sources of rate `nu` (Hz) onto each target neuron with weight `j`. Each step a
/// target neuron of class `b` receives `Poisson(dt ν c)` counts from each source class `a`,
/// weighted by `j` (the original's `ExternalCurrentsGenerator`).
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// Synapses per target neuron.
    pub c: [f64; 4],
    /// Rate of each source (Hz).
    pub nu: [f64; 4],
    /// Weight.
    pub j: [f64; 4],
}

impl External {
    /// Checks the settings for steps of `dt` (keys as in the original's
    /// `external_currents`).
    pub fn check(&self, dt: f64) -> Result<(), SpikingError> {
        for k in 0..4 {
            for (key, v, nonneg) in [
                ("external_currents.c_ext", self.c[k], true),
                ("external_currents.nu_ext_baseline", self.nu[k], true),
                ("j_ext", self.j[k], false),
            ] {
                if !v.is_finite() || (nonneg && v < 0.0) {
                    return Err(SpikingError::Invalid {
                        key: format!("{key}[{k}]"),
                        value: v,
                        requirement: if nonneg {
                            "a number ≥ 0 (counts and rates are not negative)".into()
                        } else {
                            "a finite weight".into()
                        },
                    });
                }
            }
            let mean = dt * self.nu[k] * self.c[k];
            if mean > Poisson::MAX_MEAN {
                return Err(SpikingError::Invalid {
                    key: format!("external_currents.nu_ext_baseline[{k}]"),
                    value: self.nu[k],
                    requirement: format!(
                        "the mean external count per step, delta_t·nu·c_ext = {mean:.3e}, is \
                         at most {:e}; use a lower rate, fewer external synapses or a \
                         smaller delta_t",
                        Poisson::MAX_MEAN
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Everything a [`LifNetwork`] is built from, but the synapses.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// Step (s).
    pub dt: f64,
    /// Excitatory neurons (the first `n_exc`; the target class of the external input).
    pub n_exc: usize,
    /// Per-neuron constants.
    pub neurons: Vec<NeuronParams>,
    /// How a step integrates.
    pub mechanism: Mechanism,
    /// How long a neuron is held after a spike.
    pub dead_time: DeadTime,
    /// External input.
    pub external: External,
    /// The stimulus and the neurons it acts on.
    pub stimulus: Option<(Stimulus, Vec<usize>)>,
    /// Seed of the external input's stream.
    pub seed: u64,
}

/// Checks one neuron's constants against the step `dt` (`index` names it).
pub fn check_neuron(p: &NeuronParams, dt: f64, index: usize) -> Result<(), SpikingError> {
    let bad = |key: &str, value: f64, requirement: String| SpikingError::Invalid {
        key: key.to_string(),
        value,
        requirement: format!("{requirement} (first at neuron {index})"),
    };
    for (key, v) in [("tau_membrane", p.tau_m), ("tau_synaptic", p.tau_s)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(bad(key, v, "a time constant > 0 (s)".into()));
        }
        if dt > v {
            return Err(bad(
                key,
                v,
                format!(
                    "a time constant shorter than the time step delta_t = {dt} s is not \
                     resolved; use a smaller delta_t"
                ),
            ));
        }
    }
    if !(p.tau_ref.is_finite() && p.tau_ref >= 0.0) {
        return Err(bad("tau_refractory", p.tau_ref, "a time ≥ 0 (s)".into()));
    }
    if p.tau_ref > 0.0 && dt > p.tau_ref * (1.0 + 1e-9) {
        return Err(bad(
            "tau_refractory",
            p.tau_ref,
            format!(
                "a refractory period shorter than the time step delta_t = {dt} s cannot be \
                 resolved; use a smaller delta_t"
            ),
        ));
    }
    if !p.reset.is_finite() {
        return Err(bad("reset_voltage", p.reset, "a finite voltage".into()));
    }
    if !(p.threshold.is_finite() && p.threshold > p.reset) {
        return Err(bad(
            "threshold",
            p.threshold,
            format!("a finite voltage above the reset {}", p.reset),
        ));
    }
    Ok(())
}

/// The neurons of a network as [`propagate`] steps them: they integrate and fire, then
/// take the step's recurrent input into their synapses.
pub trait Population<T: Real> {
    /// Advances every neuron over the step and appends those that spiked to `spikes`, in
    /// ascending order.
    fn fire(&mut self, spikes: &mut Vec<u32>);
    /// Takes the step's recurrent input (`input[i]`: the summed weights of this step's
    /// spikes onto neuron `i`) into the synapses and sets it back to zero; `spikes` are the
    /// step's spikes.
    fn receive(&mut self, input: &mut [T], spikes: &[u32]);
}

/// One step of a spiking network, the loop every network here shares: the neurons fire,
/// each spike adds its column of `W` into `input` (the spike propagation,
/// [`Synapses::add_column`]), and the neurons receive it. `spikes` holds the step's spikes
/// afterwards; `input` is all zeros before and after.
#[inline(always)]
pub fn propagate<T: Real, P: Population<T>>(
    synapses: &Synapses<T>,
    neurons: &mut P,
    spikes: &mut Vec<u32>,
    input: &mut [T],
) {
    spikes.clear();
    neurons.fire(spikes);
    for &j in spikes.iter() {
        synapses.add_column(j as usize, input);
    }
    neurons.receive(input, spikes);
}

/// A network of LIF neurons (see the [module docs](self)); state `V`, `I` per neuron,
/// initially 0 (the original's).
#[derive(Debug, Clone)]
pub struct LifNetwork<T: Real> {
    neurons: Clustered<T>,
    synapses: Synapses<T>,
    input: Vec<T>,
    spikes: Vec<u32>,
}

/// The neurons of a [`LifNetwork`]: exponential synapses, refractory counts, external
/// Poisson input and the stimulus.
#[derive(Debug, Clone)]
struct Clustered<T: Real> {
    dt: f64,
    n_exc: usize,
    step: usize,
    v: Vec<T>,
    i: Vec<T>,
    count: Vec<u32>,
    hold: Vec<u32>,
    prop: Vec<[T; 4]>,
    threshold: Vec<T>,
    reset: Vec<T>,
    inv_tau_s: Vec<T>,
    /// Samplers per (source class, target class) pair, and their weights.
    poisson: [Poisson; 4],
    j_ext: [T; 4],
    stimulus: Option<Stimulus>,
    stim_on: Vec<T>,
    stream: Stream,
}

impl<T: Real> Clustered<T> {
    /// The stimulus current at step `k`.
    fn stimulus_at(&self, k: usize) -> f64 {
        self.stimulus.as_ref().map_or(0.0, |s| s.at(k, self.dt))
    }
}

impl<T: Real> Population<T> for Clustered<T> {
    fn fire(&mut self, spikes: &mut Vec<u32>) {
        let s_now = T::from(self.stimulus_at(self.step)).unwrap_or(T::zero());
        for k in 0..self.v.len() {
            if advance(
                &mut self.v[k],
                &mut self.i[k],
                &mut self.count[k],
                s_now * self.stim_on[k],
                self.prop[k],
                self.threshold[k],
                self.reset[k],
                self.hold[k],
            ) {
                spikes.push(k as u32);
            }
        }
    }

    fn receive(&mut self, input: &mut [T], _spikes: &[u32]) {
        // External counts, per target class, then the step's input into I (acting from the
        // next step).
        let n = self.v.len();
        for (range, from_e, from_i) in [(0..self.n_exc, 0, 2), (self.n_exc..n, 1, 3)] {
            let (pe, pi) = (&self.poisson[from_e], &self.poisson[from_i]);
            let (je, ji) = (self.j_ext[from_e], self.j_ext[from_i]);
            for k in range {
                let mut x = input[k];
                if pe.mean() > 0.0 {
                    x += je * T::from(pe.draw(&mut self.stream)).unwrap_or(T::zero());
                }
                if pi.mean() > 0.0 {
                    x += ji * T::from(pi.draw(&mut self.stream)).unwrap_or(T::zero());
                }
                self.i[k] += x * self.inv_tau_s[k];
                input[k] = T::zero();
            }
        }
        self.step += 1;
    }
}

impl<T: Real> LifNetwork<T> {
    /// Builds the network (checks every neuron against the step).
    pub fn new(setup: &Setup, synapses: Synapses<T>) -> Result<LifNetwork<T>, SpikingError> {
        let n = setup.neurons.len();
        if synapses.neurons() != n {
            return Err(SpikingError::Shape {
                key: "synapses".into(),
                got: synapses.neurons(),
                expected: format!("{n} (one per neuron)"),
            });
        }
        if !(setup.dt.is_finite() && setup.dt > 0.0) {
            return Err(SpikingError::Invalid {
                key: "simulation.delta_t".into(),
                value: setup.dt,
                requirement: "a time step > 0 (s)".into(),
            });
        }
        if setup.n_exc > n {
            return Err(SpikingError::Invalid {
                key: "simulation.n_excitatory".into(),
                value: setup.n_exc as f64,
                requirement: format!("at most the {n} neurons"),
            });
        }
        for (k, p) in setup.neurons.iter().enumerate() {
            check_neuron(p, setup.dt, k)?;
        }
        setup.external.check(setup.dt)?;
        let t = |x: f64| T::from(x).unwrap_or(T::zero());
        let dt = setup.dt;
        let poisson =
            [0, 1, 2, 3].map(|k| Poisson::new(dt * setup.external.nu[k] * setup.external.c[k]));
        let poisson = match poisson {
            [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
            [a, b, c, d] => {
                return Err([a, b, c, d].into_iter().find_map(|r| r.err()).unwrap_or(
                    SpikingError::Shape {
                        key: "external input".into(),
                        got: 0,
                        expected: "four samplers".into(),
                    },
                ))
            }
        };
        let mut stim_on = vec![T::zero(); n];
        let stimulus = match &setup.stimulus {
            Some((s, neurons)) => {
                for &k in neurons {
                    if k >= n {
                        return Err(SpikingError::Invalid {
                            key: "stimulus.stimulated_neurons".into(),
                            value: k as f64,
                            requirement: format!("a neuron index below {n}"),
                        });
                    }
                    stim_on[k] = T::one();
                }
                Some(s.clone())
            }
            None => None,
        };
        let neurons = Clustered {
            dt,
            n_exc: setup.n_exc,
            step: 0,
            v: vec![T::zero(); n],
            i: vec![T::zero(); n],
            count: vec![0; n],
            hold: setup
                .neurons
                .iter()
                .map(|p| refractory_steps(p.tau_ref, dt, setup.dead_time))
                .collect(),
            prop: setup
                .neurons
                .iter()
                .map(|p| {
                    let q = Propagators::of(setup.mechanism, p, dt);
                    [t(q.p00), t(q.p01), t(q.p02), t(q.p11)]
                })
                .collect(),
            threshold: setup.neurons.iter().map(|p| t(p.threshold)).collect(),
            reset: setup.neurons.iter().map(|p| t(p.reset)).collect(),
            inv_tau_s: setup.neurons.iter().map(|p| t(1.0 / p.tau_s)).collect(),
            poisson,
            j_ext: setup.external.j.map(t),
            stimulus,
            stim_on,
            stream: Stream::new(setup.seed),
        };
        Ok(LifNetwork {
            neurons,
            synapses,
            input: vec![T::zero(); n],
            spikes: Vec::with_capacity(n),
        })
    }

    /// Neurons.
    pub fn neurons(&self) -> usize {
        self.neurons.v.len()
    }
    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.neurons.step
    }
    /// The step (s).
    pub fn dt(&self) -> f64 {
        self.neurons.dt
    }
    /// Membrane potentials.
    pub fn voltage(&self) -> &[T] {
        &self.neurons.v
    }
    /// Synaptic currents.
    pub fn current(&self) -> &[T] {
        &self.neurons.i
    }
    /// Sets the state (`V`, `I`); the refractory counts are cleared.
    pub fn set_state(&mut self, v: &[T], i: &[T]) -> Result<(), SpikingError> {
        let n = self.neurons();
        for (key, x) in [("voltage", v), ("current", i)] {
            if x.len() != n {
                return Err(SpikingError::Shape {
                    key: key.into(),
                    got: x.len(),
                    expected: format!("{n} (one per neuron)"),
                });
            }
        }
        self.neurons.v.copy_from_slice(v);
        self.neurons.i.copy_from_slice(i);
        self.neurons.count.iter_mut().for_each(|c| *c = 0);
        Ok(())
    }
    /// The synapses.
    pub fn synapses(&self) -> &Synapses<T> {
        &self.synapses
    }
    /// Steps held at reset after a spike, per neuron.
    pub fn hold_steps(&self) -> &[u32] {
        &self.neurons.hold
    }
    /// The stimulus current at step `k`.
    pub fn stimulus_at(&self, k: usize) -> f64 {
        self.neurons.stimulus_at(k)
    }

    /// Advances one step; returns the neurons that spiked in it (ascending).
    pub fn step(&mut self) -> &[u32] {
        propagate(
            &self.synapses,
            &mut self.neurons,
            &mut self.spikes,
            &mut self.input,
        );
        &self.spikes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spiking::blocks::{Blocks, Class, MaskKind};

    /// The template's neuron (τm 20 ms, τs 5 ms, τ_ref 5 ms, reset 0), threshold `theta`.
    fn neuron(theta: f64) -> NeuronParams {
        NeuronParams {
            tau_m: 0.02,
            tau_s: 0.005,
            tau_ref: 0.005,
            threshold: theta,
            reset: 0.0,
        }
    }

    /// External input: per class pair (c, ν, j).
    fn external(pairs: [(f64, f64, f64); 4]) -> External {
        External {
            c: pairs.map(|p| p.0),
            nu: pairs.map(|p| p.1),
            j: pairs.map(|p| p.2),
        }
    }

    /// A setup of `neurons` (the first `n_exc` excitatory) at dt = 1 ms, with exact steps
    /// and dead time τ_ref.
    fn setup(
        neurons: Vec<NeuronParams>,
        n_exc: usize,
        external: External,
        stimulus: Option<(Stimulus, Vec<usize>)>,
    ) -> Setup {
        Setup {
            dt: 1e-3,
            n_exc,
            neurons,
            mechanism: Mechanism::Exact,
            dead_time: DeadTime::TauRef,
            external,
            stimulus,
            seed: 11,
        }
    }

    /// The network of `setup` with blocks of `sizes` (E then I, empty ones left out) joined
    /// with weights `w` and probabilities `p` (rows postsynaptic).
    fn network(setup: &Setup, sizes: [usize; 2], w: &[f64], p: &[f64]) -> LifNetwork<f64> {
        let (sizes, classes): (Vec<usize>, Vec<Class>) = sizes
            .into_iter()
            .zip([Class::E, Class::I])
            .filter(|(s, _)| *s > 0)
            .unzip();
        let clusters = vec![None; sizes.len()];
        let blocks = Blocks::new(sizes, classes, clusters);
        let syn = Synapses::draw(&blocks, w, p, MaskKind::Bernoulli, &mut Stream::new(0)).unwrap();
        LifNetwork::new(setup, syn).unwrap()
    }

    const SILENT: [(f64, f64, f64); 4] = [(0.0, 0.0, 0.0); 4];

    fn lone(tau_s: f64, dead: DeadTime, mechanism: Mechanism) -> LifNetwork<f64> {
        let mut s = setup(
            vec![NeuronParams {
                tau_s,
                ..neuron(1.5)
            }],
            1,
            external(SILENT),
            None,
        );
        s.mechanism = mechanism;
        s.dead_time = dead;
        network(&s, [1, 0], &[0.0], &[0.0])
    }

    #[test]
    fn a_single_neuron_matches_the_reference_steps() {
        let mut net = lone(0.005, DeadTime::TauRef, Mechanism::Exact);
        net.set_state(&[0.0], &[100.0]).unwrap();
        for (v, i) in [
            (0.0883324476, 81.8730753078),
            (0.1563449147, 67.0320046036),
            (0.2079308936, 54.8811636094),
        ] {
            assert!(net.step().is_empty());
            assert!(
                (net.voltage()[0] - v).abs() < 1e-10,
                "{} vs {v}",
                net.voltage()[0]
            );
            assert!(
                (net.current()[0] - i).abs() < 1e-10,
                "{} vs {i}",
                net.current()[0]
            );
        }
    }

    /// The same steps to 1e-12 against the closed form of the linear dynamics, and the
    /// τs = τm propagator against its analytic solution `I0 t e^{−t/τ}`.
    #[test]
    fn exact_steps_follow_the_closed_form_including_equal_time_constants() {
        for tau_s in [0.005, 0.02] {
            let mut net = lone(tau_s, DeadTime::TauRef, Mechanism::Exact);
            net.set_state(&[0.0], &[100.0]).unwrap();
            for k in 1..=10 {
                net.step();
                let t = k as f64 * 1e-3;
                let tm = 0.02;
                let v = if tau_s == tm {
                    100.0 * t * (-t / tm).exp()
                } else {
                    100.0 * tau_s * tm / (tau_s - tm) * ((-t / tau_s).exp() - (-t / tm).exp())
                };
                assert!((net.voltage()[0] - v).abs() < 1e-12, "τs {tau_s} step {k}");
                assert!((net.current()[0] - 100.0 * (-t / tau_s).exp()).abs() < 1e-12);
            }
        }
    }

    /// Under a strong constant drive the interval between spikes is the dead time: τ_ref
    /// by default (5 steps), τ_ref + dt with the original's count (6 steps).
    #[test]
    fn the_dead_time_is_tau_ref_or_the_originals() {
        for (dead, interval) in [(DeadTime::TauRef, 5), (DeadTime::Original, 6)] {
            let mut net = lone(0.005, dead, Mechanism::Exact);
            let mut times = vec![];
            for k in 0..60 {
                // A current so large that V crosses θ within one free step.
                net.neurons.i[0] = 1e6;
                if !net.step().is_empty() {
                    times.push(k);
                }
            }
            let gaps: Vec<usize> = times.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                gaps.len() > 5 && gaps.iter().all(|&g| g == interval),
                "{dead:?}: {gaps:?}"
            );
        }
    }

    /// Under the external Poisson input alone (no threshold reached) the mean membrane
    /// potential is the mean field's `μ_ext = τm j c ν` (`seed-numbers.md` §A3: 103.04 for
    /// the template), to within its standard error.
    #[test]
    fn poisson_input_gives_the_mean_fields_mean_drive() {
        let ext = [
            (320.0, 7.0, 2.3),
            (320.0, 7.0, 2.3),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0),
        ];
        let s = setup(vec![neuron(1e9); 50], 50, external(ext), None);
        let mut net = network(&s, [50, 0], &[0.0], &[0.0]);
        let (mut sum, mut sq, mut k) = (0.0, 0.0, 0.0);
        for step in 0..20_000 {
            net.step();
            // Samples 100 steps apart (5 membrane time constants): nearly independent.
            if step >= 200 && step % 100 == 0 {
                for &v in net.voltage() {
                    sum += v;
                    sq += v * v;
                    k += 1.0;
                }
            }
        }
        let mean = sum / k;
        let se = ((sq / k - mean * mean) / k).sqrt();
        assert!((mean - 103.04).abs() < 5.0 * se, "mean {mean} ± {se}");
    }

    /// Each (source, target) class pair drives its own targets: an inhibitory source onto
    /// the E neurons only and an excitatory source onto the I neurons only give each class
    /// its own mean drive `τm j c ν`.
    #[test]
    fn external_input_reaches_the_targets_of_its_class_pair() {
        let ext = [
            (0.0, 0.0, 9.0),
            (100.0, 5.0, 0.5),
            (320.0, 7.0, -1.0),
            (0.0, 0.0, 9.0),
        ];
        let s = setup(vec![neuron(1e9); 50], 25, external(ext), None);
        let mut net = network(&s, [25, 25], &[0.0; 4], &[0.0; 4]);
        let (mut e, mut i, mut k) = (0.0, 0.0, 0.0);
        for step in 0..20_000 {
            net.step();
            if step >= 200 && step % 100 == 0 {
                e += net.voltage()[..25].iter().sum::<f64>();
                i += net.voltage()[25..].iter().sum::<f64>();
                k += 25.0;
            }
        }
        // τm j c ν: −1 · 320 · 7 · 0.02 = −44.8 (E), 0.5 · 100 · 5 · 0.02 = 5 (I).
        assert!((e / k + 44.8).abs() < 0.5, "E mean {}", e / k);
        assert!((i / k - 5.0).abs() < 0.1, "I mean {}", i / k);
    }

    /// A spike acts from the next step: neuron 0, pushed over threshold in step 0, raises
    /// neuron 1's current by `w/τs` at the end of step 0, and its voltage by `P01 w/τs` in
    /// step 1 (§A3's first step for `w/τs` = 100).
    #[test]
    fn a_spike_reaches_its_target_in_the_next_step() {
        let push = Stimulus {
            shape: crate::spiking::Shape::Box,
            amplitude: 1e4,
            onsets: vec![0.0],
            duration: 1e-3,
        };
        // Two E neurons in blocks of one; onto the second from the first: weight 0.5,
        // probability 1.
        let blocks = Blocks::new(vec![1, 1], vec![Class::E, Class::E], vec![None, None]);
        let syn = Synapses::draw(
            &blocks,
            &[0.0, 0.0, 0.5, 0.0],
            &[0.0, 0.0, 1.0, 0.0],
            MaskKind::Bernoulli,
            &mut Stream::new(0),
        )
        .unwrap();
        let s = setup(
            vec![neuron(1.5); 2],
            2,
            external(SILENT),
            Some((push, vec![0])),
        );
        let mut net = LifNetwork::<f64>::new(&s, syn).unwrap();
        assert_eq!(net.step(), &[0]);
        assert_eq!(net.voltage()[1], 0.0);
        assert!((net.current()[1] - 100.0).abs() < 1e-12);
        assert!(net.step().is_empty());
        assert!((net.voltage()[1] - 0.0883324476).abs() < 1e-10);
        assert!((net.current()[1] - 81.8730753078).abs() < 1e-9);
    }

    #[test]
    fn euler_steps_are_forward_euler() {
        let mut net = lone(0.005, DeadTime::TauRef, Mechanism::Euler);
        net.set_state(&[0.5], &[100.0]).unwrap();
        net.step();
        let v = 0.5 + 1e-3 / 0.02 * (-0.5 + 0.02 * 100.0);
        assert!((net.voltage()[0] - v).abs() < 1e-15);
        assert!((net.current()[0] - 100.0 * (1.0 - 1e-3 / 0.005)).abs() < 1e-12);
    }
}
