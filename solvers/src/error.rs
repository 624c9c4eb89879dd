//! Errors of `neurode-solvers`.

use crate::scalar::Real;
use crate::solution::{Failure, Solution};

/// Everything that can go wrong in a solve.
///
/// Options are checked before the first step ([`SolveError::InvalidOption`]); a trial that
/// fails during the solve gives [`SolveError::Failed`], which keeps the solution of every
/// trial up to its last good step.
#[derive(Debug, thiserror::Error)]
pub enum SolveError<T: Real> {
    /// An option or input is invalid; nothing was computed.
    #[error("invalid `{option}` = {value}: {reason}")]
    InvalidOption {
        /// The option (builder method or input) at fault.
        option: &'static str,
        /// Its value, formatted.
        value: String,
        /// What is wrong and what to do instead.
        reason: String,
    },
    /// At least one trial stopped before `t1`.
    #[error(
        "{failure} ({n_failed} of {batch} trials failed; the solution up to each trial's last \
         good step is kept in the error: `SolveError::partial`)"
    )]
    Failed {
        /// The failure of the lowest-numbered failed trial.
        failure: Failure,
        /// How many trials failed.
        n_failed: usize,
        /// Batch size.
        batch: usize,
        /// Every trial up to its last good step.
        partial: Box<Solution<T>>,
    },
}

impl<T: Real> SolveError<T> {
    pub(crate) fn invalid(
        option: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        SolveError::InvalidOption {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The partial solution of a failed solve.
    pub fn partial(&self) -> Option<&Solution<T>> {
        match self {
            SolveError::Failed { partial, .. } => Some(partial),
            SolveError::InvalidOption { .. } => None,
        }
    }

    /// Takes the partial solution out of a failed solve.
    pub fn into_partial(self) -> Option<Solution<T>> {
        match self {
            SolveError::Failed { partial, .. } => Some(*partial),
            SolveError::InvalidOption { .. } => None,
        }
    }

    /// The structured failure, for a failed solve.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            SolveError::Failed { failure, .. } => Some(failure),
            SolveError::InvalidOption { .. } => None,
        }
    }
}
