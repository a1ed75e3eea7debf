//! `SharedArena`: the thread-safe arena.
//!
//! Protocol: one reader-writer lock around an [`Arena`]. Readers resolve handles under the
//! read lock, concurrently. Writers (insert, remove, resize, pin) take the write lock. Compaction
//! runs as bounded incremental steps, each under its own write lock, released fairly between
//! steps, so no reader waits longer than one step plus one writer. The `compacting` flag lets
//! one thread drive a pass at a time; a second driver returns at once instead of interleaving
//! its steps with the first's pass. Invariants: every value in the arena is `Send + Sync` (the
//! only way in is `insert`, which demands it), and `compacting` is true only while a driver is
//! inside [`SharedArena::compact_incremental`].

use core::ops::Deref;
use core::ptr::NonNull;

use crate::arena::Arena;
use crate::compactor::{Budget, CompactionReport, Compactor, Sliding};
use crate::error::ArenaError;
use crate::growth::{ArenaConfig, GrowthPolicy};
use crate::handle::{Handle, RawHandle};
use crate::stats::ArenaStats;
use crate::sync::{unlock_fair, AtomicBool, AtomicU64, Ordering, ReadGuard, RwLock};

/// A thread-safe arena: concurrent readers, serialized writers, and compaction in bounded
/// steps.
///
/// ```
/// use freespace_handles::{Budget, SharedArena};
/// use std::sync::Arc;
///
/// let arena = Arc::new(SharedArena::new());
/// let handles: Vec<_> = (0..100u64).map(|i| arena.insert(i)).collect();
/// for h in handles.iter().step_by(2) {
///     arena.remove(*h);
/// }
/// let reader = {
///     let arena = Arc::clone(&arena);
///     let handles = handles.clone();
///     std::thread::spawn(move || {
///         for (i, h) in handles.iter().enumerate().skip(1).step_by(2) {
///             assert_eq!(arena.with(*h, |v| *v), Some(i as u64));
///         }
///     })
/// };
/// let report = arena.compact_incremental(Budget::Moves(8)).expect("no other driver");
/// assert!(report.finished);
/// reader.join().unwrap();
/// assert_eq!(arena.stats().holes, 0);
/// ```
pub struct SharedArena<C: Compactor = Sliding> {
    arena: RwLock<Arena<C>>,
    compacting: AtomicBool,
    steps: AtomicU64,
}

// SAFETY: the arena's values are all Send + Sync (the only way in is `insert`, which requires
// it; byte blocks are plain bytes), and the compactor is Send; the arena's raw buffer pointer is
// owned, not shared with anything outside the lock.
unsafe impl<C: Compactor + Send> Send for SharedArena<C> {}
// SAFETY: shared access only reaches the arena through the lock: `&Arena` under the read lock
// (which exposes `&T` for Sync values, and `&C` for a Sync compactor) and `&mut Arena` under the
// write lock (exclusive). The arena has no interior mutability: every `&Arena` method only
// reads, so readers sharing `&Arena` under the read lock never write.
unsafe impl<C: Compactor + Send + Sync> Sync for SharedArena<C> {}

/// A read lock on a [`SharedArena`]: resolve many handles under one lock. While it lives,
/// writers and compaction steps wait.
pub struct SharedReadGuard<'a, C: Compactor> {
    guard: ReadGuard<'a, Arena<C>>,
}

impl<C: Compactor> Deref for SharedReadGuard<'_, C> {
    type Target = Arena<C>;
    fn deref(&self) -> &Arena<C> {
        &self.guard
    }
}

/// Clears the `compacting` flag when a driver leaves, even by panic.
struct DriverGuard<'a>(&'a AtomicBool);

impl Drop for DriverGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SharedArena<Sliding> {
    /// An empty shared arena with the sliding compactor and [`GrowthPolicy::Manual`]: nothing
    /// compacts inside a writer's lock; call [`compact_incremental`](Self::compact_incremental).
    pub fn new() -> SharedArena<Sliding> {
        SharedArena::with_config(
            ArenaConfig::new().policy(GrowthPolicy::Manual),
            Sliding::new(),
        )
    }
}

impl Default for SharedArena<Sliding> {
    fn default() -> Self {
        SharedArena::new()
    }
}

impl<C: Compactor> SharedArena<C> {
    /// An empty shared arena with the given configuration and compactor. A policy other than
    /// [`GrowthPolicy::Manual`] compacts inside writers' locks, which lengthens their pauses.
    pub fn with_config(config: ArenaConfig, compactor: C) -> SharedArena<C> {
        SharedArena {
            arena: RwLock::new(Arena::with_config(config, compactor)),
            compacting: AtomicBool::new(false),
            steps: AtomicU64::new(0),
        }
    }

    /// Takes the read lock.
    pub fn read(&self) -> SharedReadGuard<'_, C> {
        SharedReadGuard {
            guard: self.arena.read(),
        }
    }

    /// Resolves `h` under the read lock and calls `f` on the value.
    pub fn with<T: 'static, R>(&self, h: Handle<T>, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.arena.read().get(h).map(f)
    }

    /// Resolves `h` under the write lock and calls `f` on the value, mutably.
    pub fn with_mut<T: 'static, R>(&self, h: Handle<T>, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.arena.write().get_mut(h).map(f)
    }

    /// Calls `f` on the bytes of the block `h` names, under the read lock.
    pub fn with_bytes<R>(&self, h: Handle<[u8]>, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.arena.read().bytes(h).map(f)
    }

    /// Calls `f` on the bytes of the block `h` names, mutably, under the write lock.
    pub fn with_bytes_mut<R>(&self, h: Handle<[u8]>, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.arena.write().bytes_mut(h).map(f)
    }

    /// Inserts a value (see [`Arena::insert`]).
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Handle<T> {
        self.arena.write().insert(value)
    }

    /// Inserts a value or says why not (see [`Arena::try_insert`]).
    pub fn try_insert<T: Send + Sync + 'static>(&self, value: T) -> Result<Handle<T>, ArenaError> {
        self.arena.write().try_insert(value)
    }

    /// Removes a value (see [`Arena::remove`]).
    pub fn remove<T: Send + Sync + 'static>(&self, h: Handle<T>) -> Option<T> {
        self.arena.write().remove(h)
    }

    /// Removes a value or says why not (see [`Arena::try_remove`]).
    pub fn try_remove<T: Send + Sync + 'static>(&self, h: Handle<T>) -> Result<T, ArenaError> {
        self.arena.write().try_remove(h)
    }

    /// Allocates a zeroed byte block (see [`Arena::try_alloc_bytes`]).
    pub fn alloc_bytes(&self, len: usize, align: usize) -> Result<Handle<[u8]>, ArenaError> {
        self.arena.write().try_alloc_bytes(len, align)
    }

    /// Resizes a byte block (see [`Arena::resize`]).
    pub fn resize(&self, h: Handle<[u8]>, new_len: usize) -> Result<(), ArenaError> {
        self.arena.write().resize(h, new_len)
    }

    /// Frees a byte block (see [`Arena::free_bytes`]).
    pub fn free_bytes(&self, h: Handle<[u8]>) -> Result<(), ArenaError> {
        self.arena.write().free_bytes(h)
    }

    /// Pins a block (see [`Arena::pin`]).
    pub fn pin(&self, h: impl Into<RawHandle>) -> Result<NonNull<u8>, ArenaError> {
        self.arena.write().pin(h)
    }

    /// Unpins a block (see [`Arena::unpin`]).
    pub fn unpin(&self, h: impl Into<RawHandle>) -> Result<(), ArenaError> {
        self.arena.write().unpin(h)
    }

    /// Whether `h` names a live block.
    pub fn contains(&self, h: impl Into<RawHandle>) -> bool {
        self.arena.read().contains(h)
    }

    /// A snapshot of the arena's statistics.
    pub fn stats(&self) -> ArenaStats {
        self.arena.read().stats()
    }

    /// Compaction steps run so far through this shared arena.
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }

    /// Runs one incremental step under the write lock (see [`Arena::compact_with`]).
    pub fn compact_step(&self, budget: Budget) -> CompactionReport {
        let mut guard = self.arena.write();
        let report = guard.compact_with(budget);
        self.steps.fetch_add(1, Ordering::Relaxed);
        unlock_fair(guard);
        report
    }

    /// Drives a compaction pass to completion in steps bounded by `step_budget`, releasing the
    /// lock between steps so readers and writers get in. Returns the merged report, or `None`
    /// if another thread is already driving a pass. With a bytes or moves budget and nothing
    /// pinned, readers wait at most one step. Mutations between steps are allowed.
    pub fn compact_incremental(&self, step_budget: Budget) -> Option<CompactionReport> {
        if self
            .compacting
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let _driver = DriverGuard(&self.compacting);
        let mut total: Option<CompactionReport> = None;
        loop {
            let step = self.compact_step(step_budget);
            match total.as_mut() {
                Some(t) => t.merge(&step),
                None => total = Some(step),
            }
            if step.finished {
                return total;
            }
        }
    }

    /// Runs a full pass under one write lock: the pause is as long as the whole pass.
    pub fn compact(&self) -> CompactionReport {
        self.arena.write().compact()
    }

    /// Takes the arena back out.
    pub fn into_inner(self) -> Arena<C> {
        self.arena.into_inner()
    }
}
