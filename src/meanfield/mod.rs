//! `neurode meanfield`: the LIF mean field of a config: every fixed point with its
//! stability (JSON), or a sweep of one parameter (CSV, npz, the bifurcation picture), and the
//! problem file of the peer benchmark (`benches/external/compare_meanfield.sh`).

mod config;
mod kind;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;
use neurode_models::meanfield::{
    default_starts, effective_response, solve, sweep, FixedPoint, MeanFieldError, MeanFieldParams,
    Mode, Param, SetSolution, StartOutcome, Sweep, SweepResult, Target,
};
use serde_json::{json, Value};

pub use config::{ConfigError, MeanFieldConfig, Network, Values};

/// What `neurode meanfield` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct MeanFieldOptions {
    /// The config (TOML, or the original's YAML).
    pub config: PathBuf,
    /// Swept parameters, one or two (a grid): `key=start:stop:n` or `key=v1,v2,…`; an empty
    /// string is the config's `[sweep]`.
    pub sweeps: Vec<String>,
    /// The mode of each sweep given as a spec (`replace`, `shift`, `scale`); one mode
    /// serves every sweep; none: `replace`.
    pub modes: Vec<String>,
    /// `key=value` changes of the network (`threshold[0]=5`).
    pub set: Vec<String>,
    /// Output folder (default `runs/<config stem>`).
    pub out: Option<PathBuf>,
    /// Where to write the peer benchmark's problem file (sweeps only).
    pub problems: Option<PathBuf>,
    /// Threads (0: all cores).
    pub threads: Option<usize>,
}

/// A failure of `neurode meanfield`: the config, the model, or the outputs.
#[derive(Debug, thiserror::Error)]
pub enum MeanFieldRunError {
    /// The config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The model or a command-line value.
    #[error("{0}")]
    Model(#[from] MeanFieldError),
    /// The sweep would not fit in this machine's memory.
    #[error(transparent)]
    TooLarge(#[from] crate::memory::TooLarge),
    /// An option.
    #[error("--{option} {value}: {hint}")]
    Option {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// What to do.
        hint: String,
    },
    /// No start converged for a set.
    #[error("no start converged for {what}: {detail}; try more or other starts (runner.simple.nu_init, solver.random_starts) or a longer solver.relax_time")]
    NothingConverged {
        /// The set.
        what: String,
        /// The best residual and the reason.
        detail: String,
    },
    /// An output could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// What a run produced, for printing.
#[derive(Debug)]
pub enum Report {
    /// One parameter set.
    Single {
        /// Its fixed points and starts.
        solution: SetSolution,
        /// The effective response grid, if the runner asked for it (rows written).
        effective_rows: Option<usize>,
        /// Output folder.
        out: PathBuf,
        /// Seconds of the solve.
        seconds: f64,
    },
    /// A sweep.
    Sweep {
        /// The result.
        result: SweepResult,
        /// The swept target, as written.
        label: String,
        /// Output folder.
        out: PathBuf,
        /// Seconds of the sweep (all sets, continuation included, outputs excluded).
        seconds: f64,
    },
}

fn write_err(path: &Path) -> impl Fn(String) -> MeanFieldRunError + '_ {
    move |message| MeanFieldRunError::Write {
        path: path.display().to_string(),
        message,
    }
}

fn write_json(path: &Path, v: &Value) -> Result<(), MeanFieldRunError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| write_err(path)(e.to_string()))?;
    crate::io::write_atomic(path, text.as_bytes()).map_err(|e| write_err(path)(e.to_string()))
}

/// Runs `neurode meanfield`; `progress(done, total)` follows the sets of a sweep.
pub fn run(
    opts: &MeanFieldOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, MeanFieldRunError> {
    let cfg = MeanFieldConfig::load(&opts.config)?;
    let mut base = cfg.params()?;
    for s in &opts.set {
        let (key, value) = s.split_once('=').ok_or_else(|| MeanFieldRunError::Option {
            option: "set",
            value: s.clone(),
            hint: "write key=value, e.g. --set threshold[0]=5 or --set nu_ext=8".into(),
        })?;
        let target = Target::parse(key)?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| MeanFieldRunError::Option {
                option: "set",
                value: s.clone(),
                hint: format!("`{}` is not a number", value.trim()),
            })?;
        base.apply(&target, Mode::Replace, v)?;
    }
    let mut solve_opts =
        cfg.solve_options()
            .map_err(|(key, value, hint)| ConfigError::Setting {
                path: opts.config.display().to_string(),
                key,
                value,
                hint,
            })?;
    if let Some(t) = opts.threads {
        solve_opts.threads = t;
    }
    let given = cfg.starts();
    let stem = opts
        .config
        .file_stem()
        .map_or("meanfield".into(), |s| s.to_string_lossy().to_string());
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&stem));
    if opts.sweeps.len() > 2 {
        return Err(MeanFieldRunError::Option {
            option: "sweep",
            value: opts.sweeps.join(" "),
            hint: "sweep one parameter, or the grid of two (--sweep twice)".into(),
        });
    }
    if opts.modes.len() > 1 && opts.modes.len() != opts.sweeps.len() {
        return Err(MeanFieldRunError::Option {
            option: "mode",
            value: opts.modes.join(" "),
            hint: format!(
                "give one mode for every sweep, or one per sweep ({})",
                opts.sweeps.len()
            ),
        });
    }
    let mut axes = Vec::with_capacity(opts.sweeps.len());
    for (k, spec) in opts.sweeps.iter().enumerate() {
        axes.push(if spec.is_empty() {
            match &cfg.sweep {
                Some(s) => cfg.config_sweep(s)?,
                None => {
                    return Err(MeanFieldRunError::Option {
                        option: "sweep",
                        value: String::new(),
                        hint: format!(
                            "{} has no [sweep] section; give one as --sweep key=start:stop:n",
                            opts.config.display()
                        ),
                    })
                }
            }
        } else {
            let mode_s = opts
                .modes
                .get(k)
                .or(opts.modes.first())
                .map_or("replace", |m| m.as_str());
            let mode = Mode::parse(mode_s).ok_or_else(|| MeanFieldRunError::Option {
                option: "mode",
                value: mode_s.to_string(),
                hint: "use replace (or new), shift or scale".into(),
            })?;
            Sweep::parse(spec, mode)?
        });
    }
    // Every set keeps its parameters, starts, fixed points and eigenvalues until written.
    let sets = axes.iter().map(|a| a.values.len() as f64).product::<f64>();
    let pops = base.n() as f64;
    crate::memory::check(
        sets * 8.0 * (4.0 * pops * pops + 64.0 * pops + 64.0),
        format!("a sweep of {sets} parameter sets of {pops} populations"),
        "sweep fewer values (--sweep key=start:stop:n with a smaller n)",
    )?;
    std::fs::create_dir_all(&out).map_err(|e| write_err(&out)(e.to_string()))?;
    if axes.is_empty() {
        {
            let start = Instant::now();
            let starts = default_starts(&base, &given, &solve_opts)?;
            let solution = solve(
                std::slice::from_ref(&base),
                std::slice::from_ref(&starts),
                &solve_opts,
                &|_| {},
            )?
            .remove(0);
            let seconds = start.elapsed().as_secs_f64();
            if solution.points.is_empty() {
                return Err(nothing(&solution, "the config's parameters"));
            }
            let effective_rows = match (&cfg.runner.mode, &cfg.runner.effective) {
                (Some(m), Some(e)) if m == "effective" => Some(write_effective(
                    &out.join("effective.csv"),
                    &opts.config,
                    &base,
                    e,
                    &solve_opts,
                )?),
                _ => None,
            };
            write_json(
                &out.join("fixed_points.json"),
                &json!({
                    "config": opts.config.display().to_string(),
                    "populations": base.n(),
                    "seconds": seconds,
                    "points": solution.points.iter().map(point_json).collect::<Vec<_>>(),
                    "starts": starts.iter().zip(&solution.outcomes).map(|(s, o)| outcome_json(s, o)).collect::<Vec<_>>(),
                }),
            )?;
            Ok(Report::Single {
                solution,
                effective_rows,
                out,
                seconds,
            })
        }
    } else {
        let total: usize = axes.iter().map(|a| a.values.len()).product();
        let start = Instant::now();
        let result = sweep(&base, &axes, &given, &solve_opts, &|k| progress(k, total))?;
        let seconds = start.elapsed().as_secs_f64();
        let label = axes
            .iter()
            .map(|a| a.target.label())
            .collect::<Vec<_>>()
            .join(" x ");
        if let Some((k, s)) = result
            .solutions
            .iter()
            .enumerate()
            .find(|(_, s)| s.points.is_empty())
        {
            return Err(nothing(
                s,
                &format!("set {k} of the sweep ({label} = {:?})", result.coords[k]),
            ));
        }
        write_sweep(&out, &result, seconds)?;
        if let Some(p) = &opts.problems {
            write_problems(p, &result, &label, seconds)?;
        }
        Ok(Report::Sweep {
            result,
            label,
            out,
            seconds,
        })
    }
}

fn nothing(s: &SetSolution, what: &str) -> MeanFieldRunError {
    let best = s
        .outcomes
        .iter()
        .filter_map(|o| match o {
            StartOutcome::Failed {
                residual,
                reason,
                rates,
            } => Some((*residual, reason.clone(), rates.clone())),
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    MeanFieldRunError::NothingConverged {
        what: what.to_string(),
        detail: match best {
            Some((r, reason, rates)) => format!(
                "{} starts failed; the closest ended at {rates:?} with residual {r:.3e} Hz ({reason})",
                s.outcomes.len()
            ),
            None => "there were no starts".into(),
        },
    }
}

fn point_json(p: &FixedPoint) -> Value {
    json!({
        "rates": p.rates,
        "stability": p.stability,
        "label": p.stability.label(),
        "eigenvalues": p.eigenvalues.iter().map(|&(re, im)| [re, im]).collect::<Vec<_>>(),
        "residual": p.residual,
        "starts": p.starts,
    })
}

fn outcome_json(start: &[f64], o: &StartOutcome) -> Value {
    match o {
        StartOutcome::Converged {
            point,
            iterations,
            relaxed,
        } => json!({
            "start": start, "converged": true, "point": point,
            "newton_iterations": iterations, "relaxed": relaxed,
        }),
        StartOutcome::Failed {
            residual,
            rates,
            reason,
        } => json!({
            "start": start, "converged": false, "residual": residual,
            "last_rates": rates, "reason": reason,
        }),
    }
}

/// The effective-response grid as CSV: focus rates, then Φ of every population.
fn write_effective(
    path: &Path,
    config: &Path,
    set: &MeanFieldParams,
    e: &config::Effective,
    opts: &neurode_models::meanfield::SolveOptions,
) -> Result<usize, MeanFieldRunError> {
    let bad = |key: &str, hint: String| {
        MeanFieldRunError::Config(ConfigError::Setting {
            path: config.display().to_string(),
            key: format!("runner.effective.{key}"),
            value: String::new(),
            hint,
        })
    };
    let k = e.focus_pops.len();
    if e.focus_nu_limits.len() != k || e.focus_nu_density.len() != k || k == 0 {
        return Err(bad(
            "focus_nu_limits",
            format!("give one [lo, hi] and one density per focus population ({k})"),
        ));
    }
    if let Some(d) = e.focus_nu_density.iter().find(|d| d.is_nan() || **d <= 0.0) {
        return Err(bad(
            "focus_nu_density",
            format!("{d} must be > 0 grid points per Hz"),
        ));
    }
    let axes: Vec<Vec<f64>> = e
        .focus_nu_limits
        .iter()
        .zip(&e.focus_nu_density)
        .map(|([lo, hi], d)| {
            let count = ((hi - lo) * d).floor().clamp(-1.0, 1e6) as i64 + 1;
            (0..count.max(0)).map(|i| lo + i as f64 / d).collect()
        })
        .collect();
    if axes.iter().any(|a| a.is_empty() || a.len() > 100_000) {
        return Err(bad(
            "focus_nu_limits",
            "each [lo, hi] must have lo <= hi and at most 100,000 grid points".into(),
        ));
    }
    let mut text = String::new();
    let names: Vec<String> = e.focus_pops.iter().map(|p| format!("nu_{p}")).collect();
    let phis: Vec<String> = (0..set.n()).map(|i| format!("phi_{i}")).collect();
    text.push_str(&format!("{},{}\n", names.join(","), phis.join(",")));
    let mut idx = vec![0usize; k];
    let mut rows = 0;
    let mut ambient = e.ambient_nu_init.clone();
    loop {
        let focus: Vec<f64> = idx.iter().zip(&axes).map(|(&i, a)| a[i]).collect();
        let (phi, rates) = effective_response(set, &e.focus_pops, &focus, &ambient, opts)?;
        // Continue the ambient solution along the grid.
        ambient = (0..set.n())
            .filter(|i| !e.focus_pops.contains(i))
            .map(|i| rates[i])
            .collect();
        let f: Vec<String> = focus.iter().map(|v| v.to_string()).collect();
        let p: Vec<String> = phi.iter().map(|v| format!("{v:.12e}")).collect();
        text.push_str(&format!("{},{}\n", f.join(","), p.join(",")));
        rows += 1;
        let mut d = 0;
        loop {
            if d == k {
                crate::io::write_atomic(path, text.as_bytes())
                    .map_err(|e| write_err(path)(e.to_string()))?;
                return Ok(rows);
            }
            idx[d] += 1;
            if idx[d] < axes[d].len() {
                break;
            }
            idx[d] = 0;
            d += 1;
        }
    }
}

/// `sweep.csv`, `sweep.npz`, `sweep.json`, and `bifurcation.png` (one parameter) or
/// `multistability.png` (a grid of two).
fn write_sweep(out: &Path, r: &SweepResult, seconds: f64) -> Result<(), MeanFieldRunError> {
    let n = r.sets[0].n();
    let d = r.axes.len();
    let names: Vec<String> = r.axes.iter().map(|a| a.target.label()).collect();
    let mut csv = format!("value_index,{},point,stability,max_real", names.join(","));
    for i in 0..n {
        csv.push_str(&format!(",nu_{i}"));
    }
    csv.push('\n');
    let (mut set_index, mut coords, mut stable, mut maxre, mut rates) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut labels = vec![];
    for (k, (c, s)) in r.coords.iter().zip(&r.solutions).enumerate() {
        for (pi, p) in s.points.iter().enumerate() {
            // Eigenvalues come by decreasing real part.
            let mr = p.eigenvalues.first().map_or(0.0, |e| e.0);
            let cs: Vec<String> = c.iter().map(|v| v.to_string()).collect();
            csv.push_str(&format!(
                "{k},{},{pi},{},{mr:.10e}",
                cs.join(","),
                p.stability.label()
            ));
            for x in &p.rates {
                csv.push_str(&format!(",{x:.12e}"));
            }
            csv.push('\n');
            set_index.push(k as i64);
            coords.extend_from_slice(c);
            stable.push(u8::from(p.stability.is_stable()));
            maxre.push(mr);
            rates.extend_from_slice(&p.rates);
            labels.push(p.stability);
        }
    }
    let rows = set_index.len();
    let p = out.join("sweep.csv");
    crate::io::write_atomic(&p, csv.as_bytes()).map_err(|e| write_err(&p)(e.to_string()))?;
    let stable_counts: Vec<i64> = r
        .solutions
        .iter()
        .map(|s| s.points.iter().filter(|p| p.stability.is_stable()).count() as i64)
        .collect();
    let p = out.join("sweep.npz");
    let npz = || -> Result<(), String> {
        let file = File::create(&p).map_err(|e| e.to_string())?;
        let mut w = NpzWriter::new(file);
        let e = |e: ndarray_npy::WriteNpzError| e.to_string();
        for (k, a) in r.axes.iter().enumerate() {
            w.add_array(format!("axis_{k}"), &Array1::from(a.values.clone()))
                .map_err(e)?;
        }
        let shape: Vec<usize> = r.axes.iter().map(|a| a.values.len()).collect();
        let counts = ndarray::ArrayD::from_shape_vec(shape, stable_counts.clone())
            .map_err(|e| e.to_string())?;
        w.add_array("stable_count", &counts).map_err(e)?;
        w.add_array("set_index", &Array1::from(set_index.clone()))
            .map_err(e)?;
        let c = Array2::from_shape_vec((rows, d), coords.clone()).map_err(|e| e.to_string())?;
        w.add_array("coords", &c).map_err(e)?;
        w.add_array("stable", &Array1::from(stable.clone()))
            .map_err(e)?;
        w.add_array("max_real", &Array1::from(maxre.clone()))
            .map_err(e)?;
        let a = Array2::from_shape_vec((rows, n), rates.clone()).map_err(|e| e.to_string())?;
        w.add_array("rates", &a).map_err(e)?;
        w.finish().map_err(e)?;
        Ok(())
    };
    npz().map_err(write_err(&p))?;
    let failures: usize = r.solutions.iter().map(|s| s.failures()).sum();
    let count = |f: &dyn Fn(&neurode_models::meanfield::Stability) -> bool| {
        labels.iter().filter(|l| f(l)).count()
    };
    write_json(
        &out.join("sweep.json"),
        &json!({
            "parameters": names,
            "shape": r.axes.iter().map(|a| a.values.len()).collect::<Vec<_>>(),
            "sets": r.sets.len(),
            "fixed_points": rows,
            "stable": count(&|l| l.is_stable()),
            "multistable_sets": stable_counts.iter().filter(|c| **c > 1).count(),
            "failed_starts": failures,
            "starts_per_set": r.starts.first().map_or(0, |s| s.len()),
            "continuation_passes": r.continuation_passes,
            "seconds": seconds,
        }),
    )?;
    if d == 1 {
        let (coords, rates, stable) = (&coords, &rates, &stable);
        let series: Vec<crate::plot::BranchPoint> = (0..rows)
            .flat_map(|row| {
                (0..n).map(move |pop| (coords[row], rates[row * n + pop], pop, stable[row] == 1))
            })
            .collect();
        let p = out.join("bifurcation.png");
        crate::plot::bifurcation(&p, &names[0], n, &series).map_err(|e| write_err(&p)(e))
    } else {
        let p = out.join("multistability.png");
        crate::plot::stability_map(
            &p,
            [&names[0], &names[1]],
            [&r.axes[0].values, &r.axes[1].values],
            &stable_counts,
        )
        .map_err(|e| write_err(&p)(e))
    }
}

/// The problem file of `benches/external/meanfield_original.py`: every set's keyword
/// arguments for the original's `LIFMeanField`, its starts, and neurode's points and time.
fn write_problems(
    path: &Path,
    r: &SweepResult,
    label: &str,
    seconds: f64,
) -> Result<(), MeanFieldRunError> {
    let rows = |s: &MeanFieldParams, p: Param| -> Vec<Vec<f64>> {
        let n = s.n();
        (0..n)
            .map(|i| (0..n).map(|j| s.entry(p, i, j)).collect())
            .collect()
    };
    let sets: Vec<Value> = r
        .sets
        .iter()
        .zip(&r.starts)
        .map(|(s, st)| {
            json!({
                "kwargs": {
                    "n_clusters": s.n(),
                    "c_matrix": rows(s, Param::C),
                    "j_matrix": rows(s, Param::J),
                    "j_ext": s.values(Param::JExt),
                    "c_ext": s.values(Param::CExt),
                    "nu_ext": s.values(Param::NuExt),
                    "tau_membrane": s.values(Param::TauM),
                    "tau_synaptic": s.values(Param::TauS),
                    "threshold": s.values(Param::Threshold),
                    "reset_voltage": s.values(Param::Reset),
                    "tau_refractory": s.values(Param::TauRef),
                },
                "starts": st,
            })
        })
        .collect();
    write_json(
        path,
        &json!({
            "commit_note": "written by neurode meanfield --problems; the original is VectorialNeuroModulators at 4d271c6",
            "sweep": {"key": label, "values": r.coords},
            "sets": sets,
            "ours": {
                "seconds": seconds,
                "fixed_points": r.solutions.iter().map(|s| s.points.iter().map(|p| p.rates.clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
            },
        }),
    )
}

/// Prints a report for a person.
pub fn print(report: &Report, mut w: impl Write) -> std::io::Result<()> {
    match report {
        Report::Single {
            solution,
            effective_rows,
            out,
            seconds,
        } => {
            writeln!(
                w,
                "{} fixed point(s) ({:.3} s):",
                solution.points.len(),
                seconds
            )?;
            for (k, p) in solution.points.iter().enumerate() {
                let rates: Vec<String> = p.rates.iter().map(|r| format!("{r:.10}")).collect();
                let ev: Vec<String> = p
                    .eigenvalues
                    .iter()
                    .map(|&(re, im)| {
                        if im == 0.0 {
                            format!("{re:.10}")
                        } else {
                            format!("{re:.10}{im:+.10}i")
                        }
                    })
                    .collect();
                writeln!(
                    w,
                    "  {k}: nu* = [{}] Hz, {}",
                    rates.join(", "),
                    p.stability.label()
                )?;
                writeln!(w, "     eigenvalues: {}", ev.join(", "))?;
                writeln!(
                    w,
                    "     residual {:.1e} Hz, reached from {} start(s)",
                    p.residual, p.starts
                )?;
            }
            for (k, o) in solution.outcomes.iter().enumerate() {
                if let StartOutcome::Failed {
                    residual, reason, ..
                } = o
                {
                    writeln!(
                        w,
                        "  start {k} did not converge: residual {residual:.3e} Hz ({reason})"
                    )?;
                }
            }
            if let Some(rows) = effective_rows {
                writeln!(
                    w,
                    "effective response: {rows} grid points in {}",
                    out.join("effective.csv").display()
                )?;
            }
            writeln!(w, "wrote {}", out.join("fixed_points.json").display())
        }
        Report::Sweep {
            result,
            label,
            out,
            seconds,
        } => {
            let points: usize = result.solutions.iter().map(|s| s.points.len()).sum();
            let stable: usize = result
                .solutions
                .iter()
                .map(|s| s.points.iter().filter(|p| p.stability.is_stable()).count())
                .sum();
            let multi = result
                .solutions
                .iter()
                .filter(|s| s.points.iter().filter(|p| p.stability.is_stable()).count() > 1)
                .count();
            let failed: usize = result.solutions.iter().map(|s| s.failures()).sum();
            let picture = if result.axes.len() == 1 {
                "bifurcation.png"
            } else {
                "multistability.png"
            };
            writeln!(
                w,
                "{label}: {} values, {points} fixed points ({stable} stable), {multi} values multistable, {failed} starts unconverged, in {seconds:.3} s",
                result.sets.len()
            )?;
            writeln!(
                w,
                "wrote {}, sweep.npz, sweep.json, {picture}",
                out.join("sweep.csv").display()
            )
        }
    }
}
