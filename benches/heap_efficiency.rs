//! Heap efficiency with talc's method: allocate, free and realloc at random until the first
//! allocation fails, then report the bytes live (as requested) over the region size, averaged
//! over many trials. Prints a table; nothing is timed.
//!
//! Run: `cargo bench --bench heap_efficiency` (`-- --trials N` for fewer or more trials).
//!
//! After the table comes one machine-readable line per contender (for `benches/report.py`):
//! `RESULT heap_efficiency <talc's method> <realloc up to 100 KB> <name>`, as fractions (the name
//! may hold spaces).

mod malloc_peers;
use malloc_peers::{
    best_fit, buddy, efficiency_trial, first_fit, first_fit_lifo, next_fit, segregated, worst_fit,
    LayoutHeap, LinkedList, Region, Rlsf, Rng, Talc,
};

/// Bytes in the region every contender runs on.
const REGION: usize = 64 << 20;
/// Largest allocation size (talc's value).
const MAX_SIZE: usize = 100_000;
/// talc's realloc sizes reach `MAX_SIZE * 1_000_000`, so nearly every realloc fails and leaves
/// the block alone; the second column uses realloc sizes up to `MAX_SIZE` instead.
const TALC_REALLOC_MAX: usize = MAX_SIZE * 1_000_000;
/// The seed of trial `i` is `SEED + i`, the same for every contender.
const SEED: u64 = 0x000E_FF1C_1E7C;

/// Mean efficiency over `trials` trials, each on a freshly built contender.
fn mean<C: LayoutHeap>(
    region: &mut Region,
    trials: usize,
    realloc_max: usize,
    make: &impl Fn(&mut Region) -> C,
) -> f64 {
    let len = region.len();
    let total: f64 = (0..trials)
        .map(|i| {
            let mut rng = Rng(SEED + i as u64);
            efficiency_trial(&mut make(region), len, &mut rng, MAX_SIZE, realloc_max)
        })
        .sum();
    total / trials as f64
}

/// Prints one row of the table and returns its machine-readable line.
fn row<C: LayoutHeap>(
    region: &mut Region,
    trials: usize,
    name: &str,
    make: impl Fn(&mut Region) -> C,
) -> String {
    let talc_way = mean(region, trials, TALC_REALLOC_MAX, &make);
    let small = mean(region, trials, MAX_SIZE, &make);
    println!(
        "| {name:<34} | {:>12.2}% | {:>18.2}% |",
        talc_way * 100.0,
        small * 100.0
    );
    format!("RESULT heap_efficiency {talc_way:.6} {small:.6} {name}")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut trials = 100;
    while let Some(a) = args.next() {
        if a == "--trials" {
            trials = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--trials takes a number");
        }
    }
    let mut region = Region::new(REGION);
    println!(
        "Heap efficiency: {} MiB region, sizes 1..{MAX_SIZE}, {trials} trials",
        REGION >> 20
    );
    println!();
    println!(
        "| {:<34} | {:>13} | {:>19} |",
        "allocator", "talc's method", "realloc <= 100 KB"
    );
    println!("| {:-<34} | {:->13} | {:->19} |", "", "", "");
    let results = [
        row(&mut region, trials, "SegregatedFit", segregated),
        row(&mut region, trials, "FirstFit (address order)", first_fit),
        row(&mut region, trials, "FirstFit (LIFO)", first_fit_lifo),
        row(&mut region, trials, "NextFit (address order)", next_fit),
        row(&mut region, trials, "BestFit (address order)", best_fit),
        row(&mut region, trials, "WorstFit (address order)", worst_fit),
        row(&mut region, trials, "talc", Talc::new),
        row(&mut region, trials, "rlsf", Rlsf::new),
        row(
            &mut region,
            trials,
            "linked_list_allocator",
            LinkedList::new,
        ),
        row(&mut region, trials, "BuddyHeap", buddy),
    ];
    println!();
    for line in results {
        println!("{line}");
    }
}
