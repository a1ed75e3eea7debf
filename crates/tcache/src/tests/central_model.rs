//! The central lists and a thread cache on private state, against a model: every object handed
//! out is a distinct, correctly aligned object of its class that keeps its bytes, and when
//! everything is given back and released, every span has gone back to the backend.

use crate::central::Central;
use crate::local_cache::LocalCache;
use crate::size_class::{class_size, CLASSES, MAX_SMALL, NUM_CLASSES};
use crate::span::FreeObj;
use std::collections::BTreeMap;

// The shared seeded generator, so failures replay.
use freespace_testkit::Rng;

fn fill(p: *mut u8, size: usize, tag: u8) {
    // SAFETY: `p` is a live object of at least `size` bytes owned by the test.
    unsafe { std::ptr::write_bytes(p, tag, size) };
}

fn check(p: *mut u8, size: usize, tag: u8) {
    // SAFETY: as in `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(p, size) };
    // One slice comparison (a `memcmp`), which Miri runs in one step rather than byte by byte.
    let expected = [tag; MAX_SMALL];
    assert!(bytes == &expected[..size], "object {p:p} lost its bytes");
}

#[test]
fn random_take_and_give_against_a_model() {
    let central = Box::new(Central::new());
    let cache = LocalCache::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // address -> (object, class, tag): the pointer is kept, never rebuilt from the address.
    let mut live: BTreeMap<usize, (*mut u8, usize, u8)> = BTreeMap::new();
    // Miri runs a shorter walk (each step is checked the same way).
    let steps = if cfg!(miri) { 1_000 } else { 60_000u32 };
    for step in 0..steps {
        let c = [0, 1, 3, 7, 8, 20, 40, 63, 71][rng.below(9) as usize];
        if live.is_empty() || rng.below(100) < 55 {
            let mut p = cache.pop(c);
            if p.is_null() {
                p = cache.refill(&central, c);
            }
            assert!(!p.is_null());
            let size = class_size(c);
            assert_eq!(p as usize % 16, 0);
            // No overlap with the neighbours in address order.
            if let Some((&a, &(_, ac, _))) = live.range(..p as usize).next_back() {
                assert!(a + class_size(ac) <= p as usize, "overlap at step {step}");
            }
            if let Some((&b, _)) = live.range(p as usize..).next() {
                assert!(p as usize + size <= b, "overlap at step {step}");
            }
            let tag = (step % 251) as u8;
            fill(p, size, tag);
            live.insert(p as usize, (p, c, tag));
        } else {
            let skip = rng.below(live.len() as u64) as usize;
            let (&a, &(obj, ac, tag)) = live.iter().nth(skip).unwrap();
            live.remove(&a);
            check(obj, class_size(ac), tag);
            // SAFETY: `obj` is a live object of class `ac`, handed back.
            unsafe {
                if !cache.push(ac, obj) {
                    cache.overflow(&central, ac, obj);
                }
            }
        }
    }
    for &(obj, c, tag) in live.values() {
        check(obj, class_size(c), tag);
        // SAFETY: as above.
        unsafe { central.give(c, FreeObj::push(obj, std::ptr::null_mut()), 1) };
    }
    cache.flush(&central);
    assert_eq!(cache.cached(), (0, 0));
    central.release_memory();
    let stats = central.stats();
    assert!(stats.backend.spans_created > 0);
    assert_eq!(stats.backend.spans, 0, "every span went back");
    assert_eq!(stats.backend.span_bytes, 0);
    assert_eq!(stats.transfer_bytes, 0);
}

#[test]
fn transfer_cache_holds_whole_batches_and_spans_come_back() {
    let central = Box::new(Central::new());
    let c = 10;
    let info = CLASSES[c];
    let (head, n) = central.take(c, info.batch);
    assert_eq!(n, info.batch);
    // SAFETY: the batch taken above goes back whole.
    unsafe { central.give(c, head, n) };
    assert_eq!(
        central.stats().transfer_bytes,
        (info.batch * info.size) as usize
    );
    let (head2, n2) = central.take(c, info.batch);
    assert_eq!(
        (head2, n2),
        (head, n),
        "a whole batch is served from the transfer cache"
    );
    // SAFETY: the same batch goes back again.
    unsafe { central.give(c, head2, n2) };
    central.release_memory();
    assert_eq!(central.stats().backend.spans, 0);
}

#[test]
fn every_class_fills_whole_spans() {
    let central = Box::new(Central::new());
    // Under Miri, three classes from the middle up to the largest: the small classes
    // carve thousands of objects per span, which Miri interprets one write at a time (all
    // classes take over 8 minutes there).
    let under_miri = [NUM_CLASSES / 3, NUM_CLASSES / 2, NUM_CLASSES - 1];
    let sampled = CLASSES
        .iter()
        .enumerate()
        .filter(|&(c, _)| !cfg!(miri) || under_miri.contains(&c));
    for (c, info) in sampled {
        let want = info.objects * 2 + 1;
        let (head, n) = central.take(c, want);
        assert_eq!(n, want);
        let mut seen = std::collections::HashSet::new();
        let mut p = head;
        while !p.is_null() {
            assert!(seen.insert(p as usize));
            assert!(!central.backend.lookup(p as usize).is_null());
            // SAFETY: `p` is on the list just taken.
            p = unsafe { (*p).next };
        }
        assert_eq!(seen.len(), want as usize);
        // SAFETY: the whole list goes back.
        unsafe { central.give(c, head, n) };
    }
    central.release_memory();
    assert_eq!(central.stats().backend.spans, 0);
}
