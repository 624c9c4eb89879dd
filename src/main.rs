//! The `neurode` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use neurode::config::TrainConfig;
use neurode::prelude::*;
use neurode::run;
use neurode::testing::LeakyTanhRnn;

#[derive(Parser, Debug)]
#[command(
    name = "neurode",
    version,
    about = "Continuous-time models of neural circuits, simulated and differentiated",
    long_about = "Continuous-time models of neural circuits, simulated and differentiated.\n\n\
                  `neurode train <config>` trains a low-rank RNN on the contextual switch task \
                  (configs/ holds ready-made configs); `neurode eval <run-dir>` evaluates it on \
                  fresh trials; `neurode simulate` runs the solver on a random leaky tanh RNN."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a random leaky tanh RNN, tau dx/dt = -x + W tanh(x) + B u(t), on a batch of
    /// trials whose stimulus switches on at --t-on, and print solver statistics.
    Simulate(SimulateArgs),
    /// Train a low-rank RNN on the contextual switch task from a TOML config, writing a run
    /// directory (config, parameters, metrics, summary, structure).
    Train(TrainArgs),
    /// Evaluate a trained run on fresh seeded trials: accuracy overall and per context.
    Eval(EvalArgs),
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
}

fn train(a: &TrainArgs) -> Result<(), String> {
    let cfg = TrainConfig::load(&a.config).map_err(|e| e.to_string())?;
    let dir = run::run_dir(&cfg, a.out.as_deref());
    let total = cfg.iterations() as u64;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} it  {per_sec}  ETA {eta}  {msg}")
            .expect("a valid template"),
    );
    let mut last_val = String::new();
    let summary = run::train(&cfg, &dir, a.resume, &mut |it, _, m| {
        if let (Some(acc), Some(c)) = (m.val_accuracy, &m.val_condition_accuracy) {
            last_val = format!("  val acc {:.3} (ctx1 {:.3}, ctx2 {:.3})", acc, c[0], c[1]);
        }
        bar.set_position(it as u64);
        bar.set_message(format!(
            "loss {:.4} acc {:.3}{last_val}",
            m.train_loss, m.train_accuracy
        ));
    })
    .map_err(|e| e.to_string())?;
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&summary.json).expect("json")
    );
    println!("run directory: {}", summary.dir.display());
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StepperArg {
    /// Adaptive Tsitouras 5(4).
    Tsit5,
    /// Fixed-step forward Euler (uses --dt).
    Euler,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Precision {
    F32,
    F64,
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// Number of units N.
    #[arg(long, default_value_t = 500)]
    n: usize,
    /// Number of trials in the batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Input channels.
    #[arg(long, default_value_t = 4)]
    inputs: usize,
    /// Gain g of the random connectivity (W_ij ~ N(0, g^2/N)).
    #[arg(long, default_value_t = 1.5)]
    g: f64,
    /// Membrane time constant tau (ms).
    #[arg(long, default_value_t = 1.0)]
    tau: f64,
    /// End of the simulation (ms); it starts at 0.
    #[arg(long, default_value_t = 100.0)]
    t1: f64,
    /// Stimulus onset (ms).
    #[arg(long, default_value_t = 15.0)]
    t_on: f64,
    /// Stepper.
    #[arg(long, value_enum, default_value_t = StepperArg::Tsit5)]
    stepper: StepperArg,
    /// Fixed step for Euler (ms).
    #[arg(long, default_value_t = 0.1)]
    dt: f64,
    /// Relative tolerance (Tsit5); default depends on the precision.
    #[arg(long)]
    rtol: Option<f64>,
    /// Absolute tolerance (Tsit5); default depends on the precision.
    #[arg(long)]
    atol: Option<f64>,
    /// Floating-point precision.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    precision: Precision,
    /// Seed of the connectivity and the stimuli.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn simulate<T: Real>(a: &SimulateArgs) -> Result<(), String> {
    if a.n == 0 || a.batch == 0 || a.inputs == 0 {
        return Err(format!(
            "--n, --batch and --inputs must be at least 1 (got {}, {}, {})",
            a.n, a.batch, a.inputs
        ));
    }
    if !(a.tau.is_finite() && a.tau > 0.0) {
        return Err(format!(
            "--tau must be a positive number of ms (got {})",
            a.tau
        ));
    }
    if !(a.g.is_finite() && a.t_on.is_finite()) {
        return Err("--g and --t-on must be finite".into());
    }
    let rnn = LeakyTanhRnn::<T>::random(a.n, a.inputs, a.g, a.tau, a.seed).with_step_inputs(
        a.batch,
        a.t_on,
        1.0,
        a.seed.wrapping_add(1),
    );
    let t1 = T::from_f64(a.t1);
    let mut builder = integrate(&rnn, (T::zero(), t1));
    builder = match a.stepper {
        StepperArg::Tsit5 => builder.stepper(Stepper::Tsit5),
        StepperArg::Euler => builder.stepper(Stepper::Euler).fixed_dt(T::from_f64(a.dt)),
    };
    if let Some(r) = a.rtol {
        builder = builder.rtol(T::from_f64(r));
    }
    if let Some(r) = a.atol {
        builder = builder.atol(T::from_f64(r));
    }
    let start = Instant::now();
    let sol = builder.run().map_err(|e| e.to_string())?;
    let wall = start.elapsed();
    let st = sol.stats();
    let t0 = sol.trial_stats(0);
    let last = sol.ts().len() - 1;
    let mean_abs: f64 = sol
        .states_at(last)
        .iter()
        .map(|v| v.as_f64().abs())
        .sum::<f64>()
        / (a.n * a.batch) as f64;
    println!(
        "leaky tanh RNN: N = {}, batch = {}, t in [0, {}] ms, stimulus from {} ms, {}",
        a.n,
        a.batch,
        a.t1,
        a.t_on,
        T::NAME
    );
    println!(
        "stepper {:?}: {} batched steps, {} RHS evaluations; trial 0: {} accepted, {} rejected",
        a.stepper, st.steps, st.rhs_evals, t0.accepted, t0.rejected
    );
    println!(
        "all {} trials reached t1; mean |x(t1)| = {mean_abs:.4}; wall time {:.1} ms",
        sol.batch(),
        wall.as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Simulate(a) => match a.precision {
            Precision::F64 => simulate::<f64>(a),
            Precision::F32 => simulate::<f32>(a),
        },
        Command::Train(a) => train(a),
        Command::Eval(a) => run::evaluate(&a.run_dir, a.trials, a.seed)
            .map(|j| println!("{}", serde_json::to_string_pretty(&j).expect("json")))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
