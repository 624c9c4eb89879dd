//! The network of a run, built from its config and (for a trained run) loaded from its
//! parameter file, without a trainer: what `neurode simulate` and `neurode analyze` run.

use std::path::Path;

use neurode_models::Readout;
use neurode_solvers::Real;

use crate::config::TrainConfig;
use crate::io::read_safetensors;
use crate::network::{Capability, Net};
use crate::params;
use crate::tasks::Task;
use crate::train::TrainError;

/// A run's network and readout, their parameters current.
#[derive(Debug, Clone)]
pub struct RunNetwork<T: Real> {
    /// The network.
    pub net: Net<T>,
    /// The readout.
    pub readout: Readout<T>,
}

impl<T: Real> RunNetwork<T> {
    /// The network of `cfg`'s seed, with the parameters of the parameter file `params`
    /// where one is given (a run's `params.safetensors`); `capability` is what the caller
    /// will do with it (the error of a kind that cannot).
    pub fn load(
        cfg: &TrainConfig,
        capability: Capability,
        params: Option<&Path>,
    ) -> Result<Self, TrainError> {
        let model = cfg.model.require::<T>(capability)?;
        let n_in = cfg.task.spec().channels.len();
        let (mut net, mut readout) = model.build(params::init_seed(cfg.seed), n_in)?;
        if let Some(path) = params {
            let (arrays, _) = read_safetensors::<T>(path)?;
            let current = params::gather(&net, &readout);
            let theta =
                params::from_arrays(model, &net, &current, &arrays, &path.display().to_string())?;
            let nf = net.n_params();
            net.set_params(&theta[..nf]);
            params::set_readout(&theta, nf, &mut readout);
        }
        Ok(RunNetwork { net, readout })
    }
}
