//! The stepping loop of one batched solve.
//!
//! Trials that still run are packed side by side: position `p` of every state buffer holds
//! trial `ids[p]`, and a trial leaves the packing (and every product) as soon as it has
//! reached `t1` or failed. The work of a solve thus follows the sum of the trials' steps,
//! not the slowest trial times the batch. One iteration of the loop is a sequence of named
//! phases: [`compact`](Solver::compact), [`first_stage`](Solver::first_stage),
//! [`initial_step`](Solver::initial_step), [`plan_steps`](Solver::plan_steps),
//! [`stages`](Solver::stages), then [`control`](Solver::control) (error, accept or reject,
//! saves, records). Every combination of stages comes from the `rk` module.
//!
//! The loop knows nothing of gradients: it reports saves and accepted steps to a
//! [`Recorder`], which the adjoint's tape implements.

use num_traits::{Float, Zero};

use crate::backend::{for_parts, Backend, Cpu, MIN_SHARED_WORK};
use crate::controller::{initial_step_final, initial_step_guess, PiController};
use crate::field::{Columns, VectorField};
use crate::rk::{self, Coeffs, Stages};
use crate::scalar::Real;
use crate::solution::{FailureKind, Solution, Stats, StepRecord, Warning};
use crate::tableau::ButcherTableau;
use crate::trials::{Land, TrialState, Trials};

/// Where a saved state comes from, as reported to a [`Recorder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SavePoint {
    /// The initial state.
    Initial,
    /// The end of the step just accepted.
    End,
    /// The dense output of the step just accepted, at `θ = (t - t_n) / h_n`.
    Dense(f64),
}

/// Observer of the forward pass: told of every save and every accepted step, per trial
/// (its position in the solve's batch). Saves inside a step are reported before the step's
/// acceptance.
pub(crate) trait Recorder<T> {
    /// Trial `b` saved a state at its next save time.
    fn save(&mut self, b: usize, at: SavePoint);
    /// Trial `b` accepted a step of size `h` ending at `t_end` (on a breakpoint when
    /// `on_break`) with the new state `x_new`, which stays where it is, unchanged, until
    /// the round's [`end_round`](Self::end_round) (so that a recorder may copy it there).
    fn accept(&mut self, b: usize, h: T, t_end: T, on_break: bool, x_new: &[T]);
    /// The round's accepts are done.
    fn end_round(&mut self) {}
    /// Whether the recorder wants every accepted step's stage states
    /// ([`stages`](Self::stages)); asked once, before the first step.
    fn wants_stages(&self) -> bool {
        false
    }
    /// The stage states of the steps a round is about to accept, told once per round
    /// before their [`accept`](Self::accept)s: `accepted` lists `(b, p)`, trial `b` at packed
    /// column `p`, whose `X_i` (`i >= 1`) is `xs.col(i - 1, p * dim, dim)` (`X_0`, the state
    /// at the step's start, was told by the previous `accept`, or is the initial state).
    fn stages(&mut self, accepted: &[(usize, usize)], xs: Stages<'_, T>, dim: usize) {
        let _ = (accepted, xs, dim);
    }
}

/// Records nothing (a plain solve).
impl<T> Recorder<T> for () {
    fn save(&mut self, _: usize, _: SavePoint) {}
    fn accept(&mut self, _: usize, _: T, _: T, _: bool, _: &[T]) {}
}

/// Fixed or adaptive steps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<T> {
    Adaptive { rtol: T, atol: T },
    Fixed { dt: T },
}

/// Everything a solve needs, checked: built by the builder, split by trials for threads.
#[derive(Debug, Clone)]
pub(crate) struct Plan<T: Real> {
    pub(crate) tableau: &'static ButcherTableau,
    pub(crate) dim: usize,
    pub(crate) batch: usize,
    /// Index of this plan's trial 0 in the caller's batch.
    pub(crate) offset: usize,
    pub(crate) t0: T,
    pub(crate) t1: T,
    pub(crate) mode: Mode<T>,
    pub(crate) dt0: Option<T>,
    pub(crate) dt_min: T,
    pub(crate) dt_max: T,
    pub(crate) max_steps: usize,
    pub(crate) save_ts: Vec<T>,
    pub(crate) save_steps: bool,
    pub(crate) record_steps: bool,
    pub(crate) x0: Vec<T>,
    pub(crate) bps: Vec<Vec<T>>,
    pub(crate) controller: PiController,
}

impl<T: Real> Plan<T> {
    /// The plan of trials `range` alone.
    pub(crate) fn trials(&self, range: std::ops::Range<usize>) -> Plan<T> {
        Plan {
            batch: range.len(),
            offset: self.offset + range.start,
            x0: self.x0[range.start * self.dim..range.end * self.dim].to_vec(),
            bps: self.bps[range].to_vec(),
            save_ts: self.save_ts.clone(),
            ..*self
        }
    }
}

/// Called after every iteration with `(slowest running t, running trials, iterations)`.
pub(crate) type Report<'p> = &'p mut dyn FnMut(f64, usize, usize);

/// The state of one solve; see the module docs.
pub(crate) struct Solver<'a, F: VectorField, R> {
    field: &'a F,
    p: Plan<F::Scalar>,
    co: Coeffs<F::Scalar>,
    /// Per-trial state.
    tr: Trials<F::Scalar>,
    ws: F::Workspace,
    /// Packed positions: `ids[p]` is the trial at position `p`, `gids[p]` its index in the
    /// caller's batch; `m` positions are in use.
    ids: Vec<usize>,
    gids: Vec<usize>,
    m: usize,
    /// Packed states (`dim x batch`): current, stage, new. `xs` holds one stage state, or
    /// all of stages `1..s` (stage-major) when the recorder keeps them.
    x: Vec<F::Scalar>,
    xs: Vec<F::Scalar>,
    keep_stages: bool,
    xnew: Vec<F::Scalar>,
    /// Packed stage derivatives, stage-major, stride `dim x batch`.
    k: Vec<F::Scalar>,
    /// Stage times of the packed columns.
    t_eval: Vec<F::Scalar>,
    /// Subsets (first stage, initial step): positions, trials, times, states, results.
    sub_pos: Vec<usize>,
    sub_gid: Vec<usize>,
    sub_t: Vec<F::Scalar>,
    sub_x: Vec<F::Scalar>,
    sub_out: Vec<F::Scalar>,
    d1s: Vec<F::Scalar>,
    /// Per packed trial: error norm and first non-finite index of the attempted step.
    checks: Vec<(f64, Option<usize>)>,
    /// The round's accepted `(trial, position)`s, for a recorder that keeps stages.
    accepted: Vec<(usize, usize)>,
    /// Outputs, indexed by trial.
    out: Vec<F::Scalar>,
    x_final: Vec<F::Scalar>,
    stats: Stats,
    step_ts: Option<Vec<Vec<F::Scalar>>>,
    step_xs: Option<Vec<Vec<F::Scalar>>>,
    step_log: Option<Vec<Vec<StepRecord>>>,
    rec: R,
}

impl<'a, F: VectorField, R: Recorder<F::Scalar>> Solver<'a, F, R> {
    /// Allocates everything the loop needs (nothing is allocated inside it).
    pub(crate) fn new(field: &'a F, p: Plan<F::Scalar>, rec: R) -> Self {
        let (dim, batch) = (p.dim, p.batch);
        let n = dim * batch;
        let co = Coeffs::new(p.tableau);
        let z = F::Scalar::zero();
        let save_steps = p.save_steps;
        let keep_stages = rec.wants_stages();
        let step_xs = save_steps.then(|| {
            (0..batch)
                .map(|b| p.x0[b * dim..(b + 1) * dim].to_vec())
                .collect()
        });
        Solver {
            field,
            tr: Trials::new(batch, p.offset, p.t0, p.dt0),
            ws: field.workspace(batch),
            ids: (0..batch).collect(),
            gids: (0..batch).map(|b| p.offset + b).collect(),
            m: batch,
            x: p.x0.clone(),
            xs: vec![
                z;
                if keep_stages {
                    (co.s - 1).max(1) * n
                } else {
                    n
                }
            ],
            keep_stages,
            xnew: vec![z; n],
            k: vec![z; co.s * n],
            t_eval: vec![p.t0; batch],
            sub_pos: Vec::with_capacity(batch),
            sub_gid: Vec::with_capacity(batch),
            sub_t: Vec::with_capacity(batch),
            sub_x: vec![z; n],
            sub_out: vec![z; n],
            d1s: vec![z; batch],
            checks: vec![(0.0, None); batch],
            accepted: Vec::with_capacity(batch),
            out: vec![F::Scalar::nan(); p.save_ts.len() * n],
            x_final: p.x0.clone(),
            stats: Stats::default(),
            step_ts: save_steps.then(|| vec![vec![p.t0]; batch]),
            step_xs,
            step_log: p.record_steps.then(|| vec![Vec::new(); batch]),
            co,
            p,
            rec,
        }
    }

    /// Runs the loop to the end; returns the solution (failed trials included) and the
    /// recorder.
    pub(crate) fn run(mut self, mut report: Option<Report<'_>>) -> (Solution<F::Scalar>, R) {
        self.save_initial();
        loop {
            for b in 0..self.p.batch {
                self.tr.check_budget(b, self.p.max_steps);
            }
            self.compact();
            if self.m == 0 {
                break;
            }
            self.stats.steps += 1;
            self.first_stage();
            if let Mode::Adaptive { rtol, atol } = self.p.mode {
                self.initial_step(rtol, atol);
            }
            self.plan_steps();
            self.compact();
            if self.m > 0 {
                self.stages();
                self.control();
            }
            if let Some(r) = report.as_mut() {
                let (tmin, run) = self.tr.progress();
                r(tmin, run, self.stats.steps);
            }
        }
        self.finish()
    }

    #[inline]
    fn n(&self) -> usize {
        self.p.dim * self.p.batch
    }

    /// Smallest step allowed at time `t`.
    #[inline]
    fn dt_floor(&self, t: F::Scalar) -> F::Scalar {
        self.p
            .dt_min
            .max(F::Scalar::from_f64(16.0 * F::Scalar::eps()) * t.abs())
    }

    /// The next point a step of trial `b` must land on.
    #[inline]
    fn next_target(&self, b: usize) -> (F::Scalar, Land) {
        match self.p.bps[b].get(self.tr.bp_idx[b]) {
            Some(&tb) => (tb, Land::Break),
            None => (self.p.t1, Land::End),
        }
    }

    /// Saves at `t0`.
    fn save_initial(&mut self) {
        let (dim, n) = (self.p.dim, self.n());
        for b in 0..self.p.batch {
            while self.tr.save_idx[b] < self.p.save_ts.len()
                && self.p.save_ts[self.tr.save_idx[b]] <= self.p.t0
            {
                let o = self.tr.save_idx[b] * n + b * dim;
                self.out[o..o + dim].copy_from_slice(&self.x[b * dim..(b + 1) * dim]);
                self.tr.save_idx[b] += 1;
                self.rec.save(b, SavePoint::Initial);
            }
        }
    }

    /// Drops the trials that stopped from the packing, keeping the order of the others;
    /// their last state goes to `x_final`.
    fn compact(&mut self) {
        let (dim, n) = (self.p.dim, self.n());
        let mut q = 0;
        for p in 0..self.m {
            let b = self.ids[p];
            if !self.tr.running(b) {
                self.x_final[b * dim..(b + 1) * dim]
                    .copy_from_slice(&self.x[p * dim..(p + 1) * dim]);
                continue;
            }
            if q != p {
                self.ids[q] = b;
                self.gids[q] = self.gids[p];
                self.x.copy_within(p * dim..(p + 1) * dim, q * dim);
                // The first stage carries over between steps (FSAL); the others do not.
                self.k.copy_within(p * dim..(p + 1) * dim, q * dim);
            }
            q += 1;
        }
        debug_assert!(n >= q * dim);
        self.m = q;
    }

    /// Evaluates `f` on the subset of positions in `sub_pos` (states in `sub_x`, times in
    /// `sub_t`) into `sub_out`.
    fn eval_subset(&mut self) {
        let (dim, c) = (self.p.dim, self.sub_pos.len());
        self.sub_gid.clear();
        for &p in &self.sub_pos {
            self.sub_gid.push(self.gids[p]);
        }
        self.field.rhs(
            Columns::with_trials(&self.sub_t, &self.sub_gid),
            &self.sub_x[..c * dim],
            &mut self.sub_out[..c * dim],
            &mut self.ws,
        );
        self.count_eval(c);
    }

    fn count_eval(&mut self, columns: usize) {
        self.stats.rhs_evals += 1;
        self.stats.columns += columns;
    }

    /// First stage `k_0 = f(t, x)` where FSAL cannot supply it (start, after a breakpoint,
    /// methods without FSAL).
    fn first_stage(&mut self) {
        let dim = self.p.dim;
        self.sub_pos.clear();
        self.sub_t.clear();
        for p in 0..self.m {
            let b = self.ids[p];
            if self.tr.need_k1[b] {
                self.sub_x[self.sub_pos.len() * dim..][..dim]
                    .copy_from_slice(&self.x[p * dim..(p + 1) * dim]);
                self.sub_pos.push(p);
                self.sub_t.push(self.tr.t[b]);
            }
        }
        if self.sub_pos.is_empty() {
            return;
        }
        self.eval_subset();
        for q in 0..self.sub_pos.len() {
            let p = self.sub_pos[q];
            let b = self.ids[p];
            self.k[p * dim..(p + 1) * dim].copy_from_slice(&self.sub_out[q * dim..(q + 1) * dim]);
            self.tr.need_k1[b] = false;
            self.tr.stats[b].rhs_evals += 1;
        }
    }

    /// Hairer's initial step, at `t0` and after every breakpoint, for the trials that need
    /// it (one extra evaluation of `f` for them).
    fn initial_step(&mut self, rtol: F::Scalar, atol: F::Scalar) {
        let dim = self.p.dim;
        let dimt = F::Scalar::from_usize(dim);
        self.sub_pos.clear();
        self.sub_t.clear();
        for p in 0..self.m {
            let b = self.ids[p];
            if !self.tr.need_init[b] {
                continue;
            }
            let (x, k0) = (
                &self.x[p * dim..(p + 1) * dim],
                &self.k[p * dim..(p + 1) * dim],
            );
            let (mut d0, mut d1) = (F::Scalar::zero(), F::Scalar::zero());
            for i in 0..dim {
                let sc = atol + rtol * x[i].abs();
                d0 += (x[i] / sc).powi(2);
                d1 += (k0[i] / sc).powi(2);
            }
            let (d0, d1) = ((d0 / dimt).sqrt(), (d1 / dimt).sqrt());
            self.d1s[b] = d1;
            let (target, kind) = self.next_target(b);
            let t = self.tr.t[b];
            let h0 = F::Scalar::from_f64(initial_step_guess(d0.as_f64(), d1.as_f64()))
                .min(target - t)
                .min(self.p.dt_max);
            self.tr.h[b] = h0;
            let q = self.sub_pos.len();
            let xs = &mut self.sub_x[q * dim..(q + 1) * dim];
            xs.copy_from_slice(x);
            Cpu.axpy(h0, k0, xs);
            let te = t + h0;
            self.sub_t.push(if kind == Land::Break && te >= target {
                target.next_down()
            } else {
                te.min(target)
            });
            self.sub_pos.push(p);
        }
        if self.sub_pos.is_empty() {
            return;
        }
        self.eval_subset();
        let order = self.p.tableau.order;
        for q in 0..self.sub_pos.len() {
            let p = self.sub_pos[q];
            let b = self.ids[p];
            self.tr.stats[b].rhs_evals += 1;
            let (x, k0) = (
                &self.x[p * dim..(p + 1) * dim],
                &self.k[p * dim..(p + 1) * dim],
            );
            let f1 = &self.sub_out[q * dim..(q + 1) * dim];
            let mut d2 = F::Scalar::zero();
            for i in 0..dim {
                let sc = atol + rtol * x[i].abs();
                d2 += ((f1[i] - k0[i]) / sc).powi(2);
            }
            let h = self.tr.h[b];
            let d2 = (d2 / dimt).sqrt() / h;
            let hh = initial_step_final(h.as_f64(), self.d1s[b].as_f64(), d2.as_f64(), order);
            self.tr.h_next[b] = F::Scalar::from_f64(hh)
                .min(self.p.dt_max)
                .max(self.dt_floor(self.tr.t[b]));
            self.tr.reset_controller(b);
        }
    }

    /// This step's size and end, per running trial: adaptive steps clipped to the next
    /// breakpoint or `t1`, fixed steps on the grid `t0 + n dt`.
    fn plan_steps(&mut self) {
        let eps = F::Scalar::eps();
        for p in 0..self.m {
            let b = self.ids[p];
            let (target, kind) = self.next_target(b);
            let t = self.tr.t[b];
            match self.p.mode {
                Mode::Adaptive { .. } => {
                    let hb = self.tr.h_next[b];
                    if target - t <= hb * F::Scalar::from_f64(1.001) {
                        self.tr.h[b] = target - t;
                        self.tr.t_end[b] = target;
                        self.tr.land[b] = kind;
                    } else {
                        self.tr.h[b] = hb;
                        self.tr.t_end[b] = t + hb;
                        self.tr.land[b] = Land::Free;
                    }
                }
                Mode::Fixed { dt } => {
                    let g = F::Scalar::from_f64(
                        self.p.t0.as_f64() + (self.tr.grid_n[b] + 1) as f64 * dt.as_f64(),
                    );
                    let tol =
                        F::Scalar::from_f64((1e-9 * dt.as_f64()).max(8.0 * eps * t.abs().as_f64()));
                    if target <= g + tol {
                        self.tr.t_end[b] = target;
                        self.tr.land[b] = kind;
                        self.tr.grid_next[b] = (target - g).abs() <= tol;
                    } else {
                        self.tr.t_end[b] = g;
                        self.tr.land[b] = Land::Free;
                        self.tr.grid_next[b] = true;
                    }
                    self.tr.h[b] = self.tr.t_end[b] - t;
                }
            }
            let h = self.tr.h[b];
            if self.tr.t_end[b] <= t || Trials::is_zero_step(h) {
                let floor = self.dt_floor(t);
                self.tr.underflow(b, floor, h);
            }
        }
    }

    /// Stages `1..s` of every packed trial, one batched evaluation each.
    fn stages(&mut self) {
        let (dim, n, m) = (self.p.dim, self.n(), self.m);
        for i in 1..self.co.s {
            let (done, rest) = self.k.split_at_mut(i * n);
            let ks = Stages { k: done, stride: n };
            let o = if self.keep_stages { (i - 1) * n } else { 0 };
            let xs = &mut self.xs[o..o + n];
            for p in 0..m {
                let b = self.ids[p];
                let (t, h, t_end) = (self.tr.t[b], self.tr.h[b], self.tr.t_end[b]);
                let cols = p * dim..(p + 1) * dim;
                let x = &self.x[cols.clone()];
                rk::stage_state(&self.co, i, h, x, ks, p * dim, &mut xs[cols]);
                self.t_eval[p] =
                    rk::stage_time(t, h, self.co.c[i], t_end, self.tr.land[b] == Land::Break);
            }
            self.field.rhs(
                Columns::with_trials(&self.t_eval[..m], &self.gids[..m]),
                &xs[..m * dim],
                &mut rest[..m * dim],
                &mut self.ws,
            );
            self.count_eval(m);
            for p in 0..m {
                self.tr.stats[self.ids[p]].rhs_evals += 1;
            }
        }
        if self.co.fsal && self.keep_stages {
            // The last stage state is the solution (kept in place for the recorder).
            let o = (self.co.s - 2) * n;
            self.xnew[..m * dim].copy_from_slice(&self.xs[o..o + m * dim]);
        } else if self.co.fsal {
            // The last stage state is the solution.
            std::mem::swap(&mut self.xs, &mut self.xnew);
        } else {
            let ks = Stages {
                k: &self.k,
                stride: n,
            };
            for p in 0..m {
                let cols = p * dim..(p + 1) * dim;
                let h = self.tr.h[self.ids[p]];
                rk::solution(
                    &self.co,
                    h,
                    &self.x[cols.clone()],
                    ks,
                    p * dim,
                    &mut self.xnew[cols],
                );
            }
        }
    }

    /// Error control, accept or reject, saves and records, per packed trial.
    fn control(&mut self) {
        let (dim, n) = (self.p.dim, self.n());
        let adaptive = matches!(self.p.mode, Mode::Adaptive { .. });
        let q = self.p.tableau.error_order.map_or(1.0, |o| o as f64 + 1.0);
        // Every packed trial's error norm and first non-finite index, shared out among
        // the team (each trial's arithmetic is its own, whoever computes it).
        {
            let (x, xnew, k, co, h, ids) = (
                &self.x, &self.xnew, &self.k, &self.co, &self.tr.h, &self.ids,
            );
            let mode = &self.p.mode;
            let checks = &mut self.checks[..self.m];
            let work = checks.len() * dim * co.s;
            for_parts(checks, 1, work, MIN_SHARED_WORK, &|start, part| {
                for (i, c) in part.iter_mut().enumerate() {
                    let p = start + i;
                    let cols = p * dim..(p + 1) * dim;
                    let err = match *mode {
                        Mode::Adaptive { rtol, atol } => rk::error_norm(
                            co,
                            h[ids[p]],
                            rtol,
                            atol,
                            &x[cols.clone()],
                            &xnew[cols.clone()],
                            Stages { k, stride: n },
                            p * dim,
                        ),
                        Mode::Fixed { .. } => f64::NAN,
                    };
                    *c = (err, xnew[cols].iter().position(|v| !v.is_finite()));
                }
            });
        }
        let accepts = |(err, nonfinite): (f64, Option<usize>)| {
            nonfinite.is_none() && (!adaptive || err <= 1.0)
        };
        if self.keep_stages {
            // The stage states of every step this round accepts, in one pass.
            self.accepted.clear();
            for p in 0..self.m {
                if accepts(self.checks[p]) {
                    self.accepted.push((self.ids[p], p));
                }
            }
            let xs = Stages {
                k: &self.xs,
                stride: n,
            };
            self.rec.stages(&self.accepted, xs, dim);
        }
        for p in 0..self.m {
            let b = self.ids[p];
            let h = self.tr.h[b];
            let (err, nonfinite) = self.checks[p];
            let accept = accepts(self.checks[p]);
            if let Some(log) = self.step_log.as_mut() {
                log[b].push(StepRecord {
                    t: self.tr.t[b].as_f64(),
                    dt: h.as_f64(),
                    err,
                    accepted: accept,
                });
            }
            if accept {
                self.accept(p, err, q, adaptive);
            } else if adaptive {
                self.reject(b, err, q);
            } else {
                let index = nonfinite.unwrap_or(0);
                self.tr.fail(b, FailureKind::NonFinite { index }, h);
            }
        }
        self.rec.end_round();
    }

    /// A rejected adaptive step: shrink and retry from the same state.
    fn reject(&mut self, b: usize, err: f64, q: f64) {
        self.tr.stats[b].rejected += 1;
        self.stats.rejected += 1;
        let fac = self.p.controller.reject_factor(err, q);
        let h = self.tr.h[b];
        self.tr.h_next[b] = h * F::Scalar::from_f64(fac);
        self.tr.after_reject[b] = true;
        let floor = self.dt_floor(self.tr.t[b]);
        let hn = self.tr.h_next[b];
        if hn < floor || hn <= F::Scalar::zero() {
            self.tr.underflow(b, floor, hn);
        }
    }

    /// An accepted step of the trial at position `p`: saves in `(t, t_end]` from the dense
    /// output, the new state, the record, the next step's size.
    fn accept(&mut self, p: usize, err: f64, q: f64, adaptive: bool) {
        let (dim, n, s) = (self.p.dim, self.n(), self.co.s);
        let b = self.ids[p];
        let cols = p * dim..(p + 1) * dim;
        let (t, h, t_end, land) = (
            self.tr.t[b],
            self.tr.h[b],
            self.tr.t_end[b],
            self.tr.land[b],
        );
        self.tr.stats[b].accepted += 1;
        self.stats.accepted += 1;
        let n_save = self.p.save_ts.len();
        while self.tr.save_idx[b] < n_save && self.p.save_ts[self.tr.save_idx[b]] <= t_end {
            let ts = self.p.save_ts[self.tr.save_idx[b]];
            let o = self.tr.save_idx[b] * n + b * dim;
            let dst = &mut self.out[o..o + dim];
            if ts >= t_end {
                dst.copy_from_slice(&self.xnew[cols.clone()]);
                self.rec.save(b, SavePoint::End);
            } else {
                let theta = ((ts - t) / h).as_f64();
                self.rec.save(b, SavePoint::Dense(theta));
                let w = self.co.dense_weights(theta);
                let ks = Stages {
                    k: &self.k,
                    stride: n,
                };
                rk::dense(&self.co, &w, h, &self.x[cols.clone()], ks, p * dim, dst);
            }
            self.tr.save_idx[b] += 1;
        }
        self.x[cols.clone()].copy_from_slice(&self.xnew[cols.clone()]);
        self.rec
            .accept(b, h, t_end, land == Land::Break, &self.x[cols.clone()]);
        self.tr.t[b] = t_end;
        if let (Some(st), Some(sx)) = (self.step_ts.as_mut(), self.step_xs.as_mut()) {
            st[b].push(t_end);
            sx[b].extend_from_slice(&self.x[cols.clone()]);
        }
        if self.tr.grid_next[b] {
            self.tr.grid_n[b] += 1;
        }
        match land {
            Land::End => {
                self.tr.state[b] = TrialState::Done;
                return;
            }
            Land::Break => {
                self.tr.bp_idx[b] += 1;
                self.tr.need_k1[b] = true;
                self.tr.need_init[b] = adaptive;
            }
            Land::Free => {
                if self.co.fsal {
                    self.k
                        .copy_within((s - 1) * n + p * dim..(s - 1) * n + (p + 1) * dim, p * dim);
                } else {
                    self.tr.need_k1[b] = true;
                }
            }
        }
        if adaptive {
            let c = &self.p.controller;
            let fac = c.accept_factor(err, self.tr.err_prev[b], q, self.tr.after_reject[b]);
            self.tr.err_prev[b] = err.max(crate::controller::ERR_PREV_INIT);
            self.tr.after_reject[b] = false;
            let hn = (h * F::Scalar::from_f64(fac)).min(self.p.dt_max);
            self.tr.h_next[b] = hn;
            let floor = self.dt_floor(t_end);
            if land == Land::Free && hn < floor {
                self.tr.underflow(b, floor, hn);
            }
        }
    }

    /// The solution of every trial (failed ones up to their last good step).
    fn finish(self) -> (Solution<F::Scalar>, R) {
        let sol = Solution {
            dim: self.p.dim,
            batch: self.p.batch,
            status: self.tr.statuses(),
            saved: self.tr.save_idx,
            t_final: self.tr.t,
            ts: self.p.save_ts,
            xs: self.out,
            x_final: self.x_final,
            stats: self.stats,
            trial_stats: self.tr.stats,
            step_ts: self.step_ts,
            step_xs: self.step_xs,
            step_log: self.step_log,
            warnings: Vec::new(),
        };
        (sol, self.rec)
    }
}

/// Warnings about the options that the plan can tell before the first step.
pub(crate) fn plan_warnings<T: Real>(mode: &Mode<T>) -> Vec<Warning> {
    let mut w = Vec::new();
    if let Mode::Adaptive { rtol, .. } = mode {
        let floor = T::ROUNDOFF_RTOL;
        // Compared in `T`: the floor written as an `f32` literal is not below itself.
        if *rtol < T::from_f64(floor) {
            w.push(Warning::ToleranceBelowPrecision {
                rtol: rtol.as_f64(),
                floor,
                scalar: T::NAME,
            });
        }
    }
    w
}
