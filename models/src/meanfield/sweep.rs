//! Sweeps: one parameter over a grid of values, every fixed point of every value, all
//! values solved as one batch, with continuation from the neighbouring values' points.

use super::fixed::{default_starts, solve, SetSolution, SolveOptions};
use super::params::{MeanFieldParams, Mode, Target};
use super::MeanFieldError;

/// Most values one sweep axis may have (`key=start:stop:n` with a larger `n` is refused
/// before its values are made).
pub const MAX_VALUES: usize = 1_000_000;

/// One parameter (or entry) over a list of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// What changes.
    pub target: Target,
    /// How the values act on it.
    pub mode: Mode,
    /// The values, one parameter set each.
    pub values: Vec<f64>,
}

impl Sweep {
    /// Parses `key=start:stop:n` (`n` evenly spaced values from `start` to `stop`, both
    /// included) or `key=v1,v2,…`; `key` is a parameter name or alias, optionally indexed
    /// (`threshold[0]`, `j_matrix[0,1]`).
    pub fn parse(spec: &str, mode: Mode) -> Result<Sweep, MeanFieldError> {
        let empty = |why: &str| MeanFieldError::EmptySweep {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (key, range) = spec
            .split_once('=')
            .ok_or_else(|| empty("write it as key=start:stop:n (or key=v1,v2,...)"))?;
        let target = Target::parse(key)?;
        let num = |s: &str| -> Result<f64, MeanFieldError> {
            let v: f64 = s
                .trim()
                .parse()
                .map_err(|_| empty(&format!("`{}` is not a number", s.trim())))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(empty(&format!("`{}` is not finite", s.trim())))
            }
        };
        let values = if range.contains(':') {
            let parts: Vec<&str> = range.split(':').collect();
            if parts.len() != 3 {
                return Err(empty("a range is start:stop:n"));
            }
            let (a, b) = (num(parts[0])?, num(parts[1])?);
            let n: usize = parts[2].trim().parse().map_err(|_| {
                empty(&format!(
                    "the count `{}` must be a whole number >= 1",
                    parts[2].trim()
                ))
            })?;
            if n == 0 {
                return Err(empty("the count n is 0"));
            }
            if n > MAX_VALUES {
                return Err(empty(&format!(
                    "the count n = {n} is more than the {MAX_VALUES} values one axis may have"
                )));
            }
            if n > 1 && a == b {
                return Err(empty(
                    "start and stop are equal: give n = 1 or two different ends",
                ));
            }
            (0..n)
                .map(|k| {
                    if n == 1 {
                        a
                    } else {
                        a + (b - a) * k as f64 / (n - 1) as f64
                    }
                })
                .collect()
        } else {
            range
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(num)
                .collect::<Result<Vec<f64>, _>>()?
        };
        if values.is_empty() {
            return Err(empty("no values were given"));
        }
        Ok(Sweep {
            target,
            mode,
            values,
        })
    }

    /// The parameter sets: `base` with each value applied. An invalid set names its value.
    pub fn sets(&self, base: &MeanFieldParams) -> Result<Vec<MeanFieldParams>, MeanFieldError> {
        (0..self.values.len())
            .map(|k| {
                let mut s = base.clone();
                self.apply(&mut s, k)?;
                Ok(s)
            })
            .collect()
    }

    /// Applies value `k` to `set`; an error names the value.
    fn apply(&self, set: &mut MeanFieldParams, k: usize) -> Result<(), MeanFieldError> {
        let v = self.values[k];
        set.apply(&self.target, self.mode, v).map_err(|e| match e {
            MeanFieldError::Invalid {
                key,
                value,
                requirement,
            } => MeanFieldError::Invalid {
                key,
                value,
                requirement: format!(
                    "{requirement} (sweep of {}, value {k}: {} {v})",
                    self.target.label(),
                    match self.mode {
                        Mode::Replace => "replaced by",
                        Mode::Shift => "shifted by",
                        Mode::Scale => "scaled by",
                    }
                ),
            },
            e => e,
        })
    }
}

/// The result of a sweep.
#[derive(Debug, Clone)]
pub struct SweepResult {
    /// The swept parameters: one axis, or two for a grid.
    pub axes: Vec<Sweep>,
    /// The values of every set, one per axis (sets in row-major order: the last axis
    /// varies fastest).
    pub coords: Vec<Vec<f64>>,
    /// The parameter sets.
    pub sets: Vec<MeanFieldParams>,
    /// The starts every set was solved from before continuation.
    pub starts: Vec<Vec<Vec<f64>>>,
    /// Every fixed point per set (continuation included).
    pub solutions: Vec<SetSolution>,
    /// Continuation passes that found new points.
    pub continuation_passes: usize,
}

/// Runs a sweep over one parameter, or over the grid of two: every set of `axes` on
/// `base`, each from [`default_starts`] with `given` starts, solved as one batch; then up
/// to three continuation passes, each starting every set from its grid neighbours' points
/// that it lacks.
pub fn sweep(
    base: &MeanFieldParams,
    axes: &[Sweep],
    given: &[Vec<f64>],
    opts: &SolveOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SweepResult, MeanFieldError> {
    if axes.is_empty() || axes.len() > 2 {
        return Err(MeanFieldError::EmptySweep {
            spec: format!("{} parameters", axes.len()),
            why: "sweep one parameter or the grid of two".into(),
        });
    }
    let shape: Vec<usize> = axes.iter().map(|a| a.values.len()).collect();
    let total: usize = shape.iter().product();
    let index = |mut s: usize| -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = s % shape[d];
            s /= shape[d];
        }
        idx
    };
    let flat = |idx: &[usize]| idx.iter().zip(&shape).fold(0, |acc, (i, n)| acc * n + i);
    let mut sets = Vec::with_capacity(total);
    let mut coords = Vec::with_capacity(total);
    for s in 0..total {
        let idx = index(s);
        let mut set = base.clone();
        for (axis, &k) in axes.iter().zip(&idx) {
            axis.apply(&mut set, k)?;
        }
        sets.push(set);
        coords.push(axes.iter().zip(&idx).map(|(a, &k)| a.values[k]).collect());
    }
    let neighbours = |s: usize| -> Vec<usize> {
        let idx = index(s);
        let mut out = Vec::new();
        for d in 0..shape.len() {
            for step in [-1i64, 1] {
                let k = idx[d] as i64 + step;
                if k >= 0 && (k as usize) < shape[d] {
                    let mut j = idx.clone();
                    j[d] = k as usize;
                    out.push(flat(&j));
                }
            }
        }
        out
    };
    let starts = sets
        .iter()
        .map(|s| default_starts(s, given, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let mut solutions = solve(&sets, &starts, opts, &|k| progress(k))?;
    let mut passes = 0;
    for _ in 0..3 {
        let mut extra: Vec<(usize, Vec<Vec<f64>>)> = Vec::new();
        for s in 0..sets.len() {
            let own = &solutions[s].points;
            let mut mine = Vec::new();
            for nb in neighbours(s) {
                let Some(sol) = solutions.get(nb) else {
                    continue;
                };
                for p in &sol.points {
                    let scale = p.rates.iter().fold(1.0f64, |m, r| m.max(r.abs()));
                    let known = own.iter().any(|q| {
                        q.rates
                            .iter()
                            .zip(&p.rates)
                            .all(|(a, b)| (a - b).abs() <= 1e-3 * scale)
                    });
                    let ceiling_ok = p
                        .rates
                        .iter()
                        .enumerate()
                        .all(|(i, &r)| r < sets[s].ceiling(i));
                    if !known && ceiling_ok {
                        mine.push(p.rates.clone());
                    }
                }
            }
            if !mine.is_empty() {
                extra.push((s, mine));
            }
        }
        if extra.is_empty() {
            break;
        }
        let sub_sets: Vec<MeanFieldParams> = extra.iter().map(|(s, _)| sets[*s].clone()).collect();
        let sub_starts: Vec<Vec<Vec<f64>>> = extra.iter().map(|(_, st)| st.clone()).collect();
        let found = solve(&sub_sets, &sub_starts, opts, &|_| {})?;
        let before: usize = solutions.iter().map(|s| s.points.len()).sum();
        for ((s, _), sol) in extra.iter().zip(found) {
            solutions[*s].merge(sol, opts.dedupe);
        }
        let after: usize = solutions.iter().map(|s| s.points.len()).sum();
        if after == before {
            break;
        }
        passes += 1;
    }
    progress(sets.len());
    Ok(SweepResult {
        axes: axes.to_vec(),
        coords,
        sets,
        starts,
        solutions,
        continuation_passes: passes,
    })
}
