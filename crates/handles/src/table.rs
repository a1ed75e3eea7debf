//! The handle table: the master pointers.
//!
//! Each slot records where its block lives (offset into the buffer), how long it is, its
//! alignment, its type, how to drop it, its pin count and its generation. Invariants:
//! - a slot is occupied iff its generation is odd; handles always carry odd generations;
//! - vacant slots with a non-zero generation are on the free list (linked through
//!   `next_free`); a slot whose generation would wrap is *retired*: its generation becomes 0,
//!   which no handle carries, and it never returns to the free list;
//! - `retired` counts the retired slots.

use core::any::TypeId;
use core::num::NonZeroU32;

/// Type-erased drop glue for a block holding a `T`.
pub(crate) type DropFn = unsafe fn(*mut u8);

/// # Safety
/// `p` must point to a valid, initialised `T` that is not used again.
pub(crate) unsafe fn drop_glue<T>(p: *mut u8) {
    // SAFETY: the caller promises p holds a valid T that is dropped only here.
    unsafe { core::ptr::drop_in_place(p.cast::<T>()) }
}

const NO_SLOT: u32 = u32::MAX;

/// `len` rounded up to `align` (a power of two), or `None` on overflow.
#[inline]
pub(crate) fn reserved_checked(len: usize, align: usize) -> Option<usize> {
    crate::free_space::align_up(len, align)
}

#[inline]
fn reserved(len: usize, align: usize) -> usize {
    (len + align - 1) & !(align - 1)
}

/// One master pointer. The fields `get` reads (generation, type, offset) come first.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) pins: u32,
    pub(crate) offset: usize,
    pub(crate) type_id: TypeId,
    pub(crate) len: usize,
    pub(crate) align: usize,
    pub(crate) drop: Option<DropFn>,
    pub(crate) next_free: u32,
}

impl Slot {
    /// Bytes the block occupies in the buffer: its length rounded up to its alignment (as Rust
    /// rounds a type's size), so that equal-alignment blocks pack without padding holes.
    #[inline]
    pub(crate) fn reserved(&self) -> usize {
        reserved(self.len, self.align)
    }

    #[inline]
    pub(crate) fn is_occupied(&self) -> bool {
        self.generation & 1 == 1
    }
}

pub(crate) struct Table {
    pub(crate) slots: Vec<Slot>,
    free_head: u32,
    pub(crate) retired: usize,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            slots: Vec::new(),
            free_head: NO_SLOT,
            retired: 0,
        }
    }

    /// Whether `occupy` can succeed: a free slot exists or the table can still grow.
    pub(crate) fn can_occupy(&self) -> bool {
        self.free_head != NO_SLOT || self.slots.len() < NO_SLOT as usize
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
        let fresh = Slot {
            generation: 1,
            pins: 0,
            offset,
            type_id,
            len,
            align,
            drop,
            next_free: NO_SLOT,
        };
        if self.free_head != NO_SLOT {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            debug_assert!(!slot.is_occupied() && slot.generation != 0);
            self.free_head = slot.next_free;
            let generation = slot.generation + 1;
            *slot = Slot {
                generation,
                ..fresh
            };
            (index, NonZeroU32::new(generation).expect("odd"))
        } else {
            let index = self.slots.len() as u32;
            assert!(index != NO_SLOT, "handle table full");
            self.slots.push(fresh);
            (index, NonZeroU32::MIN)
        }
    }

    /// Looks up an occupied slot by index and generation.
    #[inline]
    pub(crate) fn find(&self, index: u32, generation: NonZeroU32) -> Option<&Slot> {
        let slot = self.slots.get(index as usize)?;
        (slot.generation == generation.get()).then_some(slot)
    }

    #[inline]
    pub(crate) fn find_mut(&mut self, index: u32, generation: NonZeroU32) -> Option<&mut Slot> {
        let slot = self.slots.get_mut(index as usize)?;
        (slot.generation == generation.get()).then_some(slot)
    }

    /// Vacates an occupied slot: bumps its generation so old handles are refused, and either
    /// puts it on the free list or retires it if another reuse would wrap the generation.
    pub(crate) fn vacate(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.is_occupied());
        slot.drop = None;
        slot.pins = 0;
        if slot.generation == u32::MAX {
            // Reusing the slot would need generation u32::MAX + 1, which wraps to 0 and then to
            // 1: old handles could match again. Retire the slot instead.
            slot.generation = 0;
            self.retired += 1;
        } else {
            slot.generation += 1;
            slot.next_free = self.free_head;
            self.free_head = index;
        }
    }

    /// Test hook: sets the generation a vacant slot will be reused with (minus one).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_generation(&mut self, index: u32, generation: u32) {
        self.slots[index as usize].generation = generation;
    }

    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot>()
    }
}
