//! `neurode analyze <run-dir>`: the fixed points of a trained network of any model, per
//! input condition, with their linearisation, and its flow field.
//!
//! 1. Fresh trials of the run's task are simulated (with the model's noise, as in
//!    training) and their states saved on a grid of times.
//! 2. Trials are grouped by task condition and the input in force at the end of the trial
//!    (per context and stimulus for the contextual switch task; go and no-go apart, though
//!    both end with input 0). For each
//!    group the network, with that input held constant and no noise, is searched for fixed
//!    and slow points ([`find_fixed_points`](crate::analysis::find_fixed_points)) from states sampled from all trajectories,
//!    plus a little noise.
//! 3. Each point gets its readout, eigenvalues and stability label (a slow point, not a
//!    fixed point, gets none: `slow_point`).
//!
//! Written into the output folder (default `<run-dir>/analysis`):
//! - `fixed_points.json`: per group, its input, trials, label (the correct readout sign,
//!   where the task has one) and whether a stable fixed point has a readout of that sign,
//!   and its points (state, `q`, iterations, stability, readout,
//!   the five leading eigenvalues); `fixed_points.npz`: `xstar` (points x N), `q`,
//!   `group`, `stable` (0/1), `readout`, for NumPy;
//! - `eigenvalues.json`: every point's eigenvalues `[re, im]`;
//! - `flow_field.png`: one panel per group (at most 8): the flow of the network on a plane
//!   (the low-rank network's `κ` plane spanned by its `m` vectors, through the input's
//!   direct drive `B u`; the top two principal components of the trajectories for other
//!   models), the group's trajectories, and its fixed points coloured by stability (slow
//!   points as crosses);
//! - `spectrum.png`: the eigenvalues of every fixed point (not the slow points) in the complex plane with the
//!   imaginary axis (the stability boundary of a continuous-time system).

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;
use neurode_solvers::{derive_seed, Normal, Real};
use serde_json::json;

use crate::analysis::{pca_plane, FixedPointOptions, FixedPoints, FlowField, Plane, Probe};
use crate::config::{Precision, TrainConfig};
use crate::io::{write_atomic, IoError};
use crate::network::{Capability, KindError, Net, TaskModel};
use crate::plot;
use crate::run::RunError;
use crate::run_dir::{self, RunDir};
use crate::tasks::{grid, Task};
use crate::train::{bind_trials, first_blowup, solve_spec};
use crate::trained::RunNetwork;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The run directory written by `neurode train`.
    pub run_dir: PathBuf,
    /// Output folder (default `<run-dir>/analysis`).
    pub out: Option<PathBuf>,
    /// Fresh trials simulated for the trajectories.
    pub trials: usize,
    /// Initial states per group.
    pub inits: usize,
    /// SD of the noise added to sampled initial states, relative to the states' SD.
    pub init_noise: f64,
    /// Seed of the trials and the sampling.
    pub seed: u64,
    /// Grid points per axis of the flow field.
    pub grid: usize,
    /// The fixed-point finder's settings.
    pub finder: FixedPointOptions,
    /// Restrict the analysis to these regions of a multi-region network (parent names
    /// stand for their children); empty: every unit.
    pub regions: Vec<String>,
    /// With `regions`: set the other regions to zero (cancelled) instead of holding them
    /// at the mean final state of each input condition's trials.
    pub cancel_others: bool,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            run_dir: PathBuf::new(),
            out: None,
            trials: 64,
            inits: 256,
            init_noise: 0.05,
            seed: 2024,
            grid: 21,
            finder: FixedPointOptions::default(),
            regions: Vec::new(),
            cancel_others: false,
        }
    }
}

/// One input group's result.
#[derive(Debug, Clone)]
pub struct GroupResult {
    /// The task condition of its first trial.
    pub condition: String,
    /// The held input.
    pub input: Vec<f64>,
    /// The correct readout sign of its trials (`None`: they differ or the task has none).
    pub label: Option<f64>,
    /// Its trials.
    pub trials: Vec<usize>,
    /// The points found.
    pub found: FixedPoints,
    /// The readout at each point.
    pub readout: Vec<f64>,
}

impl GroupResult {
    /// For a group whose trials share a `±1` label: whether a stable fixed point (not a
    /// slow point) has a readout of the label's sign, the choice the trials should make.
    pub fn choice_held(&self) -> Option<bool> {
        let l = self.label.filter(|l| l.abs() == 1.0)?;
        Some(
            self.found
                .points
                .iter()
                .zip(&self.readout)
                .any(|(p, &r)| !p.slow && p.stability.is_stable() && r * l > 0.0),
        )
    }
}

/// What an analysis found.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The output folder.
    pub out: PathBuf,
    /// Per input group.
    pub groups: Vec<GroupResult>,
}

/// Slow points listed per group at most in [`Analysis::report`] (the others are counted).
pub const SLOW_LISTED: usize = 3;

impl Analysis {
    /// The lines `neurode analyze` prints: per group a header (its condition, label, a
    /// summary of its held input, trials and points) and one short line per fixed point
    /// (its kind, readout, `q` and how many initial states reached it); slow points (not
    /// fixed points, no stability label) are listed up to [`SLOW_LISTED`] per group, the
    /// rest counted. Every line is at most about 100 characters.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let slow = g.found.points.iter().filter(|p| p.slow).count();
            let fixed = g.found.points.len() - slow;
            let label = g.label.map_or(String::new(), |l| {
                format!(", {}", crate::plot::target_label(l))
            });
            lines.push(format!(
                "input {i} ({}{label}, {}, {} trials): {fixed} fixed, {slow} slow point(s)",
                g.condition,
                input_summary(&g.input),
                g.trials.len(),
            ));
            let mut listed_slow = 0;
            for (p, r) in g.found.points.iter().zip(&g.readout) {
                if p.slow {
                    listed_slow += 1;
                    if listed_slow > SLOW_LISTED {
                        continue;
                    }
                }
                lines.push(format!(
                    "  {}: readout {}, q {:.1e}, from {} of {} initial states",
                    point_kind(p),
                    signed(*r),
                    p.q,
                    p.count,
                    g.found.n_inits
                ));
            }
            if slow > SLOW_LISTED {
                lines.push(format!(
                    "  ... {} more slow points (fixed_points.json lists them)",
                    slow - SLOW_LISTED
                ));
            }
        }
        lines
    }
}

/// The kind of a point in words: `slow point` (not a fixed point: no stability label), or
/// the fixed point's stability (`stable node`, `saddle`, ...).
pub fn point_kind(p: &crate::analysis::FixedPoint) -> &'static str {
    use crate::analysis::Stability;
    if p.slow {
        return "slow point";
    }
    match p.stability {
        Stability::StableNode => "stable node",
        Stability::StableFocus => "stable focus",
        Stability::UnstableNode => "unstable node",
        Stability::UnstableFocus => "unstable focus",
        Stability::Saddle => "saddle",
        Stability::Marginal => "marginal (linearisation undecided)",
    }
}

/// `v` with a sign and at most three decimals (`+1`, `-0.142`, `0`).
fn signed(v: f64) -> String {
    let t = crate::plot::tick_label(v, 0.02);
    if t == "0" || t.starts_with('-') {
        t
    } else {
        format!("+{t}")
    }
}

/// A short summary of a held input: `u = 0`, every channel where there are at most four
/// (`u = (+1.2, -1.2, +0.08, -0.14)`), or the channels that are on.
pub fn input_summary(u: &[f64]) -> String {
    let on: Vec<usize> = (0..u.len()).filter(|&c| u[c] != 0.0).collect();
    if on.is_empty() {
        return "u = 0".to_string();
    }
    if u.len() <= 4 {
        let v: Vec<String> = u.iter().map(|&v| signed(v)).collect();
        return format!("u = ({})", v.join(", "));
    }
    if on.len() <= 3 {
        let v: Vec<String> = on
            .iter()
            .map(|&c| format!("u{c} = {}", signed(u[c])))
            .collect();
        return format!("{} (other {} channels 0)", v.join(", "), u.len() - on.len());
    }
    let max = u.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    format!(
        "u: {} of {} channels on, max |u| {}",
        on.len(),
        u.len(),
        signed(max).trim_start_matches('+')
    )
}

/// Runs the analysis (see the [module docs](self)); `progress(done, total)` is called
/// after each group.
pub fn analyze(
    opts: &AnalyzeOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<Analysis, RunError> {
    let dir = &opts.run_dir;
    let (run, cfg) = RunDir::open(dir)?;
    if opts.trials == 0 || opts.inits == 0 {
        let option = if opts.trials == 0 {
            "--trials"
        } else {
            "--inits"
        };
        return Err(RunError::option(option, "must be at least 1"));
    }
    if opts.grid < 2 {
        return Err(RunError::option("--grid", "must be at least 2"));
    }
    if !(opts.init_noise.is_finite() && opts.init_noise >= 0.0) {
        return Err(RunError::option(
            "--init-noise",
            format!("must be >= 0 (got {})", opts.init_noise),
        ));
    }
    check_memory(&cfg, opts)?;
    let out = opts.out.clone().unwrap_or_else(|| run.file("analysis"));
    match cfg.precision {
        Precision::F64 => analyze_as::<f64>(&cfg, opts, &out, progress),
        Precision::F32 => analyze_as::<f32>(&cfg, opts, &out, progress),
    }
}

fn analyze_as<T: Real>(
    cfg: &TrainConfig,
    opts: &AnalyzeOptions,
    out: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<Analysis, RunError> {
    let model = cfg.model.require::<T>(Capability::Analyze)?;
    let params = opts.run_dir.join(run_dir::PARAMS);
    let RunNetwork { mut net, readout } =
        RunNetwork::<T>::load(cfg, Capability::Analyze, Some(&params))?;
    let spec = cfg.task.spec();
    let batch = cfg
        .task
        .batch::<T>(derive_seed(opts.seed, &[6]), 0, opts.trials);
    // 1. Trajectories, as in training (noise on).
    let x0 = bind_trials(cfg, &spec, &mut net, &batch, 0..batch.len())
        .map_err(|e| RunError::Inputs(Box::new(e)))?;
    let n = net.dim();
    let n_save = 50u64;
    let times: Vec<T> = grid(spec.t_end / n_save as f64, 1, n_save)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let sol = net
        .solve(&solve_spec(cfg, spec.t_end, times.clone(), x0))
        .map_err(|e| RunError::Solve {
            what: "simulating the trials",
            message: e.to_string(),
        })?;
    if let Some(blowup) = first_blowup(&sol, n, 0, spec.time_unit) {
        return Err(RunError::Diverged {
            what: "simulating the trials to analyse",
            blowup,
        });
    }
    let k_traj = times.len();
    let mut states = Vec::with_capacity(n * k_traj * batch.len());
    for b in 0..batch.len() {
        for k in 0..k_traj {
            states.extend(sol.state(k, b).iter().map(|v| v.as_f64()));
        }
    }
    // 2. Groups by task condition and the input at the end of the trial.
    let t_probe = T::from_f64(spec.t_end);
    let ends: Vec<Vec<f64>> = batch
        .inputs
        .iter()
        .map(|u| u.at(t_probe).iter().map(|v| v.as_f64()).collect())
        .collect();
    let groups = group_trials(&batch.conditions, &ends);
    // The field without noise, one bound trial per batch trial.
    net.bind(batch.inputs.clone(), Vec::new())
        .map_err(RunError::Bind)?;
    // Initial states: sampled saved states plus noise.
    let sd = {
        let m = states.iter().sum::<f64>() / states.len() as f64;
        (states.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / states.len() as f64).sqrt()
    };
    let mut rng = Normal::new(derive_seed(opts.seed, &[7]));
    let n_states = states.len() / n;
    let mut inits = Vec::with_capacity(n * opts.inits);
    for _ in 0..opts.inits {
        let pick = ((rng.uniform() * n_states as f64) as usize).min(n_states - 1);
        for i in 0..n {
            inits.push(T::from_f64(
                states[pick * n + i] + opts.init_noise * sd * rng.sample(),
            ));
        }
    }
    let free = restricted_units(cfg, opts)?;
    // The state of the held units per group: zero (cancelled) or the group's mean final
    // state.
    let held_state = |trials: &[usize]| -> Vec<f64> {
        let mut base = vec![0.0; n];
        if !opts.cancel_others {
            for &b in trials {
                let last = &states[(b * k_traj + k_traj - 1) * n..(b * k_traj + k_traj) * n];
                base.iter_mut()
                    .zip(last)
                    .for_each(|(m, v)| *m += v / trials.len() as f64);
            }
        }
        base
    };
    let mut results = Vec::with_capacity(groups.len());
    let mut bases = Vec::with_capacity(groups.len());
    for (gi, (input, trials)) in groups.iter().enumerate() {
        let rep = trials[0];
        let mut probe = Probe::new(rep, spec.t_end);
        let base = held_state(trials);
        let mut group_inits = inits.clone();
        if let Some(free) = &free {
            probe.free = Some(free.clone());
            for col in group_inits.chunks_exact_mut(n) {
                for (i, v) in col.iter_mut().enumerate() {
                    if free.binary_search(&i).is_err() {
                        *v = T::from_f64(base[i]);
                    }
                }
            }
        }
        bases.push(base);
        let found = net
            .fixed_points(&probe, &group_inits, &opts.finder)
            .map_err(|source| RunError::Analysis {
                step: format!("fixed-point search, group {gi}"),
                source,
            })?;
        let ro: Vec<f64> = found
            .points
            .iter()
            .map(|p| {
                let x: Vec<T> = p.x.iter().map(|&v| T::from_f64(v)).collect();
                readout.output(&x).as_f64()
            })
            .collect();
        let labels: Vec<f64> = trials.iter().map(|&b| batch.labels[b]).collect();
        let label = labels.iter().all(|&l| l == labels[0]).then_some(labels[0]);
        results.push(GroupResult {
            condition: spec.conditions[batch.conditions[rep]].to_string(),
            input: input.clone(),
            label,
            trials: trials.clone(),
            found,
            readout: ro,
        });
        progress(gi + 1, groups.len());
    }
    std::fs::create_dir_all(out).map_err(|e| IoError::Fs {
        action: "cannot create the output folder",
        path: out.to_path_buf(),
        source: e,
    })?;
    write_results(out, &results)?;
    // 4. Flow fields and spectra.
    let planes = planes(model, &net, &results, n, &states, free.as_deref())?;
    let mut panels = Vec::new();
    for (gi, g) in results.iter().enumerate().take(8) {
        let plane = &planes[gi];
        let traj: Vec<Vec<(f64, f64)>> = g
            .trials
            .iter()
            .take(6)
            .map(|&b| {
                (0..k_traj)
                    .map(|k| {
                        let c =
                            plane.coords(&states[(b * k_traj + k) * n..(b * k_traj + k + 1) * n]);
                        (c[0], c[1])
                    })
                    .collect()
            })
            .collect();
        let pts: Vec<((f64, f64), bool, bool)> = g
            .found
            .points
            .iter()
            .map(|p| {
                let c = plane.coords(&p.x);
                ((c[0], c[1]), !p.slow && p.stability.is_stable(), p.slow)
            })
            .collect();
        let all = traj
            .iter()
            .flatten()
            .copied()
            .chain(pts.iter().map(|p| p.0));
        let (x_range, y_range) = bounds(all);
        let probe = Probe {
            free: free.clone(),
            ..Probe::new(g.trials[0], spec.t_end)
        };
        let base = free.as_ref().map(|_| bases[gi].as_slice());
        let ff: FlowField = net
            .flow_field(&probe, plane, x_range, y_range, opts.grid, base)
            .map_err(|source| RunError::Analysis {
                step: format!("flow field, group {gi}"),
                source,
            })?;
        // The group's number keeps titles apart where a condition has several inputs.
        let title = match g.label {
            Some(l) => format!(
                "input {gi}: {}, {}",
                g.condition,
                crate::plot::target_label(l)
            ),
            None => format!("input {gi}: {}", g.condition),
        };
        panels.push(plot::FlowPanel {
            title,
            axes: plane.names.clone(),
            field: ff,
            trajectories: traj,
            points: pts,
        });
    }
    plot::flow_fields(&out.join("flow_field.png"), &panels).map_err(RunError::Plot)?;
    let spectra: Vec<(Vec<(f64, f64)>, bool)> = results
        .iter()
        .flat_map(|g| g.found.points.iter())
        .filter(|p| !p.slow)
        .map(|p| (p.eigenvalues.clone(), p.stability.is_stable()))
        .collect();
    plot::spectrum(&out.join("spectrum.png"), &spectra).map_err(RunError::Plot)?;
    Ok(Analysis {
        out: out.to_path_buf(),
        groups: results,
    })
}

/// The groups of trials `(held input, trials)`, in order of first appearance: trials of one
/// task condition whose input at the end of the trial is the same. Trials of different
/// conditions are never pooled, even where their inputs end alike (go and no-go trials
/// both end with input 0: their trajectories, and the states they reach, differ).
pub fn group_trials(conditions: &[usize], ends: &[Vec<f64>]) -> Vec<(Vec<f64>, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<f64>, Vec<usize>)> = Vec::new();
    for (b, (&c, u)) in conditions.iter().zip(ends).enumerate() {
        match groups.iter_mut().find(|g| g.0 == c && &g.1 == u) {
            Some(g) => g.2.push(b),
            None => groups.push((c, u.clone(), vec![b])),
        }
    }
    groups.into_iter().map(|(_, u, t)| (u, t)).collect()
}

/// The plane of each group: the kind's own plane through `B u` (the low-rank network's `κ`
/// plane), or the principal components of all trajectories.
fn planes<T: Real>(
    model: &dyn TaskModel<T>,
    net: &Net<T>,
    groups: &[GroupResult],
    n: usize,
    states: &[f64],
    free: Option<&[usize]>,
) -> Result<Vec<Plane>, RunError> {
    let bad = |source| RunError::Analysis {
        step: "analysis plane".into(),
        source,
    };
    if let Some(free) = free {
        // Principal components of the free units' activity (zero on the held units).
        let mut masked = vec![0.0; states.len()];
        for (m, s) in masked.chunks_exact_mut(n).zip(states.chunks_exact(n)) {
            free.iter().for_each(|&i| m[i] = s[i]);
        }
        let pca = pca_plane(n, &masked).map_err(bad)?;
        return Ok(vec![pca; groups.len()]);
    }
    if let Some(axes) = model.flow_axes(net) {
        let b: Vec<f64> = net.input_weights().iter().map(|v| v.as_f64()).collect();
        return groups
            .iter()
            .map(|g| {
                let center: Vec<f64> = (0..n)
                    .map(|i| {
                        g.input
                            .iter()
                            .enumerate()
                            .map(|(c, u)| b[i + c * n] * u)
                            .sum()
                    })
                    .collect();
                let [e1, e2] = axes.axes.clone();
                Plane::new(center, e1, e2, axes.names).map_err(bad)
            })
            .collect();
    }
    let pca = pca_plane(n, states).map_err(bad)?;
    Ok(vec![pca; groups.len()])
}

fn bounds(pts: impl Iterator<Item = (f64, f64)>) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts.filter(|p| p.0.is_finite() && p.1.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((-1.0, 1.0), (-1.0, 1.0));
    }
    let pad = |a: f64, b: f64| {
        let d = ((b - a) * 0.15).max(1e-3);
        (a - d, b + d)
    };
    (pad(x0, x1), pad(y0, y1))
}

/// A point's stability label in the JSON files: the fixed point's (`stable_node`, ...), or
/// `slow_point` (a slow point is not a fixed point: linearisation there decides nothing).
fn stability_label(p: &crate::analysis::FixedPoint) -> serde_json::Value {
    if p.slow {
        json!("slow_point")
    } else {
        json!(p.stability)
    }
}

fn write_results(out: &Path, groups: &[GroupResult]) -> Result<(), RunError> {
    let mut json_groups = Vec::new();
    let mut eig = Vec::new();
    let (mut xstar, mut q, mut gid, mut stable, mut ro) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let n = groups
        .iter()
        .flat_map(|g| g.found.points.first())
        .map(|p| p.x.len())
        .next()
        .unwrap_or(0);
    for (gi, g) in groups.iter().enumerate() {
        let points: Vec<serde_json::Value> = g
            .found
            .points
            .iter()
            .zip(&g.readout)
            .map(|(p, &r)| {
                json!({
                    "x": p.x,
                    "q": p.q,
                    "slow": p.slow,
                    "iterations": p.iterations,
                    "newton_steps": p.newton_steps,
                    "count": p.count,
                    "stability": stability_label(p),
                    "readout": r,
                    "leading_eigenvalues": p.eigenvalues.iter().take(5).map(|e| [e.0, e.1]).collect::<Vec<_>>(),
                })
            })
            .collect();
        json_groups.push(json!({
            "group": gi,
            "condition": g.condition,
            "input": g.input,
            "label": g.label,
            "stable_point_of_the_label_sign": g.choice_held(),
            "trials": g.trials,
            "n_inits": g.found.n_inits,
            "n_converged": g.found.n_converged,
            "n_outliers": g.found.n_outliers,
            "tol_q": g.found.tol_q,
            "points": points,
        }));
        for (p, &r) in g.found.points.iter().zip(&g.readout) {
            eig.push(json!({
                "group": gi,
                "stability": stability_label(p),
                "eigenvalues": p.eigenvalues.iter().map(|e| [e.0, e.1]).collect::<Vec<_>>(),
            }));
            xstar.extend_from_slice(&p.x);
            q.push(p.q);
            gid.push(gi as i64);
            stable.push(i64::from(!p.slow && p.stability.is_stable()));
            ro.push(r);
        }
    }
    let text = |v: &serde_json::Value| {
        serde_json::to_string_pretty(v).expect("a JSON value always serialises")
    };
    write_atomic(
        &out.join("fixed_points.json"),
        text(&json!({
            "system": "continuous time: f(x*) = 0, Jacobian df/dx (includes -I/tau)",
            "groups": json_groups,
        }))
        .as_bytes(),
    )?;
    write_atomic(&out.join("eigenvalues.json"), text(&json!(eig)).as_bytes())?;
    let npz = out.join("fixed_points.npz");
    let io = |e: String| {
        RunError::Io(IoError::Fs {
            action: "cannot write",
            path: npz.clone(),
            source: std::io::Error::other(e),
        })
    };
    let file = std::fs::File::create(&npz).map_err(|e| io(e.to_string()))?;
    let mut w = NpzWriter::new(file);
    let count = q.len();
    let xs = Array2::from_shape_vec((count, n), xstar).map_err(|e| io(e.to_string()))?;
    w.add_array("xstar", &xs).map_err(|e| io(e.to_string()))?;
    w.add_array("q", &Array1::from(q))
        .map_err(|e| io(e.to_string()))?;
    w.add_array("group", &Array1::from(gid))
        .map_err(|e| io(e.to_string()))?;
    w.add_array("stable", &Array1::from(stable))
        .map_err(|e| io(e.to_string()))?;
    w.add_array("readout", &Array1::from(ro))
        .map_err(|e| io(e.to_string()))?;
    w.finish().map_err(|e| io(e.to_string()))?;
    Ok(())
}

/// The free units of a region-restricted analysis (`None`: every unit).
fn restricted_units(
    cfg: &TrainConfig,
    opts: &AnalyzeOptions,
) -> Result<Option<Vec<usize>>, KindError> {
    if opts.regions.is_empty() {
        return Ok(None);
    }
    match cfg.model.kind().region_units(&opts.regions) {
        Some(units) => units.map(Some),
        None => Err(KindError::NoRegions {
            kind: cfg.model.name(),
        }),
    }
}

/// The analysis's largest arrays (the trials' trajectories, the initial states of the
/// fixed-point search, the flow-field grid) against this machine's memory, before any is
/// allocated.
fn check_memory(cfg: &TrainConfig, opts: &AnalyzeOptions) -> Result<(), RunError> {
    let n = cfg.model.n() as f64;
    let points = (opts.grid as f64).powi(2);
    crate::memory::check_parts(&[
        (
            opts.trials as f64 * 51.0 * n * 16.0,
            format!("the trajectories of {} trials (--trials)", opts.trials),
            "use fewer --trials".into(),
        ),
        (
            opts.inits as f64 * n * 8.0 * 4.0,
            format!("{} initial states per input (--inits)", opts.inits),
            "use fewer --inits".into(),
        ),
        (
            points * (n * 8.0 * 4.0 + 64.0),
            format!(
                "the flow field's {}x{} grid of N = {} states (--grid)",
                opts.grid,
                opts.grid,
                cfg.model.n()
            ),
            "use a smaller --grid (the default is 21)".into(),
        ),
        (
            cfg.model.kind().memory_estimate(1),
            format!("the network (N = {})", cfg.model.n()),
            "use a smaller network".into(),
        ),
    ])?;
    Ok(())
}
