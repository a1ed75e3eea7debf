//! The thread-local glue: where each thread's `LocalCache` lives, when it is switched on, and
//! how it is flushed at thread exit. Invariant: a cache holds objects only in state `ACTIVE`, and
//! once its thread's exit guard has run it is `DESTROYED`, empty, and never used again.
//!
//! The cache itself is a `const`-initialised `thread_local!` with no destructor, so reaching it
//! costs one TLS address computation and can never fail. A second, zero-sized thread local
//! (`EXIT`) carries the destructor; it is registered lazily, the first time the thread's cache
//! is needed. Registering may itself allocate (glibc's `__cxa_thread_atexit_impl` calls
//! `calloc`, which may be this allocator), so the cache is `REGISTERING` meanwhile and every
//! allocation in that window, and every one after the exit flush, goes straight to the central
//! lists without caching.

use crate::central::Central;
use crate::local_cache::LocalCache;
use crate::span::FreeObj;
use core::cell::Cell;
use core::ptr;

/// The state shared by every `ThreadCached` handle.
pub(crate) static CENTRAL: Central = Central::new();

const UNINIT: u8 = 0;
const ACTIVE: u8 = 1;
const REGISTERING: u8 = 2;
const DESTROYED: u8 = 3;

struct ThreadState {
    cache: LocalCache,
    state: Cell<u8>,
}

/// The zero-sized owner of the thread-exit flush.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = CACHE.try_with(|t| {
            t.state.set(DESTROYED);
            t.cache.flush(&CENTRAL);
        });
    }
}

thread_local! {
    static CACHE: ThreadState = const { ThreadState { cache: LocalCache::new(), state: Cell::new(UNINIT) } };
    static EXIT: ExitGuard = const { ExitGuard };
}

/// Switches the cache on by registering the exit guard; false if the thread is already exiting.
#[cold]
fn activate(t: &ThreadState) -> bool {
    t.state.set(REGISTERING);
    let ok = EXIT.try_with(|_| ()).is_ok();
    t.state.set(if ok { ACTIVE } else { DESTROYED });
    ok
}

/// Allocates one object of class `c`: the fast path, then the refill.
#[inline(always)]
pub(crate) fn alloc_small(c: usize) -> *mut u8 {
    CACHE.with(|t| {
        let p = t.cache.pop(c);
        if !p.is_null() {
            return p;
        }
        alloc_slow(t, c)
    })
}

/// Allocates one object of class `c` for a C-style entry point: the fast path, then `cold()`,
/// which may serve the request elsewhere (the core, while the class is cold: see
/// `thread_cached.rs`), then the refill.
#[inline(always)]
pub(crate) fn alloc_small_or(c: usize, cold: impl FnOnce() -> Option<*mut u8>) -> *mut u8 {
    CACHE.with(|t| {
        let p = t.cache.pop(c);
        if !p.is_null() {
            return p;
        }
        if let Some(p) = cold() {
            return p;
        }
        alloc_slow(t, c)
    })
}

#[cold]
#[inline(never)]
fn alloc_slow(t: &ThreadState, c: usize) -> *mut u8 {
    let state = t.state.get();
    if state == ACTIVE || (state == UNINIT && activate(t)) {
        t.cache.refill(&CENTRAL, c)
    } else {
        alloc_uncached(c)
    }
}

/// Allocates one object of class `c` from the central lists, bypassing the cache.
fn alloc_uncached(c: usize) -> *mut u8 {
    let (head, n) = CENTRAL.take(c, 1);
    if n == 0 {
        return ptr::null_mut();
    }
    // SAFETY: `take` returned one object, now ours.
    unsafe { FreeObj::unmark(head) };
    head.cast()
}

/// Frees one object of class `c`: the fast path, then the overflow.
///
/// # Safety
/// `p` is a live object of class `c` that the caller will not use again.
#[inline(always)]
pub(crate) unsafe fn free_small(c: usize, p: *mut u8) {
    CACHE.with(|t| {
        // SAFETY: the caller hands `p` over.
        if unsafe { !t.cache.push(c, p) } {
            // SAFETY: as above.
            unsafe { free_slow(t, c, p) }
        }
    })
}

/// # Safety
/// As for [`free_small`].
#[cold]
#[inline(never)]
unsafe fn free_slow(t: &ThreadState, c: usize, p: *mut u8) {
    let state = t.state.get();
    if state == ACTIVE || (state == UNINIT && activate(t)) {
        // SAFETY: the caller hands `p` over.
        unsafe { t.cache.overflow(&CENTRAL, c, p) }
    } else {
        // SAFETY: the caller hands `p` over; a one-object list.
        unsafe { CENTRAL.give(c, FreeObj::push(p, ptr::null_mut()), 1) }
    }
}

/// Flushes the calling thread's cache to the central lists (the cache stays on).
pub(crate) fn flush_current() {
    let _ = CACHE.try_with(|t| {
        t.cache.flush(&CENTRAL);
    });
}

/// Bytes cached by the calling thread.
pub(crate) fn cached_bytes_current() -> usize {
    CACHE.try_with(|t| t.cache.cached().1).unwrap_or(0)
}
