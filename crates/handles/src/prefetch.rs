//! Cache prefetch hints for the bulk slide.
//!
//! A sliding pass reads blocks scattered through a buffer larger than the caches, with the
//! table entries that name them, so each small block would otherwise wait on memory. The slide
//! asks for the blocks a few places ahead of the one it copies, so that their lines arrive
//! while it works. A hint never faults and never changes what the program computes; on targets
//! without a hint instruction these functions do nothing.

/// How many blocks ahead of the one being moved a walk asks for: far enough that the lines
/// have arrived when that block's turn comes, near enough that they are still cached.
pub(crate) const DISTANCE: usize = 8;

/// How many lines of a block are asked for: large blocks are streamed by the hardware
/// prefetcher once their first lines are read.
const SPAN: usize = 256;
/// A cache line.
const LINE: usize = 64;

/// Hints that the line holding `p` will be read soon. `p` need not be valid: the hint is
/// dropped for an unmapped address.
#[inline(always)]
pub(crate) fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is part of SSE, which every x86_64 target has; a prefetch reads no
    // memory architecturally and never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints that the first bytes (up to [`SPAN`]) of `[p, p + len)` will be read soon.
#[inline(always)]
pub(crate) fn block(p: *const u8, len: usize) {
    let mut at = 0;
    while at < len.min(SPAN) {
        line(p.wrapping_add(at));
        at += LINE;
    }
}
