//! When the arena compacts and when it grows: [`GrowthPolicy`] and the [`ArenaConfig`] that
//! carries it.
//!
//! Invariant: `max_capacity` and `initial_capacity` are whole pages once a config is built.

use crate::buffer::PAGE;
use crate::compactor::Budget;

/// What the arena does when an allocation finds no room, and whether it defragments on its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GrowthPolicy {
    /// On allocation failure, compact first and grow only if that does not make room: the
    /// classic Mac OS Memory Manager (`NewHandle` compacted the heap zone before growing it).
    ///
    /// Precisely: when no hole and no room above the used span fits a request, but the holes
    /// and that room together hold at least as many bytes as it asks for, the arena runs a
    /// full pass of its compactor (which also ends any paused incremental pass), and grows
    /// only if the request still does not fit. If the buffer cannot grow either
    /// ([`ArenaError::OutOfMemory`](crate::ArenaError::OutOfMemory),
    /// [`ArenaError::BufferPinned`](crate::ArenaError::BufferPinned)), the call fails *after*
    /// the pass, which stays done: like `NewHandle`, a refused allocation may move memory.
    /// The pass changes no handle, value, pin or pinned address. It shows only where any
    /// completed pass shows: in the addresses of unpinned blocks, in
    /// [`Arena::blocks`](crate::Arena::blocks) and [`Arena::holes`](crate::Arena::holes), and
    /// in the holes, used span, move counters and `passes_completed` of
    /// [`ArenaStats`](crate::ArenaStats). This is the only way a refused call changes an arena.
    CompactThenGrow,
    /// After each insert, remove or resize, run one incremental step with `step` as its budget
    /// while [`fragmentation`](crate::ArenaStats::fragmentation) is above `threshold` (and at
    /// least a page is in holes): Redis-style active defragmentation. On allocation failure,
    /// grow.
    Defrag {
        /// Fragmentation (hole bytes / used span) above which steps run, e.g. `0.25`.
        threshold: f64,
        /// The budget of each step.
        step: Budget,
    },
    /// Never compact on its own; on allocation failure, grow. Compaction runs only on request.
    Manual,
}

/// Construction settings for an [`Arena`](crate::Arena).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArenaConfig {
    /// The growth/compaction policy.
    pub policy: GrowthPolicy,
    /// Capacity allocated up front, in bytes (rounded up to a page). Shrinking never goes below
    /// it. Reserve room here if blocks will be pinned, since a pinned buffer cannot grow.
    pub initial_capacity: usize,
    /// The buffer never grows beyond this many bytes (rounded down to a page), like a fixed
    /// heap zone. `usize::MAX` means unbounded.
    pub max_capacity: usize,
    /// Whether a completed compaction pass shrinks the buffer to fit.
    pub shrink_after_compaction: bool,
}

impl ArenaConfig {
    /// The defaults: compact-then-grow, no initial capacity, no limit, shrink after compaction.
    pub const fn new() -> ArenaConfig {
        ArenaConfig {
            policy: GrowthPolicy::CompactThenGrow,
            initial_capacity: 0,
            max_capacity: usize::MAX,
            shrink_after_compaction: true,
        }
    }

    /// Sets the policy.
    pub const fn policy(mut self, policy: GrowthPolicy) -> ArenaConfig {
        self.policy = policy;
        self
    }

    /// Sets the initial (and minimum) capacity.
    pub const fn initial_capacity(mut self, bytes: usize) -> ArenaConfig {
        self.initial_capacity = bytes;
        self
    }

    /// Sets the maximum capacity.
    pub const fn max_capacity(mut self, bytes: usize) -> ArenaConfig {
        self.max_capacity = bytes;
        self
    }

    /// Sets whether completed passes shrink the buffer.
    pub const fn shrink_after_compaction(mut self, yes: bool) -> ArenaConfig {
        self.shrink_after_compaction = yes;
        self
    }

    pub(crate) fn normalized(mut self) -> ArenaConfig {
        self.max_capacity -= self.max_capacity % PAGE;
        self.initial_capacity = self
            .initial_capacity
            .checked_next_multiple_of(PAGE)
            .unwrap_or(self.max_capacity)
            .min(self.max_capacity);
        self
    }
}

impl Default for ArenaConfig {
    fn default() -> Self {
        ArenaConfig::new()
    }
}
