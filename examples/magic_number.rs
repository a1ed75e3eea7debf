//! How does a magic number catch a bad free, and where is it found from the pointer?
//!
//! `free(ptr)` is not told the size, so the heap keeps a header just before every payload, at
//! `ptr - 16`: the block's size and flags, and a magic number computed from the block's address
//! and size. This example prints a real header, then hands `free` every kind of bad pointer and
//! shows that each one is refused with its own error while the heap stays intact.
//!
//! Run it with `cargo run --example magic_number`.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace::malloc::{FirstFit, Heap, HeapConfig, ListOrder};

fn main() {
    let mut heap = Heap::with_parts(
        freespace::malloc::OsSource::new(),
        FirstFit::new(ListOrder::AddressOrdered),
        HeapConfig::new(),
    );
    let layout = Layout::from_size_align(100, 8).expect("valid layout");
    let p = heap.malloc(layout).expect("fresh heap has room");
    let q = heap.malloc(layout).expect("fresh heap has room");

    // SAFETY: every payload the heap hands out has its 16-byte header right in front of it,
    // inside the heap's own mapped memory, and nothing else writes to it while we read.
    let (word0, word1) = unsafe {
        let header = p.as_ptr().sub(16).cast::<u64>();
        (header.read(), header.add(1).read())
    };
    println!("malloc(100) returned {:#x}", p.as_ptr() as usize);
    println!(
        "its header sits at ptr - 16 = {:#x}:",
        p.as_ptr() as usize - 16
    );
    println!(
        "  word 0 = {word0:#018x}: size {} | flags {:#x} (bit 0: in use)",
        word0 & !15,
        word0 & 15
    );
    println!(
        "  word 1 = {word1:#018x}: magic {:#010x} (keyed to address and size) | slack {} (payload the caller did not ask for)",
        word1 & 0xffff_ffff,
        word1 >> 32
    );
    println!();

    let before: Vec<_> = heap.blocks().collect();
    let mut on_stack = 0u64;
    let cases: [(&str, *mut u8); 3] = [
        (
            "a pointer to a stack variable",
            (&mut on_stack as *mut u64).cast(),
        ),
        ("a pointer 8 bytes into a block", p.as_ptr().wrapping_add(8)),
        (
            "a pointer 16 bytes into a block",
            p.as_ptr().wrapping_add(16),
        ),
    ];
    for (what, bad) in cases {
        let bad = NonNull::new(bad).expect("not null");
        // SAFETY: `free` checks the pointer before it trusts anything: it reads a header only
        // inside the heap's own regions and changes nothing when a check fails.
        let result = unsafe { heap.free(bad) };
        println!("free({what}) -> {result:?}");
    }

    // A buffer underflow from the block before overwrites q's header: the magic no longer
    // matches, so the free is refused instead of corrupting the free list.
    // SAFETY: q's header is heap memory in front of q; we save and restore it exactly.
    let saved = unsafe { q.as_ptr().sub(8).cast::<u64>().read() };
    // SAFETY: as above.
    unsafe {
        q.as_ptr()
            .sub(8)
            .cast::<u64>()
            .write(saved ^ 0x0000_0000_dead_beef)
    };
    // SAFETY: the pointer is q, a block of this heap; its header is what is being tested.
    println!(
        "free(q) after an underflow smashed its header -> {:?}",
        unsafe { heap.free(q) }
    );
    // SAFETY: restoring the exact word saved above.
    unsafe { q.as_ptr().sub(8).cast::<u64>().write(saved) };

    let after: Vec<_> = heap.blocks().collect();
    println!(
        "every block unchanged by the refused frees: {}",
        before == after
    );
    println!();

    // SAFETY: p is live and was returned by this heap.
    println!("free(p) -> {:?}", unsafe { heap.free(p) });
    // SAFETY: p was freed just above; the second free is what is being tested.
    println!("free(p) again -> {:?}", unsafe { heap.free(p) });

    println!("heap.check() after all of that -> {:?}", heap.check());
    // SAFETY: q is live and its header has been restored.
    unsafe { heap.free(q) }.expect("q is still a valid block");
    println!(
        "and the heap still serves: {:?}",
        heap.malloc(layout).is_ok()
    );
}
