#![doc = include_str!("../README.md")]
//!
//! # This crate
//!
//! The `freespace` package is a facade: it re-exports the workspace's crates under short names,
//! and it owns the workspace's examples and benches.
//! - [`malloc`]: the raw malloc core, which can only split and coalesce;
//! - [`handles`]: the relocatable handle arena, which can compact;
//! - [`tcache`]: the thread-cached front end, a real `#[global_allocator]`.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub use freespace_handles as handles;
pub use freespace_malloc as malloc;
pub use freespace_tcache as tcache;
