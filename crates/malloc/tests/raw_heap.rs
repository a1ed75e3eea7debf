//! Every raw heap answers the common interface alike: the same calls, the same errors for the
//! same bad input, and walks that tile the heap with one block type.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{
    AllocError, BlockInfo, BuddyHeap, Coalescing, Fit, FixedRegion, FreeError, Heap, HeapConfig,
    ListOrder, RawHeap, SegregatedFit, SimConfig, SimHeap,
};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// The contract every implementation keeps, driven through the trait only.
fn contract<H: RawHeap>(heap: &mut H)
where
    H::Ptr: PartialEq + core::fmt::Debug,
{
    let total: usize = heap.blocks().map(|b| b.size).sum();
    assert_eq!(heap.malloc(layout(0)), Err(AllocError::ZeroSize));
    assert_eq!(heap.calloc(usize::MAX, 2), Err(AllocError::TooLarge));
    let a = heap.malloc(layout(100)).unwrap();
    let b = heap.calloc(10, 10).unwrap();
    // SAFETY: `a` and `b` are live and nothing else touches the heap.
    unsafe {
        assert!(heap.usable_size(a).unwrap() >= 100);
        assert!(heap.usable_size(b).unwrap() >= 100);
    }
    let used: Vec<BlockInfo> = heap.blocks().filter(BlockInfo::is_used).collect();
    assert_eq!(used.len(), 2);
    assert!(used.iter().all(|u| u.requested == 100));
    assert_eq!(heap.blocks().map(|b| b.size).sum::<usize>(), total);
    // SAFETY: `a` is live; on success the pointer returned replaces it.
    let a = unsafe { heap.realloc(a, layout(300)) }.unwrap();
    // SAFETY: as above.
    unsafe { assert!(heap.usable_size(a).unwrap() >= 300) };
    assert_eq!(heap.stats().requested_bytes, 400);
    heap.check().unwrap();
    // SAFETY: each pointer is live and freed once; the second free of `a` is refused, and
    // reading the header in front of it races with nothing.
    unsafe {
        heap.free(a).unwrap();
        assert_eq!(heap.free(a), Err(FreeError::DoubleFree));
        assert_eq!(heap.usable_size(a), Err(FreeError::DoubleFree));
        assert_eq!(heap.realloc(a, layout(8)), Err(AllocError::InvalidPointer));
        heap.free(b).unwrap();
    }
    assert_eq!(heap.stats().requested_bytes, 0);
    assert!(heap.blocks().all(|b| !b.is_used()));
    heap.check().unwrap();
}

#[test]
fn heap_keeps_the_contract() {
    let mut buf = vec![0u128; 4096];
    let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: the buffer outlives the heap and nothing else touches it.
    let mut heap: Heap<FixedRegion, SegregatedFit> =
        unsafe { Heap::in_region(start, 4096 * 16, SegregatedFit::new(), HeapConfig::new()) };
    // The region is taken on the first allocation: make the walk see it.
    let p = heap.malloc(layout(8)).unwrap();
    // SAFETY: live, freed once.
    unsafe { heap.free(p) }.unwrap();
    contract(&mut heap);
}

#[test]
fn buddy_heap_keeps_the_contract() {
    let mut buf = vec![0u128; 4096];
    let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: the buffer outlives the heap and nothing else touches it.
    let mut heap = unsafe { BuddyHeap::new(start, 4096 * 16) };
    contract(&mut heap);
}

#[test]
fn sim_heap_keeps_the_contract() {
    for fit in Fit::ALL {
        let mut heap = SimHeap::with_min_block(
            SimConfig {
                base: 0,
                size: 4096,
                header_size: 16,
                align: 16,
                fit,
                order: ListOrder::AddressOrdered,
                coalescing: Coalescing::Immediate,
            },
            32,
        );
        contract(&mut heap);
    }
}

#[test]
fn sim_heap_realloc_stays_in_place_or_moves() {
    let mut heap = SimHeap::new(SimConfig {
        base: 0,
        size: 100,
        fit: Fit::First,
        coalescing: Coalescing::Immediate,
        ..SimConfig::new()
    });
    let a = RawHeap::malloc(&mut heap, Layout::from_size_align(10, 1).unwrap()).unwrap();
    // SAFETY: `a` is live (a simulated heap reads only its own map).
    let a2 = unsafe { heap.realloc(a, Layout::from_size_align(30, 1).unwrap()) }.unwrap();
    assert_eq!(a2, a, "grows into the free space after it");
    let b = heap.malloc(10).unwrap().0;
    // SAFETY: as above.
    let a3 = unsafe { heap.realloc(a2, Layout::from_size_align(40, 1).unwrap()) }.unwrap();
    assert_eq!(a3, b + 10, "a used block follows: it moves past it");
    // SAFETY: as above.
    assert_eq!(unsafe { heap.usable_size(a3) }, Ok(40));
    assert_eq!(heap.free_list(), [(0, 30), (80, 20)]);
    heap.check().unwrap();
    // Alignment through the trait: the user address is a multiple of the layout's alignment.
    let c = RawHeap::malloc(&mut heap, Layout::from_size_align(4, 16).unwrap()).unwrap();
    assert_eq!(c % 16, 0);
    heap.check().unwrap();
}
