//! The replay side of a heap that hands out addresses (any [`RawHeap`] over memory: the core
//! heap and the buddy heap): the map from trace ids to pointers, the footprint, and the
//! statistics, written once for both.
//!
//! Invariant: `live` maps every live trace id to the pointer the heap returned for it, the end
//! offset of its block and the alignment the trace asked for; each pointer is freed at most
//! once; and `ends` holds exactly those end offsets, so the footprint (the end of the highest
//! live block) is always its last key.

use std::alloc::Layout;
use std::collections::{BTreeSet, HashMap};
use std::ptr::NonNull;

use freespace_malloc::{AllocError, RawHeap};

use super::region::Region;
use super::{holes_below_iter, Family, MapBlock, Subject, SubjectError, TraceProfile};

/// A heap of type `H` in one fixed region, driven by a trace.
pub struct AddressSubject<H> {
    // Field order matters: the heap is dropped before the region it lives in. The region is
    // only held, never read through: it owns the memory the heap's pointers point into.
    heap: Option<H>,
    region: Option<Region>,
    name: String,
    family: Family,
    /// Pointer, block end offset, and the alignment the trace asked for.
    live: HashMap<u64, (NonNull<u8>, usize, usize)>,
    ends: BTreeSet<usize>,
    out_of_room: bool,
}

impl<H> std::fmt::Debug for AddressSubject<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSubject")
            .field("name", &self.name)
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

/// Whether a larger region could have served a request that failed with `e`.
fn room_would_help(e: AllocError) -> bool {
    matches!(e, AllocError::OutOfMemory | AllocError::TooLarge)
}

impl<H: RawHeap<Ptr = NonNull<u8>>> AddressSubject<H> {
    /// A subject whose heap `place` builds over a zeroed region with room for the trace (see
    /// [`Region::for_profile`]). The subject keeps the region until after the heap has
    /// dropped, and hands it to nothing else.
    pub(super) fn in_region(
        name: String,
        family: Family,
        profile: &TraceProfile,
        place: impl FnOnce(&Region) -> H,
    ) -> Self {
        let region = Region::zeroed(Region::for_profile(profile));
        AddressSubject {
            heap: region.as_ref().map(place),
            region,
            name,
            family,
            live: HashMap::new(),
            ends: BTreeSet::new(),
            out_of_room: false,
        }
    }

    /// The heap, for tests that compare the table with its statistics.
    pub fn heap(&self) -> Option<&H> {
        self.heap.as_ref()
    }

    fn heap_mut(&mut self) -> Result<&mut H, SubjectError> {
        self.heap
            .as_mut()
            .ok_or_else(|| SubjectError(format!("no memory for the {} heap's region", self.name)))
    }

    /// Address of the region's first byte, which block offsets count from.
    fn base(&self) -> usize {
        self.region.as_ref().map_or(0, |r| r.ptr.as_ptr() as usize)
    }

    /// End offset of the live block whose payload is at `ptr`.
    fn end_of(&self, ptr: NonNull<u8>) -> usize {
        let usable = self.heap.as_ref().map_or(0, |h| {
            // SAFETY: `ptr` is a live allocation of this heap, whose region nothing else
            // touches.
            unsafe { h.usable_size(ptr) }.unwrap_or(0)
        });
        ptr.as_ptr() as usize + usable - self.base()
    }

    /// The heap's blocks in address order, each as an offset from the region's first byte.
    fn map_blocks<'h>(&self, heap: &'h H) -> impl Iterator<Item = MapBlock> + 'h {
        let base = self.base();
        heap.blocks().map(move |b| MapBlock {
            offset: b.addr - base,
            len: b.size,
            used: b.is_used(),
        })
    }

    /// Records that a request failed with `e`, and says so as an error.
    fn failed(&mut self, what: String, e: AllocError) -> SubjectError {
        self.out_of_room = room_would_help(e);
        SubjectError(format!("{what} failed: {e}"))
    }
}

impl<H: RawHeap<Ptr = NonNull<u8>>> Subject for AddressSubject<H> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn family(&self) -> Family {
        self.family
    }

    fn alloc(&mut self, id: u64, size: usize, align: usize) -> Result<(), SubjectError> {
        let layout = Layout::from_size_align(size, align)
            .map_err(|e| SubjectError(format!("bad layout: {e}")))?;
        let ptr = match self.heap_mut()?.malloc(layout) {
            Ok(ptr) => ptr,
            Err(e) => return Err(self.failed(format!("allocation of {size} bytes"), e)),
        };
        let end = self.end_of(ptr);
        self.live.insert(id, (ptr, end, align));
        self.ends.insert(end);
        Ok(())
    }

    fn free(&mut self, id: u64) -> Result<(), SubjectError> {
        let (ptr, end, _) = self
            .live
            .remove(&id)
            .ok_or_else(|| SubjectError(format!("id {id} is not live")))?;
        self.ends.remove(&end);
        let heap = self.heap_mut()?;
        // SAFETY: `ptr` came from this heap and leaves the map here, so it is freed once.
        unsafe { heap.free(ptr) }.map_err(|e| SubjectError(format!("free refused: {e}")))
    }

    fn realloc(&mut self, id: u64, size: usize) -> Result<(), SubjectError> {
        let (ptr, end, align) = *self
            .live
            .get(&id)
            .ok_or_else(|| SubjectError(format!("id {id} is not live")))?;
        // A resized block keeps the alignment it was allocated with, as in the arena.
        let layout = Layout::from_size_align(size, align)
            .map_err(|e| SubjectError(format!("bad layout: {e}")))?;
        let heap = self.heap_mut()?;
        // SAFETY: `ptr` is live in this heap; on success it is replaced in the map by the
        // pointer returned and never used again, on failure it stays valid.
        let new = match unsafe { heap.realloc(ptr, layout) } {
            Ok(new) => new,
            Err(e) => return Err(self.failed(format!("realloc to {size} bytes"), e)),
        };
        let new_end = self.end_of(new);
        self.ends.remove(&end);
        self.ends.insert(new_end);
        self.live.insert(id, (new, new_end, align));
        Ok(())
    }

    fn footprint(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    fn external(&self) -> f64 {
        let Some(heap) = self.heap.as_ref() else {
            return 0.0;
        };
        holes_below_iter(self.map_blocks(heap), self.footprint())
    }

    fn internal(&self) -> f64 {
        self.heap
            .as_ref()
            .map_or(0.0, |h| h.stats().internal_fragmentation())
    }

    fn search_per_alloc(&self) -> Option<f64> {
        self.heap.as_ref().map(|h| h.stats().search_per_alloc())
    }

    fn bytes_moved(&self) -> Option<u64> {
        None
    }

    fn ran_out_of_room(&self) -> bool {
        self.out_of_room
    }

    fn heap_map(&self) -> Vec<MapBlock> {
        let Some(heap) = self.heap.as_ref() else {
            return Vec::new();
        };
        let limit = self.footprint();
        self.map_blocks(heap)
            .take_while(|b| b.offset < limit)
            .collect()
    }
}
