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
//! A bulk compaction pass ([`Store::bulk_pass`]) gets the parts themselves and restores the
//! invariant before it returns.

use crate::buffer::Buffer;
use crate::error::ArenaCorruption;
use crate::space_map::SpaceMap;
use crate::table::{reserved_checked, DropFn, Slot, Table};
use core::any::TypeId;
use core::num::NonZeroU32;

pub(crate) struct Store {
    buffer: Buffer,
    table: Table,
    space: SpaceMap,
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
            space: SpaceMap::default(),
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
    pub(crate) fn space(&self) -> &SpaceMap {
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

    /// Runs a bulk compaction pass: `pass` moves blocks itself, setting their offsets in the
    /// table and in the live-block index as it goes, and rebuilds the holes of the space map
    /// once at its end, so that the invariant holds again when it returns. It returns the
    /// blocks and bytes it moved, which join the totals. Only the shipped compactors' full
    /// passes ([`slide_from`](crate::compactor::sliding::slide_from),
    /// [`evacuate_below`](crate::compactor::two_finger::evacuate_below)) do this.
    pub(crate) fn bulk_pass(
        &mut self,
        pass: impl FnOnce(BulkParts<'_>) -> (usize, usize),
    ) -> (usize, usize) {
        let (moves, bytes) = pass(BulkParts {
            base: self.buffer.ptr(),
            table: &mut self.table,
            space: &mut self.space,
        });
        self.total_moves += moves as u64;
        self.total_bytes_moved += bytes as u64;
        (moves, bytes)
    }

    pub(crate) fn check(&self) -> Result<(), ArenaCorruption> {
        self.space.check()?;
        if self.space.top() > self.buffer.cap() {
            return Err(ArenaCorruption::TopAboveCapacity {
                top: self.space.top(),
                capacity: self.buffer.cap(),
            });
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
                    return Err(ArenaCorruption::MisalignedBlock {
                        slot: i,
                        offset: slot.offset,
                    });
                }
                let entry = blocks
                    .binary_search_by_key(&slot.offset, |b| b.0)
                    .ok()
                    .map(|k| blocks[k]);
                match entry {
                    Some((_, len, idx)) if len == slot.reserved() && idx == i as u32 => {}
                    _ => return Err(ArenaCorruption::SlotMismatch { slot: i }),
                }
            }
        }
        if in_space != self.space.live_count() {
            return Err(ArenaCorruption::OrphanBlock);
        }
        let counters = (
            self.live_bytes,
            self.live_blocks,
            self.pinned_blocks,
            self.pinned_in_buffer,
        );
        if counters != (live_bytes, live_blocks, pinned, pinned_in_buffer) {
            return Err(ArenaCorruption::CountersMismatch);
        }
        Ok(())
    }
}

/// What a bulk compaction pass ([`Store::bulk_pass`]) works on: the buffer's base address, the
/// table and the space map.
pub(crate) struct BulkParts<'a> {
    pub(crate) base: *mut u8,
    pub(crate) table: &'a mut Table,
    pub(crate) space: &'a mut SpaceMap,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A store holding three 16-byte byte blocks, aligned to 8. Returns it and their slots.
    fn store_with_blocks() -> (Store, Vec<u32>) {
        let mut store = Store::new();
        store.set_capacity(4096).unwrap();
        let id = TypeId::of::<[u8]>();
        let slots = (0..3)
            .map(|_| {
                let known = store
                    .type_index(id)
                    .ok_or_else(|| Table::type_tag(id).unwrap());
                let off = store.alloc(16, 8).unwrap();
                store.occupy(off, (16, 8, 16), known, id, None);
                store.table().len() as u32 - 1
            })
            .collect();
        store.check().unwrap();
        (store, slots)
    }

    #[test]
    fn check_reports_counters_that_disagree() {
        let (mut store, _) = store_with_blocks();
        store.live_bytes += 1;
        assert_eq!(store.check(), Err(ArenaCorruption::CountersMismatch));
        assert_eq!(
            store.check().unwrap_err().to_string(),
            "the counters disagree with the handle table"
        );
        store.live_bytes -= 1;
        store.pinned_in_buffer += 1;
        assert_eq!(store.check(), Err(ArenaCorruption::CountersMismatch));
    }

    #[test]
    fn check_reports_a_slot_that_disagrees_with_the_space_map() {
        let (mut store, slots) = store_with_blocks();
        let slot = slots[1];
        let offset = store.table().slot(slot).offset;
        store.table.set_offset(slot, offset + 1);
        assert_eq!(
            store.check(),
            Err(ArenaCorruption::MisalignedBlock {
                slot: slot as usize,
                offset: offset + 1
            })
        );
        store.table.set_offset(slot, offset + 8);
        assert_eq!(
            store.check(),
            Err(ArenaCorruption::SlotMismatch {
                slot: slot as usize
            })
        );
        store.table.set_offset(slot, offset);
        store.check().unwrap();
        // A block in the space map that no slot owns.
        let off = store.alloc(8, 8).unwrap();
        store.space.insert_live(off, 8, 99);
        assert_eq!(store.check(), Err(ArenaCorruption::OrphanBlock));
    }

    #[test]
    fn check_reports_a_top_above_the_capacity() {
        let (mut store, _) = store_with_blocks();
        store.buffer.set_capacity(0).unwrap();
        let top = store.space.top();
        assert_eq!(
            store.check(),
            Err(ArenaCorruption::TopAboveCapacity { top, capacity: 0 })
        );
    }
}
