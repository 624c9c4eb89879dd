//! `neurode simulate <spiking config>`: the clustered spiking LIF network of a config
//! (`configs/lif_clustered.toml`, `configs/lif_ei.toml`, or the original's YAML), run and
//! written out (`outputs.npz` with the original's keys, `rates.csv`, `summary.json`,
//! `raster.png`, `rates.png`); with `--mean-field`, its mean-field reduction next to it
//! (`mean_field.json`).
//!
//! A spiking config is a file family of its own (like the mean field's): it has an
//! `[architecture]` section and no `[model]`/`[task]`; [`is_spiking_config`] tells the
//! families apart for `neurode simulate`, and `neurode train` refuses it naming the command
//! to use.

mod compare;
mod config;
pub(crate) mod plot;
mod run;
mod size;

use std::path::{Path, PathBuf};

use neurode_models::meanfield::MeanFieldError;
use neurode_models::spiking::SpikingError;

pub use compare::{
    compare, report, solve_mean_field, Comparison, PointRow, Solved, MAX_POPULATIONS,
};
pub use config::{
    is_spiking, is_yaml, Architecture, ClustersSection, ConfigError, ExternalSection, Four,
    NetworkSection, PerNeuron, Record, Settings, ShapeName, SimulationSection, SpikingConfig,
    StimulusSection,
};
pub use run::{build, group_mean, groups, Built, Recording, SpikingRun};
pub use size::{memory_estimate, MAX_WEIGHT_DATA};

/// What a spiking run is asked to do.
#[derive(Debug, Clone, Default)]
pub struct SpikingOptions {
    /// The config.
    pub config: PathBuf,
    /// Output folder (default `<settings.save_dir or simulations>/<sim_name or config
    /// stem>`).
    pub out: Option<PathBuf>,
    /// Seed (overrides `simulation.random_seed`).
    pub seed: Option<u64>,
    /// `section.key=value` overrides.
    pub set: Vec<String>,
    /// Also run the mean-field comparison.
    pub mean_field: bool,
}

/// A failure of a spiking run.
#[derive(Debug, thiserror::Error)]
pub enum SpikingRunError {
    /// The config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The network's settings.
    #[error("{0}")]
    Spiking(#[from] SpikingError),
    /// The run would not fit in memory.
    #[error(transparent)]
    TooLarge(#[from] crate::memory::TooLarge),
    /// An output.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// A picture.
    #[error("{0}")]
    Plot(String),
    /// The mean field of the network.
    #[error("the mean field of the network: {0}")]
    MeanField(String),
}

impl From<MeanFieldError> for SpikingRunError {
    fn from(e: MeanFieldError) -> Self {
        SpikingRunError::MeanField(e.to_string())
    }
}

/// Whether the file at `path` is a spiking-network config (an unreadable file is not).
pub fn is_spiking_config(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| is_spiking(&t, is_yaml(path)))
}

/// A finished run with its comparison.
#[derive(Debug)]
pub struct Outcome {
    /// The run.
    pub run: SpikingRun,
    /// The mean field next to it, if asked for.
    pub comparison: Option<Comparison>,
}

/// Loads the config, runs the network (`progress(step, steps, dt)`), writes the outputs and,
/// if asked, the mean-field comparison.
pub fn simulate(
    opts: &SpikingOptions,
    progress: &dyn Fn(usize, usize, f64),
) -> Result<Outcome, SpikingRunError> {
    let mut set = opts.set.clone();
    if let Some(s) = opts.seed.filter(|&s| s > i64::MAX as u64) {
        return Err(SpikingRunError::Spiking(SpikingError::Invalid {
            key: "--seed".into(),
            value: s as f64,
            requirement: format!("a seed is at most {} (2^63 − 1)", i64::MAX),
        }));
    }
    if let Some(s) = opts.seed {
        set.push(format!("simulation.random_seed={s}"));
    }
    let cfg = SpikingConfig::load(&opts.config, &set)?;
    let out = opts.out.clone().unwrap_or_else(|| {
        Path::new(cfg.settings.save_dir.as_deref().unwrap_or("simulations"))
            .join(cfg.name(&run::stem(&opts.config)))
    });
    crate::io::check_dir_writable(&out)?;
    match cfg.simulation.precision.as_str() {
        "f32" => finish::<f32>(cfg, opts, out, progress),
        _ => finish::<f64>(cfg, opts, out, progress),
    }
}

fn finish<T: neurode_solvers::Real>(
    cfg: SpikingConfig,
    opts: &SpikingOptions,
    out: PathBuf,
    progress: &dyn Fn(usize, usize, f64),
) -> Result<Outcome, SpikingRunError> {
    let t0 = std::time::Instant::now();
    let mut built = build::<T>(&cfg)?;
    let build_seconds = t0.elapsed().as_secs_f64();
    // The mean field is solved before the network runs: its errors come first.
    let solved = if opts.mean_field {
        Some(compare::solve_mean_field(&built)?)
    } else {
        None
    };
    let run = run::execute(cfg, &mut built, build_seconds, &opts.config, out, progress)?;
    let comparison = match solved {
        Some(solved) => {
            let c = compare(&run, &built, &solved)?;
            let path = run.out.join("mean_field.json");
            let text = serde_json::to_string_pretty(&c.json)
                .map_err(|e| crate::io::IoError::format(&path, e.to_string()))?;
            crate::io::write_atomic(&path, text.as_bytes())?;
            Some(c)
        }
        None => None,
    };
    Ok(Outcome { run, comparison })
}

/// The lines `neurode simulate` prints for a run.
pub fn summary_lines(o: &Outcome) -> Vec<String> {
    let r = &o.run;
    let dt = r.config.simulation.delta_t;
    let t = r.steps as f64 * dt;
    let n = r.blocks.neurons();
    let mut out = vec![format!(
        "simulated {t} s of {n} neurons in {:.3} s ({:.1} simulated s per wall s), {} spikes; \
         network built in {:.3} s ({} synapses, {:.1} MiB)",
        r.run_seconds,
        t / r.run_seconds.max(1e-12),
        r.recording.spikes.len(),
        r.build_seconds,
        r.synapses,
        r.synapse_bytes as f64 / (1u64 << 20) as f64,
    )];
    let means = r.recording.block_means(&r.blocks, dt, 0, r.steps);
    let g: Vec<String> = groups(&r.blocks)
        .iter()
        .map(|(name, m)| format!("{name} {:.2} Hz", group_mean(&r.blocks, m, &means)))
        .collect();
    out.push(format!("mean rates: {}", g.join(", ")));
    if let Some(c) = &o.comparison {
        out.extend(report(c));
    }
    out.push(format!(
        "wrote {0}/outputs.npz, rates.csv, summary.json, raster.png, rates.png{1}",
        r.out.display(),
        if o.comparison.is_some() {
            ", mean_field.json"
        } else {
            ""
        }
    ));
    out
}
