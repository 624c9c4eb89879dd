//! Dot-product tests of the derivative products of the test fields: for random `u`, `v`,
//! `<v, J u>` from central finite differences of the right-hand side must equal
//! `<vjpᵀ v, u>` (state and parameters), and the JVP must equal the difference quotient.

use neurode_solvers::testing::{Gaussian, LeakyTanhRnn, LinearSystem, Normal, Quadratic, SinY};
use neurode_solvers::{Columns, Differentiable, JvpState, VectorField, VjpParams, VjpState};

fn randn(rng: &mut Normal, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn rhs_of<F: VectorField<Scalar = f64>>(f: &F, t: &[f64], x: &[f64]) -> Vec<f64> {
    let mut d = vec![0.0; x.len()];
    let mut ws = f.workspace(t.len());
    f.rhs(Columns::new(t), x, &mut d, &mut ws);
    d
}

/// Relative mismatch of two scalars.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// Checks state and parameter VJPs of `f` at `(t, x)` against central differences.
fn check<F: Differentiable<Scalar = f64> + Clone>(f: &F, t: &[f64], x: &[f64], seed: u64) {
    let cols = Columns::new(t);
    let mut rng = Normal::new(seed);
    let eps = 1e-6;
    for _ in 0..3 {
        let u = randn(&mut rng, x.len());
        let v = randn(&mut rng, x.len());
        // State.
        let xp: Vec<f64> = x.iter().zip(&u).map(|(a, b)| a + eps * b).collect();
        let xm: Vec<f64> = x.iter().zip(&u).map(|(a, b)| a - eps * b).collect();
        let (fp, fm) = (rhs_of(f, t, &xp), rhs_of(f, t, &xm));
        let ju: Vec<f64> = fp
            .iter()
            .zip(&fm)
            .map(|(p, m)| (p - m) / (2.0 * eps))
            .collect();
        let jtv = f.vjp_state_alloc(cols, x, &v);
        let (lhs, rhs) = (dot(&v, &ju), dot(&jtv, &u));
        assert!(
            rel(lhs, rhs) < 1e-7,
            "state VJP: <v, Ju> = {lhs}, <J^T v, u> = {rhs}"
        );
        // Parameters.
        let np = f.n_params();
        if np > 0 {
            let mut theta = vec![0.0; np];
            f.params(&mut theta);
            let w = randn(&mut rng, np);
            let mut fpp = f.clone();
            fpp.set_params(
                &theta
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| a + eps * b)
                    .collect::<Vec<_>>(),
            );
            let mut fmm = f.clone();
            fmm.set_params(
                &theta
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| a - eps * b)
                    .collect::<Vec<_>>(),
            );
            let (fp, fm) = (rhs_of(&fpp, t, x), rhs_of(&fmm, t, x));
            let jw: Vec<f64> = fp
                .iter()
                .zip(&fm)
                .map(|(p, m)| (p - m) / (2.0 * eps))
                .collect();
            let jtv = f.vjp_params_alloc(cols, x, &v);
            let (lhs, rhs) = (dot(&v, &jw), dot(&jtv, &w));
            assert!(rel(lhs, rhs) < 1e-7, "param VJP: {lhs} vs {rhs}");
            // set_params round-trips.
            let mut back = vec![0.0; np];
            fpp.params(&mut back);
            for (b, (a, w)) in back.iter().zip(theta.iter().zip(&w)) {
                assert!((b - (a + eps * w)).abs() < 1e-15);
            }
        }
    }
}

#[test]
fn leaky_rnn_vjps_match_finite_differences() {
    let rnn = LeakyTanhRnn::<f64>::random(7, 2, 1.5, 2.0, 11).with_step_inputs(3, 1.0, 1.0, 5);
    let mut rng = Normal::new(2);
    let x = randn(&mut rng, 21);
    // Trials before and after their input switches on (the B gradient needs u != 0).
    check(&rnn, &[0.5, 1.5, 2.0], &x, 3);
    let plain = LeakyTanhRnn::<f64>::random(6, 1, 0.9, 1.0, 4);
    check(&plain, &[0.0, 0.0], &randn(&mut rng, 12), 4);
}

#[test]
fn leaky_rnn_jvp_is_the_transpose_of_its_vjp() {
    let rnn = LeakyTanhRnn::<f64>::random(9, 1, 1.2, 1.0, 8);
    let mut rng = Normal::new(9);
    let t = [0.0, 0.0];
    let x = randn(&mut rng, 18);
    let (u, v) = (randn(&mut rng, 18), randn(&mut rng, 18));
    let mut ju = vec![0.0; 18];
    let mut ws = rnn.workspace(2);
    rnn.jvp_state(Columns::new(&t), &x, &u, &mut ju, &mut ws);
    let jtv = rnn.vjp_state_alloc(Columns::new(&t), &x, &v);
    assert!(rel(dot(&v, &ju), dot(&jtv, &u)) < 1e-13);
}

#[test]
fn wide_calls_equal_the_sum_of_per_stage_calls() {
    // The adjoint stacks stages side by side: column c belongs to trial c % batch.
    let rnn = LeakyTanhRnn::<f64>::random(5, 2, 1.1, 1.0, 21).with_step_inputs(2, 1.0, 1.0, 22);
    let mut rng = Normal::new(23);
    let (x1, x2) = (randn(&mut rng, 10), randn(&mut rng, 10));
    let (v1, v2) = (randn(&mut rng, 10), randn(&mut rng, 10));
    let (t1, t2) = ([0.5, 1.5], [1.2, 0.2]);
    let mut sep = rnn.vjp_params_alloc(Columns::new(&t1), &x1, &v1);
    for (s, a) in sep
        .iter_mut()
        .zip(rnn.vjp_params_alloc(Columns::new(&t2), &x2, &v2))
    {
        *s += a;
    }
    let wide = rnn.vjp_params_alloc(
        Columns::with_trials(&[t1[0], t1[1], t2[0], t2[1]], &[0, 1, 0, 1]),
        &[x1.clone(), x2.clone()].concat(),
        &[v1.clone(), v2.clone()].concat(),
    );
    for (a, b) in sep.iter().zip(&wide) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

/// The integrator packs the trials that still run: a column is looked up by its trial
/// index, not its position. Trial 1 alone, and trials 1 and 0 swapped, give the columns of
/// the whole batch in order, bit for bit.
#[test]
fn packed_columns_follow_their_trial_index() {
    let rnn = LeakyTanhRnn::<f64>::random(6, 2, 1.1, 1.0, 41).with_step_inputs(2, 1.0, 1.0, 42);
    let mut rng = Normal::new(43);
    let x = randn(&mut rng, 12);
    let t = [1.5, 1.5];
    let full = rhs_of(&rnn, &t, &x);
    let mut one = vec![0.0; 6];
    rnn.rhs(
        Columns::with_trials(&t[1..], &[1]),
        &x[6..],
        &mut one,
        &mut rnn.workspace(1),
    );
    assert_eq!(one[..], full[6..]);
    let swapped = [&x[6..], &x[..6]].concat();
    let mut d = vec![0.0; 12];
    rnn.rhs(
        Columns::with_trials(&t, &[1, 0]),
        &swapped,
        &mut d,
        &mut rnn.workspace(2),
    );
    assert_eq!(d[..6], full[6..]);
    assert_eq!(d[6..], full[..6]);
    // The two trials really differ (their inputs do), so a mix-up would show.
    assert_ne!(full[..6], full[6..]);
}

#[test]
fn linear_and_scalar_field_vjps_match_finite_differences() {
    let mut rng = Normal::new(31);
    let lin = LinearSystem::<f64>::random_stable(4, 0.5, 7);
    check(&lin, &[0.0, 0.0, 0.0], &randn(&mut rng, 12), 32);
    let x = [0.3, -1.2, 2.0];
    let t = [0.1, 0.7, 1.3];
    check(&SinY, &t, &x, 33);
    check(&Gaussian, &t, &x, 34);
    check(&Quadratic, &t, &x, 35);
}

/// The model's residual products (what the reverse sweep calls: `tanh(x)` once per stage,
/// shared by both VJPs) give the bits of the plain ones, on packed, permuted columns with
/// inputs on and off, and the plain ones pass the dot-product test.
#[test]
fn low_rank_residual_vjps_are_the_plain_ones() {
    use neurode_models::{LowRankInit, LowRankRnn};
    use neurode_solvers::PiecewiseConstant;
    let init = LowRankInit {
        n: 12,
        n_in: 2,
        ..LowRankInit::default()
    };
    let (mut rnn, _) = LowRankRnn::<f64>::random(&init, 5).unwrap();
    let step = |v: f64| PiecewiseConstant::new(2, vec![1.0], vec![0.0, 0.0, v, -0.5]).unwrap();
    rnn.set_inputs(vec![step(1.0), step(2.0), step(-1.0)])
        .unwrap();
    let mut rng = Normal::new(6);
    let (t, trials) = ([0.5, 1.5, 2.0, 1.2], [2, 0, 1, 2]);
    let cols = Columns::with_trials(&t, &trials);
    let (x, v) = (randn(&mut rng, 48), randn(&mut rng, 48));
    let mut ws = rnn.workspace(4);
    let mut r = vec![0.0; rnn.residual_len() * 4];
    rnn.residuals(cols, &x, &mut r);
    let start = randn(&mut rng, 48);
    let (mut plain, mut with) = (start.clone(), start);
    rnn.vjp_state(cols, &x, &v, &mut plain, &mut ws);
    rnn.vjp_state_with(cols, &x, &r, &v, &mut with, &mut ws);
    assert_eq!(plain, with);
    let start = randn(&mut rng, rnn.n_params());
    let (mut plain, mut with) = (start.clone(), start);
    rnn.vjp_params(cols, &x, &v, &mut plain, &mut ws);
    rnn.vjp_params_with(cols, &x, &r, &v, &mut with, &mut ws);
    // The low-rank connectivity defers nothing: the result is there before the finish.
    assert_eq!(plain, with);
    rnn.vjp_params_finish(&mut with, &mut ws);
    assert_eq!(plain, with);
    check(&rnn, &[0.5, 1.5, 2.0], &x[..36], 7);
}

/// The Kim et al. rate RNN under every activation: Dale's law with SOM units, trained
/// time constants, a bias, inputs and per-step noise. The state and parameter VJPs
/// (`W`, `B`, `bias`, `tau_g`) pass the dot-product test against central differences, and
/// the residual products give the plain ones' bits. `P_rec = 1` keeps every raw weight
/// away from `relu`'s kink at 0 (a difference quotient across it is one-sided).
#[test]
fn kim_rnn_vjps_match_finite_differences() {
    use neurode_models::{Activation, KimInit, KimRateRnn};
    use neurode_solvers::PiecewiseConstant;
    for act in [
        Activation::Sigmoid,
        Activation::ClippedRelu { cap: 20.0 },
        Activation::ClippedSoftplus { cap: 20.0 },
        Activation::Tanh,
        Activation::Relu,
        Activation::Softplus,
    ] {
        let init = KimInit {
            n: 10,
            p_inh: 0.4,
            p_rec: 1.0,
            som_n: 2,
            n_in: 2,
            act,
            ..KimInit::default()
        };
        let (rnn, _) = KimRateRnn::<f64>::random(&init, 8).unwrap();
        let mut rng = Normal::new(9);
        let mut rnn = rnn.with_bias(randn(&mut rng, 10)).unwrap();
        assert!(rnn.connectivity().som().iter().any(|&s| s), "SOM units");
        let step = |v: f64| PiecewiseConstant::new(2, vec![1.0], vec![0.0, 0.0, v, -0.5]).unwrap();
        rnn.set_inputs(vec![step(1.0), step(2.0), step(-1.0)])
            .unwrap();
        let noise = |s: u64| {
            let mut r = Normal::new(s);
            PiecewiseConstant::new(10, vec![1.0], randn(&mut r, 20)).unwrap()
        };
        rnn.set_noise(vec![noise(1), noise(2), noise(3)]).unwrap();
        let (x, v) = (randn(&mut rng, 30), randn(&mut rng, 30));
        check(&rnn, &[0.5, 1.5, 2.0], &x, 10);
        let (t, trials) = ([0.5, 1.5, 2.0], [2, 0, 1]);
        let cols = Columns::with_trials(&t, &trials);
        let mut ws = rnn.workspace(3);
        let mut r = vec![0.0; rnn.residual_len() * 3];
        rnn.residuals(cols, &x, &mut r);
        let mut plain = vec![0.0; rnn.n_params()];
        let mut with = plain.clone();
        rnn.vjp_params(cols, &x, &v, &mut plain, &mut ws);
        // Gathered over two calls (the dense W defers its products to one at the end).
        let mut ws2 = rnn.workspace(3);
        rnn.vjp_params_with(cols, &x, &r, &v, &mut with, &mut ws2);
        rnn.vjp_params_with(cols, &x, &r, &v, &mut with, &mut ws2);
        assert!(
            with[..100].iter().all(|&g| g == 0.0),
            "W's products deferred"
        );
        rnn.vjp_params_finish(&mut with, &mut ws2);
        for (k, (&p, &w)) in plain.iter().zip(&with).enumerate() {
            let want = 2.0 * p;
            assert!(
                (want - w).abs() <= 1e-12 * want.abs().max(1.0),
                "{act:?} parameter {k}: {w} vs {want}"
            );
        }
        let names: Vec<String> = rnn.param_views().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["W", "B", "bias", "tau_g"]);
        // The time constants' gradient is really there.
        let tau_g = &plain[rnn.n_params() - 10..];
        assert!(tau_g.iter().any(|&g| g != 0.0), "{act:?}");
    }
}

#[test]
fn multi_region_rnn_vjps_match_finite_differences() {
    use neurode_models::{
        Activation, Connection, InputRegion, RecurrentRegion, RegionBuilder, RegionSettings, Sign,
    };
    use neurode_solvers::PiecewiseConstant;
    for constrained in [true, false] {
        let mut b = RegionBuilder::new();
        let mut a = RecurrentRegion::new("a", 4);
        a.base_firing = vec![0.3];
        b.add_recurrent_region(a).unwrap();
        let mut c = RecurrentRegion::new("c", 3);
        c.sign = Sign::Neg;
        b.add_recurrent_region(c).unwrap();
        b.add_input_region(InputRegion {
            name: "in".into(),
            units: 2,
            sign: Sign::Pos,
        })
        .unwrap();
        for (s, d, sp) in [
            ("a", "a", None),
            ("a", "c", Some(0.3)),
            ("c", "a", None),
            ("c", "c", Some(0.5)),
        ] {
            let conn = Connection {
                src: s.into(),
                dst: d.into(),
                sparsity: sp,
                zero: false,
            };
            b.add_recurrent_connection(conn).unwrap();
        }
        let conn = Connection {
            src: "in".into(),
            dst: "a".into(),
            sparsity: None,
            zero: false,
        };
        b.add_input_connection(conn).unwrap();
        let settings = RegionSettings {
            act: Activation::Tanh,
            tau: 5.0,
            rec_constrained: constrained,
            inp_constrained: constrained,
            spectral_radius: Some(1.5),
        };
        let (mut rnn, _) = b.finalize::<f64>(&settings, 3).unwrap();
        let step = |v: f64| PiecewiseConstant::new(2, vec![1.0], vec![0.0, 0.0, v, -0.5]).unwrap();
        rnn.set_inputs(vec![step(1.0), step(2.0)]).unwrap();
        let mut rng = Normal::new(4);
        let x = randn(&mut rng, 14);
        check(&rnn, &[0.5, 1.5], &x, 11);
    }
}

/// Trained time constants on the two other ways a connectivity gives the gradient's row
/// sums `Σ_c v_ic (W h_c)_i`: a dense `W` without Dale's law (read off `V Hᵀ`, like the
/// masked one above) and the low-rank `W` (the trait's default, one more product). Both
/// pass the dot-product test, gathered or not.
#[test]
fn trained_time_constants_vjps_match_finite_differences() {
    use neurode_models::{Dale, LeakyRnn, LowRankInit, LowRankRnn, TimeConstants};
    let n = 10;
    let mut rng = Normal::new(21);
    let bounded = |rng: &mut Normal| TimeConstants::Bounded {
        g: randn(rng, n),
        min: 0.5,
        max: 3.0,
    };
    let w = randn(&mut rng, n * n);
    let none = vec![false; n];
    let dense = LeakyRnn::new(
        Dale::new(n, w, &none, &none, false).unwrap(),
        1.0,
        1,
        vec![0.0; n],
    )
    .and_then(|m| m.with_time_constants(bounded(&mut rng)))
    .unwrap();
    let init = LowRankInit {
        n,
        ..LowRankInit::default()
    };
    let (low, _) = LowRankRnn::<f64>::random(&init, 3).unwrap();
    let low = low.with_time_constants(bounded(&mut rng)).unwrap();
    let x = randn(&mut rng, 3 * n);
    check(&dense, &[0.5, 1.5, 2.0], &x, 22);
    check(&low, &[0.5, 1.5, 2.0], &x, 23);
    // Gathered over two calls: twice the plain gradient.
    let v = randn(&mut rng, 3 * n);
    let t = [0.5, 1.5, 2.0];
    let cols = Columns::new(&t);
    let mut r = vec![0.0; dense.residual_len() * 3];
    dense.residuals(cols, &x, &mut r);
    let mut plain = vec![0.0; dense.n_params()];
    let mut with = plain.clone();
    dense.vjp_params(cols, &x, &v, &mut plain, &mut dense.workspace(3));
    let mut ws = dense.workspace(3);
    dense.vjp_params_with(cols, &x, &r, &v, &mut with, &mut ws);
    dense.vjp_params_with(cols, &x, &r, &v, &mut with, &mut ws);
    dense.vjp_params_finish(&mut with, &mut ws);
    for (k, (&p, &w)) in plain.iter().zip(&with).enumerate() {
        assert!(
            (2.0 * p - w).abs() <= 1e-12 * p.abs().max(1.0),
            "{k}: {w} vs 2 x {p}"
        );
    }
    assert!(plain[plain.len() - n..].iter().any(|&g| g != 0.0));
}
