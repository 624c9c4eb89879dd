//! Acceptance 4: property tests.
//!
//! - Random stable linear systems (n <= 8, batch <= 5) match `exp(A t) x0` within
//!   20 * rtol (scaled by the size of the state).
//! - Batch invariance: a batch of 16 random trials of a leaky tanh RNN with per-trial
//!   stimulus times gives, for each trial, the same accepted/rejected counts as that trial
//!   solved alone, and states within 1e-12 relative (f64).

use neurode_solvers::testing::{LeakyTanhRnn, LinearSystem, Normal};
use neurode_solvers::{integrate, PiecewiseConstant};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn stable_linear_systems_match_the_matrix_exponential(
        n in 1usize..=8,
        batch in 1usize..=5,
        alpha in 0.05f64..1.0,
        rtol_exp in 4i32..=10,
        t1 in 0.5f64..6.0,
        seed in any::<u64>(),
    ) {
        let rtol = 10f64.powi(-rtol_exp);
        let sys = LinearSystem::<f64>::random_stable(n, alpha, seed);
        let mut rng = Normal::new(seed ^ 0x9e37_79b9);
        let x0: Vec<f64> = (0..n * batch).map(|_| rng.sample()).collect();
        let ts: Vec<f64> = (1..=4).map(|i| t1 * i as f64 / 4.0).collect();
        let sol = integrate(&sys, (0.0, t1))
            .tolerances(rtol, rtol)
            .x0(x0.clone())
            .save_at(ts.clone())
            .run()
            .unwrap();
        for b in 0..batch {
            let x0b = &x0[b * n..(b + 1) * n];
            let scale = x0b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, &t) in ts.iter().enumerate() {
                let exact = sys.exact(t, x0b);
                for (got, want) in sol.state(i, b).iter().zip(&exact) {
                    prop_assert!(
                        (got - want).abs() <= 20.0 * rtol * scale,
                        "n {n}, trial {b}, t {t}: {got} vs {want} (rtol {rtol:e})"
                    );
                }
            }
        }
    }
}

fn random_trials(n_in: usize, batch: usize, seed: u64) -> Vec<PiecewiseConstant<f64>> {
    let mut rng = Normal::new(seed);
    (0..batch)
        .map(|_| {
            let t_on = 2.0 + 10.0 * rng.uniform();
            let t_off = t_on + 1.0 + 5.0 * rng.uniform();
            let mut v = vec![0.0; n_in];
            v.extend((0..n_in).map(|_| rng.sample()));
            v.extend(vec![0.0; n_in]);
            PiecewiseConstant::new(n_in, vec![t_on, t_off], v).unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn a_trial_does_not_depend_on_its_batch_mates(
        n in 5usize..=40,
        g in 0.5f64..2.0,
        seed in any::<u64>(),
    ) {
        let batch = 16;
        let base = LeakyTanhRnn::<f64>::random(n, 2, g, 1.0, seed);
        let inputs = random_trials(2, batch, seed.wrapping_add(1));
        let mut rng = Normal::new(seed.wrapping_add(2));
        let x0: Vec<f64> = (0..n * batch).map(|_| rng.sample()).collect();
        let ts = vec![5.0, 10.0, 20.0, 30.0];
        let all = integrate(&base.clone().with_inputs(inputs.clone()), (0.0, 30.0))
            .x0(x0.clone())
            .save_at(ts.clone())
            .run()
            .unwrap();
        for b in 0..batch {
            let one = base.clone().with_inputs(vec![inputs[b].clone()]);
            let alone = integrate(&one, (0.0, 30.0))
                .x0(x0[b * n..(b + 1) * n].to_vec())
                .save_at(ts.clone())
                .run()
                .unwrap();
            let (sa, sb) = (all.trial_stats(b), alone.trial_stats(0));
            prop_assert_eq!((sa.accepted, sa.rejected), (sb.accepted, sb.rejected), "trial {}", b);
            for i in 0..ts.len() {
                for (x, y) in all.state(i, b).iter().zip(alone.state(i, 0)) {
                    let rel = (x - y).abs() / x.abs().max(y.abs()).max(1e-300);
                    prop_assert!(rel <= 1e-12 || (x - y).abs() < 1e-300, "trial {b}: {x} vs {y}");
                }
            }
        }
    }
}
