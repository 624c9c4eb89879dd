//! The model kinds of the app: each kind is one module that implements [`ModelKind`] (and
//! the capabilities it has, such as [`TaskModel`]) for its `[model]` table, and one line
//! in the registry ([`ModelConfig`], in `registry.rs`). The commands (`train`, `eval`,
//! `simulate`, `analyze`, `sweep`) and the config are written once over these traits and
//! never match on kinds; the network a kind builds is a [`Net`], one object for every
//! kind (see [`Field`]).
//!
//! # Adding a model kind
//!
//! 1. Write its module (e.g. `src/mykind.rs` with `pub mod mykind;` in `lib.rs`, or
//!    `src/network/mykind.rs`), which takes the traits from [`crate::kind`] (not from
//!    `crate::network`, whose registry uses the kind's module: that would be an import
//!    circle), with its
//!    `[model]` table, a serde struct with `deny_unknown_fields` and
//!    a `Default` (the keys of the config file), and implement for it:
//!    - [`ModelKind`]: `title`, `units`, `validate` (an [`Invalid`] naming the key),
//!      `set` (one line: [`set_by_key`]`(self, key, value)`, which gives every key of the
//!      table as a `--set key=value` override), `memory_estimate`; optionally `draws`,
//!      `check_solver`, `resolve`, `region_units`, `own_command`;
//!    - each capability it has, returning itself from the capability's getter:
//!      ```text
//!      fn task_model<T: Real>(&self) -> Option<&dyn TaskModel<T>> { Some(self) }
//!      ```
//!      with `impl<T: Real> TaskModel<T> for MyConfig { ... }` (build the network, which
//!      parameters train, its arrays, metadata and structure summary; optionally its
//!      flow-field plane and its own export files).
//! 2. Add one line to the `kinds!` call in `src/network/registry.rs`:
//!    ```text
//!    /// My model ([`MyConfig`]).
//!    Mykind(crate::mykind::MyConfig) = "mykind",
//!    ```
//!
//! A kind without [`TaskModel`] (a mean-field model with fixed points and sweeps of its
//! own, no task and no readout) leaves `task_model` at its default `None` and names its
//! command in `own_command`: `neurode train` then answers "model kind `meanfield` cannot
//! be trained; use `neurode meanfield`" ([`KindError::Unsupported`]), and so do `eval`,
//! `simulate` and `analyze`.

mod kim;
mod lowrank;
mod multiregion;
mod registry;

pub use crate::kind::{
    initial_states, noise_signals, set_by_key, Capability, Field, FlowAxes, Invalid, KindError,
    ModelKind, Net, Role, SetError, SolveSpec, Stepping, TaskModel, TrainedRun, TrialDraws,
};
pub use kim::{mat_file_name, mat_variables, KimActivation, KimConfig, KimWeights};
pub use lowrank::{load_lowrank, structure_summary, LowRankConfig};
pub use multiregion::{MultiRegionConfig, RegionActivation};
pub use registry::{kinds_with_key, ModelConfig, KIND_NAMES};
