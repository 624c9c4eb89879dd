//! The low-rank RNN of Mastrogiuseppe & Ostojic (2018), "Linking connectivity, dynamics, and
//! computations in low-rank recurrent neural networks", Neuron 99(3):609–623:
//!
//! `τ dx/dt = -x + (g C + M Nᵀ / N) tanh(x) + B u(t)`, readout `y = wᵀ tanh(x) / N + b`,
//!
//! with `C` a fixed random bulk (`C_ij ~ N(0, 1/N)`), `M` and `N` the trainable `N x R`
//! connectivity vectors, `B` trainable input weights. Times are in the task's units (ms in
//! neurode's tasks, `τ = 1`).

use std::sync::Arc;

use neurode_solvers::{derive_seed, Backend, Cpu, Normal, Panels, ParamView, Real, Transpose};

use crate::checks::check_len;
use crate::leaky::{Connectivity, LeakyRnn};
use crate::readout::Readout;
use crate::ModelError;

/// `W = g C + M Nᵀ / N` with `C` fixed (`n x n`) and `M`, `N` (`n x r`) trainable.
#[derive(Debug, Clone)]
pub struct LowRank<T> {
    n: usize,
    r: usize,
    g: T,
    /// `C` (column-major), and `C` and `Cᵀ` as panels for the products, shared between
    /// clones: the bulk is fixed.
    c: Arc<(Vec<T>, Panels<T>, Panels<T>)>,
    m: Vec<T>,
    nv: Vec<T>,
}

/// Scratch of [`LowRank`]: `r x cols` projections.
#[derive(Debug)]
pub struct LowRankScratch<T> {
    p: Vec<T>,
    q: Vec<T>,
}

impl<T: Real> LowRank<T> {
    /// From explicit arrays (column-major): `c` is `n x n`, `m` and `nv` are `n x r`.
    pub fn new(
        n: usize,
        r: usize,
        g: T,
        c: Vec<T>,
        m: Vec<T>,
        nv: Vec<T>,
    ) -> Result<Self, ModelError> {
        if n == 0 {
            return Err(ModelError::invalid(
                "N",
                0.0,
                "a network needs at least one unit",
            ));
        }
        if !g.is_finite() {
            return Err(ModelError::invalid(
                "g",
                g.as_f64(),
                "the bulk gain must be finite",
            ));
        }
        check_len("C", &c, n * n, &format!("{n} x {n}"))?;
        check_len("M", &m, n * r, &format!("{n} x {r}"))?;
        check_len("N", &nv, n * r, &format!("{n} x {r}"))?;
        for (name, v) in [("C", &c), ("M", &m), ("N", &nv)] {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(ModelError::Shape(format!(
                    "{name}[{i}] is {}: every entry must be finite",
                    v[i]
                )));
            }
        }
        let (cp, ctp) = Panels::with_transpose(n, &c);
        Ok(LowRank {
            n,
            r,
            g,
            c: Arc::new((c, cp, ctp)),
            m,
            nv,
        })
    }
    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.r
    }
    /// Bulk gain `g`.
    pub fn gain(&self) -> T {
        self.g
    }
    /// The fixed bulk `C` (`n x n`).
    pub fn bulk(&self) -> &[T] {
        &self.c.0
    }
    /// `M` (`n x r`).
    pub fn m(&self) -> &[T] {
        &self.m
    }
    /// `N` (`n x r`).
    pub fn n_vectors(&self) -> &[T] {
        &self.nv
    }

    /// `out = g bulk h + left (rightᵀ h) / N` for `cols = h.len() / n` columns at once;
    /// `tmp` holds the `r x cols` projections.
    fn bulk_plus_low_rank(
        &self,
        bulk: &Panels<T>,
        left: &[T],
        right: &[T],
        h: &[T],
        out: &mut [T],
        tmp: &mut [T],
    ) {
        let (n, r) = (self.n, self.r);
        let cols = h.len() / n;
        if cols == 1 {
            // One trial: the matrix-vector kernel (shared out among a team when there is
            // one), then the rank-r term and the gain in one pass.
            let out = &mut out[..n];
            Cpu.gemv_panels(bulk, h, out);
            let p = &mut tmp[..r];
            for (j, pj) in p.iter_mut().enumerate() {
                *pj = dot(&right[j * n..(j + 1) * n], h);
            }
            let inv_n = T::one() / T::from_usize(n);
            p.iter_mut().for_each(|v| *v *= inv_n);
            let g = self.g;
            for (i, o) in out.iter_mut().enumerate() {
                let mut s = T::zero();
                for (j, &pj) in p.iter().enumerate() {
                    s += left[j * n + i] * pj;
                }
                *o = g * *o + s;
            }
            return;
        }
        Cpu.gemm_panels(bulk, cols, self.g, h, n, T::zero(), out, n);
        if r > 0 {
            let p = &mut tmp[..r * cols];
            Cpu.gemm(
                Transpose::Yes,
                Transpose::No,
                r,
                cols,
                n,
                T::one(),
                right,
                n,
                h,
                n,
                T::zero(),
                p,
                r,
            );
            let inv_n = T::one() / T::from_usize(n);
            Cpu.gemm(
                Transpose::No,
                Transpose::No,
                n,
                cols,
                r,
                inv_n,
                left,
                n,
                p,
                r,
                T::one(),
                out,
                n,
            );
        }
    }
}

/// `a · b`, four partial sums (so that the compiler can keep them in vector registers).
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += *x * *y;
    }
    s
}

impl<T: Real> Connectivity<T> for LowRank<T> {
    type Scratch = LowRankScratch<T>;
    fn n(&self) -> usize {
        self.n
    }
    fn n_params(&self) -> usize {
        2 * self.n * self.r
    }
    fn scratch(&self, cols: usize) -> LowRankScratch<T> {
        LowRankScratch {
            p: vec![T::zero(); self.r * cols],
            q: vec![T::zero(); self.r * cols],
        }
    }
    /// `out = g C h + M (Nᵀ h) / N`.
    fn apply(&self, h: &[T], out: &mut [T], s: &mut LowRankScratch<T>) {
        self.bulk_plus_low_rank(&self.c.1, &self.m, &self.nv, h, out, &mut s.p);
    }
    /// `out = g Cᵀ v + N (Mᵀ v) / N`.
    fn apply_t(&self, v: &[T], out: &mut [T], s: &mut LowRankScratch<T>) {
        self.bulk_plus_low_rank(&self.c.2, &self.nv, &self.m, v, out, &mut s.q);
    }
    /// `dM += α V (Nᵀ H)ᵀ / N`, `dN += α H (Mᵀ V)ᵀ / N`.
    fn vjp(&self, alpha: T, v: &[T], h: &[T], out: &mut [T], s: &mut LowRankScratch<T>) {
        let (n, r) = (self.n, self.r);
        if r == 0 {
            return;
        }
        let cols = v.len() / n;
        let a = alpha / T::from_usize(n);
        let (dm, dn) = out.split_at_mut(n * r);
        let p = &mut s.p[..r * cols];
        Cpu.gemm(
            Transpose::Yes,
            Transpose::No,
            r,
            cols,
            n,
            T::one(),
            &self.nv,
            n,
            h,
            n,
            T::zero(),
            p,
            r,
        );
        Cpu.gemm(
            Transpose::No,
            Transpose::Yes,
            n,
            r,
            cols,
            a,
            v,
            n,
            p,
            r,
            T::one(),
            dm,
            n,
        );
        let q = &mut s.q[..r * cols];
        Cpu.gemm(
            Transpose::Yes,
            Transpose::No,
            r,
            cols,
            n,
            T::one(),
            &self.m,
            n,
            v,
            n,
            T::zero(),
            q,
            r,
        );
        Cpu.gemm(
            Transpose::No,
            Transpose::Yes,
            n,
            r,
            cols,
            a,
            h,
            n,
            q,
            r,
            T::one(),
            dn,
            n,
        );
    }
    fn param_views(&self) -> Vec<ParamView> {
        let nr = self.n * self.r;
        vec![
            ParamView {
                name: "M".into(),
                offset: 0,
                shape: vec![self.n, self.r],
            },
            ParamView {
                name: "N".into(),
                offset: nr,
                shape: vec![self.n, self.r],
            },
        ]
    }
    fn params(&self, out: &mut [T]) {
        let nr = self.n * self.r;
        out[..nr].copy_from_slice(&self.m);
        out[nr..2 * nr].copy_from_slice(&self.nv);
    }
    fn set_params(&mut self, theta: &[T]) {
        let nr = self.n * self.r;
        self.m.copy_from_slice(&theta[..nr]);
        self.nv.copy_from_slice(&theta[nr..2 * nr]);
    }
}

/// The low-rank RNN: a [`LeakyRnn`] with [`LowRank`] connectivity. Parameters `θ` are
/// `M`, `N`, `B` (views named so).
pub type LowRankRnn<T> = LeakyRnn<T, LowRank<T>>;

/// Sizes and initial scales of a low-rank RNN (the reference defaults: `N = 500`, `R = 2`,
/// `g = 0.8`, `τ = 1`, 4 inputs, all scales 1).
#[derive(Debug, Clone, PartialEq)]
pub struct LowRankInit {
    /// Units `N`.
    pub n: usize,
    /// Rank `R`.
    pub rank: usize,
    /// Bulk gain `g`.
    pub g: f64,
    /// Time constant `τ`.
    pub tau: f64,
    /// Input channels.
    pub n_in: usize,
    /// `M ~ N(0, 1) · m_std / √N`.
    pub m_std: f64,
    /// `N ~ N(0, 1) · n_std / √N`.
    pub n_std: f64,
    /// `B ~ N(0, 1) · b_std / √n_in`.
    pub b_std: f64,
    /// Readout `w ~ N(0, 1) · w_std / √N`.
    pub w_std: f64,
}

impl Default for LowRankInit {
    fn default() -> Self {
        LowRankInit {
            n: 500,
            rank: 2,
            g: 0.8,
            tau: 1.0,
            n_in: 4,
            m_std: 1.0,
            n_std: 1.0,
            b_std: 1.0,
            w_std: 1.0,
        }
    }
}

fn normal_vec<T: Real>(len: usize, scale: f64, seed: u64) -> Vec<T> {
    let mut rng = Normal::new(seed);
    (0..len)
        .map(|_| T::from_f64(scale * rng.sample()))
        .collect()
}

impl<T: Real> LowRankRnn<T> {
    /// A seeded random network and readout: `C ~ N(0, 1/N)` fixed; `M`, `N`, `B`, `w` as in
    /// [`LowRankInit`]; `b = 0`. Each array has its own stream derived from `seed`.
    pub fn random(init: &LowRankInit, seed: u64) -> Result<(Self, Readout<T>), ModelError> {
        let LowRankInit {
            n, rank: r, n_in, ..
        } = *init;
        if n == 0 {
            return Err(ModelError::invalid(
                "N",
                0.0,
                "a network needs at least one unit",
            ));
        }
        if n_in == 0 {
            return Err(ModelError::invalid(
                "n_in",
                0.0,
                "the network needs at least one input",
            ));
        }
        let sn = 1.0 / (n as f64).sqrt();
        let c = normal_vec(n * n, sn, derive_seed(seed, &[0]));
        let m = normal_vec(n * r, init.m_std * sn, derive_seed(seed, &[1]));
        let nv = normal_vec(n * r, init.n_std * sn, derive_seed(seed, &[2]));
        let b = normal_vec(
            n * n_in,
            init.b_std / (n_in as f64).sqrt(),
            derive_seed(seed, &[3]),
        );
        let w = normal_vec(n, init.w_std * sn, derive_seed(seed, &[4]));
        let conn = LowRank::new(n, r, T::from_f64(init.g), c, m, nv)?;
        let rnn = LeakyRnn::new(conn, T::from_f64(init.tau), n_in, b)?;
        Ok((rnn, Readout::new(w, T::zero())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn<T: Real>(n: usize, r: usize) -> LowRank<T> {
        let v = |len: usize, seed: u64| normal_vec::<T>(len, 1.0 / (n as f64).sqrt(), seed);
        LowRank::new(
            n,
            r,
            T::from_f64(0.8),
            v(n * n, 1),
            v(n * r, 2),
            v(n * r, 3),
        )
        .unwrap()
    }

    /// One column takes the matrix-vector path; three columns the matrix product. Each
    /// column of the product must match the one-column result (to rounding: the two sum in
    /// different orders), for both `W h` and `Wᵀ v` and every rank branch.
    #[test]
    fn one_column_matches_the_batched_product() {
        fn check<T: Real>(n: usize, r: usize, tol: f64) {
            let c = conn::<T>(n, r);
            let h = normal_vec::<T>(3 * n, 1.0, 7);
            let mut s = c.scratch(3);
            let (mut all, mut all_t) = (vec![T::zero(); 3 * n], vec![T::zero(); 3 * n]);
            c.apply(&h, &mut all, &mut s);
            c.apply_t(&h, &mut all_t, &mut s);
            let mut s1 = c.scratch(1);
            for col in 0..3 {
                let hc = &h[col * n..(col + 1) * n];
                let (mut one, mut one_t) = (vec![T::zero(); n], vec![T::zero(); n]);
                c.apply(hc, &mut one, &mut s1);
                c.apply_t(hc, &mut one_t, &mut s1);
                for (a, b) in [(&one, &all), (&one_t, &all_t)] {
                    for (i, (x, y)) in a.iter().zip(&b[col * n..]).enumerate() {
                        let (x, y) = (x.as_f64(), y.as_f64());
                        assert!(
                            (x - y).abs() <= tol * (1.0 + y.abs()),
                            "n {n} r {r} column {col} row {i}: {x} vs {y}"
                        );
                    }
                }
            }
        }
        for r in 0..=3 {
            check::<f64>(37, r, 1e-13);
            check::<f64>(300, r, 1e-13);
            check::<f32>(300, r, 1e-5);
        }
    }
}
