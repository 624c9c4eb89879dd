//! Splitting a solve over threads, both ways (blocks of trials, or one solver whose products
//! a team of threads shares): the same trials give the same bits on 1, 2 or 3 threads
//! (states, step counts, statuses); gradients agree across thread counts to round-off
//! (blocks sum the parameter gradients in another order; a team gives the same bits) and
//! are bit-identical for a fixed count; `threads(0)` is refused.

use neurode_solvers::testing::{LeakyTanhRnn, Normal};
use neurode_solvers::{integrate, PiecewiseConstant, Solution, MIN_TRIALS_PER_BLOCK};

/// The two layouts: `(units, trials, blocks)`. 128 units x 24 trials (few trials per
/// thread: one solver and a team), 32 units x 200 trials (blocks of trials on 2 and 3
/// threads).
const CASES: [(usize, usize, bool); 2] = [(128, 24, false), (32, 200, true)];

fn problem(n: usize, batch: usize) -> (LeakyTanhRnn<f64>, Vec<f64>) {
    let mut rng = Normal::new(3);
    let inputs = (0..batch)
        .map(|_| {
            let on = 2.0 + 6.0 * rng.uniform();
            let mut v = vec![0.0; 2];
            v.extend((0..2).map(|_| rng.sample()));
            PiecewiseConstant::new(2, vec![on], v).unwrap()
        })
        .collect();
    let rnn = LeakyTanhRnn::<f64>::random(n, 2, 1.5, 1.0, 4).with_inputs(inputs);
    let x0 = (0..n * batch).map(|_| 0.5 * rng.sample()).collect();
    (rnn, x0)
}

fn solve(n: usize, batch: usize, threads: usize) -> Solution<f64> {
    let (rnn, x0) = problem(n, batch);
    integrate(&rnn, (0.0, 20.0))
        .x0(x0)
        .save_at(vec![1.0, 5.0, 12.5, 20.0])
        .threads(threads)
        .run()
        .unwrap()
}

#[test]
fn solutions_do_not_depend_on_the_thread_count() {
    for (n, batch, blocks) in CASES {
        assert_eq!(batch >= 2 * MIN_TRIALS_PER_BLOCK, blocks);
        solutions_agree(n, batch);
    }
}

fn solutions_agree(n: usize, batch: usize) {
    let one = solve(n, batch, 1);
    for threads in [2, 3] {
        let many = solve(n, batch, threads);
        assert_eq!(one.states(), many.states(), "{threads} threads");
        assert_eq!(one.final_states(), many.final_states());
        for b in 0..one.batch() {
            assert_eq!(one.trial_stats(b), many.trial_stats(b), "trial {b}");
        }
        assert_eq!(one.stats().columns, many.stats().columns);
    }
    // Trials really differ in their steps, so the blocks end at different times.
    let acc: Vec<usize> = (0..one.batch())
        .map(|b| one.trial_stats(b).accepted)
        .collect();
    assert!(acc.iter().min() < acc.iter().max(), "{acc:?}");
}

fn gradient(n: usize, batch: usize, threads: usize) -> (Vec<f64>, Vec<f64>) {
    let (rnn, x0) = problem(n, batch);
    let (sol, tape) = integrate(&rnn, (0.0, 20.0))
        .x0(x0)
        .save_at(vec![5.0, 20.0])
        .threads(threads)
        .run_with_gradient()
        .unwrap();
    let dl: Vec<f64> = sol.states().iter().map(|v| v.sin()).collect();
    let g = tape.backward(&dl).unwrap();
    (g.params, g.x0)
}

#[test]
fn gradients_agree_across_thread_counts_and_repeat_exactly() {
    for (n, batch, blocks) in CASES {
        gradients_agree(n, batch, blocks);
    }
}

fn gradients_agree(n: usize, batch: usize, blocks: bool) {
    let (p1, x1) = gradient(n, batch, 1);
    for threads in [2, 3] {
        let (p, x) = gradient(n, batch, threads);
        if !blocks {
            // One solver, its products shared: the same arithmetic as on one thread.
            assert_eq!(p, p1, "{threads} threads, team");
        }
        // dL/dx0 is per trial: the same bits. dL/dθ sums blocks in another order.
        assert_eq!(x, x1, "{threads} threads");
        let scale = p1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let d = p
            .iter()
            .zip(&p1)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(d <= 1e-13 * scale, "{threads} threads: {d:e}");
        assert_eq!(gradient(n, batch, threads).0, p, "{threads} threads, twice");
    }
}

#[test]
fn zero_threads_is_refused() {
    let (rnn, x0) = problem(16, 4);
    let err = integrate(&rnn, (0.0, 1.0))
        .x0(x0)
        .threads(0)
        .run()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("threads") && msg.contains("at least one"),
        "{msg}"
    );
}

#[path = "../benches/problems/mod.rs"]
#[allow(dead_code)]
mod problems;

/// One trial of a 500-unit low-rank network (the P1 family, `benches/problems/mod.rs`):
/// its state is too small to split, but its products are large enough for a team, whose
/// members take row panels of each matrix-vector product. Same bits on 1, 2 and 3 threads,
/// forward and gradient, and the team really ran (the work is over the threshold).
#[test]
fn one_large_trial_shares_its_products_with_the_same_bits() {
    use neurode_solvers::{VectorField, MIN_TEAM_WORK};
    let (m, x0) = problems::problem_sized::<f64>(500, 1);
    assert!(m.work_per_column() >= MIN_TEAM_WORK);
    let run = |threads: usize| {
        let (sol, tape) = integrate(&m, (0.0, 30.0))
            .x0(x0.clone())
            .save_at(vec![10.0, 20.0, 30.0])
            .threads(threads)
            .run_with_gradient()
            .unwrap();
        let dl = problems::loss_grad_sized(sol.states(), 500);
        let g = tape.backward(&dl).unwrap();
        (sol.states().to_vec(), sol.trial_stats(0), g.params, g.x0)
    };
    let one = run(1);
    assert!(one.1.accepted > 20, "{:?}", one.1);
    for threads in [2, 3] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}
