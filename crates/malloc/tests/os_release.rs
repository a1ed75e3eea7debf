//! The OS source really gives pages back: after a large free, the heap's mapped bytes and the
//! process's resident set go down. This file holds one test so that no other test in the same
//! process moves the resident set meanwhile. Under Miri the sizes are smaller and there is no
//! resident set to read: the mapped bytes are still checked.

use core::alloc::Layout;

use freespace_malloc::{Heap, HeapConfig, OsSource, SegregatedFit};

/// Resident pages of this process, from /proc/self/statm (Linux), in bytes.
fn rss() -> Option<usize> {
    if cfg!(miri) {
        return None;
    }
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn pages_go_back_to_the_os() {
    const BIG: usize = if cfg!(miri) { 4 << 20 } else { 64 << 20 };
    let mut heap = Heap::new();
    // A small allocation first, so that the big one gets a region of its own.
    let small = heap
        .malloc(Layout::from_size_align(64, 16).unwrap())
        .unwrap();
    let big = heap
        .malloc(Layout::from_size_align(BIG, 16).unwrap())
        .unwrap();
    // SAFETY: `big` has BIG payload bytes; touching them makes the pages resident.
    unsafe { big.as_ptr().write_bytes(0xa5, BIG) };
    let mapped = heap.source().mapped_bytes();
    let resident = rss();
    assert!(mapped >= BIG);
    assert_eq!(heap.region_count(), 2);

    // SAFETY: `big` is live and not used again.
    unsafe { heap.free(big) }.unwrap();
    heap.check().unwrap();
    assert_eq!(
        heap.region_count(),
        1,
        "the wholly free region was not unmapped"
    );
    assert!(
        heap.source().mapped_bytes() <= mapped - BIG,
        "mapped bytes did not go down"
    );
    assert!(heap.stats().heap_bytes < BIG);
    if let (Some(before), Some(after)) = (resident, rss()) {
        assert!(
            after + BIG / 2 < before,
            "resident set went from {before} to only {after}"
        );
    }

    // Trailing pages of the first region: many small blocks, all freed, then trimmed.
    let config = HeapConfig::new().with_trim_threshold(256 << 10);
    let mut trimmed = Heap::with_parts(OsSource::new(), SegregatedFit::new(), config);
    // About 9 MB of blocks (3 MB under Miri, in fewer and larger blocks): several regions.
    let (count, size) = if cfg!(miri) {
        (750, 4_000)
    } else {
        (40_000, 200)
    };
    let ptrs: Vec<_> = (0..count)
        .map(|_| {
            let p = trimmed
                .malloc(Layout::from_size_align(size, 16).unwrap())
                .unwrap();
            // SAFETY: `p` has `size` payload bytes; touching them makes the pages resident.
            unsafe { p.as_ptr().write_bytes(1, size) };
            p
        })
        .collect();
    let grown = trimmed.source().mapped_bytes();
    let regions = trimmed.region_count();
    assert!(
        regions < 10,
        "{regions} regions for 9 MB: growth is not geometric"
    );
    let resident = rss();
    for p in ptrs {
        // SAFETY: each pointer is live and freed once.
        unsafe { trimmed.free(p) }.unwrap();
    }
    trimmed.check().unwrap();
    assert!(
        trimmed.source().mapped_bytes() < grown,
        "free-time trimming gave nothing back"
    );
    assert_eq!(trimmed.region_count(), 1, "wholly free regions stay mapped");
    if let (Some(before), Some(after)) = (resident, rss()) {
        assert!(
            after + (4 << 20) < before,
            "resident set went from {before} to only {after}"
        );
    }
    trimmed.release_free_memory();
    trimmed.check().unwrap();
    assert!(
        trimmed.source().mapped_bytes() <= 2 * 4096 * 4,
        "release_free_memory kept {} bytes",
        trimmed.source().mapped_bytes()
    );
    // The heap still works after giving its memory back.
    let p = trimmed
        .malloc(Layout::from_size_align(1 << 20, 16).unwrap())
        .unwrap();
    // SAFETY: live, freed once.
    unsafe { trimmed.free(p) }.unwrap();
    trimmed.check().unwrap();
    // SAFETY: live, freed once.
    unsafe { heap.free(small) }.unwrap();

    // Pages inside a free block in the middle of a region: dropped with madvise, the region
    // stays mapped and the block stays usable.
    const MIDDLE: usize = if cfg!(miri) { 1 << 20 } else { 8 << 20 };
    let mut middle = Heap::new();
    // A first region of 1.5 x MIDDLE: a big first block, shrunk in place.
    let first = middle
        .malloc(Layout::from_size_align(MIDDLE * 3 / 2, 16).unwrap())
        .unwrap();
    // SAFETY: `first` is live.
    let first = unsafe { middle.realloc(first, Layout::from_size_align(64, 16).unwrap()) }.unwrap();
    let hole = middle
        .malloc(Layout::from_size_align(MIDDLE, 16).unwrap())
        .unwrap();
    let tail = middle
        .malloc(Layout::from_size_align(64, 16).unwrap())
        .unwrap();
    assert_eq!(
        middle.region_count(),
        1,
        "all three blocks should share the first region"
    );
    // SAFETY: `hole` has MIDDLE payload bytes.
    unsafe { hole.as_ptr().write_bytes(0x5a, MIDDLE) };
    let resident = rss();
    // SAFETY: live, freed once; `tail` keeps the region (and the hole inside it) alive.
    unsafe { middle.free(hole) }.unwrap();
    let dropped = middle.release_free_memory();
    // The trailing free space was unmapped; the hole's pages were dropped but stay mapped.
    assert!(dropped >= MIDDLE - 8192, "only {dropped} bytes dropped");
    assert!(
        middle.source().mapped_bytes() > MIDDLE,
        "the hole itself must stay mapped"
    );
    assert_eq!(middle.region_count(), 1);
    if let (Some(before), Some(after)) = (resident, rss()) {
        assert!(
            after + MIDDLE / 2 < before,
            "resident set went from {before} to only {after}"
        );
    }
    middle.check().unwrap();
    let again = middle
        .malloc(Layout::from_size_align(MIDDLE, 16).unwrap())
        .unwrap();
    // SAFETY: `again` has MIDDLE payload bytes; dropped pages come back as zeros on touch.
    unsafe { again.as_ptr().write_bytes(1, MIDDLE) };
    // SAFETY: live, freed once each.
    unsafe {
        middle.free(again).unwrap();
        middle.free(tail).unwrap();
        middle.free(first).unwrap();
    }
    middle.check().unwrap();
}
