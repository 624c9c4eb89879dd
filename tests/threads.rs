//! Splitting a solve over threads: the same trials give the same bits on 1, 2 or 3 threads
//! (states, step counts, statuses), gradients agree across thread counts to round-off and
//! are bit-identical for a fixed count, and `threads(0)` is refused.

use neurode_solvers::testing::{LeakyTanhRnn, Normal};
use neurode_solvers::{integrate, PiecewiseConstant, Solution};

/// 128 units x 48 trials: 6144 state values, enough for three blocks.
fn problem() -> (LeakyTanhRnn<f64>, Vec<f64>) {
    let (n, batch) = (128, 48);
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

fn solve(threads: usize) -> Solution<f64> {
    let (rnn, x0) = problem();
    integrate(&rnn, (0.0, 20.0))
        .x0(x0)
        .save_at(vec![1.0, 5.0, 12.5, 20.0])
        .threads(threads)
        .run()
        .unwrap()
}

#[test]
fn solutions_do_not_depend_on_the_thread_count() {
    let one = solve(1);
    for threads in [2, 3] {
        let many = solve(threads);
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

fn gradient(threads: usize) -> (Vec<f64>, Vec<f64>) {
    let (rnn, x0) = problem();
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
    let (p1, x1) = gradient(1);
    for threads in [2, 3] {
        let (p, x) = gradient(threads);
        // dL/dx0 is per trial: the same bits. dL/dθ sums blocks in another order.
        assert_eq!(x, x1, "{threads} threads");
        let scale = p1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let d = p
            .iter()
            .zip(&p1)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(d <= 1e-13 * scale, "{threads} threads: {d:e}");
        assert_eq!(gradient(threads).0, p, "{threads} threads, twice");
    }
}

#[test]
fn zero_threads_is_refused() {
    let (rnn, x0) = problem();
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
