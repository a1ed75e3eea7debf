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
mod list_fit;
mod locked;
mod policy;
mod raw_space;
mod segregated;
#[cfg(feature = "alloc")]
mod sim;
mod source;
mod space;
mod spin;
mod stats;

pub use buddy::{BuddyBlock, BuddyBlocks, BuddyHeap};
pub use config::{Coalescing, HeapConfig};
pub use engine::{BlockInfo, BlockState};
pub use error::{AllocError, Corruption, FreeError};
pub use heap::{DefaultSource, Heap};
pub use list_fit::{BestFit, FirstFit, NextFit, WorstFit};
pub use locked::LockedHeap;
pub use policy::{AnyPolicy, Fit, ListOrder, Policy};
pub use segregated::SegregatedFit;
#[cfg(feature = "alloc")]
pub use sim::{SimConfig, SimHeap};
#[cfg(all(feature = "std", unix))]
pub use source::OsSource;
pub use source::{FixedRegion, Source};
pub use space::{Block, FreeLinks, NIL};
pub use spin::{SpinLock, SpinLockGuard};
pub use stats::HeapStats;
