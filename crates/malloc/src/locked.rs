//! [`LockedHeap`]: a [`Heap`] behind a [`SpinLock`], usable as `#[global_allocator]` and as an
//! allocator-api2 [`Allocator`].
//!
//! Invariant: nothing on these paths allocates (the lock is a spin lock and the heap only asks
//! its source for pages), so the heap can be the allocator that everything else calls.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError as ApiAllocError, Allocator};

use crate::heap::{DefaultSource, Heap};
use crate::placement::Policy;
use crate::placement::SegregatedFit;
use crate::source::Source;
use crate::spin::{SpinLock, SpinLockGuard};

/// A heap behind a spin lock: a global allocator.
///
/// ```no_run
/// use freespace_malloc::LockedHeap;
///
/// #[global_allocator]
/// static ALLOCATOR: LockedHeap = LockedHeap::new();
///
/// fn main() {
///     let v: Vec<u32> = (0..1000).collect();
///     assert_eq!(v.len(), 1000);
/// }
/// ```
pub struct LockedHeap<S: Source = DefaultSource, P: Policy = SegregatedFit> {
    heap: SpinLock<Heap<S, P>>,
}

#[cfg(all(feature = "std", unix))]
impl LockedHeap<crate::source::OsSource, SegregatedFit> {
    /// The default heap (segregated fit, memory from the OS) behind a lock.
    pub const fn new() -> Self {
        Self::with_heap(Heap::new())
    }
}

#[cfg(all(feature = "std", unix))]
impl Default for LockedHeap<crate::source::OsSource, SegregatedFit> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Source, P: Policy> LockedHeap<S, P> {
    /// `heap` behind a lock.
    pub const fn with_heap(heap: Heap<S, P>) -> Self {
        LockedHeap {
            heap: SpinLock::new(heap),
        }
    }

    /// Locks the heap, for direct use of its API (stats, check, ...).
    pub fn lock(&self) -> SpinLockGuard<'_, Heap<S, P>> {
        self.heap.lock()
    }
}

// SAFETY: every call goes through the lock to a heap that returns blocks of at least the layout's
// size and alignment, never hands out a live block twice, and frees only what it handed out.
unsafe impl<S: Source + Send, P: Policy + Send> GlobalAlloc for LockedHeap<S, P> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap
            .lock()
            .malloc(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block this allocator handed out.
            let freed = unsafe { self.heap.lock().free(p) };
            debug_assert!(
                freed.is_ok(),
                "dealloc of a pointer this heap refused: {freed:?}"
            );
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.heap
            .lock()
            .calloc_layout(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some(p), Ok(new_layout)) = (
            NonNull::new(ptr),
            Layout::from_size_align(new_size, layout.align()),
        ) else {
            return core::ptr::null_mut();
        };
        // SAFETY: the caller passes a live block of this allocator.
        unsafe { self.heap.lock().realloc(p, new_layout) }
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }
}

fn dangling(layout: Layout) -> NonNull<[u8]> {
    // A zero-size allocation needs no memory, only an aligned non-null address.
    let p = NonNull::new(core::ptr::null_mut::<u8>().wrapping_add(layout.align()))
        .unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(p, 0)
}

// SAFETY: blocks are valid until deallocated, have the layout's size and alignment, and the
// lock serialises all calls; zero-size requests get a dangling aligned pointer and are never
// passed to the heap.
unsafe impl<S: Source, P: Policy> Allocator for LockedHeap<S, P> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, ApiAllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        let p = self.heap.lock().malloc(layout).map_err(|_| ApiAllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, ApiAllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        let p = self
            .heap
            .lock()
            .calloc_layout(layout)
            .map_err(|_| ApiAllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller passes a block this allocator handed out.
            let freed = unsafe { self.heap.lock().free(ptr) };
            debug_assert!(
                freed.is_ok(),
                "deallocate of a pointer this heap refused: {freed:?}"
            );
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, ApiAllocError> {
        if old_layout.size() == 0 {
            return self.allocate(new_layout);
        }
        // SAFETY: the caller passes a live block of this allocator.
        let p = unsafe { self.heap.lock().realloc(ptr, new_layout) }.map_err(|_| ApiAllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, new_layout.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, ApiAllocError> {
        if new_layout.size() == 0 {
            // SAFETY: forwarded from the caller.
            unsafe { self.deallocate(ptr, old_layout) };
            return Ok(dangling(new_layout));
        }
        // SAFETY: the caller passes a live block of this allocator.
        let p = unsafe { self.heap.lock().realloc(ptr, new_layout) }.map_err(|_| ApiAllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, new_layout.size()))
    }
}

#[cfg(all(test, feature = "std", unix))]
mod tests {
    use super::*;

    #[test]
    fn global_alloc_calls_reach_the_heap() {
        let heap = LockedHeap::new();
        let l = Layout::from_size_align(100, 64).unwrap();
        // SAFETY: a non-zero layout; each pointer is used while live and freed once.
        unsafe {
            let p = heap.alloc(l);
            assert!(!p.is_null() && p as usize % 64 == 0);
            p.write_bytes(3, 100);
            let q = heap.realloc(p, l, 5000);
            assert_eq!(q as usize % 64, 0);
            assert_eq!(*q.add(99), 3);
            heap.dealloc(q, Layout::from_size_align(5000, 64).unwrap());
            let z = heap.alloc_zeroed(Layout::from_size_align(300, 8).unwrap());
            assert!(core::slice::from_raw_parts(z, 300).iter().all(|&b| b == 0));
            heap.dealloc(z, Layout::from_size_align(300, 8).unwrap());
            assert!(heap
                .alloc(Layout::from_size_align(1 << 60, 8).unwrap())
                .is_null());
        }
        let h = heap.lock();
        h.check().unwrap();
        assert_eq!(h.stats().live_blocks, 0);
    }
}
