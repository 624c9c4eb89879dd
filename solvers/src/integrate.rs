//! The front door: [`integrate`] and its builder.

use crate::adjoint::{Adjoint, Backward, Checkpoints, SaveSrc, Tape};
use crate::controller::{initial_step_final, initial_step_guess, PiController, ERR_PREV_INIT};
use crate::error::SolveError;
use crate::field::{Differentiable, VectorField};
use crate::scalar::Real;
use crate::solution::{Failure, FailureKind, Solution, Stats, Status, StepRecord, TrialStats};
use crate::tableau::{ButcherTableau, EULER, TSIT5};
use num_traits::{Float, Zero};

/// Most stages a tableau may have (dense-output weights live on the stack).
pub const MAX_STAGES: usize = 16;

/// Which Runge–Kutta method steps the solve.
#[derive(Debug, Clone, Copy, Default)]
pub enum Stepper {
    /// Tsitouras 5(4): adaptive (default) or fixed steps. See [`TSIT5`].
    #[default]
    Tsit5,
    /// Forward Euler: fixed steps only (`.fixed_dt(dt)`). See [`EULER`].
    Euler,
    /// Any explicit tableau; adaptive only if it has error weights.
    Tableau(&'static ButcherTableau),
}

impl Stepper {
    /// The tableau behind this stepper.
    pub fn tableau(&self) -> &'static ButcherTableau {
        match self {
            Stepper::Tsit5 => &TSIT5,
            Stepper::Euler => &EULER,
            Stepper::Tableau(t) => t,
        }
    }
}

/// Passed to the progress callback after every iteration of the batched stepping loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time reached by the slowest trial still running (`t1` when all are done).
    pub t: f64,
    /// Start of the span.
    pub t0: f64,
    /// End of the span.
    pub t1: f64,
    /// Iterations of the stepping loop so far.
    pub steps: usize,
    /// Trials still running.
    pub running: usize,
    /// Batch size.
    pub batch: usize,
}

impl Progress {
    /// Fraction of the span done by the slowest running trial, in `[0, 1]`.
    pub fn fraction(&self) -> f64 {
        ((self.t - self.t0) / (self.t1 - self.t0)).clamp(0.0, 1.0)
    }
}

/// Default step budget per trial of an adaptive solve (see [`Integrate::max_steps`]).
pub const DEFAULT_MAX_STEPS: usize = 100_000;

type SolveResult<T> = Result<(Solution<T>, Option<Tape<T>>), SolveError<T>>;

type ProgressFn<'a> = Box<dyn FnMut(&Progress) + 'a>;

/// Builder for a solve; created by [`integrate`], executed by [`run`](Self::run).
///
/// Defaults: Tsit5 with adaptive steps, `rtol`/`atol` from [`Real::DEFAULT_RTOL`] and
/// [`Real::DEFAULT_ATOL`] (1e-6/1e-8 in `f64`, 1e-4/1e-6 in `f32`), initial step by
/// Hairer's rule, at most [`DEFAULT_MAX_STEPS`] adaptive steps per trial (fixed steps are
/// not capped), states saved at `t0` and `t1`, the
/// initial state from [`VectorField::initial_state`], and the field's discontinuities used
/// as breakpoints.
pub struct Integrate<'a, F: VectorField> {
    field: &'a F,
    t_span: (F::Scalar, F::Scalar),
    stepper: Stepper,
    rtol: Option<F::Scalar>,
    atol: Option<F::Scalar>,
    fixed_dt: Option<F::Scalar>,
    dt0: Option<F::Scalar>,
    dt_min: Option<F::Scalar>,
    dt_max: Option<F::Scalar>,
    max_steps: Option<usize>,
    save_at: Option<Vec<F::Scalar>>,
    save_steps: bool,
    record_steps: bool,
    x0: Option<Vec<F::Scalar>>,
    use_discontinuities: bool,
    controller: PiController,
    allow_failures: bool,
    progress: Option<ProgressFn<'a>>,
    adjoint: Adjoint,
    checkpoints: Checkpoints,
}

/// Starts a solve of `field` over `t_span = (t0, t1)`; finish it with
/// [`run`](Integrate::run) after setting options.
///
/// ```
/// use neurode_solvers::{integrate, Stepper};
/// use neurode_solvers::testing::LinearSystem;
///
/// // dx/dt = A x, a decaying rotation, two trials.
/// let field = LinearSystem::rotation_decay(0.5, 2.0);
/// let sol = integrate(&field, (0.0, 3.0))
///     .x0(vec![1.0, 0.0, 0.0, 1.0])
///     .rtol(1e-8)
///     .atol(1e-10)
///     .save_at(vec![1.0, 2.0, 3.0])
///     .run()?;
/// let exact = field.exact(3.0, &[1.0, 0.0]);
/// assert!((sol.state(2, 0)[0] - exact[0]).abs() < 1e-7);
///
/// // Fixed-step Euler.
/// let euler = integrate(&field, (0.0, 3.0)).stepper(Stepper::Euler).fixed_dt(0.01).run()?;
/// assert_eq!(euler.trial_stats(0).accepted, 300);
/// # Ok::<(), neurode_solvers::SolveError<f64>>(())
/// ```
pub fn integrate<F: VectorField>(field: &F, t_span: (F::Scalar, F::Scalar)) -> Integrate<'_, F> {
    Integrate {
        field,
        t_span,
        stepper: Stepper::Tsit5,
        rtol: None,
        atol: None,
        fixed_dt: None,
        dt0: None,
        dt_min: None,
        dt_max: None,
        max_steps: None,
        save_at: None,
        save_steps: false,
        record_steps: false,
        x0: None,
        use_discontinuities: true,
        controller: PiController::default(),
        allow_failures: false,
        progress: None,
        adjoint: Adjoint::Discrete,
        checkpoints: Checkpoints::default(),
    }
}

impl<'a, F: VectorField> Integrate<'a, F> {
    /// The Runge–Kutta method (default [`Stepper::Tsit5`]).
    pub fn stepper(mut self, stepper: Stepper) -> Self {
        self.stepper = stepper;
        self
    }
    /// Relative tolerance of adaptive steps.
    pub fn rtol(mut self, rtol: F::Scalar) -> Self {
        self.rtol = Some(rtol);
        self
    }
    /// Absolute tolerance of adaptive steps.
    pub fn atol(mut self, atol: F::Scalar) -> Self {
        self.atol = Some(atol);
        self
    }
    /// Both tolerances.
    pub fn tolerances(self, rtol: F::Scalar, atol: F::Scalar) -> Self {
        self.rtol(rtol).atol(atol)
    }
    /// Fixed steps of size `dt` on the grid `t0 + n dt` (the last step ends at `t1`, and steps
    /// also end at the field's discontinuities). Required for Euler.
    pub fn fixed_dt(mut self, dt: F::Scalar) -> Self {
        self.fixed_dt = Some(dt);
        self
    }
    /// First step of an adaptive solve (default: Hairer's rule).
    pub fn dt0(mut self, dt0: F::Scalar) -> Self {
        self.dt0 = Some(dt0);
        self
    }
    /// Smallest step the controller may ask for before the trial fails (default 0; the
    /// floating-point resolution of `t` always applies).
    pub fn dt_min(mut self, dt_min: F::Scalar) -> Self {
        self.dt_min = Some(dt_min);
        self
    }
    /// Largest adaptive step (default: unbounded).
    pub fn dt_max(mut self, dt_max: F::Scalar) -> Self {
        self.dt_max = Some(dt_max);
        self
    }
    /// Step budget per trial, accepted plus rejected (default [`DEFAULT_MAX_STEPS`] for
    /// adaptive solves; unlimited for fixed steps, whose count is known in advance).
    pub fn max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = Some(max_steps);
        self
    }
    /// Save times, non-decreasing, inside `[t0, t1]` (default `[t0, t1]`). Between steps the
    /// state comes from the method's dense output; at a step's end it is exact.
    pub fn save_at(mut self, ts: impl Into<Vec<F::Scalar>>) -> Self {
        self.save_at = Some(ts.into());
        self
    }
    /// Also keep the state after every accepted step (per trial; this allocates as it grows).
    pub fn save_steps(mut self, on: bool) -> Self {
        self.save_steps = on;
        self
    }
    /// Keep a log of every attempted step (time, size, error, accepted) per trial.
    pub fn record_steps(mut self, on: bool) -> Self {
        self.record_steps = on;
        self
    }
    /// Initial state, `dim x batch` column-major; its length sets the batch size.
    pub fn x0(mut self, x0: impl Into<Vec<F::Scalar>>) -> Self {
        self.x0 = Some(x0.into());
        self
    }
    /// Whether to stop exactly at the field's discontinuities (default `true`).
    pub fn use_discontinuities(mut self, on: bool) -> Self {
        self.use_discontinuities = on;
        self
    }
    /// Step-size controller settings.
    pub fn controller(mut self, controller: PiController) -> Self {
        self.controller = controller;
        self
    }
    /// Return `Ok` even when trials fail (their [`Status`] says why); default `false`.
    pub fn allow_failures(mut self, on: bool) -> Self {
        self.allow_failures = on;
        self
    }
    /// Called after every iteration of the stepping loop (must not block for long).
    pub fn progress(mut self, f: impl FnMut(&Progress) + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Runs the solve. Every option is checked before the first step.
    pub fn run(mut self) -> Result<Solution<F::Scalar>, SolveError<F::Scalar>> {
        let plan = self.plan()?;
        let progress = self.progress.take();
        Solver::new(self.field, plan, progress)
            .solve(self.allow_failures, None)
            .map(|(sol, _)| sol)
    }

    fn plan(&self) -> Result<Plan<F::Scalar>, SolveError<F::Scalar>> {
        type E<T> = SolveError<T>;
        let (t0, t1) = self.t_span;
        if !(t0.is_finite() && t1.is_finite()) {
            return Err(E::invalid(
                "t_span",
                format!("({t0}, {t1})"),
                "both ends must be finite numbers",
            ));
        }
        if t1 <= t0 {
            return Err(E::invalid(
                "t_span",
                format!("({t0}, {t1})"),
                "the span is empty or reversed: pass (t0, t1) with t1 > t0",
            ));
        }
        let tableau = self.stepper.tableau();
        tableau
            .check()
            .map_err(|m| E::invalid("stepper", tableau.name, m))?;
        if tableau.stages > MAX_STAGES {
            return Err(E::invalid(
                "stepper",
                tableau.name,
                format!("at most {MAX_STAGES} stages are supported"),
            ));
        }
        self.controller
            .check()
            .map_err(|m| E::invalid("controller", format!("{:?}", self.controller), m))?;
        let dim = self.field.dim();
        if dim == 0 {
            return Err(E::invalid(
                "field",
                "dim() = 0",
                "the state must have at least one component",
            ));
        }
        let mode = match self.fixed_dt {
            Some(dt) => {
                if !(dt.is_finite() && dt > F::Scalar::zero()) {
                    return Err(E::invalid(
                        "fixed_dt",
                        dt,
                        "the step must be a finite number > 0",
                    ));
                }
                Mode::Fixed { dt }
            }
            None => {
                if !tableau.is_adaptive() {
                    return Err(E::invalid(
                        "stepper",
                        tableau.name,
                        format!(
                            "{} has no error estimate, so it cannot choose its own steps: give \
                             a step with `.fixed_dt(dt)` or use `Stepper::Tsit5`",
                            tableau.name
                        ),
                    ));
                }
                let rtol = self
                    .rtol
                    .unwrap_or(F::Scalar::from_f64(F::Scalar::DEFAULT_RTOL));
                let atol = self
                    .atol
                    .unwrap_or(F::Scalar::from_f64(F::Scalar::DEFAULT_ATOL));
                if !(rtol.is_finite() && rtol > F::Scalar::zero()) {
                    return Err(E::invalid(
                        "rtol",
                        rtol,
                        "the relative tolerance must be a finite number > 0, e.g. 1e-6",
                    ));
                }
                if rtol.as_f64() < F::Scalar::eps() {
                    return Err(E::invalid(
                        "rtol",
                        rtol,
                        format!(
                            "below the {} machine epsilon {:e}: no step could meet it; use at \
                             least {:e}",
                            F::Scalar::NAME,
                            F::Scalar::eps(),
                            F::Scalar::eps() * 100.0
                        ),
                    ));
                }
                if !(atol.is_finite() && atol >= F::Scalar::zero()) {
                    return Err(E::invalid(
                        "atol",
                        atol,
                        "the absolute tolerance must be a finite number >= 0, e.g. 1e-8",
                    ));
                }
                Mode::Adaptive { rtol, atol }
            }
        };
        for (name, v) in [("dt0", self.dt0), ("dt_max", self.dt_max)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > F::Scalar::zero()) {
                    return Err(E::invalid(name, v, "must be a finite number > 0"));
                }
            }
        }
        let dt_min = self.dt_min.unwrap_or(F::Scalar::zero());
        if !(dt_min.is_finite() && dt_min >= F::Scalar::zero()) {
            return Err(E::invalid("dt_min", dt_min, "must be a finite number >= 0"));
        }
        let dt_max = self.dt_max.unwrap_or(F::Scalar::infinity());
        if dt_min >= dt_max {
            return Err(E::invalid(
                "dt_min",
                dt_min,
                format!("must be smaller than dt_max = {dt_max}"),
            ));
        }
        if self.max_steps == Some(0) {
            return Err(E::invalid("max_steps", 0, "allow at least one step"));
        }
        let max_steps = match (self.max_steps, &mode) {
            (Some(m), _) => m,
            (None, Mode::Adaptive { .. }) => DEFAULT_MAX_STEPS,
            (None, _) => usize::MAX,
        };
        if tableau.dense.is_none() {
            if let Some(ts) = &self.save_at {
                if let Some(s) = ts.iter().find(|&&s| s > t0 && s < t1) {
                    return Err(E::invalid(
                        "save_at",
                        s,
                        format!(
                            "{} has no dense output, so it can only save at t0 and t1; use \
                             `.save_steps(true)` or a tableau with a continuous extension",
                            tableau.name
                        ),
                    ));
                }
            }
        }
        // Batch and initial state.
        let x0 = match &self.x0 {
            Some(x0) => {
                if x0.is_empty() || x0.len() % dim != 0 {
                    return Err(E::invalid(
                        "x0",
                        format!("{} values", x0.len()),
                        format!(
                            "the initial state must be dim x batch = {dim} x B values (column \
                             per trial); {} is not a positive multiple of {dim}",
                            x0.len()
                        ),
                    ));
                }
                if let Some(b) = self.field.batch() {
                    if x0.len() != dim * b {
                        return Err(E::invalid(
                            "x0",
                            format!("{} values ({} trials)", x0.len(), x0.len() / dim),
                            format!(
                                "the field is bound to {b} trials, so x0 needs {dim} x {b} = {} \
                                 values",
                                dim * b
                            ),
                        ));
                    }
                }
                x0.clone()
            }
            None => {
                let b = self.field.batch().unwrap_or(1);
                if b == 0 {
                    return Err(E::invalid(
                        "field",
                        "batch() = 0",
                        "the field has no trials",
                    ));
                }
                let mut x0 = vec![F::Scalar::zero(); dim * b];
                self.field.initial_state(&mut x0);
                x0
            }
        };
        if let Some(i) = x0.iter().position(|v| !v.is_finite()) {
            return Err(E::invalid(
                "x0",
                format!("{} at trial {}, component {}", x0[i], i / dim, i % dim),
                "the initial state must be finite",
            ));
        }
        let batch = x0.len() / dim;
        // Save times.
        let save_ts = self.save_at.clone().unwrap_or_else(|| vec![t0, t1]);
        for (i, &s) in save_ts.iter().enumerate() {
            if !s.is_finite() || s < t0 || s > t1 {
                return Err(E::invalid(
                    "save_at",
                    format!("ts[{i}] = {s}"),
                    format!("save times must lie in the span [{t0}, {t1}]"),
                ));
            }
            if i > 0 && s < save_ts[i - 1] {
                return Err(E::invalid(
                    "save_at",
                    format!("ts[{}] = {} > ts[{i}] = {s}", i - 1, save_ts[i - 1]),
                    "save times must be sorted in increasing order",
                ));
            }
        }
        // Breakpoints, per trial.
        let mut bps = Vec::with_capacity(batch);
        for b in 0..batch {
            let mut v = Vec::new();
            if self.use_discontinuities {
                self.field.discontinuities(b, (t0, t1), &mut v);
                if let Some(bad) = v.iter().find(|t| !t.is_finite()) {
                    return Err(E::invalid(
                        "field",
                        format!("discontinuity {bad} of trial {b}"),
                        "discontinuity times must be finite",
                    ));
                }
                v.retain(|&t| t > t0 && t < t1);
                v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
                v.dedup();
            }
            bps.push(v);
        }
        Ok(Plan {
            tableau,
            dim,
            batch,
            t0,
            t1,
            mode,
            dt0: self.dt0,
            dt_min,
            dt_max,
            max_steps,
            save_ts,
            save_steps: self.save_steps,
            record_steps: self.record_steps,
            x0,
            bps,
            controller: self.controller,
        })
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
    /// [`DEFAULT_CHECKPOINT_BYTES`](crate::adjoint::DEFAULT_CHECKPOINT_BYTES)).
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
        let tableau = plan.tableau;
        let n_save = plan.save_ts.len();
        let progress = self.progress.take();
        let (sol, tape) =
            Solver::new(self.field, plan, progress).solve(false, Some(self.checkpoints))?;
        let tape = tape.expect("recorded when a gradient is requested");
        Ok((
            sol,
            Backward {
                field: self.field,
                tableau,
                tape,
                mode: self.adjoint,
                n_save,
            },
        ))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<T> {
    Adaptive { rtol: T, atol: T },
    Fixed { dt: T },
}

pub(crate) struct Plan<T: Real> {
    tableau: &'static ButcherTableau,
    dim: usize,
    batch: usize,
    t0: T,
    t1: T,
    mode: Mode<T>,
    dt0: Option<T>,
    dt_min: T,
    dt_max: T,
    max_steps: usize,
    save_ts: Vec<T>,
    save_steps: bool,
    record_steps: bool,
    x0: Vec<T>,
    bps: Vec<Vec<T>>,
    controller: PiController,
}

/// Where a step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Land {
    /// Strictly inside a smooth piece.
    Free,
    /// On a discontinuity of the field.
    Break,
    /// On `t1`.
    End,
}

#[derive(Debug, Clone, PartialEq)]
enum TrialState {
    Running,
    Done,
    Failed(Failure),
}

/// Tableau coefficients converted to the solve's scalar type.
pub(crate) struct Coeffs<T> {
    pub(crate) s: usize,
    pub(crate) a: Vec<T>,
    pub(crate) b: Vec<T>,
    pub(crate) c: Vec<T>,
    pub(crate) e: Option<Vec<T>>,
    pub(crate) fsal: bool,
}

impl<T: Real> Coeffs<T> {
    pub(crate) fn new(tab: &ButcherTableau) -> Self {
        let cv = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        Coeffs {
            s: tab.stages,
            a: cv(tab.a),
            b: cv(tab.b),
            c: cv(tab.c),
            e: tab.b_error.map(cv),
            fsal: tab.fsal,
        }
    }
}

/// Time of a stage with node `c` in the step `[t, t_end]` of size `h`.
///
/// A node at the step's end is evaluated at `t_end` exactly (so the FSAL stage equals the
/// next step's first stage), or just below it when the step ends on a breakpoint: the step
/// then sees only the smooth piece of a right-continuous input it started in.
#[inline]
pub(crate) fn stage_time<T: Real>(t: T, h: T, c: T, t_end: T, ends_on_break: bool) -> T {
    let ts = if c == T::one() {
        t_end
    } else {
        (t + c * h).min(t_end)
    };
    if ends_on_break && ts >= t_end {
        t_end.next_down()
    } else {
        ts
    }
}

#[inline]
pub(crate) fn axpy<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
    T::axpy(alpha, x, y)
}

struct Solver<'a, F: VectorField> {
    field: &'a F,
    plan: Plan<F::Scalar>,
    progress: Option<ProgressFn<'a>>,
}

impl<'a, F: VectorField> Solver<'a, F> {
    fn new(field: &'a F, plan: Plan<F::Scalar>, progress: Option<ProgressFn<'a>>) -> Self {
        Solver {
            field,
            plan,
            progress,
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn solve(
        mut self,
        allow_failures: bool,
        gradient: Option<Checkpoints>,
    ) -> SolveResult<F::Scalar> {
        let field = self.field;
        let p = &self.plan;
        let (dim, batch, t0, t1) = (p.dim, p.batch, p.t0, p.t1);
        let n = dim * batch;
        let tab = p.tableau;
        let co = Coeffs::<F::Scalar>::new(tab);
        let s = co.s;
        let zero = F::Scalar::zero();
        let nan = F::Scalar::nan();
        let q = tab.error_order.map_or(1.0, |o| o as f64 + 1.0);
        let eps = F::Scalar::eps();

        // Buffers (all allocation happens here, before the loop).
        let mut ws = field.workspace(batch);
        let mut x = p.x0.clone();
        let mut k: Vec<Vec<F::Scalar>> = (0..s).map(|_| vec![zero; n]).collect();
        let mut xs = vec![zero; n];
        let mut xnew = vec![zero; n];
        let mut tmp = vec![zero; n];
        let mut t_eval = vec![t0; batch];
        let mut d1s = vec![zero; batch];

        // Per-trial state.
        let mut t = vec![t0; batch];
        let mut h = vec![zero; batch];
        let mut h_next = vec![p.dt0.unwrap_or(zero); batch];
        let mut t_end = vec![t0; batch];
        let mut land = vec![Land::Free; batch];
        let mut grid_next = vec![false; batch];
        let mut grid_n = vec![0u64; batch];
        let mut state = vec![TrialState::Running; batch];
        let mut need_k1 = vec![true; batch];
        let mut need_init = vec![p.dt0.is_none(); batch];
        let mut err_prev = vec![ERR_PREV_INIT; batch];
        let mut after_reject = vec![false; batch];
        let mut bp_idx = vec![0usize; batch];
        let mut save_idx = vec![0usize; batch];
        let mut tstats = vec![TrialStats::default(); batch];
        let mut stats = Stats::default();
        let n_save = p.save_ts.len();
        let mut out = vec![nan; n_save * n];
        let mut step_ts = p
            .save_steps
            .then(|| (0..batch).map(|_| vec![t0]).collect::<Vec<_>>());
        let mut step_xs = p.save_steps.then(|| {
            (0..batch)
                .map(|b| x[b * dim..(b + 1) * dim].to_vec())
                .collect::<Vec<_>>()
        });
        let mut step_log = p
            .record_steps
            .then(|| vec![Vec::<StepRecord>::new(); batch]);
        let mut tape = gradient.map(|c| Tape::new(dim, batch, t0, &x, c, s));

        // Saves at t0.
        for b in 0..batch {
            while save_idx[b] < n_save && p.save_ts[save_idx[b]] <= t0 {
                let o = save_idx[b] * n + b * dim;
                out[o..o + dim].copy_from_slice(&x[b * dim..(b + 1) * dim]);
                save_idx[b] += 1;
                if let Some(tp) = tape.as_mut() {
                    tp.saves[b].push(SaveSrc::Initial);
                }
            }
        }

        let next_target = |b: usize, bp_idx: &[usize]| -> (F::Scalar, Land) {
            match p.bps[b].get(bp_idx[b]) {
                Some(&tb) => (tb, Land::Break),
                None => (t1, Land::End),
            }
        };
        // Smallest step allowed at time t.
        let dt_floor =
            |t: F::Scalar| -> F::Scalar { p.dt_min.max(F::Scalar::from_f64(16.0 * eps) * t.abs()) };
        let dense_w = |theta: f64, w: &mut [F::Scalar; MAX_STAGES]| {
            let d = tab.dense.as_ref().expect("checked before the loop");
            for (i, wi) in w.iter_mut().enumerate().take(s) {
                *wi = F::Scalar::from_f64(d.weight(i, theta));
            }
        };

        loop {
            // Step budget.
            for b in 0..batch {
                if state[b] == TrialState::Running
                    && tstats[b].accepted + tstats[b].rejected >= p.max_steps
                {
                    state[b] = TrialState::Failed(Failure {
                        kind: FailureKind::MaxSteps {
                            max_steps: p.max_steps,
                        },
                        trial: b,
                        t: t[b].as_f64(),
                        dt: h_next[b].as_f64(),
                    });
                }
            }
            let running = state.iter().filter(|s| **s == TrialState::Running).count();
            if running == 0 {
                break;
            }
            stats.steps += 1;

            // First stage where FSAL cannot supply it (start, after a breakpoint, Euler).
            if (0..batch).any(|b| state[b] == TrialState::Running && need_k1[b]) {
                field.rhs(&t, &x, &mut k[0], &mut ws);
                stats.rhs_evals += 1;
                for b in 0..batch {
                    if state[b] == TrialState::Running && need_k1[b] {
                        need_k1[b] = false;
                        tstats[b].rhs_evals += 1;
                    }
                }
            }

            // Initial step (Hairer), at t0 and after every breakpoint.
            if let Mode::Adaptive { rtol, atol } = p.mode {
                if (0..batch).any(|b| state[b] == TrialState::Running && need_init[b]) {
                    for b in 0..batch {
                        let cols = b * dim..(b + 1) * dim;
                        xs[cols.clone()].copy_from_slice(&x[cols.clone()]);
                        t_eval[b] = t[b];
                        if !(state[b] == TrialState::Running && need_init[b]) {
                            continue;
                        }
                        let (mut d0, mut d1) = (zero, zero);
                        for i in cols.clone() {
                            let sc = atol + rtol * x[i].abs();
                            d0 += (x[i] / sc).powi(2);
                            d1 += (k[0][i] / sc).powi(2);
                        }
                        let dimt = F::Scalar::from_usize(dim);
                        let (d0, d1) = ((d0 / dimt).sqrt(), (d1 / dimt).sqrt());
                        d1s[b] = d1;
                        let (target, kind) = next_target(b, &bp_idx);
                        let room = target - t[b];
                        let h0 = F::Scalar::from_f64(initial_step_guess(d0.as_f64(), d1.as_f64()))
                            .min(room)
                            .min(p.dt_max);
                        h[b] = h0;
                        axpy(h0, &k[0][cols.clone()], &mut xs[cols]);
                        let te = t[b] + h0;
                        t_eval[b] = if kind == Land::Break && te >= target {
                            target.next_down()
                        } else {
                            te.min(target)
                        };
                    }
                    field.rhs(&t_eval, &xs, &mut tmp, &mut ws);
                    stats.rhs_evals += 1;
                    for b in 0..batch {
                        if !(state[b] == TrialState::Running && need_init[b]) {
                            continue;
                        }
                        tstats[b].rhs_evals += 1;
                        let mut d2 = zero;
                        for i in b * dim..(b + 1) * dim {
                            let sc = atol + rtol * x[i].abs();
                            d2 += ((tmp[i] - k[0][i]) / sc).powi(2);
                        }
                        let d1 = d1s[b];
                        let d2 = (d2 / F::Scalar::from_usize(dim)).sqrt() / h[b];
                        let hh =
                            initial_step_final(h[b].as_f64(), d1.as_f64(), d2.as_f64(), tab.order);
                        h_next[b] = F::Scalar::from_f64(hh).min(p.dt_max).max(dt_floor(t[b]));
                        need_init[b] = false;
                        err_prev[b] = ERR_PREV_INIT;
                        after_reject[b] = false;
                    }
                }
            }

            // This step's size and end, per trial.
            for b in 0..batch {
                if state[b] != TrialState::Running {
                    continue;
                }
                let (target, kind) = next_target(b, &bp_idx);
                match p.mode {
                    Mode::Adaptive { .. } => {
                        let hb = h_next[b];
                        if target - t[b] <= hb * F::Scalar::from_f64(1.001) {
                            h[b] = target - t[b];
                            t_end[b] = target;
                            land[b] = kind;
                        } else {
                            h[b] = hb;
                            t_end[b] = t[b] + hb;
                            land[b] = Land::Free;
                        }
                    }
                    Mode::Fixed { dt } => {
                        let g =
                            F::Scalar::from_f64(t0.as_f64() + (grid_n[b] + 1) as f64 * dt.as_f64());
                        let tol = F::Scalar::from_f64(
                            (1e-9 * dt.as_f64()).max(8.0 * eps * t[b].abs().as_f64()),
                        );
                        if target <= g + tol {
                            t_end[b] = target;
                            land[b] = kind;
                            grid_next[b] = (target - g).abs() <= tol;
                        } else {
                            t_end[b] = g;
                            land[b] = Land::Free;
                            grid_next[b] = true;
                        }
                        h[b] = t_end[b] - t[b];
                    }
                }
                if t_end[b] <= t[b] || h[b].is_nan() || h[b] <= zero {
                    state[b] = TrialState::Failed(Failure {
                        kind: FailureKind::StepSizeUnderflow {
                            dt_min: dt_floor(t[b]).as_f64(),
                        },
                        trial: b,
                        t: t[b].as_f64(),
                        dt: h[b].as_f64(),
                    });
                }
            }

            // Stages 2..s.
            for i in 1..s {
                for b in 0..batch {
                    let cols = b * dim..(b + 1) * dim;
                    xs[cols.clone()].copy_from_slice(&x[cols.clone()]);
                    if state[b] != TrialState::Running {
                        t_eval[b] = t[b];
                        continue;
                    }
                    for j in 0..i {
                        let a = co.a[i * s + j];
                        if a != zero {
                            axpy(h[b] * a, &k[j][cols.clone()], &mut xs[cols.clone()]);
                        }
                    }
                    t_eval[b] = stage_time(t[b], h[b], co.c[i], t_end[b], land[b] == Land::Break);
                }
                field.rhs(&t_eval, &xs, &mut k[i], &mut ws);
                stats.rhs_evals += 1;
                for b in 0..batch {
                    if state[b] == TrialState::Running {
                        tstats[b].rhs_evals += 1;
                    }
                }
            }

            // Solution at the step's end.
            if co.fsal {
                std::mem::swap(&mut xs, &mut xnew);
            } else {
                for b in 0..batch {
                    if state[b] != TrialState::Running {
                        continue;
                    }
                    let cols = b * dim..(b + 1) * dim;
                    xnew[cols.clone()].copy_from_slice(&x[cols.clone()]);
                    for j in 0..s {
                        let bj = co.b[j];
                        if bj != zero {
                            axpy(h[b] * bj, &k[j][cols.clone()], &mut xnew[cols.clone()]);
                        }
                    }
                }
            }

            // Error control, accept or reject, saves.
            for b in 0..batch {
                if state[b] != TrialState::Running {
                    continue;
                }
                let cols = b * dim..(b + 1) * dim;
                let err = match (p.mode, &co.e) {
                    (Mode::Adaptive { rtol, atol }, Some(e)) => {
                        let mut acc = zero;
                        for i in cols.clone() {
                            let mut d = zero;
                            for j in 0..s {
                                d += e[j] * k[j][i];
                            }
                            let sc = atol + rtol * x[i].abs().max(xnew[i].abs());
                            acc += (h[b] * d / sc).powi(2);
                        }
                        (acc / F::Scalar::from_usize(dim)).sqrt().as_f64()
                    }
                    _ => f64::NAN,
                };
                let adaptive = matches!(p.mode, Mode::Adaptive { .. });
                let nonfinite = xnew[cols.clone()].iter().position(|v| !v.is_finite());
                let accept = if adaptive {
                    err <= 1.0 && nonfinite.is_none()
                } else {
                    nonfinite.is_none()
                };
                if let Some(log) = step_log.as_mut() {
                    log[b].push(StepRecord {
                        t: t[b].as_f64(),
                        dt: h[b].as_f64(),
                        err,
                        accepted: accept,
                    });
                }
                if !accept {
                    if !adaptive {
                        state[b] = TrialState::Failed(Failure {
                            kind: FailureKind::NonFinite {
                                index: nonfinite.unwrap_or(0),
                            },
                            trial: b,
                            t: t[b].as_f64(),
                            dt: h[b].as_f64(),
                        });
                        continue;
                    }
                    tstats[b].rejected += 1;
                    stats.rejected += 1;
                    let fac = p.controller.reject_factor(err, q);
                    h_next[b] = h[b] * F::Scalar::from_f64(fac);
                    after_reject[b] = true;
                    let floor = dt_floor(t[b]);
                    if h_next[b] < floor || h_next[b] <= zero {
                        state[b] = TrialState::Failed(Failure {
                            kind: FailureKind::StepSizeUnderflow {
                                dt_min: floor.as_f64(),
                            },
                            trial: b,
                            t: t[b].as_f64(),
                            dt: h_next[b].as_f64(),
                        });
                    }
                    continue;
                }

                // Accepted: saves in (t, t_end] from the dense output.
                tstats[b].accepted += 1;
                stats.accepted += 1;
                while save_idx[b] < n_save && p.save_ts[save_idx[b]] <= t_end[b] {
                    let ts = p.save_ts[save_idx[b]];
                    let o = save_idx[b] * n + b * dim;
                    if ts >= t_end[b] {
                        out[o..o + dim].copy_from_slice(&xnew[cols.clone()]);
                        if let Some(tp) = tape.as_mut() {
                            let idx = tp.step_index(b);
                            tp.saves[b].push(SaveSrc::End(idx));
                        }
                    } else {
                        let theta = ((ts - t[b]) / h[b]).as_f64();
                        if let Some(tp) = tape.as_mut() {
                            let idx = tp.step_index(b);
                            tp.saves[b].push(SaveSrc::Dense(idx, theta));
                        }
                        let mut w = [zero; MAX_STAGES];
                        dense_w(theta, &mut w);
                        let dst = &mut out[o..o + dim];
                        dst.copy_from_slice(&x[cols.clone()]);
                        for j in 0..s {
                            if w[j] != zero {
                                axpy(h[b] * w[j], &k[j][cols.clone()], dst);
                            }
                        }
                    }
                    save_idx[b] += 1;
                }
                x[cols.clone()].copy_from_slice(&xnew[cols.clone()]);
                if let Some(tp) = tape.as_mut() {
                    tp.accept(b, h[b], t_end[b], land[b] == Land::Break, &x[cols.clone()]);
                }
                t[b] = t_end[b];
                if let (Some(st), Some(sx)) = (step_ts.as_mut(), step_xs.as_mut()) {
                    st[b].push(t[b]);
                    sx[b].extend_from_slice(&x[cols.clone()]);
                }
                if grid_next[b] {
                    grid_n[b] += 1;
                }
                match land[b] {
                    Land::End => {
                        state[b] = TrialState::Done;
                        continue;
                    }
                    Land::Break => {
                        bp_idx[b] += 1;
                        need_k1[b] = true;
                        need_init[b] = adaptive;
                    }
                    Land::Free => {
                        if co.fsal {
                            let (first, rest) = k.split_at_mut(1);
                            first[0][cols.clone()].copy_from_slice(&rest[s - 2][cols.clone()]);
                        } else {
                            need_k1[b] = true;
                        }
                    }
                }
                if adaptive {
                    let fac = p
                        .controller
                        .accept_factor(err, err_prev[b], q, after_reject[b]);
                    err_prev[b] = err.max(ERR_PREV_INIT);
                    after_reject[b] = false;
                    h_next[b] = (h[b] * F::Scalar::from_f64(fac)).min(p.dt_max);
                    let floor = dt_floor(t[b]);
                    if land[b] == Land::Free && h_next[b] < floor {
                        state[b] = TrialState::Failed(Failure {
                            kind: FailureKind::StepSizeUnderflow {
                                dt_min: floor.as_f64(),
                            },
                            trial: b,
                            t: t[b].as_f64(),
                            dt: h_next[b].as_f64(),
                        });
                    }
                }
            }

            if let Some(cb) = self.progress.as_mut() {
                let mut tmin = f64::INFINITY;
                let mut run = 0;
                for b in 0..batch {
                    if state[b] == TrialState::Running {
                        run += 1;
                        tmin = tmin.min(t[b].as_f64());
                    }
                }
                cb(&Progress {
                    t: if run == 0 { t1.as_f64() } else { tmin },
                    t0: t0.as_f64(),
                    t1: t1.as_f64(),
                    steps: stats.steps,
                    running: run,
                    batch,
                });
            }
        }

        let saved = save_idx;
        let status: Vec<Status> = state
            .into_iter()
            .map(|s| match s {
                TrialState::Failed(f) => Status::Failed(f),
                _ => Status::Success,
            })
            .collect();
        let sol = Solution {
            dim,
            batch,
            ts: std::mem::take(&mut self.plan.save_ts),
            xs: out,
            saved,
            t_final: t,
            x_final: x,
            status,
            stats,
            trial_stats: tstats,
            step_ts,
            step_xs,
            step_log,
        };
        let failures: Vec<&Failure> = sol
            .status
            .iter()
            .filter_map(|s| match s {
                Status::Failed(f) => Some(f),
                Status::Success => None,
            })
            .collect();
        if allow_failures || failures.is_empty() {
            if let Some(tp) = tape.as_mut() {
                tp.x_final = sol.x_final.clone();
            }
            return Ok((sol, tape));
        }
        let failure = failures[0].clone();
        let n_failed = failures.len();
        Err(SolveError::Failed {
            failure,
            n_failed,
            batch,
            partial: Box::new(sol),
        })
    }
}
