//! `random_actions`: every contender replays the same seeded script of allocations, frees and
//! reallocs (talc's benchmark shape: about 300 live blocks, random sizes and alignments) on a
//! fixed region of the same size. Criterion reports actions per second; compare contenders as
//! ratios within one run.
//!
//! Run: `cargo bench --bench malloc -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod malloc_peers;
use malloc_peers::{
    best_fit, buddy, first_fit, next_fit, replay, segregated, worst_fit, LayoutHeap, LinkedList,
    Region, Rlsf, Script, Slots, Talc,
};

/// Bytes in the region every contender runs on.
const REGION: usize = 64 << 20;
/// Actions per replay (one criterion iteration).
const ACTIONS: usize = 20_000;
/// The script's seed, the same for every contender.
const SEED: u64 = 0xF4EE_5BACE;
/// Largest allocation size of each script (talc's benchmark sweeps 1000 to 100000).
const MAX_SIZES: &[usize] = &[1000, 10_000];

fn bench_one<C: LayoutHeap>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    region: &mut Region,
    script: &Script,
    make: impl Fn(&mut Region) -> C,
) {
    let mut slots = Slots::for_script(script);
    // One untimed replay: the script must run without failures, or the contenders would not be
    // doing the same work.
    let failed = replay(&mut make(region), script, &mut slots);
    if failed != 0 {
        eprintln!("warning: {name}: {failed} actions failed or were skipped (out of memory)");
    }
    c.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| {
            let mut heap = make(region);
            black_box(replay(&mut heap, black_box(script), &mut slots))
        })
    });
}

fn random_actions(c: &mut Criterion) {
    let mut region = Region::new(REGION);
    for &max in MAX_SIZES {
        let script = Script::random_actions(SEED, ACTIONS, max);
        let mut g = c.benchmark_group(format!("random_actions/max_{max}"));
        g.throughput(Throughput::Elements(ACTIONS as u64));
        bench_one(&mut g, "SegregatedFit", &mut region, &script, segregated);
        bench_one(&mut g, "talc", &mut region, &script, Talc::new);
        bench_one(&mut g, "rlsf", &mut region, &script, Rlsf::new);
        bench_one(
            &mut g,
            "linked_list_allocator",
            &mut region,
            &script,
            LinkedList::new,
        );
        bench_one(
            &mut g,
            "FirstFit (address order)",
            &mut region,
            &script,
            first_fit,
        );
        bench_one(
            &mut g,
            "NextFit (address order)",
            &mut region,
            &script,
            next_fit,
        );
        bench_one(
            &mut g,
            "BestFit (address order)",
            &mut region,
            &script,
            best_fit,
        );
        bench_one(
            &mut g,
            "WorstFit (address order)",
            &mut region,
            &script,
            worst_fit,
        );
        bench_one(&mut g, "BuddyHeap", &mut region, &script, buddy);
        g.finish();
    }
}

criterion_group!(benches, random_actions);
criterion_main!(benches);
