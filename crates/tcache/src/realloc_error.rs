//! `ReallocError`: why a checked resize failed. It keeps apart a pointer the allocator refuses
//! (with the same reasons as `free`) from a new size it cannot serve, which a C `realloc` must
//! report differently (abort on the first, `ENOMEM` on the second). Invariant: whichever error is
//! returned, the old block is untouched.

use core::fmt;
use freespace_malloc::FreeError;

/// Why [`ThreadCached::try_realloc`](crate::ThreadCached::try_realloc) failed. In every case the
/// old block is left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReallocError {
    /// The pointer is not a live block of this allocator, for the reason given (the same checks
    /// as [`ThreadCached::free`](crate::ThreadCached::free)): freed already, in no span and
    /// unknown to the core, or inside an object rather than at its start.
    Invalid(FreeError),
    /// The pointer is a live block, but a block of the new size could not be had.
    OutOfMemory,
}

impl fmt::Display for ReallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReallocError::Invalid(e) => write!(f, "realloc(): invalid pointer ({e})"),
            ReallocError::OutOfMemory => f.write_str("realloc(): out of memory"),
        }
    }
}

impl std::error::Error for ReallocError {}

impl From<FreeError> for ReallocError {
    fn from(e: FreeError) -> ReallocError {
        ReallocError::Invalid(e)
    }
}
