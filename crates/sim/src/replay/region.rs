//! Memory for the subjects that manage a fixed region (the core heap and the buddy heap).
//!
//! Invariant: a [`Region`] owns `layout.size()` bytes at `ptr`, page aligned and reading as
//! zero, from creation until it drops; nothing else frees them. The bytes are reserved address
//! space, not written memory: a page costs memory only once the heap in it touches that page,
//! so a region sized for the worst case costs what the replay uses.

use std::alloc::Layout;
use std::ptr::NonNull;

use super::TraceProfile;

/// Reserved, zero-reading memory for one simulated heap, given back on drop.
pub struct Region {
    /// The first byte.
    pub ptr: NonNull<u8>,
    /// Size and alignment (a page).
    pub layout: Layout,
    #[cfg(all(unix, not(miri)))]
    source: freespace_malloc::OsSource,
}

impl Region {
    /// The largest region that can be had, starting at `want` bytes and halving on refusal.
    ///
    /// On Unix the region is a fresh anonymous mapping (freespace-malloc's [`OsSource`]), whose
    /// pages the system fills with zeros when they are first touched. Elsewhere, and under
    /// Miri, it comes zeroed from the global allocator.
    ///
    /// [`OsSource`]: freespace_malloc::OsSource
    pub fn zeroed(mut want: usize) -> Option<Region> {
        while want >= 4096 {
            if let Some(region) = Region::reserve(want) {
                return Some(region);
            }
            want /= 2;
        }
        None
    }

    #[cfg(all(unix, not(miri)))]
    fn reserve(want: usize) -> Option<Region> {
        use freespace_malloc::Source as _;
        let mut source = freespace_malloc::OsSource::new();
        let (ptr, len) = source.grow(want)?;
        let layout = Layout::from_size_align(len, 4096).ok()?;
        Some(Region {
            ptr,
            layout,
            source,
        })
    }

    #[cfg(not(all(unix, not(miri))))]
    fn reserve(want: usize) -> Option<Region> {
        let layout = Layout::from_size_align(want, 4096).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
        Some(Region { ptr, layout })
    }
}

impl Drop for Region {
    #[cfg(all(unix, not(miri)))]
    fn drop(&mut self) {
        use freespace_malloc::Source as _;
        // SAFETY: `ptr` and the size are exactly the region `source.grow` mapped, and the heap
        // that used it has dropped (its subject drops the heap first), so nothing uses it.
        unsafe { self.source.release(self.ptr, self.layout.size()) };
    }

    #[cfg(not(all(unix, not(miri))))]
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this layout and is freed once, here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl Region {
    /// Room for a trace: `room` times its peak live bytes plus its largest request (rounding
    /// to powers of two can double a request, and holes can double it again), a power of two
    /// between 1 MiB and 1 TiB. Only the pages a heap touches cost memory, so room that is
    /// never used costs nothing.
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
