//! Acceptance 3 (adaptive sanity), 5 (breakpoints) and 6 (failure behaviour and invalid
//! options).

mod common;

use common::max_abs_diff;
use neurode_solvers::testing::{LeakyTanhRnn, LinearSystem, Quadratic, SinY};
use neurode_solvers::{integrate, FailureKind, SolveError, Status, Stepper};

/// Global error over save times, divided by the tolerance, and the accepted steps.
fn error_per_tol(tol: f64) -> (f64, f64, usize, usize) {
    let rot = LinearSystem::<f64>::rotation_decay(0.2, 1.5);
    let ts: Vec<f64> = (1..=20).map(|i| i as f64 * 0.5).collect();
    let s = integrate(&rot, (0.0, 10.0))
        .tolerances(tol, tol)
        .x0(vec![1.0, 0.0])
        .save_at(ts.clone())
        .run()
        .unwrap();
    let e_rot = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| max_abs_diff(s.state(i, 0), &rot.exact(t, &[1.0, 0.0])))
        .fold(0.0, f64::max);
    let s2 = integrate(&SinY, (0.0, 5.0))
        .tolerances(tol, tol)
        .save_at(vec![5.0])
        .run()
        .unwrap();
    let e_sin = (s2.state(0, 0)[0] - SinY::exact(5.0, 1.0)).abs();
    (
        e_rot / tol,
        e_sin / tol,
        s.trial_stats(0).accepted,
        s2.trial_stats(0).accepted,
    )
}

#[test]
fn global_error_tracks_tolerance_and_steps_grow() {
    let tols: Vec<f64> = (3..=10).map(|k| 10f64.powi(-k)).collect();
    let rows: Vec<_> = tols.iter().map(|&t| error_per_tol(t)).collect();
    for (t, r) in tols.iter().zip(&rows) {
        println!(
            "tol {t:.0e}: err/tol rotation {:.3}, sin {:.3}; steps {} / {}",
            r.0, r.1, r.2, r.3
        );
    }
    for (name, ratios) in [
        ("rotation", rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        ("sin y", rows.iter().map(|r| r.1).collect::<Vec<_>>()),
    ] {
        let hi = ratios.iter().cloned().fold(0.0, f64::max);
        let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
        // Within a factor 20 over 1e-3..1e-10. The default I controller's loosest
        // solve of sin y takes 4 steps (err/tol 3.3, against 0.2 at 1e-4); the PI
        // setting (`PiController::pi`) spans a factor 10.
        assert!(
            hi / lo <= 20.0,
            "{name}: err/tol spans {lo:e}..{hi:e}, more than a factor 20"
        );
        assert!(hi <= 10.0, "{name}: error exceeds 10x tolerance ({hi})");
    }
    for w in rows.windows(2) {
        assert!(
            w[1].2 > w[0].2,
            "rotation steps must grow as tol tightens: {rows:?}"
        );
        assert!(
            w[1].3 > w[0].3,
            "sin y steps must grow as tol tightens: {rows:?}"
        );
    }
}

fn stimulus_rnn() -> LeakyTanhRnn<f64> {
    LeakyTanhRnn::<f64>::random(50, 3, 1.2, 1.0, 11).with_step_inputs(1, 15.0, 2.0, 12)
}

#[test]
fn breakpoints_remove_the_rejections_caused_by_a_jump() {
    let rnn = stimulus_rnn();
    let x0: Vec<f64> = (0..50).map(|i| 0.5 * ((i as f64) * 0.7).sin()).collect();
    let run = |use_bp: bool| {
        integrate(&rnn, (0.0, 40.0))
            .x0(x0.clone())
            .use_discontinuities(use_bp)
            .record_steps(true)
            .run()
            .unwrap()
    };
    let with = run(true);
    let without = run(false);
    let straddles = |s: &neurode_solvers::StepRecord| s.t < 15.0 && s.t + s.dt > 15.0;
    let log_with = with.step_log(0).unwrap();
    let log_without = without.step_log(0).unwrap();
    // Rejections attributable to the jump: rejected steps that cross t = 15, or that start
    // in the transient right after it (before the next accepted step).
    let attributable = |log: &[neurode_solvers::StepRecord]| {
        let mut n = 0;
        let mut after_jump = false;
        for s in log {
            if straddles(s) && !s.accepted {
                n += 1;
            }
            if s.t >= 15.0 && !after_jump {
                after_jump = true;
            }
            if after_jump && s.t < 16.0 && !s.accepted {
                n += 1;
            }
            if after_jump && s.accepted {
                after_jump = false;
            }
        }
        n
    };
    let (a_with, a_without) = (attributable(log_with), attributable(log_without));
    let (r_with, r_without) = (
        with.trial_stats(0).rejected,
        without.trial_stats(0).rejected,
    );
    println!(
        "with breakpoint: {} accepted, {r_with} rejected ({a_with} at the jump); \
         without: {} accepted, {r_without} rejected ({a_without} at the jump)",
        with.trial_stats(0).accepted,
        without.trial_stats(0).accepted
    );
    assert!(
        log_with.iter().all(|s| !straddles(s)),
        "a step crossed the breakpoint"
    );
    assert!(
        log_with.iter().any(|s| s.t == 15.0),
        "no step starts exactly at the breakpoint"
    );
    assert_eq!(a_with, 0, "rejections at the jump despite the breakpoint");
    assert!(
        a_without > 0,
        "the solve without breakpoints should stumble on the jump"
    );
    assert!(
        r_with < r_without,
        "{r_with} rejections with vs {r_without} without breakpoint"
    );
    // Both are accurate: same answer at t1 to the tolerance.
    let d = max_abs_diff(with.final_state(0), without.final_state(0));
    assert!(d < 1e-4, "solutions differ by {d}");
}

#[test]
fn fixed_steps_land_on_breakpoints_too() {
    let rnn = LeakyTanhRnn::<f64>::random(10, 2, 1.0, 1.0, 5).with_step_inputs(1, 1.05, 1.0, 6);
    let s = integrate(&rnn, (0.0, 2.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.1)
        .save_steps(true)
        .run()
        .unwrap();
    let ts = s.step_times(0).unwrap();
    assert!(ts.contains(&1.05), "{ts:?}");
    assert!(
        ts.iter().any(|&t| (t - 1.1).abs() < 1e-12),
        "grid resumes after the breakpoint"
    );
    assert_eq!(*ts.last().unwrap(), 2.0);
    assert_eq!(ts.len(), 1 + 21);
}

#[test]
fn blow_up_returns_structured_error_with_partial_solution() {
    // The computed solution blows up where *its* singularity is: 1 + O(tol). At default
    // tolerances that is t = 1 + 7.5e-7 (the global error delays it); at 1e-10 it is just
    // before 1. Either way the failure is structured and the partial solution is kept.
    let at_default = integrate(&Quadratic, (0.0, 2.0)).run().unwrap_err();
    let t_default = at_default.failure().unwrap().t;
    assert!(
        (t_default - 1.0).abs() < 1e-5,
        "default tolerances failed at t = {t_default}"
    );
    let err = integrate(&Quadratic, (0.0, 2.0))
        .tolerances(1e-10, 1e-10)
        .save_at(vec![0.0, 0.5, 0.9, 1.5, 2.0])
        .run()
        .unwrap_err();
    println!("{err}");
    let failure = err.failure().expect("a trial failure").clone();
    assert_eq!(failure.trial, 0);
    assert!(
        failure.t < 1.0 && failure.t > 1.0 - 1e-9,
        "failed at t = {}",
        failure.t
    );
    assert!(failure.dt > 0.0 && failure.dt < 1e-6, "dt = {}", failure.dt);
    assert!(matches!(
        failure.kind,
        FailureKind::StepSizeUnderflow { .. } | FailureKind::MaxSteps { .. }
    ));
    let msg = err.to_string();
    assert!(msg.contains("trial 0") && msg.contains("t = "), "{msg}");
    let partial = err.partial().unwrap();
    assert!(matches!(partial.status()[0], Status::Failed(_)));
    assert_eq!(partial.saved(0), 3, "saves before the blow-up are kept");
    // x(t) = 1 / (1 - t).
    assert!((partial.state(1, 0)[0] - 2.0).abs() < 1e-8);
    assert!((partial.state(2, 0)[0] - 10.0).abs() < 1e-7);
    assert!(partial.state(3, 0)[0].is_nan());
    let tf = partial.t_final(0);
    let xf = partial.final_state(0)[0];
    assert!(
        tf < 1.0 && xf.is_finite() && xf > 1e6,
        "last good state x({tf}) = {xf}"
    );
    // With allow_failures the same solve is Ok and says why.
    let sol = integrate(&Quadratic, (0.0, 2.0))
        .allow_failures(true)
        .run()
        .unwrap();
    assert!(!sol.is_success());
}

#[test]
fn max_steps_is_a_structured_failure() {
    let err = integrate(&SinY, (0.0, 100.0))
        .max_steps(5)
        .run()
        .unwrap_err();
    match err.failure().unwrap().kind {
        FailureKind::MaxSteps { max_steps } => assert_eq!(max_steps, 5),
        ref k => panic!("unexpected {k:?}"),
    }
    assert!(err.to_string().contains("max_steps"), "{err}");
}

#[test]
fn fixed_steps_are_not_capped_by_the_adaptive_default() {
    // More fixed steps than the adaptive budget: runs to the end unless capped explicitly.
    let n = neurode_solvers::DEFAULT_MAX_STEPS + 10;
    let dt = 1.0 / n as f64;
    let sol = integrate(&SinY, (0.0, 1.0))
        .stepper(Stepper::Euler)
        .fixed_dt(dt)
        .run()
        .unwrap();
    assert_eq!(sol.trial_stats(0).accepted, n);
    let err = integrate(&SinY, (0.0, 1.0))
        .stepper(Stepper::Euler)
        .fixed_dt(dt)
        .max_steps(100)
        .run()
        .unwrap_err();
    assert!(matches!(
        err.failure().unwrap().kind,
        FailureKind::MaxSteps { max_steps: 100 }
    ));
}

#[test]
fn euler_non_finite_state_is_reported_with_its_index() {
    let err = integrate(&Quadratic, (0.0, 2.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.25)
        .x0(vec![1.0, 100.0])
        .run()
        .unwrap_err();
    // Trial 1 overflows first under Euler (x grows like x^(2^n)); trial 0 is fine until later.
    let f = err.failure().unwrap();
    println!("{err}");
    assert!(
        matches!(f.kind, FailureKind::NonFinite { index: 0 }),
        "{f:?}"
    );
    assert!(f.t > 0.0 && f.dt == 0.25);
}

fn option_of(e: SolveError<f64>) -> (&'static str, String) {
    match e {
        SolveError::InvalidOption { option, .. } => {
            let msg = e.to_string();
            (option, msg)
        }
        other => panic!("expected an invalid option, got {other}"),
    }
}

#[test]
fn invalid_options_are_rejected_before_the_first_step() {
    let rot = LinearSystem::<f64>::rotation_decay(0.1, 1.0);
    let cases: Vec<(&str, SolveError<f64>)> = vec![
        (
            "x0",
            integrate(&rot, (0.0, 1.0))
                .x0(vec![1.0, f64::NAN])
                .run()
                .unwrap_err(),
        ),
        (
            "x0",
            integrate(&rot, (0.0, 1.0))
                .x0(vec![1.0, 2.0, 3.0])
                .run()
                .unwrap_err(),
        ),
        (
            "x0",
            integrate(&rot, (0.0, 1.0)).x0(vec![]).run().unwrap_err(),
        ),
        (
            "rtol",
            integrate(&rot, (0.0, 1.0)).rtol(0.0).run().unwrap_err(),
        ),
        (
            "rtol",
            integrate(&rot, (0.0, 1.0)).rtol(-1e-6).run().unwrap_err(),
        ),
        (
            "rtol",
            integrate(&rot, (0.0, 1.0))
                .rtol(f64::NAN)
                .run()
                .unwrap_err(),
        ),
        (
            "rtol",
            integrate(&rot, (0.0, 1.0)).rtol(1e-20).run().unwrap_err(),
        ),
        (
            "atol",
            integrate(&rot, (0.0, 1.0)).atol(-1.0).run().unwrap_err(),
        ),
        ("t_span", integrate(&rot, (1.0, 0.0)).run().unwrap_err()),
        ("t_span", integrate(&rot, (1.0, 1.0)).run().unwrap_err()),
        (
            "t_span",
            integrate(&rot, (0.0, f64::INFINITY)).run().unwrap_err(),
        ),
        (
            "stepper",
            integrate(&rot, (0.0, 1.0))
                .stepper(Stepper::Euler)
                .run()
                .unwrap_err(),
        ),
        (
            "fixed_dt",
            integrate(&rot, (0.0, 1.0)).fixed_dt(0.0).run().unwrap_err(),
        ),
        (
            "fixed_dt",
            integrate(&rot, (0.0, 1.0))
                .fixed_dt(-0.1)
                .run()
                .unwrap_err(),
        ),
        (
            "dt0",
            integrate(&rot, (0.0, 1.0)).dt0(0.0).run().unwrap_err(),
        ),
        (
            "dt_max",
            integrate(&rot, (0.0, 1.0)).dt_max(-1.0).run().unwrap_err(),
        ),
        (
            "dt_min",
            integrate(&rot, (0.0, 1.0))
                .dt_min(1.0)
                .dt_max(0.5)
                .run()
                .unwrap_err(),
        ),
        (
            "max_steps",
            integrate(&rot, (0.0, 1.0)).max_steps(0).run().unwrap_err(),
        ),
        (
            "save_at",
            integrate(&rot, (0.0, 1.0))
                .save_at(vec![0.5, 2.0])
                .run()
                .unwrap_err(),
        ),
        (
            "save_at",
            integrate(&rot, (0.0, 1.0))
                .save_at(vec![0.5, 0.2])
                .run()
                .unwrap_err(),
        ),
    ];
    for (want, e) in cases {
        let (option, msg) = option_of(e);
        println!("{msg}");
        assert_eq!(option, want, "{msg}");
        assert!(msg.contains(want), "message must name the option: {msg}");
    }
    // A field bound to 3 trials refuses an x0 for 2.
    let rnn = LeakyTanhRnn::<f64>::random(4, 1, 1.0, 1.0, 1).with_step_inputs(3, 1.0, 1.0, 2);
    let (option, msg) = option_of(
        integrate(&rnn, (0.0, 1.0))
            .x0(vec![0.0; 8])
            .run()
            .unwrap_err(),
    );
    assert_eq!(option, "x0");
    assert!(msg.contains("3 trials"), "{msg}");
    // The NaN message says where.
    let (_, msg) = option_of(
        integrate(&rot, (0.0, 1.0))
            .x0(vec![0.0, 0.0, 1.0, f64::NAN])
            .run()
            .unwrap_err(),
    );
    assert!(msg.contains("trial 1, component 1"), "{msg}");
}

#[test]
fn progress_reports_monotone_time_and_ends_at_t1() {
    let rnn = stimulus_rnn();
    let mut seen = Vec::new();
    integrate(&rnn, (0.0, 20.0))
        .progress(|p| seen.push((p.t, p.fraction(), p.running)))
        .run()
        .unwrap();
    assert!(seen.windows(2).all(|w| w[1].0 >= w[0].0));
    let last = seen.last().unwrap();
    assert_eq!((last.0, last.1, last.2), (20.0, 1.0, 0));
}

#[test]
fn f32_solves_with_f32_defaults() {
    let rot = LinearSystem::<f32>::rotation_decay(0.2, 1.5);
    let s = integrate(&rot, (0.0, 5.0))
        .x0(vec![1.0f32, 0.0])
        .run()
        .unwrap();
    let exact = rot.exact(5.0, &[1.0, 0.0]);
    let got: Vec<f64> = s.final_state(0).iter().map(|&v| v as f64).collect();
    let e = max_abs_diff(&got, &exact);
    assert!(e < 1e-3, "f32 error {e}");
    let rnn = LeakyTanhRnn::<f32>::random(30, 2, 1.2, 1.0, 1).with_step_inputs(4, 5.0, 1.0, 2);
    let s = integrate(&rnn, (0.0, 20.0)).run().unwrap();
    assert!(s.is_success());
    let s = integrate(&rnn, (0.0, 20.0))
        .stepper(Stepper::Euler)
        .fixed_dt(0.1)
        .run()
        .unwrap();
    assert_eq!(s.trial_stats(0).accepted, 200);
}
