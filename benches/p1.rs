//! Benchmark problem P1 (see `benches/problems/mod.rs`): the low-rank tanh RNN, N = 500,
//! batch 32, t ∈ [0, 100], input from t = 15, Tsit5 (rtol 1e-6, atol 1e-8) and Euler
//! (dt 0.1), f64 and f32, forward and gradient (L = ½ |x(100)|² w.r.t. M, N, B and x0),
//! beside the bare GEMM of the same shape (500 x 500 by 500 x 32), all in one run.
//!
//! Criterion: group `lowrank/500x32`, ids `cpu/<solver>_<scalar>_<forward|gradient>`.
//! After it (or alone with `-- --summary-only`), one line per question, medians of
//! interleaved runs in this process:
//!
//! - `check`: the generator's test vectors, the input sums and the final-state checksums
//!   (compare with `benches/external/p1_diffrax.py`);
//! - `per_rhs`: one thread, Tsit5 solve time per full-batch right-hand side (solve time x
//!   batch / columns evaluated) over the bare GEMM (target <= 1.3);
//! - `threads`: Tsit5 f64 forward on one thread over two threads (target >= 1.7);
//! - `columns`: columns evaluated over Σ_trials (evaluations per step x attempted steps)
//!   (target <= 1.05);
//! - `gradient`: (recording forward + backward) / plain forward (target <= 2.5);
//! - `times`: the absolute forward and gradient times to set beside a peer's;
//! - `f32`: steps per trial of f32 and f64 at rtol 1e-6, and the warning f32 reports.
//!
//! Run: `cargo bench --bench p1` (`-- --summary-only` for the summary alone). With
//! `benches/external/compare_p1.sh` the diffrax script runs right after, in the same call.
//!
//! Probes (run the built binary, `target/release/deps/p1-*`, with one of them):
//! `--panels` (products with `Panels`, one thread and a team of two, against the plain
//! GEMM), `--gemm-threads`, `--gemm-layouts`, `--threads-only`, `--gradient-threads` (the
//! gradient's cost on one thread and on two), `--record-probe` (the recording forward with
//! each memory setting against the plain one), and for profilers `--forward-only` /
//! `--gradient-only` (ten solves on `P1_THREADS` threads).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use neurode_models::LowRankRnn;
use neurode_solvers::{
    integrate, with_team, Backend, Checkpoints, Cpu, Integrate, Panels, Real, Stepper, Transpose,
};

mod gemm;
mod problems;
use gemm::Gemm;
use problems::{BATCH, N, T1};

#[derive(Clone, Copy, Debug, PartialEq)]
enum How {
    Tsit5,
    Euler,
}

fn build<'a, T: Real>(
    m: &'a LowRankRnn<T>,
    x0: &[T],
    how: How,
    threads: usize,
) -> Integrate<'a, LowRankRnn<T>> {
    let b = integrate(m, (T::zero(), T::from_f64(T1)))
        .x0(x0.to_vec())
        .save_at(problems::save_times::<T>())
        .threads(threads);
    match how {
        How::Tsit5 => b.tolerances(T::from_f64(1e-6), T::from_f64(1e-8)),
        How::Euler => b.stepper(Stepper::Euler).fixed_dt(T::from_f64(0.1)),
    }
}

/// (time, columns evaluated, Σ trials' attempted steps)
fn forward<T: Real>(m: &LowRankRnn<T>, x0: &[T], how: How, threads: usize) -> (f64, usize, usize) {
    let start = Instant::now();
    let sol = build(m, x0, how, threads).run().expect("P1 solve");
    let el = start.elapsed().as_secs_f64();
    black_box(sol.final_states());
    let attempted = (0..BATCH)
        .map(|b| sol.trial_stats(b).accepted + sol.trial_stats(b).rejected)
        .sum();
    (el, sol.stats().columns, attempted)
}

/// (recording forward, backward)
fn gradient<T: Real>(m: &LowRankRnn<T>, x0: &[T], how: How, threads: usize) -> (f64, f64) {
    gradient_with(m, x0, how, threads, Checkpoints::default())
}

fn gradient_with<T: Real>(
    m: &LowRankRnn<T>,
    x0: &[T],
    how: How,
    threads: usize,
    ck: Checkpoints,
) -> (f64, f64) {
    let start = Instant::now();
    let (sol, tape) = build(m, x0, how, threads)
        .checkpoints(ck)
        .run_with_gradient()
        .expect("P1 solve");
    let fwd = start.elapsed().as_secs_f64();
    let dl = problems::loss_grad(sol.states());
    let start = Instant::now();
    let g = tape.backward(&dl).expect("P1 backward");
    let bwd = start.elapsed().as_secs_f64();
    black_box(&g.params);
    (fwd, bwd)
}

/// The product `C h` with `C` seen column-major (as stored) or row-major (the stored `Cᵀ`,
/// transposed): which layout faer runs faster on this machine.
fn gemm_layouts<T: Real>() {
    let mut g = Gemm::<T>::new();
    let mut wt = g.w.clone();
    for j in 0..N {
        for i in 0..N {
            wt[j + i * N] = g.w[i + j * N];
        }
    }
    let (no, yes, one, zero) = (Transpose::No, Transpose::Yes, T::one(), T::zero());
    for round in 0..3 {
        let col = g.time();
        let start = Instant::now();
        for _ in 0..200 {
            Cpu.gemm(
                yes, no, N, BATCH, N, one, &wt, N, &g.h, N, zero, &mut g.out, N,
            );
            black_box(&g.out);
        }
        let row = start.elapsed().as_secs_f64() / 200.0;
        println!(
            "gemm layouts {} round {round}: column-major A {:.1} us, row-major A {:.1} us",
            T::NAME,
            col * 1e6,
            row * 1e6
        );
    }
}

/// The bare GEMM 500 x 500 x 32 on one thread against two threads doing 500 x 500 x 16 each
/// at the same time (the split the solver makes): the speed-up the machine allows.
fn gemm_threads() {
    let reps = 400;
    let mut g = Gemm::<f64>::new();
    let one = g.time();
    let w = g.w.clone();
    let h = g.h.clone();
    let (no, a, z) = (Transpose::No, 1.0f64, 0.0f64);
    let start = Instant::now();
    std::thread::scope(|s| {
        for half in 0..2 {
            let (w, h) = (&w, &h);
            s.spawn(move || {
                let mut out = vec![0.0f64; N * 16];
                let hb = &h[half * N * 16..(half + 1) * N * 16];
                for _ in 0..reps {
                    Cpu.gemm(no, no, N, 16, N, a, w, N, hb, N, z, &mut out, N);
                    black_box(&out);
                }
            });
        }
    });
    let two = start.elapsed().as_secs_f64() / reps as f64;
    let mut half = vec![0.0f64; N * 16];
    let start = Instant::now();
    for _ in 0..reps {
        Cpu.gemm(no, no, N, 16, N, a, &w, N, &h[..N * 16], N, z, &mut half, N);
        black_box(&half);
    }
    let half_t = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "gemm threads f64: 32 columns on one thread {:.1} us; 16 columns alone {:.1} us; two \
         threads x 16 columns {:.1} us; speed-up {:.2}",
        one * 1e6,
        half_t * 1e6,
        two * 1e6,
        one / two
    );
}

/// `C h` with `C` kept as [`Panels`] (`Backend::gemm_panels`) against the plain product, for
/// 32 and 16 columns: what packing the matrix once saves, and that the bits are the same.
fn panels_probe() {
    let mut g = Gemm::<f64>::new();
    let panels = Panels::from_col_major(N, N, &g.w);
    let (no, one, zero) = (Transpose::No, 1.0f64, 0.0f64);
    for cols in [32usize, 16] {
        let h = &g.h[..N * cols];
        let (mut out, mut plain_out) = (vec![0.0f64; N * cols], vec![0.0f64; N * cols]);
        let start = Instant::now();
        for _ in 0..200 {
            Cpu.gemm_panels(&panels, cols, one, h, N, zero, &mut out, N);
            black_box(&out);
        }
        let t = start.elapsed().as_secs_f64() / 200.0;
        let start = Instant::now();
        for _ in 0..200 {
            Cpu.gemm(
                no,
                no,
                N,
                cols,
                N,
                one,
                &g.w,
                N,
                h,
                N,
                zero,
                &mut plain_out,
                N,
            );
            black_box(&plain_out);
        }
        let plain = start.elapsed().as_secs_f64() / 200.0;
        let mut team_out = vec![0.0f64; N * cols];
        let team = with_team(2, || {
            let start = Instant::now();
            for _ in 0..200 {
                Cpu.gemm_panels(&panels, cols, one, h, N, zero, &mut team_out, N);
                black_box(&team_out);
            }
            start.elapsed().as_secs_f64() / 200.0
        });
        println!(
            "panels f64 {cols} columns: {:.1} us; plain {:.1} us; bit-identical: {}; panels \
             shared by a team of 2 threads {:.1} us (speed-up {:.2}), bit-identical: {}",
            t * 1e6,
            plain * 1e6,
            out == plain_out,
            team * 1e6,
            t / team,
            out == team_out
        );
    }
    black_box(g.time());
}

fn bench_scalar<T: Real>(c: &mut Criterion) {
    let (m, x0) = problems::problem::<T>();
    let name = T::NAME;
    let mut g = c.benchmark_group(format!("lowrank/{N}x{BATCH}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for how in [How::Tsit5, How::Euler] {
        let id = format!("{how:?}_{name}").to_lowercase();
        g.bench_function(BenchmarkId::new("cpu", format!("{id}_forward")), |b| {
            b.iter(|| forward(&m, &x0, how, 2))
        });
        g.bench_function(BenchmarkId::new("cpu", format!("{id}_gradient")), |b| {
            b.iter(|| gradient(&m, &x0, how, 2))
        });
    }
    let mut gemm = Gemm::<T>::new();
    g.bench_function(BenchmarkId::new("cpu", format!("gemm_{name}")), |b| {
        b.iter(|| gemm.run())
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_scalar::<f64>(c);
    bench_scalar::<f32>(c);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn check() {
    problems::check_generator();
    let a = problems::arrays();
    let s = |v: &[f64]| problems::fsum(v.iter().copied());
    println!(
        "check: generator test vectors ok; sums C {:.17} M {:.17} Nv {:.17} B {:.17} x0 {:.17}",
        s(&a.c),
        s(&a.m),
        s(&a.nv),
        s(&a.b),
        s(&a.x0)
    );
    for how in [How::Tsit5, How::Euler] {
        let (m, x0) = problems::problem::<f64>();
        let (sol, tape) = build(&m, &x0, how, 2)
            .run_with_gradient()
            .expect("P1 solve");
        let g = tape
            .backward(&problems::loss_grad(sol.states()))
            .expect("P1 backward");
        let sums: Vec<String> = ["M", "N", "B"]
            .iter()
            .map(|v| problems::fsum(g.param(v).expect("view").iter().copied()))
            .chain([problems::fsum(g.x0.iter().copied())])
            .map(|s| format!("{s:.10}"))
            .collect();
        let x = sol.final_states();
        let st: Vec<_> = (0..BATCH).map(|b| sol.trial_stats(b)).collect();
        println!(
            "check: {how:?} f64 sum_x100 {:.14} loss {:.11}; accepted steps per trial {}..{}, \
             rejected {}; gradient sums (M, N, B, x0) {}",
            problems::fsum(x.iter().copied()),
            0.5 * problems::fsum(x.iter().map(|v| v * v)),
            st.iter().map(|s| s.accepted).min().unwrap_or(0),
            st.iter().map(|s| s.accepted).max().unwrap_or(0),
            st.iter().map(|s| s.rejected).sum::<usize>(),
            sums.join(", ")
        );
    }
}

fn per_rhs<T: Real>(rounds: usize) {
    let (m, x0) = problems::problem::<T>();
    let mut gemm = Gemm::<T>::new();
    let (mut r, mut gt) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (el, cols, _) = forward(&m, &x0, How::Tsit5, 1);
        r.push(el * BATCH as f64 / cols as f64);
        gt.push(gemm.time());
    }
    let (r, gt) = (median(r), median(gt));
    println!(
        "per_rhs {}: one thread, Tsit5 {:.1} us per full-batch RHS, bare GEMM {:.1} us, ratio \
         {:.3} (target <= 1.3)",
        T::NAME,
        r * 1e6,
        gt * 1e6,
        r / gt
    );
}

fn threads(rounds: usize) {
    let (m, x0) = problems::problem::<f64>();
    for how in [How::Tsit5, How::Euler] {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            one.push(forward(&m, &x0, how, 1).0);
            two.push(forward(&m, &x0, how, 2).0);
        }
        let (one, two) = (median(one), median(two));
        println!(
            "threads: {how:?} f64 forward, 1 thread {:.0} ms, 2 threads {:.0} ms, speed-up {:.2} \
             (target for Tsit5 >= 1.7)",
            one * 1e3,
            two * 1e3,
            one / two
        );
    }
}

fn columns() {
    let (m, x0) = problems::problem::<f64>();
    let (_, cols, attempted) = forward(&m, &x0, How::Tsit5, 2);
    let sol = build(&m, &x0, How::Tsit5, 2).run().expect("P1 solve");
    let half =
        |r: std::ops::Range<usize>| -> usize { r.map(|b| sol.trial_stats(b).rhs_evals).sum() };
    // Two threads run P1 as one solver with a team; the halves show how evenly the trials'
    // work would split into blocks.
    println!(
        "columns: trials 0..16 took {} columns, trials 16..32 {}",
        half(0..BATCH / 2),
        half(BATCH / 2..BATCH)
    );
    // Tsit5 evaluates 6 new stages per attempted step (FSAL).
    let per_step = neurode_solvers::TSIT5.stages - 1;
    let need = per_step * attempted;
    println!(
        "columns: Tsit5 f64 evaluated {cols} columns, Σ trials {per_step} x attempted steps = \
         {need}, ratio {:.4} (target <= 1.05); with all 7 stages counted: {:.4}",
        cols as f64 / need as f64,
        cols as f64 / (7 * attempted) as f64
    );
}

fn gradient_ratio<T: Real>(how: How, rounds: usize, ck: Checkpoints) -> (f64, f64) {
    gradient_ratio_on::<T>(how, rounds, ck, 2)
}

fn gradient_ratio_on<T: Real>(
    how: How,
    rounds: usize,
    ck: Checkpoints,
    threads: usize,
) -> (f64, f64) {
    let (m, x0) = problems::problem::<T>();
    let (mut f, mut rf, mut bw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        f.push(forward(&m, &x0, how, threads).0);
        let (a, b) = gradient_with(&m, &x0, how, threads, ck);
        rf.push(a);
        bw.push(b);
    }
    let (f, rf, bw) = (median(f), median(rf), median(bw));
    println!(
        "gradient {how:?} {} {ck:?}{}: forward {:.0} ms, recording forward {:.0} ms, backward \
         {:.0} ms; whole gradient / forward {:.2} (target <= 2.5), backward / forward {:.2}",
        T::NAME,
        if threads == 2 {
            String::new()
        } else {
            format!(" ({threads} thread{})", if threads == 1 { "" } else { "s" })
        },
        f * 1e3,
        rf * 1e3,
        bw * 1e3,
        (rf + bw) / f,
        bw / f
    );
    (f, rf + bw)
}

fn f32_floor() {
    let (m64, x64) = problems::problem::<f64>();
    let (m32, x32) = problems::problem::<f32>();
    let s64 = build(&m64, &x64, How::Tsit5, 2).run().expect("P1 f64");
    for rtol in [1e-6, 1e-5, 1e-4] {
        let s32 = integrate(&m32, (0.0, T1 as f32))
            .x0(x32.clone())
            .tolerances(rtol as f32, 1e-8)
            .save_at(problems::save_times::<f32>())
            .run()
            .expect("P1 f32");
        let acc = |b: usize, s: &neurode_solvers::Solution<f32>| s.trial_stats(b).accepted;
        let (lo, hi) = (
            (0..BATCH).map(|b| acc(b, &s32)).min().unwrap_or(0),
            (0..BATCH).map(|b| acc(b, &s32)).max().unwrap_or(0),
        );
        println!(
            "f32: rtol {rtol:e} accepted steps per trial {lo}..{hi} (f64 at 1e-6: {}..{}); \
             warnings: {}",
            (0..BATCH)
                .map(|b| s64.trial_stats(b).accepted)
                .min()
                .unwrap_or(0),
            (0..BATCH)
                .map(|b| s64.trial_stats(b).accepted)
                .max()
                .unwrap_or(0),
            s32.warnings()
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

criterion_group!(p1_benches, benches);

/// Threads of the profiler modes: `P1_THREADS`, default 1.
fn profiler_threads() -> usize {
    std::env::var("P1_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn main() {
    if std::env::args().any(|a| a == "--gemm-threads") {
        gemm_threads();
        return;
    }
    if std::env::args().any(|a| a == "--panels") {
        panels_probe();
        return;
    }
    if std::env::args().any(|a| a == "--threads-only") {
        columns();
        threads(5);
        return;
    }
    if std::env::args().any(|a| a == "--gemm-layouts") {
        gemm_layouts::<f64>();
        gemm_layouts::<f32>();
        return;
    }
    if std::env::args().any(|a| a == "--gradient-threads") {
        // The gradient's cost on one thread, beside two.
        for threads in [1, 2] {
            for ck in [Checkpoints::default(), Checkpoints::All] {
                gradient_ratio_on::<f64>(How::Tsit5, 5, ck, threads);
            }
        }
        return;
    }
    if std::env::args().any(|a| a == "--record-probe") {
        let (m, x0) = problems::problem::<f64>();
        for threads in [1, 2] {
            for ck in [
                Checkpoints::States(100_000),
                Checkpoints::All,
                Checkpoints::default(),
            ] {
                let (mut f, mut r) = (Vec::new(), Vec::new());
                for _ in 0..7 {
                    f.push(forward(&m, &x0, How::Tsit5, threads).0);
                    let start = Instant::now();
                    let out = build(&m, &x0, How::Tsit5, threads)
                        .checkpoints(ck)
                        .run_with_gradient()
                        .expect("P1");
                    r.push(start.elapsed().as_secs_f64());
                    drop(out);
                }
                println!(
                    "record {threads} {ck:?}: plain {:.1} ms, recording {:.1} ms",
                    median(f) * 1e3,
                    median(r) * 1e3
                );
            }
        }
        return;
    }
    if std::env::args().any(|a| a == "--gradient-only") {
        // For profilers: ten P1 Tsit5 f64 gradients (Checkpoints::All), P1_THREADS threads.
        let (m, x0) = problems::problem::<f64>();
        let threads = profiler_threads();
        for _ in 0..10 {
            gradient_with(&m, &x0, How::Tsit5, threads, Checkpoints::All);
        }
        return;
    }
    if std::env::args().any(|a| a == "--forward-only") {
        // For profilers: ten P1 Tsit5 f64 forwards, P1_THREADS threads.
        let (m, x0) = problems::problem::<f64>();
        let threads = profiler_threads();
        for _ in 0..10 {
            forward(&m, &x0, How::Tsit5, threads);
        }
        return;
    }
    let summary_only = std::env::args().any(|a| a == "--summary-only");
    if !summary_only {
        p1_benches();
        Criterion::default().configure_from_args().final_summary();
    }
    check();
    per_rhs::<f64>(5);
    per_rhs::<f32>(5);
    threads(7);
    columns();
    let d = Checkpoints::default();
    let (f, g) = gradient_ratio::<f64>(How::Tsit5, 5, d);
    let (_, ge) = gradient_ratio::<f64>(How::Euler, 5, d);
    gradient_ratio::<f32>(How::Tsit5, 3, d);
    gradient_ratio::<f32>(How::Euler, 3, d);
    // Every stage state kept: no recomputation in the reverse sweep.
    let (_, ga) = gradient_ratio::<f64>(How::Tsit5, 5, Checkpoints::All);
    gradient_ratio::<f64>(How::Euler, 5, Checkpoints::All);
    gradient_ratio::<f32>(How::Tsit5, 3, Checkpoints::All);
    gradient_ratio::<f32>(How::Euler, 3, Checkpoints::All);
    println!(
        "times: P1 f64 two threads: Tsit5 forward {:.0} ms, Tsit5 gradient {:.0} ms \
         (Checkpoints::All {:.0} ms), Euler gradient {:.0} ms",
        f * 1e3,
        g * 1e3,
        ga * 1e3,
        ge * 1e3
    );
    f32_floor();
}
