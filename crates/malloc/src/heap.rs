//! [`Heap`]: the engine over real memory, with the C-like API (`malloc`, `free`, `realloc`,
//! `calloc`, `usable_size`) and its insight calls (`stats`, `check`, `blocks`).
//!
//! Invariant: every pointer the heap hands out is 16-aligned (or aligned as asked), sits 16
//! bytes past its block's header, and stays valid until it is freed; a refused call leaves the
//! heap exactly as it was.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::config::HeapConfig;
use crate::engine::Engine;
use crate::error::{AllocError, Corruption, FreeError};
use crate::placement::Policy;
use crate::placement::SegregatedFit;
use crate::raw_heap::{BlockInfo, RawHeap};
use crate::raw_space::{RawSpace, ALIGN, HEADER, MIN_BLOCK};
use crate::source::{FixedRegion, Source};
use crate::space::{Block, FreeLinks, Space};
use crate::stats::HeapStats;

/// The source a [`Heap`] uses when none is named: the OS where there is one.
#[cfg(all(feature = "std", unix))]
pub type DefaultSource = crate::source::OsSource;
/// The source a [`Heap`] uses when none is named: a fixed region (there is no OS to ask).
#[cfg(not(all(feature = "std", unix)))]
pub type DefaultSource = FixedRegion;

/// A raw heap: blocks with headers in memory from a [`Source`], placed by a [`Policy`].
///
/// `Heap::new()` is the default heap: segregated fit, immediate coalescing, memory from the OS.
///
/// ```
/// use core::alloc::Layout;
/// use freespace_malloc::Heap;
///
/// let mut heap = Heap::new();
/// let p = heap.malloc(Layout::from_size_align(100, 8).unwrap()).unwrap();
/// // SAFETY: `p` is live.
/// assert_eq!(unsafe { heap.usable_size(p) }, Ok(112));
/// assert_eq!(heap.stats().requested_bytes, 100);
/// // SAFETY: `p` is live and freed once.
/// unsafe { heap.free(p) }.unwrap();
/// // SAFETY: the second free only reads the header, which is still in the heap's region.
/// assert_eq!(unsafe { heap.free(p) }, Err(freespace_malloc::FreeError::DoubleFree));
/// heap.check().unwrap();
/// ```
pub struct Heap<S: Source = DefaultSource, P: Policy = SegregatedFit> {
    engine: Engine<RawSpace<S>, P>,
}

#[cfg(all(feature = "std", unix))]
impl Heap<crate::source::OsSource, SegregatedFit> {
    /// The default heap: segregated fit, immediate coalescing, grows from the OS.
    pub const fn new() -> Self {
        Self::with_parts(
            crate::source::OsSource::new(),
            SegregatedFit::new(),
            HeapConfig::new(),
        )
    }
}

#[cfg(all(feature = "std", unix))]
impl Default for Heap<crate::source::OsSource, SegregatedFit> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> Heap<FixedRegion, P> {
    /// A heap in the caller's memory `[start, start + len)`. It never grows.
    ///
    /// # Safety
    /// As for [`FixedRegion::new`]: the memory must stay valid, and untouched by anything else,
    /// for as long as the heap and the pointers it hands out are used.
    pub unsafe fn in_region(start: NonNull<u8>, len: usize, policy: P, config: HeapConfig) -> Self {
        // SAFETY: the caller's promise is the one `FixedRegion::new` asks for.
        Self::with_parts(unsafe { FixedRegion::new(start, len) }, policy, config)
    }

    /// A heap in a static buffer, which it owns from now on. It never grows.
    pub fn from_static(buf: &'static mut [u8], policy: P, config: HeapConfig) -> Self {
        Self::with_parts(FixedRegion::from_static(buf), policy, config)
    }
}

impl<S: Source, P: Policy> core::fmt::Debug for Heap<S, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("policy", &self.engine.policy.name())
            .field("config", &self.engine.config)
            .field("regions", &self.region_count())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The block size (header included) that serves `size` bytes.
#[inline]
fn block_size_for(size: usize) -> Result<usize, AllocError> {
    if size > isize::MAX as usize - 2 * MIN_BLOCK {
        return Err(AllocError::TooLarge);
    }
    Ok(((size + HEADER + ALIGN - 1) & !(ALIGN - 1)).max(MIN_BLOCK))
}

/// The payload of `block`, with the provenance of its region.
#[inline]
fn payload(block: Block) -> Result<NonNull<u8>, AllocError> {
    NonNull::new((block + HEADER).as_ptr()).ok_or(AllocError::OutOfMemory)
}

impl<S: Source, P: Policy> Heap<S, P> {
    /// A heap over `source`, placing blocks with `policy`, behaving as `config` says. No memory
    /// is taken from the source until the first allocation.
    pub const fn with_parts(source: S, policy: P, config: HeapConfig) -> Self {
        Heap {
            engine: Engine::new(RawSpace::new(source), policy, config),
        }
    }

    /// Allocates a block for `layout`. The payload is 16-aligned, or aligned to
    /// `layout.align()` if that is larger (the padding in front becomes a free block).
    ///
    /// # Errors
    /// `ZeroSize` and `TooLarge` before anything changes; `OutOfMemory` when no free block is
    /// large enough and the source gives nothing that is: under deferred coalescing the merge
    /// pass has run by then, and stays (see [`AllocError::OutOfMemory`]).
    #[inline]
    pub fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let size = layout.size();
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let need = block_size_for(size)?;
        let align = if layout.align() > ALIGN {
            layout.align()
        } else {
            0
        };
        let block = self.engine.alloc_block(need, align, size)?;
        payload(block)
    }

    /// Frees the block whose payload starts at `ptr`. Its size comes from its header.
    ///
    /// A pointer outside the heap, not on a payload boundary, with a header that fails the magic
    /// check, or to a block already free is refused with the matching [`FreeError`], and the
    /// heap is left exactly as it was.
    ///
    /// # Safety
    /// If `ptr` is a live allocation of this heap, nothing may use it after this call. A `ptr`
    /// that is not must still not point at memory that is being changed concurrently (the
    /// checks read the bytes in front of it when it lies inside the heap).
    #[inline]
    pub unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), FreeError> {
        let block = self.engine.space.lookup(ptr.as_ptr() as usize)?;
        self.engine.free_block(block);
        Ok(())
    }

    /// Resizes the block at `ptr` to `new_layout.size()` bytes, aligned to `new_layout.align()`.
    /// It stays in place when it can: shrinking, or growing into a free block after it, except
    /// under [`Coalescing::Never`](crate::Coalescing::Never), where blocks only ever split.
    /// Otherwise the contents move to a new block and the old one is freed. On error the old
    /// block is untouched (and `OutOfMemory` means what it does for [`malloc`](Self::malloc)).
    ///
    /// # Safety
    /// `ptr` must be a live allocation of this heap. On success the old pointer must not be
    /// used again unless it is the one returned.
    pub unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        let size = new_layout.size();
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let block = self
            .engine
            .space
            .lookup(ptr.as_ptr() as usize)
            .map_err(|_| AllocError::InvalidPointer)?;
        let need = block_size_for(size)?;
        let align = new_layout.align();
        if (align <= ALIGN || ptr.as_ptr() as usize % align == 0)
            && self.engine.resize_in_place(block, need, size)
        {
            return Ok(ptr);
        }
        // As C's realloc: the contents up to the lesser of the old and new requested sizes.
        let old_size = self.engine.space.requested(block);
        let new = self.malloc(new_layout)?;
        // SAFETY: both blocks are live, distinct blocks of this heap, each at least as long as
        // the bytes copied.
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(size)) };
        self.engine.free_block(block);
        Ok(new)
    }

    /// Allocates `count * size` zeroed bytes (16-aligned). The multiplication is checked.
    pub fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        let total = count.checked_mul(size).ok_or(AllocError::TooLarge)?;
        let layout = Layout::from_size_align(total, 1).map_err(|_| AllocError::TooLarge)?;
        self.calloc_layout(layout)
    }

    /// Allocates a zeroed block for `layout`.
    pub fn calloc_layout(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let p = self.malloc(layout)?;
        // SAFETY: the block was just allocated with at least `layout.size()` payload bytes.
        unsafe { p.as_ptr().write_bytes(0, layout.size()) };
        Ok(p)
    }

    /// The payload bytes of the block at `ptr` (at least what was asked for).
    ///
    /// # Safety
    /// As for [`free`](Self::free): `ptr` must not point at memory being changed concurrently.
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, FreeError> {
        let block = self.engine.space.lookup(ptr.as_ptr() as usize)?;
        Ok(self.engine.space.block_size(block) - HEADER)
    }

    /// Whether `ptr` lies inside one of this heap's regions.
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.engine.space.owns(ptr as usize)
    }

    /// Exact statistics. O(free blocks) for the largest free block; the rest is kept running.
    pub fn stats(&self) -> HeapStats {
        self.engine.stats()
    }

    /// Walks the whole heap and every free list, and checks every invariant: block sizes tile
    /// each region, headers carry the right magic numbers, boundary tags and neighbour flags
    /// agree, no two free blocks are neighbours under immediate coalescing, the free lists hold
    /// exactly the free blocks, and the running statistics match. O(blocks).
    pub fn check(&self) -> Result<(), Corruption> {
        self.engine.check()
    }

    /// The blocks in address order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        self.engine.blocks()
    }

    /// Merges free neighbours (if coalescing is deferred), gives every whole free page at the
    /// end of a region back to the source now, whatever the trim threshold, and lets the source
    /// drop the whole pages inside the other free blocks (madvise, for the OS source). Returns
    /// the bytes given back or dropped.
    pub fn release_free_memory(&mut self) -> usize {
        self.engine.release_free_memory()
    }

    /// Runs the deferred-coalescing pass now, if coalescing is
    /// [`Deferred`](crate::Coalescing::Deferred). Under `Immediate` no two free blocks are
    /// neighbours, and under `Never` blocks never merge: there it does nothing.
    pub fn coalesce(&mut self) {
        self.engine.coalesce()
    }

    /// The configuration the heap was made with.
    pub fn config(&self) -> HeapConfig {
        self.engine.config
    }

    /// The placement policy.
    pub fn policy(&self) -> &P {
        &self.engine.policy
    }

    /// The memory source.
    pub fn source(&self) -> &S {
        &self.engine.space.source
    }

    /// How many regions the heap holds now.
    pub fn region_count(&self) -> usize {
        self.engine.space.region_count()
    }

    /// The header bytes in front of every payload (16).
    pub const HEADER_SIZE: usize = HEADER;
    /// The smallest block, header included (32).
    pub const MIN_BLOCK: usize = MIN_BLOCK;
}

/// Each call is the inherent method of the same name.
impl<S: Source, P: Policy> RawHeap for Heap<S, P> {
    type Ptr = NonNull<u8>;

    #[inline]
    fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        Heap::malloc(self, layout)
    }
    fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        Heap::calloc(self, count, size)
    }
    #[inline]
    unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), FreeError> {
        // SAFETY: the caller keeps `RawHeap::free`'s contract, which is `Heap::free`'s.
        unsafe { Heap::free(self, ptr) }
    }
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller keeps `RawHeap::realloc`'s contract, which is `Heap::realloc`'s.
        unsafe { Heap::realloc(self, ptr, new_layout) }
    }
    unsafe fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, FreeError> {
        // SAFETY: the caller keeps `RawHeap::usable_size`'s contract, which is `Heap`'s.
        unsafe { Heap::usable_size(self, ptr) }
    }
    fn stats(&self) -> HeapStats {
        Heap::stats(self)
    }
    fn check(&self) -> Result<(), Corruption> {
        Heap::check(self)
    }
    fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        Heap::blocks(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Coalescing;
    use crate::placement::FirstFit;
    use crate::placement::ListOrder;
    use std::vec;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    fn fixed<P: Policy>(
        buf: &mut [u128],
        policy: P,
        coalescing: Coalescing,
    ) -> Heap<FixedRegion, P> {
        let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer outlives the heap in each test.
        unsafe {
            Heap::in_region(
                start,
                buf.len() * 16,
                policy,
                HeapConfig::new().with_coalescing(coalescing),
            )
        }
    }

    #[test]
    fn realloc_grows_and_shrinks_in_place() {
        let mut buf = vec![0u128; 1024];
        let mut heap = fixed(&mut buf, SegregatedFit::new(), Coalescing::Immediate);
        let p = heap.malloc(layout(100)).unwrap();
        // SAFETY: `p` is live; each realloc returns the live pointer.
        unsafe {
            p.as_ptr().write_bytes(9, 100);
            let q = heap.realloc(p, layout(1000)).unwrap();
            assert_eq!(q, p, "the free space after the block was used");
            assert_eq!(heap.usable_size(q), Ok(1008));
            let r = heap.realloc(q, layout(40)).unwrap();
            assert_eq!(r, p, "shrinking never moves");
            assert_eq!(heap.usable_size(r), Ok(48));
            assert_eq!(core::slice::from_raw_parts(r.as_ptr(), 40), [9u8; 40]);
            assert_eq!(heap.stats().requested_bytes, 40);
            heap.check().unwrap();
            // With a used block right after it, growing must move.
            let blocker = heap.malloc(layout(16)).unwrap();
            let s = heap.realloc(r, layout(2000)).unwrap();
            assert_ne!(s, r);
            assert_eq!(core::slice::from_raw_parts(s.as_ptr(), 40), [9u8; 40]);
            heap.free(s).unwrap();
            heap.free(blocker).unwrap();
        }
        heap.check().unwrap();
        assert_eq!(heap.stats().live_blocks, 0);
    }

    #[test]
    fn calloc_zeroes_reused_memory() {
        let mut heap = Heap::new();
        let p = heap.malloc(layout(256)).unwrap();
        // SAFETY: `p` is live with 256 bytes; freed once.
        unsafe {
            p.as_ptr().write_bytes(0xff, 256);
            heap.free(p).unwrap();
        }
        let q = heap.calloc(32, 8).unwrap();
        assert_eq!(q, p, "the same block is reused");
        // SAFETY: `q` is live with 256 bytes.
        assert!(unsafe { core::slice::from_raw_parts(q.as_ptr(), 256) }
            .iter()
            .all(|&b| b == 0));
    }

    #[test]
    fn deferred_coalescing_merges_before_failing() {
        let mut buf = vec![0u128; 256];
        let mut heap = fixed(
            &mut buf,
            FirstFit::new(ListOrder::Lifo),
            Coalescing::Deferred,
        );
        let ptrs: vec::Vec<_> = (0..8).map(|_| heap.malloc(layout(400)).unwrap()).collect();
        for p in ptrs {
            // SAFETY: live, freed once.
            unsafe { heap.free(p) }.unwrap();
        }
        assert!(heap.stats().free_blocks > 1, "nothing merged yet");
        heap.check().unwrap();
        let big = heap.malloc(layout(3000)).unwrap();
        assert_eq!(
            heap.stats().free_blocks,
            1,
            "one merge pass, then the split remainder"
        );
        // SAFETY: live, freed once.
        unsafe { heap.free(big) }.unwrap();

        let mut buf2 = vec![0u128; 256];
        let mut never = fixed(&mut buf2, FirstFit::new(ListOrder::Lifo), Coalescing::Never);
        let ptrs: vec::Vec<_> = (0..8).map(|_| never.malloc(layout(400)).unwrap()).collect();
        for p in ptrs {
            // SAFETY: live, freed once.
            unsafe { never.free(p) }.unwrap();
        }
        assert_eq!(
            never.malloc(layout(3000)),
            Err(AllocError::OutOfMemory),
            "never coalescing: shattered"
        );
        never.check().unwrap();
    }

    #[test]
    fn owns_and_blocks() {
        let mut heap = Heap::new();
        assert!(!heap.owns(core::ptr::null()));
        let p = heap.malloc(layout(10)).unwrap();
        assert!(heap.owns(p.as_ptr()));
        let blocks: vec::Vec<_> = heap.blocks().collect();
        assert_eq!(
            blocks[0].addr + Heap::<crate::source::OsSource>::HEADER_SIZE,
            p.as_ptr() as usize
        );
        assert_eq!(blocks[0].requested, 10);
        assert_eq!(
            blocks.iter().map(|b| b.size).sum::<usize>() + heap.stats().overhead_bytes,
            heap.stats().heap_bytes
        );
    }
}
