//! A network of any model kind behind one object ([`Net`]): its parameters, its inputs and
//! noise, and the solves the app runs on it (forward, forward with gradient, fixed points,
//! flow fields). Every model whose field is a [`LeakyRnn`] gets all of it from the one
//! generic implementation below, monomorphised for its connectivity, so the numbers are
//! those of calling the solver on the concrete field.

use std::any::Any;
use std::fmt;

use neurode_models::{Connectivity, LeakyRnn, ModelError};
use neurode_solvers::{
    integrate, Checkpoints, Integrate, ParamView, PiecewiseConstant, Real, Solution, SolveError,
    Stepper, VectorField, VjpParams,
};

use crate::analysis::{
    find_fixed_points, flow_field, AnalysisError, FixedPointOptions, FixedPoints, FlowField, Plane,
    Probe,
};

/// How a solve steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stepping {
    /// Fixed-step forward Euler with step `dt`.
    Euler {
        /// The step.
        dt: f64,
    },
    /// Adaptive Tsit5.
    Tsit5 {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
        /// The first step, if given.
        dt0: Option<f64>,
    },
}

/// One solve of a bound network over `[0, t_end]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveSpec<T> {
    /// The stepper and its settings.
    pub stepping: Stepping,
    /// End of the solve (task time units).
    pub t_end: f64,
    /// The saved times.
    pub times: Vec<T>,
    /// Initial states (`dim x trials`; `None`: the field's own).
    pub x0: Option<Vec<T>>,
    /// Solver threads.
    pub threads: usize,
}

impl<T: Real> SolveSpec<T> {
    /// The solver of `field` this spec describes.
    fn builder<'a, F: VectorField<Scalar = T>>(&self, field: &'a F) -> Integrate<'a, F> {
        let f = T::from_f64;
        let b = integrate(field, (f(0.0), f(self.t_end)))
            .save_at(self.times.clone())
            .threads(self.threads);
        let b = match self.stepping {
            Stepping::Euler { dt } => b.stepper(Stepper::Euler).fixed_dt(f(dt)),
            Stepping::Tsit5 { rtol, atol, dt0 } => {
                let b = b.tolerances(f(rtol), f(atol));
                match dt0 {
                    Some(dt) => b.dt0(f(dt)),
                    None => b,
                }
            }
        };
        match &self.x0 {
            Some(x0) => b.x0(x0.clone()),
            None => b,
        }
    }
}

/// What the app does with a network, whatever its model kind: its parameters, inputs and
/// solves, implemented once for every [`LeakyRnn`](neurode_models::LeakyRnn).
pub trait Field<T: Real>: fmt::Debug + Send + Sync {
    /// Units.
    fn dim(&self) -> usize;
    /// Input channels.
    fn n_in(&self) -> usize;
    /// Number of field parameters.
    fn n_params(&self) -> usize;
    /// The field's parameter views.
    fn param_views(&self) -> Vec<ParamView>;
    /// Copies the field's parameters into `out`.
    fn params(&self, out: &mut [T]);
    /// Replaces the field's parameters.
    fn set_params(&mut self, theta: &[T]);
    /// Input weights `B` (`n x n_in`, column-major).
    fn input_weights(&self) -> &[T];
    /// Binds one input and (if any) one noise signal per trial.
    fn bind(
        &mut self,
        inputs: Vec<PiecewiseConstant<T>>,
        noise: Vec<PiecewiseConstant<T>>,
    ) -> Result<(), ModelError>;
    /// Solves the bound trials.
    fn solve(&self, spec: &SolveSpec<T>) -> Result<Solution<T>, SolveError<T>>;
    /// Solves the bound trials and backpropagates: `dl` turns the solution into the
    /// gradient of the loss with respect to the saved states; returns the solution and the
    /// gradient with respect to the field's parameters.
    fn solve_with_gradient(
        &self,
        spec: &SolveSpec<T>,
        dl: &mut dyn FnMut(&Solution<T>) -> Vec<T>,
    ) -> Result<(Solution<T>, Vec<T>), SolveError<T>>;
    /// Fixed and slow points (see [`find_fixed_points`]).
    fn fixed_points(
        &self,
        probe: &Probe,
        inits: &[T],
        opts: &FixedPointOptions,
    ) -> Result<FixedPoints, AnalysisError>;
    /// The flow on a plane (see [`flow_field`]).
    #[allow(clippy::too_many_arguments)]
    fn flow_field(
        &self,
        probe: &Probe,
        plane: &Plane,
        x_range: (f64, f64),
        y_range: (f64, f64),
        points: usize,
        base: Option<&[f64]>,
    ) -> Result<FlowField, AnalysisError>;
    /// A boxed copy.
    fn boxed_clone(&self) -> Box<dyn Field<T>>;
    /// The concrete field, for a kind's own code ([`Net::downcast_ref`]).
    fn as_any(&self) -> &dyn Any;
}

impl<T, W> Field<T> for LeakyRnn<T, W>
where
    T: Real,
    W: Connectivity<T> + Clone + fmt::Debug + Send + Sync + 'static,
    LeakyRnn<T, W>: neurode_solvers::Differentiable<Scalar = T> + neurode_solvers::JvpState,
{
    fn dim(&self) -> usize {
        VectorField::dim(self)
    }
    fn n_in(&self) -> usize {
        LeakyRnn::n_in(self)
    }
    fn n_params(&self) -> usize {
        VectorField::n_params(self)
    }
    fn param_views(&self) -> Vec<ParamView> {
        VjpParams::param_views(self)
    }
    fn params(&self, out: &mut [T]) {
        VjpParams::params(self, out)
    }
    fn set_params(&mut self, theta: &[T]) {
        VjpParams::set_params(self, theta)
    }
    fn input_weights(&self) -> &[T] {
        LeakyRnn::input_weights(self)
    }
    fn bind(
        &mut self,
        inputs: Vec<PiecewiseConstant<T>>,
        noise: Vec<PiecewiseConstant<T>>,
    ) -> Result<(), ModelError> {
        self.set_inputs(inputs)?;
        self.set_noise(noise)
    }
    fn solve(&self, spec: &SolveSpec<T>) -> Result<Solution<T>, SolveError<T>> {
        spec.builder(self).run()
    }
    fn solve_with_gradient(
        &self,
        spec: &SolveSpec<T>,
        dl: &mut dyn FnMut(&Solution<T>) -> Vec<T>,
    ) -> Result<(Solution<T>, Vec<T>), SolveError<T>> {
        let (sol, tape) = spec
            .builder(self)
            .checkpoints(Checkpoints::default())
            .run_with_gradient()?;
        let g = tape.backward(&dl(&sol))?;
        Ok((sol, g.params))
    }
    fn fixed_points(
        &self,
        probe: &Probe,
        inits: &[T],
        opts: &FixedPointOptions,
    ) -> Result<FixedPoints, AnalysisError> {
        find_fixed_points(self, probe, inits, opts)
    }
    fn flow_field(
        &self,
        probe: &Probe,
        plane: &Plane,
        x_range: (f64, f64),
        y_range: (f64, f64),
        points: usize,
        base: Option<&[f64]>,
    ) -> Result<FlowField, AnalysisError> {
        flow_field(self, probe, plane, x_range, y_range, points, base)
    }
    fn boxed_clone(&self) -> Box<dyn Field<T>> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A network of one of the model kinds, with its parameters current.
pub struct Net<T: Real>(Box<dyn Field<T>>);

impl<T: Real> Net<T> {
    /// Wraps a model's field.
    pub fn new(field: impl Field<T> + 'static) -> Self {
        Net(Box::new(field))
    }
    /// The concrete field, if it is an `F` (a kind's own code, tests).
    pub fn downcast_ref<F: 'static>(&self) -> Option<&F> {
        self.0.as_any().downcast_ref()
    }
}

impl<T: Real> Clone for Net<T> {
    fn clone(&self) -> Self {
        Net(self.0.boxed_clone())
    }
}

impl<T: Real> fmt::Debug for Net<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Real> std::ops::Deref for Net<T> {
    type Target = dyn Field<T>;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl<T: Real> std::ops::DerefMut for Net<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}
