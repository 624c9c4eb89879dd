//! Prints the discrete-adjoint (and interpolating) gradients of the problems of
//! `tests/gradients.rs`, one line per problem, every value as the hex bits of its `f64`, so
//! that two commits can be compared exactly: `bash scripts/compare_gradients.sh <rev>`.
//! Uses only API that has not changed since the gradients landed.

use neurode_solvers::testing::{LeakyTanhRnn, Normal};
use neurode_solvers::{integrate, Adjoint, Checkpoints, Stepper};

type Rnn = LeakyTanhRnn<f64>;

fn setup(n: usize, batch: usize, seed: u64) -> (Rnn, Vec<f64>, Normal) {
    let rnn = Rnn::random(n, 2, 1.4, 1.0, seed).with_step_inputs(batch, 0.7, 1.0, seed + 1);
    let mut rng = Normal::new(seed + 2);
    let x0 = (0..n * batch).map(|_| 0.5 * rng.sample()).collect();
    (rnn, x0, rng)
}

#[allow(clippy::too_many_arguments)]
fn line(
    name: &str,
    (n, batch, seed): (usize, usize, u64),
    euler: Option<f64>,
    tol: f64,
    save: &[f64],
    mode: Adjoint,
    ck: Checkpoints,
) {
    let (rnn, x0, mut rng) = setup(n, batch, seed);
    let c: Vec<f64> = (0..save.len() * n * batch).map(|_| rng.sample()).collect();
    let b = integrate(&rnn, (0.0, save[save.len() - 1]))
        .x0(x0)
        .save_at(save.to_vec())
        .adjoint(mode)
        .checkpoints(ck);
    let b = match euler {
        Some(dt) => b.stepper(Stepper::Euler).fixed_dt(dt),
        None => b.tolerances(tol, tol),
    };
    let (_, tape) = b.run_with_gradient().expect("solve");
    let g = tape.backward(&c).expect("backward");
    let bits: Vec<String> = g
        .params
        .iter()
        .chain(&g.x0)
        .map(|v| format!("{:016x}", v.to_bits()))
        .collect();
    println!("{name} {}", bits.join(" "));
}

fn main() {
    let d = Checkpoints::default();
    let (disc, interp) = (Adjoint::Discrete, Adjoint::Interpolating);
    let s1 = [0.5, 1.0, 2.5, 3.0];
    line("euler_fd", (5, 2, 1), Some(0.1), 0.0, &s1, disc, d);
    let s2 = [0.33, 0.7, 1.9, 3.0];
    line("tsit5_fd", (4, 2, 5), None, 1e-10, &s2, disc, d);
    let s3 = [0.4, 1.3, 2.0, 4.0];
    for (ck, name) in [
        (Checkpoints::All, "all"),
        (Checkpoints::States(2), "states2"),
        (d, "default"),
    ] {
        line(
            &format!("ck_tsit5_{name}"),
            (6, 3, 9),
            None,
            1e-8,
            &s3,
            disc,
            ck,
        );
        line(
            &format!("ck_euler_{name}"),
            (6, 3, 9),
            Some(0.05),
            0.0,
            &s3,
            disc,
            ck,
        );
    }
    let s4 = [0.5, 1.5, 3.0];
    for tol in [1e-4, 1e-6, 1e-8] {
        line(
            &format!("disc_{tol:e}"),
            (6, 2, 13),
            None,
            tol,
            &s4,
            disc,
            d,
        );
        line(
            &format!("interp_{tol:e}"),
            (6, 2, 13),
            None,
            tol,
            &s4,
            interp,
            Checkpoints::States(3),
        );
    }
    // A bigger one, split over two threads (64 units x 64 trials), several checkpoint segments.
    let s5 = [1.0, 5.0, 10.0];
    line(
        "big_tsit5",
        (64, 64, 21),
        None,
        1e-7,
        &s5,
        disc,
        Checkpoints::States(6),
    );
}
