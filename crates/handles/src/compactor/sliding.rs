//! `Sliding`: order-preserving compaction in the Lisp-2 style.
//!
//! Each unpinned block slides down into the hole just below it, so blocks keep their address
//! order and each one moves at most once per pass. A pinned block is a barrier: blocks above it
//! slide down only as far as its end. Invariant of the cursor `scan`: at the last step's end,
//! no hole below `scan` could take a block from above it without passing a barrier.

use super::{Budget, Compactor, Progress, Relocator};
use crate::free_space::align_up;

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
            heap.slide_all_from(self.scan);
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
                    if let Some(to) = align_up(hole.start, block.align) {
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
