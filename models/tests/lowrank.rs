//! The low-rank RNN: analytic VJPs/JVP against finite differences of the right-hand side
//! (dot-product tests), the reference's 3-step Euler check, gradients through the solver,
//! and construction errors.

use neurode_models::{LowRank, LowRankInit, LowRankRnn, ModelError, PiecewiseConstant, Readout};
use neurode_solvers::{integrate, Adjoint, JvpState, Stepper, VectorField, VjpParams, VjpState};
use neurode_solvers::{Columns, Normal};

fn small(n: usize, r: usize, batch: usize, seed: u64) -> LowRankRnn<f64> {
    let init = LowRankInit {
        n,
        rank: r,
        g: 1.2,
        m_std: 3.0,
        n_std: 3.0,
        ..LowRankInit::default()
    };
    let (mut rnn, _) = LowRankRnn::<f64>::random(&init, seed).unwrap();
    let mut rng = Normal::new(seed + 100);
    let inputs = (0..batch)
        .map(|_| {
            let v: Vec<f64> = (0..8).map(|_| rng.sample()).collect();
            PiecewiseConstant::new(4, vec![0.5], v).unwrap()
        })
        .collect();
    rnn.set_inputs(inputs).unwrap();
    rnn
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn rhs(f: &LowRankRnn<f64>, cols: Columns<'_, f64>, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    let mut ws = f.workspace(cols.len());
    f.rhs(cols, x, &mut out, &mut ws);
    out
}

/// `<u, J_x v>` by central differences equals `<J_xᵀ u, v>` and `<u, jvp(v)>`; `<u, J_θ p>`
/// by central differences equals `<J_θᵀ u, p>`. Times straddle the input jump; the calls are
/// wide (two columns per trial), as the adjoint makes them.
#[test]
fn vjps_pass_the_dot_product_test() {
    for (n, r, batch, seed) in [(7, 2, 3, 1), (12, 1, 2, 2), (5, 0, 1, 3), (30, 3, 4, 4)] {
        let f = small(n, r, batch, seed);
        let cols = 2 * batch;
        let mut rng = Normal::new(seed + 7);
        let t: Vec<f64> = (0..cols)
            .map(|c| if c % 3 == 0 { 0.2 } else { 0.9 })
            .collect();
        // Column c is trial c % batch (stages side by side, as the adjoint calls).
        let trials: Vec<usize> = (0..cols).map(|c| c % batch).collect();
        let t = Columns::with_trials(&t, &trials);
        let x: Vec<f64> = (0..n * cols).map(|_| rng.sample()).collect();
        let u: Vec<f64> = (0..n * cols).map(|_| rng.sample()).collect();
        let v: Vec<f64> = (0..n * cols).map(|_| rng.sample()).collect();
        let eps = 1e-6;
        let shift = |s: f64| -> Vec<f64> { x.iter().zip(&v).map(|(a, b)| a + s * b).collect() };
        let fd =
            (dot(&u, &rhs(&f, t, &shift(eps))) - dot(&u, &rhs(&f, t, &shift(-eps)))) / (2.0 * eps);
        let vjp = dot(&f.vjp_state_alloc(t, &x, &u), &v);
        let mut jv = vec![0.0; n * cols];
        f.jvp_state(t, &x, &v, &mut jv, &mut f.workspace(cols));
        let jvp = dot(&u, &jv);
        let scale = fd.abs().max(1.0);
        assert!(
            (fd - vjp).abs() <= 1e-7 * scale,
            "state n={n}: fd {fd} vjp {vjp}"
        );
        assert!((jvp - vjp).abs() <= 1e-12 * scale, "jvp {jvp} vs vjp {vjp}");

        let mut theta = vec![0.0; f.n_params()];
        f.params(&mut theta);
        let p: Vec<f64> = theta.iter().map(|_| rng.sample()).collect();
        let at = |s: f64| {
            let mut g = f.clone();
            g.set_params(
                &theta
                    .iter()
                    .zip(&p)
                    .map(|(a, b)| a + s * b)
                    .collect::<Vec<_>>(),
            );
            dot(&u, &rhs(&g, t, &x))
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        let vjp = dot(&f.vjp_params_alloc(t, &x, &u), &p);
        assert!(
            (fd - vjp).abs() <= 1e-7 * fd.abs().max(1.0),
            "params n={n} r={r}: fd {fd} vjp {vjp}"
        );
        let views = f.param_views();
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["M", "N", "B"]);
        assert_eq!(f.n_params(), 2 * n * r + 4 * n);
    }
}

/// The reference's noise-free Euler check (N = 2, dt = 0.1, J = [[0.2, 0.1], [0, 0.3]]).
#[test]
fn three_euler_steps_match_the_reference() {
    let j = vec![0.2, 0.0, 0.1, 0.3]; // column-major
    let b = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.5];
    let conn = LowRank::new(2, 0, 1.0, j, vec![], vec![]).unwrap();
    let mut rnn = LowRankRnn::new(conn, 1.0, 4, b).unwrap();
    rnn.set_inputs(vec![PiecewiseConstant::constant(vec![
        1.2, -1.2, 0.08, -0.14,
    ])])
    .unwrap();
    let readout = Readout::new(vec![1.0, -1.0], 0.0).unwrap();
    let sol = integrate(&rnn, (0.0, 0.3))
        .stepper(Stepper::Euler)
        .fixed_dt(0.1)
        .save_at(vec![0.1, 0.2, 0.3])
        .run()
        .unwrap();
    let want_x: [[f64; 2]; 3] = [
        [0.124, -0.127],
        [0.236804151, -0.2450896475],
        [0.33937026, -0.3547896028],
    ];
    let want_y: [f64; 3] = [0.1248449628, 0.2363861055, 0.3337657096];
    for k in 0..3 {
        let x = sol.state(k, 0);
        for i in 0..2 {
            assert!((x[i] - want_x[k][i]).abs() < 1e-9, "step {k}: {x:?}");
        }
        let y = readout.output(x);
        assert!((y - want_y[k]).abs() < 1e-9, "step {k}: y {y}");
    }
}

/// The discrete adjoint through a low-rank RNN (Euler) against central differences.
#[test]
fn gradient_through_the_solver_matches_finite_differences() {
    let f = small(10, 2, 3, 5);
    let mut rng = Normal::new(9);
    let save = vec![0.4, 1.0, 2.0];
    let c: Vec<f64> = (0..3 * 30).map(|_| rng.sample()).collect();
    let loss = |g: &LowRankRnn<f64>| -> f64 {
        let sol = integrate(g, (0.0, 2.0))
            .stepper(Stepper::Euler)
            .fixed_dt(0.05)
            .save_at(save.clone())
            .run()
            .unwrap();
        dot(sol.states(), &c)
    };
    let (_, tape) = integrate(&f, (0.0, 2.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.05)
        .save_at(save.clone())
        .adjoint(Adjoint::Discrete)
        .run_with_gradient()
        .unwrap();
    let grads = tape.backward(&c).unwrap();
    let mut theta = vec![0.0; f.n_params()];
    f.params(&mut theta);
    let mut worst = 0.0f64;
    let scale = grads.params.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for k in (0..theta.len()).step_by(7) {
        let at = |s: f64| {
            let mut g = f.clone();
            let mut th = theta.clone();
            th[k] += s;
            g.set_params(&th);
            loss(&g)
        };
        let fd = (at(1e-5) - at(-1e-5)) / 2e-5;
        worst = worst.max((fd - grads.params[k]).abs() / scale);
    }
    println!("low-rank RNN, Euler: worst relative error {worst:.2e}");
    assert!(worst < 1e-7, "{worst:e}");
    assert!(grads.param("M").is_some() && grads.param("B").is_some());
}

/// f32 and f64 agree on a short solve.
#[test]
fn f32_follows_f64() {
    let init = LowRankInit {
        n: 40,
        ..LowRankInit::default()
    };
    let (mut a, _) = LowRankRnn::<f64>::random(&init, 3).unwrap();
    let (mut b, _) = LowRankRnn::<f32>::random(&init, 3).unwrap();
    let u = vec![1.2, 0.0, 0.08, -0.14];
    a.set_inputs(vec![PiecewiseConstant::constant(u.clone())])
        .unwrap();
    b.set_inputs(vec![PiecewiseConstant::constant(
        u.iter().map(|&v| v as f32).collect(),
    )])
    .unwrap();
    let sa = integrate(&a, (0.0, 20.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.1)
        .run()
        .unwrap();
    let sb = integrate(&b, (0.0, 20.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.1)
        .run()
        .unwrap();
    let d = sa
        .final_states()
        .iter()
        .zip(sb.final_states())
        .fold(0.0f64, |m, (x, y)| m.max((x - *y as f64).abs()));
    assert!(d < 1e-4, "{d}");
}

#[test]
fn bad_construction_is_an_error() {
    let e = LowRankRnn::<f64>::random(
        &LowRankInit {
            n: 0,
            ..LowRankInit::default()
        },
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("`N` = 0"), "{e}");
    let e = LowRank::<f64>::new(3, 1, 1.0, vec![0.0; 8], vec![0.0; 3], vec![0.0; 3]).unwrap_err();
    assert!(
        e.to_string().contains("C has 8 entries but must be 3 x 3"),
        "{e}"
    );
    let conn = LowRank::<f64>::new(2, 1, 1.0, vec![0.0; 4], vec![0.0; 2], vec![0.0; 2]).unwrap();
    let e = LowRankRnn::new(conn.clone(), -1.0, 1, vec![0.0; 2]).unwrap_err();
    assert!(matches!(e, ModelError::Invalid { name: "tau", .. }), "{e}");
    let mut rnn = LowRankRnn::new(conn, 1.0, 2, vec![0.0; 4]).unwrap();
    let e = rnn
        .set_inputs(vec![PiecewiseConstant::constant(vec![1.0; 3])])
        .unwrap_err();
    assert!(e.to_string().contains("trial 0 has 3 channels"), "{e}");
    let e =
        LowRank::<f64>::new(2, 1, 1.0, vec![f64::NAN; 4], vec![0.0; 2], vec![0.0; 2]).unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
}
