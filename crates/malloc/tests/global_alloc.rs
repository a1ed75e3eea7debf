//! `LockedHeap` as this test binary's `#[global_allocator]`: std collections on 4 threads.
//! Every allocation of the test harness itself goes through the heap too.

use std::collections::{BTreeMap, HashMap};

use freespace_malloc::LockedHeap;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::new();

fn work(t: u64) -> u64 {
    let mut v: Vec<u64> = Vec::new();
    let mut strings: Vec<String> = Vec::new();
    let mut tree = BTreeMap::new();
    let mut map = HashMap::new();
    for i in 0..20_000u64 {
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
        if i % 1000 == 999 {
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
    assert!(s.allocations > 4 * 20_000);
    assert!(s.frees > 0);
}

#[test]
fn allocator_api2_collections() {
    use allocator_api2::vec::Vec as AVec;
    let heap = LockedHeap::new();
    let mut v = AVec::new_in(&heap);
    for i in 0..10_000u32 {
        v.push(i);
    }
    v.shrink_to_fit();
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 49_995_000);
    let zst: AVec<(), _> = AVec::with_capacity_in(10, &heap);
    assert_eq!(zst.len(), 0);
    drop(v);
    drop(zst);
    let h = heap.lock();
    h.check().unwrap();
    assert_eq!(h.stats().live_blocks, 0);
}
