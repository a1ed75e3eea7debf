//! Slots of a span that were never handed out (past the span's bump index) are not objects:
//! `free`, `realloc` and `usable_size` must refuse them. If `free` accepted one, the slot would
//! go on a free list, and the bump index would later hand the same address out a second time,
//! so one block would have two owners.
//!
//! Each test uses its own size class, fresh in this process, on its own thread, so the test knows
//! exactly which slots exist: the first span of the class is one page, and the thread's first
//! refill carves `first_fill` objects from it (slots `0..first_fill`, one of which the caller
//! gets and the rest of which sit in its cache). Slot `first_fill` is the one just past the bump
//! index.

use freespace_tcache::size_class::{size_to_class, CLASSES, PAGE};
use freespace_tcache::{FreeError, ReallocError, ThreadCached, COLD_OBJECTS};
use std::collections::HashSet;

static A: ThreadCached = ThreadCached::new();

/// A class's first span-served object, and the address of the slot just past the span's bump
/// index. The class's cold objects (served by the core) are made and freed first.
fn first_span_object_and_unhanded_slot(size: usize) -> (*mut u8, *mut u8) {
    let c = size_to_class(size).unwrap();
    let info = CLASSES[c];
    assert_eq!(info.size as usize, size, "the test sizes are class sizes");
    assert_eq!(info.first_span_pages, 1, "the first span is one page");
    assert!(info.first_fill < info.objects.min(info.batch + 1));
    let cold: Vec<*mut u8> = (0..COLD_OBJECTS).map(|_| A.malloc(size)).collect();
    for p in cold {
        // SAFETY: each block was just allocated and is freed once.
        unsafe { A.free(p).unwrap() };
    }
    let p = A.malloc(size);
    assert!(!p.is_null());
    // Slot pointers are derived from `p`, never made from integers.
    let start = p.wrapping_sub(p as usize % PAGE);
    let idx = (p as usize - start as usize) / size;
    assert!(idx < info.first_fill as usize, "p is slot {idx}");
    // The other carved slots are free objects in this thread's cache: refused as double frees.
    for k in (0..info.first_fill as usize).filter(|&k| k != idx) {
        let slot = start.wrapping_add(k * size);
        // SAFETY: `slot` lies in the span's first page, readable; a cached object is refused.
        assert_eq!(
            unsafe { A.free(slot) },
            Err(FreeError::DoubleFree),
            "slot {k}"
        );
    }
    (p, start.wrapping_add(info.first_fill as usize * size))
}

/// Allocates `n` blocks of `size` and checks that no address comes out twice.
fn distinct_blocks(size: usize, n: usize) -> Vec<*mut u8> {
    let mut seen = HashSet::new();
    let blocks: Vec<*mut u8> = (0..n).map(|_| A.malloc(size)).collect();
    for &b in &blocks {
        assert!(!b.is_null());
        assert!(seen.insert(b as usize), "{b:p} was handed out twice");
    }
    blocks
}

fn free_all(blocks: Vec<*mut u8>) {
    for b in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { A.free(b).unwrap() };
    }
}

#[test]
fn free_refuses_the_slot_past_the_bump_index() {
    let size = 16;
    let (p, past) = first_span_object_and_unhanded_slot(size);
    // SAFETY: `past` lies inside the span's page, readable; the refusal changes nothing.
    assert_eq!(unsafe { A.free(past) }, Err(FreeError::Misaligned));
    // Later slots were never handed out either.
    // SAFETY: as above.
    assert_eq!(
        unsafe { A.free(past.add(size)) },
        Err(FreeError::Misaligned)
    );
    // The span goes on handing out every slot exactly once.
    let blocks = distinct_blocks(size, 200);
    assert!(blocks.contains(&past), "the slot is handed out in its turn");
    free_all(blocks);
    // SAFETY: `p` is live and freed once.
    unsafe { A.free(p).unwrap() };
}

#[test]
fn realloc_refuses_the_slot_past_the_bump_index() {
    let size = 32;
    let (p, past) = first_span_object_and_unhanded_slot(size);
    for new_size in [size, 1, 100, 100_000] {
        // SAFETY: `past` lies inside the span's page, readable; the refusal changes nothing.
        let r = unsafe { A.try_realloc(past, new_size) };
        assert_eq!(
            r,
            Err(ReallocError::Invalid(FreeError::Misaligned)),
            "to {new_size}"
        );
        // SAFETY: as above.
        assert!(unsafe { A.realloc(past, new_size) }.is_null());
    }
    let blocks = distinct_blocks(size, 200);
    assert!(blocks.contains(&past), "the slot is handed out in its turn");
    free_all(blocks);
    // SAFETY: `p` is live and freed once.
    unsafe { A.free(p).unwrap() };
}

#[test]
fn usable_size_refuses_the_slot_past_the_bump_index() {
    let size = 48;
    let (p, past) = first_span_object_and_unhanded_slot(size);
    // SAFETY: both pointers lie inside the span's page, readable.
    unsafe {
        assert_eq!(A.usable_size(past), None);
        assert_eq!(A.usable_size(p), Some(size));
    }
    // Once handed out, the slot is an object like any other.
    let blocks = distinct_blocks(size, 200);
    assert!(blocks.contains(&past));
    // SAFETY: `past` is live now.
    assert_eq!(unsafe { A.usable_size(past) }, Some(size));
    free_all(blocks);
    // SAFETY: `p` is live and freed once.
    unsafe { A.free(p).unwrap() };
}
