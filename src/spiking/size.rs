//! The size of a spiking run, in closed form: checked against memory when the config
//! loads, before any per-neuron array exists.

use neurode_models::spiking::ClusterSpec;

use super::config::SpikingConfig;

/// Synapses up to which `outputs.npz` holds `weights_data` (8 bytes each).
pub const MAX_WEIGHT_DATA: usize = 25_000_000;

/// Bytes a run of `cfg` holds at least, in closed form (nothing allocated): the synapses
/// while drawn, the neurons' constants and state, the inputs, the recording and the
/// outputs' copies (spike events not counted: they depend on the rates).
pub fn memory_estimate(cfg: &SpikingConfig, spec: &ClusterSpec) -> f64 {
    let (synapses, synapse_bytes) = neurode_models::spiking::synapses::memory_bound(spec);
    let n = spec.n as f64;
    let nb = 2.0 * spec.clusters as f64 + 2.0;
    let steps = cfg.steps() as f64;
    let rec = &cfg.record;
    let traced = if rec.dense {
        n
    } else {
        rec.neurons.len() as f64
    };
    let bins = (steps * cfg.simulation.delta_t / rec.rate_bin).ceil() + 1.0;
    // Writing outputs.npz: the targets again as i32 and, up to MAX_WEIGHT_DATA, the
    // values as f64.
    let export = synapses
        * if synapses <= MAX_WEIGHT_DATA as f64 {
            12.0
        } else {
            4.0
        };
    synapse_bytes
        + export
        // Per neuron: constants (config, setup, network), state, propagators, scratch.
        + 200.0 * n
        // The stimulus per step, rates per bin and block (counts, rates, rows).
        + 16.0 * steps
        + 24.0 * bins * nb
        // Traces of V and I, and the dense spikes.
        + 16.0 * steps * traced
        + if rec.dense { steps * n } else { 0.0 }
}
