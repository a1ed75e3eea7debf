//! What each coalescing mode promises, and what a call that fails may change: `Never` never
//! merges (not on `coalesce()`, not in a growing `realloc`); `Deferred` merges in one pass when an
//! allocation would fail, and keeps that pass even when the allocation fails anyway; under
//! `Immediate` and `Never` a failed allocation leaves every block as it was.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{
    AllocError, BlockInfo, BlockState, Coalescing, FirstFit, FixedRegion, Heap, HeapConfig,
    HeapStats, ListOrder, SimConfig, SimHeap,
};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// A heap in a buffer of `len` bytes, first fit over an address-ordered list.
fn fixed(buf: &mut Vec<u128>, coalescing: Coalescing) -> Heap<FixedRegion, FirstFit> {
    let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: every test keeps the buffer alive, untouched, for as long as the heap.
    unsafe {
        Heap::in_region(
            start,
            buf.len() * 16,
            FirstFit::new(ListOrder::AddressOrdered),
            HeapConfig::new().with_coalescing(coalescing),
        )
    }
}

/// Everything a caller can observe of a heap except the running count of list elements
/// searched (which counts the work of every search, failed or not).
fn observed(heap: &Heap<FixedRegion, FirstFit>) -> (Vec<BlockInfo>, HeapStats) {
    let s = HeapStats {
        searched: 0,
        ..heap.stats()
    };
    (heap.blocks().collect(), s)
}

/// Eight 400-byte blocks filling a 4 KiB heap; the first seven freed, the eighth kept.
fn shattered(
    buf: &mut Vec<u128>,
    coalescing: Coalescing,
) -> (Heap<FixedRegion, FirstFit>, NonNull<u8>) {
    let mut heap = fixed(buf, coalescing);
    let ptrs: Vec<_> = (0..8).map(|_| heap.malloc(layout(400)).unwrap()).collect();
    for &p in &ptrs[..7] {
        // SAFETY: live, freed once.
        unsafe { heap.free(p) }.unwrap();
    }
    (heap, ptrs[7])
}

#[test]
fn a_failed_malloc_changes_no_block_under_immediate_and_never() {
    for mode in [Coalescing::Immediate, Coalescing::Never] {
        let mut buf = vec![0u128; 256];
        let (mut heap, kept) = shattered(&mut buf, mode);
        let before = observed(&heap);
        assert_eq!(
            heap.malloc(layout(8000)),
            Err(AllocError::OutOfMemory),
            "{mode:?}"
        );
        assert_eq!(
            observed(&heap),
            before,
            "{mode:?}: a failed malloc changed the heap"
        );
        heap.check().unwrap();
        // SAFETY: live, freed once.
        unsafe { heap.free(kept) }.unwrap();
    }
}

#[test]
fn a_failed_malloc_under_deferred_keeps_its_merge_pass() {
    let mut buf = vec![0u128; 256];
    let (mut heap, kept) = shattered(&mut buf, Coalescing::Deferred);
    // SAFETY: `kept` has 400 bytes; they must survive the merge pass.
    unsafe { kept.as_ptr().write_bytes(0x5a, 400) };
    let (blocks, stats) = observed(&heap);
    assert_eq!(
        stats.free_blocks, 8,
        "seven freed blocks and the tail, not merged yet"
    );
    // Nothing in the heap can hold 8000 bytes, merged or not: the call fails, after the pass.
    assert_eq!(heap.malloc(layout(8000)), Err(AllocError::OutOfMemory));
    let (after, after_stats) = observed(&heap);
    assert_eq!(
        after_stats.free_blocks, 2,
        "the free runs before and after `kept` merged"
    );
    assert_eq!(after_stats.largest_free_block, 7 * 416);
    // What the pass may not change: the live blocks, their bytes and the counts of them.
    let live = |b: &[BlockInfo]| -> Vec<BlockInfo> {
        b.iter()
            .filter(|b| b.state == BlockState::Used)
            .copied()
            .collect()
    };
    assert_eq!(live(&after), live(&blocks));
    assert_eq!(
        (
            after_stats.allocated_bytes,
            after_stats.requested_bytes,
            after_stats.free_bytes
        ),
        (
            stats.allocated_bytes,
            stats.requested_bytes,
            stats.free_bytes
        )
    );
    // SAFETY: `kept` is live with 400 bytes.
    assert!(unsafe { core::slice::from_raw_parts(kept.as_ptr(), 400) }
        .iter()
        .all(|&b| b == 0x5a));
    heap.check().unwrap();
    // The merge is kept, as the documentation says: a request it made possible is served
    // without another pass (and without searching more than the one merged block).
    let searched = heap.stats().searched;
    let big = heap.malloc(layout(2500)).unwrap();
    assert_eq!(heap.stats().searched - searched, 1);
    // SAFETY: live, freed once each.
    unsafe {
        heap.free(big).unwrap();
        heap.free(kept).unwrap();
    }
    heap.check().unwrap();
}

#[test]
fn coalesce_merges_only_under_deferred() {
    for mode in Coalescing::ALL {
        let mut buf = vec![0u128; 256];
        let (mut heap, kept) = shattered(&mut buf, mode);
        let before = observed(&heap);
        heap.coalesce();
        heap.check().unwrap();
        let after = observed(&heap);
        if mode == Coalescing::Deferred {
            assert_eq!(after.1.free_blocks, 2, "the pass merged both runs");
        } else {
            assert_eq!(after, before, "{mode:?}: coalesce() changed the heap");
        }
        // SAFETY: live, freed once.
        unsafe { heap.free(kept) }.unwrap();
    }

    // The simulated heap: the chapter's 30-byte example stays shattered under Never.
    for mode in Coalescing::ALL {
        let mut sim = SimHeap::new(SimConfig {
            base: 0,
            size: 30,
            coalescing: mode,
            ..SimConfig::new()
        });
        let a: Vec<_> = (0..3).map(|_| sim.malloc(10).unwrap().0).collect();
        for p in a {
            sim.free(p).unwrap();
        }
        sim.coalesce();
        sim.check().unwrap();
        let want = if mode == Coalescing::Never { 3 } else { 1 };
        assert_eq!(
            sim.free_list().len(),
            want,
            "{mode:?}: {:?}",
            sim.free_list()
        );
    }
}

#[test]
fn a_growing_realloc_under_never_moves_instead_of_absorbing_its_neighbour() {
    for mode in Coalescing::ALL {
        let mut buf = vec![0u128; 256];
        let mut heap = fixed(&mut buf, mode);
        let a = heap.malloc(layout(100)).unwrap();
        let b = heap.malloc(layout(100)).unwrap();
        let c = heap.malloc(layout(100)).unwrap();
        // SAFETY: `a` has 100 bytes; `b` is live and freed once.
        unsafe {
            a.as_ptr().write_bytes(7, 100);
            heap.free(b).unwrap();
        }
        let blocks_before = heap.blocks().count();
        // SAFETY: `a` is live; on success the returned pointer replaces it.
        let grown = unsafe { heap.realloc(a, layout(200)) }.unwrap();
        // SAFETY: `grown` has at least 100 bytes, copied or kept.
        assert!(unsafe { core::slice::from_raw_parts(grown.as_ptr(), 100) }
            .iter()
            .all(|&x| x == 7));
        heap.check().unwrap();
        if mode == Coalescing::Never {
            assert_ne!(
                grown, a,
                "under Never a block never absorbs its free neighbour"
            );
            // The old block and its neighbour are both free blocks still, side by side, and
            // the new block was split off the tail: one boundary more, none fewer.
            assert_eq!(heap.blocks().count(), blocks_before + 1);
        } else {
            assert_eq!(grown, a, "{mode:?}: grows into the free block after it");
        }
        // SAFETY: live, freed once each.
        unsafe {
            heap.free(grown).unwrap();
            heap.free(c).unwrap();
        }
        heap.check().unwrap();
    }
}
