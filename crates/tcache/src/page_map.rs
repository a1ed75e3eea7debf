//! The page map: a two-level radix table from every 4 KiB page of the 48-bit address space to the
//! metadata of the span that covers it, so `free(ptr)` finds its span and class without a size.
//! Invariant: an entry is non-null exactly while the page belongs to a live span; entries are set
//! before the span's first object is handed out and cleared before the span goes back to the core.
//!
//! Both levels are mapped from the OS lazily (untouched parts cost no memory) and never freed while
//! the map lives. Writers are serialised by the caller (the backend lock); readers take no lock.
//! The tables use `core` atomics even under loom: loom cannot model millions of atomics, and the
//! class locks, which loom does check, already order every publication a reader depends on.

use crate::size_class::PAGE;
use crate::span::SpanMeta;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

const ADDRESS_BITS: u32 = 48;
const PAGE_SHIFT: u32 = PAGE.trailing_zeros();
const PAGE_BITS: u32 = ADDRESS_BITS - PAGE_SHIFT;
const LEAF_BITS: u32 = PAGE_BITS / 2;
const ROOT_BITS: u32 = PAGE_BITS - LEAF_BITS;
const LEAF_LEN: usize = 1 << LEAF_BITS;
const ROOT_LEN: usize = 1 << ROOT_BITS;

type Leaf = [AtomicPtr<SpanMeta>; LEAF_LEN];
type Root = [AtomicPtr<Leaf>; ROOT_LEN];

/// `MAP_NORESERVE`: the tables are mostly untouched, so no swap is reserved for them. Miri's
/// `mmap` takes only `MAP_PRIVATE | MAP_ANONYMOUS` (it allocates the memory outright).
#[cfg(not(miri))]
const NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(miri)]
const NORESERVE: libc::c_int = 0;

/// Maps zeroed memory from the OS, or returns null.
fn os_map(bytes: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at no fixed address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// The radix table. `const fn new()`, so the global one lives in a `static`.
pub(crate) struct PageMap {
    root: AtomicPtr<Root>,
    /// The lowest and highest root index that has a leaf (`usize::MAX` and 0 while none has),
    /// so that dropping the map visits only that range of the 2^18 root entries.
    leaf_lo: AtomicUsize,
    leaf_hi: AtomicUsize,
}

impl PageMap {
    /// An empty map; nothing is mapped until the first span is registered.
    pub(crate) const fn new() -> Self {
        PageMap {
            root: AtomicPtr::new(ptr::null_mut()),
            leaf_lo: AtomicUsize::new(usize::MAX),
            leaf_hi: AtomicUsize::new(0),
        }
    }

    /// The span covering `addr`, or null. Lock-free: three dependent loads.
    #[inline]
    pub(crate) fn get(&self, addr: usize) -> *mut SpanMeta {
        let page = addr >> PAGE_SHIFT;
        if page >> PAGE_BITS != 0 {
            return ptr::null_mut();
        }
        let root = self.root.load(Ordering::Acquire);
        if root.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a non-null root is a live mapping of a `Root`, never unmapped while `self` lives.
        let leaf = unsafe { (*root)[page >> LEAF_BITS].load(Ordering::Acquire) };
        if leaf.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a non-null leaf is a live mapping of a `Leaf`, never unmapped while `self` lives.
        unsafe { (*leaf)[page & (LEAF_LEN - 1)].load(Ordering::Acquire) }
    }

    /// Points every page of `[start, start + bytes)` at `meta` (or clears them with null).
    /// Returns false if a table could not be mapped (nothing is half-set in that case for a
    /// non-null `meta` that spans a single leaf; callers clear on failure anyway).
    ///
    /// Callers must serialise calls to `set` (the backend lock does).
    pub(crate) fn set(&self, start: usize, bytes: usize, meta: *mut SpanMeta) -> bool {
        let mut root = self.root.load(Ordering::Acquire);
        if root.is_null() {
            if meta.is_null() {
                return true;
            }
            root = os_map(core::mem::size_of::<Root>()).cast();
            if root.is_null() {
                return false;
            }
            self.root.store(root, Ordering::Release);
        }
        let first = start >> PAGE_SHIFT;
        let last = (start + bytes - 1) >> PAGE_SHIFT;
        if last >> PAGE_BITS != 0 {
            return false;
        }
        for page in first..=last {
            // SAFETY: `root` is a live mapping of a `Root` (set above or earlier, never unmapped).
            let slot = unsafe { &(*root)[page >> LEAF_BITS] };
            let mut leaf = slot.load(Ordering::Acquire);
            if leaf.is_null() {
                if meta.is_null() {
                    continue;
                }
                leaf = os_map(core::mem::size_of::<Leaf>()).cast();
                if leaf.is_null() {
                    return false;
                }
                slot.store(leaf, Ordering::Release);
                let i = page >> LEAF_BITS;
                // Only `set` writes these, and its calls are serialised.
                self.leaf_lo.fetch_min(i, Ordering::Relaxed);
                self.leaf_hi.fetch_max(i, Ordering::Relaxed);
            }
            // SAFETY: `leaf` is a live mapping of a `Leaf`.
            unsafe { (*leaf)[page & (LEAF_LEN - 1)].store(meta, Ordering::Release) };
        }
        true
    }
}

impl Drop for PageMap {
    fn drop(&mut self) {
        let root = *self.root.get_mut();
        if root.is_null() {
            return;
        }
        for i in *self.leaf_lo.get_mut()..=*self.leaf_hi.get_mut() {
            // SAFETY: `root` is a live mapping; `&mut self` means no reader is left.
            let leaf = unsafe { (*root)[i].load(Ordering::Relaxed) };
            if !leaf.is_null() {
                // SAFETY: the leaf was mapped by `os_map` with exactly this size.
                unsafe { libc::munmap(leaf.cast(), core::mem::size_of::<Leaf>()) };
            }
        }
        // SAFETY: the root was mapped by `os_map` with exactly this size.
        unsafe { libc::munmap(root.cast(), core::mem::size_of::<Root>()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let map = PageMap::new();
        assert!(map.get(0x1234_5000).is_null());
        // Never dereferenced: any non-null pointer will do.
        let fake = ptr::NonNull::<SpanMeta>::dangling().as_ptr();
        let start = 0x7f00_0000_0000 - 3 * PAGE;
        assert!(map.set(start, 5 * PAGE, fake));
        for off in (0..5 * PAGE).step_by(512) {
            assert_eq!(map.get(start + off), fake, "offset {off}");
        }
        assert!(map.get(start - 1).is_null());
        assert!(map.get(start + 5 * PAGE).is_null());
        assert!(map.get(usize::MAX).is_null());
        assert!(map.set(start, 5 * PAGE, ptr::null_mut()));
        assert!(map.get(start).is_null());
        assert!(!map.set(1 << 50, PAGE, fake));
    }
}
