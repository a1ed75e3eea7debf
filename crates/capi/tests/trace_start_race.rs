//! `freespace_trace_start` called by several threads at once: exactly one call starts the
//! trace, every other one gets `EBUSY`, and no descriptor is left open after the stop.
//!
//! This binary links the library, so its exports are this process's allocator, as in the
//! library's unit tests. It holds one test, so nothing else in the process starts a trace.

use freespace_capi::extensions::{freespace_trace_start, freespace_trace_stop};
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

const THREADS: usize = 8;
const ROUNDS: usize = 50;

/// Descriptors of this process open on the file at `path` (same device and inode).
fn descriptors_on(path: &Path) -> usize {
    let file = std::fs::metadata(path).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .filter(|m| (m.dev(), m.ino()) == (file.dev(), file.ino()))
        .count()
}

#[test]
fn concurrent_starts_have_one_winner_and_leak_no_descriptor() {
    let path = std::env::temp_dir().join(format!("capi-race-{}.fstrace", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let c = Arc::new(CString::new(path.to_str().unwrap()).unwrap());
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(THREADS));
        let starters: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, c) = (barrier.clone(), c.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // SAFETY: `c` is NUL-terminated.
                    unsafe { freespace_trace_start(c.as_ptr()) }
                })
            })
            .collect();
        let results: Vec<i32> = starters.into_iter().map(|t| t.join().unwrap()).collect();
        let winners = results.iter().filter(|&&r| r == 0).count();
        let busy = results.iter().filter(|&&r| r == libc::EBUSY).count();
        assert_eq!(
            (winners, busy),
            (1, THREADS - 1),
            "round {round}: results {results:?}"
        );
        assert_eq!(
            descriptors_on(&path),
            1,
            "round {round}: one trace file open"
        );
        assert_eq!(freespace_trace_stop(), 0, "round {round}");
        assert_eq!(freespace_trace_stop(), libc::EINVAL, "round {round}");
        assert_eq!(
            descriptors_on(&path),
            0,
            "round {round}: the stop closed every descriptor"
        );
    }
    let _ = std::fs::remove_file(&path);
}
