//! Splitting a solve over threads, one of two ways ([`layout`]):
//!
//! - **blocks of trials**: contiguous blocks, one solver each on its own thread, merged back
//!   in trial order. Trials are independent (a trial's steps and states never depend on its
//!   batch-mates), so the merged solution is the one a single thread would give, bit for
//!   bit. Used when every thread gets many trials.
//! - **a team**: one solver for all trials on the calling thread, its weight products split
//!   by rows among the team's threads (see the CPU backend's `team`). Used when the trials
//!   are few per thread: a product with few columns runs far below the core's peak, while
//!   a row split keeps every column and gives each core its share of the weights to keep
//!   in cache (one trial of a 500-unit network: 1.7x faster on two cores than on one).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::backend::with_team;
use crate::field::VectorField;
use crate::scalar::Real;
use crate::solution::{Solution, Stats};
use crate::solve::{plan_warnings, Plan, Recorder, Solver};

/// Passed to the progress callback after every iteration of the batched stepping loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time reached by the slowest trial still running (`t1` when all are done).
    pub t: f64,
    /// Start of the span.
    pub t0: f64,
    /// End of the span.
    pub t1: f64,
    /// Iterations of the stepping loop so far.
    pub steps: usize,
    /// Trials still running.
    pub running: usize,
    /// Batch size.
    pub batch: usize,
}

impl Progress {
    /// Fraction of the span done by the slowest running trial, in `[0, 1]`.
    pub fn fraction(&self) -> f64 {
        ((self.t - self.t0) / (self.t1 - self.t0)).clamp(0.0, 1.0)
    }
}

/// The progress callback of a solve.
pub(crate) type ProgressFn<'a> = Box<dyn FnMut(&Progress) + 'a>;

/// Fewest state values (`dim x trials`) a thread is given before a solve is split: below
/// it, starting a thread costs more than it saves.
pub const MIN_ELEMENTS_PER_THREAD: usize = 2048;

/// Fewest trials per thread for which a solve is split into blocks of trials rather than
/// run by one solver with a team of threads sharing its products. Measured on 2 cores
/// (`cargo bench --bench grid`, Tsit5 forward): 32 trials of 100 to 500 units ran 1.2 to
/// 2.1 times faster in two blocks than with a team (N = 500: 73 against 89 ms), 2,000
/// units about as fast; 8 trials of 500 units 1.3 times faster with a team.
pub const MIN_TRIALS_PER_BLOCK: usize = 16;

/// Fewest multiply-adds of one right-hand side of the whole batch
/// ([`VectorField::work_per_column`] x trials) for which a solve whose state is too small to
/// split ([`MIN_ELEMENTS_PER_THREAD`]) still gets a team: its products are large enough to
/// share (one trial of a 500-unit network: 250,000).
pub const MIN_TEAM_WORK: usize = 1 << 17;

/// How a solve of `batch` trials of dimension `dim`, each right-hand side costing `work`
/// multiply-adds per trial, uses `threads` threads: the blocks of trials, one solver each,
/// and the size of the team each solver shares its products with. At most `threads`
/// threads in all, at least [`MIN_ELEMENTS_PER_THREAD`] state values per thread (or all
/// of them when the products reach [`MIN_TEAM_WORK`]); blocks when each gets at least
/// [`MIN_TRIALS_PER_BLOCK`] trials, else one solver and a team.
///
/// ```
/// // 32 trials of a 500-unit network on 2 threads: two blocks of 16, no team.
/// assert_eq!(neurode_solvers::layout(32, 500, 250_000, 2), (vec![0..16, 16..32], 1));
/// ```
pub fn layout(
    batch: usize,
    dim: usize,
    work: usize,
    threads: usize,
) -> (Vec<std::ops::Range<usize>>, usize) {
    let by_size = (dim * batch / MIN_ELEMENTS_PER_THREAD).max(1);
    let by_work = if work.saturating_mul(batch) >= MIN_TEAM_WORK {
        threads
    } else {
        1
    };
    let k = threads.min(by_size.max(by_work)).max(1);
    if k > 1 && batch < k * MIN_TRIALS_PER_BLOCK {
        #[allow(clippy::single_range_in_vec_init)]
        return (vec![0..batch], k);
    }
    (blocks(batch, k), 1)
}

/// `0..batch` in `k` contiguous blocks (fewer if `batch < k`).
fn blocks(batch: usize, k: usize) -> Vec<std::ops::Range<usize>> {
    let k = k.min(batch).max(1);
    let (q, r) = (batch / k, batch % k);
    let mut out = Vec::with_capacity(k);
    let mut a = 0;
    for i in 0..k {
        let len = q + usize::from(i < r);
        out.push(a..a + len);
        a += len;
    }
    out
}

/// A merged solution, every block's plan and recorder in trial order, and the team size
/// each block ran with.
pub(crate) type Split<T, R> = (Solution<T>, Vec<(Plan<T>, R)>, usize);

/// Latest progress of every block, written by its thread.
struct Board {
    tmin: Vec<AtomicU64>,
    running: Vec<AtomicUsize>,
    steps: Vec<AtomicUsize>,
}

impl Board {
    fn new(k: usize, running: impl Fn(usize) -> usize) -> Self {
        Board {
            tmin: (0..k)
                .map(|_| AtomicU64::new(f64::NEG_INFINITY.to_bits()))
                .collect(),
            running: (0..k).map(|i| AtomicUsize::new(running(i))).collect(),
            steps: (0..k).map(|_| AtomicUsize::new(0)).collect(),
        }
    }
    fn publish(&self, i: usize, tmin: f64, running: usize, steps: usize) {
        self.tmin[i].store(tmin.to_bits(), Ordering::Relaxed);
        self.running[i].store(running, Ordering::Relaxed);
        self.steps[i].store(steps, Ordering::Relaxed);
    }
    /// `(slowest running t or +inf, running trials, most iterations)`.
    fn read(&self) -> (f64, usize, usize) {
        let mut out = (f64::INFINITY, 0, 0);
        for i in 0..self.tmin.len() {
            let run = self.running[i].load(Ordering::Relaxed);
            if run > 0 {
                out.0 = out
                    .0
                    .min(f64::from_bits(self.tmin[i].load(Ordering::Relaxed)));
            }
            out.1 += run;
            out.2 = out.2.max(self.steps[i].load(Ordering::Relaxed));
        }
        out
    }
}

/// Solves `plan` split over `threads` (block 0 on the calling thread, which also calls
/// `progress`); returns the merged solution and each block's plan and recorder.
pub(crate) fn solve_split<F, R>(
    field: &F,
    plan: Plan<F::Scalar>,
    threads: usize,
    progress: Option<ProgressFn<'_>>,
    make: impl Fn(&Plan<F::Scalar>) -> R + Sync,
) -> Split<F::Scalar, R>
where
    F: VectorField,
    R: Recorder<F::Scalar> + Send,
{
    let warnings = plan_warnings(&plan.mode);
    let (blocks, team) = layout(plan.batch, plan.dim, field.work_per_column(), threads);
    let parts: Vec<Plan<F::Scalar>> = blocks.into_iter().map(|r| plan.trials(r)).collect();
    let (t0, t1, batch) = (plan.t0.as_f64(), plan.t1.as_f64(), plan.batch);
    let board = Board::new(parts.len(), |i| parts[i].batch);
    let mut progress = progress;
    let mut report0 = |tmin: f64, run: usize, steps: usize| {
        board.publish(0, tmin, run, steps);
        if let Some(cb) = progress.as_mut() {
            let (tmin, running, steps) = board.read();
            cb(&Progress {
                t: if running == 0 { t1 } else { tmin },
                t0,
                t1,
                steps,
                running,
                batch,
            });
        }
    };
    let results: Vec<(Solution<F::Scalar>, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, part)| {
                let (board, make) = (&board, &make);
                scope.spawn(move || {
                    let mut report =
                        |tmin: f64, run: usize, steps: usize| board.publish(i, tmin, run, steps);
                    Solver::new(field, part.clone(), make(part)).run(Some(&mut report))
                })
            })
            .collect();
        let first = with_team(team, || {
            Solver::new(field, parts[0].clone(), make(&parts[0])).run(Some(&mut report0))
        });
        let mut all = vec![first];
        for h in handles {
            all.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        all
    });
    let (sols, recs): (Vec<_>, Vec<_>) = results.into_iter().unzip();
    let mut sol = merge(sols);
    sol.warnings = warnings;
    (sol, parts.into_iter().zip(recs).collect(), team)
}

/// One solution of the blocks' solutions, in block order.
fn merge<T: Real>(mut parts: Vec<Solution<T>>) -> Solution<T> {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let dim = parts[0].dim;
    let batch: usize = parts.iter().map(|s| s.batch).sum();
    let n_save = parts[0].ts.len();
    let mut xs = Vec::with_capacity(n_save * dim * batch);
    for i in 0..n_save {
        for s in &parts {
            let n = s.dim * s.batch;
            xs.extend_from_slice(&s.xs[i * n..(i + 1) * n]);
        }
    }
    let mut stats = Stats::default();
    for s in &parts {
        stats.steps = stats.steps.max(s.stats.steps);
        stats.accepted += s.stats.accepted;
        stats.rejected += s.stats.rejected;
        stats.rhs_evals += s.stats.rhs_evals;
        stats.columns += s.stats.columns;
    }
    let mut first = parts.remove(0);
    first.xs = xs;
    first.batch = batch;
    first.stats = stats;
    for s in parts {
        first.saved.extend(s.saved);
        first.t_final.extend(s.t_final);
        first.x_final.extend(s.x_final);
        first.status.extend(s.status);
        first.trial_stats.extend(s.trial_stats);
        if let (Some(a), Some(b)) = (first.step_ts.as_mut(), s.step_ts) {
            a.extend(b);
        }
        if let (Some(a), Some(b)) = (first.step_xs.as_mut(), s.step_xs) {
            a.extend(b);
        }
        if let (Some(a), Some(b)) = (first.step_log.as_mut(), s.step_log) {
            a.extend(b);
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn layouts_cover_the_batch_in_order() {
        // Many trials per thread: blocks.
        assert_eq!(layout(128, 500, 500, 2), (vec![0..64, 64..128], 1));
        assert_eq!(layout(1001, 100, 100, 2), (vec![0..501, 501..1001], 1));
        assert_eq!(
            layout(1000, 64, 64, 3),
            (vec![0..334, 334..667, 667..1000], 1)
        );
        assert_eq!(layout(32, 500, 500, 2), (vec![0..16, 16..32], 1));
        // Few trials per thread: one solver and a team.
        assert_eq!(layout(24, 500, 500, 2), (vec![0..24], 2));
        assert_eq!(layout(1, 100_000, 100_000, 2), (vec![0..1], 2));
        assert_eq!(layout(3, 4096, 4096, 8), (vec![0..3], 6));
        // One trial of a network with large products: a team although its state is small.
        assert_eq!(layout(1, 500, 250_000, 2), (vec![0..1], 2));
        assert_eq!(layout(1, 500, 250_000, 8), (vec![0..1], 8));
        // Small problems stay on one thread.
        assert_eq!(layout(4, 10, 10, 2), (vec![0..4], 1));
        assert_eq!(layout(1, 200, 40_000, 2), (vec![0..1], 1));
        assert_eq!(layout(32, 500, 500, 1), (vec![0..32], 1));
    }
}
