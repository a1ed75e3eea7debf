//! Loom models of everything shared between threads: the central lists and transfer cache under
//! contention, the hand-off of a remote free (allocated on one thread, freed on another, back
//! through the central lists), the flush of thread caches at thread exit, and `free`'s lock-free
//! check of a span's bump index while other threads carve the same span. Each model uses a
//! 32 KiB class, whose batch is 2 objects and whose transfer cache holds 2 batches, so that small
//! runs cross every boundary: batch full, transfer cache full, span full, span empty.

use crate::central::Central;
use crate::local_cache::LocalCache;
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::span::FreeObj;
use loom::sync::atomic::{AtomicPtr, Ordering};
use loom::sync::Arc;
use loom::thread;

const C: usize = NUM_CLASSES - 1;

fn alloc(cache: &LocalCache, central: &Central) -> *mut u8 {
    let p = cache.pop(C);
    if p.is_null() {
        cache.refill(central, C)
    } else {
        p
    }
}

fn free(cache: &LocalCache, central: &Central, p: *mut u8) {
    // SAFETY: `p` is a live object of class `C` handed back by the model.
    unsafe {
        if !cache.push(C, p) {
            cache.overflow(central, C, p);
        }
    }
}

const STACK: usize = 1 << 20;

/// Runs a model body on a thread with a stack big enough for a `Central` (loom's default is small).
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let f = std::sync::Arc::new(f);
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = f.clone();
        spawn(move || f()).join().unwrap();
    });
    // The model must really interleave the threads, not run one schedule.
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("loom explored {runs} interleavings");
    assert!(runs > 1);
}

/// Spawns a model thread with a roomy stack.
fn spawn<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> thread::JoinHandle<T> {
    thread::Builder::new().stack_size(STACK).spawn(f).unwrap()
}

/// After every thread has flushed, draining the class must give every span back.
fn settle(central: &Central) {
    central.release_class(C);
    assert_eq!(central.transfer_bytes(C), 0);
    let s = central.backend.stats();
    assert_eq!(s.spans, 0, "a span was lost");
    assert!(s.spans_created > 0);
}

#[test]
fn two_threads_take_and_give_batches() {
    assert_eq!(CLASSES[C].batch, 2);
    assert_eq!(CLASSES[C].transfer_slots, 2);
    model(|| {
        let central = Arc::new(Central::new());
        let handles: Vec<_> = (0..2u8)
            .map(|t| {
                let central = central.clone();
                spawn(move || {
                    let cache = LocalCache::new();
                    let a = alloc(&cache, &central);
                    let b = alloc(&cache, &central);
                    let c = alloc(&cache, &central);
                    assert!(a != b && b != c && a != c);
                    for (i, p) in [a, b, c].into_iter().enumerate() {
                        // SAFETY: a live 32 KiB object owned by this thread.
                        unsafe { p.add(100).write(t * 10 + i as u8) };
                    }
                    for (i, p) in [a, b, c].into_iter().enumerate() {
                        // SAFETY: as above; another thread writing here would be a double hand-out.
                        assert_eq!(unsafe { p.add(100).read() }, t * 10 + i as u8);
                        free(&cache, &central, p);
                    }
                    cache.flush(&central);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        settle(&central);
    });
}

#[test]
fn remote_free_hand_off() {
    model(|| {
        let central = Arc::new(Central::new());
        let slot = Arc::new(AtomicPtr::new(std::ptr::null_mut::<u8>()));
        let producer = {
            let (central, slot) = (central.clone(), slot.clone());
            spawn(move || {
                let cache = LocalCache::new();
                let p = alloc(&cache, &central);
                // SAFETY: a live object owned by this thread until published.
                unsafe { p.add(8).write(0xab) };
                slot.store(p, Ordering::Release);
                // Keep allocating and freeing while the consumer frees remotely.
                let q = alloc(&cache, &central);
                free(&cache, &central, q);
                cache.flush(&central);
            })
        };
        let consumer = {
            let (central, slot) = (central.clone(), slot.clone());
            spawn(move || {
                let cache = LocalCache::new();
                let p = loop {
                    let p = slot.load(Ordering::Acquire);
                    if !p.is_null() {
                        break p;
                    }
                    thread::yield_now();
                };
                // SAFETY: the producer published the object with Release; we own it now.
                assert_eq!(unsafe { p.add(8).read() }, 0xab);
                free(&cache, &central, p);
                cache.flush(&central);
            })
        };
        producer.join().unwrap();
        consumer.join().unwrap();
        settle(&central);
    });
}

#[test]
fn flush_on_exit_races_with_central_traffic() {
    model(|| {
        let central = Arc::new(Central::new());
        let exiting = {
            let central = central.clone();
            spawn(move || {
                let cache = LocalCache::new();
                let a = alloc(&cache, &central);
                free(&cache, &central, a);
                // The thread's exit: its whole cache goes back.
                cache.flush(&central);
                assert_eq!(cache.cached(), (0, 0));
            })
        };
        // The main thread works the central lists directly meanwhile, as an uncached thread does.
        let (head, n) = central.take(C, 1);
        assert_eq!(n, 1);
        // SAFETY: the object just taken goes back.
        unsafe { central.give(C, FreeObj::push(head.cast(), std::ptr::null_mut()), 1) };
        exiting.join().unwrap();
        settle(&central);
    });
}

/// `free`'s validation of `p`, as `ThreadCached::free` runs it: page map, then the span's check.
fn check(central: &Central, p: *mut u8) -> Result<(), freespace_malloc::FreeError> {
    let span = central.backend.lookup(p as usize);
    assert!(!span.is_null());
    // SAFETY: the page map points at a live span record while one of its objects is out.
    unsafe { (*span).check_object(p as usize) }
}

#[test]
fn free_check_sees_the_take_that_carved_the_object() {
    // The class's first span holds one object and its second two, so once the main thread has
    // taken the first, the two threads below carve the second span's slots, racing on its bump
    // index. An object received through any happens-before chain must pass the lock-free check,
    // whatever the other thread's `take` has stored meanwhile.
    model(|| {
        let central = Arc::new(Central::new());
        let (first, n) = central.take(C, 1);
        assert_eq!(n, 1);
        let slot = Arc::new(AtomicPtr::new(std::ptr::null_mut::<u8>()));
        let producer = {
            let (central, slot) = (central.clone(), slot.clone());
            spawn(move || {
                let cache = LocalCache::new();
                let p = alloc(&cache, &central);
                slot.store(p, Ordering::Release);
                cache.flush(&central);
            })
        };
        let carver = {
            let central = central.clone();
            spawn(move || {
                let cache = LocalCache::new();
                let q = alloc(&cache, &central);
                assert_eq!(check(&central, q), Ok(()), "own object refused");
                free(&cache, &central, q);
                cache.flush(&central);
            })
        };
        let p = loop {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                break p;
            }
            thread::yield_now();
        };
        assert_eq!(check(&central, p), Ok(()), "a received object refused");
        // SAFETY: `p` and `first` are live objects of class `C` owned here, given back once.
        unsafe {
            central.give(C, FreeObj::push(p, std::ptr::null_mut()), 1);
            central.give(C, first, 1);
        }
        producer.join().unwrap();
        carver.join().unwrap();
        settle(&central);
    });
}

#[test]
fn three_threads_overflow_the_transfer_cache() {
    model(|| {
        let central = Arc::new(Central::new());
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let central = central.clone();
                spawn(move || {
                    let cache = LocalCache::new();
                    // Five objects: more than two batches, so frees overflow the bin, fill the
                    // two transfer slots and spill back to the spans.
                    let objs: Vec<*mut u8> = (0..5).map(|_| alloc(&cache, &central)).collect();
                    for (i, &p) in objs.iter().enumerate() {
                        assert!(!p.is_null());
                        assert!(
                            objs[..i].iter().all(|&q| q != p),
                            "an object was handed out twice"
                        );
                    }
                    for p in objs {
                        free(&cache, &central, p);
                    }
                    cache.flush(&central);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        settle(&central);
    });
}
