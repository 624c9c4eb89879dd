//! The `neurode` command line.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use neurode::prelude::*;
use neurode::testing::LeakyTanhRnn;

#[derive(Parser, Debug)]
#[command(
    name = "neurode",
    version,
    about = "Continuous-time models of neural circuits, simulated and differentiated",
    long_about = "Continuous-time models of neural circuits, simulated and differentiated.\n\n\
                  Today the command line runs the solver centre on a dense leaky tanh RNN \
                  (`neurode simulate`); training, evaluation and analysis commands arrive with \
                  the models."
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
