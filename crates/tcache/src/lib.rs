#![doc = include_str!("../README.md")]
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
