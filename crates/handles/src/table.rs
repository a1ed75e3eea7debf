//! The handle table: the master pointers.
//!
//! Each slot records where its block lives (offset into the buffer), how long it is, its
//! alignment, its type, its pin count and its generation. The fields `get` reads sit in a
//! 16-byte *hot* entry (generation, type index, offset), the rest in a *cold* entry, and each
//! type's `TypeId` and drop glue once in a per-arena type list, so a lookup touches 16 bytes of
//! table, like slotmap's slots.
//!
//! A generation is a 32-bit key: the top [`TAG_BITS`] bits are the value type's process-wide
//! *type tag* (from a global registry, one tag per `TypeId`), the low [`COUNTER_BITS`] bits a
//! reuse counter. So one compare of the handle's key with the slot's proves both that the slot
//! was not reused and that it holds the handle's type, even for a handle from another arena
//! that shares this one's id. A handle's index is the slot's index XOR the table's `salt`, the
//! arena's id (see `arena_id.rs`), so that the handles of an arena with another id fall past
//! the end of the table.
//! Invariants:
//! - a slot is occupied iff its counter is odd; handles always carry odd counters;
//! - an occupied slot's key carries the tag of the type in `types[type_index]`;
//! - vacant slots with a non-zero key are on the free list (linked through the hot entry's
//!   `offset` field); a slot whose counter would overflow is *retired*: its key becomes 0, which
//!   no handle carries, and it never returns to the free list;
//! - `retired` counts the retired slots.

use crate::arena_id::ArenaId;
use crate::handle::RawHandle;
use crate::prefetch;
use core::any::TypeId;
use core::num::NonZeroU32;
use std::collections::HashMap;

/// Type-erased drop glue for a block holding a `T`.
pub(crate) type DropFn = unsafe fn(*mut u8);

/// # Safety
/// `p` must point to a valid, initialised `T` that is not used again.
pub(crate) unsafe fn drop_glue<T>(p: *mut u8) {
    // SAFETY: the caller promises p holds a valid T that is dropped only here.
    unsafe { core::ptr::drop_in_place(p.cast::<T>()) }
}

const NO_SLOT: usize = u32::MAX as usize;

/// Bits of a generation key that count reuses of a slot.
pub(crate) const COUNTER_BITS: u32 = 20;
/// Bits of a generation key that carry the type tag.
pub(crate) const TAG_BITS: u32 = 32 - COUNTER_BITS;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

/// The process-wide type tag of `id`, registering it on first use; `None` once all
/// `2^TAG_BITS` tags are taken.
fn global_tag(id: TypeId) -> Option<u32> {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    static TAGS: Mutex<BTreeMap<TypeId, u32>> = Mutex::new(BTreeMap::new());
    let mut tags = TAGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&tag) = tags.get(&id) {
        return Some(tag);
    }
    let tag = tags.len() as u32;
    if tag >= 1 << TAG_BITS {
        return None;
    }
    tags.insert(id, tag);
    Some(tag)
}

/// `len` rounded up to `align` (a power of two), or `None` on overflow.
///
/// A mask rather than `usize::checked_next_multiple_of`: this runs on every insert with an
/// alignment the compiler cannot see, and there `checked_next_multiple_of` compiles to a
/// division.
#[inline]
pub(crate) fn reserved_checked(len: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    len.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// The part of a slot that `get` reads.
#[derive(Clone, Copy)]
pub(crate) struct Hot {
    pub(crate) generation: u32,
    pub(crate) type_index: u32,
    /// The block's offset; for a vacant slot, the next free slot's index.
    pub(crate) offset: usize,
}

#[derive(Clone, Copy)]
struct Cold {
    len: usize,
    align: usize,
    pins: u32,
}

/// The addresses of a table's entries, used only for prefetch hints: never dereferenced, so
/// a stale or out-of-range address is harmless.
#[derive(Clone, Copy)]
pub(crate) struct EntryHints {
    hot: *const Hot,
    cold: *const Cold,
}

impl EntryHints {
    /// Hints that slot `index`'s entries will be used soon.
    #[inline(always)]
    pub(crate) fn prefetch(self, index: u32) {
        prefetch::line(self.hot.wrapping_add(index as usize).cast());
        prefetch::line(self.cold.wrapping_add(index as usize).cast());
    }
}

/// One registered type.
#[derive(Clone, Copy)]
pub(crate) struct TypeEntry {
    pub(crate) id: TypeId,
    pub(crate) drop: Option<DropFn>,
    /// The global type tag, already shifted into the key's tag bits.
    tag_bits: u32,
}

/// A copy of everything the table knows about one slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) pins: u32,
    pub(crate) offset: usize,
    pub(crate) type_id: TypeId,
    pub(crate) len: usize,
    pub(crate) align: usize,
    pub(crate) drop: Option<DropFn>,
}

impl Slot {
    /// Bytes the block occupies in the buffer: its length rounded up to its alignment (as Rust
    /// rounds a type's size), so that equal-alignment blocks pack without padding holes.
    #[inline]
    pub(crate) fn reserved(&self) -> usize {
        (self.len + self.align - 1) & !(self.align - 1)
    }

    #[inline]
    pub(crate) fn is_occupied(&self) -> bool {
        self.generation & 1 == 1
    }
}

/// `repr(C)` keeps the two fields `get` reads, `hot` and `salt`, next to each other.
#[repr(C)]
pub(crate) struct Table {
    pub(crate) hot: Vec<Hot>,
    /// XORed into a slot's index to make a handle's index, and back (see `arena_id.rs`).
    pub(crate) salt: u32,
    /// The arena id the salt comes from, held so that it returns to the pool when the table
    /// drops.
    _id: ArenaId,
    cold: Vec<Cold>,
    pub(crate) types: Vec<TypeEntry>,
    type_lookup: HashMap<TypeId, u32>,
    /// The last type registered or looked up, to skip the hash lookup on repeated inserts.
    last_type: Option<(TypeId, u32)>,
    free_head: usize,
    pub(crate) retired: usize,
}

impl Table {
    pub(crate) fn new() -> Table {
        let id = ArenaId::acquire();
        Table {
            hot: Vec::new(),
            salt: id.salt(),
            _id: id,
            cold: Vec::new(),
            types: Vec::new(),
            type_lookup: HashMap::new(),
            last_type: None,
            free_head: NO_SLOT,
            retired: 0,
        }
    }

    /// Number of slots (occupied, vacant and retired).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.hot.len()
    }

    /// Whether `occupy` can succeed: a free slot exists or the table can still grow.
    pub(crate) fn can_occupy(&self) -> bool {
        self.free_head != NO_SLOT || self.hot.len() < NO_SLOT
    }

    /// The arena's index for type `id`, if the arena has stored that type before.
    pub(crate) fn type_index(&mut self, id: TypeId) -> Option<u32> {
        if let Some((last, i)) = self.last_type {
            if last == id {
                return Some(i);
            }
        }
        let i = *self.type_lookup.get(&id)?;
        self.last_type = Some((id, i));
        Some(i)
    }

    /// The process-wide tag a new type `id` will carry, registering it globally on first use
    /// (the arena's own type list is left alone). `None` if the process has used up all type
    /// tags.
    pub(crate) fn type_tag(id: TypeId) -> Option<u32> {
        global_tag(id)
    }

    /// Adds type `id`, whose global tag is `tag`, to the arena's type list and returns its
    /// index. The type must not be in the list yet.
    pub(crate) fn add_type(&mut self, id: TypeId, drop: Option<DropFn>, tag: u32) -> u32 {
        debug_assert!(!self.type_lookup.contains_key(&id));
        let i = self.types.len() as u32;
        self.types.push(TypeEntry {
            id,
            drop,
            tag_bits: tag << COUNTER_BITS,
        });
        self.type_lookup.insert(id, i);
        self.last_type = Some((id, i));
        i
    }

    /// The arena's index for type `id`, registering it (and its global tag) on first use.
    /// `None` if the process has used up all type tags.
    #[cfg(test)]
    pub(crate) fn register(&mut self, id: TypeId, drop: Option<DropFn>) -> Option<u32> {
        if let Some(i) = self.type_index(id) {
            return Some(i);
        }
        let tag = global_tag(id)?;
        Some(self.add_type(id, drop, tag))
    }

    /// Fills a vacant slot (reusing the free list first) with a block of the registered type
    /// `type_index`, and returns its index and generation key.
    pub(crate) fn occupy(
        &mut self,
        offset: usize,
        len: usize,
        align: usize,
        type_index: u32,
    ) -> (u32, NonZeroU32) {
        let tag_bits = self.types[type_index as usize].tag_bits;
        let cold = Cold {
            len,
            align,
            pins: 0,
        };
        if self.free_head != NO_SLOT {
            let index = self.free_head;
            let hot = &mut self.hot[index];
            debug_assert!(hot.generation & 1 == 0 && hot.generation != 0);
            self.free_head = hot.offset;
            let generation = tag_bits | ((hot.generation & COUNTER_MASK) + 1);
            *hot = Hot {
                generation,
                type_index,
                offset,
            };
            self.cold[index] = cold;
            (index as u32, NonZeroU32::new(generation).expect("odd"))
        } else {
            let index = self.hot.len();
            assert!(index < NO_SLOT, "handle table full");
            let generation = tag_bits | 1;
            self.hot.push(Hot {
                generation,
                type_index,
                offset,
            });
            self.cold.push(cold);
            (index as u32, NonZeroU32::new(generation).expect("odd"))
        }
    }

    /// Everything about slot `index`.
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> Slot {
        let hot = self.hot[index as usize];
        let cold = self.cold[index as usize];
        let ty = self.types.get(hot.type_index as usize).copied();
        Slot {
            generation: hot.generation,
            pins: cold.pins,
            offset: hot.offset,
            type_id: ty.map_or(TypeId::of::<()>(), |t| t.id),
            len: cold.len,
            align: cold.align,
            drop: ty.and_then(|t| t.drop),
        }
    }

    /// The index a handle to slot `index` carries.
    #[inline]
    pub(crate) fn handle_index(&self, index: u32) -> u32 {
        index ^ self.salt
    }

    /// Looks up the occupied slot a handle names: its index and everything about it. A handle
    /// of another arena, or one whose generation no longer matches, finds nothing.
    #[inline]
    pub(crate) fn find(&self, h: RawHandle) -> Option<(u32, Slot)> {
        let index = h.index() ^ self.salt;
        let hot = self.hot.get(index as usize)?;
        (hot.generation == h.generation().get()).then(|| (index, self.slot(index)))
    }

    /// Where the entries lie now, for prefetch hints while the caller borrows the table
    /// mutably.
    pub(crate) fn entry_hints(&self) -> EntryHints {
        EntryHints {
            hot: self.hot.as_ptr(),
            cold: self.cold.as_ptr(),
        }
    }

    /// A slot's alignment and whether it is pinned, without the rest of [`Slot`].
    #[inline]
    pub(crate) fn align_and_pinned(&self, index: u32) -> (usize, bool) {
        let cold = &self.cold[index as usize];
        (cold.align, cold.pins > 0)
    }

    #[inline]
    pub(crate) fn set_offset(&mut self, index: u32, offset: usize) {
        self.hot[index as usize].offset = offset;
    }

    #[inline]
    pub(crate) fn set_len(&mut self, index: u32, len: usize) {
        self.cold[index as usize].len = len;
    }

    #[inline]
    pub(crate) fn set_pins(&mut self, index: u32, pins: u32) {
        self.cold[index as usize].pins = pins;
    }

    /// Vacates an occupied slot: bumps its generation so old handles are refused, and either
    /// puts it on the free list or retires it if another reuse would wrap the generation.
    pub(crate) fn vacate(&mut self, index: u32) {
        let i = index as usize;
        debug_assert!(self.hot[i].generation & 1 == 1);
        self.cold[i].pins = 0;
        let hot = &mut self.hot[i];
        if hot.generation & COUNTER_MASK == COUNTER_MASK {
            // Another reuse would overflow the counter into the tag bits (and, after a
            // wrap, old handles could match again). Retire the slot instead.
            hot.generation = 0;
            self.retired += 1;
        } else {
            hot.generation += 1;
            hot.offset = self.free_head;
            self.free_head = i;
        }
    }

    /// Test hook: sets the counter the vacant slot a handle named will be reused with (minus
    /// one).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_counter(&mut self, h: RawHandle, counter: u32) {
        let hot = &mut self.hot[(h.index() ^ self.salt) as usize];
        hot.generation = (hot.generation & !COUNTER_MASK) | (counter & COUNTER_MASK);
    }

    /// Test hook: makes this table's handles look like those of the arena with `salt`, as
    /// when more arenas are alive than there are ids. The table must be empty.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_salt(&mut self, salt: u32) {
        assert!(self.hot.is_empty());
        self.salt = salt;
    }

    pub(crate) fn bytes(&self) -> usize {
        self.hot.capacity() * core::mem::size_of::<Hot>()
            + self.cold.capacity() * core::mem::size_of::<Cold>()
            + self.types.capacity() * core::mem::size_of::<TypeEntry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_entry_is_sixteen_bytes() {
        assert_eq!(core::mem::size_of::<Hot>(), 16);
    }

    #[test]
    fn type_tags_are_global_and_distinct() {
        let a = global_tag(TypeId::of::<u32>()).unwrap();
        let b = global_tag(TypeId::of::<i32>()).unwrap();
        assert_ne!(a, b);
        assert_eq!(global_tag(TypeId::of::<u32>()), Some(a));
        let mut t1 = Table::new();
        let mut t2 = Table::new();
        t2.register(TypeId::of::<i32>(), None).unwrap();
        let i1 = t1.register(TypeId::of::<u32>(), None).unwrap();
        let i2 = t2.register(TypeId::of::<u32>(), None).unwrap();
        assert_ne!(i1, i2, "per-arena indices differ");
        let (_, g1) = t1.occupy(0, 4, 4, i1);
        let (_, g2) = t2.occupy(0, 4, 4, i2);
        assert_eq!(
            g1.get() >> COUNTER_BITS,
            g2.get() >> COUNTER_BITS,
            "tags agree"
        );
    }
}
