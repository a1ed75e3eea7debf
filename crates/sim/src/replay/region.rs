//! Memory for the subjects that manage a fixed region (the core heap and the buddy heap).
//!
//! Invariant: a [`Region`] owns `layout.size()` zeroed bytes at `ptr` from creation until it
//! drops; nothing else frees them.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use super::TraceProfile;

/// A region from the global allocator, zeroed, freed on drop.
pub struct Region {
    /// The first byte.
    pub ptr: NonNull<u8>,
    /// Size and alignment.
    pub layout: Layout,
}

impl Region {
    /// The largest region that can be had, starting at `want` bytes and halving on refusal.
    pub fn zeroed(mut want: usize) -> Option<Region> {
        while want >= 4096 {
            if let Ok(layout) = Layout::from_size_align(want, 4096) {
                // SAFETY: the layout has a non-zero size.
                let ptr = unsafe { alloc_zeroed(layout) };
                if let Some(ptr) = NonNull::new(ptr) {
                    return Some(Region { ptr, layout });
                }
            }
            want /= 2;
        }
        None
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this layout and is freed once, here.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl Region {
    /// Room for a trace: `room` times its peak live bytes plus its largest request (rounding
    /// to powers of two can double a request, and holes can double it again), a power of two
    /// between 1 MiB and 1 TiB. The system zeroes pages on first touch, so room that is never
    /// used costs nothing.
    pub fn for_profile(profile: &TraceProfile) -> usize {
        profile
            .peak_live
            .saturating_add(profile.largest)
            .saturating_mul(profile.room)
            .checked_next_power_of_two()
            .unwrap_or(1 << 40)
            .clamp(1 << 20, 1 << 40)
    }

    /// Length in bytes.
    pub fn size(&self) -> usize {
        self.layout.size()
    }
}
