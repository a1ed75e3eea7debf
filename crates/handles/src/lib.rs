#![doc = include_str!("../README.md")]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod arena;
mod arena_id;
mod buffer;
pub mod compactor;
mod error;
mod growth;
mod handle;
mod prefetch;
mod shared;
mod space_map;
mod stats;
mod store;
mod sync;
mod table;

#[cfg(test)]
mod tests;

pub use arena::Arena;
pub use buffer::{MAX_ALIGN, PAGE};
pub use compactor::{
    Budget, CompactionReport, Compactor, LiveBlock, MoveError, Progress, Relocator, Sliding,
    TwoFinger,
};
pub use error::{ArenaCorruption, ArenaError};
pub use growth::{ArenaConfig, GrowthPolicy};
pub use handle::{Handle, RawHandle};
pub use shared::{SharedArena, SharedReadGuard};
pub use stats::ArenaStats;
