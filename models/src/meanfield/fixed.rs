//! Fixed points of the mean field: Newton from many starts, relaxation where Newton fails,
//! stability from the analytic Jacobian, and the implicit-function gradient of a point.

use neurode_solvers::{integrate, Columns, Normal, VjpParams};

use super::field::LifMeanField;
use super::params::{Local, MeanFieldParams, Param};
use super::MeanFieldError;
use crate::stability::{eigenvalues, Stability};

/// Settings of the fixed-point search.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveOptions {
    /// Convergence: `max_i |Φ_i(ν) − ν_i| ≤ tol · max(1, max_i ν_i)` (Hz).
    pub tol: f64,
    /// Newton iterations per attempt.
    pub max_newton: usize,
    /// Relaxation time of the fallback, in units of the largest `tau_rate`.
    pub relax_time: f64,
    /// Starts at the `2^n` corners of `[0, start_high]^n` (for `n ≤ 6`).
    pub corners: bool,
    /// Seeded random starts per set: this many uniform in `[0, start_high]^n` and as many
    /// log-uniform in `[0.1, start_high]^n` (Hz).
    pub random_starts: usize,
    /// Upper end of the start box (Hz); default `0.9 / max τ_ref`, or 100 Hz without
    /// refractoriness.
    pub start_high: Option<f64>,
    /// Seed of the random starts.
    pub seed: u64,
    /// Two converged starts are one point when they differ by at most
    /// `dedupe · max(1, max ν)` in every population.
    pub dedupe: f64,
    /// Tolerance of [`Stability::of`].
    pub stability_tol: f64,
    /// Threads (0: the available cores).
    pub threads: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            tol: 1e-11,
            max_newton: 60,
            relax_time: 50.0,
            corners: true,
            random_starts: 8,
            start_high: None,
            seed: 1,
            dedupe: 1e-6,
            stability_tol: 1e-9,
            threads: 0,
        }
    }
}

/// A fixed point `ν* = Φ(ν*)` of one parameter set.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedPoint {
    /// The rates (Hz).
    pub rates: Vec<f64>,
    /// `max_i |Φ_i(ν*) − ν*_i|`.
    pub residual: f64,
    /// Eigenvalues of the rate dynamics' Jacobian `diag(1/τ)(−I + ∂Φ/∂ν)`, by decreasing
    /// real part.
    pub eigenvalues: Vec<(f64, f64)>,
    /// The stability label.
    pub stability: Stability,
    /// How many starts reached it.
    pub starts: usize,
}

/// What became of one start.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// It converged to point `point` of the set's list.
    Converged {
        /// Index into [`SetSolution::points`].
        point: usize,
        /// Newton iterations (of the last attempt).
        iterations: usize,
        /// Whether the relaxation fallback was needed.
        relaxed: bool,
    },
    /// Neither Newton nor relaxation converged: the last iterate and its residual.
    Failed {
        /// `max_i |Φ_i(ν) − ν_i|` at the last iterate.
        residual: f64,
        /// The last iterate.
        rates: Vec<f64>,
        /// Why it stopped.
        reason: String,
    },
}

/// The fixed points of one parameter set and the fate of each start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetSolution {
    /// Distinct fixed points, by increasing rate of population 0 (then 1, …).
    pub points: Vec<FixedPoint>,
    /// One outcome per start, in the order of the starts.
    pub outcomes: Vec<StartOutcome>,
}

impl SetSolution {
    /// Adds the points and outcomes of `other` (the same set from more starts): points
    /// within `dedupe · max(1, max ν)` of one already listed are the same point; the list
    /// stays ordered by rates.
    pub fn merge(&mut self, other: SetSolution, dedupe: f64) {
        let mut map = Vec::with_capacity(other.points.len());
        for p in other.points {
            let scale = max_abs(&p.rates).max(1.0);
            let close = |q: &FixedPoint| {
                q.rates
                    .iter()
                    .zip(&p.rates)
                    .all(|(a, b)| (a - b).abs() <= dedupe * scale)
            };
            map.push(match self.points.iter().position(close) {
                Some(k) => {
                    self.points[k].starts += p.starts;
                    k
                }
                None => {
                    self.points.push(p);
                    self.points.len() - 1
                }
            });
        }
        for mut o in other.outcomes {
            if let StartOutcome::Converged { point, .. } = &mut o {
                *point = map[*point];
            }
            self.outcomes.push(o);
        }
        let mut order: Vec<usize> = (0..self.points.len()).collect();
        order.sort_by(|&a, &b| cmp_rates(&self.points[a].rates, &self.points[b].rates));
        let mut rank = vec![0; order.len()];
        for (r, &o) in order.iter().enumerate() {
            rank[o] = r;
        }
        let mut old: Vec<Option<FixedPoint>> = self.points.drain(..).map(Some).collect();
        self.points = order
            .iter()
            .map(|&o| old[o].take().expect("each point once"))
            .collect();
        for o in &mut self.outcomes {
            if let StartOutcome::Converged { point, .. } = o {
                *point = rank[*point];
            }
        }
    }

    /// Number of starts that converged nowhere.
    pub fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, StartOutcome::Failed { .. }))
            .count()
    }
}

/// The default starts of a set: `given` (checked against the ceilings `1/τ_ref`), zero,
/// the corners of `[0, high]^n` (`n ≤ 6`), equal rates 1, 3, 9, … Hz below `high`, and
/// `random_starts` seeded uniform points in `[0, high]^n` and as many log-uniform ones in
/// `[0.1, high]^n`. No set of starts is sure to reach every fixed point; more random starts
/// (and a sweep's continuation) make a miss less likely.
pub fn default_starts(
    set: &MeanFieldParams,
    given: &[Vec<f64>],
    opts: &SolveOptions,
) -> Result<Vec<Vec<f64>>, MeanFieldError> {
    let n = set.n();
    let mut starts = Vec::new();
    for (k, s) in given.iter().enumerate() {
        if s.len() != n {
            return Err(MeanFieldError::Shape {
                key: format!("nu_init[{k}]"),
                got: s.len(),
                expected: format!("{n} (one rate per population)"),
            });
        }
        for (i, &r) in s.iter().enumerate() {
            if !(r.is_finite() && r >= 0.0) {
                return Err(MeanFieldError::Invalid {
                    key: format!("nu_init[{k}][{i}]"),
                    value: r,
                    requirement: "a starting rate must be finite and >= 0 (Hz)".into(),
                });
            }
            let ceiling = set.ceiling(i);
            if r >= ceiling {
                return Err(MeanFieldError::AboveCeiling {
                    start: k,
                    population: i,
                    rate: r,
                    ceiling,
                    tau_ref: set.values(Param::TauRef)[i],
                });
            }
        }
        starts.push(s.clone());
    }
    let tau_ref_max = set
        .values(Param::TauRef)
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    let high = opts.start_high.unwrap_or(if tau_ref_max > 0.0 {
        0.9 / tau_ref_max
    } else {
        100.0
    });
    starts.push(vec![0.0; n]);
    if opts.corners && n <= 6 {
        for mask in 1..(1usize << n) {
            starts.push(
                (0..n)
                    .map(|i| if mask >> i & 1 == 1 { high } else { 0.0 })
                    .collect(),
            );
        }
    }
    // A ladder of equal rates, log-spaced (points at low rates are easy to miss from a
    // box that reaches the ceiling), and log-uniform random starts in [0.1 Hz, high].
    let mut r = 1.0;
    while r < high {
        starts.push(vec![r; n]);
        r *= 3.0;
    }
    let mut rng = Normal::new(opts.seed);
    let (lo, span) = (0.1f64.ln(), (high / 0.1).max(1.0).ln());
    for _ in 0..opts.random_starts {
        starts.push((0..n).map(|_| high * rng.uniform()).collect());
        starts.push((0..n).map(|_| (lo + span * rng.uniform()).exp()).collect());
    }
    Ok(starts)
}

/// Scratch of one Newton solve.
struct Newton {
    n: usize,
    g: Vec<f64>,
    jac: Vec<f64>,
    delta: Vec<f64>,
    trial: Vec<f64>,
    gt: Vec<f64>,
    locals: Vec<Local>,
    scratch: Vec<f64>,
    piv: Vec<usize>,
}

enum NewtonEnd {
    Converged(usize),
    Failed(&'static str),
}

impl Newton {
    fn new(n: usize) -> Newton {
        Newton {
            n,
            g: vec![0.0; n],
            jac: vec![0.0; n * n],
            delta: vec![0.0; n],
            trial: vec![0.0; n],
            gt: vec![0.0; n],
            locals: vec![Local::default(); n],
            scratch: vec![0.0; 2 * n],
            piv: vec![0; n],
        }
    }

    /// The trial point `max(x + λ δ, 0)` into `self.trial` and its residual (zero for held
    /// populations) into `self.gt`.
    fn try_step(&mut self, set: &MeanFieldParams, x: &[f64], lambda: f64, fixed: &[bool]) {
        for ((t, xi), d) in self.trial.iter_mut().zip(x).zip(&self.delta) {
            *t = (xi + lambda * d).max(0.0);
        }
        set.rates(&self.trial, &mut self.gt, &mut self.scratch);
        for ((g, t), hold) in self.gt.iter_mut().zip(&self.trial).zip(fixed) {
            *g = if *hold { 0.0 } else { *g - t };
        }
    }

    /// One more full Newton step from a converged `x` (whose residual is `r` and whose
    /// Jacobian is in `self.jac`), kept if it lowers the residual: quadratic convergence
    /// takes a point within the tolerance down to round-off.
    fn polish(&mut self, set: &MeanFieldParams, x: &mut [f64], fixed: &[bool], r: f64) {
        let n = self.n;
        for (d, g) in self.delta.iter_mut().zip(&self.g) {
            *d = -g;
        }
        if r == 0.0 || !lu_solve(n, &mut self.jac, &mut self.piv, &mut self.delta) {
            return;
        }
        self.try_step(set, x, 1.0, fixed);
        if max_abs(&self.gt) < r {
            x.copy_from_slice(&self.trial);
        }
    }

    /// Newton on `g(ν) = Φ(ν) − ν` from `x` (overwritten by the last iterate), with the
    /// populations in `fixed` held where they are.
    fn run(
        &mut self,
        set: &MeanFieldParams,
        x: &mut [f64],
        fixed: &[bool],
        opts: &SolveOptions,
    ) -> NewtonEnd {
        let n = self.n;
        for v in x.iter_mut() {
            *v = v.max(0.0);
        }
        for it in 0..=opts.max_newton {
            set.residual_jacobian(
                x,
                &mut self.g,
                &mut self.jac,
                &mut self.locals,
                &mut self.scratch,
            );
            mask(&mut self.g, &mut self.jac, fixed, n);
            let r = max_abs(&self.g);
            if !r.is_finite() {
                return NewtonEnd::Failed("the residual is not finite");
            }
            if r <= opts.tol * max_abs(x).max(1.0) {
                self.polish(set, x, fixed, r);
                return NewtonEnd::Converged(it);
            }
            if it == opts.max_newton {
                break;
            }
            for (d, g) in self.delta.iter_mut().zip(&self.g) {
                *d = -g;
            }
            if !lu_solve(n, &mut self.jac, &mut self.piv, &mut self.delta) {
                return NewtonEnd::Failed("singular Jacobian");
            }
            // Rates at zero that the step would push below stay there (an active bound);
            // the step is cut where another rate would cross zero, then backtracked on |g|².
            let mut lambda: f64 = 1.0;
            for (d, &xi) in self.delta.iter_mut().zip(&*x) {
                if *d < 0.0 {
                    if xi <= 0.0 {
                        *d = 0.0;
                    } else if xi + *d < 0.0 {
                        lambda = lambda.min(xi / -*d);
                    }
                }
            }
            let r2 = dot(&self.g, &self.g);
            loop {
                self.try_step(set, x, lambda, fixed);
                let rt2 = dot(&self.gt, &self.gt);
                if rt2 <= (1.0 - 1e-4 * lambda) * r2 || (lambda < 1e-3 && rt2 < r2) {
                    break;
                }
                lambda *= 0.5;
                if lambda < 1e-6 {
                    return NewtonEnd::Failed("the line search stalled");
                }
            }
            x.copy_from_slice(&self.trial);
        }
        NewtonEnd::Failed("Newton's iteration limit")
    }
}

/// Zeroes the residual of held populations and makes their Jacobian rows identity rows.
fn mask(g: &mut [f64], jac: &mut [f64], fixed: &[bool], n: usize) {
    for (i, _) in fixed.iter().enumerate().filter(|(_, &f)| f) {
        g[i] = 0.0;
        for j in 0..n {
            jac[i + j * n] = if i == j { 1.0 } else { 0.0 };
        }
    }
}

/// Orders rate vectors by population 0, then 1, …
fn cmp_rates(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| {
        if x.abs() > m || x.is_nan() {
            x.abs()
        } else {
            m
        }
    })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a x = b` in place (`a`: `n x n` column-major, destroyed; `b` becomes `x`) by
/// Gaussian elimination with partial pivoting. `false` if `a` is singular.
///
/// Written here rather than with faer: the systems are a few populations large and
/// solved millions of times in a sweep, so they must not allocate.
fn lu_solve(n: usize, a: &mut [f64], piv: &mut [usize], b: &mut [f64]) -> bool {
    let scale = max_abs(a).max(f64::MIN_POSITIVE);
    for k in 0..n {
        let (mut p, mut best) = (k, a[k + k * n].abs());
        for i in k + 1..n {
            if a[i + k * n].abs() > best {
                (p, best) = (i, a[i + k * n].abs());
            }
        }
        if best.is_nan() || best <= 1e-14 * scale {
            return false;
        }
        piv[k] = p;
        if p != k {
            for j in 0..n {
                a.swap(k + j * n, p + j * n);
            }
            b.swap(k, p);
        }
        let d = a[k + k * n];
        for i in k + 1..n {
            let f = a[i + k * n] / d;
            a[i + k * n] = f;
            for j in k + 1..n {
                a[i + j * n] -= f * a[k + j * n];
            }
            b[i] -= f * b[k];
        }
    }
    for k in (0..n).rev() {
        let mut s = b[k];
        for j in k + 1..n {
            s -= a[k + j * n] * b[j];
        }
        b[k] = s / a[k + k * n];
    }
    true
}

fn threads(opts: &SolveOptions, work: usize) -> usize {
    let avail = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = if opts.threads == 0 {
        avail
    } else {
        opts.threads
    };
    t.clamp(1, work.max(1))
}

/// Runs `f(k)` for `k` in `0..count` on the option's threads, results in order.
fn parallel<R: Send>(count: usize, opts: &SolveOptions, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let t = threads(opts, count);
    if t <= 1 {
        return (0..count).map(f).collect();
    }
    let chunk = count.div_ceil(t);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..t)
            .map(|w| {
                let f = &f;
                s.spawn(move || {
                    (w * chunk..((w + 1) * chunk).min(count))
                        .map(f)
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a fixed-point worker panicked"))
            .collect()
    })
}

/// One start's result before deduplication.
enum Attempt {
    Root {
        rates: Vec<f64>,
        iterations: usize,
        relaxed: bool,
    },
    Miss {
        rates: Vec<f64>,
        reason: &'static str,
    },
}

/// Every fixed point of every set from its starts (`starts[s]` for set `s`), as one batch:
/// Newton from every start on the option's threads, one batched relaxation (Tsit5 on
/// [`LifMeanField`]) of the starts where Newton failed, Newton again from where they
/// relaxed to; then deduplication and stability. `progress(k)` is called (from the worker
/// threads) with the number of sets whose Newton phase has finished.
pub fn solve(
    sets: &[MeanFieldParams],
    starts: &[Vec<Vec<f64>>],
    opts: &SolveOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<SetSolution>, MeanFieldError> {
    if sets.is_empty() {
        return Err(MeanFieldError::NoSets);
    }
    if starts.len() != sets.len() {
        return Err(MeanFieldError::Shape {
            key: "starts".into(),
            got: starts.len(),
            expected: format!("{} (one list per set)", sets.len()),
        });
    }
    let n = sets[0].n();
    let no_hold = vec![false; n];
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut attempts: Vec<Vec<Attempt>> = parallel(sets.len(), opts, |s| {
        let mut newton = Newton::new(n);
        let list = starts[s]
            .iter()
            .map(|x0| {
                let mut x = x0.clone();
                match newton.run(&sets[s], &mut x, &no_hold, opts) {
                    NewtonEnd::Converged(it) => Attempt::Root {
                        rates: x,
                        iterations: it,
                        relaxed: false,
                    },
                    NewtonEnd::Failed(reason) => Attempt::Miss {
                        rates: x0.clone(),
                        reason,
                    },
                }
            })
            .collect();
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        list
    });
    relax_misses(sets, &mut attempts, opts)?;
    let out = parallel(sets.len(), opts, |s| collect(&sets[s], &attempts[s], opts));
    out.into_iter().collect()
}

/// The relaxation fallback for every miss of every set, in one batched solve.
fn relax_misses(
    sets: &[MeanFieldParams],
    attempts: &mut [Vec<Attempt>],
    opts: &SolveOptions,
) -> Result<(), MeanFieldError> {
    let mut who = Vec::new();
    let mut field_sets = Vec::new();
    let mut x0 = Vec::new();
    for (s, list) in attempts.iter().enumerate() {
        for (k, a) in list.iter().enumerate() {
            if let Attempt::Miss { rates, .. } = a {
                who.push((s, k));
                field_sets.push(sets[s].clone());
                x0.extend(rates.iter().map(|r| r.max(0.0)));
            }
        }
    }
    if who.is_empty() {
        return Ok(());
    }
    let t1 = opts.relax_time
        * field_sets
            .iter()
            .flat_map(|s| s.values(Param::Tau).iter().cloned())
            .fold(0.0, f64::max);
    let field = LifMeanField::<f64>::new(field_sets)?;
    let sol = integrate(&field, (0.0, t1))
        .x0(x0)
        // Only Newton's basin has to be reached: Newton polishes.
        .rtol(1e-5)
        .atol(1e-6)
        .save_at(vec![t1])
        .allow_failures(true)
        .threads(threads(opts, who.len()))
        .run()
        .map_err(|e| MeanFieldError::Relaxation(e.to_string()))?;
    let n = sets[0].n();
    let no_hold = vec![false; n];
    let mut newton = Newton::new(n);
    for (b, &(s, k)) in who.iter().enumerate() {
        let mut x = sol.state(0, b).to_vec();
        if x.iter().any(|v| !v.is_finite()) {
            continue;
        }
        attempts[s][k] = match newton.run(&sets[s], &mut x, &no_hold, opts) {
            NewtonEnd::Converged(it) => Attempt::Root {
                rates: x,
                iterations: it,
                relaxed: true,
            },
            NewtonEnd::Failed(reason) => Attempt::Miss { rates: x, reason },
        };
    }
    Ok(())
}

/// Deduplicates one set's roots, labels them, and records every start's outcome.
fn collect(
    set: &MeanFieldParams,
    attempts: &[Attempt],
    opts: &SolveOptions,
) -> Result<SetSolution, MeanFieldError> {
    let n = set.n();
    let mut roots: Vec<Vec<f64>> = Vec::new();
    let mut which = Vec::with_capacity(attempts.len());
    for a in attempts {
        which.push(match a {
            Attempt::Root { rates, .. } => {
                let scale = max_abs(rates).max(1.0);
                let close = |r: &Vec<f64>| {
                    r.iter()
                        .zip(rates)
                        .all(|(a, b)| (a - b).abs() <= opts.dedupe * scale)
                };
                Some(match roots.iter().position(close) {
                    Some(p) => p,
                    None => {
                        roots.push(rates.clone());
                        roots.len() - 1
                    }
                })
            }
            Attempt::Miss { .. } => None,
        });
    }
    // Order points by their rates, and renumber.
    let mut order: Vec<usize> = (0..roots.len()).collect();
    order.sort_by(|&a, &b| cmp_rates(&roots[a], &roots[b]));
    let mut rank = vec![0; roots.len()];
    for (r, &o) in order.iter().enumerate() {
        rank[o] = r;
    }
    let field = LifMeanField::<f64>::new(vec![set.clone()])?;
    let mut jac = vec![0.0; n * n];
    let mut points = Vec::with_capacity(roots.len());
    // max_i |Φ_i(ν) − ν_i|, outside the solve (allocates).
    let residual = |rates: &[f64]| {
        let (mut phi, mut scratch) = (vec![0.0; n], vec![0.0; 2 * n]);
        set.rates(rates, &mut phi, &mut scratch);
        let g: Vec<f64> = phi.iter().zip(rates).map(|(p, r)| p - r).collect();
        max_abs(&g)
    };
    for &o in &order {
        let rates = roots[o].clone();
        field.jacobian(0, &rates, &mut jac);
        let ev = eigenvalues(n, &jac)?;
        let residual = residual(&rates);
        points.push(FixedPoint {
            stability: Stability::of(&ev, opts.stability_tol),
            eigenvalues: ev,
            rates,
            residual,
            starts: which.iter().filter(|w| **w == Some(o)).count(),
        });
    }
    let outcomes = attempts
        .iter()
        .zip(&which)
        .map(|(a, w)| match (a, w) {
            (
                Attempt::Root {
                    iterations,
                    relaxed,
                    ..
                },
                Some(p),
            ) => StartOutcome::Converged {
                point: rank[*p],
                iterations: *iterations,
                relaxed: *relaxed,
            },
            (Attempt::Miss { rates, .. }, _) | (Attempt::Root { rates, .. }, None) => {
                StartOutcome::Failed {
                    residual: residual(rates),
                    rates: rates.clone(),
                    reason: match a {
                        Attempt::Miss { reason, .. } => reason.to_string(),
                        _ => String::new(),
                    },
                }
            }
        })
        .collect();
    Ok(SetSolution { points, outcomes })
}

/// The gradient `dL/dθ` of a scalar loss of a fixed point's rates, for the set's
/// parameters `θ = (J, j_ext, nu_ext, threshold)` (the layout of
/// [`LifMeanField::param_views`](neurode_solvers::VjpParams::param_views) for one set), by
/// the implicit-function theorem: with `f(ν*, θ) = 0`,
/// `dL/dθ = −λᵀ ∂f/∂θ` where `(∂f/∂ν)ᵀ λ = dL/dν*`. One transposed solve; the parameter
/// product is the field's own VJP.
pub fn fixed_point_vjp(
    set: &MeanFieldParams,
    rates: &[f64],
    dl_drates: &[f64],
) -> Result<Vec<f64>, MeanFieldError> {
    let n = set.n();
    for (key, v) in [("rates", rates), ("dl_drates", dl_drates)] {
        if v.len() != n {
            return Err(MeanFieldError::Shape {
                key: key.into(),
                got: v.len(),
                expected: format!("{n} (one per population)"),
            });
        }
    }
    let field = LifMeanField::<f64>::new(vec![set.clone()])?;
    let mut jac = vec![0.0; n * n];
    field.jacobian(0, rates, &mut jac);
    let mut jt = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            jt[j + i * n] = jac[i + j * n];
        }
    }
    let mut lambda = dl_drates.to_vec();
    let mut piv = vec![0; n];
    if !lu_solve(n, &mut jt, &mut piv, &mut lambda) {
        return Err(MeanFieldError::Singular {
            set: 0,
            rates: rates.to_vec(),
            what: "the adjoint system (∂f/∂ν)ᵀ λ = dL/dν*",
        });
    }
    for l in &mut lambda {
        *l = -*l;
    }
    let mut grad = vec![0.0; field.params_per_set()];
    let t = [0.0];
    let mut ws = neurode_solvers::VectorField::workspace(&field, 1);
    field.vjp_params(Columns::new(&t), rates, &lambda, &mut grad, &mut ws);
    Ok(grad)
}

/// The effective response of the focus populations (the original's
/// `effective_response_function`): the populations in `focus` are held at
/// `focus_rates`, the others (ambient) are solved self-consistently by Newton from
/// `ambient_init` (relaxing first if Newton fails), and `Φ` of **all** populations at the
/// combined rates is returned with those rates.
pub fn effective_response(
    set: &MeanFieldParams,
    focus: &[usize],
    focus_rates: &[f64],
    ambient_init: &[f64],
    opts: &SolveOptions,
) -> Result<(Vec<f64>, Vec<f64>), MeanFieldError> {
    let n = set.n();
    if focus.len() != focus_rates.len() {
        return Err(MeanFieldError::Shape {
            key: "focus_rates".into(),
            got: focus_rates.len(),
            expected: format!("{} (one per focus population)", focus.len()),
        });
    }
    let mut hold = vec![false; n];
    for &f in focus {
        if f >= n {
            return Err(MeanFieldError::IndexOutOfRange {
                key: "focus_pops".into(),
                index: f,
                n,
            });
        }
        hold[f] = true;
    }
    let ambient = hold.iter().filter(|h| !**h).count();
    if ambient_init.len() != ambient {
        return Err(MeanFieldError::Shape {
            key: "ambient_nu_init".into(),
            got: ambient_init.len(),
            expected: format!("{ambient} (one per ambient population)"),
        });
    }
    let mut x = vec![0.0; n];
    let mut ai = ambient_init.iter();
    for (i, h) in hold.iter().enumerate() {
        if !*h {
            x[i] = *ai.next().unwrap_or(&0.0);
        }
    }
    for (&f, &r) in focus.iter().zip(focus_rates) {
        x[f] = r;
    }
    let mut newton = Newton::new(n);
    let start = x.clone();
    if let NewtonEnd::Failed(reason) = newton.run(set, &mut x, &hold, opts) {
        return Err(MeanFieldError::AmbientNotConverged {
            start,
            focus_rates: focus_rates.to_vec(),
            reason,
        });
    }
    let mut phi = vec![0.0; n];
    set.rates(&x, &mut phi, &mut vec![0.0; 2 * n]);
    Ok((phi, x))
}
