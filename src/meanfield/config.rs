//! The mean-field config: TOML (`configs/meanfield_*.toml`) or the original's YAML
//! (VectorialNeuroModulators' `mf_simulation_config_template.yaml`), read into one schema
//! that mirrors the original's sections, `network`, `runner` and `sweep`, plus neurode's
//! `solver`.

use std::path::Path;

use neurode_models::meanfield::{
    MeanFieldError, MeanFieldParams, Mode, Param, SolveOptions, Sweep, Target,
};
use serde::{Deserialize, Serialize};

/// A number, a list, or a list of lists (a matrix, one row per postsynaptic population).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Values {
    /// One value for every entry.
    Scalar(f64),
    /// One value per population (or a start's rates).
    List(Vec<f64>),
    /// Rows.
    Matrix(Vec<Vec<f64>>),
}

impl Values {
    /// The values flattened row by row, checking that every row has `n` entries.
    fn flat(&self, key: &str, n: usize) -> Result<Vec<f64>, MeanFieldError> {
        match self {
            Values::Scalar(v) => Ok(vec![*v]),
            Values::List(v) => Ok(v.clone()),
            Values::Matrix(rows) => {
                if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
                    return Err(MeanFieldError::Shape {
                        key: format!("{key} row {i}"),
                        got: r.len(),
                        expected: format!("{n} (one per presynaptic population)"),
                    });
                }
                Ok(rows.iter().flatten().copied().collect())
            }
        }
    }

    /// As a list of rate vectors: a list is one start, a matrix several.
    fn starts(&self) -> Vec<Vec<f64>> {
        match self {
            Values::Scalar(v) => vec![vec![*v]],
            Values::List(v) => vec![v.clone()],
            Values::Matrix(rows) => rows.clone(),
        }
    }
}

/// `[network]`: the original's `LIFMeanField` keyword arguments (short aliases accepted).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Number of populations.
    pub n_clusters: usize,
    /// Synapse counts onto row from column.
    #[serde(alias = "c")]
    pub c_matrix: Values,
    /// Efficacies onto row from column.
    #[serde(alias = "j")]
    pub j_matrix: Values,
    /// External efficacy.
    pub j_ext: Values,
    /// External synapse count.
    pub c_ext: Values,
    /// External rate (Hz).
    pub nu_ext: Values,
    /// Membrane time constant (s).
    #[serde(alias = "tau_m")]
    pub tau_membrane: Values,
    /// Synaptic time constant (s; default 0).
    #[serde(alias = "tau_s", default)]
    pub tau_synaptic: Option<Values>,
    /// Threshold.
    #[serde(alias = "theta")]
    pub threshold: Values,
    /// Reset (default 0).
    #[serde(alias = "v_reset", default)]
    pub reset_voltage: Option<Values>,
    /// Refractory period (s; default 0).
    #[serde(alias = "tau_ref", default)]
    pub tau_refractory: Option<Values>,
    /// Time constant of the rate dynamics (default 1).
    #[serde(alias = "tau", default)]
    pub tau_rate: Option<Values>,
}

impl Network {
    /// The parameter set.
    pub fn params(&self) -> Result<MeanFieldParams, MeanFieldError> {
        let net = self;
        let n = net.n_clusters;
        let mut err = None;
        let set = MeanFieldParams::new(n, |p| {
            let v = match p {
                Param::C => Some(&net.c_matrix),
                Param::J => Some(&net.j_matrix),
                Param::JExt => Some(&net.j_ext),
                Param::CExt => Some(&net.c_ext),
                Param::NuExt => Some(&net.nu_ext),
                Param::TauM => Some(&net.tau_membrane),
                Param::TauS => net.tau_synaptic.as_ref(),
                Param::Threshold => Some(&net.threshold),
                Param::Reset => net.reset_voltage.as_ref(),
                Param::TauRef => net.tau_refractory.as_ref(),
                Param::Tau => net.tau_rate.as_ref(),
            }?;
            match v.flat(p.name(), n) {
                Ok(v) => Some(v),
                Err(e) => {
                    err.get_or_insert(e);
                    Some(vec![])
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => set,
        }
    }
}

/// `runner.simple`: the starts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Simple {
    /// One start (a list of rates) or several (a list of lists).
    #[serde(default)]
    pub nu_init: Option<Values>,
}

/// `runner.effective`: the effective response of focus populations on a grid.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Effective {
    /// The focus populations.
    pub focus_pops: Vec<usize>,
    /// `[lo, hi]` rates per focus population (Hz).
    pub focus_nu_limits: Vec<[f64; 2]>,
    /// Grid points per Hz, per focus population.
    pub focus_nu_density: Vec<f64>,
    /// Starting rates of the ambient populations.
    pub ambient_nu_init: Vec<f64>,
}

/// `[runner]`, as the original's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Runner {
    /// `simple` (fixed points) or `effective` (fixed points and the effective response).
    #[serde(default)]
    pub mode: Option<String>,
    /// Effective-response settings.
    #[serde(default)]
    pub effective: Option<Effective>,
    /// Starts.
    #[serde(default)]
    pub simple: Simple,
}

/// `[sweep]`, with the original's keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// The parameter (name or alias, optionally indexed: `threshold[0]`).
    pub sweep_param: String,
    /// `replace` (the original's `new`), `shift` or `scale`.
    #[serde(default = "default_mode")]
    pub sweep_mode: String,
    /// With `read_vals_as = "range"`: `[start, stop, step]` (NumPy's `arange`, stop
    /// excluded); `"linspace"`: `[start, stop, n]` (both ends included); `"list"`: the
    /// values.
    pub sweep_vals: Vec<f64>,
    /// `range` (default), `linspace` or `list`.
    #[serde(default = "default_read")]
    pub read_vals_as: String,
}

fn default_mode() -> String {
    "replace".into()
}

fn default_read() -> String {
    "range".into()
}

/// `[solver]`: neurode's fixed-point search (all optional; see [`SolveOptions`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Solver {
    /// Residual tolerance, relative to max(1, max rate).
    pub tol: Option<f64>,
    /// Newton iterations per attempt.
    pub max_newton: Option<usize>,
    /// Relaxation time of the fallback, in units of the largest `tau_rate`.
    pub relax_time: Option<f64>,
    /// Start at the corners of the start box.
    pub corners: Option<bool>,
    /// Random starts per set (uniform and log-uniform each).
    pub random_starts: Option<usize>,
    /// Upper end of the start box (Hz).
    pub start_high: Option<f64>,
    /// Seed of the random starts.
    pub seed: Option<u64>,
    /// Threads (0: all cores).
    pub threads: Option<usize>,
}

/// A mean-field config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeanFieldConfig {
    /// The populations.
    pub network: Network,
    /// Starts and the effective response.
    #[serde(default)]
    pub runner: Runner,
    /// A sweep run by `neurode meanfield <config> --sweep` without a value.
    #[serde(default)]
    pub sweep: Option<SweepSection>,
    /// The fixed-point search.
    #[serde(default)]
    pub solver: Solver,
}

/// A config that cannot be read or is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed.
    #[error(transparent)]
    File(#[from] crate::config_file::FileError),
    /// A value is wrong.
    #[error("{path}: {source}")]
    Model {
        /// The file.
        path: String,
        /// What is wrong.
        source: MeanFieldError,
    },
    /// A setting is wrong.
    #[error("{path}: `{key}` = {value}: {hint}")]
    Setting {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// The value, as written.
        value: String,
        /// What to do.
        hint: String,
    },
}

impl MeanFieldConfig {
    /// Reads a TOML file, or YAML for `.yaml`/`.yml`.
    pub fn load(path: &Path) -> Result<MeanFieldConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = crate::config_file::read_text(path)?;
        let cfg: MeanFieldConfig = crate::config_file::parse(path, &text)?;
        cfg.check(&shown)?;
        Ok(cfg)
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let model = |source| ConfigError::Model {
            path: path.to_string(),
            source,
        };
        let set = self.params().map_err(model)?;
        self.solve_options()
            .map_err(|(key, value, hint)| ConfigError::Setting {
                path: path.to_string(),
                key,
                value,
                hint,
            })?;
        neurode_models::meanfield::default_starts(&set, &self.starts(), &SolveOptions::default())
            .map_err(|e| match e {
            // The starts are the config's `runner.simple.nu_init`: name the key.
            MeanFieldError::AboveCeiling {
                start, population, ..
            } => ConfigError::Setting {
                path: path.to_string(),
                key: "runner.simple.nu_init".into(),
                value: format!("start {start}, population {population}"),
                hint: e.to_string(),
            },
            e => model(e),
        })?;
        if let Some(mode) = &self.runner.mode {
            if !matches!(mode.as_str(), "simple" | "effective") {
                return Err(ConfigError::Setting {
                    path: path.to_string(),
                    key: "runner.mode".into(),
                    value: mode.clone(),
                    hint: "use `simple` or `effective`".into(),
                });
            }
        }
        if let Some(s) = &self.sweep {
            self.config_sweep(s).map_err(model)?;
        }
        Ok(())
    }

    /// The parameter set of `[network]`.
    pub fn params(&self) -> Result<MeanFieldParams, MeanFieldError> {
        self.network.params()
    }

    /// The starts of `runner.simple.nu_init` (none if absent).
    pub fn starts(&self) -> Vec<Vec<f64>> {
        self.runner
            .simple
            .nu_init
            .as_ref()
            .map(Values::starts)
            .unwrap_or_default()
    }

    /// The fixed-point settings; an error names the key.
    pub fn solve_options(&self) -> Result<SolveOptions, (String, String, String)> {
        let s = &self.solver;
        let d = SolveOptions::default();
        let positive = |key: &str, v: Option<f64>| match v {
            Some(x) if !(x.is_finite() && x > 0.0) => Err((
                format!("solver.{key}"),
                x.to_string(),
                "must be a finite number > 0".to_string(),
            )),
            _ => Ok(()),
        };
        positive("tol", s.tol)?;
        positive("relax_time", s.relax_time)?;
        positive("start_high", s.start_high)?;
        if s.max_newton == Some(0) {
            return Err((
                "solver.max_newton".into(),
                "0".into(),
                "Newton needs at least one iteration".into(),
            ));
        }
        Ok(SolveOptions {
            tol: s.tol.unwrap_or(d.tol),
            max_newton: s.max_newton.unwrap_or(d.max_newton),
            relax_time: s.relax_time.unwrap_or(d.relax_time),
            corners: s.corners.unwrap_or(d.corners),
            random_starts: s.random_starts.unwrap_or(d.random_starts),
            start_high: s.start_high.or(d.start_high),
            seed: s.seed.unwrap_or(d.seed),
            threads: s.threads.unwrap_or(d.threads),
            ..d
        })
    }

    /// The `[sweep]` section as a [`Sweep`].
    pub fn config_sweep(&self, s: &SweepSection) -> Result<Sweep, MeanFieldError> {
        let spec = format!(
            "{} = {:?} ({})",
            s.sweep_param, s.sweep_vals, s.read_vals_as
        );
        let empty = |why: String| MeanFieldError::EmptySweep {
            spec: spec.clone(),
            why,
        };
        let mode = match s.sweep_mode.as_str() {
            "rotation" => {
                return Err(empty(
                    "the original's `rotation` mode (Pᵀ X P) is not supported; use replace, shift or scale".into(),
                ))
            }
            m => Mode::parse(m).ok_or_else(|| {
                empty(format!("unknown sweep_mode `{m}`; use replace (or new), shift or scale"))
            })?,
        };
        let target = Target::parse(&s.sweep_param)?;
        let v = &s.sweep_vals;
        let values: Vec<f64> = match s.read_vals_as.as_str() {
            "list" => v.clone(),
            "range" | "linspace" => {
                if v.len() != 3 || v.iter().any(|x| !x.is_finite()) {
                    return Err(empty("give three finite numbers".into()));
                }
                if s.read_vals_as == "range" {
                    let (a, b, step) = (v[0], v[1], v[2]);
                    if step == 0.0 || (b - a) / step <= 0.0 {
                        return Err(empty(format!(
                            "arange({a}, {b}, {step}) is empty: the step must be non-zero and point from start to stop"
                        )));
                    }
                    let count = ((b - a) / step).ceil();
                    let most = neurode_models::meanfield::MAX_VALUES;
                    if count > most as f64 {
                        return Err(empty(format!(
                            "arange({a}, {b}, {step}) has {count:.3e} values, more than the \
                             {most} one axis may have: use a larger step"
                        )));
                    }
                    (0..count as usize).map(|k| a + step * k as f64).collect()
                } else {
                    let spec = format!("{}={}:{}:{}", s.sweep_param, v[0], v[1], v[2]);
                    return Sweep::parse(&spec, mode);
                }
            }
            other => {
                return Err(empty(format!(
                    "unknown read_vals_as `{other}`; use range, linspace or list"
                )))
            }
        };
        if values.is_empty() {
            return Err(empty("no values".into()));
        }
        Ok(Sweep {
            target,
            mode,
            values,
        })
    }
}
