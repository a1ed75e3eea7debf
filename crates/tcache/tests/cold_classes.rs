//! Cold size classes: through the C-style entry points, the first `COLD_OBJECTS` objects of a
//! class come from the core (packed with blocks of other sizes, no span of their own), and the
//! next ones from a span. Both kinds must keep their bytes, survive realloc, be freed by `free`
//! without a size, and refuse bad frees. The test runs alone in its process (one test function),
//! so no other code warms the classes it watches.

use freespace_tcache::{FreeError, ReallocError, ThreadCached, COLD_OBJECTS};

static A: ThreadCached = ThreadCached::new();

fn pattern(p: usize, i: usize) -> u8 {
    ((p >> 4) as u8).wrapping_add(i as u8).wrapping_mul(13)
}

fn fill(p: *mut u8, size: usize) {
    for i in 0..size {
        // SAFETY: the test owns `size` bytes at `p`.
        unsafe { p.add(i).write(pattern(p as usize, i)) };
    }
}

fn verify(p: *const u8, size: usize, key: usize) {
    for i in 0..size {
        // SAFETY: the test owns `size` bytes at `p`.
        let b = unsafe { p.add(i).read() };
        assert_eq!(b, pattern(key, i), "byte {i} of the block at {p:p}");
    }
}

#[test]
fn a_cold_class_is_served_by_the_core_until_it_is_busy() {
    const SIZE: usize = 100; // the 112-byte class
    let before = A.stats();

    // The cold objects: counted as objects of the core, no span made for them.
    let cold: Vec<*mut u8> = (0..COLD_OBJECTS).map(|_| A.malloc(SIZE)).collect();
    let during = A.stats();
    assert_eq!(
        during.large_objects,
        before.large_objects + COLD_OBJECTS as usize
    );
    assert_eq!(during.spans_created, before.spans_created, "no span yet");
    for &p in &cold {
        assert!(!p.is_null());
        assert_eq!(p as usize % 16, 0);
        // SAFETY: `p` is a live block.
        assert!(unsafe { A.usable_size(p) }.unwrap() >= SIZE);
        fill(p, SIZE);
    }

    // The class is busy now: the next object comes from a span.
    let warm = A.malloc(SIZE);
    let after = A.stats();
    assert!(!warm.is_null());
    assert_eq!(after.large_objects, during.large_objects);
    assert_eq!(after.spans_created, during.spans_created + 1);
    fill(warm, SIZE);

    // SAFETY: every pointer passed is a live block of `A` or points into one (readable); the
    // refused calls change nothing, and each live block is freed exactly once.
    unsafe {
        // Bad frees of a cold object are refused by the core's checks, and change nothing.
        let p = cold[0];
        assert!(A.free(p.add(16)).is_err(), "interior pointer");
        assert!(A.try_realloc(p.add(16), 200).is_err());
        verify(p, SIZE, p as usize);

        // realloc moves a cold object with its contents, to a small and to a large size.
        let q = A.try_realloc(cold[1], 300).unwrap().as_ptr();
        verify(q, SIZE, cold[1] as usize);
        let r = A.try_realloc(q, 50_000).unwrap().as_ptr();
        verify(r, SIZE, cold[1] as usize);
        A.free(r).unwrap();

        // Every other block keeps its bytes and is freed without its size.
        for &p in cold.iter().skip(2) {
            verify(p, SIZE, p as usize);
            A.free(p).unwrap();
        }
        verify(warm, SIZE, warm as usize);
        A.free(warm).unwrap();

        // A double free of a cold object is caught (the core still knows the block is free).
        let last = *cold.last().unwrap();
        assert_eq!(A.free(last), Err(FreeError::DoubleFree));
        assert!(matches!(
            A.try_realloc(last, 64),
            Err(ReallocError::Invalid(_))
        ));

        // The first object, checked and refused above, goes too.
        A.free(p).unwrap();
    }
    let end = A.stats();
    assert_eq!(
        end.large_objects, before.large_objects,
        "every core block freed"
    );

    // An aligned request of a cold class gets its alignment from the core.
    let p = A.aligned_alloc(256, 300);
    assert!(!p.is_null());
    assert_eq!(p as usize % 256, 0);
    assert_eq!(A.stats().large_objects, end.large_objects + 1);
    // SAFETY: `p` is live and freed once.
    unsafe { A.free(p).unwrap() };
}
