//! The Kim et al. (2019) rate RNN: the convention check of the reference (`seed-numbers.md`
//! §B1), the paper's discrete update reproduced by Euler with `dt = 1`, and the time
//! constants' gradient through a solve against finite differences.

use neurode::models::{Activation, Dale, KimInit, KimRateRnn, LeakyRnn, TimeConstants};
use neurode::solvers::{integrate, Normal, PiecewiseConstant, Stepper, VectorField, VjpParams};

/// Reference §B1 (computed from the original's update): `τ = [4, 10]`, `x0 = [0.01, -0.02]`,
/// raw `W = [[0, 0.3], [0.2, 0]]` with unit 2 inhibitory, `w_in = [1, -0.5]ᵀ`, `u = 1`, no
/// noise: one step gives `x1 = [0.2203749875, -0.0579500004]`,
/// `r1 = σ(x1) = [0.5548718548, 0.4855165529]`. Checked to 1e-9 with fixed per-unit time
/// constants and with trained ones set to the same values.
#[test]
fn one_step_matches_the_reference_convention_check() {
    // Column-major: W[0, 1] = 0.3 (unit 2 -> unit 1), W[1, 0] = 0.2.
    let w = vec![0.0, 0.2, 0.3, 0.0];
    let dale = Dale::new(2, w, &[false, true], &[false, false], true).unwrap();
    assert_eq!(dale.effective(), &[0.0, 0.2, -0.3, 0.0]);
    // τ = σ(g)(12 - 2) + 2 is 4 and 10 at σ(g) = 0.2 and 0.8.
    let logit = |p: f64| (p / (1.0 - p)).ln();
    for tau in [
        TimeConstants::PerUnit(vec![4.0, 10.0]),
        TimeConstants::Bounded {
            g: vec![logit(0.2), logit(0.8)],
            min: 2.0,
            max: 12.0,
        },
    ] {
        let mut rnn = LeakyRnn::new(dale.clone(), 1.0, 1, vec![1.0, -0.5])
            .unwrap()
            .with_activation(Activation::Sigmoid)
            .unwrap()
            .with_time_constants(tau)
            .unwrap();
        rnn.set_inputs(vec![PiecewiseConstant::constant(vec![1.0])])
            .unwrap();
        let sol = integrate(&rnn, (0.0, 1.0))
            .stepper(Stepper::Euler)
            .fixed_dt(1.0)
            .x0(vec![0.01, -0.02])
            .save_at(vec![1.0])
            .run()
            .unwrap();
        let x1 = sol.state(0, 0);
        let want = [0.2203749875, -0.0579500004];
        let r_want = [0.5548718548, 0.4855165529];
        for i in 0..2 {
            assert!((x1[i] - want[i]).abs() < 1e-9, "x1 = {x1:?}");
            let r = 1.0 / (1.0 + (-x1[i]).exp());
            assert!((r - r_want[i]).abs() < 1e-9, "r1[{i}] = {r}");
        }
    }
}

/// The paper's update `x_t = (1 - 1/τ) x_{t-1} + (1/τ)(W_eff r_{t-1} + W_in u_{t-1}) + ξ_t`
/// with noise `ξ_t` of SD 0.1, written out here as the original writes it, against Euler
/// with `dt = 1` on the field with the noise bound as a per-step signal: 200 steps of an
/// N = 30 network with SOM units, to 1e-12.
#[test]
fn euler_with_unit_steps_is_the_papers_discrete_update() {
    let init = KimInit {
        n: 30,
        som_n: 2,
        p_inh: 0.3,
        ..KimInit::default()
    };
    let (mut rnn, _) = KimRateRnn::<f64>::random(&init, 3).unwrap();
    let (n, t_len) = (30usize, 200usize);
    let mut rng = Normal::new(4);
    // Input: 1 on [50, 75), else 0; noise ξ_t on step [t - 1, t).
    let u = PiecewiseConstant::new(1, vec![50.0, 75.0], vec![0.0, 1.0, 0.0]).unwrap();
    let xi: Vec<f64> = (0..n * t_len).map(|_| 0.1 * rng.sample()).collect();
    let times: Vec<f64> = (1..t_len).map(|k| k as f64).collect();
    let noise = PiecewiseConstant::new(n, times, xi.clone()).unwrap();
    rnn.set_inputs(vec![u]).unwrap();
    rnn.set_noise(vec![noise]).unwrap();
    let x0: Vec<f64> = (0..n).map(|_| rng.sample() / 100.0).collect();
    let save: Vec<f64> = (1..t_len).map(|k| k as f64).collect();
    let sol = integrate(&rnn, (0.0, (t_len - 1) as f64))
        .stepper(Stepper::Euler)
        .fixed_dt(1.0)
        .x0(x0.clone())
        .save_at(save)
        .run()
        .unwrap();
    // The original's loop.
    let weff = rnn.connectivity().effective().to_vec();
    let w_in = rnn.input_weights().to_vec();
    let tau = rnn.time_constants().values();
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let mut x = x0;
    let mut worst = 0.0f64;
    for t in 1..t_len {
        let r: Vec<f64> = x.iter().map(|&v| sig(v)).collect();
        let ut = if (50..75).contains(&(t - 1)) {
            1.0
        } else {
            0.0
        };
        let next: Vec<f64> = (0..n)
            .map(|i| {
                let rec: f64 = (0..n).map(|j| weff[i + j * n] * r[j]).sum();
                (1.0 - 1.0 / tau[i]) * x[i] + (rec + w_in[i] * ut) / tau[i] + xi[(t - 1) * n + i]
            })
            .collect();
        x = next;
        let got = sol.state(t - 1, 0);
        for i in 0..n {
            worst = worst.max((got[i] - x[i]).abs());
        }
    }
    assert!(worst < 1e-12, "largest difference {worst:e}");
    // The noise matters at this size (a test of a field that ignored it would fail).
    assert!(xi.iter().map(|v| v.abs()).sum::<f64>() > 1.0);
}

/// `dL/dg` of the time-constant parameters and `dL/dW` of some recurrent weights through a
/// 200-step Euler solve (the loss `Σ_t Σ_i x_i(t)² / 2` over every saved step) against
/// central differences of the loss. 200 steps are more than the dense weights gather per
/// product (128), so the gathered products are flushed mid-sweep and at its end.
#[test]
fn time_constant_gradients_match_finite_differences() {
    let init = KimInit {
        n: 12,
        p_rec: 0.5,
        ..KimInit::default()
    };
    let (mut rnn, _) = KimRateRnn::<f64>::random(&init, 5).unwrap();
    let u = PiecewiseConstant::new(1, vec![10.0, 25.0], vec![0.0, 1.0, 0.0]).unwrap();
    rnn.set_inputs(vec![u]).unwrap();
    let x0: Vec<f64> = (0..12).map(|i| 0.05 * (i as f64 - 6.0)).collect();
    let save: Vec<f64> = (1..=200).map(|k| k as f64).collect();
    let loss = |r: &KimRateRnn<f64>| -> f64 {
        let sol = integrate(r, (0.0, 200.0))
            .stepper(Stepper::Euler)
            .fixed_dt(1.0)
            .x0(x0.clone())
            .save_at(save.clone())
            .run()
            .unwrap();
        sol.states().iter().map(|v| 0.5 * v * v).sum()
    };
    let (sol, tape) = integrate(&rnn, (0.0, 200.0))
        .stepper(Stepper::Euler)
        .fixed_dt(1.0)
        .x0(x0.clone())
        .save_at(save.clone())
        .run_with_gradient()
        .unwrap();
    let grad = tape.backward(sol.states()).unwrap();
    let np = rnn.n_params();
    let mut theta = vec![0.0; np];
    rnn.params(&mut theta);
    let first_tau = np - 12;
    // Two positive raw weights (W's gradient is zero where relu cuts it).
    let w_pos: Vec<usize> = (0..144).filter(|&k| theta[k] > 0.0).take(2).collect();
    assert_eq!(w_pos.len(), 2);
    for k in [first_tau, first_tau + 3, first_tau + 11, w_pos[0], w_pos[1]] {
        let h = 1e-5;
        let mut p = rnn.clone();
        let mut m = rnn.clone();
        let mut tp = theta.clone();
        tp[k] += h;
        p.set_params(&tp);
        let mut tm = theta.clone();
        tm[k] -= h;
        m.set_params(&tm);
        let fd = (loss(&p) - loss(&m)) / (2.0 * h);
        let g = grad.params[k];
        assert!(
            (fd - g).abs() <= 1e-6 * fd.abs().max(1e-3),
            "parameter {k}: adjoint {g}, finite differences {fd}"
        );
    }
}

/// The optional E/I-balanced initialisation: every row of `W_eff` that receives inhibitory
/// input sums to zero (its inhibition cancels its excitation), SOM rows are left as drawn,
/// Dale's signs hold, and the default initialisation is not balanced (its rows sum to
/// about `N (1 - 2 P_inh) mean|w|`, the outlier eigenvalue users see).
#[test]
fn balanced_initialisation_cancels_each_rows_input() {
    let init = KimInit {
        n: 120,
        som_n: 3,
        ..KimInit::default()
    };
    let row_sums = |balanced: bool| {
        let (rnn, _) = KimRateRnn::<f64>::random(
            &KimInit {
                balanced,
                ..init.clone()
            },
            9,
        )
        .unwrap();
        let c = rnn.connectivity();
        let (eff, signs, som) = (c.effective().to_vec(), c.signs().to_vec(), c.som().to_vec());
        (0..120)
            .map(|i| {
                let inh: f64 = (0..120)
                    .filter(|&j| signs[j] < 0.0)
                    .map(|j| eff[i + j * 120])
                    .sum();
                let all: f64 = (0..120).map(|j| eff[i + j * 120]).sum();
                (som[i], inh, all)
            })
            .collect::<Vec<_>>()
    };
    let balanced = row_sums(true);
    let mut checked = 0;
    for (i, &(som, inh, all)) in balanced.iter().enumerate() {
        if !som && inh < 0.0 {
            assert!(all.abs() < 1e-12, "row {i} sums to {all}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} rows checked");
    let mean: f64 = row_sums(false).iter().map(|r| r.2).sum::<f64>() / 120.0;
    assert!(
        mean > 1.0,
        "the paper's initialisation has a positive mean row sum: {mean}"
    );
}

/// Eigenvalues of a column-major `n x n` matrix, by decreasing modulus.
fn eigenvalues_by_modulus(n: usize, a: &[f64]) -> Vec<(f64, f64)> {
    let m = faer::Mat::<f64>::from_fn(n, n, |i, j| a[i + j * n]);
    let mut ev: Vec<(f64, f64)> = m
        .eigenvalues()
        .unwrap()
        .iter()
        .map(|z| (z.re, z.im))
        .collect();
    ev.sort_by(|a, b| b.0.hypot(b.1).total_cmp(&a.0.hypot(a.1)));
    ev
}

/// The documented claims of `KimInit::balanced`, at the paper's settings (N = 200,
/// P_inh = P_rec = 0.2, gain 1.5), where the circular law puts the bulk of `W_eff`'s
/// eigenvalues in a disc of radius about `gain`:
/// - the paper's initialisation leaves one real outlier near
///   `N (1 - 2 P_inh) P_rec σ sqrt(2/π)` (σ = gain / sqrt(N P_rec); about 4.5), outside the
///   bulk;
/// - the balanced one has none: its inhibitory weights grow by about `(1 - P_inh) / P_inh`,
///   so its bulk widens to a radius of about `gain sqrt((1 - P_inh) / P_inh)` (3.0), and no
///   eigenvalue lies outside it.
///
/// Tolerance 15 % (the finite-N spread: seeds 1-3 measured within 12 %).
#[test]
fn balanced_initialisation_removes_the_outlier_eigenvalue() {
    let init = KimInit::default();
    let n = init.n;
    let p = init.p_inh;
    let sigma = init.gain / (n as f64 * init.p_rec).sqrt();
    let outlier_at =
        n as f64 * (1.0 - 2.0 * p) * init.p_rec * sigma * (2.0 / std::f64::consts::PI).sqrt();
    let balanced_bulk = init.gain * ((1.0 - p) / p).sqrt();
    let near = |a: f64, b: f64| (a / b - 1.0).abs() < 0.15;
    for seed in 1..=3 {
        let eig = |balanced: bool| {
            let (rnn, _) = KimRateRnn::<f64>::random(
                &KimInit {
                    balanced,
                    ..init.clone()
                },
                seed,
            )
            .unwrap();
            eigenvalues_by_modulus(n, rnn.connectivity().effective())
        };
        let plain = eig(false);
        let (outlier, bulk) = (plain[0], plain[1].0.hypot(plain[1].1));
        assert!(
            outlier.1.abs() < 1e-9 && near(outlier.0, outlier_at),
            "seed {seed}: outlier {outlier:?}, expected {outlier_at}"
        );
        assert!(near(bulk, init.gain), "seed {seed}: bulk {bulk}");
        let balanced = eig(true);
        let radius = balanced[0].0.hypot(balanced[0].1);
        assert!(
            near(radius, balanced_bulk),
            "seed {seed}: balanced radius {radius}, expected {balanced_bulk}"
        );
    }
}
