//! The bare GEMM the benches measure a right-hand side against: `500 x 500` by `500 x 32`
//! (the shape of one batched evaluation of an N = 500 network on 32 trials), through the
//! same backend the models use.

use std::hint::black_box;
use std::time::Instant;

use neurode_solvers::{Backend, Cpu, Real, Transpose};

/// Units and trials of the shape.
pub const N: usize = 500;
pub const BATCH: usize = 32;

/// Operands and result of the bare GEMM.
pub struct Gemm<T> {
    pub w: Vec<T>,
    pub h: Vec<T>,
    pub out: Vec<T>,
}

impl<T: Real> Gemm<T> {
    pub fn new() -> Self {
        Gemm {
            w: (0..N * N)
                .map(|i| T::from_f64(((i % 97) as f64) * 1e-3))
                .collect(),
            h: (0..N * BATCH)
                .map(|i| T::from_f64(((i % 13) as f64) * 1e-2))
                .collect(),
            out: vec![T::zero(); N * BATCH],
        }
    }

    /// One product `out = w h`.
    pub fn run(&mut self) {
        let (no, one, zero) = (Transpose::No, T::one(), T::zero());
        let out = &mut self.out;
        Cpu.gemm(
            no, no, N, BATCH, N, one, &self.w, N, &self.h, N, zero, out, N,
        );
        black_box(&self.out);
    }

    /// Mean seconds of one product over 200.
    pub fn time(&mut self) -> f64 {
        let reps = 200;
        let start = Instant::now();
        for _ in 0..reps {
            self.run();
        }
        start.elapsed().as_secs_f64() / reps as f64
    }
}
