//! [`RawHeap`]: the one interface of every heap that hands out raw addresses ([`Heap`],
//! [`BuddyHeap`], [`SimHeap`]), and [`BlockInfo`], the one block type their walks yield.
//!
//! Such a heap can only coalesce: once an address has been handed out, the block behind it
//! never moves. Invariant: every implementation answers each call as [`Heap`] does, with the
//! same errors, and a refused call leaves the heap exactly as it was.
//!
//! [`Heap`]: crate::Heap
//! [`BuddyHeap`]: crate::BuddyHeap
//! [`SimHeap`]: crate::SimHeap

use core::alloc::Layout;

use crate::error::{AllocError, Corruption, FreeError};
use crate::stats::HeapStats;

/// Whether a block is free or in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockState {
    /// On a free list.
    Free,
    /// Handed out.
    Used,
}

/// One block, as [`RawHeap::blocks`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    /// The block's address: where its header starts (the payload follows the header).
    pub addr: usize,
    /// The block's size in bytes, header included.
    pub size: usize,
    /// Free or used.
    pub state: BlockState,
    /// For a used block, the bytes its caller asked for; 0 for a free block.
    pub requested: usize,
}

impl BlockInfo {
    /// Whether the block is handed out.
    pub fn is_used(&self) -> bool {
        self.state == BlockState::Used
    }
}

/// A heap that hands out raw addresses, with the C-like calls and the insight calls.
///
/// Every method means what the [`Heap`](crate::Heap) method of the same name means; each type
/// documents where it differs in what it can do (a buddy heap rounds to powers of two, a
/// simulated heap has no memory behind its addresses). The methods that take an address back
/// are `unsafe`: they read the header in front of it, and those bytes must not be changing
/// under the call.
///
/// ```
/// use core::alloc::Layout;
/// use freespace_malloc::{BlockInfo, Heap, RawHeap};
///
/// fn live_bytes<H: RawHeap>(heap: &H) -> usize {
///     heap.blocks().filter(BlockInfo::is_used).map(|b| b.size).sum()
/// }
///
/// let mut heap = Heap::new();
/// let p = RawHeap::malloc(&mut heap, Layout::from_size_align(100, 8).unwrap()).unwrap();
/// assert_eq!(live_bytes(&heap), 128);
/// // SAFETY: `p` is live and freed once.
/// unsafe { RawHeap::free(&mut heap, p) }.unwrap();
/// assert_eq!(live_bytes(&heap), 0);
/// ```
pub trait RawHeap {
    /// What an allocation is named by: a pointer for a heap over memory, an address for a
    /// simulated one.
    type Ptr: Copy;

    /// Allocates a block for `layout`.
    ///
    /// # Errors
    /// `ZeroSize`, `TooLarge` or `BadAlignment` before anything changes; `OutOfMemory` when no
    /// free block is large enough.
    fn malloc(&mut self, layout: Layout) -> Result<Self::Ptr, AllocError>;

    /// Allocates `count * size` zeroed bytes, at the heap's natural alignment. The
    /// multiplication is checked (`TooLarge` on overflow).
    ///
    /// # Errors
    /// As [`malloc`](RawHeap::malloc).
    fn calloc(&mut self, count: usize, size: usize) -> Result<Self::Ptr, AllocError>;

    /// Frees the block at `ptr`; its size comes from the heap's own records. A pointer the heap
    /// did not hand out, or one already freed, is refused with the matching [`FreeError`] and
    /// the heap is left as it was.
    ///
    /// # Safety
    /// If `ptr` is a live allocation of this heap, nothing may use it after this call. A `ptr`
    /// that is not must still not point at memory that is being changed concurrently (the checks
    /// read the bytes in front of it when it lies inside the heap).
    unsafe fn free(&mut self, ptr: Self::Ptr) -> Result<(), FreeError>;

    /// Resizes the block at `ptr` to `new_layout`, in place when it can, otherwise by moving
    /// its contents. On error the old block is untouched and still live.
    ///
    /// # Errors
    /// As [`malloc`](RawHeap::malloc), and `InvalidPointer` for a `ptr` that `free` would refuse.
    ///
    /// # Safety
    /// `ptr` must be a live allocation of this heap. On success the old pointer must not be used
    /// again unless it is the one returned.
    unsafe fn realloc(
        &mut self,
        ptr: Self::Ptr,
        new_layout: Layout,
    ) -> Result<Self::Ptr, AllocError>;

    /// The payload bytes of the block at `ptr`: at least what was asked for.
    ///
    /// # Errors
    /// As [`free`](RawHeap::free) would refuse `ptr`, and nothing changes.
    ///
    /// # Safety
    /// As for [`free`](RawHeap::free): `ptr` must not point at memory being changed
    /// concurrently.
    unsafe fn usable_size(&self, ptr: Self::Ptr) -> Result<usize, FreeError>;

    /// Exact statistics.
    fn stats(&self) -> HeapStats;

    /// Walks the heap and validates every invariant it keeps.
    ///
    /// # Errors
    /// The first broken invariant found.
    fn check(&self) -> Result<(), Corruption>;

    /// The blocks in address order. The walk trusts the heap's records: run
    /// [`check`](RawHeap::check) first on a heap that may be corrupt.
    fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_;
}
