//! The raw malloc core as a replay subject: freespace-malloc's `Heap` in one fixed region, with
//! one placement policy, list order and coalescing mode.
//!
//! Invariant: `live` maps every live trace id to the pointer the heap returned for it and the
//! end offset of its block, each pointer is freed at most once, and `ends` holds exactly those
//! end offsets, so the footprint (the end of the highest live block) is its last key.

use std::alloc::Layout;
use std::collections::{BTreeSet, HashMap};
use std::ptr::NonNull;

use freespace_malloc::{
    AllocError, AnyPolicy, BlockState, Coalescing, Fit, FixedRegion, Heap, HeapConfig, ListOrder,
};

use super::region::Region;
use super::{holes_below_iter, Family, MapBlock, Subject, SubjectError, TraceProfile};

/// A `Heap<FixedRegion, AnyPolicy>` driven by a trace.
pub struct CoreSubject {
    // Field order matters: the heap is dropped before the region it lives in.
    heap: Option<Heap<FixedRegion, AnyPolicy>>,
    region: Option<Region>,
    label: String,
    /// Pointer, block end offset, and the alignment the trace asked for.
    live: HashMap<u64, (NonNull<u8>, usize, usize)>,
    ends: BTreeSet<usize>,
    out_of_room: bool,
}

impl std::fmt::Debug for CoreSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreSubject")
            .field("label", &self.label)
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

/// The row label of a core configuration: `first-fit addr`, `first-fit addr no-coalesce`,
/// `segregated`, ...
pub fn core_label(fit: Fit, order: ListOrder, coalescing: Coalescing) -> String {
    let mut label = if fit == Fit::Segregated {
        fit_name(fit).to_string()
    } else {
        format!("{} {}", fit_name(fit), order_name(order))
    };
    match coalescing {
        Coalescing::Immediate => {}
        Coalescing::Deferred => label.push_str(" deferred"),
        Coalescing::Never => label.push_str(" no-coalesce"),
    }
    label
}

/// Whether a larger region could have served a request that failed with `e`.
pub(super) fn room_would_help(e: AllocError) -> bool {
    matches!(e, AllocError::OutOfMemory | AllocError::TooLarge)
}

/// The row label of a fit: `first-fit`, `segregated`, ...
pub fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::First => "first-fit",
        Fit::Next => "next-fit",
        Fit::Best => "best-fit",
        Fit::Worst => "worst-fit",
        Fit::Segregated => "segregated",
    }
}

/// The row label of a list order, after `malloc.py`'s names.
pub fn order_name(order: ListOrder) -> &'static str {
    match order {
        ListOrder::AddressOrdered => "addr",
        ListOrder::Lifo => "lifo",
        ListOrder::Fifo => "fifo",
        ListOrder::SizeAscending => "size+",
        ListOrder::SizeDescending => "size-",
    }
}

impl CoreSubject {
    /// A heap with `fit` over a list in `order` (ignored by segregated fit), coalescing as
    /// `coalescing` says.
    ///
    /// The region is sized for `profile` (see [`Region::for_profile`]).
    pub fn new(fit: Fit, order: ListOrder, coalescing: Coalescing, profile: &TraceProfile) -> Self {
        let label = core_label(fit, order, coalescing);
        let region = Region::zeroed(Region::for_profile(profile));
        let heap = region.as_ref().map(|r| {
            // SAFETY: the region is ours, zeroed, and outlives the heap (the heap field drops
            // first); nothing but this heap touches it.
            unsafe {
                Heap::in_region(
                    r.ptr,
                    r.size(),
                    AnyPolicy::new(fit, order),
                    HeapConfig::new().with_coalescing(coalescing),
                )
            }
        });
        CoreSubject {
            heap,
            region,
            label,
            live: HashMap::new(),
            ends: BTreeSet::new(),
            out_of_room: false,
        }
    }

    /// The heap, for tests that compare the table with its statistics.
    pub fn heap(&self) -> Option<&Heap<FixedRegion, AnyPolicy>> {
        self.heap.as_ref()
    }

    fn heap_mut(&mut self) -> Result<&mut Heap<FixedRegion, AnyPolicy>, SubjectError> {
        self.heap
            .as_mut()
            .ok_or_else(|| SubjectError("no memory for the heap's region".to_string()))
    }

    fn base(&self) -> usize {
        self.region.as_ref().map_or(0, |r| r.ptr.as_ptr() as usize)
    }

    /// End offset of the block whose payload is at `ptr`.
    fn end_of(&self, ptr: NonNull<u8>) -> usize {
        let usable = self.heap.as_ref().map_or(0, |h| {
            // SAFETY: `ptr` is a live allocation of this heap.
            unsafe { h.usable_size(ptr) }.unwrap_or(0)
        });
        ptr.as_ptr() as usize + usable - self.base()
    }
}

impl Subject for CoreSubject {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn family(&self) -> Family {
        Family::Core
    }

    fn alloc(&mut self, id: u64, size: usize, align: usize) -> Result<(), SubjectError> {
        let layout = Layout::from_size_align(size, align)
            .map_err(|e| SubjectError(format!("bad layout: {e}")))?;
        let ptr = match self.heap_mut()?.malloc(layout) {
            Ok(ptr) => ptr,
            Err(e) => {
                self.out_of_room = room_would_help(e);
                return Err(SubjectError(format!(
                    "allocation of {size} bytes failed: {e}"
                )));
            }
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
            Err(e) => {
                self.out_of_room = room_would_help(e);
                return Err(SubjectError(format!("realloc to {size} bytes failed: {e}")));
            }
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
        let base = self.base();
        let blocks = heap.blocks().map(|b| MapBlock {
            offset: b.addr - base,
            len: b.size,
            used: b.state == BlockState::Used,
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
        let (base, limit) = (self.base(), self.footprint());
        heap.blocks()
            .map(|b| MapBlock {
                offset: b.addr - base,
                len: b.size,
                used: b.state == BlockState::Used,
            })
            .take_while(|b| b.offset < limit)
            .collect()
    }
}
