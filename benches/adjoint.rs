//! Gradient benchmark: the leaky tanh RNN of `benches/solvers.rs` (N = 500, batch 32,
//! t in [0, 100], stimulus from t = 15), Tsit5 (rtol 1e-6, atol 1e-8) and Euler (dt 0.1),
//! loss at t = 100, discrete adjoint with the default checkpointing.
//!
//! Criterion ids (group `leaky_rnn_adjoint/500x32`): `forward_*` is a plain solve,
//! `gradient_*` a solve that records the tape followed by `backward`. After the groups, one
//! summary line per configuration gives, from interleaved runs in this process, the medians
//! of the plain forward, the recording forward and the backward pass, the ratios
//! `backward / forward` and `(recording forward + backward) / forward`, and the peak heap
//! bytes of the gradient (counting allocator).
//!
//! Run: `cargo bench --bench adjoint` (`-- --summary-only` for the summary lines alone).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use neurode_solvers::testing::{CountingAllocator, LeakyTanhRnn};
use neurode_solvers::{integrate, Integrate, Real, Stepper};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

mod common;
use common::{model, x0, BATCH, N, T1};

#[derive(Clone, Copy, Debug)]
enum Solver {
    Tsit5,
    Euler,
}

fn build<'a, T: Real>(
    m: &'a LeakyTanhRnn<T>,
    x0: &[T],
    s: Solver,
) -> Integrate<'a, LeakyTanhRnn<T>> {
    let b = integrate(m, (T::zero(), T::from_f64(T1)))
        .x0(x0.to_vec())
        .save_at(vec![T::from_f64(T1)]);
    match s {
        Solver::Tsit5 => b.tolerances(T::from_f64(1e-6), T::from_f64(1e-8)),
        Solver::Euler => b.stepper(Stepper::Euler).fixed_dt(T::from_f64(0.1)),
    }
}

fn forward<T: Real>(m: &LeakyTanhRnn<T>, x0: &[T], s: Solver) -> Duration {
    let start = Instant::now();
    let sol = build(m, x0, s).run().expect("solve");
    let el = start.elapsed();
    black_box(sol.final_states());
    el
}

/// (recording forward, backward, peak heap bytes above the baseline, steps)
fn gradient<T: Real>(
    m: &LeakyTanhRnn<T>,
    x0: &[T],
    dl: &[T],
    s: Solver,
) -> (Duration, Duration, usize, usize) {
    let base = ALLOC.reset_peak();
    let start = Instant::now();
    let (sol, tape) = build(m, x0, s).run_with_gradient().expect("solve");
    let fwd = start.elapsed();
    let start = Instant::now();
    let g = tape.backward(dl).expect("backward");
    let bwd = start.elapsed();
    black_box(&g.params);
    let peak = ALLOC.peak() - base;
    (fwd, bwd, peak, sol.trial_stats(0).accepted)
}

fn dl<T: Real>() -> Vec<T> {
    (0..N * BATCH)
        .map(|i| T::from_f64(((i as f64) * 0.11).cos() / (N * BATCH) as f64))
        .collect()
}

fn bench_scalar<T: Real>(c: &mut Criterion) {
    let m = model::<T>();
    let x = x0::<T>();
    let d = dl::<T>();
    let name = T::NAME;
    let mut g = c.benchmark_group(format!("leaky_rnn_adjoint/{N}x{BATCH}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for s in [Solver::Tsit5, Solver::Euler] {
        let id = format!("{s:?}_{name}").to_lowercase();
        g.bench_function(BenchmarkId::new("cpu", format!("forward_{id}")), |b| {
            b.iter(|| forward(&m, &x, s))
        });
        g.bench_function(BenchmarkId::new("cpu", format!("gradient_{id}")), |b| {
            b.iter(|| gradient(&m, &x, &d, s))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_scalar::<f64>(c);
    bench_scalar::<f32>(c);
}

fn summary<T: Real>(s: Solver, rounds: usize) {
    let m = model::<T>();
    let x = x0::<T>();
    let d = dl::<T>();
    let (mut f, mut fr, mut bw) = (Vec::new(), Vec::new(), Vec::new());
    let (mut peak, mut steps) = (0, 0);
    for _ in 0..rounds {
        f.push(forward(&m, &x, s).as_secs_f64());
        let (a, b, p, st) = gradient(&m, &x, &d, s);
        fr.push(a.as_secs_f64());
        bw.push(b.as_secs_f64());
        peak = peak.max(p);
        steps = st;
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, fr, bw) = (med(&mut f), med(&mut fr), med(&mut bw));
    println!(
        "summary {s:?} {}: {steps} steps; forward {:.0} ms, recording forward {:.0} ms, \
         backward {:.0} ms; backward / forward {:.2}, (recording + backward) / forward {:.2} \
         (target <= 2.5); peak gradient memory {:.1} MB",
        T::NAME,
        f * 1e3,
        fr * 1e3,
        bw * 1e3,
        bw / f,
        (fr + bw) / f,
        peak as f64 / 1e6
    );
}

criterion_group!(adjoint_benches, benches);

fn main() {
    let summary_only = std::env::args().any(|a| a == "--summary-only");
    if !summary_only {
        adjoint_benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary::<f64>(Solver::Tsit5, 5);
    summary::<f64>(Solver::Euler, 5);
    summary::<f32>(Solver::Tsit5, 3);
    summary::<f32>(Solver::Euler, 3);
}
