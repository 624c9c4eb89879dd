//! Gradients through the solver (discrete adjoint, checkpointing, interpolating adjoint)
//! against finite differences of the solver itself.

mod common;

use neurode_solvers::testing::{LeakyTanhRnn, LinearSystem, Normal};
use neurode_solvers::{
    integrate, Adjoint, ButcherTableau, Checkpoints, Columns, Stepper, VectorField, VjpParams,
};
use proptest::prelude::*;

type Rnn = LeakyTanhRnn<f64>;

#[derive(Clone, Copy)]
enum How {
    Euler(f64),
    Tsit5(f64),
}

/// `L = <c, saved states>` of a solve of `field` from `x0`.
fn loss(field: &Rnn, x0: &[f64], how: How, t1: f64, save: &[f64], c: &[f64]) -> f64 {
    let b = integrate(field, (0.0, t1))
        .x0(x0.to_vec())
        .save_at(save.to_vec());
    let b = match how {
        How::Euler(dt) => b.stepper(Stepper::Euler).fixed_dt(dt),
        How::Tsit5(tol) => b.tolerances(tol, tol),
    };
    let sol = b.run().unwrap();
    sol.states().iter().zip(c).map(|(a, b)| a * b).sum()
}

/// `(dL/dθ, dL/dx0)` from the adjoint.
fn adjoint(
    field: &Rnn,
    x0: &[f64],
    how: How,
    t1: f64,
    save: &[f64],
    c: &[f64],
    (mode, ck): (Adjoint, Checkpoints),
) -> (Vec<f64>, Vec<f64>) {
    let b = integrate(field, (0.0, t1))
        .x0(x0.to_vec())
        .save_at(save.to_vec())
        .adjoint(mode)
        .checkpoints(ck);
    let b = match how {
        How::Euler(dt) => b.stepper(Stepper::Euler).fixed_dt(dt),
        How::Tsit5(tol) => b.tolerances(tol, tol),
    };
    let (_, tape) = b.run_with_gradient().unwrap();
    let g = tape.backward(c).unwrap();
    (g.params, g.x0)
}

fn setup(n: usize, batch: usize, seed: u64) -> (Rnn, Vec<f64>, Normal) {
    let rnn = Rnn::random(n, 2, 1.4, 1.0, seed).with_step_inputs(batch, 0.7, 1.0, seed + 1);
    let mut rng = Normal::new(seed + 2);
    let x0 = (0..n * batch).map(|_| 0.5 * rng.sample()).collect();
    (rnn, x0, rng)
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    common::max_abs_diff(a, b) / scale
}

/// Central differences of the loss along every parameter and initial-state component.
fn fd_full(
    field: &Rnn,
    x0: &[f64],
    how: How,
    t1: f64,
    save: &[f64],
    c: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut theta = vec![0.0; field.n_params()];
    field.params(&mut theta);
    let gp = (0..theta.len())
        .map(|i| {
            let mut f = field.clone();
            let mut th = theta.clone();
            th[i] += eps;
            f.set_params(&th);
            let lp = loss(&f, x0, how, t1, save, c);
            th[i] -= 2.0 * eps;
            f.set_params(&th);
            (lp - loss(&f, x0, how, t1, save, c)) / (2.0 * eps)
        })
        .collect();
    let gx = (0..x0.len())
        .map(|i| {
            let mut x = x0.to_vec();
            x[i] += eps;
            let lp = loss(field, &x, how, t1, save, c);
            x[i] -= 2.0 * eps;
            (lp - loss(field, &x, how, t1, save, c)) / (2.0 * eps)
        })
        .collect();
    (gp, gx)
}

/// Discrete adjoint against central differences of every parameter and initial-state
/// component (step `eps`) on a random `n`-unit field with `batch` trials; returns the
/// relative errors `(params, x0)`.
fn adjoint_vs_fd(
    n: usize,
    batch: usize,
    seed: u64,
    how: How,
    save: &[f64],
    eps: f64,
) -> (f64, f64) {
    let (rnn, x0, mut rng) = setup(n, batch, seed);
    let c: Vec<f64> = (0..save.len() * n * batch).map(|_| rng.sample()).collect();
    let t1 = save[save.len() - 1];
    let grad = (Adjoint::Discrete, Checkpoints::default());
    let (gp, gx) = adjoint(&rnn, &x0, how, t1, save, &c, grad);
    let (fp, fx) = fd_full(&rnn, &x0, how, t1, save, &c, eps);
    (rel_err(&gp, &fp), rel_err(&gx, &fx))
}

#[test]
fn euler_discrete_adjoint_equals_finite_differences() {
    let (ep, ex) = adjoint_vs_fd(5, 2, 1, How::Euler(0.1), &[0.5, 1.0, 2.5, 3.0], 1e-5);
    println!("Euler: relative error params {ep:.2e}, x0 {ex:.2e}");
    assert!(ep <= 1e-7 && ex <= 1e-7, "params {ep:e}, x0 {ex:e}");
}

#[test]
fn tsit5_discrete_adjoint_matches_finite_differences_at_tight_tolerance() {
    // Saves inside steps (dense output), at the breakpoint and at t1.
    let save = [0.33, 0.7, 1.9, 3.0];
    let (ep, ex) = adjoint_vs_fd(4, 2, 5, How::Tsit5(1e-10), &save, 1e-4);
    println!("Tsit5 1e-10: relative error params {ep:.2e}, x0 {ex:.2e}");
    assert!(ep <= 1e-6 && ex <= 1e-6, "params {ep:e}, x0 {ex:e}");
}

/// A field that declares every step time of a previous solve as a breakpoint, so that a
/// fixed-step solve with one huge `dt` retraces exactly that step grid: the discrete map
/// with the step sizes frozen, which is what the discrete adjoint differentiates.
struct Frozen<'a> {
    inner: &'a Rnn,
    grid: &'a [Vec<f64>],
}

impl VectorField for Frozen<'_> {
    type Scalar = f64;
    type Workspace = <Rnn as VectorField>::Workspace;
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn batch(&self) -> Option<usize> {
        self.inner.batch()
    }
    fn workspace(&self, batch: usize) -> Self::Workspace {
        self.inner.workspace(batch)
    }
    fn rhs(&self, cols: Columns<'_, f64>, x: &[f64], dxdt: &mut [f64], ws: &mut Self::Workspace) {
        self.inner.rhs(cols, x, dxdt, ws)
    }
    fn discontinuities(&self, trial: usize, span: (f64, f64), out: &mut Vec<f64>) {
        out.extend(
            self.grid[trial]
                .iter()
                .filter(|&&t| t > span.0 && t < span.1),
        );
    }
}

/// `L = <c, saved states>` of a Tsit5 solve that steps exactly through `grid`.
fn frozen_loss(
    field: &Rnn,
    grid: &[Vec<f64>],
    x0: &[f64],
    t1: f64,
    save: &[f64],
    c: &[f64],
) -> f64 {
    let frozen = Frozen { inner: field, grid };
    let sol = integrate(&frozen, (0.0, t1))
        .x0(x0.to_vec())
        .save_at(save.to_vec())
        .fixed_dt(100.0 * t1)
        .run()
        .unwrap();
    sol.states().iter().zip(c).map(|(a, b)| a * b).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random small fields, batches and save times at tolerance 1e-10: directional
    /// derivatives of the loss match the adjoint to 1e-8 relative (the bar is 1e-6; 10,000
    /// random cases stayed below 1e-9).
    ///
    /// The finite differences are taken of the discrete map with each trial's accepted step
    /// times frozen (see [`Frozen`]), which the test first checks reproduces the adaptive
    /// solve's loss to 1e-12. Differences of the adaptive solve itself would also
    /// differentiate the controller's step sizes, a term the discrete adjoint holds constant
    /// by design: it is O(tol) and usually invisible (see
    /// `tsit5_gradient_matches_finite_differences`), but reaches 3e-6 relative on single
    /// components of rare fields at tol 1e-10 (n = 1, batch 2, seed 167), falling to 1e-9
    /// at tol 1e-13 while the adjoint stays put.
    #[test]
    fn tsit5_gradient_matches_finite_differences_on_random_fields(
        n in 1usize..=6,
        batch in 1usize..=3,
        seed in 0u64..1000,
        raw_saves in proptest::collection::vec(0.05f64..2.0, 1..5),
    ) {
        let (rnn, x0, mut rng) = setup(n, batch, seed);
        let mut save = raw_saves;
        save.sort_by(f64::total_cmp);
        let c: Vec<f64> = (0..save.len() * n * batch).map(|_| rng.sample()).collect();
        let how = How::Tsit5(1e-10);
        let (gp, gx) = adjoint(&rnn, &x0, how, 2.0, &save, &c, (Adjoint::Discrete, Checkpoints::States(4)));

        let sol = integrate(&rnn, (0.0, 2.0))
            .x0(x0.clone())
            .save_at(save.clone())
            .tolerances(1e-10, 1e-10)
            .save_steps(true)
            .run()
            .unwrap();
        let grid: Vec<Vec<f64>> = (0..batch).map(|b| sol.step_times(b).unwrap().to_vec()).collect();
        let adaptive = loss(&rnn, &x0, how, 2.0, &save, &c);
        let replay = frozen_loss(&rnn, &grid, &x0, 2.0, &save, &c);
        prop_assert!(
            (adaptive - replay).abs() <= 1e-12 * adaptive.abs().max(1.0),
            "frozen replay {} vs adaptive solve {}", replay, adaptive
        );

        let mut theta = vec![0.0; rnn.n_params()];
        rnn.params(&mut theta);
        for _ in 0..2 {
            let dp: Vec<f64> = theta.iter().map(|_| rng.sample()).collect();
            let dx: Vec<f64> = x0.iter().map(|_| rng.sample()).collect();
            // Fourth-order central differences: the second-order stencil's truncation
            // error reaches 1e-5 relative at eps = 1e-4 on fields whose trials start near a
            // saddle (strong self-coupling, regression case n = 1, seed 90).
            let eps = 1e-4;
            let l = |s: f64| {
                let mut f = rnn.clone();
                f.set_params(&theta.iter().zip(&dp).map(|(a, d)| a + s * d).collect::<Vec<_>>());
                let x: Vec<f64> = x0.iter().zip(&dx).map(|(a, d)| a + s * d).collect();
                frozen_loss(&f, &grid, &x, 2.0, &save, &c)
            };
            let fd = (8.0 * (l(eps) - l(-eps)) - (l(2.0 * eps) - l(-2.0 * eps))) / (12.0 * eps);
            let ad: f64 = gp.iter().zip(&dp).map(|(a, b)| a * b).sum::<f64>()
                + gx.iter().zip(&dx).map(|(a, b)| a * b).sum::<f64>();
            // With unit-variance directions, `|g|` is the typical size of `g . d`: a
            // direction that happens to be nearly orthogonal to `g` is measured on that scale.
            let norm = gp.iter().chain(&gx).map(|v| v * v).sum::<f64>().sqrt();
            let scale = fd.abs().max(ad.abs()).max(norm);
            prop_assert!(
                (fd - ad).abs() / scale <= 1e-8,
                "fd {} vs adjoint {} (|g| = {})", fd, ad, norm
            );
        }
    }
}

/// A save whose loss gradient is zero adds nothing: the gradient is the one of a solve
/// without that save, bit for bit, and costs no more stage VJPs (a dense save with a
/// nonzero gradient needs the step's last stage too).
#[test]
fn saves_with_zero_loss_gradient_cost_nothing() {
    let (rnn, x0, mut rng) = setup(6, 3, 19);
    let (dim, batch) = (6, 3);
    let last: Vec<f64> = (0..dim * batch).map(|_| rng.sample()).collect();
    let run = |save: &[f64], c: &[f64]| {
        let (_, tape) = integrate(&rnn, (0.0, 4.0))
            .x0(x0.clone())
            .save_at(save.to_vec())
            .tolerances(1e-8, 1e-8)
            .run_with_gradient()
            .unwrap();
        tape.backward(c).unwrap()
    };
    let alone = run(&[4.0], &last);
    let inner = [0.45, 1.3, 2.05, 4.0];
    let mut c = vec![0.0; 3 * dim * batch];
    c.extend_from_slice(&last);
    let with_saves = run(&inner, &c);
    assert_eq!(with_saves.params, alone.params);
    assert_eq!(with_saves.x0, alone.x0);
    assert_eq!(
        with_saves.stats.vjp_state_evals,
        alone.stats.vjp_state_evals
    );
    // A nonzero gradient at an inner save is not skipped.
    c[dim] = 1.0;
    let used = run(&inner, &c);
    assert!(used.stats.vjp_state_evals > alone.stats.vjp_state_evals);
    assert_ne!(used.x0, alone.x0);
}

#[test]
fn checkpoint_count_does_not_change_the_gradient() {
    let (rnn, x0, mut rng) = setup(6, 3, 9);
    let save = [0.4, 1.3, 2.0, 4.0];
    let c: Vec<f64> = (0..save.len() * 18).map(|_| rng.sample()).collect();
    for how in [How::Tsit5(1e-8), How::Euler(0.05)] {
        let all = adjoint(
            &rnn,
            &x0,
            how,
            4.0,
            &save,
            &c,
            (Adjoint::Discrete, Checkpoints::All),
        );
        for ck in [
            Checkpoints::States(2),
            Checkpoints::States(8),
            Checkpoints::States(1),
            Checkpoints::default(),
        ] {
            let g = adjoint(&rnn, &x0, how, 4.0, &save, &c, (Adjoint::Discrete, ck));
            let (ep, ex) = (rel_err(&g.0, &all.0), rel_err(&g.1, &all.1));
            assert!(ep <= 1e-13 && ex <= 1e-13, "{ck:?}: {ep:e} {ex:e}");
        }
    }
}

#[test]
fn interpolating_adjoint_converges_to_the_discrete_one() {
    let (rnn, x0, mut rng) = setup(6, 2, 13);
    let save = [0.5, 1.5, 3.0];
    let c: Vec<f64> = (0..save.len() * 12).map(|_| rng.sample()).collect();
    let mut errs = Vec::new();
    for tol in [1e-4, 1e-6, 1e-8] {
        let how = How::Tsit5(tol);
        let d = adjoint(
            &rnn,
            &x0,
            how,
            3.0,
            &save,
            &c,
            (Adjoint::Discrete, Checkpoints::default()),
        );
        let i = adjoint(
            &rnn,
            &x0,
            how,
            3.0,
            &save,
            &c,
            (Adjoint::Interpolating, Checkpoints::States(3)),
        );
        let e = rel_err(&i.0, &d.0).max(rel_err(&i.1, &d.1));
        println!("tol {tol:e}: |interpolating - discrete| / |discrete| = {e:.2e}");
        errs.push(e);
    }
    assert!(errs[0] > errs[1] && errs[1] > errs[2], "{errs:?}");
    assert!(errs[2] < errs[0] / 100.0 && errs[2] < 1e-5, "{errs:?}");
}

#[test]
fn gradients_are_finite_when_the_error_estimate_is_zero() {
    // x0 = 0 keeps dx/dt = A x at zero: every step's error estimate is exactly 0.
    let lin = LinearSystem::<f64>::rotation_decay(1.0, 0.5);
    let (sol, tape) = integrate(&lin, (0.0, 5.0))
        .x0(vec![0.0, 0.0])
        .save_at(vec![2.0, 5.0])
        .run_with_gradient()
        .unwrap();
    assert!(sol.trial_stats(0).accepted > 0);
    let g = tape.backward(&[1.0, -1.0, 0.5, 2.0]).unwrap();
    assert!(g.params.iter().chain(&g.x0).all(|v| v.is_finite()), "{g:?}");
    // x stays 0, so dL/dA = Σ λ xᵀ vanishes, while dL/dx0 does not.
    assert!(g.params.iter().all(|v| *v == 0.0));
    assert!(g.x0.iter().any(|v| *v != 0.0));
}

#[test]
fn gradient_matches_the_exact_linear_flow() {
    // dL/dx0 of L = <c, x(T)> is exp(Aᵀ T) c; the discrete adjoint at tight tolerance
    // gets there.
    let lin = LinearSystem::<f64>::random_stable(3, 0.3, 4);
    let (_, tape) = integrate(&lin, (0.0, 2.0))
        .x0(vec![1.0, -0.5, 0.25])
        .save_at(vec![2.0])
        .tolerances(1e-11, 1e-11)
        .run_with_gradient()
        .unwrap();
    let c = [0.3, -1.0, 2.0];
    let g = tape.backward(&c).unwrap();
    let at: Vec<f64> = {
        let a = lin.matrix();
        (0..9).map(|k| a[(k % 3) * 3 + k / 3]).collect()
    };
    let at_sys = LinearSystem::<f64>::new(3, at);
    let want = at_sys.exact(2.0, &c);
    assert!(
        common::max_abs_diff(&g.x0, &want) < 1e-9,
        "{:?} vs {want:?}",
        g.x0
    );
}

#[test]
fn unsupported_combinations_and_bad_gradients_are_errors() {
    let lin = LinearSystem::<f64>::rotation_decay(1.0, 0.5);
    // Heun's method without a continuous extension: no interpolating adjoint.
    static HEUN: ButcherTableau = ButcherTableau {
        name: "Heun",
        stages: 2,
        a: &[0.0, 0.0, 1.0, 0.0],
        b: &[0.5, 0.5],
        c: &[0.0, 1.0],
        b_error: None,
        order: 2,
        error_order: None,
        fsal: false,
        dense: None,
    };
    let err = integrate(&lin, (0.0, 1.0))
        .x0(vec![1.0, 0.0])
        .stepper(Stepper::Tableau(&HEUN))
        .fixed_dt(0.1)
        .adjoint(Adjoint::Interpolating)
        .run_with_gradient()
        .unwrap_err()
        .to_string();
    assert!(err.contains("adjoint") && err.contains("Heun"), "{err}");
    // The discrete adjoint works with any tableau; Euler's linear dense output also
    // supports the interpolating one.
    for (stepper, mode) in [
        (Stepper::Tableau(&HEUN), Adjoint::Discrete),
        (Stepper::Euler, Adjoint::Interpolating),
    ] {
        let (_, tape) = integrate(&lin, (0.0, 1.0))
            .x0(vec![1.0, 0.0])
            .stepper(stepper)
            .fixed_dt(0.1)
            .adjoint(mode)
            .run_with_gradient()
            .unwrap();
        let g = tape.backward(&[0.0, 0.0, 1.0, 0.0]).unwrap();
        assert!(g.x0.iter().all(|v| v.is_finite()));
    }
    let err = integrate(&lin, (0.0, 1.0))
        .x0(vec![1.0, 0.0])
        .allow_failures(true)
        .run_with_gradient()
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_failures"), "{err}");
    let err = integrate(&lin, (0.0, 1.0))
        .x0(vec![1.0, 0.0])
        .checkpoints(Checkpoints::States(0))
        .run_with_gradient()
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoints"), "{err}");
    let (_, tape) = integrate(&lin, (0.0, 1.0))
        .x0(vec![1.0, 0.0])
        .run_with_gradient()
        .unwrap();
    // Saves at t0 and t1: 2 saves x 2 states.
    let err = tape.backward(&[1.0; 3]).unwrap_err().to_string();
    assert!(err.contains("dl_dsaved") && err.contains('4'), "{err}");
    let err = tape
        .backward(&[1.0, f64::NAN, 0.0, 0.0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("finite"), "{err}");
    // Gradient at t0 passes straight through.
    let g = tape.backward(&[1.0, 2.0, 0.0, 0.0]).unwrap();
    assert_eq!(g.x0, vec![1.0, 2.0]);
}

#[test]
fn f32_gradients_agree_with_f64() {
    let r64 = Rnn::random(8, 2, 1.2, 1.0, 3).with_step_inputs(2, 0.5, 1.0, 4);
    let r32 = LeakyTanhRnn::<f32>::random(8, 2, 1.2, 1.0, 3).with_step_inputs(2, 0.5, 1.0, 4);
    let x0: Vec<f64> = (0..16).map(|i| (i as f64 * 0.3).sin()).collect();
    let c: Vec<f64> = (0..16).map(|i| (i as f64 * 0.7).cos()).collect();
    for stepper in [Stepper::Tsit5, Stepper::Euler] {
        let (_, t64) = integrate(&r64, (0.0, 2.0))
            .x0(x0.clone())
            .save_at(vec![2.0])
            .stepper(stepper)
            .fixed_dt(0.01)
            .run_with_gradient()
            .unwrap();
        let (_, t32) = integrate(&r32, (0.0, 2.0))
            .x0(x0.iter().map(|&v| v as f32).collect::<Vec<_>>())
            .save_at(vec![2.0])
            .stepper(stepper)
            .fixed_dt(0.01)
            .run_with_gradient()
            .unwrap();
        let g64 = t64.backward(&c).unwrap();
        let g32 = t32
            .backward(&c.iter().map(|&v| v as f32).collect::<Vec<_>>())
            .unwrap();
        let p32: Vec<f64> = g32.params.iter().map(|&v| v as f64).collect();
        let e = rel_err(&p32, &g64.params);
        assert!(e < 1e-4, "{stepper:?}: f32 vs f64 {e:e}");
    }
}
