//! The chapter's worked numbers (OSTEP ch. 17), reproduced on the simulated heap with the same
//! engine and policies as the real one, and the same mechanisms shown on real memory.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{
    BestFit, BlockState, Coalescing, FirstFit, Fit, FreeError, Heap, HeapConfig, ListOrder,
    SimConfig, SimHeap, WorstFit,
};

fn sim(size: usize, fit: Fit, order: ListOrder, coalescing: Coalescing) -> SimHeap {
    SimHeap::new(SimConfig {
        base: 0,
        size,
        header_size: 0,
        align: 1,
        fit,
        order,
        coalescing,
    })
}

/// A free list of 10, 30 and 20 bytes (in that order), separated by used blocks.
fn ten_thirty_twenty(fit: Fit) -> SimHeap {
    let mut heap = sim(63, fit, ListOrder::AddressOrdered, Coalescing::Immediate);
    let mut addrs = Vec::new();
    for size in [10, 1, 30, 1, 20, 1] {
        addrs.push(heap.malloc(size).unwrap().0);
    }
    for i in [0, 2, 4] {
        heap.free(addrs[i]).unwrap();
    }
    assert_eq!(heap.free_list(), vec![(0, 10), (11, 30), (42, 20)]);
    heap
}

fn sizes(heap: &SimHeap) -> Vec<usize> {
    heap.free_list().iter().map(|&(_, s)| s).collect()
}

#[test]
fn best_worst_and_first_fit_on_the_10_30_20_list() {
    let mut best = ten_thirty_twenty(Fit::Best);
    assert_eq!(
        best.malloc(15),
        Ok((42, 3)),
        "best fit takes the 20 after searching all three"
    );
    assert_eq!(sizes(&best), [10, 30, 5]);

    let mut worst = ten_thirty_twenty(Fit::Worst);
    assert_eq!(worst.malloc(15), Ok((11, 3)), "worst fit takes the 30");
    assert_eq!(sizes(&worst), [10, 15, 20]);

    let mut first = ten_thirty_twenty(Fit::First);
    assert_eq!(
        first.malloc(15),
        Ok((11, 2)),
        "first fit stops at the 30, the second element"
    );
    assert_eq!(sizes(&first), [10, 15, 20]);
}

#[test]
fn splitting_the_30_byte_heap() {
    // [0,10) and [20,30) free, [10,20) used; a 1-byte request served from the chunk at 20.
    let mut heap = sim(30, Fit::First, ListOrder::Fifo, Coalescing::Immediate);
    let a = heap.malloc(10).unwrap().0;
    let _b = heap.malloc(10).unwrap().0;
    let c = heap.malloc(10).unwrap().0;
    heap.free(c).unwrap();
    heap.free(a).unwrap();
    assert_eq!(heap.free_list(), vec![(20, 10), (0, 10)]);
    assert_eq!(heap.malloc(1).unwrap().0, 20);
    let mut list = heap.free_list();
    list.sort();
    assert_eq!(list, vec![(0, 10), (21, 9)]);
    heap.check().unwrap();
}

#[test]
fn coalescing_the_30_byte_heap() {
    for (coalescing, expect) in [
        (Coalescing::Never, vec![(10, 10), (0, 10), (20, 10)]),
        (Coalescing::Immediate, vec![(0, 30)]),
    ] {
        let mut heap = sim(30, Fit::First, ListOrder::Lifo, coalescing);
        let a = heap.malloc(10).unwrap().0;
        let b = heap.malloc(10).unwrap().0;
        let c = heap.malloc(10).unwrap().0;
        heap.free(c).unwrap();
        heap.free(a).unwrap();
        heap.free(b).unwrap();
        assert_eq!(heap.free_list(), expect, "{coalescing:?}");
        heap.check().unwrap();
    }
    // Deferred: the list stays shattered until a request needs the space.
    let mut heap = sim(30, Fit::First, ListOrder::Lifo, Coalescing::Deferred);
    let addrs: Vec<_> = (0..3).map(|_| heap.malloc(10).unwrap().0).collect();
    for a in [addrs[2], addrs[0], addrs[1]] {
        heap.free(a).unwrap();
    }
    assert_eq!(heap.free_list().len(), 3);
    assert_eq!(
        heap.malloc(30),
        Ok((0, 4)),
        "three misses, then the merge, then one hit"
    );
    assert_eq!(heap.free_list(), vec![]);
}

#[test]
fn the_embedded_free_list_example_with_an_8_byte_header() {
    // The chapter's 4096-byte heap: three 100-byte allocations take 108 bytes each.
    let mut heap = SimHeap::new(SimConfig {
        base: 16384,
        size: 4096,
        header_size: 8,
        align: 1,
        fit: Fit::First,
        order: ListOrder::Lifo,
        coalescing: Coalescing::Immediate,
    });
    let ptrs: Vec<usize> = (0..3).map(|_| heap.malloc(100).unwrap().0).collect();
    assert_eq!(
        ptrs,
        vec![16384 + 8, 16384 + 108 + 8, 16384 + 216 + 8],
        "the user gets the address past the header"
    );
    // One free chunk is left; without its own node header it holds 4096 - 3 * 108 - 8 = 3764.
    assert_eq!(heap.free_list(), vec![(16384 + 324, 3772)]);
    assert_eq!(3772 - 8, 3764);
    // Freeing the middle one puts a 108-byte chunk (100 plus header) at the head of the list.
    heap.free(ptrs[1]).unwrap();
    assert_eq!(heap.free_list()[0], (16384 + 108, 108));
    let s = heap.stats();
    assert_eq!(
        (s.header_bytes, s.allocated_bytes, s.requested_bytes),
        (16, 200, 200)
    );
}

#[test]
fn a_refused_request_counts_its_search() {
    let mut heap = sim(100, Fit::Best, ListOrder::AddressOrdered, Coalescing::Never);
    let a = heap.malloc(50).unwrap().0;
    heap.malloc(50).unwrap();
    heap.free(a).unwrap();
    assert!(heap.malloc(51).is_err());
    assert_eq!(heap.last_searched(), 1);
    assert_eq!(heap.stats().searched, 1 + 1 + 1);
}

#[test]
fn textbook_fits_on_real_memory_place_as_in_the_simulation() {
    // The 10/30/20 example again, in units of 64 bytes, on a real heap: the policies are the
    // same code, so they pick the same blocks.
    fn run<P: freespace_malloc::Policy>(policy: P) -> Vec<usize> {
        // A region of exactly 63 units, plus the 48 bytes of region header and end sentinel.
        let mut buf = vec![0u128; (63 * 64 + 48) / 16];
        let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `buf` outlives the heap, which is dropped at the end of this function.
        let mut heap = unsafe { Heap::in_region(start, buf.len() * 16, policy, HeapConfig::new()) };
        let l = |units: usize| Layout::from_size_align(units * 64 - 16, 16).unwrap();
        let mut p = Vec::new();
        for units in [10, 1, 30, 1, 20, 1] {
            p.push(heap.malloc(l(units)).unwrap());
        }
        for i in [0, 2, 4] {
            // SAFETY: each pointer is live and freed once.
            unsafe { heap.free(p[i]) }.unwrap();
        }
        let got = heap.malloc(l(15)).unwrap();
        heap.check().unwrap();
        let base = p[0].as_ptr() as usize;
        let mut free: Vec<usize> = heap
            .blocks()
            .filter(|b| b.state == BlockState::Free)
            .map(|b| b.size / 64)
            .collect();
        free.push((got.as_ptr() as usize - base) / 64);
        drop(heap);
        drop(buf);
        free
    }
    assert_eq!(
        run(BestFit::new(ListOrder::AddressOrdered)),
        vec![10, 30, 5, 42]
    );
    assert_eq!(
        run(WorstFit::new(ListOrder::AddressOrdered)),
        vec![10, 15, 20, 11]
    );
    assert_eq!(
        run(FirstFit::new(ListOrder::AddressOrdered)),
        vec![10, 15, 20, 11]
    );
}

#[test]
fn the_magic_number_is_found_in_front_of_the_pointer() {
    let mut heap = Heap::new();
    let p = heap
        .malloc(Layout::from_size_align(100, 8).unwrap())
        .unwrap();
    // The header sits right before the pointer; forging a pointer into the payload finds no magic.
    let forged = NonNull::new(p.as_ptr().wrapping_add(48)).unwrap();
    // SAFETY: reading the bytes in front of a pointer into our own live block is fine.
    assert_eq!(unsafe { heap.free(forged) }, Err(FreeError::BadMagic));
    // SAFETY: `p` is live and freed once.
    unsafe { heap.free(p) }.unwrap();
    heap.check().unwrap();
}
