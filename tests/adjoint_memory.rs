//! Memory of gradients: peak bytes shrink with fewer checkpoints (same gradient), and the
//! reverse sweep's allocations do not grow with the number of steps (nothing is allocated
//! inside the reverse step loop), and the default keeps a 10,000-step N = 500 solve under
//! 310 MB. One test per file section runs under a lock so that the
//! counting allocator sees one test at a time.

use std::sync::Mutex;

use neurode_solvers::testing::{CountingAllocator, LeakyTanhRnn};
use neurode_solvers::{integrate, release_gradient_cache, Adjoint, Checkpoints, Stepper};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();
static SERIAL: Mutex<()> = Mutex::new(());

fn rnn(batch: usize) -> LeakyTanhRnn<f64> {
    LeakyTanhRnn::<f64>::random(64, 2, 1.5, 1.0, 7).with_step_inputs(batch, 5.0, 1.0, 8)
}

/// One gradient of the 64-unit, 4-trial problem over `[0, 20]` with fixed steps of 0.05.
struct Run {
    /// Peak bytes above the baseline during solve + backward, from fresh memory.
    peak: usize,
    /// `dL/dθ`.
    params: Vec<f64>,
    /// `dL/dx0`.
    x0: Vec<f64>,
    /// Accepted steps of trial 0.
    steps: usize,
    /// Steps recomputed in the reverse sweep (Euler: right-hand sides evaluated there, as
    /// its recorded steps are checkpointed states that need no evaluation to replay).
    recomputed: usize,
}

fn gradient_run(stepper: Stepper, ck: Checkpoints, adjoint: Adjoint, saves: &[f64]) -> Run {
    let field = rnn(4);
    let x0: Vec<f64> = (0..256).map(|i| (i as f64 * 0.1).sin()).collect();
    let c: Vec<f64> = (0..saves.len() * 256)
        .map(|i| (i as f64 * 0.3).cos())
        .collect();
    // Fresh memory: what a first gradient needs (no chunks kept from earlier ones).
    release_gradient_cache();
    let base = ALLOC.reset_peak();
    let (sol, tape) = integrate(&field, (0.0, 20.0))
        .x0(x0)
        .stepper(stepper)
        .fixed_dt(0.05)
        .tolerances(1e-8, 1e-8)
        .save_at(saves.to_vec())
        .checkpoints(ck)
        .adjoint(adjoint)
        .run_with_gradient()
        .unwrap();
    let g = tape.backward(&c).unwrap();
    let peak = ALLOC.peak() - base;
    Run {
        peak,
        params: g.params,
        x0: g.x0,
        steps: sol.trial_stats(0).accepted,
        recomputed: match stepper {
            Stepper::Euler => g.stats.rhs_evals,
            _ => g.stats.recomputed_steps,
        },
    }
}

/// Peak bytes, `dL/dθ` and steps, saving at the end only (discrete adjoint).
fn peak_and_gradient(stepper: Stepper, ck: Checkpoints) -> (usize, Vec<f64>, usize) {
    let r = gradient_run(stepper, ck, Adjoint::Discrete, &[20.0]);
    (r.peak, r.params, r.steps)
}

#[test]
fn fewer_checkpoints_use_less_memory_for_the_same_gradient() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let state_bytes = 64 * 4 * 8;
    for stepper in [Stepper::Tsit5, Stepper::Euler] {
        // Warm-up: GEMM packing buffers and other one-time allocations are not counted.
        peak_and_gradient(stepper, Checkpoints::States(2));
        let (p_all, g_all, steps) = peak_and_gradient(stepper, Checkpoints::All);
        let (p8, g8, _) = peak_and_gradient(stepper, Checkpoints::States(8));
        let (p2, g2, _) = peak_and_gradient(stepper, Checkpoints::States(2));
        println!(
            "{stepper:?}, {steps} steps: peak bytes all {p_all}, 8 {p8}, 2 {p2} \
             (one state = {state_bytes} bytes)"
        );
        assert!(steps > 100, "{steps}");
        assert!(p_all > p8 && p8 > p2, "{p_all} {p8} {p2}");
        // All keeps every state; 2 keeps a few, whatever the step count.
        assert!(p_all > steps * state_bytes, "{p_all}");
        assert!(p2 < 40 * state_bytes + 64 * 66 * 8 * 3, "{p2}");
        let scale = g_all.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for g in [&g8, &g2] {
            let d = g
                .iter()
                .zip(&g_all)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(d <= 1e-13 * scale, "{d:e}");
        }
    }
}

/// Peak bytes, gradient (`dL/dθ` then `dL/dx0`) and steps recomputed, with a save inside a
/// step (dense output) as well as at the end.
fn gradient_with(stepper: Stepper, ck: Checkpoints, adjoint: Adjoint) -> (usize, Vec<f64>, usize) {
    let r = gradient_run(stepper, ck, adjoint, &[3.33, 20.0]);
    let mut g = r.params;
    g.extend(r.x0);
    (r.peak, g, r.recomputed)
}

/// A memory budget that holds the stage states of about half the steps: those are read
/// back, the rest recomputed from the checkpoints (Euler's record is its checkpoints: a
/// budget for half the steps doubles their stride, and every other state is recomputed). The gradient is the same bits as with everything kept, in less
/// memory; with Tsit5 also through the FSAL last stage that a dense save reads, and with
/// the interpolating adjoint.
#[test]
fn a_partial_stage_store_gives_the_same_gradient() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases = [
        (Stepper::Tsit5, 3_300_000, Adjoint::Discrete),
        (Stepper::Tsit5, 3_300_000, Adjoint::Interpolating),
        (Stepper::Euler, 500_000, Adjoint::Discrete),
    ];
    for (stepper, bytes, adjoint) in cases {
        let (p_all, g_all, r_all) = gradient_with(stepper, Checkpoints::All, adjoint);
        let (p, g, r) = gradient_with(stepper, Checkpoints::Memory(bytes), adjoint);
        println!("{stepper:?} {adjoint:?}: peak all {p_all}, budget {bytes}: {p}; recomputed {r}");
        assert_eq!(r_all, 0);
        assert!(
            r > 100 && r < 300,
            "{stepper:?}: {r} of 400 steps recomputed"
        );
        assert!(p < p_all && p <= bytes + bytes / 4, "{p} {p_all}");
        assert_eq!(g, g_all, "{stepper:?} {adjoint:?}");
    }
}

/// Allocations made by `backward` on a solve over `[0, t1]`.
fn backward_allocations(t1: f64, ck: Checkpoints, stepper: Stepper) -> usize {
    let field = rnn(3);
    let (_, tape) = integrate(&field, (0.0, t1))
        .x0(vec![0.1; 192])
        .stepper(stepper)
        .fixed_dt(0.05)
        .save_at(vec![1.0, t1])
        .checkpoints(ck)
        .run_with_gradient()
        .unwrap();
    let c = vec![1.0; 2 * 192];
    let before = CountingAllocator::thread_allocs();
    let g = tape.backward(&c).unwrap();
    let after = CountingAllocator::thread_allocs();
    assert!(g.x0.iter().all(|v| v.is_finite()));
    after - before
}

#[test]
fn reverse_step_loop_does_not_allocate() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for stepper in [Stepper::Tsit5, Stepper::Euler] {
        // Warm-up: one-time allocations (GEMM scratch) are not the loop's.
        backward_allocations(2.0, Checkpoints::All, stepper);
        for ck in [
            Checkpoints::All,
            Checkpoints::States(3),
            Checkpoints::default(),
        ] {
            let short = backward_allocations(5.0, ck, stepper);
            let long = backward_allocations(40.0, ck, stepper);
            assert_eq!(
                short, long,
                "{stepper:?} {ck:?}: allocations grow with the steps"
            );
            assert!(short < 64, "{short}");
        }
    }
}

/// Peak gradient memory of a 10,000-step solve of a 500-unit network with 32 trials
/// (`f64`, default checkpointing), and the step count.
fn long_solve_peak(stepper: Stepper) -> (usize, usize) {
    let n = 500;
    let batch = 32;
    let field =
        LeakyTanhRnn::<f64>::random(n, 2, 1.5, 1.0, 3).with_step_inputs(batch, 15.0, 1.0, 4);
    let x0: Vec<f64> = (0..n * batch)
        .map(|i| 0.1 * (i as f64 * 0.7).sin())
        .collect();
    let c: Vec<f64> = (0..n * batch).map(|i| (i as f64 * 0.3).cos()).collect();
    // Fresh memory: what a first gradient needs (no chunks kept from earlier ones).
    release_gradient_cache();
    let base = ALLOC.reset_peak();
    let (sol, tape) = integrate(&field, (0.0, 100.0))
        .x0(x0)
        .stepper(stepper)
        .fixed_dt(0.01)
        .save_at(vec![100.0])
        .run_with_gradient()
        .unwrap();
    let g = tape.backward(&c).unwrap();
    assert!(g.params.iter().all(|v| v.is_finite()));
    let peak = ALLOC.peak() - base;
    (peak, sol.trial_stats(0).accepted)
}

/// The default checkpointing (256 MiB of stored states) keeps the gradient of a 10,000-step
/// solve of N = 500, batch 32 under 310 MB (the solution, the field and the workspaces
/// included).
#[test]
fn default_checkpoints_bound_a_long_solve() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for stepper in [Stepper::Euler, Stepper::Tsit5] {
        let t = std::time::Instant::now();
        let (peak, steps) = long_solve_peak(stepper);
        println!(
            "{stepper:?}: {steps} steps, peak gradient memory {:.1} MB ({:.1} s)",
            peak as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        assert_eq!(steps, 10_000);
        assert!(peak < 310_000_000, "{peak} bytes");
    }
}
