//! Sweeps: one parameter over a grid of values, every fixed point of every value, all
//! values solved as one batch, with continuation from the neighbouring values' points.

use super::fixed::{default_starts, solve, SetSolution, SolveOptions};
use super::params::{MeanFieldParams, Mode, Target};
use super::MeanFieldError;

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
        self.values
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let mut s = base.clone();
                s.apply(&self.target, self.mode, v).map_err(|e| match e {
                    MeanFieldError::Invalid {
                        key,
                        value,
                        requirement,
                    } => MeanFieldError::Invalid {
                        key,
                        value,
                        requirement: format!(
                            "{requirement} (sweep value {k}: {} {v})",
                            match self.mode {
                                Mode::Replace => "replaced by",
                                Mode::Shift => "shifted by",
                                Mode::Scale => "scaled by",
                            }
                        ),
                    },
                    e => e,
                })?;
                Ok(s)
            })
            .collect()
    }
}

/// The result of a sweep.
#[derive(Debug, Clone)]
pub struct SweepResult {
    /// The swept values.
    pub values: Vec<f64>,
    /// The parameter sets, one per value.
    pub sets: Vec<MeanFieldParams>,
    /// The starts every set was solved from before continuation.
    pub starts: Vec<Vec<Vec<f64>>>,
    /// Every fixed point per set (continuation included).
    pub solutions: Vec<SetSolution>,
    /// Continuation passes that found new points.
    pub continuation_passes: usize,
}

/// Runs a sweep: the sets of `sweep` on `base`, each from [`default_starts`] with
/// `given` starts, solved as one batch; then up to three continuation passes, each starting
/// every set from the neighbouring sets' points that it lacks.
pub fn sweep(
    base: &MeanFieldParams,
    sweep: &Sweep,
    given: &[Vec<f64>],
    opts: &SolveOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SweepResult, MeanFieldError> {
    let sets = sweep.sets(base)?;
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
            for nb in [s.wrapping_sub(1), s + 1] {
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
        values: sweep.values.clone(),
        sets,
        starts,
        solutions,
        continuation_passes: passes,
    })
}
