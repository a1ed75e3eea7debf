//! The synchronisation shim: loom's primitives under `cfg(loom)`, parking_lot's and std's
//! otherwise, behind one API, so `shared.rs` is written once and loom can model-check it.
//!
//! Under Miri the lock is std's: parking_lot_core 0.9.12, the latest release, turns an integer
//! back into a pointer when a thread parks (`WordLock`'s queue head; parking_lot issue #477,
//! fixed upstream but not released), which `-Zmiri-strict-provenance` refuses. Miri checks
//! this crate's memory safety, which does not depend on which lock guards the arena; only the
//! fairness of the hand-over differs.
//!
//! Invariant: the three halves expose the same names and signatures.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(not(any(loom, miri)))]
mod imp {
    pub(crate) type ReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

    /// A reader-writer lock (parking_lot's).
    pub(crate) struct RwLock<T>(parking_lot::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(parking_lot::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read()
        }

        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write()
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    /// Releases a write lock and hands it to a waiting thread if there is one, so that the
    /// releasing thread cannot barge back in ahead of waiting readers.
    pub(crate) fn unlock_fair<T>(guard: WriteGuard<'_, T>) {
        parking_lot::RwLockWriteGuard::unlock_fair(guard);
    }
}

#[cfg(all(miri, not(loom)))]
mod imp {
    pub(crate) type ReadGuard<'a, T> = std::sync::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = std::sync::RwLockWriteGuard<'a, T>;

    /// A reader-writer lock (std's, under Miri).
    pub(crate) struct RwLock<T>(std::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(std::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Releases a write lock. std's lock has no fair hand-over; Miri's scheduler interleaves
    /// the waiting threads anyway.
    pub(crate) fn unlock_fair<T>(guard: WriteGuard<'_, T>) {
        drop(guard);
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    /// A reader-writer lock (loom's model of one).
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(loom::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Releases a write lock. Loom explores every order of the waiting threads anyway.
    pub(crate) fn unlock_fair<T>(guard: WriteGuard<'_, T>) {
        drop(guard);
    }
}

pub(crate) use imp::{unlock_fair, ReadGuard, RwLock};
