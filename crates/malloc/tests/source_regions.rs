//! A releasing `Source` gets back exactly what it handed out: `release` gets the start and
//! length `grow` returned (as cut by `shrink`), and `shrink` gets them too, whatever the
//! region's alignment and length. The source here hands out regions at every offset from a
//! 16-byte boundary and of odd lengths, frees each with the layout it allocated it with, and
//! records (and refuses) any call for a range it never handed out: the heap calls `release` from
//! its destructor, where a panic would abort the test instead of failing it.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::cell::RefCell;
use std::rc::Rc;

use freespace_malloc::{AllocError, FirstFit, Heap, HeapConfig, ListOrder, SegregatedFit, Source};

/// A region handed out and not yet given back.
struct Live {
    /// The allocation behind it, and its layout.
    base: *mut u8,
    layout: Layout,
    /// What `grow` returned: `base + misalign`, and the length (as cut by `shrink` since).
    start: usize,
    len: usize,
}

/// What the source has handed out and taken back, kept outside it so that a test can read it
/// after the heap (and the source with it) is dropped.
#[derive(Default)]
struct Ledger {
    live: Vec<Live>,
    grows: usize,
    releases: usize,
    shrinks: usize,
    purges: usize,
    /// Calls for ranges the source never handed out, or otherwise against its contract.
    bad: Vec<String>,
}

impl Ledger {
    fn live_bytes(&self) -> usize {
        self.live.iter().map(|l| l.len).sum()
    }
}

/// Hands out the queued regions, `(misalign from a page boundary, length)`, one per `grow`.
struct Exact {
    page: usize,
    queue: Vec<(usize, usize)>,
    ledger: Rc<RefCell<Ledger>>,
}

impl Exact {
    fn new(page: usize, queue: &[(usize, usize)]) -> (Self, Rc<RefCell<Ledger>>) {
        let ledger = Rc::new(RefCell::new(Ledger::default()));
        let source = Exact {
            page,
            queue: queue.iter().rev().copied().collect(),
            ledger: Rc::clone(&ledger),
        };
        (source, ledger)
    }

    /// The live region `(start, len)` describes exactly, or None (recorded as a bad call).
    fn find(&self, start: NonNull<u8>, len: usize, call: &str) -> Option<usize> {
        let mut ledger = self.ledger.borrow_mut();
        let found = ledger
            .live
            .iter()
            .position(|l| l.start == start.as_ptr() as usize && l.len == len);
        if found.is_none() {
            let given: Vec<(usize, usize)> = ledger.live.iter().map(|l| (l.start, l.len)).collect();
            let msg =
                format!("{call}({start:p}, {len}): not a region grow returned; live: {given:x?}");
            ledger.bad.push(msg);
        }
        found
    }

    fn bad(&self, msg: String) -> bool {
        self.ledger.borrow_mut().bad.push(msg);
        false
    }
}

impl Drop for Exact {
    fn drop(&mut self) {
        for l in self.ledger.borrow_mut().live.drain(..) {
            // SAFETY: allocated in `grow` with this layout and not freed since.
            unsafe { std::alloc::dealloc(l.base, l.layout) };
        }
    }
}

// SAFETY: every region is part of a fresh allocation of its own, used by nothing else until
// `release` frees it; a tail cut by `shrink` is never handed out again.
unsafe impl Source for Exact {
    fn grow(&mut self, _min_bytes: usize) -> Option<(NonNull<u8>, usize)> {
        let (misalign, len) = self.queue.pop()?;
        let layout = Layout::from_size_align(misalign + len, self.page).unwrap();
        // SAFETY: the size is non-zero (every queued length is).
        let base = unsafe { std::alloc::alloc(layout) };
        assert!(!base.is_null());
        let start = base.wrapping_add(misalign);
        let mut ledger = self.ledger.borrow_mut();
        ledger.grows += 1;
        ledger.live.push(Live {
            base,
            layout,
            start: start as usize,
            len,
        });
        Some((NonNull::new(start).unwrap(), len))
    }

    fn can_release(&self) -> bool {
        true
    }

    unsafe fn release(&mut self, start: NonNull<u8>, len: usize) -> bool {
        let Some(i) = self.find(start, len, "release") else {
            return false;
        };
        let mut ledger = self.ledger.borrow_mut();
        let l = ledger.live.swap_remove(i);
        ledger.releases += 1;
        // SAFETY: allocated in `grow` with this layout and not freed since.
        unsafe { std::alloc::dealloc(l.base, l.layout) };
        true
    }

    unsafe fn shrink(&mut self, start: NonNull<u8>, len: usize, new_len: usize) -> bool {
        let Some(i) = self.find(start, len, "shrink") else {
            return false;
        };
        if new_len == 0 || new_len >= len || new_len % self.page != 0 {
            return self.bad(format!(
                "shrink({start:p}, {len}, {new_len}): not a whole number of {}-byte pages less \
                 than the region",
                self.page
            ));
        }
        let mut ledger = self.ledger.borrow_mut();
        ledger.shrinks += 1;
        ledger.live[i].len = new_len;
        // The tail is no longer the heap's: scribble on it, so that a heap that still relies on
        // it reads garbage.
        // SAFETY: the tail lies inside the allocation behind the region.
        unsafe { start.as_ptr().add(new_len).write_bytes(0xdd, len - new_len) };
        true
    }

    unsafe fn purge(&mut self, start: NonNull<u8>, len: usize) -> bool {
        let s = start.as_ptr() as usize;
        if s % self.page != 0 || len % self.page != 0 || len == 0 {
            let page = self.page;
            return self.bad(format!(
                "purge({start:p}, {len}): not whole pages of {page}"
            ));
        }
        let inside =
            (self.ledger.borrow().live.iter()).any(|l| s >= l.start && s + len <= l.start + l.len);
        if !inside {
            return self.bad(format!("purge({start:p}, {len}): not inside a live region"));
        }
        self.ledger.borrow_mut().purges += 1;
        // SAFETY: whole pages inside a live region, which the heap no longer needs.
        unsafe { start.as_ptr().write_bytes(0, len) };
        true
    }

    fn page_size(&self) -> usize {
        self.page
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// The heap's own account of the bytes it holds agrees with the source's, and its invariants
/// hold.
fn agrees<S: Source, P: freespace_malloc::Policy>(heap: &Heap<S, P>, ledger: &RefCell<Ledger>) {
    clean(ledger);
    heap.check().unwrap();
    assert_eq!(
        heap.stats().heap_bytes,
        ledger.borrow().live_bytes(),
        "the heap's bytes are not the bytes its source holds for it"
    );
}

/// The heap made no call against the source's contract.
fn clean(ledger: &RefCell<Ledger>) {
    let bad = &ledger.borrow().bad;
    assert!(
        bad.is_empty(),
        "calls against the Source contract: {bad:#?}"
    );
}

#[test]
fn dropping_a_heap_gives_back_each_region_exactly_as_grow_returned_it() {
    // The reproduction of the fuzz finding first: 8 bytes past a 16-byte boundary, 4096 long.
    for (misalign, len) in [(8, 4096), (1, 4099), (15, 4103), (0, 4105), (0, 4096)] {
        let (source, ledger) = Exact::new(4096, &[(misalign, len)]);
        let mut heap = Heap::with_parts(
            source,
            FirstFit::new(ListOrder::AddressOrdered),
            HeapConfig::new(),
        );
        heap.malloc(layout(100)).unwrap();
        agrees(&heap, &ledger);
        drop(heap);
        clean(&ledger);
        let l = ledger.borrow();
        assert_eq!((l.grows, l.releases), (1, 1), "({misalign}, {len})");
        assert!(l.live.is_empty());
    }
}

#[test]
fn a_wholly_free_region_goes_back_exactly_at_free_time() {
    let config = HeapConfig::new().with_trim_threshold(4096);
    for (misalign, tail) in [(3, 5), (9, 0), (0, 7), (15, 15)] {
        let (source, ledger) = Exact::new(
            4096,
            &[(misalign, 4096 + tail), (16 - misalign, 8192 + tail)],
        );
        let mut heap = Heap::with_parts(source, SegregatedFit::new(), config);
        let small = heap.malloc(layout(64)).unwrap();
        // Too large for what is left of the first region: the second one serves it.
        let big = heap.malloc(layout(6000)).unwrap();
        assert_eq!(heap.region_count(), 2);
        agrees(&heap, &ledger);
        // SAFETY: live, freed once. Its region is then wholly free and goes back.
        unsafe { heap.free(big) }.unwrap();
        assert_eq!(heap.region_count(), 1, "({misalign}, {tail})");
        assert_eq!(ledger.borrow().releases, 1);
        agrees(&heap, &ledger);
        // SAFETY: live, freed once.
        unsafe { heap.free(small) }.unwrap();
        agrees(&heap, &ledger);
        drop(heap);
        clean(&ledger);
        assert!(ledger.borrow().live.is_empty());
    }
}

#[test]
fn shrinking_cuts_the_tail_of_the_region_grow_returned() {
    const PAGE: usize = 256;
    for (misalign, tail) in [(0, 7), (5, 0), (8, 9), (15, 15), (0, 0)] {
        let len = 16 * PAGE + tail;
        let (source, ledger) = Exact::new(PAGE, &[(misalign, len)]);
        let mut heap = Heap::with_parts(
            source,
            FirstFit::new(ListOrder::AddressOrdered),
            HeapConfig::new(),
        );
        let keep = heap.malloc(layout(100)).unwrap();
        // SAFETY: `keep` has 100 bytes.
        unsafe { keep.as_ptr().write_bytes(0x5a, 100) };
        let p = heap.malloc(layout(12 * PAGE)).unwrap();
        // SAFETY: live, freed once; the region's tail is then free.
        unsafe { heap.free(p) }.unwrap();
        heap.release_free_memory();
        clean(&ledger);
        let (start, kept) = {
            let l = ledger.borrow();
            assert_eq!(l.shrinks, 1, "({misalign}, {tail}): the free tail was kept");
            (l.live[0].start, l.live[0].len)
        };
        assert!(kept <= 2 * PAGE, "({misalign}, {tail}): cut too little");
        agrees(&heap, &ledger);
        // The region now ends (with its 16-byte sentinel) at the last 16-byte boundary of what
        // the source kept.
        let last = heap.blocks().last().unwrap();
        assert_eq!(last.addr + last.size + 16, (start + kept) & !15);
        // SAFETY: `keep` is live with 100 bytes.
        let bytes = unsafe { core::slice::from_raw_parts(keep.as_ptr(), 100) };
        assert!(
            bytes.iter().all(|&b| b == 0x5a),
            "the kept block lost its bytes"
        );
        // The heap still works in what is left, and grows no further than that.
        let q = heap.malloc(layout(24)).unwrap();
        assert_eq!(heap.malloc(layout(4 * PAGE)), Err(AllocError::OutOfMemory));
        agrees(&heap, &ledger);
        // SAFETY: live, freed once each.
        unsafe {
            heap.free(q).unwrap();
            heap.free(keep).unwrap();
        }
        agrees(&heap, &ledger);
        drop(heap);
        clean(&ledger);
        let l = ledger.borrow();
        assert_eq!((l.releases, l.live.len()), (1, 0), "({misalign}, {tail})");
    }
}

#[test]
fn a_region_too_small_to_use_goes_back_to_its_source() {
    for (misalign, len) in [(7, 40), (0, 63), (1, 16)] {
        let (source, ledger) = Exact::new(4096, &[(misalign, len)]);
        let mut heap = Heap::with_parts(source, SegregatedFit::new(), HeapConfig::new());
        assert_eq!(heap.malloc(layout(16)), Err(AllocError::OutOfMemory));
        assert_eq!(heap.region_count(), 0);
        agrees(&heap, &ledger);
        let l = ledger.borrow();
        assert_eq!(
            (l.grows, l.releases),
            (1, 1),
            "({misalign}, {len}) was kept"
        );
    }
}

#[test]
fn every_offset_and_tail_round_trips() {
    // Two regions per heap, at each offset from a 16-byte boundary and with each odd tail; a
    // few blocks in each, freed in turn, then everything given back.
    let tails: &[usize] = if cfg!(miri) { &[0, 9] } else { &[0, 1, 8, 15] };
    for misalign in 0..16 {
        for &tail in tails {
            let queue = [
                (misalign, 2048 + tail),
                ((misalign * 7) % 16, 4096 + 15 - tail),
            ];
            let (source, ledger) = Exact::new(1024, &queue);
            let config = HeapConfig::new().with_trim_threshold(1024);
            let mut heap = Heap::with_parts(source, SegregatedFit::new(), config);
            let mut ptrs = Vec::new();
            for size in [40, 700, 3000, 24, 500] {
                ptrs.push(heap.malloc(layout(size)).unwrap());
                agrees(&heap, &ledger);
            }
            for p in ptrs {
                // SAFETY: live, freed once.
                unsafe { heap.free(p) }.unwrap();
                agrees(&heap, &ledger);
            }
            heap.release_free_memory();
            agrees(&heap, &ledger);
            drop(heap);
            clean(&ledger);
            let l = ledger.borrow();
            assert!(l.live.is_empty(), "({misalign}, {tail}): a region was kept");
            assert_eq!(l.grows, l.releases);
        }
    }
}
