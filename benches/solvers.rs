//! Solver benchmark: a leaky tanh RNN, N = 500, batch 32, t in [0, 100], stimulus from
//! t = 15, with Tsit5 (rtol 1e-6, atol 1e-8) and Euler (dt 0.1), in f32 and f64, on one
//! thread, beside a bare GEMM of the same shape (500x500 by 500x32) in the same run.
//!
//! Group names are `model/size`, ids `backend/solver_scalar`. The `per_rhs` ids report the
//! time of a whole solve divided by its right-hand-side evaluations (one evaluation = the
//! whole batch; finished trials leave the products, so evaluations are counted as columns
//! evaluated over the batch), directly comparable with `gemm`. After the criterion groups, a summary line
//! per scalar type prints the ratio `Tsit5 time per RHS / GEMM time`, both measured
//! interleaved in this process.
//!
//! Run: `cargo bench --bench solvers` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use neurode_solvers::testing::LeakyTanhRnn;
use neurode_solvers::{integrate, Real, Stepper};

mod common;
mod gemm;
use common::{model, x0, BATCH, N, T1};
use gemm::Gemm;

/// (time of one solve on one thread, its right-hand sides in full-batch equivalents: the
/// columns evaluated over the batch, since finished trials leave the products)
fn tsit5<T: Real>(m: &LeakyTanhRnn<T>, x0: &[T], rtol: f64, atol: f64) -> (Duration, f64) {
    let start = Instant::now();
    let sol = integrate(m, (T::zero(), T::from_f64(T1)))
        .threads(1)
        .tolerances(T::from_f64(rtol), T::from_f64(atol))
        .x0(x0.to_vec())
        .save_at(vec![T::from_f64(T1)])
        .run()
        .expect("solve");
    let el = start.elapsed();
    black_box(sol.final_states());
    (el, sol.stats().columns as f64 / BATCH as f64)
}

fn euler<T: Real>(m: &LeakyTanhRnn<T>, x0: &[T]) -> (Duration, usize) {
    let start = Instant::now();
    let sol = integrate(m, (T::zero(), T::from_f64(T1)))
        .threads(1)
        .stepper(Stepper::Euler)
        .fixed_dt(T::from_f64(0.1))
        .x0(x0.to_vec())
        .save_at(vec![T::from_f64(T1)])
        .run()
        .expect("solve");
    let el = start.elapsed();
    black_box(sol.final_states());
    (el, sol.stats().rhs_evals)
}

fn bench_scalar<T: Real>(c: &mut Criterion, tolerances: (f64, f64)) {
    let m = model::<T>();
    let x = x0::<T>();
    let name = T::NAME;
    let mut g = c.benchmark_group(format!("leaky_rnn/{N}x{BATCH}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function(BenchmarkId::new("cpu", format!("tsit5_{name}")), |b| {
        b.iter(|| tsit5(&m, &x, tolerances.0, tolerances.1))
    });
    g.bench_function(
        BenchmarkId::new("cpu", format!("tsit5_{name}_per_rhs")),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (el, evals) = tsit5(&m, &x, tolerances.0, tolerances.1);
                    total += el.div_f64(evals);
                }
                total
            })
        },
    );
    g.bench_function(BenchmarkId::new("cpu", format!("euler_{name}")), |b| {
        b.iter(|| euler(&m, &x))
    });
    let mut gemm = Gemm::<T>::new();
    g.bench_function(BenchmarkId::new("cpu", format!("gemm_{name}")), |b| {
        b.iter(|| gemm.run())
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_scalar::<f64>(c, (1e-6, 1e-8));
    bench_scalar::<f32>(c, (1e-6, 1e-8));
}

/// Interleaved measurement of the acceptance ratio, printed as one line per scalar type.
fn summary<T: Real>(rounds: usize) {
    let m = model::<T>();
    let x = x0::<T>();
    let mut gemm = Gemm::<T>::new();
    let mut per_rhs = Vec::new();
    let mut per_gemm = Vec::new();
    let mut stats = (0, 0);
    for _ in 0..rounds {
        let (el, evals) = tsit5(&m, &x, 1e-6, 1e-8);
        per_rhs.push(el.as_secs_f64() / evals);
        stats.0 = evals as usize;
        per_gemm.push(gemm.time());
        let (el, _) = euler(&m, &x);
        stats.1 = el.as_micros() as usize;
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (r, g) = (med(&mut per_rhs), med(&mut per_gemm));
    println!(
        "summary {}: one thread, Tsit5 {} full-batch RHS evals, {:.1} us per RHS; bare GEMM \
         {:.1} us; ratio {:.3} (target <= 1.3); Euler solve {:.1} ms",
        T::NAME,
        stats.0,
        r * 1e6,
        g * 1e6,
        r / g,
        stats.1 as f64 / 1e3
    );
}

criterion_group!(solver_benches, benches);

fn main() {
    let summary_only = std::env::args().any(|a| a == "--summary-only");
    if !summary_only {
        solver_benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary::<f64>(7);
    summary::<f32>(7);
}
