//! The handle arena as a replay subject: freespace-handles' `Arena` with one compactor, under
//! its default compact-then-grow policy.
//!
//! Invariant: `live` maps every live trace id to its handle and `requested` is the sum of the
//! sizes the trace asked for in those blocks. A compaction pass is recognised by the arena's
//! own pass counter, and its bytes by the arena's own moved-bytes counter.

use std::collections::HashMap;

use freespace_handles::{Arena, Compactor, Handle, Sliding, TwoFinger};

use super::{Family, MapBlock, Subject, SubjectError};

/// An `Arena<C>` driven by a trace.
pub struct ArenaSubject<C: Compactor> {
    arena: Arena<C>,
    label: &'static str,
    live: HashMap<u64, (Handle<[u8]>, usize)>,
    requested: usize,
    passes: Vec<(usize, usize, usize)>,
}

impl<C: Compactor> std::fmt::Debug for ArenaSubject<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArenaSubject")
            .field("label", &self.label)
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl ArenaSubject<Sliding> {
    /// An arena that compacts with `Sliding` (order-preserving).
    pub fn sliding() -> Self {
        ArenaSubject::with(Arena::with_compactor(Sliding::new()), "arena sliding")
    }
}

impl ArenaSubject<TwoFinger> {
    /// An arena that compacts with `TwoFinger` (fills low holes from the top).
    pub fn two_finger() -> Self {
        ArenaSubject::with(Arena::with_compactor(TwoFinger::new()), "arena two-finger")
    }
}

impl<C: Compactor> ArenaSubject<C> {
    fn with(arena: Arena<C>, label: &'static str) -> Self {
        ArenaSubject {
            arena,
            label,
            live: HashMap::new(),
            requested: 0,
            passes: Vec::new(),
        }
    }

    /// Runs `op` and records a compaction pass if the arena ran one meanwhile.
    fn observe<T>(&mut self, op: impl FnOnce(&mut Arena<C>) -> T) -> T {
        let before = self.arena.stats();
        let out = op(&mut self.arena);
        let after = self.arena.stats();
        if after.passes_completed > before.passes_completed {
            self.passes.push((
                before.used_span,
                after.used_span,
                (after.total_bytes_moved - before.total_bytes_moved) as usize,
            ));
        }
        out
    }
}

impl<C: Compactor> Subject for ArenaSubject<C> {
    fn name(&self) -> String {
        self.label.to_string()
    }

    fn family(&self) -> Family {
        Family::Arena
    }

    fn alloc(&mut self, id: u64, size: usize, align: usize) -> Result<(), SubjectError> {
        let h = self
            .observe(|a| a.try_alloc_bytes(size, align))
            .map_err(|e| SubjectError(format!("allocation of {size} bytes failed: {e}")))?;
        self.live.insert(id, (h, size));
        self.requested += size;
        Ok(())
    }

    fn free(&mut self, id: u64) -> Result<(), SubjectError> {
        let (h, size) = self
            .live
            .remove(&id)
            .ok_or_else(|| SubjectError(format!("id {id} is not live")))?;
        self.observe(|a| a.free_bytes(h))
            .map_err(|e| SubjectError(format!("free refused: {e}")))?;
        self.requested -= size;
        Ok(())
    }

    fn realloc(&mut self, id: u64, size: usize) -> Result<(), SubjectError> {
        let (h, old) = *self
            .live
            .get(&id)
            .ok_or_else(|| SubjectError(format!("id {id} is not live")))?;
        self.observe(|a| a.resize(h, size))
            .map_err(|e| SubjectError(format!("resize to {size} bytes failed: {e}")))?;
        self.live.insert(id, (h, size));
        self.requested = self.requested - old + size;
        Ok(())
    }

    // The trait's footprint is the span up to the highest live block, which the arena calls
    // `used_span`; its own `footprint` field is the buffer's capacity.
    #[allow(clippy::misnamed_getters)]
    fn footprint(&self) -> usize {
        self.arena.stats().used_span
    }

    fn external(&self) -> f64 {
        // Holes lie below the used span by definition; the free tail above it is not a hole.
        let s = self.arena.stats();
        if s.hole_bytes == 0 {
            0.0
        } else {
            1.0 - s.largest_hole as f64 / s.hole_bytes as f64
        }
    }

    fn internal(&self) -> f64 {
        let live = self.arena.stats().live_bytes;
        if live == 0 {
            0.0
        } else {
            live.saturating_sub(self.requested) as f64 / live as f64
        }
    }

    fn search_per_alloc(&self) -> Option<f64> {
        None
    }

    fn bytes_moved(&self) -> Option<u64> {
        Some(self.arena.stats().total_bytes_moved)
    }

    fn take_compactions(&mut self) -> Vec<(usize, usize, usize)> {
        std::mem::take(&mut self.passes)
    }

    fn heap_map(&self) -> Vec<MapBlock> {
        let mut map: Vec<MapBlock> = self
            .arena
            .blocks()
            .map(|(offset, len)| MapBlock {
                offset,
                len,
                used: true,
            })
            .chain(self.arena.holes().map(|(offset, len)| MapBlock {
                offset,
                len,
                used: false,
            }))
            .collect();
        map.sort_by_key(|b| b.offset);
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_subject_counts_requested_bytes_and_maps_the_buffer() {
        let mut s = ArenaSubject::sliding();
        for id in 0..64 {
            s.alloc(id, 100, 8).unwrap();
        }
        for id in (0..64).step_by(2) {
            s.free(id).unwrap();
        }
        s.realloc(1, 50).unwrap();
        assert_eq!(s.requested, 31 * 100 + 50);
        let map = s.heap_map();
        let used: usize = map.iter().filter(|b| b.used).map(|b| b.len).sum();
        assert_eq!(used, s.arena.stats().live_bytes);
        assert!(map
            .windows(2)
            .all(|w| w[0].offset + w[0].len <= w[1].offset));
        assert_eq!(
            map.iter().map(|b| b.len).sum::<usize>(),
            s.footprint(),
            "blocks and holes tile the used span"
        );
    }
}
