//! Where a heap's memory comes from: the [`Source`] trait, [`FixedRegion`] (a caller's memory,
//! never grows, works in no_std) and [`OsSource`] (pages from the OS through mmap).
//!
//! Invariant: every region a source hands out is valid for reads and writes, owned by the heap
//! alone until it is given back, and never overlaps another live region.

use core::ptr::NonNull;

/// A supplier of memory regions for a heap.
///
/// A region may start at any address and have any length. A [`Heap`](crate::Heap) lays its
/// blocks out in the 16-byte-aligned part of it, from its start rounded up to a multiple of 16 to
/// its end rounded down to one; a region whose aligned part cannot hold the heap's region header,
/// end sentinel and one block (80 bytes) is given straight back with `release`.
///
/// Whatever the heap gives back, it names exactly as `grow` named it: `release` and `shrink` get
/// the start pointer `grow` returned and the region's *current length*, which is the length
/// `grow` returned until a `shrink` of the region succeeds, and that call's `new_len` from then
/// on. A source that frees with the pointer and size it allocated with (`dealloc`, `munmap`) can
/// pass them straight on.
///
/// # Safety
/// `grow` must return memory valid for reads and writes of `len` bytes that nothing else uses
/// until it is passed back to `release` (or cut off by `shrink`), and that overlaps no other
/// region the source has handed out and not taken back.
pub unsafe trait Source {
    /// A new region of at least `min_bytes` bytes if the source can give one. A source may
    /// return a smaller region when it has nothing larger (a fixed region does); the heap then
    /// uses it for smaller requests.
    fn grow(&mut self, min_bytes: usize) -> Option<(NonNull<u8>, usize)>;

    /// Whether `release` and `shrink` can ever succeed.
    fn can_release(&self) -> bool {
        false
    }

    /// Takes back a whole region. Returns false if it does not (a source that never takes memory
    /// back always returns false).
    ///
    /// # Safety
    /// `start` must be a start pointer that `grow` returned and `len` that region's current
    /// length (see the trait docs); the region must not have been taken back since, and nothing
    /// may use it any more.
    unsafe fn release(&mut self, start: NonNull<u8>, len: usize) -> bool {
        let _ = (start, len);
        false
    }

    /// Takes back the tail `[start + new_len, start + len)` of a region, which is
    /// `[start, start + new_len)` from then on. `new_len` is a multiple of
    /// [`page_size`](Source::page_size), more than 0 and less than `len`, so the cut is page
    /// aligned when `start` is. Returns false if that is not possible; the region then stays
    /// as it was.
    ///
    /// # Safety
    /// `start` and `len` must name a live region as for `release`: a start pointer that `grow`
    /// returned and that region's current length. Nothing may use the tail any more.
    unsafe fn shrink(&mut self, start: NonNull<u8>, len: usize, new_len: usize) -> bool {
        let _ = (start, len, new_len);
        false
    }

    /// Tells the source that the contents of the whole pages `[start, start + len)` of a live
    /// region are no longer needed: it may drop them (they read back as zeros) while the region
    /// stays mapped. Returns false if this source cannot.
    ///
    /// # Safety
    /// The range must lie inside a live region from `grow`, be page aligned, and hold nothing
    /// anyone still needs.
    unsafe fn purge(&mut self, start: NonNull<u8>, len: usize) -> bool {
        let _ = (start, len);
        false
    }

    /// The granularity of `shrink` and `purge`: a power of two.
    fn page_size(&self) -> usize {
        4096
    }
}

/// A caller's memory, handed to the heap once. It never grows and never gives memory back.
/// Works in no_std.
#[derive(Debug)]
pub struct FixedRegion {
    region: Option<(NonNull<u8>, usize)>,
}

// SAFETY: the region is owned by whoever owns the `FixedRegion` (see `FixedRegion::new`), so it
// may move to another thread with it.
unsafe impl Send for FixedRegion {}

impl FixedRegion {
    /// A source that gives out `[start, start + len)` once.
    ///
    /// # Safety
    /// The memory must be valid for reads and writes for as long as the heap built on this
    /// source (and any pointer it handed out) is used, and nothing else may touch it meanwhile.
    pub const unsafe fn new(start: NonNull<u8>, len: usize) -> Self {
        FixedRegion {
            region: Some((start, len)),
        }
    }

    /// A source with no memory at all: every allocation fails.
    pub const fn empty() -> Self {
        FixedRegion { region: None }
    }

    /// A source over a static buffer, which it owns from now on.
    pub fn from_static(buf: &'static mut [u8]) -> Self {
        let len = buf.len();
        let start = NonNull::from(buf).cast::<u8>();
        // SAFETY: a `&'static mut` is valid forever and exclusive, and we consume it.
        unsafe { FixedRegion::new(start, len) }
    }
}

// SAFETY: the one region comes from the caller of `FixedRegion::new`, who promised it is valid
// and exclusive; it is handed out at most once.
unsafe impl Source for FixedRegion {
    fn grow(&mut self, _min_bytes: usize) -> Option<(NonNull<u8>, usize)> {
        self.region.take()
    }
}

#[cfg(all(feature = "std", unix))]
pub use os::OsSource;

#[cfg(all(feature = "std", unix))]
mod os {
    use super::Source;
    use core::ptr::NonNull;

    /// Pages from the operating system: mmap to grow, munmap to give regions (or their tails)
    /// back, madvise(MADV_DONTNEED) to drop the pages inside free blocks in the middle of a
    /// region.
    ///
    /// Regions are at least [`OsSource::CHUNK`] bytes, so that small allocations do not each
    /// cost a system call.
    ///
    /// Under Miri, which has no mmap, the same source takes its regions from the system
    /// allocator (`std::alloc::System`, never the global allocator, which this heap may be),
    /// page aligned and zeroed, and keeps at most [`OsSource::MIRI_BUDGET`] bytes at once: the
    /// budget plays the part of the address space, so a request beyond it fails as an
    /// exhausted OS would. Unmapping a tail and dropping pages are done in kind: the tail is no
    /// longer counted (and given back with its region), dropped pages read back as zeros.
    #[derive(Debug, Default)]
    pub struct OsSource {
        page: usize,
        mapped: usize,
        /// Under Miri: the regions handed out and not yet given back, as (address, length when
        /// allocated), so that a shrunk region is given back with the layout it was allocated
        /// with. Unused slots are (0, 0).
        #[cfg(miri)]
        live: [(usize, usize); 32],
    }

    impl OsSource {
        /// The smallest region mapped at once: 1 MiB.
        pub const CHUNK: usize = 1 << 20;

        /// Under Miri, the most bytes the source holds at once (32 MiB). Elsewhere the OS
        /// decides.
        pub const MIRI_BUDGET: usize = 32 << 20;

        /// A source with nothing mapped yet.
        pub const fn new() -> Self {
            OsSource {
                page: 0,
                mapped: 0,
                #[cfg(miri)]
                live: [(0, 0); 32],
            }
        }

        /// Bytes currently mapped by this source.
        pub fn mapped_bytes(&self) -> usize {
            self.mapped
        }

        fn page(&mut self) -> usize {
            if self.page == 0 {
                self.page = system_page_size();
            }
            self.page
        }
    }

    /// The page size the OS reports (4096 if it reports none).
    #[cfg(not(miri))]
    fn system_page_size() -> usize {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as usize
        } else {
            4096
        }
    }

    /// Under Miri, pages are a convention of this source: 4096 bytes.
    #[cfg(miri)]
    fn system_page_size() -> usize {
        4096
    }

    /// Fresh zeroed pages, mapped by the OS.
    #[cfg(not(miri))]
    impl OsSource {
        fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing
            // touches no existing memory.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return None;
            }
            NonNull::new(p.cast::<u8>())
        }

        /// # Safety
        /// `[start, start + len)` is a whole region from `map`, as shrunk so far, unused.
        unsafe fn unmap(&mut self, start: NonNull<u8>, len: usize) -> bool {
            // SAFETY: the caller's contract.
            unsafe { libc::munmap(start.as_ptr().cast(), len) == 0 }
        }

        /// # Safety
        /// `[start, start + len)` is a live region from `map`, as shrunk so far, and its tail
        /// from `new_len` (a page multiple) is unused.
        unsafe fn unmap_tail(&mut self, start: NonNull<u8>, len: usize, new_len: usize) -> bool {
            let tail = start.as_ptr().wrapping_add(new_len);
            // SAFETY: the caller's contract; both ends of the tail are page aligned.
            unsafe { libc::munmap(tail.cast(), len - new_len) == 0 }
        }

        /// # Safety
        /// Whole pages of a live region, holding nothing anyone needs.
        unsafe fn drop_pages(&mut self, start: NonNull<u8>, len: usize) -> bool {
            // SAFETY: the caller's contract; MADV_DONTNEED on private anonymous memory makes
            // the pages read back as zeros.
            unsafe { libc::madvise(start.as_ptr().cast(), len, libc::MADV_DONTNEED) == 0 }
        }
    }

    /// Under Miri: fresh zeroed pages from the system allocator, within the budget.
    #[cfg(miri)]
    impl OsSource {
        fn layout(&self, len: usize) -> Option<std::alloc::Layout> {
            std::alloc::Layout::from_size_align(len, system_page_size()).ok()
        }

        fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
            use std::alloc::GlobalAlloc;
            if len > Self::MIRI_BUDGET - self.mapped {
                return None;
            }
            let slot = self.live.iter().position(|&(a, _)| a == 0)?;
            let layout = self.layout(len)?;
            // SAFETY: the layout has a non-zero size (at least a chunk).
            let p = NonNull::new(unsafe { std::alloc::System.alloc_zeroed(layout) })?;
            self.live[slot] = (p.as_ptr() as usize, len);
            Some(p)
        }

        /// # Safety
        /// As for the OS version: a whole region from `map`, as shrunk so far, unused.
        unsafe fn unmap(&mut self, start: NonNull<u8>, _len: usize) -> bool {
            use std::alloc::GlobalAlloc;
            let addr = start.as_ptr() as usize;
            let Some(slot) = self.live.iter().position(|&(a, _)| a == addr) else {
                return false;
            };
            let Some(layout) = self.layout(self.live[slot].1) else {
                return false;
            };
            self.live[slot] = (0, 0);
            // SAFETY: `start` is the pointer `map` allocated with this layout.
            unsafe { std::alloc::System.dealloc(start.as_ptr(), layout) };
            true
        }

        /// # Safety
        /// As for the OS version. The tail stays allocated until the region goes back whole.
        unsafe fn unmap_tail(&mut self, start: NonNull<u8>, _len: usize, _new_len: usize) -> bool {
            let addr = start.as_ptr() as usize;
            self.live.iter().any(|&(a, _)| a == addr)
        }

        /// # Safety
        /// As for the OS version.
        unsafe fn drop_pages(&mut self, start: NonNull<u8>, len: usize) -> bool {
            // SAFETY: whole pages of a live region that nobody needs: they read back as zeros,
            // as after MADV_DONTNEED.
            unsafe { start.as_ptr().write_bytes(0, len) };
            true
        }
    }

    // SAFETY: regions are fresh anonymous private mappings (under Miri, fresh allocations of
    // the system allocator), so nothing else uses them, and only what `grow` mapped is ever
    // unmapped.
    unsafe impl Source for OsSource {
        fn grow(&mut self, min_bytes: usize) -> Option<(NonNull<u8>, usize)> {
            let page = self.page();
            let len = min_bytes.max(Self::CHUNK).checked_add(page - 1)? & !(page - 1);
            let p = self.map(len)?;
            self.mapped += len;
            Some((p, len))
        }

        fn can_release(&self) -> bool {
            true
        }

        unsafe fn release(&mut self, start: NonNull<u8>, len: usize) -> bool {
            // SAFETY: the caller passes a whole region that `grow` mapped and nobody uses.
            let ok = unsafe { self.unmap(start, len) };
            if ok {
                self.mapped -= len;
            }
            ok
        }

        unsafe fn shrink(&mut self, start: NonNull<u8>, len: usize, new_len: usize) -> bool {
            let page = self.page();
            if new_len >= len || new_len % page != 0 || start.as_ptr() as usize % page != 0 {
                return false;
            }
            // SAFETY: the tail lies inside a region `grow` mapped and the caller no longer uses
            // it; both ends are page aligned.
            let ok = unsafe { self.unmap_tail(start, len, new_len) };
            if ok {
                self.mapped -= len - new_len;
            }
            ok
        }

        unsafe fn purge(&mut self, start: NonNull<u8>, len: usize) -> bool {
            // SAFETY: the caller passes whole pages of a live mapping whose contents nobody
            // needs.
            unsafe { self.drop_pages(start, len) }
        }

        fn page_size(&self) -> usize {
            if self.page == 0 {
                4096
            } else {
                self.page
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_region_is_handed_out_once() {
        let mut buf = [0u8; 256];
        let start = NonNull::new(buf.as_mut_ptr()).unwrap();
        // SAFETY: `buf` outlives the source and nothing else touches it.
        let mut s = unsafe { FixedRegion::new(start, 256) };
        assert_eq!(s.grow(10), Some((start, 256)));
        assert_eq!(s.grow(10), None);
        assert!(!s.can_release());
        assert_eq!(FixedRegion::empty().grow(1), None);
    }

    #[cfg(all(feature = "std", unix))]
    #[test]
    fn the_os_source_maps_trims_purges_and_unmaps() {
        let mut os = OsSource::new();
        let (p, len) = os.grow(10).unwrap();
        assert_eq!(len, OsSource::CHUNK, "small requests get a whole chunk");
        assert_eq!(p.as_ptr() as usize % os.page_size(), 0);
        assert_eq!(os.mapped_bytes(), len);
        // SAFETY: the region is ours; we touch it, then give parts of it back.
        unsafe {
            p.as_ptr().write_bytes(7, len);
            assert!(os.purge(p, 4096));
            assert_eq!(*p.as_ptr(), 0, "purged pages read back as zeros");
            assert!(!os.shrink(p, len, 100), "not a page multiple");
            assert!(os.shrink(p, len, len / 2));
            assert_eq!(os.mapped_bytes(), len / 2);
            assert!(os.release(p, len / 2));
        }
        assert_eq!(os.mapped_bytes(), 0);
        let (q, big) = os.grow(3 << 20).unwrap();
        assert!(big >= 3 << 20);
        assert_eq!(os.mapped_bytes(), big);
        // SAFETY: the whole region `grow` just gave, unused.
        assert!(unsafe { os.release(q, big) });
        assert_eq!(os.mapped_bytes(), 0);
    }
}
