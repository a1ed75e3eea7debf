//! `Arena`: the relocatable handle arena.
//!
//! It owns one buffer and hands out handles (slot index + generation) instead of addresses.
//! Because every access goes through the table, compaction may move any unpinned block and fix
//! its master pointer. Invariant: all of [`Store`]'s invariants hold between public calls, and
//! `pass_active` is true only between a paused incremental step and the end of its pass.

use core::any::TypeId;
use core::fmt;
use core::mem::{align_of, needs_drop, size_of};
use core::num::NonZeroU32;
use core::ptr::{self, NonNull};
use std::time::Instant;

use crate::buffer::{MAX_ALIGN, PAGE};
use crate::compactor::{Budget, CompactionReport, Compactor, Progress, Relocator, Sliding};
use crate::error::{ArenaCorruption, ArenaError};
use crate::growth::{ArenaConfig, GrowthPolicy};
use crate::handle::{Handle, RawHandle};
use crate::stats::ArenaStats;
use crate::store::Store;
use crate::table::{drop_glue, reserved_checked, DropFn, Table};

/// A relocatable arena of values and byte blocks, named by generational [`Handle`]s, with
/// pluggable compaction `C` (default [`Sliding`]).
///
/// ```
/// use freespace_handles::Arena;
///
/// let mut arena = Arena::new();
/// let a = arena.insert(String::from("left"));
/// let b = arena.insert([7u64; 64]);
/// let c = arena.insert(String::from("right"));
/// assert_eq!(arena.remove(b), Some([7u64; 64]));
/// assert_eq!(arena.stats().holes, 1);
///
/// let report = arena.compact();
/// assert_eq!(report.holes_after, 0);
/// assert_eq!(arena.get(a).map(String::as_str), Some("left"));
/// assert_eq!(arena.get(c).map(String::as_str), Some("right"));
/// assert_eq!(arena.get(b), None, "a removed value's handle is refused");
/// ```
pub struct Arena<C: Compactor = Sliding> {
    store: Store,
    compactor: C,
    config: ArenaConfig,
    pass_active: bool,
}

impl Arena<Sliding> {
    /// An empty arena with the default configuration and the sliding compactor. The buffer is
    /// allocated by the first insert; until then the arena holds only its small, empty hash
    /// indexes of holes.
    pub fn new() -> Arena<Sliding> {
        Arena::with_config(ArenaConfig::new(), Sliding::new())
    }

    /// An empty arena whose buffer holds at least `bytes` from the start.
    pub fn with_capacity(bytes: usize) -> Arena<Sliding> {
        Arena::with_config(ArenaConfig::new().initial_capacity(bytes), Sliding::new())
    }
}

impl Default for Arena<Sliding> {
    fn default() -> Self {
        Arena::new()
    }
}

impl<C: Compactor> Arena<C> {
    /// An empty arena with the default configuration and the given compactor.
    pub fn with_compactor(compactor: C) -> Arena<C> {
        Arena::with_config(ArenaConfig::new(), compactor)
    }

    /// An empty arena with the given configuration and compactor.
    ///
    /// # Panics
    /// If the initial capacity cannot be allocated.
    pub fn with_config(config: ArenaConfig, compactor: C) -> Arena<C> {
        let config = config.normalized();
        let mut store = Store::new();
        if config.initial_capacity > 0 {
            store
                .set_capacity(config.initial_capacity)
                .expect("arena: cannot allocate the initial capacity");
        }
        Arena {
            store,
            compactor,
            config,
            pass_active: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ArenaConfig {
        &self.config
    }

    /// Changes the growth policy.
    pub fn set_policy(&mut self, policy: GrowthPolicy) {
        self.config.policy = policy;
    }

    /// The compactor.
    pub fn compactor(&self) -> &C {
        &self.compactor
    }

    /// The compactor, mutably (e.g. to tune it). Changing it mid-pass is allowed: the next
    /// incremental step still re-validates every move.
    pub fn compactor_mut(&mut self) -> &mut C {
        &mut self.compactor
    }

    /// Number of live values and byte blocks.
    pub fn len(&self) -> usize {
        self.store.live_blocks()
    }

    /// Whether the arena holds nothing.
    pub fn is_empty(&self) -> bool {
        self.store.live_blocks() == 0
    }

    // ----- values -----

    /// Moves `value` into the arena and returns its handle.
    ///
    /// # Panics
    /// If [`try_insert`](Arena::try_insert) would fail.
    pub fn insert<T: 'static>(&mut self, value: T) -> Handle<T> {
        match self.try_insert(value) {
            Ok(h) => h,
            Err(e) => panic!("arena insert failed: {e}"),
        }
    }

    /// Moves `value` into the arena, or says why not (the value is dropped then): its alignment
    /// is above [`MAX_ALIGN`], or the buffer cannot grow ([`ArenaError::OutOfMemory`],
    /// [`ArenaError::BufferPinned`]). A refused call changes nothing, except for the compaction
    /// pass that [`GrowthPolicy::CompactThenGrow`] may run before it gives up.
    pub fn try_insert<T: 'static>(&mut self, value: T) -> Result<Handle<T>, ArenaError> {
        let drop: Option<DropFn> = if needs_drop::<T>() {
            Some(drop_glue::<T>)
        } else {
            None
        };
        let (index, generation, offset) =
            self.place(size_of::<T>(), align_of::<T>(), TypeId::of::<T>(), drop)?;
        let p = if size_of::<T>() == 0 {
            NonNull::<T>::dangling().as_ptr()
        } else {
            self.store.base().wrapping_add(offset).cast::<T>()
        };
        // SAFETY: `place` reserved size_of::<T>() bytes at an offset aligned to align_of::<T>()
        // inside the buffer (or p is a dangling aligned address for a ZST), and nothing else
        // refers to that space.
        unsafe { ptr::write(p, value) };
        self.after_change();
        Ok(Handle::new(index, generation))
    }

    /// Reserves space and a slot. Returns the index a handle to the slot carries, the slot's
    /// generation key and the block's offset; the block's bytes are uninitialised.
    #[inline]
    fn place(
        &mut self,
        len: usize,
        align: usize,
        type_id: TypeId,
        drop: Option<DropFn>,
    ) -> Result<(u32, NonZeroU32, usize), ArenaError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(ArenaError::BadAlignment(align));
        }
        if !self.store.table().can_occupy() {
            return Err(ArenaError::OutOfMemory);
        }
        // A type new to the arena joins its type list only once the space is found, so that a
        // refused call leaves the list (and `stats().table_bytes`) as it was.
        // `Ok(index)` for a known type, `Err(tag)` for a new one.
        let known = match self.store.type_index(type_id) {
            Some(i) => Ok(i),
            None => Err(Table::type_tag(type_id).ok_or(ArenaError::TooManyTypes)?),
        };
        let reserved = reserved_checked(len, align).ok_or(ArenaError::OutOfMemory)?;
        let offset = if len == 0 {
            0
        } else {
            self.alloc_space(reserved, align)?
        };
        let (index, generation) =
            self.store
                .occupy(offset, (len, align, reserved), known, type_id, drop);
        Ok((index, generation, offset))
    }

    /// Finds `len > 0` bytes aligned to `align`: holes, then bump, then the growth policy.
    fn alloc_space(&mut self, len: usize, align: usize) -> Result<usize, ArenaError> {
        if let Some(off) = self.store.alloc(len, align) {
            return Ok(off);
        }
        if self.config.policy == GrowthPolicy::CompactThenGrow {
            let space = self.store.space();
            let free = space.hole_bytes() + (self.store.cap() - space.top());
            if free >= len && space.hole_count() > 0 {
                self.run_pass(Budget::Unlimited, true, false);
                if let Some(off) = self.store.alloc(len, align) {
                    return Ok(off);
                }
            }
        }
        self.grow_for(len, align)?;
        self.store.alloc(len, align).ok_or(ArenaError::OutOfMemory)
    }

    /// Grows the buffer so that `len` bytes aligned to `align` fit above the top.
    fn grow_for(&mut self, len: usize, align: usize) -> Result<(), ArenaError> {
        let needed = self
            .store
            .space()
            .top()
            .checked_next_multiple_of(align)
            .and_then(|s| s.checked_add(len))
            .and_then(|e| e.checked_next_multiple_of(PAGE))
            .ok_or(ArenaError::OutOfMemory)?;
        if needed > self.config.max_capacity {
            return Err(ArenaError::OutOfMemory);
        }
        if self.store.buffer_pinned() {
            return Err(ArenaError::BufferPinned);
        }
        let doubled = self.store.cap().saturating_mul(2);
        let target = needed.max(doubled).min(self.config.max_capacity);
        self.store
            .set_capacity(target)
            .or_else(|()| self.store.set_capacity(needed))
            .map_err(|()| ArenaError::OutOfMemory)
    }

    /// A shared reference to the value `h` names, or `None` if `h` is stale.
    ///
    /// This is the fast path: an index into the table, one compare of the generation key
    /// (which also carries the type), and a pointer add.
    #[inline]
    pub fn get<T: 'static>(&self, h: Handle<T>) -> Option<&T> {
        let p = self.resolve::<T>(h)?;
        // SAFETY: `resolve` matched the key (occupied slot, T's type tag): p is a live, aligned,
        // initialised T in the buffer, or dangling for a zero-sized T. The reference borrows
        // `self`, so no compaction (it needs `&mut self`) can move the value while it lives.
        Some(unsafe { &*p })
    }

    /// A mutable reference to the value `h` names, or `None` if `h` is stale.
    #[inline]
    pub fn get_mut<T: 'static>(&mut self, h: Handle<T>) -> Option<&mut T> {
        let p = self.resolve::<T>(h)?;
        // SAFETY: as in `get`, and `&mut self` makes this the only reference into the buffer.
        Some(unsafe { &mut *p })
    }

    /// The fast path shared by `get` and `get_mut`: the slot's hot entry, one key compare and
    /// a pointer add.
    #[inline(always)]
    fn resolve<T: 'static>(&self, h: Handle<T>) -> Option<*mut T> {
        let table = self.store.table();
        // The handle's index is the slot's index XOR this arena's salt: a handle of another
        // arena lands past the end of the table (see `arena_id.rs`).
        let hot = table.hot.get((h.index() ^ table.salt) as usize)?;
        // One compare checks both: the key's counter proves the slot was not reused, and its
        // type tag (process-wide, one per TypeId) proves the slot holds a T, even if `h` came
        // from another arena that shares this one's id.
        if hot.generation != h.generation().get() {
            return None;
        }
        if size_of::<T>() == 0 {
            return Some(NonNull::<T>::dangling().as_ptr());
        }
        Some(self.store.base().wrapping_add(hot.offset).cast::<T>())
    }

    /// Removes the value `h` names and returns it. `None` if `h` is stale, or if the value is
    /// pinned (use [`try_remove`](Arena::try_remove) to tell the two apart).
    pub fn remove<T: 'static>(&mut self, h: Handle<T>) -> Option<T> {
        self.try_remove(h).ok()
    }

    /// Removes the value `h` names and returns it, or says why not: [`ArenaError::Stale`] or
    /// [`ArenaError::Pinned`].
    pub fn try_remove<T: 'static>(&mut self, h: Handle<T>) -> Result<T, ArenaError> {
        let p = self.vacate(h.raw(), TypeId::of::<T>())?;
        // SAFETY: `vacate` checked the slot holds a live T and released it without dropping;
        // the bytes are intact until the next allocation, and we read them out exactly once.
        let value = unsafe { ptr::read(p.cast::<T>()) };
        self.after_change();
        Ok(value)
    }

    /// Checks `h` names a live, unpinned block of type `type_id`, frees its slot and space, and
    /// returns the block's address (still holding its bytes). Does not drop anything.
    fn vacate(&mut self, h: RawHandle, type_id: TypeId) -> Result<*mut u8, ArenaError> {
        let (index, slot) = self
            .store
            .table()
            .find(h)
            .filter(|(_, s)| s.type_id == type_id)
            .ok_or(ArenaError::Stale)?;
        if slot.pins > 0 {
            return Err(ArenaError::Pinned);
        }
        let p = self.store.block_ptr(&slot);
        self.store.vacate(index, &slot);
        Ok(p)
    }

    // ----- byte blocks -----

    /// Allocates a zeroed block of `len` bytes aligned to `align`.
    ///
    /// # Panics
    /// If [`try_alloc_bytes`](Arena::try_alloc_bytes) would fail.
    pub fn alloc_bytes(&mut self, len: usize, align: usize) -> Handle<[u8]> {
        match self.try_alloc_bytes(len, align) {
            Ok(h) => h,
            Err(e) => panic!("arena alloc_bytes failed: {e}"),
        }
    }

    /// Allocates a zeroed block of `len` bytes aligned to `align` (a power of two up to
    /// [`MAX_ALIGN`]). A refused call changes nothing, except for the compaction pass that
    /// [`GrowthPolicy::CompactThenGrow`] may run before it gives up.
    pub fn try_alloc_bytes(
        &mut self,
        len: usize,
        align: usize,
    ) -> Result<Handle<[u8]>, ArenaError> {
        let (index, generation, offset) = self.place(len, align, TypeId::of::<[u8]>(), None)?;
        if len > 0 {
            let p = self.store.base().wrapping_add(offset);
            // SAFETY: `place` reserved len bytes at p inside the buffer.
            unsafe { ptr::write_bytes(p, 0, len) };
        }
        self.after_change();
        Ok(Handle::new(index, generation))
    }

    /// The bytes of the block `h` names, or `None` if `h` is stale.
    #[inline]
    pub fn bytes(&self, h: Handle<[u8]>) -> Option<&[u8]> {
        let (_, slot) = self.store.table().find(h.raw())?;
        if slot.type_id != TypeId::of::<[u8]>() {
            return None;
        }
        let p = self.store.block_ptr(&slot);
        // SAFETY: the slot is a live byte block of slot.len initialised bytes at p (zeroed at
        // allocation, copied on every move); the borrow of self keeps it in place.
        Some(unsafe { core::slice::from_raw_parts(p, slot.len) })
    }

    /// The bytes of the block `h` names, mutably, or `None` if `h` is stale.
    #[inline]
    pub fn bytes_mut(&mut self, h: Handle<[u8]>) -> Option<&mut [u8]> {
        let (_, slot) = self.store.table().find(h.raw())?;
        if slot.type_id != TypeId::of::<[u8]>() {
            return None;
        }
        let p = self.store.block_ptr(&slot);
        // SAFETY: as in `bytes`, and `&mut self` makes this the only reference.
        Some(unsafe { core::slice::from_raw_parts_mut(p, slot.len) })
    }

    /// Frees the byte block `h` names.
    pub fn free_bytes(&mut self, h: Handle<[u8]>) -> Result<(), ArenaError> {
        self.vacate(h.raw(), TypeId::of::<[u8]>())?;
        self.after_change();
        Ok(())
    }

    /// Changes the length of the byte block `h` names; new bytes are zero. The block grows in
    /// place when the space after it is free, and moves otherwise (the handle stays valid).
    /// A pinned block may only change in place, and may not shrink to zero. A refused call
    /// changes nothing, except for the compaction pass that [`GrowthPolicy::CompactThenGrow`]
    /// may run before a move gives up.
    pub fn resize(&mut self, h: Handle<[u8]>, new_len: usize) -> Result<(), ArenaError> {
        let (index, slot) = self
            .store
            .table()
            .find(h.raw())
            .filter(|(_, s)| s.type_id == TypeId::of::<[u8]>())
            .ok_or(ArenaError::Stale)?;
        let pinned = slot.pins > 0;
        let new_res = reserved_checked(new_len, slot.align).ok_or(ArenaError::OutOfMemory)?;
        if new_len < slot.len && pinned && new_len == 0 {
            return Err(ArenaError::Pinned);
        }
        if self.store.resize_in_place(index, &slot, new_len) {
            self.after_change();
            return Ok(());
        }
        if pinned {
            return Err(ArenaError::Pinned);
        }
        // Move: take new space while the old block still holds its bytes. Compaction inside
        // `alloc_space` may move the old block; `move_and_grow` reads its offset afterwards.
        let new_off = self.alloc_space(new_res, slot.align)?;
        self.store.move_and_grow(
            index,
            (slot.len, slot.reserved()),
            (new_off, new_res, new_len),
        );
        self.after_change();
        Ok(())
    }

    // ----- handles in general -----

    /// Whether `h` names a live block.
    pub fn contains(&self, h: impl Into<RawHandle>) -> bool {
        let h = h.into();
        self.store.table().find(h).is_some()
    }

    /// The current address of the block `h` names. Only a pinned block's address stays valid
    /// past the next `&mut self` call.
    pub fn address_of(&self, h: impl Into<RawHandle>) -> Option<NonNull<u8>> {
        let h = h.into();
        let (_, slot) = self.store.table().find(h)?;
        NonNull::new(self.store.block_ptr(&slot))
    }

    /// Pins the block `h` names (counted: each `pin` needs an `unpin`) and returns its address,
    /// which stays valid until the block is unpinned as often as it was pinned, removed, or the
    /// arena is dropped. Compactors treat pinned blocks as barriers, and the buffer does not
    /// grow or shrink while any non-empty block is pinned.
    pub fn pin(&mut self, h: impl Into<RawHandle>) -> Result<NonNull<u8>, ArenaError> {
        let h = h.into();
        let (index, slot) = self.store.table().find(h).ok_or(ArenaError::Stale)?;
        let pins = slot.pins.checked_add(1).ok_or(ArenaError::PinOverflow)?;
        self.store.set_pins(index, &slot, pins);
        Ok(self.address_of(h).expect("live"))
    }

    /// Undoes one [`pin`](Arena::pin).
    pub fn unpin(&mut self, h: impl Into<RawHandle>) -> Result<(), ArenaError> {
        let h = h.into();
        let (index, slot) = self.store.table().find(h).ok_or(ArenaError::Stale)?;
        let pins = slot.pins.checked_sub(1).ok_or(ArenaError::NotPinned)?;
        self.store.set_pins(index, &slot, pins);
        Ok(())
    }

    /// How many times the block `h` names is pinned (`None` if stale).
    pub fn pin_count(&self, h: impl Into<RawHandle>) -> Option<u32> {
        let h = h.into();
        self.store.table().find(h).map(|(_, s)| s.pins)
    }

    /// Drops every unpinned value and frees every unpinned byte block; their handles become
    /// stale. Pinned blocks stay, since their addresses are in use outside the arena.
    pub fn clear(&mut self) {
        for index in 0..self.store.table().len() as u32 {
            let slot = self.store.table().slot(index);
            if slot.is_occupied() && slot.pins == 0 {
                let p = self.store.block_ptr(&slot);
                self.store.vacate(index, &slot);
                if let Some(drop) = slot.drop {
                    // SAFETY: the slot held a live value whose type's drop glue this is; the
                    // slot is now vacant, so the value is dropped exactly once, and its bytes
                    // are still intact (nothing has been allocated since).
                    unsafe { drop(p) };
                }
            }
        }
        self.pass_active = false;
        self.store.make_flat();
        if self.config.shrink_after_compaction {
            self.shrink_to_fit();
        }
    }

    // ----- compaction -----

    /// Runs a full compaction pass, starting over, and shrinks the buffer afterwards (if the
    /// configuration says so and nothing is pinned).
    ///
    /// With [`Sliding`] and nothing pinned, the blocks keep their order, the first starts at
    /// offset 0, and each next one at the lowest offset at or above the previous block's end
    /// that its alignment allows. So the only holes left are the padding that alignment
    /// requires in that order, each shorter than the alignment of the block above it, and
    /// blocks of a single alignment leave no hole at all. The padding counts as holes in
    /// [`stats`](Arena::stats) and in the report, and later allocations can fill it. The
    /// footprint is then the used span (the live bytes plus that padding) rounded up to a
    /// page, or the initial capacity if that is larger, unless `shrink_after_compaction` is
    /// off.
    pub fn compact(&mut self) -> CompactionReport {
        self.run_pass(Budget::Unlimited, true, true)
    }

    /// Runs one incremental step bounded by `budget`. The first step starts a pass; later
    /// steps resume from the compactor's cursor; the step that completes the pass reports
    /// `finished` and shrinks the buffer. Inserts, removes and pins between steps are fine.
    pub fn compact_with(&mut self, budget: Budget) -> CompactionReport {
        self.run_pass(budget, false, true)
    }

    fn run_pass(&mut self, budget: Budget, restart: bool, shrink: bool) -> CompactionReport {
        let started = Instant::now();
        let mut report = CompactionReport {
            holes_before: self.store.space().hole_count(),
            largest_hole_before: self.store.space().largest_hole(),
            footprint_before: self.store.cap(),
            ..CompactionReport::default()
        };
        if restart || !self.pass_active {
            self.compactor.begin();
            self.pass_active = true;
        }
        let mut relocator = Relocator::new(&mut self.store, budget);
        let progress = self.compactor.step(&mut relocator);
        (report.blocks_moved, report.bytes_moved) = relocator.spent();
        if progress == Progress::Done || budget == Budget::Unlimited {
            self.pass_active = false;
            // Between passes the live-block index takes its flat, cheap-to-update form.
            self.store.end_pass();
            report.finished = true;
            if shrink && self.config.shrink_after_compaction {
                self.shrink_to_fit();
            }
        }
        report.holes_after = self.store.space().hole_count();
        report.largest_hole_after = self.store.space().largest_hole();
        report.footprint_after = self.store.cap();
        report.elapsed = started.elapsed();
        report
    }

    /// Whether an incremental pass is under way.
    pub fn compaction_in_progress(&self) -> bool {
        self.pass_active
    }

    /// Gives memory back: shrinks the buffer to the used span rounded up to a page (but not
    /// below the initial capacity). Does nothing while a non-empty block is pinned, since the
    /// buffer may move. Returns whether the buffer shrank.
    pub fn shrink_to_fit(&mut self) -> bool {
        if self.store.buffer_pinned() {
            return false;
        }
        let target = self
            .store
            .space()
            .top()
            .next_multiple_of(PAGE)
            .max(self.config.initial_capacity);
        target < self.store.cap() && self.store.set_capacity(target).is_ok()
    }

    /// Grows the buffer so that `additional` more bytes fit above the used span.
    pub fn reserve(&mut self, additional: usize) -> Result<(), ArenaError> {
        let free = self.store.cap() - self.store.space().top();
        if additional <= free {
            return Ok(());
        }
        self.grow_for(additional, 1)
    }

    /// Runs policy work after a mutation: a defragmentation step under
    /// [`GrowthPolicy::Defrag`].
    fn after_change(&mut self) {
        if let GrowthPolicy::Defrag { threshold, step } = self.config.policy {
            if self.store.space().hole_bytes() >= PAGE && self.stats().fragmentation() > threshold {
                self.compact_with(step);
            }
        }
    }

    // ----- inspection -----

    /// A snapshot of the space accounting.
    pub fn stats(&self) -> ArenaStats {
        let (space, table) = (self.store.space(), self.store.table());
        let (live_blocks, live_bytes, pinned_blocks, moves, bytes_moved, passes) =
            self.store.counters();
        ArenaStats {
            live_blocks,
            live_bytes,
            used_span: space.top(),
            footprint: self.store.cap(),
            table_bytes: table.bytes(),
            holes: space.hole_count(),
            hole_bytes: space.hole_bytes(),
            largest_hole: space.largest_hole(),
            pinned_blocks,
            retired_slots: table.retired,
            total_blocks_moved: moves,
            total_bytes_moved: bytes_moved,
            passes_completed: passes,
        }
    }

    /// The live blocks in address order, as `(offset, len)`: a map of the buffer.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.store
            .space()
            .live()
            .into_iter()
            .map(|(off, len, _)| (off, len))
    }

    /// The holes in address order, as `(offset, len)`.
    pub fn holes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.store.space().holes().map(|r| (r.start, r.len()))
    }

    /// Walks the table and the space map and validates every invariant: blocks and holes tile
    /// the used span, holes are coalesced and indexed, every live slot agrees with the map,
    /// and the counters add up. Meant for tests; it is O(n). The error names the first broken
    /// invariant found.
    pub fn check(&self) -> Result<(), ArenaCorruption> {
        self.store.check()
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_counter(&mut self, h: impl Into<RawHandle>, counter: u32) {
        self.store.force_counter(h.into(), counter);
    }

    /// Test hook: makes this empty arena's handles look like `other`'s, as when more arenas
    /// are alive than there are ids.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn share_id_with<D: Compactor>(&mut self, other: &Arena<D>) {
        self.store.force_salt(other.store.table().salt);
    }
}

impl<C: Compactor> Drop for Arena<C> {
    fn drop(&mut self) {
        for index in 0..self.store.table().len() as u32 {
            let slot = self.store.table().slot(index);
            if slot.is_occupied() {
                if let Some(drop) = slot.drop {
                    // SAFETY: an occupied slot with drop glue holds a live value of the glue's
                    // type at this address; the arena is going away, so it is dropped once.
                    unsafe { drop(self.store.block_ptr(&slot)) };
                }
            }
        }
    }
}

impl<C: Compactor> fmt::Debug for Arena<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("compactor", &self.compactor.name())
            .field("stats", &self.stats())
            .finish()
    }
}
