//! The trained rate network of a conversion, from a Kim run directory or from any `.mat`
//! with the original's variables (so networks trained by the original load too).

use std::path::{Path, PathBuf};

use neurode_models::spiking::converted::{decay_constants, RateNetwork};

use super::ConversionError;
use crate::mat::{read_mat, MatArray, MatFile};
use crate::run_dir::RunDir;
use crate::tasks::{GoNogo, Mante, TaskConfig, Xor};

/// A loaded network: the rate network, its task, its file, and which units are
/// excitatory.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The `.mat` the network came from (where the grid search writes back).
    pub mat: PathBuf,
    /// The run directory, when the source was one.
    pub run_dir: Option<PathBuf>,
    /// The rate network's variables.
    pub rate: RateNetwork,
    /// The task its trials come from.
    pub task: TaskConfig,
    /// Whether each unit is excitatory (from `inh`).
    pub exc: Vec<bool>,
}

/// The variables a conversion reads (the original's `LIF_network_fnc` reads these too;
/// `taus_gaus` is used only when `taus` holds two decay constants, but required, as
/// there).
pub const REQUIRED: [&str; 9] = [
    "N",
    "w",
    "m",
    "som_m",
    "w_in",
    "w_out",
    "taus",
    "taus_gaus",
    "inh",
];

/// Loads the network of `source`: a run directory written by `neurode train` for a Kim
/// config, or a `.mat`. `task` (a config `kind`: `go_nogo`, `xor`, `mante`) overrides the
/// task; a `.mat` without it takes the task from its file name (`Task_<task>_N_...`).
pub fn load(source: &Path, task: Option<&str>) -> Result<Loaded, ConversionError> {
    let given = task.map(task_of_kind).transpose()?;
    if source.is_dir() {
        let (_, cfg) = RunDir::open(source).map_err(|e| ConversionError::NotKim {
            path: source.to_path_buf(),
            why: format!("not a run directory of `neurode train` ({e})"),
        })?;
        if cfg.model.name() != "kim" {
            return Err(ConversionError::NotKim {
                path: source.to_path_buf(),
                why: format!(
                    "a run of a `{}` model; `neurode spiking` converts the Kim et al. rate \
                     RNN (train one with configs/kim_go_nogo.toml, kim_xor.toml or \
                     kim_mante.toml)",
                    cfg.model.name()
                ),
            });
        }
        let mat = the_mat_in(source)?;
        let task = match given {
            Some(t) => t,
            None => cfg.task.clone(),
        };
        let mut l = from_mat(&mat, task)?;
        l.run_dir = Some(source.to_path_buf());
        return Ok(l);
    }
    if !source.exists() {
        return Err(ConversionError::NotKim {
            path: source.to_path_buf(),
            why: "no such file or directory".into(),
        });
    }
    let task = match given {
        Some(t) => t,
        None => task_from_file_name(source).ok_or_else(|| ConversionError::NoTask {
            path: source.to_path_buf(),
        })?,
    };
    from_mat(source, task)
}

/// The task of a config `kind` (or the original's names `go-nogo`, `xor`, `mante`), with
/// its default settings.
pub fn task_of_kind(kind: &str) -> Result<TaskConfig, ConversionError> {
    match kind {
        "go_nogo" | "go-nogo" => Ok(TaskConfig::GoNogo(GoNogo::default())),
        "xor" => Ok(TaskConfig::Xor(Xor::default())),
        "mante" => Ok(TaskConfig::Mante(Mante::default())),
        other => Err(ConversionError::Task {
            value: other.to_string(),
        }),
    }
}

/// The task named in the original's file name `Task_<task>_N_...`.
fn task_from_file_name(path: &Path) -> Option<TaskConfig> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("Task_")?;
    let task = rest.split("_N_").next()?;
    task_of_kind(task).ok()
}

/// The one `Task_*.mat` of a run directory.
fn the_mat_in(dir: &Path) -> Result<PathBuf, ConversionError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ConversionError::NotKim {
        path: dir.to_path_buf(),
        why: format!("cannot list it: {e}"),
    })?;
    let mut mats: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "mat")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("Task_"))
        })
        .collect();
    mats.sort();
    match mats.len() {
        1 => Ok(mats.remove(0)),
        0 => Err(ConversionError::NotKim {
            path: dir.to_path_buf(),
            why: "a Kim run directory without its Task_*.mat (written at the end of \
                  training; finish the run with `neurode train <config> --resume`)"
                .into(),
        }),
        _ => Err(ConversionError::NotKim {
            path: dir.to_path_buf(),
            why: format!(
                "{} Task_*.mat files; name the one to convert: `neurode spiking {}`",
                mats.len(),
                mats[0].display()
            ),
        }),
    }
}

/// A variable of the file, decoded, or the error that names it.
fn var<'a>(m: &'a MatFile, name: &str) -> Result<&'a MatArray, ConversionError> {
    match m.array(name) {
        None => Err(ConversionError::Missing {
            path: m.path().to_path_buf(),
            name: name.to_string(),
        }),
        Some(Err(why)) => Err(ConversionError::Variable {
            path: m.path().to_path_buf(),
            name: name.to_string(),
            why,
        }),
        Some(Ok(a)) => Ok(a),
    }
}

/// Reads the rate network of a `.mat` with the original's variables.
pub fn from_mat(path: &Path, task: TaskConfig) -> Result<Loaded, ConversionError> {
    let m = read_mat(path)?;
    for name in REQUIRED {
        var(&m, name)?;
    }
    let shape_err = |name: &str, why: String| ConversionError::Variable {
        path: path.to_path_buf(),
        name: name.to_string(),
        why,
    };
    let n_var = var(&m, "N")?;
    let n = match n_var.data[..] {
        [x] if x >= 1.0 && x.fract() == 0.0 && x < 1e6 => x as usize,
        _ => {
            return Err(shape_err(
                "N",
                format!("{:?}: expected one whole number ≥ 1", n_var.data),
            ))
        }
    };
    let square = |name: &str| -> Result<&[f64], ConversionError> {
        let a = var(&m, name)?;
        if a.dims != [n, n] {
            return Err(shape_err(
                name,
                format!("dims {:?}, expected {n} x {n} (N = {n})", a.dims),
            ));
        }
        Ok(&a.data)
    };
    let (w, d, som) = (square("w")?, square("m")?, square("som_m")?);
    // W_eff = (w m) .* som_m, column-major inputs, row-major result.
    let mut w_eff = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut s = 0.0;
            for k in 0..n {
                s += w[i + k * n] * d[k + j * n];
            }
            w_eff[i * n + j] = s * som[i + j * n];
        }
    }
    let w_in_var = var(&m, "w_in")?;
    let n_in = match w_in_var.dims[..] {
        [r, c] if r == n && c >= 1 => c,
        [r, c] if r == 1 && c == n => 1,
        _ => {
            return Err(shape_err(
                "w_in",
                format!("dims {:?}, expected N x inputs (N = {n})", w_in_var.dims),
            ))
        }
    };
    let mut w_in = vec![0.0; n * n_in];
    for i in 0..n {
        for k in 0..n_in {
            w_in[i * n_in + k] = w_in_var.data[i + k * n];
        }
    }
    let w_out = var(&m, "w_out")?;
    if w_out.len() != n {
        return Err(shape_err(
            "w_out",
            format!("dims {:?}, expected 1 x N (N = {n})", w_out.dims),
        ));
    }
    let taus = var(&m, "taus")?;
    if !(1..=2).contains(&taus.len()) || taus.data.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(shape_err(
            "taus",
            format!(
                "{:?}: expected [tau_min tau_max] or [tau], in steps of 5 ms, > 0",
                taus.data
            ),
        ));
    }
    let gaus = var(&m, "taus_gaus")?;
    if taus.len() == 2 && gaus.len() != n {
        return Err(shape_err(
            "taus_gaus",
            format!("{} values, expected N = {n}", gaus.len()),
        ));
    }
    let inh = var(&m, "inh")?;
    if inh.len() != n {
        return Err(shape_err(
            "inh",
            format!("{} values, expected N = {n}", inh.len()),
        ));
    }
    let n_task_in = crate::tasks::Task::spec(&task).channels.len();
    if n_task_in != n_in {
        return Err(ConversionError::Variable {
            path: path.to_path_buf(),
            name: "w_in".into(),
            why: format!(
                "{n_in} input columns, but the {} task has {n_task_in} inputs; give the \
                 network's task with --task",
                task.kind()
            ),
        });
    }
    let rate = RateNetwork {
        n,
        n_in,
        w_eff,
        w_in,
        w_out: w_out.data.clone(),
        tau_d: decay_constants(&taus.data, &gaus.data, n),
    };
    rate.check()?;
    Ok(Loaded {
        mat: path.to_path_buf(),
        run_dir: None,
        rate,
        task,
        exc: inh.data.iter().map(|&x| x == 0.0).collect(),
    })
}
