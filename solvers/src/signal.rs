//! Piecewise-constant input signals: the shape of every task input.

use crate::scalar::Real;

/// A right-continuous piecewise-constant signal with `n_channels` channels.
///
/// `times` are the jump times (strictly increasing); `values` holds `times.len() + 1`
/// blocks of `n_channels`: block `p` applies on `[times[p-1], times[p])` (block 0 before the
/// first jump, the last block after the last jump). At a jump time the signal already has
/// its new value.
#[derive(Debug, Clone, PartialEq)]
pub struct PiecewiseConstant<T> {
    n_channels: usize,
    times: Vec<T>,
    values: Vec<T>,
}

impl<T: Real> PiecewiseConstant<T> {
    /// Builds a signal; checks sizes, finiteness and ordering.
    pub fn new(n_channels: usize, times: Vec<T>, values: Vec<T>) -> Result<Self, String> {
        if values.len() != n_channels * (times.len() + 1) {
            return Err(format!(
                "a signal with {} jumps and {n_channels} channels needs {} values, got {}",
                times.len(),
                n_channels * (times.len() + 1),
                values.len()
            ));
        }
        if let Some(i) = times.iter().position(|t| !t.is_finite()) {
            return Err(format!(
                "jump time {i} is {}; times must be finite",
                times[i]
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("value {i} is {}; values must be finite", values[i]));
        }
        if let Some(i) = (1..times.len()).find(|&i| times[i] <= times[i - 1]) {
            return Err(format!(
                "jump times must increase strictly: times[{}] = {} >= times[{i}] = {}",
                i - 1,
                times[i - 1],
                times[i]
            ));
        }
        Ok(PiecewiseConstant {
            n_channels,
            times,
            values,
        })
    }

    /// A constant signal.
    pub fn constant(values: Vec<T>) -> Self {
        PiecewiseConstant {
            n_channels: values.len(),
            times: Vec::new(),
            values,
        }
    }

    /// Number of channels.
    pub fn n_channels(&self) -> usize {
        self.n_channels
    }
    /// Jump times.
    pub fn times(&self) -> &[T] {
        &self.times
    }
    /// Index of the piece in force at `t` (the number of jump times `<= t`).
    #[inline]
    pub fn piece(&self, t: T) -> usize {
        self.times.partition_point(|&tj| tj <= t)
    }
    /// Values of piece `p` (one per channel).
    #[inline]
    pub fn piece_values(&self, p: usize) -> &[T] {
        &self.values[p * self.n_channels..(p + 1) * self.n_channels]
    }
    /// Values in force at `t`.
    #[inline]
    pub fn at(&self, t: T) -> &[T] {
        self.piece_values(self.piece(t))
    }
    /// Number of pieces (`times().len() + 1`).
    pub fn n_pieces(&self) -> usize {
        self.times.len() + 1
    }
}
