//! Training, written once for every model and task: the loss of the readout at the task's
//! loss times against each trial's target (an averaged-readout value or a masked trace),
//! exact gradients by the discrete adjoint, Adam with global gradient-norm clipping and
//! optional cosine decay, validation per condition (on a fixed set or fresh trials), an
//! optional stop rule, keep-best, crash-safe checkpoints and bit-identical resume.
//!
//! The model side is [`crate::network`] (how the network is built, which parameters are
//! trained, what it draws per trial); the task side is [`crate::tasks`] (trials, targets,
//! scoring).
//!
//! Determinism: the initialisation, every training batch (`seed`, iteration) and the fixed
//! validation set come from seeded streams; the batch is split into a fixed number of
//! worker threads whose gradients are summed in a fixed order. Two runs of one config on
//! one machine give bit-identical parameters, and so does a run resumed from a checkpoint.

use std::collections::HashMap;
use std::path::Path;

use neurode_models::Readout;
use neurode_solvers::derive_seed;
use neurode_solvers::{recycle, reused_zeros, Cpu, PiecewiseConstant, Real, Solution, SolveError};

use crate::config::{LossKind, TrainConfig, Validation};
use crate::io::{read_safetensors, write_safetensors, IoError, NamedArray};
use crate::network::{
    initial_states, noise_signals, Capability, KindError, Net, Role, SolveSpec, TaskModel,
};
use crate::params::{self, FileRole, NonFiniteArray, ParamFileError};
use crate::tasks::{Target, Task, TaskSpec, TrialBatch};

mod config_diff;
mod prefetch;

pub use crate::metrics::Metrics;
pub use config_diff::config_differences;
use prefetch::{training_batch, Ahead, Prefetch};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model could not be built.
    #[error("model: {0}")]
    Model(#[from] neurode_models::ModelError),
    /// The model kind cannot do what was asked.
    #[error(transparent)]
    Kind(#[from] KindError),
    /// A solve failed; the trial and time are in the message.
    #[error("iteration {iteration}: the solve of batch trial {trial} failed: {message}. Try a smaller dt, tighter tolerances or a smaller learning rate")]
    Solve {
        /// Training iteration.
        iteration: usize,
        /// Trial in the batch.
        trial: usize,
        /// The solver's message.
        message: String,
    },
    /// The network diverged: a state, a loss or the gradient became non-finite or beyond
    /// [`DIVERGENCE_BOUND`].
    #[error("{phase}: the network diverged: {what}. Use a smaller solver.dt, larger time constants or a smaller training.learning_rate, and check the parameters it started from (a checkpoint or parameter file with huge weights)")]
    Diverged {
        /// Where: the training batch or validation of an iteration, or an evaluation.
        phase: Phase,
        /// What blew up.
        what: Blowup,
    },
    /// Reading or writing run files.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A parameter vector that does not fit the model.
    #[error("parameters: {0}; pass a vector in the layout of Trainer::theta")]
    Theta(String),
    /// A checkpoint that does not fit the config.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What does not fit.
        message: String,
    },
    /// A parameter file that does not fit the config, or holds a non-finite value.
    #[error(transparent)]
    ParamFile(#[from] ParamFileError),
    /// A checkpoint holding a non-finite value.
    #[error(transparent)]
    NonFiniteArray(#[from] NonFiniteArray),
}

/// The magnitude beyond which a state or a trial's loss counts as diverged. The rate
/// networks' states stay within a few times their input and recurrent drive; a state or
/// loss of `1e10` only comes from an unstable step (a time constant far below `dt`) or
/// absurd weights, and training on from there gives a useless network.
pub const DIVERGENCE_BOUND: f64 = 1e10;

/// Whether `v` is non-finite or beyond [`DIVERGENCE_BOUND`] in magnitude.
fn past_bound(v: f64) -> bool {
    !v.is_finite() || v.abs() > DIVERGENCE_BOUND
}

/// The first saved state of `sol` (`n` units a trial, trials numbered from `first`) with an
/// entry non-finite or beyond [`DIVERGENCE_BOUND`]: the earliest saved time's, the lowest
/// trial's at that time (`None` where every state is within the bound).
pub fn first_blowup<T: Real>(
    sol: &Solution<T>,
    n: usize,
    first: usize,
    unit: &'static str,
) -> Option<Blowup> {
    let states = sol.states();
    let batch = states.len() / (n * sol.ts().len()).max(1);
    // States are saved time-major: the first chunk past the bound is the earliest time's.
    let blown = |v: &T| past_bound(v.as_f64());
    let p = states.chunks_exact(n).position(|x| x.iter().any(blown))?;
    let value = states[p * n..(p + 1) * n]
        .iter()
        .find(|&v| blown(v))
        .map_or(f64::NAN, |v| v.as_f64());
    Some(Blowup::State {
        trial: first + p % batch.max(1),
        time: sol.ts()[p / batch.max(1)].as_f64(),
        unit,
        value,
    })
}

/// Which evaluation of a batch: the message of a divergence says where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The training batch of an iteration (counted from 1, as in `metrics.csv`).
    Training {
        /// The iteration.
        iteration: usize,
    },
    /// The validation after an iteration (counted from 1, as in `metrics.csv`).
    Validation {
        /// The iteration.
        iteration: usize,
    },
    /// An evaluation of trials outside training (`neurode eval`, [`Trainer::evaluate`]).
    Evaluation,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Training { iteration } => write!(f, "iteration {iteration} (training batch)"),
            Phase::Validation { iteration } => write!(f, "iteration {iteration} (validation)"),
            Phase::Evaluation => f.write_str("evaluation"),
        }
    }
}

/// What diverged, and where first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Blowup {
    /// A trial's state: the first saved (loss) time at which an entry was non-finite or
    /// beyond [`DIVERGENCE_BOUND`], the lowest such trial at that time.
    State {
        /// The trial (its index in the batch or validation set).
        trial: usize,
        /// The saved time.
        time: f64,
        /// The task's time unit (`ms`, `steps`).
        unit: &'static str,
        /// The entry's value.
        value: f64,
    },
    /// A trial's loss, non-finite or beyond [`DIVERGENCE_BOUND`] (its states within it).
    Loss {
        /// The trial (its index in the batch or validation set).
        trial: usize,
        /// The loss.
        value: f64,
    },
    /// An entry of the batch's gradient, non-finite.
    Gradient {
        /// The entry ([`Trainer::theta`] layout).
        entry: usize,
        /// Its value.
        value: f64,
    },
}

impl std::fmt::Display for Blowup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blowup::State {
                trial,
                time,
                unit,
                value,
            } => write!(
                f,
                "trial {trial}'s state is {value:e} at t = {time} {unit} (the first saved time past the bound {DIVERGENCE_BOUND:e})"
            ),
            Blowup::Loss { trial, value } => write!(
                f,
                "trial {trial}'s loss is {value:e} (bound {DIVERGENCE_BOUND:e})"
            ),
            Blowup::Gradient { entry, value } => {
                write!(f, "entry {entry} of the batch's gradient is {value}")
            }
        }
    }
}

/// Result of evaluating a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Fraction of trials the task scores correct.
    pub accuracy: f64,
    /// Accuracy per condition (NaN for a condition without trials).
    pub condition_accuracy: Vec<f64>,
    /// The readout of every trial at the task's loss times.
    pub outputs: Vec<Vec<f64>>,
    /// Accepted steps summed over trials.
    pub accepted_steps: usize,
}

/// Adam (Kingma & Ba 2015) with the standard defaults `β1 = 0.9`, `β2 = 0.999`, `ε = 1e-8`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T> {
    /// First moments.
    pub m: Vec<T>,
    /// Second moments.
    pub v: Vec<T>,
    /// Steps taken.
    pub t: u64,
}

impl<T: Real> Adam<T> {
    /// Zero moments for `n` parameters.
    pub fn new(n: usize) -> Self {
        Adam {
            m: vec![T::zero(); n],
            v: vec![T::zero(); n],
            t: 0,
        }
    }
    /// One step of size `lr` on the entries where `mask` is true.
    pub fn step(&mut self, theta: &mut [T], grad: &[T], lr: f64, mask: &[bool]) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        self.t += 1;
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        // Runs of trained entries, each in one vectorised pass (the same operations in
        // the same order as entry by entry).
        let mut i = 0;
        while i < theta.len() {
            if !mask[i] {
                i += 1;
                continue;
            }
            let end = mask[i..]
                .iter()
                .position(|&on| !on)
                .map_or(theta.len(), |k| i + k);
            Cpu::adam(
                &mut theta[i..end],
                &mut self.m[i..end],
                &mut self.v[i..end],
                &grad[i..end],
                (b1, b2),
                (c1, c2),
                lr,
                eps,
            );
            i = end;
        }
    }
}

/// Global-norm clipping: scales `g` to norm `clip` if larger (`clip = 0`: none). Returns
/// the norm before clipping.
pub fn clip_global_norm<T: Real>(g: &mut [T], clip: f64) -> f64 {
    let norm = g
        .iter()
        .map(|v| v.as_f64() * v.as_f64())
        .sum::<f64>()
        .sqrt();
    if clip > 0.0 && norm > clip {
        let s = T::from_f64(clip / norm);
        g.iter_mut().for_each(|v| *v *= s);
    }
    norm
}

/// The learning rate at iteration `it` of `total`.
pub fn learning_rate(cfg: &TrainConfig, it: usize, total: usize) -> f64 {
    let t = &cfg.training;
    if !t.cosine_decay {
        return t.learning_rate;
    }
    let p = (it as f64 / total.max(1) as f64).min(1.0);
    let cos = 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
    t.learning_rate * ((1.0 - t.cosine_alpha) * cos + t.cosine_alpha)
}

/// The best validation so far: what `best.safetensors` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Best<T> {
    /// Its validation accuracy.
    pub accuracy: f64,
    /// Its validation loss.
    pub loss: f64,
    /// The iteration after which it was validated.
    pub iteration: usize,
    /// Its parameters ([`Trainer::theta`] layout).
    pub theta: Vec<T>,
}

/// Whether a validation of `accuracy` and `loss` is better than `best` (the accuracy and
/// loss of the best so far; `None`: none yet): a higher accuracy, or the same accuracy at
/// a lower loss (so a later 100 % validation with a lower loss replaces an earlier one).
pub fn better_validation(accuracy: f64, loss: f64, best: Option<(f64, f64)>) -> bool {
    best.is_none_or(|(acc, l)| accuracy > acc || (accuracy == acc && loss < l))
}

/// A training run in memory: network, readout, optimiser state, metrics, best parameters.
#[derive(Debug, Clone)]
pub struct Trainer<T: Real> {
    cfg: TrainConfig,
    spec: TaskSpec,
    workers: Vec<Net<T>>,
    readout: Readout<T>,
    /// All trainable parameters: the field's, then the readout's weights, then its bias.
    theta: Vec<T>,
    /// The parameters at initialisation.
    theta0: Vec<T>,
    mask: Vec<bool>,
    adam: Adam<T>,
    iteration: usize,
    metrics: Vec<Metrics>,
    /// The training loss of every iteration.
    losses: Vec<f64>,
    best: Option<Best<T>>,
    /// The iteration at which the stop rule was met.
    stopped: Option<usize>,
    val: TrialBatch<T>,
    /// Draws the next training batch while this one trains.
    ahead: Ahead<T>,
}

const STREAM_TRAIN: u64 = 1;
const STREAM_VAL: u64 = 2;

impl<T: Real> Trainer<T> {
    /// A fresh run from a checked config.
    pub fn new(cfg: &TrainConfig) -> Result<Self, TrainError> {
        let spec = cfg.task.spec();
        let model = cfg.model.require::<T>(Capability::Train)?;
        let (net, readout) = model.build(params::init_seed(cfg.seed), spec.channels.len())?;
        let n = net.dim();
        let theta = params::gather(&net, &readout);
        let mut mask = Vec::with_capacity(theta.len());
        for v in net.param_views() {
            mask.extend(model.trainable_entries(&v.name, v.len()));
        }
        mask.extend(std::iter::repeat_n(model.trainable("readout_w"), n));
        mask.push(model.trainable("readout_b"));
        let t = &cfg.training;
        let val = match t.validation {
            Validation::Fixed => {
                cfg.task
                    .batch(derive_seed(cfg.seed, &[STREAM_VAL]), 0, t.n_val_trials)
            }
            Validation::Fresh => TrialBatch::default(),
        };
        let n_params = theta.len();
        Ok(Trainer {
            cfg: cfg.clone(),
            spec,
            workers: vec![net; t.threads],
            readout,
            theta0: theta.clone(),
            theta,
            mask,
            adam: Adam::new(n_params),
            iteration: 0,
            metrics: Vec::new(),
            losses: Vec::new(),
            best: None,
            stopped: None,
            val,
            ahead: Ahead::new(),
        })
    }

    /// Iterations done.
    pub fn iteration(&self) -> usize {
        self.iteration
    }
    /// Iterations of the whole run (fewer if the stop rule ends it).
    pub fn total_iterations(&self) -> usize {
        self.cfg.iterations()
    }
    /// Whether the run is over: all iterations done, or the stop rule met.
    pub fn finished(&self) -> bool {
        self.stopped.is_some() || self.iteration >= self.total_iterations()
    }
    /// The iteration at which the stop rule was met, if it was.
    pub fn stopped_at(&self) -> Option<usize> {
        self.stopped
    }
    /// Metrics so far.
    pub fn metrics(&self) -> &[Metrics] {
        &self.metrics
    }
    /// The training loss of every iteration so far.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }
    /// All trainable parameters (the field's, then the readout's `w` and `b`).
    pub fn theta(&self) -> &[T] {
        &self.theta
    }
    /// The parameters at initialisation.
    pub fn initial_theta(&self) -> &[T] {
        &self.theta0
    }
    /// Which entries of `θ` are trained.
    pub fn trained(&self) -> &[bool] {
        &self.mask
    }
    /// The network (its parameters current).
    pub fn network(&self) -> &Net<T> {
        &self.workers[0]
    }
    /// The readout (its parameters current).
    pub fn readout(&self) -> &Readout<T> {
        &self.readout
    }
    /// The task declaration.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }
    /// The best validation so far (highest accuracy, ties to the lower loss; see
    /// [`better_validation`]): its accuracy, loss, iteration and parameters.
    pub fn best(&self) -> Option<&Best<T>> {
        self.best.as_ref()
    }
    /// The run's config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    /// The run's model kind, as the training sees it.
    pub fn model(&self) -> &dyn TaskModel<T> {
        self.cfg
            .model
            .task_model::<T>()
            .expect("a trainer is built only for a kind with a TaskModel")
    }
    /// The run as a kind's own exports see it.
    pub fn trained_run(&self) -> crate::network::TrainedRun<'_, T> {
        crate::network::TrainedRun {
            net: self.network(),
            task: &self.cfg.task,
            theta: &self.theta,
            theta0: &self.theta0,
            losses: &self.losses,
            metrics: &self.metrics,
            trials: self.iteration * self.cfg.training.batch_size,
        }
    }
    /// Whether the next batches are drawn on a helper thread (`training.prefetch`; known
    /// after the first step).
    pub fn prefetching(&self) -> bool {
        self.ahead.running()
    }

    /// Copies `theta` into every worker and the readout.
    fn load_theta(&mut self) {
        let nf = self.workers[0].n_params();
        for w in &mut self.workers {
            w.set_params(&self.theta[..nf]);
        }
        params::set_readout(&self.theta, nf, &mut self.readout);
    }

    /// Loss, accuracy and (with `grad`) the gradient of the mean loss over `trials`.
    /// `noise`: the trials' noise, drawn ahead (one worker only); `None`: drawn here.
    /// A state, a trial's loss or the gradient that diverged is a
    /// [`TrainError::Diverged`] of `phase`, never a result.
    fn evaluate_batch(
        &mut self,
        trials: &TrialBatch<T>,
        noise: Option<Vec<PiecewiseConstant<T>>>,
        grad: Option<&mut Vec<T>>,
        phase: Phase,
    ) -> Result<Evaluation, TrainError> {
        let threads = self.workers.len().min(trials.len()).max(1);
        let per = trials.len().div_ceil(threads);
        let total = trials.len();
        let job = Job {
            cfg: &self.cfg,
            spec: &self.spec,
            readout: &self.readout,
            trials,
            total,
            want_grad: grad.is_some(),
            iteration: self.iteration,
            phase,
        };
        let results: Vec<Result<Chunk<T>, TrainError>> = if threads == 1 {
            vec![run_chunk(&job, &mut self.workers[0], 0..total, noise)]
        } else {
            debug_assert!(noise.is_none(), "noise is drawn ahead for one worker only");
            let job = &job;
            std::thread::scope(|s| {
                let handles: Vec<_> = self.workers[..threads]
                    .iter_mut()
                    .enumerate()
                    .map(|(k, net)| {
                        let lo = (k * per).min(total);
                        let hi = ((k + 1) * per).min(total);
                        s.spawn(move || run_chunk(job, net, lo..hi, None))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a training worker panicked"))
                    .collect()
            })
        };
        let (cfg, spec) = (&self.cfg, &self.spec);
        let mut loss = 0.0;
        let mut outputs = Vec::with_capacity(total);
        let mut accepted = 0;
        let mut grad = grad;
        if let Some(g) = grad.as_deref_mut() {
            g.clear();
            g.resize(self.theta.len(), T::zero());
        }
        for r in results {
            let c = r?;
            if let Some(g) = grad.as_deref_mut() {
                for (a, &b) in g.iter_mut().zip(&c.grad) {
                    *a += b;
                }
            }
            loss += c.loss;
            outputs.extend(c.outputs);
            accepted += c.accepted;
        }
        if let Some(g) = grad.as_deref() {
            if let Some(entry) = g.iter().position(|v| !v.is_finite()) {
                return Err(TrainError::Diverged {
                    phase,
                    what: Blowup::Gradient {
                        entry,
                        value: g[entry].as_f64(),
                    },
                });
            }
        }
        let loss = loss / total as f64;
        let n_cond = spec.conditions.len();
        let (mut hit, mut count) = (vec![0usize; n_cond], vec![0usize; n_cond]);
        for ((y, target), &c) in outputs.iter().zip(&trials.targets).zip(&trials.conditions) {
            if c >= n_cond {
                continue;
            }
            count[c] += 1;
            if cfg.task.correct(y, target, c) {
                hit[c] += 1;
            }
        }
        let accuracy = hit.iter().sum::<usize>() as f64 / total as f64;
        let condition_accuracy = hit
            .iter()
            .zip(&count)
            .map(|(&h, &c)| {
                if c == 0 {
                    f64::NAN
                } else {
                    h as f64 / c as f64
                }
            })
            .collect();
        Ok(Evaluation {
            loss,
            accuracy,
            condition_accuracy,
            outputs,
            accepted_steps: accepted,
        })
    }

    /// The mean loss over `trials` and its gradient with respect to all trainable
    /// parameters ([`theta`](Self::theta) layout; train flags not applied).
    pub fn loss_and_gradient(
        &mut self,
        trials: &TrialBatch<T>,
    ) -> Result<(f64, Vec<T>), TrainError> {
        let mut grad = Vec::new();
        let phase = Phase::Training {
            iteration: self.iteration + 1,
        };
        let ev = self.evaluate_batch(trials, None, Some(&mut grad), phase)?;
        Ok((ev.loss, grad))
    }

    /// Loss, accuracy and readouts of `trials` (no gradient).
    pub fn evaluate(&mut self, trials: &TrialBatch<T>) -> Result<Evaluation, TrainError> {
        self.evaluate_batch(trials, None, None, Phase::Evaluation)
    }

    /// Replaces all trainable parameters ([`theta`](Self::theta) layout).
    ///
    /// # Errors
    /// [`TrainError::Theta`] if `theta` has the wrong length or a non-finite entry;
    /// the parameters are then left unchanged.
    pub fn set_theta(&mut self, theta: &[T]) -> Result<(), TrainError> {
        if theta.len() != self.theta.len() {
            return Err(TrainError::Theta(format!(
                "got {} values, the model has {} parameters",
                theta.len(),
                self.theta.len()
            )));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Theta(format!("entry {i} is {}", theta[i])));
        }
        self.theta.copy_from_slice(theta);
        self.load_theta();
        Ok(())
    }

    /// Validation: on the fixed seeded set, or on fresh trials of this iteration.
    pub fn validate(&mut self) -> Result<Evaluation, TrainError> {
        let phase = Phase::Validation {
            iteration: self.iteration,
        };
        if self.cfg.training.validation == Validation::Fresh {
            let seed = derive_seed(self.cfg.seed, &[STREAM_VAL, self.iteration as u64]);
            let batch = self.cfg.task.batch(seed, 0, self.cfg.training.n_val_trials);
            return self.evaluate_batch(&batch, None, None, phase);
        }
        let val = std::mem::take(&mut self.val);
        let r = self.evaluate_batch(&val, None, None, phase);
        self.val = val;
        r
    }

    /// Evaluates `n` fresh trials of the stream `seed` (not used in training).
    pub fn evaluate_fresh(&mut self, seed: u64, n: usize) -> Result<Evaluation, TrainError> {
        let batch = self.cfg.task.batch(seed, 0, n);
        self.evaluate_batch(&batch, None, None, Phase::Evaluation)
    }

    /// One training iteration; returns its metrics row (validation filled in at validation
    /// iterations and at the last one).
    pub fn step(&mut self) -> Result<Metrics, TrainError> {
        let it = self.iteration;
        let bs = self.cfg.training.batch_size;
        let total = self.total_iterations();
        let stream = derive_seed(self.cfg.seed, &[STREAM_TRAIN]);
        let (cfg, dim, t_end) = (&self.cfg, self.workers[0].dim(), self.spec.t_end);
        let mut drawn = None;
        if let Some(p) = self.ahead.get(|| Prefetch::start(cfg, stream, dim, t_end)) {
            drawn = p.take(it);
            if it + 1 < total {
                p.ask(it + 1);
            }
        }
        let (trials, noise) = match drawn {
            Some(d) => (d.trials, Some(d.noise)),
            None => (training_batch(&self.cfg.task, stream, it, bs), None),
        };
        let mut grad = Vec::new();
        let phase = Phase::Training { iteration: it + 1 };
        let ev = self.evaluate_batch(&trials, noise, Some(&mut grad), phase)?;
        for (g, &on) in grad.iter_mut().zip(&self.mask) {
            if !on {
                *g = T::zero();
            }
        }
        if self.cfg.training.grad_clip > 0.0 {
            clip_global_norm(&mut grad, self.cfg.training.grad_clip);
        }
        let lr = learning_rate(&self.cfg, it, total);
        self.adam.step(&mut self.theta, &grad, lr, &self.mask);
        self.load_theta();
        self.iteration += 1;
        self.losses.push(ev.loss);
        let mut row = Metrics {
            iteration: self.iteration,
            train_loss: ev.loss,
            train_accuracy: ev.accuracy,
            val_loss: None,
            val_accuracy: None,
            val_condition_accuracy: None,
            learning_rate: lr,
            steps_per_trial: ev.accepted_steps as f64 / bs as f64,
        };
        let t = &self.cfg.training;
        let (eval_every, log_every) = (t.eval_every, t.log_every);
        let validate_now = self.iteration.is_multiple_of(eval_every) || self.iteration == total;
        if validate_now {
            let v = self.validate()?;
            row.val_loss = Some(v.loss);
            row.val_accuracy = Some(v.accuracy);
            row.val_condition_accuracy = Some(v.condition_accuracy.clone());
            let so_far = self.best.as_ref().map(|b| (b.accuracy, b.loss));
            if better_validation(v.accuracy, v.loss, so_far) {
                self.best = Some(Best {
                    accuracy: v.accuracy,
                    loss: v.loss,
                    iteration: self.iteration,
                    theta: self.theta.clone(),
                });
            }
            let t = &self.cfg.training;
            let rule = t.stop_loss_below.is_some() || t.stop_accuracy_above.is_some();
            let met = t.stop_loss_below.is_none_or(|l| v.loss < l)
                && t.stop_accuracy_above.is_none_or(|a| v.accuracy > a)
                && self.iteration * bs > t.stop_min_trials;
            if rule && met {
                self.stopped = Some(self.iteration);
            }
        }
        if validate_now || self.iteration.is_multiple_of(log_every) || self.iteration == 1 {
            self.metrics.push(row.clone());
        }
        Ok(row)
    }

    /// Named arrays of parameters `theta` for a parameter file (row-major), with what each
    /// is to the run.
    pub fn arrays(&self, theta: &[T]) -> Vec<(NamedArray<T>, Role)> {
        self.model().arrays(&self.workers[0], theta)
    }

    /// Named arrays of parameters `theta` (row-major; the fixed and derived arrays
    /// included, so the file is the whole network).
    pub fn param_arrays(&self, theta: &[T]) -> Vec<NamedArray<T>> {
        self.arrays(theta).into_iter().map(|(a, _)| a).collect()
    }

    /// Replaces the parameters by those of the parameter file `path` (a run's
    /// `params.safetensors`; see [`load_param_arrays`](Self::load_param_arrays)).
    pub fn load_params_file(&mut self, path: &Path) -> Result<(), TrainError> {
        let (arrays, _) = read_safetensors::<T>(path)?;
        self.load_param_arrays(&arrays, &path.display().to_string())
    }

    /// Replaces the parameters by those of a parameter file's arrays (as written by
    /// [`param_arrays`](Self::param_arrays)); the fixed arrays (drawn from the config's
    /// seed) must be this config's.
    pub fn load_param_arrays(
        &mut self,
        arrays: &[NamedArray<T>],
        origin: &str,
    ) -> Result<(), TrainError> {
        self.theta =
            params::from_arrays(self.model(), &self.workers[0], &self.theta, arrays, origin)?;
        self.load_theta();
        Ok(())
    }

    /// Writes a checkpoint (optimiser state, best parameters, metrics) crash-safely.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), TrainError> {
        let len = self.theta.len();
        let vec = |name: &str, data: Vec<T>| NamedArray {
            name: name.into(),
            shape: vec![data.len()],
            data,
        };
        let mut arrays = vec![
            vec("theta", self.theta.clone()),
            vec("adam_m", self.adam.m.clone()),
            vec("adam_v", self.adam.v.clone()),
            vec("theta0", self.theta0.clone()),
        ];
        let mut meta = HashMap::new();
        if let Some(b) = &self.best {
            arrays.push(NamedArray {
                name: "best_theta".into(),
                shape: vec![len],
                data: b.theta.clone(),
            });
            meta.insert("best_accuracy".into(), format!("{:e}", b.accuracy));
            meta.insert("best_loss".into(), format!("{:e}", b.loss));
            meta.insert("best_iteration".into(), b.iteration.to_string());
        }
        if let Some(s) = self.stopped {
            meta.insert("stopped".into(), s.to_string());
        }
        meta.insert("iteration".into(), self.iteration.to_string());
        meta.insert("adam_t".into(), self.adam.t.to_string());
        meta.insert(
            "config".into(),
            toml::to_string(&self.cfg).map_err(|e| TrainError::Checkpoint {
                path: path.display().to_string(),
                message: format!("its config cannot be written: {e}"),
            })?,
        );
        meta.insert(
            "metrics".into(),
            serde_json::to_string(&self.metrics).expect("metrics serialise"),
        );
        meta.insert(
            "losses".into(),
            serde_json::to_string(&self.losses).expect("losses serialise"),
        );
        write_safetensors(path, &arrays, meta)?;
        Ok(())
    }

    /// Restores a run from a checkpoint written by [`save_checkpoint`](Self::save_checkpoint)
    /// with the same config. A non-finite value in any of its arrays is refused
    /// ([`TrainError::NonFiniteArray`]); huge but finite weights train into a
    /// [`TrainError::Diverged`] at the first iteration.
    pub fn resume(cfg: &TrainConfig, path: &Path) -> Result<Self, TrainError> {
        let mut tr = Self::new(cfg)?;
        let bad = |m: String| TrainError::Checkpoint {
            path: path.display().to_string(),
            message: m,
        };
        let (arrays, meta) = read_safetensors::<T>(path)?;
        let saved: TrainConfig = meta
            .get("config")
            .ok_or_else(|| bad("no config inside; it was not written by `neurode train`".into()))
            .and_then(|s| {
                toml::from_str(s).map_err(|e| bad(format!("its config does not parse: {e}")))
            })?;
        if &saved != cfg {
            let diff = config_differences(&saved, cfg);
            let what = if diff.is_empty() {
                String::new()
            } else {
                format!(" ({})", diff.join("; "))
            };
            return Err(bad(format!("it was written with a different config{what}; resume with the config and options of that run (config.toml in the run directory) or start a new run with --out")));
        }
        params::check_finite(&arrays, FileRole::Checkpoint, &path.display().to_string())?;
        let get = |name: &str| {
            arrays
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.data.clone())
        };
        let len = tr.theta.len();
        let need = |name: &str| -> Result<Vec<T>, TrainError> {
            let v = get(name).ok_or_else(|| bad(format!("array {name} is missing")))?;
            if v.len() != len {
                return Err(bad(format!(
                    "array {name} has {} values, the model {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        tr.theta = need("theta")?;
        tr.adam.m = need("adam_m")?;
        tr.adam.v = need("adam_v")?;
        tr.theta0 = need("theta0")?;
        let num = |k: &str| -> Result<u64, TrainError> {
            meta.get(k)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("metadata {k} is missing or not a number")))
        };
        tr.adam.t = num("adam_t")?;
        tr.iteration = num("iteration")? as usize;
        tr.stopped = meta.get("stopped").and_then(|s| s.parse().ok());
        tr.metrics = meta
            .get("metrics")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("metadata metrics is missing or malformed".into()))?;
        tr.losses = meta
            .get("losses")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("metadata losses is missing or malformed".into()))?;
        if let Some(th) = get("best_theta") {
            let acc: f64 = meta
                .get("best_accuracy")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("best_accuracy missing".into()))?;
            // A checkpoint written before the loss was kept: any later validation of the
            // same accuracy replaces it.
            let loss = match meta.get("best_loss") {
                None => f64::INFINITY,
                Some(s) => s
                    .parse()
                    .map_err(|_| bad(format!("metadata best_loss is not a number: {s}")))?,
            };
            tr.best = Some(Best {
                accuracy: acc,
                loss,
                iteration: num("best_iteration")? as usize,
                theta: th,
            });
        }
        tr.load_theta();
        Ok(tr)
    }
}

/// What one worker returns: summed loss, outputs, gradient (unnormalised by threads).
struct Chunk<T> {
    loss: f64,
    outputs: Vec<Vec<f64>>,
    grad: Vec<T>,
    accepted: usize,
}

fn solve_error<T: Real>(e: SolveError<T>, iteration: usize, lo: usize) -> TrainError {
    let trial = match &e {
        SolveError::Failed { failure, .. } => lo + failure.trial,
        _ => lo,
    };
    TrainError::Solve {
        iteration,
        trial,
        message: e.to_string(),
    }
}

/// The configured solve over `[0, t_end]`, saving at `times`, from `x0` (`None`: the
/// field's own), on one thread: the training splits its batch over `training.threads`
/// workers itself, each calling this.
pub fn solve_spec<T: Real>(
    cfg: &TrainConfig,
    t_end: f64,
    times: Vec<T>,
    x0: Option<Vec<T>>,
) -> SolveSpec<T> {
    SolveSpec {
        stepping: cfg.solver.stepping(),
        t_end,
        times,
        x0,
        threads: 1,
    }
}

/// Binds the trials `range` of `trials` to `net`: inputs, and the model's per-trial noise;
/// returns the initial states (`None`: zero).
pub fn bind_trials<T: Real>(
    cfg: &TrainConfig,
    spec: &TaskSpec,
    net: &mut Net<T>,
    trials: &TrialBatch<T>,
    range: std::ops::Range<usize>,
) -> Result<Option<Vec<T>>, TrainError> {
    bind_trials_with(cfg, spec, net, trials, range, None)
}

/// [`bind_trials`] with the trials' noise drawn ahead (`None`: drawn here).
fn bind_trials_with<T: Real>(
    cfg: &TrainConfig,
    spec: &TaskSpec,
    net: &mut Net<T>,
    trials: &TrialBatch<T>,
    range: std::ops::Range<usize>,
    noise: Option<Vec<PiecewiseConstant<T>>>,
) -> Result<Option<Vec<T>>, TrainError> {
    let draws = cfg.model.kind().draws();
    let seeds = trials.seeds.get(range.clone()).unwrap_or(&[]);
    let noise = noise.unwrap_or_else(|| {
        noise_signals(&draws, net.dim(), spec.t_end, seeds, net.input_weights())
    });
    net.bind(trials.inputs[range].to_vec(), noise)?;
    Ok(initial_states(&draws, net.dim(), seeds))
}

/// Example trials after training: one per condition and label.
#[derive(Debug, Clone)]
pub struct ExampleTraces {
    /// Readout `y(t)` against `t`, one series per trial.
    pub readout: Vec<crate::plot::Series>,
    /// State-space trajectories: the states `x(t)` projected on the first two principal
    /// components of all example states together, one series per trial (empty if the
    /// states do not vary).
    pub latent: Vec<crate::plot::Series>,
    /// Fraction of the variance on each of the two components.
    pub explained: Option<[f64; 2]>,
}

/// Readout traces and state-space trajectories (every `spec.plot_dt`) of one example trial
/// per condition and label, drawn from the stream `seed`.
pub fn example_traces<T: Real>(tr: &Trainer<T>, seed: u64) -> Result<ExampleTraces, TrainError> {
    let cfg = tr.config();
    let spec = tr.spec();
    let mut picked: Vec<(usize, f64, u64)> = Vec::new();
    let mut batch = TrialBatch::<T>::default();
    for i in 0..10_000u64 {
        let one = cfg.task.batch::<T>(seed, i, 1);
        let (c, y) = (one.conditions[0], one.labels[0]);
        if !picked.iter().any(|p| p.0 == c && p.1 == y) {
            picked.push((c, y, i));
        }
        if picked.len() >= 2 * spec.conditions.len() {
            break;
        }
    }
    picked.sort_by(|a, b| (a.0, a.1).partial_cmp(&(b.0, b.1)).expect("finite"));
    for p in &picked {
        let one = cfg.task.batch::<T>(seed, p.2, 1);
        batch.inputs.extend(one.inputs);
        batch.targets.extend(one.targets);
        batch.conditions.extend(one.conditions);
        batch.labels.extend(one.labels);
        batch.seeds.extend(one.seeds);
    }
    let mut net = tr.network().clone();
    let x0 = bind_trials(cfg, spec, &mut net, &batch, 0..batch.len())?;
    let steps = (spec.t_end / spec.plot_dt + 1e-9).floor() as u64;
    let times: Vec<T> = crate::tasks::grid(spec.plot_dt, 0, steps)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let sol = net
        .solve(&solve_spec(cfg, spec.t_end, times, x0))
        .map_err(|e| solve_error(e, tr.iteration(), 0))?;
    let ro = tr.readout();
    let n = net.dim();
    let nt = sol.ts().len();
    // Principal components of the states of all example trials together.
    let mean: Vec<f64> = (0..n)
        .map(|k| {
            (0..picked.len())
                .flat_map(|j| (0..nt).map(move |i| (i, j)))
                .map(|(i, j)| sol.state(i, j)[k].as_f64())
                .sum::<f64>()
                / (nt * picked.len()) as f64
        })
        .collect();
    let x = faer::Mat::<f64>::from_fn(nt * picked.len(), n, |row, k| {
        sol.state(row % nt, row / nt)[k].as_f64() - mean[k]
    });
    let pcs = x.thin_svd().ok().and_then(|svd| {
        let s = svd.S().column_vector();
        let total: f64 = (0..s.nrows()).map(|k| s[k] * s[k]).sum();
        if s.nrows() < 2 || total <= 0.0 {
            return None;
        }
        let u = svd.U();
        let scores = (0..nt * picked.len())
            .map(|row| (u[(row, 0)] * s[0], u[(row, 1)] * s[1]))
            .collect::<Vec<_>>();
        Some((scores, [s[0] * s[0] / total, s[1] * s[1] / total]))
    });
    let mut out = ExampleTraces {
        readout: Vec::new(),
        latent: Vec::new(),
        explained: pcs.as_ref().map(|p| p.1),
    };
    for (j, (c, y, _)) in picked.iter().enumerate() {
        let name = format!("{}, {}", spec.conditions[*c], crate::plot::target_label(*y));
        out.readout.push((
            name.clone(),
            (0..nt)
                .map(|i| (sol.ts()[i].as_f64(), ro.output(sol.state(i, j)).as_f64()))
                .collect(),
        ));
        if let Some((scores, _)) = &pcs {
            out.latent
                .push((name, scores[j * nt..(j + 1) * nt].to_vec()));
        }
    }
    Ok(out)
}

/// The loss of one trial whose readout at the loss times is `y`, and the gradient of the
/// loss divided by `total` (the batch's mean) with respect to each of those readouts.
pub fn trial_loss(loss: LossKind, y: &[f64], target: &Target, total: f64) -> (f64, Vec<f64>) {
    let scale = 1.0 / total;
    let k = y.len();
    match target {
        Target::Mean(target) => {
            let inv_k = 1.0 / k as f64;
            let mean: f64 = y.iter().sum::<f64>() * inv_k;
            let (l, d) = match loss {
                LossKind::Bce => {
                    let p = 0.5 * (target + 1.0);
                    let softplus = if mean > 0.0 {
                        mean + (-mean).exp().ln_1p()
                    } else {
                        mean.exp().ln_1p()
                    };
                    (softplus - p * mean, 1.0 / (1.0 + (-mean).exp()) - p)
                }
                // Mse (Rmse and L1 are refused for these targets at config checking).
                _ => ((mean - target).powi(2), 2.0 * (mean - target)),
            };
            let g = d / total * inv_k;
            (l, vec![g; k])
        }
        Target::Trace { values, mask } => {
            let err = |i: usize| if mask[i] { y[i] - values[i] } else { 0.0 };
            let on = mask.iter().filter(|&&m| m).count().max(1) as f64;
            match loss {
                LossKind::L1 => {
                    let l = (0..k).map(|i| err(i).abs()).sum();
                    (l, (0..k).map(|i| err(i).signum() * scale).collect())
                }
                LossKind::Rmse => {
                    let l = (0..k).map(|i| err(i).powi(2)).sum::<f64>().sqrt();
                    let inv = if l > 0.0 { scale / l } else { 0.0 };
                    (l, (0..k).map(|i| err(i) * inv).collect())
                }
                // Mse over the mask (Bce is refused for trace targets).
                _ => {
                    let l = (0..k).map(|i| err(i).powi(2)).sum::<f64>() / on;
                    (l, (0..k).map(|i| 2.0 * err(i) / on * scale).collect())
                }
            }
        }
    }
}

/// What every worker of a batch shares.
struct Job<'a, T: Real> {
    cfg: &'a TrainConfig,
    spec: &'a TaskSpec,
    readout: &'a Readout<T>,
    trials: &'a TrialBatch<T>,
    /// Trials in the whole batch (the loss is their mean).
    total: usize,
    want_grad: bool,
    iteration: usize,
    /// Where, for the error of a divergence.
    phase: Phase,
}

/// Loss (and gradient) of trials `range` of the batch on one worker.
fn run_chunk<T: Real>(
    job: &Job<'_, T>,
    net: &mut Net<T>,
    range: std::ops::Range<usize>,
    noise: Option<Vec<PiecewiseConstant<T>>>,
) -> Result<Chunk<T>, TrainError> {
    let n = net.dim();
    let nf = net.n_params();
    if range.is_empty() {
        return Ok(Chunk {
            loss: 0.0,
            outputs: vec![],
            grad: vec![T::zero(); nf + n + 1],
            accepted: 0,
        });
    }
    let x0 = bind_trials_with(job.cfg, job.spec, net, job.trials, range.clone(), noise)?;
    chunk_of(job, net, x0, range)
}

/// [`run_chunk`] on the network, its trials bound.
fn chunk_of<T: Real>(
    job: &Job<'_, T>,
    field: &Net<T>,
    x0: Option<Vec<T>>,
    range: std::ops::Range<usize>,
) -> Result<Chunk<T>, TrainError> {
    let Job {
        cfg,
        spec,
        readout,
        trials,
        total,
        want_grad,
        iteration,
        phase,
    } = *job;
    let lo = range.start;
    let batch = range.len();
    let n = field.dim();
    let nf = field.n_params();
    let times: Vec<T> = spec.loss_times.iter().map(|&t| T::from_f64(t)).collect();
    let k = times.len();
    let solve = solve_spec(cfg, spec.t_end, times, x0);
    let mut grad = vec![T::zero(); nf + n + 1];
    let mut accepted = 0;
    let mut outputs = Vec::with_capacity(batch);
    let mut loss = 0.0;
    // The rates of every saved state (for the readout and its backward), kept until the
    // backward pass is done.
    let mut kept_rates = None;
    // The first divergence: a state or a trial's loss beyond the bound.
    let mut diverged = None;
    // Readouts, losses and (with the gradient) the readout's gradient and dL/dstates.
    let mut readout_pass = |sol: &Solution<T>| -> Vec<T> {
        accepted = (0..batch).map(|j| sol.trial_stats(j).accepted).sum();
        let states = sol.states();
        // States are saved time-major: the first chunk past the bound is the earliest
        // time's, the lowest trial's at that time.
        if let Some(b) = first_blowup(sol, n, lo, spec.time_unit) {
            diverged = Some(b);
            return vec![T::zero(); states.len()];
        }
        let mut rates = reused_zeros::<T>(states.len());
        readout.rates_into(states, &mut rates);
        let rate = |i: usize, j: usize| &rates[(i * batch + j) * n..(i * batch + j + 1) * n];
        // Readout at the loss times and dL/dy per trial.
        let mut dy = Vec::with_capacity(batch);
        for j in 0..batch {
            let y: Vec<f64> = (0..k)
                .map(|i| readout.output_of_rates(rate(i, j)).as_f64())
                .collect();
            let (l, d) = trial_loss(cfg.training.loss, &y, &trials.targets[lo + j], total as f64);
            if diverged.is_none() && past_bound(l) {
                diverged = Some(Blowup::Loss {
                    trial: lo + j,
                    value: l,
                });
            }
            loss += l;
            outputs.push(y);
            dy.push(d);
        }
        let mut dl = Vec::new();
        if want_grad {
            dl = vec![T::zero(); sol.states().len()];
            let (dw, db) = grad[nf..].split_at_mut(n);
            let mut dbias = T::zero();
            for i in 0..k {
                for (j, d) in dy.iter().enumerate() {
                    if d[i] == 0.0 {
                        continue;
                    }
                    let o = (i * batch + j) * n;
                    let (x, dyi) = (sol.state(i, j), T::from_f64(d[i]));
                    dbias += readout.backward_of_rates(x, rate(i, j), dyi, &mut dl[o..o + n], dw);
                }
            }
            db[0] = dbias;
        }
        kept_rates = Some(rates);
        dl
    };
    let param_grad = if want_grad {
        let solved = field.solve_with_gradient(&solve, &mut readout_pass);
        if let Some(what) = diverged {
            return Err(TrainError::Diverged { phase, what });
        }
        let (_, g) = solved.map_err(|e| solve_error(e, iteration, lo))?;
        Some(g)
    } else {
        let sol = field
            .solve(&solve)
            .map_err(|e| solve_error(e, iteration, lo))?;
        readout_pass(&sol);
        if let Some(what) = diverged {
            return Err(TrainError::Diverged { phase, what });
        }
        None
    };
    if let Some(g) = param_grad {
        grad[..nf].copy_from_slice(&g);
    }
    if let Some(rates) = kept_rates {
        recycle(rates);
    }
    Ok(Chunk {
        loss,
        outputs,
        grad,
        accepted,
    })
}
