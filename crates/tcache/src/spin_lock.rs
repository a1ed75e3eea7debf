//! A spin lock that never allocates, guarding the central lists and the backend. Invariant: the
//! value is reachable only through a guard, and at most one guard exists at a time.
//!
//! Under `cfg(loom)` the lock is loom's `Mutex`: loom cannot explore a spin loop (a spinning
//! thread can be scheduled forever without the holder making progress), but it explores every
//! interleaving of a blocking mutex, and every critical section it guards is the same code.

#[cfg(loom)]
pub(crate) use loom_lock::{SpinLock, SpinLockGuard};

#[cfg(loom)]
mod loom_lock {
    /// The loom stand-in for the spin lock: a model-checked blocking mutex.
    pub(crate) struct SpinLock<T>(loom::sync::Mutex<T>);

    /// A guard of the loom stand-in.
    pub(crate) type SpinLockGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> SpinLock<T> {
        /// A new, unlocked lock around `value`.
        pub(crate) fn new(value: T) -> SpinLock<T> {
            SpinLock(loom::sync::Mutex::new(value))
        }

        /// Takes the lock.
        pub(crate) fn lock(&self) -> SpinLockGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }
}

#[cfg(not(loom))]
pub(crate) use spin::SpinLock;

#[cfg(not(loom))]
mod spin {

    use crate::sync::{spin_hint, AtomicBool, MutPtr, Ordering, UnsafeCell};
    use core::ops::{Deref, DerefMut};

    /// Busy-wait rounds before a waiter starts yielding its time slice.
    const SPINS_BEFORE_YIELD: u32 = 100;

    /// A test-and-test-and-set lock around a `T`. Critical sections in this crate are a few dozen
    /// instructions, so spinning beats parking (which would allocate on first use).
    pub(crate) struct SpinLock<T> {
        locked: AtomicBool,
        value: UnsafeCell<T>,
    }

    // SAFETY: the lock hands out access to `value` to one thread at a time, so sharing the lock is
    // sound whenever moving the value between threads is.
    unsafe impl<T: Send> Sync for SpinLock<T> {}
    // SAFETY: the lock owns its value; sending the lock sends the value.
    unsafe impl<T: Send> Send for SpinLock<T> {}

    impl<T> SpinLock<T> {
        /// A new, unlocked lock around `value`.
        pub(crate) const fn new(value: T) -> SpinLock<T> {
            SpinLock {
                locked: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        /// Takes the lock, spinning until it is free.
        #[inline]
        pub(crate) fn lock(&self) -> SpinLockGuard<'_, T> {
            self.raw_lock();
            SpinLockGuard {
                lock: self,
                ptr: self.value.get_mut(),
            }
        }

        /// Takes the lock without making a guard; [`SpinLock::raw_unlock`] releases it. Used by the
        /// fork handlers, which hold every lock across `fork()`.
        pub(crate) fn raw_lock(&self) {
            let mut spins = 0u32;
            loop {
                if !self.locked.swap(true, Ordering::Acquire) {
                    return;
                }
                while self.locked.load(Ordering::Relaxed) {
                    // Spin briefly, then give the CPU away: when threads outnumber cores the holder
                    // may be descheduled, and spinning would only delay it. `yield_now` is a plain
                    // `sched_yield` and never allocates.
                    if spins < SPINS_BEFORE_YIELD {
                        spins += 1;
                        spin_hint();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        }

        /// Releases a lock taken by [`SpinLock::raw_lock`].
        ///
        /// # Safety
        /// The caller must hold the lock through `raw_lock` (not through a live guard).
        pub(crate) unsafe fn raw_unlock(&self) {
            self.locked.store(false, Ordering::Release);
        }
    }

    /// Exclusive access to a [`SpinLock`]'s value; unlocks when dropped.
    pub(crate) struct SpinLockGuard<'a, T> {
        lock: &'a SpinLock<T>,
        ptr: MutPtr<T>,
    }

    impl<T> Deref for SpinLockGuard<'_, T> {
        type Target = T;
        #[inline]
        fn deref(&self) -> &T {
            // SAFETY: the guard holds the lock, so no other access to the value is live, and
            // `&self` rules out a mutable borrow through this guard while the result lives.
            unsafe { self.ptr.deref_shared() }
        }
    }

    impl<T> DerefMut for SpinLockGuard<'_, T> {
        #[inline]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: the guard holds the lock, and `&mut self` makes this the only borrow of it.
            unsafe { self.ptr.deref() }
        }
    }

    impl<T> Drop for SpinLockGuard<'_, T> {
        #[inline]
        fn drop(&mut self) {
            self.lock.locked.store(false, Ordering::Release);
        }
    }
}
