#![doc = include_str!("../README.md")]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod exports;
pub mod extensions;
mod fatal;
mod lifecycle;
mod trace_recorder;

use freespace_tcache::ThreadCached;

/// The one allocator behind every export.
pub(crate) static ALLOC: ThreadCached = ThreadCached::new();
