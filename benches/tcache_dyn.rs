//! Each allocator called through `&dyn GlobalAlloc` in one process (the global allocator here is
//! the system's): alloc/free pairs at three sizes, and a burst of 100 allocations freed in
//! reverse. Read the results as ratios between allocators measured in the same run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

fn peers() -> Vec<(&'static str, &'static dyn GlobalAlloc)> {
    static FREESPACE: freespace_tcache::ThreadCached = freespace_tcache::ThreadCached::new();
    static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
    static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
    vec![
        ("freespace", &FREESPACE),
        ("system", &System),
        ("mimalloc", &MIMALLOC),
        ("jemalloc", &JEMALLOC),
    ]
}

fn pairs(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcache_dyn_pairs");
    group.throughput(Throughput::Elements(1));
    for size in [16usize, 256, 4096] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        for (name, a) in peers() {
            group.bench_with_input(BenchmarkId::new(name, size), &layout, |b, &layout| {
                b.iter(|| {
                    // SAFETY: a non-zero layout; the block is freed with it at once.
                    unsafe {
                        let p = a.alloc(layout);
                        black_box(p);
                        a.dealloc(p, layout);
                    }
                })
            });
        }
    }
    group.finish();
}

fn bursts(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcache_dyn_burst100");
    group.throughput(Throughput::Elements(100));
    let layout = Layout::from_size_align(64, 8).unwrap();
    for (name, a) in peers() {
        group.bench_function(name, |b| {
            let mut ptrs = [std::ptr::null_mut::<u8>(); 100];
            b.iter(|| {
                for p in ptrs.iter_mut() {
                    // SAFETY: a non-zero layout.
                    *p = unsafe { a.alloc(layout) };
                }
                for &p in ptrs.iter().rev() {
                    // SAFETY: each block was allocated above with `layout`.
                    unsafe { a.dealloc(black_box(p), layout) };
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pairs, bursts);
criterion_main!(benches);
