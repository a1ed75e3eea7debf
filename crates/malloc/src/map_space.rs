//! [`MapSpace`]: a simulated address range with no memory behind it, whose block metadata lives
//! in a `BTreeMap` keyed by address. It is the `Space` under [`SimHeap`](crate::SimHeap).
//!
//! A range can be as small as a few bytes, with any header size and no alignment. Invariant:
//! the map's blocks tile `[base, base + size)` exactly once the range is given out, and an
//! address in `absorbed` is where a block started until it merged into a neighbour.

use alloc::collections::{BTreeMap, BTreeSet};

use crate::error::{Corruption, FreeError};
use crate::space::{Block, Cursor, FreeLinks, Space, Trim, NIL};

/// What the map records of one block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockRecord {
    pub(crate) size: usize,
    used: bool,
    requested: usize,
    next: Block,
    prev: Block,
}

/// The simulated address range: block metadata in a map.
pub(crate) struct MapSpace {
    base: usize,
    size: usize,
    header: usize,
    pub(crate) min_block: usize,
    given: bool,
    /// Every block, by address.
    pub(crate) map: BTreeMap<usize, BlockRecord>,
    /// Addresses where a block started until it was absorbed into a neighbour, and where no
    /// block has started since: the simulated form of a real heap's absorbed header, so that a
    /// second free there is a double free, as it is for [`Heap`](crate::Heap).
    absorbed: BTreeSet<usize>,
}

impl MapSpace {
    /// An empty range `[base, base + size)` with the given header and minimum block sizes.
    pub(crate) fn new(base: usize, size: usize, header: usize, min_block: usize) -> Self {
        MapSpace {
            base,
            size,
            header,
            min_block: min_block.max(1),
            given: false,
            map: BTreeMap::new(),
            absorbed: BTreeSet::new(),
        }
    }

    fn at(&self, block: Block) -> &BlockRecord {
        &self.map[&block.addr()]
    }
    fn at_mut(&mut self, block: Block) -> &mut BlockRecord {
        self.map
            .get_mut(&block.addr())
            .expect("the engine names only blocks the space laid out")
    }
    fn end(&self) -> usize {
        self.base + self.size
    }
    fn set(&mut self, block: Block, size: usize, used: bool, requested: usize) {
        let block = block.addr();
        let b = self.map.entry(block).or_insert_with(|| {
            self.absorbed.remove(&block);
            BlockRecord {
                size,
                used,
                requested,
                next: NIL,
                prev: NIL,
            }
        });
        b.size = size;
        b.used = used;
        b.requested = requested;
    }
}

impl FreeLinks for MapSpace {
    fn block_size(&self, block: Block) -> usize {
        self.at(block).size
    }
    fn next(&self, block: Block) -> Block {
        self.at(block).next
    }
    fn prev(&self, block: Block) -> Block {
        self.at(block).prev
    }
    fn set_next(&mut self, block: Block, next: Block) {
        self.at_mut(block).next = next;
    }
    fn set_prev(&mut self, block: Block, prev: Block) {
        self.at_mut(block).prev = prev;
    }
}

impl Space for MapSpace {
    fn header_size(&self) -> usize {
        self.header
    }
    fn min_block(&self) -> usize {
        self.min_block
    }
    fn natural_align(&self) -> usize {
        1
    }
    fn is_used(&self, block: Block) -> bool {
        self.at(block).used
    }
    fn requested(&self, block: Block) -> usize {
        self.at(block).requested
    }
    fn fresh(&mut self, _block: Block) {}
    fn set_used(&mut self, block: Block, size: usize, requested: usize) {
        self.set(block, size, true, requested);
    }
    fn set_requested(&mut self, block: Block, requested: usize) {
        self.at_mut(block).requested = requested;
    }
    fn set_free(&mut self, block: Block, size: usize) {
        self.set(block, size, false, 0);
    }
    fn discard(&mut self, block: Block) {
        self.map.remove(&block.addr());
        self.absorbed.insert(block.addr());
    }
    fn next_block(&self, block: Block) -> Option<Block> {
        let next = block + self.at(block).size;
        (next.addr() < self.end()).then_some(next)
    }
    fn prev_free(&self, block: Block) -> Option<Block> {
        let (&p, b) = self.map.range(..block.addr()).next_back()?;
        (!b.used && p + b.size == block.addr()).then_some(Block::from_addr(p))
    }
    fn lookup(&self, user: usize) -> Result<Block, FreeError> {
        if !self.owns(user) {
            return Err(FreeError::NotInHeap);
        }
        let block = user
            .checked_sub(self.header)
            .filter(|&b| b >= self.base)
            .ok_or(FreeError::Misaligned)?;
        match self.map.get(&block) {
            Some(b) if b.used => Ok(Block::from_addr(block)),
            Some(_) => Err(FreeError::DoubleFree),
            None if self.absorbed.contains(&block) => Err(FreeError::DoubleFree),
            None => Err(FreeError::Misaligned),
        }
    }
    fn owns(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.end()
    }
    fn grow(&mut self, _block_size: usize) -> Option<(Block, usize)> {
        if self.given || self.size == 0 {
            return None;
        }
        self.given = true;
        Some((Block::from_addr(self.base), self.size))
    }
    fn can_trim(&self) -> bool {
        false
    }
    fn trim(&mut self, _block: Block, _size: usize, _keep: usize, _shrink: bool) -> Trim {
        Trim::Kept
    }
    fn purge(&mut self, _block: Block, _size: usize) -> usize {
        0
    }
    fn heap_bytes(&self) -> usize {
        if self.given {
            self.size
        } else {
            0
        }
    }
    fn overhead_bytes(&self) -> usize {
        0
    }
    fn walk_first(&self) -> Option<Cursor> {
        let first = Block::from_addr(*self.map.keys().next()?);
        Some((first, first))
    }
    fn walk_next(&self, (region, block): Cursor) -> Option<Cursor> {
        self.next_block(block).map(|n| (region, n))
    }
    fn walk_checked(
        &self,
        visit: &mut dyn FnMut(Block, bool) -> Result<(), Corruption>,
    ) -> Result<(), Corruption> {
        let mut expect = self.base;
        for (&block, b) in &self.map {
            if block != expect || b.size == 0 || b.size > self.end() - block {
                return Err(Corruption::BadTiling { addr: block });
            }
            visit(Block::from_addr(block), block == self.base)?;
            expect = block + b.size;
        }
        if self.given && expect != self.end() {
            return Err(Corruption::BadTiling { addr: expect });
        }
        Ok(())
    }
    fn check_block(&self, block: Block, _prev_free: Option<Block>) -> Result<(), Corruption> {
        let b = self.at(block);
        if b.used && b.requested > b.size - self.header.min(b.size) {
            return Err(Corruption::StatsMismatch);
        }
        Ok(())
    }
}
