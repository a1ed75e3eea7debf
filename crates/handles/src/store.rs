//! The arena's storage: the buffer, the handle table and the space map, kept in agreement.
//!
//! Invariant (checked by [`Store::check`]): every occupied slot with `len > 0` has a live entry
//! in the space map at its offset with its reserved length (`len` rounded up to its alignment)
//! and index, its offset is aligned to its
//! alignment, and its bytes lie inside the buffer; zero-length blocks occupy no space. The
//! counters (`live_bytes`, `live_blocks`, `pinned_blocks`, `pinned_in_buffer`) equal what a walk
//! of the table finds.
//!
//! The fields are private: the arena and the compactors read the table and the space map
//! through shared references and change them only through `Store`'s operations, each of which
//! keeps the invariant. The one two-step operation is placing a block:
//! [`alloc`](Store::alloc) claims space and [`occupy`](Store::occupy) registers the block in it.

use crate::buffer::Buffer;
use crate::fit_tree::FitTree;
use crate::free_space::align_up;
use crate::free_space::Space;
use crate::live_index::Walk;
use crate::prefetch;
use crate::table::{reserved_checked, DropFn, Slot, Table};
use core::any::TypeId;
use core::num::NonZeroU32;

pub(crate) struct Store {
    buffer: Buffer,
    table: Table,
    space: Space,
    /// Sum of the reserved lengths of live blocks.
    live_bytes: usize,
    /// Occupied slots.
    live_blocks: usize,
    /// Occupied slots with a pin count above zero.
    pinned_blocks: usize,
    /// Pinned slots that occupy buffer space: while non-zero, the buffer may not move.
    pinned_in_buffer: usize,
    total_moves: u64,
    total_bytes_moved: u64,
    passes_completed: u64,
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

    /// The handle table, read-only: every change goes through a method of `Store`.
    #[inline(always)]
    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// The space map, read-only.
    #[inline]
    pub(crate) fn space(&self) -> &Space {
        &self.space
    }

    /// The buffer's base address.
    #[inline(always)]
    pub(crate) fn base(&self) -> *mut u8 {
        self.buffer.ptr()
    }

    /// The buffer's capacity in bytes.
    #[inline]
    pub(crate) fn cap(&self) -> usize {
        self.buffer.cap()
    }

    /// Occupied slots.
    pub(crate) fn live_blocks(&self) -> usize {
        self.live_blocks
    }

    /// Whether a pinned block occupies buffer space, so that the buffer may not move.
    pub(crate) fn buffer_pinned(&self) -> bool {
        self.pinned_in_buffer > 0
    }

    /// The counters as `stats()` reports them: (live blocks, live bytes, pinned blocks,
    /// total moves, total bytes moved, passes completed).
    pub(crate) fn counters(&self) -> (usize, usize, usize, u64, u64, u64) {
        (
            self.live_blocks,
            self.live_bytes,
            self.pinned_blocks,
            self.total_moves,
            self.total_bytes_moved,
            self.passes_completed,
        )
    }

    /// Counts one completed compaction pass and returns the live-block index to its flat form.
    pub(crate) fn end_pass(&mut self) {
        self.space.make_flat();
        self.passes_completed += 1;
    }

    /// Switches the live-block index to its ordered (tree) form, for a compaction pass.
    pub(crate) fn make_ordered(&mut self) {
        self.space.make_ordered();
    }

    /// Returns the live-block index to its flat, cheap-to-update form.
    pub(crate) fn make_flat(&mut self) {
        self.space.make_flat();
    }

    /// The type-list index of `id`, if the arena knows the type.
    #[inline]
    pub(crate) fn type_index(&mut self, id: TypeId) -> Option<u32> {
        self.table.type_index(id)
    }

    /// Claims `len > 0` free bytes aligned to `align` below the capacity, for a block that
    /// [`occupy`](Store::occupy) registers next. `None` if no hole or the space above the top
    /// fits.
    #[inline]
    pub(crate) fn alloc(&mut self, len: usize, align: usize) -> Option<usize> {
        let cap = self.buffer.cap();
        self.space.alloc(len, align, cap)
    }

    /// Sets the buffer's capacity (at or above the top); refused while a pinned block lies in
    /// the buffer or if the memory cannot be had.
    pub(crate) fn set_capacity(&mut self, cap: usize) -> Result<(), ()> {
        if self.pinned_in_buffer > 0 || cap < self.space.top() {
            return Err(());
        }
        self.buffer.set_capacity(cap)
    }

    /// Occupies a slot for a block of `len` bytes at `offset` (claimed by
    /// [`alloc`](Store::alloc) if `len > 0`), reserving `reserved` bytes. `known` is the
    /// type's index, or the tag of a type new to the arena. Returns the handle index and the
    /// generation key.
    #[inline]
    pub(crate) fn occupy(
        &mut self,
        offset: usize,
        (len, align, reserved): (usize, usize, usize),
        known: Result<u32, u32>,
        type_id: TypeId,
        drop: Option<DropFn>,
    ) -> (u32, NonZeroU32) {
        let type_index = known.unwrap_or_else(|tag| self.table.add_type(type_id, drop, tag));
        let (index, generation) = self.table.occupy(offset, len, align, type_index);
        if len > 0 {
            self.space.insert_live(offset, reserved, index);
        }
        self.live_bytes += reserved;
        self.live_blocks += 1;
        (self.table.handle_index(index), generation)
    }

    /// Frees the occupied slot `index`, whose current state is `slot`, and its space (pinned
    /// or not). Does not drop anything.
    #[inline]
    pub(crate) fn vacate(&mut self, index: u32, slot: &Slot) {
        if slot.len > 0 {
            self.space.remove_live(slot.offset, index);
            self.space.release(slot.offset, slot.reserved());
        }
        if slot.pins > 0 {
            self.pinned_blocks -= 1;
            if slot.len > 0 {
                self.pinned_in_buffer -= 1;
            }
        }
        self.live_bytes -= slot.reserved();
        self.live_blocks -= 1;
        self.table.vacate(index);
    }

    /// Sets the pin count of the occupied slot `index`, whose current state is `slot`.
    pub(crate) fn set_pins(&mut self, index: u32, slot: &Slot, pins: u32) {
        self.table.set_pins(index, pins);
        let in_buffer = usize::from(slot.len > 0);
        if slot.pins == 0 && pins > 0 {
            self.pinned_blocks += 1;
            self.pinned_in_buffer += in_buffer;
        } else if slot.pins > 0 && pins == 0 {
            self.pinned_blocks -= 1;
            self.pinned_in_buffer -= in_buffer;
        }
    }

    /// Changes the length of the byte block in slot `index` (state `slot`) to `new_len` in
    /// place, if its reservation shrinks or the space after it is free; new bytes are zero.
    /// Returns whether it did.
    pub(crate) fn resize_in_place(&mut self, index: u32, slot: &Slot, new_len: usize) -> bool {
        let (off, len, align) = (slot.offset, slot.len, slot.align);
        let old_res = slot.reserved();
        let Some(new_res) = reserved_checked(new_len, align) else {
            return false;
        };
        if new_res <= old_res {
            // Shrink (or stay) in place; a tail freed by the shrink becomes free space.
            if new_res < old_res {
                self.space.remove_live(off, index);
                self.space.release(off + new_res, old_res - new_res);
                if new_res > 0 {
                    self.space.insert_live(off, new_res, index);
                }
            }
        } else {
            let Some(end) = off.checked_add(new_res) else {
                return false;
            };
            if len == 0 || !self.space.is_free(off + old_res, end, self.buffer.cap()) {
                return false;
            }
            self.space.claim(off + old_res, new_res - old_res);
            self.space.set_live_len(off, index, new_res);
        }
        if new_len > len {
            // SAFETY: [off + len, off + new_len) lies inside the block's reserved bytes, which
            // now include any range just claimed.
            unsafe { core::ptr::write_bytes(self.buffer.ptr().add(off + len), 0, new_len - len) };
        }
        self.set_len(index, off, new_len);
        true
    }

    /// Moves the byte block in slot `index` (length `len`, reserving `old_res`, at the offset
    /// the table holds now) to `new_off`, claimed by [`alloc`](Store::alloc) with `new_res >=
    /// old_res` bytes, and makes it `new_len > len` bytes long; new bytes are zero.
    pub(crate) fn move_and_grow(
        &mut self,
        index: u32,
        (len, old_res): (usize, usize),
        (new_off, new_res, new_len): (usize, usize, usize),
    ) {
        let old_off = self.table.slot(index).offset;
        let base = self.buffer.ptr();
        if len > 0 {
            // SAFETY: the old block [old_off, +len) and the new space [new_off, +new_res) are
            // both inside the buffer and disjoint (the new space was free while the old block
            // was live); new_len > len.
            unsafe { core::ptr::copy_nonoverlapping(base.add(old_off), base.add(new_off), len) };
            self.space.remove_live(old_off, index);
            self.space.release(old_off, old_res);
        }
        // SAFETY: the tail [new_off + len, new_off + new_len) is inside the new space.
        unsafe { core::ptr::write_bytes(base.add(new_off + len), 0, new_len - len) };
        self.space.insert_live(new_off, new_res, index);
        self.set_len(index, new_off, new_len);
    }

    fn set_len(&mut self, index: u32, offset: usize, new_len: usize) {
        let old_res = self.table.slot(index).reserved();
        self.table.set_len(index, new_len);
        self.table.set_offset(index, offset);
        let new_res = self.table.slot(index).reserved();
        self.live_bytes = self.live_bytes - old_res + new_res;
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_counter(&mut self, h: crate::RawHandle, counter: u32) {
        self.table.force_counter(h, counter);
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_salt(&mut self, salt: u32) {
        self.table.force_salt(salt);
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
