//! Spans: runs of pages carved into objects of one size class, and the intrusive free-object
//! links that thread every free object onto a list. Invariant: `used` counts the span's objects
//! that are outside the span (in use, or cached by a thread or the transfer cache); the span is
//! empty, and may go back to the core, exactly when `used == 0`. The objects handed out so far
//! are exactly slots `0..bumped`; no slot at or past `bumped` has ever left the span.
//!
//! A span's metadata record sits in the last [`SPAN_META_RESERVE`] bytes of the span itself, so a
//! span costs the core one allocation. Every field except the immutable geometry and `bumped` is a
//! `Cell`, read and written only under its class's central lock. `bumped` is an atomic, written
//! under that lock and read without it by `free`'s validation ([`SpanMeta::check_object`]). The
//! record is only ever reached through shared references (`&SpanMeta`), so the lock-free readers
//! of the immutable fields and of `bumped` never overlap a unique borrow of the record.

use crate::size_class::{span_objects, split_offset, ClassInfo, CLASSES, PAGE, SPAN_META_RESERVE};
use crate::sync::{AtomicU32, Ordering};
use core::cell::Cell;
use core::ptr;
use freespace_malloc::FreeError;

/// The marker word a free object carries in its second word: the object's address mixed with a
/// constant, so user data matches it only by writing that exact value at that exact place.
const FREE_MARK: usize = 0x5a17_c0de_f7ee_0bad_u64 as usize;

/// The layout of a free object: the list link, then the free marker.
#[repr(C)]
pub(crate) struct FreeObj {
    pub(crate) next: *mut FreeObj,
    mark: usize,
}

impl FreeObj {
    /// Pushes `obj` in front of `head`, marking it free; returns the new head.
    ///
    /// # Safety
    /// `obj` must point to at least 16 writable bytes that the caller owns.
    #[inline(always)]
    pub(crate) unsafe fn push(obj: *mut u8, head: *mut FreeObj) -> *mut FreeObj {
        let obj = obj.cast::<FreeObj>();
        // SAFETY: the caller owns the 16 bytes at `obj`, which is 16-byte aligned (every class is).
        unsafe {
            (*obj).next = head;
            (*obj).mark = obj as usize ^ FREE_MARK;
        }
        obj
    }

    /// Unmarks `obj` as it leaves a free list for the program.
    ///
    /// # Safety
    /// `obj` must be a free object the caller has just taken off a list.
    #[inline(always)]
    pub(crate) unsafe fn unmark(obj: *mut FreeObj) {
        // SAFETY: the caller owns `obj`, a free object of at least 16 bytes.
        unsafe { (*obj).mark = 0 };
    }

    /// Whether `obj` carries the free marker, i.e. whether freeing it again would be a double
    /// free. (A live object reports false unless its program stored exactly the marker there.)
    ///
    /// # Safety
    /// `obj` must point to a readable object of at least 16 bytes.
    #[inline]
    pub(crate) unsafe fn is_marked(obj: *const u8) -> bool {
        // SAFETY: the caller guarantees 16 readable bytes at `obj`.
        unsafe { (*obj.cast::<FreeObj>()).mark == obj as usize ^ FREE_MARK }
    }
}

/// The metadata of one span.
#[repr(C)]
pub(crate) struct SpanMeta {
    /// First byte of the span (page aligned), also the first object. Immutable. A pointer with
    /// the provenance of the core's block, from which every object pointer is derived.
    pub(crate) start: *mut u8,
    /// The size class. Immutable.
    pub(crate) class: u32,
    /// The span's size in pages (a class's spans start small and grow: `size_class.rs`).
    /// Immutable.
    pages: u32,
    /// Objects the span holds. Immutable.
    pub(crate) objects: u32,
    /// Objects carved from the span so far: slots `0..bumped` have been handed out at least
    /// once, slots from `bumped` on never. Only grows while the span lives (`bumped <= objects`).
    /// Stored only under the class lock; loaded by [`SpanMeta::check_object`] without it.
    bumped: AtomicU32,
    /// Objects outside the span.
    pub(crate) used: Cell<u32>,
    /// Whether the span is on its class's list of spans with free objects.
    pub(crate) in_partial: Cell<bool>,
    /// Objects given back to the span, their count, and the list's last object (so that the whole
    /// list can be handed over without walking it: those objects are usually cold in cache).
    free: Cell<*mut FreeObj>,
    nfree: Cell<u32>,
    free_tail: Cell<*mut FreeObj>,
    /// Links in the class's partial list.
    pub(crate) prev: Cell<*mut SpanMeta>,
    pub(crate) next: Cell<*mut SpanMeta>,
}

/// A span's block from the core is 16 bytes short of `span_bytes` (the core's header takes them),
/// so the record must end at least 16 bytes before the span's nominal end.
const _: () = assert!(core::mem::size_of::<SpanMeta>() + 16 <= SPAN_META_RESERVE);

impl SpanMeta {
    /// The size of this span, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.pages as usize * PAGE
    }

    /// Writes a fresh metadata record for a span of class `c` and `pages` pages at `start`, and
    /// returns it.
    ///
    /// # Safety
    /// `start` must be page aligned and own at least `pages * PAGE - 16` writable bytes, and
    /// `pages` must hold at least one object of class `c` besides the record.
    pub(crate) unsafe fn init(start: *mut u8, c: usize, pages: usize) -> *mut SpanMeta {
        debug_assert!(span_objects(c, pages) >= 1);
        // SAFETY: the record starts `SPAN_META_RESERVE` bytes before `pages * PAGE` and ends at
        // least 16 bytes before it (checked at compile time above), so it lies inside the bytes
        // the caller owns; it is 128-byte aligned.
        unsafe {
            let meta = start
                .add(pages * PAGE - SPAN_META_RESERVE)
                .cast::<SpanMeta>();
            meta.write(SpanMeta {
                start,
                class: c as u32,
                pages: pages as u32,
                objects: span_objects(c, pages) as u32,
                bumped: AtomicU32::new(0),
                used: Cell::new(0),
                in_partial: Cell::new(false),
                free: Cell::new(ptr::null_mut()),
                nfree: Cell::new(0),
                free_tail: Cell::new(ptr::null_mut()),
                prev: Cell::new(ptr::null_mut()),
                next: Cell::new(ptr::null_mut()),
            });
            meta
        }
    }

    fn info(&self) -> &'static ClassInfo {
        &CLASSES[self.class as usize]
    }

    /// Whether `addr` is the start of an object that this span has handed out: `Ok(())`, or
    /// `Misaligned` for an address inside an object, inside the metadata record, or at a slot that
    /// was never handed out (which a `free` must refuse: the bump index would hand it out again,
    /// to a second owner). The span's class is the object's class.
    ///
    /// Takes no lock: `bumped` is loaded with `Relaxed` ordering, and a stale value cannot refuse
    /// an object its caller legitimately owns. The object reached its owner through a chain that
    /// starts at the `take` that carved it: `take` stored a count past the object's slot under the
    /// class lock, and the object left that critical section by the lock's release (or in the
    /// same thread), then travelled by whatever hand-off gave it to the caller, each step a
    /// happens-before edge. A load that happens after a store reads that store or a later one
    /// (coherence), and `bumped` only grows while the span lives (the span cannot go back to the
    /// core while an object of it is out), so the load sees a count past the slot. A load that
    /// races with `take`s on other threads may see an older, smaller count; the only slots it can
    /// then refuse are those carved by `take`s that do not happen before it, and the caller owns
    /// none of those.
    #[inline]
    pub(crate) fn check_object(&self, addr: usize) -> Result<(), FreeError> {
        let (idx, rem) = split_offset(self.class as usize, addr - self.start as usize);
        if rem != 0 || idx >= self.bumped.load(Ordering::Relaxed) as usize {
            return Err(FreeError::Misaligned);
        }
        Ok(())
    }

    /// Whether the span still has an object to hand out. Under the class lock.
    pub(crate) fn has_free(&self) -> bool {
        !self.free.get().is_null() || self.bumped.load(Ordering::Relaxed) < self.objects
    }

    /// Takes up to `want` objects, linking them in front of `head`. Returns the new head and how
    /// many were taken. With `whole`, a non-empty free list is handed over entire (possibly more
    /// than `want` objects, at most one span's worth) rather than walked to cut it: its objects are
    /// usually cold, and walking them would cost a cache miss each.
    ///
    /// # Safety
    /// The caller holds the class lock, and `head` is a list the caller owns.
    pub(crate) unsafe fn take(
        &self,
        want: u32,
        whole: bool,
        mut head: *mut FreeObj,
    ) -> (*mut FreeObj, u32) {
        let mut taken = 0;
        let nfree = self.nfree.get();
        if nfree > 0 {
            if nfree <= want || whole {
                // Splice the whole list in front of `head` without touching its objects.
                // SAFETY: `free_tail` is the last object of the span's non-empty free list.
                unsafe { (*self.free_tail.get()).next = head };
                head = self.free.get();
                taken = nfree;
                self.free.set(ptr::null_mut());
                self.free_tail.set(ptr::null_mut());
                self.nfree.set(0);
            } else {
                // Cut the first `want` objects (one read each, no writes but the last link).
                let first = self.free.get();
                let mut last = first;
                for _ in 1..want {
                    // SAFETY: the list holds `nfree > want` objects.
                    last = unsafe { (*last).next };
                }
                // SAFETY: `last` is the want-th object; the rest of the list stays with the span.
                unsafe {
                    self.free.set((*last).next);
                    (*last).next = head;
                }
                head = first;
                taken = want;
                self.nfree.set(nfree - want);
            }
        }
        let size = self.info().size as usize;
        // Only this thread stores `bumped` (the class lock is held), so this load is exact.
        let mut bumped = self.bumped.load(Ordering::Relaxed);
        while taken < want && bumped < self.objects {
            // SAFETY: slot `bumped < objects` lies inside the span, before its record.
            let obj = unsafe { self.start.add(bumped as usize * size) };
            bumped += 1;
            // SAFETY: objects past the old bump index were never handed out; the span owns them.
            head = unsafe { FreeObj::push(obj, head) };
            taken += 1;
        }
        // Stored before the objects leave the critical section: see `check_object`.
        self.bumped.store(bumped, Ordering::Relaxed);
        self.used.set(self.used.get() + taken);
        (head, taken)
    }

    /// Gives one object back to the span.
    ///
    /// # Safety
    /// The caller holds the class lock; `obj` is an object of this span that is outside it.
    pub(crate) unsafe fn give(&self, obj: *mut FreeObj) {
        debug_assert!(self.used.get() > 0);
        if self.free.get().is_null() {
            self.free_tail.set(obj);
        }
        // SAFETY: the object is free and now owned by the span.
        self.free
            .set(unsafe { FreeObj::push(obj.cast(), self.free.get()) });
        self.nfree.set(self.nfree.get() + 1);
        self.used.set(self.used.get() - 1);
    }
}
