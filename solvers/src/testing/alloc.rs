//! A counting global allocator for memory and no-allocation tests and benches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static THREAD_ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting allocations (in all, and per thread), live bytes and the
/// peak of live bytes. Install it in a test or bench binary:
///
/// ```
/// use neurode_solvers::testing::CountingAllocator;
///
/// #[global_allocator]
/// static ALLOC: CountingAllocator = CountingAllocator::new();
///
/// let before = CountingAllocator::thread_allocs();
/// let v = vec![1.0f64; 1000];
/// assert!(CountingAllocator::thread_allocs() > before);
/// # drop(v);
/// ```
///
/// Allocations of other threads (a test harness reporting another test's result, say) show
/// in [`allocs`](Self::allocs) and the byte counts but not in
/// [`thread_allocs`](Self::thread_allocs).
#[derive(Debug)]
pub struct CountingAllocator {
    allocs: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingAllocator {
    /// A fresh counter (for a `static`).
    pub const fn new() -> Self {
        CountingAllocator {
            allocs: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Allocations and reallocations so far, all threads.
    pub fn allocs(&self) -> usize {
        self.allocs.load(Ordering::Relaxed)
    }

    /// Allocations and reallocations made so far by the calling thread (any counting
    /// allocator: the count is per thread, not per instance).
    pub fn thread_allocs() -> usize {
        THREAD_ALLOCS.with(Cell::get)
    }

    /// Bytes allocated and not yet freed.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Starts a peak measurement: returns the live bytes now, the baseline to subtract from
    /// [`peak`](Self::peak).
    pub fn reset_peak(&self) -> usize {
        let base = self.live();
        self.peak.store(base, Ordering::Relaxed);
        base
    }

    /// Highest live bytes since the last [`reset_peak`](Self::reset_peak).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn count(&self, grow: usize) {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // `try_with`: the slot may already be gone while a thread is torn down.
        let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
        let now = self.live.fetch_add(grow, Ordering::Relaxed) + grow;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are
// updated besides.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        self.count(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
