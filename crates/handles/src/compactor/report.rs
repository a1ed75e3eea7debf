//! The report of one compaction run (a full pass or one incremental step).
//!
//! Invariant: "before" fields describe the arena when the run began, "after" fields when it
//! ended; `blocks_moved` and `bytes_moved` count only this run.

use std::time::Duration;

/// What one compaction run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Blocks moved.
    pub blocks_moved: usize,
    /// Bytes copied.
    pub bytes_moved: usize,
    /// Holes before the run.
    pub holes_before: usize,
    /// Holes after the run.
    pub holes_after: usize,
    /// Largest hole before the run.
    pub largest_hole_before: usize,
    /// Largest hole after the run.
    pub largest_hole_after: usize,
    /// Buffer capacity before the run.
    pub footprint_before: usize,
    /// Buffer capacity after the run (after any shrink).
    pub footprint_after: usize,
    /// Wall-clock time the run took.
    pub elapsed: Duration,
    /// Whether the pass is complete (always true for a full compaction).
    pub finished: bool,
}

impl CompactionReport {
    /// Folds a later step of the same pass into this report.
    pub fn merge(&mut self, later: &CompactionReport) {
        self.blocks_moved += later.blocks_moved;
        self.bytes_moved += later.bytes_moved;
        self.holes_after = later.holes_after;
        self.largest_hole_after = later.largest_hole_after;
        self.footprint_after = later.footprint_after;
        self.elapsed += later.elapsed;
        self.finished = later.finished;
    }
}
