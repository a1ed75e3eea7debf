//! `ThreadCached`: the public face of the allocator, as a `GlobalAlloc` and as C-style entry
//! points (`malloc`, `free` without a size, `usable_size`, fork handlers). Invariant: a
//! `GlobalAlloc` request is served by a size class exactly when `size_class::class_for(size,
//! align)` says so, and by the core otherwise, so a sized deallocation can find the class from its
//! layout alone. The C-style entry points also let the core serve a class's first
//! [`COLD_OBJECTS`] objects (a cold class); their `free` finds the owner from the address, so
//! either place works for them.

use crate::size_class::{self, class_for, size_to_class, CLASSES, MIN_SIZE};
use crate::span::FreeObj;
use crate::tls::{self, CENTRAL};
use crate::ReallocError;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};
use freespace_malloc::FreeError;

/// How many objects of each class the C-style entry points take from the core before the class
/// gets spans. A span costs a process at least one page of its own per class, and the page of
/// its record, however few objects it holds; the core packs blocks of every size side by side.
/// A program that uses a class for a handful of objects (a start-up, a small tool such as `cat`
/// or `git`) so keeps them in shared pages, and a class that proves busy moves to spans and the
/// thread caches after a few core allocations.
pub const COLD_OBJECTS: u32 = 64;

/// Per class, how many objects the core has served while the class was cold (it may overshoot
/// [`COLD_OBJECTS`] by a few when threads race; that only delays the switch).
static CORE_SERVED: [AtomicU32; size_class::NUM_CLASSES] =
    [const { AtomicU32::new(0) }; size_class::NUM_CLASSES];

/// Serves a request of class `c` from the core while the class is cold; `None` once it is busy.
#[cold]
#[inline(never)]
fn alloc_cold(c: usize, size: usize, align: usize) -> Option<*mut u8> {
    let served = &CORE_SERVED[c];
    if served.load(Ordering::Relaxed) >= COLD_OBJECTS {
        return None;
    }
    served.fetch_add(1, Ordering::Relaxed);
    let p = CENTRAL
        .backend
        .alloc_large(size.max(1), align.max(MIN_SIZE));
    // Out of memory in the core: let the span path try (it fails too, or finds a free object).
    (!p.is_null()).then_some(p)
}

/// The thread-cached allocator. A zero-sized handle: every `ThreadCached` shares one set of
/// central lists and each thread's one cache.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadCached {
    _private: (),
}

/// A snapshot of the allocator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcacheStats {
    /// Bytes of live spans (small objects, in use or cached, plus span slack).
    pub span_bytes: usize,
    /// Live spans.
    pub spans: usize,
    /// Spans ever taken from the core.
    pub spans_created: usize,
    /// Spans ever given back to the core.
    pub spans_released: usize,
    /// Bytes the core holds for the live objects it serves: large ones, over-aligned ones, and
    /// the C-style entry points' objects of cold size classes.
    pub large_bytes: usize,
    /// Live objects served by the core (as counted in `large_bytes`).
    pub large_objects: usize,
    /// Bytes of free objects in the central transfer caches.
    pub transfer_bytes: usize,
    /// Bytes of free objects in the calling thread's cache.
    pub thread_cache_bytes: usize,
    /// Bytes the core has mapped from the OS (spans, large objects and the core's free space).
    pub mapped_bytes: usize,
}

impl ThreadCached {
    /// The allocator handle; usable in a `static`.
    pub const fn new() -> ThreadCached {
        ThreadCached { _private: () }
    }

    /// Allocates `size` bytes, 16-byte aligned. Size 0 gives a unique minimal block. Null when out
    /// of memory.
    ///
    /// The block must be released through the C-style entry points ([`ThreadCached::free`],
    /// [`ThreadCached::realloc`]), never through `GlobalAlloc::dealloc`: while its size class is
    /// cold (fewer than [`COLD_OBJECTS`] served), the block comes from the core, not from a span.
    #[inline]
    pub fn malloc(&self, size: usize) -> *mut u8 {
        match size_to_class(size) {
            Some(c) => tls::alloc_small_or(c, || alloc_cold(c, size, MIN_SIZE)),
            None => CENTRAL.backend.alloc_large(size, MIN_SIZE),
        }
    }

    /// Allocates `size` bytes aligned to `align`, any power of two (null otherwise, or when out of
    /// memory).
    pub fn aligned_alloc(&self, align: usize, size: usize) -> *mut u8 {
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        match class_for(size, align) {
            Some(c) => tls::alloc_small_or(c, || alloc_cold(c, size, align)),
            None => CENTRAL
                .backend
                .alloc_large(size.max(1), align.max(MIN_SIZE)),
        }
    }

    /// Allocates `count * size` zeroed bytes; null if the product overflows or memory runs out.
    pub fn calloc(&self, count: usize, size: usize) -> *mut u8 {
        let Some(bytes) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        let p = self.malloc(bytes);
        if !p.is_null() {
            // SAFETY: `p` is a fresh block of at least `bytes` bytes.
            unsafe { ptr::write_bytes(p, 0, bytes) };
        }
        p
    }

    /// Finds the class of a small object from its address alone, validating that `ptr` is the
    /// start of an object its span has handed out (`SpanMeta::check_object`). `Ok(None)` means
    /// `ptr` is in no span (a large object or foreign). `free`, `usable_size` and `try_realloc`
    /// all validate through here.
    fn small_class_of(ptr: *const u8) -> Result<Option<usize>, FreeError> {
        let span = CENTRAL.backend.lookup(ptr as usize);
        if span.is_null() {
            return Ok(None);
        }
        // SAFETY: the page map points only at live span records, which are only ever borrowed
        // shared (their mutable fields are cells and an atomic).
        let span = unsafe { &*span };
        span.check_object(ptr as usize)?;
        Ok(Some(span.class as usize))
    }

    /// Frees a block from any entry point of this allocator, without its size. Null is a no-op.
    ///
    /// Refused, with nothing changed: a pointer in no span and unknown to the core
    /// (`NotInHeap`, or the core's `BadMagic`), a pointer into a span that is not the start of an
    /// object the span has handed out (`Misaligned`: inside an object or the span's record, or a
    /// slot past its bump index), and a small object that is already free (`DoubleFree`). A double free
    /// of a small object is caught while the object sits in any free list (a thread cache, the
    /// transfer cache or its span), that is until it is handed out again; the core catches double
    /// frees of large objects.
    ///
    /// # Safety
    /// If `ptr` is a live block of this allocator, nothing may use it afterwards. Other pointers
    /// must at least point to readable memory for the refusal checks.
    pub unsafe fn free(&self, ptr: *mut u8) -> Result<(), FreeError> {
        if ptr.is_null() {
            return Ok(());
        }
        match Self::small_class_of(ptr)? {
            Some(c) => {
                // SAFETY: `ptr` is the start of an object of class `c`, readable.
                if unsafe { FreeObj::is_marked(ptr) } {
                    return Err(FreeError::DoubleFree);
                }
                // SAFETY: a live object of class `c`, handed over by the caller.
                unsafe { tls::free_small(c, ptr) };
                Ok(())
            }
            // SAFETY: `ptr` is in no span; the core validates it.
            None => unsafe { CENTRAL.backend.free_large(ptr) },
        }
    }

    /// The usable size of a live block (at least what was asked for), or `None` for a pointer this
    /// allocator does not recognise.
    ///
    /// # Safety
    /// `ptr` must be a live block of this allocator or point to readable memory.
    pub unsafe fn usable_size(&self, ptr: *const u8) -> Option<usize> {
        if ptr.is_null() {
            return None;
        }
        match Self::small_class_of(ptr).ok()? {
            Some(c) => Some(CLASSES[c].size as usize),
            // SAFETY: `ptr` is in no span; the core validates it.
            None => unsafe { CENTRAL.backend.large_usable_size(ptr) }.ok(),
        }
    }

    /// Resizes a block, C style: null `ptr` allocates; the block stays in place when the new size
    /// keeps its size class (or both sizes are large and the core can resize in place); otherwise
    /// the contents move. Size 0 gives a minimal block. Null when out of memory or `ptr` is not
    /// recognised; the old block is then untouched. [`ThreadCached::try_realloc`] tells the two
    /// failures apart.
    ///
    /// # Safety
    /// As for [`ThreadCached::try_realloc`].
    pub unsafe fn realloc(&self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        match unsafe { self.try_realloc(ptr, new_size) } {
            Ok(p) => p.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }

    /// Resizes a block as [`ThreadCached::realloc`] does, and says why when it fails, with the
    /// old block untouched in every case:
    /// - `Err(ReallocError::Invalid(e))`: `ptr` is not a live block; `e` is what
    ///   [`ThreadCached::free`] would refuse it with (`DoubleFree` for a freed small object,
    ///   `Misaligned` for a pointer inside an object or at a slot never handed out, `NotInHeap` or
    ///   `BadMagic` for a freed large
    ///   object or a foreign pointer, as the core finds);
    /// - `Err(ReallocError::OutOfMemory)`: `ptr` is live but no block of `new_size` could be had.
    ///
    /// A freed small object is recognised while it sits in a free list, as for `free`.
    ///
    /// # Safety
    /// `ptr` is null, or a live block from this allocator's C-style entry points, or a pointer to
    /// readable memory (for the refusal checks). On success `ptr` must not be used again unless
    /// it is the returned pointer.
    pub unsafe fn try_realloc(
        &self,
        ptr: *mut u8,
        new_size: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        if ptr.is_null() {
            return NonNull::new(self.malloc(new_size)).ok_or(ReallocError::OutOfMemory);
        }
        let old_class = Self::small_class_of(ptr)?;
        let new_class = size_to_class(new_size);
        let old_size = match old_class {
            Some(c) => {
                // SAFETY: `ptr` is the start of an object of class `c`, readable.
                if unsafe { FreeObj::is_marked(ptr) } {
                    return Err(ReallocError::Invalid(FreeError::DoubleFree));
                }
                if new_class == Some(c) {
                    // SAFETY: `ptr` is not null (checked above).
                    return Ok(unsafe { NonNull::new_unchecked(ptr) });
                }
                CLASSES[c].size as usize
            }
            None if new_class.is_none() => {
                // SAFETY: `ptr` is in no span: a large object of the core or readable memory,
                // which the core validates.
                return unsafe { CENTRAL.backend.realloc_large(ptr, new_size, MIN_SIZE) };
            }
            // SAFETY: as above.
            None => unsafe { CENTRAL.backend.large_usable_size(ptr) }?,
        };
        let new = NonNull::new(self.malloc(new_size)).ok_or(ReallocError::OutOfMemory)?;
        // SAFETY: both blocks are live and distinct; the copy fits in both.
        unsafe { ptr::copy_nonoverlapping(ptr, new.as_ptr(), old_size.min(new_size)) };
        match old_class {
            // SAFETY: `ptr` is a live object of class `c` (checked above), handed over.
            Some(c) => unsafe { tls::free_small(c, ptr) },
            None => {
                // SAFETY: `ptr` is a live large object (the core just gave its size).
                let freed = unsafe { CENTRAL.backend.free_large(ptr) };
                debug_assert!(freed.is_ok());
            }
        }
        Ok(new)
    }

    /// Sends everything the calling thread has cached to the central lists.
    pub fn flush_thread_cache(&self) {
        tls::flush_current();
    }

    /// Flushes the calling thread's cache, empties the central transfer caches into their spans
    /// and gives every empty span back to the core.
    pub fn release_memory(&self) {
        tls::flush_current();
        CENTRAL.release_memory();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TcacheStats {
        let s = CENTRAL.stats();
        TcacheStats {
            span_bytes: s.backend.span_bytes,
            spans: s.backend.spans,
            spans_created: s.backend.spans_created,
            spans_released: s.backend.spans_released,
            large_bytes: s.backend.large_bytes,
            large_objects: s.backend.large_objects,
            transfer_bytes: s.transfer_bytes,
            thread_cache_bytes: tls::cached_bytes_current(),
            mapped_bytes: s.mapped_bytes,
        }
    }

    /// Call just before `fork()`: takes every lock of the allocator, so the child inherits them in
    /// a consistent state. Must be followed by [`ThreadCached::postfork_parent`] in the parent and
    /// [`ThreadCached::postfork_child`] in the child (as `pthread_atfork` arranges).
    pub fn prefork(&self) {
        CENTRAL.lock_all();
    }

    /// Call in the parent after `fork()`: releases the locks taken by `prefork`.
    pub fn postfork_parent(&self) {
        // SAFETY: `prefork` took every lock on this thread, and the contract pairs the calls.
        unsafe { CENTRAL.unlock_all() };
    }

    /// Call in the child after `fork()`: the child's only thread releases the inherited locks.
    /// Objects cached by the parent's other threads stay unusable in the child (they are leaked
    /// there, as with jemalloc), while the calling thread's cache stays valid.
    pub fn postfork_child(&self) {
        // SAFETY: the locks were taken by `prefork` in the parent, on the thread now running.
        unsafe { CENTRAL.unlock_all() };
    }
}

// SAFETY: every block handed out is fresh, of at least the layout's size and alignment (size
// classes are checked against `class_for`, large blocks come from the core with the alignment),
// and a block is reused only after it is freed.
unsafe impl GlobalAlloc for ThreadCached {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_for(layout.size(), layout.align()) {
            Some(c) => tls::alloc_small(c),
            None => CENTRAL
                .backend
                .alloc_large(layout.size().max(1), layout.align().max(MIN_SIZE)),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_for(layout.size(), layout.align()) {
            // SAFETY: the same layout allocated `ptr` from class `c`; the caller hands it over.
            Some(c) => unsafe { tls::free_small(c, ptr) },
            None => {
                // SAFETY: the same layout allocated `ptr` from the core.
                let _ = unsafe { CENTRAL.backend.free_large(ptr) };
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: `p` is a fresh block of `layout.size()` bytes.
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let old = class_for(layout.size(), align);
        let new = class_for(new_size, align);
        match (old, new) {
            (Some(a), Some(b)) if a == b => return ptr,
            (None, None) => {
                // SAFETY: `ptr` is a live large block with alignment `align`.
                return unsafe {
                    CENTRAL
                        .backend
                        .realloc_large(ptr, new_size, align.max(MIN_SIZE))
                }
                .map_or(ptr::null_mut(), NonNull::as_ptr);
            }
            _ => {}
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: forwarded contract.
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: both blocks are live and distinct; the copy fits in both.
            unsafe { ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated with `layout` and is handed over.
            unsafe { self.dealloc(ptr, layout) };
        }
        p
    }
}
