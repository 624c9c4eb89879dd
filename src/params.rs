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

/// A parameter file that does not fit the config's model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ParamFileError {
    /// The file.
    pub path: String,
    /// What does not fit.
    pub message: String,
}

/// `θ` from a parameter file's arrays (as a run writes them: the kind's
/// [`TaskModel::arrays`]); `net` is the model's network with its parameters `current`,
/// whose fixed arrays (drawn from the config's seed) the file must carry.
pub fn from_arrays<T: Real>(
    model: &dyn TaskModel<T>,
    net: &Net<T>,
    current: &[T],
    arrays: &[NamedArray<T>],
    origin: &str,
) -> Result<Vec<T>, ParamFileError> {
    let bad = |m: String| ParamFileError {
        path: origin.to_string(),
        message: m,
    };
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
