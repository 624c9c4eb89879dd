//! The spiking network's step allocates nothing (a counting allocator around 2,000 steps of
//! a clustered network with recurrent spikes, Poisson input and a stimulus).

use neurode_models::spiking::{
    ClusterSpec, DeadTime, External, LifNetwork, MaskKind, Mechanism, NeuronParams, Setup, Shape,
    Stimulus, Synapses,
};
use neurode_solvers::testing::CountingAllocator;
use neurode_solvers::Stream;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

#[test]
fn the_spiking_step_allocates_nothing() {
    let spec = ClusterSpec {
        n: 400,
        n_exc: 320,
        bg_exc: 32,
        bg_inh: 8,
        clusters: 4,
        probs: [0.2, 0.5, 0.5, 0.5],
        j_baseline: [0.63, 0.63, -1.9, -3.8],
        j_potentiated: [2.0, 1.5, 1.5, 1.5],
        mask: MaskKind::FixedInDegree,
    };
    let blocks = spec.blocks();
    let (w, p) = spec.block_tables(&blocks);
    let syn = Synapses::<f64>::draw(&blocks, &w, &p, spec.mask, &mut Stream::new(1)).unwrap();
    let neuron = |theta| NeuronParams {
        tau_m: 0.02,
        tau_s: 0.005,
        tau_ref: 0.005,
        threshold: theta,
        reset: 0.0,
    };
    let setup = Setup {
        dt: 1e-3,
        n_exc: 320,
        neurons: (0..400)
            .map(|i| neuron(if i < 320 { 1.5 } else { 0.75 }))
            .collect(),
        mechanism: Mechanism::Exact,
        dead_time: DeadTime::TauRef,
        external: External {
            c: [320.0, 320.0, 10.0, 10.0],
            nu: [7.0, 7.0, 5.0, 5.0],
            j: [2.3, 2.3, -1.0, -1.0],
        },
        stimulus: Some((
            Stimulus {
                shape: Shape::Box,
                amplitude: 20.0,
                onsets: vec![0.5, 1.0],
                duration: 0.2,
            },
            (0..80).collect(),
        )),
        seed: 3,
    };
    let mut net = LifNetwork::new(&setup, syn).unwrap();
    net.step();
    let before = CountingAllocator::thread_allocs();
    let mut spikes = 0;
    for _ in 0..2000 {
        spikes += net.step().len();
    }
    assert_eq!(
        CountingAllocator::thread_allocs() - before,
        0,
        "allocated in the loop"
    );
    assert!(spikes > 1000, "{spikes} spikes: the loop was not exercised");
}
