//! Piecewise-constant input signals: the shape of every task input.

use crate::backend::{Backend, Cpu};
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

    /// The signal seen through input weights `b` (`n x n_channels`, column-major):
    /// `b u_p` for every piece `p`, as `n x n_pieces` column-major. Models cache this so
    /// that a right-hand side adds the drive of the piece in force with one copy.
    ///
    /// # Errors
    /// If `b.len()` is not `n * n_channels`.
    pub fn project(&self, b: &[T], n: usize) -> Result<Vec<T>, String> {
        if b.len() != n * self.n_channels {
            return Err(format!(
                "input weights of length {} do not fit {n} units and {} channels",
                b.len(),
                self.n_channels
            ));
        }
        let mut d = vec![T::zero(); n * self.n_pieces()];
        if n == 0 {
            return Ok(d);
        }
        for (p, dp) in d.chunks_exact_mut(n).enumerate() {
            for (ch, &v) in self.piece_values(p).iter().enumerate() {
                if v != T::zero() {
                    Cpu.axpy(v, &b[ch * n..(ch + 1) * n], dp);
                }
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::PiecewiseConstant;

    #[test]
    fn project_gives_the_drive_of_every_piece() {
        // 3 units, 2 channels; pieces u = (0, 0), (1, 0), (2, -1).
        let u =
            PiecewiseConstant::new(2, vec![1.0, 2.0], vec![0.0, 0.0, 1.0, 0.0, 2.0, -1.0]).unwrap();
        let b = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]; // column-major 3 x 2
        let d = u.project(&b, 3).unwrap();
        assert_eq!(d, vec![0.0, 0.0, 0.0, 1.0, 2.0, 3.0, -8.0, -16.0, -24.0]);
        let err = u.project(&b[..5], 3).unwrap_err();
        assert!(err.contains("length 5"), "{err}");
        assert_eq!(u.project(&[], 0).unwrap(), Vec::<f64>::new());
    }
}
