//! Training the low-rank RNN on the contextual switch task: loss on the readout averaged
//! over the task's loss window, exact gradients by the discrete adjoint, Adam with global
//! gradient-norm clipping and optional cosine decay, validation per context, keep-best,
//! crash-safe checkpoints and bit-identical resume.
//!
//! Determinism: the initialisation, every training batch (`seed`, iteration) and the fixed
//! validation set come from seeded streams; the batch is split into a fixed number of
//! worker threads whose gradients are summed in a fixed order. Two runs of one config on
//! one machine give bit-identical parameters, and so does a run resumed from a checkpoint.

use std::collections::HashMap;
use std::path::Path;

use neurode_models::{LowRankInit, LowRankRnn, Readout};
use neurode_solvers::derive_seed;
use neurode_solvers::{
    integrate, Checkpoints, Integrate, Real, SolveError, Stepper, VectorField, VjpParams,
};

use crate::config::{LossKind, StepperName, TrainConfig};
use crate::io::{read_safetensors, write_safetensors, IoError, NamedArray};
use crate::tasks::{Task, TaskSpec, TrialBatch};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model could not be built.
    #[error("model: {0}")]
    Model(#[from] neurode_models::ModelError),
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
    /// The loss became non-finite.
    #[error("iteration {iteration}: the loss is {loss}; lower training.learning_rate or raise training.grad_clip")]
    NonFinite {
        /// Training iteration.
        iteration: usize,
        /// The loss.
        loss: f64,
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
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Iterations done.
    pub iteration: usize,
    /// Loss of the last training batch.
    pub train_loss: f64,
    /// Accuracy of the last training batch.
    pub train_accuracy: f64,
    /// Validation loss (at validation iterations).
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Validation accuracy per condition.
    pub val_condition_accuracy: Option<Vec<f64>>,
    /// Learning rate used at this iteration.
    pub learning_rate: f64,
    /// Mean accepted solver steps per trial of the training batch.
    pub steps_per_trial: f64,
}

/// Result of evaluating a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Fraction with the sign of the averaged readout equal to the target's.
    pub accuracy: f64,
    /// Accuracy per condition.
    pub condition_accuracy: Vec<f64>,
    /// Averaged readout of every trial.
    pub outputs: Vec<f64>,
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
        let f = T::from_f64;
        for i in 0..theta.len() {
            if !mask[i] {
                continue;
            }
            let g = grad[i];
            self.m[i] = f(b1) * self.m[i] + f(1.0 - b1) * g;
            self.v[i] = f(b2) * self.v[i] + f(1.0 - b2) * g * g;
            let mh = self.m[i].as_f64() / c1;
            let vh = self.v[i].as_f64() / c2;
            theta[i] -= f(lr * mh / (vh.sqrt() + eps));
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

/// A training run in memory: model, readout, optimiser state, metrics, best parameters.
#[derive(Debug, Clone)]
pub struct Trainer<T: Real> {
    cfg: TrainConfig,
    spec: TaskSpec,
    workers: Vec<LowRankRnn<T>>,
    readout: Readout<T>,
    /// All trainable parameters: the field's (M, N, B), then w, then b.
    theta: Vec<T>,
    mask: Vec<bool>,
    adam: Adam<T>,
    iteration: usize,
    metrics: Vec<Metrics>,
    best: Option<(f64, usize, Vec<T>)>,
    val: TrialBatch<T>,
}

const STREAM_INIT: u64 = 0;
const STREAM_TRAIN: u64 = 1;
const STREAM_VAL: u64 = 2;

impl<T: Real> Trainer<T> {
    /// A fresh run from a checked config.
    pub fn new(cfg: &TrainConfig) -> Result<Self, TrainError> {
        let m = &cfg.model;
        let init = LowRankInit {
            n: m.n,
            rank: m.rank,
            g: m.g,
            tau: m.tau,
            n_in: 4,
            m_std: m.m_init_std,
            n_std: m.n_init_std,
            b_std: m.b_init_std,
            w_std: m.w_init_std,
        };
        let (rnn, readout) = LowRankRnn::<T>::random(&init, derive_seed(cfg.seed, &[STREAM_INIT]))?;
        let spec = cfg.task.spec();
        let nf = rnn.n_params();
        let mut theta = vec![T::zero(); nf + m.n + 1];
        rnn.params(&mut theta[..nf]);
        theta[nf..nf + m.n].copy_from_slice(&readout.w);
        theta[nf + m.n] = readout.b;
        let t = &cfg.training;
        let mut mask = Vec::with_capacity(theta.len());
        for v in rnn.param_views() {
            let on = match v.name.as_str() {
                "M" => t.train_m,
                "N" => t.train_n,
                _ => t.train_b,
            };
            mask.extend(std::iter::repeat_n(on, v.len()));
        }
        mask.extend(std::iter::repeat_n(t.train_w, m.n + 1));
        let val = cfg
            .task
            .batch(derive_seed(cfg.seed, &[STREAM_VAL]), 0, t.n_val_trials);
        let n_params = theta.len();
        Ok(Trainer {
            cfg: cfg.clone(),
            spec,
            workers: vec![rnn; t.threads],
            readout,
            theta,
            mask,
            adam: Adam::new(n_params),
            iteration: 0,
            metrics: Vec::new(),
            best: None,
            val,
        })
    }

    /// Iterations done.
    pub fn iteration(&self) -> usize {
        self.iteration
    }
    /// Iterations of the whole run.
    pub fn total_iterations(&self) -> usize {
        self.cfg.iterations()
    }
    /// Metrics so far.
    pub fn metrics(&self) -> &[Metrics] {
        &self.metrics
    }
    /// All trainable parameters (M, N, B, w, b).
    pub fn theta(&self) -> &[T] {
        &self.theta
    }
    /// The network (its parameters current).
    pub fn network(&self) -> &LowRankRnn<T> {
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
    /// Best validation accuracy so far, its iteration and parameters.
    pub fn best(&self) -> Option<&(f64, usize, Vec<T>)> {
        self.best.as_ref()
    }
    /// The run's config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Copies `theta` into every worker and the readout.
    fn load_theta(&mut self) {
        let nf = self.workers[0].n_params();
        let n = self.cfg.model.n;
        for w in &mut self.workers {
            w.set_params(&self.theta[..nf]);
        }
        self.readout.w.copy_from_slice(&self.theta[nf..nf + n]);
        self.readout.b = self.theta[nf + n];
    }

    /// Loss, accuracy and (with `grad`) the gradient of the mean loss over `trials`.
    fn evaluate_batch(
        &mut self,
        trials: &TrialBatch<T>,
        grad: Option<&mut Vec<T>>,
    ) -> Result<Evaluation, TrainError> {
        let threads = self.workers.len().min(trials.len()).max(1);
        let per = trials.len().div_ceil(threads);
        let cfg = &self.cfg;
        let spec = &self.spec;
        let readout = &self.readout;
        let total = trials.len();
        let want_grad = grad.is_some();
        let iteration = self.iteration;
        let results: Vec<Result<Chunk<T>, TrainError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self.workers[..threads]
                .iter_mut()
                .enumerate()
                .map(|(k, rnn)| {
                    let lo = (k * per).min(total);
                    let hi = ((k + 1) * per).min(total);
                    s.spawn(move || {
                        run_chunk(
                            cfg,
                            spec,
                            rnn,
                            readout,
                            trials,
                            lo..hi,
                            total,
                            want_grad,
                            iteration,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a training worker panicked"))
                .collect()
        });
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
        let loss = loss / total as f64;
        let n_cond = spec.conditions.len();
        let (mut hit, mut count) = (vec![0usize; n_cond], vec![0usize; n_cond]);
        for ((&y, &target), &c) in outputs.iter().zip(&trials.targets).zip(&trials.conditions) {
            count[c] += 1;
            if (y > 0.0) == (target.as_f64() > 0.0) {
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
        let ev = self.evaluate_batch(trials, Some(&mut grad))?;
        Ok((ev.loss, grad))
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

    /// Validation on the fixed seeded set.
    pub fn validate(&mut self) -> Result<Evaluation, TrainError> {
        let val = std::mem::take(&mut self.val);
        let r = self.evaluate_batch(&val, None);
        self.val = val;
        r
    }

    /// Evaluates `n` fresh trials of the stream `seed` (not used in training).
    pub fn evaluate_fresh(&mut self, seed: u64, n: usize) -> Result<Evaluation, TrainError> {
        let batch = self.cfg.task.batch(seed, 0, n);
        self.evaluate_batch(&batch, None)
    }

    /// One training iteration; returns its metrics row (validation filled in at validation
    /// iterations and at the last one).
    pub fn step(&mut self) -> Result<Metrics, TrainError> {
        let it = self.iteration;
        let bs = self.cfg.training.batch_size;
        let trials = self.cfg.task.batch(
            derive_seed(self.cfg.seed, &[STREAM_TRAIN]),
            (it * bs) as u64,
            bs,
        );
        let mut grad = Vec::new();
        let ev = self.evaluate_batch(&trials, Some(&mut grad))?;
        if !ev.loss.is_finite() {
            return Err(TrainError::NonFinite {
                iteration: it,
                loss: ev.loss,
            });
        }
        for (g, &on) in grad.iter_mut().zip(&self.mask) {
            if !on {
                *g = T::zero();
            }
        }
        clip_global_norm(&mut grad, self.cfg.training.grad_clip);
        let total = self.total_iterations();
        let lr = learning_rate(&self.cfg, it, total);
        self.adam.step(&mut self.theta, &grad, lr, &self.mask);
        self.load_theta();
        self.iteration += 1;
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
        let (eval_every, log_every) = (self.cfg.training.eval_every, self.cfg.training.log_every);
        let validate_now = self.iteration % eval_every == 0 || self.iteration == total;
        if validate_now {
            let v = self.validate()?;
            row.val_loss = Some(v.loss);
            row.val_accuracy = Some(v.accuracy);
            row.val_condition_accuracy = Some(v.condition_accuracy.clone());
            if self.best.as_ref().is_none_or(|b| v.accuracy > b.0) {
                self.best = Some((v.accuracy, self.iteration, self.theta.clone()));
            }
        }
        if validate_now || self.iteration % log_every == 0 || self.iteration == 1 {
            self.metrics.push(row.clone());
        }
        Ok(row)
    }

    /// Named arrays of parameters `theta` (row-major; `C` included so the file is the whole
    /// network).
    pub fn param_arrays(&self, theta: &[T]) -> Vec<NamedArray<T>> {
        let rnn = &self.workers[0];
        let (n, r) = (self.cfg.model.n, self.cfg.model.rank);
        let nr = n * r;
        let nf = rnn.n_params();
        vec![
            NamedArray::from_col_major("C", n, n, rnn.connectivity().bulk()),
            NamedArray::from_col_major("M", n, r, &theta[..nr]),
            NamedArray::from_col_major("N", n, r, &theta[nr..2 * nr]),
            NamedArray::from_col_major("B", n, 4, &theta[2 * nr..nf]),
            NamedArray {
                name: "w".into(),
                shape: vec![n],
                data: theta[nf..nf + n].to_vec(),
            },
            NamedArray {
                name: "b".into(),
                shape: vec![1],
                data: vec![theta[nf + n]],
            },
        ]
    }

    /// Replaces the parameters by those of a parameter file's arrays (as written by
    /// [`param_arrays`](Self::param_arrays)); the fixed bulk `C` must be this config's.
    pub fn load_param_arrays(
        &mut self,
        arrays: &[NamedArray<T>],
        origin: &str,
    ) -> Result<(), TrainError> {
        let bad = |m: String| TrainError::Checkpoint {
            path: origin.to_string(),
            message: m,
        };
        let want = self.param_arrays(&self.theta);
        let mut theta = Vec::with_capacity(self.theta.len());
        for w in &want {
            let a = arrays
                .iter()
                .find(|a| a.name == w.name)
                .ok_or_else(|| bad(format!("array {} is missing", w.name)))?;
            if a.shape != w.shape {
                return Err(bad(format!(
                    "array {} has shape {:?}, the config's model {:?}",
                    w.name, a.shape, w.shape
                )));
            }
            if w.name == "C" {
                if a.data != w.data {
                    return Err(bad("its fixed bulk C is not the one this config's seed draws; evaluate it with the config it was trained with".into()));
                }
                continue;
            }
            if a.shape.len() == 2 {
                theta.extend(a.to_col_major());
            } else {
                theta.extend(&a.data);
            }
        }
        self.theta = theta;
        self.load_theta();
        Ok(())
    }

    /// Writes a checkpoint (optimiser state, best parameters, metrics) crash-safely.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), TrainError> {
        let len = self.theta.len();
        let mut arrays = vec![
            NamedArray {
                name: "theta".into(),
                shape: vec![len],
                data: self.theta.clone(),
            },
            NamedArray {
                name: "adam_m".into(),
                shape: vec![len],
                data: self.adam.m.clone(),
            },
            NamedArray {
                name: "adam_v".into(),
                shape: vec![len],
                data: self.adam.v.clone(),
            },
        ];
        let mut meta = HashMap::new();
        if let Some((acc, it, th)) = &self.best {
            arrays.push(NamedArray {
                name: "best_theta".into(),
                shape: vec![len],
                data: th.clone(),
            });
            meta.insert("best_accuracy".into(), format!("{acc:e}"));
            meta.insert("best_iteration".into(), it.to_string());
        }
        meta.insert("iteration".into(), self.iteration.to_string());
        meta.insert("adam_t".into(), self.adam.t.to_string());
        meta.insert(
            "config".into(),
            toml::to_string(&self.cfg).expect("a config serialises"),
        );
        meta.insert(
            "metrics".into(),
            serde_json::to_string(&self.metrics).expect("metrics serialise"),
        );
        write_safetensors(path, &arrays, meta)?;
        Ok(())
    }

    /// Restores a run from a checkpoint written by [`save_checkpoint`](Self::save_checkpoint)
    /// with the same config.
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
            return Err(bad("it was written with a different config; resume with the config of that run (config.toml in the run directory) or start a new run with --out".into()));
        }
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
        let num = |k: &str| -> Result<u64, TrainError> {
            meta.get(k)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("metadata {k} is missing or not a number")))
        };
        tr.adam.t = num("adam_t")?;
        tr.iteration = num("iteration")? as usize;
        tr.metrics = meta
            .get("metrics")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("metadata metrics is missing or malformed".into()))?;
        if let Some(th) = get("best_theta") {
            let acc: f64 = meta
                .get("best_accuracy")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("best_accuracy missing".into()))?;
            tr.best = Some((acc, num("best_iteration")? as usize, th));
        }
        tr.load_theta();
        Ok(tr)
    }
}

/// What one worker returns: summed loss, outputs, gradient (unnormalised by threads).
struct Chunk<T> {
    loss: f64,
    outputs: Vec<f64>,
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

/// The configured solve of `rnn` over `[0, t_end]`, saving at `times`, on one thread: the
/// training splits its batch over `training.threads` workers itself, each calling this.
pub fn solver<'a, T: Real>(
    cfg: &TrainConfig,
    rnn: &'a LowRankRnn<T>,
    t_end: f64,
    times: Vec<T>,
) -> Integrate<'a, LowRankRnn<T>> {
    let s = &cfg.solver;
    let b = integrate(rnn, (T::zero(), T::from_f64(t_end)))
        .save_at(times)
        .threads(1);
    match s.stepper {
        StepperName::Euler => b
            .stepper(Stepper::Euler)
            .fixed_dt(T::from_f64(s.dt.unwrap_or(0.1))),
        StepperName::Tsit5 => {
            let b = b.tolerances(T::from_f64(s.rtol), T::from_f64(s.atol));
            match s.dt {
                Some(dt) => b.dt0(T::from_f64(dt)),
                None => b,
            }
        }
    }
}

/// Example trials after training: one per context and sign of the cued stimulus.
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

/// Readout traces and state-space trajectories (every `dt_plot` ms) of one example trial per context and
/// sign of the cued stimulus, drawn from the stream `seed`.
pub fn example_traces<T: Real>(
    tr: &Trainer<T>,
    seed: u64,
    dt_plot: f64,
) -> Result<ExampleTraces, TrainError> {
    let cfg = tr.config();
    let spec = tr.spec();
    let mut picked: Vec<(usize, f64, neurode_solvers::PiecewiseConstant<T>)> = Vec::new();
    for i in 0..10_000u64 {
        let (u, y, c) = cfg.task.trial::<T>(seed, i);
        if !picked.iter().any(|p| p.0 == c && p.1 == y.as_f64()) {
            picked.push((c, y.as_f64(), u));
        }
        if picked.len() == 2 * spec.conditions.len() {
            break;
        }
    }
    picked.sort_by(|a, b| (a.0, a.1).partial_cmp(&(b.0, b.1)).expect("finite"));
    let mut rnn = tr.network().clone();
    rnn.set_inputs(picked.iter().map(|p| p.2.clone()).collect())?;
    let steps = (spec.t_end / dt_plot).round() as u64;
    let times: Vec<T> = crate::tasks::grid(dt_plot, 0, steps)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let sol = solver(cfg, &rnn, spec.t_end, times)
        .run()
        .map_err(|e| solve_error(e, tr.iteration(), 0))?;
    let ro = tr.readout();
    let n = rnn.dim();
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
        let name = format!("{}, target {:+}", spec.conditions[*c], y);
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

/// Loss (and gradient) of trials `range` of `trials` on one worker.
#[allow(clippy::too_many_arguments)]
fn run_chunk<T: Real>(
    cfg: &TrainConfig,
    spec: &TaskSpec,
    rnn: &mut LowRankRnn<T>,
    readout: &Readout<T>,
    trials: &TrialBatch<T>,
    range: std::ops::Range<usize>,
    total: usize,
    want_grad: bool,
    iteration: usize,
) -> Result<Chunk<T>, TrainError> {
    let lo = range.start;
    let batch = range.len();
    let n = cfg.model.n;
    let nf = rnn.n_params();
    if batch == 0 {
        return Ok(Chunk {
            loss: 0.0,
            outputs: vec![],
            grad: vec![T::zero(); nf + n + 1],
            accepted: 0,
        });
    }
    rnn.set_inputs(trials.inputs[range.clone()].to_vec())?;
    let rnn: &LowRankRnn<T> = rnn;
    let times: Vec<T> = spec.loss_times.iter().map(|&t| T::from_f64(t)).collect();
    let k = times.len();
    let b = solver(cfg, rnn, spec.t_end, times);
    let (sol, tape) = if want_grad {
        let (sol, tape) = b
            .checkpoints(Checkpoints::default())
            .run_with_gradient()
            .map_err(|e| solve_error(e, iteration, lo))?;
        (sol, Some(tape))
    } else {
        (b.run().map_err(|e| solve_error(e, iteration, lo))?, None)
    };
    let accepted = (0..batch).map(|j| sol.trial_stats(j).accepted).sum();
    // Averaged readout and dL/dŷ per trial.
    let mut outputs = Vec::with_capacity(batch);
    let mut dy = Vec::with_capacity(batch);
    let mut loss = 0.0;
    let inv_k = 1.0 / k as f64;
    for j in 0..batch {
        let y: f64 = (0..k)
            .map(|i| readout.output(sol.state(i, j)).as_f64())
            .sum::<f64>()
            * inv_k;
        let target = trials.targets[lo + j].as_f64();
        let (l, d) = match cfg.training.loss {
            LossKind::Mse => ((y - target).powi(2), 2.0 * (y - target)),
            LossKind::Bce => {
                let p = 0.5 * (target + 1.0);
                let softplus = if y > 0.0 {
                    y + (-y).exp().ln_1p()
                } else {
                    y.exp().ln_1p()
                };
                (softplus - p * y, 1.0 / (1.0 + (-y).exp()) - p)
            }
        };
        loss += l;
        outputs.push(y);
        dy.push(d / total as f64);
    }
    let mut grad = vec![T::zero(); nf + n + 1];
    if let Some(tape) = tape {
        let mut dl = vec![T::zero(); sol.states().len()];
        let (dw, db) = grad[nf..].split_at_mut(n);
        let mut dbias = T::zero();
        for i in 0..k {
            for (j, &dyj) in dy.iter().enumerate() {
                let o = (i * batch + j) * n;
                dbias += readout.backward(
                    sol.state(i, j),
                    T::from_f64(dyj * inv_k),
                    &mut dl[o..o + n],
                    dw,
                );
            }
        }
        db[0] = dbias;
        let g = tape
            .backward(&dl)
            .map_err(|e| solve_error(e, iteration, lo))?;
        grad[..nf].copy_from_slice(&g.params);
    }
    Ok(Chunk {
        loss,
        outputs,
        grad,
        accepted,
    })
}
