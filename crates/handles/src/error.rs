//! The arena's error type: every way a `try_` call can be refused.
//!
//! Invariant: a call that returns an error has not changed the arena, `stats()` included, with
//! one exception: under [`GrowthPolicy::CompactThenGrow`](crate::GrowthPolicy::CompactThenGrow)
//! a refused allocation may leave behind the compaction pass it ran before it gave up, which
//! moves unpinned blocks but changes no handle, value, pin or pinned address.

use core::fmt;

/// Why an arena operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaError {
    /// The handle does not name a live block of its type in this arena: it was removed, its slot
    /// was reused under a newer generation, or it came from another arena (within the limits
    /// that [`Handle`](crate::Handle) states).
    Stale,
    /// The block is pinned, so it may not be removed or moved.
    Pinned,
    /// The buffer must grow (or move) to satisfy the request, but some block is pinned and the
    /// buffer would move under it. Unpin, free space, or reserve capacity up front. Under
    /// [`GrowthPolicy::CompactThenGrow`](crate::GrowthPolicy::CompactThenGrow) the arena may
    /// have compacted before it gave up.
    BufferPinned,
    /// The buffer cannot grow: the allocator refused, the configured `max_capacity` is reached,
    /// or the size overflows. Under
    /// [`GrowthPolicy::CompactThenGrow`](crate::GrowthPolicy::CompactThenGrow) the arena may
    /// have compacted before it gave up.
    OutOfMemory,
    /// The requested alignment is above [`MAX_ALIGN`](crate::MAX_ALIGN) or not a power of two.
    BadAlignment(usize),
    /// A pin count would overflow `u32`.
    PinOverflow,
    /// The block is not pinned, so it cannot be unpinned.
    NotPinned,
    /// The process has stored more distinct types in arenas than a handle's type tag can
    /// name (4096).
    TooManyTypes,
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaError::Stale => f.write_str("stale handle: no live block of this type"),
            ArenaError::Pinned => f.write_str("the block is pinned"),
            ArenaError::BufferPinned => {
                f.write_str("the buffer must move to grow, but a block is pinned")
            }
            ArenaError::OutOfMemory => f.write_str("out of memory: the buffer cannot grow"),
            ArenaError::BadAlignment(a) => write!(f, "unsupported alignment {a}"),
            ArenaError::PinOverflow => f.write_str("pin count overflow"),
            ArenaError::NotPinned => f.write_str("the block is not pinned"),
            ArenaError::TooManyTypes => f.write_str("too many distinct types in arenas"),
        }
    }
}

impl std::error::Error for ArenaError {}

/// A broken arena invariant, found by [`Arena::check`](crate::Arena::check). Offsets are
/// byte offsets in the arena's buffer; slots are handle-table indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArenaCorruption {
    /// Live blocks and holes do not tile the used span: a gap, an overlap or an empty entry at
    /// `offset`, or the tiling ends at `offset` rather than at the top.
    BadTiling {
        /// Where the walk found it.
        offset: usize,
    },
    /// A hole at `offset` touches another hole or the top: holes are not coalesced.
    UncoalescedHole {
        /// Start of the hole.
        offset: usize,
    },
    /// The hole indexes (by address, by end, by size, the size bins and their bitmap) disagree
    /// with each other, at the hole at `offset` if one is to blame.
    HoleIndexMismatch {
        /// Start of the hole, if the mismatch is about one hole.
        offset: Option<usize>,
    },
    /// The hole byte count disagrees with the sum of the holes' lengths.
    HoleBytesMismatch,
    /// The used span's top lies above the buffer's capacity.
    TopAboveCapacity {
        /// The top of the used span.
        top: usize,
        /// The buffer's capacity.
        capacity: usize,
    },
    /// A live block's offset is not a multiple of its alignment.
    MisalignedBlock {
        /// The block's slot.
        slot: usize,
        /// The block's offset.
        offset: usize,
    },
    /// A live slot's offset, reserved length or index disagrees with the space map.
    SlotMismatch {
        /// The slot.
        slot: usize,
    },
    /// The space map holds a block that no slot owns.
    OrphanBlock,
    /// The arena's counters (live bytes, live blocks, pinned blocks) disagree with the table.
    CountersMismatch,
}

impl fmt::Display for ArenaCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaCorruption::BadTiling { offset } => {
                write!(f, "blocks and holes do not tile the used span at {offset}")
            }
            ArenaCorruption::UncoalescedHole { offset } => {
                write!(f, "the hole at {offset} touches another hole or the top")
            }
            ArenaCorruption::HoleIndexMismatch { offset: Some(o) } => {
                write!(f, "the hole indexes disagree about the hole at {o}")
            }
            ArenaCorruption::HoleIndexMismatch { offset: None } => {
                f.write_str("the hole indexes disagree")
            }
            ArenaCorruption::HoleBytesMismatch => {
                f.write_str("the hole byte count disagrees with the holes")
            }
            ArenaCorruption::TopAboveCapacity { top, capacity } => {
                write!(f, "top {top} above capacity {capacity}")
            }
            ArenaCorruption::MisalignedBlock { slot, offset } => {
                write!(f, "slot {slot} is misaligned at {offset}")
            }
            ArenaCorruption::SlotMismatch { slot } => {
                write!(f, "slot {slot} disagrees with the space map")
            }
            ArenaCorruption::OrphanBlock => f.write_str("the space map holds a block no slot owns"),
            ArenaCorruption::CountersMismatch => {
                f.write_str("the counters disagree with the handle table")
            }
        }
    }
}

impl std::error::Error for ArenaCorruption {}
