//! The front door: [`integrate`] and its builder.

use num_traits::{Float, Zero};

use crate::controller::PiController;
use crate::error::SolveError;
use crate::field::VectorField;
use crate::gradient::{Adjoint, Checkpoints};
use crate::rk::MAX_STAGES;
use crate::scalar::Real;
use crate::solution::{Failure, Solution, Status};
use crate::solve::{Mode, Plan, Recorder};
use crate::split::{solve_split, Progress, ProgressFn, Split};
use crate::tableau::{ButcherTableau, EULER, TSIT5};

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

/// Default step budget per trial of an adaptive solve (see [`Integrate::max_steps`]).
pub const DEFAULT_MAX_STEPS: usize = 100_000;

/// Builder for a solve; created by [`integrate`], executed by [`run`](Self::run).
///
/// Defaults: Tsit5 with adaptive steps, `rtol`/`atol` from [`Real::DEFAULT_RTOL`] and
/// [`Real::DEFAULT_ATOL`] (1e-6/1e-8 in `f64`, 1e-4/1e-6 in `f32`), initial step by
/// Hairer's rule, at most [`DEFAULT_MAX_STEPS`] adaptive steps per trial (fixed steps are
/// not capped), states saved at `t0` and `t1`, the
/// initial state from [`VectorField::initial_state`], the field's discontinuities used
/// as breakpoints, and the trials split over all available cores.
pub struct Integrate<'a, F: VectorField> {
    pub(crate) field: &'a F,
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
    pub(crate) allow_failures: bool,
    threads: Option<usize>,
    pub(crate) progress: Option<ProgressFn<'a>>,
    pub(crate) adjoint: Adjoint,
    pub(crate) checkpoints: Checkpoints,
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
        threads: None,
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
    /// Called after every iteration of the stepping loop (must not block for long), on the
    /// calling thread; with several threads it sees the slowest running trial of all.
    pub fn progress(mut self, f: impl FnMut(&Progress) + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }
    /// Threads the solve uses (default: the available cores, see
    /// [`std::thread::available_parallelism`]), one of two ways:
    ///
    /// - with at least [`MIN_TRIALS_PER_BLOCK`](crate::MIN_TRIALS_PER_BLOCK) trials per
    ///   thread, each thread solves a contiguous block of trials with its own workspace;
    ///   gradients sum the blocks' parameter gradients in block order (deterministic for a
    ///   fixed thread count, equal across thread counts up to round-off);
    /// - with fewer, one solver runs all trials on the calling thread and the threads share
    ///   each of its large operations ([`with_team`](crate::with_team)): weight products by
    ///   row panels, elementwise passes by ranges. Gradients are then the same bits as on
    ///   one thread.
    ///
    /// Either way a trial's solution does not depend on the number of threads (bit for
    /// bit), and small problems (under [`MIN_ELEMENTS_PER_THREAD`](crate::MIN_ELEMENTS_PER_THREAD)
    /// state values per thread) use fewer threads.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Runs the solve. Every option is checked before the first step.
    pub fn run(mut self) -> Result<Solution<F::Scalar>, SolveError<F::Scalar>> {
        let plan = self.plan()?;
        let (sol, _, _) = self.solve(plan, |_| ());
        finish(sol, self.allow_failures)
    }

    /// Solves `plan` over the chosen threads, one recorder per block of trials (made by
    /// `make` from the block's plan); returns the merged solution and the blocks' plans and
    /// recorders in trial order.
    pub(crate) fn solve<R: Recorder<F::Scalar> + Send>(
        &mut self,
        plan: Plan<F::Scalar>,
        make: impl Fn(&Plan<F::Scalar>) -> R + Sync,
    ) -> Split<F::Scalar, R> {
        let threads = self.threads.unwrap_or_else(default_threads);
        let progress = self.progress.take();
        solve_split(self.field, plan, threads, progress, make)
    }

    pub(crate) fn plan(&self) -> Result<Plan<F::Scalar>, SolveError<F::Scalar>> {
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
        if self.threads == Some(0) {
            return Err(E::invalid(
                "threads",
                0,
                "use at least one thread (the default is the number of available cores)",
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
            offset: 0,
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

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `Ok` unless a trial failed and failures are not allowed.
pub(crate) fn finish<T: Real>(
    sol: Solution<T>,
    allow_failures: bool,
) -> Result<Solution<T>, SolveError<T>> {
    let failures: Vec<&Failure> = sol
        .status
        .iter()
        .filter_map(|s| match s {
            Status::Failed(f) => Some(f),
            Status::Success => None,
        })
        .collect();
    if allow_failures || failures.is_empty() {
        return Ok(sol);
    }
    let failure = failures[0].clone();
    let n_failed = failures.len();
    let batch = sol.batch;
    Err(SolveError::Failed {
        failure,
        n_failed,
        batch,
        partial: Box::new(sol),
    })
}
