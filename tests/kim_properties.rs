//! Property tests of the Kim et al. rate RNN under training (acceptance 2 of its issue):
//! after any number of Adam updates with random gradients of any scale, every column of
//! `W_eff` carries its presynaptic unit's sign (or is zero), SOM units receive no
//! inhibitory input, and every time constant stays in `[τ_min, τ_max]`.

use neurode::models::{KimInit, KimRateRnn};
use neurode::solvers::{Normal, VectorField, VjpParams};
use neurode::train::Adam;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dale_som_and_time_constant_bounds_survive_adam(
        seed in any::<u64>(),
        n in 4usize..=24,
        p_inh in 0.1f64..0.6,
        som_n in 0usize..=3,
        steps in 1usize..=40,
        scale_exp in -3i32..=4,
        lr_exp in -3i32..=0,
        taus in (0.5f64..10.0, 0.0f64..30.0),
    ) {
        let init = KimInit {
            n,
            p_inh,
            p_rec: 0.5,
            som_n,
            taus: vec![taus.0, taus.0 + taus.1],
            ..KimInit::default()
        };
        let (mut rnn, _) = KimRateRnn::<f64>::random(&init, seed).unwrap();
        let np = rnn.n_params();
        let mut theta = vec![0.0; np];
        rnn.params(&mut theta);
        let mut adam = Adam::<f64>::new(np);
        let mask = vec![true; np];
        let mut rng = Normal::new(seed ^ 0x5eed);
        let scale = 10f64.powi(scale_exp);
        let lr = 10f64.powi(lr_exp);
        for _ in 0..steps {
            let grad: Vec<f64> = (0..np).map(|_| scale * rng.sample()).collect();
            adam.step(&mut theta, &grad, lr, &mask);
            rnn.set_params(&theta);
            let conn = rnn.connectivity();
            let (eff, signs, som) = (conn.effective(), conn.signs(), conn.som());
            for j in 0..n {
                for i in 0..n {
                    let w = eff[i + j * n];
                    prop_assert!(w == 0.0 || w.signum() == signs[j],
                        "W_eff[{i}, {j}] = {w} against the sign {} of unit {j}", signs[j]);
                    if som[i] && signs[j] < 0.0 {
                        prop_assert_eq!(w, 0.0, "SOM unit {} receives input from inhibitory unit {}", i, j);
                    }
                }
            }
            for &t in &rnn.time_constants().values() {
                prop_assert!(t >= taus.0 && t <= taus.0 + taus.1, "tau {t} outside [{}, {}]", taus.0, taus.0 + taus.1);
            }
        }
        // The raw weights did move (the test exercises updates, not the initial state).
        let mut after = vec![0.0; np];
        rnn.params(&mut after);
        let (fresh, _) = KimRateRnn::<f64>::random(&init, seed).unwrap();
        let mut before = vec![0.0; np];
        fresh.params(&mut before);
        prop_assert!(after != before);
    }
}
