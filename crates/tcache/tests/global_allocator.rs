//! `ThreadCached` as the `#[global_allocator]` of this whole test binary: std collections, strings,
//! boxed trait objects, threads (whose spawning allocates too) and thread-local destructors that
//! allocate after the thread's cache has been flushed.

use freespace_tcache::ThreadCached;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

#[global_allocator]
static GLOBAL: ThreadCached = ThreadCached::new();

#[test]
fn std_collections_keep_their_contents() {
    let mut map: HashMap<String, Vec<u32>> = HashMap::new();
    let mut tree = BTreeMap::new();
    let mut deque = VecDeque::new();
    for i in 0..20_000u32 {
        map.entry(format!("key-{}", i % 1000)).or_default().push(i);
        tree.insert(i, i.to_string().repeat((i % 7) as usize + 1));
        deque.push_back(vec![i as u8; (i % 300) as usize]);
        if i % 3 == 0 {
            deque.pop_front();
        }
    }
    assert_eq!(map.len(), 1000);
    for (k, v) in &map {
        let n: u32 = k[4..].parse().unwrap();
        assert_eq!(v.len(), 20);
        assert!(v.iter().all(|x| x % 1000 == n));
    }
    for (i, s) in &tree {
        assert_eq!(*s, i.to_string().repeat((i % 7) as usize + 1));
    }
    for v in &deque {
        assert!(v.iter().all(|&b| b == v.first().copied().unwrap_or(0)));
    }
    let big: Vec<u64> = (0..1_000_000).collect();
    assert_eq!(big.iter().sum::<u64>(), 499_999_500_000);
}

#[test]
fn threads_pass_boxes_across_and_free_them_remotely() {
    let (tx, rx) = mpsc::channel::<Box<[u8]>>();
    let producers: Vec<_> = (0..4u8)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..20_000usize {
                    let len = 1 + (i * 31 + t as usize) % 3000;
                    tx.send(vec![t ^ (len as u8); len].into_boxed_slice())
                        .unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for b in rx {
            let first = b[0];
            assert!(b.iter().all(|&x| x == first));
            n += 1;
        }
        n
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 80_000);
}

struct AllocatesOnDrop(RefCell<Vec<String>>);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        // Runs among the thread's TLS destructors, possibly after the cache's exit flush.
        let mut v = self.0.borrow_mut();
        v.push("late".repeat(100));
        let joined: String = v.concat();
        assert!(joined.ends_with("late"));
    }
}

thread_local! {
    static LATE: AllocatesOnDrop = const { AllocatesOnDrop(RefCell::new(Vec::new())) };
}

#[test]
fn allocation_during_thread_local_destruction_works() {
    let seen = Arc::new(Mutex::new(0));
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let seen = seen.clone();
            thread::spawn(move || {
                let _ = vec![i; 100];
                LATE.with(|l| l.0.borrow_mut().push(format!("thread {i}")));
                *seen.lock().unwrap() += 1;
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), 64);
}

#[test]
fn realloc_through_vec_growth_and_shrink() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..300_000u32 {
        v.push(i);
    }
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
    let mut s = String::new();
    for i in 0..10_000 {
        s.push_str(&i.to_string());
    }
    assert!(s.starts_with("0123456789101112"));
}

#[test]
fn over_aligned_layouts() {
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    #[repr(align(65536))]
    struct Huge(u8);
    let pages: Vec<Box<Page>> = (0..50).map(|i| Box::new(Page([i as u8; 4096]))).collect();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(&**p as *const Page as usize % 4096, 0);
        assert!(p.0.iter().all(|&b| b == i as u8));
    }
    let h = Box::new(Huge(7));
    assert_eq!(&*h as *const Huge as usize % 65536, 0);
    assert_eq!(h.0, 7);
}
