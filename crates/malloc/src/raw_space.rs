//! Block metadata in real memory: headers with magic numbers, free-list links and boundary tags
//! inside the blocks themselves, and region bookkeeping inside the regions.
//!
//! The layout of regions, headers, flags, links, boundary tags, the sentinel and its purge mark
//! is described once, in docs/malloc.md ("Block layout"); the constants below name its parts.
//! Invariant: every header's PREV bits describe the block before it, exactly the free blocks
//! that end their region say LAST, and the regions list is sorted by address.

use bitflags::bitflags;
use core::ptr::NonNull;

use crate::error::{Corruption, FreeError};
use crate::source::Source;
use crate::space::{Block, Cursor, FreeLinks, Space, Trim};

bitflags! {
    /// The flag bits in the low bits of a header's first word.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Flags: u64 {
        /// The block is handed out.
        const USED = 1;
        /// The block before this one is free.
        const PREV_FREE = 2;
        /// The block before this one is free and of the minimum size (it has no boundary tag).
        const PREV_SMALL = 4;
        /// A free block that ends its region: the header after it is the sentinel. Splitting any
        /// other free block (`split_free`) need not read the header after it.
        const LAST = 8;
    }
}

/// The header in front of every payload.
pub(crate) const HEADER: usize = 16;
/// The smallest block: a header and two links.
pub(crate) const MIN_BLOCK: usize = 32;
/// Payload alignment, and the granularity of block sizes.
pub(crate) const ALIGN: usize = 16;
const SIZE_MASK: u64 = !(ALIGN as u64 - 1);
const PREV_MASK: u64 = Flags::PREV_FREE.bits() | Flags::PREV_SMALL.bits();
/// A header word with these bits equal to `USED` is a sentinel (a used block of size 0).
const SENTINEL_MASK: u64 = SIZE_MASK | Flags::USED.bits();
/// The region header: next region, length (from the header to the end of the sentinel), the
/// source's start and the source's length (as `grow` returned them, the length as cut by
/// `shrink` since). The heap uses `[header, header + length)`, the 16-byte-aligned part of the
/// source's range; `release` and `shrink` get the source's own start and length back.
const REGION_HEADER: usize = 32;
/// Where the region header keeps the source's start (a pointer, with its provenance).
const SOURCE_START: usize = 16;
/// Where the region header keeps the source's length.
const SOURCE_LEN: usize = 24;
/// Region header plus end sentinel.
const REGION_OVERHEAD: usize = REGION_HEADER + HEADER;
/// Mixed into every magic number.
const KEY: u64 = 0x5bd1_e995_2545_f491;
/// A header absorbed into a neighbour carries its magic number xor this, so that a second free
/// of it is recognised as a double free.
const ABSORBED: u32 = 0xab50_12be;

/// The magic number of a header at `addr` for a block of `size` bytes.
#[inline]
fn magic(addr: usize, size: u64) -> u32 {
    // One multiply: the high half of the product mixes every bit of address, size and key.
    let x = ((addr as u64) ^ size.rotate_left(32) ^ KEY).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as u32 ^ x as u32
}

/// The whole pages `[start, end)` of the free block `block` of `size` bytes that hold none of
/// its metadata: from the first page boundary past its first `keep` bytes (at least its header
/// and links) up to the page that holds its boundary tag, its last word. The range is empty
/// when `end <= start`. Trimming and purging both drop pages only inside it.
#[inline]
fn droppable_pages(block: usize, size: usize, keep: usize, page: usize) -> (usize, usize) {
    (
        (block + keep.max(MIN_BLOCK)).next_multiple_of(page),
        (block + size - 8) & !(page - 1),
    )
}

/// Real memory from a [`Source`], laid out as the module docs describe.
///
/// Every block, link and region is named by a [`Block`] derived from the pointer its region's
/// source handed out, and links and region pointers are stored in memory as pointers, so every
/// access carries the provenance of the region it reaches: no integer is ever turned back into
/// a pointer. A pointer from the user is only compared as an address; the header in front of
/// it is read through a name derived from its region.
pub(crate) struct RawSpace<S: Source> {
    pub(crate) source: S,
    /// The lowest region ([`NO_REGION`] = none yet).
    regions: Block,
    /// The first region obtained ([`NO_REGION`] = none yet); it is never given back whole.
    primary: Block,
    /// Where the first region ends (0 = no region yet), kept here so that looking up a pointer
    /// in it reads no region header.
    primary_end: usize,
    /// How many addresses from the first region's first payload (`primary + 32`) up to its
    /// sentinel can be payloads (0 = no region yet): one comparison tells `lookup` that a
    /// pointer lies in the first region, past its first header and before its sentinel.
    payload_span: usize,
    heap_bytes: usize,
    overhead: usize,
}

/// The end of the region list, and "no region yet".
const NO_REGION: Block = Block::from_addr(0);

impl<S: Source> RawSpace<S> {
    pub(crate) const fn new(source: S) -> Self {
        RawSpace {
            source,
            regions: NO_REGION,
            primary: NO_REGION,
            primary_end: 0,
            payload_span: 0,
            heap_bytes: 0,
            overhead: 0,
        }
    }

    #[inline(always)]
    fn rd(&self, at: Block) -> u64 {
        // The engine only names blocks the space laid out, and `lookup` finds a user pointer's
        // region before reading, so every word read here is a header word, boundary tag or
        // region word inside a region this space owns, named from that region's pointer.
        // SAFETY: `at` lies inside one of this space's regions (above) and is 8-aligned.
        unsafe { at.as_ptr().cast::<u64>().read() }
    }

    #[inline(always)]
    fn wr(&mut self, at: Block, value: u64) {
        // SAFETY: as for `rd`: a metadata word inside an owned region, named from its pointer.
        unsafe { at.as_ptr().cast::<u64>().write(value) }
    }

    /// Reads a word that holds a pointer (a free-list link or a region's next region).
    #[inline(always)]
    fn rd_link(&self, at: Block) -> Block {
        // SAFETY: as for `rd`; the word was written by `wr_link`, as a pointer.
        Block::from_ptr(unsafe { at.as_ptr().cast::<*mut u8>().read() })
    }

    /// Writes a word that holds a pointer, keeping its provenance.
    #[inline(always)]
    fn wr_link(&mut self, at: Block, value: Block) {
        // SAFETY: as for `wr`.
        unsafe { at.as_ptr().cast::<*mut u8>().write(value.as_ptr()) }
    }

    /// The region holding `addr`, as (start, length).
    #[inline]
    fn region_of(&self, addr: usize) -> Option<(Block, usize)> {
        if addr >= self.primary.addr() && addr < self.primary_end {
            return Some((self.primary, self.primary_end - self.primary.addr()));
        }
        let mut r = self.regions;
        while r != NO_REGION && r.addr() <= addr {
            let len = self.rd(r + 8) as usize;
            if addr < r.addr() + len {
                return Some((r, len));
            }
            r = self.rd_link(r);
        }
        None
    }

    /// The range the source handed out for region `r` (its length as cut by `shrink` since), as
    /// `release` and `shrink` must get it back.
    fn source_range(&self, r: Block) -> (Block, usize) {
        (
            self.rd_link(r + SOURCE_START),
            self.rd(r + SOURCE_LEN) as usize,
        )
    }

    /// Records where the first region now ends.
    fn set_primary_end(&mut self, end: usize) {
        self.primary_end = end;
        // From the first payload (past the region header and the first block header) up to the
        // sentinel header.
        self.payload_span = end - self.primary.addr() - REGION_HEADER - 2 * HEADER;
    }

    /// The region holding a pointer handed to the user and the address of its sentinel, after
    /// checking that the pointer can be a payload there; the slow path of `lookup`, for
    /// pointers outside the first region and for bad ones.
    #[cold]
    fn payload_bounds_slow(&self, user: usize) -> Result<(Block, usize), FreeError> {
        let (r, len) = self.region_of(user).ok_or(FreeError::NotInHeap)?;
        let sentinel = r.addr() + len - HEADER;
        if user % ALIGN != 0 || user < r.addr() + REGION_HEADER + HEADER || user >= sentinel {
            return Err(FreeError::Misaligned);
        }
        Ok((r, sentinel))
    }

    /// Writes the end sentinel at `s`, with a purge mark of `mark` (fresh pages are untouched).
    fn write_sentinel(&mut self, s: Block, mark: usize) {
        self.wr(s, Flags::USED.bits());
        self.wr(s + 8, mark as u64);
    }

    /// The header at `next` is a sentinel: pages up to `touched` may now be resident, so raise
    /// its purge mark that far.
    #[inline]
    fn raise_mark(&mut self, next: Block, touched: Block) {
        if self.rd(next + 8) < touched.addr() as u64 {
            self.wr(next + 8, touched.addr() as u64);
        }
    }

    /// Marks `block` free with `size` bytes: its header (keeping its PREV bits, and LAST when
    /// the sentinel follows), its boundary tag, and the PREV bits of the header after it. With
    /// `keep_magic`, the header's second word is left as it is, for a caller that knows it
    /// already holds the magic number for this address and size.
    #[inline(always)]
    fn write_free(&mut self, block: Block, size: usize, keep_magic: bool) {
        let prev_bits = self.rd(block) & PREV_MASK;
        let next = block + size;
        let w = self.rd(next);
        let last = w & SENTINEL_MASK == Flags::USED.bits();
        let last_bit = if last { Flags::LAST.bits() } else { 0 };
        self.wr(block, size as u64 | prev_bits | last_bit);
        if !keep_magic {
            self.wr(block + 8, magic(block.addr(), size as u64) as u64);
        }
        let mut bits = Flags::PREV_FREE.bits();
        if size == MIN_BLOCK {
            bits |= Flags::PREV_SMALL.bits();
        } else {
            self.wr(block + (size - 8), size as u64);
        }
        self.wr(next, (w & !PREV_MASK) | bits);
        if last {
            // The region's trailing block: everything before it may have been handed out.
            self.raise_mark(next, block + MIN_BLOCK);
        }
    }

    /// Unlinks region `r` (whose next is `next`) from the sorted list.
    fn unlink_region(&mut self, r: Block, next: Block) {
        if self.regions == r {
            self.regions = next;
            return;
        }
        let mut x = self.regions;
        while x != NO_REGION {
            let n = self.rd_link(x);
            if n == r {
                self.wr_link(x, next);
                return;
            }
            x = n;
        }
    }

    /// Number of regions (for tests and reports).
    pub(crate) fn region_count(&self) -> usize {
        let mut n = 0;
        let mut r = self.regions;
        while r != NO_REGION {
            n += 1;
            r = self.rd_link(r);
        }
        n
    }
}

impl<S: Source> Drop for RawSpace<S> {
    fn drop(&mut self) {
        self.release_all();
    }
}

impl<S: Source> RawSpace<S> {
    /// Gives every region back to the source (if it takes memory back). The space is empty
    /// afterwards.
    pub(crate) fn release_all(&mut self) {
        if !self.source.can_release() {
            return;
        }
        let mut r = self.regions;
        while r != NO_REGION {
            let next = self.rd_link(r);
            let (start, len) = self.source_range(r);
            if let Some(p) = NonNull::new(start.as_ptr()) {
                // SAFETY: `start` and `len` are exactly what `grow` returned for this region
                // (the length as cut by `shrink` since), and the heap is being torn down, so
                // nothing uses it.
                unsafe { self.source.release(p, len) };
            }
            r = next;
        }
        self.regions = NO_REGION;
        self.primary = NO_REGION;
        self.primary_end = 0;
        self.payload_span = 0;
        self.heap_bytes = 0;
        self.overhead = 0;
    }
}

impl<S: Source> FreeLinks for RawSpace<S> {
    #[inline(always)]
    fn block_size(&self, block: Block) -> usize {
        (self.rd(block) & SIZE_MASK) as usize
    }
    #[inline(always)]
    fn next(&self, block: Block) -> Block {
        self.rd_link(block + 16)
    }
    #[inline(always)]
    fn prev(&self, block: Block) -> Block {
        self.rd_link(block + 24)
    }
    #[inline(always)]
    fn set_next(&mut self, block: Block, next: Block) {
        self.wr_link(block + 16, next)
    }
    #[inline(always)]
    fn set_prev(&mut self, block: Block, prev: Block) {
        self.wr_link(block + 24, prev)
    }
}

impl<S: Source> Space for RawSpace<S> {
    #[inline(always)]
    fn header_size(&self) -> usize {
        HEADER
    }
    #[inline(always)]
    fn min_block(&self) -> usize {
        MIN_BLOCK
    }
    #[inline(always)]
    fn natural_align(&self) -> usize {
        ALIGN
    }
    #[inline(always)]
    fn is_used(&self, block: Block) -> bool {
        self.rd(block) & Flags::USED.bits() != 0
    }
    #[inline]
    fn requested(&self, block: Block) -> usize {
        let payload = self.block_size(block) - HEADER;
        payload.saturating_sub((self.rd(block + 8) >> 32) as usize)
    }
    #[inline]
    fn fresh(&mut self, block: Block) {
        self.wr(block, 0);
    }
    #[inline]
    fn set_used(&mut self, block: Block, size: usize, requested: usize) {
        let prev_bits = self.rd(block) & PREV_MASK;
        self.wr(block, size as u64 | Flags::USED.bits() | prev_bits);
        let slack = (size - HEADER - requested) as u64;
        self.wr(
            block + 8,
            magic(block.addr(), size as u64) as u64 | slack << 32,
        );
        let next = block + size;
        let w = self.rd(next);
        self.wr(next, w & !PREV_MASK);
        if w & SENTINEL_MASK == Flags::USED.bits() {
            // The block runs up to the sentinel: all of it may be touched.
            self.raise_mark(next, next);
        }
    }
    #[inline]
    fn split(&mut self, block: Block, size: usize, requested: usize, rest: usize) {
        // The used block keeps its PREV bits; the remainder's block before it is used.
        let prev_bits = self.rd(block) & PREV_MASK;
        self.wr(block, size as u64 | Flags::USED.bits() | prev_bits);
        let slack = (size - HEADER - requested) as u64;
        self.wr(
            block + 8,
            magic(block.addr(), size as u64) as u64 | slack << 32,
        );
        let rem = block + size;
        let next = rem + rest;
        let w = self.rd(next);
        let last = w & SENTINEL_MASK == Flags::USED.bits();
        self.wr(rem, rest as u64 | if last { Flags::LAST.bits() } else { 0 });
        self.wr(rem + 8, magic(rem.addr(), rest as u64) as u64);
        let mut bits = Flags::PREV_FREE.bits();
        if rest == MIN_BLOCK {
            bits |= Flags::PREV_SMALL.bits();
        } else {
            self.wr(rem + (rest - 8), rest as u64);
        }
        self.wr(next, (w & !PREV_MASK) | bits);
        if last {
            self.raise_mark(next, rem + MIN_BLOCK);
        }
    }
    #[inline]
    fn split_free(
        &mut self,
        block: Block,
        size: usize,
        need: usize,
        requested: usize,
        rest: usize,
    ) {
        // `block` is a free block with its own header, so the header after it already says
        // PREV_FREE, and not PREV_SMALL (the block had `need + rest` > MIN_BLOCK bytes). The
        // remainder ends where the block ended: unless it is the smallest block, which has no
        // tag, that header stays as it is and is not even read (it is far away for a large
        // block), and only the sentinel of a trailing block needs its purge mark raised.
        let w = self.rd(block);
        let last = w & Flags::LAST.bits();
        self.wr(block, need as u64 | Flags::USED.bits() | (w & PREV_MASK));
        let slack = (need - HEADER - requested) as u64;
        self.wr(
            block + 8,
            magic(block.addr(), need as u64) as u64 | slack << 32,
        );
        let rem = block + need;
        self.wr(rem, rest as u64 | last);
        self.wr(rem + 8, magic(rem.addr(), rest as u64) as u64);
        let next = block + size;
        debug_assert_eq!(self.rd(next) & PREV_MASK, Flags::PREV_FREE.bits());
        debug_assert_eq!(
            last != 0,
            self.rd(next) & SENTINEL_MASK == Flags::USED.bits()
        );
        if rest == MIN_BLOCK {
            let nw = self.rd(next);
            self.wr(next, nw | Flags::PREV_SMALL.bits());
        } else {
            self.wr(next - 8, rest as u64);
        }
        if last != 0 {
            self.raise_mark(next, rem + MIN_BLOCK);
        }
    }
    #[inline]
    fn set_requested(&mut self, block: Block, requested: usize) {
        let size = self.block_size(block);
        let slack = (size - HEADER - requested) as u64;
        self.wr(
            block + 8,
            magic(block.addr(), size as u64) as u64 | slack << 32,
        );
    }
    #[inline]
    fn set_free(&mut self, block: Block, size: usize) {
        self.write_free(block, size, false);
    }
    #[inline]
    fn set_free_unmerged(&mut self, block: Block, size: usize) {
        // `lookup` has just checked that the header's magic number is the one for this address
        // and size, and a free block's slack is never read: the second word can stay.
        self.write_free(block, size, true);
    }
    #[inline]
    fn discard(&mut self, block: Block) {
        // The engine only absorbs genuine headers (a free block's, or a used block's that
        // `lookup` has just checked), so the stored magic number is already the right one for
        // this address and size: flipping it with the mark needs no new multiply.
        let stored = self.rd(block + 8) as u32;
        debug_assert_eq!(stored, magic(block.addr(), self.rd(block) & SIZE_MASK));
        self.wr(block + 8, (stored ^ ABSORBED) as u64);
    }
    #[inline]
    fn next_block(&self, block: Block) -> Option<Block> {
        let next = block + self.block_size(block);
        (self.rd(next) & SIZE_MASK != 0).then_some(next)
    }
    #[inline]
    fn prev_free(&self, block: Block) -> Option<Block> {
        let w = self.rd(block);
        if w & Flags::PREV_FREE.bits() == 0 {
            None
        } else if w & Flags::PREV_SMALL.bits() != 0 {
            Some(block - MIN_BLOCK)
        } else {
            Some(block - self.rd(block - 8) as usize)
        }
    }
    #[inline]
    fn lookup(&self, user: usize) -> Result<Block, FreeError> {
        let first_payload = self.primary.addr() + REGION_HEADER + HEADER;
        let off = user.wrapping_sub(first_payload);
        // The header is named from the region's own pointer, never from the user's.
        let (block, sentinel) = if off < self.payload_span && user % ALIGN == 0 {
            (
                self.primary + (REGION_HEADER + off),
                first_payload + self.payload_span,
            )
        } else {
            let (r, sentinel) = self.payload_bounds_slow(user)?;
            (r + (user - HEADER - r.addr()), sentinel)
        };
        let w0 = self.rd(block);
        let size = w0 & SIZE_MASK;
        let found = self.rd(block + 8) as u32;
        let expected = magic(block.addr(), size);
        if found != expected {
            return Err(if found == expected ^ ABSORBED {
                FreeError::DoubleFree
            } else {
                FreeError::BadMagic
            });
        }
        if (size as usize) < MIN_BLOCK || size as usize > sentinel - block.addr() {
            return Err(FreeError::BadMagic);
        }
        if w0 & Flags::USED.bits() == 0 {
            return Err(FreeError::DoubleFree);
        }
        Ok(block)
    }
    fn owns(&self, addr: usize) -> bool {
        self.region_of(addr).is_some()
    }
    fn grow(&mut self, block_size: usize) -> Option<(Block, usize)> {
        let min = block_size.checked_add(REGION_OVERHEAD + ALIGN)?;
        // Ask for at least half the heap again, so that a heap of n bytes has O(log n) regions
        // (a free looks its region up by walking the list). Untouched pages cost no memory.
        let (p, len) = match self.source.grow(min.max(self.heap_bytes / 2)) {
            Some(region) => region,
            None if min < self.heap_bytes / 2 => self.source.grow(min)?,
            None => return None,
        };
        let start = Block::from_ptr(p.as_ptr());
        // The 16-byte-aligned part of the region must hold a region header, a sentinel and a
        // block; a region too small for that goes straight back.
        let aligned = start
            .addr()
            .checked_add(ALIGN - 1)
            .map(|a| a & !(ALIGN - 1));
        let end = start.addr().checked_add(len).map(|e| e & !(ALIGN - 1));
        let (r, end) = match (aligned, end) {
            (Some(r), Some(end)) if end >= r && end - r >= REGION_OVERHEAD + MIN_BLOCK => (r, end),
            _ => {
                if self.source.can_release() {
                    // SAFETY: exactly the range `grow` just returned, which nothing uses.
                    unsafe { self.source.release(p, len) };
                }
                return None;
            }
        };
        let r = start + (r - start.addr());
        let sentinel = r + (end - HEADER - r.addr());
        let first = r + REGION_HEADER;
        self.wr(r + 8, (end - r.addr()) as u64);
        self.wr_link(r + SOURCE_START, start);
        self.wr(r + SOURCE_LEN, len as u64);
        // Insert the region in address order.
        let mut before = NO_REGION;
        let mut x = self.regions;
        while x != NO_REGION && x < r {
            before = x;
            x = self.rd_link(x);
        }
        self.wr_link(r, x);
        if before == NO_REGION {
            self.regions = r;
        } else {
            self.wr_link(before, r);
        }
        if self.primary == NO_REGION {
            self.primary = r;
            self.set_primary_end(end);
        }
        self.write_sentinel(sentinel, first.addr());
        self.wr(first, 0);
        let size = sentinel - first;
        self.heap_bytes += len;
        self.overhead += len - size;
        Some((first, size))
    }
    fn can_trim(&self) -> bool {
        self.source.can_release()
    }
    fn trim(&mut self, block: Block, size: usize, keep: usize, shrink: bool) -> Trim {
        let sentinel = block + size;
        let Some((r, len)) = self.region_of(block.addr()) else {
            return Trim::Kept;
        };
        let end = r.addr() + len;
        debug_assert_eq!(sentinel.addr(), end - HEADER);
        let (source_start, source_len) = self.source_range(r);
        let Some(source_ptr) = NonNull::new(source_start.as_ptr()) else {
            return Trim::Kept;
        };
        if block == r + REGION_HEADER && r != self.primary {
            let next = self.rd_link(r);
            // SAFETY: the region holds only this free block, which is on no list, so nothing
            // uses it; `source_ptr` and `source_len` are what `grow` returned for it (the
            // length as cut by `shrink` since).
            if unsafe { self.source.release(source_ptr, source_len) } {
                self.unlink_region(r, next);
                self.heap_bytes -= source_len;
                self.overhead -= source_len - size;
                return Trim::Released;
            }
            return Trim::Kept;
        }
        let page = self.source.page_size();
        if !shrink {
            // Drop the pages between what is kept and the purge mark, if there are enough.
            let (from, end) = droppable_pages(block.addr(), size, keep, page);
            let mark = self.rd(sentinel + 8) as usize;
            let to = mark.next_multiple_of(page).min(end);
            if to > from && to - from >= keep.max(page) {
                let Some(p) = NonNull::new((block + (from - block.addr())).as_ptr()) else {
                    return Trim::Kept;
                };
                // SAFETY: whole pages inside the free block (which is on no list), past its
                // header and links and before the page holding its boundary tag.
                if unsafe { self.source.purge(p, to - from) } {
                    self.wr(sentinel + 8, from as u64);
                }
            }
            return Trim::Kept;
        }
        // Keep the source's first `new_len` bytes, a whole number of pages, enough for the kept
        // part of the block and a sentinel; the region then ends at the last 16-byte boundary
        // in them.
        let keep_end = (block.addr() + keep.max(MIN_BLOCK) + HEADER).next_multiple_of(ALIGN);
        let new_len = (keep_end - source_start.addr()).next_multiple_of(page);
        let new_end = (source_start.addr() + new_len) & !(ALIGN - 1);
        if new_len >= source_len || new_end >= end {
            return Trim::Kept;
        }
        // `source_ptr` and `source_len` are what `grow` returned for this region (the length as
        // cut by `shrink` since), and `new_len` is a multiple of the page size.
        // SAFETY: the tail from `source_start + new_len` lies past `keep_end`: in the free block
        // (on no list), its sentinel or bytes past the sentinel that the heap never uses.
        if !unsafe { self.source.shrink(source_ptr, source_len, new_len) } {
            return Trim::Kept;
        }
        self.wr(r + SOURCE_LEN, new_len as u64);
        self.wr(r + 8, (new_end - r.addr()) as u64);
        if r == self.primary {
            self.set_primary_end(new_end);
        }
        let new_sentinel = r + (new_end - HEADER - r.addr());
        self.write_sentinel(new_sentinel, new_sentinel.addr());
        let new_size = new_sentinel - block;
        self.set_free(block, new_size);
        // The block lost `end - new_end` bytes and the heap `source_len - new_len`: the bytes
        // past the sentinel that the heap does not use (fewer than 16) change with the cut.
        self.heap_bytes -= source_len - new_len;
        self.overhead = self.overhead + (end - new_end) - (source_len - new_len);
        Trim::Shrunk { new_size }
    }
    fn purge(&mut self, block: Block, size: usize) -> usize {
        let (start, end) = droppable_pages(block.addr(), size, 0, self.source.page_size());
        if end <= start {
            return 0;
        }
        let Some(p) = NonNull::new((block + (start - block.addr())).as_ptr()) else {
            return 0;
        };
        // SAFETY: whole pages strictly inside a free block, which holds nothing anyone needs;
        // the block's metadata lies outside them.
        if unsafe { self.source.purge(p, end - start) } {
            end - start
        } else {
            0
        }
    }
    fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }
    fn overhead_bytes(&self) -> usize {
        self.overhead
    }
    fn walk_first(&self) -> Option<Cursor> {
        (self.regions != NO_REGION).then(|| (self.regions, self.regions + REGION_HEADER))
    }
    #[inline]
    fn walk_next(&self, (r, block): Cursor) -> Option<Cursor> {
        match self.next_block(block) {
            Some(n) => Some((r, n)),
            None => {
                let next = self.rd_link(r);
                (next != NO_REGION).then_some((next, next + REGION_HEADER))
            }
        }
    }
    fn walk_checked(
        &self,
        visit: &mut dyn FnMut(Block, bool) -> Result<(), Corruption>,
    ) -> Result<(), Corruption> {
        let mut r = self.regions;
        while r != NO_REGION {
            let len = self.rd(r + 8) as usize;
            // The region is the 16-byte-aligned part of the source's range.
            let (source_start, source_len) = self.source_range(r);
            let source_end = source_start.addr().wrapping_add(source_len);
            if r.addr().wrapping_sub(source_start.addr()) >= ALIGN
                || source_end < source_start.addr()
                || source_end & !(ALIGN - 1) != r.addr() + len
            {
                return Err(Corruption::BadTiling { addr: r.addr() });
            }
            if r == self.primary
                && (r.addr() + len != self.primary_end
                    || self.payload_span != len - REGION_HEADER - 2 * HEADER)
            {
                return Err(Corruption::BadTiling { addr: r.addr() });
            }
            let sentinel = r + (len - HEADER);
            let s = self.rd(sentinel);
            let mark = self.rd(sentinel + 8) as usize;
            if s & SIZE_MASK != 0
                || s & Flags::USED.bits() == 0
                || mark < r.addr()
                || mark > sentinel.addr()
            {
                return Err(Corruption::BadTiling {
                    addr: sentinel.addr(),
                });
            }
            let mut block = r + REGION_HEADER;
            let mut last_free = false;
            while block < sentinel {
                let size = self.block_size(block);
                if size < MIN_BLOCK || size > sentinel - block {
                    return Err(Corruption::BadTiling { addr: block.addr() });
                }
                if self.rd(block + 8) as u32 != magic(block.addr(), size as u64) {
                    return Err(Corruption::BadMagic { addr: block.addr() });
                }
                visit(block, block == r + REGION_HEADER)?;
                last_free = !self.is_used(block);
                block += size;
            }
            if block != sentinel {
                return Err(Corruption::BadTiling { addr: block.addr() });
            }
            if (s & Flags::PREV_FREE.bits() != 0) != last_free {
                return Err(Corruption::BadBoundaryTag {
                    addr: sentinel.addr(),
                });
            }
            r = self.rd_link(r);
        }
        Ok(())
    }
    fn check_block(&self, block: Block, prev_free: Option<Block>) -> Result<(), Corruption> {
        let addr = block.addr();
        let w = self.rd(block);
        let flagged = w & Flags::PREV_FREE.bits() != 0;
        if flagged != prev_free.is_some() {
            return Err(Corruption::BadBoundaryTag { addr });
        }
        if let Some(p) = prev_free {
            let small = self.block_size(p) == MIN_BLOCK;
            if (w & Flags::PREV_SMALL.bits() != 0) != small || self.prev_free(block) != Some(p) {
                return Err(Corruption::BadBoundaryTag { addr });
            }
        }
        let size = self.block_size(block);
        if !self.is_used(block) && size > MIN_BLOCK && self.rd(block + (size - 8)) as usize != size
        {
            return Err(Corruption::BadBoundaryTag { addr });
        }
        // LAST: exactly the free blocks whose next header is the sentinel carry it.
        let ends_region = self.rd(block + size) & SENTINEL_MASK == Flags::USED.bits();
        if (w & Flags::LAST.bits() != 0) != (ends_region && !self.is_used(block)) {
            return Err(Corruption::BadTiling { addr });
        }
        if self.is_used(block) && (self.rd(block + 8) >> 32) as usize > size - HEADER {
            return Err(Corruption::BadMagic { addr });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FixedRegion;
    use std::vec;

    fn space(buf: &mut [u128]) -> RawSpace<FixedRegion> {
        let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer outlives the space in every test below.
        RawSpace::new(unsafe { FixedRegion::new(start, buf.len() * 16) })
    }

    #[test]
    fn magic_depends_on_address_and_size() {
        // 256 addresses x 64 sizes (16 x 32 under Miri, which interprets every hash).
        let (addrs, sizes) = if cfg!(miri) { (16, 32) } else { (256, 64) };
        let mut seen = std::vec::Vec::new();
        for addr in (0x1000..0x1000 + addrs * 16).step_by(16) {
            for size in (32..32 + sizes * 16).step_by(16) {
                seen.push(magic(addr, size as u64));
            }
        }
        seen.sort_unstable();
        seen.dedup();
        // A keyed 32-bit hash should give (almost) all different values.
        let n = addrs * sizes;
        assert!(
            seen.len() > n - n / 200,
            "only {} distinct magic numbers of {n}",
            seen.len()
        );
    }

    #[test]
    fn a_region_is_framed_by_its_header_and_sentinel() {
        let mut buf = vec![0u128; 64];
        let mut s = space(&mut buf);
        let (first, size) = s.grow(32).unwrap();
        assert_eq!(first.addr(), buf.as_ptr() as usize + REGION_HEADER);
        assert_eq!(size, 64 * 16 - REGION_OVERHEAD);
        assert_eq!(s.overhead_bytes(), REGION_OVERHEAD);
        assert!(s.grow(32).is_none(), "a fixed region is handed out once");
        s.set_free(first, size);
        assert_eq!(s.next_block(first), None, "the sentinel ends the walk");
        assert_eq!(s.prev_free(first), None);
        assert_eq!(s.region_count(), 1);
    }

    #[test]
    fn a_region_keeps_the_source_range_it_was_cut_from() {
        let mut buf = vec![0u128; 64];
        let base = Block::from_ptr(buf.as_mut_ptr().cast::<u8>());
        // 5 bytes past a 16-byte boundary, ending 3 bytes before one: the aligned part is the
        // 62 whole 16-byte units in between.
        let (start, len) = (base + 5, 64 * 16 - 5 - 3);
        // SAFETY: the buffer outlives the space.
        let mut s =
            RawSpace::new(unsafe { FixedRegion::new(NonNull::new(start.as_ptr()).unwrap(), len) });
        let (first, size) = s.grow(32).unwrap();
        let r = base + 16;
        assert_eq!(first, r + REGION_HEADER);
        assert_eq!(
            size,
            62 * 16 - REGION_OVERHEAD,
            "the aligned part, less header and sentinel"
        );
        assert_eq!(s.overhead_bytes(), len - size);
        assert_eq!(s.source_range(r), (start, len));
        s.set_free(first, size);
        let ok = |s: &RawSpace<FixedRegion>| s.walk_checked(&mut |_, _| Ok(()));
        ok(&s).unwrap();
        // A source range that does not round to the region is corruption.
        s.wr(r + SOURCE_LEN, (len + 16) as u64);
        assert_eq!(ok(&s), Err(Corruption::BadTiling { addr: r.addr() }));
        s.wr(r + SOURCE_LEN, len as u64);
        s.wr_link(r + SOURCE_START, start - 16);
        assert_eq!(ok(&s), Err(Corruption::BadTiling { addr: r.addr() }));
        s.wr_link(r + SOURCE_START, start);
        ok(&s).unwrap();
    }

    #[test]
    fn prev_free_finds_small_and_tagged_neighbours() {
        let mut buf = vec![0u128; 64];
        let mut s = space(&mut buf);
        let (a, size) = s.grow(32).unwrap();
        // a: 32 bytes free (no boundary tag), b: 64 used, c: 48 free (tagged), d: the rest, used.
        s.set_used(a, 32, 10);
        s.set_used(a + 32, 64, 40);
        s.set_used(a + 96, 48, 20);
        s.set_used(a + 144, size - 144, 1);
        s.set_free(a, 32);
        s.set_free(a + 96, 48);
        assert_eq!(s.prev_free(a + 32), Some(a), "found through PREV_SMALL");
        assert_eq!(
            s.prev_free(a + 144),
            Some(a + 96),
            "found through the boundary tag"
        );
        assert_eq!(s.prev_free(a + 96), None);
        assert_eq!(s.next_block(a), Some(a + 32));
        assert_eq!(s.requested(a + 32), 40);
        s.check_block(a + 32, Some(a)).unwrap();
        s.check_block(a + 144, Some(a + 96)).unwrap();
        assert!(s.check_block(a + 32, None).is_err(), "PREV_FREE is set");
        // A used block's pointer passes lookup; a free one is a double free; an absorbed one too.
        let at = |b: Block| b.addr();
        assert_eq!(s.lookup(at(a + 32 + HEADER)), Ok(a + 32));
        assert_eq!(s.lookup(at(a + HEADER)), Err(FreeError::DoubleFree));
        s.discard(a + 96);
        assert_eq!(s.lookup(at(a + 96 + HEADER)), Err(FreeError::DoubleFree));
        assert_eq!(s.lookup(at(a + 32 + HEADER + 16)), Err(FreeError::BadMagic));
        assert_eq!(s.lookup(at(a + 8)), Err(FreeError::Misaligned));
        assert_eq!(s.lookup(at(a + size + 16)), Err(FreeError::NotInHeap));
    }
}
