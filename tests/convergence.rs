//! Acceptance 2: convergence orders with fixed steps dt = 2^-k on problems with closed-form
//! solutions, in f64: Euler 1, Tsit5 5, Tsit5's embedded method 4 (fitted slope within 0.2),
//! and Tsit5's dense output of order >= 4 at mid-step points.

mod common;

use common::{fitted_slope, max_abs_diff};
use neurode_solvers::testing::{Gaussian, LinearSystem, SinY};
use neurode_solvers::{integrate, ButcherTableau, Stepper, VectorField, EULER, TSIT5};

/// Tsit5's embedded 4th-order method as a stand-alone tableau (not FSAL, no dense output).
fn tsit5_embedded() -> &'static ButcherTableau {
    let b: &'static [f64] = Box::leak(TSIT5.b_embedded().unwrap().into_boxed_slice());
    Box::leak(Box::new(ButcherTableau {
        name: "Tsit5-embedded",
        b,
        b_error: None,
        order: 4,
        error_order: None,
        fsal: false,
        dense: None,
        ..TSIT5
    }))
}

/// A problem: field, span, initial state, exact solution at t.
struct Problem<F: VectorField<Scalar = f64>> {
    name: &'static str,
    field: F,
    t1: f64,
    x0: Vec<f64>,
    exact: Box<dyn Fn(f64) -> Vec<f64>>,
}

fn problems() -> (Problem<LinearSystem<f64>>, Problem<SinY>, Problem<Gaussian>) {
    // Tsit5's error constant on linear problems is small, so its h^6 term dominates until
    // h is small: the rotation is fast enough (omega = 2) that dt = 2^-5..2^-8 is asymptotic.
    let rot = LinearSystem::rotation_decay(1.0, 2.0);
    let rot2 = rot.clone();
    (
        Problem {
            name: "rotation+decay",
            field: rot,
            t1: 2.0,
            x0: vec![1.0, 0.5],
            exact: Box::new(move |t| rot2.exact(t, &[1.0, 0.5])),
        },
        Problem {
            name: "y' = sin y",
            field: SinY,
            t1: 3.0,
            x0: vec![1.0],
            exact: Box::new(|t| vec![SinY::exact(t, 1.0)]),
        },
        Problem {
            name: "y' = -2ty",
            field: Gaussian,
            t1: 2.0,
            x0: vec![1.0],
            exact: Box::new(|t| vec![Gaussian::exact(0.0, t, 1.0)]),
        },
    )
}

/// Global error at t1 for each dt = 2^-k, k in ks.
fn end_errors<F: VectorField<Scalar = f64>>(
    p: &Problem<F>,
    stepper: Stepper,
    ks: &[i32],
) -> (Vec<f64>, Vec<f64>) {
    let mut dts = vec![];
    let mut errs = vec![];
    for &k in ks {
        let dt = 2f64.powi(-k);
        let sol = integrate(&p.field, (0.0, p.t1))
            .stepper(stepper)
            .fixed_dt(dt)
            .x0(p.x0.clone())
            .save_at(vec![p.t1])
            .run()
            .unwrap();
        dts.push(dt);
        errs.push(max_abs_diff(sol.state(0, 0), &(p.exact)(p.t1)));
    }
    (dts, errs)
}

fn check_order<F: VectorField<Scalar = f64>>(
    p: &Problem<F>,
    stepper: Stepper,
    ks: &[i32],
    order: f64,
) {
    let (dts, errs) = end_errors(p, stepper, ks);
    let slope = fitted_slope(&dts, &errs);
    println!(
        "{} / {}: errors {errs:.3?}, slope {slope:.3}",
        p.name,
        stepper.tableau().name
    );
    assert!(
        (slope - order).abs() <= 0.2,
        "{} with {}: fitted slope {slope} (want {order} ± 0.2), errors {errs:?}",
        p.name,
        stepper.tableau().name
    );
}

#[test]
fn euler_converges_with_order_1() {
    let (a, b, c) = problems();
    let ks = [6, 7, 8, 9, 10, 11];
    check_order(&a, Stepper::Euler, &ks, 1.0);
    check_order(&b, Stepper::Euler, &ks, 1.0);
    check_order(&c, Stepper::Euler, &ks, 1.0);
}

#[test]
fn tsit5_converges_with_order_5() {
    let (a, b, c) = problems();
    check_order(&a, Stepper::Tsit5, &[5, 6, 7, 8], 5.0);
    check_order(&b, Stepper::Tsit5, &[3, 4, 5, 6], 5.0);
    check_order(&c, Stepper::Tsit5, &[5, 6, 7, 8], 5.0);
}

#[test]
fn tsit5_embedded_converges_with_order_4() {
    let (a, b, c) = problems();
    let ks = [2, 3, 4, 5, 6];
    let emb = Stepper::Tableau(tsit5_embedded());
    check_order(&a, emb, &ks, 4.0);
    check_order(&b, emb, &ks, 4.0);
    check_order(&c, emb, &ks, 4.0);
}

#[test]
fn tableau_stepper_reproduces_builtin_tsit5() {
    // The generic stepper driven by a copy of the constant gives the same bits.
    let (a, _, _) = problems();
    let copy: &'static ButcherTableau = Box::leak(Box::new(TSIT5));
    let x1 = integrate(&a.field, (0.0, 1.0))
        .x0(a.x0.clone())
        .run()
        .unwrap();
    let x2 = integrate(&a.field, (0.0, 1.0))
        .stepper(Stepper::Tableau(copy))
        .x0(a.x0.clone())
        .run()
        .unwrap();
    assert_eq!(x1.final_states(), x2.final_states());
    assert_eq!(EULER.order, 1);
}

/// Max error at the midpoints of every step, fixed dt.
fn midpoint_errors<F: VectorField<Scalar = f64>>(
    p: &Problem<F>,
    ks: &[i32],
) -> (Vec<f64>, Vec<f64>) {
    let mut dts = vec![];
    let mut errs = vec![];
    for &k in ks {
        let dt = 2f64.powi(-k);
        let n = (p.t1 / dt).round() as usize;
        let mids: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) * dt).collect();
        let sol = integrate(&p.field, (0.0, p.t1))
            .fixed_dt(dt)
            .x0(p.x0.clone())
            .save_at(mids.clone())
            .run()
            .unwrap();
        let e = mids
            .iter()
            .enumerate()
            .map(|(i, &t)| max_abs_diff(sol.state(i, 0), &(p.exact)(t)))
            .fold(0.0, f64::max);
        dts.push(dt);
        errs.push(e);
    }
    (dts, errs)
}

#[test]
fn tsit5_dense_output_has_order_at_least_4_at_midpoints() {
    let (a, b, c) = problems();
    let ks = [2, 3, 4, 5, 6];
    for (name, (dts, errs)) in [
        (a.name, midpoint_errors(&a, &ks)),
        (b.name, midpoint_errors(&b, &ks)),
        (c.name, midpoint_errors(&c, &ks)),
    ] {
        let slope = fitted_slope(&dts, &errs);
        println!("dense {name}: errors {errs:.3?}, slope {slope:.3}");
        assert!(
            slope >= 3.8,
            "{name}: dense-output slope {slope}, errors {errs:?}"
        );
    }
}

#[test]
fn euler_dense_output_is_linear_interpolation() {
    let (a, _, _) = problems();
    let sol = integrate(&a.field, (0.0, 1.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.25)
        .x0(a.x0.clone())
        .save_at(vec![0.25, 0.375, 0.5])
        .run()
        .unwrap();
    for i in 0..2 {
        let mid = 0.5 * (sol.state(0, 0)[i] + sol.state(2, 0)[i]);
        assert!((sol.state(1, 0)[i] - mid).abs() < 1e-15);
    }
}
