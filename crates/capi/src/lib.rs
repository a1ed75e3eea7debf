//! freespace-capi: `libfreespace.so`, the C allocation API over [`freespace_tcache::ThreadCached`],
//! for any program on Linux through `LD_PRELOAD`, with optional recording of an allocation trace.
//!
//! # Usage
//! ```text
//! cargo build --release -p freespace-capi
//! LD_PRELOAD=target/release/libfreespace.so python3 script.py
//! FREESPACE_TRACE=/tmp/run.fstrace LD_PRELOAD=target/release/libfreespace.so sqlite3 db.sqlite < q.sql
//! freespace replay /tmp/run.fstrace
//! ```
//! C programs can link against it directly and use the extensions in `include/freespace.h`
//! (statistics, cache control, starting and stopping a trace).
//!
//! # What it exports
//! `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`, `aligned_alloc`,
//! `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`, with errno and edge cases as in C and
//! glibc (see `exports.rs` and docs/capi.md). A pointer the allocator does not own, or a double
//! free, aborts with one line on stderr: `freespace: free(): invalid pointer 0x...`.
//!
//! # Safety and correctness
//! - Initialisation (`lifecycle.rs`) runs on the first call from any thread and from a loader
//!   constructor before `main`; a re-entrant call made while it runs (libc allocating for
//!   `pthread_atfork`) goes straight through instead of waiting for itself.
//! - `fork()` is safe: `pthread_atfork` handlers take every allocator lock and trace buffer
//!   before the fork and release them on both sides.
//! - Threads that exit flush their caches (freespace-tcache) and their trace buffers.
//! - The trace recorder (`trace_recorder.rs`) allocates nothing through malloc: per-thread
//!   `mmap`ed buffers, written with `writev(2)`. It never changes whether the program runs: a
//!   FIFO with no reader is refused rather than waited for, a reader that goes away ends the
//!   trace with EPIPE (never SIGPIPE), a file at its size limit ends it with EFBIG (never
//!   SIGXFSZ), and errno is kept. A chunk lands whole, or cut short at its end when the file
//!   cannot grow, never split. The format (`trace_format.rs`) is specified in
//!   docs/trace-format-binary.md and read by freespace-sim.
//! - `FREESPACE_TRACE` is ignored when the program runs in secure-execution mode (`AT_SECURE`:
//!   setuid, setgid, file capabilities), so it cannot make a privileged program write a file
//!   where its caller chooses.
//! - No function of this library may be called from a signal handler (POSIX does not make
//!   malloc async-signal-safe; here it can deadlock on a spin lock its own thread holds).
//!   docs/capi.md, "Signal handlers", says what is safe.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod exports;
pub mod extensions;
mod fatal;
mod lifecycle;
mod trace_recorder;

use freespace_tcache::ThreadCached;

/// The one allocator behind every export.
pub(crate) static ALLOC: ThreadCached = ThreadCached::new();
