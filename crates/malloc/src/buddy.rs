//! Binary buddy allocation over one fixed region: power-of-two blocks, one free list per order.
//!
//! Invariant: the region is tiled by blocks whose sizes are powers of two and whose offsets from
//! the region's base are multiples of their sizes. Every block starts with a header (state, order,
//! magic keyed to the header's address); a free block also carries the links of its order's
//! doubly linked free list, and no two free buddies of the same order ever coexist (freeing
//! merges them at once). A block's buddy is found by flipping bit `order` of its offset.
//! A header that stops starting a block (the upper half of a merge) or a payload (a freed
//! over-aligned block's payload header) is marked absorbed, so that no stale header inside a
//! free block, or inside a block handed out again, passes for a live one: a second free of its
//! pointer is a double free.
//!
//! # Layout of a block
//!
//! ```text
//!  offset 0         16                          pad        pad + size       2^order
//!  | header (16 B)  | free: next, prev links    |                             |
//!  | header (16 B)  | used: payload ...............................| slack    |   (align <= 16, pad = 16)
//!  | header (16 B)  | padding | payload header | payload ...........| slack    |   (align > 16)
//! ```
//!
//! A request for `size` bytes at alignment `align` takes the smallest block of at least
//! `size + max(16, align)` bytes. The slack between the end of the payload and the end of the
//! block is internal fragmentation: it is reported in [`HeapStats`] as
//! `allocated_bytes - requested_bytes`. With the 16-byte header, the chapter's 7 KB request takes
//! an 8 KB block, while an exact 8 KB request takes a 16 KB one.
//!
//! # Regions that are not a power of two
//!
//! The start is rounded up to 16 bytes and the length down to a multiple of the minimum block
//! (32 bytes). The rest is split into the binary decomposition of its length: a 100 KB region
//! becomes root blocks of 64 KB, 32 KB and 4 KB, each aligned to its own size relative to the
//! base. Two blocks merge only if the merged block lies entirely inside the region, so roots of
//! different sizes never merge. The bytes lost to rounding are `overhead_bytes`.

use core::alloc::Layout;
use core::fmt;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use crate::raw_heap::{BlockInfo, BlockState, RawHeap};
use crate::{AllocError, Corruption, FreeError, HeapStats};

/// Bytes in a block header; payloads are aligned to this too.
const HEADER: usize = 16;
/// log2 of the smallest block: a header plus two free-list links.
const MIN_ORDER: u32 = 5;
/// The smallest block, in bytes.
const MIN_BLOCK: usize = 1 << MIN_ORDER;
/// The largest alignment a request may ask for. The payload's distance from its block start is
/// stored in 16-byte units in a `u16`.
const MAX_ALIGN: usize = 1 << 19;
/// Number of free lists: one per possible order.
const ORDERS: usize = usize::BITS as usize;

/// Header state of a free block.
const FREE: u8 = 0xF5;
/// Header state of a used block whose payload follows this header directly.
const USED: u8 = 0xA1;
/// Header state at the start of a used block whose payload (and payload header) sit further in,
/// because the request asked for more than 16-byte alignment.
const USED_ALIGNED: u8 = 0xA2;
/// Header state of a header that heads nothing any more: the upper half of a merge, or the
/// payload header of a freed over-aligned block. A free of the pointer after it is a double free.
const ABSORBED: u8 = 0xAB;

/// Base of the magic numbers, mixed with each header's address and contents.
const MAGIC_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// The 16 bytes in front of every block and every payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    /// Keyed to the header's address and to the other fields; see [`magic_for`].
    magic: u32,
    /// [`FREE`], [`USED`] or [`USED_ALIGNED`] at a block start or payload; [`ABSORBED`] where a
    /// block or payload used to start.
    state: u8,
    /// log2 of the block size.
    order: u8,
    /// Distance from block start to payload, in 16-byte units (1 when the payload follows the
    /// block header directly). Zero in free blocks.
    pad_units: u16,
    /// Bytes the caller asked for (used blocks); zero in free blocks.
    requested: u64,
}

const _: () = assert!(size_of::<Header>() == HEADER);

/// A free block: its header, then the links of its order's free list.
#[repr(C)]
struct FreeNode {
    header: Header,
    next: *mut FreeNode,
    prev: *mut FreeNode,
}

const _: () = assert!(size_of::<FreeNode>() <= MIN_BLOCK);

/// The magic number a header at `addr` with these fields must carry.
fn magic_for(addr: usize, state: u8, order: u8, pad_units: u16, requested: u64) -> u32 {
    let mut x = MAGIC_SEED ^ (addr as u64);
    x ^= (state as u64) << 56 | (order as u64) << 48 | (pad_units as u64) << 32;
    x = x.wrapping_add(requested.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    // splitmix64 finaliser: every input bit affects every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as u32
}

impl Header {
    fn new(addr: usize, state: u8, order: u32, pad_units: u16, requested: u64) -> Self {
        let order = order as u8;
        Header {
            magic: magic_for(addr, state, order, pad_units, requested),
            state,
            order,
            pad_units,
            requested,
        }
    }

    /// Whether the magic number matches the address the header was read from.
    fn is_valid_at(&self, addr: usize) -> bool {
        self.magic == magic_for(addr, self.state, self.order, self.pad_units, self.requested)
    }
}

/// A binary buddy heap over one fixed region of memory.
///
/// Every block is a power of two in size and aligned to its size relative to the region's base.
/// Allocation pops the smallest non-empty free list that fits (found with a bitmap) and splits
/// the block in halves down to the order needed. Freeing looks up the block's buddy by flipping
/// one bit of its offset and merges the two while the buddy is free, so both are O(log n).
///
/// The heap never grows and never allocates: it is usable without `std`.
///
/// ```
/// use core::alloc::Layout;
/// use core::ptr::NonNull;
/// use freespace_malloc::BuddyHeap;
///
/// let mut mem = vec![0u128; 4096]; // 64 KiB, 16-aligned
/// let start = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
/// // SAFETY: `mem` outlives the heap, and nothing else touches it meanwhile.
/// let mut heap = unsafe { BuddyHeap::new(start, 64 * 1024) };
/// let p = heap.malloc(Layout::from_size_align(7 * 1024, 8).unwrap()).unwrap();
/// // 7 KB plus the 16-byte header rounds up to an 8 KB block.
/// assert_eq!(heap.blocks().find(|b| b.is_used()).unwrap().size, 8 * 1024);
/// // SAFETY: `p` came from this heap and is freed once.
/// unsafe { heap.free(p).unwrap() };
/// assert_eq!(heap.stats().free_blocks, 1);
/// ```
pub struct BuddyHeap {
    /// First byte of the region as the caller gave it.
    region_start: usize,
    /// Length of the region as the caller gave it.
    region_len: usize,
    /// 16-byte aligned base; block offsets are measured from here.
    base: usize,
    /// `base` as a pointer, with the provenance of the caller's region: every header, link and
    /// payload is reached through it ([`at`](Self::at)), never through an integer cast.
    base_ptr: *mut u8,
    /// Bytes tiled by blocks, a multiple of [`MIN_BLOCK`].
    len: usize,
    /// Head of each order's free list.
    heads: [*mut FreeNode; ORDERS],
    /// Bit `k` set iff free list `k` is non-empty.
    nonempty: usize,
    /// Running statistics (`largest_free_block` is derived from `nonempty`).
    stats: HeapStats,
}

// SAFETY: the heap owns its region exclusively (the constructors' contract) and holds no
// references to thread-local state; moving it to another thread moves that ownership.
unsafe impl Send for BuddyHeap {}

impl fmt::Debug for BuddyHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuddyHeap")
            .field("base", &self.base_ptr)
            .field("len", &self.len)
            .field("stats", &self.stats)
            .finish()
    }
}

impl BuddyHeap {
    /// The smallest block the heap hands out, header included.
    pub const MIN_BLOCK: usize = MIN_BLOCK;
    /// Bytes of header in front of every payload.
    pub const HEADER_SIZE: usize = HEADER;
    /// The largest alignment a request may ask for.
    pub const MAX_ALIGN: usize = MAX_ALIGN;

    /// Makes a buddy heap over `len` bytes at `start`.
    ///
    /// The start is rounded up to 16 bytes and the usable length down to a multiple of 32; the
    /// rest is tiled by the binary decomposition of that length (see the module docs). A region
    /// too small to hold one block gives a heap that refuses every allocation.
    ///
    /// # Safety
    /// `start..start + len` must be valid for reads and writes, initialised (any contents), not
    /// used by anything else for as long as the heap or any pointer it hands out is in use, and
    /// must not wrap around the address space.
    pub unsafe fn new(start: NonNull<u8>, len: usize) -> Self {
        let region_start = start.as_ptr() as usize;
        let base = region_start
            .checked_add(HEADER - 1)
            .map_or(usize::MAX, |b| b & !(HEADER - 1));
        let usable = (region_start + len).saturating_sub(base);
        let managed = usable & !(MIN_BLOCK - 1);
        let mut heap = BuddyHeap {
            region_start,
            region_len: len,
            base,
            base_ptr: start.as_ptr().wrapping_add(base.wrapping_sub(region_start)),
            len: managed,
            heads: [ptr::null_mut(); ORDERS],
            nonempty: 0,
            stats: HeapStats {
                heap_bytes: len,
                overhead_bytes: len - managed,
                ..HeapStats::default()
            },
        };
        // Root blocks: one per set bit of the length, largest first, so each is aligned to its size.
        let mut off = 0;
        while off < managed {
            let order = usize::BITS - 1 - (managed - off).leading_zeros();
            // SAFETY: `off..off + 2^order` lies inside the managed part of the caller's region,
            // which the contract makes ours, and nothing else refers to it yet.
            unsafe { heap.push_free(off, order) };
            off += 1 << order;
        }
        heap
    }

    /// Makes a buddy heap that owns `mem` for the rest of the program.
    ///
    /// A `Box::leak`ed buffer or a `static mut` array both give such a slice.
    pub fn from_slice(mem: &'static mut [u8]) -> Self {
        let len = mem.len();
        let start = NonNull::new(mem.as_mut_ptr()).unwrap_or(NonNull::dangling());
        // SAFETY: the exclusive 'static borrow gives the heap sole use of initialised memory forever.
        unsafe { Self::new(start, len) }
    }

    /// Address of the first byte that blocks tile (the 16-byte aligned base).
    pub fn base(&self) -> usize {
        self.base
    }

    /// Bytes tiled by blocks: the region minus the rounding at both ends.
    pub fn managed_len(&self) -> usize {
        self.len
    }

    /// Whether `addr` lies inside the region the heap was given.
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.region_start) < self.region_len
    }

    /// Number of blocks on the free list of blocks of `2^order` bytes.
    pub fn free_list_len(&self, order: u32) -> usize {
        let mut n = 0;
        let mut node = self
            .heads
            .get(order as usize)
            .copied()
            .unwrap_or(ptr::null_mut());
        while !node.is_null() {
            n += 1;
            // SAFETY: list nodes are free blocks inside the region, written by `push_free`.
            node = unsafe { (*node).next };
        }
        n
    }

    /// The block order (log2 of the block size) a layout needs, or why it can never be served.
    fn order_for(&self, layout: Layout) -> Result<u32, AllocError> {
        if layout.size() == 0 {
            return Err(AllocError::ZeroSize);
        }
        if layout.align() > MAX_ALIGN {
            return Err(AllocError::BadAlignment);
        }
        let need = layout
            .size()
            .checked_add(layout.align().max(HEADER))
            .and_then(usize::checked_next_power_of_two)
            .ok_or(AllocError::TooLarge)?;
        let order = need.trailing_zeros().max(MIN_ORDER);
        if self.len == 0 || order > self.max_order() {
            return Err(AllocError::TooLarge);
        }
        Ok(order)
    }

    /// Order of the largest root block.
    fn max_order(&self) -> u32 {
        usize::BITS - 1 - self.len.leading_zeros()
    }

    /// Allocates a block for `layout`. The payload is aligned to `max(16, layout.align())`.
    ///
    /// # Errors
    /// `ZeroSize` for a zero-size layout, `BadAlignment` above [`Self::MAX_ALIGN`], `TooLarge`
    /// when no block of the heap could ever hold the request, and `OutOfMemory` when no free
    /// block is large enough now.
    pub fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let order = self.order_for(layout)?;
        let candidates = self.nonempty & !((1usize << order) - 1);
        if candidates == 0 {
            return Err(AllocError::OutOfMemory);
        }
        let mut k = candidates.trailing_zeros();
        self.stats.searched += 1;
        // SAFETY: bit `k` of `nonempty` says list `k` holds a free block.
        let off = unsafe { self.pop_free(k) };
        while k > order {
            k -= 1;
            // SAFETY: the upper half of a free block we own is free and inside the region.
            unsafe { self.push_free(off + (1 << k), k) };
        }
        // SAFETY: `off` is a block of `order` that we just took off the free lists.
        Ok(unsafe { self.mark_used(off, order, layout) })
    }

    /// Allocates `count * size` zeroed bytes (16-aligned). The multiplication is checked.
    ///
    /// # Errors
    /// As [`malloc`](Self::malloc), and `TooLarge` if `count * size` overflows.
    pub fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        let total = count.checked_mul(size).ok_or(AllocError::TooLarge)?;
        let layout = Layout::from_size_align(total, 1).map_err(|_| AllocError::TooLarge)?;
        let p = self.malloc(layout)?;
        // SAFETY: `p` is a fresh payload of at least `total` bytes.
        unsafe { ptr::write_bytes(p.as_ptr(), 0, total) };
        Ok(p)
    }

    /// Writes the header(s) of a block taken for `layout` and returns its payload.
    ///
    /// # Safety
    /// `off` must be a block of `order` that is on no free list and that `layout` fits
    /// (`order_for(layout) <= order`).
    unsafe fn mark_used(&mut self, off: usize, order: u32, layout: Layout) -> NonNull<u8> {
        let block = self.base + off;
        let payload = (block + HEADER + layout.align() - 1) & !(layout.align().max(HEADER) - 1);
        let pad = payload - block;
        let pad_units = (pad / HEADER) as u16;
        let requested = layout.size() as u64;
        let start_state = if pad == HEADER { USED } else { USED_ALIGNED };
        // SAFETY: the block is ours (caller's contract) and 16-byte aligned, and a header fits in it.
        unsafe {
            self.write_header(
                block,
                Header::new(block, start_state, order, pad_units, requested),
            )
        };
        if pad != HEADER {
            let h = payload - HEADER;
            // SAFETY: `payload - 16` lies inside the block, past its start header.
            unsafe { self.write_header(h, Header::new(h, USED, order, pad_units, requested)) };
        }
        let size = 1usize << order;
        self.stats.allocated_bytes += size - pad;
        self.stats.header_bytes += pad;
        self.stats.requested_bytes += layout.size();
        self.stats.live_blocks += 1;
        self.stats.allocations += 1;
        // SAFETY: `payload` lies inside the region, whose base is non-zero.
        unsafe { NonNull::new_unchecked(self.at(payload)) }
    }

    /// Frees the block whose payload is `ptr`, merging it with its buddy as long as the buddy
    /// is free. The block's size comes from its header.
    ///
    /// # Errors
    /// `NotInHeap`, `Misaligned`, `BadMagic` or `DoubleFree` (checked in that order, see
    /// [`FreeError`]). A refused free changes nothing.
    ///
    /// # Safety
    /// If `ptr` is a live payload of this heap, nothing may use it after this call. Any other
    /// pointer is refused, but it must not point into a live block that another thread is
    /// writing, since its would-be header is read.
    pub unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), FreeError> {
        let (off, h) = self.validate(ptr)?;
        let order = h.order as u32;
        let pad = h.pad_units as usize * HEADER;
        let size = 1usize << order;
        if pad != HEADER {
            let at = ptr.as_ptr() as usize - HEADER;
            // SAFETY: the payload header lies inside the block being freed; marking it absorbed
            // lets a second free of the same pointer be reported as a double free.
            unsafe { self.absorb(at, order) };
        }
        self.stats.allocated_bytes -= size - pad;
        self.stats.header_bytes -= pad;
        self.stats.requested_bytes -= h.requested as usize;
        self.stats.live_blocks -= 1;
        self.stats.frees += 1;
        // SAFETY: the block was validated as a live block of this heap and is now released.
        unsafe { self.release(off, order) };
        Ok(())
    }

    /// Puts a block on the free lists, first merging it with its buddy for as long as the buddy
    /// is free and of the same order. The header of the upper half of every merge is marked
    /// absorbed, whichever half the freed block was: a header that no longer starts a block
    /// must never pass for a live one, or a second free of the old pointer would be accepted.
    ///
    /// # Safety
    /// `off` must be a block of `order` that is on no free list and no longer in use.
    unsafe fn release(&mut self, mut off: usize, mut order: u32) {
        while let Some(buddy) = self.free_buddy(off, order) {
            // SAFETY: `free_buddy` found `buddy` on free list `order`.
            unsafe { self.unlink(buddy, order) };
            off &= !(1usize << order);
            // SAFETY: the upper half starts inside the merged block, which nobody uses now.
            unsafe { self.absorb(self.base + off + (1usize << order), order) };
            order += 1;
        }
        // SAFETY: `off` is now a block of `order` that nobody uses (caller's contract plus the
        // buddies just unlinked).
        unsafe { self.push_free(off, order) };
    }

    /// The offset of the buddy of block `off`/`order`, if the merged block would lie inside the
    /// region and the buddy is currently a free block of the same order.
    fn free_buddy(&self, off: usize, order: u32) -> Option<usize> {
        let buddy = off ^ (1usize << order);
        let merged = off & !(1usize << order);
        if order + 1 >= usize::BITS || merged + (2usize << order) > self.len {
            return None;
        }
        // SAFETY: the merged block lies inside the region, so the buddy's first bytes do; the
        // buddy's half of the merged block is a node of the block tree, so a block starts there
        // and its header is current.
        let h = unsafe { self.read_header(self.base + buddy) };
        (h.state == FREE && h.order as u32 == order && h.is_valid_at(self.base + buddy))
            .then_some(buddy)
    }

    /// Checks a pointer handed to `free`, `realloc` or `usable_size`, and returns its block's
    /// offset and header.
    fn validate(&self, ptr: NonNull<u8>) -> Result<(usize, Header), FreeError> {
        let p = ptr.as_ptr() as usize;
        let rel = p.wrapping_sub(self.base);
        if rel >= self.len {
            return Err(FreeError::NotInHeap);
        }
        if rel % HEADER != 0 || rel < HEADER {
            return Err(FreeError::Misaligned);
        }
        let at = p - HEADER;
        // SAFETY: `at` is 16-byte aligned and `at..p` lies inside the region.
        let h = unsafe { self.read_header(at) };
        if !h.is_valid_at(at) {
            return Err(self.bad_magic_or_double_free(rel));
        }
        match h.state {
            FREE | ABSORBED => return Err(FreeError::DoubleFree),
            USED_ALIGNED => return Err(FreeError::Misaligned),
            USED => {}
            _ => return Err(FreeError::BadMagic),
        }
        // The header passed its magic check; its fields must also describe a block of this heap.
        let order = h.order as u32;
        let pad = h.pad_units as usize * HEADER;
        if !(MIN_ORDER..usize::BITS).contains(&order) || pad < HEADER || pad > rel {
            return Err(FreeError::BadMagic);
        }
        let off = rel - pad;
        let size = 1usize << order;
        if off % size != 0 || off + size > self.len || pad as u64 + h.requested > size as u64 {
            return Err(FreeError::BadMagic);
        }
        if pad != HEADER {
            let block = self.base + off;
            // SAFETY: `block` is a 16-byte aligned address inside the region.
            let start = unsafe { self.read_header(block) };
            let expect = Header::new(block, USED_ALIGNED, order, h.pad_units, h.requested);
            if start != expect {
                return Err(FreeError::BadMagic);
            }
        }
        Ok((off, h))
    }

    /// The error for a pointer at offset `rel` whose header has no valid magic number.
    ///
    /// A payload 32 bytes into its block (32-byte alignment) has its payload header at
    /// block + 16, where a free block keeps its list links, so freeing the block overwrites
    /// that header. The block's own header, 32 bytes before the pointer, then says FREE, or
    /// ABSORBED if the block merged into its lower buddy: a second free of the pointer is a
    /// double free. Anything else is a bad magic number.
    fn bad_magic_or_double_free(&self, rel: usize) -> FreeError {
        if rel < 2 * HEADER {
            return FreeError::BadMagic;
        }
        let at = self.base + rel - 2 * HEADER;
        // SAFETY: `at` is 16-byte aligned (as `rel` is) and `at..at + 16` lies inside the region.
        let h = unsafe { self.read_header(at) };
        if h.is_valid_at(at) && matches!(h.state, FREE | ABSORBED) {
            FreeError::DoubleFree
        } else {
            FreeError::BadMagic
        }
    }

    /// Usable bytes at `ptr`: from the payload to the end of its block. At least the size asked for.
    ///
    /// # Errors
    /// As [`free`](Self::free), and nothing changes.
    ///
    /// # Safety
    /// As for [`free`](Self::free): `ptr` must not point at memory being changed concurrently
    /// (the check reads the 16 bytes in front of it when it lies inside the region).
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, FreeError> {
        let (off, h) = self.validate(ptr)?;
        Ok((1usize << h.order) - (ptr.as_ptr() as usize - self.base - off))
    }

    /// Resizes the block at `ptr` to `new_layout`, in place when it can, otherwise by moving it.
    ///
    /// Shrinking splits the unneeded upper halves off as free blocks. Growing merges the block
    /// with its free upper buddies when the block is the lower half at each step. Otherwise a new
    /// block is allocated, `min(old size, new size)` bytes are copied and the old block is freed.
    /// On error the old block is untouched and still live.
    ///
    /// # Errors
    /// As [`malloc`](Self::malloc), checked first; then `InvalidPointer` for a pointer that
    /// [`free`](Self::free) would refuse (use [`usable_size`](Self::usable_size) to tell why).
    ///
    /// # Safety
    /// `ptr` must be a live payload of this heap. On success the old pointer must no longer be
    /// used (it may equal the returned one).
    pub unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        self.order_for(new_layout)?;
        let (off, h) = self.validate(ptr).map_err(|_| AllocError::InvalidPointer)?;
        let order = h.order as u32;
        let pad = h.pad_units as usize * HEADER;
        if ptr.as_ptr() as usize % new_layout.align() == 0 {
            // The order that holds the payload where it is now.
            let keep = (pad + new_layout.size())
                .next_power_of_two()
                .trailing_zeros()
                .max(MIN_ORDER);
            if keep <= order || self.can_grow_in_place(off, order, keep) {
                // SAFETY: `off`/`order` is the live block validated above, `keep` covers the
                // payload, and growth was checked to be possible.
                unsafe {
                    self.resize_in_place(
                        off,
                        order,
                        keep,
                        pad,
                        h.requested as usize,
                        new_layout.size(),
                    )
                };
                return Ok(ptr);
            }
        }
        let new = self.malloc(new_layout)?;
        let copy = (h.requested as usize).min(new_layout.size());
        // SAFETY: both payloads are live, distinct blocks holding at least `copy` bytes.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), copy) };
        // SAFETY: `ptr` was validated as live; the caller stops using it on success.
        let freed = unsafe { self.free(ptr) };
        debug_assert!(freed.is_ok());
        Ok(new)
    }

    /// Whether block `off`/`order` can become a block of `target > order` by absorbing free
    /// upper buddies only (so that its start, and thus the payload, stays put).
    fn can_grow_in_place(&self, off: usize, order: u32, target: u32) -> bool {
        if target <= order || target > self.max_order() || off % (1usize << target) != 0 {
            return false;
        }
        (order..target).all(|k| self.free_buddy(off, k).is_some())
    }

    /// Moves block `off` from `order` to `target` without moving its start: merges free upper
    /// buddies to grow, splits off upper halves to shrink, then rewrites the header(s).
    ///
    /// # Safety
    /// `off`/`order` must be a live block; when growing, `can_grow_in_place` must hold; the payload
    /// at `pad` with `new_size` bytes must fit in `2^target`.
    unsafe fn resize_in_place(
        &mut self,
        off: usize,
        order: u32,
        target: u32,
        pad: usize,
        old_req: usize,
        new_size: usize,
    ) {
        for k in order..target {
            let buddy = off ^ (1usize << k);
            // SAFETY: `can_grow_in_place` found this buddy free with order `k`; it is the upper
            // half of the grown block, so its header no longer starts a block.
            unsafe {
                self.unlink(buddy, k);
                self.absorb(self.base + buddy, k);
            }
        }
        let mut k = order;
        while k > target {
            k -= 1;
            // SAFETY: the upper half of our own block is outside the payload (which fits in
            // `2^target`), so it can become a free block; its buddy is our lower half, in use.
            unsafe { self.push_free(off + (1usize << k), k) };
        }
        let block = self.base + off;
        let pad_units = (pad / HEADER) as u16;
        let start_state = if pad == HEADER { USED } else { USED_ALIGNED };
        // SAFETY: the block start and the payload header lie inside the resized block we own.
        unsafe {
            self.write_header(
                block,
                Header::new(block, start_state, target, pad_units, new_size as u64),
            );
            if pad != HEADER {
                let h = block + pad - HEADER;
                self.write_header(h, Header::new(h, USED, target, pad_units, new_size as u64));
            }
        }
        self.stats.allocated_bytes =
            self.stats.allocated_bytes + (1usize << target) - (1usize << order);
        self.stats.requested_bytes = self.stats.requested_bytes - old_req + new_size;
    }

    /// A snapshot of the statistics. `largest_free_block` is the size of the highest non-empty order.
    pub fn stats(&self) -> HeapStats {
        let mut s = self.stats;
        s.largest_free_block = if self.nonempty == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - self.nonempty.leading_zeros())
        };
        s
    }

    /// Walks the blocks in address order.
    pub fn blocks(&self) -> BuddyBlocks<'_> {
        BuddyBlocks { heap: self, off: 0 }
    }

    /// Validates every invariant: blocks tile the region at offsets aligned to their sizes, every
    /// header carries its magic number, no two free buddies of one order coexist, the free lists
    /// hold exactly the free blocks with consistent links, and the statistics match a walk.
    ///
    /// # Errors
    /// The first broken invariant found, with the address where it was found.
    pub fn check(&self) -> Result<(), Corruption> {
        let mut walked = HeapStats {
            heap_bytes: self.region_len,
            overhead_bytes: self.region_len - self.len,
            ..HeapStats::default()
        };
        let mut walk_sig = 0u64;
        let mut off = 0;
        while off < self.len {
            let addr = self.base + off;
            // SAFETY: `off < len`, a multiple of 32, so a whole header lies inside the region.
            let h = unsafe { self.read_header(addr) };
            if !h.is_valid_at(addr) || !matches!(h.state, FREE | USED | USED_ALIGNED) {
                return Err(Corruption::BadMagic { addr });
            }
            let order = h.order as u32;
            if !(MIN_ORDER..usize::BITS).contains(&order)
                || off % (1usize << order) != 0
                || off + (1usize << order) > self.len
            {
                return Err(Corruption::BadTiling { addr });
            }
            let size = 1usize << order;
            if h.state == FREE {
                if self.free_buddy(off, order).is_some() {
                    return Err(Corruption::UncoalescedNeighbours {
                        addr: addr.min(self.base + (off ^ size)),
                    });
                }
                walked.free_blocks += 1;
                walked.free_bytes += size;
                walked.largest_free_block = walked.largest_free_block.max(size);
                walk_sig = walk_sig.wrapping_add(list_signature(addr, order));
            } else {
                let pad = h.pad_units as usize * HEADER;
                if pad < HEADER
                    || pad as u64 + h.requested > size as u64
                    || (pad == HEADER) != (h.state == USED)
                {
                    return Err(Corruption::BadTiling { addr });
                }
                if pad != HEADER {
                    let at = addr + pad - HEADER;
                    // SAFETY: `pad < size`, so the payload header lies inside this block.
                    let ph = unsafe { self.read_header(at) };
                    if ph != Header::new(at, USED, order, h.pad_units, h.requested) {
                        return Err(Corruption::BadMagic { addr: at });
                    }
                }
                walked.live_blocks += 1;
                walked.allocated_bytes += size - pad;
                walked.header_bytes += pad;
                walked.requested_bytes += h.requested as usize;
            }
            off += size;
        }
        self.check_lists(walked.free_blocks, walk_sig)?;
        let s = self.stats();
        let same = s.free_blocks == walked.free_blocks
            && s.free_bytes == walked.free_bytes
            && s.largest_free_block == walked.largest_free_block
            && s.live_blocks == walked.live_blocks
            && s.allocated_bytes == walked.allocated_bytes
            && s.header_bytes == walked.header_bytes
            && s.requested_bytes == walked.requested_bytes
            && s.heap_bytes == s.allocated_bytes + s.free_bytes + s.header_bytes + s.overhead_bytes;
        if same {
            Ok(())
        } else {
            Err(Corruption::StatsMismatch)
        }
    }

    /// Checks every free list: nodes inside the region and aligned, free headers of the list's
    /// order, links that agree both ways, the `nonempty` bitmap, and that the lists together hold
    /// the same set of blocks as the walk found (same count and the same order-independent
    /// signature, so no allocation is needed).
    fn check_lists(&self, walk_free: usize, walk_sig: u64) -> Result<(), Corruption> {
        let mut count = 0usize;
        let mut sig = 0u64;
        for k in 0..ORDERS as u32 {
            let mut node = self.heads[k as usize];
            if node.is_null() == (self.nonempty & (1usize << k) != 0) {
                return Err(Corruption::FreeListMismatch {
                    addr: node as usize,
                });
            }
            let mut prev: *mut FreeNode = ptr::null_mut();
            while !node.is_null() {
                let addr = node as usize;
                let rel = addr.wrapping_sub(self.base);
                if rel >= self.len || rel % (1usize << k.min(usize::BITS - 1)) != 0 || k < MIN_ORDER
                {
                    return Err(Corruption::BadLink {
                        addr: prev as usize,
                    });
                }
                // SAFETY: `node` is aligned and inside the region, so its 32 bytes are readable.
                let (h, next, back) = unsafe { ((*node).header, (*node).next, (*node).prev) };
                if h != Header::new(addr, FREE, k, 0, 0) {
                    return Err(Corruption::FreeListMismatch { addr });
                }
                if back != prev {
                    return Err(Corruption::BadLink { addr });
                }
                count += 1;
                if count > walk_free {
                    return Err(Corruption::FreeListMismatch { addr });
                }
                sig = sig.wrapping_add(list_signature(addr, k));
                prev = node;
                node = next;
            }
        }
        if count != walk_free || sig != walk_sig {
            return Err(Corruption::FreeListMismatch { addr: self.base });
        }
        Ok(())
    }

    /// Writes a free header at `off` and pushes the block on the front of list `order`.
    ///
    /// # Safety
    /// `off` must be a block of `order` inside the region that nobody uses and no list holds.
    unsafe fn push_free(&mut self, off: usize, order: u32) {
        let addr = self.base + off;
        let node = self.at(addr).cast::<FreeNode>();
        let head = self.heads[order as usize];
        // SAFETY: the block is ours, aligned to 16 and at least 32 bytes long (caller's contract).
        unsafe {
            node.write(FreeNode {
                header: Header::new(addr, FREE, order, 0, 0),
                next: head,
                prev: ptr::null_mut(),
            });
            if !head.is_null() {
                (*head).prev = node;
            }
        }
        self.heads[order as usize] = node;
        self.nonempty |= 1usize << order;
        self.stats.free_blocks += 1;
        self.stats.free_bytes += 1usize << order;
    }

    /// Takes the first block off list `order` and returns its offset.
    ///
    /// # Safety
    /// List `order` must be non-empty.
    unsafe fn pop_free(&mut self, order: u32) -> usize {
        let node = self.heads[order as usize];
        let off = node as usize - self.base;
        // SAFETY: the caller says the list is non-empty, so `node` is a free block we wrote.
        unsafe { self.unlink(off, order) };
        off
    }

    /// Removes the free block at `off` from list `order`.
    ///
    /// # Safety
    /// The block at `off` must be on list `order`.
    unsafe fn unlink(&mut self, off: usize, order: u32) {
        let node = self.at(self.base + off).cast::<FreeNode>();
        // SAFETY: `node` and its neighbours are free blocks on list `order` (caller's contract),
        // written by `push_free`, so their links are valid.
        unsafe {
            let (next, prev) = ((*node).next, (*node).prev);
            if prev.is_null() {
                self.heads[order as usize] = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
        }
        if self.heads[order as usize].is_null() {
            self.nonempty &= !(1usize << order);
        }
        self.stats.free_blocks -= 1;
        self.stats.free_bytes -= 1usize << order;
    }

    /// The address `addr` inside the region as a pointer derived from the region's own (no
    /// memory is reached through an integer cast, so every access keeps the region's
    /// provenance).
    #[inline(always)]
    fn at(&self, addr: usize) -> *mut u8 {
        self.base_ptr.wrapping_add(addr.wrapping_sub(self.base))
    }

    /// Marks the header at `addr`, which no longer starts a block or a payload, as absorbed.
    ///
    /// # Safety
    /// As [`write_header`](Self::write_header).
    unsafe fn absorb(&mut self, addr: usize, order: u32) {
        // SAFETY: caller's contract.
        unsafe { self.write_header(addr, Header::new(addr, ABSORBED, order, 0, 0)) };
    }

    /// Reads the header at `addr`.
    ///
    /// # Safety
    /// `addr` must be 16-byte aligned with `addr..addr + 16` inside the region.
    unsafe fn read_header(&self, addr: usize) -> Header {
        // SAFETY: caller's contract; the region is initialised memory and any bit pattern is a
        // valid `Header` (plain integers).
        unsafe { self.at(addr).cast::<Header>().read() }
    }

    /// Writes a header at `addr`.
    ///
    /// # Safety
    /// As [`read_header`](Self::read_header), and the bytes must not belong to a live payload.
    unsafe fn write_header(&mut self, addr: usize, h: Header) {
        // SAFETY: caller's contract.
        unsafe { self.at(addr).cast::<Header>().write(h) }
    }
}

/// A per-block value whose wrapping sum identifies a set of free blocks, used by `check` to
/// compare the free lists with the walk without allocating.
fn list_signature(addr: usize, order: u32) -> u64 {
    let mut x = (addr as u64) ^ ((order as u64) << 58) ^ MAGIC_SEED;
    x = (x ^ (x >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^ (x >> 29)
}

/// Each call is the inherent method of the same name.
impl RawHeap for BuddyHeap {
    type Ptr = NonNull<u8>;

    fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        BuddyHeap::malloc(self, layout)
    }
    fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        BuddyHeap::calloc(self, count, size)
    }
    unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), FreeError> {
        // SAFETY: the caller keeps `RawHeap::free`'s contract, which is `BuddyHeap::free`'s.
        unsafe { BuddyHeap::free(self, ptr) }
    }
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller keeps `RawHeap::realloc`'s contract, which is `BuddyHeap`'s.
        unsafe { BuddyHeap::realloc(self, ptr, new_layout) }
    }
    unsafe fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, FreeError> {
        // SAFETY: the caller keeps `RawHeap::usable_size`'s contract, which is `BuddyHeap`'s.
        unsafe { BuddyHeap::usable_size(self, ptr) }
    }
    fn stats(&self) -> HeapStats {
        BuddyHeap::stats(self)
    }
    fn check(&self) -> Result<(), Corruption> {
        BuddyHeap::check(self)
    }
    fn blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        BuddyHeap::blocks(self)
    }
}

/// The blocks of a [`BuddyHeap`] in address order; see [`BuddyHeap::blocks`].
///
/// The walk trusts the headers; run [`BuddyHeap::check`] first on a heap that may be corrupt.
#[derive(Clone, Debug)]
pub struct BuddyBlocks<'a> {
    heap: &'a BuddyHeap,
    off: usize,
}

impl Iterator for BuddyBlocks<'_> {
    type Item = BlockInfo;

    fn next(&mut self) -> Option<BlockInfo> {
        if self.off >= self.heap.len {
            return None;
        }
        let addr = self.heap.base + self.off;
        // SAFETY: `off < len`, a multiple of 32, so the header lies inside the region.
        let h = unsafe { self.heap.read_header(addr) };
        let order = (h.order as u32).clamp(MIN_ORDER, usize::BITS - 1);
        let size = 1usize << order;
        // A corrupt order must not make the walk run off the region.
        self.off = if self.off % size == 0 {
            self.off + size
        } else {
            self.heap.len
        };
        let (state, requested) = if h.state == FREE {
            (BlockState::Free, 0)
        } else {
            (BlockState::Used, h.requested as usize)
        };
        Some(BlockInfo {
            addr,
            size,
            state,
            requested,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// A 16-byte aligned buffer of `N` bytes.
    #[repr(C, align(4096))]
    struct Arena<const N: usize>([u8; N]);

    fn heap_in<const N: usize>(arena: &mut Arena<N>, skip: usize) -> BuddyHeap {
        let p = NonNull::new(arena.0[skip..].as_mut_ptr()).unwrap();
        // SAFETY: the arena outlives the heap in each test and is used by nothing else.
        unsafe { BuddyHeap::new(p, N - skip) }
    }

    #[test]
    fn header_is_sixteen_bytes_and_magic_depends_on_address() {
        assert_eq!(size_of::<Header>(), 16);
        let a = Header::new(0x1000, USED, 6, 1, 40);
        assert!(a.is_valid_at(0x1000));
        assert!(!a.is_valid_at(0x1010));
        let mut b = a;
        b.order = 7;
        assert!(!b.is_valid_at(0x1000));
    }

    #[test]
    fn unaligned_region_uses_binary_decomposition() {
        let mut arena = Arena::<{ 100 * 1024 }>([0; 100 * 1024]);
        let heap = heap_in(&mut arena, 3);
        assert_eq!(heap.base() % 16, 0);
        assert_eq!(heap.base() - (arena_addr(&heap) + 3), 13);
        let blocks: std::vec::Vec<_> = heap.blocks().map(|b| b.size).collect();
        // 100 KB - 3 - 13 = 102384 bytes, rounded down to 32: 102368 = 64K + 32K + 4K + 2K + 512 + 256 + 128 + 32 + ...
        assert_eq!(blocks.iter().sum::<usize>(), heap.managed_len());
        assert!(blocks.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(blocks[0], 64 * 1024);
        let s = heap.stats();
        assert_eq!(s.heap_bytes, s.free_bytes + s.overhead_bytes);
        heap.check().unwrap();
    }

    fn arena_addr(heap: &BuddyHeap) -> usize {
        heap.region_start - 3
    }

    #[test]
    fn roots_of_different_sizes_never_merge() {
        let mut arena = Arena::<{ 96 * 1024 }>([0; 96 * 1024]);
        let mut heap = heap_in(&mut arena, 0);
        let l = Layout::from_size_align(20 * 1024, 16).unwrap();
        let a = heap.malloc(l).unwrap();
        heap.check().unwrap();
        // SAFETY: `a` is live.
        unsafe { heap.free(a).unwrap() };
        heap.check().unwrap();
        let sizes: std::vec::Vec<_> = heap.blocks().map(|b| (b.size, b.is_used())).collect();
        assert_eq!(sizes, [(64 * 1024, false), (32 * 1024, false)]);
    }

    #[test]
    fn split_then_merge_restores_one_block() {
        let mut arena = Arena::<4096>([0; 4096]);
        let mut heap = heap_in(&mut arena, 0);
        let l = Layout::from_size_align(1, 1).unwrap();
        let a = heap.malloc(l).unwrap();
        // 4096 -> 2048 + 1024 + 512 + 256 + 128 + 64 + 32 + 32 (used).
        assert_eq!(heap.stats().free_blocks, 7);
        // SAFETY: `a` is live.
        assert_eq!(unsafe { heap.usable_size(a) }.unwrap(), 16);
        for k in MIN_ORDER..12 {
            assert_eq!(heap.free_list_len(k), 1, "order {k}");
        }
        // SAFETY: `a` is live.
        unsafe { heap.free(a).unwrap() };
        assert_eq!(heap.stats().free_blocks, 1);
        assert_eq!(heap.free_list_len(12), 1);
        heap.check().unwrap();
    }

    #[test]
    fn check_finds_broken_header_and_links() {
        let mut arena = Arena::<4096>([0; 4096]);
        let mut heap = heap_in(&mut arena, 0);
        let a = heap
            .malloc(Layout::from_size_align(100, 16).unwrap())
            .unwrap();
        heap.check().unwrap();
        let base = heap.base();
        // Corrupt the used block's header order byte.
        // SAFETY: the header of `a` is inside the arena.
        unsafe { *a.as_ptr().sub(16 - 5) ^= 1 };
        assert_eq!(
            heap.check(),
            Err(Corruption::BadMagic {
                addr: a.as_ptr() as usize - 16
            })
        );
        // SAFETY: undo.
        unsafe { *a.as_ptr().sub(16 - 5) ^= 1 };
        heap.check().unwrap();
        // Break the prev link of the free block after `a` (128 bytes, at base + 128).
        let node = heap.at(base + 128).cast::<FreeNode>();
        // SAFETY: a free node lives there.
        unsafe { (*node).prev = node };
        assert!(matches!(heap.check(), Err(Corruption::BadLink { .. })));
        // SAFETY: restore.
        unsafe { (*node).prev = ptr::null_mut() };
        heap.check().unwrap();
        heap.stats.requested_bytes += 1;
        assert_eq!(heap.check(), Err(Corruption::StatsMismatch));
    }

    #[test]
    fn zero_and_tiny_regions() {
        let heap = BuddyHeap::from_slice(&mut []);
        assert_eq!(heap.managed_len(), 0);
        heap.check().unwrap();
        let mut heap = heap;
        assert_eq!(heap.malloc(Layout::new::<u8>()), Err(AllocError::TooLarge));
    }
}
