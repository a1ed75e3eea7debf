//! 2,000 short-lived threads, each allocating and freeing a few megabytes: the exit flush must
//! hand every cached object back so spans empty and return to the core, keeping RSS bounded.
//! (Its own test binary, so no other test's memory blurs the reading.)

use freespace_tcache::ThreadCached;
use std::thread;

static A: ThreadCached = ThreadCached::new();

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn one_thread(seed: usize) {
    let mut blocks = [(std::ptr::null_mut::<u8>(), 0usize); 256];
    for (i, slot) in blocks.iter_mut().enumerate() {
        let size = 16 + (i * 97 + seed * 13) % 8000;
        let p = A.malloc(size);
        assert!(!p.is_null());
        // SAFETY: `p` holds `size` bytes.
        unsafe { std::ptr::write_bytes(p, (i ^ seed) as u8, size) };
        *slot = (p, size);
    }
    for (i, &(p, size)) in blocks.iter().enumerate() {
        // SAFETY: `p` is live with `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, size) };
        assert!(bytes.iter().all(|&b| b == (i ^ seed) as u8));
        // SAFETY: `p` is live; the thread keeps half of the frees local and sends none remote.
        unsafe { A.free(p).unwrap() };
    }
}

#[test]
fn two_thousand_short_lived_threads_keep_rss_bounded() {
    let baseline = rss_bytes();
    let mut plateau = 0;
    // 200 rounds of 10 concurrent threads, each touching ~1 MiB and exiting.
    for round in 0..200 {
        let handles: Vec<_> = (0..10)
            .map(|t| thread::spawn(move || one_thread(round * 10 + t)))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        if round == 19 {
            plateau = rss_bytes();
        }
    }
    let after = rss_bytes();
    let stats = A.stats();
    // Without the exit flush, 2,000 threads would strand ~2 GiB in dead caches.
    assert!(
        after < baseline + 64 * 1024 * 1024,
        "RSS grew from {baseline} to {after} bytes; {stats:?}"
    );
    assert!(
        after < plateau + 16 * 1024 * 1024,
        "RSS kept growing after 200 threads: {plateau} -> {after} bytes; {stats:?}"
    );
    assert!(
        stats.spans_released > 0,
        "empty spans went back to the core: {stats:?}"
    );
    assert_eq!(stats.thread_cache_bytes, 0);
    A.release_memory();
    let released = A.stats();
    assert_eq!(released.transfer_bytes, 0);
    assert!(
        released.span_bytes < stats.span_bytes.max(1),
        "release_memory gave spans back: {released:?}"
    );
}
