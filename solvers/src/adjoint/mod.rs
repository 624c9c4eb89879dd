//! Gradients through the solver: the tape the forward pass records (`tape`), the reverse
//! sweep (`reverse`), and the public face, [`Backward`] and `run_with_gradient`. The
//! user-facing explanation of the adjoints and of checkpointing is on [`Backward`].

mod reverse;
mod tape;

pub(crate) use tape::Tape;

use num_traits::{Float, Zero};

use crate::backend::with_team;
use crate::error::SolveError;
use crate::field::{Differentiable, ParamView, VectorField};
use crate::gradient::{Adjoint, Checkpoints};
use crate::integrate::{finish, Integrate};
use crate::scalar::Real;
use crate::solution::Solution;
use crate::tableau::ButcherTableau;

use reverse::Reverse;

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

/// Frees the memory that gradients keep for the next gradient and returns its size in
/// bytes.
///
/// A gradient's stage states (see [`Backward`], checkpointing) are written into memory
/// kept from the previous gradient when there is some: fresh memory costs a page fault per
/// page on first touch (P1: about 0.1 s of a 0.7 s gradient). At most 128 MiB are kept,
/// from the moment a [`Backward`] is dropped; call this when no more gradients will be
/// computed.
///
/// ```
/// use neurode_solvers::release_gradient_cache;
/// let freed = release_gradient_cache();
/// assert_eq!(release_gradient_cache(), 0);
/// # let _ = freed;
/// ```
pub fn release_gradient_cache() -> usize {
    tape::chunk_cache::clear()
}

/// A vector of `len` zeros in memory the gradient cache kept (see
/// [`release_gradient_cache`]) when it has a block of exactly that size, else fresh: for a
/// field's large scratch (a parameter product's gathered columns), made for every gradient.
/// Hand it back with [`recycle`] when done.
pub fn reused_zeros<T: Real>(len: usize) -> Vec<T> {
    let mut v = tape::chunk_cache::take(len);
    v.resize(len, T::zero());
    v
}

/// Keeps `v`'s memory in the gradient cache for a later [`reused_zeros`] of the same length
/// (frees it when the cache is full).
pub fn recycle<T: Real>(v: Vec<T>) {
    if v.capacity() > 0 {
        tape::chunk_cache::give(v);
    }
}

/// The tape of one block of trials (one per thread of the forward solve).
#[derive(Debug)]
pub(crate) struct Block<T: Real> {
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
/// recursively (more recomputation, the same memory). With [`Checkpoints::Memory`] (the
/// default) and [`Checkpoints::All`] the forward pass also keeps the stage states of as
/// many steps as fit (all of them with `All`; a FSAL method keeps one fewer per step, its
/// last being the next step's first): those steps are reversed without recomputation. The
/// gradient does not depend on the checkpoint count or the budget: recomputation repeats
/// the forward arithmetic exactly.
///
/// # Threads
///
/// A forward solve split into blocks of trials records one tape per block; `backward`
/// reverses the blocks on as many threads and sums their parameter gradients in block
/// order (deterministic for a fixed thread count). A forward solve that shared its
/// products with a team of threads reverses with the same team (the same bits as on one
/// thread).
pub struct Backward<'a, F: VectorField> {
    pub(crate) field: &'a F,
    pub(crate) tableau: &'static ButcherTableau,
    pub(crate) blocks: Vec<Block<F::Scalar>>,
    pub(crate) mode: Adjoint,
    pub(crate) n_save: usize,
    pub(crate) dim: usize,
    pub(crate) batch: usize,
    /// Team size of the forward solve (one block only when above 1).
    pub(crate) team: usize,
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
        let (sol, parts, team) = self.solve(plan, |p| {
            // A memory budget is shared among the blocks in proportion to their trials.
            let ck = match ck {
                Checkpoints::Memory(bytes) => Checkpoints::Memory(bytes / batch * p.batch),
                other => other,
            };
            Tape::new(
                p.dim,
                p.batch,
                p.t0,
                &p.x0,
                ck,
                p.tableau.stages,
                p.tableau.fsal,
            )
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
                team,
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
            let mut all = vec![with_team(self.team, || {
                run(self, &self.blocks[0], dl_dsaved)
            })];
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
