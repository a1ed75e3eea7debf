//! The backend: the one file that talks to the memory underneath the caches. It hands out spans
//! (registering them in the page map) and takes them back, and it serves large objects. Invariant:
//! every page-map write and every call into the memory source happens under `lock`.
//!
//! The memory is freespace-malloc's default [`Heap`] (segregated fit over pages from the OS,
//! giving whole free pages at a region's end back to the OS). A freed large object of
//! `PURGE_LARGE_BYTES` or more also gives its interior pages back at once. A span is one heap block: its
//! payload is requested page aligned and 16 bytes short of a whole number of pages, so that the
//! next block's 16-byte header ends exactly on the next page boundary and consecutive spans tile
//! a region with no alignment padding between them.

use crate::page_map::PageMap;
use crate::realloc_error::ReallocError;
use crate::size_class::PAGE;
use crate::span::SpanMeta;
use crate::sync::{loom_const_fn, AtomicUsize, Ordering, SpinLock};
use core::alloc::Layout;
use core::ptr::{self, NonNull};
use freespace_malloc::{FreeError, Heap, HeapConfig, OsSource, SegregatedFit};

/// The core's block header, which sits in front of every payload it hands out.
const CORE_HEADER: usize = 16;

/// The core trims free space at a region's end back to the OS once it reaches this size (and
/// keeps half of it). Higher than the core's 1 MiB default, because a program that frees and
/// rebuilds its data in rounds would otherwise pay a page fault per page per round.
const TRIM_THRESHOLD: usize = 8 << 20;

/// A large object of at least this many bytes, when freed (or left behind by a realloc that
/// moved it), has its interior pages given back to the OS (`madvise(MADV_DONTNEED)`) at once,
/// as glibc does by unmapping its mmapped chunks. The core keeps its own bookkeeping at a free
/// block's two ends, which stay mapped. At 128 KiB the sqlite3 run's peak RSS was the same, but
/// a program that regrows tables of a few hundred KiB in rounds refaulted their pages each round.
const PURGE_LARGE_BYTES: usize = 512 * 1024;

/// Bytes kept resident at each end of a purged block: room for the core's header, free-list
/// links and boundary tag.
const PURGE_MARGIN: usize = 64;

/// Gives the whole pages strictly inside the free block `[ptr, ptr + len)` back to the OS,
/// keeping [`PURGE_MARGIN`] bytes at each end resident. The pages read as zeros when touched
/// again. Pages the core has already trimmed off its region (and which another mapping of the
/// program might occupy by now) are left alone: the range is purged only while the core still
/// owns its last byte, and a trim only ever shortens a region from its end.
///
/// # Safety
/// `[ptr, ptr + len)` is free memory of `heap` that nothing may use until the call returns
/// (the caller holds the backend lock), and the core keeps no data inside it beyond
/// `PURGE_MARGIN` bytes of either end.
unsafe fn purge_interior(heap: &Heap<OsSource, SegregatedFit>, ptr: *mut u8, len: usize) {
    // Offsets from `ptr` of the first and past-the-last whole page inside the margins.
    let base = ptr as usize;
    let first = (base + PURGE_MARGIN).next_multiple_of(PAGE) - base;
    let end = ((base + len - PURGE_MARGIN) & !(PAGE - 1)) - base;
    if end <= first {
        return;
    }
    // Derived from `ptr`, so that they carry its provenance.
    let (from, last) = (ptr.wrapping_add(first), ptr.wrapping_add(end - 1));
    if heap.owns(from) && heap.owns(last) {
        // Miri and loom have no `madvise`; the range is computed and checked all the same.
        #[cfg(not(any(loom, miri)))]
        // SAFETY: the pages lie inside free memory of the core (the caller's contract), so
        // discarding their contents loses nothing anyone reads.
        unsafe {
            libc::madvise(from.cast(), end - first, libc::MADV_DONTNEED);
        }
    }
}

/// The core heap, owned by the backend lock.
struct Core(Heap<OsSource, SegregatedFit>);

// SAFETY: the heap's raw pointers name memory it owns (its regions), not thread-local data;
// the backend lock serialises every use of it.
unsafe impl Send for Core {}

/// Spans and large objects, from the memory source.
pub(crate) struct Backend {
    lock: SpinLock<Core>,
    pages: PageMap,
    span_bytes: AtomicUsize,
    spans: AtomicUsize,
    spans_created: AtomicUsize,
    spans_released: AtomicUsize,
    large_bytes: AtomicUsize,
    large_objects: AtomicUsize,
}

/// Counters kept by the backend.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BackendStats {
    pub(crate) span_bytes: usize,
    pub(crate) spans: usize,
    pub(crate) spans_created: usize,
    pub(crate) spans_released: usize,
    pub(crate) large_bytes: usize,
    pub(crate) large_objects: usize,
}

impl Backend {
    loom_const_fn! {
        /// A backend with nothing mapped yet.
        pub(crate) fn new() -> Backend {
            Backend {
                lock: SpinLock::new(Core(Heap::with_parts(
                    OsSource::new(),
                    SegregatedFit::new(),
                    HeapConfig::new().with_trim_threshold(TRIM_THRESHOLD),
                ))),
                pages: PageMap::new(),
                span_bytes: AtomicUsize::new(0),
                spans: AtomicUsize::new(0),
                spans_created: AtomicUsize::new(0),
                spans_released: AtomicUsize::new(0),
                large_bytes: AtomicUsize::new(0),
                large_objects: AtomicUsize::new(0),
            }
        }
    }

    /// The span covering `addr`, or null if no span does.
    #[inline]
    pub(crate) fn lookup(&self, addr: usize) -> *mut SpanMeta {
        self.pages.get(addr)
    }

    /// A fresh span of class `c` and `pages` pages (which must hold an object of the class
    /// besides the span record), registered in the page map, or null when out of memory.
    pub(crate) fn new_span(&self, c: usize, pages: usize) -> *mut SpanMeta {
        let bytes = pages * PAGE - CORE_HEADER;
        let Ok(layout) = Layout::from_size_align(bytes, PAGE) else {
            return ptr::null_mut();
        };
        let mut core = self.lock.lock();
        let Ok(start) = core.0.malloc(layout) else {
            return ptr::null_mut();
        };
        let start = start.as_ptr();
        // SAFETY: `start` is a fresh page-aligned block of `pages * PAGE - 16` bytes, which is
        // what `SpanMeta::init` asks for (the caller vouches for the object).
        let meta = unsafe { SpanMeta::init(start, c, pages) };
        if !self.pages.set(start as usize, bytes, meta) {
            self.pages.set(start as usize, bytes, ptr::null_mut());
            // SAFETY: the block was allocated above and nothing else refers to it.
            let _ = unsafe { core.0.free(NonNull::new_unchecked(start)) };
            return ptr::null_mut();
        }
        self.span_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.spans.fetch_add(1, Ordering::Relaxed);
        self.spans_created.fetch_add(1, Ordering::Relaxed);
        meta
    }

    /// Returns an empty span to the core.
    ///
    /// # Safety
    /// `meta` is a span from `new_span` with no object outside it, unlinked from every list.
    pub(crate) unsafe fn free_span(&self, meta: *mut SpanMeta) {
        // SAFETY: the caller passes a live span record.
        let (start, bytes) = unsafe { ((*meta).start, (*meta).bytes() - CORE_HEADER) };
        let mut core = self.lock.lock();
        self.pages.set(start as usize, bytes, ptr::null_mut());
        // SAFETY: the span is a live block of the core that nothing refers to any more.
        let freed = unsafe { core.0.free(NonNull::new_unchecked(start)) };
        debug_assert!(freed.is_ok());
        self.span_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.spans.fetch_sub(1, Ordering::Relaxed);
        self.spans_released.fetch_add(1, Ordering::Relaxed);
    }

    /// A large object of `size` bytes aligned to `align` (a power of two), or null.
    pub(crate) fn alloc_large(&self, size: usize, align: usize) -> *mut u8 {
        let Ok(layout) = Layout::from_size_align(size.max(1), align) else {
            return ptr::null_mut();
        };
        let mut core = self.lock.lock();
        match core.0.malloc(layout) {
            Ok(p) => {
                // SAFETY: `p` is the live block just allocated.
                let usable = unsafe { core.0.usable_size(p) }.unwrap_or(0);
                self.large_bytes.fetch_add(usable, Ordering::Relaxed);
                self.large_objects.fetch_add(1, Ordering::Relaxed);
                p.as_ptr()
            }
            Err(_) => ptr::null_mut(),
        }
    }

    /// Frees a large object; the core refuses pointers it does not own, misplaced pointers,
    /// bad headers and double frees.
    ///
    /// # Safety
    /// `ptr` must not be in a span; if it is a large object, nothing may use it afterwards.
    pub(crate) unsafe fn free_large(&self, ptr: *mut u8) -> Result<(), FreeError> {
        let ptr = NonNull::new(ptr).ok_or(FreeError::NotInHeap)?;
        let mut core = self.lock.lock();
        // SAFETY: the caller's contract; the core validates the pointer before using it.
        let usable = unsafe { core.0.usable_size(ptr) }?;
        // SAFETY: as above.
        unsafe { core.0.free(ptr) }?;
        if usable >= PURGE_LARGE_BYTES {
            // SAFETY: the block was just freed and the backend lock is still held, so nothing
            // hands its interior out again before the purge is done.
            unsafe { purge_interior(&core.0, ptr.as_ptr(), usable) };
        }
        self.large_bytes.fetch_sub(usable, Ordering::Relaxed);
        self.large_objects.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// The usable size of a large object.
    ///
    /// # Safety
    /// `ptr` must not be in a span, and must not point at memory being changed concurrently.
    pub(crate) unsafe fn large_usable_size(&self, ptr: *const u8) -> Result<usize, FreeError> {
        let ptr = NonNull::new(ptr.cast_mut()).ok_or(FreeError::NotInHeap)?;
        let core = self.lock.lock();
        // SAFETY: the caller's contract; the core validates the pointer.
        unsafe { core.0.usable_size(ptr) }
    }

    /// Resizes a large object (in place when the core can). On failure the old object is intact:
    /// `Invalid` when the core refuses `ptr` (freed, or never one of its blocks), `OutOfMemory`
    /// when the new size cannot be served.
    ///
    /// # Safety
    /// `ptr` must not be in a span, and must be a live large object with alignment `align` or
    /// point to readable memory (which the core then refuses).
    pub(crate) unsafe fn realloc_large(
        &self,
        ptr: *mut u8,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        let p = NonNull::new(ptr).ok_or(ReallocError::Invalid(FreeError::NotInHeap))?;
        let layout = Layout::from_size_align(new_size.max(1), align)
            .map_err(|_| ReallocError::OutOfMemory)?;
        let mut core = self.lock.lock();
        // SAFETY: the caller's contract; the core validates the pointer before using it.
        let old = unsafe { core.0.usable_size(p) }.map_err(ReallocError::Invalid)?;
        // SAFETY: `p` was just validated as a live block of the core, under its lock.
        match unsafe { core.0.realloc(p, layout) } {
            Ok(q) => {
                // SAFETY: `q` is the live resized block.
                let new = unsafe { core.0.usable_size(q) }.unwrap_or(old);
                if q != p && old >= PURGE_LARGE_BYTES {
                    // SAFETY: the block moved, so the old one is free memory of the core, disjoint
                    // from the live `q`, and the backend lock is still held.
                    unsafe { purge_interior(&core.0, p.as_ptr(), old) };
                }
                self.large_bytes.fetch_add(new, Ordering::Relaxed);
                self.large_bytes.fetch_sub(old, Ordering::Relaxed);
                Ok(q)
            }
            // The pointer was validated above, so any refusal here is about the new size.
            Err(_) => Err(ReallocError::OutOfMemory),
        }
    }

    /// Asks the core to give every whole free page at a region's end back to the OS.
    pub(crate) fn release_free_memory(&self) {
        self.lock.lock().0.release_free_memory();
    }

    /// Bytes the core has mapped from the OS.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.lock.lock().0.source().mapped_bytes()
    }

    /// Counters.
    pub(crate) fn stats(&self) -> BackendStats {
        BackendStats {
            span_bytes: self.span_bytes.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
            spans_created: self.spans_created.load(Ordering::Relaxed),
            spans_released: self.spans_released.load(Ordering::Relaxed),
            large_bytes: self.large_bytes.load(Ordering::Relaxed),
            large_objects: self.large_objects.load(Ordering::Relaxed),
        }
    }

    /// Takes the backend lock for `fork()`.
    #[cfg(not(loom))]
    pub(crate) fn lock_for_fork(&self) {
        // `unlock_after_fork` releases it.
        core::mem::forget(self.lock.lock());
    }

    /// Releases the lock taken by `lock_for_fork`.
    #[cfg(not(loom))]
    ///
    /// # Safety
    /// The caller took it with `lock_for_fork`.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: the caller holds the lock through `lock_for_fork`, whose guard was forgotten.
        unsafe { self.lock.force_unlock() };
    }
}
