//! The arena's storage: the buffer, the handle table and the space map, kept in agreement.
//!
//! Invariant (checked by [`Store::check`]): every occupied slot with `len > 0` has a live entry
//! in the space map at its offset with its reserved length (`len` rounded up to its alignment)
//! and index, its offset is aligned to its
//! alignment, and its bytes lie inside the buffer; zero-length blocks occupy no space. The
//! counters (`live_bytes`, `live_blocks`, `pinned_blocks`, `pinned_in_buffer`) equal what a walk
//! of the table finds.

use crate::buffer::Buffer;
use crate::fit_tree::FitTree;
use crate::free_space::align_up;
use crate::free_space::Space;
use crate::live_index::Walk;
use crate::prefetch;
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
            // A well-aligned dangling address, the same thing NonNull::dangling gives a ZST: an
            // address without provenance (an offset from null, not an integer cast), which is
            // only ever used for zero-sized accesses.
            core::ptr::null_mut::<u8>().wrapping_add(slot.align)
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
        let mut copier = SlideCopier::new(base);
        let entries = table.entry_hints();
        let ahead = |off: usize, len: usize, index: u32| {
            prefetch::block(base.wrapping_add(off), len);
            entries.prefetch(index);
        };
        self.space.live.slide_from(at, ahead, |off, len, index| {
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
                // SAFETY: [off, off + len) is a live block inside the buffer; [to, to + len)
                // lies below it, at or above the previous block's new end, in space that is
                // free or vacated (the contract of SlideCopier::copy).
                unsafe { copier.copy(off, to, len) };
                table.set_offset(index, to);
                moves += 1;
                bytes += len;
            }
            dst = to + len;
            to
        });
        copier.finish();
        self.space.replace_holes_from(start, holes, dst);
        self.total_moves += moves as u64;
        self.total_bytes_moved += bytes as u64;
        (moves, bytes)
    }

    /// Moves unpinned blocks starting below `below`, from the highest down, each into the
    /// lowest hole under it that fits, until no hole is left under the next block (the two
    /// fingers meet); then rebuilds the space map in one go. Returns (blocks moved, bytes
    /// moved).
    ///
    /// This is the bulk form of [`TwoFinger`](crate::TwoFinger)'s pass. One difference: the
    /// padding that aligning a block within a hole leaves below it becomes a hole after the
    /// pass, not during it, so later blocks of the same pass do not fill it.
    pub(crate) fn evacuate_below(&mut self, below: usize) -> (usize, usize) {
        // Holes in address order as (start, end); a hole's start rises as blocks fill it.
        let mut holes: Vec<(usize, usize)> = (self.space.live.gaps().0)
            .into_iter()
            .map(|(start, len)| (start, start + len))
            .collect();
        let lens: Vec<usize> = holes.iter().map(|&(s, e)| e - s).collect();
        // The tree's lengths are upper bounds, brought down to a hole's real length when a
        // search meets it: most blocks go to the lowest hole, which is tried first.
        let mut fit = FitTree::new(&lens);
        let base = self.buffer.ptr();
        let table = &mut self.table;
        let (mut moves, mut bytes) = (0, 0);
        // Holes below `low` are full.
        let mut low = 0;
        let entries = table.entry_hints();
        let ahead = |off: usize, len: usize, index: u32| {
            prefetch::block(base.wrapping_add(off), len);
            entries.prefetch(index);
        };
        self.space.live.walk_down(below, ahead, |off, len, index| {
            while low < holes.len() && holes[low].0 == holes[low].1 {
                low += 1;
            }
            if low == holes.len() || holes[low].0 >= off {
                return Walk::Stop;
            }
            let (align, pinned) = table.align_and_pinned(index);
            if pinned {
                return Walk::Stay;
            }
            let fits = |(start, end): (usize, usize)| {
                align_up(start, align).filter(|&to| to.checked_add(len).is_some_and(|e| e <= end))
            };
            let target = match fits(holes[low]) {
                Some(to) => Some((low, to)),
                None => {
                    // Holes starting below the block end at or below it: none overlaps it.
                    let under = holes.partition_point(|h| h.0 < off);
                    let mut from = low + 1;
                    loop {
                        let Some(i) = fit.first_fit(from, under, len) else {
                            break None;
                        };
                        let (start, end) = holes[i];
                        if end - start < len {
                            // A stale bound: correct it and search again from the same place.
                            fit.set(i, end - start);
                            continue;
                        }
                        match fits(holes[i]) {
                            Some(to) => break Some((i, to)),
                            None => from = i + 1,
                        }
                    }
                }
            };
            let Some((i, to)) = target else {
                return Walk::Stay;
            };
            // SAFETY: [off, off + len) is a live block in the buffer; [to, to + len) lies
            // inside a hole below it, so the two do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(base.add(off), base.add(to), len) };
            table.set_offset(index, to);
            holes[i].0 = to + len;
            // The holes a few blocks on will take these blocks' bytes: fetch their lines
            // now, so that the writes do not wait for them.
            if let Some(&(start, end)) = holes.get(low + prefetch::DISTANCE) {
                prefetch::block(base.wrapping_add(start), end - start);
            }
            moves += 1;
            bytes += len;
            Walk::MoveTo(to)
        });
        self.space.rebuild_holes();
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
        // In address order, so each slot's entry is found by binary search.
        let blocks = self.space.live();
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
                let entry = blocks
                    .binary_search_by_key(&slot.offset, |b| b.0)
                    .ok()
                    .map(|k| blocks[k]);
                match entry {
                    Some((_, len, idx)) if len == slot.reserved() && idx == i as u32 => {}
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

/// Performs the copies of a slide in block order. Blocks whose old and new places are both
/// adjacent to the previous block's move as one run, with one `memmove`.
///
/// Invariant: the pending run's destination ends at or below the source of every block not
/// yet handed to `copy`.
struct SlideCopier {
    base: *mut u8,
    run_from: usize,
    run_to: usize,
    run_len: usize,
}

impl SlideCopier {
    fn new(base: *mut u8) -> SlideCopier {
        SlideCopier {
            base,
            run_from: 0,
            run_to: 0,
            run_len: 0,
        }
    }

    /// Moves the block `[from, from + len)` to `to < from`.
    ///
    /// # Safety
    /// Both ranges lie inside the buffer at `base`; blocks are handed over in address order,
    /// each destination starting at or above the previous block's destination end and at or
    /// below its own source, and no other block lives in the destination.
    unsafe fn copy(&mut self, from: usize, to: usize, len: usize) {
        if self.run_len > 0
            && self.run_from + self.run_len == from
            && self.run_to + self.run_len == to
        {
            self.run_len += len;
        } else {
            self.flush_run();
            (self.run_from, self.run_to, self.run_len) = (from, to, len);
        }
    }

    fn flush_run(&mut self) {
        if self.run_len > 0 {
            // SAFETY: the run's blocks are live in the buffer and its destination is free or
            // vacated (the contract of `copy`); ptr::copy allows the two to overlap.
            unsafe {
                core::ptr::copy(
                    self.base.add(self.run_from),
                    self.base.add(self.run_to),
                    self.run_len,
                )
            };
            self.run_len = 0;
        }
    }

    /// Writes out whatever is pending.
    fn finish(mut self) {
        self.flush_run();
    }
}
