//! freespace-malloc: a raw malloc core with an embedded free list.
//!
//! `malloc` hands out addresses, and once an address has escaped the allocator can never move
//! the block behind it. All it can do about fragmentation is split blocks well and merge free
//! neighbours (coalescing). This crate does exactly that, for real use and in a form a reader
//! can follow.
//!
//! # Usage
//! ```
//! use core::alloc::Layout;
//! use freespace_malloc::{Coalescing, FirstFit, Heap, HeapConfig, ListOrder, OsSource};
//!
//! // The default: segregated fit (TLSF-style bins), immediate coalescing, pages from the OS.
//! let mut heap = Heap::new();
//! let p = heap.malloc(Layout::new::<[u64; 8]>()).unwrap();
//! // SAFETY: `p` is live and freed once.
//! unsafe { heap.free(p) }.unwrap();
//!
//! // A textbook heap: first fit over an address-ordered list, deferred coalescing.
//! let config = HeapConfig::new().with_coalescing(Coalescing::Deferred);
//! let mut textbook = Heap::with_parts(OsSource::new(), FirstFit::new(ListOrder::AddressOrdered), config);
//! let q = textbook.malloc(Layout::from_size_align(100, 1).unwrap()).unwrap();
//! assert_eq!(textbook.stats().requested_bytes, 100);
//! // SAFETY: `q` is live and freed once.
//! unsafe { textbook.free(q) }.unwrap();
//! textbook.check().unwrap();
//! ```
//!
//! # What is in the crate
//! - [`Heap`]: blocks with 16-byte headers (size, flags, a magic number keyed to the block's
//!   address and size), an embedded doubly linked free list, boundary tags, splitting and
//!   coalescing ([`Coalescing`]: immediate, deferred or never), aligned allocation, `realloc`
//!   in place, exact [`HeapStats`], `check()` and `blocks()`.
//! - Placement policies behind one trait, [`Policy`]: [`FirstFit`], [`NextFit`], [`BestFit`],
//!   [`WorstFit`] over one list in any [`ListOrder`] (O(n), and they count the elements they
//!   search), and [`SegregatedFit`] (O(1), the default). [`AnyPolicy`] picks one at run time.
//! - Memory from a [`Source`]: [`OsSource`] (mmap, and munmap of free regions and region tails)
//!   or [`FixedRegion`] (a caller's buffer; no_std).
//! - [`LockedHeap`]: a `#[global_allocator]` and allocator-api2 `Allocator`, behind a
//!   [`SpinLock`] that never allocates.
//! - [`SimHeap`]: the same engine and policies over a simulated address range, as the
//!   textbook's `malloc.py` simulator does (needs the `alloc` feature).
//! - [`BuddyHeap`]: binary buddy allocation.
//!
//! # Safety and correctness
//! Bad frees are refused with a [`FreeError`] and leave the heap unchanged. The policies touch
//! block metadata only through the engine's `FreeLinks` view, and `Policy` is an unsafe trait
//! whose contract says which blocks they may name. Blocks are named by [`Block`], a pointer
//! that keeps the provenance of its region, so no integer is ever turned into a pointer: every
//! test of the crate passes under Miri with `-Zmiri-strict-provenance` (`.ci/miri-malloc`).
//! Randomized tests run every policy, list order and coalescing mode against a model, with
//! `check()` after every step.
//!
//! # Performance
//! Segregated fit finds a block with two bit scans and no search; the textbook fits are O(n) in
//! the free list. See `docs/malloc.md` for the design and `docs/benchmarks.md` for numbers.
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
