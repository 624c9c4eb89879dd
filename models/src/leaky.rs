//! The leaky rate core shared by the RNN models:
//! `τ dx/dt = -x + W tanh(x) + B u_b(t)` for each trial `b`.
//!
//! Models differ only in how `W` is parameterised; each provides a [`Connectivity`] (apply
//! `W`, apply `Wᵀ`, and map `V Hᵀ` back to its own parameters), and [`LeakyRnn`] does the
//! rest: the right-hand side, the input drive, the state and parameter VJPs, the JVP.
//! Times are in ms when the task's are.

use neurode_solvers::{Activation, Backend, Columns, Cpu, JvpState, ParamView, PiecewiseConstant};
use neurode_solvers::{Real, VectorField, VjpParams, VjpState};

use crate::ModelError;

/// The recurrent weights `W` (`n x n`) of a leaky rate network, in a model's own
/// parameterisation. Matrices are column-major, `cols` columns (trials or stages) at once;
/// nothing here may allocate.
pub trait Connectivity<T: Real>: Clone + Send + Sync {
    /// Scratch memory for `cols` columns.
    type Scratch: Send;
    /// Number of units.
    fn n(&self) -> usize;
    /// Number of trainable parameters of `W`.
    fn n_params(&self) -> usize;
    /// Creates scratch memory for up to `cols` columns.
    fn scratch(&self, cols: usize) -> Self::Scratch;
    /// `out = W h` (overwrites `out`).
    fn apply(&self, h: &[T], out: &mut [T], s: &mut Self::Scratch);
    /// `out = Wᵀ v` (overwrites `out`).
    fn apply_t(&self, v: &[T], out: &mut [T], s: &mut Self::Scratch);
    /// `out += alpha · ∂(Σ_c v_cᵀ W h_c)/∂θ_W`: the parameter gradient of `tr(Vᵀ W H)`.
    fn vjp(&self, alpha: T, v: &[T], h: &[T], out: &mut [T], s: &mut Self::Scratch);
    /// Named blocks of `θ_W`, offsets from 0.
    fn param_views(&self) -> Vec<ParamView>;
    /// Copies `θ_W` into `out`.
    fn params(&self, out: &mut [T]);
    /// Replaces `θ_W`.
    fn set_params(&mut self, theta: &[T]);
}

/// A leaky rate network `τ dx/dt = -x + W tanh(x) + B u_b(t)` with connectivity `W`, input
/// weights `B` (`n x n_in`, trainable) and one piecewise-constant input signal per trial.
///
/// Parameters `θ` are `W`'s (see its [`Connectivity::param_views`]) followed by `B`. Bound
/// to inputs, the field takes one trial per signal and reports each signal's jump times as
/// discontinuities, so that adaptive steppers land on them.
#[derive(Debug, Clone)]
pub struct LeakyRnn<T, W> {
    w: W,
    tau: T,
    n_in: usize,
    b_in: Vec<T>,
    inputs: Vec<PiecewiseConstant<T>>,
    /// `B u` for every trial and input piece: `drive[b][p * n..(p + 1) * n]`.
    drive: Vec<Vec<T>>,
}

/// Workspace of [`LeakyRnn`].
#[derive(Debug)]
pub struct LeakyWorkspace<T, S> {
    h: Vec<T>,
    g: Vec<T>,
    s: S,
}

impl<T: Real, W: Connectivity<T>> LeakyRnn<T, W> {
    /// A network from its connectivity, time constant `tau` (> 0) and input weights `b_in`
    /// (`n x n_in`, column-major).
    pub fn new(w: W, tau: T, n_in: usize, b_in: Vec<T>) -> Result<Self, ModelError> {
        let n = w.n();
        if !tau.is_finite() || tau.as_f64() <= 0.0 {
            return Err(ModelError::invalid(
                "tau",
                tau.as_f64(),
                "the time constant must be finite and positive",
            ));
        }
        check_len("B", &b_in, n * n_in, &format!("{n} x {n_in}"))?;
        Ok(LeakyRnn {
            w,
            tau,
            n_in,
            b_in,
            inputs: Vec::new(),
            drive: Vec::new(),
        })
    }

    /// Binds one input signal per trial (replacing any bound before).
    pub fn set_inputs(&mut self, inputs: Vec<PiecewiseConstant<T>>) -> Result<(), ModelError> {
        if let Some((b, u)) = inputs
            .iter()
            .enumerate()
            .find(|(_, u)| u.n_channels() != self.n_in)
        {
            return Err(ModelError::Shape(format!(
                "the input of trial {b} has {} channels but the network has {} input weights \
                 columns; give every trial {} channels",
                u.n_channels(),
                self.n_in,
                self.n_in
            )));
        }
        self.inputs = inputs;
        self.update_drive();
        Ok(())
    }

    /// The bound input signals.
    pub fn inputs(&self) -> &[PiecewiseConstant<T>] {
        &self.inputs
    }
    /// The connectivity.
    pub fn connectivity(&self) -> &W {
        &self.w
    }
    /// Input weights `B` (`n x n_in`, column-major).
    pub fn input_weights(&self) -> &[T] {
        &self.b_in
    }
    /// Number of input channels.
    pub fn n_in(&self) -> usize {
        self.n_in
    }
    /// Time constant.
    pub fn tau(&self) -> T {
        self.tau
    }

    fn update_drive(&mut self) {
        let n = self.w.n();
        self.drive = self
            .inputs
            .iter()
            .map(|u| {
                u.project(&self.b_in, n)
                    .expect("input channels are checked when the inputs are bound")
            })
            .collect();
    }

    /// `h = tanh(x)` in the workspace, for `cols` columns.
    fn activate<'w>(&self, x: &[T], ws: &'w mut [T]) -> &'w mut [T] {
        let h = &mut ws[..x.len()];
        Cpu.activate_to(Activation::Tanh, x, h);
        h
    }
}

pub(crate) fn check_len<T>(
    name: &str,
    v: &[T],
    expected: usize,
    shape: &str,
) -> Result<(), ModelError> {
    if v.len() != expected {
        return Err(ModelError::Shape(format!(
            "{name} has {} entries but must be {shape} ({expected} entries)",
            v.len()
        )));
    }
    Ok(())
}

impl<T: Real, W: Connectivity<T>> VectorField for LeakyRnn<T, W> {
    type Scalar = T;
    type Workspace = LeakyWorkspace<T, W::Scratch>;

    fn dim(&self) -> usize {
        self.w.n()
    }
    fn n_params(&self) -> usize {
        self.w.n_params() + self.b_in.len()
    }
    fn batch(&self) -> Option<usize> {
        (!self.inputs.is_empty()).then_some(self.inputs.len())
    }
    fn workspace(&self, cols: usize) -> Self::Workspace {
        let n = self.w.n();
        LeakyWorkspace {
            h: vec![T::zero(); n * cols],
            g: vec![T::zero(); n * cols],
            s: self.w.scratch(cols),
        }
    }
    fn rhs(&self, cols: Columns<'_, T>, x: &[T], dxdt: &mut [T], ws: &mut Self::Workspace) {
        let n = self.w.n();
        let h = self.activate(x, &mut ws.h);
        self.w.apply(h, dxdt, &mut ws.s);
        let inv_tau = T::one() / self.tau;
        let (ts, drive) = (cols.t(), &self.drive);
        let input = |b: usize| {
            let trial = cols.trial(b);
            let p = self.inputs.get(trial)?.piece(ts[b]);
            drive.get(trial)?.get(p * n..(p + 1) * n)
        };
        Cpu.leak(n, x, &input, inv_tau, dxdt);
    }
    fn discontinuities(&self, trial: usize, _span: (T, T), out: &mut Vec<T>) {
        if let Some(u) = self.inputs.get(trial) {
            out.extend_from_slice(u.times());
        }
    }
}

impl<T: Real, W: Connectivity<T>> VjpState for LeakyRnn<T, W> {
    /// `out += (-v + (1 - tanh²(x)) ∘ (Wᵀ v)) / τ`.
    fn vjp_state(
        &self,
        _cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        let LeakyWorkspace { h, g, s } = ws;
        let h = self.activate(x, h);
        self.vjp_state_h(x, h, v, out, g, s);
    }
    /// `tanh(x)`: one value per unit.
    fn residual_len(&self) -> usize {
        self.w.n()
    }
    fn residuals(&self, _cols: Columns<'_, T>, x: &[T], r: &mut [T]) {
        Cpu.activate_to(Activation::Tanh, x, &mut r[..x.len()]);
    }
    fn vjp_state_with(
        &self,
        _cols: Columns<'_, T>,
        x: &[T],
        r: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        self.vjp_state_h(x, &r[..x.len()], v, out, &mut ws.g, &mut ws.s);
    }
}

impl<T: Real, W: Connectivity<T>> VjpParams for LeakyRnn<T, W> {
    /// `W`'s blocks, then `B` (`n x n_in`).
    fn param_views(&self) -> Vec<ParamView> {
        let mut v = self.w.param_views();
        v.push(ParamView {
            name: "B".into(),
            offset: self.w.n_params(),
            shape: vec![self.w.n(), self.n_in],
        });
        v
    }
    fn params(&self, out: &mut [T]) {
        let nw = self.w.n_params();
        self.w.params(&mut out[..nw]);
        out[nw..nw + self.b_in.len()].copy_from_slice(&self.b_in);
    }
    fn set_params(&mut self, theta: &[T]) {
        assert_eq!(theta.len(), self.n_params(), "theta has the wrong length");
        let nw = self.w.n_params();
        self.w.set_params(&theta[..nw]);
        self.b_in.copy_from_slice(&theta[nw..]);
        self.update_drive();
    }
    /// `θ_W += (W's map of V tanh(X)ᵀ) / τ`, `dB += V Uᵀ / τ`.
    fn vjp_params(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        let LeakyWorkspace { h, s, .. } = ws;
        let h = self.activate(x, h);
        self.vjp_params_h(cols, h, v, out, s);
    }
    fn vjp_params_with(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        r: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        self.vjp_params_h(cols, &r[..x.len()], v, out, &mut ws.s);
    }
}

impl<T: Real, W: Connectivity<T>> LeakyRnn<T, W> {
    /// The state VJP given `h = tanh(x)`; `g` is scratch.
    fn vjp_state_h(
        &self,
        x: &[T],
        h: &[T],
        v: &[T],
        out: &mut [T],
        g: &mut [T],
        s: &mut W::Scratch,
    ) {
        let g = &mut g[..x.len()];
        self.w.apply_t(v, g, s);
        let inv_tau = T::one() / self.tau;
        Cpu.leak_vjp(Activation::Tanh, x, h, g, v, inv_tau, out);
    }

    /// The parameter VJP given `h = tanh(x)`.
    fn vjp_params_h(
        &self,
        cols: Columns<'_, T>,
        h: &[T],
        v: &[T],
        out: &mut [T],
        s: &mut W::Scratch,
    ) {
        let n = self.w.n();
        let inv_tau = T::one() / self.tau;
        let (dw, db) = out.split_at_mut(self.w.n_params());
        self.w.vjp(inv_tau, v, h, dw, s);
        if self.inputs.is_empty() {
            return;
        }
        let ts = cols.t();
        let input = |c: usize| {
            let u = self.inputs.get(cols.trial(c))?;
            Some(u.piece_values(u.piece(*ts.get(c)?)))
        };
        Cpu.drive_vjp(n, v, &input, inv_tau, db);
    }
}

impl<T: Real, W: Connectivity<T>> JvpState for LeakyRnn<T, W> {
    /// `out = (-v + W ((1 - tanh²(x)) ∘ v)) / τ`.
    fn jvp_state(
        &self,
        _cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        let h = self.activate(x, &mut ws.h);
        for (hi, &vi) in h.iter_mut().zip(v) {
            *hi = (T::one() - *hi * *hi) * vi;
        }
        self.w.apply(h, out, &mut ws.s);
        let inv_tau = T::one() / self.tau;
        for (o, &vi) in out.iter_mut().zip(v) {
            *o = (*o - vi) * inv_tau;
        }
    }
}
