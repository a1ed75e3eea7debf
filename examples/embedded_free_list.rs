//! Why must the free list live inside the free space it describes?
//!
//! An allocator cannot call `malloc` to build its own list: it *is* `malloc`. So each free
//! block carries its own list node (next and prev links, right after its header) and a boundary
//! tag (its size, in its last word). This example replays the chapter's example, a 4096-byte
//! heap with three 100-byte allocations and the middle one freed, then reads the links straight
//! out of the free blocks' memory. It also shows that the `Heap` value itself has a fixed size
//! however many free blocks it tracks: the list costs no memory beyond the free space.
//!
//! Run it with `cargo run --example embedded_free_list`.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace::malloc::{BlockState, FirstFit, FixedRegion, Heap, HeapConfig, ListOrder};

/// Four KiB, aligned like a page, as the chapter's `mmap` gives it.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

fn main() {
    let page: &'static mut Page = Box::leak(Box::new(Page([0; 4096])));
    let base = page.0.as_ptr() as usize;
    let mut heap = Heap::from_static(
        &mut page.0,
        FirstFit::new(ListOrder::Lifo),
        HeapConfig::new(),
    );
    let layout = Layout::from_size_align(100, 8).expect("valid layout");
    let a = heap.malloc(layout).expect("room");
    let b = heap.malloc(layout).expect("room");
    let c = heap.malloc(layout).expect("room");
    println!(
        "A 4096-byte heap at {base:#x}; three malloc(100) calls, each taking 100 bytes plus a"
    );
    println!("16-byte header, rounded to 16: 128 bytes a block. (The chapter's 8-byte header gives 108.)\n");
    // SAFETY: b is live and came from this heap.
    unsafe { heap.free(b) }.expect("b is live");
    print_blocks(&heap, base);

    println!("\nThe links, read out of the free blocks themselves (next at +16, prev at +24):");
    for block in heap.blocks().filter(|b| b.state == BlockState::Free) {
        // SAFETY: a free block of at least 32 bytes holds its two links at +16 and +24, inside
        // the heap's region; nothing writes to the heap while we read.
        let (next, prev) = unsafe {
            let links = (block.addr as *const u8).add(16).cast::<usize>();
            (links.read(), links.add(1).read())
        };
        println!(
            "  free block at +{:<5} next = {:<10} prev = {}",
            block.addr - base,
            show(next, base),
            show(prev, base)
        );
    }

    for p in [a, c] {
        // SAFETY: a and c are live and came from this heap.
        unsafe { heap.free(p) }.expect("live");
    }
    println!("\nAfter freeing the other two, coalescing leaves one free block:");
    print_blocks(&heap, base);

    // Shatter the heap into many free blocks: the Heap value does not grow.
    let mut kept: Vec<NonNull<u8>> = Vec::new();
    let small = Layout::from_size_align(16, 8).expect("valid layout");
    while let Ok(p) = heap.malloc(small) {
        kept.push(p);
    }
    for p in kept.iter().step_by(2) {
        // SAFETY: every pointer in `kept` is live and freed once (every other one here).
        unsafe { heap.free(*p) }.expect("live");
    }
    println!(
        "\nWith {} free blocks on the list, the Heap value is still {} bytes: the {} list nodes \
         live in the free blocks.",
        heap.stats().free_blocks,
        core::mem::size_of::<Heap<FixedRegion, FirstFit>>(),
        heap.stats().free_blocks
    );
    heap.check().expect("heap intact");
}

fn print_blocks<P: freespace::malloc::Policy>(heap: &Heap<FixedRegion, P>, base: usize) {
    for b in heap.blocks() {
        println!("  +{:<5} {:>5} bytes  {:?}", b.addr - base, b.size, b.state);
    }
}

fn show(link: usize, base: usize) -> String {
    if (base..base + 4096).contains(&link) {
        format!("+{}", link - base)
    } else {
        "none".to_string()
    }
}
