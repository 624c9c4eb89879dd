//! # neurode-models: neural-circuit vector fields
//!
//! The models of neurode, each a [`VectorField`](neurode_solvers::VectorField) of
//! `neurode-solvers`: the low-rank RNN (Mastrogiuseppe & Ostojic 2018), the multi-region RNN
//! (mRNNTorch), the Kim et al. 2019 rate RNN with Dale's law, and the LIF mean-field
//! equations. They arrive with the issues that build them; today this crate only re-exports
//! the solver's scalar and signal types that every model is written against.

#![warn(missing_docs)]

pub use neurode_solvers::{PiecewiseConstant, Real, VectorField};
