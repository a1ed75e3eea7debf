//! The handle table: the master pointers.
//!
//! Each slot records where its block lives (offset into the buffer), how long it is, its
//! alignment, its type, its pin count and its generation. The fields `get` reads sit in a
//! 16-byte *hot* entry (generation, type index, offset), the rest in a *cold* entry, and each
//! type's `TypeId` and drop glue once in a per-arena type list, so a lookup touches 16 bytes of
//! table, like slotmap's slots. Invariants:
//! - a slot is occupied iff its generation is odd; handles always carry odd generations;
//! - an occupied slot's `type_index` names an entry of `types`;
//! - vacant slots with a non-zero generation are on the free list (linked through the hot
//!   entry's `offset` field); a slot whose generation would wrap is *retired*: its generation
//!   becomes 0, which no handle carries, and it never returns to the free list;
//! - `retired` counts the retired slots.

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

/// `len` rounded up to `align` (a power of two), or `None` on overflow.
#[inline]
pub(crate) fn reserved_checked(len: usize, align: usize) -> Option<usize> {
    crate::free_space::align_up(len, align)
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

/// One registered type.
#[derive(Clone, Copy)]
pub(crate) struct TypeEntry {
    pub(crate) id: TypeId,
    pub(crate) drop: Option<DropFn>,
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

pub(crate) struct Table {
    pub(crate) hot: Vec<Hot>,
    cold: Vec<Cold>,
    pub(crate) types: Vec<TypeEntry>,
    type_lookup: HashMap<TypeId, u32>,
    free_head: usize,
    pub(crate) retired: usize,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            hot: Vec::new(),
            cold: Vec::new(),
            types: Vec::new(),
            type_lookup: HashMap::new(),
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

    fn type_index(&mut self, id: TypeId, drop: Option<DropFn>) -> u32 {
        if let Some(&i) = self.type_lookup.get(&id) {
            return i;
        }
        let i = self.types.len() as u32;
        self.types.push(TypeEntry { id, drop });
        self.type_lookup.insert(id, i);
        i
    }

    /// Fills a vacant slot (reusing the free list first) and returns its index and generation.
    pub(crate) fn occupy(
        &mut self,
        offset: usize,
        len: usize,
        align: usize,
        type_id: TypeId,
        drop: Option<DropFn>,
    ) -> (u32, NonZeroU32) {
        let type_index = self.type_index(type_id, drop);
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
            let generation = hot.generation + 1;
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
            self.hot.push(Hot {
                generation: 1,
                type_index,
                offset,
            });
            self.cold.push(cold);
            (index as u32, NonZeroU32::MIN)
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

    /// Looks up an occupied slot by index and generation.
    #[inline]
    pub(crate) fn find(&self, index: u32, generation: NonZeroU32) -> Option<Slot> {
        let hot = self.hot.get(index as usize)?;
        (hot.generation == generation.get()).then(|| self.slot(index))
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
        if hot.generation == u32::MAX {
            // Reusing the slot would need generation u32::MAX + 1, which wraps to 0 and then to
            // 1: old handles could match again. Retire the slot instead.
            hot.generation = 0;
            self.retired += 1;
        } else {
            hot.generation += 1;
            hot.offset = self.free_head;
            self.free_head = i;
        }
    }

    /// Test hook: sets the generation a vacant slot will be reused with (minus one).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_generation(&mut self, index: u32, generation: u32) {
        self.hot[index as usize].generation = generation;
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
}
