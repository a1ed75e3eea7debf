//! The synchronisation shim: every atomic, cell and spin hint that the concurrent core uses comes
//! from here. Under `cfg(loom)` these are loom's model-checked types; otherwise they are `core`'s,
//! with the same API, so each concurrent file is written once and loom can check it.
//!
//! The one exception is the page map (`page_map.rs`), whose huge lazily mapped tables always use
//! `core` atomics: its entries are published before any pointer into their span escapes, so the
//! hand-off that loom does check (the class locks) orders them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::cell::{MutPtr, UnsafeCell};

/// Tells the scheduler (or the CPU) that this thread is waiting for another one.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
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

#[cfg(not(loom))]
mod std_cell {
    /// `core::cell::UnsafeCell` with loom's access API (`get_mut`, `with_mut`).
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `value`.
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        /// A pointer for mutable access; the caller proves exclusivity when dereferencing it.
        #[inline]
        pub(crate) fn get_mut(&self) -> MutPtr<T> {
            MutPtr(self.0.get())
        }
    }

    /// A raw pointer into an [`UnsafeCell`], mirroring loom's `MutPtr`.
    #[derive(Debug)]
    pub(crate) struct MutPtr<T>(*mut T);

    impl<T> MutPtr<T> {
        /// Dereferences the pointer.
        ///
        /// # Safety
        /// No other reference to the cell's contents may be live while the result is.
        #[inline]
        #[allow(clippy::mut_from_ref)]
        pub(crate) unsafe fn deref(&self) -> &mut T {
            // SAFETY: the caller guarantees exclusive access for the lifetime of the result.
            unsafe { &mut *self.0 }
        }

        /// Dereferences the pointer for reading only. Unlike [`MutPtr::deref`], this makes no
        /// unique borrow, so shared borrows taken earlier (another field of the same value, say)
        /// stay valid.
        ///
        /// # Safety
        /// No mutable reference to the cell's contents may be live while the result is.
        #[inline]
        pub(crate) unsafe fn deref_shared(&self) -> &T {
            // SAFETY: the caller guarantees that nothing mutates the value meanwhile.
            unsafe { &*self.0 }
        }
    }
}

#[cfg(not(loom))]
pub(crate) use std_cell::{MutPtr, UnsafeCell};
