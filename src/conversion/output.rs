//! What `neurode spiking` writes: the results into the `.mat` (as the original's grid
//! search), `spiking_grid.json` (or `spiking_lambda_<λ>.json`), the recorded trials, and
//! the raster and output plots of one trial per condition at the best λ.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::NpzWriter;
use neurode_models::spiking::converted::{Constants, ConvertedNetwork};
use neurode_models::spiking::{Blocks, Class};
use serde_json::json;

use super::load::Loaded;
use super::search::run_trial;
use super::trials::{window_start, SpikingTrial, NOGO_BELOW, THRESHOLD};
use super::{ConversionError, SpikingOptions, SpikingReport};
use crate::io::write_atomic;
use crate::mat::{read_mat, MatValue};

fn out_err(path: &Path) -> impl Fn(String) -> ConversionError + '_ {
    move |e| ConversionError::Output(format!("cannot write {}: {e}", path.display()))
}

/// Writes every output of a run (see the [module docs](self)).
pub fn write(
    o: &SpikingOptions,
    l: &Loaded,
    c: &Constants,
    trials: &[SpikingTrial],
    report: &mut SpikingReport,
    out: &Path,
) -> Result<(), ConversionError> {
    let grid = o.lambda.is_none();
    if grid {
        // The original's write-back: the other variables are kept as they are.
        let m = read_mat(&l.mat)?;
        let lambdas: Vec<f64> = report.evaluations.iter().map(|e| e.lambda).collect();
        let perfs: Vec<f64> = report.evaluations.iter().map(|e| e.performance).collect();
        let bytes = m.with_replaced(&[
            ("opt_scaling_factor".into(), MatValue::scalar(report.best)),
            ("all_perfs".into(), MatValue::row(perfs)),
            ("scaling_factors".into(), MatValue::row(lambdas)),
        ])?;
        write_atomic(&l.mat, &bytes).map_err(|e| ConversionError::Output(e.to_string()))?;
        report.written.push(l.mat.clone());
    }
    let name = if grid {
        "spiking_grid.json".to_string()
    } else {
        format!("spiking_lambda_{}.json", report.best)
    };
    let path = out.join(name);
    let json = json!({
        "source": o.source.display().to_string(),
        "mat": l.mat.display().to_string(),
        "task": report.task,
        "trials_per_lambda": trials.len(),
        "seed": o.seed,
        "noise_sd_mv": c.noise_sd,
        "neurons": l.rate.n,
        "scaling_factors": report.evaluations.iter().map(|e| e.lambda).collect::<Vec<_>>(),
        "all_perfs": report.evaluations.iter().map(|e| e.performance).collect::<Vec<_>>(),
        "mean_rate_hz": report.evaluations.iter().map(|e| e.mean_rate_hz).collect::<Vec<_>>(),
        "opt_scaling_factor": report.best,
        "best_performance": report.best_performance,
        "per_condition_at_best": report.per_condition.iter()
            .map(|(n, ok, all)| json!({"condition": n, "performed": ok, "trials": all}))
            .collect::<Vec<_>>(),
        "trials_simulated": report.trials_run,
        "wall_seconds": report.seconds,
        "seconds_per_trial": report.seconds / report.trials_run.max(1) as f64,
        "constants": {
            "dt_s": c.dt, "hold_steps": c.hold, "tau_m_s": c.tau_m, "tau_ref_s": c.tau_ref,
            "tau_rise_s": c.tau_rise, "v_reset_mv": c.v_reset, "v_peak_mv": c.v_peak,
            "bias_mv": c.bias, "initial_voltage_mv": [c.v_reset, c.v_top],
        },
        "criteria": {
            "window_from_step": window_start(&l.task, c.hold),
            "threshold": THRESHOLD,
            "nogo_below": NOGO_BELOW,
        },
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| out_err(&path)(e.to_string()))?;
    write_atomic(&path, text.as_bytes()).map_err(|e| ConversionError::Output(e.to_string()))?;
    report.written.push(path);
    let net = ConvertedNetwork::<f64>::new(&l.rate, report.best, c)?;
    if let Some(rec) = &o.record {
        record(rec, &net, l, trials)?;
        report.written.push(rec.clone());
    }
    if o.plots {
        report.written.extend(plots(out, &net, l, trials)?);
    }
    Ok(())
}

/// Writes every trial at the network's λ with its spikes into an `.npz`: `u` (trials x
/// inputs x columns), `v0_uniform` (trials x N), `out` (trials x steps), `spikes`
/// (trials x N x steps, 0/1), `condition`, `label`, `lambda`, `noise_sd`, `dt`.
fn record(
    path: &Path,
    net: &ConvertedNetwork<f64>,
    l: &Loaded,
    trials: &[SpikingTrial],
) -> Result<(), ConversionError> {
    let e = out_err(path);
    let n = l.rate.n;
    let n_in = l.rate.n_in;
    let cols = trials.first().map_or(0, |t| t.columns);
    let steps = net.constants().steps(cols);
    let mut u = Array3::<f64>::zeros((trials.len(), n_in, cols));
    let mut v0 = Array2::<f64>::zeros((trials.len(), n));
    let mut out = Array2::<f64>::zeros((trials.len(), steps));
    let mut spikes = Array3::<u8>::zeros((trials.len(), n, steps));
    for (k, t) in trials.iter().enumerate() {
        for c in 0..cols {
            for ch in 0..n_in {
                u[[k, ch, c]] = t.input[c * n_in + ch];
            }
        }
        for (j, x) in t.uniforms(n).into_iter().enumerate() {
            v0[[k, j]] = x;
        }
        let rec = run_trial(net, t, true)?;
        for (i, &x) in rec.out.iter().enumerate() {
            out[[k, i]] = x;
        }
        for &(i, j) in rec.spikes.iter().flatten() {
            spikes[[k, j as usize, i as usize]] = 1;
        }
    }
    let file = std::fs::File::create(path).map_err(|x| e(x.to_string()))?;
    let mut w = NpzWriter::new(file);
    let fail = |x: ndarray_npy::WriteNpzError| e(x.to_string());
    w.add_array("u", &u).map_err(fail)?;
    w.add_array("v0_uniform", &v0).map_err(fail)?;
    w.add_array("out", &out).map_err(fail)?;
    w.add_array("spikes", &spikes).map_err(fail)?;
    let cond = Array1::from_iter(trials.iter().map(|t| t.condition as i64));
    w.add_array("condition", &cond).map_err(fail)?;
    let label = Array1::from_iter(trials.iter().map(|t| t.label));
    w.add_array("label", &label).map_err(fail)?;
    for (key, v) in [
        ("lambda", net.lambda()),
        ("noise_sd", net.constants().noise_sd),
        ("dt", net.constants().dt),
    ] {
        w.add_array(key, &ndarray::arr0(v)).map_err(fail)?;
    }
    w.finish().map_err(fail)?;
    Ok(())
}

/// `spiking_output.png` (the output of one trial per condition) and
/// `spiking_raster_<condition>.png` (its spikes, excitatory units above inhibitory ones).
fn plots(
    out: &Path,
    net: &ConvertedNetwork<f64>,
    l: &Loaded,
    trials: &[SpikingTrial],
) -> Result<Vec<PathBuf>, ConversionError> {
    let spec = crate::tasks::Task::spec(&l.task);
    let dt = net.constants().dt;
    // E units first, then I: their rank in the raster.
    let mut order: Vec<usize> = (0..l.rate.n).filter(|&j| l.exc[j]).collect();
    let n_exc = order.len();
    order.extend((0..l.rate.n).filter(|&j| !l.exc[j]));
    let mut rank = vec![0u32; l.rate.n];
    for (r, &j) in order.iter().enumerate() {
        rank[j] = r as u32;
    }
    let (sizes, classes): (Vec<usize>, Vec<Class>) =
        [(n_exc, Class::E), (l.rate.n - n_exc, Class::I)]
            .into_iter()
            .filter(|(s, _)| *s > 0)
            .unzip();
    let blocks = Blocks::new(sizes.clone(), classes, vec![None; sizes.len()]);
    let mut series = Vec::new();
    let mut written = Vec::new();
    for (k, name) in spec.conditions.iter().enumerate() {
        let Some(t) = trials.iter().find(|t| t.condition == k) else {
            continue;
        };
        let rec = run_trial(net, t, true)?;
        let steps = rec.out.len();
        // At most 4000 points per line.
        let stride = (steps / 4000).max(1);
        series.push((
            format!("{name} (label {})", t.label),
            rec.out
                .iter()
                .enumerate()
                .step_by(stride)
                .map(|(i, &x)| ((i + 1) as f64 * dt, x))
                .collect::<Vec<_>>(),
        ));
        let spikes: Vec<(u32, u32)> = rec
            .spikes
            .iter()
            .flatten()
            .map(|&(i, j)| (i, rank[j as usize]))
            .collect();
        let path = out.join(format!("spiking_raster_{name}.png"));
        crate::spiking::plot::raster(&path, &spikes, &blocks, dt, steps).map_err(out_err(&path))?;
        written.push(path);
    }
    let path = out.join("spiking_output.png");
    crate::plot::lines(
        &path,
        &format!(
            "spiking output at λ = {}, one trial per condition",
            net.lambda()
        ),
        "time (s)",
        "output",
        &series,
    )
    .map_err(out_err(&path))?;
    written.push(path);
    Ok(written)
}
