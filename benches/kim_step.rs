//! One training step of the Kim et al. (2019) rate RNN, as the paper trains it: go/no-go
//! (`T` = 200 steps), `N` = 200, Euler `dt` = 1 step, per-step noise, RMSE loss, the
//! discrete adjoint, one Adam update (acceptance 4 of the Kim issue: batch 1, f32, at most
//! 1 ms on the 2-core development machine). Reports f32 and f64, batch 1 and 32, the median
//! over interleaved rounds, and the time to generate a batch's trials (input and noise). At
//! batch 1 the trainer draws the next trial on a helper thread while a step runs
//! (`training.prefetch`), so the bench also reports the step with everything on one
//! thread, and the time of the step's 400 matrix-vector products alone.
//!
//! `cargo bench --bench kim_step` (add `-- --rounds 21` for more rounds; `-- --p3` for the
//! benchmark problem P3 alone, at batch 1 and 32, as `benches/external/compare_p3.sh`
//! sets it beside the JAX scan of `benches/external/p3_jax.py`).

use std::time::Instant;

#[allow(dead_code)]
mod problems;

use neurode::config::{Precision, TrainConfig};
use neurode::network::ModelConfig;
use neurode::tasks::Task;
use neurode::train::{Adam, Trainer};
use neurode_models::{Dale, LeakyRnn, Readout, TimeConstants};
use neurode_solvers::{
    integrate, Activation, Checkpoints, PiecewiseConstant, Real, Stepper, VectorField, VjpParams,
};

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
    let draws = cfg.model.kind().draws();
    for i in 0..steps {
        let b = cfg.task.batch::<T>(7, i as u64, cfg.training.batch_size);
        let noise =
            neurode::network::noise_signals::<T>(&draws, cfg.model.n(), spec.t_end, &b.seeds, &[]);
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

/// Benchmark problem P3 of `benchmark-problems.md` (§2), the problem the peer timings of
/// the Kim issue were measured on (a PyTorch loop about 21 ms, a jitted JAX scan about
/// 2.2 ms on this machine): N = 200, T = 200 Euler steps of `dt = 1`, sigmoid, per-unit
/// fixed τ in [12, 20), no noise, no Dale's law, one go pulse on [50, 75), loss
/// `L = Σ_t z_t²` with `z_t = w_out · σ(x_t)`, Adam (lr 0.01) on W, w_in and w_out. Built
/// bit for bit from the problem's generator; trained through the library's calls.
struct P3<T: Real> {
    nb: usize,
    net: LeakyRnn<T, Dale<T>>,
    readout: Readout<T>,
    x0: Vec<T>,
    theta: Vec<T>,
    mask: Vec<bool>,
    adam: Adam<T>,
    times: Vec<T>,
    dl: Vec<T>,
}

impl<T: Real> P3<T> {
    const N: usize = 200;
    const T: usize = 200;

    /// P3 with `nb` trials: trial `b` starts at `x0[b, i] = 0.1 U(773, b N + i)` (trial 0
    /// is P3's own), the same pulse in all; the loss is summed over the trials.
    fn new(nb: usize) -> Self {
        use problems::u;
        let n = Self::N;
        let f = T::from_f64;
        // `W[i, j] = 1.5 U(769, i N + j) sqrt(3 / N)`, stored column-major.
        let mut w = vec![T::zero(); n * n];
        for i in 0..n {
            for j in 0..n {
                w[i + j * n] = f((1.5 * u(769, (i * n + j) as u64)) * (3.0f64 / n as f64).sqrt());
            }
        }
        let w_in: Vec<T> = (0..n)
            .map(|i| f(u(770, i as u64) * 3.0f64.sqrt()))
            .collect();
        let w_out: Vec<T> = (0..n).map(|i| f(u(771, i as u64) * 0.01)).collect();
        let tau: Vec<T> = (0..n).map(|i| f(12.0 + 8.0 * u(772, i as u64))).collect();
        let x0: Vec<T> = (0..n * nb).map(|i| f(0.1 * u(773, i as u64))).collect();
        let none = vec![false; n];
        let dale = Dale::new(n, w, &none, &none, false).expect("P3's weights");
        let mut net = LeakyRnn::new(dale, T::one(), 1, w_in)
            .and_then(|m| m.with_activation(Activation::Sigmoid))
            .and_then(|m| m.with_time_constants(TimeConstants::PerUnit(tau)))
            .expect("P3's network");
        let pulse = PiecewiseConstant::new(
            1,
            vec![f(50.0), f(75.0)],
            vec![T::zero(), T::one(), T::zero()],
        )
        .expect("the go pulse");
        net.set_inputs(vec![pulse; nb])
            .expect("one input signal per trial");
        let readout = Readout::rates(w_out, T::zero(), Activation::Sigmoid).expect("P3's readout");
        let nf = net.n_params();
        let mut theta = vec![T::zero(); nf + n];
        net.params(&mut theta[..nf]);
        theta[nf..].copy_from_slice(&readout.w);
        // W, w_in and w_out are trained (the field's parameters are W and B = w_in).
        let mask = vec![true; theta.len()];
        P3 {
            nb,
            net,
            readout,
            x0,
            adam: Adam::new(theta.len()),
            theta,
            mask,
            times: (1..=Self::T).map(|t| f(t as f64)).collect(),
            dl: vec![T::zero(); Self::T * n * nb],
        }
    }

    /// One training step; returns the loss.
    fn step(&mut self) -> f64 {
        let n = Self::N;
        let f = T::from_f64;
        let (sol, tape) = integrate(&self.net, (T::zero(), f(Self::T as f64)))
            .stepper(Stepper::Euler)
            .fixed_dt(T::one())
            .save_at(self.times.clone())
            .x0(self.x0.clone())
            .threads(2)
            .checkpoints(Checkpoints::default())
            .run_with_gradient()
            .expect("P3's forward pass");
        let nf = self.net.n_params();
        let mut grad = vec![T::zero(); self.theta.len()];
        let (mut loss, nb) = (0.0, self.nb);
        self.dl.iter_mut().for_each(|v| *v = T::zero());
        for i in 0..Self::T {
            for b in 0..nb {
                let x = sol.state(i, b);
                let z = self.readout.output(x);
                loss += z.as_f64() * z.as_f64();
                let dz = z + z;
                let at = (i * nb + b) * n;
                self.readout
                    .backward(x, dz, &mut self.dl[at..at + n], &mut grad[nf..]);
            }
        }
        let g = tape.backward(&self.dl).expect("P3's backward pass");
        grad[..nf].copy_from_slice(&g.params);
        self.adam.step(&mut self.theta, &grad, 0.01, &self.mask);
        self.net.set_params(&self.theta[..nf]);
        self.readout.w.copy_from_slice(&self.theta[nf..]);
        loss
    }
}

/// Milliseconds per P3 training step over `steps` steps.
fn time_p3<T: Real>(p: &mut P3<T>, steps: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..steps {
        std::hint::black_box(p.step());
    }
    start.elapsed().as_secs_f64() * 1e3 / steps as f64
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
    if args.iter().any(|a| a == "--profile-p3") {
        let mut p = P3::<f32>::new(1);
        println!("P3: {:.3} ms/step", time_p3(&mut p, 2000));
        return;
    }
    if args.iter().any(|a| a == "--p3") {
        p3_report(rounds);
        return;
    }
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
        // At batch 1 the next trial is drawn on a helper thread (`training.prefetch`);
        // this one draws it in place, on the one thread.
        let mut one = cfg.clone();
        one.training.prefetch = false;
        let mut c = Trainer::<f32>::new(&one).expect("trainer");
        // Warm up (first steps allocate the solver's buffers).
        time_steps(&mut a, 2);
        time_steps(&mut b, 2);
        time_steps(&mut c, 2);
        let (mut t32, mut t64, mut g32, mut p32) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut t1 = Vec::new();
        for _ in 0..rounds {
            t32.push(time_steps(&mut a, steps));
            t64.push(time_steps(&mut b, steps));
            g32.push(time_trials::<f32>(&cfg, steps));
            if batch == 1 {
                t1.push(time_steps(&mut c, steps));
                p32.push(time_products(200, 200, steps));
            }
        }
        let (m32, m64, mg) = (median(t32), median(t64), median(g32));
        let ahead = if a.prefetching() {
            ", the next trial drawn on a helper thread meanwhile"
        } else {
            ""
        };
        println!(
            "batch {batch:2} ({} worker thread{}{ahead}): f32 {m32:.3} ms/step, f64 {m64:.3} ms/step (trial + noise generation alone: {mg:.3} ms)",
            cfg.training.threads,
            if cfg.training.threads == 1 { "" } else { "s" }
        );
        if batch == 1 {
            println!(
                "  all on one thread (prefetch = false): f32 {:.3} ms/step",
                median(t1)
            );
            let floor = median(p32);
            println!(
                "  the floor: the step's 400 matrix-vector products (200 x 200, f32) alone take {floor:.3} ms; the step is {:.2}x its floor",
                m32 / floor
            );
            println!(
                "acceptance (batch 1, f32, <= 1 ms): {}",
                if m32 <= 1.0 { "met" } else { "NOT met" }
            );
        }
    }
    p3_report(rounds);
}

/// P3 at batch 1 and 32, f32 and f64: one line each in the format of
/// `benches/external/p3_jax.py`, with the first two losses (before and after one Adam
/// update) to cross-check the peer's.
fn p3_report(rounds: usize) {
    println!(
        "P3 (benchmark-problems.md 2: no noise, no Dale's law, fixed tau; trains W, w_in, \
         w_out; Adam lr 0.01)"
    );
    fn one<T: Real>(nb: usize, rounds: usize) {
        let mut p = P3::<T>::new(nb);
        let (loss0, loss1) = (p.step(), p.step());
        let steps = if nb == 1 { 50 } else { 5 };
        let mut t = Vec::new();
        for _ in 0..rounds {
            t.push(time_p3(&mut p, steps));
        }
        let min = t.iter().cloned().fold(f64::INFINITY, f64::min);
        println!(
            "neurode p3 nb={nb} prec={} median_ms={:.4} min_ms={min:.4} loss0={loss0:.17e} \
             loss1={loss1:.17e}",
            T::NAME,
            median(t)
        );
    }
    for nb in [1usize, 32] {
        one::<f32>(nb, rounds);
        one::<f64>(nb, rounds);
    }
}
