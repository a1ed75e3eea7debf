//! Giving memory back at `free` time without a system call per free: a counting source shows
//! how often the heap asks, and the heap's own numbers show what it gave.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{Heap, HeapConfig, OsSource, SegregatedFit, Source};

/// The OS source, counting the calls the heap makes.
#[derive(Default)]
struct Counting {
    os: OsSource,
    purges: usize,
    purged: usize,
    releases: usize,
    shrinks: usize,
}

// SAFETY: every call is forwarded to `OsSource`, which keeps the contract.
unsafe impl Source for Counting {
    fn grow(&mut self, min_bytes: usize) -> Option<(NonNull<u8>, usize)> {
        self.os.grow(min_bytes)
    }
    fn can_release(&self) -> bool {
        true
    }
    unsafe fn release(&mut self, start: NonNull<u8>, len: usize) -> bool {
        self.releases += 1;
        // SAFETY: forwarded from the caller.
        unsafe { self.os.release(start, len) }
    }
    unsafe fn shrink(&mut self, start: NonNull<u8>, len: usize, new_len: usize) -> bool {
        self.shrinks += 1;
        // SAFETY: forwarded from the caller.
        unsafe { self.os.shrink(start, len, new_len) }
    }
    unsafe fn purge(&mut self, start: NonNull<u8>, len: usize) -> bool {
        self.purges += 1;
        self.purged += len;
        // SAFETY: forwarded from the caller.
        unsafe { self.os.purge(start, len) }
    }
    fn page_size(&self) -> usize {
        self.os.page_size()
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

#[test]
fn trailing_pages_are_dropped_in_batches_not_per_free() {
    const THRESHOLD: usize = 128 << 10;
    let config = HeapConfig::new().with_trim_threshold(THRESHOLD);
    let mut heap = Heap::with_parts(Counting::default(), SegregatedFit::new(), config);
    let keep = heap.malloc(layout(64)).unwrap();
    // About 650 KB of blocks (in fewer, larger blocks under Miri, which interprets each call).
    let (count, size) = if cfg!(miri) {
        (300, 2_000)
    } else {
        (3000, 200)
    };
    let ptrs: Vec<_> = (0..count)
        .map(|_| heap.malloc(layout(size)).unwrap())
        .collect();
    assert_eq!(heap.region_count(), 1);
    let touched = count * ((size + 16 + 15) & !15);
    // Free from the end backwards: every free merges into the region's trailing block.
    for p in ptrs.into_iter().rev() {
        // SAFETY: live, freed once.
        unsafe { heap.free(p) }.unwrap();
    }
    heap.check().unwrap();
    let s = heap.source();
    assert!(s.purges >= 1, "nothing was dropped");
    assert!(
        s.purges <= touched / (THRESHOLD / 2) + 1,
        "{} purges for {touched} bytes: not batched",
        s.purges
    );
    assert!(
        s.purged >= touched - THRESHOLD,
        "only {} of {touched} touched bytes dropped",
        s.purged
    );
    assert_eq!(
        (s.releases, s.shrinks),
        (0, 0),
        "the first region is never unmapped at free time"
    );
    let purges = s.purges;

    // Allocating and freeing in the kept part touches nothing new: no more system calls.
    for _ in 0..if cfg!(miri) { 100 } else { 1000 } {
        let p = heap.malloc(layout(1000)).unwrap();
        // SAFETY: live, freed once.
        unsafe { heap.free(p) }.unwrap();
    }
    assert_eq!(
        heap.source().purges,
        purges,
        "a heap hovering around one size made system calls"
    );

    // Touch the dropped pages again, free them: they are dropped again.
    let big = heap.malloc(layout(600 << 10)).unwrap();
    // SAFETY: `big` has 600 KiB of payload.
    unsafe { big.as_ptr().write_bytes(3, 600 << 10) };
    // SAFETY: live, freed once.
    unsafe { heap.free(big) }.unwrap();
    assert!(heap.source().purges > purges);
    heap.check().unwrap();

    // An explicit release unmaps the region's tail.
    heap.release_free_memory();
    assert_eq!(heap.source().shrinks, 1);
    heap.check().unwrap();
    // SAFETY: live, freed once.
    unsafe { heap.free(keep) }.unwrap();
    heap.check().unwrap();
}

#[test]
fn wholly_free_regions_are_unmapped_at_free_time() {
    let config = HeapConfig::new().with_trim_threshold(256 << 10);
    let mut heap = Heap::with_parts(Counting::default(), SegregatedFit::new(), config);
    let small = heap.malloc(layout(64)).unwrap();
    let big = heap.malloc(layout(4 << 20)).unwrap();
    assert_eq!(heap.region_count(), 2);
    // SAFETY: live, freed once.
    unsafe { heap.free(big) }.unwrap();
    assert_eq!(heap.region_count(), 1);
    assert_eq!(heap.source().releases, 1);
    // SAFETY: live, freed once.
    unsafe { heap.free(small) }.unwrap();
    assert_eq!(heap.region_count(), 1, "the first region stays");
    heap.check().unwrap();
}

/// One region whose end sentinel sits exactly on a page boundary: `pages` pages plus the 16
/// bytes of the sentinel, from a page-aligned buffer. `purge` drops pages as the OS would:
/// they read back as zeros.
struct SentinelOnPage {
    buf: NonNull<u8>,
    len: usize,
    given: bool,
    purged: usize,
}

const PAGE: usize = 4096;

impl SentinelOnPage {
    fn new(pages: usize) -> Self {
        let len = pages * PAGE + 16;
        let layout = std::alloc::Layout::from_size_align(len, PAGE).unwrap();
        // SAFETY: the layout has a non-zero size.
        let buf = NonNull::new(unsafe { std::alloc::alloc(layout) }).unwrap();
        SentinelOnPage {
            buf,
            len,
            given: false,
            purged: 0,
        }
    }
}

impl Drop for SentinelOnPage {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, PAGE).unwrap();
        // SAFETY: allocated in `new` with this layout; the heap that used it is gone.
        unsafe { std::alloc::dealloc(self.buf.as_ptr(), layout) };
    }
}

// SAFETY: the one region is a fresh allocation owned by the source, handed out once.
unsafe impl Source for SentinelOnPage {
    fn grow(&mut self, _min_bytes: usize) -> Option<(NonNull<u8>, usize)> {
        (!std::mem::replace(&mut self.given, true)).then_some((self.buf, self.len))
    }
    fn can_release(&self) -> bool {
        true
    }
    unsafe fn purge(&mut self, start: NonNull<u8>, len: usize) -> bool {
        assert_eq!(start.as_ptr() as usize % PAGE, 0);
        assert_eq!(len % PAGE, 0);
        self.purged += len;
        // SAFETY: the caller passes whole pages of the region that hold nothing anyone needs.
        unsafe { start.as_ptr().write_bytes(0, len) };
        true
    }
    fn page_size(&self) -> usize {
        PAGE
    }
}

#[test]
fn a_trim_keeps_the_boundary_tag_when_the_sentinel_is_on_a_page_boundary() {
    const PAGES: usize = 8;
    let config = HeapConfig::new().with_trim_threshold(16 << 10);
    let mut heap = Heap::with_parts(SentinelOnPage::new(PAGES), SegregatedFit::new(), config);
    // One block that fills the region up to its sentinel: region header 32, block header 16.
    let p = heap.malloc(layout(PAGES * PAGE - 48)).unwrap();
    assert_eq!(heap.stats().free_blocks, 0);
    // SAFETY: `p` has that many payload bytes; touching them all makes every page resident.
    unsafe { p.as_ptr().write_bytes(1, PAGES * PAGE - 48) };
    // SAFETY: live, freed once. The free block fills the region and passes the threshold.
    unsafe { heap.free(p) }.unwrap();
    let purged = heap.source().purged;
    assert!(purged > 0, "the trim dropped nothing");
    heap.check().unwrap();
    // The page that holds the boundary tag (the last word before the sentinel) was kept, and
    // so was the first half-threshold: [12 KiB, 28 KiB) of the region went.
    assert_eq!(purged, 4 * PAGE);

    // Purging on demand draws the same line.
    heap.release_free_memory();
    heap.check().unwrap();
    let q = heap.malloc(layout(PAGES * PAGE - 48)).unwrap();
    // SAFETY: live, freed once.
    unsafe { heap.free(q) }.unwrap();
    heap.check().unwrap();
}
