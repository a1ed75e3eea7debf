//! Exact heap statistics, and the two fragmentation measures the chapter defines.
//!
//! The numbers are kept exactly, not sampled: `check()` recomputes them by walking the heap and
//! reports [`Corruption::StatsMismatch`](crate::Corruption::StatsMismatch) if they ever disagree.

/// A snapshot of a heap's bookkeeping. All sizes are in bytes.
///
/// The identity `heap_bytes == allocated_bytes + free_bytes + header_bytes + overhead_bytes`
/// always holds, where `overhead_bytes` covers what belongs to no block (region headers, end
/// sentinels, and the bytes of a source's region outside its 16-byte-aligned part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeapStats {
    /// Bytes under management: the sum of all regions obtained from the source.
    pub heap_bytes: usize,
    /// Usable payload bytes in live (allocated) blocks, headers excluded.
    pub allocated_bytes: usize,
    /// Bytes the callers asked for in the live blocks. `allocated_bytes - requested_bytes` is the
    /// internal fragmentation.
    pub requested_bytes: usize,
    /// Bytes in free blocks, headers included: what a future allocation could carve up.
    pub free_bytes: usize,
    /// Number of free blocks.
    pub free_blocks: usize,
    /// Size of the largest free block, header included.
    pub largest_free_block: usize,
    /// Bytes taken by the headers of live blocks.
    pub header_bytes: usize,
    /// Bytes that belong to no block: region headers, end-of-region sentinels, and the bytes of
    /// a source's region outside its 16-byte-aligned part.
    pub overhead_bytes: usize,
    /// Number of live blocks.
    pub live_blocks: usize,
    /// Allocations served since the heap was made.
    pub allocations: u64,
    /// Frees accepted since the heap was made.
    pub frees: u64,
    /// Free-list elements examined by all searches so far, as the textbook simulator counts them.
    pub searched: u64,
}

impl HeapStats {
    /// External fragmentation: `1 - largest free block / total free bytes`, or 0 when nothing is free.
    ///
    /// 0 means all free memory is one block; values near 1 mean free memory is shattered into
    /// pieces too small to serve a large request.
    pub fn external_fragmentation(&self) -> f64 {
        if self.free_bytes == 0 {
            0.0
        } else {
            1.0 - self.largest_free_block as f64 / self.free_bytes as f64
        }
    }

    /// Internal fragmentation: `(allocated - requested) / allocated`, or 0 when nothing is live.
    ///
    /// This is the space wasted inside blocks by rounding and by remainders too small to split.
    pub fn internal_fragmentation(&self) -> f64 {
        if self.allocated_bytes == 0 {
            0.0
        } else {
            (self.allocated_bytes - self.requested_bytes) as f64 / self.allocated_bytes as f64
        }
    }

    /// Average free-list elements examined per allocation.
    pub fn search_per_alloc(&self) -> f64 {
        if self.allocations == 0 {
            0.0
        } else {
            self.searched as f64 / self.allocations as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragmentation_measures() {
        let s = HeapStats {
            free_bytes: 30,
            largest_free_block: 10,
            allocated_bytes: 200,
            requested_bytes: 150,
            ..HeapStats::default()
        };
        assert!((s.external_fragmentation() - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.internal_fragmentation() - 0.25).abs() < 1e-12);
        assert_eq!(HeapStats::default().external_fragmentation(), 0.0);
        assert_eq!(HeapStats::default().internal_fragmentation(), 0.0);
    }
}
