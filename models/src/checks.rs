//! Checks of model arrays shared by the connectivities and the leaky RNN: lengths,
//! finiteness, signed masks. The errors name the array and the entry.

use neurode_solvers::Real;

use crate::ModelError;

/// Checks that `v` has `expected` entries (`shape` in words for the message).
pub(crate) fn check_len<T>(
    name: &str,
    v: &[T],
    expected: usize,
    shape: &str,
) -> Result<(), ModelError> {
    if v.len() != expected {
        return Err(ModelError::Shape(format!(
            "{name} has {} entries but must be {shape} ({expected} entries)",
            v.len()
        )));
    }
    Ok(())
}

/// Checks that every entry of `v` is finite.
pub(crate) fn check_finite<T: Real>(name: &str, v: &[T]) -> Result<(), ModelError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(ModelError::Shape(format!(
            "{name}[{i}] is {}: every entry must be finite",
            v[i]
        ))),
        None => Ok(()),
    }
}

/// Checks that the signed mask `s` (`rows` rows, column-major) holds only `-1`, `0` and
/// `1`; the error names the entry of `what`.
pub(crate) fn check_signed_mask<T: Real>(
    what: &str,
    s: &[T],
    rows: usize,
) -> Result<(), ModelError> {
    match s
        .iter()
        .position(|&v| v != T::zero() && v.abs() != T::one())
    {
        Some(k) => Err(ModelError::Shape(format!(
            "{what} entry ({}, {}) is {}: every entry must be -1, 0 or 1",
            k % rows.max(1),
            k / rows.max(1),
            s[k]
        ))),
        None => Ok(()),
    }
}
