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
