//! Step-size control: a PI controller and Hairer's initial step.
//!
//! The controller's settings are immutable; the state it needs between steps (the previous
//! accepted error) is kept per trial by the integrator.

/// Step-size controller: integral (I) by default, proportional-integral (PI) on request
/// (Gustafsson; Hairer & Wanner, *Solving ODEs II*, IV.2).
///
/// After a step with scaled error `err` (accepted when `err <= 1`), the next step is
/// `dt * clamp(safety * err^-beta1 * err_prev^beta2, fac_min, fac_max)`, where `err_prev`
/// is the error of the previous accepted step. After a rejection the step may not grow.
/// With `beta1 = None` the proportional exponent is `1 / q`, `q` being the embedded order
/// plus one (`q = 5` for Tsit5), and with `beta2 = None` the integral exponent is 0: the
/// classical I controller, as in Hairer's DOPRI5 without stabilisation and diffrax's
/// default `PIDController`. [`PiController::pi`] gives Gustafsson's PI setting
/// (`0.7 / q`, `0.4 / q`), which grows the step more cautiously: on the benchmark problem
/// P1 it took 1.3x more steps for 2 to 4 times less error than rtol asks for
/// (`cargo bench --bench grid -- --work-precision`), so the I controller reaches the same
/// error in less time there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiController {
    /// Safety factor (default 0.9).
    pub safety: f64,
    /// Proportional exponent; `None` for `1 / q`.
    pub beta1: Option<f64>,
    /// Integral exponent; `None` for 0.
    pub beta2: Option<f64>,
    /// Smallest factor by which the step may shrink (default 0.2).
    pub fac_min: f64,
    /// Largest factor by which the step may grow (default 10).
    pub fac_max: f64,
}

impl Default for PiController {
    fn default() -> Self {
        PiController {
            safety: 0.9,
            beta1: None,
            beta2: None,
            fac_min: 0.2,
            fac_max: 10.0,
        }
    }
}

/// Floor of the previous-error memory (as in Hairer's codes).
pub(crate) const ERR_PREV_INIT: f64 = 1e-4;

impl PiController {
    /// Gustafsson's PI setting: exponents `0.7 / q` and `0.4 / q` (the default until the
    /// I controller replaced it), the other settings as in [`Default`].
    pub fn pi(q: f64) -> Self {
        PiController {
            beta1: Some(0.7 / q),
            beta2: Some(0.4 / q),
            ..PiController::default()
        }
    }

    /// Checks the settings; returns a message naming the bad field.
    pub fn check(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !(ok(self.safety) && self.safety <= 1.0) {
            return Err(format!("safety = {} must be in (0, 1]", self.safety));
        }
        if !(ok(self.fac_min) && self.fac_min < 1.0) {
            return Err(format!("fac_min = {} must be in (0, 1)", self.fac_min));
        }
        if !(self.fac_max.is_finite() && self.fac_max > 1.0) {
            return Err(format!("fac_max = {} must be > 1", self.fac_max));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if let Some(b) = b {
                if !(b.is_finite() && b >= 0.0) {
                    return Err(format!("{name} = {b} must be finite and >= 0"));
                }
            }
        }
        Ok(())
    }

    /// Step factor after an accepted step.
    pub fn accept_factor(&self, err: f64, err_prev: f64, q: f64, after_reject: bool) -> f64 {
        let b1 = self.beta1.unwrap_or(1.0 / q);
        let b2 = self.beta2.unwrap_or(0.0);
        let err = err.max(1e-10);
        let fac = self.safety * err.powf(-b1) * err_prev.powf(b2);
        let hi = if after_reject { 1.0 } else { self.fac_max };
        fac.clamp(self.fac_min, hi)
    }

    /// Step factor after a rejected step (`err > 1` or not finite).
    pub fn reject_factor(&self, err: f64, q: f64) -> f64 {
        if !err.is_finite() {
            return self.fac_min;
        }
        let b1 = self.beta1.unwrap_or(1.0 / q);
        (self.safety * err.powf(-b1)).clamp(self.fac_min, 1.0)
    }
}

/// Hairer's initial step (Hairer, Nørsett & Wanner, *Solving ODEs I*, II.4), per trial,
/// from the scaled norms `d0 = |x0|`, `d1 = |f(t0, x0)|` and the first guess `h0`.
pub(crate) fn initial_step_guess(d0: f64, d1: f64) -> f64 {
    if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    }
}

/// Second half of Hairer's initial step: `d2 = |f(t0 + h0, x0 + h0 f0) - f0| / h0`.
pub(crate) fn initial_step_final(h0: f64, d1: f64, d2: f64, order: u32) -> f64 {
    let m = d1.max(d2);
    let h1 = if m <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / m).powf(1.0 / (order as f64 + 1.0))
    };
    (100.0 * h0).min(h1)
}
