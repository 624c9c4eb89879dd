//! Drawing the next training batch (its trials and their noise) on a helper thread while
//! the current batch trains.
//!
//! A training batch depends only on the run's seed and the iteration (never on the
//! parameters), so a batch drawn ahead has the same bits as one drawn in place. At batch 1
//! drawing the noise is about a tenth of a Kim step (40,000 normals), and the second core
//! is otherwise idle.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use neurode_solvers::{PiecewiseConstant, Real};

use crate::config::TrainConfig;
use crate::network::{noise_signals, TrialDraws};
use crate::tasks::{TaskConfig, TrialBatch};

/// Iteration `it`'s training batch (`bs` trials from the stream `stream`).
pub(super) fn training_batch<T: Real>(
    task: &TaskConfig,
    stream: u64,
    it: usize,
    bs: usize,
) -> TrialBatch<T> {
    use crate::tasks::Task;
    task.batch(stream, (it * bs) as u64, bs)
}

/// A batch drawn ahead: its iteration, trials and per-trial noise.
pub(super) struct Drawn<T> {
    iteration: usize,
    pub(super) trials: TrialBatch<T>,
    pub(super) noise: Vec<PiecewiseConstant<T>>,
}

/// The helper thread and the iteration it was last asked for.
pub(super) struct Prefetch<T: Real> {
    ask: Option<Sender<usize>>,
    get: Receiver<Drawn<T>>,
    asked: Option<usize>,
    helper: Option<JoinHandle<()>>,
}

impl<T: Real> Prefetch<T> {
    /// A helper for `cfg`'s training batches (stream `stream`, networks of `dim` units), or
    /// `None` where it would not help or could change the results: prefetching is off in
    /// the config, the batch is split among several workers, the machine has one core, the
    /// model draws no noise, or its noise goes through the trained input weights.
    pub(super) fn start(cfg: &TrainConfig, stream: u64, dim: usize, t_end: f64) -> Option<Self> {
        let t = &cfg.training;
        let draws: TrialDraws = cfg.model.kind().draws();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !t.prefetch
            || t.threads != 1
            || cores < 2
            || draws.noise_sd <= 0.0
            || draws.input_noise_sd > 0.0
        {
            return None;
        }
        let (ask, asks) = channel::<usize>();
        let (give, get) = channel::<Drawn<T>>();
        let (task, bs) = (cfg.task.clone(), t.batch_size);
        let helper = std::thread::Builder::new()
            .name("neurode-prefetch".into())
            .spawn(move || {
                for iteration in asks {
                    let trials = training_batch::<T>(&task, stream, iteration, bs);
                    // No input noise (checked above), so the input weights are not needed.
                    let noise = noise_signals(&draws, dim, t_end, &trials.seeds, &[]);
                    let drawn = Drawn {
                        iteration,
                        trials,
                        noise,
                    };
                    if give.send(drawn).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Prefetch {
            ask: Some(ask),
            get,
            asked: None,
            helper: Some(helper),
        })
    }

    /// Asks for iteration `it`'s batch, unless a batch is already on its way.
    pub(super) fn ask(&mut self, it: usize) {
        if self.asked.is_none() {
            if let Some(tx) = &self.ask {
                if tx.send(it).is_ok() {
                    self.asked = Some(it);
                }
            }
        }
    }

    /// Iteration `it`'s batch if it was asked for; a batch asked for another iteration
    /// (after a resume) is dropped. `None`: draw it in place.
    pub(super) fn take(&mut self, it: usize) -> Option<Drawn<T>> {
        self.asked.take()?;
        let drawn = self.get.recv().ok()?;
        (drawn.iteration == it).then_some(drawn)
    }
}

impl<T: Real> Drop for Prefetch<T> {
    fn drop(&mut self) {
        // Closing the channel ends the helper's loop.
        self.ask = None;
        if let Some(h) = self.helper.take() {
            let _ = h.join();
        }
    }
}

impl<T: Real> std::fmt::Debug for Prefetch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch")
            .field("asked", &self.asked)
            .finish()
    }
}

/// A trainer's prefetch helper, started at its first step. A clone of the trainer starts
/// its own.
pub(super) struct Ahead<T: Real> {
    started: bool,
    helper: Option<Prefetch<T>>,
}

impl<T: Real> Ahead<T> {
    /// Not started.
    pub(super) fn new() -> Self {
        Ahead {
            started: false,
            helper: None,
        }
    }

    /// The helper, started by `start` on the first call (`None`: no helper).
    pub(super) fn get(
        &mut self,
        start: impl FnOnce() -> Option<Prefetch<T>>,
    ) -> Option<&mut Prefetch<T>> {
        if !self.started {
            self.started = true;
            self.helper = start();
        }
        self.helper.as_mut()
    }
}

impl<T: Real> Ahead<T> {
    /// Whether a helper is running.
    pub(super) fn running(&self) -> bool {
        self.helper.is_some()
    }
}

impl<T: Real> Clone for Ahead<T> {
    fn clone(&self) -> Self {
        Ahead::new()
    }
}

impl<T: Real> std::fmt::Debug for Ahead<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("helper", &self.helper)
            .finish()
    }
}
