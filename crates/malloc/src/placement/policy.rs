//! The placement-policy plug: the [`Policy`] trait, and [`ListOrder`], the order of the single
//! list the textbook fits keep.
//!
//! A policy owns the free lists' heads (and any bitmaps) but not the links: those live in the
//! free blocks, reached through [`FreeLinks`]. Invariant: a block is on a policy's lists exactly
//! while it is free and the engine has inserted it and not yet removed it.

use crate::error::Corruption;
use crate::space::{Block, FreeLinks};

/// The order of the single explicit free list used by the textbook fits. These are the choices
/// of the textbook's `malloc.py` simulator (`-l`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListOrder {
    /// Sorted by address (`ADDRSORT`).
    AddressOrdered,
    /// A freed block goes to the front (`INSERT-FRONT`).
    Lifo,
    /// A freed block goes to the back (`INSERT-BACK`).
    Fifo,
    /// Sorted by size, smallest first (`SIZESORT+`); equal sizes keep insertion order.
    SizeAscending,
    /// Sorted by size, largest first (`SIZESORT-`); equal sizes keep insertion order.
    SizeDescending,
}

impl ListOrder {
    /// All five orders, for tests and tours that try each.
    pub const ALL: [ListOrder; 5] = [
        ListOrder::AddressOrdered,
        ListOrder::Lifo,
        ListOrder::Fifo,
        ListOrder::SizeAscending,
        ListOrder::SizeDescending,
    ];
}

/// A placement policy: where a free block is filed, and which one serves a request.
///
/// Blocks are named by address, and a block's size includes its header. The engine calls
/// `insert` when a block becomes free, `remove` before it stops being free (allocated, merged
/// or given back), and `find` to pick a block of at least `size` bytes (without removing it).
///
/// # Safety
/// Implementations touch block metadata through `links`, and for a real heap that is raw memory.
/// An implementation must only pass to `links` addresses of blocks that the engine inserted and
/// has not removed, and `find` must return only such a block, of at least the requested size.
pub unsafe trait Policy {
    /// Files a free block.
    fn insert<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize);
    /// Takes a free block off the lists. `size` is its current size.
    fn remove<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize);
    /// Picks a free block of at least `size` bytes, adding the number of list elements it
    /// examined to `searched`.
    fn find<L: FreeLinks>(&mut self, links: &L, size: usize, searched: &mut u64) -> Option<Block>;
    /// Picks a free block of at least `size` bytes as [`find`](Policy::find) does and takes it
    /// off the lists, returning it and its size. A policy that knows where the block it found
    /// is filed can unlink it without working that out again.
    #[inline]
    fn take<L: FreeLinks>(
        &mut self,
        links: &mut L,
        size: usize,
        searched: &mut u64,
    ) -> Option<(Block, usize)> {
        let block = self.find(links, size, searched)?;
        let block_size = links.block_size(block);
        self.remove(links, block, block_size);
        Some((block, block_size))
    }
    /// How many separate lists the policy keeps.
    fn list_count(&self) -> usize;
    /// The head of list `list` (or [`NIL`](crate::NIL)).
    fn list_head(&self, list: usize) -> Block;
    /// The first list at or after `list` that may hold a block, or `None` past the last such
    /// list. The engine walks the lists through it (for `stats` and `check`), so a policy that
    /// knows which lists are empty (segregated fit, from its bitmaps) lets it skip them. The
    /// default names every list.
    #[inline]
    fn next_list(&self, list: usize) -> Option<usize> {
        (list < self.list_count()).then_some(list)
    }
    /// Checks the policy's own invariants (ordering, bins, bitmaps). The engine separately
    /// checks that the lists' links are consistent and hold exactly the free blocks.
    fn verify<L: FreeLinks>(&self, links: &L) -> Result<(), Corruption>;
    /// A short name for reports ("first fit", "segregated fit", ...).
    fn name(&self) -> &'static str;
}
