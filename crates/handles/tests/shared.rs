//! SharedArena under real threads: readers check every value they resolve while a writer
//! inserts and removes and a driver compacts in small steps. The loom models in
//! `src/tests/loom_shared.rs` check the protocol exhaustively on tiny cases; this checks it at
//! scale.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use freespace_handles::{Budget, Handle, SharedArena};

/// How many times a test repeats its logic: `native` normally, `miri` under Miri, which
/// interprets every instruction. Only repetitions shrink, never what a repetition checks.
const fn runs(native: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

/// Between two rounds of a spinning thread: under Miri, which runs one thread at a time, let
/// the others run, so that the spinning does not dominate the run; natively, nothing.
fn spin_pause() {
    if cfg!(miri) {
        thread::yield_now();
    }
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn shared_arena_is_send_and_sync() {
    assert_send_sync::<SharedArena>();
}

#[test]
fn readers_writer_and_compaction_race_without_losing_a_value() {
    let arena = Arc::new(SharedArena::new());
    // Values that are never removed: readers must always see them exactly.
    let stable: Vec<(Handle<[u64; 8]>, u64)> = (0..runs(500, 8) as u64)
        .map(|i| (arena.insert([i; 8]), i))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Full passes over `stable` by the readers, and compaction passes by the main thread: the
    // writer goes on until both have happened while it ran, so the three really overlap.
    let reader_passes = Arc::new(AtomicU64::new(0));
    let compactions = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (arena, stable, stop) = (Arc::clone(&arena), stable.clone(), Arc::clone(&stop));
            let reader_passes = Arc::clone(&reader_passes);
            thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let guard = arena.read();
                    for (h, v) in &stable {
                        assert_eq!(guard.get(*h), Some(&[*v; 8]));
                        reads += 1;
                    }
                    reader_passes.fetch_add(1, Ordering::Relaxed);
                    drop(guard);
                    spin_pause();
                }
                reads
            })
        })
        .collect();

    let writer = {
        let arena = Arc::clone(&arena);
        let (reader_passes, compactions) = (Arc::clone(&reader_passes), Arc::clone(&compactions));
        thread::spawn(move || {
            let mut churn: Vec<(Handle<String>, String)> = Vec::new();
            let mut n = 0u64;
            while n < runs(20_000, 30) as u64
                || reader_passes.load(Ordering::Relaxed) < 2
                || compactions.load(Ordering::Relaxed) == 0
            {
                let s = format!("value {n}");
                churn.push((arena.insert(s.clone()), s));
                if n % 3 == 0 {
                    let (h, s) = churn.swap_remove((n as usize * 7) % churn.len());
                    assert_eq!(arena.remove(h), Some(s));
                }
                n += 1;
            }
            churn
        })
    };

    let mut passes = 0;
    while !writer.is_finished() {
        if arena.compact_incremental(Budget::Moves(16)).is_some() {
            passes += 1;
            compactions.fetch_add(1, Ordering::Relaxed);
        }
        spin_pause();
    }
    let churn = writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(passes > 0);

    let report = arena.compact();
    assert!(report.finished);
    let guard = arena.read();
    guard.check().unwrap();
    assert_eq!(guard.stats().holes, 0);
    assert_eq!(guard.len(), stable.len() + churn.len());
    for (h, v) in &stable {
        assert_eq!(guard.get(*h), Some(&[*v; 8]));
    }
    for (h, s) in &churn {
        assert_eq!(guard.get(*h), Some(s));
    }
}
