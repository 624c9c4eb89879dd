//! Independent jobs on a few threads: each thread takes the next job as it finishes one, so
//! jobs of uneven length balance; the results come back in job order, whatever the thread
//! count. Used by `neurode sweep` (one seed a job) and `neurode spiking` (one trial a job).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `job(&mut state, k)` for every `k` in `0..count` on up to `threads` threads (at least
/// one), each thread with a `state` of its own from `init` (scratch it reuses across its
/// jobs); returns the results in the order of `k`.
///
/// ```
/// let squares = neurode::jobs::run(5, 2, || 0usize, |calls, k| {
///     *calls += 1;
///     k * k
/// });
/// assert_eq!(squares, vec![0, 1, 4, 9, 16]);
/// ```
pub fn run<S, R: Send>(
    count: usize,
    threads: usize,
    init: impl Fn() -> S + Sync,
    job: impl Fn(&mut S, usize) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, count.max(1)) {
            s.spawn(|| {
                let mut state = init();
                let mut mine = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= count {
                        break;
                    }
                    mine.push((k, job(&mut state, k)));
                }
                done.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}
