//! freespace-malloc: a raw malloc core with an embedded free list.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod buddy;
mod error;
mod stats;

pub use buddy::{BuddyBlock, BuddyBlocks, BuddyHeap};
pub use error::{AllocError, Corruption, FreeError};
pub use stats::HeapStats;
