//! The tour: what each free-space idea does to one fragmenting workload, and why a handle arena
//! can do what `malloc` cannot.
//!
//! Run it with `cargo run --release --example tour`. Every number it prints is measured on the
//! spot from the allocators' own statistics; nothing is canned.
//!
//! 1. The chapter's mechanisms on a 30-byte simulated heap: splitting and coalescing.
//! 2. The same fragmenting workload on every placement policy of the raw core, in one fixed
//!    region: external and internal fragmentation, search length, and how many large requests
//!    fail although enough bytes are free.
//! 3. A heap map: where the free space ended up.
//! 4. Coalescing against compaction: the same trace on the raw heap and on the handle arena.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace::malloc::{
    AnyPolicy, BlockState, BuddyHeap, Coalescing, Fit, Heap, HeapConfig, ListOrder, SimConfig,
    SimHeap,
};

#[allow(dead_code)]
#[path = "coalesce_vs_compact.rs"]
mod coalesce_vs_compact;

/// Bytes in the fixed region that every policy of section 2 gets.
const REGION: usize = 1 << 20;

fn main() {
    println!("freespace: a tour of free-space management\n");
    chapter_mechanisms();
    let heap_map = policies_on_one_workload();
    println!("{heap_map}");
    println!("\n== 4. Coalescing against compaction ==\n");
    coalesce_vs_compact::run();
    println!(
        "\nNext: `cargo run --release -p freespace-sim -- gen fragment -o t.trace` and \
         `cargo run --release -p freespace-sim -- replay t.trace --svg out/` replay a trace \
         across every policy and draw the heap; docs/ answers the chapter's questions."
    );
}

/// Section 1: the chapter's 30-byte heap, with header size 0 as in the book's figures.
fn chapter_mechanisms() {
    println!("== 1. Splitting and coalescing (the chapter's 30-byte heap) ==\n");
    let mut heap = SimHeap::new(SimConfig {
        base: 0,
        size: 30,
        header_size: 0,
        align: 1,
        fit: Fit::First,
        order: ListOrder::Lifo,
        coalescing: Coalescing::Immediate,
    });
    let a = heap.malloc(10).expect("fits").0;
    let b = heap.malloc(10).expect("fits").0;
    let c = heap.malloc(10).expect("fits").0;
    heap.free(a).expect("live");
    heap.free(c).expect("live");
    println!(
        "  [0,10) and [20,30) free, [10,20) used:  free list (addr, size) {:?}",
        heap.free_list()
    );
    let one = heap.malloc(1).expect("fits").0;
    println!(
        "  malloc(1) splits the chunk at the head: free list (addr, size) {:?}",
        heap.free_list()
    );
    heap.free(one).expect("live");
    heap.free(b).expect("live");
    println!(
        "  free it and the middle; neighbours merge: free list (addr, size) {:?}\n",
        heap.free_list()
    );
}

// The shared seeded generator, so the workload is the same on every policy and every run.
use freespace_testkit::Rng;

/// What one policy did with the workload.
struct Outcome {
    name: String,
    external: f64,
    internal: f64,
    free_blocks: usize,
    largest_free: usize,
    free_bytes: usize,
    search_per_alloc: f64,
    large_served: usize,
    map: String,
}

/// The allocator operations the workload drives, so one workload runs on every heap.
trait Allocator {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    fn free(&mut self, p: NonNull<u8>);
    /// Stats and a heap map, taken between the churn and the large requests.
    fn snapshot(&self) -> (freespace::malloc::HeapStats, String);
}

/// The workload: a long churn that keeps about 60% of the region live with objects of mixed
/// sizes (mostly small, some up to 4 KiB), so that each policy's placement decisions pile up.
/// Then, with the survivors still live, it asks for 16 KiB objects until one fails: a request
/// fails when no single free block is big enough, however many free bytes there are.
fn workload(heap: &mut impl Allocator) -> (freespace::malloc::HeapStats, String, usize) {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut live: Vec<(NonNull<u8>, usize)> = Vec::new();
    let mut live_bytes = 0;
    for _ in 0..40_000 {
        if live_bytes < REGION * 6 / 10 || live.is_empty() {
            let size = match rng.below(10) {
                0 => 1024 + rng.below(3072) as usize,
                1..=3 => 128 + rng.below(896) as usize,
                _ => 16 + rng.below(112) as usize,
            };
            if let Some(p) = heap.alloc(Layout::from_size_align(size, 8).expect("valid layout")) {
                live.push((p, size));
                live_bytes += size;
            }
        } else {
            let (p, size) = live.swap_remove(rng.below(live.len() as u64) as usize);
            heap.free(p);
            live_bytes -= size;
        }
    }
    let (stats, map) = heap.snapshot();
    let mut served = 0;
    while let Some(p) = heap.alloc(Layout::from_size_align(16 << 10, 8).expect("valid layout")) {
        live.push((p, 16 << 10));
        served += 1;
    }
    for (p, _) in live {
        heap.free(p);
    }
    (stats, map, served)
}

/// One character per `REGION / 64` bytes, by the share of it in use: `#` at least 7/8,
/// `=` at least half, `-` some, `.` none.
fn heap_map(blocks: impl Iterator<Item = (usize, usize, bool)>, base: usize) -> String {
    const WIDTH: usize = 64;
    let cell = REGION / WIDTH;
    let mut used = [0usize; WIDTH];
    for (addr, size, is_used) in blocks {
        if !is_used {
            continue;
        }
        let (mut start, end) = (addr - base, (addr - base + size).min(REGION));
        while start < end {
            let i = start / cell;
            let next = ((i + 1) * cell).min(end);
            used[i] += next - start;
            start = next;
        }
    }
    used.iter()
        .map(|&u| match u {
            0 => '.',
            u if u * 8 >= cell * 7 => '#',
            u if u * 2 >= cell => '=',
            _ => '-',
        })
        .collect()
}

/// A page-aligned buffer for one fixed-region heap, freed when dropped.
struct Region(NonNull<u8>);

impl Region {
    const LAYOUT: Layout = match Layout::from_size_align(REGION, 4096) {
        Ok(l) => l,
        Err(_) => panic!("bad region layout"),
    };
    fn new() -> Self {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(Self::LAYOUT) };
        Region(NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(Self::LAYOUT)))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout, and freed only here.
        unsafe { std::alloc::dealloc(self.0.as_ptr(), Self::LAYOUT) }
    }
}

impl<P: freespace::malloc::Policy> Allocator for Heap<freespace::malloc::FixedRegion, P> {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.malloc(layout).ok()
    }
    fn free(&mut self, p: NonNull<u8>) {
        // SAFETY: the workload frees only pointers this heap gave it, each once.
        unsafe { Heap::free(self, p) }.expect("valid free");
    }
    fn snapshot(&self) -> (freespace::malloc::HeapStats, String) {
        let base = self.blocks().next().map_or(0, |b| b.addr);
        let map = heap_map(
            self.blocks()
                .map(|b| (b.addr, b.size, b.state == BlockState::Used)),
            base,
        );
        (self.stats(), map)
    }
}

impl Allocator for BuddyHeap {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.malloc(layout).ok()
    }
    fn free(&mut self, p: NonNull<u8>) {
        // SAFETY: the workload frees only pointers this heap gave it, each once.
        unsafe { BuddyHeap::free(self, p) }.expect("valid free");
    }
    fn snapshot(&self) -> (freespace::malloc::HeapStats, String) {
        (
            self.stats(),
            heap_map(
                self.blocks().map(|b| (b.addr, b.size, b.is_used())),
                self.base(),
            ),
        )
    }
}

fn outcome(name: String, heap: &mut impl Allocator) -> Outcome {
    let (s, map, served) = workload(heap);
    Outcome {
        name,
        external: s.external_fragmentation(),
        internal: s.internal_fragmentation(),
        free_blocks: s.free_blocks,
        largest_free: s.largest_free_block,
        free_bytes: s.free_bytes,
        search_per_alloc: s.search_per_alloc(),
        large_served: served,
        map,
    }
}

fn run_policy(fit: Fit, order: ListOrder) -> Outcome {
    let region = Region::new();
    // SAFETY: the region is ours alone and outlives the heap, which is dropped at the end of
    // this function, before `region`.
    let mut heap = unsafe {
        Heap::in_region(
            region.0,
            REGION,
            AnyPolicy::new(fit, order),
            HeapConfig::new(),
        )
    };
    let order_name = match order {
        ListOrder::AddressOrdered => "address order",
        ListOrder::Lifo => "LIFO",
        ListOrder::Fifo => "FIFO",
        ListOrder::SizeAscending => "size ascending",
        ListOrder::SizeDescending => "size descending",
    };
    let name = match fit {
        Fit::Segregated => "segregated fit".to_string(),
        _ => format!("{} fit, {order_name}", format!("{fit:?}").to_lowercase()),
    };
    let o = outcome(name, &mut heap);
    heap.check().expect("heap intact after the workload");
    o
}

fn run_buddy() -> Outcome {
    let region = Region::new();
    // SAFETY: as in `run_policy`: the region outlives the buddy heap.
    let mut heap = unsafe { BuddyHeap::new(region.0, REGION) };
    let o = outcome("binary buddy".to_string(), &mut heap);
    heap.check().expect("buddy heap intact after the workload");
    o
}

/// Section 2 and 3: returns the heap maps as text, printed after the table.
fn policies_on_one_workload() -> String {
    println!("== 2. One fragmenting workload, every placement policy ==\n");
    println!("  40,000 random mallocs and frees keep ~60% of a {} KiB region live (16 B..4 KiB objects);", REGION >> 10);
    println!("  then 16 KiB requests until one fails. Fragmentation is measured before those requests.\n");
    let mut outcomes = Vec::new();
    for fit in [Fit::First, Fit::Next, Fit::Best, Fit::Worst] {
        for order in [ListOrder::AddressOrdered, ListOrder::Lifo] {
            outcomes.push(run_policy(fit, order));
        }
    }
    outcomes.push(run_policy(Fit::Segregated, ListOrder::AddressOrdered));
    outcomes.push(run_buddy());
    println!(
        "  {:<28} {:>8} {:>8} {:>6} {:>10} {:>10} {:>8} {:>9}",
        "policy", "ext frag", "int frag", "holes", "free B", "largest", "search", "16K fit"
    );
    for o in &outcomes {
        println!(
            "  {:<28} {:>7.1}% {:>7.1}% {:>6} {:>10} {:>10} {:>8.1} {:>4}/{:<4}",
            o.name,
            o.external * 100.0,
            o.internal * 100.0,
            o.free_blocks,
            o.free_bytes,
            o.largest_free,
            o.search_per_alloc,
            o.large_served,
            o.free_bytes / (16 << 10)
        );
    }
    println!(
        "\n  'search' is free-list elements examined per allocation: the textbook fits are O(n);\n  \
         segregated fit finds a block with two bit scans. External fragmentation is\n  \
         1 - largest free / total free. '16K fit' is how many 16 KiB objects were served, out of\n  \
         how many the free bytes could hold if they were one block: the gap is external\n  \
         fragmentation, and only compaction (section 4) closes it."
    );
    let mut maps = String::from(
        "\n== 3. Heap maps (64 cells of 16 KiB; in use: # >= 7/8, = >= 1/2, - some, . none) ==\n\n",
    );
    for o in &outcomes {
        maps.push_str(&format!("  {:<28} |{}|\n", o.name, o.map));
    }
    maps
}
