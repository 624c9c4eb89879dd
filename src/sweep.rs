//! `neurode sweep`: train one config under several seeds and report, per seed, how many
//! training trials it took to meet the config's stop rule (the paper's "trials to
//! criterion"), with the last evaluation's loss and accuracy. Seeds run side by side on
//! the available cores (each training is single-threaded at batch 1); results do not
//! depend on how many run at once.

use std::time::Instant;

use neurode_solvers::Real;
use serde::Serialize;

use crate::config::{Precision, TrainConfig};
use crate::train::{TrainError, Trainer};

/// One seed's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Training trials when the stop rule was met, `None` if it never was.
    pub trials_to_criterion: Option<usize>,
    /// Training trials run.
    pub trials: usize,
    /// Loss of the last evaluation.
    pub eval_loss: Option<f64>,
    /// Accuracy of the last evaluation.
    pub eval_accuracy: Option<f64>,
    /// Wall time of this seed (s).
    pub wall_seconds: f64,
    /// The error that ended the run early, if one did.
    pub error: Option<String>,
}

/// Iterations of a whole sweep of `cfg` over `seeds` seeds: what [`sweep`]'s progress
/// counts add up to.
pub fn total_iterations(cfg: &TrainConfig, seeds: usize) -> u64 {
    cfg.iterations() as u64 * seeds as u64
}

/// Trains `cfg` under each of `seeds` on up to `parallel` threads; calls `on_progress`
/// with each count of iterations done (1 per training step, and a seed's remaining
/// iterations when the stop rule or an error ends it early; they add up to
/// [`total_iterations`]) and `on_done` as each seed finishes.
pub fn sweep(
    cfg: &TrainConfig,
    seeds: &[u64],
    parallel: usize,
    on_progress: &(dyn Fn(u64) + Sync),
    on_done: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    let at_once = parallel.clamp(1, seeds.len().max(1));
    let mut r = crate::jobs::run(
        seeds.len(),
        at_once,
        || (),
        |_, i| {
            let mut c = cfg.clone();
            c.seed = seeds[i];
            // Seeds side by side already keep the cores busy.
            c.training.prefetch &= at_once == 1;
            let r = match c.precision {
                Precision::F32 => one::<f32>(&c, on_progress),
                Precision::F64 => one::<f64>(&c, on_progress),
            };
            on_done(&r);
            r
        },
    );
    r.sort_by_key(|r| r.seed);
    r
}

fn one<T: Real>(cfg: &TrainConfig, on_progress: &(dyn Fn(u64) + Sync)) -> SeedResult {
    let start = Instant::now();
    let total = cfg.iterations() as u64;
    let mut done = 0u64;
    let mut run = || -> Result<Trainer<T>, TrainError> {
        let mut tr = Trainer::<T>::new(cfg)?;
        while !tr.finished() {
            tr.step()?;
            done += 1;
            on_progress(1);
        }
        Ok(tr)
    };
    let bs = cfg.training.batch_size;
    let result = run();
    on_progress(total.saturating_sub(done));
    match result {
        Ok(tr) => {
            let last = tr.metrics().iter().rev().find(|m| m.val_accuracy.is_some());
            SeedResult {
                seed: cfg.seed,
                trials_to_criterion: tr.stopped_at().map(|it| it * bs),
                trials: tr.iteration() * bs,
                eval_loss: last.and_then(|m| m.val_loss),
                eval_accuracy: last.and_then(|m| m.val_accuracy),
                wall_seconds: start.elapsed().as_secs_f64(),
                error: None,
            }
        }
        Err(e) => SeedResult {
            seed: cfg.seed,
            trials_to_criterion: None,
            trials: 0,
            eval_loss: None,
            eval_accuracy: None,
            wall_seconds: start.elapsed().as_secs_f64(),
            error: Some(e.to_string()),
        },
    }
}

/// The sweep as a table (Markdown), with the count of seeds that met the criterion.
pub fn table(name: &str, results: &[SeedResult]) -> String {
    let mut s = format!(
        "{name}\n\n| seed | trials to criterion | trials run | last eval loss | last eval accuracy | wall (s) |\n|---|---|---|---|---|---|\n"
    );
    let opt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            r.seed,
            r.trials_to_criterion.map_or_else(
                || r.error.clone().unwrap_or_else(|| "not met".into()),
                |t| t.to_string()
            ),
            r.trials,
            opt(r.eval_loss, 3),
            opt(r.eval_accuracy, 2),
            r.wall_seconds
        ));
    }
    let met = results
        .iter()
        .filter(|r| r.trials_to_criterion.is_some())
        .count();
    s.push_str(&format!(
        "\n{met} of {} seeds met the stop rule\n",
        results.len()
    ));
    s
}
