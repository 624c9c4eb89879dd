//! The mean-field reduction of a block network: one population per non-empty block, with
//! the expected in-degrees, the block weights, the external input and the neurons'
//! constants, as [`MeanFieldParams`] of [`crate::meanfield`].

use crate::meanfield::{MeanFieldError, MeanFieldParams, Param};

use super::blocks::{pair_index, Blocks, Class, MaskKind};
use super::network::Setup;
use super::neuron::dead_time;
use super::synapses::fixed_in_degree;

/// The reduction of a network (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Reduction {
    /// The mean field, one population per entry of `blocks`.
    pub params: MeanFieldParams,
    /// The network block of each population (empty blocks have no population).
    pub blocks: Vec<usize>,
    /// The refractory period the mean field uses: the network's dead time (`τ_ref`, or
    /// `τ_ref + dt` with the original's count).
    pub tau_ref: Vec<f64>,
}

/// The mean-field populations of a network: block `a` takes `C[a][b]` = the expected
/// number of synapses onto one of its neurons from block `b` (less the autapse inside a
/// block), `J[a][b]` = the block weight, the external input of its class, and the mean of
/// its neurons' constants.
pub fn reduce(
    blocks: &Blocks,
    weights: &[f64],
    probs: &[f64],
    mask: MaskKind,
    setup: &Setup,
) -> Result<Reduction, MeanFieldError> {
    let nb = blocks.len();
    let keep: Vec<usize> = (0..nb).filter(|&b| blocks.size(b) > 0).collect();
    let n = keep.len();
    let off = blocks.offsets();
    let mean_of = |b: usize, f: &dyn Fn(usize) -> f64| {
        let r = off[b]..off[b + 1];
        let len = r.len() as f64;
        r.map(f).sum::<f64>() / len
    };
    let mut c = vec![0.0; n * n];
    let mut j = vec![0.0; n * n];
    for (x, &a) in keep.iter().enumerate() {
        for (y, &b) in keep.iter().enumerate() {
            let m = blocks.size(b) as f64;
            let p = probs[a * nb + b];
            let same = if a == b { 1.0 } else { 0.0 };
            c[x * n + y] = match mask {
                MaskKind::Bernoulli => p * (m - same),
                // ⌊p m⌋ drawn, one of them the neuron itself with probability 1/m.
                MaskKind::FixedInDegree => {
                    let k = fixed_in_degree(p, blocks.size(b)) as f64;
                    k - same * k / m
                }
            };
            j[x * n + y] = weights[a * nb + b];
        }
    }
    let ext = &setup.external;
    // Per population: one external channel with the mean `Σ j c ν` and the variance
    // `Σ j² c ν` (per τm) of both source classes: the active source's own (j, c, ν) when
    // only one is active (the templates), else `j = S/M`, `c = 1`, `ν = M²/S`.
    let mut j_ext = vec![0.0; n];
    let mut c_ext = vec![0.0; n];
    let mut nu_ext = vec![0.0; n];
    for (x, &a) in keep.iter().enumerate() {
        let post = blocks.class(a);
        let ke = pair_index(Class::E, post);
        let ki = pair_index(Class::I, post);
        let active = |k: usize| ext.c[k] * ext.nu[k] > 0.0 && ext.j[k] != 0.0;
        let k = match (active(ke), active(ki)) {
            (true, false) | (false, false) => Some(ke),
            (false, true) => Some(ki),
            (true, true) => None,
        };
        if let Some(k) = k {
            (j_ext[x], c_ext[x], nu_ext[x]) = (ext.j[k], ext.c[k], ext.nu[k]);
            continue;
        }
        let m: f64 = [ke, ki]
            .iter()
            .map(|&k| ext.j[k] * ext.c[k] * ext.nu[k])
            .sum();
        let s: f64 = [ke, ki]
            .iter()
            .map(|&k| ext.j[k].powi(2) * ext.c[k] * ext.nu[k])
            .sum();
        if m == 0.0 {
            return Err(MeanFieldError::Invalid {
                key: "architecture.network.j_ext".into(),
                value: 0.0,
                requirement: "the external input's mean (Σ j_ext c_ext nu_ext_baseline over \
                              the two source classes) is 0 while its variance is not: the mean \
                              field has one external channel per population, which cannot \
                              carry that; make one source class silent (c_ext or \
                              nu_ext_baseline 0) or unbalance them"
                    .into(),
            });
        }
        (j_ext[x], c_ext[x], nu_ext[x]) = (s / m, 1.0, m * m / s);
    }
    let per =
        |f: &dyn Fn(usize) -> f64| -> Vec<f64> { keep.iter().map(|&b| mean_of(b, f)).collect() };
    let nr = &setup.neurons;
    let tau_m = per(&|i| nr[i].tau_m);
    let tau_s = per(&|i| nr[i].tau_s);
    let theta = per(&|i| nr[i].threshold);
    let reset = per(&|i| nr[i].reset);
    let tau_ref = per(&|i| dead_time(nr[i].tau_ref, setup.dt, setup.dead_time));
    let params = MeanFieldParams::new(n, |p| {
        Some(match p {
            Param::C => c.clone(),
            Param::J => j.clone(),
            Param::JExt => j_ext.clone(),
            Param::CExt => c_ext.clone(),
            Param::NuExt => nu_ext.clone(),
            Param::TauM => tau_m.clone(),
            Param::TauS => tau_s.clone(),
            Param::Threshold => theta.clone(),
            Param::Reset => reset.clone(),
            Param::TauRef => tau_ref.clone(),
            Param::Tau => return None,
        })
    })?;
    Ok(Reduction {
        params,
        blocks: keep,
        tau_ref,
    })
}
