//! Loom models of the `SharedArena` protocol: readers, writers, removal and incremental
//! compaction steps racing. Each model checks every outcome loom can produce: readers see the
//! exact value or (only for a removed handle) nothing, the arena's invariants hold afterwards,
//! and a completed pass leaves no holes.

use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Budget, SharedArena};

/// An arena holding `[a, hole, b, c]`: removing the second value leaves a hole that compaction
/// closes by moving `b` and `c`.
fn fragmented() -> (SharedArena, [crate::Handle<[u64; 4]>; 3]) {
    let arena = SharedArena::new();
    let a = arena.insert([1u64; 4]);
    let gap = arena.insert([0u64; 4]);
    let b = arena.insert([2u64; 4]);
    let c = arena.insert([3u64; 4]);
    arena.remove(gap).unwrap();
    (arena, [a, b, c])
}

/// Runs `f` under loom and checks that loom explored more than `min` interleavings, so a
/// model that silently stopped racing would fail instead of passing trivially.
fn model(min: usize, f: impl Fn() + Sync + Send + 'static) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    RUNS.store(0, Ordering::Relaxed);
    loom::model(move || {
        RUNS.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let runs = RUNS.load(Ordering::Relaxed);
    println!("explored {runs} interleavings");
    assert!(runs > min, "only {runs} interleavings explored");
}

#[test]
fn reader_remover_and_compaction_steps() {
    model(20, || {
        let (arena, [a, b, c]) = fragmented();
        let arena = Arc::new(arena);

        let reader = {
            let arena = Arc::clone(&arena);
            thread::spawn(move || {
                // b is never removed: it must always read back exactly, wherever it lives.
                assert_eq!(arena.with(b, |v| *v), Some([2; 4]));
                // c may be removed concurrently: exact value or nothing, never garbage.
                let seen = arena.with(c, |v| *v);
                assert!(seen.is_none() || seen == Some([3; 4]), "{seen:?}");
            })
        };
        let remover = {
            let arena = Arc::clone(&arena);
            thread::spawn(move || {
                assert_eq!(arena.remove(c), Some([3; 4]));
            })
        };
        let report = arena
            .compact_incremental(Budget::Moves(1))
            .expect("only driver");
        assert!(report.finished);
        reader.join().unwrap();
        remover.join().unwrap();

        let guard = arena.read();
        guard.check().unwrap();
        assert_eq!(guard.get(a), Some(&[1; 4]));
        assert_eq!(guard.get(b), Some(&[2; 4]));
        assert_eq!(guard.get(c), None);
        assert_eq!(guard.len(), 2);
        drop(guard);
        arena.compact();
        assert_eq!(arena.stats().holes, 0);
    });
}

#[test]
fn two_drivers_and_a_writer() {
    model(20, || {
        let (arena, [a, b, c]) = fragmented();
        let arena = Arc::new(arena);

        let second_driver = {
            let arena = Arc::clone(&arena);
            thread::spawn(move || arena.compact_incremental(Budget::Moves(1)))
        };
        let writer = {
            let arena = Arc::clone(&arena);
            thread::spawn(move || arena.insert([4u64; 4]))
        };
        let first = arena.compact_incremental(Budget::Moves(1));
        let second = second_driver.join().unwrap();
        let d = writer.join().unwrap();

        // At least one driver ran; a refused driver saw the other one mid-pass.
        assert!(first.is_some() || second.is_some());
        for report in [first, second].into_iter().flatten() {
            assert!(report.finished);
        }
        let guard = arena.read();
        guard.check().unwrap();
        for (h, v) in [(a, 1), (b, 2), (c, 3), (d, 4)] {
            assert_eq!(guard.get(h), Some(&[v; 4]));
        }
        // Whatever the interleaving, the one hole was either filled by the writer or closed
        // by the pass, which finished after the last move it saw.
        let s = guard.stats();
        assert_eq!(s.live_bytes + s.hole_bytes, s.used_span);
        assert_eq!(s.holes, 0, "{s:?}");
    });
}
