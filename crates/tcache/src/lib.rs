//! freespace-tcache: a thread-cached front end over freespace-malloc, fast enough to be the
//! `#[global_allocator]` of a production program.
//!
//! # Usage
//! ```
//! use freespace_tcache::ThreadCached;
//!
//! #[global_allocator]
//! static GLOBAL: ThreadCached = ThreadCached::new();
//!
//! let v: Vec<u64> = (0..1000).collect();
//! assert_eq!(v.iter().sum::<u64>(), 499_500);
//! ```
//!
//! The C-style entry points serve a C ABI, whose `free` gets no size:
//! ```
//! use freespace_tcache::ThreadCached;
//! let a = ThreadCached::new();
//! let p = a.malloc(100);
//! assert!(!p.is_null());
//! // SAFETY: `p` came from `a.malloc` and is freed once.
//! unsafe {
//!     assert!(a.usable_size(p).unwrap() >= 100);
//!     a.free(p).unwrap();
//!     assert!(a.free(p).is_err()); // the double free is caught
//! }
//! ```
//!
//! # How it works
//! - **Size classes** (`size_class.rs`): 72 classes from 16 B to 32 KiB, 8 per power of two
//!   above 128 B, so rounding never wastes more than 12.5% of a request above 128 B.
//! - **Thread caches** (`local_cache.rs`, `tls.rs`): one LIFO free list per class per thread.
//!   Allocation pops and free pushes with plain loads and stores; no lock, no atomic.
//! - **Central lists** (`central.rs`): per class, a transfer cache of whole batches and the spans
//!   with free objects, behind one `CachePadded` spin lock. Caches refill and flush a batch at a
//!   time.
//! - **Spans and the page map** (`span.rs`, `page_map.rs`, `backend.rs`): spans of pages come
//!   from the core, each carved into objects of one class; a radix page map finds the span (and
//!   so the class) of any pointer without its size. Objects above 32 KiB go straight to the core.
//!   A class's spans start at one object's worth of pages and double up to full size.
//! - **Cold classes**: through the C-style entry points, a class's first [`COLD_OBJECTS`]
//!   objects come from the core, so a program that uses many classes a little does not pay a
//!   page or two per class.
//! - **Remote frees** migrate: a thread frees any object into its own cache, as in tcmalloc, and
//!   objects travel back to their spans through the central lists. See docs/tcache.md for why.
//! - **Thread exit** flushes the cache; empty spans go back to the core.
//!
//! # Safety and correctness
//! Everything shared between threads is written against the `sync` shim and model-checked by
//! loom (`.ci/loom-tcache`). The allocator never allocates through the global allocator.
//! `free` refuses pointers it does not own ([`FreeError::NotInHeap`]), pointers into a span that
//! are not the start of an object it has handed out ([`FreeError::Misaligned`]: inside an object,
//! inside the span's record, or a slot past its bump index) and double frees of small objects
//! ([`FreeError::DoubleFree`]: a freed object carries an address-keyed marker in its second word
//! until it is handed out again). Large objects get the core's own header checks.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
// Under loom only the concurrent core is built (no TLS glue, no fork handlers).
#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod backend;
mod central;
mod local_cache;
mod page_map;
mod realloc_error;
pub mod size_class;
mod span;
mod sync;
#[cfg(not(loom))]
mod thread_cached;
#[cfg(not(loom))]
mod tls;

#[cfg(test)]
mod tests;

pub use freespace_malloc::FreeError;
pub use realloc_error::ReallocError;
#[cfg(not(loom))]
pub use thread_cached::{TcacheStats, ThreadCached, COLD_OBJECTS};
