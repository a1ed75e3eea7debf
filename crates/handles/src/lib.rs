//! freespace-handles: a relocatable arena with generational handles, pinning and pluggable
//! compaction.
//!
//! # Why this crate can compact and malloc cannot
//! `malloc` returns an address. Once the program holds it, in a local, a struct field or a
//! pointer in another block, the allocator cannot know where the copies are, so it can never
//! move the block: all it can do with free space is split it and merge free neighbours
//! (coalescing), and holes between live blocks stay holes. This arena returns a *name* instead:
//! a [`Handle`] is a slot index plus a generation. Every access goes through one table, the
//! *master pointers* (the classic Mac OS Memory Manager called handles exactly this), so the
//! arena can move a block and fix one table entry, and the program never notices. That is
//! compaction: live blocks slide together and the holes merge into one free tail, which the
//! arena then gives back.
//!
//! In Rust the borrow checker adds the missing piece: [`Arena::compact`] takes `&mut self`, and
//! every reference returned by [`Arena::get`] borrows `&self`, so no reference into the buffer
//! can be alive while blocks move. When an address must leave safe Rust (FFI), [`Arena::pin`]
//! freezes the block and every compactor treats it as a barrier.
//!
//! # Usage
//! ```
//! use freespace_handles::{Arena, Budget, TwoFinger};
//!
//! let mut arena = Arena::new();
//! let names: Vec<_> = (0..8).map(|i| arena.insert(format!("block {i}"))).collect();
//! let bytes = arena.alloc_bytes(1000, 16);
//! arena.bytes_mut(bytes).unwrap()[0] = 42;
//! for h in names.iter().step_by(2) {
//!     arena.remove(*h);
//! }
//! // Incremental compaction: each step moves at most about 2 blocks.
//! while !arena.compact_with(Budget::Moves(2)).finished {}
//! assert_eq!(arena.stats().holes, 0);
//! assert_eq!(arena.bytes(bytes).unwrap()[0], 42);
//! assert_eq!(arena.get(names[1]).unwrap(), "block 1");
//!
//! // Another compactor plugs in the same way.
//! let mut other = Arena::with_compactor(TwoFinger::new());
//! let h = other.insert(3.5f64);
//! assert_eq!(other.get(h), Some(&3.5));
//! ```
//!
//! # What is inside
//! - [`Arena`]: the buffer, the table and the space map; `insert`/`get`/`get_mut`/`remove`,
//!   `alloc_bytes`/`bytes`/`resize`/`free_bytes`, `pin`/`unpin`, `compact`/`compact_with`,
//!   `stats`, and `try_` forms that return an [`ArenaError`].
//! - Allocation inside the buffer: a fitting hole first (segregated size bins with a bitmap,
//!   as in TLSF, not a scan), then bump at the top, then the [`GrowthPolicy`]: compact-then-grow (Mac OS),
//!   defragment past a threshold (Redis), or manual. After a pass the buffer shrinks.
//! - [`Compactor`]: the plug, working through a checked [`Relocator`]. [`Sliding`] keeps
//!   address order and moves each block at most once; [`TwoFinger`] fills the lowest holes from
//!   the top and moves fewer bytes. [`Budget`] bounds an incremental step.
//! - [`SharedArena`]: concurrent readers under a reader-writer lock, compaction in bounded
//!   steps; its protocol is model-checked with loom (`.ci/loom-handles`).
//!
//! # Comparison with similar crates
//! - **slotmap**, **generational-arena**: the same generational handles, but every value of
//!   one type lives in its own slot, so there is no shared buffer to fragment and nothing to
//!   compact. Here values of any type and raw byte blocks share one buffer, the table maps
//!   handles to offsets, and compaction gives the holes back. `get` costs about as much as
//!   slotmap's (see `docs/benchmarks.md`); insert and remove cost more, since they
//!   also place the bytes and keep the hole index that coalescing and fitting need.
//! - **The classic Mac OS Memory Manager** (`NewHandle`, `HLock`, `MoveHHi`): the model for
//!   master pointers, locking (here: counted [`Arena::pin`]) and compact-before-grow
//!   ([`GrowthPolicy::CompactThenGrow`]).
//! - **Compacting garbage collectors** (Lisp-2 sliding, two-finger): the two shipped
//!   [`Compactor`]s. Unlike a collector, the arena does not trace: the program frees
//!   explicitly, and compaction only closes the holes.
//!
//! # Safety and correctness
//! - A handle carries its slot's generation key; removal bumps the key's counter, so a stale
//!   handle is refused, never aliased. A slot whose counter (20 bits) would overflow is retired.
//! - A handle's index carries its arena's id, so another arena refuses it: always while at most
//!   4096 arenas are alive and no table has more than 2^20 slots (see [`Handle`] for the exact
//!   rule).
//! - The key's high 12 bits are the value type's process-wide tag, so the same single compare
//!   that checks the generation also checks the type: even past those limits, a handle used on
//!   the wrong arena can at worst find another value of the same type, never reinterpret
//!   bytes. A process may store up to 4096 distinct types in arenas
//!   ([`ArenaError::TooManyTypes`] beyond).
//! - Drop glue runs exactly once: on `remove` (the value is returned), on `clear`, or when the
//!   arena drops.
//! - Alignments up to [`MAX_ALIGN`] (4096) are supported; the buffer's base is aligned to it.
//!   Larger ones are refused with [`ArenaError::BadAlignment`].
//! - While a non-empty block is pinned the buffer can neither grow nor shrink (it would move):
//!   reserve capacity up front ([`ArenaConfig::initial_capacity`]) if you pin.
//! - `Arena` is neither `Send` nor `Sync`, since it may hold any `'static` value; share values
//!   that are `Send + Sync` through [`SharedArena`].
//!
//! # Performance
//! `get` is one XOR (the arena's id out of the handle's index), an index into the table
//! (16-byte entries), one key compare and a pointer add: 14 instructions per `get` in a loop,
//! counted with callgrind. See
//! `docs/benchmarks.md` for measured ratios against slotmap and memcpy.
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
