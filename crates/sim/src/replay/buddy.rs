//! The buddy allocator as a replay subject: freespace-malloc's `BuddyHeap` over one region
//! the replay owns.
//!
//! Invariant: `live` maps every live trace id to the pointer the heap returned for it, and
//! `ends` holds exactly the end offsets of those blocks, so the footprint (the end of the
//! highest live block) is always its last key.

use std::alloc::Layout;
use std::collections::{BTreeSet, HashMap};
use std::ptr::NonNull;

use freespace_malloc::BuddyHeap;

use super::core_heap::room_would_help;
use super::region::Region;
use super::{holes_below_iter, Family, MapBlock, Subject, SubjectError, TraceProfile};

/// `BuddyHeap` driven by a trace.
pub struct BuddySubject {
    // Field order matters: the heap is dropped before the region it lives in. The region is
    // only held, never read: it owns the memory the heap's pointers point into.
    heap: Option<BuddyHeap>,
    _region: Option<Region>,
    /// Pointer, block end offset, and the alignment the trace asked for.
    live: HashMap<u64, (NonNull<u8>, usize, usize)>,
    ends: BTreeSet<usize>,
    out_of_room: bool,
}

impl std::fmt::Debug for BuddySubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuddySubject")
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl BuddySubject {
    /// A buddy heap with room for the trace (see [`Region::for_profile`]).
    pub fn new(profile: &TraceProfile) -> Self {
        let region = Region::zeroed(Region::for_profile(profile));
        let heap = region.as_ref().map(|r| {
            // SAFETY: the region is ours, zeroed (initialised), and lives as long as the
            // subject, which drops the heap first and never hands the region to anything else.
            unsafe { BuddyHeap::new(r.ptr, r.layout.size()) }
        });
        BuddySubject {
            heap,
            _region: region,
            live: HashMap::new(),
            ends: BTreeSet::new(),
            out_of_room: false,
        }
    }

    fn heap_mut(&mut self) -> Result<&mut BuddyHeap, SubjectError> {
        self.heap
            .as_mut()
            .ok_or_else(|| SubjectError("no memory for the buddy heap's region".to_string()))
    }

    /// The heap, for tests that compare the table with its statistics.
    pub fn heap(&self) -> Option<&BuddyHeap> {
        self.heap.as_ref()
    }

    fn end_of(heap: &BuddyHeap, ptr: NonNull<u8>) -> usize {
        let usable = heap.usable_size(ptr).unwrap_or(0);
        ptr.as_ptr() as usize + usable - heap.base()
    }
}

impl Subject for BuddySubject {
    fn name(&self) -> String {
        "buddy".to_string()
    }

    fn family(&self) -> Family {
        Family::Buddy
    }

    fn alloc(&mut self, id: u64, size: usize, align: usize) -> Result<(), SubjectError> {
        let layout = Layout::from_size_align(size, align)
            .map_err(|e| SubjectError(format!("bad layout: {e}")))?;
        let heap = self.heap_mut()?;
        let ptr = match heap.malloc(layout) {
            Ok(ptr) => ptr,
            Err(e) => {
                self.out_of_room = room_would_help(e);
                return Err(SubjectError(format!(
                    "allocation of {size} bytes failed: {e}"
                )));
            }
        };
        let heap = self.heap_mut()?;
        let end = Self::end_of(heap, ptr);
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
        // SAFETY: `ptr` came from this heap's malloc/realloc and is freed once: the id map
        // hands each pointer out exactly once.
        unsafe { heap.free(ptr) }.map_err(|e| SubjectError(format!("free refused: {e:?}")))
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
        // SAFETY: `ptr` is live in this heap; on success the old pointer is replaced in the map
        // and never used again, on failure it stays valid.
        let new = match unsafe { heap.realloc(ptr, layout) } {
            Ok(new) => new,
            Err(e) => {
                self.out_of_room = room_would_help(e);
                return Err(SubjectError(format!("realloc to {size} bytes failed: {e}")));
            }
        };
        let heap = self.heap_mut()?;
        let new_end = Self::end_of(heap, new);
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
        let blocks = heap.blocks().map(|b| MapBlock {
            offset: b.addr - heap.base(),
            len: b.size,
            used: !b.free,
        });
        holes_below_iter(blocks, self.footprint())
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
        heap.blocks()
            .map(|b| MapBlock {
                offset: b.addr - heap.base(),
                len: b.size,
                used: !b.free,
            })
            .take_while(|b| b.offset < limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buddy_subject_tracks_the_highest_live_block() {
        let profile = TraceProfile {
            room: super::super::DEFAULT_ROOM,
            peak_live: 4096,
            largest: 1000,
            max_align: 8,
        };
        let mut s = BuddySubject::new(&profile);
        s.alloc(1, 100, 8).unwrap();
        let one = s.footprint();
        assert_eq!(one, 128, "100 bytes and a 16-byte header round up to 128");
        s.alloc(2, 1000, 8).unwrap();
        assert!(s.footprint() > one);
        s.free(2).unwrap();
        assert_eq!(s.footprint(), one);
        s.realloc(1, 300).unwrap();
        assert!(s.footprint() >= 300);
        let map = s.heap_map();
        assert!(map.iter().any(|b| b.used));
        assert!(map
            .windows(2)
            .all(|w| w[0].offset + w[0].len == w[1].offset));
    }
}
