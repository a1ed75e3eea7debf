//! The arena's storage: the buffer, the handle table and the space map, kept in agreement.
//!
//! Invariant (checked by [`Store::check`]): every occupied slot with `len > 0` has a live entry
//! in the space map at its offset with its reserved length (`len` rounded up to its alignment)
//! and index, its offset is aligned to its
//! alignment, and its bytes lie inside the buffer; zero-length blocks occupy no space. The
//! counters (`live_bytes`, `live_blocks`, `pinned_blocks`, `pinned_in_buffer`) equal what a walk
//! of the table finds.

use crate::buffer::Buffer;
use crate::free_space::Space;
use crate::table::{Slot, Table};

pub(crate) struct Store {
    pub(crate) buffer: Buffer,
    pub(crate) table: Table,
    pub(crate) space: Space,
    /// Sum of the reserved lengths of live blocks.
    pub(crate) live_bytes: usize,
    /// Occupied slots.
    pub(crate) live_blocks: usize,
    /// Occupied slots with a pin count above zero.
    pub(crate) pinned_blocks: usize,
    /// Pinned slots that occupy buffer space: while non-zero, the buffer may not move.
    pub(crate) pinned_in_buffer: usize,
    pub(crate) total_moves: u64,
    pub(crate) total_bytes_moved: u64,
    pub(crate) passes_completed: u64,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            buffer: Buffer::new(),
            table: Table::new(),
            space: Space::default(),
            live_bytes: 0,
            live_blocks: 0,
            pinned_blocks: 0,
            pinned_in_buffer: 0,
            total_moves: 0,
            total_bytes_moved: 0,
            passes_completed: 0,
        }
    }

    /// The address of a slot's block. Zero-length blocks get a dangling address aligned to
    /// their alignment, which never changes.
    #[inline]
    pub(crate) fn block_ptr(&self, slot: &Slot) -> *mut u8 {
        if slot.len == 0 {
            // A well-aligned dangling address, the same thing NonNull::dangling gives a ZST.
            slot.align as *mut u8
        } else {
            self.buffer.ptr().wrapping_add(slot.offset)
        }
    }

    /// Moves the live block at `from` (length `len`, slot `index`) to `to`. The caller has
    /// checked that the block is not pinned, that `to` is aligned, and that the destination,
    /// minus the block's own range, is free.
    pub(crate) fn relocate(&mut self, from: usize, to: usize, len: usize, index: u32) {
        debug_assert!(to + len <= self.buffer.cap());
        let base = self.buffer.ptr();
        // SAFETY: both ranges lie inside the buffer (from is a live block, the destination was
        // checked free below capacity); ptr::copy allows them to overlap.
        unsafe { core::ptr::copy(base.add(from), base.add(to), len) };
        self.space.remove_live(from, index);
        self.space.release(from, len);
        self.space.claim(to, len);
        self.space.insert_live(to, len, index);
        self.table.set_offset(index, to);
        self.total_moves += 1;
        self.total_bytes_moved += len as u64;
    }

    /// Slides every block starting at or after `at` down into the free space below it, in
    /// address order, pinned blocks staying put as barriers; then rebuilds the space map above
    /// the first hole in one go. Returns (blocks moved, bytes moved).
    pub(crate) fn slide_from(&mut self, at: usize) -> (usize, usize) {
        self.space.make_flat();
        let Some(first) = self.space.live.first_from(at) else {
            return (0, 0);
        };
        let start = self.space.hole_ending_at(first).map_or(first, |h| h.start);
        let base = self.buffer.ptr();
        let table = &mut self.table;
        let mut dst = start;
        let mut holes = Vec::new();
        let (mut moves, mut bytes) = (0, 0);
        // A run of blocks that stay adjacent after the slide moves with one memmove:
        // [run_from, run_from + run_len) goes to run_to.
        let (mut run_from, mut run_to, mut run_len) = (0usize, 0usize, 0usize);
        let flush = |from: usize, to: usize, len: usize| {
            if len > 0 && from != to {
                // SAFETY: [from, from + len) holds live blocks inside the buffer, and
                // [to, to + len) lies below it inside [start, from + len), in space that is free
                // or was vacated by blocks already slid; ptr::copy allows overlap.
                unsafe { core::ptr::copy(base.add(from), base.add(to), len) };
            }
        };
        self.space.live.slide_from(at, |off, len, index| {
            let (align, pinned) = table.align_and_pinned(index);
            // dst never passes off: it is the end of the previous block's new place, which is
            // at or below that block's old end; off is aligned, so aligning dst up stays <= off.
            let to = if pinned {
                off
            } else {
                (dst + align - 1) & !(align - 1)
            };
            debug_assert!(dst <= to && to <= off);
            if to > dst {
                holes.push((dst, to - dst));
            }
            if to != off {
                table.set_offset(index, to);
                moves += 1;
                bytes += len;
            }
            if run_len > 0 && run_from + run_len == off && run_to + run_len == to {
                run_len += len;
            } else {
                flush(run_from, run_to, run_len);
                (run_from, run_to, run_len) = (off, to, len);
            }
            dst = to + len;
            to
        });
        flush(run_from, run_to, run_len);
        self.space.replace_holes_from(start, holes, dst);
        self.total_moves += moves as u64;
        self.total_bytes_moved += bytes as u64;
        (moves, bytes)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        self.space.check()?;
        if self.space.top() > self.buffer.cap() {
            return Err(format!(
                "top {} above capacity {}",
                self.space.top(),
                self.buffer.cap()
            ));
        }
        let (mut live_bytes, mut live_blocks, mut pinned, mut pinned_in_buffer, mut in_space) =
            (0, 0, 0, 0, 0);
        let blocks: std::collections::HashMap<usize, (usize, u32)> = self
            .space
            .live()
            .into_iter()
            .map(|(off, len, slot)| (off, (len, slot)))
            .collect();
        for i in 0..self.table.len() {
            let slot = self.table.slot(i as u32);
            if !slot.is_occupied() {
                continue;
            }
            live_blocks += 1;
            live_bytes += slot.reserved();
            if slot.pins > 0 {
                pinned += 1;
                if slot.len > 0 {
                    pinned_in_buffer += 1;
                }
            }
            if slot.len > 0 {
                in_space += 1;
                if slot.offset % slot.align != 0 {
                    return Err(format!("slot {i} misaligned at {}", slot.offset));
                }
                match blocks.get(&slot.offset) {
                    Some(&(len, idx)) if len == slot.reserved() && idx == i as u32 => {}
                    other => {
                        return Err(format!("slot {i} disagrees with the space map: {other:?}"))
                    }
                }
            }
        }
        if in_space != self.space.live_count() {
            return Err("space map holds blocks no slot owns".into());
        }
        let counters = (
            self.live_bytes,
            self.live_blocks,
            self.pinned_blocks,
            self.pinned_in_buffer,
        );
        if counters != (live_bytes, live_blocks, pinned, pinned_in_buffer) {
            return Err(format!(
                "counters {counters:?} but the table holds {:?}",
                (live_bytes, live_blocks, pinned, pinned_in_buffer)
            ));
        }
        Ok(())
    }
}
