//! The leaky rate core shared by the RNN models:
//! `τ ⊙ dx/dt = -x + W φ(x) + B u_b(t) + b`, plus an optional term `e_b(t)` added to
//! `dx/dt` unscaled (per-step noise), for each trial `b`.
//!
//! Models differ only in how `W` is parameterised; each provides a [`Connectivity`] (apply
//! `W`, apply `Wᵀ`, and map `V Hᵀ` back to its own parameters), and [`LeakyRnn`] does the
//! rest: the activation `φ`, the time constants `τ` (one shared, one per unit, or one per
//! unit trained through a bounded parameterisation), the input drive, the bias, the noise,
//! the state and parameter VJPs, the JVP. Times are in the task's units (ms for the
//! low-rank RNN's task, steps for the Kim et al. tasks).

use neurode_solvers::{recycle, reused_zeros, Real, VectorField, VjpParams, VjpState};
use neurode_solvers::{Activation, Backend, Columns, Cpu, JvpState, ParamView, PiecewiseConstant};

use crate::checks::{check_finite, check_len, check_signed_mask};
use crate::rectifier::Rectifier;
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
    /// As [`vjp`](Self::vjp), and also `rows[i] += alpha · Σ_c v_ic (W h_c)_i`: the row
    /// sums of `W ⊙ alpha V Hᵀ`, which the gradient of trained time constants needs. `z`
    /// is scratch, grown to the length of `v` when it is shorter (once: the caller keeps
    /// it). The default forms `W H` in it (one more product, `n² cols` multiply-adds); a
    /// dense `W` reads the sums off the `V Hᵀ` its `vjp` forms anyway (`n²`) and leaves
    /// `z` alone.
    #[allow(clippy::too_many_arguments)]
    fn vjp_row_sums(
        &self,
        alpha: T,
        v: &[T],
        h: &[T],
        out: &mut [T],
        rows: &mut [T],
        z: &mut Vec<T>,
        s: &mut Self::Scratch,
    ) {
        self.vjp(alpha, v, h, out, s);
        let n = self.n();
        if z.len() < v.len() {
            z.resize(v.len(), T::zero());
        }
        let z = &mut z[..v.len()];
        self.apply(h, z, s);
        for (vc, zc) in v.chunks_exact(n).zip(z.chunks_exact(n)) {
            for ((r, &vi), &zi) in rows.iter_mut().zip(vc).zip(zc) {
                *r += alpha * (vi * zi);
            }
        }
    }
    /// Named blocks of `θ_W`, offsets from 0.
    fn param_views(&self) -> Vec<ParamView>;
    /// Copies `θ_W` into `out`.
    fn params(&self, out: &mut [T]);
    /// Replaces `θ_W`.
    fn set_params(&mut self, theta: &[T]);
    /// How many columns of parameter VJPs the leaky core may gather before calling
    /// [`vjp`](Self::vjp) once for all of them (a dense `W` turns per-step rank-1 updates
    /// into one product this way). Default 0: every call at once (its bits do not depend
    /// on the gathering).
    fn defer_columns(&self) -> usize {
        0
    }
}

/// How the time constants `τ` of a [`LeakyRnn`] are given.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeConstants<T> {
    /// One `τ` for every unit (fixed).
    Shared(T),
    /// One fixed `τ` per unit.
    PerUnit(Vec<T>),
    /// One trained `τ` per unit, kept in `[min, max]` by `τ_i = σ(g_i) (max - min) + min`;
    /// the parameters are the `g_i` (Kim et al. 2019's `taus_gaus`).
    Bounded {
        /// The unconstrained parameters, one per unit.
        g: Vec<T>,
        /// Lower bound (> 0).
        min: T,
        /// Upper bound (>= `min`).
        max: T,
    },
}

impl<T: Real> TimeConstants<T> {
    /// The time constants: one value (shared) or one per unit.
    pub fn values(&self) -> Vec<T> {
        match self {
            TimeConstants::Shared(t) => vec![*t],
            TimeConstants::PerUnit(t) => t.clone(),
            // Clamped: the rounding of `σ (max - min) + min` must not leave the bounds.
            TimeConstants::Bounded { g, min, max } => g
                .iter()
                .map(|&g| (sigmoid(g) * (*max - *min) + *min).max(*min).min(*max))
                .collect(),
        }
    }
    fn n_params(&self) -> usize {
        match self {
            TimeConstants::Bounded { g, .. } => g.len(),
            _ => 0,
        }
    }
    fn check(&self, n: usize) -> Result<(), ModelError> {
        let positive = |name: &'static str, t: T| {
            if t.is_finite() && t.as_f64() > 0.0 {
                Ok(())
            } else {
                Err(ModelError::invalid(
                    name,
                    t.as_f64(),
                    "time constants must be finite and positive",
                ))
            }
        };
        match self {
            TimeConstants::Shared(t) => positive("tau", *t),
            TimeConstants::PerUnit(t) => {
                check_len("tau", t, n, &format!("{n} (one per unit)"))?;
                t.iter().try_for_each(|&t| positive("tau", t))
            }
            TimeConstants::Bounded { g, min, max } => {
                check_len("tau parameters g", g, n, &format!("{n} (one per unit)"))?;
                positive("tau_min", *min)?;
                positive("tau_max", *max)?;
                if max.as_f64() < min.as_f64() {
                    return Err(ModelError::invalid(
                        "tau_max",
                        max.as_f64(),
                        "tau_max must be at least tau_min",
                    ));
                }
                check_finite("tau parameters g", g)
            }
        }
    }
}

fn sigmoid<T: Real>(g: T) -> T {
    T::one() / (T::one() + (-g).exp())
}

/// A leaky rate network `τ ⊙ dx/dt = -x + W φ(x) + B u_b(t) + b (+ τ ⊙ e_b(t))` with
/// connectivity `W`, activation `φ` (tanh unless set), time constants `τ`
/// ([`TimeConstants`]), input weights `B` (`n x n_in`), an optional bias `b`, one
/// piecewise-constant input signal per trial and optionally one piecewise-constant noise
/// signal `e_b` per trial, added to `dx/dt` as it is (not divided by `τ`).
///
/// Parameters `θ` are `W`'s (see its [`Connectivity::param_views`]), then `B`, then the
/// bias (view `bias`, if any), then the time-constant parameters (view `tau_g`, if
/// trained). Bound to inputs, the field takes one trial per signal and reports each
/// signal's jump times as discontinuities, so that adaptive steppers land on them.
#[derive(Debug, Clone)]
pub struct LeakyRnn<T, W> {
    w: W,
    act: Activation,
    tau: TimeConstants<T>,
    /// `1/τ`: one value, or one per unit.
    inv_tau: Vec<T>,
    n_in: usize,
    b_in: Vec<T>,
    /// Constrained input weights: `θ` holds the raw weights and `B = rect(raw) ⊙ S`.
    input_mask: Option<InputMask<T>>,
    bias: Option<Vec<T>>,
    inputs: Vec<PiecewiseConstant<T>>,
    /// `B u + b` for every trial and input piece: `drive[b][p * n..(p + 1) * n]`.
    drive: Vec<Vec<T>>,
    noise: Vec<PiecewiseConstant<T>>,
}

/// Input weights under a signed mask and a rectifier (mRNNTorch's constrained inputs).
#[derive(Debug, Clone)]
struct InputMask<T> {
    raw: Vec<T>,
    signed: Vec<T>,
    rect: Rectifier,
}

/// Workspace of [`LeakyRnn`].
#[derive(Debug)]
pub struct LeakyWorkspace<T: Real, S> {
    h: Vec<T>,
    g: Vec<T>,
    z: Vec<T>,
    s: S,
    def: Deferred<T>,
}

impl<T: Real, W: Connectivity<T>> LeakyRnn<T, W> {
    /// A network from its connectivity, one time constant `tau` (> 0) for every unit and
    /// input weights `b_in` (`n x n_in`, column-major); `φ = tanh`, no bias.
    pub fn new(w: W, tau: T, n_in: usize, b_in: Vec<T>) -> Result<Self, ModelError> {
        let n = w.n();
        let tau = TimeConstants::Shared(tau);
        tau.check(n)?;
        check_len("B", &b_in, n * n_in, &format!("{n} x {n_in}"))?;
        check_finite("B", &b_in)?;
        Ok(LeakyRnn {
            w,
            act: Activation::Tanh,
            inv_tau: inv(&tau),
            tau,
            n_in,
            b_in,
            input_mask: None,
            bias: None,
            inputs: Vec::new(),
            drive: Vec::new(),
            noise: Vec::new(),
        })
    }

    /// The same network with activation `act`.
    pub fn with_activation(mut self, act: Activation) -> Result<Self, ModelError> {
        match act {
            Activation::ClippedRelu { cap } | Activation::ClippedSoftplus { cap }
                if !(cap.is_finite() && cap > 0.0) =>
            {
                return Err(ModelError::invalid(
                    "activation cap",
                    cap,
                    "the clipping bound must be finite and positive",
                ))
            }
            _ => {}
        }
        self.act = act;
        Ok(self)
    }

    /// The same network with input weights `B = rect(raw) ⊙ s` (`s` a signed mask of
    /// `-1`, `0`, `1`, both `n x n_in` column-major): its parameters are then the raw
    /// weights, and no gradient step can move a masked entry or flip a sign.
    pub fn with_input_mask(
        mut self,
        raw: Vec<T>,
        s: Vec<T>,
        rect: Rectifier,
    ) -> Result<Self, ModelError> {
        let len = self.b_in.len();
        let shape = format!("{} x {}", self.w.n(), self.n_in);
        check_len("input weights", &raw, len, &shape)?;
        check_finite("input weights", &raw)?;
        check_len("input mask", &s, len, &shape)?;
        check_signed_mask("input mask", &s, self.w.n())?;
        self.input_mask = Some(InputMask {
            raw,
            signed: s,
            rect,
        });
        self.apply_input_mask();
        self.update_drive();
        Ok(self)
    }

    /// `B = rect(raw) ⊙ S`, when the input weights are constrained.
    fn apply_input_mask(&mut self) {
        if let Some(m) = &self.input_mask {
            for (b, v) in self.b_in.iter_mut().zip(m.rect.masked(&m.raw, &m.signed)) {
                *b = v;
            }
        }
    }

    /// The same network with time constants `tau`.
    pub fn with_time_constants(mut self, tau: TimeConstants<T>) -> Result<Self, ModelError> {
        tau.check(self.w.n())?;
        self.inv_tau = inv(&tau);
        self.tau = tau;
        Ok(self)
    }

    /// The same network with a (trainable) bias `b` (`n` values).
    pub fn with_bias(mut self, bias: Vec<T>) -> Result<Self, ModelError> {
        let n = self.w.n();
        check_len("bias", &bias, n, &format!("{n} (one per unit)"))?;
        check_finite("bias", &bias)?;
        self.bias = Some(bias);
        self.update_drive();
        Ok(self)
    }

    /// Binds one input signal per trial (replacing any bound before, and dropping any bound
    /// noise).
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
        self.noise.clear();
        self.update_drive();
        Ok(())
    }

    /// Binds one noise signal per trial (`n` channels each, added to `dx/dt` unscaled);
    /// an empty vector removes the noise. Bind the inputs first: the counts must agree.
    pub fn set_noise(&mut self, noise: Vec<PiecewiseConstant<T>>) -> Result<(), ModelError> {
        let n = self.w.n();
        if !noise.is_empty() && noise.len() != self.inputs.len() {
            return Err(ModelError::Shape(format!(
                "{} noise signals for {} bound input signals; bind the inputs first and give \
                 one noise signal per trial",
                noise.len(),
                self.inputs.len()
            )));
        }
        if let Some((b, e)) = noise.iter().enumerate().find(|(_, e)| e.n_channels() != n) {
            return Err(ModelError::Shape(format!(
                "the noise of trial {b} has {} channels; it needs one per unit ({n})",
                e.n_channels()
            )));
        }
        self.noise = noise;
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
    /// The activation `φ`.
    pub fn activation(&self) -> Activation {
        self.act
    }
    /// How the time constants are given.
    pub fn time_constants(&self) -> &TimeConstants<T> {
        &self.tau
    }
    /// Whether the time constants are trained (parameter view `tau_g`).
    pub fn time_constants_trained(&self) -> bool {
        self.tau.n_params() > 0
    }
    /// The bias, if the network has one.
    pub fn bias(&self) -> Option<&[T]> {
        self.bias.as_deref()
    }

    fn update_drive(&mut self) {
        let n = self.w.n();
        let bias = self.bias.as_deref();
        self.drive = self
            .inputs
            .iter()
            .map(|u| {
                let mut d = u
                    .project(&self.b_in, n)
                    .expect("input channels are checked when the inputs are bound");
                if let Some(b) = bias {
                    for piece in d.chunks_exact_mut(n) {
                        piece.iter_mut().zip(b).for_each(|(d, &b)| *d += b);
                    }
                }
                d
            })
            .collect();
    }

    /// `h = φ(x)` in the workspace, for `cols` columns.
    fn activate<'w>(&self, x: &[T], ws: &'w mut [T]) -> &'w mut [T] {
        let h = &mut ws[..x.len()];
        Cpu.activate_to(self.act, x, h);
        h
    }

    /// The drive `B u + b` of column `c`'s trial at its time (the bias alone without
    /// inputs; `None` without either).
    fn drive_of(&self, cols: Columns<'_, T>, c: usize) -> Option<&[T]> {
        let n = self.w.n();
        let Some(u) = self.inputs.get(cols.trial(c)) else {
            return self.bias.as_deref();
        };
        let p = u.piece(*cols.t().get(c)?);
        self.drive.get(cols.trial(c))?.get(p * n..(p + 1) * n)
    }
}

fn inv<T: Real>(tau: &TimeConstants<T>) -> Vec<T> {
    tau.values().into_iter().map(|t| T::one() / t).collect()
}

impl<T: Real, W: Connectivity<T>> VectorField for LeakyRnn<T, W> {
    type Scalar = T;
    type Workspace = LeakyWorkspace<T, W::Scratch>;

    fn dim(&self) -> usize {
        self.w.n()
    }
    fn n_params(&self) -> usize {
        self.w.n_params()
            + self.b_in.len()
            + self.bias.as_ref().map_or(0, Vec::len)
            + self.tau.n_params()
    }
    fn batch(&self) -> Option<usize> {
        (!self.inputs.is_empty()).then_some(self.inputs.len())
    }
    fn work_per_column(&self) -> usize {
        let n = self.w.n();
        n.saturating_mul(n)
    }
    fn workspace(&self, cols: usize) -> Self::Workspace {
        let n = self.w.n();
        // Per-unit time constants: `v / τ` (state VJP) and `z` (their gradient).
        let z = if self.inv_tau.len() > 1 { n * cols } else { 0 };
        LeakyWorkspace {
            h: vec![T::zero(); n * cols],
            g: vec![T::zero(); n * cols],
            z: vec![T::zero(); z],
            s: self.w.scratch(cols.max(self.w.defer_columns())),
            def: Deferred {
                cols: 0,
                cap: self.w.defer_columns(),
                alpha: T::one(),
                v: Vec::new(),
                h: Vec::new(),
                y: Vec::new(),
                z: Vec::new(),
                rows: vec![T::zero(); if self.tau.n_params() > 0 { n } else { 0 }],
            },
        }
    }
    fn rhs(&self, cols: Columns<'_, T>, x: &[T], dxdt: &mut [T], ws: &mut Self::Workspace) {
        let n = self.w.n();
        let h = self.activate(x, &mut ws.h);
        self.w.apply(h, dxdt, &mut ws.s);
        let ts = cols.t();
        let drive = |c: usize| self.drive_of(cols, c);
        let direct = |c: usize| Some(self.noise.get(cols.trial(c))?.at(*ts.get(c)?));
        Cpu.leak(n, x, &drive, &self.inv_tau, &direct, dxdt);
    }
    fn discontinuities(&self, trial: usize, _span: (T, T), out: &mut Vec<T>) {
        if let Some(u) = self.inputs.get(trial) {
            out.extend_from_slice(u.times());
        }
        if let Some(e) = self.noise.get(trial) {
            out.extend_from_slice(e.times());
        }
    }
}

impl<T: Real, W: Connectivity<T>> VjpState for LeakyRnn<T, W> {
    /// `out += (-v + φ'(x) ∘ (Wᵀ v)) / τ`.
    fn vjp_state(
        &self,
        _cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        let LeakyWorkspace { h, g, z, s, .. } = ws;
        let h = self.activate(x, h);
        self.vjp_state_h(x, h, v, out, g, z, s);
    }
    /// `φ(x)`: one value per unit.
    fn residual_len(&self) -> usize {
        self.w.n()
    }
    fn residuals(&self, _cols: Columns<'_, T>, x: &[T], r: &mut [T]) {
        Cpu.activate_to(self.act, x, &mut r[..x.len()]);
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
        let LeakyWorkspace { g, z, s, .. } = ws;
        self.vjp_state_h(x, &r[..x.len()], v, out, g, z, s);
    }
}

impl<T: Real, W: Connectivity<T>> VjpParams for LeakyRnn<T, W> {
    /// `W`'s blocks, then `B` (`n x n_in`), then `bias` (`n`) and `tau_g` (`n`) where the
    /// network has them.
    fn param_views(&self) -> Vec<ParamView> {
        let n = self.w.n();
        let mut v = self.w.param_views();
        let mut offset = self.w.n_params();
        let mut push = |name: &str, shape: Vec<usize>| {
            let len: usize = shape.iter().product();
            v.push(ParamView {
                name: name.into(),
                offset,
                shape,
            });
            offset += len;
        };
        push("B", vec![n, self.n_in]);
        if self.bias.is_some() {
            push("bias", vec![n]);
        }
        if self.tau.n_params() > 0 {
            push("tau_g", vec![n]);
        }
        v
    }
    fn params(&self, out: &mut [T]) {
        let nw = self.w.n_params();
        self.w.params(&mut out[..nw]);
        let mut o = nw;
        let b = self
            .input_mask
            .as_ref()
            .map_or(&self.b_in[..], |m| &m.raw[..]);
        for part in [Some(b), self.bias.as_deref(), self.tau_params()]
            .into_iter()
            .flatten()
        {
            out[o..o + part.len()].copy_from_slice(part);
            o += part.len();
        }
    }
    fn set_params(&mut self, theta: &[T]) {
        assert_eq!(theta.len(), self.n_params(), "theta has the wrong length");
        let nw = self.w.n_params();
        self.w.set_params(&theta[..nw]);
        let mut o = nw;
        let nb = self.b_in.len();
        match &mut self.input_mask {
            Some(m) => m.raw.copy_from_slice(&theta[o..o + nb]),
            None => self.b_in.copy_from_slice(&theta[o..o + nb]),
        }
        self.apply_input_mask();
        o += nb;
        if let Some(b) = &mut self.bias {
            let len = b.len();
            b.copy_from_slice(&theta[o..o + len]);
            o += len;
        }
        if let TimeConstants::Bounded { g, .. } = &mut self.tau {
            let len = g.len();
            g.copy_from_slice(&theta[o..o + len]);
            self.inv_tau = inv(&self.tau);
        }
        self.update_drive();
    }
    /// `θ_W += (W's map of (V / τ) φ(X)ᵀ)`, `dB += (V / τ) Uᵀ`, `db += Σ V / τ`,
    /// `dg_i += Σ_c v_ic (-z_ic / τ_i²) τ_i'(g_i)` with `z = W φ(x) + B u + b - x`.
    fn vjp_params(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        let LeakyWorkspace { h, g, z, s, def } = ws;
        let h = self.activate(x, h);
        self.vjp_params_h(cols, x, h, v, out, g, z, &mut def.rows, s);
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
        let n = self.w.n();
        let m = x.len() / n.max(1);
        let h = &r[..x.len()];
        let LeakyWorkspace { g, z, s, def, .. } = ws;
        let cap = def.cap;
        if m > cap {
            self.flush(out, def, s);
            return self.vjp_params_h(cols, x, h, v, out, g, z, &mut def.rows, s);
        }
        if def.cols + m > cap {
            self.flush(out, def, s);
        }
        let (vs, alpha) = self.scaled(v, g);
        self.drive_and_bias_vjp(cols, vs, alpha, out);
        def.reserve(n, self.tau.n_params() > 0);
        let at = def.cols * n..(def.cols + m) * n;
        def.alpha = alpha;
        def.v[at.clone()].copy_from_slice(vs);
        def.h[at.clone()].copy_from_slice(h);
        if self.tau.n_params() > 0 {
            for (c, y) in def.y[at].chunks_exact_mut(n).enumerate() {
                let xc = &x[c * n..(c + 1) * n];
                match self.drive_of(cols, c) {
                    Some(d) => {
                        for ((y, &xi), &di) in y.iter_mut().zip(xc).zip(d) {
                            *y = xi - di;
                        }
                    }
                    None => y.copy_from_slice(xc),
                }
            }
        }
        def.cols += m;
    }
    fn vjp_params_finish(&self, out: &mut [T], ws: &mut Self::Workspace) {
        let LeakyWorkspace { s, def, .. } = ws;
        self.flush(out, def, s);
    }
}

impl<T: Real, W: Connectivity<T>> LeakyRnn<T, W> {
    fn tau_params(&self) -> Option<&[T]> {
        match &self.tau {
            TimeConstants::Bounded { g, .. } => Some(g),
            _ => None,
        }
    }

    /// The state VJP given `h = φ(x)`; `g` and `z` are scratch.
    #[allow(clippy::too_many_arguments)]
    fn vjp_state_h(
        &self,
        x: &[T],
        h: &[T],
        v: &[T],
        out: &mut [T],
        g: &mut [T],
        z: &mut [T],
        s: &mut W::Scratch,
    ) {
        let g = &mut g[..x.len()];
        if self.inv_tau.len() == 1 {
            self.w.apply_t(v, g, s);
        } else {
            // Per-unit τ: `Wᵀ (v / τ)` (the scale does not commute with `Wᵀ`).
            let vs = &mut z[..x.len()];
            self.scale_by_inv_tau(v, vs);
            self.w.apply_t(vs, g, s);
        }
        Cpu.leak_vjp(self.act, x, h, g, v, &self.inv_tau, out);
    }

    /// `out = v / τ`, column by column (per-unit time constants).
    fn scale_by_inv_tau(&self, v: &[T], out: &mut [T]) {
        let n = self.w.n();
        for (col, vc) in out.chunks_exact_mut(n).zip(v.chunks_exact(n)) {
            for ((o, &vi), &k) in col.iter_mut().zip(vc).zip(&self.inv_tau) {
                *o = vi * k;
            }
        }
    }

    /// `(V / τ, α)`: the cotangents scaled by the time constants, either as a factor `α`
    /// (one shared `τ`: `v` itself) or in `g` (per-unit `τ`; `α = 1`).
    fn scaled<'a>(&self, v: &'a [T], g: &'a mut [T]) -> (&'a [T], T) {
        match self.inv_tau[..] {
            [inv_tau] => (v, inv_tau),
            _ => {
                let vs = &mut g[..v.len()];
                self.scale_by_inv_tau(v, vs);
                (&*vs, T::one())
            }
        }
    }

    /// The parameter VJP given `h = φ(x)`; `g`, `z` and `rows` are scratch.
    #[allow(clippy::too_many_arguments)]
    fn vjp_params_h(
        &self,
        cols: Columns<'_, T>,
        x: &[T],
        h: &[T],
        v: &[T],
        out: &mut [T],
        g: &mut [T],
        z: &mut Vec<T>,
        rows: &mut [T],
        s: &mut W::Scratch,
    ) {
        let n = self.w.n();
        let (vs, alpha) = self.scaled(v, g);
        self.drive_and_bias_vjp(cols, vs, alpha, out);
        // `y = x - (B u + b)`, column by column.
        let y = |c: usize| (&x[c * n..(c + 1) * n], self.drive_of(cols, c));
        self.weights_vjp(alpha, vs, h, y, out, rows, z, s);
    }

    /// `θ_W += α (W's map of V Hᵀ)`, and with trained time constants their gradient from
    /// `a_i = Σ_c α v_ic ((W h_c)_i - y_ic)` (see [`tau_vjp`]), column `c` of
    /// `y = x - (B u + b)` given by `y(c)` as `x_c` and `B u_c + b` (`None`: zero); `rows`
    /// and `z` are scratch.
    ///
    /// [`tau_vjp`]: Self::tau_vjp
    #[allow(clippy::too_many_arguments)]
    fn weights_vjp<'y>(
        &self,
        alpha: T,
        vs: &[T],
        h: &[T],
        y: impl Fn(usize) -> (&'y [T], Option<&'y [T]>),
        out: &mut [T],
        rows: &mut [T],
        z: &mut Vec<T>,
        s: &mut W::Scratch,
    ) {
        let n = self.w.n();
        let ow = &mut out[..self.w.n_params()];
        if self.tau.n_params() == 0 {
            return self.w.vjp(alpha, vs, h, ow, s);
        }
        let rows = &mut rows[..n];
        rows.fill(T::zero());
        self.w.vjp_row_sums(alpha, vs, h, ow, rows, z, s);
        for (c, vc) in vs.chunks_exact(n).enumerate() {
            let (xc, d) = y(c);
            for (i, r) in rows.iter_mut().enumerate() {
                let yi = xc[i] - d.map_or(T::zero(), |d| d[i]);
                *r -= alpha * (vc[i] * yi);
            }
        }
        self.tau_vjp(rows, out);
    }

    /// `dB += (V / τ) Uᵀ`, `db += Σ V / τ`: the parameter VJP's small parts, done at once.
    fn drive_and_bias_vjp(&self, cols: Columns<'_, T>, vs: &[T], alpha: T, out: &mut [T]) {
        let n = self.w.n();
        let rest = &mut out[self.w.n_params()..];
        let (db_in, rest) = rest.split_at_mut(self.b_in.len());
        if !self.inputs.is_empty() {
            let ts = cols.t();
            let input = |c: usize| {
                let u = self.inputs.get(cols.trial(c))?;
                Some(u.piece_values(u.piece(*ts.get(c)?)))
            };
            match &self.input_mask {
                None => Cpu.drive_vjp(n, vs, &input, alpha, db_in),
                Some(m) => {
                    // dB_raw = dB ⊙ rect'(raw) ⊙ S, for this call's share.
                    let mut d = reused_zeros(db_in.len());
                    Cpu.drive_vjp(n, vs, &input, alpha, &mut d);
                    m.rect.add_masked_slope(&d, &m.raw, &m.signed, db_in);
                    recycle(d);
                }
            }
        }
        if self.bias.is_some() {
            for col in vs.chunks_exact(n) {
                for (d, &vi) in rest[..n].iter_mut().zip(col) {
                    *d += vi * alpha;
                }
            }
        }
    }

    /// `dg_i += a_i · (-σ(g_i)(1 - σ(g_i))(max - min) / τ_i)` given
    /// `a_i = Σ_c (v_ic / τ_i) z_ic` with `z = W φ(x) + B u + b - x` (that is,
    /// `Σ_c v_ic ∂f_ic/∂g_i`, as `∂f_i/∂τ_i = -z_i / τ_i²`).
    fn tau_vjp(&self, a: &[T], out: &mut [T]) {
        let TimeConstants::Bounded { g: tg, min, max } = &self.tau else {
            return;
        };
        let n = self.w.n();
        let o = out.len() - n;
        let span = *max - *min;
        for (i, (dg, &ai)) in out[o..].iter_mut().zip(a).enumerate() {
            let sg = sigmoid(tg[i]);
            let k = -self.inv_tau[i] * sg * (T::one() - sg) * span;
            *dg += k * ai;
        }
    }

    /// Adds the deferred columns' products to `out` and empties the buffer.
    fn flush(&self, out: &mut [T], d: &mut Deferred<T>, s: &mut W::Scratch) {
        if d.cols == 0 {
            return;
        }
        let n = self.w.n();
        let len = d.cols * n;
        let Deferred {
            alpha,
            v,
            h,
            y,
            z,
            rows,
            ..
        } = d;
        // `y` is stored whole (`x - (B u + b)`).
        let y = |c: usize| (&y[c * n..(c + 1) * n], None);
        self.weights_vjp(*alpha, &v[..len], &h[..len], y, out, rows, z, s);
        d.cols = 0;
    }
}

/// Columns of parameter VJPs gathered for one product ([`Connectivity::defer_columns`]):
/// `V / τ`, `φ(X)` and `X - (B u + b)` (for the time constants).
#[derive(Debug)]
pub struct Deferred<T: Real> {
    cols: usize,
    /// Columns it gathers at most.
    cap: usize,
    alpha: T,
    v: Vec<T>,
    h: Vec<T>,
    y: Vec<T>,
    /// Scratch of [`Connectivity::vjp_row_sums`], grown by a connectivity that needs it.
    z: Vec<T>,
    /// Per unit, the time constants' gradient sums (trained time constants only).
    rows: Vec<T>,
}

impl<T: Real> Deferred<T> {
    /// Makes room for `cap` columns of `n` (with the time constants' `y` when `tau`) on
    /// first use, in memory kept from the previous gradient: a state VJP's
    /// workspace never needs it, and a fresh `n x cap` block per gradient costs its page
    /// faults.
    fn reserve(&mut self, n: usize, tau: bool) {
        let len = n * self.cap;
        if self.v.len() < len {
            self.v = reused_zeros(len);
            self.h = reused_zeros(len);
        }
        if tau && self.y.len() < len {
            self.y = reused_zeros(len);
        }
    }
}

impl<T: Real> Drop for Deferred<T> {
    fn drop(&mut self) {
        for v in [&mut self.v, &mut self.h, &mut self.y, &mut self.z] {
            recycle(std::mem::take(v));
        }
    }
}

impl<T: Real, W: Connectivity<T>> JvpState for LeakyRnn<T, W> {
    /// `out = (-v + W (φ'(x) ∘ v)) / τ`.
    fn jvp_state(
        &self,
        _cols: Columns<'_, T>,
        x: &[T],
        v: &[T],
        out: &mut [T],
        ws: &mut Self::Workspace,
    ) {
        let n = self.w.n();
        let h = self.activate(x, &mut ws.h);
        let d = &mut ws.g[..x.len()];
        Cpu.activate_grad(self.act, x, h, d);
        for (di, &vi) in d.iter_mut().zip(v) {
            *di *= vi;
        }
        self.w.apply(d, out, &mut ws.s);
        for (k, (o, &vi)) in out.iter_mut().zip(v).enumerate() {
            let inv = self.inv_tau[if self.inv_tau.len() == 1 { 0 } else { k % n }];
            *o = (*o - vi) * inv;
        }
    }
}
