//! Benchmark problem P1 of `shared/reference/benchmark-problems.md`, built bit for bit as
//! the peer scripts build it (`benches/external/p1_diffrax.py`): the low-rank tanh RNN,
//! N = 500, rank 2, g = 0.8, τ = 1, 4 inputs, batch 32, t ∈ [0, 100], the input switched on
//! at t = 15 (a breakpoint), saves at t = 10, 20, …, 100, loss L = ½ |x(100)|².
//!
//! The P1 family ([`arrays_sized`], [`problem_sized`]): the same formulas (problem id 1)
//! with `n` units and `nb` trials, as `benches/external/grid_diffrax.py` builds them.

use neurode_models::{LeakyRnn, LowRank, LowRankRnn, PiecewiseConstant};
use neurode_solvers::Real;

/// SplitMix64 of a counter (wrapping arithmetic).
pub fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `U(s, k)` in `[-1, 1)`, exact.
pub fn u(s: u64, k: u64) -> f64 {
    (splitmix64((s << 32).wrapping_add(k)) >> 11) as f64 * 2f64.powi(-52) - 1.0
}

/// Units, rank, inputs, trials, span end, input onset, gain.
pub const N: usize = 500;
pub const R: usize = 2;
pub const K: usize = 4;
pub const BATCH: usize = 32;
pub const T1: f64 = 100.0;
pub const T_ON: f64 = 15.0;
pub const G: f64 = 0.8;

/// The P1 arrays in f64, row-major as the reference writes them.
pub struct Arrays {
    pub c: Vec<f64>,
    pub m: Vec<f64>,
    pub nv: Vec<f64>,
    pub b: Vec<f64>,
    pub x0: Vec<f64>,
    pub u: Vec<[f64; K]>,
}

pub fn arrays() -> Arrays {
    arrays_sized(N, BATCH)
}

/// The P1 formulas with `n` units and `nb` trials.
pub fn arrays_sized(n: usize, nb: usize) -> Arrays {
    let p = 1u64;
    let s = |a: u64| 256 * p + a;
    let sc = (3.0 / n as f64).sqrt();
    let s3 = 3.0f64.sqrt();
    let c = (0..n * n).map(|k| u(s(1), k as u64) * sc).collect();
    let m: Vec<f64> = (0..n * R).map(|k| u(s(2), k as u64) * s3).collect();
    let nv = (0..n * R)
        .map(|k| 2.0 * m[k] + u(s(3), k as u64) * s3)
        .collect();
    let b = (0..n * K).map(|k| u(s(4), k as u64) * s3).collect();
    let x0 = (0..nb * n).map(|k| 0.5 * u(s(5), k as u64)).collect();
    const COH: [f64; 4] = [-0.5, -0.25, 0.25, 0.5];
    let u = (0..nb)
        .map(|b| {
            let even = b % 2 == 0;
            [
                COH[(b / 2) % 4],
                COH[(b / 8) % 4],
                if even { 1.0 } else { 0.0 },
                if even { 0.0 } else { 1.0 },
            ]
        })
        .collect();
    Arrays { c, m, nv, b, x0, u }
}

/// Row-major `rows x cols` to column-major, converted to `T`.
fn col_major<T: Real>(a: &[f64], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::zero(); rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            out[i + j * rows] = T::from_f64(a[i * cols + j]);
        }
    }
    out
}

/// The P1 network with its 32 trials' inputs bound, and the initial state (`N x 32`,
/// column-major: column `b` is `x0[b, :]`).
pub fn problem<T: Real>() -> (LowRankRnn<T>, Vec<T>) {
    problem_sized(N, BATCH)
}

/// The P1 family's network with `n` units and its `nb` trials' inputs bound, and the
/// initial state (`n x nb`, column-major).
pub fn problem_sized<T: Real>(n: usize, nb: usize) -> (LowRankRnn<T>, Vec<T>) {
    let a = arrays_sized(n, nb);
    let conn = LowRank::new(
        n,
        R,
        T::from_f64(G),
        col_major(&a.c, n, n),
        col_major(&a.m, n, R),
        col_major(&a.nv, n, R),
    )
    .expect("P1 connectivity");
    let mut rnn = LeakyRnn::new(conn, T::one(), K, col_major(&a.b, n, K)).expect("P1 network");
    let inputs =
        a.u.iter()
            .map(|ub| {
                let mut v = vec![T::zero(); K];
                v.extend(ub.iter().map(|&x| T::from_f64(x)));
                PiecewiseConstant::new(K, vec![T::from_f64(T_ON)], v).expect("P1 input")
            })
            .collect();
    rnn.set_inputs(inputs).expect("P1 inputs");
    // x0 row-major (batch, N) is column-major (N, batch) as it stands.
    let x0 = a.x0.iter().map(|&v| T::from_f64(v)).collect();
    (rnn, x0)
}

/// Save times t = 10, 20, ..., 100.
pub fn save_times<T: Real>() -> Vec<T> {
    (1..=10).map(|i| T::from_f64(10.0 * i as f64)).collect()
}

/// `dL/dx` at the saves for `L = ½ |x(100)|²`: zero but at the last save.
pub fn loss_grad<T: Real>(saved: &[T]) -> Vec<T> {
    loss_grad_sized(saved, N * BATCH)
}

/// [`loss_grad`] for a state of `len` values (units x trials).
pub fn loss_grad_sized<T: Real>(saved: &[T], len: usize) -> Vec<T> {
    let mut d = vec![T::zero(); saved.len()];
    let last = saved.len() - len;
    d[last..].copy_from_slice(&saved[last..]);
    d
}

/// Exactly rounded sum (Neumaier), to compare with the peer's `math.fsum`.
pub fn fsum(v: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in v {
        let t = s + x;
        c += if s.abs() >= x.abs() {
            (s - t) + x
        } else {
            (x - t) + s
        };
        s = t;
    }
    s + c
}

/// The reference's test vectors hold.
pub fn check_generator() {
    assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    let want = [
        0.062994505177846,
        0.4931739597181841,
        0.6537091769652177,
        -0.18023233742255962,
    ];
    for (k, w) in want.iter().enumerate() {
        assert!((u(257, k as u64) - w).abs() < 1e-16, "U(257, {k})");
    }
}
