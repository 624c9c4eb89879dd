//! The MATLAB export of a trained Kim et al. (2019) rate RNN: the variables the original
//! TensorFlow code saves and its spiking code (`LIF_network_fnc.m`, the λ grid search)
//! reads, under the original's names and file name, in MATLAB's column-major layout.
//!
//! `Task_<task>_N_<N>_Taus_<min>_<max>_Act_<act>_<YYYY_MM_DD_HHMMSS>.mat` (`_Tau_<a>_` for
//! one fixed time constant) holds:
//!
//! | variable | shape | what |
//! |---|---|---|
//! | `w`, `w0` | N x N | trained / initial recurrent weights, `relu`'d (as the original saves them; `W_eff = (w * m) .* som_m`) |
//! | `m` | N x N | `D`: +1 (excitatory) or -1 (inhibitory) on the diagonal |
//! | `som_m` | N x N | the SOM mask (0 where a SOM unit would receive inhibitory input) |
//! | `w_in`, `w_in0` | N x inputs | input weights (fixed in training: equal) |
//! | `w_out` | 1 x N | readout weights |
//! | `b_out` | 1 x 1 | readout bias |
//! | `taus` | 1 x 2 or 1 x 1 | `[tau_min tau_max]` or `[tau]`, in steps of 5 ms |
//! | `taus_gaus`, `taus_gaus0` | N x 1 | trained / initial `g` of `tau = sigmoid(g) (max - min) + min` |
//! | `exc`, `inh` | N x 1 | logical: excitatory / inhibitory units |
//! | `N`, `som_N` | 1 x 1 int64 | units, SOM units (as drawn: the first `som_N` inhibitory units, fewer where fewer are inhibitory); integers, as the original saves them (its Python rate evaluator calls `np.zeros((N, T))`) |
//! | `losses` | 1 x trials | the training loss of every trial |
//! | `eval_perf_mean`, `eval_loss_mean` | 1 x evaluations | accuracy and loss of each evaluation |
//! | `tr` | 1 x 1 | trials trained |
//! | `activation` | char | `sigmoid`, `clipped_relu` or `softplus` |

use std::path::{Path, PathBuf};

use neurode_models::KimRateRnn;
use neurode_solvers::Real;

use super::config::KimConfig;
use crate::kind::TrainedRun;
use crate::mat::{write_mat, MatError, MatValue};
use crate::tasks::TaskConfig;

/// Writes the MATLAB export of a Kim et al. rate RNN run into `dir`; returns its path.
pub(super) fn write_mat_export<T: Real>(
    k: &KimConfig,
    rnn: &KimRateRnn<T>,
    run: &TrainedRun<'_, T>,
    dir: &Path,
) -> Result<PathBuf, MatError> {
    let path = dir.join(mat_file_name(k, run.task, crate::mat::utc_civil()));
    write_mat(&path, &mat_variables(k, rnn, run))?;
    Ok(path)
}

/// The original's file name: `Task_<task>_N_<N>_Taus_<min>_<max>_Act_<act>_<stamp>.mat`.
pub fn mat_file_name(k: &KimConfig, task: &TaskConfig, t: [u64; 7]) -> String {
    let task = match task {
        TaskConfig::GoNogo(_) => "go-nogo",
        other => other.kind(),
    };
    let num = |v: f64| {
        if v.fract() == 0.0 {
            format!("{}", v as i64)
        } else {
            format!("{v}")
        }
    };
    let taus = match k.taus[..] {
        [a, b] => format!("Taus_{}_{}", num(a), num(b)),
        _ => format!("Tau_{}", num(k.taus.first().copied().unwrap_or(0.0))),
    };
    format!(
        "Task_{task}_N_{}_{taus}_Act_{}_{:04}_{:02}_{:02}_{:02}{:02}{:02}.mat",
        k.n,
        k.act.name(),
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
        t[5]
    )
}

/// The variables of the export: the table in `src/network/kim/export.rs`.
pub fn mat_variables<T: Real>(
    k: &KimConfig,
    rnn: &KimRateRnn<T>,
    run: &TrainedRun<'_, T>,
) -> Vec<(String, MatValue)> {
    let n = k.n;
    let n_in = rnn.n_in();
    let f = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<f64>>();
    let relu = |v: &[T]| v.iter().map(|x| x.as_f64().max(0.0)).collect::<Vec<f64>>();
    let (theta, theta0) = (run.theta, run.theta0);
    let nw = n * n;
    let w_in = &theta[nw..nw + n * n_in];
    let w_in0 = &theta0[nw..nw + n * n_in];
    let trained_taus = rnn.time_constants_trained();
    let after_in = nw + n * n_in;
    let (g, g0) = if trained_taus {
        (
            f(&theta[after_in..after_in + n]),
            f(&theta0[after_in..after_in + n]),
        )
    } else {
        (vec![0.0; n], vec![0.0; n])
    };
    let ro = after_in + if trained_taus { n } else { 0 };
    let conn = rnn.connectivity();
    let inh = conn.inhibitory();
    let mut m = vec![0.0; n * n];
    let mut som_m = vec![0.0; n * n];
    for j in 0..n {
        m[j + j * n] = conn.signs()[j].as_f64();
        for i in 0..n {
            som_m[i + j * n] = conn.mask(i, j).as_f64();
        }
    }
    let w = if k.apply_dale {
        relu(&theta[..nw])
    } else {
        f(&theta[..nw])
    };
    let w0 = if k.apply_dale {
        relu(&theta0[..nw])
    } else {
        f(&theta0[..nw])
    };
    let metrics: Vec<_> = run
        .metrics
        .iter()
        .filter(|r| r.val_accuracy.is_some())
        .collect();
    let col = |name: &str, v: MatValue| (name.to_string(), v);
    vec![
        col("w", MatValue::matrix_col_major(n, n, w)),
        col("w0", MatValue::matrix_col_major(n, n, w0)),
        col("m", MatValue::matrix_col_major(n, n, m)),
        col("som_m", MatValue::matrix_col_major(n, n, som_m)),
        col("w_in", MatValue::matrix_col_major(n, n_in, f(w_in))),
        col("w_in0", MatValue::matrix_col_major(n, n_in, f(w_in0))),
        col("w_out", MatValue::row(f(&theta[ro..ro + n]))),
        col("b_out", MatValue::scalar(theta[ro + n].as_f64())),
        col("taus", MatValue::row(k.taus.clone())),
        col("taus_gaus", MatValue::column(g)),
        col("taus_gaus0", MatValue::column(g0)),
        col(
            "exc",
            MatValue::logical_column(inh.iter().map(|&i| !i).collect()),
        ),
        col("inh", MatValue::logical_column(inh)),
        col("N", MatValue::int_scalar(n as i64)),
        col(
            "som_N",
            MatValue::int_scalar(conn.som().iter().filter(|&&s| s).count() as i64),
        ),
        col("losses", MatValue::row(run.losses.to_vec())),
        col(
            "eval_perf_mean",
            MatValue::row(metrics.iter().filter_map(|r| r.val_accuracy).collect()),
        ),
        col(
            "eval_loss_mean",
            MatValue::row(metrics.iter().filter_map(|r| r.val_loss).collect()),
        ),
        col("tr", MatValue::scalar(run.trials as f64)),
        col("activation", MatValue::text(k.act.name())),
    ]
}
