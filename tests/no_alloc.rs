//! Acceptance 7: no allocation in the stepping loop after the first step.
//!
//! A counting global allocator; the progress callback (called after every iteration of the
//! loop) snapshots the count. From the end of the first iteration to the end of the last,
//! the count must not move. This file holds a single test so that no other test thread
//! allocates meanwhile.

use neurode_solvers::integrate;
use neurode_solvers::testing::{CountingAllocator, LeakyTanhRnn};
use neurode_solvers::{PiecewiseConstant, Stepper};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

/// Allocations between the end of the first loop iteration and the end of the last, and
/// the number of iterations.
fn allocations_in_loop(run: impl FnOnce(&mut dyn FnMut())) -> (usize, usize) {
    let mut first = None;
    let mut last = 0;
    let mut iters = 0;
    let mut cb = || {
        let now = CountingAllocator::thread_allocs();
        first.get_or_insert(now);
        last = now;
        iters += 1;
    };
    run(&mut cb);
    (last - first.expect("the loop ran"), iters)
}

#[test]
fn stepping_loop_does_not_allocate() {
    let n = 120;
    let batch = 8;
    // Per-trial stimulus on/off times: breakpoints, restarts and dense saves all happen.
    let inputs: Vec<PiecewiseConstant<f64>> = (0..batch)
        .map(|b| {
            let on = 5.0 + b as f64;
            PiecewiseConstant::new(2, vec![on, on + 7.5], vec![0.0, 0.0, 1.0, -0.5, 0.0, 0.0])
                .unwrap()
        })
        .collect();
    let rnn64 = LeakyTanhRnn::<f64>::random(n, 2, 1.5, 1.0, 3).with_inputs(inputs.clone());
    let saves: Vec<f64> = (0..=300).map(|i| i as f64 * 0.1).collect();

    let (a, it) = allocations_in_loop(|cb| {
        integrate(&rnn64, (0.0, 30.0))
            .save_at(saves.clone())
            .progress(|_| cb())
            .run()
            .unwrap();
    });
    println!("Tsit5 f64: {a} allocations in {it} iterations");
    assert!(it > 20);
    assert_eq!(a, 0, "Tsit5 (f64) allocated {a} times in the loop");

    let (a, it) = allocations_in_loop(|cb| {
        integrate(&rnn64, (0.0, 30.0))
            .stepper(Stepper::Euler)
            .fixed_dt(0.1)
            .save_at(saves.clone())
            .progress(|_| cb())
            .run()
            .unwrap();
    });
    println!("Euler f64: {a} allocations in {it} iterations");
    assert!(it >= 300);
    assert_eq!(a, 0, "Euler (f64) allocated {a} times in the loop");

    // The counter does see allocations in the loop: the step log grows as it goes.
    let (a, _) = allocations_in_loop(|cb| {
        integrate(&rnn64, (0.0, 30.0))
            .record_steps(true)
            .progress(|_| cb())
            .run()
            .unwrap();
    });
    assert!(a > 0, "the counting allocator missed the step log's growth");

    let inputs32: Vec<PiecewiseConstant<f32>> = (0..batch)
        .map(|b| {
            let on = 5.0 + b as f32;
            PiecewiseConstant::new(2, vec![on, on + 7.5], vec![0.0, 0.0, 1.0, -0.5, 0.0, 0.0])
                .unwrap()
        })
        .collect();
    let rnn32 = LeakyTanhRnn::<f32>::random(n, 2, 1.5, 1.0, 3).with_inputs(inputs32);
    let (a, it) = allocations_in_loop(|cb| {
        integrate(&rnn32, (0.0, 30.0))
            .progress(|_| cb())
            .run()
            .unwrap();
    });
    println!("Tsit5 f32: {a} allocations in {it} iterations");
    assert_eq!(a, 0, "Tsit5 (f32) allocated {a} times in the loop");

    // On two threads, both ways (a team sharing one solver's operations: 300 units x 16
    // trials; blocks of trials: 32 units x 160 trials), the stepping loops allocate nothing
    // either: the whole solve's allocations (all threads) are the same for many more steps.
    for (n, batch) in [(300, 16), (32, 160)] {
        let inputs: Vec<PiecewiseConstant<f64>> = (0..batch)
            .map(|b| {
                let on = 1.0 + 0.25 * (b % 16) as f64;
                PiecewiseConstant::new(2, vec![on, on + 3.0], vec![0.0, 0.0, 1.0, -0.5, 0.0, 0.0])
                    .unwrap()
            })
            .collect();
        let big = LeakyTanhRnn::<f64>::random(n, 2, 1.5, 1.0, 5).with_inputs(inputs);
        let whole_solve = |t1: f64| {
            let before = ALLOC.allocs();
            let sol = integrate(&big, (0.0, t1))
                .threads(2)
                .save_at(vec![t1])
                .run()
                .unwrap();
            let n = ALLOC.allocs() - before;
            (n, sol.trial_stats(0).accepted)
        };
        whole_solve(10.0); // warm-up
        let (short, steps_short) = whole_solve(10.0);
        let (long, steps_long) = whole_solve(50.0);
        println!(
            "two threads, {n} x {batch}: {short} allocations for {steps_short} steps, {long} \
             for {steps_long}"
        );
        assert!(steps_long >= steps_short + 50, "{steps_short} {steps_long}");
        assert_eq!(
            short, long,
            "the threaded stepping loops allocate ({n} x {batch})"
        );
    }
}
