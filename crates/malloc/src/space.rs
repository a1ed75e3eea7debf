//! Where block metadata lives: the one seam between the allocation engine and memory.
//!
//! The engine (`engine.rs`) and the placement policies are written once, against the two traits
//! here. [`FreeLinks`] is the narrow view a policy gets of a free block (its size and its two list
//! links). `Space` is the engine's full view: headers, neighbours, growth and trimming. Real
//! memory (`raw_space.rs`) keeps all of it inside the blocks; the simulated address range
//! (`map_space.rs`) keeps it in a map. Invariant: every address passed to these methods is the start of a
//! block that the space itself laid out, and the engine never passes anything else.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::ptr;

use crate::error::{Corruption, FreeError};

/// The name of a block: the address of its header, kept as a pointer.
///
/// In a real heap the pointer carries the provenance of the region the block lies in, and so
/// does every block named from it by adding or subtracting a byte offset (`block + size`): the
/// heap reaches a block's metadata through its name and never turns an integer back into a
/// pointer. In a simulated heap a block is an address with nothing behind it
/// ([`Block::from_addr`]). Names compare, order and hash by address. A name grants no access by
/// itself: only the space that made it reads or writes through it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block(*mut u8);

// SAFETY: a `Block` is a name; memory is reached through it only by the space that owns the
// block, under that space's own rules for sharing.
unsafe impl Send for Block {}
// SAFETY: as for `Send`: sharing a name shares no access.
unsafe impl Sync for Block {}

/// The "no block" value of a free-list link: the address `usize::MAX`.
pub const NIL: Block = Block(ptr::null_mut::<u8>().wrapping_sub(1));

impl Block {
    /// The block whose header is at `p` (with `p`'s provenance).
    #[inline(always)]
    pub const fn from_ptr(p: *mut u8) -> Self {
        Block(p)
    }

    /// A block at `addr` with no memory behind it, as a simulated heap names its blocks. No
    /// memory may be read or written through it.
    #[inline(always)]
    pub const fn from_addr(addr: usize) -> Self {
        Block(ptr::null_mut::<u8>().wrapping_add(addr))
    }

    /// The header's address as a pointer.
    #[inline(always)]
    pub const fn as_ptr(self) -> *mut u8 {
        self.0
    }

    /// The header's address.
    #[inline(always)]
    pub fn addr(self) -> usize {
        self.0 as usize
    }
}

/// The name `n` bytes further on, with the same provenance (wrapping, never undefined).
impl Add<usize> for Block {
    type Output = Block;
    #[inline(always)]
    fn add(self, n: usize) -> Block {
        Block(self.0.wrapping_add(n))
    }
}

impl AddAssign<usize> for Block {
    #[inline(always)]
    fn add_assign(&mut self, n: usize) {
        self.0 = self.0.wrapping_add(n);
    }
}

/// The name `n` bytes before, with the same provenance (wrapping, never undefined).
impl Sub<usize> for Block {
    type Output = Block;
    #[inline(always)]
    fn sub(self, n: usize) -> Block {
        Block(self.0.wrapping_sub(n))
    }
}

/// The distance in bytes from `other` up to `self` (wrapping).
impl Sub<Block> for Block {
    type Output = usize;
    #[inline(always)]
    fn sub(self, other: Block) -> usize {
        self.addr().wrapping_sub(other.addr())
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.addr())
    }
}

/// What a placement [`Policy`](crate::Policy) may see and change of a free block: its size and
/// its two list links. Blocks are named by [`Block`] (the address of the block's header).
///
/// The links live in the free block's own payload for a real heap, which is why the free list
/// costs no memory beyond the free space it describes.
pub trait FreeLinks {
    /// The size of the block in bytes, header included.
    fn block_size(&self, block: Block) -> usize;
    /// The next block in the list this block is on, or [`NIL`].
    fn next(&self, block: Block) -> Block;
    /// The previous block in the list this block is on, or [`NIL`].
    fn prev(&self, block: Block) -> Block;
    /// Sets the next link of a free block.
    fn set_next(&mut self, block: Block, next: Block);
    /// Sets the previous link of a free block.
    fn set_prev(&mut self, block: Block, prev: Block);
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
pub(crate) type Cursor = (Block, Block);

/// The engine's view of block metadata. See the module docs.
pub(crate) trait Space: FreeLinks {
    /// Bytes of header in front of every payload.
    fn header_size(&self) -> usize;
    /// The smallest block (header included) that can exist on its own, free or used.
    fn min_block(&self) -> usize;
    /// The alignment every payload has without asking.
    fn natural_align(&self) -> usize;
    /// Whether the block is in use.
    fn is_used(&self, block: Block) -> bool;
    /// The bytes the caller asked for when the (used) block was handed out.
    fn requested(&self, block: Block) -> usize;
    /// Starts a new block header at `block`, inside bytes that held no header (a split): its
    /// block before it counts as used until `set_free` of that block says otherwise.
    fn fresh(&mut self, block: Block);
    /// Marks the block used with the given size. Keeps the block's knowledge of its previous
    /// neighbour and tells the following block (whose header must exist: a block, a `fresh`
    /// header or the end of the region) that its previous neighbour is now used.
    fn set_used(&mut self, block: Block, size: usize, requested: usize);
    /// Splits the used (or just taken) block `block` in two: a used block of `size` bytes
    /// followed by a new free block of `rest` bytes (on no list yet, for the caller to file).
    /// The remainder's header is written first, so that every header the space reads is one it
    /// wrote. The same as `fresh`, `set_free` of the remainder, then `set_used`; a space may do
    /// it in fewer steps.
    fn split(&mut self, block: Block, size: usize, requested: usize, rest: usize) {
        self.fresh(block + size);
        self.set_free(block + size, rest);
        self.set_used(block, size, requested);
    }
    /// [`split`](Space::split) of a block that is still free, with its own header intact (on no
    /// list), of `size` bytes: a used block of `need` bytes and a free one of `rest`. The
    /// result is the same; a space that knows what the header after a free block already says
    /// may leave it alone.
    fn split_free(
        &mut self,
        block: Block,
        size: usize,
        need: usize,
        requested: usize,
        rest: usize,
    ) {
        debug_assert_eq!(size, need + rest);
        self.split(block, need, requested, rest);
    }
    /// Changes only the requested size of a used block.
    fn set_requested(&mut self, block: Block, requested: usize);
    /// Marks the block free with the given size (header, boundary tag) and tells the following
    /// block that its previous neighbour is now free.
    fn set_free(&mut self, block: Block, size: usize);
    /// `set_free` of a used block that keeps its size (it merged with no neighbour). A space
    /// whose header check is keyed to the block's address and size may leave that check as it
    /// is, since neither changed.
    fn set_free_unmerged(&mut self, block: Block, size: usize) {
        self.set_free(block, size);
    }
    /// The block at `block` has been absorbed into a neighbour: make its header unusable (so a
    /// stale pointer to it is refused) and forget it.
    fn discard(&mut self, block: Block);
    /// The block right after this one in the same region, or `None` at the region's end.
    fn next_block(&self, block: Block) -> Option<Block>;
    /// The block right before this one, if it is free (O(1): flags and boundary tag).
    fn prev_free(&self, block: Block) -> Option<Block>;
    /// Validates a pointer handed to the user, given as its address, and returns its (used)
    /// block, named from the space's own memory (never from the user's pointer).
    fn lookup(&self, user: usize) -> Result<Block, FreeError>;
    /// Whether `addr` is inside one of the space's regions.
    fn owns(&self, addr: usize) -> bool;
    /// Adds a region able to hold (ideally) a block of `block_size` bytes. Returns the new empty
    /// area as `(block, size)`, not yet marked; `None` when the source gives nothing.
    fn grow(&mut self, block_size: usize) -> Option<(Block, usize)>;
    /// Whether `trim` can ever give memory back.
    fn can_trim(&self) -> bool;
    /// Gives back memory under a free block that ends its region (the block is on no list): the
    /// whole region if the block fills it (and it is not the first region); otherwise, with
    /// `shrink`, the region's tail (unmapped), and without, the pages the block has touched past
    /// its first `keep` bytes (dropped, at least `keep` bytes at a time, the region stays).
    fn trim(&mut self, block: Block, size: usize, keep: usize, shrink: bool) -> Trim;
    /// Lets the source drop the whole pages inside a free block (its header, links and boundary
    /// tag stay). Returns the bytes dropped.
    fn purge(&mut self, block: Block, size: usize) -> usize;
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
        visit: &mut dyn FnMut(Block, bool) -> Result<(), Corruption>,
    ) -> Result<(), Corruption>;
    /// Checks what the space records about a block's neighbours: `prev_free` is the block just
    /// before it when that block is free.
    fn check_block(&self, block: Block, prev_free: Option<Block>) -> Result<(), Corruption>;
}
