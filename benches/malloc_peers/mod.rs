//! The allocators that `benches/malloc.rs`, `benches/malloc_ratios.rs` and
//! `benches/heap_efficiency.rs` compare, driven through one small trait, and the seeded action
//! scripts they all replay.
//!
//! Invariant: every contender runs over the same region size, and every contender of one
//! benchmark replays the same script, action for action. A script names allocations by slot, so
//! a failed allocation leaves its slot empty and later actions on it are skipped (and counted)
//! without shifting any other action.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::alloc::Layout;
use std::ptr::NonNull;

use freespace_malloc::{
    BestFit, BuddyHeap, FirstFit, FixedRegion, Heap, HeapConfig, ListOrder, NextFit, Policy,
    RawHeap, SegregatedFit, WorstFit,
};

/// What the scripts need of an allocator under test, over a region it was built on.
///
/// Every freespace heap is one through [`RawHeap`], which this reaches with no wrapper. The
/// trait remains for the peers: talc, rlsf and linked_list_allocator take the layout back when
/// a block is freed or resized, which `RawHeap::free` does not pass (a freespace heap reads the
/// size from the block header), and they report failure as `None`/`Err` in their own ways.
pub trait LayoutHeap {
    /// Allocates, or `None` when out of memory.
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    /// Frees a block from `alloc`/`realloc` of this heap with the layout it was given.
    ///
    /// # Safety
    /// `ptr` is live in this heap and was allocated with `layout`.
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout);
    /// Resizes a block, keeping its alignment; `None` leaves the old block live.
    ///
    /// # Safety
    /// As [`dealloc`](LayoutHeap::dealloc).
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>>;
}

/// A freespace heap needs no layout back: it finds the block's size in its header.
impl<H: RawHeap<Ptr = NonNull<u8>>> LayoutHeap for H {
    #[inline]
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.malloc(layout).ok()
    }
    #[inline]
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the caller passes a live block of this heap.
        let r = unsafe { self.free(ptr) };
        debug_assert!(r.is_ok());
    }
    #[inline]
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let nl = Layout::from_size_align(new_size, layout.align()).ok()?;
        // SAFETY: the caller passes a live block of this heap.
        unsafe { RawHeap::realloc(self, ptr, nl) }.ok()
    }
}

/// A page-aligned buffer that contenders are built on, one after another.
pub struct Region {
    buf: Vec<u8>,
    offset: usize,
    len: usize,
}

impl Region {
    /// A region of `len` bytes whose first byte is 4096-aligned. Every byte is written once
    /// here, so no contender pays for first-touch page faults inside the timed code.
    pub fn new(len: usize) -> Self {
        let mut buf = vec![0u8; len + 4096];
        // `vec!` of zeroes maps untouched pages; write them so that they are really there.
        buf.iter_mut().for_each(|b| *b = 0xA5);
        let offset = buf.as_ptr().align_offset(4096);
        Region { buf, offset, len }
    }

    /// Start and length of the region.
    pub fn span(&mut self) -> (NonNull<u8>, usize) {
        let p = self.buf[self.offset..].as_mut_ptr();
        (
            NonNull::new(p).expect("Vec pointers are non-null"),
            self.len,
        )
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// A freespace `Heap` with `policy` over `region`, immediate coalescing (the default
/// configuration; a fixed region never trims).
pub fn freespace<P: Policy>(region: &mut Region, policy: P) -> Heap<FixedRegion, P> {
    let (p, len) = region.span();
    // SAFETY: the region is valid and unused by anything else while this heap lives (callers
    // build one heap at a time on it).
    unsafe { Heap::in_region(p, len, policy, HeapConfig::new()) }
}

/// `SegregatedFit`, the default policy.
pub fn segregated(region: &mut Region) -> Heap<FixedRegion, SegregatedFit> {
    freespace(region, SegregatedFit::new())
}
/// First fit over an address-ordered list.
pub fn first_fit(region: &mut Region) -> Heap<FixedRegion, FirstFit> {
    freespace(region, FirstFit::new(ListOrder::AddressOrdered))
}
/// First fit over a LIFO list.
pub fn first_fit_lifo(region: &mut Region) -> Heap<FixedRegion, FirstFit> {
    freespace(region, FirstFit::new(ListOrder::Lifo))
}
/// Next fit over an address-ordered list.
pub fn next_fit(region: &mut Region) -> Heap<FixedRegion, NextFit> {
    freespace(region, NextFit::new(ListOrder::AddressOrdered))
}
/// Best fit over an address-ordered list.
pub fn best_fit(region: &mut Region) -> Heap<FixedRegion, BestFit> {
    freespace(region, BestFit::new(ListOrder::AddressOrdered))
}
/// Worst fit over an address-ordered list.
pub fn worst_fit(region: &mut Region) -> Heap<FixedRegion, WorstFit> {
    freespace(region, WorstFit::new(ListOrder::AddressOrdered))
}

/// `freespace_malloc::BuddyHeap` over `region`; the previous heap on it must be gone.
pub fn buddy(region: &mut Region) -> BuddyHeap {
    let (p, len) = region.span();
    // SAFETY: the region is ours for as long as the heap lives (callers build one heap at a
    // time on it), initialised, and outlives the heap.
    unsafe { BuddyHeap::new(p, len) }
}

/// talc 4: `Talc<ErrOnOom>` that has claimed the region as one `Span`.
pub struct Talc(talc::Talc<talc::ErrOnOom>);

impl Talc {
    /// Builds a fresh talc over `region`.
    pub fn new(region: &mut Region) -> Self {
        let (p, len) = region.span();
        let mut t = talc::Talc::new(talc::ErrOnOom);
        // SAFETY: the region is valid, unused by anything else while this contender lives.
        unsafe { t.claim(talc::Span::from_base_size(p.as_ptr(), len)) }
            .expect("region large enough");
        Talc(t)
    }
}

impl LayoutHeap for Talc {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: every layout the scripts make has a non-zero size.
        unsafe { self.0.malloc(layout) }.ok()
    }
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a live block of this talc with its layout.
        unsafe { self.0.free(ptr, layout) }
    }
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: the caller passes a live block with its layout; grow/shrink as talc's own
        // `GlobalAlloc::realloc` does.
        unsafe {
            if new_size >= layout.size() {
                self.0.grow(ptr, layout, new_size).ok()
            } else {
                self.0.shrink(ptr, layout, new_size);
                Some(ptr)
            }
        }
    }
}

/// rlsf's `Tlsf`, with the same bitmap sizes as talc's benchmark uses for it.
pub struct Rlsf(
    rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize - 12 }, { usize::BITS as usize }>,
);

impl Rlsf {
    /// Builds a fresh TLSF over `region`.
    pub fn new(region: &mut Region) -> Self {
        let (p, len) = region.span();
        let mut t = rlsf::Tlsf::new();
        let block = NonNull::slice_from_raw_parts(p, len);
        // SAFETY: the region is valid and unused by anything else while this contender lives.
        unsafe { t.insert_free_block_ptr(block) }.expect("region large enough");
        Rlsf(t)
    }
}

impl LayoutHeap for Rlsf {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.0.allocate(layout)
    }
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a live block of this TLSF with its alignment.
        unsafe { self.0.deallocate(ptr, layout.align()) }
    }
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let nl = Layout::from_size_align(new_size, layout.align()).ok()?;
        // SAFETY: the caller passes a live block allocated with the same alignment.
        unsafe { self.0.reallocate(ptr, nl) }
    }
}

/// linked_list_allocator's `Heap` (first fit over an address-ordered list). It has no realloc
/// of its own, so realloc is allocate, copy, free, as `GlobalAlloc`'s default does.
pub struct LinkedList(linked_list_allocator::Heap);

impl LinkedList {
    /// Builds a fresh heap over `region`.
    pub fn new(region: &mut Region) -> Self {
        let (p, len) = region.span();
        // SAFETY: the region is valid and unused by anything else while this contender lives.
        LinkedList(unsafe { linked_list_allocator::Heap::new(p.as_ptr(), len) })
    }
}

impl LayoutHeap for LinkedList {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.0.allocate_first_fit(layout).ok()
    }
    unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a live block of this heap with its layout.
        unsafe { self.0.deallocate(ptr, layout) }
    }
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let nl = Layout::from_size_align(new_size, layout.align()).ok()?;
        let new = self.0.allocate_first_fit(nl).ok()?;
        // SAFETY: both blocks are live and distinct; the old one holds `layout.size()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size));
            self.0.deallocate(ptr, layout);
        }
        Some(new)
    }
}

/// The shared seeded generator, so that every contender sees the same numbers from the same seed.
pub use freespace_testkit::Rng;

/// talc's alignment distribution, drawn from [`Rng`].
trait TalcAlign {
    /// `align_of::<usize>() << (trailing zeros of a random u16) / 2`, so 8 half the time, 16 a
    /// quarter, ... up to 2048.
    fn align(&mut self) -> usize;
}

impl TalcAlign for Rng {
    fn align(&mut self) -> usize {
        std::mem::align_of::<usize>() << ((self.next() as u16).trailing_zeros() / 2)
    }
}

/// One step of a random-actions script. Slots name allocations.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Allocate `layout` into `slot`.
    Alloc { slot: u32, layout: Layout },
    /// Free the block in `slot`.
    Free { slot: u32 },
    /// Resize the block in `slot` to `new_size` bytes.
    Realloc { slot: u32, new_size: usize },
}

/// A script of random actions in the style of talc's `random_actions` benchmark: 20% realloc
/// (to 1..10 x max size), 40% free, 40% allocate (1..max size bytes, talc's alignments), and
/// always allocate while fewer than 300 blocks are live.
pub struct Script {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// Number of slots the actions use.
    pub slots: usize,
}

/// Live allocations below which a script always allocates.
pub const TARGET_MIN_ALLOCATIONS: usize = 300;
/// Realloc sizes go up to this many times the maximum allocation size.
pub const MAX_REALLOC_SIZE_MULTI: usize = 10;

impl Script {
    /// `len` actions from `seed` with allocation sizes in `1..max_size`.
    pub fn random_actions(seed: u64, len: usize, max_size: usize) -> Self {
        let mut rng = Rng(seed);
        let mut live: Vec<u32> = Vec::new();
        let mut spare: Vec<u32> = Vec::new();
        let mut slots = 0u32;
        let mut actions = Vec::with_capacity(len);
        while actions.len() < len {
            let action = rng.range(0, 5);
            if action == 4 {
                if !live.is_empty() {
                    let slot = live[rng.range(0, live.len())];
                    let new_size = rng.range(1, max_size * MAX_REALLOC_SIZE_MULTI);
                    actions.push(Action::Realloc { slot, new_size });
                }
            } else if action < 2 || live.len() < TARGET_MIN_ALLOCATIONS {
                let size = rng.range(1, max_size);
                let layout = Layout::from_size_align(size, rng.align()).expect("valid layout");
                let slot = spare.pop().unwrap_or_else(|| {
                    slots += 1;
                    slots - 1
                });
                live.push(slot);
                actions.push(Action::Alloc { slot, layout });
            } else {
                let i = rng.range(0, live.len());
                let slot = live.swap_remove(i);
                spare.push(slot);
                actions.push(Action::Free { slot });
            }
        }
        Script {
            actions,
            slots: slots as usize,
        }
    }
}

/// Per-run slot table, reused across runs so that replaying allocates nothing.
pub struct Slots(Vec<Option<(NonNull<u8>, Layout)>>);

impl Slots {
    /// A table for `script`.
    pub fn for_script(script: &Script) -> Self {
        Slots(vec![None; script.slots])
    }
}

/// What one action of a script did, as [`replay_with`] tells its observer. A free that
/// succeeds has nothing to tell.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// An allocation handed out `size` bytes at `ptr`.
    Allocated { ptr: NonNull<u8>, size: usize },
    /// A realloc turned the `old_size` bytes at `old` into `new_size` bytes at `new` (the same
    /// address when it was done in place).
    Resized {
        old: NonNull<u8>,
        old_size: usize,
        new: NonNull<u8>,
        new_size: usize,
    },
    /// The action failed, or was skipped because the allocation into its slot had failed.
    Failed,
}

/// Replays `script` on `c`, telling `observe` what each action did. Blocks still live at the
/// end are left in `c`, which is rebuilt before the next run.
fn replay_with<C: LayoutHeap>(
    c: &mut C,
    script: &Script,
    slots: &mut Slots,
    mut observe: impl FnMut(Outcome),
) {
    slots.0.iter_mut().for_each(|s| *s = None);
    for &action in &script.actions {
        match action {
            Action::Alloc { slot, layout } => {
                slots.0[slot as usize] = c.alloc(layout).map(|p| (p, layout));
                match slots.0[slot as usize] {
                    Some((ptr, l)) => observe(Outcome::Allocated {
                        ptr,
                        size: l.size(),
                    }),
                    None => observe(Outcome::Failed),
                }
            }
            Action::Free { slot } => match slots.0[slot as usize].take() {
                // SAFETY: the slot holds a live block of `c` with its layout.
                Some((p, l)) => unsafe { c.dealloc(p, l) },
                None => observe(Outcome::Failed),
            },
            Action::Realloc { slot, new_size } => match slots.0[slot as usize] {
                Some((p, l)) => {
                    // SAFETY: the slot holds a live block of `c` with its layout.
                    match unsafe { c.realloc(p, l, new_size) } {
                        Some(np) => {
                            observe(Outcome::Resized {
                                old: p,
                                old_size: l.size(),
                                new: np,
                                new_size,
                            });
                            let nl =
                                Layout::from_size_align(new_size, l.align()).expect("valid layout");
                            slots.0[slot as usize] = Some((np, nl));
                        }
                        None => observe(Outcome::Failed),
                    }
                }
                None => observe(Outcome::Failed),
            },
        }
    }
}

/// Replays `script` on `c` and returns how many actions failed or were skipped because an
/// earlier allocation into their slot had failed. Blocks still live at the end are left in `c`,
/// which is rebuilt before the next run.
pub fn replay<C: LayoutHeap>(c: &mut C, script: &Script, slots: &mut Slots) -> usize {
    let mut failed = 0;
    replay_with(c, script, slots, |outcome| {
        failed += matches!(outcome, Outcome::Failed) as usize
    });
    failed
}

/// What a replay did, counted outside any timed run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayCounts {
    /// Reallocs served in place (same pointer back).
    pub realloc_in_place: usize,
    /// Reallocs that moved the block (and copied it).
    pub realloc_moved: usize,
    /// Bytes those moves had to copy (the smaller of old and new size).
    pub bytes_copied: usize,
    /// Actions that failed or were skipped.
    pub failed: usize,
    /// Lowest payload address handed out.
    pub lowest: usize,
    /// Highest payload end address handed out.
    pub highest: usize,
}

impl ReplayCounts {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Allocated { ptr, size } => self.saw(ptr, size),
            Outcome::Resized {
                old,
                old_size,
                new,
                new_size,
            } => {
                self.saw(new, new_size);
                if new == old {
                    self.realloc_in_place += 1;
                } else {
                    self.realloc_moved += 1;
                    self.bytes_copied += old_size.min(new_size);
                }
            }
            Outcome::Failed => self.failed += 1,
        }
    }

    fn saw(&mut self, p: NonNull<u8>, size: usize) {
        let a = p.as_ptr() as usize;
        self.lowest = if self.lowest == 0 {
            a
        } else {
            self.lowest.min(a)
        };
        self.highest = self.highest.max(a + size);
    }

    /// Bytes between the lowest payload and the highest payload end: how much of the region
    /// the contender spread its blocks over.
    pub fn footprint(&self) -> usize {
        self.highest.saturating_sub(self.lowest)
    }
}

/// Replays `script` like [`replay`] and counts what the reallocs did.
pub fn replay_counting<C: LayoutHeap>(
    c: &mut C,
    script: &Script,
    slots: &mut Slots,
) -> ReplayCounts {
    let mut n = ReplayCounts::default();
    replay_with(c, script, slots, |outcome| n.count(outcome));
    n
}

/// talc's heap-efficiency method, one trial: allocate (50%, sizes `1..max_size`, talc's
/// alignments), free (10%) and realloc (40%, to `1..realloc_max`) at random until the first
/// allocation fails; return the bytes then live (as requested) over the region size.
pub fn efficiency_trial<C: LayoutHeap>(
    c: &mut C,
    region_len: usize,
    rng: &mut Rng,
    max_size: usize,
    realloc_max: usize,
) -> f64 {
    let mut live: Vec<(NonNull<u8>, Layout)> = Vec::new();
    loop {
        match rng.range(0, 10) {
            0..=4 => {
                let layout = Layout::from_size_align(rng.range(1, max_size), rng.align())
                    .expect("valid layout");
                match c.alloc(layout) {
                    Some(p) => live.push((p, layout)),
                    None => break,
                }
            }
            5 => {
                if !live.is_empty() {
                    let (p, l) = live.swap_remove(rng.range(0, live.len()));
                    // SAFETY: `p` is live in `c` with layout `l`.
                    unsafe { c.dealloc(p, l) };
                }
            }
            _ => {
                if !live.is_empty() {
                    let i = rng.range(0, live.len());
                    let new_size = rng.range(1, realloc_max);
                    let (p, l) = live[i];
                    // SAFETY: `p` is live in `c` with layout `l`.
                    if let Some(np) = unsafe { c.realloc(p, l, new_size) } {
                        live[i] = (
                            np,
                            Layout::from_size_align(new_size, l.align()).expect("valid layout"),
                        );
                    }
                }
            }
        }
    }
    let used: usize = live.iter().map(|(_, l)| l.size()).sum();
    used as f64 / region_len as f64
}
