//! A finished run's exports that are its model kind's own, written through the kind's
//! [`TaskModel::export`](crate::network::TaskModel::export): the Kim et al. (2019) rate
//! RNN's MATLAB file for the original's spiking code (its variables: see
//! [`crate::network::mat_variables`]).

use std::path::{Path, PathBuf};

use neurode_solvers::Real;

use crate::network::KindError;
pub use crate::network::{mat_file_name, mat_variables};
use crate::train::Trainer;

/// Writes the run's kind's own files into `dir`; returns their paths (none for most kinds).
pub fn write_kind_exports<T: Real>(tr: &Trainer<T>, dir: &Path) -> Result<Vec<PathBuf>, KindError> {
    tr.model().export(&tr.trained_run(), dir)
}
