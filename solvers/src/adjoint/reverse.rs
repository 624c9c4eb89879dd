//! The reverse sweep of one block of trials: recomputation from checkpoints (or the stored
//! stage states), the discrete adjoint through every Runge–Kutta stage, and the
//! interpolating adjoint.

use num_traits::{Float, One, Zero};

use super::tape::{SaveSrc, Tape};
use super::{AdjointStats, Backward, Block};
use crate::backend::{for_parts, Backend, Cpu, MIN_SHARED_WORK};
use crate::field::{Columns, Differentiable, VectorField};
use crate::gradient::Adjoint;
use crate::rk::{self, Coeffs, Stages, MAX_STAGES};
use crate::scalar::Real;

#[derive(Clone, Copy)]
enum Loc {
    Ckpt(usize),
    Pool(usize),
}

/// Scratch and state of one reverse sweep. Everything is allocated in [`Reverse::new`].
pub(super) struct Reverse<'b, 'a, F: VectorField> {
    bw: &'b Backward<'a, F>,
    pub(super) blk: &'b Block<F::Scalar>,
    dl: &'b [F::Scalar],
    /// Columns are ordered by decreasing step count, so that the trials still stepping at
    /// a step index are a prefix: `order[q]` is the trial in column `q`, `pos[b]` the
    /// column of trial `b`.
    order: Vec<usize>,
    pos: Vec<usize>,
    /// The caller's trial index of every column of a wide call (`s` stages side by side).
    gids: Vec<usize>,
    co: Coeffs<F::Scalar>,
    s: usize,
    n: usize,
    /// Steps of the longest trial.
    total: usize,
    pool_cap: usize,
    pool: Vec<F::Scalar>,
    x_cur: Vec<F::Scalar>,
    x_next: Vec<F::Scalar>,
    k: Vec<F::Scalar>,
    rec: Vec<F::Scalar>,
    tev: Vec<F::Scalar>,
    tw: Vec<F::Scalar>,
    /// dL/dx at the current step boundary.
    pub(super) lam: Vec<F::Scalar>,
    extra: Vec<F::Scalar>,
    mu: Vec<F::Scalar>,
    g: Vec<F::Scalar>,
    /// The field's residuals of every stage state (stage-major, `batch` columns each),
    /// shared by the state and the parameter VJPs.
    res: Vec<F::Scalar>,
    /// Interpolating adjoint: forward stage derivatives, dense states, adjoint stages.
    kf: Vec<F::Scalar>,
    xw: Vec<F::Scalar>,
    big_k: Vec<F::Scalar>,
    eta: Vec<F::Scalar>,
    hi: Vec<F::Scalar>,
    lo: Vec<F::Scalar>,
    pub(super) grad: Vec<F::Scalar>,
    ptr: Vec<usize>,
    /// Whether some trial saves by dense output inside step `n` with a nonzero loss
    /// gradient (its last stage matters).
    dense_in_step: Vec<bool>,
    ws: F::Workspace,
    ws_wide: F::Workspace,
    stats: AdjointStats,
}

impl<'b, 'a, F: Differentiable> Reverse<'b, 'a, F> {
    pub(super) fn new(
        bw: &'b Backward<'a, F>,
        blk: &'b Block<F::Scalar>,
        dl: &'b [F::Scalar],
    ) -> Self {
        let tape = &blk.tape;
        let co = Coeffs::new(bw.tableau);
        let s = co.s;
        let (dim, batch) = (tape.dim, tape.batch);
        let n = dim * batch;
        let total = (0..batch).map(|b| tape.n_steps(b)).max().unwrap_or(0);
        let seg = tape.ckpt.stride.min(total.max(1));
        let cut = stored_steps(tape, total);
        // Steps past the stored ones are recomputed from the checkpoints, through a pool
        // that shares its budget with the stage store (at least two steps' stages).
        let pool_cap = if cut >= total {
            0
        } else {
            tape.pool_budget().min(seg * s)
        };
        let z = F::Scalar::zero();
        let interp = bw.mode == Adjoint::Interpolating;
        let iv = |len: usize| if interp { vec![z; len] } else { Vec::new() };
        let mut order: Vec<usize> = (0..batch).collect();
        order.sort_by_key(|&b| std::cmp::Reverse(tape.n_steps(b)));
        let mut pos = vec![0; batch];
        for (q, &b) in order.iter().enumerate() {
            pos[b] = q;
        }
        Reverse {
            bw,
            blk,
            dl,
            gids: (0..s * batch)
                .map(|c| blk.offset + order[c % batch])
                .collect(),
            order,
            pos,
            co,
            s,
            n,
            total,
            pool_cap,
            pool: vec![z; pool_cap * n],
            x_cur: vec![z; n],
            x_next: vec![z; n],
            k: vec![z; s * n],
            rec: vec![z; s * n],
            tev: vec![z; batch],
            tw: vec![z; s * batch],
            lam: vec![z; n],
            extra: vec![z; n],
            mu: vec![z; s * n],
            g: vec![z; s * n],
            res: vec![z; s * bw.field.residual_len() * batch],
            kf: iv(s * n),
            xw: iv(s * n),
            big_k: iv(s * n),
            eta: iv(batch),
            hi: iv(batch),
            lo: iv(batch),
            grad: vec![z; bw.field.n_params()],
            ptr: tape.saves.iter().map(|v| v.len()).collect(),
            dense_in_step: {
                // A save whose loss gradient is zero (a loss on the final state alone, or
                // outside a loss window) adds nothing: exactly zero cotangents.
                let mut d = vec![false; total];
                for (b, saves) in tape.saves.iter().enumerate() {
                    for (i, sv) in saves.iter().enumerate() {
                        if let SaveSrc::Dense(m, _) = *sv {
                            let o = (i * bw.batch + blk.offset + b) * dim;
                            d[m] |= !all_zero(&dl[o..o + dim]);
                        }
                    }
                }
                d
            },
            ws: bw.field.workspace(batch),
            ws_wide: bw.field.workspace(s * batch),
            stats: AdjointStats::default(),
        }
    }

    pub(super) fn run(&mut self) {
        let tape = &self.blk.tape;
        let stride = tape.ckpt.stride;
        let cut = stored_steps(tape, self.total);
        // Steps `cut..` from the checkpoints (`cut` is a multiple of the stride), then the
        // stored ones.
        let n_seg = self.total.div_ceil(stride);
        for j in (cut / stride..n_seg).rev() {
            let a = j * stride;
            let len = stride.min(self.total - a);
            self.rev_range(a, len, Loc::Ckpt(j), 0);
        }
        for idx in (0..cut).rev() {
            self.load_stages(idx);
            self.reverse_step(idx, None);
        }
        if !self.grad.is_empty() {
            self.bw
                .field
                .vjp_params_finish(&mut self.grad, &mut self.ws_wide);
        }
        // Saves of the initial state.
        for b in 0..tape.batch {
            while self.ptr[b] > 0 && matches!(tape.saves[b][self.ptr[b] - 1], SaveSrc::Initial) {
                self.add_save(b);
            }
        }
        self.unpermute_lam();
    }

    /// Offset in `dl` of save `i` of this block's trial `b`.
    #[inline]
    fn dl_offset(&self, i: usize, b: usize) -> usize {
        (i * self.bw.batch + self.blk.offset + b) * self.blk.tape.dim
    }

    /// Adds the loss gradient of trial `b`'s latest unconsumed save to `lam` and consumes it.
    fn add_save(&mut self, b: usize) {
        let dim = self.blk.tape.dim;
        self.ptr[b] -= 1;
        let o = self.dl_offset(self.ptr[b], b);
        let q = self.pos[b];
        for (l, &d) in self.lam[q * dim..(q + 1) * dim]
            .iter_mut()
            .zip(&self.dl[o..o + dim])
        {
            *l += d;
        }
    }

    /// Columns still stepping at step index `idx` (a prefix of the column order).
    fn active(&self, idx: usize) -> usize {
        let tape = &self.blk.tape;
        self.order.partition_point(|&b| tape.n_steps(b) > idx)
    }

    /// Puts `lam` (then `dL/dx0`) back in trial order, through the scratch `x_next`.
    fn unpermute_lam(&mut self) {
        let dim = self.blk.tape.dim;
        for (q, &b) in self.order.iter().enumerate() {
            self.x_next[b * dim..(b + 1) * dim].copy_from_slice(&self.lam[q * dim..(q + 1) * dim]);
        }
        std::mem::swap(&mut self.lam, &mut self.x_next);
    }

    /// The counts of this sweep, with the states it held.
    pub(super) fn totals(&self) -> AdjointStats {
        let tape = &self.blk.tape;
        let staged = tape.stages.as_ref().map_or(0, |st| st.n_states(self.n));
        AdjointStats {
            stored_states: tape.ckpt.n_states() + self.pool_cap + staged,
            ..self.stats
        }
    }

    /// Loads the stored stage states of step `idx < cut` into `rec` (the trials still
    /// stepping): `X_0` from the step's checkpoint (every step is checkpointed while the
    /// store lives), the others from the store. A FSAL method's last stage state, the next
    /// step's first, is loaded only when the step needs it (a dense save inside it, or the
    /// interpolating adjoint): from the next step's checkpoint or the final state.
    fn load_stages(&mut self, idx: usize) {
        let (tape, n) = (&self.blk.tape, self.n);
        let st = tape.stages.as_ref().expect("stages are stored");
        let dim = tape.dim;
        debug_assert_eq!(
            tape.ckpt.stride, 1,
            "the stage store needs every checkpoint"
        );
        let kept = st.per_step() / dim.max(1) + 1;
        let need_last = self.bw.mode == Adjoint::Interpolating || self.dense_in_step[idx];
        let (m, order) = (self.active(idx), &self.order);
        let last = if kept < self.s && need_last {
            self.s
        } else {
            kept
        };
        // Stage by stage, the columns shared out among the team.
        for i in 0..last {
            let rec = &mut self.rec[i * n..i * n + m * dim];
            for_parts(rec, dim, m * dim, MIN_SHARED_WORK, &|first, part| {
                for (c, col) in part.chunks_exact_mut(dim).enumerate() {
                    let b = order[first + c];
                    let cols = b * dim..(b + 1) * dim;
                    let src = if i == 0 {
                        &tape.ckpt.slots[idx][cols]
                    } else if i < kept {
                        &st.step(b, idx)[(i - 1) * dim..i * dim]
                    } else if idx + 1 == tape.n_steps(b) {
                        &tape.x_final[cols]
                    } else {
                        &tape.ckpt.slots[idx + 1][cols]
                    };
                    col.copy_from_slice(src);
                }
            });
        }
    }

    /// Loads the state at step index `a` into `x_cur`.
    fn load(&mut self, loc: Loc, a: usize) {
        let tape = &self.blk.tape;
        let dim = tape.dim;
        match loc {
            Loc::Ckpt(j) => {
                let slot = &tape.ckpt.slots[j];
                for (q, &b) in self.order.iter().enumerate() {
                    let cols = b * dim..(b + 1) * dim;
                    // Trials that ended before index `a` sit at their final state.
                    let src = if tape.n_steps(b) >= a {
                        &slot[cols]
                    } else {
                        &tape.x_final[cols]
                    };
                    self.x_cur[q * dim..(q + 1) * dim].copy_from_slice(src);
                }
            }
            Loc::Pool(p) => {
                let n = self.n;
                self.x_cur.copy_from_slice(&self.pool[p * n..(p + 1) * n]);
            }
        }
    }

    /// Recomputes step `idx` from `x_cur`: stage states into the pool at state `rec_at`
    /// (or the fixed record when `None`), and, when `need_out`, the new state into `x_cur`
    /// (otherwise `x_cur` is left undefined and the evaluations that only feed it skipped).
    fn replay(&mut self, idx: usize, rec_at: Option<usize>, need_out: bool) {
        let need_last =
            need_out || self.bw.mode == Adjoint::Interpolating || self.dense_in_step[idx];
        let n = self.n;
        let s = self.s;
        let rec: &mut [F::Scalar] = match rec_at {
            Some(p) => &mut self.pool[p * n..(p + s) * n],
            None => &mut self.rec,
        };
        let st = replay_step(
            self.bw.field,
            &self.blk.tape,
            &self.co,
            idx,
            &self.x_cur,
            rec,
            &mut self.x_next,
            &mut self.k,
            &mut self.tev,
            &self.order,
            &self.gids,
            &mut self.ws,
            need_out,
            need_last,
        );
        self.stats.rhs_evals += st;
        self.stats.recomputed_steps += 1;
        std::mem::swap(&mut self.x_cur, &mut self.x_next);
    }

    /// Reverses steps `a .. a + len`, starting from the state at `start`, with pool states
    /// `sp..` free.
    fn rev_range(&mut self, a: usize, len: usize, start: Loc, sp: usize) {
        let s = self.s;
        let free = self.pool_cap - sp;
        if len * s <= free {
            self.load(start, a);
            for m in 0..len {
                self.replay(a + m, Some(sp + m * s), m + 1 < len);
            }
            for m in (0..len).rev() {
                self.reverse_step(a + m, Some(sp + m * s));
            }
        } else if len >= 2 && free >= 1 {
            let pieces = (free / 2 + 1).clamp(2, len);
            let q = len.div_ceil(pieces);
            let c = (len - 1) / q;
            self.load(start, a);
            for m in 0..c * q {
                self.replay(a + m, None, true);
                if (m + 1) % q == 0 {
                    let p = sp + (m + 1) / q - 1;
                    let n = self.n;
                    self.pool[p * n..(p + 1) * n].copy_from_slice(&self.x_cur);
                }
            }
            for kk in (0..=c).rev() {
                let pa = a + kk * q;
                let plen = q.min(a + len - pa);
                let pstart = if kk == 0 {
                    start
                } else {
                    Loc::Pool(sp + kk - 1)
                };
                self.rev_range(pa, plen, pstart, sp + kk);
            }
        } else {
            for m in (0..len).rev() {
                self.load(start, a);
                for i in 0..=m {
                    self.replay(a + i, None, i < m);
                }
                self.reverse_step(a + m, None);
            }
        }
    }

    /// Adds the loss gradients of saves at the end of step `idx` to `lam`.
    fn inject_end(&mut self, idx: usize) {
        let tape = &self.blk.tape;
        for b in 0..tape.batch {
            while self.ptr[b] > 0
                && matches!(tape.saves[b][self.ptr[b] - 1], SaveSrc::End(m) if m == idx)
            {
                self.add_save(b);
            }
        }
    }

    fn reverse_step(&mut self, idx: usize, rec_at: Option<usize>) {
        self.inject_end(idx);
        match self.bw.mode {
            Adjoint::Discrete => self.discrete_step(idx, rec_at),
            Adjoint::Interpolating => self.interpolating_step(idx, rec_at),
        }
    }

    /// Stage times of step `idx` for every trial into `tw` (stage-major).
    fn stage_times(&mut self, idx: usize) {
        let tape = &self.blk.tape;
        let batch = tape.batch;
        for (q, &b) in self.order.iter().enumerate() {
            let (t, h, t_end, brk, active) = tape.step(b, idx);
            for i in 0..self.s {
                self.tw[i * batch + q] = if active {
                    rk::stage_time(t, h, self.co.c[i], t_end, brk)
                } else {
                    t
                };
            }
        }
    }

    /// Reverse of one RK step: `lam` goes from `dL/dx_{n+1}` to `dL/dx_n`.
    #[allow(clippy::needless_range_loop)]
    fn discrete_step(&mut self, idx: usize, rec_at: Option<usize>) {
        let field = self.bw.field;
        let (dim, batch, n, s) = (self.blk.tape.dim, self.blk.tape.batch, self.n, self.s);
        let z = F::Scalar::zero();
        zero(&mut self.g);
        zero(&mut self.extra);
        self.stage_times(idx);
        let m = self.active(idx);
        let mut stage_nz = [false; MAX_STAGES];
        // Dense saves inside this step: through the interpolant into the stage cotangents,
        // and directly into dL/dx_n.
        for b in 0..batch {
            let (_, h, _, _, active) = self.blk.tape.step(b, idx);
            if !active {
                continue;
            }
            let q = self.pos[b];
            let cols = q * dim..(q + 1) * dim;
            while self.ptr[b] > 0 {
                let i = self.ptr[b] - 1;
                let theta = match self.blk.tape.saves[b][i] {
                    SaveSrc::Dense(m, th) if m == idx => th,
                    _ => break,
                };
                let o = self.dl_offset(i, b);
                let dls = &self.dl[o..o + dim];
                self.ptr[b] -= 1;
                if all_zero(dls) {
                    continue;
                }
                for (e, &d) in self.extra[cols.clone()].iter_mut().zip(dls) {
                    *e += d;
                }
                let w = self.co.dense_weights(theta);
                rk::dense_cotangent(&self.co, &w, h, dls, &mut self.g, n, q * dim, &mut stage_nz);
            }
        }
        // Stages in reverse.
        let rec: &[F::Scalar] = match rec_at {
            Some(p) => &self.pool[p * n..(p + s) * n],
            None => &self.rec,
        };
        let mut mu_nz = [false; MAX_STAGES];
        let mut has_res = [false; MAX_STAGES];
        let mut last_nz = 0;
        // Residuals of stage `i`, every column (as the parameter VJP over all of them needs).
        let rb = field.residual_len() * batch;
        let residuals = |i: usize, res: &mut [F::Scalar], tw: &[F::Scalar]| {
            let all = Columns::with_trials(&tw[i * batch..(i + 1) * batch], &self.gids[..batch]);
            field.residuals(
                all,
                &rec[i * n..(i + 1) * n],
                &mut res[i * rb..(i + 1) * rb],
            );
        };
        for i in (0..s).rev() {
            let feeds = (i + 1..s).any(|j| mu_nz[j] && self.co.a(j, i) != z);
            if !(stage_nz[i] || self.co.b[i] != z || feeds) {
                continue;
            }
            last_nz = last_nz.max(i + 1);
            residuals(i, &mut self.res, &self.tw);
            has_res[i] = true;
            let (gi, _) = self.g[i * n..].split_at_mut(n);
            let mu = Stages {
                k: &self.mu,
                stride: n,
            };
            // Per column (its own step size), shared out among the team by columns.
            let (tape, order, lam, co) = (&self.blk.tape, &self.order, &self.lam, &self.co);
            let terms = s - i;
            for_parts(
                &mut gi[..m * dim],
                dim,
                m * dim * terms,
                MIN_SHARED_WORK,
                &|first, part| {
                    for (c, gq) in part.chunks_exact_mut(dim).enumerate() {
                        let q = first + c;
                        let h = tape.step(order[q], idx).1;
                        let lq = &lam[q * dim..(q + 1) * dim];
                        rk::stage_cotangent(co, i, h, lq, mu, &mu_nz, q * dim, gq);
                    }
                },
            );
            let mui = &mut self.mu[i * n..(i + 1) * n];
            zero(mui);
            field.vjp_state_with(
                Columns::with_trials(&self.tw[i * batch..i * batch + m], &self.gids[..m]),
                &rec[i * n..i * n + m * dim],
                &self.res[i * rb..i * rb + m * rb / batch],
                &gi[..m * dim],
                &mut mui[..m * dim],
                &mut self.ws,
            );
            self.stats.vjp_state_evals += 1;
            mu_nz[i] = true;
        }
        // lam + Σ mu_i + extra in one pass (the bits of one axpy per term, in this order),
        // through the free scratch `x_next`.
        let one = F::Scalar::one();
        let mut terms = [(one, &[][..]); MAX_STAGES + 1];
        let mut nt = 0;
        for i in (0..s).filter(|&i| mu_nz[i]) {
            terms[nt] = (one, &self.mu[i * n..(i + 1) * n]);
            nt += 1;
        }
        terms[nt] = (one, &self.extra[..]);
        Cpu.combine(&self.lam, &terms[..nt + 1], &mut self.x_next);
        std::mem::swap(&mut self.lam, &mut self.x_next);
        if last_nz > 0 && !self.grad.is_empty() {
            // Stages the state VJPs skipped (zero cotangents) still enter the sum.
            for i in (0..last_nz).filter(|&i| !has_res[i]) {
                residuals(i, &mut self.res, &self.tw);
            }
            let wide = ..last_nz * batch;
            field.vjp_params_with(
                Columns::with_trials(&self.tw[wide], &self.gids[wide]),
                &rec[..last_nz * n],
                &self.res[..last_nz * rb],
                &self.g[..last_nz * n],
                &mut self.grad,
                &mut self.ws_wide,
            );
            self.stats.vjp_param_evals += 1;
        }
    }

    /// One step of the adjoint ODE backward over forward step `idx`, split at saves.
    #[allow(clippy::needless_range_loop)]
    fn interpolating_step(&mut self, idx: usize, rec_at: Option<usize>) {
        let field = self.bw.field;
        let (dim, batch, n, s) = (self.blk.tape.dim, self.blk.tape.batch, self.n, self.s);
        let z = F::Scalar::zero();
        // Forward stage derivatives k_i = f(t_i, X_i) for the dense output.
        self.stage_times(idx);
        for b in 0..batch {
            self.hi[b] = self.blk.tape.step(b, idx).2;
        }
        for i in 0..s {
            let rec: &[F::Scalar] = match rec_at {
                Some(p) => &self.pool[(p + i) * n..(p + i + 1) * n],
                None => &self.rec[i * n..(i + 1) * n],
            };
            field.rhs(
                Columns::with_trials(&self.tw[i * batch..(i + 1) * batch], &self.gids[..batch]),
                rec,
                &mut self.kf[i * n..(i + 1) * n],
                &mut self.ws,
            );
            self.stats.rhs_evals += 1;
        }
        loop {
            // Next sub-interval per trial: down to the next dense save, or to t_n.
            let mut any = false;
            for b in 0..batch {
                let (t, h, _, _, active) = self.blk.tape.step(b, idx);
                let mut lo = t;
                if active && self.ptr[b] > 0 {
                    if let SaveSrc::Dense(m, th) = self.blk.tape.saves[b][self.ptr[b] - 1] {
                        if m == idx {
                            lo = t + F::Scalar::from_f64(th) * h;
                        }
                    }
                }
                self.lo[b] = lo;
                self.eta[b] = if active { self.hi[b] - lo } else { z };
                any |= active && self.hi[b] > t;
            }
            if !any {
                break;
            }
            // Adjoint RK sub-step over [lo, hi], backward.
            let kf = Stages {
                k: &self.kf,
                stride: n,
            };
            let x_n: &[F::Scalar] = match rec_at {
                Some(p) => &self.pool[p * n..(p + 1) * n],
                None => &self.rec[..n],
            };
            for i in 0..s {
                for q in 0..batch {
                    let b = self.order[q];
                    let (t, h, t_end, brk, active) = self.blk.tape.step(b, idx);
                    let cols = q * dim..(q + 1) * dim;
                    let ci = self.co.c[i];
                    let mut ti = if ci == F::Scalar::one() {
                        self.lo[b]
                    } else {
                        (self.hi[b] - ci * self.eta[b]).max(t)
                    };
                    ti = ti.min(t_end);
                    if brk && ti >= t_end {
                        ti = t_end.next_down();
                    }
                    self.tw[i * batch + q] = ti;
                    // Dense state x(ti).
                    let xi = &mut self.xw[i * n + q * dim..i * n + (q + 1) * dim];
                    if active && h > z {
                        let theta = ((ti - t) / h).as_f64().clamp(0.0, 1.0);
                        let w = self.co.dense_weights(theta);
                        rk::dense(&self.co, &w, h, &x_n[cols.clone()], kf, q * dim, xi);
                    } else {
                        xi.copy_from_slice(&x_n[cols.clone()]);
                    }
                    // Adjoint stage state Λ_i = λ + η Σ a_ij K_j, kept in g.
                    let (gk, gi) = (
                        Stages {
                            k: &self.big_k,
                            stride: n,
                        },
                        &mut self.g[i * n + q * dim..i * n + (q + 1) * dim],
                    );
                    rk::stage_state(&self.co, i, self.eta[b], &self.lam[cols], gk, q * dim, gi);
                }
                if self.co.b[i] == z && i == s - 1 {
                    continue;
                }
                let ki = &mut self.big_k[i * n..(i + 1) * n];
                ki.fill(z);
                field.vjp_state(
                    Columns::with_trials(&self.tw[i * batch..(i + 1) * batch], &self.gids[..batch]),
                    &self.xw[i * n..(i + 1) * n],
                    &self.g[i * n..(i + 1) * n],
                    ki,
                    &mut self.ws,
                );
                self.stats.vjp_state_evals += 1;
            }
            for q in 0..batch {
                let b = self.order[q];
                let cols = q * dim..(q + 1) * dim;
                for i in 0..s {
                    let bi = self.co.b[i];
                    // Scale Λ_i by η b_i for the parameter quadrature.
                    let w = self.eta[b] * bi;
                    for v in &mut self.g[i * n + q * dim..i * n + (q + 1) * dim] {
                        *v *= w;
                    }
                    if bi != z {
                        Cpu.axpy(
                            w,
                            &self.big_k[i * n + q * dim..i * n + (q + 1) * dim],
                            &mut self.lam[cols.clone()],
                        );
                    }
                }
            }
            if !self.grad.is_empty() {
                field.vjp_params(
                    Columns::with_trials(&self.tw, &self.gids),
                    &self.xw,
                    &self.g,
                    &mut self.grad,
                    &mut self.ws_wide,
                );
                self.stats.vjp_param_evals += 1;
            }
            // Jumps at the saves reached.
            for b in 0..batch {
                let (t, _, _, _, active) = self.blk.tape.step(b, idx);
                if !active || self.hi[b] <= t {
                    continue;
                }
                if self.lo[b] > t {
                    self.add_save(b);
                }
                self.hi[b] = self.lo[b];
            }
        }
    }
}

/// Whether every element of `v` is zero.
fn all_zero<T: Real>(v: &[T]) -> bool {
    v.iter().all(|x| x.is_zero())
}

/// Fills `v` with zeros, shared out among the team.
fn zero<T: Real>(v: &mut [T]) {
    let len = v.len();
    for_parts(v, 1, len, MIN_SHARED_WORK, &|_, part| part.fill(T::zero()));
}

/// Steps whose stage states every trial has stored: all of them when they fit, else the
/// stored ones rounded down to a checkpoint (where the recomputation starts); 0 without a
/// stage store.
fn stored_steps<T: Real>(tape: &Tape<T>, total: usize) -> usize {
    match tape.stages.as_ref() {
        None => 0,
        Some(st) if st.limit() >= total => total,
        Some(st) => st.limit() / tape.ckpt.stride * tape.ckpt.stride,
    }
}

/// Recomputes step `idx` of every trial from `x` (batched, as the forward pass did, with
/// the same Runge–Kutta arithmetic): stage states `X_0 .. X_{s-1}` into `rec`, the state
/// after the step into `x_out`. Without `need_out` the new state is not formed, and without
/// `need_last` neither is the last stage state, which saves the evaluations that feed only
/// them. Returns the number of batched right-hand-side evaluations.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn replay_step<F: VectorField>(
    field: &F,
    tape: &Tape<F::Scalar>,
    co: &Coeffs<F::Scalar>,
    idx: usize,
    x: &[F::Scalar],
    rec: &mut [F::Scalar],
    x_out: &mut [F::Scalar],
    k: &mut [F::Scalar],
    tev: &mut [F::Scalar],
    order: &[usize],
    gids: &[usize],
    ws: &mut F::Workspace,
    need_out: bool,
    need_last: bool,
) -> usize {
    let (dim, batch) = (tape.dim, tape.batch);
    let n = dim * batch;
    let s = co.s;
    // Stages whose derivative is needed: all but the last for FSAL methods (the last stage
    // state is the new state), all for the others.
    let (n_k, n_x) = match (co.fsal, need_out, need_last) {
        (true, true, _) | (true, false, true) => (s - 1, s),
        (true, false, false) => (s.saturating_sub(2), s - 1),
        (false, true, _) => (s, s),
        (false, false, _) => (s - 1, s),
    };
    // Columns are in `order`; the trials still stepping at `idx` come first (`m` of them),
    // and only they are evaluated (the others keep their final state).
    let m = order.partition_point(|&b| tape.n_steps(b) > idx);
    let mut evals = 0;
    for i in 0..n_x {
        let (done, rest) = k.split_at_mut(i * n);
        let ks = Stages { k: done, stride: n };
        let xi = &mut rec[i * n..(i + 1) * n];
        for (q, &b) in order.iter().enumerate() {
            let (t, h, t_end, brk, active) = tape.step(b, idx);
            let cols = q * dim..(q + 1) * dim;
            if !active {
                xi[cols.clone()].copy_from_slice(&x[cols]);
                tev[q] = t;
                continue;
            }
            rk::stage_state(co, i, h, &x[cols.clone()], ks, q * dim, &mut xi[cols]);
            tev[q] = rk::stage_time(t, h, co.c[i], t_end, brk);
        }
        if i < n_k && m > 0 {
            let cols = Columns::with_trials(&tev[..m], &gids[..m]);
            field.rhs(cols, &xi[..m * dim], &mut rest[..m * dim], ws);
            evals += 1;
        }
    }
    if !need_out {
        return evals;
    }
    if co.fsal {
        x_out.copy_from_slice(&rec[(s - 1) * n..s * n]);
    } else {
        let ks = Stages { k, stride: n };
        for (q, &b) in order.iter().enumerate() {
            let (_, h, _, _, active) = tape.step(b, idx);
            let cols = q * dim..(q + 1) * dim;
            if active {
                rk::solution(co, h, &x[cols.clone()], ks, q * dim, &mut x_out[cols]);
            } else {
                x_out[cols.clone()].copy_from_slice(&x[cols]);
            }
        }
    }
    evals
}
