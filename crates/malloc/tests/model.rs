//! Randomized differential tests: every policy, list order and coalescing mode, on real memory
//! and on the simulated range, against a simple model of what must be true.
//!
//! The model is the set of live allocations with their sizes, alignments and fill bytes. After
//! every step the test checks that every live block still holds its bytes (checked on free and
//! realloc, and in full every few steps), that no two live blocks overlap, that `stats()` adds up
//! to the model, that `blocks()` lists exactly the live blocks, and that `check()` passes. Each
//! run prints its seed when it fails; set `FREESPACE_SEED` to replay one.

use core::alloc::Layout;
use core::ptr::NonNull;

use freespace_malloc::{
    AllocError, AnyPolicy, BlockState, Coalescing, Fit, Heap, HeapConfig, ListOrder, OsSource,
    Policy, SimConfig, SimHeap, Source,
};

/// The shared test generator (`freespace_testkit::Rng`), drawing `usize`s.
struct Rng(freespace_testkit::Rng);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(freespace_testkit::Rng::new(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.index(n)
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("FREESPACE_SEED") {
        Ok(s) => vec![s.parse().expect("FREESPACE_SEED must be a number")],
        // Under Miri, which interprets every step, one seed.
        Err(_) if cfg!(miri) => vec![1],
        Err(_) => vec![1, 0xdead_beef],
    }
}

/// `n` steps, or `miri` under Miri (the same logic on a shorter run).
const fn steps(n: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        n
    }
}

#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    fill: u8,
}

fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}

fn fill(l: &Live) {
    // SAFETY: the block is live and has at least `size` payload bytes.
    unsafe { core::ptr::write_bytes(l.ptr.as_ptr(), l.fill, l.size) };
}

fn verify(l: &Live, len: usize) {
    // SAFETY: as for `fill`; `len <= size`.
    let bytes = unsafe { core::slice::from_raw_parts(l.ptr.as_ptr(), len) };
    // Compared a chunk at a time (a slice comparison is one step under Miri).
    let expect = [l.fill; 256];
    if bytes.chunks(256).all(|c| c == &expect[..c.len()]) {
        return;
    }
    if let Some(i) = bytes.iter().position(|&b| b != l.fill) {
        panic!(
            "block at {:p} lost its contents at byte {i}: {:#x} != {:#x}",
            l.ptr, bytes[i], l.fill
        );
    }
}

/// Everything that must hold between steps.
fn check_model<S: Source, P: Policy>(heap: &Heap<S, P>, live: &[Live], full: bool) {
    heap.check().unwrap_or_else(|e| panic!("check failed: {e}"));
    let mut sorted: Vec<Live> = live.to_vec();
    sorted.sort_by_key(|l| l.ptr);
    for w in sorted.windows(2) {
        assert!(
            addr(w[0].ptr) + w[0].size <= addr(w[1].ptr),
            "live blocks overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    let s = heap.stats();
    assert_eq!(s.live_blocks, live.len());
    assert_eq!(
        s.requested_bytes,
        live.iter().map(|l| l.size).sum::<usize>()
    );
    let usable: usize = live
        .iter()
        // SAFETY: every model pointer is live in this heap.
        .map(|l| unsafe { heap.usable_size(l.ptr) }.unwrap())
        .sum();
    assert_eq!(s.allocated_bytes, usable);
    assert_eq!(s.header_bytes, live.len() * 16);
    assert_eq!(
        s.heap_bytes,
        s.allocated_bytes + s.free_bytes + s.header_bytes + s.overhead_bytes
    );
    let used: Vec<usize> = heap
        .blocks()
        .filter(|b| b.state == BlockState::Used)
        .map(|b| b.addr + 16)
        .collect();
    assert_eq!(
        used,
        sorted.iter().map(|l| addr(l.ptr)).collect::<Vec<_>>(),
        "blocks() disagrees with the model"
    );
    let free: Vec<_> = heap
        .blocks()
        .filter(|b| b.state == BlockState::Free)
        .collect();
    assert_eq!(free.len(), s.free_blocks);
    assert_eq!(
        free.iter().map(|b| b.size).max().unwrap_or(0),
        s.largest_free_block
    );
    if full {
        for l in live {
            verify(l, l.size);
        }
    }
}

/// Runs `steps` random mallocs, frees and reallocs (some of them aligned) on `heap`.
fn drive<S: Source, P: Policy>(
    mut heap: Heap<S, P>,
    seed: u64,
    steps: usize,
    max_size: usize,
) -> Heap<S, P> {
    let mut rng = Rng::new(seed);
    let mut live: Vec<Live> = Vec::new();
    let mut fills = 0u8;
    let mut failures = 0;
    for step in 0..steps {
        let op = rng.below(10);
        if op < 5 || live.is_empty() {
            let cap = if rng.below(8) == 0 { max_size } else { 256 };
            let size = 1 + rng.below(cap);
            let align = if rng.below(6) == 0 {
                1 << (5 + rng.below(8))
            } else {
                1 << rng.below(5)
            };
            let layout = Layout::from_size_align(size, align).unwrap();
            match heap.malloc(layout) {
                Ok(p) => {
                    assert_eq!(
                        p.as_ptr() as usize % align.max(16),
                        0,
                        "step {step}: misaligned block"
                    );
                    fills = fills.wrapping_add(1);
                    let l = Live {
                        ptr: p,
                        size,
                        align,
                        fill: fills,
                    };
                    fill(&l);
                    live.push(l);
                }
                Err(AllocError::OutOfMemory) => failures += 1,
                Err(e) => panic!("step {step}: unexpected {e:?}"),
            }
        } else if op < 8 {
            let l = live.swap_remove(rng.below(live.len()));
            verify(&l, l.size);
            // SAFETY: `l` is live in this heap.
            unsafe { heap.free(l.ptr) }.unwrap();
        } else {
            let i = rng.below(live.len());
            let old = live[i];
            let cap = if rng.below(4) == 0 { max_size } else { 512 };
            let size = 1 + rng.below(cap);
            let layout = Layout::from_size_align(size, old.align).unwrap();
            // SAFETY: `old` is live in this heap.
            match unsafe { heap.realloc(old.ptr, layout) } {
                Ok(p) => {
                    assert_eq!(
                        p.as_ptr() as usize % old.align.max(16),
                        0,
                        "step {step}: realloc lost alignment"
                    );
                    let l = Live {
                        ptr: p,
                        size,
                        ..old
                    };
                    verify(&l, old.size.min(size));
                    fill(&l);
                    live[i] = l;
                }
                Err(AllocError::OutOfMemory) => {
                    failures += 1;
                    verify(&old, old.size);
                }
                Err(e) => panic!("step {step}: unexpected {e:?}"),
            }
        }
        check_model(&heap, &live, step % 64 == 0);
    }
    assert!(
        failures < steps / 2,
        "the heap refused too much: {failures} of {steps}"
    );
    for l in live.drain(..) {
        verify(&l, l.size);
        // SAFETY: `l` is live in this heap.
        unsafe { heap.free(l.ptr) }.unwrap();
    }
    check_model(&heap, &live, true);
    heap.coalesce();
    heap.check().unwrap();
    let s = heap.stats();
    assert_eq!(
        (s.allocated_bytes, s.requested_bytes, s.live_blocks),
        (0, 0, 0)
    );
    heap
}

/// Runs `f`; if it panics, prints `label` (which names the seed) first, so the run can be
/// replayed with `FREESPACE_SEED`.
fn labelled(label: &str, f: impl FnOnce()) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        eprintln!("failed: {label} (replay with FREESPACE_SEED)");
        std::panic::resume_unwind(e);
    }
}

fn policies() -> Vec<AnyPolicy> {
    let mut out = vec![AnyPolicy::new(Fit::Segregated, ListOrder::Lifo)];
    for fit in [Fit::First, Fit::Next, Fit::Best, Fit::Worst] {
        for order in ListOrder::ALL {
            out.push(AnyPolicy::new(fit, order));
        }
    }
    out
}

#[test]
fn every_policy_order_and_mode_in_a_fixed_region() {
    for seed in seeds() {
        for policy in policies() {
            for coalescing in Coalescing::ALL {
                let label = format!("seed {seed}, {:?}, {coalescing:?}", policy);
                let mut buf = vec![0u128; 64 * 1024 / 16];
                // SAFETY: the buffer outlives the heap (dropped at the end of this iteration).
                let heap = unsafe {
                    Heap::in_region(
                        NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap(),
                        buf.len() * 16,
                        policy.clone(),
                        HeapConfig::new().with_coalescing(coalescing),
                    )
                };
                labelled(&label, || drop(drive(heap, seed, steps(600, 6), 3000)));
                drop(buf);
            }
        }
    }
}

#[test]
fn every_mode_on_os_memory_with_growth_and_trimming() {
    for seed in seeds() {
        for policy in [
            AnyPolicy::new(Fit::Segregated, ListOrder::Lifo),
            AnyPolicy::new(Fit::First, ListOrder::AddressOrdered),
        ] {
            for coalescing in Coalescing::ALL {
                let config = HeapConfig::new()
                    .with_coalescing(coalescing)
                    .with_trim_threshold(64 * 1024);
                let heap = Heap::with_parts(OsSource::new(), policy.clone(), config);
                labelled(&format!("seed {seed}, {policy:?}, {coalescing:?}"), || {
                    let max = steps(3 << 20, 256 << 10);
                    let mut heap = drive(heap, seed, steps(400, 10), max);
                    heap.release_free_memory();
                    heap.check().unwrap();
                    if coalescing == Coalescing::Never {
                        // Nothing merges, so a region goes back only if it is one free block
                        // already; only the first region may be one and stay.
                        let whole = whole_free_regions(&heap);
                        assert!(whole <= 1, "{whole} wholly free regions were kept");
                    } else {
                        assert_eq!(heap.region_count(), 1, "free regions were not given back");
                    }
                });
            }
        }
    }
}

/// How many regions hold exactly one block, a free one. Blocks of one region are contiguous,
/// and the region header and sentinel leave a gap between regions.
fn whole_free_regions<S: Source, P: Policy>(heap: &Heap<S, P>) -> usize {
    let blocks: Vec<_> = heap.blocks().collect();
    let mut regions: Vec<Vec<BlockState>> = Vec::new();
    let mut end = 0;
    for b in &blocks {
        if b.addr != end || regions.is_empty() {
            regions.push(Vec::new());
        }
        regions.last_mut().unwrap().push(b.state);
        end = b.addr + b.size;
    }
    assert_eq!(regions.len(), heap.region_count());
    regions
        .iter()
        .filter(|r| r[..] == [BlockState::Free])
        .count()
}

#[test]
fn default_heap_under_load() {
    for seed in seeds() {
        labelled(&format!("seed {seed}"), || {
            drop(drive(Heap::new(), seed, steps(3000, 30), 20_000))
        });
    }
}

/// The simulated heap against its own model: live addresses and sizes, tiling, stats.
#[test]
fn sim_heap_agrees_with_a_model() {
    for seed in seeds() {
        labelled(&format!("seed {seed}"), || sim_run(seed));
    }
}

/// One seed's run of every fit, order and mode on small simulated heaps.
fn sim_run(seed: u64) {
    let mut rng = Rng::new(seed);
    for fit in Fit::ALL {
        for order in ListOrder::ALL {
            for coalescing in Coalescing::ALL {
                let header_size = [0, 4, 8][rng.below(3)];
                let align = [1, 1, 4, 8][rng.below(4)];
                let cfg = SimConfig {
                    base: 1000,
                    size: 100 + rng.below(400),
                    header_size,
                    align,
                    fit,
                    order,
                    coalescing,
                };
                let min_block = [1, 1, 4, 8][rng.below(4)];
                let mut heap = SimHeap::with_min_block(cfg, min_block);
                let mut live: Vec<(usize, usize)> = Vec::new();
                for step in 0..steps(300, 3) {
                    if rng.below(2) == 0 || live.is_empty() {
                        let size = 1 + rng.below(20);
                        match heap.malloc(size) {
                            Ok((addr, searched)) => {
                                assert_eq!(searched, heap.last_searched());
                                assert!(
                                    addr >= cfg.base + header_size
                                        && addr + size <= cfg.base + cfg.size
                                );
                                live.push((addr, size));
                            }
                            Err(AllocError::OutOfMemory) => {
                                // Out of memory must mean no free block is big enough.
                                let need =
                                    (size.next_multiple_of(align) + header_size).max(min_block);
                                assert!(
                                    heap.free_list().iter().all(|&(_, s)| s < need)
                                        || coalescing == Coalescing::Deferred,
                                    "{cfg:?} step {step}: refused {size} with {:?}",
                                    heap.free_list()
                                );
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                    } else {
                        let (addr, _) = live.swap_remove(rng.below(live.len()));
                        heap.free(addr).unwrap();
                    }
                    heap.check()
                        .unwrap_or_else(|e| panic!("{cfg:?} step {step}: {e}"));
                    live.sort();
                    for w in live.windows(2) {
                        assert!(w[0].0 + w[0].1 + header_size <= w[1].0, "{cfg:?}: overlap");
                    }
                    let s = heap.stats();
                    assert_eq!(s.requested_bytes, live.iter().map(|l| l.1).sum::<usize>());
                    assert_eq!(s.live_blocks, live.len());
                    assert_eq!(s.heap_bytes, cfg.size);
                    assert_eq!(
                        s.heap_bytes,
                        s.allocated_bytes + s.free_bytes + s.header_bytes
                    );
                    let listed: usize = heap.free_list().iter().map(|f| f.1).sum();
                    assert_eq!(listed, s.free_bytes);
                    let tiled: usize = heap.blocks().map(|b| b.size).sum();
                    assert_eq!(tiled, cfg.size);
                }
            }
        }
    }
}
