//! Randomized differential test: the arena against a simple model (a list of live handles with
//! the exact value or bytes each must hold). Every step is a random insert, alloc, free,
//! remove, resize, pin, unpin, full compaction or budgeted incremental step, under a random
//! policy and capacity limit, with both shipped compactors; after every step every live value
//! is read back and compared, pinned blocks must still be at their pinned address, removed
//! handles must be refused, and the arena's own invariant walk must pass.

use std::ptr::NonNull;
use std::time::Duration;

use freespace_handles::{
    Arena, ArenaConfig, ArenaError, Budget, Compactor, GrowthPolicy, Handle, Sliding, TwoFinger,
    PAGE,
};

/// How many times a test repeats its logic: `native` normally, `miri` under Miri, which
/// interprets every instruction. Only repetitions shrink, never what a repetition checks.
const fn runs(native: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

// The shared seeded generator, so a failing seed can be replayed.
use freespace_testkit::Rng;

#[derive(Clone)]
enum Kind {
    Bytes(Handle<[u8]>, Vec<u8>, usize),
    Words(Handle<[u64; 5]>, [u64; 5]),
    Text(Handle<String>, String),
    Unit(Handle<()>),
}

#[derive(Clone)]
struct Entry {
    kind: Kind,
    pins: u32,
    addr: Option<NonNull<u8>>,
}

impl Entry {
    fn raw(&self) -> freespace_handles::RawHandle {
        match &self.kind {
            Kind::Bytes(h, ..) => h.raw(),
            Kind::Words(h, _) => h.raw(),
            Kind::Text(h, _) => h.raw(),
            Kind::Unit(h) => h.raw(),
        }
    }
}

fn verify<C: Compactor>(arena: &Arena<C>, live: &[Entry], dead: &[Kind], step: usize) {
    arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
    let stats = arena.stats();
    assert_eq!(stats.live_blocks, live.len(), "step {step}");
    assert_eq!(stats.live_bytes + stats.hole_bytes, stats.used_span);
    assert!(stats.used_span <= stats.footprint);
    let pinned = live.iter().filter(|e| e.pins > 0).count();
    assert_eq!(stats.pinned_blocks, pinned, "step {step}");
    for e in live {
        match &e.kind {
            Kind::Bytes(h, bytes, align) => {
                assert_eq!(
                    arena.bytes(*h),
                    Some(&bytes[..]),
                    "step {step}: bytes differ"
                );
                let addr = arena.address_of(*h).unwrap().as_ptr() as usize;
                assert_eq!(addr % align, 0, "step {step}: misaligned block");
            }
            Kind::Words(h, w) => assert_eq!(arena.get(*h), Some(w), "step {step}"),
            Kind::Text(h, t) => assert_eq!(arena.get(*h), Some(t), "step {step}"),
            Kind::Unit(h) => assert_eq!(arena.get(*h), Some(&()), "step {step}"),
        }
        assert_eq!(arena.pin_count(e.raw()), Some(e.pins));
        if e.pins > 0 {
            assert_eq!(
                arena.address_of(e.raw()),
                e.addr,
                "step {step}: a pinned block moved"
            );
        }
    }
    for k in dead.iter().rev().take(16) {
        let refused = match k {
            Kind::Bytes(h, ..) => arena.bytes(*h).is_none(),
            Kind::Words(h, _) => arena.get(*h).is_none(),
            Kind::Text(h, _) => arena.get(*h).is_none(),
            Kind::Unit(h) => arena.get(*h).is_none(),
        };
        assert!(refused, "step {step}: a removed handle was accepted");
    }
}

fn random_budget(rng: &mut Rng) -> Budget {
    match rng.below(4) {
        0 => Budget::Bytes(1 + rng.below(3000) as usize),
        1 => Budget::Moves(1 + rng.below(8) as usize),
        2 => Budget::Time(Duration::from_micros(rng.below(30))),
        _ => Budget::Unlimited,
    }
}

fn run<C: Compactor>(seed: u64, make: impl Fn() -> C, sliding: bool) {
    let mut rng = Rng(seed);
    let policy = match rng.below(3) {
        0 => GrowthPolicy::CompactThenGrow,
        1 => GrowthPolicy::Defrag {
            threshold: 0.1 + rng.below(5) as f64 / 10.0,
            step: random_budget(&mut rng),
        },
        _ => GrowthPolicy::Manual,
    };
    let mut config = ArenaConfig::new().policy(policy);
    if rng.chance(30) {
        config = config.max_capacity((2 + rng.below(6) as usize) * PAGE);
    }
    if rng.chance(30) {
        config = config.initial_capacity(rng.below(3) as usize * PAGE);
    }
    let mut arena = Arena::with_config(config, make());
    let mut live: Vec<Entry> = Vec::new();
    let mut dead: Vec<Kind> = Vec::new();
    let mut counter = 0u64;

    for step in 0..runs(600, 40) {
        counter += 1;
        let op = rng.below(100);
        match op {
            // Insert a value.
            0..=24 => {
                let kind = match rng.below(3) {
                    0 => {
                        let w = [counter, seed, step as u64, !counter, counter * 3];
                        arena.try_insert(w).map(|h| Kind::Words(h, w))
                    }
                    1 => {
                        let t = format!("{counter}-{}", "x".repeat(rng.below(40) as usize));
                        arena.try_insert(t.clone()).map(|h| Kind::Text(h, t))
                    }
                    _ => arena.try_insert(()).map(Kind::Unit),
                };
                match kind {
                    Ok(kind) => live.push(Entry {
                        kind,
                        pins: 0,
                        addr: None,
                    }),
                    Err(e) => assert!(
                        matches!(e, ArenaError::OutOfMemory | ArenaError::BufferPinned),
                        "{e}"
                    ),
                }
            }
            // Allocate a byte block and fill it.
            25..=44 => {
                let len = if rng.chance(10) {
                    0
                } else {
                    1 + rng.below(700) as usize
                };
                let align = [8, 8, 16, 64][rng.below(4) as usize];
                match arena.try_alloc_bytes(len, align) {
                    Ok(h) => {
                        let fill: Vec<u8> =
                            (0..len).map(|i| (counter as usize + i) as u8).collect();
                        assert!(arena.bytes(h).unwrap().iter().all(|&b| b == 0), "zeroed");
                        arena.bytes_mut(h).unwrap().copy_from_slice(&fill);
                        live.push(Entry {
                            kind: Kind::Bytes(h, fill, align),
                            pins: 0,
                            addr: None,
                        });
                    }
                    Err(e) => assert!(
                        matches!(e, ArenaError::OutOfMemory | ArenaError::BufferPinned),
                        "{e}"
                    ),
                }
            }
            // Remove or free something.
            45..=64 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let e = live[i].clone();
                let result = match &e.kind {
                    Kind::Bytes(h, ..) => arena.free_bytes(*h),
                    Kind::Words(h, w) => arena.try_remove(*h).map(|v| assert_eq!(&v, w)),
                    Kind::Text(h, t) => arena.try_remove(*h).map(|v| assert_eq!(&v, t)),
                    Kind::Unit(h) => arena.try_remove(*h),
                };
                if e.pins > 0 {
                    assert_eq!(result, Err(ArenaError::Pinned));
                } else {
                    result.unwrap();
                    dead.push(live.swap_remove(i).kind);
                }
            }
            // Resize a byte block.
            65..=74 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let pins = live[i].pins;
                if let Kind::Bytes(h, bytes, _) = &mut live[i].kind {
                    let new_len = rng.below(900) as usize;
                    match arena.resize(*h, new_len) {
                        Ok(()) => bytes.resize(new_len, 0),
                        Err(ArenaError::Pinned) => assert!(pins > 0),
                        Err(e) => assert!(
                            matches!(e, ArenaError::OutOfMemory | ArenaError::BufferPinned),
                            "{e}"
                        ),
                    }
                    if pins > 0 {
                        // A pinned block may change in place only: its address stays.
                        assert_eq!(arena.address_of(*h), live[i].addr);
                    }
                }
            }
            // Pin.
            75..=79 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let addr = arena.pin(live[i].raw()).unwrap();
                if live[i].pins > 0 {
                    assert_eq!(Some(addr), live[i].addr);
                }
                live[i].pins += 1;
                live[i].addr = Some(addr);
            }
            // Unpin.
            80..=86 => {
                if let Some(e) = live.iter_mut().find(|e| e.pins > 0) {
                    arena.unpin(e.raw()).unwrap();
                    e.pins -= 1;
                }
            }
            // Full compaction.
            87..=91 => {
                let before = arena.stats();
                let r = arena.compact();
                assert!(r.finished);
                let after = arena.stats();
                assert_eq!(
                    r.bytes_moved as u64,
                    after.total_bytes_moved - before.total_bytes_moved
                );
                // A move can split the hole it lands in and leave one where it was.
                assert!(r.holes_after <= r.holes_before + 2 * r.blocks_moved);
                if sliding && after.pinned_blocks == 0 {
                    // Only alignment padding can remain, each piece smaller than the largest
                    // alignment in use (64).
                    assert!(arena.holes().all(|(_, len)| len < 64), "step {step}");
                    let min = arena.config().initial_capacity;
                    let fit = after.used_span.next_multiple_of(PAGE).max(min);
                    assert!(after.footprint <= fit, "step {step}: buffer did not shrink");
                }
            }
            // One incremental step with a random budget.
            _ => {
                let budget = random_budget(&mut rng);
                let r = arena.compact_with(budget);
                if let Budget::Moves(m) = budget {
                    assert!(r.blocks_moved <= m.max(1));
                }
            }
        }
        verify(&arena, &live, &dead, step);
    }
    // Unpin everything, compact, and check the final footprint.
    for e in &mut live {
        while e.pins > 0 {
            arena.unpin(e.raw()).unwrap();
            e.pins -= 1;
        }
    }
    arena.compact();
    verify(&arena, &live, &dead, usize::MAX);
}

#[test]
fn sliding_matches_the_model() {
    for seed in 0..runs(48, 1) as u64 {
        run(seed, Sliding::new, true);
    }
}

#[test]
fn two_finger_matches_the_model() {
    for seed in 1000..1000 + runs(48, 1) as u64 {
        run(seed, TwoFinger::new, false);
    }
}

/// The footprint target: after a full compaction with nothing pinned, blocks of one alignment
/// leave no holes and the buffer holds at most the live bytes plus one page (the table is
/// counted separately).
#[test]
fn full_compaction_meets_the_footprint_target() {
    let mut rng = Rng(7);
    let mut arena = Arena::new();
    let mut hs = Vec::new();
    for _ in 0..runs(5000, 200) {
        hs.push(arena.alloc_bytes(8 * (1 + rng.below(64) as usize), 8));
    }
    for h in hs.iter().filter(|_| rng.chance(60)) {
        arena.free_bytes(*h).unwrap();
    }
    let before = arena.stats();
    assert!(before.holes > runs(100, 20));
    arena.compact();
    let s = arena.stats();
    assert_eq!(s.holes, 0);
    assert!(s.footprint <= s.live_bytes + PAGE, "{s:?}");
    assert!(s.footprint < before.footprint);
}
