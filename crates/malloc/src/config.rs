//! How a heap behaves: its coalescing mode and when it gives memory back ([`HeapConfig`]).
//!
//! Invariant: a configuration is plain data, fixed when the heap is made; every mode works with
//! every policy and every source.

/// When free neighbours are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coalescing {
    /// On every free, merge with a free block before or after (O(1) with boundary tags).
    Immediate,
    /// Free blocks are left as they are; the whole heap is merged in one pass when an
    /// allocation would otherwise fail or grow the heap (or on
    /// [`Heap::coalesce`](crate::Heap::coalesce)). The pass is kept even when the allocation
    /// fails anyway: its merges serve the requests that follow.
    Deferred,
    /// Never merge: free blocks only ever get split further. `coalesce()` does nothing, and a
    /// growing `realloc` moves the block rather than absorb a free block after it.
    Never,
}

impl Coalescing {
    /// All three modes.
    pub const ALL: [Coalescing; 3] = [
        Coalescing::Immediate,
        Coalescing::Deferred,
        Coalescing::Never,
    ];
}

/// The tunables of a [`Heap`](crate::Heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeapConfig {
    /// When free neighbours are merged.
    pub coalescing: Coalescing,
    /// When a `free` leaves a free block of at least this many bytes at the end of a region,
    /// memory goes back to the source: the whole region if the block fills it (never the first
    /// region), and otherwise the pages the block has touched beyond its first half-threshold,
    /// dropped in place (madvise for the OS source; the region keeps its size, so regions stay
    /// few). Pages are dropped at least half a threshold at a time, so a heap hovering around one
    /// size does not make a system call on every free. `usize::MAX` disables trimming on free;
    /// [`Heap::release_free_memory`](crate::Heap::release_free_memory) still gives back memory
    /// on demand, and unmaps region tails.
    pub trim_threshold: usize,
}

impl HeapConfig {
    /// The default trim threshold: 1 MiB.
    pub const DEFAULT_TRIM_THRESHOLD: usize = 1 << 20;

    /// Immediate coalescing and a 1 MiB trim threshold.
    pub const fn new() -> Self {
        HeapConfig {
            coalescing: Coalescing::Immediate,
            trim_threshold: Self::DEFAULT_TRIM_THRESHOLD,
        }
    }

    /// This configuration with another coalescing mode.
    pub const fn with_coalescing(mut self, coalescing: Coalescing) -> Self {
        self.coalescing = coalescing;
        self
    }

    /// This configuration with another trim threshold.
    pub const fn with_trim_threshold(mut self, trim_threshold: usize) -> Self {
        self.trim_threshold = trim_threshold;
        self
    }
}

impl Default for HeapConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_change_one_field_each() {
        let c = HeapConfig::new()
            .with_coalescing(Coalescing::Never)
            .with_trim_threshold(4096);
        assert_eq!(c.coalescing, Coalescing::Never);
        assert_eq!(c.trim_threshold, 4096);
        assert_eq!(HeapConfig::default(), HeapConfig::new());
        assert_eq!(HeapConfig::new().coalescing, Coalescing::Immediate);
    }
}
