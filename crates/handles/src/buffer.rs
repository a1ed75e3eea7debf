//! The arena's one contiguous buffer, obtained from the global allocator.
//!
//! Invariant: `ptr` is aligned to [`MAX_ALIGN`]; when `cap > 0` it points to `cap` bytes
//! allocated with `Layout::from_size_align(cap, MAX_ALIGN)`, and `cap` is a multiple of [`PAGE`].
//! When `cap == 0` nothing is allocated and `ptr` is a dangling, `MAX_ALIGN`-aligned pointer.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// The largest alignment a block may ask for. The buffer's base is aligned to it, so any
/// offset aligned to `a <= MAX_ALIGN` gives an address aligned to `a`.
pub const MAX_ALIGN: usize = 4096;

/// The growth and shrink granularity of the buffer.
pub const PAGE: usize = 4096;

/// A zero-sized type whose alignment is `MAX_ALIGN`, used for the dangling base pointer.
#[repr(align(4096))]
struct MaxAligned;

const _: () = assert!(core::mem::align_of::<MaxAligned>() == MAX_ALIGN);

pub(crate) struct Buffer {
    ptr: NonNull<u8>,
    cap: usize,
}

impl Buffer {
    pub(crate) fn new() -> Buffer {
        Buffer {
            ptr: NonNull::<MaxAligned>::dangling().cast(),
            cap: 0,
        }
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline]
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Reallocates the buffer to `new_cap` bytes (a multiple of `PAGE`, possibly 0). The first
    /// `min(cap, new_cap)` bytes are preserved; the base address may change. On failure the
    /// buffer is unchanged.
    pub(crate) fn set_capacity(&mut self, new_cap: usize) -> Result<(), ()> {
        debug_assert_eq!(new_cap % PAGE, 0);
        if new_cap == self.cap {
            return Ok(());
        }
        let new_layout = Layout::from_size_align(new_cap, MAX_ALIGN).map_err(|_| ())?;
        let new_ptr = if self.cap == 0 {
            // SAFETY: new_cap > 0 here (it differs from cap == 0), so the layout is non-zero.
            unsafe { alloc::alloc(new_layout) }
        } else if new_cap == 0 {
            // SAFETY: cap > 0, so ptr was allocated with this layout (the type invariant).
            unsafe { alloc::dealloc(self.ptr(), self.layout()) };
            self.ptr = NonNull::<MaxAligned>::dangling().cast();
            self.cap = 0;
            return Ok(());
        } else {
            // SAFETY: ptr was allocated with self.layout(); new_cap is non-zero and the layout
            // check above proved that it does not overflow isize when rounded to MAX_ALIGN.
            unsafe { alloc::realloc(self.ptr(), self.layout(), new_cap) }
        };
        self.ptr = NonNull::new(new_ptr).ok_or(())?;
        self.cap = new_cap;
        Ok(())
    }

    fn layout(&self) -> Layout {
        // The invariant guarantees this layout was valid when the buffer was allocated.
        Layout::from_size_align(self.cap, MAX_ALIGN).expect("buffer layout")
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: cap > 0, so ptr was allocated with this layout (the type invariant).
            unsafe { alloc::dealloc(self.ptr(), self.layout()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_shrinks_and_keeps_prefix_and_alignment() {
        let mut b = Buffer::new();
        assert_eq!(b.ptr() as usize % MAX_ALIGN, 0);
        b.set_capacity(PAGE).unwrap();
        assert_eq!(b.ptr() as usize % MAX_ALIGN, 0);
        for i in 0..PAGE {
            // SAFETY: i < cap.
            unsafe { b.ptr().add(i).write(i as u8) };
        }
        b.set_capacity(4 * PAGE).unwrap();
        assert_eq!(b.ptr() as usize % MAX_ALIGN, 0);
        b.set_capacity(PAGE).unwrap();
        for i in 0..PAGE {
            // SAFETY: i < cap and the prefix was written above and preserved by realloc.
            assert_eq!(unsafe { b.ptr().add(i).read() }, i as u8);
        }
        b.set_capacity(0).unwrap();
        assert_eq!(b.cap(), 0);
    }

    #[test]
    fn absurd_capacity_is_refused() {
        let mut b = Buffer::new();
        assert!(b.set_capacity(usize::MAX - PAGE + 1).is_err());
        assert_eq!(b.cap(), 0);
    }
}
