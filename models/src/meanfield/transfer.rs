//! The LIF transfer function Φ(μ, σ): the stationary firing rate of a leaky
//! integrate-and-fire neuron driven by white noise of mean `μ` and standard deviation `σ`
//! (Siegert 1951; Brunel & Hakim 1999), with the Fourcaud & Brunel (2002) shift of
//! threshold and reset for synaptic filtering with time constant `τs`:
//!
//! ```text
//! Φ(μ, σ) = 1 / (τ_ref + τm ∫_{y_r}^{y_θ} √π erfcx(−u) du),
//! y_θ = (θ − μ)/σ + a √(τs/τm),   y_r = (V_r − μ)/σ + a √(τs/τm),   a = |ζ(1/2)|/√2.
//! ```
//!
//! `√π erfcx(−u) = √π e^{u²}(1 + erf u)` is the Siegert integrand written so that it
//! neither overflows nor cancels.
//!
//! # How the integral is computed
//!
//! - Below zero, the integrand is `√π erfcx(|u|)`: smooth, between `√π` and `1/|u|`. Its
//!   integral is the difference of the antiderivative `E(x) = ∫_0^x erfcx`
//!   ([`erfcx_antiderivative`]), tabulated once as Chebyshev expansions in `t = ln(1 + x)`
//!   (in which the integrand varies slowly for any `x`: it falls like `1/x`) from
//!   Gauss–Legendre quadrature ([`erfcx_integral_quadrature`], panels of width at most
//!   [`PANEL`]), with the integrated asymptotic series beyond `x = 10⁴`; a short interval is
//!   one Gauss–Legendre panel instead, so that nothing cancels. `erfcx` comes from the
//!   `errorfunctions` crate (a port of S. G. Johnson's Faddeeva package, accurate to
//!   machine precision at every argument).
//! - Above zero, `√π e^{u²}(1 + erf u) = √π (2e^{u²} − erfcx(u))`: the first term
//!   integrates in closed form through Dawson's function `D` (`∫ e^{u²} = D(u) e^{u²}`), the
//!   second through `E` as well. The whole integral is carried as `Ĩ e^{max(y_θ,0)²}`,
//!   so that deep below threshold (`y_θ` up to about 26, where `Φ` underflows) nothing
//!   overflows and `Φ` keeps its relative precision (1e-41 Hz in the tests).
//!
//! The derivatives are analytic: `∂I/∂y_θ = √π erfcx(−y_θ)`, `∂I/∂y_r = −√π erfcx(−y_r)`.
//! Checked against 30–40 digit values (mpmath) and against central differences in
//! `tests/meanfield.rs`.

use std::f64::consts::{PI, SQRT_2};
use std::sync::OnceLock;

use errorfunctions::RealErrorFunctions;

/// `|ζ(1/2)|`, the Riemann zeta function at 1/2 (its absolute value).
pub const ZETA_HALF_ABS: f64 = 1.460_354_508_809_586_8;

/// Fourcaud & Brunel's shift coefficient `a = |ζ(1/2)|/√2 ≈ 1.0326`: threshold and reset move
/// up by `a √(τs/τm)` (in units of σ).
pub const SHIFT_COEFFICIENT: f64 = ZETA_HALF_ABS / SQRT_2;

/// Largest width of a quadrature panel in `t = ln(1 + |u|)`.
pub const PANEL: f64 = 0.5;

/// Gauss–Legendre nodes per panel.
const NODES: usize = 12;

/// The parameters of one LIF population that Φ depends on (times in seconds, voltages in
/// the model's units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lif {
    /// Firing threshold θ.
    pub threshold: f64,
    /// Reset potential V_r (below θ).
    pub reset: f64,
    /// Membrane time constant τm (> 0).
    pub tau_m: f64,
    /// Synaptic time constant τs (≥ 0; 0 is white noise, no shift).
    pub tau_s: f64,
    /// Absolute refractory period τ_ref (≥ 0): the rate never exceeds `1/τ_ref`.
    pub tau_ref: f64,
}

/// Φ and its partial derivatives at one `(μ, σ)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Response {
    /// The rate Φ(μ, σ).
    pub rate: f64,
    /// ∂Φ/∂μ.
    pub d_mu: f64,
    /// ∂Φ/∂σ.
    pub d_sigma: f64,
    /// ∂Φ/∂θ (the threshold).
    pub d_threshold: f64,
}

impl Lif {
    /// The synaptic shift `a √(τs/τm)` of threshold and reset, in units of σ.
    pub fn shift(&self) -> f64 {
        SHIFT_COEFFICIENT * (self.tau_s / self.tau_m).sqrt()
    }

    /// The integration limits `(y_r, y_θ)` at `(μ, σ)`.
    pub fn limits(&self, mu: f64, sigma: f64) -> (f64, f64) {
        let s = self.shift();
        (
            (self.reset - mu) / sigma + s,
            (self.threshold - mu) / sigma + s,
        )
    }

    /// The rate Φ(μ, σ) in Hz (when times are in seconds).
    pub fn rate(&self, mu: f64, sigma: f64) -> f64 {
        let (ya, yb) = self.limits(mu, sigma);
        let (it, e) = siegert_integral(ya, yb);
        let scale = (-e).exp();
        scale / (self.tau_ref * scale + self.tau_m * it)
    }

    /// Φ(μ, σ) with its analytic partial derivatives.
    pub fn response(&self, mu: f64, sigma: f64) -> Response {
        let shift = self.shift();
        let (ya, yb) = self.limits(mu, sigma);
        let (it, e) = siegert_integral(ya, yb);
        let scale = (-e).exp();
        let den = self.tau_ref * scale + self.tau_m * it;
        let rate = scale / den;
        // Φ² √π erfcx(−u), without forming e^{u²} or Φ² apart.
        let p = |u: f64| {
            let pos = u.max(0.0);
            scaled_integrand(u) * (pos * pos - 2.0 * e).exp() / (den * den)
        };
        let (pa, pb) = (p(ya), p(yb));
        let k = self.tau_m / sigma;
        Response {
            rate,
            d_mu: k * (pb - pa),
            d_sigma: k * (pb * (yb - shift) - pa * (ya - shift)),
            d_threshold: -k * pb,
        }
    }
}

/// `√π erfcx(−u) e^{−max(u,0)²}`: the Siegert integrand, scaled down above zero.
fn scaled_integrand(u: f64) -> f64 {
    if u > 0.0 {
        PI.sqrt() * (2.0 - RealErrorFunctions::erfc(u))
    } else {
        PI.sqrt() * (-u).erfcx()
    }
}

/// `∫_a^b √π erfcx(−u) du` for `a ≤ b`, as `(Ĩ, E)` with the integral `= Ĩ e^E` and
/// `E = max(b, 0)²`.
pub fn siegert_integral(a: f64, b: f64) -> (f64, f64) {
    let sqrt_pi = PI.sqrt();
    // u in [a, min(b, 0)]: x = −u in [max(−b, 0), −a].
    let below = if a < 0.0 {
        sqrt_pi * erfcx_integral((-b).max(0.0), -a)
    } else {
        0.0
    };
    if b <= 0.0 {
        return (below, 0.0);
    }
    let p = a.max(0.0);
    let e = b * b;
    let above = sqrt_pi
        * (2.0 * (b.dawson() - p.dawson() * (p * p - e).exp()) - (-e).exp() * erfcx_integral(p, b));
    (above + below * (-e).exp(), e)
}

/// `∫_{x0}^{x1} erfcx(x) dx` for `0 ≤ x0 ≤ x1`: a short interval (at most `0.1 (1 + x0)`)
/// by one Gauss–Legendre panel, a longer one as `E(x1) − E(x0)` of the tabulated
/// antiderivative [`erfcx_antiderivative`].
pub fn erfcx_integral(x0: f64, x1: f64) -> f64 {
    if x1 <= x0 {
        return 0.0;
    }
    if x1 - x0 <= 0.1 * (1.0 + x0) {
        let (nodes, weights) = gauss_legendre();
        let (mid, half) = (0.5 * (x0 + x1), 0.5 * (x1 - x0));
        let sum: f64 = nodes
            .iter()
            .zip(weights)
            .map(|(&z, &w)| w * (mid + half * z).erfcx())
            .sum();
        return half * sum;
    }
    erfcx_antiderivative(x1) - erfcx_antiderivative(x0)
}

/// `∫_{x0}^{x1} erfcx(x) dx` for `0 ≤ x0 ≤ x1` by Gauss–Legendre panels in
/// `t = ln(1 + x)` (width at most [`PANEL`]): the reference that the table of
/// [`erfcx_antiderivative`] is built from and tested against.
pub fn erfcx_integral_quadrature(x0: f64, x1: f64) -> f64 {
    let (t0, t1) = (x0.ln_1p(), x1.ln_1p());
    if t1 <= t0 {
        return 0.0;
    }
    let (nodes, weights) = gauss_legendre();
    let panels = ((t1 - t0) / PANEL).ceil().max(1.0);
    let h = (t1 - t0) / panels;
    let mut sum = 0.0;
    for k in 0..panels as usize {
        let mid = t0 + (k as f64 + 0.5) * h;
        let mut part = 0.0;
        for (&z, &w) in nodes.iter().zip(weights) {
            let t = mid + 0.5 * h * z;
            let x = t.exp_m1();
            part += w * x.erfcx() * (1.0 + x);
        }
        sum += part;
    }
    0.5 * h * sum
}

/// Width in `t = ln(1 + x)` of a panel of the antiderivative's table.
const TABLE_PANEL: f64 = 0.25;
/// Chebyshev degree per panel.
const TABLE_DEGREE: usize = 16;
/// The table covers `x ≤ TABLE_X`; above it the asymptotic series of `erfcx` is integrated.
const TABLE_X: f64 = 1.0e4;

/// `E(x) = ∫_0^x erfcx(t) dt` for `x ≥ 0`: a table of Chebyshev expansions in
/// `t = ln(1 + x)` (panels of width 0.25, degree 16, built once from
/// [`erfcx_integral_quadrature`]) up to `x = 10⁴`, and beyond it
/// `E(X) + (ln(x/X) + 1/(4x²) − 1/(4X²) − 3/(32x⁴) + 3/(32X⁴)) / √π` from
/// `erfcx(x) = (1 − 1/(2x²) + 3/(4x⁴) − …)/(√π x)`. Written here because no crate offers
/// it; it turns the transfer function's quadrature (dozens of `erfcx` calls) into two
/// table look-ups.
pub fn erfcx_antiderivative(x: f64) -> f64 {
    let table = antiderivative_table();
    if x > TABLE_X {
        let big = |y: f64| {
            let y2 = 1.0 / (y * y);
            y.ln() + 0.25 * y2 - 3.0 / 32.0 * y2 * y2
        };
        return table.at_end + (big(x) - big(TABLE_X)) / PI.sqrt();
    }
    let t = x.ln_1p();
    let k = ((t / TABLE_PANEL) as usize).min(table.panels.len() - 1);
    let s = 2.0 * (t - k as f64 * TABLE_PANEL) / TABLE_PANEL - 1.0;
    let c = &table.panels[k];
    // Clenshaw.
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c[1..].iter().rev() {
        let b0 = 2.0 * s * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    s * b1 - b2 + c[0]
}

struct Table {
    panels: Vec<[f64; TABLE_DEGREE + 1]>,
    at_end: f64,
}

fn antiderivative_table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let t_end = TABLE_X.ln_1p();
        let count = (t_end / TABLE_PANEL).ceil() as usize;
        let m = TABLE_DEGREE + 1;
        let mut panels = Vec::with_capacity(count);
        let mut start_value = 0.0;
        for k in 0..count {
            let t0 = k as f64 * TABLE_PANEL;
            let x0 = t0.exp_m1();
            // Values at the Chebyshev points of the first kind, then their coefficients.
            let vals: Vec<f64> = (0..m)
                .map(|j| {
                    let s = (PI * (j as f64 + 0.5) / m as f64).cos();
                    let x = (t0 + 0.5 * TABLE_PANEL * (s + 1.0)).exp_m1();
                    start_value + erfcx_integral_quadrature(x0, x)
                })
                .collect();
            let mut c = [0.0; TABLE_DEGREE + 1];
            for (i, ci) in c.iter_mut().enumerate() {
                let sum: f64 = vals
                    .iter()
                    .enumerate()
                    .map(|(j, v)| v * (PI * i as f64 * (j as f64 + 0.5) / m as f64).cos())
                    .sum();
                *ci = 2.0 * sum / m as f64;
            }
            c[0] *= 0.5;
            panels.push(c);
            start_value += erfcx_integral_quadrature(x0, (t0 + TABLE_PANEL).exp_m1());
        }
        Table {
            panels,
            at_end: erfcx_integral_quadrature(0.0, TABLE_X),
        }
    })
}

/// Nodes and weights of the `NODES`-point Gauss–Legendre rule on `[-1, 1]`, computed once
/// by Newton's method on the Legendre polynomial (a few lines; the rule is exact for
/// polynomials of degree `2·NODES − 1`, which `tests/meanfield.rs` checks).
pub fn gauss_legendre() -> (&'static [f64], &'static [f64]) {
    static RULE: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    let (x, w) = RULE.get_or_init(|| legendre_rule(NODES));
    (x, w)
}

/// The `n`-point Gauss–Legendre rule: nodes in increasing order and their weights.
pub fn legendre_rule(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n {
        // Chebyshev-like first guess of the i-th largest root, then Newton.
        let mut z = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (z * p1 - p0) / (z * z - 1.0);
            let dz = p1 / dp;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        nodes[n - 1 - i] = z;
        weights[n - 1 - i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (nodes, weights)
}
