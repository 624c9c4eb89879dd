//! The rate dynamics `τ_i dν_i/dt = −ν_i + Φ_i(μ_i(ν), σ_i(ν))` as a batched vector field:
//! one parameter set per trial.

use std::marker::PhantomData;

use neurode_solvers::{Columns, JvpState, ParamView, Real, VectorField, VjpParams, VjpState};

use super::params::{Local, MeanFieldParams, Param};
use super::MeanFieldError;

/// The trainable parameters of one set, in the order of `θ`: `j_matrix` (`n x n`,
/// column-major), `j_ext`, `nu_ext`, `threshold` (`n` each).
pub const TRAINED: [Param; 4] = [Param::J, Param::JExt, Param::NuExt, Param::Threshold];

/// The LIF mean field's rate dynamics on a batch of parameter sets (trial `b` is set `b`):
///
/// ```text
/// τ_i dν_i/dt = −ν_i + Φ_i(μ_i(ν), σ_i(ν))
/// ```
///
/// with [`MeanFieldParams`]' input statistics (postsynaptic τm) and the transfer function of
/// [`Lif`](super::Lif). The state is the rate vector (Hz). Its parameters `θ` are, per set,
/// `J`, `j_ext`, `nu_ext` and the thresholds ([`TRAINED`]); both vector-Jacobian products are
/// analytic, so the solver's gradients and the implicit-function gradients of fixed points
/// ([`fixed_point_vjp`](super::fixed_point_vjp)) flow through it. The transfer function is
/// evaluated in `f64` for either scalar type.
///
/// ```
/// use neurode_models::meanfield::{LifMeanField, MeanFieldParams, Param};
/// use neurode_solvers::integrate;
///
/// // The two-population example of the original's README.
/// let set = MeanFieldParams::new(2, |p| match p {
///     Param::C => Some(vec![1.0]),
///     Param::J => Some(vec![0.1]),
///     Param::JExt => Some(vec![2.3]),
///     Param::CExt => Some(vec![320.0]),
///     Param::NuExt => Some(vec![7.0]),
///     Param::TauM => Some(vec![0.02]),
///     Param::TauS => Some(vec![0.005]),
///     Param::Threshold => Some(vec![1.5, 0.75]),
///     Param::TauRef => Some(vec![0.005]),
///     _ => None,
/// })?;
/// let field = LifMeanField::<f64>::new(vec![set])?;
/// let sol = integrate(&field, (0.0, 40.0)).run()?;
/// let nu = sol.state(sol.ts().len() - 1, 0);
/// assert!((nu[0] - 188.2719249891).abs() < 1e-4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LifMeanField<T> {
    sets: Vec<MeanFieldParams>,
    n: usize,
    x0: Option<Vec<f64>>,
    _t: PhantomData<T>,
}

/// Scratch of the mean field: the input statistics and responses of one column.
#[derive(Debug, Clone)]
pub struct MeanFieldWorkspace {
    nu: Vec<f64>,
    out: Vec<f64>,
    scratch: Vec<f64>,
    locals: Vec<Local>,
    // Per population: ∂f_i/∂μ_i · τm_i and ∂f_i/∂σ_i² · τm_i (with the 1/τ_i).
    a: Vec<f64>,
    b: Vec<f64>,
}

impl<T: Real> LifMeanField<T> {
    /// A field over `sets` (one trial each), all with the same number of populations.
    pub fn new(sets: Vec<MeanFieldParams>) -> Result<Self, MeanFieldError> {
        let n = sets.first().map(|s| s.n()).ok_or(MeanFieldError::NoSets)?;
        if let Some((b, s)) = sets.iter().enumerate().find(|(_, s)| s.n() != n) {
            return Err(MeanFieldError::Shape {
                key: format!("set {b}"),
                got: s.n(),
                expected: format!("{n} populations, as set 0"),
            });
        }
        Ok(LifMeanField {
            sets,
            n,
            x0: None,
            _t: PhantomData,
        })
    }

    /// Starts every trial from `rates` (`n x batch`, column-major) instead of zero.
    pub fn with_initial_rates(mut self, rates: Vec<f64>) -> Result<Self, MeanFieldError> {
        if rates.len() != self.n * self.sets.len() {
            return Err(MeanFieldError::Shape {
                key: "nu_init".into(),
                got: rates.len(),
                expected: format!("{} (populations x sets)", self.n * self.sets.len()),
            });
        }
        self.x0 = Some(rates);
        Ok(self)
    }

    /// The parameter sets, one per trial.
    pub fn sets(&self) -> &[MeanFieldParams] {
        &self.sets
    }

    /// Number of entries of `θ` per set: `n² + 3n`.
    pub fn params_per_set(&self) -> usize {
        self.n * self.n + 3 * self.n
    }

    /// The Jacobian `∂f/∂ν` of set `set` at rates `nu` (`n x n`, column-major), with the
    /// rate time constants: `diag(1/τ) (−I + diag(Φ_μ τm) C⊙J + diag(Φ_σ τm ∂σ/∂σ²) C⊙J²)`.
    pub fn jacobian(&self, set: usize, nu: &[f64], out: &mut [f64]) {
        let n = self.n;
        let s = &self.sets[set];
        let mut ws = self.workspace(1);
        s.residual_jacobian(nu, &mut ws.out, out, &mut ws.locals, &mut ws.scratch);
        let tau = s.values(Param::Tau);
        for (k, v) in out[..n * n].iter_mut().enumerate() {
            *v /= tau[k % n];
        }
    }

    /// The slopes of column `x` of set `set` into `ws.a`, `ws.b`:
    /// `∂f_i/∂ν_j = −δ_ij/τ_i + a_i (C⊙J)_ij + b_i (C⊙J²)_ij`, with the rates in `ws.nu`.
    fn column_slopes(&self, set: usize, x: &[T], ws: &mut MeanFieldWorkspace) -> &MeanFieldParams {
        for (d, v) in ws.nu.iter_mut().zip(x) {
            *d = v.as_f64();
        }
        let s = &self.sets[set];
        s.locals(&ws.nu, &mut ws.locals, &mut ws.scratch);
        let (tau, tau_m) = (s.values(Param::Tau), s.values(Param::TauM));
        for (i, l) in ws.locals.iter().enumerate() {
            ws.a[i] = l.response.d_mu * tau_m[i] / tau[i];
            ws.b[i] = l.response.d_sigma * l.dsigma_dvar * tau_m[i] / tau[i];
        }
        s
    }
}

impl<T: Real> VectorField for LifMeanField<T> {
    type Scalar = T;
    type Workspace = MeanFieldWorkspace;

    fn dim(&self) -> usize {
        self.n
    }

    fn n_params(&self) -> usize {
        self.sets.len() * self.params_per_set()
    }

    fn batch(&self) -> Option<usize> {
        Some(self.sets.len())
    }

    fn workspace(&self, _batch: usize) -> MeanFieldWorkspace {
        let n = self.n;
        MeanFieldWorkspace {
            nu: vec![0.0; n],
            out: vec![0.0; n],
            scratch: vec![0.0; 2 * n],
            locals: vec![Local::default(); n],
            a: vec![0.0; n],
            b: vec![0.0; n],
        }
    }

    fn rhs(&self, cols: Columns<'_, T>, x: &[T], dxdt: &mut [T], ws: &mut MeanFieldWorkspace) {
        let n = self.n;
        for (c, (set, _)) in cols.iter().enumerate() {
            let s = &self.sets[set];
            for (d, v) in ws.nu.iter_mut().zip(&x[c * n..(c + 1) * n]) {
                *d = v.as_f64();
            }
            s.rates(&ws.nu, &mut ws.out, &mut ws.scratch);
            let tau = s.values(Param::Tau);
            for i in 0..n {
                dxdt[c * n + i] = T::from_f64((ws.out[i] - ws.nu[i]) / tau[i]);
            }
        }
    }

    fn initial_state(&self, x0: &mut [T]) {
        match &self.x0 {
            Some(r) => {
                for (d, v) in x0.iter_mut().zip(r) {
                    *d = T::from_f64(*v);
                }
            }
            None => x0.fill(T::zero()),
        }
    }
}

impl<T: Real> VjpState for LifMeanField<T> {
    fn vjp_state(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut MeanFieldWorkspace,
    ) {
        let n = self.n;
        for (c, (set, _)) in cols.iter().enumerate() {
            let s = self.column_slopes(set, &x[c * n..(c + 1) * n], ws);
            let tau = s.values(Param::Tau);
            let vc = &v[c * n..(c + 1) * n];
            for j in 0..n {
                let mut acc = -vc[j].as_f64() / tau[j];
                for (i, vi) in vc.iter().enumerate() {
                    let k = i + j * n;
                    acc += vi.as_f64() * (ws.a[i] * s.cj()[k] + ws.b[i] * s.cj2()[k]);
                }
                out[c * n + j] += T::from_f64(acc);
            }
        }
    }
}

impl<T: Real> JvpState for LifMeanField<T> {
    fn jvp_state(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut MeanFieldWorkspace,
    ) {
        let n = self.n;
        for (c, (set, _)) in cols.iter().enumerate() {
            let s = self.column_slopes(set, &x[c * n..(c + 1) * n], ws);
            let tau = s.values(Param::Tau);
            let vc = &v[c * n..(c + 1) * n];
            for i in 0..n {
                let (mut dm, mut dv) = (0.0, 0.0);
                for (j, vj) in vc.iter().enumerate() {
                    dm += s.cj()[i + j * n] * vj.as_f64();
                    dv += s.cj2()[i + j * n] * vj.as_f64();
                }
                let d = ws.a[i] * dm + ws.b[i] * dv - vc[i].as_f64() / tau[i];
                out[c * n + i] = T::from_f64(d);
            }
        }
    }
}

impl<T: Real> VjpParams for LifMeanField<T> {
    fn param_views(&self) -> Vec<ParamView> {
        let n = self.n;
        let p = self.params_per_set();
        let mut views = Vec::with_capacity(4 * self.sets.len());
        for b in 0..self.sets.len() {
            let mut off = b * p;
            for param in TRAINED {
                let shape = if param.is_matrix() {
                    vec![n, n]
                } else {
                    vec![n]
                };
                let name = if self.sets.len() == 1 {
                    param.name().to_string()
                } else {
                    format!("set{b}.{}", param.name())
                };
                let len: usize = shape.iter().product();
                views.push(ParamView {
                    name,
                    offset: off,
                    shape,
                });
                off += len;
            }
        }
        views
    }

    fn params(&self, out: &mut [T]) {
        let mut k = 0;
        for s in &self.sets {
            for param in TRAINED {
                for &v in s.values(param) {
                    out[k] = T::from_f64(v);
                    k += 1;
                }
            }
        }
    }

    /// # Panics
    /// If `theta` breaks a parameter's rule (a non-finite value); use
    /// [`MeanFieldParams::set`] for checked changes.
    fn set_params(&mut self, theta: &[T]) {
        let mut k = 0;
        for s in &mut self.sets {
            for param in TRAINED {
                let len = s.values(param).len();
                let v: Vec<f64> = theta[k..k + len].iter().map(|x| x.as_f64()).collect();
                s.set(param, &v)
                    .unwrap_or_else(|e| panic!("set_params: {e}"));
                k += len;
            }
        }
    }

    fn vjp_params(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut MeanFieldWorkspace,
    ) {
        let n = self.n;
        let per = self.params_per_set();
        for (c, (set, _)) in cols.iter().enumerate() {
            let s = self.column_slopes(set, &x[c * n..(c + 1) * n], ws);
            let val = |p: Param| s.values(p);
            let (je, ce, ne) = (val(Param::JExt), val(Param::CExt), val(Param::NuExt));
            let (cm, jm) = (val(Param::C), val(Param::J));
            let base = set * per;
            let vc = &v[c * n..(c + 1) * n];
            for i in 0..n {
                let w = vc[i].as_f64();
                let (a, b) = (ws.a[i], ws.b[i]);
                for j in 0..n {
                    let k = i + j * n;
                    let g = w * cm[k] * ws.nu[j] * (a + 2.0 * b * jm[k]);
                    out[base + k] += T::from_f64(g);
                }
                let o = base + n * n;
                out[o + i] += T::from_f64(w * ce[i] * ne[i] * (a + 2.0 * b * je[i]));
                out[o + n + i] += T::from_f64(w * je[i] * ce[i] * (a + b * je[i]));
                let d_threshold = ws.locals[i].response.d_threshold / val(Param::Tau)[i];
                out[o + 2 * n + i] += T::from_f64(w * d_threshold);
            }
        }
    }
}
