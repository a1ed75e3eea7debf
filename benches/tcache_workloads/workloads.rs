//! The whole-program allocator workloads shared by the `tcache_*` bench binaries. Each binary sets
//! its own `#[global_allocator]` and calls [`main_with`]; every allocation below goes through it.
//!
//! Usage: `tcache_<allocator> [WORKLOAD] [--scale F]`. With no workload every one runs in this
//! process (a smoke run: peak RSS is then shared); `benches/tcache_compare.sh` runs one workload
//! per process so that each peak RSS is its own. Each run prints one line:
//! `RESULT <allocator> <workload> <ops per wall second> <peak RSS KiB> <ops per CPU second>`.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

/// The workloads, by name.
pub const WORKLOADS: [&str; 5] = ["pairs", "window", "window_2t", "prodcons", "appmix"];

use freespace_testkit::Rng;

/// The workloads' size distribution, drawn from [`Rng`].
trait Sizes {
    /// A size from 16 B to 16 KiB, log-uniform (as many 16-32 B requests as 8-16 KiB ones).
    fn size(&mut self) -> usize;
}

impl Sizes for Rng {
    fn size(&mut self) -> usize {
        let r = self.next();
        let shift = 4 + (r % 10) as u32; // 16 B .. 8 KiB base
        let base = 1usize << shift;
        base + ((r >> 8) as usize % base)
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads, exited ones included) used by this process so far.
/// On a loaded machine this is steadier than wall time, which counts time spent descheduled.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Immediate alloc/free pairs, sizes cycling through 16..512 B.
fn pairs(scale: f64) -> u64 {
    let n = (20_000_000.0 * scale) as u64;
    for i in 0..n {
        let l = layout(16 + (i as usize * 16) % 512);
        // SAFETY: a non-zero layout; the block is freed with the same layout.
        unsafe {
            let p = alloc(l);
            assert!(!p.is_null());
            black_box(p).write(i as u8);
            dealloc(p, l);
        }
    }
    n
}

/// A window of 100,000 live objects, 16 B..16 KiB, each step replacing a random one.
fn window_on_thread(seed: u64, steps: u64) -> u64 {
    const LIVE: usize = 100_000;
    let mut rng = Rng(seed);
    let mut slots: Vec<(*mut u8, usize)> = Vec::with_capacity(LIVE);
    for _ in 0..LIVE {
        let size = rng.size();
        // SAFETY: non-zero layout.
        let p = unsafe { alloc(layout(size)) };
        assert!(!p.is_null());
        // SAFETY: `p` holds `size >= 16` bytes.
        unsafe { p.write(1) };
        slots.push((p, size));
    }
    for _ in 0..steps {
        let i = (rng.next() % LIVE as u64) as usize;
        let (p, size) = slots[i];
        // SAFETY: `p` was allocated with this layout and is freed once.
        unsafe { dealloc(p, layout(size)) };
        let size = rng.size();
        // SAFETY: non-zero layout.
        let p = unsafe { alloc(layout(size)) };
        assert!(!p.is_null());
        // SAFETY: `p` holds `size >= 16` bytes.
        unsafe { p.write(1) };
        slots[i] = (p, size);
    }
    for (p, size) in slots {
        // SAFETY: as above.
        unsafe { dealloc(p, layout(size)) };
    }
    steps + LIVE as u64
}

fn window(scale: f64) -> u64 {
    window_on_thread(1, (5_000_000.0 * scale) as u64)
}

fn window_2t(scale: f64) -> u64 {
    let steps = (5_000_000.0 * scale) as u64 / 2;
    let hs: Vec<_> = (0..2)
        .map(|t| thread::spawn(move || window_on_thread(t + 1, steps)))
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

/// A producer allocates 16 B..1 KiB blocks and hands them, 256 at a time, to a consumer that frees
/// them: every free is a remote free.
fn prodcons(scale: f64) -> u64 {
    let n = (5_000_000.0 * scale) as u64;
    let (tx, rx) = mpsc::sync_channel::<Vec<(usize, usize)>>(64);
    let producer = thread::spawn(move || {
        let mut rng = Rng(7);
        let mut batch = Vec::with_capacity(256);
        for _ in 0..n {
            let size = 16 + (rng.next() % 1009) as usize;
            // SAFETY: non-zero layout.
            let p = unsafe { alloc(layout(size)) };
            assert!(!p.is_null());
            // SAFETY: `p` holds `size >= 16` bytes.
            unsafe { p.write(1) };
            batch.push((p as usize, size));
            if batch.len() == 256 {
                tx.send(std::mem::replace(&mut batch, Vec::with_capacity(256)))
                    .unwrap();
            }
        }
        tx.send(batch).unwrap();
    });
    let consumer = thread::spawn(move || {
        let mut freed = 0u64;
        for batch in rx {
            for (p, size) in batch {
                // SAFETY: the producer handed the block over with its layout.
                unsafe { dealloc(p as *mut u8, layout(size)) };
                freed += 1;
            }
        }
        freed
    });
    producer.join().unwrap();
    consumer.join().unwrap()
}

/// An application-like mix: strings, vectors, a B-tree and a hash map built and torn down.
fn appmix(scale: f64) -> u64 {
    let rounds = (40.0 * scale).max(1.0) as u64;
    let mut ops = 0;
    for r in 0..rounds {
        let mut words: HashMap<String, Vec<u32>> = HashMap::new();
        let mut index: BTreeMap<u64, String> = BTreeMap::new();
        for i in 0..50_000u64 {
            let key = format!("w{}", (i * 2_654_435_761) % 20_000);
            words.entry(key).or_default().push(i as u32);
            if i % 3 == 0 {
                index.insert(i ^ r, "x".repeat((i % 64) as usize));
            }
            if i % 5 == 0 {
                index.remove(&((i / 2) ^ r));
            }
            ops += 1;
        }
        let total: usize = words.values().map(Vec::len).sum::<usize>()
            + index.values().map(String::len).sum::<usize>();
        black_box(total);
    }
    ops
}

fn run_one(name: &str, allocator: &str, scale: f64) {
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let ops = match name {
        "pairs" => pairs(scale),
        "window" => window(scale),
        "window_2t" => window_2t(scale),
        "prodcons" => prodcons(scale),
        "appmix" => appmix(scale),
        other => panic!("unknown workload {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu_start).max(0.01);
    println!(
        "RESULT {allocator} {name} {:.0} {} {:.0}",
        ops as f64 / secs,
        peak_rss_kib(),
        ops as f64 / cpu
    );
}

/// Runs the workload named on the command line (or all of them) with this binary's allocator.
pub fn main_with(allocator: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut scale = 1.0;
    let mut chosen = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--scale" => {
                scale = args[i + 1].parse().expect("--scale takes a number");
                i += 1;
            }
            a if WORKLOADS.contains(&a) => chosen.push(a.to_string()),
            _ => {} // `cargo bench` passes --bench and filters; ignore them.
        }
        i += 1;
    }
    if chosen.is_empty() {
        // A quick smoke run of everything (what plain `cargo bench` does).
        let scale = if args.iter().any(|a| a == "--scale") {
            scale
        } else {
            0.05
        };
        for w in WORKLOADS {
            run_one(w, allocator, scale);
        }
    } else {
        for w in chosen {
            run_one(&w, allocator, scale);
        }
    }
}
