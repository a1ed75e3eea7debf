//! Where block metadata lives: the one seam between the allocation engine and memory.
//!
//! The engine (`engine.rs`) and the placement policies are written once, against the two traits
//! here. [`FreeLinks`] is the narrow view a policy gets of a free block (its size and its two list
//! links). `Space` is the engine's full view: headers, neighbours, growth and trimming. Real
//! memory (`raw_space.rs`) keeps all of it inside the blocks; the simulated address range
//! (`sim.rs`) keeps it in a map. Invariant: every address passed to these methods is the start of a
//! block that the space itself laid out, and the engine never passes anything else.

use crate::error::{Corruption, FreeError};

/// The "no block" value of a free-list link.
pub const NIL: usize = usize::MAX;

/// What a placement [`Policy`](crate::Policy) may see and change of a free block: its size and
/// its two list links. Blocks are named by address (the address of the block's header).
///
/// The links live in the free block's own payload for a real heap, which is why the free list
/// costs no memory beyond the free space it describes.
pub trait FreeLinks {
    /// The size of the block in bytes, header included.
    fn block_size(&self, block: usize) -> usize;
    /// The next block in the list this block is on, or [`NIL`].
    fn next(&self, block: usize) -> usize;
    /// The previous block in the list this block is on, or [`NIL`].
    fn prev(&self, block: usize) -> usize;
    /// Sets the next link of a free block.
    fn set_next(&mut self, block: usize, next: usize);
    /// Sets the previous link of a free block.
    fn set_prev(&mut self, block: usize, prev: usize);
}

/// What trimming did to a trailing free block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trim {
    /// Nothing could be given back; the block is unchanged.
    Kept,
    /// The region's tail went back to the source; the block now has `new_size` bytes.
    Shrunk {
        /// The block's size after trimming.
        new_size: usize,
    },
    /// The whole region (which held only this block) went back to the source.
    Released,
}

/// A walk position: (region, block). The region part is opaque to the engine.
pub(crate) type Cursor = (usize, usize);

/// The engine's view of block metadata. See the module docs.
pub(crate) trait Space: FreeLinks {
    /// Bytes of header in front of every payload.
    fn header_size(&self) -> usize;
    /// The smallest block (header included) that can exist on its own, free or used.
    fn min_block(&self) -> usize;
    /// The alignment every payload has without asking.
    fn natural_align(&self) -> usize;
    /// Whether the block is in use.
    fn is_used(&self, block: usize) -> bool;
    /// The bytes the caller asked for when the (used) block was handed out.
    fn requested(&self, block: usize) -> usize;
    /// Starts a new block header at `block`, inside bytes that held no header (a split): its
    /// block before it counts as used until `set_free` of that block says otherwise.
    fn fresh(&mut self, block: usize);
    /// Marks the block used with the given size. Keeps the block's knowledge of its previous
    /// neighbour and tells the following block (whose header must exist: a block, a `fresh`
    /// header or the end of the region) that its previous neighbour is now used.
    fn set_used(&mut self, block: usize, size: usize, requested: usize);
    /// Makes `block` a used block of `size` bytes followed by a new free block of `rest` bytes
    /// (on no list yet). The same as `fresh`, `set_free` of the remainder, then `set_used`;
    /// a space may do it in fewer steps.
    fn split_used(&mut self, block: usize, size: usize, requested: usize, rest: usize) {
        self.fresh(block + size);
        self.set_free(block + size, rest);
        self.set_used(block, size, requested);
    }
    /// Makes the free block `block` of `size` bytes (its own header intact, on no list) a used
    /// block of `need` bytes followed by a free block of `rest` bytes (on no list yet). The
    /// same as `split_used`; a space that knows what the header after a free block already
    /// says may leave it alone.
    fn carve(&mut self, block: usize, size: usize, need: usize, requested: usize, rest: usize) {
        debug_assert_eq!(size, need + rest);
        self.split_used(block, need, requested, rest);
    }
    /// Changes only the requested size of a used block.
    fn set_requested(&mut self, block: usize, requested: usize);
    /// Marks the block free with the given size (header, boundary tag) and tells the following
    /// block that its previous neighbour is now free.
    fn set_free(&mut self, block: usize, size: usize);
    /// `set_free` of a used block that keeps its size (it merged with no neighbour). A space
    /// whose header check is keyed to the block's address and size may leave that check as it
    /// is, since neither changed.
    fn set_free_unmerged(&mut self, block: usize, size: usize) {
        self.set_free(block, size);
    }
    /// The block at `block` has been absorbed into a neighbour: make its header unusable (so a
    /// stale pointer to it is refused) and forget it.
    fn discard(&mut self, block: usize);
    /// The block right after this one in the same region, or `None` at the region's end.
    fn next_block(&self, block: usize) -> Option<usize>;
    /// The block right before this one, if it is free (O(1): flags and boundary tag).
    fn prev_free(&self, block: usize) -> Option<usize>;
    /// Validates a pointer handed to the user and returns its (used) block.
    fn lookup(&self, user: usize) -> Result<usize, FreeError>;
    /// Whether `addr` is inside one of the space's regions.
    fn owns(&self, addr: usize) -> bool;
    /// Adds a region able to hold (ideally) a block of `block_size` bytes. Returns the new empty
    /// area as `(block, size)`, not yet marked; `None` when the source gives nothing.
    fn grow(&mut self, block_size: usize) -> Option<(usize, usize)>;
    /// Whether `trim` can ever give memory back.
    fn can_trim(&self) -> bool;
    /// Gives back memory under a free block that ends its region (the block is on no list): the
    /// whole region if the block fills it (and it is not the first region); otherwise, with
    /// `shrink`, the region's tail (unmapped), and without, the pages the block has touched past
    /// its first `keep` bytes (dropped, at least `keep` bytes at a time, the region stays).
    fn trim(&mut self, block: usize, size: usize, keep: usize, shrink: bool) -> Trim;
    /// Lets the source drop the whole pages inside a free block (its header, links and boundary
    /// tag stay). Returns the bytes dropped.
    fn purge(&mut self, block: usize, size: usize) -> usize;
    /// Bytes obtained from the source and not given back.
    fn heap_bytes(&self) -> usize;
    /// Bytes that belong to no block (region bookkeeping, sentinels, alignment slop).
    fn overhead_bytes(&self) -> usize;
    /// The first block of the first region.
    fn walk_first(&self) -> Option<Cursor>;
    /// The block after `at` in address order within a region, then on to the next region.
    fn walk_next(&self, at: Cursor) -> Option<Cursor>;
    /// Walks every block, checking that sizes tile each region exactly and each header is
    /// genuine; calls `visit(block, first_in_region)` for each.
    fn walk_checked(
        &self,
        visit: &mut dyn FnMut(usize, bool) -> Result<(), Corruption>,
    ) -> Result<(), Corruption>;
    /// Checks what the space records about a block's neighbours: `prev_free` is the block just
    /// before it when that block is free.
    fn check_block(&self, block: usize, prev_free: Option<usize>) -> Result<(), Corruption>;
}
