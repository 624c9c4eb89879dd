//! The λ grid search: every trial at every λ, spread over the cores, with a progress bar.

use indicatif::ProgressBar;
use neurode_models::spiking::converted::{
    Constants, ConvertedNetwork, RateNetwork, Record, Workspace,
};
use neurode_models::spiking::SpikingError;

use super::trials::{correct, window_start, SpikingTrial};
use super::ConversionError;
use crate::tasks::TaskConfig;

/// The performance at one λ.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The scaling factor.
    pub lambda: f64,
    /// Fraction of trials performed.
    pub performance: f64,
    /// Per trial: performed or not.
    pub correct: Vec<bool>,
    /// Mean firing rate over neurons and trials (Hz).
    pub mean_rate_hz: f64,
}

/// One trial of `net`, recorded (`spikes`: keep every spike).
pub fn run_trial(
    net: &ConvertedNetwork<f64>,
    t: &SpikingTrial,
    spikes: bool,
) -> Result<Record<f64>, ConversionError> {
    let (mut ws, mut rec) = (Workspace::new(), Record::new(spikes));
    t.run_on(net, &mut ws, &mut rec)?;
    Ok(rec)
}

/// Runs every trial at every λ of `lambdas` on `threads` threads (trials are independent:
/// the results do not depend on the thread count), ticking `progress` once per trial.
pub fn evaluate(
    rate: &RateNetwork,
    task: &TaskConfig,
    lambdas: &[f64],
    trials: &[SpikingTrial],
    c: &Constants,
    threads: usize,
    progress: &ProgressBar,
) -> Result<Vec<Evaluation>, ConversionError> {
    if lambdas.is_empty() {
        return Err(ConversionError::EmptyGrid);
    }
    let nets = lambdas
        .iter()
        .map(|&l| ConvertedNetwork::<f64>::new(rate, l, c))
        .collect::<Result<Vec<_>, _>>()?;
    let from = window_start(task, c.hold);
    // Per trial of each λ (λ-major): performed, and its spikes.
    let results = crate::jobs::run(
        lambdas.len() * trials.len(),
        threads,
        || (Workspace::new(), Record::new(false)),
        |(ws, rec), job| {
            let t = &trials[job % trials.len()];
            t.run_on(&nets[job / trials.len()], ws, rec)?;
            progress.inc(1);
            let spikes: u64 = rec.counts.iter().map(|&c| u64::from(c)).sum();
            Ok((correct(task, t.label, &rec.out, from), spikes))
        },
    )
    .into_iter()
    .collect::<Result<Vec<(bool, u64)>, SpikingError>>()?;
    let seconds: f64 = trials
        .iter()
        .map(|t| c.steps(t.columns) as f64 * c.dt)
        .sum();
    Ok(lambdas
        .iter()
        .enumerate()
        .map(|(l, &lambda)| {
            let r = &results[l * trials.len()..(l + 1) * trials.len()];
            let correct: Vec<bool> = r.iter().map(|x| x.0).collect();
            let spikes: u64 = r.iter().map(|x| x.1).sum();
            Evaluation {
                lambda,
                performance: correct.iter().filter(|&&x| x).count() as f64
                    / trials.len().max(1) as f64,
                correct,
                mean_rate_hz: spikes as f64 / (rate.n as f64 * seconds.max(f64::MIN_POSITIVE)),
            }
        })
        .collect())
}

/// The best λ: the first of the highest performance (the original's `np.argmax`).
pub fn best(evals: &[Evaluation]) -> Option<&Evaluation> {
    evals
        .iter()
        .fold(None, |b: Option<&Evaluation>, e| match b {
            Some(b) if b.performance >= e.performance => Some(b),
            _ => Some(e),
        })
}
