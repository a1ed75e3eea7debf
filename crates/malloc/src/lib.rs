#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(all(test, not(feature = "std")))]
extern crate std;

mod buddy;
mod config;
mod engine;
mod error;
mod heap;
mod locked;
#[cfg(feature = "alloc")]
mod map_space;
mod placement;
mod raw_heap;
mod raw_space;
#[cfg(feature = "alloc")]
mod sim_heap;
mod source;
mod space;
mod spin;
mod stats;

pub use buddy::{BuddyBlocks, BuddyHeap};
pub use config::{Coalescing, HeapConfig};
pub use error::{AllocError, Corruption, FreeError};
pub use heap::{DefaultSource, Heap};
pub use locked::LockedHeap;
pub use placement::{
    AnyPolicy, BestFit, FirstFit, Fit, ListOrder, NextFit, Policy, SegregatedFit, WorstFit,
};
pub use raw_heap::{BlockInfo, BlockState, RawHeap};
#[cfg(feature = "alloc")]
pub use sim_heap::{SimConfig, SimHeap};
#[cfg(all(feature = "std", unix))]
pub use source::OsSource;
pub use source::{FixedRegion, Source};
pub use space::{Block, FreeLinks, NIL};
pub use spin::{SpinLock, SpinLockGuard};
pub use stats::HeapStats;
