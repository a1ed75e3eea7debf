//! Spans: runs of pages carved into objects of one size class, and the intrusive free-object
//! links that thread every free object onto a list. Invariant: `used` counts the span's objects
//! that are outside the span (in use, or cached by a thread or the transfer cache); the span is
//! empty, and may go back to the core, exactly when `used == 0`.
//!
//! A span's metadata record sits in the last [`SPAN_META_RESERVE`] bytes of the span itself, so a
//! span costs the core one allocation. Every field except the immutable geometry is read and
//! written only under its class's central lock.

use crate::size_class::{span_objects, ClassInfo, CLASSES, PAGE, SPAN_META_RESERVE};
use core::ptr;

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
    /// First byte of the span (page aligned), also the first object.
    pub(crate) start: usize,
    /// The size class.
    pub(crate) class: u32,
    /// The span's size in pages (a class's spans start small and grow: `size_class.rs`).
    pages: u32,
    /// Objects the span holds.
    pub(crate) objects: u32,
    /// Objects carved from the span so far (objects past this index were never handed out).
    bumped: u32,
    /// Objects outside the span.
    pub(crate) used: u32,
    /// Whether the span is on its class's list of spans with free objects.
    pub(crate) in_partial: bool,
    /// Objects given back to the span, their count, and the list's last object (so that the whole
    /// list can be handed over without walking it: those objects are usually cold in cache).
    free: *mut FreeObj,
    nfree: u32,
    free_tail: *mut FreeObj,
    /// Links in the class's partial list.
    pub(crate) prev: *mut SpanMeta,
    pub(crate) next: *mut SpanMeta,
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
                start: start as usize,
                class: c as u32,
                pages: pages as u32,
                objects: span_objects(c, pages) as u32,
                bumped: 0,
                used: 0,
                in_partial: false,
                free: ptr::null_mut(),
                nfree: 0,
                free_tail: ptr::null_mut(),
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
            });
            meta
        }
    }

    fn info(&self) -> &'static ClassInfo {
        &CLASSES[self.class as usize]
    }

    /// Whether the span still has an object to hand out.
    pub(crate) fn has_free(&self) -> bool {
        !self.free.is_null() || self.bumped < self.objects
    }

    /// Takes up to `want` objects, linking them in front of `head`. Returns the new head and how
    /// many were taken. With `whole`, a non-empty free list is handed over entire (possibly more
    /// than `want` objects, at most one span's worth) rather than walked to cut it: its objects are
    /// usually cold, and walking them would cost a cache miss each.
    ///
    /// # Safety
    /// The caller holds the class lock, and `head` is a list the caller owns.
    pub(crate) unsafe fn take(
        &mut self,
        want: u32,
        whole: bool,
        mut head: *mut FreeObj,
    ) -> (*mut FreeObj, u32) {
        let mut taken = 0;
        if self.nfree > 0 {
            if self.nfree <= want || whole {
                // Splice the whole list in front of `head` without touching its objects.
                // SAFETY: `free_tail` is the last object of the span's non-empty free list.
                unsafe { (*self.free_tail).next = head };
                head = self.free;
                taken = self.nfree;
                self.free = ptr::null_mut();
                self.free_tail = ptr::null_mut();
                self.nfree = 0;
            } else {
                // Cut the first `want` objects (one read each, no writes but the last link).
                let first = self.free;
                let mut last = first;
                for _ in 1..want {
                    // SAFETY: the list holds `nfree > want` objects.
                    last = unsafe { (*last).next };
                }
                // SAFETY: `last` is the want-th object; the rest of the list stays with the span.
                unsafe {
                    self.free = (*last).next;
                    (*last).next = head;
                }
                head = first;
                taken = want;
                self.nfree -= want;
            }
        }
        let size = self.info().size as usize;
        while taken < want && self.bumped < self.objects {
            let obj = (self.start + self.bumped as usize * size) as *mut u8;
            self.bumped += 1;
            // SAFETY: objects past the old bump index were never handed out; the span owns them.
            head = unsafe { FreeObj::push(obj, head) };
            taken += 1;
        }
        self.used += taken;
        (head, taken)
    }

    /// Gives one object back to the span.
    ///
    /// # Safety
    /// The caller holds the class lock; `obj` is an object of this span that is outside it.
    pub(crate) unsafe fn give(&mut self, obj: *mut FreeObj) {
        debug_assert!(self.used > 0);
        if self.free.is_null() {
            self.free_tail = obj;
        }
        // SAFETY: the object is free and now owned by the span.
        self.free = unsafe { FreeObj::push(obj.cast(), self.free) };
        self.nfree += 1;
        self.used -= 1;
    }
}
