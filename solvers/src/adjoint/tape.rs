//! What the forward pass records for the reverse sweep: per trial, the accepted steps and
//! where each save came from, checkpointed states, and the stage states of as many steps as
//! fit.

use crate::backend::{for_parts, MIN_SHARED_WORK};
use crate::gradient::Checkpoints;
use crate::rk::Stages;
use crate::scalar::Real;
use crate::solve::{Recorder, SavePoint};

/// Where a saved state came from in the forward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SaveSrc {
    /// The initial state.
    Initial,
    /// The end of accepted step `n` (`x_{n+1}`).
    End(usize),
    /// Dense output inside accepted step `n` at `θ = (t - t_n) / h_n`.
    Dense(usize, f64),
}

/// Checkpointed states at step indices `0, stride, 2 stride, ...` (per trial, its own
/// accepted-step index); the stride doubles when the slots are full.
#[derive(Debug)]
pub(crate) struct CheckpointStore<T: Real> {
    pub(crate) slots: Vec<Vec<T>>,
    /// Slots from this one on were added since the last [`fill_fresh`](Self::fill_fresh):
    /// memory with room for a state but nothing in it yet.
    fresh: usize,
    cap: Option<usize>,
    pub(crate) stride: usize,
    dim: usize,
    len: usize,
}

impl<T: Real> CheckpointStore<T> {
    pub(crate) fn new(cap: Option<usize>, dim: usize, batch: usize) -> Self {
        CheckpointStore {
            slots: Vec::new(),
            fresh: 0,
            cap,
            stride: 1,
            dim,
            len: dim * batch,
        }
    }

    /// The slot that step index `idx` is recorded in (a fresh one when new: its columns
    /// are written through [`col_ptr`](Self::col_ptr), then [`fill_fresh`](Self::fill_fresh)
    /// completes it), after thinning the checkpoints if they are full (which needs no
    /// fresh slot); `None` when `idx` is not a checkpoint.
    fn place(&mut self, idx: usize) -> Option<usize> {
        loop {
            if !idx.is_multiple_of(self.stride) {
                return None;
            }
            let j = idx / self.stride;
            if let Some(cap) = self.cap {
                if j >= cap {
                    debug_assert_eq!(self.fresh, self.slots.len(), "thinning moves fresh slots");
                    // Thin: keep every other checkpoint.
                    self.stride *= 2;
                    let keep = cap.div_ceil(2);
                    for i in 1..keep {
                        if 2 * i < self.slots.len() {
                            self.slots.swap(i, 2 * i);
                        }
                    }
                    continue;
                }
            }
            while self.slots.len() <= j {
                // Memory kept from an earlier gradient when there is some (see `chunk_cache`).
                let mut slot: Vec<T> = chunk_cache::take(self.len);
                slot.reserve_exact(self.len);
                self.slots.push(slot);
            }
            return Some(j);
        }
    }

    /// Where trial `b`'s column of slot `j` starts (inside the slot's memory, written or
    /// not).
    fn col_ptr(&mut self, j: usize, b: usize) -> *mut T {
        let o = b * self.dim;
        assert!(
            o + self.dim <= self.slots[j].capacity(),
            "a column inside the slot"
        );
        // SAFETY: in bounds of the slot's allocation (checked above).
        unsafe { self.slots[j].as_mut_ptr().add(o) }
    }

    /// Completes the fresh slots: the columns whose start `written` says was written
    /// through (a pointer from [`col_ptr`](Self::col_ptr)) are kept, the others filled with
    /// NaN.
    fn fill_fresh(&mut self, written: impl Fn(*const T) -> bool) {
        let (dim, len) = (self.dim, self.len);
        for slot in &mut self.slots[self.fresh..] {
            let spare = &mut slot.spare_capacity_mut()[..len];
            for col in spare.chunks_exact_mut(dim.max(1)) {
                if !written(col.as_ptr().cast()) {
                    for v in col {
                        v.write(T::nan());
                    }
                }
            }
            // SAFETY: every column of the first `len` values is written: by the caller
            // (`written`) or above.
            unsafe { slot.set_len(len) };
        }
        self.fresh = self.slots.len();
    }

    /// Whether recording step index `idx` thins the checkpoints.
    fn thins(&self, idx: usize) -> bool {
        idx.is_multiple_of(self.stride) && self.cap.is_some_and(|cap| idx / self.stride >= cap)
    }

    /// Number of states allocated.
    pub(crate) fn n_states(&self) -> usize {
        self.slots.len()
    }

    /// Whether recording step index `idx` allocates a new slot.
    fn needs_slot(&self, idx: usize) -> bool {
        let j = idx / self.stride;
        idx.is_multiple_of(self.stride)
            && j >= self.slots.len()
            && self.cap.is_none_or(|cap| j < cap)
    }
}

impl<T: Real> Drop for CheckpointStore<T> {
    fn drop(&mut self) {
        for slot in self.slots.drain(..) {
            chunk_cache::give(slot);
        }
    }
}

/// Steps per allocation of a [`StageStore`] (so that a trial's store grows without
/// reallocating what it holds).
const STAGE_CHUNK: usize = 32;

/// The stage states of every trial's steps `0 .. limit`, kept within a byte budget: the
/// reverse sweep recomputes nothing for those steps (and recomputes the later ones from
/// the checkpoints). A step keeps `X_1 .. X_{s-1}`, or `X_1 .. X_{s-2}` for a FSAL method,
/// whose last stage state is the next step's first (the solution, the same bits); `X_0`,
/// the state at the step's start, is the checkpoint of that step, which the store relies
/// on: it lives only while every step is checkpointed (stride 1) and is dropped when the
/// checkpoints thin. For Euler a step keeps nothing: the checkpoints are the whole record.
#[derive(Debug)]
pub(crate) struct StageStore<T: Real> {
    /// Per trial: chunks of [`STAGE_CHUNK`] steps, each step `per_step` values, stage-major.
    trials: Vec<Vec<Vec<T>>>,
    per_step: usize,
    bytes: usize,
    /// Every trial's steps below this index are stored (`usize::MAX` while all fit).
    limit: usize,
    /// A round's destinations: (spare capacity, trial, packed column).
    dst: Vec<(Shared<*mut T>, usize, usize)>,
}

/// A pointer the team's members share: where [`StageStore::push`] writes a step, or the
/// source and destination of a checkpoint copy (each member reaches its own elements).
#[derive(Clone, Copy, Debug)]
struct Shared<P>(P);
// SAFETY: each pointer reaches elements that one member alone writes (spare capacity of
// one trial's chunk, one trial's column of a checkpoint slot) while their owner is
// borrowed mutably.
unsafe impl<T: Send> Send for Shared<*mut T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<*mut T> {}
// SAFETY: read only, while the solver leaves the state alone (until the round ends).
unsafe impl<T: Sync> Send for Shared<*const T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Shared<*const T> {}

impl<T: Real> StageStore<T> {
    pub(crate) fn new(batch: usize, per_step: usize) -> Self {
        StageStore {
            trials: vec![Vec::new(); batch],
            per_step,
            bytes: 0,
            limit: usize::MAX,
            dst: Vec::with_capacity(batch),
        }
    }

    /// Stores the steps of a round: for each `(b, p)` of `accepted`, trial `b`'s step
    /// `idx(b)` (its steps arrive in order) from packed column `p` of `xs`, unless it is at or past the limit or the store would grow past `cap` bytes
    /// (which lowers the limit to that step). The copies are shared out among the team.
    pub(crate) fn push(
        &mut self,
        accepted: &[(usize, usize)],
        idx: impl Fn(usize) -> usize,
        xs: Stages<'_, T>,
        dim: usize,
        cap: Option<usize>,
    ) {
        let per_step = self.per_step;
        if per_step == 0 {
            return;
        }
        let add = STAGE_CHUNK * per_step * std::mem::size_of::<T>();
        self.dst.clear();
        for &(b, p) in accepted {
            let i = idx(b);
            if i >= self.limit {
                continue;
            }
            let chunks = &mut self.trials[b];
            if chunks.last().is_none_or(|c| c.len() == c.capacity()) {
                if cap.is_some_and(|cap| self.bytes + add > cap) {
                    self.limit = i;
                    continue;
                }
                self.bytes += add;
                chunks.push(chunk_cache::take(STAGE_CHUNK * per_step));
            }
            let c = chunks.last_mut().expect("a chunk with room");
            // Room for a whole step: chunks hold whole steps.
            let spare = c.spare_capacity_mut();
            debug_assert!(spare.len() >= per_step);
            self.dst.push((Shared(spare.as_mut_ptr().cast()), b, p));
        }
        let work = self.dst.len() * per_step;
        for_parts(&mut self.dst, 1, work, MIN_SHARED_WORK, &|_, part| {
            for &(ptr, _, p) in part.iter() {
                // SAFETY: `ptr` points to `per_step` values of spare capacity of trial
                // `b`'s chunk, reserved above and reached by this member alone.
                let out = unsafe { std::slice::from_raw_parts_mut(ptr.0, per_step) };
                for (i, o) in out.chunks_exact_mut(dim).enumerate() {
                    o.copy_from_slice(xs.col(i, p * dim, dim));
                }
            }
        });
        for &(_, b, _) in &self.dst {
            if let Some(c) = self.trials[b].last_mut() {
                // SAFETY: the `per_step` values past the length were written above.
                unsafe { c.set_len(c.len() + per_step) };
            }
        }
    }

    /// Frees the latest chunks (lowering the limit) until at most `max_bytes` are held.
    pub(crate) fn shrink(&mut self, max_bytes: usize) {
        let chunk_bytes = STAGE_CHUNK * self.per_step * std::mem::size_of::<T>();
        while self.bytes > max_bytes {
            // The latest chunk of all goes, and every chunk at or past its first step.
            let latest = self.trials.iter().map(Vec::len).max().unwrap_or(0);
            if latest == 0 {
                break;
            }
            self.limit = self.limit.min((latest - 1) * STAGE_CHUNK);
            let keep = self.limit.div_ceil(STAGE_CHUNK);
            for chunks in &mut self.trials {
                while chunks.len() > keep {
                    // Freed, not cached: the checkpoints need the memory now.
                    if chunks.pop().is_some() {
                        self.bytes -= chunk_bytes;
                    }
                }
            }
        }
    }

    /// Frees every chunk (cached for the next gradient) and stores nothing more.
    pub(crate) fn drop_all(&mut self) {
        self.limit = 0;
        self.bytes = 0;
        for chunks in &mut self.trials {
            for chunk in chunks.drain(..) {
                chunk_cache::give(chunk);
            }
        }
    }

    /// Values per stored step (stages kept after `X_0`, x dim).
    pub(crate) fn per_step(&self) -> usize {
        self.per_step
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Steps below this index are stored for every trial that took them.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Stage states `X_1 ..` of trial `b`'s step `idx` (`per_step` values).
    pub(crate) fn step(&self, b: usize, idx: usize) -> &[T] {
        let c = &self.trials[b][idx / STAGE_CHUNK];
        let o = (idx % STAGE_CHUNK) * self.per_step;
        &c[o..o + self.per_step]
    }

    /// States held (each `dim x batch`).
    pub(crate) fn n_states(&self, state_len: usize) -> usize {
        (self.bytes / std::mem::size_of::<T>()).div_ceil(state_len.max(1))
    }
}

impl<T: Real> Drop for StageStore<T> {
    fn drop(&mut self) {
        for chunk in self.trials.drain(..).flatten() {
            chunk_cache::give(chunk);
        }
    }
}

/// Stage-store chunks and checkpoint slots kept between gradients, so that the next
/// gradient writes into memory the process already has instead of fresh pages (each first touch of a fresh page is a
/// page fault that zeroes it: for P1's 65 MB of stage states, 0.1 s of a 0.7 s gradient).
/// At most [`CACHE_BYTES`](chunk_cache::CACHE_BYTES) are kept;
/// [`release_gradient_cache`](crate::release_gradient_cache) frees them.
pub(crate) mod chunk_cache {
    use std::any::Any;
    use std::sync::Mutex;

    /// Most bytes kept between gradients: 128 MiB.
    pub(crate) const CACHE_BYTES: usize = 128 << 20;

    /// Cached chunks (each an empty `Vec<T>` with its capacity) and their bytes.
    static CACHE: Mutex<(Vec<Box<dyn Any + Send>>, usize)> = Mutex::new((Vec::new(), 0));

    fn bytes<T>(v: &Vec<T>) -> usize {
        v.capacity() * std::mem::size_of::<T>()
    }

    /// An empty vector with room for `len` values: a cached one of exactly that capacity
    /// when there is one.
    pub(crate) fn take<T: Send + 'static>(len: usize) -> Vec<T> {
        if let Ok(mut c) = CACHE.lock() {
            let hit = c.0.iter().position(|b| {
                b.downcast_ref::<Vec<T>>()
                    .is_some_and(|v| v.capacity() == len)
            });
            if let Some(i) = hit {
                let b = c.0.swap_remove(i);
                if let Ok(v) = b.downcast::<Vec<T>>() {
                    c.1 -= bytes(&v);
                    return *v;
                }
            }
        }
        Vec::with_capacity(len)
    }

    /// Keeps `v`'s memory for a later [`take`] while the cache has room; frees it otherwise.
    pub(crate) fn give<T: Send + 'static>(mut v: Vec<T>) {
        v.clear();
        let b = bytes(&v);
        if let Ok(mut c) = CACHE.lock() {
            if b > 0 && c.1 + b <= CACHE_BYTES {
                c.1 += b;
                c.0.push(Box::new(v));
            }
        }
    }

    /// Frees every cached chunk; returns the bytes freed.
    pub(crate) fn clear() -> usize {
        match CACHE.lock() {
            Ok(mut c) => {
                c.0.clear();
                std::mem::take(&mut c.1)
            }
            Err(_) => 0,
        }
    }
}

/// What the forward pass records for the reverse sweep.
#[derive(Debug)]
pub(crate) struct Tape<T: Real> {
    pub(crate) dim: usize,
    pub(crate) batch: usize,
    /// Per trial: `t_0 .. t_S` (accepted step boundaries).
    pub(crate) ts: Vec<Vec<T>>,
    /// Per trial: step sizes.
    pub(crate) hs: Vec<Vec<T>>,
    /// Per trial: whether step `n` ended on a breakpoint.
    pub(crate) brk: Vec<Vec<bool>>,
    /// Per trial: the source of every save, in save order.
    pub(crate) saves: Vec<Vec<SaveSrc>>,
    pub(crate) ckpt: CheckpointStore<T>,
    /// Stage states of the first steps, as many as fit (`None`: the budget keeps none).
    pub(crate) stages: Option<StageStore<T>>,
    /// With a memory budget: the bytes the checkpoints and the stage store may hold
    /// together (the stage store gives way when a checkpoint needs room).
    shared_bytes: Option<usize>,
    state_bytes: usize,
    pub(crate) pool_states: usize,
    pub(crate) x_final: Vec<T>,
    /// The round's checkpoint copies, made together at its end: (accepted state, its
    /// place).
    pending: Vec<(Shared<*const T>, Shared<*mut T>)>,
}

impl<T: Real> Tape<T> {
    pub(crate) fn new(
        dim: usize,
        batch: usize,
        t0: T,
        x0: &[T],
        checkpoints: Checkpoints,
        stages: usize,
        fsal: bool,
    ) -> Self {
        let state_bytes = dim * batch * std::mem::size_of::<T>();
        let (cap, pool) = checkpoints.budget(state_bytes, stages);
        let ckpt = CheckpointStore::new(cap, dim, batch);
        // A memory budget, less two steps' stages kept for the reverse sweep's
        // recomputation pool: the checkpoints take what they need (every step while they
        // fit); the stage store takes what they leave and gives way (its latest steps)
        // when a checkpoint needs the room; the pool takes what both leave.
        let shared_bytes = match checkpoints {
            Checkpoints::Memory(bytes) => Some(bytes.saturating_sub(2 * stages * state_bytes)),
            _ => None,
        };
        let keep_stages = !matches!(checkpoints, Checkpoints::States(_));
        // Stages after `X_0` (the checkpoint).
        let kept = if fsal { stages - 1 } else { stages };
        let mut tape = Tape {
            stages: keep_stages
                .then(|| StageStore::new(batch, kept.max(1).saturating_sub(1) * dim)),
            shared_bytes,
            state_bytes,
            dim,
            batch,
            ts: vec![vec![t0]; batch],
            hs: vec![Vec::new(); batch],
            brk: vec![Vec::new(); batch],
            saves: vec![Vec::new(); batch],
            ckpt,
            pool_states: pool,
            x_final: Vec::new(),
            pending: Vec::with_capacity(batch),
        };
        // The initial states: checkpoint 0.
        for b in 0..batch {
            if let Some(j) = tape.ckpt.place(0) {
                let dst = tape.ckpt.col_ptr(j, b);
                let src = Shared(x0[b * dim..(b + 1) * dim].as_ptr());
                tape.pending.push((src, Shared(dst)));
            }
        }
        tape.flush();
        tape
    }

    pub(crate) fn n_steps(&self, b: usize) -> usize {
        self.hs[b].len()
    }

    /// `(t, h, t_end, ends_on_break, active)` of trial `b`'s step `n`.
    #[inline]
    pub(crate) fn step(&self, b: usize, n: usize) -> (T, T, T, bool, bool) {
        if n < self.hs[b].len() {
            (
                self.ts[b][n],
                self.hs[b][n],
                self.ts[b][n + 1],
                self.brk[b][n],
                true,
            )
        } else {
            let t = *self.ts[b].last().expect("t0 is always recorded");
            (t, T::zero(), t, false, false)
        }
    }

    /// Makes the round's checkpoint copies, shared out among the team.
    fn flush(&mut self) {
        let dim = self.dim;
        let work = self.pending.len() * dim;
        for_parts(&mut self.pending, 1, work, MIN_SHARED_WORK, &|_, part| {
            for &(src, dst) in part.iter() {
                // SAFETY: `src` is an accepted state (`dim` values) the solver leaves alone
                // until the round ends; `dst` is its trial's column of a checkpoint slot,
                // reached by this copy alone (one per trial and round), and the slots
                // neither move nor go away before the copies are made.
                unsafe { std::ptr::copy_nonoverlapping(src.0, dst.0, dim) };
            }
        });
        let pending = &self.pending;
        self.ckpt
            .fill_fresh(|col| pending.iter().any(|p| std::ptr::eq(p.1 .0, col)));
        self.pending.clear();
    }

    /// States the reverse sweep's recomputation pool may hold: with a memory budget, what
    /// the checkpoints and the stage store leave (at least the two steps' stages kept for
    /// it); otherwise as [`Checkpoints::budget`] says.
    pub(crate) fn pool_budget(&self) -> usize {
        match self.shared_bytes {
            Some(shared) => {
                let held = self.ckpt.n_states() * self.state_bytes
                    + self.stages.as_ref().map_or(0, StageStore::bytes);
                shared.saturating_sub(held) / self.state_bytes.max(1) + self.pool_states
            }
            None => self.pool_states,
        }
    }
}

/// The tape is what the forward pass reports to.
impl<T: Real> Recorder<T> for Tape<T> {
    fn save(&mut self, b: usize, at: SavePoint) {
        // The step being taken is the trial's accepted count.
        let idx = self.hs[b].len();
        self.saves[b].push(match at {
            SavePoint::Initial => SaveSrc::Initial,
            SavePoint::End => SaveSrc::End(idx),
            SavePoint::Dense(theta) => SaveSrc::Dense(idx, theta),
        });
    }

    fn wants_stages(&self) -> bool {
        self.stages.is_some()
    }

    fn stages(&mut self, accepted: &[(usize, usize)], xs: Stages<'_, T>, dim: usize) {
        // Called before the `accept`s: a step's index is its trial's accepted count.
        let ckpt_bytes = self.ckpt.n_states() * self.state_bytes;
        let cap = self.shared_bytes.map(|s| s.saturating_sub(ckpt_bytes));
        let hs = &self.hs;
        if let Some(st) = self.stages.as_mut() {
            st.push(accepted, |b| hs[b].len(), xs, dim, cap);
        }
    }

    fn end_round(&mut self) {
        self.flush();
    }

    fn accept(&mut self, b: usize, h: T, t_end: T, brk: bool, x_new: &[T]) {
        self.hs[b].push(h);
        self.brk[b].push(brk);
        self.ts[b].push(t_end);
        let idx = self.hs[b].len();
        if let (Some(shared), Some(st)) = (self.shared_bytes, self.stages.as_mut()) {
            if self.ckpt.needs_slot(idx) {
                let ckpt_bytes = (self.ckpt.n_states() + 1) * self.state_bytes;
                st.shrink(shared.saturating_sub(ckpt_bytes));
            }
        }
        if self.ckpt.thins(idx) {
            // The slots move: the copies waiting for them land first.
            self.flush();
        }
        let stride = self.ckpt.stride;
        if let Some(j) = self.ckpt.place(idx) {
            let dst = self.ckpt.col_ptr(j, b);
            self.pending.push((Shared(x_new.as_ptr()), Shared(dst)));
        }
        if self.ckpt.stride != stride {
            // The checkpoints thinned: the stored steps lost their `X_0`.
            if let Some(st) = self.stages.as_mut() {
                st.drop_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_cache;

    /// A chunk given back is the one taken next for the same type and capacity (its memory
    /// reused), not for another type.
    #[test]
    fn chunks_are_reused_by_type_and_capacity() {
        // A capacity no gradient in this test binary uses.
        let len = 12_345;
        let v: Vec<f64> = chunk_cache::take(len);
        assert!(v.capacity() >= len && v.is_empty());
        let ptr = v.as_ptr();
        chunk_cache::give(v);
        let other: Vec<f32> = chunk_cache::take(len);
        assert_ne!(other.as_ptr() as usize, ptr as usize);
        let again: Vec<f64> = chunk_cache::take(len);
        assert_eq!(again.as_ptr(), ptr);
        chunk_cache::give(again);
        chunk_cache::give(other);
    }
}
