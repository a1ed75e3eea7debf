//! Unit tests of the arena's promises: stale handles refused, drop exactly once, pins that hold
//! their address, the buffer shrinking, generation wrap retiring a slot, the policies, and a
//! custom compactor that cannot corrupt the arena.

use std::cell::Cell;
use std::rc::Rc;

use super::runs;
use freespace_testkit::Rng;

use crate::{
    Arena, ArenaConfig, ArenaError, Budget, Compactor, GrowthPolicy, MoveError, Progress,
    Relocator, Sliding, TwoFinger, MAX_ALIGN, PAGE,
};

/// Counts drops through a shared counter.
struct Counted(Rc<Cell<usize>>, #[allow(dead_code)] [u8; 24]);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn stale_handles_are_refused_even_after_slot_reuse() {
    let mut a = Arena::new();
    let h = a.insert(10u32);
    assert_eq!(a.remove(h), Some(10));
    assert_eq!(a.get(h), None);
    assert_eq!(a.get_mut(h), None);
    assert_eq!(a.remove(h), None);
    assert_eq!(a.try_remove(h), Err(ArenaError::Stale));
    let h2 = a.insert(20u32);
    assert_eq!(h2.index(), h.index(), "the slot is reused");
    assert_ne!(h2.generation(), h.generation());
    assert_eq!(a.get(h), None, "the old handle does not see the new value");
    assert_eq!(a.get(h2), Some(&20));
    assert!(!a.contains(h) && a.contains(h2));
    assert_eq!(a.pin(h), Err(ArenaError::Stale));
    a.check().unwrap();
}

/// Beyond 4096 live arenas, two arenas share an id. The type tag in a handle's key still keeps
/// it from reading bytes as another type: at worst it finds a value of its own type.
#[test]
fn handles_from_an_arena_with_the_same_id_never_reinterpret_bytes() {
    let mut a = Arena::new();
    let mut b = Arena::new();
    b.share_id_with(&a);
    let ha = a.insert(0xdead_beef_u32);
    let hb = b.insert(String::from("not a u32"));
    // Same index and counter, different type: the type tag in the key tells them apart.
    assert_eq!(ha.index(), hb.index());
    assert_ne!(ha.generation(), hb.generation());
    assert_eq!(b.get(ha), None);
    assert_eq!(a.get(hb), None);
    // Same index, counter and type: this is the case the shared id cannot tell apart.
    let ha = a.insert(8u32);
    let hb = b.insert(7u32);
    assert_eq!((ha.index(), ha.generation()), (hb.index(), hb.generation()));
    assert_eq!(b.get(ha), Some(&7));
}

/// A handle names a block of the arena that made it, and every other arena refuses it, even
/// an arena of the same types where the same slot holds a value of the same type.
#[test]
fn handles_from_another_arena_are_refused() {
    let mut a = Arena::new();
    let mut b = Arena::new();
    let ha = a.insert(1u32);
    let hb = b.insert(2u32);
    let ba = a.alloc_bytes(4, 1);
    let bb = b.alloc_bytes(4, 1);
    assert_eq!(b.get(ha), None);
    assert_eq!(a.get(hb), None);
    assert_eq!(b.get_mut(ha), None);
    assert!(!b.contains(ha) && b.address_of(ha).is_none() && b.pin_count(ha).is_none());
    assert_eq!(b.pin(ha), Err(ArenaError::Stale));
    assert_eq!(b.unpin(ha), Err(ArenaError::Stale));
    assert_eq!(b.try_remove(ha), Err(ArenaError::Stale));
    assert_eq!(a.bytes(bb), None);
    assert_eq!(a.bytes_mut(bb), None);
    assert_eq!(a.resize(bb, 8), Err(ArenaError::Stale));
    assert_eq!(a.free_bytes(bb), Err(ArenaError::Stale));
    // Nothing changed: each arena still serves its own handles.
    assert_eq!((a.get(ha), b.get(hb)), (Some(&1), Some(&2)));
    assert_eq!(
        (a.bytes(ba), b.bytes(bb)),
        (Some(&[0u8; 4][..]), Some(&[0u8; 4][..]))
    );
    a.check().unwrap();
    b.check().unwrap();

    // A handle that outlives its arena is refused by the arenas made after it.
    let orphan = Arena::new().insert(3u32);
    let mut c = Arena::new();
    c.insert(4u32);
    assert_eq!(c.get(orphan), None);

    // Many arenas at once: each one accepts its own handle and refuses every other.
    let mut many: Vec<Arena> = (0..runs(64, 8)).map(|_| Arena::new()).collect();
    let hs: Vec<_> = many.iter_mut().map(|x| x.insert(7u32)).collect();
    for (i, x) in many.iter().enumerate() {
        for (j, h) in hs.iter().enumerate() {
            assert_eq!(
                x.get(*h).is_some(),
                i == j,
                "arena {i}, handle of arena {j}"
            );
        }
    }
}

#[test]
fn drop_runs_exactly_once_on_remove_clear_and_arena_drop() {
    let drops = Rc::new(Cell::new(0));
    let mut a = Arena::new();
    let hs: Vec<_> = (0..30)
        .map(|_| a.insert(Counted(drops.clone(), [0; 24])))
        .collect();
    let taken = a.remove(hs[0]).unwrap();
    assert_eq!(
        drops.get(),
        0,
        "remove hands the value back without dropping it"
    );
    drop(taken);
    assert_eq!(drops.get(), 1);
    for h in &hs[1..10] {
        a.remove(*h);
    }
    assert_eq!(drops.get(), 10);
    a.compact();
    assert_eq!(drops.get(), 10, "moving a value does not drop it");
    let pinned = hs[10];
    a.pin(pinned).unwrap();
    a.clear();
    assert_eq!(drops.get(), 29, "clear drops every unpinned value");
    assert_eq!(a.len(), 1);
    a.unpin(pinned).unwrap();
    for _ in 0..5 {
        a.insert(Counted(drops.clone(), [0; 24]));
    }
    drop(a);
    assert_eq!(
        drops.get(),
        35,
        "the arena's drop drops the rest, once each"
    );
}

#[test]
fn zero_sized_values_work_and_drop() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    struct Drops;
    impl Drops {
        fn get(&self) -> usize {
            DROPS.load(Ordering::Relaxed)
        }
    }
    let drops = Drops;
    #[derive(Debug, PartialEq)]
    struct Unit;
    let mut a = Arena::new();
    let u = a.insert(Unit);
    let z = a.insert(Zst);
    assert_eq!(a.get(u), Some(&Unit));
    assert_eq!(
        a.stats().footprint,
        0,
        "zero-sized values take no buffer space"
    );
    let p = a.pin(u).unwrap();
    a.compact();
    assert_eq!(a.address_of(u), Some(p));
    a.remove(z);
    assert_eq!(drops.get(), 1);
    a.insert(Zst);
    drop(a);
    assert_eq!(drops.get(), 2);
}

#[test]
fn large_alignments_work_and_too_large_is_refused() {
    #[repr(align(4096))]
    #[derive(Debug, PartialEq)]
    struct Page([u8; 64]);
    #[repr(align(8192))]
    struct TooBig(#[allow(dead_code)] u8);
    let mut a = Arena::new();
    let x = a.insert(1u8);
    let p = a.insert(Page([3; 64]));
    let addr = a.address_of(p).unwrap().as_ptr() as usize;
    assert_eq!(addr % 4096, 0);
    a.remove(x);
    a.compact();
    assert_eq!(a.address_of(p).unwrap().as_ptr() as usize % 4096, 0);
    assert_eq!(a.get(p), Some(&Page([3; 64])));
    assert_eq!(
        a.try_insert(TooBig(1)).err(),
        Some(ArenaError::BadAlignment(8192))
    );
    assert_eq!(
        a.try_alloc_bytes(8, 3).err(),
        Some(ArenaError::BadAlignment(3))
    );
    assert_eq!(
        a.try_alloc_bytes(8, MAX_ALIGN * 2).err(),
        Some(ArenaError::BadAlignment(MAX_ALIGN * 2))
    );
    let b = a.alloc_bytes(10, MAX_ALIGN);
    assert_eq!(a.address_of(b).unwrap().as_ptr() as usize % MAX_ALIGN, 0);
    a.check().unwrap();
}

fn fragment(a: &mut Arena<impl Compactor>, n: usize, len: usize) -> Vec<crate::Handle<[u8]>> {
    let mut hs = Vec::new();
    for i in 0..n {
        let h = a.alloc_bytes(len, 8);
        a.bytes_mut(h).unwrap().fill(i as u8);
        hs.push(h);
    }
    let mut kept = Vec::new();
    for (i, h) in hs.into_iter().enumerate() {
        if i % 2 == 0 {
            a.free_bytes(h).unwrap();
        } else {
            kept.push(h);
        }
    }
    kept
}

/// Fills a two-page zone with blocks, then frees every other one, so that no hole holds a
/// page. Returns the kept blocks; block `i` is filled with `2 * i + 1`.
fn fragment_zone(a: &mut Arena<impl Compactor>) -> Vec<crate::Handle<[u8]>> {
    let (n, len) = (runs(64, 32), runs(128, 256));
    assert_eq!(n * len, 2 * PAGE);
    fragment(a, n, len)
}

#[test]
fn pinned_blocks_keep_their_address_through_compaction() {
    for two_finger in [false, true] {
        let cfg = ArenaConfig::new().policy(GrowthPolicy::Manual);
        let mut a: Arena<Box<dyn Compactor>> = if two_finger {
            Arena::with_config(cfg, Box::new(TwoFinger::new()))
        } else {
            Arena::with_config(cfg, Box::new(Sliding::new()))
        };
        let kept = fragment(&mut a, runs(64, 24), 100);
        let pinned = kept[10];
        let addr = a.pin(pinned).unwrap();
        let report = a.compact();
        assert!(report.blocks_moved > 0);
        assert_eq!(a.address_of(pinned), Some(addr), "two_finger={two_finger}");
        assert_eq!(a.pin_count(pinned), Some(1));
        for (i, h) in kept.iter().enumerate() {
            let expect = (2 * i + 1) as u8;
            assert!(a.bytes(*h).unwrap().iter().all(|&b| b == expect));
        }
        a.check().unwrap();
        assert_eq!(a.try_remove_bytes_like(pinned), Err(ArenaError::Pinned));
        a.unpin(pinned).unwrap();
        assert_eq!(a.unpin(pinned), Err(ArenaError::NotPinned));
        let after = a.compact();
        if !two_finger {
            assert_eq!(after.holes_after, 0, "unpinned, sliding removes every hole");
        }
    }
}

impl<C: Compactor> Arena<C> {
    fn try_remove_bytes_like(&mut self, h: crate::Handle<[u8]>) -> Result<(), ArenaError> {
        self.free_bytes(h)
    }
}

impl Compactor for Box<dyn Compactor> {
    fn begin(&mut self) {
        (**self).begin()
    }
    fn step(&mut self, heap: &mut Relocator<'_>) -> Progress {
        (**self).step(heap)
    }
}

#[test]
fn sliding_leaves_no_holes_and_the_buffer_shrinks() {
    let mut a = Arena::new();
    a.set_policy(GrowthPolicy::Manual);
    let n = runs(400, 40);
    let kept = fragment(&mut a, n, 200);
    let before = a.stats();
    assert!(before.holes > n / 4);
    let report = a.compact();
    let after = a.stats();
    assert_eq!(after.holes, 0);
    assert_eq!(report.holes_after, 0);
    assert!(
        report.footprint_after < report.footprint_before,
        "{report:?}"
    );
    assert_eq!(after.footprint, report.footprint_after);
    assert!(after.footprint <= after.live_bytes + PAGE);
    assert_eq!(after.live_bytes, n / 2 * 200);
    assert_eq!(
        report.blocks_moved,
        n / 2,
        "every kept block slides down exactly once"
    );
    assert_eq!(report.bytes_moved, n / 2 * 200);
    for (i, h) in kept.iter().enumerate() {
        assert!(a.bytes(*h).unwrap().iter().all(|&b| b == (2 * i + 1) as u8));
    }
    a.check().unwrap();
}

#[test]
fn two_finger_moves_fewer_bytes_than_sliding() {
    let mut s = Arena::with_config(
        ArenaConfig::new().policy(GrowthPolicy::Manual),
        Sliding::new(),
    );
    let mut t = Arena::with_config(
        ArenaConfig::new().policy(GrowthPolicy::Manual),
        TwoFinger::new(),
    );
    // Free only the bottom quarter: sliding must move everything above it, two-finger only
    // enough blocks from the top to fill the holes.
    for a in [&mut s as &mut dyn FragmentBottom, &mut t] {
        a.fragment_bottom();
    }
    let rs = s.compact();
    let rt = t.compact();
    assert!(
        rt.bytes_moved < rs.bytes_moved,
        "two-finger {rt:?} vs sliding {rs:?}"
    );
    assert_eq!(rt.holes_after, 0);
    s.check().unwrap();
    t.check().unwrap();
}

/// A full two-finger pass runs as one bulk evacuation; budgeted steps move blocks one at a
/// time through the relocator. Without alignment padding the two must place every block at
/// the same offset, pinned barriers included.
#[test]
fn two_finger_bulk_pass_places_blocks_as_the_stepwise_pass_does() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move |n: u64| rng.below(n);
    for round in 0..runs(20, 1) {
        let config = || {
            ArenaConfig::new()
                .policy(GrowthPolicy::Manual)
                .shrink_after_compaction(false)
        };
        let mut bulk = Arena::with_config(config(), TwoFinger::new());
        let mut step = Arena::with_config(config(), TwoFinger::new());
        let mut live = Vec::new();
        for i in 0..runs(300, 24) as u64 {
            let len = 16 * (1 + next(40) as usize);
            let (b, s) = (bulk.alloc_bytes(len, 16), step.alloc_bytes(len, 16));
            bulk.bytes_mut(b).unwrap().fill(i as u8);
            step.bytes_mut(s).unwrap().fill(i as u8);
            live.push((b, s, i as u8));
        }
        live.retain(|&(b, s, _)| {
            if next(100) < 45 {
                bulk.free_bytes(b).unwrap();
                step.free_bytes(s).unwrap();
                false
            } else {
                true
            }
        });
        for &(b, s, _) in live.iter().filter(|_| next(100) < 5) {
            bulk.pin(b).unwrap();
            step.pin(s).unwrap();
        }
        let rb = bulk.compact();
        let mut moved = 0;
        loop {
            let r = step.compact_with(Budget::Moves(1));
            moved += r.bytes_moved;
            if r.finished {
                break;
            }
        }
        assert_eq!(rb.bytes_moved, moved, "round {round}");
        assert!(moved > 0, "round {round}: nothing moved");
        // Offsets relative to the first live block, so that the buffers' bases cancel.
        let addr = |a: &Arena<TwoFinger>, h| a.address_of(h).unwrap().as_ptr() as isize;
        let (b0, s0, _) = live[0];
        for &(b, s, fill) in &live {
            assert_eq!(
                addr(&bulk, b) - addr(&bulk, b0),
                addr(&step, s) - addr(&step, s0),
                "round {round}"
            );
            assert!(bulk.bytes(b).unwrap().iter().all(|&x| x == fill));
        }
        assert!(bulk.blocks().eq(step.blocks()), "round {round}");
        assert_eq!(bulk.stats().holes, step.stats().holes, "round {round}");
        bulk.check().unwrap();
        step.check().unwrap();
    }
}

trait FragmentBottom {
    fn fragment_bottom(&mut self);
}

impl<C: Compactor> FragmentBottom for Arena<C> {
    fn fragment_bottom(&mut self) {
        let n = runs(100, 40);
        let hs: Vec<_> = (0..n).map(|_| self.alloc_bytes(64, 8)).collect();
        for h in &hs[..n / 4] {
            self.free_bytes(*h).unwrap();
        }
    }
}

#[test]
fn generation_wrap_retires_the_slot() {
    let mut a = Arena::new();
    let h = a.insert(1u8);
    a.remove(h);
    // Pretend the slot has been reused 2^19 - 1 times: its next occupant gets the last odd
    // counter, and removing that one must retire the slot rather than wrap.
    a.force_counter(h, (1 << crate::table::COUNTER_BITS) - 2);
    let last = a.insert(2u8);
    assert_eq!(last.index(), h.index());
    let counter_mask = (1u32 << crate::table::COUNTER_BITS) - 1;
    assert_eq!(last.generation().get() & counter_mask, counter_mask);
    a.remove(last);
    assert_eq!(a.stats().retired_slots, 1);
    let next = a.insert(3u8);
    assert_ne!(next.index(), h.index(), "a retired slot is never reused");
    assert_eq!(a.get(last), None);
    assert_eq!(a.get(h), None);
    assert_eq!(a.get(next), Some(&3));
    a.check().unwrap();
}

#[test]
fn resize_grows_in_place_moves_and_keeps_bytes() {
    let mut a = Arena::new();
    let x = a.alloc_bytes(16, 8);
    a.bytes_mut(x).unwrap().copy_from_slice(&[7; 16]);
    let at = a.address_of(x);
    a.resize(x, 64).unwrap();
    assert_eq!(a.address_of(x), at, "the tail was free: grows in place");
    assert_eq!(&a.bytes(x).unwrap()[..16], &[7; 16]);
    assert!(a.bytes(x).unwrap()[16..].iter().all(|&b| b == 0));
    let y = a.alloc_bytes(8, 8);
    a.resize(x, 200).unwrap();
    assert_ne!(a.address_of(x), at, "blocked by y: it moved");
    assert_eq!(&a.bytes(x).unwrap()[..16], &[7; 16]);
    assert_eq!(a.bytes(x).unwrap().len(), 200);
    a.resize(x, 4).unwrap();
    assert_eq!(a.bytes(x).unwrap(), &[7; 4]);
    a.resize(x, 0).unwrap();
    assert_eq!(a.bytes(x).unwrap(), &[] as &[u8]);
    a.resize(x, 3).unwrap();
    assert_eq!(a.bytes(x).unwrap(), &[0; 3]);
    let p = a.pin(y).unwrap();
    assert_eq!(a.resize(y, 0), Err(ArenaError::Pinned));
    a.free_bytes(x).unwrap();
    assert_eq!(a.resize(x, 10), Err(ArenaError::Stale));
    assert_eq!(a.address_of(y), Some(p));
    a.check().unwrap();
}

#[test]
fn a_pinned_buffer_does_not_grow_but_reserved_capacity_serves() {
    let mut a = Arena::with_capacity(PAGE);
    let h = a.alloc_bytes(100, 8);
    a.pin(h).unwrap();
    assert!(
        a.try_alloc_bytes(PAGE / 2, 8).is_ok(),
        "room within the reserved capacity"
    );
    assert_eq!(
        a.try_alloc_bytes(PAGE, 8).err(),
        Some(ArenaError::BufferPinned)
    );
    a.unpin(h).unwrap();
    assert!(a.try_alloc_bytes(PAGE, 8).is_ok());
    a.check().unwrap();
}

#[test]
fn max_capacity_gives_out_of_memory_and_a_failed_call_changes_nothing() {
    let cfg = ArenaConfig::new()
        .max_capacity(2 * PAGE)
        .policy(GrowthPolicy::Manual);
    let mut a = Arena::with_config(cfg, Sliding::new());
    let h = a.alloc_bytes(PAGE, 8);
    let before = a.stats();
    assert_eq!(
        a.try_alloc_bytes(2 * PAGE, 8).err(),
        Some(ArenaError::OutOfMemory)
    );
    assert_eq!(
        a.try_insert([0u8; 3 * PAGE]).err(),
        Some(ArenaError::OutOfMemory)
    );
    assert_eq!(a.resize(h, 3 * PAGE), Err(ArenaError::OutOfMemory));
    assert_eq!(a.stats(), before);
    a.check().unwrap();
}

/// A refused call leaves the arena exactly as it was, `stats()` included: under every policy,
/// and whether or not the refused value's type is new to the arena.
#[test]
fn a_refused_insert_leaves_the_arena_as_it_was() {
    let policies = [
        GrowthPolicy::Manual,
        GrowthPolicy::CompactThenGrow,
        GrowthPolicy::Defrag {
            threshold: 0.1,
            step: Budget::Moves(2),
        },
    ];
    for policy in policies {
        let cfg = ArenaConfig::new().max_capacity(PAGE).policy(policy);
        let mut a = Arena::with_config(cfg, Sliding::new());
        // The very first call, with a type the arena has never seen.
        let before = a.stats();
        assert_eq!(
            a.try_insert([1u64; PAGE]).err(),
            Some(ArenaError::OutOfMemory)
        );
        assert_eq!(a.stats(), before, "{policy:?}: a refused first insert");
        let small = a.insert(5u32);
        let before = a.stats();
        assert_eq!(
            a.try_insert([2u16; PAGE]).err(),
            Some(ArenaError::OutOfMemory)
        );
        assert_eq!(
            a.try_alloc_bytes(2 * PAGE, 8).err(),
            Some(ArenaError::OutOfMemory)
        );
        assert_eq!(a.stats(), before, "{policy:?}");
        assert_eq!(a.get(small), Some(&5));
        a.check().unwrap();
    }
}

/// Under CompactThenGrow an allocation that finds no room compacts before it grows, so a
/// request that still fails (here: a pinned block keeps the buffer from growing) leaves that
/// pass behind, and nothing else: every value, pin and pinned address is as it was.
#[test]
fn compact_then_grow_may_compact_before_it_refuses_and_changes_nothing_else() {
    let cfg = ArenaConfig::new()
        .max_capacity(2 * PAGE)
        .initial_capacity(2 * PAGE)
        .policy(GrowthPolicy::CompactThenGrow);
    let mut a = Arena::with_config(cfg, Sliding::new());
    let kept = fragment_zone(&mut a);
    let pinned = kept[0];
    let addr = a.pin(pinned).unwrap();
    let before = a.stats();
    assert!(before.hole_bytes + (before.footprint - before.used_span) >= PAGE);
    assert_eq!(
        a.try_alloc_bytes(PAGE, 8).err(),
        Some(ArenaError::OutOfMemory),
        "the pin keeps the compacted blocks from making a page of room"
    );
    let after = a.stats();
    assert_eq!(after.passes_completed, before.passes_completed + 1);
    assert!(after.total_blocks_moved > before.total_blocks_moved);
    let unchanged = |s: crate::ArenaStats| {
        (
            s.live_blocks,
            s.live_bytes,
            s.footprint,
            s.table_bytes,
            s.pinned_blocks,
            s.retired_slots,
        )
    };
    assert_eq!(unchanged(after), unchanged(before));
    assert_eq!(a.address_of(pinned), Some(addr));
    assert_eq!(a.pin_count(pinned), Some(1));
    for (i, h) in kept.iter().enumerate() {
        assert!(a.bytes(*h).unwrap().iter().all(|&b| b == (2 * i + 1) as u8));
    }
    // With the pass done, the same request fails again and moves nothing.
    assert_eq!(
        a.try_alloc_bytes(PAGE, 8).err(),
        Some(ArenaError::OutOfMemory)
    );
    assert_eq!(a.stats().total_blocks_moved, after.total_blocks_moved);
    a.check().unwrap();
}

#[test]
fn compact_then_grow_compacts_before_growing() {
    // A fixed zone of two pages, fragmented so no hole holds a page: the Mac OS policy
    // compacts and then fits the request without growing.
    let cfg = ArenaConfig::new()
        .max_capacity(2 * PAGE)
        .initial_capacity(2 * PAGE)
        .policy(GrowthPolicy::CompactThenGrow);
    let mut a = Arena::with_config(cfg, Sliding::new());
    let kept = fragment_zone(&mut a);
    assert!(a.stats().largest_hole < PAGE);
    let big = a.try_alloc_bytes(PAGE, 8).expect("compaction makes room");
    assert_eq!(a.stats().footprint, 2 * PAGE);
    assert!(a.stats().passes_completed >= 1);
    assert_eq!(a.bytes(big).unwrap().len(), PAGE);
    for (i, h) in kept.iter().enumerate() {
        assert!(a.bytes(*h).unwrap().iter().all(|&b| b == (2 * i + 1) as u8));
    }
    // Manual in the same situation fails, since it never compacts on its own.
    let mut m = Arena::with_config(cfg.policy(GrowthPolicy::Manual), Sliding::new());
    fragment_zone(&mut m);
    assert_eq!(
        m.try_alloc_bytes(PAGE, 8).err(),
        Some(ArenaError::OutOfMemory)
    );
}

#[test]
fn defrag_policy_keeps_fragmentation_near_its_threshold() {
    // Under Miri, fewer and larger values: a page of holes still builds up early enough for
    // the policy's steps to finish their passes.
    if cfg!(miri) {
        defrag_case::<128>(32);
    } else {
        defrag_case::<8>(2000);
    }
}

/// Inserts `count` values of `N` words under the Defrag policy and removes every other one.
fn defrag_case<const N: usize>(count: usize) {
    let cfg = ArenaConfig::new().policy(GrowthPolicy::Defrag {
        threshold: 0.2,
        step: Budget::Moves(4),
    });
    let mut a = Arena::with_config(cfg, Sliding::new());
    let hs: Vec<_> = (0..count).map(|i| a.insert([i as u64; N])).collect();
    for h in hs.iter().step_by(2) {
        a.remove(*h);
    }
    let s = a.stats();
    assert!(s.total_blocks_moved > 0, "steps ran on their own");
    assert!(
        s.fragmentation() <= 0.2 || s.hole_bytes < PAGE,
        "fragmentation {} hole bytes {}",
        s.fragmentation(),
        s.hole_bytes
    );
    for (i, h) in hs.iter().enumerate().skip(1).step_by(2) {
        assert_eq!(a.get(*h), Some(&[i as u64; N]));
    }
    a.check().unwrap();
}

#[test]
fn incremental_steps_respect_the_budget_and_resume() {
    let mut a = Arena::new();
    a.set_policy(GrowthPolicy::Manual);
    let kept = fragment(&mut a, runs(200, 30), 50);
    let mut steps = 0;
    loop {
        let r = a.compact_with(Budget::Moves(3));
        assert!(r.blocks_moved <= 3);
        steps += 1;
        // Mutate between steps: the pass must cope.
        if steps == 5 {
            a.free_bytes(kept[0]).unwrap();
        }
        if r.finished {
            break;
        }
        assert!(a.compaction_in_progress());
    }
    assert!(
        steps > kept.len() / 5,
        "{steps} steps for {} blocks",
        kept.len()
    );
    let r = a.compact_with(Budget::Bytes(1));
    assert!(
        r.blocks_moved <= 1,
        "a bytes budget still moves at least one block, then stops"
    );
    while !a.compact_with(Budget::Bytes(120)).finished {}
    assert_eq!(a.stats().holes, 0);
    for (i, h) in kept.iter().enumerate().skip(1) {
        assert!(a.bytes(*h).unwrap().iter().all(|&b| b == (2 * i + 1) as u8));
    }
    a.check().unwrap();
}

/// A deliberately bad compactor: it tries to move blocks onto each other, onto pinned blocks,
/// past the buffer and to misaligned offsets. Every move must be refused.
struct Vandal {
    refused: Vec<MoveError>,
}

impl Compactor for Vandal {
    fn begin(&mut self) {}
    fn step(&mut self, heap: &mut Relocator<'_>) -> Progress {
        let first = heap.next_block(0).unwrap();
        let second = heap.next_block(first.end()).unwrap();
        let cap = heap.capacity();
        for (from, to) in [
            (first.offset, second.offset),
            (second.offset, first.offset + 1),
            (first.offset + 1, 0),
            (first.offset, cap - 8),
            (second.offset, first.offset + 8),
        ] {
            if let Err(e) = heap.move_block(from, to) {
                self.refused.push(e);
            }
        }
        Progress::Done
    }
}

#[test]
fn a_bad_compactor_cannot_corrupt_the_arena() {
    let mut a = Arena::with_compactor(Vandal {
        refused: Vec::new(),
    });
    let x = a.alloc_bytes(16, 8);
    let y = a.alloc_bytes(16, 8);
    a.bytes_mut(x).unwrap().fill(1);
    a.bytes_mut(y).unwrap().fill(2);
    a.pin(y).unwrap();
    a.compact();
    assert_eq!(
        a.compactor().refused,
        vec![
            MoveError::Occupied,
            MoveError::Pinned,
            MoveError::NoBlock,
            MoveError::Occupied,
            MoveError::Pinned
        ]
    );
    assert_eq!(a.bytes(x).unwrap(), &[1; 16]);
    assert_eq!(a.bytes(y).unwrap(), &[2; 16]);
    a.check().unwrap();
}

#[test]
fn stats_add_up() {
    let mut a = Arena::new();
    let kept = fragment(&mut a, 50, 30);
    let s = a.stats();
    assert_eq!(s.live_blocks, kept.len());
    assert_eq!(s.live_bytes + s.hole_bytes, s.used_span);
    assert!(s.used_span <= s.footprint);
    assert!(s.fragmentation() > 0.4 && s.fragmentation() < 0.6);
    assert_eq!(a.holes().count(), s.holes);
    assert_eq!(a.blocks().map(|(_, len)| len).sum::<usize>(), s.live_bytes);
    assert!(s.table_bytes > 0);
}

/// The bulk slide copies blocks one by one and moves runs of adjacent ones with one memmove
/// each; mixed sizes, alignments and pinned barriers must all come through byte for byte.
#[test]
fn bulk_slide_keeps_every_byte_across_small_large_and_pinned_blocks() {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = move |n: u64| rng.below(n);
    // Under Miri, fewer and shorter blocks; "large" still means more than the 256 bytes the
    // slide prefetches of a block.
    let (large, spread) = (runs(2048, 300) as u64, runs(6000, 900) as u64);
    let small = runs(1500, 200) as u64;
    for round in 0..runs(20, 1) {
        let config = ArenaConfig::new().initial_capacity(runs(4 << 20, 64 << 10));
        let mut a = Arena::with_config(config, Sliding::new());
        let mut live = Vec::new();
        for i in 0..runs(600, 16) {
            let len = match next(4) {
                0 => (large + next(spread)) as usize,
                _ => 1 + next(small) as usize,
            };
            let align = [1, 8, 16, 256][next(4) as usize];
            let h = a.alloc_bytes(len, align);
            let fill: Vec<u8> = (0..len).map(|k| (k * 7 + i + round) as u8).collect();
            a.bytes_mut(h).unwrap().copy_from_slice(&fill);
            live.push((h, fill));
        }
        // Free about half, in runs and singly, and pin a few of the rest.
        let mut kept = Vec::new();
        for (h, fill) in live {
            if next(2) == 0 {
                a.free_bytes(h).unwrap();
            } else {
                kept.push((h, fill));
            }
        }
        let mut pinned = Vec::new();
        for (h, _) in kept.iter().filter(|_| next(20) == 0) {
            let addr = a.pin(*h).unwrap();
            pinned.push((*h, addr));
        }
        a.check().unwrap();
        let report = a.compact();
        a.check().unwrap();
        assert!(report.bytes_moved > 0, "round {round}");
        for (h, fill) in &kept {
            assert_eq!(a.bytes(*h).unwrap(), &fill[..], "round {round}");
        }
        for (h, addr) in pinned {
            assert_eq!(a.address_of(h), Some(addr), "pinned blocks stay put");
            a.unpin(h).unwrap();
        }
        if a.stats().pinned_blocks == 0 {
            a.compact();
            // Only alignment padding may remain (the largest alignment here is 256).
            assert!(a.holes().all(|(_, len)| len < 256), "round {round}");
            for (h, fill) in &kept {
                assert_eq!(a.bytes(*h).unwrap(), &fill[..], "round {round}");
            }
        }
    }
}

/// Checks the layout a full sliding pass promises when nothing is pinned: the blocks keep
/// their order, the first starts at 0 and each next one at the first offset at or above the
/// previous block's end that its alignment allows. So the only holes are that alignment
/// padding, each shorter than the alignment of the block above it, and the footprint is the
/// used span rounded up to a page (not below the initial capacity). `aligns` maps a block's
/// offset before the pass to its alignment; `before` is the block map before the pass.
fn assert_slid_layout<C: Compactor>(
    a: &Arena<C>,
    before: &[(usize, usize)],
    aligns: &std::collections::HashMap<usize, usize>,
) {
    let after: Vec<(usize, usize)> = a.blocks().collect();
    assert_eq!(after.len(), before.len());
    let mut end = 0usize;
    let mut padding = Vec::new();
    for (&(old, len), &(off, new_len)) in before.iter().zip(&after) {
        assert_eq!(len, new_len, "blocks keep their order");
        let align = aligns[&old];
        assert_eq!(
            off,
            end.next_multiple_of(align),
            "block from {old} (align {align})"
        );
        if off > end {
            assert!(off - end < align);
            padding.push((end, off - end));
        }
        end = off + len;
    }
    let s = a.stats();
    assert_eq!(
        a.holes().collect::<Vec<_>>(),
        padding,
        "holes are the padding"
    );
    assert_eq!(s.holes, padding.len());
    assert_eq!(s.hole_bytes, padding.iter().map(|p| p.1).sum::<usize>());
    assert_eq!(s.used_span, end);
    assert_eq!(s.used_span, s.live_bytes + s.hole_bytes);
    let min = a.config().initial_capacity;
    assert_eq!(s.footprint, end.next_multiple_of(PAGE).max(min));
}

/// Each block's offset, mapped to its alignment.
fn aligns_by_offset<C: Compactor>(
    a: &Arena<C>,
    blocks: impl Iterator<Item = (crate::Handle<[u8]>, usize)> + Clone,
) -> std::collections::HashMap<usize, usize> {
    // The lowest address belongs to the lowest offset, which gives the buffer's base.
    let addr = |h| a.address_of(h).unwrap().as_ptr() as usize;
    let lowest = blocks.clone().map(|(h, _)| addr(h)).min().unwrap_or(0);
    let base = lowest - a.blocks().next().map_or(0, |(off, _)| off);
    blocks.map(|(h, align)| (addr(h) - base, align)).collect()
}

#[test]
fn sliding_leaves_only_the_padding_alignment_requires() {
    #[repr(align(64))]
    #[derive(Debug, PartialEq)]
    struct Aligned64([u8; 64]);
    // The smallest case: a u8, then a 64-aligned value. Keeping their order, the value cannot
    // start below 64, so the 63 bytes after the u8 stay free.
    let mut a = Arena::new();
    let byte = a.insert(1u8);
    let wide = a.insert(Aligned64([2; 64]));
    let report = a.compact();
    assert_eq!(a.holes().collect::<Vec<_>>(), vec![(1, 63)]);
    assert_eq!((report.holes_after, report.largest_hole_after), (1, 63));
    assert_eq!(a.stats().footprint, PAGE);
    assert_eq!(
        (a.get(byte), a.get(wide)),
        (Some(&1), Some(&Aligned64([2; 64])))
    );
    // Equal alignments leave no padding at all.
    let mut b = Arena::new();
    let hs: Vec<_> = (0..50u64).map(|i| b.insert([i; 3])).collect();
    for h in hs.iter().step_by(3) {
        b.remove(*h);
    }
    assert_eq!(b.compact().holes_after, 0);

    // Mixed sizes and alignments, full passes and budgeted passes alike.
    let mut rng = Rng::new(0x5851_f42d_4c95_7f2d);
    let mut next = move |n: u64| rng.below(n) as usize;
    for round in 0..runs(30, 1) {
        let config = ArenaConfig::new()
            .policy(GrowthPolicy::Manual)
            .initial_capacity(next(3) * PAGE);
        let mut bulk = Arena::with_config(config, Sliding::new());
        let mut step = Arena::with_config(config, Sliding::new());
        let mut live = Vec::new();
        for _ in 0..runs(200, 20) {
            let align = 1 << next(13);
            let len = 1 + next(300);
            live.push((
                bulk.alloc_bytes(len, align),
                step.alloc_bytes(len, align),
                align,
            ));
        }
        live.retain(|&(b, s, _)| {
            let keep = next(2) == 0;
            if !keep {
                bulk.free_bytes(b).unwrap();
                step.free_bytes(s).unwrap();
            }
            keep
        });
        let before: Vec<_> = bulk.blocks().collect();
        let bulk_aligns = aligns_by_offset(&bulk, live.iter().map(|e| (e.0, e.2)));
        let step_aligns = aligns_by_offset(&step, live.iter().map(|e| (e.1, e.2)));
        assert!(bulk.compact().finished);
        assert_slid_layout(&bulk, &before, &bulk_aligns);
        while !step.compact_with(Budget::Moves(3)).finished {}
        assert_slid_layout(&step, &before, &step_aligns);
        assert!(bulk.blocks().eq(step.blocks()), "round {round}");
        bulk.check().unwrap();
        step.check().unwrap();
    }
}
