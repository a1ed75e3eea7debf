//! `LockedHeap` as this test binary's `#[global_allocator]`: std collections on 4 threads.
//! Every allocation of the test harness itself goes through the heap too.

use std::collections::{BTreeMap, HashMap};

use freespace_malloc::LockedHeap;

#[cfg(not(miri))]
#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::new();

/// Under Miri the same heap, with every free handed to it eight frees later.
///
/// std frees some boxes while a function that took them by value is still running (a new
/// thread's start-up data, in `ThreadInit::init`). Miri's aliasing models keep such a box
/// protected until the function returns, so any allocator that writes its free list into the
/// freed block at once is reported there (as rlsf and linked_list_allocator are, rlsf#20).
/// Holding frees back lets the function return first; the heap still serves and frees every
/// block.
#[cfg(miri)]
#[global_allocator]
static ALLOCATOR: miri_deferred::Deferred = miri_deferred::Deferred::new();

#[cfg(miri)]
mod miri_deferred {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr;

    use freespace_malloc::{
        DefaultSource, Heap, LockedHeap, SegregatedFit, SpinLock, SpinLockGuard,
    };

    /// Frees held back, oldest first; a slot is (pointer, layout).
    const HELD: usize = 8;

    pub struct Deferred {
        heap: LockedHeap,
        held: SpinLock<[(*mut u8, Layout); HELD]>,
    }

    // SAFETY: the held pointers are blocks nobody uses any more, behind a lock.
    unsafe impl Sync for Deferred {}

    impl Deferred {
        pub const fn new() -> Self {
            Deferred {
                heap: LockedHeap::new(),
                held: SpinLock::new([(ptr::null_mut(), Layout::new::<u8>()); HELD]),
            }
        }

        pub fn lock(&self) -> SpinLockGuard<'_, Heap<DefaultSource, SegregatedFit>> {
            self.heap.lock()
        }
    }

    // SAFETY: every call reaches the heap; a freed block reaches it later, and nobody uses it
    // meanwhile.
    unsafe impl GlobalAlloc for Deferred {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded.
            unsafe { self.heap.alloc(layout) }
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            let (old, old_layout) = {
                let mut held = self.held.lock();
                let oldest = held[0];
                held.copy_within(1.., 0);
                held[HELD - 1] = (p, layout);
                oldest
            };
            if !old.is_null() {
                // SAFETY: a block this allocator handed out, freed by its user earlier.
                unsafe { self.heap.dealloc(old, old_layout) };
            }
        }
        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded.
            unsafe { self.heap.realloc(p, layout, new_size) }
        }
    }
}

/// Items each thread works through (fewer under Miri, which interprets every allocation).
const ITEMS: u64 = if cfg!(miri) { 40 } else { 20_000 };

fn work(t: u64) -> u64 {
    let mut v: Vec<u64> = Vec::new();
    let mut strings: Vec<String> = Vec::new();
    let mut tree = BTreeMap::new();
    let mut map = HashMap::new();
    for i in 0..ITEMS {
        v.push(i * t);
        if i % 3 == 0 {
            strings.push(format!("thread {t} item {i}"));
        }
        tree.insert(i ^ (t << 20), i);
        map.insert(i, vec![t as u8; (i % 97) as usize]);
        if i % 5 == 0 {
            map.remove(&(i / 2));
            tree.remove(&((i / 2) ^ (t << 20)));
        }
        if i % (ITEMS / 20) == ITEMS / 20 - 1 {
            strings.truncate(strings.len() / 2);
            strings.shrink_to_fit();
        }
    }
    for (i, s) in strings.iter().enumerate().take(100) {
        assert!(
            s.starts_with(&format!("thread {t} item ")),
            "string {i} corrupted: {s}"
        );
    }
    for (k, bytes) in &map {
        assert_eq!(bytes.len(), (k % 97) as usize);
        assert!(
            bytes.iter().all(|&b| b == t as u8),
            "vector for {k} corrupted"
        );
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * t));
    tree.values().sum::<u64>() + v.len() as u64 + map.len() as u64
}

#[test]
fn std_collections_on_four_threads() {
    let handles: Vec<_> = (1..=4)
        .map(|t| std::thread::spawn(move || work(t)))
        .collect();
    let results: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "threads disagree: {results:?}"
    );
    let heap = ALLOCATOR.lock();
    heap.check().unwrap();
    let s = heap.stats();
    assert!(s.allocations > 4 * ITEMS);
    assert!(s.frees > 0);
}

#[test]
fn allocator_api2_collections() {
    use allocator_api2::vec::Vec as AVec;
    let heap = LockedHeap::new();
    let mut v = AVec::new_in(&heap);
    let n = ITEMS as u32 / 2;
    for i in 0..n {
        v.push(i);
    }
    v.shrink_to_fit();
    let sum = n as u64 * (n as u64 - 1) / 2;
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), sum);
    let zst: AVec<(), _> = AVec::with_capacity_in(10, &heap);
    assert_eq!(zst.len(), 0);
    drop(v);
    drop(zst);
    let h = heap.lock();
    h.check().unwrap();
    assert_eq!(h.stats().live_blocks, 0);
}
