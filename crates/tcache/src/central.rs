//! The central lists: for each size class, a transfer cache of full batches plus the list of
//! spans that still have objects to hand out, behind one `CachePadded` spin lock per class.
//! Invariant: a transfer slot holds exactly one batch (`CLASSES[c].batch` objects, a
//! null-terminated list); a span is on its class's partial list exactly when it has an object to
//! hand out; a span whose objects have all come back is returned to the backend, except that one
//! small empty span per class is kept to damp churn.
//!
//! Lock order: a class lock, then the backend lock. Nothing takes a class lock while holding the
//! backend lock, so the order is acyclic.

use crate::backend::{Backend, BackendStats};
use crate::size_class::{next_span_pages, CLASSES, MAX_TRANSFER_SLOTS, NUM_CLASSES};
use crate::span::{FreeObj, SpanMeta};
use crate::sync::{loom_const_fn, SpinLock};
use core::ptr;
use crossbeam_utils::CachePadded;

/// Empty spans up to this size are kept (one per class) instead of going back to the core.
const KEEP_EMPTY_SPAN_BYTES: usize = 64 * 1024;

/// One class's central state, guarded by its lock.
struct ClassState {
    slots: [*mut FreeObj; MAX_TRANSFER_SLOTS],
    nslots: usize,
    partial: *mut SpanMeta,
    /// The size in pages of the class's next span; 0 until its first span is made.
    span_pages: usize,
}

// SAFETY: the raw pointers name memory owned by the allocator, not by any thread; the lock
// serialises every access to them.
unsafe impl Send for ClassState {}

impl ClassState {
    loom_const_fn! {
        fn new() -> ClassState {
            ClassState {
                slots: [ptr::null_mut(); MAX_TRANSFER_SLOTS],
                nslots: 0,
                partial: ptr::null_mut(),
                span_pages: 0,
            }
        }
    }

    /// Puts `span` at the front of the partial list.
    ///
    /// # Safety
    /// `span` is a live span of this class, not on the list.
    unsafe fn link(&mut self, span: *mut SpanMeta) {
        // SAFETY: the class lock is held (we have `&mut self`), and `span` and the old head are live.
        unsafe {
            (*span).prev.set(ptr::null_mut());
            (*span).next.set(self.partial);
            if !self.partial.is_null() {
                (*self.partial).prev.set(span);
            }
            (*span).in_partial.set(true);
        }
        self.partial = span;
    }

    /// Takes `span` off the partial list.
    ///
    /// # Safety
    /// `span` is on this class's partial list.
    unsafe fn unlink(&mut self, span: *mut SpanMeta) {
        // SAFETY: the class lock is held, and `span` and its neighbours are live list members.
        unsafe {
            let (prev, next) = ((*span).prev.get(), (*span).next.get());
            if prev.is_null() {
                self.partial = next;
            } else {
                (*prev).next.set(next);
            }
            if !next.is_null() {
                (*next).prev.set(prev);
            }
            (*span).in_partial.set(false);
            (*span).prev.set(ptr::null_mut());
            (*span).next.set(ptr::null_mut());
        }
    }
}

/// Counters of the central lists.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CentralStats {
    pub(crate) transfer_bytes: usize,
    pub(crate) mapped_bytes: usize,
    pub(crate) backend: BackendStats,
}

/// Every class's central list, and the backend under them.
pub(crate) struct Central {
    classes: [CachePadded<SpinLock<ClassState>>; NUM_CLASSES],
    pub(crate) backend: Backend,
}

impl Central {
    /// An empty central state. `const` outside loom, so the global one is a `static`.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Central {
        Central {
            classes: [const { CachePadded::new(SpinLock::new(ClassState::new())) }; NUM_CLASSES],
            backend: Backend::new(),
        }
    }

    /// An empty central state.
    #[cfg(loom)]
    pub(crate) fn new() -> Central {
        Central {
            classes: core::array::from_fn(|_| CachePadded::new(SpinLock::new(ClassState::new()))),
            backend: Backend::new(),
        }
    }

    /// Takes up to `want` objects of class `c` as a null-terminated list. A request for exactly
    /// one batch is served from the transfer cache when it has one. Returns the list and its
    /// length; length 0 means out of memory.
    pub(crate) fn take(&self, c: usize, want: u32) -> (*mut FreeObj, u32) {
        self.take_inner(c, want, false)
    }

    /// Like [`Central::take`], but a span's free list is handed over whole, and a request for
    /// less than a batch is served by a whole batch when the transfer cache has one, so the list
    /// may hold more than `want` objects (at most `want` plus one span's worth). Used by cache
    /// refills.
    pub(crate) fn take_for_cache(&self, c: usize, want: u32) -> (*mut FreeObj, u32) {
        self.take_inner(c, want, true)
    }

    fn take_inner(&self, c: usize, want: u32, whole: bool) -> (*mut FreeObj, u32) {
        let info = &CLASSES[c];
        let mut st = self.classes[c].lock();
        // A refill takes a whole batch from the transfer cache even when it asked for fewer (a
        // thread's first refills are small): those objects have been touched already.
        if (want == info.batch || (whole && want < info.batch)) && st.nslots > 0 {
            st.nslots -= 1;
            let n = st.nslots;
            return (st.slots[n], info.batch);
        }
        let mut head = ptr::null_mut();
        let mut got = 0;
        while got < want {
            let span = st.partial;
            if span.is_null() {
                // A class's spans start at the smallest size and double up to the full size, so
                // a class that a program uses a little touches a page or two, not a 64 KiB span.
                let pages = match st.span_pages {
                    0 => info.first_span_pages as usize,
                    p => p,
                };
                let span = self.backend.new_span(c, pages);
                if span.is_null() {
                    break;
                }
                st.span_pages = next_span_pages(c, pages);
                // SAFETY: a fresh span is on no list.
                unsafe { st.link(span) };
                continue;
            }
            // SAFETY: the class lock is held and `span` is a live span of class `c`.
            let (h, n) = unsafe { (*span).take(want - got, whole, head) };
            head = h;
            got += n;
            // SAFETY: as above; a span with nothing left leaves the partial list.
            if unsafe { !(*span).has_free() } {
                // SAFETY: `span` is on the list (it was its head).
                unsafe { st.unlink(span) };
            }
        }
        (head, got)
    }

    /// Gives back a null-terminated list of `count` objects of class `c`. Whole batches go to
    /// the transfer cache while it has room; the rest go back to their spans.
    ///
    /// # Safety
    /// Every object on the list is an object of class `c` that the caller owns and will not use.
    pub(crate) unsafe fn give(&self, c: usize, mut head: *mut FreeObj, mut count: u32) {
        let info = &CLASSES[c];
        let mut st = self.classes[c].lock();
        while count >= info.batch && st.nslots < info.transfer_slots as usize {
            let batch_head = head;
            let mut tail = head;
            for _ in 1..info.batch {
                // SAFETY: the list has at least `count >= batch` objects, all owned by the caller.
                tail = unsafe { (*tail).next };
            }
            // SAFETY: `tail` is the batch's last object.
            unsafe {
                head = (*tail).next;
                (*tail).next = ptr::null_mut();
            }
            count -= info.batch;
            let n = st.nslots;
            st.slots[n] = batch_head;
            st.nslots += 1;
        }
        while count > 0 {
            let obj = head;
            // SAFETY: the list still has `count` objects.
            head = unsafe { (*obj).next };
            count -= 1;
            // SAFETY: `obj` is an object of class `c` and the class lock is held.
            unsafe { self.give_to_span(&mut st, c, obj, false) };
        }
    }

    /// Returns one object to its span, releasing the span if it becomes empty (or keeping it as
    /// the class's spare when `force` is false and it is small and alone).
    ///
    /// # Safety
    /// `obj` is an object of class `c`, owned by the caller; `st` is class `c`'s locked state.
    unsafe fn give_to_span(&self, st: &mut ClassState, c: usize, obj: *mut FreeObj, force: bool) {
        let span = self.backend.lookup(obj as usize);
        // SAFETY: every object of class `c` lies in a live span of class `c`.
        unsafe {
            debug_assert!(!span.is_null() && (*span).class as usize == c);
            (*span).give(obj);
            if (*span).used.get() == 0 {
                let alone =
                    st.partial.is_null() || (st.partial == span && (*span).next.get().is_null());
                if !force && alone && (*span).bytes() <= KEEP_EMPTY_SPAN_BYTES {
                    if !(*span).in_partial.get() {
                        st.link(span);
                    }
                    return;
                }
                if (*span).in_partial.get() {
                    st.unlink(span);
                }
                self.backend.free_span(span);
            } else if !(*span).in_partial.get() {
                st.link(span);
            }
        }
    }

    /// Empties every transfer cache into the spans, returns every empty span to the core, and
    /// asks the core to give free pages back to the OS.
    pub(crate) fn release_memory(&self) {
        for c in 0..NUM_CLASSES {
            self.release_class(c);
        }
        self.backend.release_free_memory();
    }

    /// Empties class `c`'s transfer cache into its spans and returns its empty spans to the core.
    pub(crate) fn release_class(&self, c: usize) {
        let mut st = self.classes[c].lock();
        while st.nslots > 0 {
            st.nslots -= 1;
            let mut obj = st.slots[st.nslots];
            while !obj.is_null() {
                // SAFETY: transfer batches are null-terminated lists of class `c` objects.
                let next = unsafe { (*obj).next };
                // SAFETY: the object belonged to the transfer cache; the class lock is held.
                unsafe { self.give_to_span(&mut st, c, obj, true) };
                obj = next;
            }
        }
        let mut span = st.partial;
        while !span.is_null() {
            // SAFETY: spans on the partial list are live; the class lock is held.
            let next = unsafe { (*span).next.get() };
            // SAFETY: as above; an empty span leaves the list before going back.
            unsafe {
                if (*span).used.get() == 0 {
                    st.unlink(span);
                    self.backend.free_span(span);
                }
            }
            span = next;
        }
    }

    /// Bytes of free objects in class `c`'s transfer cache.
    pub(crate) fn transfer_bytes(&self, c: usize) -> usize {
        let st = self.classes[c].lock();
        st.nslots * CLASSES[c].batch as usize * CLASSES[c].size as usize
    }

    /// Counters; takes each class lock briefly.
    pub(crate) fn stats(&self) -> CentralStats {
        let transfer_bytes = (0..NUM_CLASSES).map(|c| self.transfer_bytes(c)).sum();
        CentralStats {
            transfer_bytes,
            mapped_bytes: self.backend.mapped_bytes(),
            backend: self.backend.stats(),
        }
    }

    /// Takes every lock, in lock order, before `fork()`.
    #[cfg(not(loom))]
    pub(crate) fn lock_all(&self) {
        for class in &self.classes {
            // `unlock_all` releases it.
            core::mem::forget(class.lock());
        }
        self.backend.lock_for_fork();
    }

    /// Releases every lock taken by `lock_all`.
    #[cfg(not(loom))]
    ///
    /// # Safety
    /// The caller took them with `lock_all`.
    pub(crate) unsafe fn unlock_all(&self) {
        // SAFETY: the caller holds every lock through `lock_all`, whose guards were forgotten.
        unsafe {
            self.backend.unlock_after_fork();
            for class in self.classes.iter().rev() {
                class.force_unlock();
            }
        }
    }
}
