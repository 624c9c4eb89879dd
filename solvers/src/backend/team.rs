//! A team of threads for the products of one solve (intra-op parallelism of the CPU
//! backend).
//!
//! A solve with few trials per core (one trial, or 8 trials of 500 units on 2 cores) gains
//! little from splitting its trials over threads: each thread's product then has fewer
//! columns and the weight matrix is streamed once per thread. Splitting each product by
//! **rows** instead keeps all columns together and gives each core half of the weights,
//! which then stay in its own cache. [`with_team`] runs a closure on the calling thread
//! with `size - 1` helper threads standing by; while it runs,
//! [`Cpu::gemm_panels`](super::Cpu) hands each member a contiguous range of row panels.
//! Each output element is computed by the same kernel call as on one thread, so the results
//! are the same bits whatever the team size.
//!
//! Hand-written rather than a thread-pool crate: a product takes 60–300 µs, and a helper
//! must pick it up within a microsecond or two. Helpers spin briefly on an epoch counter,
//! then yield, then park; the caller only unparks a helper that said it sleeps. Nothing is
//! allocated per job.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;

/// A job: called once per member with the member index (`0` is the calling thread).
type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// Fewest elements an elementwise pass (or per-trial loop) must touch before it is shared
/// out among a team: below it, waking the helpers costs more than the work.
pub(crate) const MIN_SHARED_WORK: usize = 4096;

/// Spins (with the CPU's pause hint) before a waiting helper starts yielding.
const SPINS: u32 = 4_000;
/// Yields before a waiting helper parks.
const YIELDS: u32 = 2_000;

struct Team {
    size: usize,
    /// Incremented for every job; helpers run a job when it changes.
    epoch: AtomicUsize,
    /// The current job; written by the caller before `epoch` is bumped (Release) and read
    /// by the helpers after they see the new epoch (Acquire).
    job: UnsafeCell<Option<*const Job<'static>>>,
    /// Helpers that finished the current job.
    done: AtomicUsize,
    /// A helper panicked inside a job.
    panicked: AtomicBool,
    stop: AtomicBool,
    /// Per helper: it is parked or about to park, and its handle.
    sleeping: Vec<AtomicBool>,
    threads: Vec<Thread>,
}

// SAFETY: `job` is only written by the owning thread while no helper reads it (between
// jobs: every helper has finished the previous one), and read by helpers only after the
// epoch store that publishes it.
unsafe impl Sync for Team {}
// SAFETY: as above; the job pointer is only dereferenced while its job runs.
unsafe impl Send for Team {}

thread_local! {
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Members of the team the calling thread leads (1 when none).
pub(crate) fn size() -> usize {
    CURRENT.with(|c| {
        let t = c.get();
        if t.is_null() {
            1
        } else {
            // SAFETY: `CURRENT` is set only inside `with_team`, while the team lives.
            unsafe { (*t).size }
        }
    })
}

/// Runs `job(i)` for every member `i` of the calling thread's team (just `job(0)` when it
/// has none) and returns when all have finished.
///
/// # Panics
/// If a member panicked in `job`.
pub(crate) fn run(job: &Job<'_>) {
    let team = CURRENT.with(|c| c.get());
    if team.is_null() {
        job(0);
        return;
    }
    // SAFETY: set only inside `with_team`, while the team lives; only its owner (this
    // thread) gets here, and a helper calling `run` from inside a job sees no team.
    let team = unsafe { &*team };
    // SAFETY: the lifetime is erased only for the duration of this call: `Wait` below
    // returns (also on unwind) only after every helper has finished the job.
    let ptr: *const Job<'static> = unsafe { std::mem::transmute(job as *const Job<'_>) };
    // SAFETY: no helper reads `job` now (all finished the previous job).
    unsafe { *team.job.get() = Some(ptr) };
    team.done.store(0, Ordering::Relaxed);
    team.epoch.fetch_add(1, Ordering::SeqCst);
    for (s, th) in team.sleeping.iter().zip(&team.threads) {
        if s.load(Ordering::SeqCst) {
            th.unpark();
        }
    }
    /// Waits for the helpers and gives the calling thread its team back, also on unwind.
    struct Wait<'t>(&'t Team);
    impl Drop for Wait<'_> {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0 as *const Team));
            let helpers = self.0.size - 1;
            let mut spins = 0u32;
            while self.0.done.load(Ordering::Acquire) < helpers {
                spins += 1;
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
    let wait = Wait(team);
    // Inside its share of the job the calling thread has no team: a backend call made
    // there runs alone, as on the helpers.
    CURRENT.with(|c| c.set(std::ptr::null()));
    job(0);
    drop(wait);
    if team.panicked.load(Ordering::Relaxed) {
        panic!("a thread of the solve's team panicked (see its message above)");
    }
}

/// Members of the calling thread's team that share a job of `work` elements split into
/// `units` parts: 1 when the work is under `min_work` (waking the helpers would cost more),
/// else the team's size, at most `units`.
pub(crate) fn members(work: usize, min_work: usize, units: usize) -> usize {
    if work < min_work {
        1
    } else {
        size().min(units)
    }
}

/// Runs `job(i)` for members `i < members` of the calling thread's team (the others skip
/// it), or just `job(0)` when `members <= 1`.
pub(crate) fn share(members: usize, job: &Job<'_>) {
    if members <= 1 {
        job(0);
    } else {
        run(&|m| {
            if m < members {
                job(m)
            }
        });
    }
}

/// Calls `f(start, part)` for contiguous parts `out[start * unit..][..part.len()]` of
/// `out`, whole multiples of `unit` elements (a column, say), one per member of the
/// calling thread's team (all of `out` at once without a team or when `work`, the elements
/// touched in all, is under `min_work`).
pub(crate) fn for_parts<U: Send>(
    out: &mut [U],
    unit: usize,
    work: usize,
    min_work: usize,
    f: &(dyn Fn(usize, &mut [U]) + Sync),
) {
    let units = out.len() / unit.max(1);
    let members = members(work, min_work, units);
    if members <= 1 {
        return f(0, out);
    }
    let (unit, len) = (unit.max(1), out.len());
    let ptr = PartPtr(out.as_mut_ptr());
    share(members, &|m| {
        let first = units * m / members;
        let lo = first * unit;
        // The last member also takes what is left past the whole units.
        let hi = if m + 1 == members {
            len
        } else {
            units * (m + 1) / members * unit
        };
        // SAFETY: the members' ranges are disjoint and inside `out`, which stays borrowed
        // until every member has finished.
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(lo), hi - lo) };
        f(first, part)
    });
}

/// The output pointer [`for_parts`] shares (each member reaches disjoint elements).
struct PartPtr<U>(*mut U);
// SAFETY: only disjoint elements are reached through it (see `for_parts`).
unsafe impl<U: Send> Sync for PartPtr<U> {}

impl<U> PartPtr<U> {
    fn get(&self) -> *mut U {
        self.0
    }
}

/// Runs `f` on the calling thread with a team of `size` threads (`size - 1` helpers,
/// started here and stopped on return) that the [`Cpu`](super::Cpu) backend shares its
/// large operations with: a product with a matrix kept as [`Panels`](super::Panels) is
/// split by row panels, elementwise operations by ranges. Results are the same bits as on
/// one thread. `size <= 1` runs `f` alone.
///
/// The integrator does this itself when a solve has few trials per thread (see
/// [`Integrate::threads`](crate::Integrate::threads)); call it to share the products of
/// your own loops (a model's VJPs outside a solve, say). Helpers spin while they wait, so
/// keep `f` busy with backend work. Teams do not nest: inside a team, `f` runs with the
/// team that is there.
///
/// ```
/// use neurode_solvers::{with_team, Backend, Cpu, Panels};
///
/// let n = 300;
/// let a: Vec<f64> = (0..n * n).map(|i| (i % 7) as f64 - 3.0).collect();
/// let x: Vec<f64> = (0..n * 8).map(|i| (i % 5) as f64).collect();
/// let p = Panels::from_col_major(n, n, &a);
/// let (mut one, mut two) = (vec![0.0; n * 8], vec![0.0; n * 8]);
/// Cpu.gemm_panels(&p, 8, 1.0, &x, n, 0.0, &mut one, n);
/// with_team(2, || Cpu.gemm_panels(&p, 8, 1.0, &x, n, 0.0, &mut two, n));
/// assert_eq!(one, two);
/// ```
pub fn with_team<R>(size: usize, f: impl FnOnce() -> R) -> R {
    if size <= 1 || self::size() > 1 {
        return f();
    }
    let team_slot: std::sync::OnceLock<Team> = std::sync::OnceLock::new();
    let ready = std::sync::Barrier::new(size);
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(size - 1);
        for member in 1..size {
            let (team_slot, ready) = (&team_slot, &ready);
            handles.push(scope.spawn(move || {
                ready.wait();
                helper(
                    team_slot.get().expect("the team is set before the barrier"),
                    member,
                )
            }));
        }
        let threads = handles.iter().map(|h| h.thread().clone()).collect();
        let team = team_slot.get_or_init(|| Team {
            size,
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleeping: (1..size).map(|_| AtomicBool::new(false)).collect(),
            threads,
        });
        ready.wait();
        /// Stops the helpers and clears `CURRENT`, also on unwind.
        struct Leave<'t>(&'t Team);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(std::ptr::null()));
                self.0.stop.store(true, Ordering::SeqCst);
                for th in &self.0.threads {
                    th.unpark();
                }
            }
        }
        let leave = Leave(team);
        CURRENT.with(|c| c.set(team as *const Team));
        let out = f();
        drop(leave);
        out
    })
}

/// A helper's loop: wait for a new epoch, run the job as `member`, count it done.
fn helper(team: &Team, member: usize) {
    let sleeping = &team.sleeping[member - 1];
    let mut seen = 0usize;
    loop {
        let (mut spins, mut yields) = (0u32, 0u32);
        loop {
            let e = team.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if team.stop.load(Ordering::SeqCst) {
                return;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else if yields < YIELDS {
                yields += 1;
                std::thread::yield_now();
            } else {
                sleeping.store(true, Ordering::SeqCst);
                if team.epoch.load(Ordering::SeqCst) == seen && !team.stop.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                sleeping.store(false, Ordering::SeqCst);
            }
        }
        // SAFETY: the epoch load (Acquire) above saw the store that followed the write of
        // `job`; the caller keeps the job alive until `done` counts this helper.
        let job = unsafe { *team.job.get() };
        if let Some(job) = job {
            // SAFETY: see above: alive until this helper reports done.
            let job = unsafe { &*job };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(member))).is_err() {
                team.panicked.store(true, Ordering::Relaxed);
            }
        }
        team.done.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_runs_every_job_once() {
        let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        with_team(3, || {
            assert_eq!(size(), 3);
            for _ in 0..1000 {
                run(&|m| {
                    hits[m].fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        for h in &hits {
            assert_eq!(h.load(Ordering::Relaxed), 1000);
        }
        assert_eq!(size(), 1, "the team is gone after with_team");
    }

    #[test]
    fn inside_a_job_there_is_no_team() {
        let nested = AtomicUsize::new(0);
        with_team(2, || {
            run(&|_| {
                assert_eq!(size(), 1);
                // A nested call runs its job once, here.
                run(&|m| {
                    assert_eq!(m, 0);
                    nested.fetch_add(1, Ordering::Relaxed);
                });
            });
            assert_eq!(size(), 2, "the team is back after the job");
        });
        assert_eq!(nested.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn parts_cover_the_output_in_whole_units() {
        for (len, unit) in [(1000, 10), (1003, 10), (7, 3), (50, 1)] {
            let mut out = vec![0usize; len];
            with_team(3, || {
                for_parts(&mut out, unit, usize::MAX, 0, &|first, part| {
                    assert!(part.len() >= unit.min(len), "{len} {unit}");
                    for (i, v) in part.iter_mut().enumerate() {
                        *v += first * unit + i + 1;
                    }
                })
            });
            let want: Vec<usize> = (1..=len).collect();
            assert_eq!(out, want, "{len} {unit}");
        }
    }

    #[test]
    fn helpers_wake_after_parking() {
        let sum = AtomicUsize::new(0);
        with_team(2, || {
            for i in 0..3 {
                if i > 0 {
                    // Long enough for the helper to spin, yield and park.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                run(&|m| {
                    sum.fetch_add(m + 1, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3 * 3);
    }

    #[test]
    fn without_a_team_the_job_runs_once_here() {
        let n = AtomicUsize::new(0);
        run(&|m| {
            assert_eq!(m, 0);
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_helper_panic_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            with_team(2, || {
                run(&|m| {
                    if m == 1 {
                        panic!("member 1 fails");
                    }
                })
            })
        });
        assert!(r.is_err());
        assert_eq!(size(), 1);
    }
}
