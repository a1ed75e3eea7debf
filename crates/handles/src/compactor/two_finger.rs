//! `TwoFinger`: evacuate blocks from the top into the lowest holes that fit.
//!
//! One finger walks down from the top of the used space over live blocks; for each unpinned
//! block it takes the lowest-addressed hole below the block that can hold it, and moves the
//! block there. Blocks that fit nowhere stay. The pass ends when the fingers meet (no hole lies
//! below the next block). Address order is not kept; fewer bytes move than with sliding, since
//! only blocks above the holes move, but holes too small for any block above them can remain.
//! Invariant of the cursor `finger`: blocks at or above it have been considered in this pass.

use super::{Budget, Compactor, Progress, Relocator};
use crate::free_space::align_up;

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
            heap.evacuate_all_below(self.finger.unwrap_or(usize::MAX));
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
                    let start = align_up(hole.start, block.align)?;
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
