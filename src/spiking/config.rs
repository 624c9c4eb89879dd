//! The spiking-network config: TOML (`configs/lif_*.toml`) or the original's YAML
//! (VectorialNeuroModulators' `spiking_network_simulation_config_template.yaml`), read into
//! one schema with the original's sections (`architecture.network`,
//! `architecture.clusters`, `stimulus`, `external_currents`, `simulation`, `settings`) plus
//! neurode's `record`.

use std::path::Path;

use neurode_models::spiking::{
    ClusterSpec, DeadTime, External, MaskKind, Mechanism, NeuronParams, Setup, Shape, SpikingError,
    Stimulus,
};
use neurode_solvers::{derive_seed, Stream};
use serde::{Deserialize, Serialize};

pub use crate::config_file::is_yaml;
use crate::config_file::{parse, read_text, FileError};

/// A per-neuron setting: one value, `[E, I]`, or one value per neuron.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PerNeuron {
    /// Every neuron.
    Scalar(f64),
    /// `[E, I]` (two entries) or one per neuron.
    List(Vec<f64>),
}

impl PerNeuron {
    /// The values of `n` neurons, the first `n_exc` excitatory.
    fn expand(&self, key: &str, n: usize, n_exc: usize) -> Result<Vec<f64>, SpikingError> {
        match self {
            PerNeuron::Scalar(v) => Ok(vec![*v; n]),
            PerNeuron::List(v) if v.len() == n => Ok(v.clone()),
            PerNeuron::List(v) if v.len() == 2 => Ok((0..n)
                .map(|i| if i < n_exc { v[0] } else { v[1] })
                .collect()),
            PerNeuron::List(v) => Err(SpikingError::Shape {
                key: format!("architecture.network.{key}"),
                got: v.len(),
                expected: format!("1, 2 ([E, I]) or n_neurons = {n}"),
            }),
        }
    }
}

/// One value for all four class pairs or four (E→E, E→I, I→E, I→I).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Four {
    /// Every pair.
    Scalar(f64),
    /// Per pair.
    List(Vec<f64>),
}

impl Four {
    fn get(&self, key: &str) -> Result<[f64; 4], SpikingError> {
        match self {
            Four::Scalar(v) => Ok([*v; 4]),
            Four::List(v) if v.len() == 4 => Ok([v[0], v[1], v[2], v[3]]),
            Four::List(v) => Err(SpikingError::Shape {
                key: key.to_string(),
                got: v.len(),
                expected: "4, in the order (E→E, E→I, I→E, I→I), or one value".into(),
            }),
        }
    }
}

/// `architecture.network`: the neurons' constants (seconds; the original's voltage units).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Membrane time constant τm (s).
    pub tau_membrane: PerNeuron,
    /// Synaptic time constant τs (s).
    pub tau_synaptic: PerNeuron,
    /// Refractory period τ_ref (s).
    pub tau_refractory: PerNeuron,
    /// Threshold.
    pub threshold: PerNeuron,
    /// Reset (default 0).
    #[serde(default = "zero")]
    pub reset_voltage: PerNeuron,
    /// External weights per (source, target) pair, as `external_currents` (see
    /// [`SpikingConfig::external`] for the original's YAML).
    pub j_ext: Four,
}

fn zero() -> PerNeuron {
    PerNeuron::Scalar(0.0)
}

/// `architecture.clusters`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClustersSection {
    /// Excitatory neurons outside the clusters (default: none with clusters, all without).
    #[serde(default)]
    pub n_excitatory_background: Option<usize>,
    /// Inhibitory neurons outside the clusters (as above).
    #[serde(default)]
    pub n_inhibitory_background: Option<usize>,
    /// Clusters `Q` per class (0: an unclustered E/I network).
    pub n_clusters: usize,
    /// Connection probabilities (E→E, E→I, I→E, I→I; first letter presynaptic).
    pub connectivity_fraction_probs: Four,
    /// Baseline weights.
    pub j_baseline: Four,
    /// Potentiation factors inside a cluster pair (default 1: no potentiation).
    #[serde(default = "one_four")]
    pub j_potentiated: Four,
    /// `bernoulli` (the original at 4d271c6, default) or `fixed_in_degree` (its later
    /// versions).
    #[serde(default)]
    pub connectivity: Option<String>,
}

fn one_four() -> Four {
    Four::Scalar(1.0)
}

/// A stimulus shape: a name or the original's number (1 box, 2 linear, 3 diff2exp).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ShapeName {
    /// `box`, `linear`, `diff2exp` or `none`.
    Name(String),
    /// 1, 2 or 3.
    Number(i64),
}

/// `stimulus` (absent: none).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StimulusSection {
    /// `box`, `linear`, `diff2exp` (or 1, 2, 3), or `none`.
    pub stimulus_shape: ShapeName,
    /// Onset (s).
    #[serde(default)]
    pub onset: Option<f64>,
    /// Onsets (s), summed (the original from 394854e on).
    #[serde(default)]
    pub onsets: Option<Vec<f64>>,
    /// Duration (s; a difference of exponentials lasts to the end of the run).
    #[serde(default)]
    pub duration: f64,
    /// Amplitude (voltage per second).
    pub amplitude: f64,
    /// The stimulated neurons (absent or null: all, unless the probabilities below pick).
    #[serde(default)]
    pub stimulated_neurons: Option<Vec<i64>>,
    /// The fraction of E clusters stimulated, drawn at random (394854e).
    #[serde(default)]
    pub stimulated_clusters_prob: Option<f64>,
    /// The fraction of the chosen clusters' neurons stimulated (394854e; default 1).
    #[serde(default)]
    pub stimulated_neuron_prob: Option<f64>,
    /// Rise time of `diff2exp` (s).
    #[serde(default)]
    pub tau_rise: Option<f64>,
    /// Decay time of `diff2exp` (s).
    #[serde(default)]
    pub tau_decay: Option<f64>,
}

/// `external_currents`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSection {
    /// External synapses per target neuron (E→E, E→I, I→E, I→I).
    pub c_ext: Four,
    /// Rates of the external sources (Hz).
    pub nu_ext_baseline: Four,
}

/// `simulation`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// Step (s).
    pub delta_t: f64,
    /// Length of the run (s).
    pub duration_sec: f64,
    /// `analytic` (exact propagators, default) or `euler`.
    #[serde(default = "analytic")]
    pub mechanism: String,
    /// Seed of the connectivity, the external input and the stimulus's draws.
    #[serde(default = "default_seed")]
    pub random_seed: u64,
    /// Neurons.
    pub n_neurons: usize,
    /// Excitatory neurons (the first ones).
    pub n_excitatory: usize,
    /// Dead time after a spike: `tau_ref` (τ_ref, the mean field's; default) or `original`
    /// (τ_ref + delta_t, the original's count).
    #[serde(default = "tau_ref")]
    pub refractory: String,
    /// `f64` (default) or `f32`.
    #[serde(default = "f64_name")]
    pub precision: String,
}

fn analytic() -> String {
    "analytic".into()
}
fn default_seed() -> u64 {
    256
}
fn tau_ref() -> String {
    "tau_ref".into()
}
fn f64_name() -> String {
    "f64".into()
}

/// `settings` (the original's output names).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder's parent (default `simulations`).
    #[serde(default)]
    pub save_dir: Option<String>,
    /// Output folder's name (default: the config's file stem).
    #[serde(default)]
    pub sim_name: Option<String>,
}

/// What to record (neurode's).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Neurons whose voltage and current are saved at every step.
    #[serde(default)]
    pub neurons: Vec<usize>,
    /// Also save the dense arrays: `spikes_dense` (steps x N, 0/1), and `voltage` and
    /// `current` of every neuron.
    #[serde(default)]
    pub dense: bool,
    /// Bin of the population rates (s).
    #[serde(default = "default_bin")]
    pub rate_bin: f64,
}

fn default_bin() -> f64 {
    0.05
}

impl Default for Record {
    fn default() -> Self {
        Record {
            neurons: vec![],
            dense: false,
            rate_bin: default_bin(),
        }
    }
}

/// `architecture`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// The neurons.
    pub network: NetworkSection,
    /// The clusters.
    pub clusters: ClustersSection,
}

/// A spiking-network config: the original's sections plus `record`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpikingConfig {
    /// Neurons and clusters.
    pub architecture: Architecture,
    /// The stimulus.
    #[serde(default)]
    pub stimulus: Option<StimulusSection>,
    /// External Poisson input.
    pub external_currents: ExternalSection,
    /// Step, length, sizes, seed.
    pub simulation: SimulationSection,
    /// Output names.
    #[serde(default)]
    pub settings: Settings,
    /// What to record.
    #[serde(default)]
    pub record: Record,
    /// Whether it was read from the original's YAML (its `j_ext` is per source class).
    #[serde(skip)]
    pub from_yaml: bool,
}

/// A config that cannot be read or is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A value is wrong.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        source: SpikingError,
    },
    /// The run would not fit in memory.
    #[error("{path}: {source}")]
    TooLarge {
        /// The file.
        path: String,
        /// The estimate.
        source: crate::memory::TooLarge,
    },
    /// A `--set` override that does not fit.
    #[error("--set {spec}: {message}")]
    Set {
        /// The override.
        spec: String,
        /// What is wrong.
        message: String,
    },
}

/// Whether the text (TOML, or YAML when `yaml`) is a spiking-network config: it has an
/// `architecture` section.
pub fn is_spiking(text: &str, yaml: bool) -> bool {
    if yaml {
        text.lines().any(|l| {
            l.split('#')
                .next()
                .is_some_and(|l| l.trim_end() == "architecture:")
        })
    } else {
        toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("architecture"))
    }
}

impl SpikingConfig {
    /// Reads a TOML file, or the original's YAML for `.yaml`/`.yml`, with `--set`
    /// overrides (`section.key=value`, e.g. `simulation.duration_sec=1`), and checks it.
    pub fn load(path: &Path, set: &[String]) -> Result<SpikingConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = read_text(path)?;
        let yaml = is_yaml(path);
        if yaml
            && text.lines().any(|l| {
                l.split('#')
                    .next()
                    .is_some_and(|l| l.trim_end() == "arousal:")
            })
        {
            return Err(ConfigError::File(FileError::Parse {
                path: shown,
                message: "the `arousal` section (the original from 394854e on) is not \
                          supported; remove it"
                    .into(),
            }));
        }
        let mut cfg: SpikingConfig = parse(path, &text)?;
        cfg.from_yaml = yaml;
        for spec in set {
            cfg.set(spec)?;
        }
        let invalid = |source| ConfigError::Invalid {
            path: shown.clone(),
            source,
        };
        // Sizes first, then memory, before any per-neuron array is made.
        cfg.check_scalars().map_err(invalid)?;
        let spec = cfg.cluster_spec().map_err(invalid)?;
        crate::memory::check(
            super::size::memory_estimate(&cfg, &spec),
            format!("a network of {} neurons over {} steps", spec.n, cfg.steps()),
            "use fewer neurons (`simulation.n_neurons`), lower connection probabilities \
             (`architecture.clusters.connectivity_fraction_probs`), a shorter run or fewer \
             recorded neurons (`record.neurons`, `record.dense`)",
        )
        .map_err(|source| ConfigError::TooLarge {
            path: shown.clone(),
            source,
        })?;
        cfg.check().map_err(invalid)?;
        Ok(cfg)
    }

    /// Applies one `section.key=value` override (the value in TOML syntax; a bare word
    /// is a string).
    pub fn set(&mut self, spec: &str) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::Set {
            spec: spec.to_string(),
            message,
        };
        let (key, value) = spec
            .split_once('=')
            .ok_or_else(|| err("write KEY=VALUE, e.g. simulation.duration_sec=1".into()))?;
        let key = key.trim();
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
        let from_yaml = self.from_yaml;
        let mut table = toml::Table::try_from(&*self).map_err(|e| err(e.to_string()))?;
        let parts: Vec<&str> = key.split('.').collect();
        let mut t = &mut table;
        for (k, part) in parts.iter().enumerate() {
            if k + 1 == parts.len() {
                t.insert(part.to_string(), value.clone());
                break;
            }
            t = match t
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
            {
                toml::Value::Table(inner) => inner,
                _ => return Err(err(format!("`{part}` is not a section"))),
            };
        }
        let new: SpikingConfig = table.try_into().map_err(|e: toml::de::Error| {
            err(e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "))
        })?;
        *self = SpikingConfig { from_yaml, ..new };
        Ok(())
    }

    /// The name of the run (`settings.sim_name`, else `fallback`).
    pub fn name(&self, fallback: &str) -> String {
        self.settings
            .sim_name
            .clone()
            .unwrap_or_else(|| fallback.to_string())
    }

    /// Steps of the run.
    pub fn steps(&self) -> usize {
        neurode_models::spiking::steps_in(self.simulation.duration_sec, self.simulation.delta_t)
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Result<Mechanism, SpikingError> {
        match self.simulation.mechanism.as_str() {
            "analytic" | "exact" => Ok(Mechanism::Exact),
            "euler" => Ok(Mechanism::Euler),
            other => Err(word("simulation.mechanism", other, "use analytic or euler")),
        }
    }

    /// The dead time.
    pub fn dead_time(&self) -> Result<DeadTime, SpikingError> {
        match self.simulation.refractory.as_str() {
            "tau_ref" => Ok(DeadTime::TauRef),
            "original" => Ok(DeadTime::Original),
            other => Err(word(
                "simulation.refractory",
                other,
                "use tau_ref or original",
            )),
        }
    }

    /// The architecture.
    pub fn cluster_spec(&self) -> Result<ClusterSpec, SpikingError> {
        let s = &self.simulation;
        let c = &self.architecture.clusters;
        let key = |k: &str| format!("architecture.clusters.{k}");
        let n_inh = s.n_neurons.saturating_sub(s.n_excitatory);
        let (dflt_e, dflt_i) = if c.n_clusters == 0 {
            (s.n_excitatory, n_inh)
        } else {
            (0, 0)
        };
        let mask = match c.connectivity.as_deref() {
            None | Some("bernoulli") => MaskKind::Bernoulli,
            Some("fixed_in_degree") => MaskKind::FixedInDegree,
            Some(other) => {
                return Err(word(
                    &key("connectivity"),
                    other,
                    "use bernoulli or fixed_in_degree",
                ))
            }
        };
        let spec = ClusterSpec {
            n: s.n_neurons,
            n_exc: s.n_excitatory,
            bg_exc: c.n_excitatory_background.unwrap_or(dflt_e),
            bg_inh: c.n_inhibitory_background.unwrap_or(dflt_i),
            clusters: c.n_clusters,
            probs: c
                .connectivity_fraction_probs
                .get(&key("connectivity_fraction_probs"))?,
            j_baseline: c.j_baseline.get(&key("j_baseline"))?,
            j_potentiated: c.j_potentiated.get(&key("j_potentiated"))?,
            mask,
        };
        spec.check().map_err(|e| match e {
            SpikingError::Invalid {
                key: k,
                value,
                requirement,
            } => SpikingError::Invalid {
                key: if k.starts_with("n_neurons")
                    || k.starts_with("n_excitatory") && !k.contains("background")
                {
                    format!("simulation.{k}")
                } else {
                    key(&k)
                },
                value,
                requirement,
            },
            e => e,
        })?;
        Ok(spec)
    }

    /// The external input. In the original's YAML, `j_ext` weighs the source classes
    /// (its first two entries: excitatory, inhibitory sources) whatever the target; in
    /// neurode's TOML it has one entry per (source, target) pair like `c_ext`.
    pub fn external(&self) -> Result<External, SpikingError> {
        let e = &self.external_currents;
        let j = match (&self.architecture.network.j_ext, self.from_yaml) {
            (Four::List(v), true) if v.len() >= 2 => [v[0], v[0], v[1], v[1]],
            (Four::List(v), true) => {
                return Err(SpikingError::Shape {
                    key: "architecture.network.j_ext".into(),
                    got: v.len(),
                    expected: "at least 2 in the original's YAML (its first two entries weigh \
                               the excitatory and the inhibitory sources), or one value"
                        .into(),
                })
            }
            (j, _) => j.get("architecture.network.j_ext")?,
        };
        Ok(External {
            c: e.c_ext.get("external_currents.c_ext")?,
            nu: e.nu_ext_baseline.get("external_currents.nu_ext_baseline")?,
            j,
        })
    }

    /// The neurons' constants.
    pub fn neurons(&self) -> Result<Vec<NeuronParams>, SpikingError> {
        let s = &self.simulation;
        let nw = &self.architecture.network;
        let (n, ne) = (s.n_neurons, s.n_excitatory);
        let tm = nw.tau_membrane.expand("tau_membrane", n, ne)?;
        let ts = nw.tau_synaptic.expand("tau_synaptic", n, ne)?;
        let tr = nw.tau_refractory.expand("tau_refractory", n, ne)?;
        let th = nw.threshold.expand("threshold", n, ne)?;
        let rs = nw.reset_voltage.expand("reset_voltage", n, ne)?;
        Ok((0..n)
            .map(|i| NeuronParams {
                tau_m: tm[i],
                tau_s: ts[i],
                tau_ref: tr[i],
                threshold: th[i],
                reset: rs[i],
            })
            .collect())
    }

    /// The stimulus and its neurons (drawn from the run's seed when the config gives
    /// fractions), or `None`.
    pub fn stimulus(
        &self,
        spec: &ClusterSpec,
    ) -> Result<Option<(Stimulus, Vec<usize>)>, SpikingError> {
        let Some(st) = &self.stimulus else {
            return Ok(None);
        };
        let key = |k: &str| format!("stimulus.{k}");
        let shape = match &st.stimulus_shape {
            ShapeName::Name(s) if s == "none" => return Ok(None),
            ShapeName::Name(s) if s == "box" => Shape::Box,
            ShapeName::Number(1) => Shape::Box,
            ShapeName::Name(s) if s == "linear" => Shape::Linear,
            ShapeName::Number(2) => Shape::Linear,
            ShapeName::Name(s) if s == "diff2exp" => diff2exp(st)?,
            ShapeName::Number(3) => diff2exp(st)?,
            ShapeName::Name(s) => {
                return Err(word(
                    &key("stimulus_shape"),
                    s,
                    "use box, linear, diff2exp (or 1, 2, 3), or none",
                ))
            }
            ShapeName::Number(k) => {
                return Err(SpikingError::Invalid {
                    key: key("stimulus_shape"),
                    value: *k as f64,
                    requirement: "1 (box), 2 (linear) or 3 (diff2exp)".into(),
                })
            }
        };
        let onsets = match (&st.onsets, st.onset) {
            (Some(v), None) if !v.is_empty() => v.clone(),
            (None, Some(t)) => vec![t],
            (Some(_), Some(_)) => {
                return Err(word(
                    &key("onset"),
                    "and onsets",
                    "give onset or onsets, not both",
                ))
            }
            _ => {
                return Err(word(
                    &key("onset"),
                    "missing",
                    "give the onset (s) or onsets",
                ))
            }
        };
        let stimulus = Stimulus {
            shape,
            amplitude: st.amplitude,
            onsets,
            duration: st.duration,
        };
        stimulus.check(self.simulation.delta_t, self.steps())?;
        let n = spec.n;
        let neurons = match (&st.stimulated_neurons, st.stimulated_clusters_prob) {
            (Some(_), Some(_)) => {
                return Err(word(
                    &key("stimulated_neurons"),
                    "and stimulated_clusters_prob",
                    "name the neurons or give the fraction of clusters, not both",
                ))
            }
            (Some(list), None) => {
                let mut out = Vec::with_capacity(list.len());
                for (k, &i) in list.iter().enumerate() {
                    if i < 0 || i as usize >= n {
                        return Err(SpikingError::Invalid {
                            key: key(&format!("stimulated_neurons[{k}]")),
                            value: i as f64,
                            requirement: format!("a neuron index in 0..{n}"),
                        });
                    }
                    out.push(i as usize);
                }
                out
            }
            (None, Some(pc)) => self.draw_stimulated(spec, pc, st.stimulated_neuron_prob)?,
            (None, None) => (0..n).collect(),
        };
        Ok(Some((stimulus, neurons)))
    }

    /// A random fraction `pc` of the E clusters, then a fraction `pn` of their neurons.
    fn draw_stimulated(
        &self,
        spec: &ClusterSpec,
        pc: f64,
        pn: Option<f64>,
    ) -> Result<Vec<usize>, SpikingError> {
        let pn = pn.unwrap_or(1.0);
        for (k, p) in [
            ("stimulated_clusters_prob", pc),
            ("stimulated_neuron_prob", pn),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SpikingError::Invalid {
                    key: format!("stimulus.{k}"),
                    value: p,
                    requirement: "a fraction in [0, 1]".into(),
                });
            }
        }
        if spec.clusters == 0 {
            return Err(word(
                "stimulus.stimulated_clusters_prob",
                &pc.to_string(),
                "the network has no clusters (n_clusters = 0); name stimulated_neurons instead",
            ));
        }
        let blocks = spec.blocks();
        let mut s = Stream::new(derive_seed(self.simulation.random_seed, &[3]));
        let q = spec.clusters;
        let k = (pc * q as f64).round() as usize;
        // k of the q E clusters, uniformly (selection sampling), then each neuron with pn.
        let mut out = Vec::new();
        let mut left = k;
        for c in 0..q {
            if (s.uniform() * (q - c) as f64) < left as f64 {
                left -= 1;
                let off = blocks.offsets();
                for i in off[c]..off[c + 1] {
                    if pn >= 1.0 || s.uniform() < pn {
                        out.push(i);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Checks the step, the length and the words (no per-neuron array is made).
    pub fn check_scalars(&self) -> Result<(), SpikingError> {
        let s = &self.simulation;
        if !(s.delta_t.is_finite() && s.delta_t > 0.0) {
            return Err(SpikingError::Invalid {
                key: "simulation.delta_t".into(),
                value: s.delta_t,
                requirement: "a time step > 0 (s)".into(),
            });
        }
        if !(s.duration_sec.is_finite() && s.duration_sec >= s.delta_t) {
            return Err(SpikingError::Invalid {
                key: "simulation.duration_sec".into(),
                value: s.duration_sec,
                requirement: format!("at least one step, delta_t = {} s", s.delta_t),
            });
        }
        if self.steps() > u32::MAX as usize {
            return Err(SpikingError::Invalid {
                key: "simulation.duration_sec".into(),
                value: s.duration_sec,
                requirement: format!("at most {} steps of delta_t", u32::MAX),
            });
        }
        if !matches!(s.precision.as_str(), "f64" | "f32") {
            return Err(word("simulation.precision", &s.precision, "use f64 or f32"));
        }
        let r = &self.record;
        if !(r.rate_bin.is_finite() && r.rate_bin >= s.delta_t && r.rate_bin <= s.duration_sec) {
            return Err(SpikingError::Invalid {
                key: "record.rate_bin".into(),
                value: r.rate_bin,
                requirement: format!(
                    "a bin between delta_t = {} s and the run's {} s",
                    s.delta_t, s.duration_sec
                ),
            });
        }
        self.mechanism()?;
        self.dead_time()?;
        Ok(())
    }

    /// Checks everything that can be checked before building.
    pub fn check(&self) -> Result<(), SpikingError> {
        self.check_scalars()?;
        let s = &self.simulation;
        let spec = self.cluster_spec()?;
        let neurons = self.neurons()?;
        for (k, p) in neurons.iter().enumerate() {
            neurode_models::spiking::check_neuron(p, s.delta_t, k).map_err(|e| match e {
                SpikingError::Invalid {
                    key,
                    value,
                    requirement,
                } => SpikingError::Invalid {
                    key: format!("architecture.network.{key}"),
                    value,
                    requirement,
                },
                e => e,
            })?;
        }
        self.external()?.check(s.delta_t)?;
        self.stimulus(&spec)?;
        let r = &self.record;
        if let Some(&i) = r.neurons.iter().find(|&&i| i >= s.n_neurons) {
            return Err(SpikingError::Invalid {
                key: "record.neurons".into(),
                value: i as f64,
                requirement: format!("neuron indices below n_neurons = {}", s.n_neurons),
            });
        }
        Ok(())
    }

    /// The network's setup for `seed` (the external input's stream is derived from it).
    pub fn setup(&self, spec: &ClusterSpec) -> Result<Setup, SpikingError> {
        Ok(Setup {
            dt: self.simulation.delta_t,
            n_exc: self.simulation.n_excitatory,
            neurons: self.neurons()?,
            mechanism: self.mechanism()?,
            dead_time: self.dead_time()?,
            external: self.external()?,
            stimulus: self.stimulus(spec)?,
            seed: derive_seed(self.simulation.random_seed, &[2]),
        })
    }
}

fn diff2exp(st: &StimulusSection) -> Result<Shape, SpikingError> {
    match (st.tau_rise, st.tau_decay) {
        (Some(tau_rise), Some(tau_decay)) => Ok(Shape::DiffOfExp {
            tau_rise,
            tau_decay,
        }),
        (None, _) => Err(word(
            "stimulus.tau_rise",
            "missing",
            "diff2exp needs tau_rise and tau_decay (s)",
        )),
        (_, None) => Err(word(
            "stimulus.tau_decay",
            "missing",
            "diff2exp needs tau_rise and tau_decay (s)",
        )),
    }
}

fn word(key: &str, value: &str, expected: &str) -> SpikingError {
    SpikingError::Choice {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}
