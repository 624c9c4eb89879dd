//! # The clustered spiking LIF network (VectorialNeuroModulators)
//!
//! Current-based leaky integrate-and-fire neurons with exponential synapses, in clustered
//! E/I architectures, simulated with a fixed step. Not a vector field for the adaptive
//! stepper: spikes and resets are discrete events at step ends, as in the original
//! `LIFNet`.
//!
//! - **Neurons** ([`neuron`]): per-neuron `τm`, `τs`, `τ_ref`, threshold and reset; the exact
//!   propagators (with the correct `τs = τm` limit) or Euler; the original's step order
//!   (integrate, hold refractory neurons at reset, threshold and reset, then the step's
//!   synaptic input, which acts from the next step). The dead time after a spike is
//!   `τ_ref` ([`DeadTime::TauRef`]); the original's `τ_ref + dt` is
//!   [`DeadTime::Original`].
//! - **Architecture** ([`blocks`]): `Q` E clusters, the E background, `Q` I clusters, the I
//!   background; potentiated weights inside a cluster pair and depressed ones elsewhere.
//! - **Synapses** ([`synapses`]): drawn per block pair (Bernoulli or a fixed in-degree, no
//!   autapses), stored by presynaptic neuron with one weight per block pair: a spike adds
//!   one column.
//! - **Inputs** ([`input`]): external Poisson counts per step, drawn in place; box, ramp
//!   and difference-of-exponentials stimuli at one or more onsets.
//! - **The mean field of the network** ([`reduction`]): one population per block, for
//!   [`crate::meanfield`].
//! - **A trained rate network converted to LIF neurons** ([`converted`]): Kim, Li &
//!   Sejnowski's (2019) mapping, with double-exponential synapses and a weight per synapse.
//!
//! ```
//! use neurode_models::spiking::{ClusterSpec, DeadTime, External, LifNetwork, MaskKind,
//!     Mechanism, NeuronParams, Setup, Synapses};
//! use neurode_solvers::Stream;
//!
//! // A small clustered network: 400 neurons, 4 clusters, 1 s at dt = 1 ms.
//! let spec = ClusterSpec {
//!     n: 400, n_exc: 320, bg_exc: 32, bg_inh: 8, clusters: 4,
//!     probs: [0.2, 0.5, 0.5, 0.5],
//!     j_baseline: [0.63, 0.63, -1.9, -3.8],
//!     j_potentiated: [2.0, 1.5, 1.5, 1.5],
//!     mask: MaskKind::Bernoulli,
//! };
//! spec.check()?;
//! let blocks = spec.blocks();
//! let (w, p) = spec.block_tables(&blocks);
//! let synapses = Synapses::<f64>::draw(&blocks, &w, &p, spec.mask, &mut Stream::new(1))?;
//! let neuron = |theta| NeuronParams { tau_m: 0.02, tau_s: 0.005, tau_ref: 0.005,
//!     threshold: theta, reset: 0.0 };
//! let setup = Setup {
//!     dt: 1e-3,
//!     n_exc: 320,
//!     neurons: (0..400).map(|i| neuron(if i < 320 { 1.5 } else { 0.75 })).collect(),
//!     mechanism: Mechanism::Exact,
//!     dead_time: DeadTime::TauRef,
//!     external: External { c: [320.0, 320.0, 0.0, 0.0], nu: [7.0, 7.0, 0.0, 0.0],
//!                          j: [2.3, 2.3, 0.0, 0.0] },
//!     stimulus: None,
//!     seed: 2,
//! };
//! let mut net = LifNetwork::new(&setup, synapses)?;
//! let mut spikes = 0;
//! for _ in 0..1000 {
//!     spikes += net.step().len();
//! }
//! assert!(spikes > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod blocks;
pub mod converted;
pub mod input;
pub mod network;
pub mod neuron;
pub mod reduction;
pub mod synapses;

pub use blocks::{depression, Blocks, Class, ClusterSpec, MaskKind};
pub use input::{diff_exp_normaliser, Poisson, Shape, Stimulus};
pub use network::{check_neuron, propagate, External, LifNetwork, Population, Setup};
pub use neuron::{
    dead_time, refractory_steps, steps_in, DeadTime, Mechanism, NeuronParams, Propagators,
};
pub use reduction::{reduce, Reduction};
pub use synapses::{fixed_in_degree, Synapses};

/// Errors of the spiking network's settings: what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpikingError {
    /// A setting is out of range.
    #[error("`{key}` = {value}: {requirement}")]
    Invalid {
        /// The setting (`architecture.clusters.connectivity_fraction_probs[2]`, …).
        key: String,
        /// Its value.
        value: f64,
        /// What is required.
        requirement: String,
    },
    /// A setting that is a word (or a combination) does not fit.
    #[error("`{key}` = {value}: {expected}")]
    Choice {
        /// The setting.
        key: String,
        /// Its value, as written.
        value: String,
        /// What it may be.
        expected: String,
    },
    /// The clustered neurons of a class do not split into the clusters.
    #[error(
        "n_clusters = {clusters}: the {clustered} clustered {class} neurons ({key} minus its \
         background) do not split into {clusters} clusters of equal size; pick a cluster \
         count that divides {clustered}, or change the background size so that it does"
    )]
    Clusters {
        /// `Q`.
        clusters: usize,
        /// `excitatory` or `inhibitory`.
        class: &'static str,
        /// Clustered neurons of the class.
        clustered: usize,
        /// How the class's size is given (`n_excitatory`, `n_neurons − n_excitatory`).
        key: &'static str,
    },
    /// An array has the wrong length.
    #[error("`{key}` has {got} entries; expected {expected}")]
    Shape {
        /// The array.
        key: String,
        /// Its length.
        got: usize,
        /// What was expected.
        expected: String,
    },
    /// A neuron has more synapses than an index of its run holds.
    #[error("a neuron has {per_neuron} outgoing synapses, more than 2^32; use a smaller network")]
    TooManySynapses {
        /// Its synapses.
        per_neuron: usize,
    },
}
