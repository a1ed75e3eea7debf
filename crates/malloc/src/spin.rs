//! [`SpinLock`]: a lock that never allocates, for code that is the global allocator. It is the
//! workspace's one spin lock: freespace-tcache's central lists and backend and freespace-capi's
//! trace buffers use it too.
//!
//! Invariant: `locked` is true exactly while a [`SpinLockGuard`] exists (or while a caller that
//! forgot its guard still owns the lock, see [`SpinLock::force_unlock`]), so at most one
//! reference to the value is live.
//!
//! # Back-off
//! A waiter reads the flag (no writes, so the cache line stays shared) and, while it is set,
//! calls `crossbeam_utils::Backoff::snooze`: `core::hint::spin_loop` 1, 2, 4, ... 64 times
//! (127 in all), then, with `std`, `std::thread::yield_now` on every later round; without
//! `std` it keeps spinning, in rounds that double up to 2048 hints. The reasons:
//! - Every critical section behind this lock is short (a few pointer moves, or one heap
//!   operation), so a waiter that spins a little usually gets the lock without a system call.
//!   Yielding at once would pay a `sched_yield` for a lock that frees a few nanoseconds later.
//! - The spinning is bounded because the holder may be descheduled: with more runnable threads
//!   than cores, spinning only burns the time slice the holder needs. `yield_now` is a plain
//!   `sched_yield`; it never allocates.
//! - It never parks: parking needs a wait queue, and a queue that allocates (parking_lot's
//!   does on first park) cannot sit under the global allocator.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crossbeam_utils::Backoff;

/// A spin lock around a `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out one `&mut T` at a time, so sharing the lock across threads only
// ever moves access to `T` between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock and takes it.
    #[inline]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        if let Some(guard) = self.try_lock() {
            return guard;
        }
        self.lock_contended()
    }

    #[cold]
    fn lock_contended(&self) -> SpinLockGuard<'_, T> {
        let backoff = Backoff::new();
        loop {
            while self.locked.load(Ordering::Relaxed) {
                backoff.snooze();
            }
            if let Some(guard) = self.try_lock() {
                return guard;
            }
        }
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinLockGuard { lock: self })
    }

    /// Releases the lock without a guard, for a lock held across a call that cannot hold a
    /// guard: the `fork()` handlers take every lock before `fork()`, `mem::forget` the guards,
    /// and release the locks in the parent and the child afterwards.
    ///
    /// # Safety
    /// No guard of this lock is alive: the lock is free, or the guard that took it was
    /// forgotten (`core::mem::forget`) and nothing obtained through that guard is used
    /// afterwards. Its taker may be another thread that no longer runs (the child after
    /// `fork()`).
    #[inline]
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Whether some guard holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// The value, through exclusive access to the lock (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: Default> Default for SpinLock<T> {
    fn default() -> Self {
        SpinLock::new(T::default())
    }
}

impl<T> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinLock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Access to a [`SpinLock`]'s value; the lock is released when the guard is dropped.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held, so no `&mut T` exists elsewhere.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_and_releases() {
        let lock = SpinLock::new(5);
        {
            let mut g = lock.lock();
            *g += 1;
            assert!(lock.try_lock().is_none());
            assert!(lock.is_locked());
        }
        assert!(!lock.is_locked());
        assert_eq!(*lock.try_lock().unwrap(), 6);
    }

    #[test]
    fn force_unlock_releases_a_forgotten_guard() {
        let lock = SpinLock::new(1);
        core::mem::forget(lock.lock());
        assert!(lock.is_locked());
        assert!(lock.try_lock().is_none());
        // SAFETY: the lock is held through the guard forgotten above, which this thread took.
        unsafe { lock.force_unlock() };
        assert!(!lock.is_locked());
        assert_eq!(*lock.lock(), 1);
    }

    /// Increments per thread (fewer under Miri, which interprets every one).
    const ROUNDS: u64 = if cfg!(miri) { 200 } else { 10_000 };

    #[test]
    fn counts_exactly_across_threads() {
        let lock = SpinLock::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(lock.into_inner(), 4 * ROUNDS);
    }
}
