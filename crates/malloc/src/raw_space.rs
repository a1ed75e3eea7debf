//! Block metadata in real memory: headers with magic numbers, free-list links and boundary tags
//! inside the blocks themselves, and region bookkeeping inside the regions.
//!
//! Layout. A region starts with a 16-byte region header (next region, length) and ends with a
//! 16-byte sentinel header (size 0, used), so walking or coalescing never leaves the region. The
//! sentinel's second word is the region's *purge mark*: no page from the mark to the sentinel
//! has been touched since it was mapped or last dropped with madvise. Handing out the region's
//! trailing block raises the mark; trimming at `free` drops pages only below it and lowers it,
//! so the OS is asked about each page once, not on every free.
//! Every block starts with a 16-byte header:
//!
//! ```text
//! word 0: size (a multiple of 16) | USED | PREV_FREE | PREV_SMALL | LAST
//! word 1: magic (32 bits, keyed to the block's address and size) | slack (32 bits, used blocks)
//! ```
//!
//! The payload follows at a 16-byte boundary. `slack` is the payload bytes the caller did not ask
//! for, so the requested size is known again at free time. A free block keeps its list links in
//! its payload (next at +16, prev at +24) and a boundary tag (its size) in its last word, except
//! the smallest (32-byte) free block, whose last word is its prev link: for it the following
//! header says PREV_SMALL instead. PREV_FREE in the following header makes backward coalescing
//! O(1), as in dlmalloc. LAST marks a free block whose next header is the sentinel, so that
//! carving an allocation out of any other free block need not read the header after it.
//! Invariant: every header's PREV bits describe the block before it, exactly the free blocks
//! that end their region say LAST, and the regions list is sorted by address.

use bitflags::bitflags;
use core::ptr::NonNull;

use crate::error::{Corruption, FreeError};
use crate::source::Source;
use crate::space::{Cursor, FreeLinks, Space, Trim};

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
        /// A free block that ends its region: the header after it is the sentinel. Carving an
        /// allocation out of any other free block need not read the header after it.
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
/// The region header: next region, length.
const REGION_HEADER: usize = 16;
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

#[inline]
const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// The whole pages `[start, end)` of the free block `block` of `size` bytes that hold none of
/// its metadata: from the first page boundary past its first `keep` bytes (at least its header
/// and links) up to the page that holds its boundary tag, its last word. The range is empty
/// when `end <= start`. Trimming and purging both drop pages only inside it.
#[inline]
fn droppable_pages(block: usize, size: usize, keep: usize, page: usize) -> (usize, usize) {
    (
        align_up(block + keep.max(MIN_BLOCK), page),
        (block + size - 8) & !(page - 1),
    )
}

/// Real memory from a [`Source`], laid out as the module docs describe.
pub(crate) struct RawSpace<S: Source> {
    pub(crate) source: S,
    /// The lowest region (0 = none yet).
    regions: usize,
    /// The first region obtained; it is never given back whole.
    primary: usize,
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

impl<S: Source> RawSpace<S> {
    pub(crate) const fn new(source: S) -> Self {
        RawSpace {
            source,
            regions: 0,
            primary: 0,
            primary_end: 0,
            payload_span: 0,
            heap_bytes: 0,
            overhead: 0,
        }
    }

    #[inline(always)]
    fn rd(&self, addr: usize) -> u64 {
        // SAFETY: every address read here is a header word, link, boundary tag or region word
        // inside a region this space owns (the engine only names blocks the space laid out, and
        // `lookup` checks a user pointer's region before reading); all are 8-aligned.
        unsafe { (addr as *const u64).read() }
    }

    #[inline(always)]
    fn wr(&mut self, addr: usize, value: u64) {
        // SAFETY: as for `rd`: the address is a metadata word inside an owned region.
        unsafe { (addr as *mut u64).write(value) }
    }

    /// The region holding `addr`, as (start, length).
    #[inline]
    fn region_of(&self, addr: usize) -> Option<(usize, usize)> {
        if addr >= self.primary && addr < self.primary_end {
            return Some((self.primary, self.primary_end - self.primary));
        }
        let mut r = self.regions;
        while r != 0 && r <= addr {
            let len = self.rd(r + 8) as usize;
            if addr < r + len {
                return Some((r, len));
            }
            r = self.rd(r) as usize;
        }
        None
    }

    /// Records where the first region now ends.
    fn set_primary_end(&mut self, end: usize) {
        self.primary_end = end;
        // From the first payload (past the region header and the first block header) up to the
        // sentinel header.
        self.payload_span = end - self.primary - REGION_HEADER - 2 * HEADER;
    }

    /// Where the region holding a pointer handed to the user ends (its sentinel), after
    /// checking that the pointer can be a payload there; the slow path of `lookup`, for
    /// pointers outside the first region and for bad ones.
    #[cold]
    fn payload_bounds_slow(&self, user: usize) -> Result<usize, FreeError> {
        let (r, len) = self.region_of(user).ok_or(FreeError::NotInHeap)?;
        let sentinel = r + len - HEADER;
        if user % ALIGN != 0 || user < r + REGION_HEADER + HEADER || user >= sentinel {
            return Err(FreeError::Misaligned);
        }
        Ok(sentinel)
    }

    /// Writes the end sentinel at `s`, with a purge mark of `mark` (fresh pages are untouched).
    fn write_sentinel(&mut self, s: usize, mark: usize) {
        self.wr(s, Flags::USED.bits());
        self.wr(s + 8, mark as u64);
    }

    /// The header at `next` is a sentinel: pages up to `touched` may now be resident, so raise
    /// its purge mark that far.
    #[inline]
    fn raise_mark(&mut self, next: usize, touched: usize) {
        if self.rd(next + 8) < touched as u64 {
            self.wr(next + 8, touched as u64);
        }
    }

    /// Marks `block` free with `size` bytes: its header (keeping its PREV bits, and LAST when
    /// the sentinel follows), its boundary tag, and the PREV bits of the header after it. With
    /// `keep_magic`, the header's second word is left as it is, for a caller that knows it
    /// already holds the magic number for this address and size.
    #[inline(always)]
    fn write_free(&mut self, block: usize, size: usize, keep_magic: bool) {
        let prev_bits = self.rd(block) & PREV_MASK;
        let next = block + size;
        let w = self.rd(next);
        let last = w & SENTINEL_MASK == Flags::USED.bits();
        let last_bit = if last { Flags::LAST.bits() } else { 0 };
        self.wr(block, size as u64 | prev_bits | last_bit);
        if !keep_magic {
            self.wr(block + 8, magic(block, size as u64) as u64);
        }
        let mut bits = Flags::PREV_FREE.bits();
        if size == MIN_BLOCK {
            bits |= Flags::PREV_SMALL.bits();
        } else {
            self.wr(block + size - 8, size as u64);
        }
        self.wr(next, (w & !PREV_MASK) | bits);
        if last {
            // The region's trailing block: everything before it may have been handed out.
            self.raise_mark(next, block + MIN_BLOCK);
        }
    }

    /// Unlinks region `r` (whose next is `next`) from the sorted list.
    fn unlink_region(&mut self, r: usize, next: usize) {
        if self.regions == r {
            self.regions = next;
            return;
        }
        let mut x = self.regions;
        while x != 0 {
            let n = self.rd(x) as usize;
            if n == r {
                self.wr(x, next as u64);
                return;
            }
            x = n;
        }
    }

    /// Number of regions (for tests and reports).
    pub(crate) fn region_count(&self) -> usize {
        let mut n = 0;
        let mut r = self.regions;
        while r != 0 {
            n += 1;
            r = self.rd(r) as usize;
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
        while r != 0 {
            let next = self.rd(r) as usize;
            let len = self.rd(r + 8) as usize;
            if let Some(p) = NonNull::new(r as *mut u8) {
                // SAFETY: `r` and `len` describe a whole region `grow` returned (regions from a
                // releasing source are page aligned, so `r` is the start the source gave), and
                // the heap is being torn down, so nothing uses it.
                unsafe { self.source.release(p, len) };
            }
            r = next;
        }
        self.regions = 0;
        self.primary = 0;
        self.primary_end = 0;
        self.payload_span = 0;
        self.heap_bytes = 0;
        self.overhead = 0;
    }
}

impl<S: Source> FreeLinks for RawSpace<S> {
    #[inline(always)]
    fn block_size(&self, block: usize) -> usize {
        (self.rd(block) & SIZE_MASK) as usize
    }
    #[inline(always)]
    fn next(&self, block: usize) -> usize {
        self.rd(block + 16) as usize
    }
    #[inline(always)]
    fn prev(&self, block: usize) -> usize {
        self.rd(block + 24) as usize
    }
    #[inline(always)]
    fn set_next(&mut self, block: usize, next: usize) {
        self.wr(block + 16, next as u64)
    }
    #[inline(always)]
    fn set_prev(&mut self, block: usize, prev: usize) {
        self.wr(block + 24, prev as u64)
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
    fn is_used(&self, block: usize) -> bool {
        self.rd(block) & Flags::USED.bits() != 0
    }
    #[inline]
    fn requested(&self, block: usize) -> usize {
        let payload = self.block_size(block) - HEADER;
        payload.saturating_sub((self.rd(block + 8) >> 32) as usize)
    }
    #[inline]
    fn fresh(&mut self, block: usize) {
        self.wr(block, 0);
    }
    #[inline]
    fn set_used(&mut self, block: usize, size: usize, requested: usize) {
        let prev_bits = self.rd(block) & PREV_MASK;
        self.wr(block, size as u64 | Flags::USED.bits() | prev_bits);
        let slack = (size - HEADER - requested) as u64;
        self.wr(block + 8, magic(block, size as u64) as u64 | slack << 32);
        let next = block + size;
        let w = self.rd(next);
        self.wr(next, w & !PREV_MASK);
        if w & SENTINEL_MASK == Flags::USED.bits() {
            // The block runs up to the sentinel: all of it may be touched.
            self.raise_mark(next, next);
        }
    }
    #[inline]
    fn split_used(&mut self, block: usize, size: usize, requested: usize, rest: usize) {
        // The used block keeps its PREV bits; the remainder's block before it is used.
        let prev_bits = self.rd(block) & PREV_MASK;
        self.wr(block, size as u64 | Flags::USED.bits() | prev_bits);
        let slack = (size - HEADER - requested) as u64;
        self.wr(block + 8, magic(block, size as u64) as u64 | slack << 32);
        let rem = block + size;
        let next = rem + rest;
        let w = self.rd(next);
        let last = w & SENTINEL_MASK == Flags::USED.bits();
        self.wr(rem, rest as u64 | if last { Flags::LAST.bits() } else { 0 });
        self.wr(rem + 8, magic(rem, rest as u64) as u64);
        let mut bits = Flags::PREV_FREE.bits();
        if rest == MIN_BLOCK {
            bits |= Flags::PREV_SMALL.bits();
        } else {
            self.wr(rem + rest - 8, rest as u64);
        }
        self.wr(next, (w & !PREV_MASK) | bits);
        if last {
            self.raise_mark(next, rem + MIN_BLOCK);
        }
    }
    #[inline]
    fn carve(&mut self, block: usize, size: usize, need: usize, requested: usize, rest: usize) {
        // `block` is a free block with its own header, so the header after it already says
        // PREV_FREE, and not PREV_SMALL (the block had `need + rest` > MIN_BLOCK bytes). The
        // remainder ends where the block ended: unless it is the smallest block, which has no
        // tag, that header stays as it is and is not even read (it is far away for a large
        // block), and only the sentinel of a trailing block needs its purge mark raised.
        let w = self.rd(block);
        let last = w & Flags::LAST.bits();
        self.wr(block, need as u64 | Flags::USED.bits() | (w & PREV_MASK));
        let slack = (need - HEADER - requested) as u64;
        self.wr(block + 8, magic(block, need as u64) as u64 | slack << 32);
        let rem = block + need;
        self.wr(rem, rest as u64 | last);
        self.wr(rem + 8, magic(rem, rest as u64) as u64);
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
    fn set_requested(&mut self, block: usize, requested: usize) {
        let size = self.block_size(block);
        let slack = (size - HEADER - requested) as u64;
        self.wr(block + 8, magic(block, size as u64) as u64 | slack << 32);
    }
    #[inline]
    fn set_free(&mut self, block: usize, size: usize) {
        self.write_free(block, size, false);
    }
    #[inline]
    fn set_free_unmerged(&mut self, block: usize, size: usize) {
        // `lookup` has just checked that the header's magic number is the one for this address
        // and size, and a free block's slack is never read: the second word can stay.
        self.write_free(block, size, true);
    }
    #[inline]
    fn discard(&mut self, block: usize) {
        // The engine only absorbs genuine headers (a free block's, or a used block's that
        // `lookup` has just checked), so the stored magic number is already the right one for
        // this address and size: flipping it with the mark needs no new multiply.
        let stored = self.rd(block + 8) as u32;
        debug_assert_eq!(stored, magic(block, self.rd(block) & SIZE_MASK));
        self.wr(block + 8, (stored ^ ABSORBED) as u64);
    }
    #[inline]
    fn next_block(&self, block: usize) -> Option<usize> {
        let next = block + self.block_size(block);
        (self.rd(next) & SIZE_MASK != 0).then_some(next)
    }
    #[inline]
    fn prev_free(&self, block: usize) -> Option<usize> {
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
    fn lookup(&self, user: usize) -> Result<usize, FreeError> {
        let first_payload = self.primary + REGION_HEADER + HEADER;
        let sentinel = if user.wrapping_sub(first_payload) < self.payload_span && user % ALIGN == 0
        {
            first_payload + self.payload_span
        } else {
            self.payload_bounds_slow(user)?
        };
        let block = user - HEADER;
        let w0 = self.rd(block);
        let size = w0 & SIZE_MASK;
        let found = self.rd(block + 8) as u32;
        let expected = magic(block, size);
        if found != expected {
            return Err(if found == expected ^ ABSORBED {
                FreeError::DoubleFree
            } else {
                FreeError::BadMagic
            });
        }
        if (size as usize) < MIN_BLOCK || size as usize > sentinel - block {
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
    fn grow(&mut self, block_size: usize) -> Option<(usize, usize)> {
        let min = block_size.checked_add(REGION_OVERHEAD + ALIGN)?;
        // Ask for at least half the heap again, so that a heap of n bytes has O(log n) regions
        // (a free looks its region up by walking the list). Untouched pages cost no memory.
        let (p, len) = match self.source.grow(min.max(self.heap_bytes / 2)) {
            Some(region) => region,
            None if min < self.heap_bytes / 2 => self.source.grow(min)?,
            None => return None,
        };
        let start = p.as_ptr() as usize;
        let r = align_up(start, ALIGN);
        let end = start.checked_add(len)? & !(ALIGN - 1);
        if end < r + REGION_OVERHEAD + MIN_BLOCK {
            return None;
        }
        let sentinel = end - HEADER;
        let first = r + REGION_HEADER;
        self.wr(r + 8, (end - r) as u64);
        // Insert the region in address order.
        let mut before = 0usize;
        let mut x = self.regions;
        while x != 0 && x < r {
            before = x;
            x = self.rd(x) as usize;
        }
        self.wr(r, x as u64);
        if before == 0 {
            self.regions = r;
        } else {
            self.wr(before, r as u64);
        }
        if self.primary == 0 {
            self.primary = r;
            self.set_primary_end(end);
        }
        self.write_sentinel(sentinel, first);
        self.wr(first, 0);
        let size = sentinel - first;
        self.heap_bytes += len;
        self.overhead += len - size;
        Some((first, size))
    }
    fn can_trim(&self) -> bool {
        self.source.can_release()
    }
    fn trim(&mut self, block: usize, size: usize, keep: usize, shrink: bool) -> Trim {
        let sentinel = block + size;
        let Some((r, len)) = self.region_of(block) else {
            return Trim::Kept;
        };
        let end = r + len;
        debug_assert_eq!(sentinel, end - HEADER);
        let Some(start) = NonNull::new(r as *mut u8) else {
            return Trim::Kept;
        };
        if block == r + REGION_HEADER && r != self.primary {
            let next = self.rd(r) as usize;
            // SAFETY: the region holds only this free block, which is on no list, so nothing
            // uses it; `r` and `len` describe the region as `grow` (and any shrinking) left it.
            if unsafe { self.source.release(start, len) } {
                self.unlink_region(r, next);
                self.heap_bytes -= len;
                self.overhead -= len - size;
                return Trim::Released;
            }
            return Trim::Kept;
        }
        let page = self.source.page_size();
        if !shrink {
            // Drop the pages between what is kept and the purge mark, if there are enough.
            let (from, end) = droppable_pages(block, size, keep, page);
            let mark = self.rd(sentinel + 8) as usize;
            let to = align_up(mark, page).min(end);
            if to > from && to - from >= keep.max(page) {
                let Some(p) = NonNull::new(from as *mut u8) else {
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
        let new_end = align_up(block + keep.max(MIN_BLOCK) + HEADER, page);
        if new_end >= end || r % page != 0 {
            return Trim::Kept;
        }
        // SAFETY: the tail past `new_end` lies inside the free block, which is on no list.
        if !unsafe { self.source.shrink(start, len, new_end - r) } {
            return Trim::Kept;
        }
        self.wr(r + 8, (new_end - r) as u64);
        if r == self.primary {
            self.set_primary_end(new_end);
        }
        self.write_sentinel(new_end - HEADER, new_end - HEADER);
        let new_size = new_end - HEADER - block;
        self.set_free(block, new_size);
        self.heap_bytes -= end - new_end;
        Trim::Shrunk { new_size }
    }
    fn purge(&mut self, block: usize, size: usize) -> usize {
        let (start, end) = droppable_pages(block, size, 0, self.source.page_size());
        if end <= start {
            return 0;
        }
        let Some(p) = NonNull::new(start as *mut u8) else {
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
        (self.regions != 0).then(|| (self.regions, self.regions + REGION_HEADER))
    }
    #[inline]
    fn walk_next(&self, (r, block): Cursor) -> Option<Cursor> {
        match self.next_block(block) {
            Some(n) => Some((r, n)),
            None => {
                let next = self.rd(r) as usize;
                (next != 0).then_some((next, next + REGION_HEADER))
            }
        }
    }
    fn walk_checked(
        &self,
        visit: &mut dyn FnMut(usize, bool) -> Result<(), Corruption>,
    ) -> Result<(), Corruption> {
        let mut r = self.regions;
        while r != 0 {
            let len = self.rd(r + 8) as usize;
            if r == self.primary
                && (r + len != self.primary_end
                    || self.payload_span != len - REGION_HEADER - 2 * HEADER)
            {
                return Err(Corruption::BadTiling { addr: r });
            }
            let sentinel = r + len - HEADER;
            let s = self.rd(sentinel);
            let mark = self.rd(sentinel + 8) as usize;
            if s & SIZE_MASK != 0 || s & Flags::USED.bits() == 0 || mark < r || mark > sentinel {
                return Err(Corruption::BadTiling { addr: sentinel });
            }
            let mut block = r + REGION_HEADER;
            let mut last_free = false;
            while block < sentinel {
                let size = self.block_size(block);
                if size < MIN_BLOCK || size > sentinel - block {
                    return Err(Corruption::BadTiling { addr: block });
                }
                if self.rd(block + 8) as u32 != magic(block, size as u64) {
                    return Err(Corruption::BadMagic { addr: block });
                }
                visit(block, block == r + REGION_HEADER)?;
                last_free = !self.is_used(block);
                block += size;
            }
            if block != sentinel {
                return Err(Corruption::BadTiling { addr: block });
            }
            if (s & Flags::PREV_FREE.bits() != 0) != last_free {
                return Err(Corruption::BadBoundaryTag { addr: sentinel });
            }
            r = self.rd(r) as usize;
        }
        Ok(())
    }
    fn check_block(&self, block: usize, prev_free: Option<usize>) -> Result<(), Corruption> {
        let w = self.rd(block);
        let flagged = w & Flags::PREV_FREE.bits() != 0;
        if flagged != prev_free.is_some() {
            return Err(Corruption::BadBoundaryTag { addr: block });
        }
        if let Some(p) = prev_free {
            let small = self.block_size(p) == MIN_BLOCK;
            if (w & Flags::PREV_SMALL.bits() != 0) != small || self.prev_free(block) != Some(p) {
                return Err(Corruption::BadBoundaryTag { addr: block });
            }
        }
        let size = self.block_size(block);
        if !self.is_used(block) && size > MIN_BLOCK && self.rd(block + size - 8) as usize != size {
            return Err(Corruption::BadBoundaryTag { addr: block });
        }
        // LAST: exactly the free blocks whose next header is the sentinel carry it.
        let ends_region = self.rd(block + size) & SENTINEL_MASK == Flags::USED.bits();
        if (w & Flags::LAST.bits() != 0) != (ends_region && !self.is_used(block)) {
            return Err(Corruption::BadTiling { addr: block });
        }
        if self.is_used(block) && (self.rd(block + 8) >> 32) as usize > size - HEADER {
            return Err(Corruption::BadMagic { addr: block });
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
        let mut seen = std::collections::HashSet::new();
        for addr in (0x1000..0x1000 + 256 * 16).step_by(16) {
            for size in (32..32 + 64 * 16).step_by(16) {
                seen.insert(magic(addr, size as u64));
            }
        }
        // 16384 headers; a keyed 32-bit hash should give (almost) all different values.
        assert!(
            seen.len() > 16_300,
            "only {} distinct magic numbers",
            seen.len()
        );
    }

    #[test]
    fn a_region_is_framed_by_its_header_and_sentinel() {
        let mut buf = vec![0u128; 64];
        let mut s = space(&mut buf);
        let (first, size) = s.grow(32).unwrap();
        assert_eq!(first, buf.as_ptr() as usize + REGION_HEADER);
        assert_eq!(size, 64 * 16 - REGION_OVERHEAD);
        assert_eq!(s.overhead_bytes(), REGION_OVERHEAD);
        assert!(s.grow(32).is_none(), "a fixed region is handed out once");
        s.set_free(first, size);
        assert_eq!(s.next_block(first), None, "the sentinel ends the walk");
        assert_eq!(s.prev_free(first), None);
        assert_eq!(s.region_count(), 1);
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
        assert_eq!(s.lookup(a + 32 + HEADER), Ok(a + 32));
        assert_eq!(s.lookup(a + HEADER), Err(FreeError::DoubleFree));
        s.discard(a + 96);
        assert_eq!(s.lookup(a + 96 + HEADER), Err(FreeError::DoubleFree));
        assert_eq!(s.lookup(a + 32 + HEADER + 16), Err(FreeError::BadMagic));
        assert_eq!(s.lookup(a + 8), Err(FreeError::Misaligned));
        assert_eq!(s.lookup(a + size + 16), Err(FreeError::NotInHeap));
    }
}
