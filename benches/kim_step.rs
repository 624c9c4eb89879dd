//! One training step of the Kim et al. (2019) rate RNN, as the paper trains it: go/no-go
//! (`T` = 200 steps), `N` = 200, Euler `dt` = 1 step, per-step noise, RMSE loss, the
//! discrete adjoint, one Adam update (acceptance 4 of the Kim issue: batch 1, f32, at most
//! 1 ms on the 2-core development machine). Reports f32 and f64, batch 1 and 32, the median
//! over interleaved rounds, the part of a step spent generating its trial (input and
//! noise), and, at batch 1, the time of the step's 400 matrix-vector products alone.
//!
//! `cargo bench --bench kim_step` (add `-- --rounds 21` for more rounds).

use std::time::Instant;

use neurode::config::{Precision, TrainConfig};
use neurode::network::ModelConfig;
use neurode::tasks::Task;
use neurode::train::Trainer;
use neurode_solvers::Real;

fn config(batch: usize) -> TrainConfig {
    let mut cfg = TrainConfig::load("configs/kim_go_nogo.toml").expect("the shipped config");
    let ModelConfig::Kim(m) = &cfg.model else {
        panic!("configs/kim_go_nogo.toml is a Kim config")
    };
    assert_eq!(m.n, 200);
    cfg.training.batch_size = batch;
    cfg.training.n_train_trials = 1_000_000;
    cfg.training.eval_every = usize::MAX;
    cfg.training.log_every = usize::MAX;
    cfg.training.stop_loss_below = None;
    cfg.training.stop_accuracy_above = None;
    cfg
}

/// Milliseconds per training step over `steps` steps.
fn time_steps<T: Real>(tr: &mut Trainer<T>, steps: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..steps {
        tr.step().expect("a training step");
    }
    start.elapsed().as_secs_f64() * 1e3 / steps as f64
}

/// Milliseconds to generate one batch of trials with their noise.
fn time_trials<T: Real>(cfg: &TrainConfig, steps: usize) -> f64 {
    let start = Instant::now();
    let spec = cfg.task.spec();
    let draws = cfg.model.draws();
    for i in 0..steps {
        let b = cfg.task.batch::<T>(7, i as u64, cfg.training.batch_size);
        let noise =
            neurode::network::noise_signals::<T>(&draws, cfg.model.n(), spec.t_end, &b.seeds);
        std::hint::black_box(noise);
    }
    start.elapsed().as_secs_f64() * 1e3 / steps as f64
}

/// Milliseconds for the `2 T` matrix-vector products of one step (`T` with `W_eff`, `T`
/// with its transpose, `N x N`), alone: the floor the step's other work adds to. On one
/// core the weights stream from L2 each time (an `N = 200` matrix in `f32` is 160 kB; L1
/// holds 48 kB), so this is bound by the L2 bandwidth.
fn time_products(n: usize, t: usize, reps: usize) -> f64 {
    use neurode_solvers::{Backend, Cpu, Panels};
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7 + 3) % 11) as f32 / 11.0 - 0.45)
        .collect();
    let (p, pt) = Panels::with_transpose(n, &a);
    let mut x: Vec<f32> = (0..n)
        .map(|i| ((i * 5 + 1) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let mut y = vec![0f32; n];
    let start = Instant::now();
    for _ in 0..reps {
        for _ in 0..t {
            Cpu.gemv_panels(&p, &x, &mut y);
            std::mem::swap(&mut x, &mut y);
        }
        for _ in 0..t {
            Cpu.gemv_panels(&pt, &x, &mut y);
            std::mem::swap(&mut x, &mut y);
        }
        // Keep the values bounded.
        let s = 1.0 / x.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
        x.iter_mut().for_each(|v| *v *= s);
    }
    std::hint::black_box(&x);
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(9usize);
    if args.iter().any(|a| a == "--profile") {
        // Batch 1, f32 only, many steps: for a profiler.
        let cfg = config(1);
        let mut a = Trainer::<f32>::new(&cfg).expect("trainer");
        println!("{:.3} ms/step", time_steps(&mut a, 2000));
        return;
    }
    println!("kim_step: one training step (trial, forward, backward, Adam), go/no-go, N = 200, T = 200, Euler dt = 1");
    for batch in [1usize, 32] {
        let steps = if batch == 1 { 50 } else { 4 };
        let mut cfg = config(batch);
        cfg.training.threads = batch.min(2);
        cfg.precision = Precision::F32;
        let mut a = Trainer::<f32>::new(&cfg).expect("trainer");
        let mut b = Trainer::<f64>::new(&cfg).expect("trainer");
        // Warm up (first steps allocate the solver's buffers).
        time_steps(&mut a, 2);
        time_steps(&mut b, 2);
        let (mut t32, mut t64, mut g32, mut p32) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            t32.push(time_steps(&mut a, steps));
            t64.push(time_steps(&mut b, steps));
            g32.push(time_trials::<f32>(&cfg, steps));
            if batch == 1 {
                p32.push(time_products(200, 200, steps));
            }
        }
        let (m32, m64, mg) = (median(t32), median(t64), median(g32));
        println!(
            "batch {batch:2} ({} worker thread{}): f32 {m32:.3} ms/step (of which trial + noise generation {mg:.3} ms), f64 {m64:.3} ms/step",
            cfg.training.threads,
            if cfg.training.threads == 1 { "" } else { "s" }
        );
        if batch == 1 {
            println!(
                "  of which the floor: its 400 matrix-vector products (200 x 200, f32) alone take {:.3} ms",
                median(p32)
            );
            println!(
                "acceptance (batch 1, f32, <= 1 ms): {}",
                if m32 <= 1.0 { "met" } else { "NOT met" }
            );
        }
    }
}
