//! The extensions declared in include/freespace.h: statistics, cache control, and starting and
//! stopping a trace at run time. Invariant: none of them allocates through malloc.

use crate::lifecycle::ensure_init;
use crate::trace_recorder;
use crate::ALLOC;

/// `struct freespace_stats` of include/freespace.h; the two layouts must match.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct FreespaceStats {
    /// Bytes of live spans (small objects in use or cached, plus span slack).
    pub span_bytes: usize,
    /// Live spans.
    pub spans: usize,
    /// Spans ever taken from the core.
    pub spans_created: usize,
    /// Spans ever given back to the core.
    pub spans_released: usize,
    /// Bytes the core holds for the live objects it serves: large ones, over-aligned ones, and
    /// those of cold size classes.
    pub large_bytes: usize,
    /// Live objects served by the core.
    pub large_objects: usize,
    /// Bytes of free objects in the central transfer caches.
    pub transfer_bytes: usize,
    /// Bytes of free objects in the calling thread's cache.
    pub thread_cache_bytes: usize,
    /// Trace records made since the process started.
    pub trace_records: u64,
    /// Trace bytes written.
    pub trace_bytes: u64,
    /// Failed trace writes.
    pub trace_write_errors: u64,
    /// 1 while a trace is being recorded.
    pub tracing: i32,
}

/// Fills `*out` with a snapshot of the counters. Returns 0, or `EINVAL` for NULL.
///
/// # Safety
/// `out` is null or valid for a write of one `struct freespace_stats`.
#[no_mangle]
pub unsafe extern "C" fn freespace_stats(out: *mut FreespaceStats) -> i32 {
    if out.is_null() {
        return libc::EINVAL;
    }
    ensure_init();
    let s = ALLOC.stats();
    let t = trace_recorder::counters();
    let stats = FreespaceStats {
        span_bytes: s.span_bytes,
        spans: s.spans,
        spans_created: s.spans_created,
        spans_released: s.spans_released,
        large_bytes: s.large_bytes,
        large_objects: s.large_objects,
        transfer_bytes: s.transfer_bytes,
        thread_cache_bytes: s.thread_cache_bytes,
        trace_records: t.records,
        trace_bytes: t.bytes,
        trace_write_errors: t.write_errors,
        tracing: t.active as i32,
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(stats) };
    0
}

/// Sends the calling thread's cached blocks back to the shared lists.
#[no_mangle]
pub extern "C" fn freespace_flush_thread_cache() {
    ALLOC.flush_thread_cache();
}

/// Flushes the calling thread's cache and gives every empty span back to the system.
#[no_mangle]
pub extern "C" fn freespace_release_memory() {
    ALLOC.release_memory();
}

/// Starts recording a trace to `path` (appending; `%p` in the path becomes the process id).
/// Returns 0, `EINVAL` for NULL, `EBUSY` if a trace is on or another thread is starting or
/// stopping one (of several threads starting at once, exactly one gets 0), `ENXIO` for a FIFO
/// with no reader (never waited for), or open(2)'s errno.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn freespace_trace_start(path: *const libc::c_char) -> i32 {
    if path.is_null() {
        return libc::EINVAL;
    }
    ensure_init();
    // SAFETY: the caller's contract.
    unsafe { trace_recorder::start(path) }
}

/// Stops recording: flushes every thread's records and closes the file. Returns 0, or `EINVAL`
/// if no trace was on (including one that ended by itself, on a broken pipe, a file that cannot
/// grow or a descriptor the program took over, and one that another thread is starting or
/// stopping).
#[no_mangle]
pub extern "C" fn freespace_trace_stop() -> i32 {
    trace_recorder::stop()
}
