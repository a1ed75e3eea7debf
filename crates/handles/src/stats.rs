//! A snapshot of the arena's space accounting.
//!
//! Invariant: blocks and holes tile the used span exactly, so `live_bytes + hole_bytes ==
//! used_span`, and `used_span <= footprint`.

/// Space accounting for an [`Arena`](crate::Arena), from [`Arena::stats`](crate::Arena::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Live values and byte blocks.
    pub live_blocks: usize,
    /// Bytes held by live blocks (each block's length rounded up to its alignment).
    pub live_bytes: usize,
    /// Bytes from the start of the buffer to the end of the highest live block.
    pub used_span: usize,
    /// The buffer's capacity: the memory the arena holds for blocks.
    pub footprint: usize,
    /// Bytes of the handle table (the master pointers), which the footprint does not include.
    pub table_bytes: usize,
    /// Free gaps between live blocks, alignment padding included: any gap can take a later
    /// block that fits in it.
    pub holes: usize,
    /// Total bytes in those gaps.
    pub hole_bytes: usize,
    /// The largest gap.
    pub largest_hole: usize,
    /// Blocks with a pin count above zero.
    pub pinned_blocks: usize,
    /// Table slots retired because their generation would have wrapped.
    pub retired_slots: usize,
    /// Blocks moved by compaction since the arena was created.
    pub total_blocks_moved: u64,
    /// Bytes moved by compaction since the arena was created.
    pub total_bytes_moved: u64,
    /// Compaction passes completed.
    pub passes_completed: u64,
}

impl ArenaStats {
    /// The share of the used span lost to holes: `hole_bytes / used_span` (0 when empty). This is
    /// what compaction removes, and what [`GrowthPolicy::Defrag`](crate::GrowthPolicy::Defrag)
    /// compares with its threshold.
    pub fn fragmentation(&self) -> f64 {
        if self.used_span == 0 {
            0.0
        } else {
            self.hole_bytes as f64 / self.used_span as f64
        }
    }

    /// `1 - largest free block / total free`, counting the free tail above the used span as one
    /// free block: the same measure malloc's statistics use, so the two can be compared.
    pub fn external_fragmentation(&self) -> f64 {
        let tail = self.footprint - self.used_span;
        let free = self.hole_bytes + tail;
        if free == 0 {
            0.0
        } else {
            1.0 - self.largest_hole.max(tail) as f64 / free as f64
        }
    }

    /// Bytes the arena holds beyond what live blocks need: holes plus the free tail.
    pub fn overhead_bytes(&self) -> usize {
        self.footprint - self.live_bytes
    }
}
