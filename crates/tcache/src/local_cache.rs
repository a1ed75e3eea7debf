//! A thread's cache: one free list per size class, touched only by its own thread, so the fast
//! paths take no lock and do no atomic read-modify-write. Invariant: bin `c` holds exactly
//! `count` objects of class `c` on a null-terminated list, and `count <= max`. `max` stays within
//! `bin_limit`, except that a refill which took a span's whole free list widens it to fit (at
//! most one span's worth), and scavenging narrows it again.
//!
//! Capacity adapts per class: `max` starts at a page's worth of objects (at most a batch), doubles
//! up to a batch and then grows by a batch on every miss and every overflow (slow start, as in
//! tcmalloc) while the thread's total capacity stays within a 2 MiB
//! budget, and every `SCAVENGE_PERIOD` slow-path events each bin
//! that saw no slow-path traffic gives back half of what it holds and halves its `max`.

use crate::central::Central;
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::span::FreeObj;
use core::cell::Cell;
use core::ptr;

/// The total capacity (in bytes) a thread's bins may grow to beyond one batch each.
const THREAD_BUDGET: usize = 2 << 20;

/// Slow-path events between two scavenges of idle bins.
const SCAVENGE_PERIOD: u32 = 4096;

/// Asks the CPU to start loading the object the next pop will read, so that walking a list of
/// cold objects does not stall on each one (as tcmalloc does). A hint only: it never faults, even
/// for null.
#[inline(always)]
fn prefetch(p: *const FreeObj) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint with no memory-safety requirement; SSE is baseline on x86_64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One class's free list: 16 bytes, so four bins share a cache line.
pub(crate) struct Bin {
    head: Cell<*mut FreeObj>,
    count: Cell<u32>,
    max: Cell<u32>,
}

impl Bin {
    const fn new() -> Bin {
        Bin {
            head: Cell::new(ptr::null_mut()),
            count: Cell::new(0),
            max: Cell::new(0),
        }
    }

    /// Unlinks the first `n` objects (`n <= count`) as a null-terminated list.
    fn cut(&self, n: u32) -> *mut FreeObj {
        debug_assert!(n >= 1 && n <= self.count.get());
        let head = self.head.get();
        let mut tail = head;
        for _ in 1..n {
            // SAFETY: the bin holds `count >= n` objects on its list.
            tail = unsafe { (*tail).next };
        }
        // SAFETY: `tail` is the n-th object of the list.
        unsafe {
            self.head.set((*tail).next);
            (*tail).next = ptr::null_mut();
        }
        self.count.set(self.count.get() - n);
        head
    }
}

/// A thread's per-class free lists.
pub(crate) struct LocalCache {
    bins: [Bin; NUM_CLASSES],
    /// Slow-path events per bin since the last scavenge (kept apart from the hot bins).
    events: [Cell<u32>; NUM_CLASSES],
    slow_events: Cell<u32>,
    /// The sum over bins of `max * size`: a bound on the bytes this cache can hold.
    capacity_bytes: Cell<usize>,
}

impl Default for LocalCache {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCache {
    /// An empty cache, with every capacity at zero (so the first free takes the slow path).
    pub(crate) const fn new() -> LocalCache {
        LocalCache {
            bins: [const { Bin::new() }; NUM_CLASSES],
            events: [const { Cell::new(0) }; NUM_CLASSES],
            slow_events: Cell::new(0),
            capacity_bytes: Cell::new(0),
        }
    }

    /// Fast path: pops an object of class `c`, or returns null if the bin is empty.
    #[inline(always)]
    pub(crate) fn pop(&self, c: usize) -> *mut u8 {
        let bin = &self.bins[c];
        let head = bin.head.get();
        if head.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a non-null head is a free object owned by this bin.
        let next = unsafe { (*head).next };
        bin.head.set(next);
        prefetch(next);
        // SAFETY: as above; the object is ours now.
        unsafe { FreeObj::unmark(head) };
        bin.count.set(bin.count.get() - 1);
        head.cast()
    }

    /// Fast path: pushes `p` onto bin `c` if the bin has room; returns false if it is full.
    ///
    /// # Safety
    /// `p` is an object of class `c` that the caller owns and will not use again.
    #[inline(always)]
    pub(crate) unsafe fn push(&self, c: usize, p: *mut u8) -> bool {
        let bin = &self.bins[c];
        let count = bin.count.get();
        if count >= bin.max.get() {
            return false;
        }
        // SAFETY: the caller hands `p` over; objects are at least 16 bytes.
        bin.head.set(unsafe { FreeObj::push(p, bin.head.get()) });
        bin.count.set(count + 1);
        true
    }

    /// Sets bin `c`'s capacity, keeping `capacity_bytes` in step.
    fn set_max(&self, c: usize, max: u32) {
        let bin = &self.bins[c];
        let size = CLASSES[c].size as usize;
        let old = bin.max.get() as usize * size;
        self.capacity_bytes
            .set(self.capacity_bytes.get() - old + max as usize * size);
        bin.max.set(max);
    }

    /// Grows bin `c`'s capacity: below a batch it starts at the class's first fill (a page of
    /// objects) and doubles, so a class used a little touches little memory; from a batch on it
    /// grows by a batch, up to the class limit, while the thread's total capacity stays within
    /// [`THREAD_BUDGET`]. A bin always gets at least one batch of room.
    fn grow(&self, c: usize) {
        let info = &CLASSES[c];
        let max = self.bins[c].max.get();
        if max < info.batch {
            let next = if max == 0 { info.first_fill } else { max * 2 };
            self.set_max(c, next.min(info.batch));
        } else if max < info.bin_limit {
            let step = (info.batch * info.size) as usize;
            if self.capacity_bytes.get() + step <= THREAD_BUDGET {
                self.set_max(c, (max + info.batch).min(info.bin_limit));
            }
        }
    }

    fn note_slow_event(&self, central: &Central, c: usize) {
        let events = &self.events[c];
        events.set(events.get().saturating_add(1));
        let n = self.slow_events.get() + 1;
        if n >= SCAVENGE_PERIOD {
            self.slow_events.set(0);
            self.scavenge(central);
        } else {
            self.slow_events.set(n);
        }
    }

    /// Gives back half of every bin that saw no slow-path traffic since the last scavenge.
    fn scavenge(&self, central: &Central) {
        for (c, (bin, events)) in self.bins.iter().zip(&self.events).enumerate() {
            if events.get() == 0 && bin.count.get() > 0 {
                let n = bin.count.get().div_ceil(2);
                let list = bin.cut(n);
                // SAFETY: the cut objects are class `c` objects this cache owned.
                unsafe { central.give(c, list, n) };
                self.set_max(c, (bin.max.get() / 2).max(CLASSES[c].batch));
            }
            events.set(0);
        }
    }

    /// Slow path of allocation: the bin is empty. Refills up to one batch (no more than the bin's
    /// capacity, which starts small) from the central list and returns one object of it, or null
    /// when out of memory.
    #[cold]
    pub(crate) fn refill(&self, central: &Central, c: usize) -> *mut u8 {
        let info = &CLASSES[c];
        let bin = &self.bins[c];
        self.grow(c);
        self.note_slow_event(central, c);
        let want = bin.max.get().clamp(1, info.batch);
        let (head, n) = central.take_for_cache(c, want);
        if n == 0 {
            return ptr::null_mut();
        }
        // SAFETY: `take_for_cache` returned `n >= 1` objects; the first is ours, the rest fill
        // the bin, which was empty (it may now hold more than `max`: see the module invariant).
        unsafe {
            bin.head.set((*head).next);
            bin.count.set(n - 1);
            FreeObj::unmark(head);
        }
        // A whole span free list may exceed the capacity: widen it rather than walk the cold list
        // to cut the excess off (scavenging narrows it again once the bin goes idle).
        if n - 1 > bin.max.get() {
            self.set_max(c, n - 1);
        }
        head.cast()
    }

    /// Slow path of free: the bin is full (or not yet enabled). Grows the capacity, and if the bin
    /// is at its limit, sends one batch to the central list.
    ///
    /// # Safety
    /// As for [`LocalCache::push`].
    #[cold]
    pub(crate) unsafe fn overflow(&self, central: &Central, c: usize, p: *mut u8) {
        let info = &CLASSES[c];
        let bin = &self.bins[c];
        self.note_slow_event(central, c);
        self.grow(c);
        let (count, max) = (bin.count.get(), bin.max.get());
        if count >= max {
            // At least a batch, and enough to get back under `max` after a refill overfilled.
            let n = (count + 1 - max).max(info.batch).min(count);
            let list = bin.cut(n);
            // SAFETY: the cut objects are class `c` objects this cache owned.
            unsafe { central.give(c, list, n) };
        }
        // SAFETY: the caller hands `p` over, and the bin has room now.
        let pushed = unsafe { self.push(c, p) };
        debug_assert!(pushed);
    }

    /// Sends every cached object to the central lists, leaving every bin empty and disabled.
    pub(crate) fn flush(&self, central: &Central) {
        for (c, bin) in self.bins.iter().enumerate() {
            let n = bin.count.get();
            if n > 0 {
                let list = bin.cut(n);
                // SAFETY: the cut objects are class `c` objects this cache owned.
                unsafe { central.give(c, list, n) };
            }
            self.set_max(c, 0);
            self.events[c].set(0);
        }
    }

    /// Objects and bytes currently cached.
    pub(crate) fn cached(&self) -> (usize, usize) {
        self.bins
            .iter()
            .enumerate()
            .fold((0, 0), |(o, b), (c, bin)| {
                let n = bin.count.get() as usize;
                (o + n, b + n * CLASSES[c].size as usize)
            })
    }
}
