//! Choosing a placement policy at run time: [`Fit`] names one, [`AnyPolicy`] is one of them,
//! dispatched by a `match`.
//!
//! Invariant: an `AnyPolicy` is exactly the policy its [`Fit`] names, and forwards every call
//! to it.

use super::list_fit::{BestFit, FirstFit, NextFit, WorstFit};
use super::policy::{ListOrder, Policy};
use super::segregated::SegregatedFit;
use crate::error::Corruption;
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
