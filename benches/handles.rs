//! The handle arena against its peers, measured in the same run so ratios mean something:
//! - `handles/get`: `Arena::get` vs slotmap's `SlotMap::get` vs a raw pointer dereference;
//! - `handles/insert_remove`: a batch of inserts then removes, arena vs slotmap;
//! - `handles/compact`: compaction throughput (bytes moved per second) vs one memmove of the
//!   same number of bytes inside a fresh arena's own buffer, and vs a plain memcpy between two
//!   vectors, as one copy and in blocks of the same size. Every contender starts with its data
//!   out of the caches, as a pass over a large, long-lived arena would;
//! - before the timed groups, a printed table: footprint after one fragmenting workload on the
//!   arena (after `compact`), freespace-malloc's `Heap` and the system allocator.
//!
//! Run: `cargo bench --bench handles -- --warm-up-time 1 --measurement-time 3`
//! (a criterion filter that matches nothing, such as `-- tables`, prints only the two tables).
//!
//! The two tables also print machine-readable lines (for `benches/report.py`):
//! - `RESULT footprint <live bytes> <footprint bytes> <name>` (the name may hold spaces);
//! - `RESULT get <arena ns> <slotmap ns>` and `RESULT insert_remove <arena ns> <slotmap ns>`, per
//!   operation, each the best of its interleaved rounds;
//! - `RESULT compact <compactor> <block bytes> <bytes moved> <pass s> <memcpy s> <memmove s>`,
//!   each time given as `<best>/<median>` seconds over the interleaved rounds.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use freespace_handles::{Arena, Compactor, GrowthPolicy, Handle, Sliding, TwoFinger};
use freespace_malloc::Heap;
use slotmap::{DefaultKey, SlotMap};

/// Values read per `get` iteration.
const GET_N: usize = 4096;

/// Bytes written by [`evict_caches`]: twice this machine's last-level cache.
const EVICT_BYTES: usize = 64 << 20;

/// Pushes everything else out of the caches by writing a buffer larger than them, so that the
/// timed code that follows reads its data from memory.
fn evict_caches(scratch: &mut Vec<u8>) {
    if scratch.is_empty() {
        scratch.resize(EVICT_BYTES, 0);
    }
    let v = scratch[0].wrapping_add(1);
    scratch.fill(v);
    black_box(scratch);
}

fn get(c: &mut Criterion) {
    let mut g = c.benchmark_group("handles/get");
    g.throughput(Throughput::Elements(GET_N as u64));

    let mut arena = Arena::new();
    let hs: Vec<Handle<u64>> = (0..GET_N as u64).map(|i| arena.insert(i)).collect();
    g.bench_function("arena", |b| {
        b.iter(|| {
            let arena = black_box(&arena);
            let mut sum = 0u64;
            for h in black_box(&hs) {
                sum = sum.wrapping_add(*arena.get(*h).unwrap());
            }
            sum
        })
    });

    let mut sm: SlotMap<DefaultKey, u64> = SlotMap::new();
    let keys: Vec<DefaultKey> = (0..GET_N as u64).map(|i| sm.insert(i)).collect();
    g.bench_function("slotmap", |b| {
        b.iter(|| {
            let sm = black_box(&sm);
            let mut sum = 0u64;
            for k in black_box(&keys) {
                sum = sum.wrapping_add(*sm.get(*k).unwrap());
            }
            sum
        })
    });

    let values: Vec<u64> = (0..GET_N as u64).collect();
    let ptrs: Vec<*const u64> = values.iter().map(|v| v as *const u64).collect();
    g.bench_function("raw_pointer", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for p in black_box(&ptrs) {
                // SAFETY: every pointer points into `values`, which outlives the benchmark.
                sum = sum.wrapping_add(unsafe { **p });
            }
            sum
        })
    });
    g.finish();
}

/// Inserts and removes per `insert_remove` iteration.
const CHURN_N: usize = 1024;

fn insert_remove(c: &mut Criterion) {
    let mut g = c.benchmark_group("handles/insert_remove");
    g.throughput(Throughput::Elements(CHURN_N as u64));
    let mut hs = Vec::with_capacity(CHURN_N);

    let mut arena = Arena::new();
    arena.set_policy(GrowthPolicy::Manual);
    g.bench_function("arena", |b| {
        b.iter(|| {
            for i in 0..CHURN_N as u64 {
                hs.push(arena.insert(black_box(i)));
            }
            // Remove in insertion order: every remove leaves a hole below the top until the
            // last, so the free-space index does real work.
            for h in hs.drain(..) {
                black_box(arena.remove(h));
            }
        })
    });

    let mut keys = Vec::with_capacity(CHURN_N);
    let mut sm: SlotMap<DefaultKey, u64> = SlotMap::new();
    g.bench_function("slotmap", |b| {
        b.iter(|| {
            for i in 0..CHURN_N as u64 {
                keys.push(sm.insert(black_box(i)));
            }
            for k in keys.drain(..) {
                black_box(sm.remove(k));
            }
        })
    });
    g.finish();
}

/// Builds an arena of `count` byte blocks of `len` bytes and frees every other one, so that a
/// sliding pass moves half of them.
fn fragmented<C: Compactor>(compactor: C, count: usize, len: usize) -> Arena<C> {
    fragmented_with_base(compactor, count, len).0
}

/// A fragmented arena as [`fragmented`] builds it, and its buffer's base address. The buffer
/// does not move afterwards (the policy is manual), so the base stays valid while the arena
/// lives.
fn fragmented_with_base<C: Compactor>(
    compactor: C,
    count: usize,
    len: usize,
) -> (Arena<C>, NonNull<u8>) {
    let config = freespace_handles::ArenaConfig::new()
        .policy(GrowthPolicy::Manual)
        .shrink_after_compaction(false);
    let mut arena = Arena::with_config(config, compactor);
    let hs: Vec<_> = (0..count).map(|_| arena.alloc_bytes(len, 16)).collect();
    assert_eq!(
        arena.blocks().next(),
        Some((0, len)),
        "the first block is at offset 0"
    );
    let base = arena.address_of(hs[0]).unwrap();
    for (i, h) in hs.into_iter().enumerate() {
        if i % 2 == 0 {
            arena.free_bytes(h).unwrap();
        } else {
            arena.bytes_mut(h).unwrap().fill(i as u8);
        }
    }
    (arena, base)
}

/// The baseline that shares the pass's memory: one `memmove` of `bytes` from the upper part of
/// a freshly built arena's buffer down to its start, the move a compaction would make if the
/// live data were one block. The bytes it overwrites are the arena's, so the arena is only
/// dropped afterwards (byte blocks have no drop glue).
fn memmove_in_buffer(base: NonNull<u8>, bytes: usize) {
    // SAFETY: the buffer holds at least 2 * bytes (the bench's arenas are twice the bytes a
    // pass moves), both ranges lie inside it, and ptr::copy allows them to overlap.
    unsafe { core::ptr::copy(base.as_ptr().add(bytes), base.as_ptr(), bytes) };
}

fn compact(c: &mut Criterion) {
    // 16 MiB of blocks, half freed: 8 MiB of live data to move, larger than the caches.
    const TOTAL: usize = 16 << 20;
    let mut scratch = Vec::new();
    for len in [256usize, 4096, 65536] {
        let count = TOTAL / len;
        let moved = fragmented(Sliding::new(), count, len).compact().bytes_moved;
        let mut g = c.benchmark_group(format!("handles/compact/block_{len}"));
        g.throughput(Throughput::Bytes(moved as u64));
        g.sample_size(10);
        g.bench_function("sliding", |b| {
            b.iter_batched(
                || {
                    let arena = fragmented(Sliding::new(), count, len);
                    evict_caches(&mut scratch);
                    arena
                },
                |mut arena| {
                    let r = arena.compact();
                    assert_eq!(r.bytes_moved, moved);
                    arena
                },
                BatchSize::PerIteration,
            )
        });
        let tf_moved = fragmented(TwoFinger::new(), count, len)
            .compact()
            .bytes_moved;
        eprintln!("block {len}: sliding moves {moved} bytes, two-finger {tf_moved} bytes");
        g.bench_function("two_finger", |b| {
            b.iter_batched(
                || {
                    let arena = fragmented(TwoFinger::new(), count, len);
                    evict_caches(&mut scratch);
                    arena
                },
                |mut arena| {
                    arena.compact();
                    arena
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("memmove_in_buffer", |b| {
            b.iter_batched(
                || {
                    let fresh = fragmented_with_base(Sliding::new(), count, len);
                    evict_caches(&mut scratch);
                    fresh
                },
                |(arena, base)| {
                    memmove_in_buffer(base, moved);
                    arena
                },
                BatchSize::PerIteration,
            )
        });
        let mut fresh = || {
            let bufs = (vec![1u8; moved], vec![2u8; moved]);
            evict_caches(&mut scratch);
            bufs
        };
        g.bench_function("memcpy_whole", |b| {
            b.iter_batched(
                &mut fresh,
                |(src, mut dst)| {
                    dst.copy_from_slice(black_box(&src));
                    (src, dst)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(BenchmarkId::new("memcpy_blocks", len), |b| {
            b.iter_batched(
                &mut fresh,
                |(src, mut dst)| {
                    for (d, s) in dst.chunks_mut(len).zip(black_box(&src).chunks(len)) {
                        d.copy_from_slice(s);
                    }
                    (src, dst)
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

/// An allocator under the fragmenting workload: allocate returns an id, free takes it.
trait Subject {
    fn alloc(&mut self, size: usize) -> usize;
    fn free(&mut self, id: usize);
}

/// One fragmenting workload, replayed on any allocator: allocate 20 000 blocks of 16..1024
/// bytes, free a random 60%, then allocate 4 000 blocks of 1..4 KiB, which the small holes
/// cannot hold. Returns the live bytes requested.
fn workload(subject: &mut impl Subject) -> usize {
    // xorshift64 here, not freespace_testkit::Rng: docs/benchmarks.md's footprint rows are this
    // sequence's output.
    let mut seed = 0x5eed_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut ids = Vec::new();
    for _ in 0..20_000 {
        let size = 16 + (rand() % 1009) as usize;
        ids.push((subject.alloc(size), size));
    }
    let mut live = 0;
    for (id, size) in ids {
        if rand() % 100 < 60 {
            subject.free(id);
        } else {
            live += size;
        }
    }
    for _ in 0..4_000 {
        let size = 1024 + (rand() % 3073) as usize;
        subject.alloc(size);
        live += size;
    }
    live
}

struct ArenaSubject(Arena, Vec<Handle<[u8]>>);

impl Subject for ArenaSubject {
    fn alloc(&mut self, size: usize) -> usize {
        self.1.push(self.0.alloc_bytes(size, 16));
        self.1.len() - 1
    }
    fn free(&mut self, id: usize) {
        self.0.free_bytes(self.1[id]).unwrap();
    }
}

struct HeapSubject(Heap, Vec<NonNull<u8>>);

impl Subject for HeapSubject {
    fn alloc(&mut self, size: usize) -> usize {
        let layout = Layout::from_size_align(size, 16).unwrap();
        self.1.push(self.0.malloc(layout).unwrap());
        self.1.len() - 1
    }
    fn free(&mut self, id: usize) {
        // SAFETY: every id names a pointer this heap returned, and the workload frees each once.
        unsafe { self.0.free(self.1[id]) }.unwrap();
    }
}

struct SystemSubject(Vec<Option<Vec<u8>>>);

impl Subject for SystemSubject {
    fn alloc(&mut self, size: usize) -> usize {
        self.0.push(Some(vec![1u8; size]));
        self.0.len() - 1
    }
    fn free(&mut self, id: usize) {
        self.0[id] = None;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// glibc's `struct mallinfo2`.
    #[repr(C)]
    pub struct MallInfo2 {
        pub arena: usize,
        pub ordblks: usize,
        pub smblks: usize,
        pub hblks: usize,
        pub hblkhd: usize,
        pub usmblks: usize,
        pub fsmblks: usize,
        pub uordblks: usize,
        pub fordblks: usize,
        pub keepcost: usize,
    }
    extern "C" {
        pub fn mallinfo2() -> MallInfo2;
    }

    /// Bytes glibc holds from the OS (main arena plus mmapped chunks).
    pub fn held() -> usize {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
        let m = unsafe { mallinfo2() };
        m.arena + m.hblkhd
    }
}

fn footprint_table() {
    let mut rows: Vec<(&str, usize, usize)> = Vec::new();

    let mut arena = ArenaSubject(Arena::new(), Vec::new());
    let live = workload(&mut arena);
    rows.push(("arena, before compact", live, arena.0.stats().footprint));
    arena.0.compact();
    let s = arena.0.stats();
    rows.push(("arena, after compact", live, s.footprint));
    rows.push(("arena, + handle table", live, s.footprint + s.table_bytes));

    let mut heap = HeapSubject(Heap::new(), Vec::new());
    let live = workload(&mut heap);
    rows.push(("freespace-malloc Heap", live, heap.0.stats().heap_bytes));

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = glibc::held();
        let mut system = SystemSubject(Vec::new());
        let live = workload(&mut system);
        let after = glibc::held();
        rows.push(("system (glibc)", live, after.saturating_sub(before)));
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = SystemSubject(Vec::new());

    println!("\nfootprint after the fragmenting workload (lower is better)");
    println!(
        "{:<24} {:>12} {:>12} {:>8}",
        "allocator", "live bytes", "footprint", "ratio"
    );
    for (name, live, fp) in &rows {
        println!(
            "{name:<24} {live:>12} {fp:>12} {:>8.3}",
            *fp as f64 / *live as f64
        );
    }
    for (name, live, fp) in &rows {
        println!("RESULT footprint {live} {fp} {name}");
    }
    println!();
}

/// Best-of-N times of two closures run in alternation, so that a slow spell on a shared
/// machine hits both: a steadier ratio than two separate criterion runs.
fn interleaved(rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut best_a, mut best_b) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        a();
        best_a = best_a.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b();
        best_b = best_b.min(t.elapsed().as_secs_f64());
    }
    (best_a, best_b)
}

/// The fastest and the median of some timings.
fn best_and_median(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

/// Interleaved ratios against slotmap for `get` and insert/remove, and against memcpy for a
/// full sliding compaction.
fn ratio_table() {
    let mut arena = Arena::new();
    let hs: Vec<Handle<u64>> = (0..GET_N as u64).map(|i| arena.insert(i)).collect();
    let mut sm: SlotMap<DefaultKey, u64> = SlotMap::new();
    let keys: Vec<DefaultKey> = (0..GET_N as u64).map(|i| sm.insert(i)).collect();
    let (ta, ts) = interleaved(
        3000,
        || {
            let arena = black_box(&arena);
            let mut sum = 0u64;
            for h in black_box(&hs) {
                sum = sum.wrapping_add(*arena.get(*h).unwrap());
            }
            black_box(sum);
        },
        || {
            let sm = black_box(&sm);
            let mut sum = 0u64;
            for k in black_box(&keys) {
                sum = sum.wrapping_add(*sm.get(*k).unwrap());
            }
            black_box(sum);
        },
    );
    println!("interleaved best-of-3000 ratios (lower is better for the arena)");
    println!(
        "get: arena {:.2} ns, slotmap {:.2} ns, ratio {:.2}",
        ta * 1e9 / GET_N as f64,
        ts * 1e9 / GET_N as f64,
        ta / ts
    );
    println!(
        "RESULT get {:.4} {:.4}",
        ta * 1e9 / GET_N as f64,
        ts * 1e9 / GET_N as f64
    );

    let mut arena = Arena::new();
    arena.set_policy(GrowthPolicy::Manual);
    let mut sm: SlotMap<DefaultKey, u64> = SlotMap::new();
    let (mut hs, mut keys) = (Vec::with_capacity(CHURN_N), Vec::with_capacity(CHURN_N));
    let (ta, ts) = interleaved(
        1000,
        || {
            for i in 0..CHURN_N as u64 {
                hs.push(arena.insert(black_box(i)));
            }
            for h in hs.drain(..) {
                black_box(arena.remove(h));
            }
        },
        || {
            for i in 0..CHURN_N as u64 {
                keys.push(sm.insert(black_box(i)));
            }
            for k in keys.drain(..) {
                black_box(sm.remove(k));
            }
        },
    );
    println!(
        "insert+remove: arena {:.1} ns, slotmap {:.1} ns, ratio {:.1}",
        ta * 1e9 / CHURN_N as f64,
        ts * 1e9 / CHURN_N as f64,
        ta / ts
    );
    println!(
        "RESULT insert_remove {:.3} {:.3}",
        ta * 1e9 / CHURN_N as f64,
        ts * 1e9 / CHURN_N as f64
    );

    // Each side starts with its data out of the caches; 15 rounds, best and median kept.
    let mut scratch = Vec::new();
    for len in [256usize, 4096, 65536] {
        compact_ratio(&mut scratch, Sliding::new, len);
    }
    for len in [256usize, 4096, 65536] {
        compact_ratio(&mut scratch, TwoFinger::new, len);
    }
    println!();
}

/// Times a full pass of a fresh `compactor` over a fragmented arena of `len`-byte blocks
/// against one memcpy of the bytes the pass moves, interleaved, and prints the ratio.
fn compact_ratio<C: Compactor>(scratch: &mut Vec<u8>, compactor: impl Fn() -> C, len: usize) {
    let count = (16 << 20) / len;
    let name = compactor().name();
    {
        let (mut pass, mut copy, mut within) = (Vec::new(), Vec::new(), Vec::new());
        let mut moved = 0;
        for _ in 0..15 {
            let mut arena = fragmented(compactor(), count, len);
            evict_caches(scratch);
            let t = Instant::now();
            moved = black_box(arena.compact()).bytes_moved;
            pass.push(t.elapsed().as_secs_f64());
            drop(arena);
            let (src, mut dst) = (vec![1u8; moved], vec![2u8; moved]);
            evict_caches(scratch);
            let t = Instant::now();
            dst.copy_from_slice(black_box(&src));
            copy.push(t.elapsed().as_secs_f64());
            black_box(&dst);
            drop((src, dst));
            let (arena, base) = fragmented_with_base(Sliding::new(), count, len);
            evict_caches(scratch);
            let t = Instant::now();
            memmove_in_buffer(black_box(base), moved);
            within.push(t.elapsed().as_secs_f64());
            drop(arena);
        }
        let (pass, copy, within) = (
            best_and_median(pass),
            best_and_median(copy),
            best_and_median(within),
        );
        println!(
            "compact ({name}), {len}-byte blocks: {:.2} GB/s; memcpy {:.2} GB/s, ratio {:.2} (best), {:.2} (median); memmove in the buffer {:.2} GB/s, ratio {:.2} (best), {:.2} (median)",
            moved as f64 / pass.0 / 1e9,
            moved as f64 / copy.0 / 1e9,
            copy.0 / pass.0,
            copy.1 / pass.1,
            moved as f64 / within.0 / 1e9,
            within.0 / pass.0,
            within.1 / pass.1
        );
        println!(
            "RESULT compact {name} {len} {moved} {:.6e}/{:.6e} {:.6e}/{:.6e} {:.6e}/{:.6e}",
            pass.0, pass.1, copy.0, copy.1, within.0, within.1
        );
    }
}

fn main() {
    footprint_table();
    ratio_table();
    let mut c = Criterion::default().configure_from_args();
    get(&mut c);
    insert_remove(&mut c);
    compact(&mut c);
    c.final_summary();
}
