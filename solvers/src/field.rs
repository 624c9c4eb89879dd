//! The vector-field trait and its capability traits.
//!
//! # Layout
//!
//! A state is a `dim x batch` matrix stored **column-major** in a flat slice: trial `b`
//! occupies `x[b * dim..(b + 1) * dim]`. Every method works on the whole batch at once, so a
//! model can evaluate all trials with one GEMM, while the integrator keeps a separate time
//! (`t[b]`), step size and status for every trial.
//!
//! # Discontinuous inputs
//!
//! Task inputs are piecewise constant. A field reports the times where its right-hand side
//! jumps for each trial ([`VectorField::discontinuities`]); adaptive solves then land exactly
//! on those times and restart there. Inputs must be **right-continuous**: at a jump time
//! `t_j` the field returns the value *after* the jump. The integrator never evaluates a step
//! that ends at `t_j` at `t_j` itself (it uses the largest float below it), so each step sees
//! one smooth piece of the input.

use crate::scalar::Real;

/// The columns of a batched call: the time of every column and the trial it belongs to.
///
/// The integrator evaluates only the trials that still run, packed side by side, and the
/// adjoint stacks the stages of a step side by side; either way column `c` of `x` is trial
/// [`trial(c)`](Self::trial) at time [`t()[c]`](Self::t). Fields whose right-hand side
/// depends on the trial (an input signal per trial) look their per-trial data up by that
/// index, never by the column's position.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a, T> {
    t: &'a [T],
    trials: Option<&'a [usize]>,
}

impl<'a, T: Copy> Columns<'a, T> {
    /// Column `c` is trial `c` at time `t[c]`: a whole batch in order.
    pub fn new(t: &'a [T]) -> Self {
        Columns { t, trials: None }
    }
    /// Column `c` is trial `trials[c]` at time `t[c]`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn with_trials(t: &'a [T], trials: &'a [usize]) -> Self {
        assert_eq!(t.len(), trials.len(), "one trial index per column");
        Columns {
            t,
            trials: Some(trials),
        }
    }
    /// Number of columns.
    pub fn len(&self) -> usize {
        self.t.len()
    }
    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
    /// Time of every column.
    pub fn t(&self) -> &'a [T] {
        self.t
    }
    /// The trial of column `c`.
    #[inline]
    pub fn trial(&self, c: usize) -> usize {
        self.trials.map_or(c, |v| v[c])
    }
    /// `(trial, t)` of every column, in column order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, T)> + 'a {
        let trials = self.trials;
        self.t
            .iter()
            .enumerate()
            .map(move |(c, &t)| (trials.map_or(c, |v| v[c]), t))
    }
}

/// A named slice of the flat parameter vector `θ` of a field (e.g. `"W"`, shape `[N, N]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamView {
    /// Name of the parameter block.
    pub name: String,
    /// Offset of the block's first element in `θ`.
    pub offset: usize,
    /// Shape of the block (column-major within `θ`).
    pub shape: Vec<usize>,
}

impl ParamView {
    /// Number of elements in the block.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A continuous-time system `dx/dt = f(t, x; θ)` evaluated on a batch of trials.
///
/// Required: [`dim`](Self::dim), [`workspace`](Self::workspace) and [`rhs`](Self::rhs).
/// Everything else has a default. Scratch memory that `rhs` needs (an activation buffer for
/// a GEMM, say) lives in [`Workspace`](Self::Workspace), created once per solve, so the
/// stepping loop allocates nothing and a field can be shared between threads.
///
/// ```
/// use neurode_solvers::{integrate, Columns, VectorField};
///
/// /// dx/dt = -x / tau
/// struct Decay { tau: f64 }
///
/// impl VectorField for Decay {
///     type Scalar = f64;
///     type Workspace = ();
///     fn dim(&self) -> usize { 1 }
///     fn workspace(&self, _batch: usize) {}
///     fn rhs(&self, _cols: Columns<'_, f64>, x: &[f64], dxdt: &mut [f64], _ws: &mut ()) {
///         for (d, x) in dxdt.iter_mut().zip(x) {
///             *d = -x / self.tau;
///         }
///     }
///     fn initial_state(&self, x0: &mut [f64]) {
///         x0.fill(1.0);
///     }
/// }
///
/// let sol = integrate(&Decay { tau: 2.0 }, (0.0, 1.0)).run().unwrap();
/// let x1 = sol.state(sol.ts().len() - 1, 0)[0];
/// assert!((x1 - (-0.5f64).exp()).abs() < 1e-6);
/// ```
pub trait VectorField: Sync {
    /// The scalar type (`f32` or `f64`).
    type Scalar: Real;
    /// Scratch memory for [`rhs`](Self::rhs) and the derivative products; `()` when none.
    /// Created once per solve (per thread of a solve).
    type Workspace: Send;

    /// State dimension (rows of the state matrix).
    fn dim(&self) -> usize;

    /// Number of parameters `θ` (0 for a field with nothing to train).
    fn n_params(&self) -> usize {
        0
    }

    /// The number of trials the field is bound to (one per input signal, say), or `None` if it
    /// accepts any batch size. The integrator uses it when no initial state is given.
    fn batch(&self) -> Option<usize> {
        None
    }

    /// Rough cost of one column's right-hand side in multiply-adds (default: the
    /// dimension, an elementwise field). A field whose right-hand side is a product with a
    /// `dim x dim` matrix says `dim²`: the solver then shares one trial's products among a
    /// team of threads once they are large enough to gain from it.
    fn work_per_column(&self) -> usize {
        self.dim()
    }

    /// Creates the scratch memory for a batch of `batch` trials.
    fn workspace(&self, batch: usize) -> Self::Workspace;

    /// Writes `f(t_c, x_c)` into `dxdt` for every column `c` of `x`.
    ///
    /// `cols` gives each column's time and trial; `x` and `dxdt` are `dim x cols.len()`,
    /// column-major. Called in the stepping loop: must not allocate.
    fn rhs(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        dxdt: &mut [Self::Scalar],
        ws: &mut Self::Workspace,
    );

    /// Appends to `out` the times in `(t0, t1)` at which trial `trial`'s right-hand side is
    /// discontinuous (its input jumps), in any order. Default: none.
    fn discontinuities(
        &self,
        trial: usize,
        t_span: (Self::Scalar, Self::Scalar),
        out: &mut Vec<Self::Scalar>,
    ) {
        let _ = (trial, t_span, out);
    }

    /// Fills the `dim x batch` initial state. Default: zeros.
    fn initial_state(&self, x0: &mut [Self::Scalar]) {
        x0.fill(<Self::Scalar as num_traits::Zero>::zero());
    }
}

/// Vector-Jacobian product with respect to the state: `out_b += (∂f/∂x (t_b, x_b))ᵀ v_b`.
///
/// Needed for gradients with respect to the initial state and for the adjoint sweep.
///
/// The derivative methods may be called with more columns than the solve's batch (the
/// adjoint stacks the stages of a step side by side, `cols.len()` columns in all); the
/// workspace passed was then created by [`VectorField::workspace`] for at least that many
/// columns, and column `c` belongs to trial [`cols.trial(c)`](Columns::trial).
pub trait VjpState: VectorField {
    /// Accumulates `(∂f/∂x)ᵀ v` into `out` for every trial; `v` and `out` are `dim x batch`.
    fn vjp_state(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        v: &[Self::Scalar],
        out: &mut [Self::Scalar],
        ws: &mut Self::Workspace,
    );

    /// Values per column that the state and the parameter VJPs at the same `x` both
    /// compute (the residuals, as JAX calls them; a rate network's `tanh(x)`), so that the
    /// reverse sweep computes them once per stage with [`residuals`](Self::residuals) and
    /// passes them to [`vjp_state_with`](Self::vjp_state_with) and
    /// [`VjpParams::vjp_params_with`]. Default: 0, none.
    fn residual_len(&self) -> usize {
        0
    }

    /// Writes the residuals of `x` into `r` (`residual_len() x cols.len()`, column-major).
    /// Called in the reverse sweep: must not allocate. Default: nothing.
    fn residuals(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        r: &mut [Self::Scalar],
    ) {
        let _ = (cols, x, r);
    }

    /// [`vjp_state`](Self::vjp_state) given `r`, the [`residuals`](Self::residuals) of `x`:
    /// the same bits, without recomputing what `r` holds. Default: `vjp_state`.
    fn vjp_state_with(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        r: &[Self::Scalar],
        v: &[Self::Scalar],
        out: &mut [Self::Scalar],
        ws: &mut Self::Workspace,
    ) {
        let _ = r;
        self.vjp_state(cols, x, v, out, ws);
    }

    /// Allocating convenience: returns `(∂f/∂x)ᵀ v`.
    fn vjp_state_alloc(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        v: &[Self::Scalar],
    ) -> Vec<Self::Scalar> {
        let mut out = vec![<Self::Scalar as num_traits::Zero>::zero(); x.len()];
        let mut ws = self.workspace(cols.len());
        self.vjp_state(cols, x, v, &mut out, &mut ws);
        out
    }
}

/// Vector-Jacobian product with respect to the parameters, summed over trials:
/// `out += Σ_b (∂f/∂θ (t_b, x_b))ᵀ v_b`.
pub trait VjpParams: VectorField {
    /// Named blocks of `θ`, in order, covering `0..n_params()`.
    fn param_views(&self) -> Vec<ParamView>;

    /// Copies the current parameters into `out` (length `n_params()`).
    fn params(&self, out: &mut [Self::Scalar]);

    /// Replaces the parameters by `theta` (length `n_params()`), in the layout of
    /// [`param_views`](Self::param_views). Used by optimisers and finite-difference checks.
    fn set_params(&mut self, theta: &[Self::Scalar]);

    /// Accumulates `Σ_b (∂f/∂θ)ᵀ v_b` into `out` (length `n_params()`).
    fn vjp_params(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        v: &[Self::Scalar],
        out: &mut [Self::Scalar],
        ws: &mut Self::Workspace,
    );

    /// [`vjp_params`](Self::vjp_params) given `r`, the [`VjpState::residuals`] of `x` (when
    /// the field implements both), without recomputing what `r` holds. A field may defer
    /// part of the sum into `out` (gather the columns of several calls and add their
    /// products together, one large product instead of many thin ones) until
    /// [`vjp_params_finish`](Self::vjp_params_finish), which every caller must call after
    /// its last call with the same `out` and workspace. Default: `vjp_params`.
    fn vjp_params_with(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        r: &[Self::Scalar],
        v: &[Self::Scalar],
        out: &mut [Self::Scalar],
        ws: &mut Self::Workspace,
    ) {
        let _ = r;
        self.vjp_params(cols, x, v, out, ws);
    }

    /// Adds to `out` what [`vjp_params_with`](Self::vjp_params_with) deferred with the
    /// workspace `ws`. Default: nothing is deferred.
    fn vjp_params_finish(&self, out: &mut [Self::Scalar], ws: &mut Self::Workspace) {
        let _ = (out, ws);
    }

    /// Allocating convenience: returns `Σ_b (∂f/∂θ)ᵀ v_b`.
    fn vjp_params_alloc(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        v: &[Self::Scalar],
    ) -> Vec<Self::Scalar> {
        let mut out = vec![<Self::Scalar as num_traits::Zero>::zero(); self.n_params()];
        let mut ws = self.workspace(cols.len());
        self.vjp_params(cols, x, v, &mut out, &mut ws);
        out
    }
}

/// Jacobian-vector product with respect to the state: `out_b = ∂f/∂x (t_b, x_b) v_b`.
///
/// Used by analysis (Newton on fixed points, linearisation, Krylov eigen-solvers).
pub trait JvpState: VectorField {
    /// Writes `(∂f/∂x) v` into `out`; `v` and `out` are `dim x batch`.
    fn jvp_state(
        &self,
        cols: Columns<'_, Self::Scalar>,
        x: &[Self::Scalar],
        v: &[Self::Scalar],
        out: &mut [Self::Scalar],
        ws: &mut Self::Workspace,
    );
}

/// Everything gradients through the solver need: both VJPs. Implemented automatically.
pub trait Differentiable: VjpState + VjpParams {}
impl<F: VjpState + VjpParams> Differentiable for F {}
