//! [`SimHeap`] and its shape, [`SimConfig`]: the same engine and policies as
//! [`Heap`](crate::Heap), over a simulated address range with no memory behind it
//! ([`MapSpace`]), in the manner of the textbook's `malloc.py`.
//!
//! Invariant: the engine's invariants hold as for a real heap, and `last_searched` is what the
//! last `malloc` searched.

use alloc::vec::Vec;

use crate::config::{Coalescing, HeapConfig};
use core::alloc::Layout;

use crate::engine::Engine;
use crate::error::{AllocError, Corruption, FreeError};
use crate::map_space::MapSpace;
use crate::placement::{AnyPolicy, Fit, ListOrder};
use crate::raw_heap::{BlockInfo, RawHeap};
use crate::space::{Block, FreeLinks, Space, NIL};
use crate::stats::HeapStats;

/// The shape of a simulated heap. The defaults are `malloc.py`'s: base 1000, size 100, header 0,
/// no alignment, best fit, address-ordered list, no coalescing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimConfig {
    /// The first address of the heap (`-b`).
    pub base: usize,
    /// The heap's size in bytes (`-S`).
    pub size: usize,
    /// Bytes of header in each block (`-H`). The address handed to the user is the block's
    /// address plus this.
    pub header_size: usize,
    /// Requests are rounded up to a multiple of this before the header is added (`-a`);
    /// 0 or 1 means no alignment.
    pub align: usize,
    /// The placement policy (`-p`, plus next fit and segregated fit).
    pub fit: Fit,
    /// The free-list order (`-l`).
    pub order: ListOrder,
    /// When free neighbours merge (`-C` is immediate; `malloc.py` without it never merges).
    pub coalescing: Coalescing,
}

impl SimConfig {
    /// `malloc.py`'s defaults.
    pub const fn new() -> Self {
        SimConfig {
            base: 1000,
            size: 100,
            header_size: 0,
            align: 1,
            fit: Fit::Best,
            order: ListOrder::AddressOrdered,
            coalescing: Coalescing::Never,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A simulated heap: the real engine and policies, over addresses with no memory behind them.
///
/// ```
/// use freespace_malloc::{Coalescing, Fit, ListOrder, SimConfig, SimHeap};
///
/// // The chapter's splitting example: a 30-byte heap, [10, 20) in use, a 1-byte request
/// // served from the chunk at 20.
/// let cfg = SimConfig { base: 0, size: 30, fit: Fit::First, order: ListOrder::Fifo, ..SimConfig::new() };
/// let mut heap = SimHeap::new(cfg);
/// let (a, _) = heap.malloc(10).unwrap();
/// let (_b, _) = heap.malloc(10).unwrap();
/// let (c, _) = heap.malloc(10).unwrap();
/// heap.free(c).unwrap();
/// heap.free(a).unwrap();
/// assert_eq!(heap.free_list(), vec![(20, 10), (0, 10)]);
/// assert_eq!(heap.malloc(1), Ok((20, 1)));
/// assert_eq!(heap.free_list(), vec![(0, 10), (21, 9)]);
/// ```
pub struct SimHeap {
    engine: Engine<MapSpace, AnyPolicy>,
    config: SimConfig,
    last_searched: usize,
}

impl core::fmt::Debug for SimHeap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimHeap")
            .field("config", &self.config)
            .field("free_list", &self.free_list())
            .field("stats", &self.stats())
            .finish()
    }
}

impl SimHeap {
    /// A simulated heap shaped by `cfg`, starting as one free block. Any remainder of a split
    /// stays a free block, however small, as in `malloc.py`.
    pub fn new(cfg: SimConfig) -> Self {
        Self::with_min_block(cfg, 1)
    }

    /// A simulated heap whose blocks are never smaller than `min_block` bytes (header
    /// included), as in a real allocator, where a free block must hold its header and links: a
    /// remainder smaller than that is not split off but left inside the allocated block, where
    /// it shows up as internal fragmentation.
    pub fn with_min_block(cfg: SimConfig, min_block: usize) -> Self {
        let space = MapSpace::new(cfg.base, cfg.size, cfg.header_size, min_block);
        let config = HeapConfig::new()
            .with_coalescing(cfg.coalescing)
            .with_trim_threshold(usize::MAX);
        let mut engine = Engine::new(space, AnyPolicy::new(cfg.fit, cfg.order), config);
        engine.grow(cfg.size);
        SimHeap {
            engine,
            config: cfg,
            last_searched: 0,
        }
    }

    /// Allocates `size` bytes: the size is rounded up to the alignment and the header is added,
    /// as `malloc.py` does. Returns the address handed to the user (the block's address plus
    /// the header size) and the number of free-list elements searched.
    pub fn malloc(&mut self, size: usize) -> Result<(usize, usize), AllocError> {
        let before = self.engine.stats_searched();
        let result = self.alloc(size);
        self.last_searched = (self.engine.stats_searched() - before) as usize;
        result.map(|block| (self.user_addr(block), self.last_searched))
    }

    /// The address handed to the user for `block`.
    fn user_addr(&self, block: Block) -> usize {
        block.addr() + self.config.header_size
    }

    /// The block size (header included) that serves `size` bytes.
    fn block_size_for(&self, size: usize) -> Result<usize, AllocError> {
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let rounded = size
            .checked_next_multiple_of(self.config.align.max(1))
            .ok_or(AllocError::TooLarge)?;
        Ok(rounded
            .checked_add(self.config.header_size)
            .ok_or(AllocError::TooLarge)?
            .max(self.engine.space.min_block))
    }

    fn alloc(&mut self, size: usize) -> Result<Block, AllocError> {
        let need = self.block_size_for(size)?;
        self.engine.alloc_block(need, 0, size)
    }

    /// Free-list elements the last `malloc` searched, whether it succeeded or not.
    pub fn last_searched(&self) -> usize {
        self.last_searched
    }

    /// Frees the block whose user address is `addr`.
    ///
    /// # Errors
    /// As for [`Heap::free`](crate::Heap::free), and nothing changes: `NotInHeap` outside the
    /// range, `Misaligned` where no block starts (there are no headers to read, so there is
    /// no `BadMagic`), and `DoubleFree` for a free block, or for one merged into a neighbour
    /// since (until a new block starts at its address).
    pub fn free(&mut self, addr: usize) -> Result<(), FreeError> {
        let block = self.engine.space.lookup(addr)?;
        self.engine.free_block(block);
        Ok(())
    }

    /// The free list as `(address, size)` in list order, as the textbook prints it (segregated
    /// fit lists its bins from the smallest class up).
    pub fn free_list(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for mut x in self.engine.list_heads() {
            while x != NIL {
                out.push((x.addr(), self.engine.space.block_size(x)));
                x = self.engine.space.next(x);
            }
        }
        out
    }

    /// Exact statistics, as for a real heap.
    pub fn stats(&self) -> HeapStats {
        self.engine.stats()
    }

    /// The blocks in address order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        self.engine.blocks()
    }

    /// Checks every invariant (see [`Heap::check`](crate::Heap::check)).
    pub fn check(&self) -> Result<(), Corruption> {
        self.engine.check()
    }

    /// Runs the deferred-coalescing pass now, if coalescing is deferred; as
    /// [`Heap::coalesce`](crate::Heap::coalesce), it does nothing under the other modes.
    pub fn coalesce(&mut self) {
        self.engine.coalesce()
    }

    /// The shape the heap was made with.
    pub fn config(&self) -> SimConfig {
        self.config
    }
}

/// The simulated heap under the common interface. Addresses are plain numbers, with no memory
/// behind them: `calloc` has nothing to zero, `realloc` has nothing to copy, and the `unsafe`
/// calls are safe in fact (they read only the heap's own map). `malloc` aligns the user address
/// to `layout.align()` on top of the configured rounding, and, like the inherent
/// [`SimHeap::malloc`], records the elements searched in [`SimHeap::last_searched`].
impl RawHeap for SimHeap {
    type Ptr = usize;

    fn malloc(&mut self, layout: Layout) -> Result<usize, AllocError> {
        let before = self.engine.stats_searched();
        let align = if layout.align() > 1 {
            layout.align()
        } else {
            0
        };
        let result = self
            .block_size_for(layout.size())
            .and_then(|need| self.engine.alloc_block(need, align, layout.size()));
        self.last_searched = (self.engine.stats_searched() - before) as usize;
        result.map(|block| self.user_addr(block))
    }
    fn calloc(&mut self, count: usize, size: usize) -> Result<usize, AllocError> {
        let total = count.checked_mul(size).ok_or(AllocError::TooLarge)?;
        let layout = Layout::from_size_align(total, 1).map_err(|_| AllocError::TooLarge)?;
        RawHeap::malloc(self, layout)
    }
    unsafe fn free(&mut self, addr: usize) -> Result<(), FreeError> {
        SimHeap::free(self, addr)
    }
    unsafe fn realloc(&mut self, addr: usize, new_layout: Layout) -> Result<usize, AllocError> {
        let block = self
            .engine
            .space
            .lookup(addr)
            .map_err(|_| AllocError::InvalidPointer)?;
        let need = self.block_size_for(new_layout.size())?;
        if addr % new_layout.align() == 0
            && self.engine.resize_in_place(block, need, new_layout.size())
        {
            return Ok(addr);
        }
        let new = RawHeap::malloc(self, new_layout)?;
        self.engine.free_block(block);
        Ok(new)
    }
    unsafe fn usable_size(&self, addr: usize) -> Result<usize, FreeError> {
        let block = self.engine.space.lookup(addr)?;
        Ok(self.engine.space.block_size(block) - self.config.header_size)
    }
    fn stats(&self) -> HeapStats {
        SimHeap::stats(self)
    }
    fn check(&self) -> Result<(), Corruption> {
        SimHeap::check(self)
    }
    fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        SimHeap::blocks(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(coalescing: Coalescing) -> SimHeap {
        SimHeap::new(SimConfig {
            base: 0,
            size: 100,
            coalescing,
            fit: Fit::First,
            ..SimConfig::new()
        })
    }

    #[test]
    fn starts_as_one_free_block_and_tiles_the_range() {
        let h = heap(Coalescing::Immediate);
        assert_eq!(h.free_list(), [(0, 100)]);
        assert_eq!(h.stats().heap_bytes, 100);
        assert_eq!(h.blocks().count(), 1);
        h.check().unwrap();
    }

    #[test]
    fn alignment_rounds_the_size_before_the_header_is_added() {
        let mut h = SimHeap::new(SimConfig {
            base: 1000,
            size: 100,
            header_size: 4,
            align: 8,
            ..SimConfig::new()
        });
        assert_eq!(h.malloc(3), Ok((1004, 1)));
        assert_eq!(
            h.free_list(),
            [(1012, 88)],
            "3 rounds to 8, plus a 4-byte header"
        );
        let s = h.stats();
        assert_eq!(
            (s.allocated_bytes, s.requested_bytes, s.header_bytes),
            (8, 3, 4)
        );
    }

    #[test]
    fn a_minimum_block_turns_small_remainders_into_internal_fragmentation() {
        let cfg = SimConfig {
            base: 0,
            size: 30,
            fit: Fit::First,
            ..SimConfig::new()
        };
        let mut h = SimHeap::with_min_block(cfg, 8);
        assert_eq!(h.malloc(3), Ok((0, 1)), "rounded up to the minimum block");
        assert_eq!(h.malloc(17), Ok((8, 1)));
        // 5 bytes would be left: too small to be a block, so the request takes all 22.
        assert_eq!(h.free_list(), []);
        let s = h.stats();
        assert_eq!((s.allocated_bytes, s.requested_bytes), (30, 20));
        assert!(s.internal_fragmentation() > 0.3);
        h.check().unwrap();
    }

    #[test]
    fn prev_free_and_tiling_are_checked() {
        let mut h = heap(Coalescing::Never);
        let a = h.malloc(10).unwrap().0;
        let b = h.malloc(10).unwrap().0;
        h.free(a).unwrap();
        let (a, b) = (Block::from_addr(a), Block::from_addr(b));
        assert_eq!(h.engine.space.prev_free(b), Some(a));
        assert_eq!(h.engine.space.prev_free(a), None);
        // Break the tiling behind the engine's back: check() must notice.
        h.engine.space.map.get_mut(&b.addr()).unwrap().size = 15;
        assert!(matches!(h.check(), Err(Corruption::BadTiling { .. })));
    }
}
