//! The `neurode` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use neurode::config::{Overrides, TrainConfig};
use neurode::run;

/// `println!` through [`out_line`]: a closed stdout (`neurode eval run | head -3`) is a
/// quiet end of the printing, not a panic.
macro_rules! outln {
    ($($t:tt)*) => { out_line(format_args!($($t)*)) };
}

/// Set once stdout's reader has gone away: nothing more is printed, the command still
/// finishes its work (eval still writes its files) and exits with success.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes a line to stdout; see [`stdout_done`] for a failed write.
fn out_line(args: std::fmt::Arguments) {
    use std::io::Write;
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    let r = writeln!(o, "{args}").and_then(|()| o.flush());
    stdout_done(r);
}

/// After a write to stdout: a broken pipe (the reader, e.g. `head`, has gone away) stops
/// further printing quietly, as `head` expects; any other write error ends the command
/// with a message.
fn stdout_done(r: std::io::Result<()>) {
    match r {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// Checks the output paths the command names (`--out`, `--problems`) before any work: a
/// file's directory must exist and take files, a folder must exist or be creatable.
/// `train --out` and `sweep --json` are checked after their config loads (its errors
/// first), before any training; `eval --out` when written (eval prints its result first).
fn check_outputs(command: &Command) -> Result<(), String> {
    use neurode::io::{check_dir_writable, check_file_writable};
    let dir = |p: &Option<PathBuf>| p.as_deref().map_or(Ok(()), check_dir_writable);
    let file = |p: &Option<PathBuf>| p.as_deref().map_or(Ok(()), check_file_writable);
    match command {
        Command::Simulate(a) => dir(&a.out),
        Command::Analyze(a) => dir(&a.out),
        Command::Meanfield(a) => dir(&a.out).and_then(|()| file(&a.problems)),
        Command::Spiking(a) => dir(&a.out).and_then(|()| file(&a.record)),
        Command::Train(_) | Command::Sweep(_) | Command::Eval(_) => Ok(()),
    }
    .map_err(|e| e.to_string())
}

#[derive(Parser, Debug)]
#[command(
    name = "neurode",
    version,
    about = "Continuous-time models of neural circuits, simulated and differentiated",
    long_about = "Continuous-time models of neural circuits, simulated and differentiated.\n\n\
                  `neurode train <config>` trains the config's model on its task (configs/ holds \
                  ready-made configs: the low-rank RNN on the contextual switch task, the Kim et \
                  al. 2019 rate RNN on go/no-go, XOR and Mante); `neurode eval <run-dir>` \
                  evaluates a trained run on fresh trials; `neurode simulate <config or run-dir>` \
                  saves its trajectories on fresh trials (.npz for NumPy, and a plot); `neurode \
                  analyze <run-dir>` finds its fixed points and draws its flow field; `neurode \
                  meanfield <config>` finds every fixed point of a LIF mean field \
                  (configs/meanfield_*.toml) and sweeps its parameters; `neurode simulate \
                  configs/lif_clustered.toml` runs the clustered spiking LIF network (add \
                  --mean-field for its mean field beside it)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate the network of a config (untrained) or of a run directory (trained) on
    /// fresh trials of its task (trajectories.npz: times, states, inputs, readout; and
    /// simulation.png); or run a spiking-network config (outputs.npz, rates.csv,
    /// summary.json, raster.png, rates.png; --mean-field adds its mean field).
    Simulate(SimulateArgs),
    /// Train a model on a task from a TOML config, writing a run directory (config,
    /// parameters, metrics, summary, structure, plots; a MATLAB .mat for the Kim et al.
    /// rate RNN). The options after the config override its settings.
    Train(TrainArgs),
    /// Train a config under several seeds (side by side on the available cores) and print
    /// the training trials each took to meet the config's stop rule; writes no run
    /// directories. The model and training options override the config as for `train`.
    Sweep(SweepArgs),
    /// Evaluate a trained run on fresh seeded trials: accuracy overall and per condition.
    Eval(EvalArgs),
    /// The LIF mean field of a config (TOML, or the original's YAML): every fixed point
    /// with its stability label and eigenvalues, printed and written to fixed_points.json;
    /// with --sweep, every fixed point of every value of one parameter or of a grid of two
    /// (sweep.csv, sweep.npz, sweep.json, bifurcation.png or multistability.png).
    Meanfield(MeanfieldArgs),
    /// Find the fixed points of a trained run's network per input condition, with their
    /// stability, and draw its flow field; writes fixed_points.json (and .npz),
    /// eigenvalues.json, flow_field.png and spectrum.png into <run-dir>/analysis.
    Analyze(AnalyzeArgs),
    /// Convert a trained Kim et al. rate RNN (a run directory of configs/kim_*.toml, or a
    /// .mat with the original's variables) into a LIF network and choose its scaling factor
    /// λ by the original's grid search (20 to 75 in steps of 5, 100 trials each): the
    /// results go into the .mat (opt_scaling_factor, all_perfs, scaling_factors) and
    /// spiking_grid.json, with spiking_output.png and spiking_raster_<condition>.png at the
    /// best λ. --lambda evaluates one λ instead (spiking_lambda_<λ>.json).
    Spiking(SpikingArgs),
}

#[derive(clap::Args, Debug)]
struct SpikingArgs {
    /// A Kim run directory (written by `neurode train configs/kim_*.toml`) or a .mat.
    source: PathBuf,
    /// Evaluate this scaling factor only (W/λ); nothing is written into the .mat.
    #[arg(long)]
    lambda: Option<f64>,
    /// The grid of scaling factors: start:stop:step (stop included), start:stop, or a
    /// list a,b,c.
    #[arg(long, default_value = "20:75:5")]
    grid: String,
    /// Trials per scaling factor.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Seed of the trials (inputs, initial voltages, noise); every λ runs the same trials.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Standard deviation of the voltage noise per step (mV; the original's 0.1; 0 = off).
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// The task (go_nogo, xor or mante); default: the run's, or the .mat's file name's.
    #[arg(long)]
    task: Option<String>,
    /// Output folder (default: the run directory, or the .mat's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --lambda: write every trial (input, initial voltages, spikes, output) to this
    /// .npz.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No plots.
    #[arg(long)]
    no_plots: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn spiking(a: &SpikingArgs) -> Result<(), String> {
    let grid = if a.lambda.is_some() {
        Vec::new()
    } else {
        neurode::conversion::parse_grid(&a.grid).map_err(|e| e.to_string())?
    };
    let opts = neurode::conversion::SpikingOptions {
        source: a.source.clone(),
        lambda: a.lambda,
        grid,
        trials: a.trials,
        seed: a.seed,
        noise: a.noise,
        task: a.task.clone(),
        out: a.out.clone(),
        record: a.record.clone(),
        threads: a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        plots: !a.no_plots,
    };
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} trials  {elapsed} (eta {eta})")
            .expect("a valid template"),
    );
    let r = neurode::conversion::run(&opts, &bar).map_err(|e| e.to_string())?;
    for line in neurode::conversion::summary_lines(&r) {
        outln!("{line}");
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct MeanfieldArgs {
    /// The config: configs/meanfield_two_pop.toml, configs/meanfield_four_pop.toml, or a
    /// VectorialNeuroModulators mean-field YAML.
    config: PathBuf,
    /// Sweep one parameter: key=start:stop:n (n values, both ends included) or
    /// key=v1,v2,...; the key is a network parameter, optionally indexed (threshold[0],
    /// j_matrix[0,1]). Without a value: the config's [sweep] section. Twice: the grid of
    /// two parameters (multistability.png instead of bifurcation.png).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    sweep: Vec<String>,
    /// How the sweep's values act: replace (the original's `new`, default), shift or scale;
    /// once for every sweep or once per sweep.
    #[arg(long)]
    mode: Vec<String>,
    /// Change a network parameter before solving: --set threshold[0]=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Output folder (default: runs/<config stem>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the peer benchmark's problem file here (with --sweep; see
    /// benches/external/compare_meanfield.sh).
    #[arg(long)]
    problems: Option<PathBuf>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn meanfield(a: &MeanfieldArgs) -> Result<(), String> {
    let opts = neurode::meanfield::MeanFieldOptions {
        config: a.config.clone(),
        sweeps: a.sweep.clone(),
        modes: a.mode.clone(),
        set: a.set.clone(),
        out: a.out.clone(),
        problems: a.problems.clone(),
        threads: a.threads,
    };
    let bar = if a.quiet || a.sweep.is_empty() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} parameter sets  {elapsed} (eta {eta})")
            .expect("a valid template"),
    );
    let report = neurode::meanfield::run(&opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    stdout_done(neurode::meanfield::print(&report, std::io::stdout().lock()));
    Ok(())
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// The run directory written by `neurode train`.
    run_dir: PathBuf,
    /// Output folder (default: <run-dir>/analysis).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fresh trials simulated to sample initial states from.
    #[arg(long, default_value_t = 64)]
    trials: usize,
    /// Initial states per input condition.
    #[arg(long, default_value_t = 256)]
    inits: usize,
    /// Noise added to the sampled initial states, relative to the states' SD.
    #[arg(long, default_value_t = 0.05)]
    init_noise: f64,
    /// Seed of the trials and the sampling.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Flow-field grid points per axis.
    #[arg(long, default_value_t = 21)]
    grid: usize,
    /// Restrict the analysis to these regions of a multi-region network (comma-separated;
    /// a parent name stands for its children). The other regions are held at each input
    /// condition's mean final state.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// With --regions: set the other regions to zero instead of holding them.
    #[arg(long)]
    cancel_others: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn analyze(a: &AnalyzeArgs) -> Result<(), String> {
    let opts = neurode::analyze::AnalyzeOptions {
        run_dir: a.run_dir.clone(),
        out: a.out.clone(),
        trials: a.trials,
        inits: a.inits,
        init_noise: a.init_noise,
        seed: a.seed,
        grid: a.grid,
        regions: a.regions.clone(),
        cancel_others: a.cancel_others,
        ..Default::default()
    };
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} input conditions  {elapsed}")
            .expect("a valid template"),
    );
    let res = neurode::analyze::analyze(&opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    for line in res.report() {
        outln!("{line}");
    }
    let checked: Vec<bool> = res.groups.iter().filter_map(|g| g.choice_held()).collect();
    if !checked.is_empty() {
        outln!(
            "{} of {} inputs with a +-1 target have a stable fixed point of the target's sign",
            checked.iter().filter(|&&c| c).count(),
            checked.len()
        );
    }
    outln!("wrote {}", res.out.display());
    Ok(())
}

#[derive(clap::Args, Debug)]
struct EvalArgs {
    /// The run directory written by `neurode train`.
    run_dir: PathBuf,
    /// Number of fresh trials.
    #[arg(long, default_value_t = 1000)]
    trials: usize,
    /// Seed of the fresh trials.
    #[arg(long, default_value_t = 12345)]
    seed: u64,
    /// Folder for eval.json and the eval plots (default: the run directory).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn eval(a: &EvalArgs) -> Result<(), String> {
    let ev = run::compute_evaluation(&a.run_dir, a.trials, a.seed).map_err(|e| e.to_string())?;
    // The result first: a run directory that cannot be written still shows it.
    outln!(
        "{}",
        serde_json::to_string_pretty(&ev.json).map_err(|e| e.to_string())?
    );
    ev.write(a.out.as_deref().unwrap_or(&a.run_dir))
        .map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
struct SweepArgs {
    /// The TOML config (see configs/).
    config: PathBuf,
    /// Seeds 1..=seeds.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Seeds trained at once (default: the available cores).
    #[arg(long)]
    parallel: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    knobs: Knobs,
}

/// Most seeds one `neurode sweep` trains.
const MAX_SEEDS: u64 = 100_000;

fn sweep(a: &SweepArgs) -> Result<(), String> {
    let cfg = load_with(&a.config, &a.knobs.overrides(None))?;
    if a.seeds == 0 {
        return Err("--seeds must be at least 1".into());
    }
    // Each seed's result is kept for the table: a count no sweep finishes is refused.
    if a.seeds > MAX_SEEDS {
        return Err(format!(
            "--seeds {}: at most {MAX_SEEDS} seeds (each trains a whole run); use fewer",
            a.seeds
        ));
    }
    // A kind that cannot train is refused before any seed runs.
    cfg.model
        .require::<f64>(neurode::kind::Capability::Train)
        .map_err(|e| e.to_string())?;
    let seeds: Vec<u64> = (1..=a.seeds).collect();
    let parallel = a
        .parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if parallel == 0 {
        return Err("--parallel must be at least 1".into());
    }
    // Each seed trained at once holds a run's memory.
    let at_once = parallel.min(seeds.len());
    neurode::memory::check(
        cfg.memory_estimate() * at_once as f64,
        format!("training {at_once} seeds at once"),
        "use a smaller --parallel or a smaller network",
    )
    .map_err(|e| e.to_string())?;
    // Before any seed trains: a results file that cannot be written.
    if let Some(p) = &a.json {
        neurode::io::check_file_writable(p).map_err(|e| e.to_string())?;
    }
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(neurode::sweep::total_iterations(&cfg, seeds.len()))
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} it of all seeds  {rate}  eta {eta}")
            .map_err(|e| e.to_string())?
            .with_key("rate", rate),
    );
    let progress = |n: u64| bar.inc(n);
    let results = neurode::sweep::sweep(&cfg, &seeds, parallel, &progress, &|r| {
        let line = format!(
            "seed {}: {} ({:.1} s)",
            r.seed,
            match (&r.error, r.trials_to_criterion) {
                (Some(e), _) => format!("failed: {e}"),
                (None, Some(t)) => format!("{t} trials to criterion"),
                (None, None) => "criterion not met".to_string(),
            },
            r.wall_seconds
        );
        bar.suspend(|| eprintln!("{line}"));
    });
    bar.finish_and_clear();
    if let Some(e) = results.iter().find_map(|r| r.error.as_ref()) {
        if results.iter().all(|r| r.error.is_some()) {
            return Err(format!("every seed failed; the first: {e}"));
        }
    }
    outln!("{}", neurode::sweep::table(&cfg.name, &results));
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Overrides of the config's model settings, shared by `train` and `sweep`: `--set
/// key=value` for any key of the `[model]` table, and the Kim et al. original's knobs,
/// aliases of `--set` keys (`--N` is `--set n=`, `--P_inh` is `--set p_inh=`, ...).
#[derive(clap::Args, Debug)]
struct Knobs {
    /// Set a key of the config's [model] table, e.g. `--set n=300`, `--set taus=[4,25]`,
    /// `--set act=softplus` (repeatable); the error names the key.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
    /// Units N (`--set n=`).
    #[arg(long = "N", alias = "n", value_name = "N")]
    n: Option<usize>,
    /// Probability of an inhibitory unit (Kim; `--set p_inh=`).
    #[arg(long = "P_inh", alias = "p-inh", allow_negative_numbers = true)]
    p_inh: Option<f64>,
    /// Connection probability (Kim; `--set p_rec=`).
    #[arg(long = "P_rec", alias = "p-rec", allow_negative_numbers = true)]
    p_rec: Option<f64>,
    /// SOM units (Kim; `--set som_n=`).
    #[arg(long = "som_N", alias = "som-n")]
    som_n: Option<usize>,
    /// Gain of the initial weights (Kim; `--set gain=`).
    #[arg(long, allow_negative_numbers = true)]
    gain: Option<f64>,
    /// Dale's law, true or false (Kim; `--set apply_dale=`).
    #[arg(long = "apply_dale", alias = "apply-dale")]
    apply_dale: Option<bool>,
    /// Activation: sigmoid, clipped_relu or softplus (Kim; `--set act=`).
    #[arg(long)]
    act: Option<String>,
    /// Loss: rmse (the original's l2), l1, mse or bce.
    #[arg(long = "loss_fn", alias = "loss-fn")]
    loss_fn: Option<String>,
    /// Synaptic decay time constants in steps of 5 ms: one value (fixed) or min and max
    /// (trained) (Kim; `--set taus=`).
    #[arg(
        long = "decay_taus",
        alias = "decay-taus",
        num_args = 1..=2,
        allow_negative_numbers = true
    )]
    decay_taus: Option<Vec<f64>>,
    /// The maximum number of training trials.
    #[arg(long = "n_trials", alias = "n-trials")]
    n_trials: Option<usize>,
}

impl Knobs {
    /// The overrides these options give, with `seed`.
    fn overrides(&self, seed: Option<u64>) -> Overrides {
        Overrides {
            set: self.set.clone(),
            n: self.n,
            p_inh: self.p_inh,
            p_rec: self.p_rec,
            som_n: self.som_n,
            gain: self.gain,
            apply_dale: self.apply_dale,
            act: self.act.clone(),
            loss_fn: self.loss_fn.clone(),
            decay_taus: self.decay_taus.clone(),
            n_trials: self.n_trials,
            seed,
        }
    }
}

/// Parses `key=value` of `--set`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "`{s}`: write KEY=VALUE with a key of the config's [model] table, e.g. n=300"
        )),
    }
}

/// Loads a config and applies the options that override it.
fn load_with(config: &std::path::Path, o: &Overrides) -> Result<TrainConfig, String> {
    let mut cfg = TrainConfig::load(config).map_err(|e| e.to_string())?;
    if *o != Overrides::default() {
        cfg.apply(o).map_err(|e| e.to_string())?;
    }
    Ok(cfg)
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// The TOML config (see configs/).
    config: PathBuf,
    /// Run directory (default: runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in the run directory from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    knobs: Knobs,
    /// Seed of the run.
    #[arg(long)]
    seed: Option<u64>,
}

fn train(a: &TrainArgs) -> Result<(), String> {
    let cfg = load_with(&a.config, &a.knobs.overrides(a.seed))?;
    let dir = run::run_dir(&cfg, a.out.as_deref());
    let total = cfg.iterations() as u64;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:20} {pos}/{len} {rate} eta {eta} {msg}")
            .map_err(|e| e.to_string())?
            .with_key("rate", rate),
    );
    let mut last_val = None;
    let summary = run::train(&cfg, &dir, a.resume, &mut |it, _, m| {
        if let Some(acc) = m.val_accuracy {
            let worst = m
                .val_condition_accuracy
                .iter()
                .flatten()
                .copied()
                .fold(acc, f64::min);
            last_val = Some((acc, worst));
        }
        bar.set_position(it as u64);
        bar.set_message(run::progress_message(m, last_val));
    })
    .map_err(|e| e.to_string())?;
    if summary.already_finished {
        bar.finish_and_clear();
        eprintln!(
            "the run in {} is already finished; nothing was changed. Its summary:",
            summary.dir.display()
        );
    } else {
        bar.finish();
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&summary.json).map_err(|e| e.to_string())?
    );
    outln!("run directory: {}", summary.dir.display());
    Ok(())
}

/// The `{rate}` of the progress bars: iterations per second with one decimal.
fn rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.1} it/s", state.per_sec());
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// A TOML config (its untrained network; see configs/), a run directory written by
    /// `neurode train` (its trained network), or a spiking-network config
    /// (configs/lif_clustered.toml, configs/lif_ei.toml, or the original
    /// VectorialNeuroModulators YAML), which is run for its simulation.duration_sec.
    source: PathBuf,
    /// Output folder (default: <run dir>/simulation, or simulations/<config name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Number of fresh trials of the config's task (default 8; rate networks only).
    #[arg(long)]
    trials: Option<usize>,
    /// Seed of the fresh trials (default 7); for a spiking network, its
    /// simulation.random_seed (connectivity, external input, stimulus).
    #[arg(long)]
    seed: Option<u64>,
    /// Spacing of the saved times, in the task's time unit (ms; steps of 5 ms for the Kim
    /// and multi-region tasks), at most the trial's length; the trial's end is always saved
    /// (default 0.5; rate networks only).
    #[arg(long)]
    dt_save: Option<f64>,
    /// Solver threads (default: the available cores; rate networks only).
    #[arg(long)]
    threads: Option<usize>,
    /// Spiking networks: change a setting, `section.key=value` (repeatable), e.g.
    /// `--set simulation.duration_sec=1`, `--set simulation.refractory=original`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Spiking networks: also solve the network's mean field (one population per cluster
    /// block) and print its rates and fixed points next to the network's
    /// (mean_field.json).
    #[arg(long)]
    mean_field: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn simulate(a: &SimulateArgs) -> Result<(), String> {
    if a.source.is_file() && neurode::spiking::is_spiking_config(&a.source) {
        return simulate_spiking(a);
    }
    for (given, option) in [(!a.set.is_empty(), "--set"), (a.mean_field, "--mean-field")] {
        if given {
            return Err(format!(
                "{option} is for spiking-network configs (configs/lif_*.toml); {} is a rate \
                 network's config or run",
                a.source.display()
            ));
        }
    }
    let start = Instant::now();
    let s = neurode::simulate::simulate(&neurode::simulate::SimulateOptions {
        source: a.source.clone(),
        out: a.out.clone(),
        trials: a.trials.unwrap_or(8),
        seed: a.seed.unwrap_or(7),
        dt_save: a.dt_save.unwrap_or(0.5),
        threads: a.threads,
    })
    .map_err(|e| e.to_string())?;
    outln!(
        "simulated {} trials ({} saved times each, {:.1} accepted steps per trial) in {:.2} s",
        s.trials,
        s.times,
        s.accepted as f64 / s.trials as f64,
        start.elapsed().as_secs_f64()
    );
    outln!(
        "wrote {0}/trajectories.npz (times, states, inputs, readout, conditions) and \
         {0}/simulation.png",
        s.out.display()
    );
    Ok(())
}

fn simulate_spiking(a: &SimulateArgs) -> Result<(), String> {
    for (given, option) in [
        (a.trials.is_some(), "--trials"),
        (a.dt_save.is_some(), "--dt-save"),
        (a.threads.is_some(), "--threads"),
    ] {
        if given {
            return Err(format!(
                "{option} is for rate networks' tasks; a spiking network runs for its \
                 simulation.duration_sec and records what its [record] section says (change \
                 them with --set, e.g. --set simulation.duration_sec=2)"
            ));
        }
    }
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {msg}  {elapsed} (eta {eta})")
            .map_err(|e| e.to_string())?,
    );
    let start = Instant::now();
    let outcome = neurode::spiking::simulate(
        &neurode::spiking::SpikingOptions {
            config: a.source.clone(),
            out: a.out.clone(),
            seed: a.seed,
            set: a.set.clone(),
            mean_field: a.mean_field,
        },
        &|done, total, dt| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            let wall = start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{:.2}/{:.2} s simulated, {:.1} simulated s per wall s",
                done as f64 * dt,
                total as f64 * dt,
                done as f64 * dt / wall
            ));
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    for line in neurode::spiking::summary_lines(&outcome) {
        outln!("{line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = check_outputs(&cli.command).and_then(|()| match &cli.command {
        Command::Simulate(a) => simulate(a),
        Command::Train(a) => train(a),
        Command::Sweep(a) => sweep(a),
        Command::Analyze(a) => analyze(a),
        Command::Meanfield(a) => meanfield(a),
        Command::Eval(a) => eval(a),
        Command::Spiking(a) => spiking(a),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
