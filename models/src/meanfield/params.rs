//! One parameter set of the mean field: the populations' connectivity, external drive and
//! neuron constants, checked when built and whenever a value changes.

use super::transfer::{Lif, Response};
use super::MeanFieldError;

/// Floor of the input variance σ² (as the original: σ = √max(σ², 1e-12)); below it ∂σ is 0.
pub const SIGMA2_FLOOR: f64 = 1e-12;

/// A parameter of the mean field. Names are the original's keyword arguments
/// (VectorialNeuroModulators' `LIFMeanField`), with short aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    /// `c_matrix` (`c`): synapse counts `C[i][j]` onto population `i` from `j` (≥ 0).
    C,
    /// `j_matrix` (`j`): efficacies `J[i][j]` onto `i` from `j`.
    J,
    /// `j_ext`: efficacy of the external synapses.
    JExt,
    /// `c_ext`: number of external synapses (≥ 0).
    CExt,
    /// `nu_ext`: rate of each external source, Hz (≥ 0).
    NuExt,
    /// `tau_membrane` (`tau_m`): membrane time constant, s (> 0).
    TauM,
    /// `tau_synaptic` (`tau_s`): synaptic time constant, s (≥ 0).
    TauS,
    /// `threshold` (`theta`): firing threshold (above the reset).
    Threshold,
    /// `reset_voltage` (`v_reset`): reset potential.
    Reset,
    /// `tau_refractory` (`tau_ref`): refractory period, s (≥ 0).
    TauRef,
    /// `tau_rate` (`tau`): time constant of the rate dynamics `τ dν/dt = −ν + Φ`, in the
    /// unit of time of the solve (default 1: eigenvalues in units of 1/τ, the original's).
    Tau,
}

impl Param {
    /// Every parameter, in the order of the config.
    pub const ALL: [Param; 11] = [
        Param::C,
        Param::J,
        Param::JExt,
        Param::CExt,
        Param::NuExt,
        Param::TauM,
        Param::TauS,
        Param::Threshold,
        Param::Reset,
        Param::TauRef,
        Param::Tau,
    ];

    /// The name (the original's keyword).
    pub fn name(self) -> &'static str {
        match self {
            Param::C => "c_matrix",
            Param::J => "j_matrix",
            Param::JExt => "j_ext",
            Param::CExt => "c_ext",
            Param::NuExt => "nu_ext",
            Param::TauM => "tau_membrane",
            Param::TauS => "tau_synaptic",
            Param::Threshold => "threshold",
            Param::Reset => "reset_voltage",
            Param::TauRef => "tau_refractory",
            Param::Tau => "tau_rate",
        }
    }

    /// The short alias.
    pub fn alias(self) -> &'static str {
        match self {
            Param::C => "c",
            Param::J => "j",
            Param::JExt => "j_ext",
            Param::CExt => "c_ext",
            Param::NuExt => "nu_ext",
            Param::TauM => "tau_m",
            Param::TauS => "tau_s",
            Param::Threshold => "theta",
            Param::Reset => "v_reset",
            Param::TauRef => "tau_ref",
            Param::Tau => "tau",
        }
    }

    /// The parameter of a name or alias.
    pub fn parse(name: &str) -> Option<Param> {
        Param::ALL
            .into_iter()
            .find(|p| p.name() == name || p.alias() == name)
    }

    /// Whether it is an `n x n` matrix (else one value per population).
    pub fn is_matrix(self) -> bool {
        matches!(self, Param::C | Param::J)
    }

    /// Whether `v` is allowed, and the rule.
    fn check(self, v: f64) -> Result<(), &'static str> {
        let ok = match self {
            Param::C | Param::CExt | Param::NuExt | Param::TauS | Param::TauRef => {
                v.is_finite() && v >= 0.0
            }
            Param::TauM | Param::Tau => v.is_finite() && v > 0.0,
            _ => v.is_finite(),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Param::C | Param::CExt => "a count of synapses must be finite and >= 0",
            Param::NuExt => "an external rate must be finite and >= 0 (Hz)",
            Param::TauS | Param::TauRef => "must be finite and >= 0 (seconds)",
            Param::TauM => "the membrane time constant must be finite and > 0 (seconds)",
            Param::Tau => "the rate time constant must be finite and > 0",
            _ => "must be a finite number",
        })
    }

    /// The names accepted, for messages.
    pub fn known() -> String {
        Param::ALL
            .iter()
            .map(|p| format!("{} ({})", p.name(), p.alias()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Which entries of a parameter a sweep or an override changes: all of them, one
/// population's (`threshold[2]`), or one matrix entry (`j_matrix[0,1]`, onto 0 from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The parameter.
    pub param: Param,
    /// `None`: every entry; `Some((i, None))`: population `i` (row `i` of a matrix);
    /// `Some((i, Some(j)))`: matrix entry `(i, j)`.
    pub index: Option<(usize, Option<usize>)>,
}

impl Target {
    /// Parses `name`, `name[i]` or `name[i,j]`.
    pub fn parse(spec: &str) -> Result<Target, MeanFieldError> {
        let spec = spec.trim();
        let unknown = || MeanFieldError::UnknownKey {
            key: spec.to_string(),
            known: Param::known(),
        };
        let (name, index) = match spec.find('[') {
            None => (spec, None),
            Some(open) => {
                let inner = spec[open + 1..].strip_suffix(']').ok_or_else(unknown)?;
                let mut parts = inner.split(',').map(|s| s.trim().parse::<usize>());
                let i = parts.next().and_then(|r| r.ok()).ok_or_else(unknown)?;
                let j = match parts.next() {
                    None => None,
                    Some(Ok(j)) => Some(j),
                    Some(Err(_)) => return Err(unknown()),
                };
                if parts.next().is_some() {
                    return Err(unknown());
                }
                (&spec[..open], Some((i, j)))
            }
        };
        let param = Param::parse(name.trim()).ok_or_else(unknown)?;
        if let Some((_, Some(_))) = index {
            if !param.is_matrix() {
                return Err(MeanFieldError::UnknownKey {
                    key: spec.to_string(),
                    known: format!(
                        "`{}` has one value per population: index it as `{}[i]`",
                        param.name(),
                        param.name()
                    ),
                });
            }
        }
        Ok(Target { param, index })
    }

    /// The target as written (`j_matrix[0,1]`).
    pub fn label(&self) -> String {
        match self.index {
            None => self.param.name().to_string(),
            Some((i, None)) => format!("{}[{i}]", self.param.name()),
            Some((i, Some(j))) => format!("{}[{i},{j}]", self.param.name()),
        }
    }
}

/// How a sweep or an override changes its target: replace the values, add to them, or
/// scale them. (The original's `new` mode is `Replace`, here with an effect; its `shift`
/// is `Shift`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The target's entries become the value.
    Replace,
    /// The value is added to the target's entries.
    Shift,
    /// The target's entries are multiplied by the value.
    Scale,
}

impl Mode {
    /// Parses `replace` (or the original's `new`), `shift`, `scale`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "replace" | "new" => Some(Mode::Replace),
            "shift" => Some(Mode::Shift),
            "scale" => Some(Mode::Scale),
            _ => None,
        }
    }
}

/// One parameter set of a LIF mean field of `n` populations. Matrices are stored
/// column-major (`m[i + j n]`, onto `i` from `j`). Units: seconds and Hz.
///
/// The input statistics use the **postsynaptic** population's τm:
/// `μ_i = τm_i (Σ_j C_ij J_ij ν_j + J_ext,i C_ext,i ν_ext,i)`,
/// `σ_i² = τm_i (Σ_j C_ij J_ij² ν_j + J_ext,i² C_ext,i ν_ext,i)` (Brunel 2000; no ½), and
/// `σ_i = √max(σ_i², 1e-12)`. (The original multiplies column `j` by τm_j, the presynaptic
/// one, which agrees only when all τm are equal.)
#[derive(Debug, Clone, PartialEq)]
pub struct MeanFieldParams {
    n: usize,
    values: [Vec<f64>; 11],
    // Derived, refreshed on every change.
    cj: Vec<f64>,
    cj2: Vec<f64>,
    mu_ext: Vec<f64>,
    var_ext: Vec<f64>,
}

/// The input statistics and response of one population at a rate vector.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Local {
    /// Mean input μ.
    pub mu: f64,
    /// Input standard deviation σ (after the floor).
    pub sigma: f64,
    /// ∂σ/∂σ² (0 where the floor holds).
    pub dsigma_dvar: f64,
    /// Φ and its derivatives.
    pub response: Response,
}

impl MeanFieldParams {
    /// Builds a parameter set from values per parameter: a matrix as `n x n` (row `i` =
    /// onto population `i`, row-major as written in a config) or one value for all
    /// entries; a vector as `n` values or one. Missing: `reset_voltage` 0,
    /// `tau_synaptic` 0, `tau_refractory` 0, `tau_rate` 1; the others are required.
    pub fn new(
        n: usize,
        mut get: impl FnMut(Param) -> Option<Vec<f64>>,
    ) -> Result<MeanFieldParams, MeanFieldError> {
        if n == 0 {
            return Err(MeanFieldError::Invalid {
                key: "n_clusters".into(),
                value: 0.0,
                requirement: "a mean field needs at least one population".into(),
            });
        }
        let mut values: [Vec<f64>; 11] = Default::default();
        for (slot, p) in values.iter_mut().zip(Param::ALL) {
            let given = match get(p) {
                Some(v) => v,
                None => match p {
                    Param::Reset | Param::TauS | Param::TauRef => vec![0.0],
                    Param::Tau => vec![1.0],
                    _ => return Err(MeanFieldError::Missing { key: p.name() }),
                },
            };
            *slot = broadcast(p, n, given)?;
        }
        let mut s = MeanFieldParams {
            n,
            values,
            cj: vec![],
            cj2: vec![],
            mu_ext: vec![],
            var_ext: vec![],
        };
        for p in Param::ALL {
            s.check(p)?;
        }
        s.refresh();
        Ok(s)
    }

    /// Number of populations.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The values of a parameter (matrices column-major).
    pub fn values(&self, p: Param) -> &[f64] {
        &self.values[p as usize]
    }

    /// Matrix entry `(i, j)` (onto `i` from `j`) of `C` or `J`.
    pub fn entry(&self, p: Param, i: usize, j: usize) -> f64 {
        self.values(p)[i + j * self.n]
    }

    /// The neuron constants of population `i`.
    pub fn lif(&self, i: usize) -> Lif {
        let v = |p: Param| self.values(p)[i];
        Lif {
            threshold: v(Param::Threshold),
            reset: v(Param::Reset),
            tau_m: v(Param::TauM),
            tau_s: v(Param::TauS),
            tau_ref: v(Param::TauRef),
        }
    }

    /// The largest rate population `i` can reach, `1/τ_ref` (infinite without refractoriness).
    pub fn ceiling(&self, i: usize) -> f64 {
        1.0 / self.values(Param::TauRef)[i]
    }

    /// Replaces the values of `p` (matrices column-major, `n²` values; vectors `n`),
    /// checked.
    pub fn set(&mut self, p: Param, v: &[f64]) -> Result<(), MeanFieldError> {
        let len = if p.is_matrix() {
            self.n * self.n
        } else {
            self.n
        };
        if v.len() != len {
            return Err(MeanFieldError::Shape {
                key: p.name().to_string(),
                got: v.len(),
                expected: len.to_string(),
            });
        }
        let old = std::mem::replace(&mut self.values[p as usize], v.to_vec());
        if let Err(e) = self.check(p) {
            self.values[p as usize] = old;
            return Err(e);
        }
        self.refresh();
        Ok(())
    }

    /// Changes `target` by `value` in `mode`; on an error nothing changes.
    pub fn apply(&mut self, target: &Target, mode: Mode, value: f64) -> Result<(), MeanFieldError> {
        let n = self.n;
        let p = target.param;
        let mut v = self.values(p).to_vec();
        let entries: Vec<usize> = match target.index {
            None => (0..v.len()).collect(),
            Some((i, j)) => {
                let bad = |idx: usize| MeanFieldError::IndexOutOfRange {
                    key: target.label(),
                    index: idx,
                    n,
                };
                if i >= n {
                    return Err(bad(i));
                }
                match (p.is_matrix(), j) {
                    (true, Some(j)) if j >= n => return Err(bad(j)),
                    (true, Some(j)) => vec![i + j * n],
                    (true, None) => (0..n).map(|j| i + j * n).collect(),
                    (false, _) => vec![i],
                }
            }
        };
        for e in entries {
            v[e] = match mode {
                Mode::Replace => value,
                Mode::Shift => v[e] + value,
                Mode::Scale => v[e] * value,
            };
        }
        self.set(p, &v)
    }

    fn check(&self, p: Param) -> Result<(), MeanFieldError> {
        let n = self.n;
        for (k, &v) in self.values(p).iter().enumerate() {
            if let Err(rule) = p.check(v) {
                let key = if p.is_matrix() {
                    format!("{}[{},{}]", p.name(), k % n, k / n)
                } else {
                    format!("{}[{k}]", p.name())
                };
                return Err(MeanFieldError::Invalid {
                    key,
                    value: v,
                    requirement: rule.into(),
                });
            }
        }
        if matches!(p, Param::Threshold | Param::Reset) {
            for i in 0..n {
                let (th, vr) = (
                    self.values(Param::Threshold)[i],
                    self.values(Param::Reset)[i],
                );
                if th <= vr && vr.is_finite() && th.is_finite() {
                    return Err(MeanFieldError::Invalid {
                        key: format!("threshold[{i}]"),
                        value: th,
                        requirement: format!(
                            "the threshold must lie above the reset_voltage ({vr})"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn refresh(&mut self) {
        let n = self.n;
        let (c, j) = (
            &self.values[Param::C as usize],
            &self.values[Param::J as usize],
        );
        let cj = c.iter().zip(j).map(|(c, j)| c * j).collect();
        let cj2 = c.iter().zip(j).map(|(c, j)| c * j * j).collect();
        (self.cj, self.cj2) = (cj, cj2);
        let v = |p: Param, i: usize| self.values[p as usize][i];
        self.mu_ext = (0..n)
            .map(|i| v(Param::TauM, i) * v(Param::JExt, i) * v(Param::CExt, i) * v(Param::NuExt, i))
            .collect();
        self.var_ext = (0..n)
            .map(|i| {
                let je = v(Param::JExt, i);
                v(Param::TauM, i) * je * je * v(Param::CExt, i) * v(Param::NuExt, i)
            })
            .collect();
    }

    /// `(μ_i, σ_i², …)`: the input mean and variance of every population at rates `nu`,
    /// written into `mu` and `var`.
    pub fn statistics(&self, nu: &[f64], mu: &mut [f64], var: &mut [f64]) {
        let n = self.n;
        mu.copy_from_slice(&self.mu_ext);
        var.copy_from_slice(&self.var_ext);
        let tau_m = self.values(Param::TauM);
        for (jj, &r) in nu.iter().enumerate() {
            let (a, b) = (
                &self.cj[jj * n..(jj + 1) * n],
                &self.cj2[jj * n..(jj + 1) * n],
            );
            for i in 0..n {
                mu[i] += tau_m[i] * a[i] * r;
                var[i] += tau_m[i] * b[i] * r;
            }
        }
    }

    /// The rates Φ_i(μ_i(ν), σ_i(ν)) of every population at rates `nu` (scratch: `2n`).
    pub fn rates(&self, nu: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let n = self.n;
        let (mu, var) = scratch[..2 * n].split_at_mut(n);
        self.statistics(nu, mu, var);
        for i in 0..n {
            out[i] = self.lif(i).rate(mu[i], var[i].max(SIGMA2_FLOOR).sqrt());
        }
    }

    /// Input statistics and the response with derivatives of every population at `nu`
    /// (scratch: `2n`).
    pub fn locals(&self, nu: &[f64], out: &mut [Local], scratch: &mut [f64]) {
        let n = self.n;
        let (mu, var) = scratch[..2 * n].split_at_mut(n);
        self.statistics(nu, mu, var);
        for i in 0..n {
            let floored = var[i] <= SIGMA2_FLOOR;
            let sigma = var[i].max(SIGMA2_FLOOR).sqrt();
            out[i] = Local {
                mu: mu[i],
                sigma,
                dsigma_dvar: if floored { 0.0 } else { 0.5 / sigma },
                response: self.lif(i).response(mu[i], sigma),
            };
        }
    }

    /// The fixed-point residual `g = Φ(ν) − ν` and its Jacobian
    /// `∂g/∂ν = −I + diag(Φ_μ τm) C⊙J + diag(Φ_σ τm ∂σ/∂σ²) C⊙J²` (`n x n`, column-major)
    /// at `nu`; `locals` (`n`) and `scratch` (`2n`) are work space.
    pub fn residual_jacobian(
        &self,
        nu: &[f64],
        g: &mut [f64],
        jac: &mut [f64],
        locals: &mut [Local],
        scratch: &mut [f64],
    ) {
        let n = self.n;
        self.locals(nu, locals, scratch);
        let tau_m = self.values(Param::TauM);
        for i in 0..n {
            g[i] = locals[i].response.rate - nu[i];
        }
        for j in 0..n {
            for i in 0..n {
                let l = &locals[i];
                let k = i + j * n;
                let diag = if i == j { -1.0 } else { 0.0 };
                jac[k] = diag
                    + tau_m[i]
                        * (l.response.d_mu * self.cj[k]
                            + l.response.d_sigma * l.dsigma_dvar * self.cj2[k]);
            }
        }
    }

    /// `C ⊙ J` (column-major).
    pub fn cj(&self) -> &[f64] {
        &self.cj
    }

    /// `C ⊙ J²` (column-major).
    pub fn cj2(&self) -> &[f64] {
        &self.cj2
    }
}

fn broadcast(p: Param, n: usize, v: Vec<f64>) -> Result<Vec<f64>, MeanFieldError> {
    let full = if p.is_matrix() { n * n } else { n };
    match v.len() {
        1 => Ok(vec![v[0]; full]),
        len if len == full => Ok(if p.is_matrix() {
            // Row-major as written -> column-major.
            let mut m = vec![0.0; full];
            for i in 0..n {
                for j in 0..n {
                    m[i + j * n] = v[i * n + j];
                }
            }
            m
        } else {
            v
        }),
        len => Err(MeanFieldError::Shape {
            key: p.name().to_string(),
            got: len,
            expected: if p.is_matrix() {
                format!("1 or {n} x {n} = {full}")
            } else {
                format!("1 or {n} (one per population)")
            },
        }),
    }
}
