//! The mean field of a spiking run next to the run: one mean-field population per block of
//! the network (the same config: in-degrees, block weights, external input, the neurons'
//! constants and the run's dead time), its fixed points with their stability, and the
//! rates the network fired at. For a clustered network the fixed points are sought from
//! starts with `k = 0 … Q` active clusters, and each is set next to the time the network
//! spent with `k` clusters active.

use neurode_models::meanfield::{default_starts, solve, FixedPoint, SetSolution, SolveOptions};
use neurode_models::spiking::{reduce, Class, Reduction};
use serde_json::{json, Value};

use super::run::{group_mean, groups, Built, SpikingRun};
use super::SpikingRunError;
use neurode_solvers::Real;

/// The comparison: the network's rates beside its mean field's fixed points.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Rows per group: name, neurons, spiking rate, mean-field rate (the fixed point
    /// nearest the network's rates).
    pub rows: Vec<(String, usize, f64, f64)>,
    /// That fixed point's stability label and largest real part of its eigenvalues.
    pub nearest: (String, f64),
    /// Every fixed point: active E clusters, mean rate of active and inactive E clusters,
    /// the E and I group rates, stability label.
    pub points: Vec<PointRow>,
    /// Per count of active E clusters, from the run's rate bins: the fraction of time and
    /// the mean rate of the active and the inactive E clusters.
    pub visited: Vec<(usize, f64, f64, f64)>,
    /// The rate (Hz) above which an E cluster counts as active.
    pub active_hz: f64,
    /// The first seconds left out of the network's rates (a transient).
    pub transient: f64,
    /// The dead time the mean field used (s).
    pub dead_time: f64,
    /// Everything, for `mean_field.json`.
    pub json: Value,
}

/// One mean-field fixed point, summarised by cluster state.
#[derive(Debug, Clone)]
pub struct PointRow {
    /// Active E clusters.
    pub active: usize,
    /// Mean rate of the active E clusters (NaN if none).
    pub active_rate: f64,
    /// Mean rate of the inactive E clusters (NaN if none).
    pub inactive_rate: f64,
    /// Group rates, as [`Comparison::rows`].
    pub groups: Vec<f64>,
    /// Stability label.
    pub stability: String,
}

/// Most mean-field populations `--mean-field` solves (dense Jacobians, `Q + 1` cluster
/// starts and the usual ones).
pub const MAX_POPULATIONS: usize = 402;

/// The mean field of a network, solved: its reduction and every fixed point found.
#[derive(Debug, Clone)]
pub struct Solved {
    red: Reduction,
    solution: SetSolution,
}

/// Reduces `built`'s network to its mean field and finds its fixed points (before the
/// network runs, so that a mean field that cannot be solved is an error up front).
pub fn solve_mean_field<T: Real>(built: &Built<T>) -> Result<Solved, SpikingRunError> {
    let blocks = &built.blocks;
    let red = reduce(
        blocks,
        &built.weights,
        &built.probs,
        built.spec.mask,
        &built.setup,
    )?;
    let set = &red.params;
    if set.n() > MAX_POPULATIONS {
        return Err(SpikingRunError::MeanField(format!(
            "{} populations (2 n_clusters + 2) are more than the {MAX_POPULATIONS} that \
             --mean-field solves; use fewer clusters or leave out --mean-field",
            set.n()
        )));
    }
    let q = built.spec.clusters;
    // Starts: k active clusters (the first k E clusters and their I partners high), every
    // rate below its population's ceiling 1/τ_ref.
    let mut given = Vec::new();
    if q > 0 {
        for k in 0..=q {
            let s: Vec<f64> = red
                .blocks
                .iter()
                .zip(&red.tau_ref)
                .map(|(&b, &tr)| {
                    let hi = blocks.cluster(b).is_some_and(|c| c < k);
                    let base: f64 = match blocks.class(b) {
                        Class::E => 3.0,
                        Class::I => 8.0,
                    };
                    let ceiling = if tr > 0.0 { 1.0 / tr } else { f64::INFINITY };
                    if hi {
                        (0.3 * ceiling).min(60.0)
                    } else {
                        base.min(0.3 * ceiling)
                    }
                })
                .collect();
            given.push(s);
        }
    }
    let opts = SolveOptions::default();
    let starts = default_starts(set, &given, &opts)?;
    let solution = solve(std::slice::from_ref(set), &[starts], &opts, &|_| {})?
        .pop()
        .ok_or_else(|| SpikingRunError::MeanField("the solver returned no result".into()))?;
    if solution.points.is_empty() {
        return Err(SpikingRunError::MeanField(
            "no start converged to a fixed point of the mean field".into(),
        ));
    }
    Ok(Solved { red, solution })
}

/// The mean field `solved` of `built`'s network next to `run`.
pub fn compare<T: Real>(
    run: &SpikingRun,
    built: &Built<T>,
    solved: &Solved,
) -> Result<Comparison, SpikingRunError> {
    let blocks = &run.blocks;
    let (red, solution) = (&solved.red, &solved.solution);
    let q = built.spec.clusters;
    let n = red.params.n();
    let e_clusters: Vec<usize> = (0..q).filter(|&c| blocks.size(c) > 0).collect();
    // Population index of each block.
    let pop_of = |b: usize| red.blocks.iter().position(|&x| x == b);

    let dt = run.config.simulation.delta_t;
    let steps = run.steps;
    let transient = (0.2f64).min(steps as f64 * dt / 10.0);
    let from = (transient / dt).round() as usize;
    let means = run.recording.block_means(blocks, dt, from, steps);
    let groups = groups(blocks);
    let to_blocks = |p: &FixedPoint| -> Vec<f64> {
        (0..blocks.len())
            .map(|b| pop_of(b).map_or(f64::NAN, |x| p.rates[x]))
            .collect()
    };
    // The fixed point nearest the network's rates (neuron-weighted), stable ones first.
    // Clusters are interchangeable: the cluster blocks of each class are compared in the
    // order of their rates, so a point with the same clusters active in other places is as
    // near as one with the same places.
    let sorted = |r: &[f64]| -> Vec<f64> {
        let mut r = r.to_vec();
        for class in [Class::E, Class::I] {
            let idx: Vec<usize> = (0..blocks.len())
                .filter(|&b| blocks.class(b) == class && blocks.cluster(b).is_some())
                .collect();
            let mut v: Vec<f64> = idx.iter().map(|&b| r[b]).collect();
            v.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
            for (&b, x) in idx.iter().zip(v) {
                r[b] = x;
            }
        }
        r
    };
    let means_sorted = sorted(&means);
    let distance = |p: &FixedPoint| -> f64 {
        let r = sorted(&to_blocks(p));
        (0..blocks.len())
            .filter(|&b| blocks.size(b) > 0)
            .map(|b| blocks.size(b) as f64 * (r[b] - means_sorted[b]).powi(2))
            .sum::<f64>()
    };
    let nearest = solution
        .points
        .iter()
        .min_by(|a, b| {
            let key = |p: &FixedPoint| (!p.stability.is_stable(), distance(p));
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .ok_or_else(|| SpikingRunError::MeanField("no fixed point".into()))?;
    let near_rates = to_blocks(nearest);
    let rows: Vec<(String, usize, f64, f64)> = groups
        .iter()
        .map(|(name, m)| {
            (
                name.to_string(),
                m.iter().map(|&b| blocks.size(b)).sum(),
                group_mean(blocks, m, &means),
                group_mean(blocks, m, &near_rates),
            )
        })
        .collect();
    let max_re = nearest
        .eigenvalues
        .iter()
        .map(|e| e.0)
        .fold(f64::NEG_INFINITY, f64::max);

    // Cluster states.
    let active_hz = if q > 0 {
        threshold(&solution.points, &e_clusters, &pop_of)
    } else {
        f64::NAN
    };
    let state = |r: &[f64]| -> (usize, f64, f64) {
        let (mut on, mut off) = (vec![], vec![]);
        for &c in &e_clusters {
            if r[c] > active_hz {
                on.push(r[c]);
            } else {
                off.push(r[c]);
            }
        }
        let mean = |v: &[f64]| {
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        (on.len(), mean(&on), mean(&off))
    };
    let mut points: Vec<PointRow> = solution
        .points
        .iter()
        .map(|p| {
            let r = to_blocks(p);
            let (active, a, i) = if q > 0 {
                state(&r)
            } else {
                (0, f64::NAN, f64::NAN)
            };
            PointRow {
                active,
                active_rate: a,
                inactive_rate: i,
                groups: groups
                    .iter()
                    .map(|(_, m)| group_mean(blocks, m, &r))
                    .collect(),
                stability: p.stability.label().to_string(),
            }
        })
        .collect();
    points.sort_by(|a, b| {
        (a.active, a.stability.clone())
            .partial_cmp(&(b.active, b.stability.clone()))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut visited = Vec::new();
    if q > 0 {
        let (times, rates) = run.recording.rates(blocks, dt, steps);
        let mut acc: Vec<(usize, f64, usize, f64, usize)> = vec![(0, 0.0, 0, 0.0, 0); q + 1];
        let mut total = 0;
        for (r, &t) in times.iter().enumerate() {
            if t < transient {
                continue;
            }
            let row: Vec<f64> = (0..blocks.len()).map(|b| rates[[r, b]]).collect();
            let (k, a, i) = state(&row);
            let e = &mut acc[k];
            e.0 += 1;
            if a.is_finite() {
                e.1 += a;
                e.2 += 1;
            }
            if i.is_finite() {
                e.3 += i;
                e.4 += 1;
            }
            total += 1;
        }
        for (k, e) in acc.iter().enumerate() {
            if e.0 > 0 {
                let avg = |s: f64, c: usize| if c > 0 { s / c as f64 } else { f64::NAN };
                visited.push((
                    k,
                    e.0 as f64 / total.max(1) as f64,
                    avg(e.1, e.2),
                    avg(e.3, e.4),
                ));
            }
        }
    }
    let dead_time = red.tau_ref.iter().copied().fold(0.0, f64::max);
    let json = json!({
        "transient_s": transient,
        "dead_time_s": dead_time,
        "groups": rows.iter().map(|(g, n, s, m)| json!({
            "group": g, "neurons": n, "spiking_hz": s, "mean_field_hz": m,
        })).collect::<Vec<_>>(),
        "nearest_point": {
            "stability": nearest.stability.label(),
            "max_real_eigenvalue": max_re,
            "rates_hz": red.blocks.iter().zip(&nearest.rates).map(|(&b, r)| json!({
                "block": blocks.name(b), "mean_field_hz": r, "spiking_hz": means[b],
            })).collect::<Vec<_>>(),
        },
        "active_threshold_hz": active_hz,
        "fixed_points": points.iter().map(|p| json!({
            "active_e_clusters": p.active,
            "active_cluster_hz": p.active_rate,
            "inactive_cluster_hz": p.inactive_rate,
            "group_rates_hz": p.groups,
            "stability": p.stability,
        })).collect::<Vec<_>>(),
        "visited": visited.iter().map(|v| json!({
            "active_e_clusters": v.0, "fraction_of_time": v.1,
            "active_cluster_hz": v.2, "inactive_cluster_hz": v.3,
        })).collect::<Vec<_>>(),
        "populations": n,
    });
    Ok(Comparison {
        rows,
        nearest: (nearest.stability.label().to_string(), max_re),
        points,
        visited,
        active_hz,
        transient,
        dead_time,
        json,
    })
}

/// The rate that splits active from inactive E clusters: halfway (geometrically) between
/// the slowest active and the fastest inactive cluster over the mean field's fixed points
/// with clusters in both states; 20 Hz if none has both.
fn threshold(
    points: &[FixedPoint],
    clusters: &[usize],
    pop_of: &dyn Fn(usize) -> Option<usize>,
) -> f64 {
    let mut lo = f64::INFINITY;
    let mut hi = 0.0f64;
    for p in points {
        let r: Vec<f64> = clusters
            .iter()
            .filter_map(|&c| pop_of(c).map(|x| p.rates[x]))
            .collect();
        let (min, max) = r
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
        // A point with a clear split: its fastest cluster at least 3x its slowest.
        if max > 3.0 * min.max(0.1) {
            hi = hi.max(min.max(0.1));
            lo = lo.min(max);
        }
    }
    if lo.is_finite() && lo > hi {
        (lo * hi).sqrt()
    } else {
        20.0
    }
}

/// The comparison as printed lines.
pub fn report(c: &Comparison) -> Vec<String> {
    let mut out = vec![format!(
        "mean field vs spiking (rates after the first {:.2} s; mean-field dead time {:.4} s)",
        c.transient, c.dead_time
    )];
    out.push(format!(
        "{:<14} {:>8} {:>12} {:>15} {:>10}",
        "population", "neurons", "spiking Hz", "mean field Hz", "diff"
    ));
    for (g, n, s, m) in &c.rows {
        out.push(format!(
            "{g:<14} {n:>8} {s:>12.3} {m:>15.3} {:>9.1}%",
            100.0 * (m - s) / s.abs().max(1e-12)
        ));
    }
    out.push(format!(
        "mean-field point nearest the network: {} (largest real part of the eigenvalues {:.4})",
        c.nearest.0, c.nearest.1
    ));
    if !c.visited.is_empty() {
        out.push(format!(
            "cluster states (an E cluster is active above {:.1} Hz):",
            c.active_hz
        ));
        out.push(format!(
            "{:>7}  {:<44} {}",
            "active", "mean field: active / inactive Hz", "spiking: time, active / inactive Hz"
        ));
        let q = c
            .points
            .iter()
            .map(|p| p.active)
            .chain(c.visited.iter().map(|v| v.0))
            .max()
            .unwrap_or(0);
        let fmt = |v: f64| {
            if v.is_finite() {
                format!("{v:.1}")
            } else {
                "-".into()
            }
        };
        for k in 0..=q {
            // Points that differ only in which clusters are active read the same: once,
            // with their count.
            let mut mf: Vec<(String, usize)> = Vec::new();
            for p in c.points.iter().filter(|p| p.active == k) {
                let text = format!(
                    "{} / {} ({})",
                    fmt(p.active_rate),
                    fmt(p.inactive_rate),
                    p.stability
                );
                match mf.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, n)) => *n += 1,
                    None => mf.push((text, 1)),
                }
            }
            let mf: Vec<String> = mf
                .into_iter()
                .map(|(t, n)| if n > 1 { format!("{t} x{n}") } else { t })
                .collect();
            let sp = c.visited.iter().find(|v| v.0 == k);
            if mf.is_empty() && sp.is_none() {
                continue;
            }
            let sp = sp.map_or("-".to_string(), |v| {
                format!("{:.1}%, {} / {}", 100.0 * v.1, fmt(v.2), fmt(v.3))
            });
            let mf = if mf.is_empty() {
                "-".to_string()
            } else {
                mf.join("; ")
            };
            out.push(format!("{k:>7}  {mf:<44} {sp}"));
        }
    }
    out
}
