//! The numbers `freespace replay` prints are the allocators' own: each is recomputed here by
//! driving the allocator directly over the same generated trace and reading its `HeapStats`,
//! its block walk, or the arena's `ArenaStats`.

use std::alloc::Layout;
use std::collections::HashMap;
use std::process::Command;

use freespace_handles::{Arena, Sliding};
use freespace_malloc::{
    AnyPolicy, BlockState, BuddyHeap, Coalescing, Fit, Heap, HeapConfig, HeapStats, ListOrder,
};
use freespace_sim::gen::{generate_text, GenOptions, Shape};
use freespace_sim::replay::{Region, TraceProfile};
use freespace_sim::trace::{read_trace, Op, Trace};

struct Row {
    peak: usize,
    last: usize,
    external: String,
    internal: String,
    search: String,
    moved: String,
}

/// Runs the binary on `text` (written to a temporary file) and parses the table by row name.
fn replay_table(name: &str, text: &str) -> (String, HashMap<String, Row>) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freespace"))
        .arg("replay")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let table = String::from_utf8(out.stdout).unwrap();
    let mut rows = HashMap::new();
    for line in table.lines().skip(2) {
        // The name may contain spaces; the last 8 fields are the numbers ("12.34 ms" is two).
        let fields: Vec<&str> = line.split_whitespace().collect();
        let n = fields.len();
        assert!(n >= 9, "row {line:?}");
        rows.insert(
            fields[..n - 8].join(" "),
            Row {
                peak: fields[n - 8].parse().unwrap(),
                last: fields[n - 7].parse().unwrap(),
                external: fields[n - 6].to_string(),
                internal: fields[n - 5].to_string(),
                search: fields[n - 4].to_string(),
                moved: fields[n - 3].to_string(),
            },
        );
        assert_eq!(fields[n - 1], "ms");
    }
    (table, rows)
}

fn trace_of(shape: Shape, allocs: usize, seed: u64) -> (String, Trace) {
    let text = generate_text(&GenOptions {
        shape,
        allocs,
        min_size: 16,
        max_size: 400,
        seed,
    })
    .unwrap();
    let trace = read_trace("t", text.as_bytes()).unwrap();
    (text, trace)
}

/// 1 - largest / total over the free blocks below `limit`.
fn holes_external(free: &[(usize, usize)], limit: usize) -> f64 {
    let (mut total, mut largest) = (0, 0);
    for &(off, len) in free.iter().filter(|(off, _)| *off < limit) {
        let len = len.min(limit - off);
        total += len;
        largest = largest.max(len);
    }
    if total == 0 {
        0.0
    } else {
        1.0 - largest as f64 / total as f64
    }
}

/// A region of the size the replay gives its heaps; drop it only after the heap in it.
fn region(trace: &Trace) -> Region {
    Region::zeroed(Region::for_profile(&TraceProfile::of(trace))).unwrap()
}

/// Drives a core heap directly and returns (peak span, final span, external, stats).
fn core_direct(
    trace: &Trace,
    fit: Fit,
    order: ListOrder,
    coalescing: Coalescing,
) -> (usize, usize, f64, HeapStats) {
    let mem = region(trace);
    let base = mem.ptr.as_ptr() as usize;
    // SAFETY: the region is ours and outlives the heap (freed after the heap is dropped).
    let mut heap = unsafe {
        Heap::in_region(
            mem.ptr,
            mem.size(),
            AnyPolicy::new(fit, order),
            HeapConfig::new().with_coalescing(coalescing),
        )
    };
    let span = |heap: &Heap<_, _>| {
        heap.blocks()
            .filter(|b| b.state == BlockState::Used)
            .map(|b| b.addr + b.size - base)
            .max()
            .unwrap_or(0)
    };
    let mut live = HashMap::new();
    let mut aligns = HashMap::new();
    let mut peak = 0;
    for ev in &trace.events {
        match ev.op {
            Op::Alloc { id, size, align } => {
                aligns.insert(id, align);
                live.insert(
                    id,
                    heap.malloc(Layout::from_size_align(size, align).unwrap())
                        .unwrap(),
                );
            }
            // SAFETY: each pointer is live and freed once.
            Op::Free { id } => unsafe { heap.free(live.remove(&id).unwrap()).unwrap() },
            Op::Realloc { id, size } => {
                let p = live[&id];
                // A resized block keeps the alignment it was allocated with.
                let layout = Layout::from_size_align(size, aligns[&id]).unwrap();
                // SAFETY: `p` is live; it is replaced by the result.
                let q = unsafe { heap.realloc(p, layout).unwrap() };
                live.insert(id, q);
            }
        }
        peak = peak.max(span(&heap));
    }
    heap.check().unwrap();
    let last = span(&heap);
    let free: Vec<(usize, usize)> = heap
        .blocks()
        .filter(|b| b.state == BlockState::Free)
        .map(|b| (b.addr - base, b.size))
        .collect();
    let out = (peak, last, holes_external(&free, last), heap.stats());
    drop(heap);
    drop(mem);
    out
}

#[test]
fn core_rows_match_the_heaps_own_statistics() {
    for (shape, seed) in [
        (Shape::Random, 5),
        (Shape::Plateau, 2),
        (Shape::Fragment, 1),
    ] {
        let (text, trace) = trace_of(shape, 600, seed);
        let (table, rows) = replay_table(&format!("core-{}.trace", shape.name()), &text);
        for (fit, order, coalescing, name) in [
            (
                Fit::First,
                ListOrder::AddressOrdered,
                Coalescing::Immediate,
                "first-fit addr",
            ),
            (
                Fit::Best,
                ListOrder::Lifo,
                Coalescing::Immediate,
                "best-fit lifo",
            ),
            (
                Fit::Next,
                ListOrder::Fifo,
                Coalescing::Immediate,
                "next-fit fifo",
            ),
            (
                Fit::Worst,
                ListOrder::SizeDescending,
                Coalescing::Immediate,
                "worst-fit size-",
            ),
            (
                Fit::First,
                ListOrder::AddressOrdered,
                Coalescing::Never,
                "first-fit addr no-coalesce",
            ),
            (
                Fit::Segregated,
                ListOrder::AddressOrdered,
                Coalescing::Immediate,
                "segregated",
            ),
        ] {
            let (peak, last, external, stats) = core_direct(&trace, fit, order, coalescing);
            let row = rows
                .get(name)
                .unwrap_or_else(|| panic!("no row {name} in\n{table}"));
            assert_eq!(row.peak, peak, "{name} peak, {shape:?}");
            assert_eq!(row.last, last, "{name} final, {shape:?}");
            assert_eq!(
                row.external,
                format!("{external:.3}"),
                "{name} ext, {shape:?}"
            );
            assert_eq!(
                row.internal,
                format!("{:.3}", stats.internal_fragmentation()),
                "{name} int"
            );
            assert_eq!(
                row.search,
                format!("{:.2}", stats.search_per_alloc()),
                "{name} search"
            );
            assert_eq!(row.moved, "-", "malloc never moves a block");
        }
    }
}

#[test]
fn buddy_row_matches_the_buddy_heap() {
    let (text, trace) = trace_of(Shape::Peak, 500, 3);
    let (_, rows) = replay_table("buddy.trace", &text);
    let mem = region(&trace);
    // SAFETY: the region is ours, zeroed, and freed only after the heap is dropped.
    let mut heap = unsafe { BuddyHeap::new(mem.ptr, mem.size()) };
    let base = heap.base();
    let span = |heap: &BuddyHeap| {
        heap.blocks()
            .filter(|b| b.is_used())
            .map(|b| b.addr + b.size - base)
            .max()
            .unwrap_or(0)
    };
    let mut live = HashMap::new();
    let mut peak = 0;
    for ev in &trace.events {
        match ev.op {
            Op::Alloc { id, size, align } => {
                live.insert(
                    id,
                    heap.malloc(Layout::from_size_align(size, align).unwrap())
                        .unwrap(),
                );
            }
            // SAFETY: each pointer is live and freed once.
            Op::Free { id } => unsafe { heap.free(live.remove(&id).unwrap()).unwrap() },
            Op::Realloc { .. } => unreachable!("peak traces do not realloc"),
        }
        peak = peak.max(span(&heap));
    }
    let last = span(&heap);
    let free: Vec<(usize, usize)> = heap
        .blocks()
        .filter(|b| !b.is_used())
        .map(|b| (b.addr - base, b.size))
        .collect();
    let row = &rows["buddy"];
    assert_eq!(row.peak, peak);
    assert_eq!(row.last, last);
    assert_eq!(row.external, format!("{:.3}", holes_external(&free, last)));
    assert_eq!(
        row.internal,
        format!("{:.3}", heap.stats().internal_fragmentation())
    );
}

#[test]
fn arena_row_matches_the_arena_and_compaction_moves_bytes() {
    let (text, trace) = trace_of(Shape::Fragment, 800, 9);
    let (_, rows) = replay_table("arena.trace", &text);
    let mut arena = Arena::with_compactor(Sliding::new());
    let mut live = HashMap::new();
    let mut peak = 0;
    for ev in &trace.events {
        match ev.op {
            Op::Alloc { id, size, align } => {
                live.insert(id, arena.try_alloc_bytes(size, align).unwrap());
            }
            Op::Free { id } => arena.free_bytes(live.remove(&id).unwrap()).unwrap(),
            Op::Realloc { id, size } => arena.resize(live[&id], size).unwrap(),
        }
        peak = peak.max(arena.stats().used_span);
    }
    let s = arena.stats();
    let row = &rows["arena sliding"];
    assert_eq!(row.peak, peak);
    assert_eq!(row.last, s.used_span);
    assert_eq!(row.moved, s.total_bytes_moved.to_string());
    assert!(
        s.total_bytes_moved > 0,
        "the fragmenting trace makes the arena compact"
    );
    assert_eq!(row.search, "-");
}

#[test]
fn every_policy_and_order_gets_a_row() {
    let (text, _) = trace_of(Shape::Random, 100, 1);
    let (table, rows) = replay_table("rows.trace", &text);
    for fit in ["first-fit", "next-fit", "best-fit", "worst-fit"] {
        for order in ["addr", "lifo", "fifo", "size+", "size-"] {
            assert!(
                rows.contains_key(&format!("{fit} {order}")),
                "{fit} {order}\n{table}"
            );
        }
    }
    for name in [
        "first-fit addr no-coalesce",
        "segregated",
        "buddy",
        "arena sliding",
        "arena two-finger",
    ] {
        assert!(rows.contains_key(name), "{name}\n{table}");
    }
    assert_eq!(rows.len(), 25);
    assert!(table.starts_with("trace "), "{table}");
}

/// On the fragmenting pattern, compaction beats every policy that can only coalesce: the
/// arena's final span is the smallest in the table.
#[test]
fn compaction_ends_smaller_than_coalescing_on_the_fragmenting_pattern() {
    let (text, _) = trace_of(Shape::Fragment, 1000, 4);
    let (table, rows) = replay_table("contrast.trace", &text);
    let arena = rows["arena sliding"].last;
    for (name, row) in &rows {
        if !name.starts_with("arena") {
            assert!(
                arena < row.last,
                "arena {arena} vs {name} {}\n{table}",
                row.last
            );
        }
    }
}
