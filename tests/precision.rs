//! The tolerance floor of each precision, on benchmark problem P1 (the N = 500 low-rank
//! tanh RNN, batch 32, `benches/problems/mod.rs`): in f32 at rtol 1e-6 the round-off of the
//! right-hand side dominates the error estimate, the controller takes several times the
//! steps f64 needs for the same tolerance, and the solve says so
//! ([`Warning::ToleranceBelowPrecision`]); at the documented floor (3e-5, where f32 takes
//! within 30 % of the steps of f64) and at the f32 defaults it does not. Measured with the
//! default I controller (`cargo bench --bench grid -- --work-precision --sizes 500
//! --trials 32 --precisions f64,f32 --rtols 1e-6,1e-5,3e-5,1e-4`, most steps of a trial):
//! f32 takes 1e-6 +86 %, 1e-5 +3 %, 3e-5 +1 %, 1e-4 +1 % (with the earlier PI default:
//! 1e-5 +48 %, 2e-5 +25 %, 3e-5 +16 %, 1e-4 +6 %).

use neurode_solvers::{integrate, Real, Solution, Warning};

#[path = "../benches/problems/mod.rs"]
#[allow(dead_code)]
mod problems;

fn p1<T: Real>(rtol: Option<f64>) -> Solution<T> {
    let (m, x0) = problems::problem::<T>();
    let mut b = integrate(&m, (T::zero(), T::from_f64(problems::T1)))
        .x0(x0)
        .save_at(problems::save_times::<T>());
    if let Some(r) = rtol {
        b = b.tolerances(T::from_f64(r), T::from_f64(1e-8));
    }
    b.run().unwrap()
}

fn mean_steps<T: Real>(s: &Solution<T>) -> f64 {
    (0..s.batch())
        .map(|b| s.trial_stats(b).accepted as f64)
        .sum::<f64>()
        / s.batch() as f64
}

#[test]
fn f32_below_its_tolerance_floor_is_reported() {
    problems::check_generator();
    let f64_tight = p1::<f64>(Some(1e-6));
    let f32_tight = p1::<f32>(Some(1e-6));
    let (a, b) = (mean_steps(&f64_tight), mean_steps(&f32_tight));
    println!("rtol 1e-6: f64 {a:.1} steps per trial, f32 {b:.1}");
    // The floor is real: f32 stalls at 1e-6 (1.8x the steps of f64, on average) ...
    assert!(b > 1.5 * a, "f32 {b} vs f64 {a}");
    // ... and says so, naming the tolerance, the floor and the way out.
    assert!(
        f64_tight.warnings().is_empty(),
        "{:?}",
        f64_tight.warnings()
    );
    let w = f32_tight.warnings();
    assert!(
        matches!(w, [Warning::ToleranceBelowPrecision { scalar: "f32", floor, .. }] if *floor == f32::ROUNDOFF_RTOL),
        "{w:?}"
    );
    let msg = w[0].to_string();
    assert!(msg.contains("rtol >= 3e-5") && msg.contains("f64"), "{msg}");

    // At the floor, f32 takes about the steps of f64 (no warning), and so at its defaults.
    let (f64_floor, f32_floor) = (p1::<f64>(Some(3e-5)), p1::<f32>(Some(3e-5)));
    let (a, b) = (mean_steps(&f64_floor), mean_steps(&f32_floor));
    println!("rtol 3e-5: f64 {a:.1} steps per trial, f32 {b:.1}");
    assert!(b < 1.3 * a, "f32 {b} vs f64 {a} at the floor");
    assert!(
        f32_floor.warnings().is_empty(),
        "{:?}",
        f32_floor.warnings()
    );
    let defaults = p1::<f32>(None);
    assert!(defaults.warnings().is_empty(), "{:?}", defaults.warnings());
}
