//! The synchronisation shim: every atomic and lock that the concurrent core uses comes from here.
//! Under `cfg(loom)` these are loom's model-checked types; otherwise they are `core`'s atomics and
//! freespace-malloc's [`SpinLock`], with the same API, so each concurrent file is written once
//! and loom can check it.
//!
//! The one exception is the page map (`page_map.rs`), whose huge lazily mapped tables always use
//! `core` atomics: its entries are published before any pointer into their span escapes, so the
//! hand-off that loom does check (the class locks) orders them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The lock around each class's central list and around the backend: the workspace's one spin
/// lock, which never allocates (its back-off policy is documented on it).
#[cfg(not(loom))]
pub(crate) use freespace_malloc::SpinLock;

/// Under `cfg(loom)` the spin lock is loom's `Mutex`: loom cannot explore a spin loop (a
/// spinning thread can be scheduled forever without the holder making progress), but it explores
/// every interleaving of a blocking mutex, and every critical section it guards is the same code.
#[cfg(loom)]
pub(crate) use loom_lock::SpinLock;

#[cfg(loom)]
mod loom_lock {
    /// The loom stand-in for the spin lock: a model-checked blocking mutex.
    pub(crate) struct SpinLock<T>(loom::sync::Mutex<T>);

    impl<T> SpinLock<T> {
        /// A new, unlocked lock around `value`.
        pub(crate) fn new(value: T) -> SpinLock<T> {
            SpinLock(loom::sync::Mutex::new(value))
        }

        /// Takes the lock.
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }
}

/// Under `cfg(loom)` this is a plain `fn`, because loom's atomics cannot be built in a `const`
/// context; otherwise it is a `const fn`, so the allocator's state can live in a `static`.
macro_rules! loom_const_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$meta])*
        $vis const fn $name($($arg: $ty),*) -> $ret $body
        #[cfg(loom)]
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}
pub(crate) use loom_const_fn;
