//! The placement-policy plug: the [`Policy`] trait, and the names used to choose a policy at
//! run time ([`Fit`], [`ListOrder`], [`AnyPolicy`]).
//!
//! A policy owns the free lists' heads (and any bitmaps) but not the links: those live in the
//! free blocks, reached through [`FreeLinks`]. Invariant: a block is on a policy's lists exactly
//! while it is free and the engine has inserted it and not yet removed it.

use crate::error::Corruption;
use crate::list_fit::{BestFit, FirstFit, NextFit, WorstFit};
use crate::segregated::SegregatedFit;
use crate::space::{Block, FreeLinks};

/// Which placement policy to use, for choosing one at run time (see [`AnyPolicy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fit {
    /// The first block that is big enough, searching from the list's head.
    First,
    /// Like first fit, but each search starts where the previous one stopped.
    Next,
    /// The smallest block that is big enough (searches the whole list).
    Best,
    /// The largest block (searches the whole list).
    Worst,
    /// Two-level size-class bins with bitmaps (TLSF-style): O(1) good fit.
    Segregated,
}

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

impl Fit {
    /// All five fits.
    pub const ALL: [Fit; 5] = [
        Fit::First,
        Fit::Next,
        Fit::Best,
        Fit::Worst,
        Fit::Segregated,
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

/// A policy chosen at run time: one of the five fits, dispatched by a `match`.
///
/// Used by the command-line tools, where the policy is a flag. Code that knows its policy at
/// compile time should use the concrete type instead.
// The segregated bins are large, but boxing them would allocate, which a heap must not.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AnyPolicy {
    /// [`FirstFit`].
    First(FirstFit),
    /// [`NextFit`].
    Next(NextFit),
    /// [`BestFit`].
    Best(BestFit),
    /// [`WorstFit`].
    Worst(WorstFit),
    /// [`SegregatedFit`] (it ignores the list order).
    Segregated(SegregatedFit),
}

impl AnyPolicy {
    /// The policy for `fit`, with its single list kept in `order` (ignored by segregated fit).
    pub const fn new(fit: Fit, order: ListOrder) -> Self {
        match fit {
            Fit::First => AnyPolicy::First(FirstFit::new(order)),
            Fit::Next => AnyPolicy::Next(NextFit::new(order)),
            Fit::Best => AnyPolicy::Best(BestFit::new(order)),
            Fit::Worst => AnyPolicy::Worst(WorstFit::new(order)),
            Fit::Segregated => AnyPolicy::Segregated(SegregatedFit::new()),
        }
    }

    /// Which fit this is.
    pub const fn fit(&self) -> Fit {
        match self {
            AnyPolicy::First(_) => Fit::First,
            AnyPolicy::Next(_) => Fit::Next,
            AnyPolicy::Best(_) => Fit::Best,
            AnyPolicy::Worst(_) => Fit::Worst,
            AnyPolicy::Segregated(_) => Fit::Segregated,
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            AnyPolicy::First($p) => $e,
            AnyPolicy::Next($p) => $e,
            AnyPolicy::Best($p) => $e,
            AnyPolicy::Worst($p) => $e,
            AnyPolicy::Segregated($p) => $e,
        }
    };
}

// SAFETY: every arm forwards to a policy that keeps the `Policy` contract itself.
unsafe impl Policy for AnyPolicy {
    fn insert<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize) {
        dispatch!(self, p => p.insert(links, block, size))
    }
    fn remove<L: FreeLinks>(&mut self, links: &mut L, block: Block, size: usize) {
        dispatch!(self, p => p.remove(links, block, size))
    }
    fn find<L: FreeLinks>(&mut self, links: &L, size: usize, searched: &mut u64) -> Option<Block> {
        dispatch!(self, p => p.find(links, size, searched))
    }
    fn take<L: FreeLinks>(
        &mut self,
        links: &mut L,
        size: usize,
        searched: &mut u64,
    ) -> Option<(Block, usize)> {
        dispatch!(self, p => p.take(links, size, searched))
    }
    fn list_count(&self) -> usize {
        dispatch!(self, p => p.list_count())
    }
    fn list_head(&self, list: usize) -> Block {
        dispatch!(self, p => p.list_head(list))
    }
    fn next_list(&self, list: usize) -> Option<usize> {
        dispatch!(self, p => p.next_list(list))
    }
    fn verify<L: FreeLinks>(&self, links: &L) -> Result<(), Corruption> {
        dispatch!(self, p => p.verify(links))
    }
    fn name(&self) -> &'static str {
        dispatch!(self, p => p.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_policy_is_the_fit_it_was_made_with() {
        for fit in Fit::ALL {
            let p = AnyPolicy::new(fit, ListOrder::Lifo);
            assert_eq!(p.fit(), fit);
            assert!(p.name().ends_with("fit"));
        }
        assert_eq!(
            AnyPolicy::new(Fit::Segregated, ListOrder::Fifo).list_count(),
            48 * 64
        );
        assert_eq!(AnyPolicy::new(Fit::Best, ListOrder::Fifo).list_count(), 1);
    }
}
