//! `random_actions` as interleaved rounds, for ratios that survive a busy machine: every round
//! replays the same seeded script once on each contender in turn. Each contender's time is the
//! fastest of its rounds (the run least disturbed by other processes), with the median beside it. Also prints what the reallocs did (in place or moved, bytes
//! copied), which explains most of the differences. Before each timed replay the same contender
//! replays once untimed, so no contender inherits a cache state left by another. Prints a table; no criterion.
//!
//! Run: `cargo bench --bench malloc_ratios` (`-- --rounds N` to change the number of rounds,
//! `-- --only NAME` to run only the contenders whose name contains NAME, e.g. under `perf`,
//! `-- --seed N` to replay another script than the published one, `-- --max N` to run only the
//! script with maximum size N).
//!
//! Besides the table, each contender gets one machine-readable line (for `benches/report.py`):
//! `RESULT random_actions <max size> <best ns/action> <median ns/action> <reallocs moved>
//! <reallocs> <bytes copied> <footprint bytes> <failed actions> <name>` (the name may hold spaces).

use std::hint::black_box;
use std::time::{Duration, Instant};

mod malloc_peers;
use malloc_peers::{
    best_fit, buddy, first_fit, next_fit, replay, replay_counting, segregated, worst_fit,
    LayoutHeap, LinkedList, Region, Rlsf, Script, Slots, Talc,
};

/// Bytes in the region every contender runs on (as in `benches/malloc.rs`).
const REGION: usize = 64 << 20;
/// Actions per replay.
const ACTIONS: usize = 20_000;
/// The script's seed (as in `benches/malloc.rs`).
const SEED: u64 = 0xF4EE_5BACE;
/// Largest allocation size of each script.
const MAX_SIZES: &[usize] = &[1000, 10_000];

/// One contender: a name and a function that times one replay on a fresh instance.
struct Entry {
    name: &'static str,
    run: fn(&mut Region, &Script, &mut Slots) -> Duration,
    count: fn(&mut Region, &Script, &mut Slots) -> malloc_peers::ReplayCounts,
    times: Vec<Duration>,
}

fn timed<C: LayoutHeap>(
    make: fn(&mut Region) -> C,
) -> impl Fn(&mut Region, &Script, &mut Slots) -> Duration {
    move |region, script, slots| {
        // An untimed replay first, so that the caches hold this contender's own layout of the
        // region and not the previous contender's.
        black_box(replay(&mut make(region), black_box(script), slots));
        let start = Instant::now();
        let mut heap = make(region);
        black_box(replay(&mut heap, black_box(script), slots));
        start.elapsed()
    }
}

macro_rules! entry {
    ($name:expr, $make:expr) => {
        Entry {
            name: $name,
            run: |r, s, sl| timed($make)(r, s, sl),
            count: |r, s, sl| replay_counting(&mut ($make)(r), s, sl),
            times: Vec::new(),
        }
    };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut rounds = 31;
    let mut only = String::new();
    let mut seed = SEED;
    let mut max_sizes = MAX_SIZES.to_vec();
    while let Some(a) = args.next() {
        if a == "--rounds" {
            rounds = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--rounds takes a number");
        } else if a == "--seed" {
            seed = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--seed takes a number");
        } else if a == "--max" {
            max_sizes = vec![args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--max takes a number")];
        } else if a == "--only" {
            only = args.next().expect("--only takes a name");
        }
    }
    let mut region = Region::new(REGION);
    for &max in &max_sizes {
        let script = Script::random_actions(seed, ACTIONS, max);
        let mut slots = Slots::for_script(&script);
        let mut entries = vec![
            entry!("SegregatedFit", segregated),
            entry!("talc", Talc::new),
            entry!("rlsf", Rlsf::new),
            entry!("linked_list_allocator", LinkedList::new),
            entry!("BuddyHeap", buddy),
            entry!("FirstFit (address order)", first_fit),
            entry!("NextFit (address order)", next_fit),
            entry!("BestFit (address order)", best_fit),
            entry!("WorstFit (address order)", worst_fit),
        ];
        if !only.is_empty() {
            // talc stays first among the rest: it is the yardstick.
            entries.retain(|e| e.name == "talc" || e.name.contains(only.as_str()));
        }
        let talc_at = entries
            .iter()
            .position(|e| e.name == "talc")
            .expect("talc is always run");
        for round in 0..rounds + 1 {
            for e in entries.iter_mut() {
                let t = (e.run)(&mut region, &script, &mut slots);
                if round > 0 {
                    e.times.push(t); // round 0 warms caches and is dropped
                }
            }
        }
        let median = |e: &Entry| {
            let mut t = e.times.clone();
            t.sort_unstable();
            t[t.len() / 2]
        };
        let best = |e: &Entry| *e.times.iter().min().expect("at least one round");
        let talc = best(&entries[talc_at]);
        let talc_median = median(&entries[talc_at]);
        println!("random_actions, max size {max}, seed {seed:#x}: {ACTIONS} actions per replay, {rounds} interleaved rounds");
        println!();
        println!(
            "| {:<26} | {:>11} | {:>10} | {:>13} | {:>12} | {:>14} | {:>9} | {:>12} | {:>6} |",
            "allocator",
            "best ns/act",
            "vs talc",
            "median ns/act",
            "median ratio",
            "realloc moved",
            "copied MB",
            "footprint MB",
            "failed"
        );
        println!(
            "| {:-<26} | {:->11} | {:->10} | {:->13} | {:->12} | {:->14} | {:->9} | {:->12} | {:->6} |",
            "", "", "", "", "", "", "", "", ""
        );
        let per_action = |d: Duration| d.as_nanos() as f64 / ACTIONS as f64;
        let mut results = Vec::new();
        for e in &entries {
            let (b, m) = (best(e), median(e));
            let n = (e.count)(&mut region, &script, &mut slots);
            println!(
                "| {:<26} | {:>11.1} | {:>9.2}x | {:>13.1} | {:>11.2}x | {:>5} of {:>5} | {:>9.1} | {:>12.1} | {:>6} |",
                e.name,
                per_action(b),
                talc.as_secs_f64() / b.as_secs_f64(),
                per_action(m),
                talc_median.as_secs_f64() / m.as_secs_f64(),
                n.realloc_moved,
                n.realloc_moved + n.realloc_in_place,
                n.bytes_copied as f64 / 1e6,
                n.footprint() as f64 / 1e6,
                n.failed
            );
            results.push(format!(
                "RESULT random_actions {max} {:.2} {:.2} {} {} {} {} {} {}",
                per_action(b),
                per_action(m),
                n.realloc_moved,
                n.realloc_moved + n.realloc_in_place,
                n.bytes_copied,
                n.footprint(),
                n.failed,
                e.name
            ));
        }
        println!();
        for line in results {
            println!("{line}");
        }
        println!();
    }
}
