#![doc = include_str!("../README.md")]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod arena;
mod arena_id;
mod buffer;
pub mod compactor;
mod error;
mod fit_tree;
mod free_space;
mod handle;
mod hole_bins;
mod live_index;
mod offset_map;
mod policy;
mod prefetch;
mod shared;
mod stats;
mod store;
mod sync;
mod table;

#[cfg(test)]
mod tests;

pub use arena::Arena;
pub use buffer::{MAX_ALIGN, PAGE};
pub use compactor::{
    BlockInfo, Budget, CompactionReport, Compactor, MoveError, Progress, Relocator, Sliding,
    TwoFinger,
};
pub use error::ArenaError;
pub use handle::{Handle, RawHandle};
pub use policy::{ArenaConfig, GrowthPolicy};
pub use shared::{SharedArena, SharedReadGuard};
pub use stats::ArenaStats;
