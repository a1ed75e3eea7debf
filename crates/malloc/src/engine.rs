//! The allocation engine, written once: placement through a [`Policy`], splitting, coalescing
//! (immediate, deferred or never), growth, trimming, exact statistics and the heap check.
//!
//! It is generic over a `Space` (where block metadata lives), so the same code runs over real
//! memory ([`Heap`](crate::Heap)) and over a simulated address range
//! ([`SimHeap`](crate::SimHeap)). Invariant: between calls, the blocks tile every region, each
//! free block is on the policy's lists exactly once, and the running counts equal what a walk of
//! the heap finds (which is what `check` verifies).

use crate::config::{Coalescing, HeapConfig};
use crate::error::{AllocError, Corruption};
use crate::placement::Policy;
use crate::raw_heap::{BlockInfo, BlockState};
use crate::space::{Block, Cursor, Space, Trim, NIL};
use crate::stats::HeapStats;

/// Counts kept up to date on every call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    allocated: usize,
    requested: usize,
    free_blocks: usize,
    allocations: u64,
    frees: u64,
    searched: u64,
}

impl Counts {
    /// Blocks handed out and not yet freed: every live block was counted once by `place` and
    /// is counted once by `free_block` when it goes.
    fn live_blocks(&self) -> usize {
        (self.allocations - self.frees) as usize
    }

    const ZERO: Counts = Counts {
        allocated: 0,
        requested: 0,
        free_blocks: 0,
        allocations: 0,
        frees: 0,
        searched: 0,
    };
}

/// The engine: a space of blocks, a policy over its free blocks, and the counts.
pub(crate) struct Engine<St, P> {
    pub(crate) space: St,
    pub(crate) policy: P,
    pub(crate) config: HeapConfig,
    counts: Counts,
    /// Deferred coalescing: a block was freed since the last merge pass.
    dirty: bool,
}

/// The bytes to put in front of `payload` so that it is aligned to `align` (a power of two):
/// 0, or at least `min`, so that the padding can be a free block of its own. Out of line, so that
/// the rare over-aligned request leaves the common path's code as it is.
#[inline(never)]
fn alignment_pad(payload: *mut u8, align: usize, min: usize) -> usize {
    let pad = payload.align_offset(align);
    if pad != 0 && pad < min {
        min + payload.wrapping_add(min).align_offset(align)
    } else {
        pad
    }
}

impl<St: Space, P: Policy> Engine<St, P> {
    pub(crate) const fn new(space: St, policy: P, config: HeapConfig) -> Self {
        Engine {
            space,
            policy,
            config,
            counts: Counts::ZERO,
            dirty: false,
        }
    }

    #[inline]
    fn insert_free(&mut self, block: Block, size: usize) {
        self.policy.insert(&mut self.space, block, size);
        self.counts.free_blocks += 1;
    }

    #[inline]
    fn remove_free(&mut self, block: Block, size: usize) {
        self.policy.remove(&mut self.space, block, size);
        self.counts.free_blocks -= 1;
    }

    /// Bytes in free blocks, headers included. Every byte of the heap is in a block or is
    /// overhead, and every block is free or live, so this follows from the running counts of
    /// live blocks and their bytes (`check` walks the heap and compares).
    fn free_bytes(&self) -> usize {
        self.space.heap_bytes()
            - self.space.overhead_bytes()
            - self.counts.allocated
            - self.counts.live_blocks() * self.space.header_size()
    }

    /// Free-list elements searched so far.
    #[cfg(feature = "alloc")]
    pub(crate) fn stats_searched(&self) -> u64 {
        self.counts.searched
    }

    /// Asks the space for a new region and files it as one free block.
    pub(crate) fn grow(&mut self, block_size: usize) -> bool {
        match self.space.grow(block_size) {
            Some((block, size)) => {
                self.space.set_free(block, size);
                self.insert_free(block, size);
                true
            }
            None => false,
        }
    }

    /// Allocates a block of `need` bytes (header included, already rounded and at least the
    /// minimum block) whose payload is aligned to `align` (0 = natural alignment), recording
    /// `requested` bytes as asked for. Returns the block's address.
    #[inline]
    pub(crate) fn alloc_block(
        &mut self,
        need: usize,
        align: usize,
        requested: usize,
    ) -> Result<Block, AllocError> {
        let search = if align > self.space.natural_align() {
            need.checked_add(align)
                .and_then(|s| s.checked_add(self.space.min_block()))
                .ok_or(AllocError::TooLarge)?
        } else {
            need
        };
        loop {
            if let Some((block, size)) =
                self.policy
                    .take(&mut self.space, search, &mut self.counts.searched)
            {
                return Ok(self.allocate_in(block, size, need, align, requested));
            }
            if !self.refill(search) {
                return Err(AllocError::OutOfMemory);
            }
        }
    }

    /// The slow path of `alloc_block`: merge (if deferred) or grow. False when neither helps.
    #[cold]
    fn refill(&mut self, search: usize) -> bool {
        if self.dirty {
            self.coalesce_all();
            return true;
        }
        self.grow(search)
    }

    /// Allocates in the free block `block` of `size` bytes (already off the lists, still in the
    /// free counts): splits off leading alignment padding and a trailing remainder as free
    /// blocks, and updates the counts once for all of it.
    #[inline]
    fn allocate_in(
        &mut self,
        mut block: Block,
        mut size: usize,
        need: usize,
        align: usize,
        requested: usize,
    ) -> Block {
        let header = self.space.header_size();
        let min = self.space.min_block();
        // Blocks that go back on the lists (padding, remainder).
        let mut filed_blocks = 0;
        // Whether `block` still has the free block's own header (no padding was split off).
        let mut whole = true;
        if align > self.space.natural_align() {
            let pad = alignment_pad((block + header).as_ptr(), align, min);
            if pad != 0 {
                self.space.fresh(block + pad);
                self.space.set_free(block, pad);
                self.policy.insert(&mut self.space, block, pad);
                filed_blocks = 1;
                block += pad;
                size -= pad;
                whole = false;
            }
        }
        let rest = size - need;
        if rest >= min {
            if whole {
                self.space.split_free(block, size, need, requested, rest);
            } else {
                self.space.split(block, need, requested, rest);
            }
            self.policy.insert(&mut self.space, block + need, rest);
            filed_blocks += 1;
            size = need;
        } else {
            self.space.set_used(block, size, requested);
        }
        self.counts.free_blocks = self.counts.free_blocks + filed_blocks - 1;
        self.counts.allocated += size - header;
        self.counts.requested += requested;
        self.counts.allocations += 1;
        block
    }

    /// Frees a used block (already validated by `Space::lookup`).
    #[inline]
    pub(crate) fn free_block(&mut self, block: Block) {
        let size = self.space.block_size(block);
        self.counts.allocated -= size - self.space.header_size();
        self.counts.requested -= self.space.requested(block);
        self.counts.frees += 1;
        let (mut start, mut total) = (block, size);
        // Free neighbours merged into this block leave the lists (their bytes stay free).
        let mut merged = 0;
        match self.config.coalescing {
            Coalescing::Immediate => {
                if let Some(next) = self.space.next_block(block) {
                    if !self.space.is_used(next) {
                        let ns = self.space.block_size(next);
                        self.policy.remove(&mut self.space, next, ns);
                        self.space.discard(next);
                        total += ns;
                        merged += 1;
                    }
                }
                if let Some(prev) = self.space.prev_free(block) {
                    let ps = self.space.block_size(prev);
                    self.policy.remove(&mut self.space, prev, ps);
                    self.space.discard(block);
                    start = prev;
                    total += ps;
                    merged += 1;
                }
            }
            Coalescing::Deferred => self.dirty = true,
            Coalescing::Never => {}
        }
        if merged == 0 {
            self.space.set_free_unmerged(start, total);
        } else {
            self.space.set_free(start, total);
        }
        // One update for the whole merge: the merged block replaces its neighbours on the lists
        // (the free bytes follow from the live counts).
        self.counts.free_blocks = self.counts.free_blocks + 1 - merged;
        if total >= self.config.trim_threshold && self.space.can_trim() {
            // `trim_then_file` counts what it files: take the block out of the counts first.
            self.counts.free_blocks -= 1;
            self.trim_then_file(start, total, self.config.trim_threshold / 2, false);
        } else {
            self.policy.insert(&mut self.space, start, total);
        }
    }

    /// Trims a free block (on no list) if it ends its region, then files what is left. At free
    /// time (`shrink` false) only whole free regions are unmapped and other pages are dropped
    /// in place, so regions keep their size and stay few.
    #[cold]
    fn trim_then_file(&mut self, block: Block, size: usize, keep: usize, shrink: bool) {
        if self.space.next_block(block).is_some() {
            self.insert_free(block, size);
            return;
        }
        match self.space.trim(block, size, keep, shrink) {
            Trim::Kept => self.insert_free(block, size),
            Trim::Shrunk { new_size } => self.insert_free(block, new_size),
            Trim::Released => {}
        }
    }

    /// Tries to resize a used block in place to `need` bytes (header included), recording
    /// `requested`. False when it cannot be done without moving.
    #[inline]
    pub(crate) fn resize_in_place(&mut self, block: Block, need: usize, requested: usize) -> bool {
        let size = self.space.block_size(block);
        let old_requested = self.space.requested(block);
        let min = self.space.min_block();
        let immediate = self.config.coalescing == Coalescing::Immediate;
        let next = self
            .space
            .next_block(block)
            .filter(|&n| !self.space.is_used(n));
        if need <= size {
            let rest = size - need;
            if rest >= min {
                let mut tail = rest;
                if let Some(n) = next {
                    if immediate {
                        let ns = self.space.block_size(n);
                        self.remove_free(n, ns);
                        self.space.discard(n);
                        tail += ns;
                    } else {
                        self.dirty |= self.config.coalescing == Coalescing::Deferred;
                    }
                }
                self.space.split(block, need, requested, tail);
                self.insert_free(block + need, tail);
                self.counts.allocated -= rest;
            } else {
                self.space.set_requested(block, requested);
            }
        } else {
            // Growing absorbs the free block after this one: a merge, which `Never` rules out.
            if self.config.coalescing == Coalescing::Never {
                return false;
            }
            let Some(n) = next else { return false };
            let ns = self.space.block_size(n);
            let total = size + ns;
            if total < need {
                return false;
            }
            self.remove_free(n, ns);
            self.space.discard(n);
            let rest = total - need;
            if rest >= min {
                self.space.split(block, need, requested, rest);
                self.insert_free(block + need, rest);
                self.counts.allocated += need - size;
            } else {
                self.space.set_used(block, total, requested);
                self.counts.allocated += total - size;
            }
        }
        self.counts.requested = self.counts.requested - old_requested + requested;
        true
    }

    /// Runs the deferred-coalescing pass if coalescing is deferred. Under `Immediate` no two
    /// free blocks are neighbours, and under `Never` blocks must not merge: it does nothing.
    pub(crate) fn coalesce(&mut self) {
        if self.config.coalescing == Coalescing::Deferred {
            self.coalesce_all();
        }
    }

    /// Merges every run of free neighbours (the deferred-coalescing pass). O(blocks).
    fn coalesce_all(&mut self) {
        self.dirty = false;
        let mut cur = self.space.walk_first();
        while let Some(at) = cur {
            let block = at.1;
            if !self.space.is_used(block) {
                let mut size = self.space.block_size(block);
                let mut merged = false;
                while let Some(n) = self.space.next_block(block) {
                    if self.space.is_used(n) {
                        break;
                    }
                    if !merged {
                        self.remove_free(block, size);
                        merged = true;
                    }
                    let ns = self.space.block_size(n);
                    self.remove_free(n, ns);
                    self.space.discard(n);
                    size += ns;
                    self.space.set_free(block, size);
                }
                if merged {
                    self.insert_free(block, size);
                }
            }
            cur = self.space.walk_next(at);
        }
    }

    /// Merges (if coalescing is deferred), gives every whole free page at the end of a region
    /// back to the space's source, and lets the source drop the pages inside the other free
    /// blocks. Returns the bytes given back or dropped.
    pub(crate) fn release_free_memory(&mut self) -> usize {
        self.coalesce();
        if !self.space.can_trim() {
            return 0;
        }
        let before = self.space.heap_bytes();
        let mut cur = self.space.walk_first();
        while let Some(at) = cur {
            let block = at.1;
            // Find the next position before this region can change.
            let next = self.space.walk_next(at);
            if !self.space.is_used(block) && self.space.next_block(block).is_none() {
                let size = self.space.block_size(block);
                self.remove_free(block, size);
                self.trim_then_file(block, size, 0, true);
            }
            cur = next;
        }
        let mut released = before - self.space.heap_bytes();
        let mut cur = self.space.walk_first();
        while let Some(at) = cur {
            if !self.space.is_used(at.1) {
                let size = self.space.block_size(at.1);
                released += self.space.purge(at.1, size);
            }
            cur = self.space.walk_next(at);
        }
        released
    }

    /// The heads of the policy's lists that may hold blocks (see `Policy::next_list`).
    pub(crate) fn list_heads(&self) -> impl Iterator<Item = Block> + '_ {
        let mut next = self.policy.next_list(0);
        core::iter::from_fn(move || {
            let list = next?;
            next = self.policy.next_list(list + 1);
            Some(self.policy.list_head(list))
        })
    }

    /// The size of the largest free block (a walk of the free lists).
    fn largest_free(&self) -> usize {
        let mut largest = 0;
        for mut x in self.list_heads() {
            while x != NIL {
                largest = largest.max(self.space.block_size(x));
                x = self.space.next(x);
            }
        }
        largest
    }

    pub(crate) fn stats(&self) -> HeapStats {
        let c = &self.counts;
        HeapStats {
            heap_bytes: self.space.heap_bytes(),
            allocated_bytes: c.allocated,
            requested_bytes: c.requested,
            free_bytes: self.free_bytes(),
            free_blocks: c.free_blocks,
            largest_free_block: self.largest_free(),
            header_bytes: c.live_blocks() * self.space.header_size(),
            overhead_bytes: self.space.overhead_bytes(),
            live_blocks: c.live_blocks(),
            allocations: c.allocations,
            frees: c.frees,
            searched: c.searched,
        }
    }

    /// Walks the heap and the free lists and checks every invariant against the running counts.
    pub(crate) fn check(&self) -> Result<(), Corruption> {
        let header = self.space.header_size();
        let immediate = self.config.coalescing == Coalescing::Immediate;
        let mut walked = Counts::default();
        let mut walked_live = 0usize;
        let mut walked_free_bytes = 0usize;
        let mut block_bytes = 0usize;
        let mut prev: Option<(Block, bool)> = None;
        self.space.walk_checked(&mut |block, first| {
            if first {
                prev = None;
            }
            let size = self.space.block_size(block);
            let used = self.space.is_used(block);
            let prev_free = prev.and_then(|(p, pu)| (!pu).then_some(p));
            self.space.check_block(block, prev_free)?;
            if !used && immediate {
                if let Some(p) = prev_free {
                    return Err(Corruption::UncoalescedNeighbours { addr: p.addr() });
                }
            }
            block_bytes += size;
            if used {
                walked.allocated += size - header;
                walked.requested += self.space.requested(block);
                walked_live += 1;
            } else {
                walked_free_bytes += size;
                walked.free_blocks += 1;
            }
            prev = Some((block, used));
            Ok(())
        })?;

        // The lists: consistent links, only free blocks, each once (a count that matches the
        // walk plus consistent back links rules out duplicates and cycles). Lists the policy
        // records as empty are skipped; `verify` checks those records, and a block filed on a
        // list recorded as empty is missed here, so the counts disagree.
        let mut listed = 0usize;
        let mut listed_bytes = 0usize;
        for mut x in self.list_heads() {
            let mut back = NIL;
            while x != NIL {
                // A listed block must lie wholly inside the heap before its links are read.
                if !self.space.owns(x.addr())
                    || !self.space.owns((x + self.space.min_block() - 1).addr())
                    || self.space.is_used(x)
                {
                    return Err(Corruption::FreeListMismatch { addr: x.addr() });
                }
                if self.space.prev(x) != back {
                    return Err(Corruption::BadLink { addr: x.addr() });
                }
                listed += 1;
                listed_bytes += self.space.block_size(x);
                if listed > walked.free_blocks {
                    return Err(Corruption::FreeListMismatch { addr: x.addr() });
                }
                back = x;
                x = self.space.next(x);
            }
        }
        if listed != walked.free_blocks || listed_bytes != walked_free_bytes {
            return Err(Corruption::FreeListMismatch { addr: NIL.addr() });
        }
        self.policy.verify(&self.space)?;

        let c = &self.counts;
        let same = c.allocated == walked.allocated
            && c.requested == walked.requested
            && self.free_bytes() == walked_free_bytes
            && c.free_blocks == walked.free_blocks
            && c.live_blocks() == walked_live
            && self.space.heap_bytes() == block_bytes + self.space.overhead_bytes();
        if !same {
            return Err(Corruption::StatsMismatch);
        }
        Ok(())
    }

    /// The blocks in address order (region by region).
    pub(crate) fn blocks(&self) -> Blocks<'_, St, P> {
        Blocks {
            engine: self,
            at: self.space.walk_first(),
        }
    }
}

/// An iterator over a heap's blocks in address order.
pub(crate) struct Blocks<'a, St, P> {
    engine: &'a Engine<St, P>,
    at: Option<Cursor>,
}

impl<St: Space, P: Policy> Iterator for Blocks<'_, St, P> {
    type Item = BlockInfo;

    fn next(&mut self) -> Option<BlockInfo> {
        let at = self.at?;
        let space = &self.engine.space;
        self.at = space.walk_next(at);
        let block = at.1;
        let used = space.is_used(block);
        Some(BlockInfo {
            addr: block.addr(),
            size: space.block_size(block),
            state: if used {
                BlockState::Used
            } else {
                BlockState::Free
            },
            requested: if used { space.requested(block) } else { 0 },
        })
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::map_space::MapSpace;
    use crate::placement::FirstFit;
    use crate::placement::ListOrder;
    use std::vec::Vec;

    /// An engine over a simulated 100-byte range at 1000, header 0, no minimum block.
    fn engine(coalescing: Coalescing) -> Engine<MapSpace, FirstFit> {
        let config = HeapConfig::new().with_coalescing(coalescing);
        let mut e = Engine::new(
            MapSpace::new(1000, 100, 0, 1),
            FirstFit::new(ListOrder::AddressOrdered),
            config,
        );
        assert!(e.grow(100));
        e
    }

    fn layout(e: &Engine<MapSpace, FirstFit>) -> Vec<(usize, usize, BlockState)> {
        e.blocks().map(|b| (b.addr, b.size, b.state)).collect()
    }

    use BlockState::{Free, Used};

    #[test]
    fn alignment_padding_becomes_a_free_block() {
        let mut e = engine(Coalescing::Immediate);
        let a = e.alloc_block(3, 0, 3).unwrap();
        let b = e.alloc_block(10, 8, 10).unwrap();
        assert_eq!((a.addr(), b.addr()), (1000, 1008), "payload aligned to 8");
        assert_eq!(
            layout(&e),
            [
                (1000, 3, Used),
                (1003, 5, Free),
                (1008, 10, Used),
                (1018, 82, Free)
            ]
        );
        e.check().unwrap();
    }

    #[test]
    fn immediate_free_merges_both_neighbours() {
        let mut e = engine(Coalescing::Immediate);
        let blocks: Vec<Block> = (0..4).map(|_| e.alloc_block(10, 0, 10).unwrap()).collect();
        e.free_block(blocks[0]);
        e.free_block(blocks[2]);
        e.free_block(blocks[1]);
        assert_eq!(
            layout(&e),
            [(1000, 30, Free), (1030, 10, Used), (1040, 60, Free)]
        );
        e.check().unwrap();
    }

    #[test]
    fn the_deferred_pass_merges_runs_and_keeps_the_counts() {
        let mut e = engine(Coalescing::Deferred);
        let blocks: Vec<Block> = (0..10).map(|_| e.alloc_block(10, 0, 10).unwrap()).collect();
        for &b in &blocks[..9] {
            e.free_block(b);
        }
        assert_eq!(e.stats().free_blocks, 9);
        e.check().unwrap();
        e.coalesce();
        assert_eq!(layout(&e), [(1000, 90, Free), (1090, 10, Used)]);
        assert_eq!(e.stats().free_bytes, 90);
        e.check().unwrap();
    }

    #[test]
    fn resizing_in_place_grows_into_the_next_block_and_shrinks_by_splitting() {
        let mut e = engine(Coalescing::Immediate);
        let a = e.alloc_block(10, 0, 10).unwrap();
        assert!(e.resize_in_place(a, 40, 40));
        assert_eq!(layout(&e), [(1000, 40, Used), (1040, 60, Free)]);
        assert!(e.resize_in_place(a, 5, 5));
        assert_eq!(layout(&e), [(1000, 5, Used), (1005, 95, Free)]);
        let b = e.alloc_block(95, 0, 95).unwrap();
        assert!(!e.resize_in_place(a, 6, 6), "a used block follows");
        e.free_block(b);
        assert_eq!(e.stats().requested_bytes, 5);
        e.check().unwrap();
    }
}
