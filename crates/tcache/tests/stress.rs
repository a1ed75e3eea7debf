//! Real-thread stress tests of `ThreadCached` through its explicit entry points: every block is
//! filled with a pattern keyed to its address and checked before it is freed, so a block handed
//! out twice, or overwritten by the allocator's own links, fails the test.

use freespace_tcache::size_class::{class_size, NUM_CLASSES};
use freespace_tcache::{FreeError, ReallocError, ThreadCached, COLD_OBJECTS};
use std::sync::mpsc;
use std::thread;

static A: ThreadCached = ThreadCached::new();

/// Iteration counts are divided by this under ThreadSanitizer (`.ci/tsan` builds with
/// `--cfg tsan`), whose per-access checks make the byte-by-byte fills slow. Every path still runs
/// many times over: batches, transfer-cache overflows, new and released spans.
const SCALE: usize = if cfg!(tsan) { 4 } else { 1 };

// The shared seeded generator, so failures replay.
use freespace_testkit::Rng;

/// Makes every size class busy, so that the tests below get objects from spans (with the span
/// checks) rather than a cold class's objects from the core (tests/cold_classes.rs covers those).
fn warm_every_class() {
    for c in 0..NUM_CLASSES {
        let blocks: Vec<*mut u8> = (0..COLD_OBJECTS).map(|_| A.malloc(class_size(c))).collect();
        for p in blocks {
            assert!(!p.is_null());
            // SAFETY: `p` was just allocated and is freed once.
            unsafe { A.free(p).unwrap() };
        }
    }
}

fn pattern(p: usize, i: usize) -> u8 {
    ((p >> 4) as u8).wrapping_add(i as u8).wrapping_mul(31)
}

fn fill(p: *mut u8, size: usize) {
    for i in 0..size {
        // SAFETY: the test owns `size` bytes at `p`.
        unsafe { p.add(i).write(pattern(p as usize, i)) };
    }
}

fn verify(p: *const u8, size: usize) {
    for i in 0..size {
        // SAFETY: the test owns `size` bytes at `p`.
        let b = unsafe { p.add(i).read() };
        assert_eq!(
            b,
            pattern(p as usize, i),
            "block {p:p} byte {i} of {size} changed"
        );
    }
}

/// A size mostly small, sometimes large, from 1 B to 64 KiB.
fn random_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => 1 + rng.below(128) as usize,
        60..=89 => 1 + rng.below(4096) as usize,
        90..=97 => 1 + rng.below(32 * 1024) as usize,
        _ => 32 * 1024 + rng.below(32 * 1024) as usize,
    }
}

/// A block in transit between threads (a raw pointer is not `Send`; the pointer itself is sent,
/// so it keeps its provenance).
struct Block(*mut u8, usize);
// SAFETY: the sender gives the block up; only the receiver uses it afterwards.
unsafe impl Send for Block {}

#[test]
fn producer_consumer_every_free_is_remote() {
    let (tx, rx) = mpsc::sync_channel::<Block>(1024);
    let producer = thread::spawn(move || {
        let mut rng = Rng(1);
        for _ in 0..200_000 / SCALE {
            let size = random_size(&mut rng);
            let p = A.malloc(size);
            assert!(!p.is_null());
            fill(p, size.min(64));
            tx.send(Block(p, size)).unwrap();
        }
    });
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for Block(p, size) in rx {
            verify(p, size.min(64));
            // SAFETY: the producer handed the block over and never touches it again.
            unsafe {
                assert!(A.usable_size(p).unwrap() >= size);
                A.free(p).unwrap();
            }
            n += 1;
        }
        n
    });
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), 200_000 / SCALE);
}

#[test]
fn churn_of_random_sizes_across_four_threads() {
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng(t + 100);
                let mut live: Vec<(*mut u8, usize)> = Vec::new();
                for _ in 0..100_000 / SCALE {
                    if live.len() < 2000 && (live.is_empty() || rng.below(100) < 55) {
                        let size = random_size(&mut rng);
                        let p = if rng.below(8) == 0 {
                            let align = 1usize << (4 + rng.below(9));
                            let p = A.aligned_alloc(align, size);
                            assert_eq!(p as usize % align, 0);
                            p
                        } else {
                            A.malloc(size)
                        };
                        assert!(!p.is_null());
                        fill(p, size);
                        live.push((p, size));
                    } else {
                        let i = rng.below(live.len() as u64) as usize;
                        let (p, size) = live.swap_remove(i);
                        verify(p, size);
                        // SAFETY: `p` is a live block owned by this thread.
                        unsafe { A.free(p).unwrap() };
                    }
                }
                for (p, size) in live {
                    verify(p, size);
                    // SAFETY: as above.
                    unsafe { A.free(p).unwrap() };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn realloc_chains_keep_their_prefix() {
    let handles: Vec<_> = (0..2u64)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng(t + 7);
                for _ in 0..200 / SCALE {
                    let mut size = 1 + rng.below(64) as usize;
                    let mut p = A.malloc(size);
                    fill(p, size);
                    for _ in 0..30 {
                        let new_size = match rng.below(3) {
                            0 => size / 2 + 1,
                            _ => size * 2 + rng.below(100) as usize,
                        }
                        .min(200_000);
                        // SAFETY: `p` is live; on success it is replaced by the result.
                        let q = unsafe { A.realloc(p, new_size) };
                        assert!(!q.is_null());
                        let keep = size.min(new_size);
                        // The prefix moved with the block: check against the old address's pattern.
                        for i in 0..keep {
                            // SAFETY: `q` holds at least `new_size >= keep` bytes.
                            assert_eq!(unsafe { q.add(i).read() }, pattern(p as usize, i));
                        }
                        p = q;
                        size = new_size;
                        fill(p, size);
                    }
                    verify(p, size);
                    // SAFETY: `p` is live.
                    unsafe { A.free(p).unwrap() };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn bad_frees_are_refused() {
    warm_every_class();
    let p = A.malloc(48);
    // SAFETY: each call passes a pointer into a live block or to readable memory; the refused
    // frees change nothing, and the last valid free happens once.
    unsafe {
        assert_eq!(A.free(p.add(16)), Err(FreeError::Misaligned));
        let local = [0u64; 4];
        assert!(A.free(local.as_ptr() as *mut u8).is_err());
        assert_eq!(A.free(std::ptr::null_mut()), Ok(()));
        A.free(p).unwrap();
        assert_eq!(A.free(p), Err(FreeError::DoubleFree));
        let big = A.malloc(100_000);
        assert!(A.usable_size(big).unwrap() >= 100_000);
        A.free(big).unwrap();
        assert!(A.free(big).is_err());
    }
}

/// Whether `r` refuses the pointer (rather than succeeding or running out of memory).
fn refused(r: Result<std::ptr::NonNull<u8>, ReallocError>) -> bool {
    matches!(r, Err(ReallocError::Invalid(_)))
}

#[test]
fn try_realloc_tells_bad_pointers_from_out_of_memory() {
    warm_every_class();
    // SAFETY: every pointer passed is a live block, or a freed block or other pointer into
    // readable memory (which the calls refuse, changing nothing); live blocks are freed once.
    unsafe {
        // A freed small block, into its own class, another class and a large size.
        let p = A.malloc(48);
        A.free(p).unwrap();
        for size in [40, 48, 1000, 100_000] {
            let e = Err(ReallocError::Invalid(FreeError::DoubleFree));
            assert_eq!(A.try_realloc(p, size), e, "freed small block to {size}");
            assert!(A.realloc(p, size).is_null());
        }

        // A freed large block, to a large and to a small size.
        let big = A.malloc(100_000);
        A.free(big).unwrap();
        for size in [200_000, 100_000, 64] {
            assert!(
                refused(A.try_realloc(big, size)),
                "freed large block to {size}"
            );
            assert!(A.realloc(big, size).is_null());
        }

        // Foreign pointers: the stack, and a block of the test's own global allocator.
        let local = [0u64; 8];
        let on_stack = local.as_ptr().add(4) as *mut u8;
        let boxed = Box::new([7u8; 256]);
        let on_system_heap = (boxed.as_ptr() as *mut u8).add(128);
        for q in [on_stack, on_system_heap] {
            for size in [16, 100_000] {
                assert!(refused(A.try_realloc(q, size)), "foreign {q:p} to {size}");
                assert!(A.realloc(q, size).is_null());
            }
        }
        assert!(local.iter().all(|&w| w == 0));
        assert!(boxed.iter().all(|&b| b == 7));

        // Pointers into the middle of live objects, small and large; the objects are untouched.
        let small = A.malloc(64);
        fill(small, 64);
        let large = A.malloc(80_000);
        fill(large, 80_000);
        for size in [32, 64, 5000, 120_000] {
            let e = Err(ReallocError::Invalid(FreeError::Misaligned));
            assert_eq!(
                A.try_realloc(small.add(16), size),
                e,
                "inside small to {size}"
            );
            assert!(
                refused(A.try_realloc(large.add(64), size)),
                "inside large to {size}"
            );
        }
        verify(small, 64);
        verify(large, 80_000);

        // Live blocks and sizes no allocation can serve: out of memory, the block intact.
        for size in [usize::MAX / 2, usize::MAX - 4096] {
            assert_eq!(A.try_realloc(small, size), Err(ReallocError::OutOfMemory));
            assert_eq!(A.try_realloc(large, size), Err(ReallocError::OutOfMemory));
            assert!(A.realloc(small, size).is_null());
        }
        verify(small, 64);
        verify(large, 80_000);

        // And the same blocks still resize normally.
        let small2 = A.try_realloc(small, 3000).unwrap().as_ptr();
        for i in 0..64 {
            assert_eq!(small2.add(i).read(), pattern(small as usize, i));
        }
        let large2 = A.try_realloc(large, 10).unwrap().as_ptr();
        for i in 0..10 {
            assert_eq!(large2.add(i).read(), pattern(large as usize, i));
        }
        A.free(small2).unwrap();
        A.free(large2).unwrap();
        assert_eq!(
            A.try_realloc(large2, 20),
            Err(ReallocError::Invalid(FreeError::DoubleFree))
        );
    }
}

#[test]
fn malloc_zero_calloc_and_alignment_edges() {
    let a = A.malloc(0);
    let b = A.malloc(0);
    assert!(!a.is_null() && !b.is_null() && a != b);
    assert!(A.calloc(usize::MAX, 2).is_null());
    let z = A.calloc(100, 40);
    // SAFETY: `z` is a live block of 4000 bytes.
    assert!(unsafe { std::slice::from_raw_parts(z, 4000) }
        .iter()
        .all(|&x| x == 0));
    for shift in 4..=16 {
        let align = 1usize << shift;
        for size in [1, align - 1, align, align + 1, 40_000] {
            let p = A.aligned_alloc(align, size);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align} size {size}");
            fill(p, size);
            verify(p, size);
            // SAFETY: live block.
            unsafe { A.free(p).unwrap() };
        }
    }
    assert!(A.aligned_alloc(48, 10).is_null());
    // SAFETY: live blocks.
    unsafe {
        A.free(a).unwrap();
        A.free(b).unwrap();
        A.free(z).unwrap();
    }
}

/// Large objects past the purge threshold give their interior pages back when freed or moved by
/// realloc. Every live block is checked against its pattern before it goes, so a purge that
/// reached into a live neighbour, or into the core's own bookkeeping, fails here.
#[test]
fn purged_large_objects_leave_live_neighbours_intact() {
    let mut rng = Rng(0x5eed);
    let mut live: Vec<(*mut u8, usize)> = Vec::new();
    for round in 0..400 / SCALE {
        match rng.below(3) {
            0 | 1 if live.len() < 12 => {
                let size = 300_000 + rng.below(900_000) as usize;
                let p = A.malloc(size);
                assert!(!p.is_null());
                fill(p, size);
                live.push((p, size));
            }
            0 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (p, size) = live[i];
                let new_size = 300_000 + rng.below(900_000) as usize;
                // SAFETY: `p` is live; on success it is replaced by the result.
                let q = unsafe { A.realloc(p, new_size) };
                assert!(!q.is_null());
                for j in 0..size.min(new_size) {
                    // SAFETY: `q` holds at least `new_size` bytes.
                    assert_eq!(unsafe { q.add(j).read() }, pattern(p as usize, j));
                }
                fill(q, new_size);
                live[i] = (q, new_size);
            }
            _ if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (p, size) = live.swap_remove(i);
                verify(p, size);
                // SAFETY: `p` is live.
                unsafe { A.free(p).unwrap() };
            }
            _ => {}
        }
        if round % 16 == 0 {
            for &(p, size) in &live {
                verify(p, size);
            }
        }
    }
    for (p, size) in live {
        verify(p, size);
        // SAFETY: `p` is live.
        unsafe { A.free(p).unwrap() };
    }
}
