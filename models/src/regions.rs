//! Multi-region RNNs as mRNNTorch builds them (`JohnLazzari/mRNNTorch`): recurrent and
//! input regions, connections between them, and the block matrices they assemble into,
//! on the shared leaky rate core.
//!
//! A [`RegionBuilder`] takes regions, then connections, then [`finalize`](RegionBuilder::finalize)s
//! into a [`MultiRegionRnn`] (a [`LeakyRnn`] over [`Dale`] connectivity) and the
//! [`Regions`] layout that names its units. The assembled matrices have rows =
//! destination (postsynaptic) and columns = source, regions in the order they were added.
//!
//! - **Sparsity** has the meaning of the original *code*, not of its docstrings: it is the
//!   **fraction of zeros per source unit** (per column of a block). A connection from any
//!   unit with `sparsity = 0.25` into a region of 50 units reaches exactly
//!   `50 - ceil(0.25 · 50) = 37` of them, chosen at random per source unit. `None` is dense.
//! - **Dale's law** (`constrained`): `W_eff = mask ⊙ |W| ⊙ sign`, the sign that of the
//!   *source* region; without it `W_eff = W ⊙ mask`. The same for the input weights.
//! - **Initial weights**: constrained `|N(0, 1/(2H))|` for recurrent blocks and
//!   `|N(0, 1/(H + I))|` for input blocks (variances; `H`, `I` the total recurrent and
//!   input units); unconstrained, Xavier-normal per block (`2 / (fan_in + fan_out)`).
//! - **Spectral radius**: when a target is set, `W` is scaled at finalisation so that the
//!   largest eigenvalue modulus of `W_eff` equals it.
//! - **Dynamics**: `τ dx/dt = -x + W_eff φ(x) + W_in,eff u + b` with `b` the regions'
//!   tonic input (`base_firing`). Euler with step `dt` reproduces the original's discrete
//!   update `x ← x + α(-x + W_eff h + b) + α W_in,eff u`, `h = φ(x)`, `α = dt/τ`; the Elman
//!   variant (`h ← φ(W h + W_in u + b)`, no leak) is Euler with `dt = τ` (`α = 1`).
//!
//! The input weights are the network's `B` under the input mask and signs (view `B`: the
//! raw weights); the tonic input is its bias (view `bias`), trained per region where
//! [`Regions::learnable_bias`] says so.

use std::collections::HashMap;
use std::ops::Range;

use neurode_solvers::{derive_seed, Activation, Normal, Real};

use crate::dale::Dale;
use crate::leaky::LeakyRnn;
use crate::rectifier::Rectifier;
use crate::ModelError;

/// A multi-region RNN: the leaky rate core over masked, signed dense connectivity (the
/// same type as the Kim et al. network). Parameters `θ` are `W` (raw), `B` (the raw input
/// weights; `W_in,eff = rect(B) ⊙ S_in`) and the tonic input (view `bias`).
pub type MultiRegionRnn<T> = LeakyRnn<T, Dale<T>>;

/// The sign of a region's outgoing connections under Dale's law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sign {
    /// Excitatory (`"pos"`).
    #[default]
    Pos,
    /// Inhibitory (`"neg"`).
    Neg,
}

impl Sign {
    fn value(self) -> f64 {
        match self {
            Sign::Pos => 1.0,
            Sign::Neg => -1.0,
        }
    }
}

/// A recurrent region.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentRegion {
    /// Its name (unique among all regions).
    pub name: String,
    /// Units (at least 1).
    pub units: usize,
    /// Sign of its outgoing connections.
    pub sign: Sign,
    /// Tonic input `b` of each unit (one value for all, or one per unit).
    pub base_firing: Vec<f64>,
    /// Initial state of each unit (one value for all, or one per unit).
    pub init: Vec<f64>,
    /// A parent region name (a group of regions, e.g. cell types of one area).
    pub parent: Option<String>,
    /// Whether its tonic input is trained.
    pub learnable_bias: bool,
}

impl RecurrentRegion {
    /// A region of `units` units, excitatory, no tonic input, starting at 0.
    pub fn new(name: &str, units: usize) -> Self {
        RecurrentRegion {
            name: name.into(),
            units,
            sign: Sign::Pos,
            base_firing: vec![0.0],
            init: vec![0.0],
            parent: None,
            learnable_bias: false,
        }
    }
}

/// An input region: `units` input channels with a sign.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRegion {
    /// Its name (unique among all regions).
    pub name: String,
    /// Channels (at least 1).
    pub units: usize,
    /// Sign of its outgoing connections.
    pub sign: Sign,
}

/// A connection from region `src` to region `dst`.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Source region.
    pub src: String,
    /// Destination region (a recurrent region).
    pub dst: String,
    /// Fraction of zeros per source unit, in `[0, 1)`; `None`: dense.
    pub sparsity: Option<f64>,
    /// A fixed zero block (no connection, stated explicitly).
    pub zero: bool,
}

/// Settings of a multi-region network (mRNNTorch's defaults: ReLU, `dt = 10`, `τ = 100`
/// ms, Dale's law on both weight matrices, no spectral-radius scaling).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSettings {
    /// Activation `φ`.
    pub act: Activation,
    /// Time constant `τ` (the time unit of `dt`).
    pub tau: f64,
    /// Dale's law on the recurrent weights.
    pub rec_constrained: bool,
    /// Dale's law on the input weights.
    pub inp_constrained: bool,
    /// Target spectral radius of `W_eff`, if any.
    pub spectral_radius: Option<f64>,
}

impl Default for RegionSettings {
    fn default() -> Self {
        RegionSettings {
            act: Activation::Relu,
            tau: 100.0,
            rec_constrained: true,
            inp_constrained: true,
            spectral_radius: None,
        }
    }
}

/// Builds a multi-region network: add regions, then connections, then finalise.
#[derive(Debug, Clone, Default)]
pub struct RegionBuilder {
    rec: Vec<RecurrentRegion>,
    inp: Vec<InputRegion>,
    rec_conns: Vec<Connection>,
    inp_conns: Vec<Connection>,
    finalized: bool,
}

fn err(msg: String) -> ModelError {
    ModelError::Region(msg)
}

impl RegionBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn open(&self, what: &str) -> Result<(), ModelError> {
        if self.finalized {
            return Err(err(format!(
                "cannot add {what}: the connectivity is already finalised; add every region \
                 and connection before `finalize`"
            )));
        }
        Ok(())
    }

    fn known(&self, name: &str) -> bool {
        self.rec.iter().any(|r| r.name == name) || self.inp.iter().any(|r| r.name == name)
    }

    fn check_name(&self, kind: &str, name: &str, units: usize) -> Result<(), ModelError> {
        if name.is_empty() {
            return Err(err(format!("a {kind} region needs a name")));
        }
        if self.known(name) {
            return Err(err(format!(
                "{kind} region `{name}`: a region of that name exists already; names must be \
                 unique"
            )));
        }
        if units == 0 {
            return Err(err(format!(
                "{kind} region `{name}`: num_units must be at least 1"
            )));
        }
        Ok(())
    }

    /// Adds a recurrent region.
    pub fn add_recurrent_region(&mut self, r: RecurrentRegion) -> Result<&mut Self, ModelError> {
        self.open(&format!("recurrent region `{}`", r.name))?;
        self.check_name("recurrent", &r.name, r.units)?;
        for (key, v) in [("base_firing", &r.base_firing), ("init", &r.init)] {
            if v.len() != 1 && v.len() != r.units {
                return Err(err(format!(
                    "recurrent region `{}`: {key} has {} values; give one, or one per unit ({})",
                    r.name,
                    v.len(),
                    r.units
                )));
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(err(format!(
                    "recurrent region `{}`: {key} = {x} is not a finite number",
                    r.name
                )));
            }
        }
        if r.parent.as_deref() == Some(r.name.as_str()) {
            return Err(err(format!(
                "recurrent region `{}` names itself as its parent",
                r.name
            )));
        }
        self.rec.push(r);
        Ok(self)
    }

    /// Adds an input region.
    pub fn add_input_region(&mut self, r: InputRegion) -> Result<&mut Self, ModelError> {
        self.open(&format!("input region `{}`", r.name))?;
        self.check_name("input", &r.name, r.units)?;
        self.inp.push(r);
        Ok(self)
    }

    fn check_conn(&self, c: &Connection, input: bool) -> Result<(), ModelError> {
        let what = format!(
            "{} connection `{}` -> `{}`",
            if input { "input" } else { "recurrent" },
            c.src,
            c.dst
        );
        self.open(&what)?;
        let src_ok = if input {
            self.inp.iter().any(|r| r.name == c.src)
        } else {
            self.rec.iter().any(|r| r.name == c.src)
        };
        if !src_ok {
            let hint = if input && self.rec.iter().any(|r| r.name == c.src) {
                " (it is a recurrent region: use a recurrent connection)".to_string()
            } else if !input && self.inp.iter().any(|r| r.name == c.src) {
                " (it is an input region: use an input connection)".to_string()
            } else {
                format!("; known regions: {}", self.names().join(", "))
            };
            return Err(err(format!(
                "{what}: unknown {} region `{}`{hint}",
                if input { "input" } else { "recurrent" },
                c.src
            )));
        }
        if !self.rec.iter().any(|r| r.name == c.dst) {
            let hint = if self.inp.iter().any(|r| r.name == c.dst) {
                "; connections cannot end in an input region".to_string()
            } else {
                format!("; known regions: {}", self.names().join(", "))
            };
            return Err(err(format!(
                "{what}: unknown recurrent region `{}`{hint}",
                c.dst
            )));
        }
        if let Some(s) = c.sparsity {
            if !(s.is_finite() && (0.0..1.0).contains(&s)) {
                return Err(err(format!(
                    "{what}: sparsity = {s} is outside [0, 1); it is the fraction of zeros per \
                     source unit (use `zero_connection` for no connection)"
                )));
            }
        }
        let list = if input {
            &self.inp_conns
        } else {
            &self.rec_conns
        };
        if list.iter().any(|d| d.src == c.src && d.dst == c.dst) {
            return Err(err(format!(
                "{what}: this connection is given twice; give each (src, dst) pair once"
            )));
        }
        Ok(())
    }

    fn names(&self) -> Vec<String> {
        self.rec
            .iter()
            .map(|r| r.name.clone())
            .chain(self.inp.iter().map(|r| r.name.clone()))
            .collect()
    }

    /// Adds a connection between recurrent regions.
    pub fn add_recurrent_connection(&mut self, c: Connection) -> Result<&mut Self, ModelError> {
        self.check_conn(&c, false)?;
        self.rec_conns.push(c);
        Ok(self)
    }

    /// Adds a connection from an input region to a recurrent region.
    pub fn add_input_connection(&mut self, c: Connection) -> Result<&mut Self, ModelError> {
        self.check_conn(&c, true)?;
        self.inp_conns.push(c);
        Ok(self)
    }

    /// Checks what finalising needs of the regions themselves (no weights are drawn): at
    /// least one recurrent and one input region, and no parent that is itself a region.
    pub fn check_complete(&self) -> Result<(), ModelError> {
        if self.rec.is_empty() || self.inp.is_empty() {
            return Err(err(
                "a multi-region network needs at least one recurrent and one input region".into(),
            ));
        }
        if let Some(r) = self.rec.iter().find(|r| {
            r.parent
                .as_ref()
                .is_some_and(|p| self.rec.iter().any(|q| &q.name == p))
        }) {
            return Err(err(format!(
                "recurrent region `{}`: its parent `{}` is itself a region; a parent is a \
                 group name, not a region",
                r.name,
                r.parent.as_deref().unwrap_or_default()
            )));
        }
        // Each input region carries one of the task's input channels: one that reaches no
        // unit leaves the network blind to it.
        if let Some(i) = self
            .inp
            .iter()
            .find(|i| !self.inp_conns.iter().any(|c| !c.zero && c.src == i.name))
        {
            return Err(err(format!(
                "input region `{}` has no input connection to a recurrent region, so its input \
                 reaches no unit: add an input_connections entry with src_region = \"{}\" \
                 (zero_connection does not count)",
                i.name, i.name
            )));
        }
        Ok(())
    }

    /// The layout the regions added so far give (no weights are drawn).
    pub fn layout(&self) -> Regions {
        Regions::new(&self.rec, &self.inp)
    }

    /// Assembles the network with weights drawn from `seed`: masks, signs, initial weights,
    /// spectral-radius scaling. Every pair of regions without a connection is a zero
    /// block. The builder cannot be extended afterwards.
    pub fn finalize<T: Real>(
        &mut self,
        settings: &RegionSettings,
        seed: u64,
    ) -> Result<(MultiRegionRnn<T>, Regions), ModelError> {
        self.open("anything")?;
        self.check_complete()?;
        if !(settings.tau.is_finite() && settings.tau > 0.0) {
            return Err(ModelError::invalid(
                "tau",
                settings.tau,
                "must be finite and positive",
            ));
        }
        if let Some(rho) = settings.spectral_radius {
            if !(rho.is_finite() && rho > 0.0) {
                return Err(ModelError::invalid(
                    "spectral_radius",
                    rho,
                    "must be finite and positive",
                ));
            }
        }
        let layout = Regions::new(&self.rec, &self.inp);
        let (h, i) = (layout.n_rec(), layout.n_inp());
        let rec = assemble(
            &layout,
            &self.rec_conns,
            false,
            settings.rec_constrained,
            seed,
        );
        let inp = assemble(
            &layout,
            &self.inp_conns,
            true,
            settings.inp_constrained,
            seed,
        );
        let rect = |c: bool| {
            if c {
                Rectifier::Abs
            } else {
                Rectifier::Identity
            }
        };
        let mut w = rec.w;
        if let Some(target) = settings.spectral_radius {
            let eff: Vec<f64> = w
                .iter()
                .zip(&rec.s)
                .map(|(&w, &s)| rect(settings.rec_constrained).apply(w) * s)
                .collect();
            let rho = spectral_radius(h, &eff);
            if !(rho.is_finite() && rho > 1e-300) {
                return Err(err(format!(
                    "spectral_radius = {target}: the effective recurrent weights have spectral \
                     radius {rho} (no recurrent loop survives the masks), so they cannot be \
                     scaled to it; add connections or drop the target"
                )));
            }
            w.iter_mut().for_each(|w| *w *= target / rho);
        }
        let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let conn = Dale::masked(h, cast(&w), cast(&rec.s), rect(settings.rec_constrained))?;
        // `B` is set from the raw input weights and their mask by `with_input_mask`.
        let rnn = LeakyRnn::new(conn, T::from_f64(settings.tau), i, vec![T::zero(); h * i])?
            .with_input_mask(cast(&inp.w), cast(&inp.s), rect(settings.inp_constrained))?
            .with_activation(settings.act)?
            .with_bias(cast(&layout.tonic))?;
        self.finalized = true;
        Ok((rnn, layout))
    }
}

/// Raw weights and signed mask of one assembled matrix (`H x cols`, column-major).
struct Assembled {
    w: Vec<f64>,
    s: Vec<f64>,
}

/// The block matrix of `conns` (`H x H`, or `H x I` for inputs): for each connection, its
/// mask (exactly `ceil(sparsity · rows)` zeros per column, at random), its sign (the
/// source's) and its initial weights. Each connection draws from streams of its own,
/// derived from `seed` and its place in the list.
fn assemble(
    layout: &Regions,
    conns: &[Connection],
    input: bool,
    constrained: bool,
    seed: u64,
) -> Assembled {
    let h = layout.n_rec();
    let cols = if input { layout.n_inp() } else { h };
    let (mut w, mut s) = (vec![0.0; h * cols], vec![0.0; h * cols]);
    let kind = if input { 1 } else { 0 };
    for (k, c) in conns.iter().enumerate() {
        if c.zero {
            continue;
        }
        let (src, sign) = if input {
            let r = layout.input(&c.src).expect("checked when added");
            (r.0.clone(), r.1)
        } else {
            let r = layout.recurrent(&c.src).expect("checked when added");
            (r.0.clone(), r.1)
        };
        let dst = layout
            .recurrent(&c.dst)
            .expect("checked when added")
            .0
            .clone();
        let rows = dst.len();
        let sd = if constrained {
            if input {
                (1.0 / (h + layout.n_inp()) as f64).sqrt()
            } else {
                (1.0 / (2 * h) as f64).sqrt()
            }
        } else {
            (2.0 / (src.len() + rows) as f64).sqrt()
        };
        let mut mask_rng = Normal::new(derive_seed(seed, &[2, kind, k as u64, 0]));
        let mut val_rng = Normal::new(derive_seed(seed, &[2, kind, k as u64, 1]));
        let zeros = c.sparsity.map_or(0, |p| (p * rows as f64).ceil() as usize);
        let mut order: Vec<usize> = (0..rows).collect();
        for j in src {
            // A random choice of `zeros` rows of this column (a partial Fisher-Yates).
            let mut on = vec![true; rows];
            for z in 0..zeros.min(rows) {
                let pick =
                    z + ((mask_rng.uniform() * (rows - z) as f64) as usize).min(rows - z - 1);
                order.swap(z, pick);
                on[order[z]] = false;
            }
            for (r, &keep) in on.iter().enumerate() {
                let idx = dst.start + r + j * h;
                let v = val_rng.sample() * sd;
                if keep {
                    s[idx] = sign.value();
                    w[idx] = if constrained { v.abs() } else { v };
                }
            }
        }
    }
    // Without Dale's law the mask carries no sign.
    if !constrained {
        s.iter_mut().for_each(|v| *v = v.abs());
    }
    Assembled { w, s }
}

/// The largest eigenvalue modulus of the `n x n` column-major matrix `a`.
pub fn spectral_radius(n: usize, a: &[f64]) -> f64 {
    let m = faer::Mat::<f64>::from_fn(n, n, |i, j| a[i + j * n]);
    match m.eigenvalues() {
        Ok(ev) => ev.iter().map(|z| z.re.hypot(z.im)).fold(0.0, f64::max),
        Err(_) => f64::NAN,
    }
}

/// A recurrent region in place: name, units, sign, parent, learnable bias.
#[derive(Debug, Clone, PartialEq)]
struct Placed(String, Range<usize>, Sign, Option<String>, bool);

/// The layout of a finalised multi-region network: which units belong to which region.
#[derive(Debug, Clone, PartialEq)]
pub struct Regions {
    /// Recurrent regions: name, units, sign, parent, learnable bias.
    rec: Vec<Placed>,
    inp: Vec<(String, Range<usize>, Sign)>,
    tonic: Vec<f64>,
    init: Vec<f64>,
    index: HashMap<String, usize>,
}

impl Regions {
    fn new(rec: &[RecurrentRegion], inp: &[InputRegion]) -> Self {
        let (mut r0, mut i0) = (0, 0);
        let (mut tonic, mut init) = (Vec::new(), Vec::new());
        let rec = rec
            .iter()
            .map(|r| {
                let range = r0..r0 + r.units;
                r0 += r.units;
                let spread = |v: &[f64]| -> Vec<f64> {
                    if v.len() == 1 {
                        vec![v[0]; r.units]
                    } else {
                        v.to_vec()
                    }
                };
                tonic.extend(spread(&r.base_firing));
                init.extend(spread(&r.init));
                Placed(
                    r.name.clone(),
                    range,
                    r.sign,
                    r.parent.clone(),
                    r.learnable_bias,
                )
            })
            .collect::<Vec<_>>();
        let inp = inp
            .iter()
            .map(|r| {
                let range = i0..i0 + r.units;
                i0 += r.units;
                (r.name.clone(), range, r.sign)
            })
            .collect();
        let index = rec
            .iter()
            .enumerate()
            .map(|(k, r)| (r.0.clone(), k))
            .collect();
        Regions {
            rec,
            inp,
            tonic,
            init,
            index,
        }
    }

    /// Recurrent units `H`.
    pub fn n_rec(&self) -> usize {
        self.rec.last().map_or(0, |r| r.1.end)
    }
    /// Input channels `I`.
    pub fn n_inp(&self) -> usize {
        self.inp.last().map_or(0, |r| r.1.end)
    }
    /// The recurrent regions' names, in order.
    pub fn recurrent_names(&self) -> Vec<&str> {
        self.rec.iter().map(|r| r.0.as_str()).collect()
    }
    /// The input regions' names, in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.inp.iter().map(|r| r.0.as_str()).collect()
    }
    /// The tonic input `b` (`base_firing` of every unit).
    pub fn tonic(&self) -> &[f64] {
        &self.tonic
    }
    /// The regions' initial state (`init` of every unit).
    pub fn initial_state(&self) -> &[f64] {
        &self.init
    }
    /// Per unit: whether its region's tonic input is learnable (`learnable_bias`).
    pub fn learnable_bias(&self) -> Vec<bool> {
        self.rec
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.4, r.1.len()))
            .collect()
    }

    fn recurrent(&self, name: &str) -> Option<(&Range<usize>, Sign)> {
        let r = &self.rec[*self.index.get(name)?];
        Some((&r.1, r.2))
    }
    fn input(&self, name: &str) -> Option<(&Range<usize>, Sign)> {
        self.inp.iter().find(|r| r.0 == name).map(|r| (&r.1, r.2))
    }

    /// The unit range of region `name` (recurrent units for a recurrent region, channels
    /// for an input region). A parent name is an error: its children need not be
    /// contiguous; use [`units`](Self::units).
    pub fn indices(&self, name: &str) -> Result<Range<usize>, ModelError> {
        if let Some((r, _)) = self.recurrent(name).or_else(|| self.input(name)) {
            return Ok(r.clone());
        }
        if self.is_parent(name) {
            return Err(err(format!(
                "`{name}` is a parent region (a group: {}); ask for the units of its children \
                 with `units`",
                self.children(name).join(", ")
            )));
        }
        Err(self.unknown(name))
    }

    fn is_parent(&self, name: &str) -> bool {
        self.rec.iter().any(|r| r.3.as_deref() == Some(name))
    }
    fn children(&self, name: &str) -> Vec<&str> {
        self.rec
            .iter()
            .filter(|r| r.3.as_deref() == Some(name))
            .map(|r| r.0.as_str())
            .collect()
    }
    fn unknown(&self, name: &str) -> ModelError {
        let known: Vec<&str> = self.recurrent_names();
        err(format!(
            "unknown region `{name}`; the recurrent regions are {}, the input regions {}",
            known.join(", "),
            self.input_names().join(", ")
        ))
    }

    /// The recurrent units of the named regions, in the order given; a parent name stands
    /// for its children (in region order). An empty list means every unit.
    pub fn units(&self, names: &[&str]) -> Result<Vec<usize>, ModelError> {
        if names.is_empty() {
            return Ok((0..self.n_rec()).collect());
        }
        let mut out = Vec::new();
        for &name in names {
            if let Some((r, _)) = self.recurrent(name) {
                out.extend(r.clone());
            } else if self.is_parent(name) {
                for c in self.children(name) {
                    out.extend(self.recurrent(c).map(|r| r.0.clone()).unwrap_or_default());
                }
            } else if self.input(name).is_some() {
                return Err(err(format!(
                    "`{name}` is an input region; activity and weight blocks are of recurrent \
                     regions"
                )));
            } else {
                return Err(self.unknown(name));
            }
        }
        Ok(out)
    }

    /// The activity of the named regions: rows `units(names)` of the `H x cols`
    /// column-major `act`, as a `len x cols` column-major matrix.
    pub fn activity<T: Real>(&self, act: &[T], names: &[&str]) -> Result<Vec<T>, ModelError> {
        let h = self.n_rec();
        if h == 0 || !act.len().is_multiple_of(h) {
            return Err(ModelError::Shape(format!(
                "activity has {} entries, not a multiple of the {h} recurrent units",
                act.len()
            )));
        }
        let units = self.units(names)?;
        Ok(act
            .chunks_exact(h)
            .flat_map(|col| units.iter().map(move |&u| col[u]))
            .collect())
    }

    /// The square block of the `H x H` column-major `w` among the named regions' units
    /// (column-major).
    pub fn weight_subset<T: Real>(&self, w: &[T], names: &[&str]) -> Result<Vec<T>, ModelError> {
        let units = self.units(names)?;
        self.block(w, &units, &units, self.n_rec())
    }

    /// The projection from region `from` to region `to`: rows `to`, columns `from`, taken
    /// from the recurrent `w` (`H x H`) or, when `from` is an input region, from the input
    /// weights `w_in` (`H x I`); column-major.
    pub fn projection<T: Real>(
        &self,
        w: &[T],
        w_in: &[T],
        to: &str,
        from: &str,
    ) -> Result<Vec<T>, ModelError> {
        let rows = self.units(&[to])?;
        if let Some((r, _)) = self.input(from) {
            let cols: Vec<usize> = r.clone().collect();
            return self.block(w_in, &rows, &cols, self.n_rec());
        }
        let cols = self.units(&[from])?;
        self.block(w, &rows, &cols, self.n_rec())
    }

    fn block<T: Real>(
        &self,
        w: &[T],
        rows: &[usize],
        cols: &[usize],
        ld: usize,
    ) -> Result<Vec<T>, ModelError> {
        let need = cols.iter().max().map_or(0, |&c| (c + 1) * ld);
        if w.len() < need || !w.len().is_multiple_of(ld.max(1)) {
            return Err(ModelError::Shape(format!(
                "the weight matrix has {} entries; it must have {ld} rows and at least {} \
                 columns",
                w.len(),
                need / ld.max(1)
            )));
        }
        Ok(cols
            .iter()
            .flat_map(|&j| rows.iter().map(move |&i| w[i + j * ld]))
            .collect())
    }
}
