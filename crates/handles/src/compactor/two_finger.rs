//! `TwoFinger`: evacuate blocks from the top into the lowest holes that fit.
//!
//! One finger walks down from the top of the used space over live blocks; for each unpinned
//! block it takes the lowest-addressed hole below the block that can hold it, and moves the
//! block there. Blocks that fit nowhere stay. The pass ends when the fingers meet (no hole lies
//! below the next block). Address order is not kept; fewer bytes move than with sliding, since
//! only blocks above the holes move, but holes too small for any block above them can remain.
//! Invariant of the cursor `finger`: blocks at or above it have been considered in this pass.

use super::{Budget, Compactor, Progress, Relocator};
use crate::prefetch;
use crate::space_map::fit_tree::FitTree;
use crate::space_map::live_index::Walk;
use crate::store::BulkParts;

/// Top-down evacuation into the lowest fitting holes (the classic two-finger algorithm,
/// generalised to blocks of different sizes).
#[derive(Clone, Debug, Default)]
pub struct TwoFinger {
    finger: Option<usize>,
}

impl TwoFinger {
    /// A new two-finger compactor.
    pub fn new() -> TwoFinger {
        TwoFinger { finger: None }
    }
}

impl Compactor for TwoFinger {
    fn begin(&mut self) {
        self.finger = None;
    }

    fn step(&mut self, heap: &mut Relocator<'_>) -> Progress {
        if heap.budget() == Budget::Unlimited {
            // The whole rest of the pass in one bulk evacuation.
            let below = self.finger.unwrap_or(usize::MAX);
            heap.bulk(|parts| evacuate_below(parts, below));
            self.finger = Some(0);
            return Progress::Done;
        }
        loop {
            if heap.exhausted() {
                return Progress::Paused;
            }
            let finger = self.finger.unwrap_or(usize::MAX);
            let Some(block) = heap.prev_block(finger) else {
                return Progress::Done;
            };
            self.finger = Some(block.offset);
            match heap.holes().next() {
                Some(lowest) if lowest.start < block.offset => {}
                // The fingers have met: no hole below this block.
                _ => return Progress::Done,
            }
            if block.pinned {
                continue;
            }
            // The lowest hole below the block that fits it: first fit in address order.
            let target = heap
                .holes()
                .take_while(|hole| hole.start < block.offset)
                .find_map(|hole| {
                    let start = hole.start.checked_next_multiple_of(block.align)?;
                    (start + block.len <= hole.end).then_some(start)
                });
            if let Some(to) = target {
                // A failed move (impossible for a fitting hole) just leaves the block in place.
                let _ = heap.move_block(block.offset, to);
            }
        }
    }

    fn name(&self) -> &'static str {
        "two-finger"
    }
}

/// Moves unpinned blocks starting below `below`, from the highest down, each into the
/// lowest hole under it that fits, until no hole is left under the next block (the two
/// fingers meet); then rebuilds the space map in one go. Returns (blocks moved, bytes
/// moved).
///
/// This is the bulk form of [`TwoFinger`]'s pass. One difference: the
/// padding that aligning a block within a hole leaves below it becomes a hole after the
/// pass, not during it, so later blocks of the same pass do not fill it.
pub(crate) fn evacuate_below(parts: BulkParts<'_>, below: usize) -> (usize, usize) {
    let BulkParts { base, table, space } = parts;
    // Holes in address order as (start, end); a hole's start rises as blocks fill it.
    let mut holes: Vec<(usize, usize)> = (space.live.gaps().0)
        .into_iter()
        .map(|(start, len)| (start, start + len))
        .collect();
    let lens: Vec<usize> = holes.iter().map(|&(s, e)| e - s).collect();
    // The tree's lengths are upper bounds, brought down to a hole's real length when a
    // search meets it: most blocks go to the lowest hole, which is tried first.
    let mut fit = FitTree::new(&lens);
    let (mut moves, mut bytes) = (0, 0);
    // Holes below `low` are full.
    let mut low = 0;
    let entries = table.entry_hints();
    let ahead = |off: usize, len: usize, index: u32| {
        prefetch::block(base.wrapping_add(off), len);
        entries.prefetch(index);
    };
    space.live.walk_down(below, ahead, |off, len, index| {
        while low < holes.len() && holes[low].0 == holes[low].1 {
            low += 1;
        }
        if low == holes.len() || holes[low].0 >= off {
            return Walk::Stop;
        }
        let (align, pinned) = table.align_and_pinned(index);
        if pinned {
            return Walk::Stay;
        }
        let fits = |(start, end): (usize, usize)| {
            start
                .checked_next_multiple_of(align)
                .filter(|&to| to.checked_add(len).is_some_and(|e| e <= end))
        };
        let target = match fits(holes[low]) {
            Some(to) => Some((low, to)),
            None => {
                // Holes starting below the block end at or below it: none overlaps it.
                let under = holes.partition_point(|h| h.0 < off);
                let mut from = low + 1;
                loop {
                    let Some(i) = fit.first_fit(from, under, len) else {
                        break None;
                    };
                    let (start, end) = holes[i];
                    if end - start < len {
                        // A stale bound: correct it and search again from the same place.
                        fit.set(i, end - start);
                        continue;
                    }
                    match fits(holes[i]) {
                        Some(to) => break Some((i, to)),
                        None => from = i + 1,
                    }
                }
            }
        };
        let Some((i, to)) = target else {
            return Walk::Stay;
        };
        // SAFETY: [off, off + len) is a live block in the buffer; [to, to + len) lies
        // inside a hole below it, so the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(base.add(off), base.add(to), len) };
        table.set_offset(index, to);
        holes[i].0 = to + len;
        // The holes a few blocks on will take these blocks' bytes: fetch their lines
        // now, so that the writes do not wait for them.
        if let Some(&(start, end)) = holes.get(low + prefetch::DISTANCE) {
            prefetch::block(base.wrapping_add(start), end - start);
        }
        moves += 1;
        bytes += len;
        Walk::MoveTo(to)
    });
    space.rebuild_holes();
    (moves, bytes)
}
