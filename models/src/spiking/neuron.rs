//! The single LIF neuron: its parameters, the one-step propagators of its membrane and
//! synaptic current, and the refractory count.
//!
//! Between spikes, `dV/dt = −V/τm + I + I_stim` and `dI/dt = −I/τs` (currents in voltage
//! per second, the original's units). Over a step `h` with `I_stim` constant:
//!
//! ```text
//! V ← P00 V + P01 I + P02 I_stim,   I ← P11 I
//! P00 = e^{−h/τm},  P01 = τs τm/(τs − τm) (e^{−h/τs} − e^{−h/τm}),
//! P02 = τm (1 − P00),  P11 = e^{−h/τs}
//! ```
//!
//! `P01` is evaluated as `h e^{−h/τm} expm1(d)/d` with `d = h (τs − τm)/(τs τm)`, which is
//! the same number and has the correct limit `h e^{−h/τ}` as `τs → τm` (the original sets
//! `P01 = 0` there, which disconnects the synaptic current from the membrane).

use neurode_solvers::Real;

/// How a step advances the membrane and the synaptic current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mechanism {
    /// The exact propagators of the linear dynamics (the original's `analytic`).
    #[default]
    Exact,
    /// Forward Euler: `V ← V + h/τm (−V + τm (I + I_stim))`, `I ← I (1 − h/τs)`.
    Euler,
}

/// How long a neuron is held at reset after a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadTime {
    /// The dead time is `τ_ref`: the step of the spike counts as the first of
    /// `round(τ_ref/h)` steps at reset, so the shortest interval between spikes is `τ_ref`
    /// and the rate ceiling is the mean field's `1/τ_ref` (default).
    #[default]
    TauRef,
    /// The original's count: held for `round(τ_ref/h)` steps *after* the step of the spike,
    /// a dead time of `τ_ref + h` (6 ms at τ_ref = 5 ms, h = 1 ms; ceiling `1/(τ_ref + h)`),
    /// to reproduce its rates. (Where `τ_ref` is not a multiple of `h` the original never
    /// releases the neuron; here it is held `⌈τ_ref/h⌉` steps.)
    Original,
}

/// One neuron's constants (seconds; voltages in the original's units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeuronParams {
    /// Membrane time constant τm (> 0).
    pub tau_m: f64,
    /// Synaptic time constant τs (> 0).
    pub tau_s: f64,
    /// Refractory period τ_ref (≥ 0).
    pub tau_ref: f64,
    /// Threshold θ (above the reset).
    pub threshold: f64,
    /// Reset voltage.
    pub reset: f64,
}

/// The propagators of one neuron for one step (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Propagators {
    /// `e^{−h/τm}`.
    pub p00: f64,
    /// Synaptic current into the membrane.
    pub p01: f64,
    /// Stimulus into the membrane, `τm (1 − P00)`.
    pub p02: f64,
    /// `e^{−h/τs}`.
    pub p11: f64,
}

impl Propagators {
    /// The exact propagators for step `h`.
    pub fn exact(p: &NeuronParams, h: f64) -> Propagators {
        let p00 = (-h / p.tau_m).exp();
        let d = h * (p.tau_s - p.tau_m) / (p.tau_s * p.tau_m);
        let ratio = if d == 0.0 { 1.0 } else { d.exp_m1() / d };
        Propagators {
            p00,
            p01: h * p00 * ratio,
            p02: p.tau_m * (-(-h / p.tau_m).exp_m1()),
            p11: (-h / p.tau_s).exp(),
        }
    }

    /// Forward Euler's coefficients for step `h`, in the same form
    /// (`P00 = 1 − h/τm`, `P01 = P02 = h`, `P11 = 1 − h/τs`).
    pub fn euler(p: &NeuronParams, h: f64) -> Propagators {
        Propagators {
            p00: 1.0 - h / p.tau_m,
            p01: h,
            p02: h,
            p11: 1.0 - h / p.tau_s,
        }
    }

    /// The propagators of `mechanism`.
    pub fn of(mechanism: Mechanism, p: &NeuronParams, h: f64) -> Propagators {
        match mechanism {
            Mechanism::Exact => Propagators::exact(p, h),
            Mechanism::Euler => Propagators::euler(p, h),
        }
    }
}

/// Steps held at reset after the step of a spike, for refractory period `tau_ref` and step
/// `h`: `n − 1` ([`DeadTime::TauRef`], dead time `n h`) or `n` ([`DeadTime::Original`]) with
/// `n = ⌈τ_ref/h⌉` (to within rounding: 5 ms / 1 ms is 5).
pub fn refractory_steps(tau_ref: f64, h: f64, dead: DeadTime) -> u32 {
    let n = (tau_ref / h - 1e-6).ceil().max(0.0) as u32;
    match dead {
        DeadTime::TauRef => n.saturating_sub(1),
        DeadTime::Original => n,
    }
}

/// The dead time after a spike (s): the step of the spike and the steps held after it,
/// `(refractory_steps + 1) h` (`τ_ref`, or `τ_ref + h` with the original's count, for a
/// multiple of `h`); 0 without a refractory period. The mean field of a network takes it as
/// its refractory period.
pub fn dead_time(tau_ref: f64, h: f64, dead: DeadTime) -> f64 {
    if tau_ref > 0.0 {
        (refractory_steps(tau_ref, h, dead) as f64 + 1.0) * h
    } else {
        0.0
    }
}

/// The steps in a time `t` at step `h`: `⌊t/h⌋` to within rounding (`⌊t/h + 10⁻⁹⌋`, so that
/// 0.043 s at 1 ms is 43 steps, where `int(t/h)` gives 42).
pub fn steps_in(t: f64, h: f64) -> usize {
    (t / h + 1e-9).floor() as usize
}

/// The state update of one neuron for one step, in the original's order: the neuron
/// integrates (`prop`), is held at `reset` if it was refractory at the start of the step
/// (its count then drops by one), and otherwise spikes if `V ≥ θ` (reset, count set to
/// `hold`). Returns whether it spiked. The synaptic input of the step is added afterwards
/// by the caller, so it acts from the next step.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn advance<T: Real>(
    v: &mut T,
    i: &mut T,
    count: &mut u32,
    stim: T,
    prop: [T; 4],
    threshold: T,
    reset: T,
    hold: u32,
) -> bool {
    let [p00, p01, p02, p11] = prop;
    let v_new = p00 * *v + p01 * *i + p02 * stim;
    *i *= p11;
    if *count > 0 {
        *v = reset;
        *count -= 1;
        false
    } else if v_new >= threshold {
        *v = reset;
        *count = hold;
        true
    } else {
        *v = v_new;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> NeuronParams {
        NeuronParams {
            tau_m: 0.02,
            tau_s: 0.005,
            tau_ref: 0.005,
            threshold: 1.5,
            reset: 0.0,
        }
    }

    /// `seed-numbers.md` §A3: the template's propagators at h = 1 ms.
    #[test]
    fn exact_propagators_match_the_reference_values() {
        let p = Propagators::exact(&template(), 1e-3);
        for (got, want) in [
            (p.p00, 0.951229424500714),
            (p.p01, 0.000883324476151548),
            (p.p02, 0.0009754115099857197),
            (p.p11, 0.8187307530779818),
        ] {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
    }

    /// At τs = τm the propagator is the limit `h e^{−h/τ}` (the solution of
    /// `dV/dt = −V/τ + I`, `dI/dt = −I/τ` from V = 0, I = 1 is `t e^{−t/τ}`), and nearby it
    /// is continuous (no cancellation).
    #[test]
    fn equal_time_constants_give_the_analytic_limit() {
        let h = 1e-3;
        let mut p = template();
        p.tau_s = p.tau_m;
        let limit = h * (-h / p.tau_m).exp();
        assert!((Propagators::exact(&p, h).p01 - limit).abs() < 1e-18);
        for eps in [1e-12, 1e-9, 1e-6] {
            p.tau_s = p.tau_m * (1.0 + eps);
            let near = Propagators::exact(&p, h).p01;
            // P01 = h e^{−h/τm} (1 + d/2 + d²/6 + …), d = h (τs − τm)/(τs τm).
            let d = h * (p.tau_s - p.tau_m) / (p.tau_s * p.tau_m);
            let series = limit * (1.0 + d / 2.0 + d * d / 6.0);
            assert!(
                ((near - series) / limit).abs() < 1e-15,
                "eps {eps}: {near} vs {series}"
            );
        }
    }

    #[test]
    fn refractory_counts_give_dead_times_of_tau_ref_and_the_original() {
        assert_eq!(refractory_steps(0.005, 1e-3, DeadTime::TauRef), 4);
        assert_eq!(refractory_steps(0.005, 1e-3, DeadTime::Original), 5);
        assert_eq!(refractory_steps(0.0, 1e-3, DeadTime::TauRef), 0);
        assert_eq!(refractory_steps(0.0, 1e-3, DeadTime::Original), 0);
        assert_eq!(refractory_steps(0.002, 1e-4, DeadTime::TauRef), 19);
    }
}
