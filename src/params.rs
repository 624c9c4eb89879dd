//! A run's parameter vector `θ`: the field's parameters (its parameter views in order),
//! then the readout weights, then the readout bias. Gathered from a network and its
//! readout, set back into them, and read from a parameter file by the arrays' roles.

use neurode_models::Readout;
use neurode_solvers::{derive_seed, Real};

use crate::io::NamedArray;
use crate::network::{Net, Role, TaskModel};

/// The seed stream of a run's initialisation (the network and readout of `seed`).
pub fn init_seed(seed: u64) -> u64 {
    derive_seed(seed, &[0])
}

/// `θ` of a network and its readout.
pub fn gather<T: Real>(net: &Net<T>, readout: &Readout<T>) -> Vec<T> {
    let nf = net.n_params();
    let n = net.dim();
    let mut theta = vec![T::zero(); nf + n + 1];
    net.params(&mut theta[..nf]);
    theta[nf..nf + n].copy_from_slice(&readout.w);
    theta[nf + n] = readout.b;
    theta
}

/// Sets the readout's part of `θ` (`nf` field parameters first) into `readout`.
pub fn set_readout<T: Real>(theta: &[T], nf: usize, readout: &mut Readout<T>) {
    let n = readout.w.len();
    readout.w.copy_from_slice(&theta[nf..nf + n]);
    readout.b = theta[nf + n];
}

/// What a file of parameters is to a run: the remedy for a bad one differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// A parameter file (`params.safetensors`, `best.safetensors`).
    Parameters,
    /// A checkpoint (`checkpoint.safetensors`, read by `--resume`).
    Checkpoint,
}

impl std::fmt::Display for FileRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileRole::Parameters => "parameter file",
            FileRole::Checkpoint => "checkpoint",
        })
    }
}

/// A parameter file or checkpoint with a non-finite value (NaN, ±inf) in one of its
/// arrays: the run that wrote it diverged, or the file was damaged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{role} {path}: array {array} holds {value} at index {index:?}; the run that wrote it diverged or the file is damaged. {}", remedy(*.role))]
pub struct NonFiniteArray {
    /// What the file is to the run.
    pub role: FileRole,
    /// The file.
    pub path: String,
    /// The array's name.
    pub array: String,
    /// The first bad entry's index (row-major, one per dimension).
    pub index: Vec<usize>,
    /// Its value (as read in the run's precision: a value beyond `f32`'s range reads as
    /// inf in an `f32` run).
    pub value: f64,
}

fn remedy(role: FileRole) -> &'static str {
    match role {
        FileRole::Parameters => "Train the run again (with a smaller solver.dt, larger time constants or a smaller training.learning_rate if it diverged), or, if its checkpoint.safetensors is sound, write the parameters again with `neurode train CONFIG --out DIR --resume`",
        FileRole::Checkpoint => "Resume from an earlier copy of the checkpoint, or start the run again without --resume (--out DIR for a new directory), with a smaller solver.dt, larger time constants or a smaller training.learning_rate if it diverged",
    }
}

/// Refuses `arrays` of the file `path` if any holds a non-finite value, naming the array
/// and its first bad entry: every load of parameters (evaluation, simulation and analysis
/// of a run, `--resume`) checks its file with this.
pub fn check_finite<T: Real>(
    arrays: &[NamedArray<T>],
    role: FileRole,
    path: &str,
) -> Result<(), NonFiniteArray> {
    for a in arrays {
        if let Some(flat) = a.data.iter().position(|v| !v.is_finite()) {
            let mut index = vec![0; a.shape.len().max(1)];
            let mut rest = flat;
            for (d, &len) in a.shape.iter().enumerate().rev() {
                index[d] = rest % len.max(1);
                rest /= len.max(1);
            }
            return Err(NonFiniteArray {
                role,
                path: path.to_string(),
                array: a.name.clone(),
                index,
                value: a.data[flat].as_f64(),
            });
        }
    }
    Ok(())
}

/// A parameter file that cannot be used with the config's model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamFileError {
    /// The file does not fit the config's model.
    #[error("parameter file {path}: {message}")]
    Mismatch {
        /// The file.
        path: String,
        /// What does not fit.
        message: String,
    },
    /// An array holds a non-finite value.
    #[error(transparent)]
    NonFinite(#[from] NonFiniteArray),
}

/// `θ` from a parameter file's arrays (as a run writes them: the kind's
/// [`TaskModel::arrays`]); `net` is the model's network with its parameters `current`,
/// whose fixed arrays (drawn from the config's seed) the file must carry. A non-finite
/// value in any of the file's arrays is refused ([`check_finite`]).
pub fn from_arrays<T: Real>(
    model: &dyn TaskModel<T>,
    net: &Net<T>,
    current: &[T],
    arrays: &[NamedArray<T>],
    origin: &str,
) -> Result<Vec<T>, ParamFileError> {
    let bad = |m: String| ParamFileError::Mismatch {
        path: origin.to_string(),
        message: m,
    };
    check_finite(arrays, FileRole::Parameters, origin)?;
    let want = model.arrays(net, current);
    let mut theta = Vec::with_capacity(current.len());
    for (w, role) in &want {
        if *role == Role::Derived {
            continue;
        }
        let a = arrays
            .iter()
            .find(|a| a.name == w.name)
            .ok_or_else(|| bad(format!("array {} is missing", w.name)))?;
        if a.shape != w.shape {
            return Err(bad(format!(
                "array {} has shape {:?}, the config's model {:?}",
                w.name, a.shape, w.shape
            )));
        }
        if *role == Role::Fixed {
            if a.data != w.data {
                return Err(bad(format!("its fixed array {} is not the one this config's seed draws; evaluate it with the config it was trained with", w.name)));
            }
            continue;
        }
        if a.shape.len() == 2 {
            theta.extend(a.to_col_major());
        } else {
            theta.extend(&a.data);
        }
    }
    if theta.len() != current.len() {
        return Err(bad(format!(
            "its arrays hold {} parameters, the config's model {}",
            theta.len(),
            current.len()
        )));
    }
    Ok(theta)
}
