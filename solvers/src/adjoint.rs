//! Gradients through the solver: the discrete adjoint (default) and an interpolating
//! continuous adjoint, both with checkpointing.
//!
//! A solve run with [`Integrate::run_with_gradient`](crate::Integrate::run_with_gradient)
//! records, per trial, the accepted steps (start time, size, whether the step ended on a
//! breakpoint), where each save came from, and a bounded number of checkpointed states. The
//! returned [`Backward`] turns loss gradients at the save times into `dL/dθ` and `dL/dx0`.
//!
//! # Discrete adjoint ([`Adjoint::Discrete`], the default)
//!
//! The exact gradient of the discrete solution the forward pass computed: a reverse sweep
//! through every accepted step of every trial and through every Runge–Kutta stage, with the
//! step sizes taken as constants (the controller is not differentiated). Dense-output saves
//! are differentiated through the interpolant. The result equals finite differences of the
//! computed solution (with the same steps) up to round-off, whatever the tolerances.
//!
//! # Interpolating adjoint ([`Adjoint::Interpolating`])
//!
//! Integrates the adjoint ODE `dλ/dt = -(∂f/∂x)ᵀ λ`, `dL/dθ = ∫ (∂f/∂θ)ᵀ λ dt` backward with
//! the same Runge–Kutta method on the forward step grid (split at save times), reading
//! `x(t)` from the forward dense output. It is an **approximation** of the gradient of the
//! exact flow, not the gradient of the computed solution: its error shrinks with the
//! tolerance (at the method's order) but does not vanish, so an optimiser sees gradients
//! that disagree with finite differences of its own loss by `O(tol)`. Prefer it when you
//! want the gradient of the continuous-time model rather than of one discretisation (to
//! compare with analytic results, say). Unlike the "backsolve" adjoints of other libraries,
//! it never integrates the state backward, which for contracting dynamics (leaky RNNs) is
//! unstable and gives wrong gradients; backsolve is therefore not offered. It needs a
//! method with dense output (not Euler) and costs one more right-hand side per stage than
//! the discrete adjoint.
//!
//! # Checkpointing ([`Checkpoints`])
//!
//! Memory is bounded by a number of stored states (each `dim x batch`): the forward pass
//! keeps at most that many checkpoints (doubling the stride between them when full), and
//! the reverse sweep recomputes the steps between two checkpoints from the earlier one, into
//! a pool of at most as many states again; when a segment does not fit, it is split
//! recursively (more recomputation, the same memory). The gradient does not depend on the
//! checkpoint count: recomputation repeats the forward arithmetic exactly.

use num_traits::{Float, One, Zero};

use crate::backend::{Backend, Cpu};
use crate::error::SolveError;
use crate::field::{Columns, Differentiable, ParamView, VectorField};
use crate::gradient::{Adjoint, Checkpoints};
use crate::integrate::{finish, Integrate};
use crate::rk::{self, Coeffs, Stages, MAX_STAGES};
use crate::scalar::Real;
use crate::solution::Solution;
use crate::solve::{Recorder, SavePoint};
use crate::tableau::ButcherTableau;

/// Where a saved state came from in the forward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SaveSrc {
    /// The initial state.
    Initial,
    /// The end of accepted step `n` (`x_{n+1}`).
    End(usize),
    /// Dense output inside accepted step `n` at `θ = (t - t_n) / h_n`.
    Dense(usize, f64),
}

/// Checkpointed states at step indices `0, stride, 2 stride, ...` (per trial, its own
/// accepted-step index); the stride doubles when the slots are full.
#[derive(Debug)]
pub(crate) struct CheckpointStore<T> {
    slots: Vec<Vec<T>>,
    cap: Option<usize>,
    stride: usize,
    dim: usize,
    len: usize,
}

impl<T: Real> CheckpointStore<T> {
    fn new(cap: Option<usize>, dim: usize, batch: usize) -> Self {
        CheckpointStore {
            slots: Vec::new(),
            cap,
            stride: 1,
            dim,
            len: dim * batch,
        }
    }

    /// Trial `b` has reached its step index `idx` with state `col`.
    pub(crate) fn record(&mut self, b: usize, idx: usize, col: &[T]) {
        loop {
            if idx % self.stride != 0 {
                return;
            }
            let j = idx / self.stride;
            if let Some(cap) = self.cap {
                if j >= cap {
                    // Thin: keep every other checkpoint.
                    self.stride *= 2;
                    let keep = cap.div_ceil(2);
                    for i in 1..keep {
                        if 2 * i < self.slots.len() {
                            self.slots.swap(i, 2 * i);
                        }
                    }
                    continue;
                }
            }
            while self.slots.len() <= j {
                self.slots.push(vec![T::nan(); self.len]);
            }
            self.slots[j][b * self.dim..(b + 1) * self.dim].copy_from_slice(col);
            return;
        }
    }

    /// Number of states allocated.
    pub(crate) fn n_states(&self) -> usize {
        self.slots.len()
    }
}

/// What the forward pass records for the reverse sweep.
#[derive(Debug)]
pub(crate) struct Tape<T> {
    pub(crate) dim: usize,
    pub(crate) batch: usize,
    /// Per trial: `t_0 .. t_S` (accepted step boundaries).
    pub(crate) ts: Vec<Vec<T>>,
    /// Per trial: step sizes.
    pub(crate) hs: Vec<Vec<T>>,
    /// Per trial: whether step `n` ended on a breakpoint.
    pub(crate) brk: Vec<Vec<bool>>,
    /// Per trial: the source of every save, in save order.
    pub(crate) saves: Vec<Vec<SaveSrc>>,
    pub(crate) ckpt: CheckpointStore<T>,
    pub(crate) pool_states: usize,
    pub(crate) x_final: Vec<T>,
}

impl<T: Real> Tape<T> {
    pub(crate) fn new(
        dim: usize,
        batch: usize,
        t0: T,
        x0: &[T],
        checkpoints: Checkpoints,
        stages: usize,
    ) -> Self {
        let state_bytes = dim * batch * std::mem::size_of::<T>();
        let (cap, pool) = checkpoints.budget(state_bytes, stages);
        let mut ckpt = CheckpointStore::new(cap, dim, batch);
        for b in 0..batch {
            ckpt.record(b, 0, &x0[b * dim..(b + 1) * dim]);
        }
        Tape {
            dim,
            batch,
            ts: vec![vec![t0]; batch],
            hs: vec![Vec::new(); batch],
            brk: vec![Vec::new(); batch],
            saves: vec![Vec::new(); batch],
            ckpt,
            pool_states: pool,
            x_final: Vec::new(),
        }
    }

    fn n_steps(&self, b: usize) -> usize {
        self.hs[b].len()
    }

    /// `(t, h, t_end, ends_on_break, active)` of trial `b`'s step `n`.
    #[inline]
    fn step(&self, b: usize, n: usize) -> (T, T, T, bool, bool) {
        if n < self.hs[b].len() {
            (
                self.ts[b][n],
                self.hs[b][n],
                self.ts[b][n + 1],
                self.brk[b][n],
                true,
            )
        } else {
            let t = *self.ts[b].last().expect("t0 is always recorded");
            (t, T::zero(), t, false, false)
        }
    }
}

/// The tape is what the forward pass reports to.
impl<T: Real> Recorder<T> for Tape<T> {
    fn save(&mut self, b: usize, at: SavePoint) {
        // The step being taken is the trial's accepted count.
        let idx = self.hs[b].len();
        self.saves[b].push(match at {
            SavePoint::Initial => SaveSrc::Initial,
            SavePoint::End => SaveSrc::End(idx),
            SavePoint::Dense(theta) => SaveSrc::Dense(idx, theta),
        });
    }

    fn accept(&mut self, b: usize, h: T, t_end: T, brk: bool, x_new: &[T]) {
        self.hs[b].push(h);
        self.brk[b].push(brk);
        self.ts[b].push(t_end);
        let idx = self.hs[b].len();
        self.ckpt.record(b, idx, x_new);
    }
}

/// Counts of the reverse sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdjointStats {
    /// Batched right-hand-side evaluations (recomputation).
    pub rhs_evals: usize,
    /// Batched state VJP calls.
    pub vjp_state_evals: usize,
    /// Parameter VJP calls (each covers the stages of a step side by side).
    pub vjp_param_evals: usize,
    /// Steps recomputed from checkpoints (a step recomputed twice counts twice).
    pub recomputed_steps: usize,
    /// States (`dim x batch` each) held by checkpoints and the recomputation pool.
    pub stored_states: usize,
}

/// Gradients of a loss with respect to the parameters and the initial state.
#[derive(Debug, Clone)]
pub struct Gradients<T> {
    /// `dL/dθ`, summed over trials, in the layout of [`views`](Self::views).
    pub params: Vec<T>,
    /// `dL/dx0`, `dim x batch` column-major (one column per trial).
    pub x0: Vec<T>,
    /// Named blocks of [`params`](Self::params).
    pub views: Vec<ParamView>,
    /// Counts of the reverse sweep.
    pub stats: AdjointStats,
    dim: usize,
}

impl<T> Gradients<T> {
    /// The gradient block named `name` (e.g. `"W"`), if the field has one.
    pub fn param(&self, name: &str) -> Option<&[T]> {
        self.views
            .iter()
            .find(|v| v.name == name)
            .map(|v| &self.params[v.offset..v.offset + v.len()])
    }
    /// `dL/dx0` of trial `b`.
    pub fn x0_trial(&self, b: usize) -> &[T] {
        &self.x0[b * self.dim..(b + 1) * self.dim]
    }
}

/// The tape of one block of trials (one per thread of the forward solve).
#[derive(Debug)]
pub(crate) struct Block<T> {
    /// Index of the block's first trial in the batch.
    pub(crate) offset: usize,
    pub(crate) tape: Tape<T>,
}

/// The reverse pass of a solve: call [`backward`](Self::backward) with the loss gradient at
/// the save times, as often as needed (the tape is not consumed).
///
/// # Discrete adjoint ([`Adjoint::Discrete`], the default)
///
/// The exact gradient of the discrete solution the forward pass computed: a reverse sweep
/// through every accepted step of every trial and through every Runge–Kutta stage, with the
/// step sizes taken as constants (the controller is not differentiated). Dense-output saves
/// are differentiated through the interpolant. The replay of a step calls the same
/// Runge–Kutta arithmetic as the forward pass, so the result equals finite differences of
/// the computed solution (with the same steps) up to round-off, whatever the tolerances.
///
/// # Interpolating adjoint ([`Adjoint::Interpolating`])
///
/// Integrates the adjoint ODE `dλ/dt = -(∂f/∂x)ᵀ λ`, `dL/dθ = ∫ (∂f/∂θ)ᵀ λ dt` backward with
/// the same Runge–Kutta method on the forward step grid (split at save times), reading
/// `x(t)` from the forward dense output. It is an **approximation** of the gradient of the
/// exact flow, not the gradient of the computed solution: its error shrinks with the
/// tolerance (at the method's order) but does not vanish, so an optimiser sees gradients
/// that disagree with finite differences of its own loss by `O(tol)`. Prefer it when you
/// want the gradient of the continuous-time model rather than of one discretisation. Unlike
/// the "backsolve" adjoints of other libraries, it never integrates the state backward,
/// which for contracting dynamics (leaky RNNs) is unstable and gives wrong gradients;
/// backsolve is therefore not offered. It needs a method with dense output (not Euler) and
/// costs one more right-hand side per stage than the discrete adjoint.
///
/// # Checkpointing ([`Checkpoints`])
///
/// Memory is bounded by a number of stored states (each `dim x batch`): the forward pass
/// keeps at most that many checkpoints (doubling the stride between them when full), and
/// the reverse sweep recomputes the steps between two checkpoints from the earlier one, into
/// a pool of at most as many states again; when a segment does not fit, it is split
/// recursively (more recomputation, the same memory). The gradient does not depend on the
/// checkpoint count: recomputation repeats the forward arithmetic exactly.
///
/// # Threads
///
/// A forward solve split over threads records one tape per block of trials; `backward`
/// reverses the blocks on as many threads and sums their parameter gradients in block
/// order (deterministic for a fixed thread count).
pub struct Backward<'a, F: VectorField> {
    pub(crate) field: &'a F,
    pub(crate) tableau: &'static ButcherTableau,
    pub(crate) blocks: Vec<Block<F::Scalar>>,
    pub(crate) mode: Adjoint,
    pub(crate) n_save: usize,
    pub(crate) dim: usize,
    pub(crate) batch: usize,
}

impl<F: Differentiable> std::fmt::Debug for Backward<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backward")
            .field("method", &self.tableau.name)
            .field("mode", &self.mode)
            .field("blocks", &self.blocks.len())
            .field("checkpoints", &self.checkpoints_stored())
            .finish()
    }
}

impl<'a, F: Differentiable> Integrate<'a, F> {
    /// Which gradient [`run_with_gradient`](Self::run_with_gradient) prepares (default
    /// [`Adjoint::Discrete`], the exact gradient of the computed solution).
    pub fn adjoint(mut self, adjoint: Adjoint) -> Self {
        self.adjoint = adjoint;
        self
    }

    /// Memory of the gradient (default [`Checkpoints::Memory`] with
    /// [`DEFAULT_CHECKPOINT_BYTES`](crate::DEFAULT_CHECKPOINT_BYTES)).
    pub fn checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Solves and records what the reverse pass needs; returns the solution and a
    /// [`Backward`] whose [`backward`](Backward::backward) gives `dL/dθ` and `dL/dx0` for
    /// loss gradients at the save times.
    ///
    /// ```
    /// use neurode_solvers::{integrate, VjpParams};
    /// use neurode_solvers::testing::LinearSystem;
    ///
    /// // L = sum of x(1) for dx/dt = A x.
    /// let field = LinearSystem::<f64>::rotation_decay(0.5, 2.0);
    /// let (sol, tape) = integrate(&field, (0.0, 1.0))
    ///     .x0(vec![1.0, 0.0])
    ///     .save_at(vec![1.0])
    ///     .run_with_gradient()?;
    /// let grads = tape.backward(&[1.0, 1.0])?;
    /// assert_eq!(grads.param("A").unwrap().len(), 4);
    /// assert_eq!(grads.x0.len(), 2);
    /// # let _ = sol;
    /// # Ok::<(), neurode_solvers::SolveError<f64>>(())
    /// ```
    ///
    /// Errors, besides those of [`run`](Self::run): a failed trial (no gradient of a
    /// partial solution), `allow_failures` together with a gradient, and an interpolating
    /// adjoint with a method that has no dense output.
    #[allow(clippy::type_complexity)]
    pub fn run_with_gradient(
        mut self,
    ) -> Result<(Solution<F::Scalar>, Backward<'a, F>), SolveError<F::Scalar>> {
        type E<T> = SolveError<T>;
        let plan = self.plan()?;
        if self.allow_failures {
            return Err(E::invalid(
                "allow_failures",
                true,
                "gradients need every trial to reach t1; drop `.allow_failures(true)` or \
                 solve the failing trials separately",
            ));
        }
        if self.adjoint == Adjoint::Interpolating && plan.tableau.dense.is_none() {
            return Err(E::invalid(
                "adjoint",
                self.adjoint.name(),
                format!(
                    "the interpolating adjoint reads the forward dense output, which stepper \
                     {} does not have; use Adjoint::Discrete or Stepper::Tsit5",
                    plan.tableau.name
                ),
            ));
        }
        if let Checkpoints::States(0) = self.checkpoints {
            return Err(E::invalid(
                "checkpoints",
                "States(0)",
                "keep at least one state (the initial one)",
            ));
        }
        let (tableau, n_save, dim, batch) =
            (plan.tableau, plan.save_ts.len(), plan.dim, plan.batch);
        let ck = self.checkpoints;
        let (sol, parts) = self.solve(plan, |p| {
            // A memory budget is shared among the blocks in proportion to their trials.
            let ck = match ck {
                Checkpoints::Memory(bytes) => Checkpoints::Memory(bytes / batch * p.batch),
                other => other,
            };
            Tape::new(p.dim, p.batch, p.t0, &p.x0, ck, p.tableau.stages)
        });
        let sol = finish(sol, false)?;
        let blocks = parts
            .into_iter()
            .map(|(p, mut tape)| {
                let cols = p.offset * dim..(p.offset + p.batch) * dim;
                tape.x_final = sol.x_final[cols].to_vec();
                Block {
                    offset: p.offset,
                    tape,
                }
            })
            .collect();
        Ok((
            sol,
            Backward {
                field: self.field,
                tableau,
                blocks,
                mode: self.adjoint,
                n_save,
                dim,
                batch,
            },
        ))
    }
}

impl<'a, F: Differentiable> Backward<'a, F> {
    /// The adjoint this pass computes.
    pub fn mode(&self) -> Adjoint {
        self.mode
    }

    /// Checkpointed states kept by the forward pass (each `dim x` a block's trials).
    pub fn checkpoints_stored(&self) -> usize {
        self.blocks.iter().map(|b| b.tape.ckpt.n_states()).sum()
    }

    /// Gradients for a loss whose gradient with respect to the saved states is `dl_dsaved`
    /// (the layout of [`Solution::states`](crate::Solution::states): save `i`, trial `b`
    /// at `[(i * batch + b) * dim ..][..dim]`).
    pub fn backward(
        &self,
        dl_dsaved: &[F::Scalar],
    ) -> Result<Gradients<F::Scalar>, SolveError<F::Scalar>> {
        let (dim, batch) = (self.dim, self.batch);
        let n = dim * batch;
        let want = self.n_save * n;
        if dl_dsaved.len() != want {
            return Err(SolveError::invalid(
                "dl_dsaved",
                dl_dsaved.len(),
                format!(
                    "must have one value per saved state: {} saves x {} trials x dim {} = {want}",
                    self.n_save, batch, dim
                ),
            ));
        }
        if let Some(i) = dl_dsaved.iter().position(|v| !v.is_finite()) {
            return Err(SolveError::invalid(
                "dl_dsaved",
                format!("{} at index {i}", dl_dsaved[i]),
                format!(
                    "loss gradients must be finite (save {}, trial {}, state index {})",
                    i / n,
                    (i % n) / dim,
                    i % dim
                ),
            ));
        }
        fn run<'b, 'a, F: Differentiable>(
            bw: &'b Backward<'a, F>,
            blk: &'b Block<F::Scalar>,
            dl: &'b [F::Scalar],
        ) -> Reverse<'b, 'a, F> {
            let mut rev = Reverse::new(bw, blk, dl);
            rev.run();
            rev
        }
        let revs: Vec<Reverse<'_, 'a, F>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self.blocks[1..]
                .iter()
                .map(|blk| scope.spawn(move || run(self, blk, dl_dsaved)))
                .collect();
            let mut all = vec![run(self, &self.blocks[0], dl_dsaved)];
            for h in handles {
                all.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            all
        });
        // The first block's buffers become the result (no copy for a single block).
        let mut revs = revs.into_iter();
        let mut first = revs.next().expect("at least one block");
        let mut stats = first.totals();
        let mut params = std::mem::take(&mut first.grad);
        let mut x0 = std::mem::take(&mut first.lam);
        if self.blocks.len() > 1 {
            x0.resize(n, F::Scalar::zero());
        }
        for rev in revs {
            for (g, &r) in params.iter_mut().zip(&rev.grad) {
                *g += r;
            }
            let o = rev.blk.offset * dim;
            x0[o..o + rev.lam.len()].copy_from_slice(&rev.lam);
            let t = rev.totals();
            stats.rhs_evals += t.rhs_evals;
            stats.vjp_state_evals += t.vjp_state_evals;
            stats.vjp_param_evals += t.vjp_param_evals;
            stats.recomputed_steps += t.recomputed_steps;
            stats.stored_states += t.stored_states;
        }
        Ok(Gradients {
            params,
            x0,
            views: self.field.param_views(),
            stats,
            dim,
        })
    }
}

#[derive(Clone, Copy)]
enum Loc {
    Ckpt(usize),
    Pool(usize),
}

/// Scratch and state of one reverse sweep. Everything is allocated in [`Reverse::new`].
struct Reverse<'b, 'a, F: VectorField> {
    bw: &'b Backward<'a, F>,
    blk: &'b Block<F::Scalar>,
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
    lam: Vec<F::Scalar>,
    extra: Vec<F::Scalar>,
    mu: Vec<F::Scalar>,
    g: Vec<F::Scalar>,
    /// Interpolating adjoint: forward stage derivatives, dense states, adjoint stages.
    kf: Vec<F::Scalar>,
    xw: Vec<F::Scalar>,
    big_k: Vec<F::Scalar>,
    eta: Vec<F::Scalar>,
    hi: Vec<F::Scalar>,
    lo: Vec<F::Scalar>,
    grad: Vec<F::Scalar>,
    ptr: Vec<usize>,
    /// Whether some trial saves by dense output inside step `n` (its last stage matters).
    dense_in_step: Vec<bool>,
    ws: F::Workspace,
    ws_wide: F::Workspace,
    stats: AdjointStats,
}

impl<'b, 'a, F: Differentiable> Reverse<'b, 'a, F> {
    fn new(bw: &'b Backward<'a, F>, blk: &'b Block<F::Scalar>, dl: &'b [F::Scalar]) -> Self {
        let tape = &blk.tape;
        let co = Coeffs::new(bw.tableau);
        let s = co.s;
        let (dim, batch) = (tape.dim, tape.batch);
        let n = dim * batch;
        let total = (0..batch).map(|b| tape.n_steps(b)).max().unwrap_or(0);
        let seg = tape.ckpt.stride.min(total.max(1));
        let pool_cap = tape.pool_states.min(seg * s);
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
            kf: iv(s * n),
            xw: iv(s * n),
            big_k: iv(s * n),
            eta: iv(batch),
            hi: iv(batch),
            lo: iv(batch),
            grad: vec![z; bw.field.n_params()],
            ptr: tape.saves.iter().map(|v| v.len()).collect(),
            dense_in_step: {
                let mut d = vec![false; total];
                for sv in tape.saves.iter().flatten() {
                    if let SaveSrc::Dense(m, _) = *sv {
                        d[m] = true;
                    }
                }
                d
            },
            ws: bw.field.workspace(batch),
            ws_wide: bw.field.workspace(s * batch),
            stats: AdjointStats::default(),
        }
    }

    fn run(&mut self) {
        let tape = &self.blk.tape;
        let stride = tape.ckpt.stride;
        if self.total > 0 {
            let n_seg = self.total.div_ceil(stride);
            for j in (0..n_seg).rev() {
                let a = j * stride;
                let len = stride.min(self.total - a);
                self.rev_range(a, len, Loc::Ckpt(j), 0);
            }
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
    fn totals(&self) -> AdjointStats {
        AdjointStats {
            stored_states: self.blk.tape.ckpt.n_states() + self.pool_cap,
            ..self.stats
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
        self.g.fill(z);
        self.extra.fill(z);
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
                for (e, &d) in self.extra[cols.clone()].iter_mut().zip(dls) {
                    *e += d;
                }
                let w = self.co.dense_weights(theta);
                rk::dense_cotangent(&self.co, &w, h, dls, &mut self.g, n, q * dim, &mut stage_nz);
                self.ptr[b] -= 1;
            }
        }
        // Stages in reverse.
        let rec: &[F::Scalar] = match rec_at {
            Some(p) => &self.pool[p * n..(p + s) * n],
            None => &self.rec,
        };
        let mut mu_nz = [false; MAX_STAGES];
        let mut last_nz = 0;
        for i in (0..s).rev() {
            let feeds = (i + 1..s).any(|j| mu_nz[j] && self.co.a(j, i) != z);
            if !(stage_nz[i] || self.co.b[i] != z || feeds) {
                continue;
            }
            last_nz = last_nz.max(i + 1);
            let (gi, _) = self.g[i * n..].split_at_mut(n);
            let mu = Stages {
                k: &self.mu,
                stride: n,
            };
            for (q, &b) in self.order[..m].iter().enumerate() {
                let h = self.blk.tape.step(b, idx).1;
                let cols = q * dim..(q + 1) * dim;
                let lam = &self.lam[cols.clone()];
                rk::stage_cotangent(&self.co, i, h, lam, mu, &mu_nz, q * dim, &mut gi[cols]);
            }
            let mui = &mut self.mu[i * n..(i + 1) * n];
            mui.fill(z);
            field.vjp_state(
                Columns::with_trials(&self.tw[i * batch..i * batch + m], &self.gids[..m]),
                &rec[i * n..i * n + m * dim],
                &gi[..m * dim],
                &mut mui[..m * dim],
                &mut self.ws,
            );
            self.stats.vjp_state_evals += 1;
            mu_nz[i] = true;
        }
        for i in 0..s {
            if mu_nz[i] {
                for (l, &m) in self.lam.iter_mut().zip(&self.mu[i * n..(i + 1) * n]) {
                    *l += m;
                }
            }
        }
        for (l, &e) in self.lam.iter_mut().zip(&self.extra) {
            *l += e;
        }
        if last_nz > 0 && !self.grad.is_empty() {
            let wide = ..last_nz * batch;
            field.vjp_params(
                Columns::with_trials(&self.tw[wide], &self.gids[wide]),
                &rec[..last_nz * n],
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
