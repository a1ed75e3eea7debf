//! Differential target for the raw heaps: `Heap` under every placement policy, free-list order
//! and coalescing mode, over a fixed region or over a source of several regions that takes memory
//! back (trimming, purging), and `BuddyHeap`, all in memory the input sizes so that allocations
//! run out. A model keeps every live block (address, requested size, alignment, its bytes).
//!
//! Each step must agree with the model, and after each step `check()` passes, every live block
//! keeps its bytes, no two live blocks overlap, each lies inside the heap's memory, the used
//! blocks `blocks()` reports are exactly the model's, and the statistics add up. Bad pointers
//! (double frees, stale and interior pointers, misaligned ones, pointers outside the heap) go to
//! `free`, `realloc` and `usable_size`, which must refuse them and change nothing.
#![no_main]
#![feature(cfg_sanitize)]

use arbitrary::Arbitrary;
use core::alloc::Layout;
use core::ptr::NonNull;
use freespace_malloc::{
    AllocError, AnyPolicy, BlockState, BuddyHeap, Coalescing, Corruption, Fit, FixedRegion,
    FreeError, Heap, HeapConfig, HeapStats, ListOrder, Source,
};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

/// Operations per input, and the largest region, keep one input well under a millisecond.
const MAX_OPS: usize = 160;
const MAX_REGION: usize = 16 << 10;
/// Bytes of every block header (both heaps) and the payload alignment.
const HEADER: usize = 16;

#[derive(Arbitrary, Debug)]
struct Input {
    heap: HeapKind,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum HeapKind {
    Fit {
        fit: FitKind,
        order: OrderKind,
        coalescing: CoalKind,
        source: SourceKind,
    },
    Buddy {
        len: u16,
        misalign: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FitKind {
    First,
    Next,
    Best,
    Worst,
    Segregated,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OrderKind {
    AddressOrdered,
    Lifo,
    Fifo,
    SizeAscending,
    SizeDescending,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum CoalKind {
    Immediate,
    Deferred,
    Never,
}

#[derive(Arbitrary, Debug)]
enum SourceKind {
    /// One region of `len` bytes, starting `misalign` bytes past a 16-byte boundary.
    Fixed { len: u16, misalign: u8 },
    /// Up to three page-aligned regions handed out one per `grow`, taken back whole or in part,
    /// with pages of `16 << page_log` bytes and a small trim threshold, so that trimming runs.
    Chunks {
        lens: [u16; 3],
        page_log: u8,
        trim_log: u8,
    },
}

/// A request size: mostly small, sometimes as large as the region.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Tiny(u8),
    Small(u16),
    Big(u16),
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Tiny(b) => b as usize % 65,
            Size::Small(s) => s as usize % 1025,
            Size::Big(s) => s as usize % (MAX_REGION + 1024),
        }
    }
}

/// An alignment: 1 to 256 mostly, up to 1 MiB rarely.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Align(u8);

impl Align {
    fn get(self) -> usize {
        let a = self.0 as u32;
        if a < 224 {
            1 << (a % 9)
        } else {
            1 << (9 + a % 12)
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Malloc {
        size: Size,
        align: Align,
        seed: u8,
    },
    Calloc {
        count: u8,
        size: Size,
    },
    /// `count * size` overflows: refused with `TooLarge`, nothing changes.
    CallocOverflow,
    Realloc {
        which: u8,
        size: Size,
        align: Align,
        seed: u8,
    },
    Free {
        which: u8,
    },
    UsableSize {
        which: u8,
    },
    Bad {
        call: BadCall,
        at: BadPtr,
    },
    Coalesce,
    ReleaseFreeMemory,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum BadCall {
    Free,
    Realloc,
    UsableSize,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BadPtr {
    /// A pointer freed before (double free, or stale once its block merged or was reused),
    /// plus `off16` 16-byte steps.
    Freed { which: u8, off16: u8 },
    /// Inside a live block, on a 16-byte boundary.
    Interior { which: u8, off16: u16 },
    /// A live or freed pointer plus 1 to 15 bytes.
    Misaligned { which: u8, off: u8 },
    /// Anywhere in the memory handed to the heap, at any alignment.
    InRegion { off: u16 },
    /// Outside the heap's memory.
    Outside { kind: Outside, off: u16 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Outside {
    Before,
    After,
    Stack,
    SystemHeap,
    Low,
    High,
}

// ---------------------------------------------------------------------------------------------
// A memory source of several regions that takes memory back.

/// Memory poisoning, so that AddressSanitizer reports any touch of memory given back.
#[cfg(sanitize = "address")]
mod poison {
    extern "C" {
        fn __asan_poison_memory_region(addr: *const u8, size: usize);
        fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
    }
    pub fn poison(p: *const u8, len: usize) {
        // SAFETY: the range lies inside an allocation of ours; poisoning only changes what
        // AddressSanitizer reports.
        unsafe { __asan_poison_memory_region(p, len) }
    }
    pub fn unpoison(p: *const u8, len: usize) {
        // SAFETY: as above.
        unsafe { __asan_unpoison_memory_region(p, len) }
    }
}
#[cfg(not(sanitize = "address"))]
mod poison {
    pub fn poison(p: *const u8, len: usize) {
        // SAFETY: the range lies inside an allocation of ours; filling it makes stale reads
        // show up as garbage.
        unsafe { p.cast_mut().write_bytes(0xDD, len) }
    }
    pub fn unpoison(_: *const u8, _: usize) {}
}

struct Held {
    base: *mut u8,
    layout: Layout,
    /// Bytes still the heap's (a shrink takes the tail back).
    len: usize,
}

/// Hands out up to `grows` regions of the queued sizes, page aligned, each its own allocation
/// (so AddressSanitizer sees any access past one). Asserts the `Source` contract on every call
/// the heap makes.
struct Chunks {
    page: usize,
    queue: Vec<usize>,
    held: Vec<Held>,
    grows: u32,
}

impl Chunks {
    fn region_of(&self, addr: usize) -> Option<(usize, usize)> {
        self.held
            .iter()
            .map(|h| (h.base as usize, h.len))
            .find(|&(s, l)| addr >= s && addr < s + l)
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        for h in self.held.drain(..) {
            poison::unpoison(h.base, h.layout.size());
            // SAFETY: allocated in `grow` with this layout and not freed since.
            unsafe { std::alloc::dealloc(h.base, h.layout) };
        }
    }
}

// SAFETY: every region is a fresh allocation of its full length, used by nothing else until
// `release` frees it or `shrink` takes its tail (poisoned from then on).
unsafe impl Source for Chunks {
    fn grow(&mut self, _min_bytes: usize) -> Option<(NonNull<u8>, usize)> {
        if self.grows == 0 || self.queue.is_empty() {
            return None;
        }
        self.grows -= 1;
        let len = self.queue.remove(0);
        let layout = Layout::from_size_align(len, self.page).unwrap();
        // SAFETY: `len` is non-zero (queued lengths are at least 16).
        let base = unsafe { std::alloc::alloc(layout) };
        let p = NonNull::new(base).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        self.held.push(Held { base, layout, len });
        Some((p, len))
    }

    fn can_release(&self) -> bool {
        true
    }

    unsafe fn release(&mut self, start: NonNull<u8>, len: usize) -> bool {
        let Some(i) = self
            .held
            .iter()
            .position(|h| h.base == start.as_ptr() && h.len == len)
        else {
            panic!("release({start:p}, {len}): not a region grow returned (as shrunk)");
        };
        let h = self.held.swap_remove(i);
        poison::unpoison(h.base, h.layout.size());
        // SAFETY: allocated in `grow` with this layout and not freed since.
        unsafe { std::alloc::dealloc(h.base, h.layout) };
        // It may be asked for again (at another address).
        self.queue.push(h.layout.size());
        true
    }

    unsafe fn shrink(&mut self, start: NonNull<u8>, len: usize, new_len: usize) -> bool {
        let page = self.page;
        let Some(h) = self
            .held
            .iter_mut()
            .find(|h| h.base == start.as_ptr() && h.len == len)
        else {
            panic!("shrink({start:p}, {len}, {new_len}): not a live region");
        };
        assert!(
            new_len < len && new_len.is_multiple_of(page),
            "shrink({start:p}, {len}, {new_len}): page {page}"
        );
        poison::poison(h.base.wrapping_add(new_len), len - new_len);
        h.len = new_len;
        true
    }

    unsafe fn purge(&mut self, start: NonNull<u8>, len: usize) -> bool {
        let s = start.as_ptr() as usize;
        assert!(
            s.is_multiple_of(self.page) && len.is_multiple_of(self.page) && len > 0,
            "purge({start:p}, {len}): not whole pages of {}",
            self.page
        );
        match self.region_of(s) {
            Some((r, l)) if s + len <= r + l => {}
            _ => panic!("purge({start:p}, {len}): not inside a live region"),
        }
        // Dropped pages read back as zeros.
        // SAFETY: whole pages inside a live region of ours (checked above).
        unsafe { start.as_ptr().write_bytes(0, len) };
        true
    }

    fn page_size(&self) -> usize {
        self.page
    }
}

// ---------------------------------------------------------------------------------------------
// The heaps under test, behind one interface.

/// One block as `blocks()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Row {
    addr: usize,
    size: usize,
    free: bool,
    requested: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    stats: HeapStats,
    rows: Vec<Row>,
}

trait Subject {
    fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError>;
    fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError>;
    /// # Safety
    /// As the heap's `free`.
    unsafe fn free(&mut self, p: NonNull<u8>) -> Result<(), FreeError>;
    /// # Safety
    /// As the heap's `realloc`.
    unsafe fn realloc(&mut self, p: NonNull<u8>, l: Layout) -> Result<NonNull<u8>, AllocError>;
    /// # Safety
    /// As the heap's `usable_size`.
    unsafe fn usable_size(&self, p: NonNull<u8>) -> Result<usize, FreeError>;
    fn check(&self) -> Result<(), Corruption>;
    fn snapshot(&self) -> Snapshot;
    /// Whether the heap manages `addr` now (where a bad pointer is refused as other than
    /// `NotInHeap`). Asserts that the heap's own answer agrees.
    fn manages(&self, addr: usize) -> bool;
    /// The memory handed to the heap and still its own, as (start, len) ranges.
    fn memory(&self) -> Vec<(usize, usize)>;
    fn coalesce(&mut self);
    /// Whether `coalesce()` may change anything (deferred coalescing).
    fn merges_on_request(&self) -> bool;
    fn release_free_memory(&mut self);
    /// The error `malloc` must give when it fails for `layout`, apart from running out.
    fn refusal(&self, layout: Layout) -> Option<AllocError>;
    /// Whether a free block (after merging, where the heap merges) could serve `layout`.
    fn could_serve(&self, rows: &[Row], layout: Layout) -> bool;
    /// Frees leave the heap's memory as it was, except for trimming and purging.
    fn frees_keep_memory(&self) -> bool;
    /// Whether a failed allocation must leave every block as it was (the heap merges nothing
    /// on the way and its source gives nothing more).
    fn failure_keeps_blocks(&self, before: &Snapshot) -> bool;
    /// Whether blocks only ever split (no block start ever goes away).
    fn only_splits(&self) -> bool;
    /// Checks the end state once every block is freed.
    fn check_empty(&mut self);
}

struct FitHeap<S: Source> {
    heap: Heap<S, AnyPolicy>,
    coalescing: Coalescing,
    region: Option<(usize, usize)>,
}

impl<S: Source> FitHeap<S> {
    fn regions(&self) -> Vec<(usize, usize)>
    where
        Self: Subject,
    {
        // A region is the 16-aligned part of what the source handed out; the heap keeps one it
        // can use (a 32-byte region header, a 16-byte sentinel and one 32-byte block).
        self.memory()
            .into_iter()
            .filter_map(|(s, l)| {
                let r = (s + 15) & !15;
                let end = (s + l) & !15;
                (end >= r + 80).then_some((r, end - r))
            })
            .collect()
    }
}

trait Memory {
    fn held(&self) -> Vec<(usize, usize)>;
}

impl Memory for FixedRegion {
    fn held(&self) -> Vec<(usize, usize)> {
        Vec::new()
    }
}

impl Memory for Chunks {
    fn held(&self) -> Vec<(usize, usize)> {
        self.held.iter().map(|h| (h.base as usize, h.len)).collect()
    }
}

fn need_for(size: usize) -> usize {
    ((size + HEADER + 15) & !15).max(32)
}

impl<S: Source + Memory> Subject for FitHeap<S> {
    fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.heap.malloc(layout)
    }
    fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.heap.calloc(count, size)
    }
    unsafe fn free(&mut self, p: NonNull<u8>) -> Result<(), FreeError> {
        // SAFETY: forwarded.
        unsafe { self.heap.free(p) }
    }
    unsafe fn realloc(&mut self, p: NonNull<u8>, l: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: forwarded.
        unsafe { self.heap.realloc(p, l) }
    }
    unsafe fn usable_size(&self, p: NonNull<u8>) -> Result<usize, FreeError> {
        // SAFETY: forwarded.
        unsafe { self.heap.usable_size(p) }
    }
    fn check(&self) -> Result<(), Corruption> {
        self.heap.check()
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            stats: self.heap.stats(),
            rows: self
                .heap
                .blocks()
                .map(|b| Row {
                    addr: b.addr,
                    size: b.size,
                    free: b.state == BlockState::Free,
                    requested: b.requested,
                })
                .collect(),
        }
    }
    fn manages(&self, addr: usize) -> bool {
        let ours = if self.heap.region_count() == 0 {
            false
        } else {
            self.regions()
                .iter()
                .any(|&(r, l)| addr >= r && addr < r + l)
        };
        assert_eq!(
            self.heap.owns(addr as *const u8),
            ours,
            "owns({addr:#x}) disagrees with the regions {:x?}",
            self.regions()
        );
        ours
    }
    fn memory(&self) -> Vec<(usize, usize)> {
        match self.region {
            Some(r) => vec![r],
            None => self.heap.source().held(),
        }
    }
    fn coalesce(&mut self) {
        self.heap.coalesce()
    }
    fn merges_on_request(&self) -> bool {
        self.coalescing == Coalescing::Deferred
    }
    fn release_free_memory(&mut self) {
        self.heap.release_free_memory();
    }
    fn refusal(&self, layout: Layout) -> Option<AllocError> {
        (layout.size() == 0).then_some(AllocError::ZeroSize)
    }
    fn could_serve(&self, rows: &[Row], layout: Layout) -> bool {
        let need = need_for(layout.size());
        let search = if layout.align() > 16 {
            need + layout.align() + 32
        } else {
            need
        };
        // Runs of free neighbours (only the deferred mode leaves any between calls).
        let mut run = 0;
        let mut run_end = 0;
        for r in rows {
            if !r.free {
                run = 0;
                continue;
            }
            if run > 0 && r.addr == run_end && self.coalescing == Coalescing::Deferred {
                run += r.size;
            } else {
                run = r.size;
            }
            run_end = r.addr + r.size;
            if run >= search {
                return true;
            }
        }
        false
    }
    fn frees_keep_memory(&self) -> bool {
        self.region.is_some()
    }
    fn failure_keeps_blocks(&self, before: &Snapshot) -> bool {
        self.coalescing != Coalescing::Deferred
            && self.region.is_some()
            && before.stats.heap_bytes > 0
    }
    fn only_splits(&self) -> bool {
        self.coalescing == Coalescing::Never && self.region.is_some()
    }
    fn check_empty(&mut self) {
        if self.coalescing == Coalescing::Deferred {
            self.heap.coalesce();
            self.heap.check().expect("check after the final coalesce");
        }
        if self.coalescing != Coalescing::Never {
            let rows = self.snapshot().rows;
            assert_eq!(
                rows.len(),
                self.heap.region_count(),
                "all freed and merged, yet not one free block per region: {rows:x?}"
            );
        }
    }
}

struct Buddy {
    heap: BuddyHeap,
    region: (usize, usize),
}

impl Subject for Buddy {
    fn malloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.heap.malloc(layout)
    }
    fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.heap.calloc(count, size)
    }
    unsafe fn free(&mut self, p: NonNull<u8>) -> Result<(), FreeError> {
        // SAFETY: forwarded.
        unsafe { self.heap.free(p) }
    }
    unsafe fn realloc(&mut self, p: NonNull<u8>, l: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: forwarded.
        unsafe { self.heap.realloc(p, l) }
    }
    unsafe fn usable_size(&self, p: NonNull<u8>) -> Result<usize, FreeError> {
        // SAFETY: forwarded.
        unsafe { self.heap.usable_size(p) }
    }
    fn check(&self) -> Result<(), Corruption> {
        self.heap.check()
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            stats: self.heap.stats(),
            rows: self
                .heap
                .blocks()
                .map(|b| {
                    assert!(b.size.is_power_of_two());
                    Row {
                        addr: b.addr,
                        size: b.size,
                        free: b.state == BlockState::Free,
                        requested: b.requested,
                    }
                })
                .collect(),
        }
    }
    fn manages(&self, addr: usize) -> bool {
        let base = self.heap.base();
        addr >= base && addr < base + self.heap.managed_len()
    }
    fn memory(&self) -> Vec<(usize, usize)> {
        vec![self.region]
    }
    fn coalesce(&mut self) {}
    fn merges_on_request(&self) -> bool {
        false
    }
    fn release_free_memory(&mut self) {}
    fn refusal(&self, layout: Layout) -> Option<AllocError> {
        if layout.size() == 0 {
            return Some(AllocError::ZeroSize);
        }
        if layout.align() > BuddyHeap::MAX_ALIGN {
            return Some(AllocError::BadAlignment);
        }
        let order = (layout.size() + layout.align().max(HEADER))
            .next_power_of_two()
            .trailing_zeros()
            .max(5);
        let len = self.heap.managed_len();
        (len == 0 || order > len.ilog2()).then_some(AllocError::TooLarge)
    }
    fn could_serve(&self, rows: &[Row], layout: Layout) -> bool {
        let need = (layout.size() + layout.align().max(HEADER))
            .next_power_of_two()
            .max(32);
        rows.iter().any(|r| r.free && r.size >= need)
    }
    fn frees_keep_memory(&self) -> bool {
        true
    }
    fn failure_keeps_blocks(&self, _: &Snapshot) -> bool {
        true
    }
    fn only_splits(&self) -> bool {
        false
    }
    fn check_empty(&mut self) {
        let rows = self.snapshot().rows;
        let roots = (self.heap.managed_len() >> 5).count_ones() as usize;
        assert_eq!(
            rows.len(),
            roots,
            "all freed, yet the blocks are not the {roots} roots: {rows:x?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Default)]
struct Model {
    /// Live blocks: payload address -> the bytes it must hold (its length is the size asked).
    live: BTreeMap<usize, Vec<u8>>,
    /// Pointers freed, with the allocation count at the time (most recent last).
    freed: Vec<(usize, u64)>,
    /// Successful allocations (malloc, calloc, realloc) so far.
    allocs: u64,
}

fn pattern(seed: u8, start: usize, out: &mut [u8]) {
    let mut x = (seed as u32).wrapping_mul(0x9E37_79B9) ^ start as u32;
    for b in out {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 24) as u8;
    }
}

/// # Safety
/// `p` must be valid for `len` bytes.
unsafe fn bytes<'a>(p: usize, len: usize) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe { core::slice::from_raw_parts(p as *const u8, len) }
}

impl Model {
    fn nth_live(&self, which: u8) -> Option<usize> {
        if self.live.is_empty() {
            return None;
        }
        self.live
            .keys()
            .nth(which as usize % self.live.len())
            .copied()
    }

    fn note_freed(&mut self, p: usize) {
        self.freed.push((p, self.allocs));
        if self.freed.len() > 64 {
            self.freed.remove(0);
        }
    }

    /// Records a fresh block at `p` for `layout` whose first bytes are `data`, fills the rest
    /// with a pattern, and checks its alignment and that it overlaps no live block.
    fn adopt(&mut self, p: usize, layout: Layout, mut data: Vec<u8>, seed: u8) {
        let (size, align) = (layout.size(), layout.align());
        assert_eq!(p % align.max(HEADER), 0, "{p:#x} not aligned to {align}");
        let keep = data.len();
        data.resize(size, 0);
        pattern(seed, keep, &mut data[keep..]);
        // SAFETY: a live block of at least `size` bytes.
        unsafe {
            (p as *mut u8)
                .add(keep)
                .copy_from(data[keep..].as_ptr(), size - keep)
        };
        if let Some((&q, b)) = self.live.range(..=p).next_back() {
            assert!(
                q + b.len() + HEADER <= p,
                "{p:#x} overlaps the live block at {q:#x}"
            );
        }
        if let Some((&q, _)) = self.live.range(p..).next() {
            assert!(
                p + size + HEADER <= q,
                "{p:#x} ({size} B) overlaps the live block at {q:#x}"
            );
        }
        self.allocs += 1;
        self.live.insert(p, data);
    }
}

/// After every step: the heap checks, the used blocks are exactly the model's, the statistics
/// add up, every live block keeps its bytes and lies in the heap's memory.
fn verify(h: &dyn Subject, m: &Model) -> Snapshot {
    if let Err(e) = h.check() {
        panic!("check() failed: {e:?}");
    }
    let snap = h.snapshot();
    let s = &snap.stats;
    let mut used = snap.rows.iter().filter(|r| !r.free);
    let (mut allocated, mut headers) = (0, 0);
    let memory = h.memory();
    for (&p, data) in &m.live {
        let r = used
            .next()
            .unwrap_or_else(|| panic!("live block {p:#x} missing from blocks()"));
        assert!(
            p >= r.addr + HEADER && p + data.len() <= r.addr + r.size,
            "live block {p:#x} ({} B) is not inside the used block {r:x?}",
            data.len()
        );
        assert_eq!(r.requested, data.len(), "requested size of {p:#x}");
        allocated += r.addr + r.size - p;
        headers += p - r.addr;
        // SAFETY: a live block of this size.
        let got = unsafe { bytes(p, data.len()) };
        if got != &data[..] {
            let at = got.iter().zip(data).position(|(a, b)| a != b).unwrap();
            panic!("live block {p:#x} lost its bytes at offset {at}");
        }
        assert!(
            memory
                .iter()
                .any(|&(s, l)| p - HEADER >= s && p + data.len() <= s + l),
            "live block {p:#x} lies outside the heap's memory"
        );
    }
    if let Some(r) = used.next() {
        panic!("blocks() lists a used block the model does not have: {r:x?}");
    }
    let free: Vec<_> = snap.rows.iter().filter(|r| r.free).collect();
    let free_bytes: usize = free.iter().map(|r| r.size).sum();
    let largest = free.iter().map(|r| r.size).max().unwrap_or(0);
    let requested: usize = m.live.values().map(|d| d.len()).sum();
    let total: usize = snap.rows.iter().map(|r| r.size).sum();
    let ok = s.live_blocks == m.live.len()
        && s.allocations - s.frees == m.live.len() as u64
        && s.requested_bytes == requested
        && s.allocated_bytes == allocated
        && s.header_bytes == headers
        && s.free_bytes == free_bytes
        && s.free_blocks == free.len()
        && s.largest_free_block == largest
        && s.heap_bytes == total + s.overhead_bytes
        && s.heap_bytes == s.allocated_bytes + s.free_bytes + s.header_bytes + s.overhead_bytes;
    assert!(
        ok,
        "stats do not add up: {s:?}; walked: live {} requested {requested} allocated {allocated} \
         headers {headers} free {free_bytes} in {} (largest {largest}), blocks {total}",
        m.live.len(),
        free.len()
    );
    snap
}

/// The bad pointer an op names, or None when it names nothing usable (or a live block).
fn bad_address(
    h: &dyn Subject,
    m: &Model,
    at: BadPtr,
    stack: &[u8],
    boxed: &[u8],
) -> Option<usize> {
    let mem = h.memory();
    let addr = match at {
        BadPtr::Freed { which, off16 } => {
            if m.freed.is_empty() {
                return None;
            }
            let (p, _) = m.freed[which as usize % m.freed.len()];
            p + 16 * (off16 as usize % 8)
        }
        BadPtr::Interior { which, off16 } => {
            let p = m.nth_live(which)?;
            let len = m.live[&p].len().div_ceil(16).max(1);
            p + 16 * (1 + off16 as usize % len)
        }
        BadPtr::Misaligned { which, off } => {
            let p = if which % 2 == 0 || m.freed.is_empty() {
                m.nth_live(which / 2)?
            } else {
                m.freed[(which / 2) as usize % m.freed.len()].0
            };
            p + 1 + off as usize % 15
        }
        BadPtr::InRegion { off } => {
            let total: usize = mem.iter().map(|r| r.1).sum();
            if total == 0 {
                return None;
            }
            let mut o = off as usize * 7 % total;
            let mut found = None;
            for &(s, l) in &mem {
                if o < l {
                    found = Some(s + o);
                    break;
                }
                o -= l;
            }
            found?
        }
        BadPtr::Outside { kind, off } => {
            let off = off as usize;
            let lo = mem.iter().map(|r| r.0).min().unwrap_or(0x10000);
            let hi = mem.iter().map(|r| r.0 + r.1).max().unwrap_or(0x10000);
            match kind {
                Outside::Before => lo.checked_sub(1 + off % 4096)?,
                Outside::After => hi + off % 4096,
                Outside::Stack => stack.as_ptr() as usize + 16 + off % (stack.len() - 16),
                Outside::SystemHeap => boxed.as_ptr() as usize + 16 + off % (boxed.len() - 16),
                Outside::Low => 16 + off,
                Outside::High => usize::MAX - 15 - off,
            }
        }
    };
    if addr == 0 || m.live.contains_key(&addr) {
        return None;
    }
    // Only pointers outside every live block's payload (or inside them): all are bad.
    Some(addr)
}

fn run(h: &mut dyn Subject, ops: &[Op]) {
    let mut m = Model::default();
    let stack = [0x5Au8; 256];
    let boxed = vec![0xA5u8; 256];
    let mut before = verify(h, &m);
    for op in ops.iter().take(MAX_OPS) {
        match *op {
            Op::Malloc { size, align, seed } => {
                let layout = Layout::from_size_align(size.get(), align.get()).unwrap();
                match h.malloc(layout) {
                    Ok(p) => m.adopt(p.as_ptr() as usize, layout, Vec::new(), seed),
                    Err(e) => failed_alloc(h, &before, layout, e),
                }
            }
            Op::Calloc { count, size } => {
                let (count, size) = (count as usize % 9, size.get() / 8);
                let layout = Layout::from_size_align(count * size, 1).unwrap();
                match h.calloc(count, size) {
                    Ok(p) => {
                        let p = p.as_ptr() as usize;
                        // SAFETY: a fresh block of `count * size` bytes.
                        let got = unsafe { bytes(p, layout.size()) };
                        assert!(got.iter().all(|&b| b == 0), "calloc gave bytes not zeroed");
                        m.adopt(p, layout, got.to_vec(), 0);
                    }
                    Err(e) => failed_alloc(h, &before, layout, e),
                }
            }
            Op::CallocOverflow => {
                assert_eq!(h.calloc(usize::MAX / 2 + 1, 2), Err(AllocError::TooLarge));
                assert_eq!(h.snapshot(), before, "a refused calloc changed the heap");
            }
            Op::Realloc {
                which,
                size,
                align,
                seed,
            } => {
                let Some(p) = m.nth_live(which) else { continue };
                let layout = Layout::from_size_align(size.get(), align.get()).unwrap();
                // SAFETY: `p` is live.
                match unsafe { h.realloc(NonNull::new(p as *mut u8).unwrap(), layout) } {
                    Ok(q) => {
                        let q = q.as_ptr() as usize;
                        let old = m.live.remove(&p).unwrap();
                        let keep = old.len().min(layout.size());
                        // SAFETY: `q` is live with at least `layout.size()` bytes.
                        let got = unsafe { bytes(q, keep) };
                        if got != &old[..keep] {
                            let at = got.iter().zip(&old).position(|(a, b)| a != b).unwrap();
                            panic!("realloc {p:#x} -> {q:#x} lost byte {at} of {keep}");
                        }
                        m.adopt(q, layout, old[..keep].to_vec(), seed);
                        if q != p {
                            m.note_freed(p);
                        }
                    }
                    Err(e) => failed_alloc(h, &before, layout, e),
                }
            }
            Op::Free { which } => {
                let Some(p) = m.nth_live(which) else { continue };
                // SAFETY: `p` is live and freed once.
                let r = unsafe { h.free(NonNull::new(p as *mut u8).unwrap()) };
                assert_eq!(r, Ok(()), "free of the live block {p:#x}");
                m.live.remove(&p);
                m.note_freed(p);
            }
            Op::UsableSize { which } => {
                let Some(p) = m.nth_live(which) else { continue };
                // SAFETY: `p` is live.
                let n = unsafe { h.usable_size(NonNull::new(p as *mut u8).unwrap()) };
                let n = n.unwrap_or_else(|e| panic!("usable_size of the live block {p:#x}: {e:?}"));
                let row = before
                    .rows
                    .iter()
                    .find(|r| r.addr < p && p < r.addr + r.size)
                    .unwrap();
                assert_eq!(n, row.addr + row.size - p, "usable_size of {p:#x}");
                assert!(
                    n >= m.live[&p].len(),
                    "usable_size {n} below the size asked"
                );
            }
            Op::Bad { call, at } => {
                let Some(addr) = bad_address(h, &m, at, &stack, &boxed) else {
                    continue;
                };
                bad_call(h, &m, &before, call, at, addr);
            }
            Op::Coalesce => {
                h.coalesce();
                if !h.merges_on_request() {
                    assert_eq!(
                        h.snapshot(),
                        before,
                        "coalesce() changed a heap that does not defer"
                    );
                }
            }
            Op::ReleaseFreeMemory => h.release_free_memory(),
        }
        let after = verify(h, &m);
        if h.only_splits() {
            let mut starts = after.rows.iter().map(|r| r.addr).peekable();
            for r in &before.rows {
                while starts.next_if(|&a| a < r.addr).is_some() {}
                assert_eq!(
                    starts.peek(),
                    Some(&r.addr),
                    "under Never the block at {:#x} merged ({op:?})",
                    r.addr
                );
            }
        }
        before = after;
    }
    // Free everything; the heap ends as it began.
    let live: Vec<usize> = m.live.keys().copied().collect();
    for p in live {
        // SAFETY: `p` is live and freed once.
        let r = unsafe { h.free(NonNull::new(p as *mut u8).unwrap()) };
        assert_eq!(r, Ok(()), "free of the live block {p:#x}");
        m.live.remove(&p);
        verify(h, &m);
    }
    h.check_empty();
    verify(h, &m);
}

/// A refused allocation: the error is the one the layout calls for (or out of memory, when no
/// free block could serve it), and no live block moved or changed.
fn failed_alloc(h: &dyn Subject, before: &Snapshot, layout: Layout, e: AllocError) {
    let after = h.snapshot();
    match h.refusal(layout) {
        Some(want) => {
            assert_eq!(e, want, "malloc/realloc of {layout:?}");
            assert_eq!(
                &after, before,
                "a refused {layout:?} ({e:?}) changed the heap"
            );
        }
        None => {
            assert_eq!(e, AllocError::OutOfMemory, "malloc/realloc of {layout:?}");
            assert!(
                !h.could_serve(&after.rows, layout),
                "out of memory for {layout:?}, yet a free block could serve it: {:x?}",
                after.rows
            );
            if h.failure_keeps_blocks(before) {
                assert_eq!(
                    after.rows, before.rows,
                    "out of memory for {layout:?} changed blocks"
                );
            }
        }
    }
    let used = |s: &Snapshot| {
        s.rows
            .iter()
            .filter(|r| !r.free)
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        used(&after),
        used(before),
        "a failed allocation changed the used blocks"
    );
}

/// A call with a pointer that is not a live block: refused with the right error, nothing changed.
fn bad_call(
    h: &mut dyn Subject,
    m: &Model,
    before: &Snapshot,
    call: BadCall,
    at: BadPtr,
    addr: usize,
) {
    let managed = h.manages(addr);
    let p = NonNull::new(addr as *mut u8).unwrap();
    let err = match call {
        // SAFETY: `p` is no live block; the heap only reads its would-be header, which lies in
        // memory the heap manages when it reads it.
        BadCall::Free => unsafe { h.free(p) }.err(),
        // SAFETY: as above.
        BadCall::UsableSize => unsafe { h.usable_size(p) }.err(),
        BadCall::Realloc => {
            let layout = Layout::from_size_align(24, 8).unwrap();
            // SAFETY: as above; the heap validates the pointer before anything else.
            match unsafe { h.realloc(p, layout) } {
                Ok(q) => panic!("realloc of the bad pointer {addr:#x} ({at:?}) gave {q:p}"),
                Err(e) => {
                    let want = h.refusal(layout).unwrap_or(AllocError::InvalidPointer);
                    assert_eq!(e, want, "realloc of the bad pointer {addr:#x} ({at:?})");
                    None
                }
            }
        }
    };
    if call != BadCall::Realloc {
        let Some(e) = err else {
            panic!("{call:?} accepted the bad pointer {addr:#x} ({at:?})");
        };
        let fresh_double = match at {
            BadPtr::Freed { which, off16 } if off16 % 8 == 0 => {
                let (_, when) = m.freed[which as usize % m.freed.len()];
                when == m.allocs && h.frees_keep_memory()
            }
            _ => false,
        };
        let want: &[FreeError] = if !managed {
            &[FreeError::NotInHeap]
        } else if !addr.is_multiple_of(16) {
            &[FreeError::Misaligned]
        } else if fresh_double {
            &[FreeError::DoubleFree]
        } else {
            &[
                FreeError::Misaligned,
                FreeError::BadMagic,
                FreeError::DoubleFree,
            ]
        };
        assert!(
            want.contains(&e),
            "{call:?} of the bad pointer {addr:#x} ({at:?}) gave {e:?}, expected one of {want:?}"
        );
    }
    assert_eq!(
        &h.snapshot(),
        before,
        "a refused {call:?} of {addr:#x} ({at:?}) changed the heap"
    );
}

/// Memory from the system allocator with exactly `len` bytes after `misalign`, so that
/// AddressSanitizer flags any access past it.
struct Region {
    base: *mut u8,
    layout: Layout,
}

impl Region {
    fn new(misalign: usize, len: usize) -> Region {
        let layout = Layout::from_size_align((misalign + len).max(1), 16).unwrap();
        // SAFETY: the size is non-zero.
        let base = unsafe { std::alloc::alloc(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Region { base, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.base, self.layout) }
    }
}

fuzz_target!(|input: Input| {
    match input.heap {
        HeapKind::Fit {
            fit,
            order,
            coalescing,
            source,
        } => {
            let fit = Fit::ALL[fit as usize];
            let order = ListOrder::ALL[order as usize];
            let coalescing = Coalescing::ALL[coalescing as usize];
            let policy = AnyPolicy::new(fit, order);
            let config = HeapConfig::new().with_coalescing(coalescing);
            match source {
                SourceKind::Fixed { len, misalign } => {
                    let (misalign, len) = (misalign as usize % 16, len as usize % MAX_REGION);
                    let region = Region::new(misalign, len);
                    let start = region.base.wrapping_add(misalign);
                    // SAFETY: `region` outlives the heap (dropped after it, below).
                    let heap = unsafe {
                        Heap::in_region(NonNull::new(start).unwrap(), len, policy, config)
                    };
                    let mut h = FitHeap {
                        heap,
                        coalescing,
                        region: Some((start as usize, len)),
                    };
                    run(&mut h, &input.ops);
                    drop(h);
                    drop(region);
                }
                SourceKind::Chunks {
                    lens,
                    page_log,
                    trim_log,
                } => {
                    let page = 16 << (page_log % 9);
                    let trim = match trim_log % 12 {
                        11 => usize::MAX,
                        t => 32 << t,
                    };
                    let queue = lens
                        .iter()
                        .map(|&l| (16 + l as usize % (MAX_REGION / 2)) & !15)
                        .collect();
                    let source = Chunks {
                        page,
                        queue,
                        held: Vec::new(),
                        grows: 6,
                    };
                    let heap = Heap::with_parts(source, policy, config.with_trim_threshold(trim));
                    let mut h = FitHeap {
                        heap,
                        coalescing,
                        region: None,
                    };
                    run(&mut h, &input.ops);
                }
            }
        }
        HeapKind::Buddy { len, misalign } => {
            let (misalign, len) = (misalign as usize % 16, len as usize % MAX_REGION);
            let region = Region::new(misalign, len);
            let start = region.base.wrapping_add(misalign);
            // SAFETY: `region` outlives the heap (dropped after it, below).
            let heap = unsafe { BuddyHeap::new(NonNull::new(start).unwrap(), len) };
            let mut h = Buddy {
                heap,
                region: (start as usize, len),
            };
            run(&mut h, &input.ops);

            drop(region);
        }
    }
});
