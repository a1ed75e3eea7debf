//! Bad input, for real: every kind of bad free (and bad realloc or usable_size) is refused with
//! the right error, and leaves the heap exactly as it was; bad layouts get errors, not panics.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{
    AllocError, AnyPolicy, BlockInfo, Coalescing, Fit, FreeError, Heap, HeapConfig, HeapStats,
    ListOrder, OsSource, Policy, SimConfig, SimHeap, Source,
};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn snapshot<S: Source, P: Policy>(heap: &Heap<S, P>) -> (Vec<BlockInfo>, HeapStats) {
    (heap.blocks().collect(), heap.stats())
}

/// A heap with a few live and free blocks, and its live pointers (a, b, c, d; b freed).
fn setup(coalescing: Coalescing) -> (Heap<OsSource, AnyPolicy>, Vec<NonNull<u8>>) {
    let config = HeapConfig::new().with_coalescing(coalescing);
    let mut heap = Heap::with_parts(
        OsSource::new(),
        AnyPolicy::new(Fit::Segregated, ListOrder::Lifo),
        config,
    );
    let ptrs: Vec<_> = [100, 200, 300, 400]
        .iter()
        .map(|&s| heap.malloc(layout(s)).unwrap())
        .collect();
    // SAFETY: live, freed once.
    unsafe { heap.free(ptrs[1]) }.unwrap();
    (heap, ptrs)
}

/// Asserts `bad` is refused with `want` and the heap is unchanged and still serves requests.
fn refused<S: Source, P: Policy>(heap: &mut Heap<S, P>, bad: NonNull<u8>, want: FreeError) {
    let before = snapshot(heap);
    // SAFETY: `bad` points at readable memory (the heap's or the stack's); the checks only read.
    assert_eq!(unsafe { heap.usable_size(bad) }, Err(want));
    // SAFETY: as above; a refused free changes nothing.
    assert_eq!(unsafe { heap.free(bad) }, Err(want));
    assert_eq!(
        // SAFETY: as above; a refused realloc changes nothing.
        unsafe { heap.realloc(bad, layout(64)) },
        Err(AllocError::InvalidPointer)
    );
    assert_eq!(snapshot(heap), before, "a refused free changed the heap");
    heap.check().unwrap();
    let p = heap.malloc(layout(50)).unwrap();
    // SAFETY: live, freed once.
    unsafe { heap.free(p) }.unwrap();
    heap.check().unwrap();
}

#[test]
fn not_in_heap() {
    for mode in Coalescing::ALL {
        let (mut heap, _) = setup(mode);
        let mut on_stack = [0u64; 4];
        refused(
            &mut heap,
            NonNull::from(&mut on_stack).cast(),
            FreeError::NotInHeap,
        );
        let mut other = Heap::new();
        let foreign = other.malloc(layout(100)).unwrap();
        refused(&mut heap, foreign, FreeError::NotInHeap);
        // SAFETY: live in `other`, freed once.
        unsafe { other.free(foreign) }.unwrap();
    }
}

#[test]
fn misaligned() {
    for mode in Coalescing::ALL {
        let (mut heap, ptrs) = setup(mode);
        for off in [1, 3, 8, 15] {
            refused(
                &mut heap,
                NonNull::new(ptrs[0].as_ptr().wrapping_add(off)).unwrap(),
                FreeError::Misaligned,
            );
        }
        // The region's own header, in front of the first block, is no block's payload.
        let first_block = heap.blocks().next().unwrap().addr;
        let below = ptrs[0].as_ptr() as usize - first_block;
        refused(
            &mut heap,
            NonNull::new(ptrs[0].as_ptr().wrapping_sub(below)).unwrap(),
            FreeError::Misaligned,
        );
    }
}

#[test]
fn bad_magic() {
    for mode in Coalescing::ALL {
        let (mut heap, ptrs) = setup(mode);
        // A 16-aligned pointer into the middle of a payload: the bytes in front are data.
        // SAFETY: the block has 300 payload bytes.
        unsafe { ptrs[2].as_ptr().write_bytes(0x5a, 300) };
        refused(
            &mut heap,
            NonNull::new(ptrs[2].as_ptr().wrapping_add(64)).unwrap(),
            FreeError::BadMagic,
        );
        // A forged header: a plausible size and flags, but no magic number to go with them.
        // SAFETY: writes stay inside the 300-byte payload of a live block.
        unsafe {
            let fake = ptrs[2].as_ptr().wrapping_add(128);
            fake.cast::<u64>().write(64 | 1);
            fake.wrapping_add(8).cast::<u64>().write(0x1234_5678);
            refused(
                &mut heap,
                NonNull::new(fake.wrapping_add(16)).unwrap(),
                FreeError::BadMagic,
            );
        }
        // A real header overwritten: refused, and check() reports it; restored, all is well.
        let header = ptrs[3].as_ptr().wrapping_sub(8).cast::<u64>();
        // SAFETY: the header word in front of a live block is inside the heap's region.
        let saved = unsafe { header.read() };
        // SAFETY: as above; it is restored below.
        unsafe { header.write(saved ^ 1) };
        let before = snapshot(&heap).1;
        // SAFETY: a refused free reads the header and changes nothing.
        assert_eq!(unsafe { heap.free(ptrs[3]) }, Err(FreeError::BadMagic));
        assert!(heap.check().is_err());
        // SAFETY: restores the saved header word.
        unsafe { header.write(saved) };
        assert_eq!(heap.stats(), before);
        heap.check().unwrap();
        // SAFETY: live, freed once.
        unsafe { heap.free(ptrs[3]) }.unwrap();
        heap.check().unwrap();
    }
}

#[test]
fn double_free() {
    for mode in Coalescing::ALL {
        let (mut heap, ptrs) = setup(mode);
        // b is free and was not merged: its own header says so.
        refused(&mut heap, ptrs[1], FreeError::DoubleFree);
        // Free c: under immediate coalescing it merges with b; its header, now inside the merged
        // block, still says it was absorbed.
        // SAFETY: live, freed once.
        unsafe { heap.free(ptrs[2]) }.unwrap();
        refused(&mut heap, ptrs[2], FreeError::DoubleFree);
        refused(&mut heap, ptrs[1], FreeError::DoubleFree);
    }
}

#[test]
fn sim_heap_bad_frees() {
    let mut heap = SimHeap::new(SimConfig {
        header_size: 4,
        ..SimConfig::new()
    });
    let (a, _) = heap.malloc(10).unwrap();
    let (b, _) = heap.malloc(10).unwrap();
    heap.free(a).unwrap();
    let before = (
        heap.blocks().collect::<Vec<_>>(),
        heap.stats(),
        heap.free_list(),
    );
    assert_eq!(heap.free(5), Err(FreeError::NotInHeap));
    assert_eq!(heap.free(1100), Err(FreeError::NotInHeap));
    assert_eq!(heap.free(b + 1), Err(FreeError::Misaligned));
    assert_eq!(
        heap.free(1000),
        Err(FreeError::Misaligned),
        "the header's own address"
    );
    assert_eq!(heap.free(a), Err(FreeError::DoubleFree));
    assert_eq!(
        (
            heap.blocks().collect::<Vec<_>>(),
            heap.stats(),
            heap.free_list()
        ),
        before
    );
    heap.check().unwrap();
    heap.free(b).unwrap();
}

/// Frees `a` and `b` (neighbours) in the given order, merges them (at once, or with
/// `coalesce()` under deferred coalescing), then frees each again: both heaps say `DoubleFree`,
/// whichever block was absorbed into the other, and change nothing.
#[test]
fn a_second_free_of_a_merged_block_is_a_double_free_in_both_heaps() {
    for mode in [Coalescing::Immediate, Coalescing::Deferred] {
        for lower_first in [true, false] {
            let what = format!("{mode:?}, lower block freed first: {lower_first}");
            let (mut heap, ptrs) = setup(mode);
            let (a, b) = (ptrs[2], ptrs[3]);
            let c = heap.malloc(layout(100)).unwrap();
            let order = if lower_first { [a, b] } else { [b, a] };
            for p in order {
                // SAFETY: live, freed once.
                unsafe { heap.free(p) }.unwrap();
            }
            heap.coalesce();
            assert!(
                heap.blocks()
                    .all(|blk| blk.addr + 16 != b.as_ptr() as usize),
                "{what}: b was not merged"
            );
            for p in [a, b] {
                refused(&mut heap, p, FreeError::DoubleFree);
            }
            // SAFETY: live, freed once.
            unsafe { heap.free(c) }.unwrap();

            let mut sim = SimHeap::new(SimConfig {
                header_size: 4,
                coalescing: mode,
                ..SimConfig::new()
            });
            let (a, _) = sim.malloc(10).unwrap();
            let (b, _) = sim.malloc(10).unwrap();
            let (c, _) = sim.malloc(10).unwrap();
            let order = if lower_first { [a, b] } else { [b, a] };
            for p in order {
                sim.free(p).unwrap();
            }
            sim.coalesce();
            assert!(
                sim.blocks().all(|blk| blk.addr + 4 != b),
                "{what}: b was not merged"
            );
            let before = (
                sim.blocks().collect::<Vec<_>>(),
                sim.stats(),
                sim.free_list(),
            );
            for p in [a, b] {
                assert_eq!(sim.free(p), Err(FreeError::DoubleFree), "{what}: {p}");
            }
            assert_eq!(
                (
                    sim.blocks().collect::<Vec<_>>(),
                    sim.stats(),
                    sim.free_list()
                ),
                before
            );
            sim.check().unwrap();
            // The merged block is handed out again: b's address is inside it, and still a
            // double free, as in the real heap, where b's absorbed header is still there.
            let (big, _) = sim.malloc(20).unwrap();
            assert_eq!(big, a);
            assert_eq!(sim.free(b), Err(FreeError::DoubleFree), "{what}");
            // A block that starts at b's address again is a block like any other.
            sim.free(big).unwrap();
            sim.coalesce();
            let (a2, _) = sim.malloc(10).unwrap();
            let (b2, _) = sim.malloc(10).unwrap();
            assert_eq!((a2, b2), (a, b));
            sim.free(b2).unwrap();
            sim.free(a2).unwrap();
            sim.free(c).unwrap();
            sim.check().unwrap();
        }
    }
}

#[test]
fn bad_layouts_are_errors() {
    let mut heap = Heap::new();
    assert_eq!(
        heap.malloc(Layout::from_size_align(0, 1).unwrap()),
        Err(AllocError::ZeroSize)
    );
    assert_eq!(
        heap.malloc(Layout::from_size_align(isize::MAX as usize - 8, 1).unwrap()),
        Err(AllocError::TooLarge)
    );
    assert_eq!(heap.calloc(usize::MAX / 2, 3), Err(AllocError::TooLarge));
    assert_eq!(heap.calloc(0, 8), Err(AllocError::ZeroSize));
    // Too big for the OS to map: out of memory, not an abort.
    assert_eq!(
        heap.malloc(Layout::from_size_align(1 << 60, 16).unwrap()),
        Err(AllocError::OutOfMemory)
    );
    assert_eq!(
        heap.malloc(Layout::from_size_align(16, 1 << 62).unwrap()),
        Err(AllocError::OutOfMemory)
    );
    let p = heap.malloc(layout(10)).unwrap();
    assert_eq!(
        // SAFETY: `p` is live; a refused realloc changes nothing.
        unsafe { heap.realloc(p, Layout::from_size_align(0, 1).unwrap()) },
        Err(AllocError::ZeroSize)
    );
    // SAFETY: `p` is live.
    assert_eq!(unsafe { heap.usable_size(p) }, Ok(16));
    // SAFETY: live, freed once.
    unsafe { heap.free(p) }.unwrap();
    heap.check().unwrap();
    assert_eq!(heap.stats().live_blocks, 0);

    let mut sim = SimHeap::new(SimConfig::new());
    assert_eq!(sim.malloc(0), Err(AllocError::ZeroSize));
    assert_eq!(sim.malloc(usize::MAX), Err(AllocError::OutOfMemory));
    assert_eq!(sim.malloc(101), Err(AllocError::OutOfMemory));
}

#[test]
fn a_fixed_region_runs_out_and_recovers() {
    static mut REGION: [u8; 4096] = [0; 4096];
    // SAFETY: this test runs once and is the only user of REGION, which the heap owns from now
    // on.
    let buf: &'static mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(REGION) };
    let mut heap = Heap::from_static(
        buf,
        AnyPolicy::new(Fit::First, ListOrder::AddressOrdered),
        HeapConfig::new(),
    );
    let mut ptrs = Vec::new();
    loop {
        match heap.malloc(layout(100)) {
            Ok(p) => ptrs.push(p),
            Err(e) => {
                assert_eq!(e, AllocError::OutOfMemory);
                break;
            }
        }
    }
    assert!(
        ptrs.len() >= 30,
        "only {} blocks of 100 fit in 4 KiB",
        ptrs.len()
    );
    heap.check().unwrap();
    for p in ptrs {
        // SAFETY: live, freed once.
        unsafe { heap.free(p) }.unwrap();
    }
    let s = heap.stats();
    assert_eq!(s.free_blocks, 1);
    assert_eq!(s.largest_free_block + s.overhead_bytes, 4096);
    heap.malloc(layout(3000)).unwrap();
}

#[test]
fn large_alignments_split_off_their_padding() {
    let mut heap = Heap::new();
    for shift in 5..=16 {
        let align = 1usize << shift;
        let p = heap
            .malloc(Layout::from_size_align(100, align).unwrap())
            .unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0);
        heap.check().unwrap();
    }
    // The padding went back to the free lists instead of leaking: everything is accounted for.
    let s = heap.stats();
    assert_eq!(
        s.heap_bytes,
        s.allocated_bytes + s.free_bytes + s.header_bytes + s.overhead_bytes
    );
    assert!(s.free_blocks >= 2);
}
