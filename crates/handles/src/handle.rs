//! Handles: the names an arena hands out instead of addresses.
//!
//! A handle is an index, the slot's index in the master-pointer table XOR its arena's salt
//! (the arena's id, see `arena_id.rs`), plus the generation key the slot had when the handle
//! was made: the value type's process-wide tag in the high bits and the slot's reuse counter in
//! the low bits. Invariants: a handle's counter is always odd (occupied slots carry odd
//! counters, vacant ones even), so the key is never zero and `Option<Handle<T>>` costs
//! nothing; and a `Handle<T>` is only ever made by the arena for a value of type `T`, so its key
//! carries `T`'s tag.

use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::num::NonZeroU32;

/// A typed name for a value in an [`Arena`](crate::Arena).
///
/// `Handle<T>` is 8 bytes and `Copy`; `Option<Handle<T>>` is 8 bytes too. It holds no address:
/// every access goes through the arena's table, which is why the arena may move the value. A
/// handle to a removed value is refused (`get` returns `None`) even after its slot is reused,
/// because the slot's generation has moved on. Byte blocks from
/// [`Arena::alloc_bytes`](crate::Arena::alloc_bytes) are named by `Handle<[u8]>`.
///
/// A handle also carries its arena's id, so every other arena refuses it, alive or dropped,
/// as long as:
/// - the two arenas have different ids. Each arena takes one of 4096 ids when it is made and
///   gives it back when it drops; arenas alive at the same time have different ids while at
///   most 4096 are alive, and the ids go round-robin, so an id given back returns only after
///   every other free id has been handed out;
/// - and neither arena's table has grown past 2^20 (1,048,576) slots: one slot per block alive
///   at the same time, plus retired slots.
///
/// Past those limits a handle of another arena is still refused unless that arena holds a
/// value of the same type in the same slot with the same reuse count. It can never read bytes
/// as another type: the key carries the value's type.
///
/// The `PhantomData<fn() -> T>` marker keeps the handle `Send + Sync` whatever `T` is: a handle
/// is only a number, the arena decides what may cross threads.
pub struct Handle<T: ?Sized> {
    index: u32,
    generation: NonZeroU32,
    _type: PhantomData<fn() -> T>,
}

/// An untyped handle: the slot index and generation without the value's type.
///
/// Used where the type does not matter ([`Arena::pin`](crate::Arena::pin),
/// [`Arena::unpin`](crate::Arena::unpin), [`Arena::contains`](crate::Arena::contains)).
/// A `RawHandle` cannot be turned back into a typed handle, so it can never be used to read a
/// value as the wrong type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawHandle {
    index: u32,
    generation: NonZeroU32,
}

impl<T: ?Sized> Handle<T> {
    #[inline]
    pub(crate) fn new(index: u32, generation: NonZeroU32) -> Self {
        Handle {
            index,
            generation,
            _type: PhantomData,
        }
    }

    /// The handle's index: its slot's index in the arena's table, XORed with the arena's id
    /// (bit-reversed into the top 12 bits). Handles to the same slot of one arena have the same
    /// index.
    #[inline]
    pub fn index(self) -> u32 {
        self.index
    }

    /// The generation key the slot had when this handle was made: type tag and reuse counter
    /// (the counter, in the low bits, is always odd).
    #[inline]
    pub fn generation(self) -> NonZeroU32 {
        self.generation
    }

    /// Forgets the type.
    #[inline]
    pub fn raw(self) -> RawHandle {
        RawHandle {
            index: self.index,
            generation: self.generation,
        }
    }
}

impl RawHandle {
    /// The handle's index: its slot's index XORed with the arena's id, as
    /// [`Handle::index`].
    #[inline]
    pub fn index(self) -> u32 {
        self.index
    }

    /// The generation key the slot had when this handle was made.
    #[inline]
    pub fn generation(self) -> NonZeroU32 {
        self.generation
    }
}

impl<T: ?Sized> From<Handle<T>> for RawHandle {
    #[inline]
    fn from(h: Handle<T>) -> RawHandle {
        h.raw()
    }
}

impl<T: ?Sized> Clone for Handle<T> {
    #[inline]
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Handle<T> {}

impl<T: ?Sized> PartialEq for Handle<T> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.generation == other.generation
    }
}

impl<T: ?Sized> Eq for Handle<T> {}

impl<T: ?Sized> Hash for Handle<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw().hash(state)
    }
}

impl<T: ?Sized> PartialOrd for Handle<T> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: ?Sized> Ord for Handle<T> {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.raw().cmp(&other.raw())
    }
}

impl<T: ?Sized> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}v{})", self.index, self.generation)
    }
}

impl fmt::Debug for RawHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawHandle({}v{})", self.index, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn handles_are_eight_bytes_and_niche_optimised() {
        assert_eq!(size_of::<Handle<u64>>(), 8);
        assert_eq!(size_of::<Option<Handle<u64>>>(), 8);
        assert_eq!(size_of::<Handle<[u8]>>(), 8);
        assert_eq!(size_of::<Option<RawHandle>>(), 8);
    }

    #[test]
    fn handles_are_send_and_sync_whatever_t_is() {
        fn assert_send_sync<X: Send + Sync>() {}
        assert_send_sync::<Handle<std::rc::Rc<u8>>>();
        assert_send_sync::<Handle<core::cell::Cell<u8>>>();
    }

    #[test]
    fn equality_uses_index_and_generation() {
        let g1 = NonZeroU32::new(1).unwrap();
        let g3 = NonZeroU32::new(3).unwrap();
        let a: Handle<u8> = Handle::new(4, g1);
        assert_eq!(a, Handle::new(4, g1));
        assert_ne!(a, Handle::new(4, g3));
        assert_ne!(a, Handle::new(5, g1));
        assert_eq!(a.raw().index(), 4);
        assert_eq!(format!("{a:?}"), "Handle(4v1)");
    }
}
