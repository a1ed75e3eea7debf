//! fork() with the allocator busy on other threads: `prefork` takes every lock, so the child
//! inherits consistent central lists, and after `postfork_child` it can allocate and free. A child
//! that deadlocked or crashed would not exit with status 0.

use freespace_tcache::ThreadCached;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

static A: ThreadCached = ThreadCached::new();

#[test]
fn child_allocates_after_fork_while_other_threads_churn() {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let p = A.malloc(16 + (n * 37 + t) % 40_000);
                    assert!(!p.is_null());
                    // SAFETY: `p` is live and freed once.
                    unsafe { A.free(p).unwrap() };
                    n += 1;
                }
            })
        })
        .collect();
    for _ in 0..20 {
        A.prefork();
        // SAFETY: fork has no preconditions; the child only uses the allocator and `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // A child stuck on a lock inherited from the parent is killed, which fails the test.
            // SAFETY: `alarm` only arms a timer.
            unsafe { libc::alarm(20) };
            A.postfork_child();
            let mut ok = true;
            for i in 0..10_000usize {
                let size = 1 + (i * 131) % 70_000;
                let p = A.malloc(size);
                ok &= !p.is_null();
                if !p.is_null() {
                    // SAFETY: `p` holds `size` bytes and is freed once.
                    unsafe {
                        p.write_bytes(0x5a, size);
                        ok &= A.free(p).is_ok();
                    }
                }
            }
            // SAFETY: `_exit` ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        A.postfork_parent();
        assert!(pid > 0, "fork failed");
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: {status}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}
