//! What a model draws per trial: its initial states and its per-step noise, seeded per
//! trial (the same draws in training, evaluation, simulation and analysis).

use neurode_solvers::{derive_seed, Normal, PiecewiseConstant, Real};

use crate::tasks::grid;

/// Per-trial draws of a model: the initial state and the per-step noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrialDraws {
    /// SD of the initial state (0: start at 0).
    pub x0_sd: f64,
    /// SD of the noise added per noise step (0: none).
    pub noise_sd: f64,
    /// The noise step (task time units).
    pub noise_dt: f64,
    /// SD of the noise added to each input channel per noise step, before the input
    /// weights (0: none).
    pub input_noise_sd: f64,
}

impl TrialDraws {
    /// No noise and zero initial states.
    pub const NONE: TrialDraws = TrialDraws {
        x0_sd: 0.0,
        noise_sd: 0.0,
        noise_dt: 1.0,
        input_noise_sd: 0.0,
    };
}

/// The initial states of `seeds.len()` trials (`dim x trials`), `None` for zero states.
pub fn initial_states<T: Real>(draws: &TrialDraws, dim: usize, seeds: &[u64]) -> Option<Vec<T>> {
    (draws.x0_sd > 0.0).then(|| {
        seeds
            .iter()
            .flat_map(|&s| {
                let mut rng = Normal::new(derive_seed(s, &[0]));
                (0..dim)
                    .map(move |_| T::from_f64(draws.x0_sd * rng.sample()))
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// The per-step noise of every trial over `[0, t_end]` (one signal of `dim` channels per
/// trial, `noise_sd · ξ / noise_dt` on each step `[k dt, (k + 1) dt)`, so that a step of
/// `noise_dt` adds `noise_sd · ξ`), empty without noise.
///
/// With `input_noise_sd > 0`, each step also adds `B ξ_u · input_noise_sd` (`B` =
/// `b_in`, `dim x n_in` column-major; `ξ_u` one standard normal per input channel, from a
/// stream of its own): noise on the inputs before the input weights, as mRNNTorch adds it.
pub fn noise_signals<T: Real>(
    draws: &TrialDraws,
    dim: usize,
    t_end: f64,
    seeds: &[u64],
    b_in: &[T],
) -> Vec<PiecewiseConstant<T>> {
    let input_noise = draws.input_noise_sd > 0.0 && dim > 0 && !b_in.is_empty();
    if draws.noise_sd <= 0.0 && !input_noise {
        return Vec::new();
    }
    let steps = (t_end / draws.noise_dt - 1e-9).ceil().max(1.0) as u64;
    let times: Vec<T> = grid(draws.noise_dt, 1, steps - 1)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let scale = draws.noise_sd / draws.noise_dt;
    seeds
        .iter()
        .map(|&s| {
            let mut rng = Normal::new(derive_seed(s, &[1]));
            // Drawn in blocks through a small buffer: no second trial-sized array.
            let len = dim * steps as usize;
            let mut values = Vec::with_capacity(len);
            let mut xi = [0.0; 256];
            if draws.noise_sd > 0.0 {
                while values.len() < len {
                    let k = (len - values.len()).min(xi.len());
                    rng.fill_standard(&mut xi[..k]);
                    values.extend(xi[..k].iter().map(|&v| T::from_f64(scale * v)));
                }
            } else {
                values.resize(len, T::zero());
            }
            if input_noise {
                let n_in = b_in.len() / dim;
                let mut rin = Normal::new(derive_seed(s, &[2]));
                let mut u = vec![0.0; n_in];
                let iscale = draws.input_noise_sd / draws.noise_dt;
                for step in values.chunks_exact_mut(dim) {
                    rin.fill_standard(&mut u);
                    for (c, &uc) in u.iter().enumerate() {
                        let a = iscale * uc;
                        for (v, &b) in step.iter_mut().zip(&b_in[c * dim..(c + 1) * dim]) {
                            *v += T::from_f64(a * b.as_f64());
                        }
                    }
                }
            }
            PiecewiseConstant::new(dim, times.clone(), values)
                .expect("a valid signal by construction")
        })
        .collect()
}
