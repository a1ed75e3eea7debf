//! The errors of the raw heap: what can go wrong when allocating, freeing or checking.
//!
//! Bad input is refused *before* the heap changes: every [`FreeError`], and every
//! [`AllocError`] but `OutOfMemory`, leaves the heap exactly as it was, so a caller can report
//! the error and carry on. `OutOfMemory` is the answer of a request the heap tried to serve:
//! no live block, no byte of one and none of the counts of live bytes change, but the attempt's
//! own work stays done (see [`AllocError::OutOfMemory`]).

use core::fmt;

/// An allocation could not be served: the heap is out of memory and its source would not grow,
/// or the layout can never be served (zero size, or a size or alignment that overflows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocError {
    /// The heap has no free block large enough and its [`Source`](crate::Source) gave no more memory.
    ///
    /// The live blocks, their bytes and the counts of live bytes are as they were. What the
    /// attempt did to find room stays done, as it would have if the request had fit: the free
    /// list elements it looked at are counted in [`HeapStats::searched`](crate::HeapStats), a
    /// region the source gave (too small for this request) stays in the heap, and under
    /// [`Coalescing::Deferred`](crate::Coalescing) the merge pass has run, so the free blocks
    /// may be fewer and larger. Under `Immediate` and `Never`, on a source that gives nothing
    /// more, the blocks are exactly as they were.
    OutOfMemory,
    /// A zero-size request. The raw heap never hands out zero-size blocks.
    ZeroSize,
    /// The size plus header and alignment overflows `usize`, or exceeds what the heap can ever hold.
    TooLarge,
    /// The alignment is not a power of two, or is larger than the heap supports.
    BadAlignment,
    /// `realloc` was given a pointer that is not a live block of this heap (see [`FreeError`]
    /// for the checks); nothing was changed.
    InvalidPointer,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::OutOfMemory => "out of memory",
            AllocError::ZeroSize => "zero-size allocation",
            AllocError::TooLarge => "allocation size overflows",
            AllocError::BadAlignment => "unsupported alignment",
            AllocError::InvalidPointer => "realloc(): invalid pointer",
        })
    }
}

/// Why a pointer passed to `free` (or `realloc`, or `usable_size`) was refused.
///
/// The checks run in this order, and the first that fails is reported. A refused free never
/// changes the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FreeError {
    /// The pointer is not inside any region that this heap manages.
    NotInHeap,
    /// The pointer is inside the heap but cannot be the start of a block's payload.
    Misaligned,
    /// The header in front of the pointer does not carry the magic number for its address:
    /// the pointer was never returned by this heap, or the header was overwritten.
    BadMagic,
    /// The block is already free.
    DoubleFree,
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FreeError::NotInHeap => "free(): pointer not in heap",
            FreeError::Misaligned => "free(): misaligned pointer",
            FreeError::BadMagic => "free(): invalid pointer (bad magic number)",
            FreeError::DoubleFree => "free(): double free detected",
        })
    }
}

/// A broken heap invariant, found by `check()`. Each variant names the address where the walk
/// found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Block sizes do not tile the region: a block runs past the region's end or has size zero.
    BadTiling {
        /// Address of the offending block.
        addr: usize,
    },
    /// A header fails its magic check.
    BadMagic {
        /// Address of the offending block.
        addr: usize,
    },
    /// Two free blocks sit next to each other although coalescing is immediate.
    UncoalescedNeighbours {
        /// Address of the first of the two blocks.
        addr: usize,
    },
    /// The free lists and the free blocks found by walking the heap disagree.
    FreeListMismatch {
        /// Address of a block that is in one but not the other (or is listed twice).
        addr: usize,
    },
    /// A free block's boundary tag (footer) disagrees with its header.
    BadBoundaryTag {
        /// Address of the offending block.
        addr: usize,
    },
    /// A free-list link points outside the heap, or the links are not mutually consistent.
    BadLink {
        /// Address of the block whose link is broken.
        addr: usize,
    },
    /// The running statistics disagree with what a walk of the heap finds.
    StatsMismatch,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::BadTiling { addr } => {
                write!(f, "block sizes do not tile the region at {addr:#x}")
            }
            Corruption::BadMagic { addr } => {
                write!(f, "bad magic number in the header at {addr:#x}")
            }
            Corruption::UncoalescedNeighbours { addr } => {
                write!(
                    f,
                    "two free neighbours at {addr:#x} under immediate coalescing"
                )
            }
            Corruption::FreeListMismatch { addr } => {
                write!(f, "free lists and free blocks disagree at {addr:#x}")
            }
            Corruption::BadBoundaryTag { addr } => {
                write!(f, "boundary tag disagrees with header at {addr:#x}")
            }
            Corruption::BadLink { addr } => write!(f, "broken free-list link at {addr:#x}"),
            Corruption::StatsMismatch => f.write_str("running statistics disagree with the heap"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AllocError {}
#[cfg(feature = "std")]
impl std::error::Error for FreeError {}
#[cfg(feature = "std")]
impl std::error::Error for Corruption {}
