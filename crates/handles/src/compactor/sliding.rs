//! `Sliding`: order-preserving compaction in the Lisp-2 style.
//!
//! Each unpinned block slides down into the hole just below it, so blocks keep their address
//! order and each one moves at most once per pass. A pinned block is a barrier: blocks above it
//! slide down only as far as its end. Invariant of the cursor `scan`: at the last step's end,
//! no hole below `scan` could take a block from above it without passing a barrier.

use super::{Budget, Compactor, Progress, Relocator};
use crate::prefetch;
use crate::store::BulkParts;

/// Order-preserving sliding compaction (the default). With nothing pinned, a full pass leaves
/// no holes but the padding that alignment requires between neighbours (none if all blocks
/// share one alignment); see [`Arena::compact`](crate::Arena::compact).
#[derive(Clone, Debug, Default)]
pub struct Sliding {
    scan: usize,
}

impl Sliding {
    /// A new sliding compactor.
    pub fn new() -> Sliding {
        Sliding { scan: 0 }
    }
}

impl Compactor for Sliding {
    fn begin(&mut self) {
        self.scan = 0;
    }

    fn step(&mut self, heap: &mut Relocator<'_>) -> Progress {
        if heap.budget() == Budget::Unlimited {
            // The whole rest of the pass in one bulk slide.
            let at = self.scan;
            heap.bulk(|parts| slide_from(parts, at));
            self.scan = heap.top();
            return Progress::Done;
        }
        loop {
            if heap.exhausted() {
                return Progress::Paused;
            }
            let Some(block) = heap.next_block(self.scan) else {
                return Progress::Done;
            };
            if !block.pinned {
                if let Some(hole) = heap.hole_before(block.offset) {
                    if let Some(to) = hole.start.checked_next_multiple_of(block.align) {
                        if to < block.offset && heap.move_block(block.offset, to).is_ok() {
                            self.scan = to + block.len;
                            continue;
                        }
                    }
                }
            }
            self.scan = block.end();
        }
    }

    fn name(&self) -> &'static str {
        "sliding"
    }
}

/// Slides every block starting at or after `at` down into the free space below it, in
/// address order, pinned blocks staying put as barriers; then rebuilds the space map above
/// the first hole in one go. Returns (blocks moved, bytes moved).
pub(crate) fn slide_from(parts: BulkParts<'_>, at: usize) -> (usize, usize) {
    let BulkParts { base, table, space } = parts;
    space.make_flat();
    let Some(first) = space.live.first_from(at) else {
        return (0, 0);
    };
    let start = space.hole_ending_at(first).map_or(first, |h| h.start);
    let mut dst = start;
    let mut holes = Vec::new();
    let (mut moves, mut bytes) = (0, 0);
    let mut copier = SlideCopier::new(base);
    let entries = table.entry_hints();
    let ahead = |off: usize, len: usize, index: u32| {
        prefetch::block(base.wrapping_add(off), len);
        entries.prefetch(index);
    };
    space.live.slide_from(at, ahead, |off, len, index| {
        let (align, pinned) = table.align_and_pinned(index);
        // dst never passes off: it is the end of the previous block's new place, which is
        // at or below that block's old end; off is aligned, so aligning dst up stays <= off.
        let to = if pinned {
            off
        } else {
            (dst + align - 1) & !(align - 1)
        };
        debug_assert!(dst <= to && to <= off);
        if to > dst {
            holes.push((dst, to - dst));
        }
        if to != off {
            // SAFETY: [off, off + len) is a live block inside the buffer; [to, to + len)
            // lies below it, at or above the previous block's new end, in space that is
            // free or vacated (the contract of SlideCopier::copy).
            unsafe { copier.copy(off, to, len) };
            table.set_offset(index, to);
            moves += 1;
            bytes += len;
        }
        dst = to + len;
        to
    });
    copier.finish();
    space.replace_holes_from(start, holes, dst);
    (moves, bytes)
}

/// Performs the copies of a slide in block order. Blocks whose old and new places are both
/// adjacent to the previous block's move as one run, with one `memmove`.
///
/// Invariant: the pending run's destination ends at or below the source of every block not
/// yet handed to `copy`.
struct SlideCopier {
    base: *mut u8,
    run_from: usize,
    run_to: usize,
    run_len: usize,
}

impl SlideCopier {
    fn new(base: *mut u8) -> SlideCopier {
        SlideCopier {
            base,
            run_from: 0,
            run_to: 0,
            run_len: 0,
        }
    }

    /// Moves the block `[from, from + len)` to `to < from`.
    ///
    /// # Safety
    /// Both ranges lie inside the buffer at `base`; blocks are handed over in address order,
    /// each destination starting at or above the previous block's destination end and at or
    /// below its own source, and no other block lives in the destination.
    unsafe fn copy(&mut self, from: usize, to: usize, len: usize) {
        if self.run_len > 0
            && self.run_from + self.run_len == from
            && self.run_to + self.run_len == to
        {
            self.run_len += len;
        } else {
            self.flush_run();
            (self.run_from, self.run_to, self.run_len) = (from, to, len);
        }
    }

    fn flush_run(&mut self) {
        if self.run_len > 0 {
            // SAFETY: the run's blocks are live in the buffer and its destination is free or
            // vacated (the contract of `copy`); ptr::copy allows the two to overlap.
            unsafe {
                core::ptr::copy(
                    self.base.add(self.run_from),
                    self.base.add(self.run_to),
                    self.run_len,
                )
            };
            self.run_len = 0;
        }
    }

    /// Writes out whatever is pending.
    fn finish(mut self) {
        self.flush_run();
    }
}
