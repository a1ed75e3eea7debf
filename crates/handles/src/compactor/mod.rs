//! The compaction plug: the [`Compactor`] trait, the checked [`Relocator`] it works through, the
//! [`Budget`] that bounds one incremental step, and the [`CompactionReport`] every run returns.
//!
//! Invariant: a compactor outside this crate can only change the buffer through
//! [`Relocator::move_block`], which refuses pinned blocks, misaligned targets and occupied
//! destinations, so a user-written compactor may plan badly but can never corrupt the arena.
//! The shipped compactors also have a bulk form of their full pass ([`Budget::Unlimited`]),
//! in the same file as the step-by-step form: it moves blocks directly and rebuilds the space
//! map once, and it is reachable only inside the crate (`Relocator::bulk`), where the tests
//! check it against the step-by-step form.

mod report;
pub(crate) mod sliding;
pub(crate) mod two_finger;

pub use report::CompactionReport;
pub use sliding::Sliding;
pub use two_finger::TwoFinger;

use core::fmt;
use core::ops::Range;
use std::time::{Duration, Instant};

use crate::store::{BulkParts, Store};

/// How much work one incremental step ([`Arena::compact_with`](crate::Arena::compact_with)) may
/// do before it pauses. A step always moves at least one block if any block can move, so the
/// bound is the budget plus one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Stop once this many bytes have been moved.
    Bytes(usize),
    /// Stop once this many blocks have been moved.
    Moves(usize),
    /// Stop once this much time has passed since the step began.
    Time(Duration),
    /// Run the pass to completion.
    Unlimited,
}

/// Whether a step finished its pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The pass is complete; the next step starts a new one.
    Done,
    /// The budget ran out; the next step resumes from the compactor's cursor.
    Paused,
}

/// What a compactor sees of one live block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveBlock {
    /// Offset of the block in the buffer.
    pub offset: usize,
    /// Length in bytes (never zero: zero-length blocks occupy no space and never move).
    pub len: usize,
    /// Required alignment of the block's offset.
    pub align: usize,
    /// Whether the block is pinned: a barrier that must not move.
    pub pinned: bool,
}

impl LiveBlock {
    /// One past the block's last byte.
    pub fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// Why [`Relocator::move_block`] refused a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveError {
    /// No live block starts at the given offset.
    NoBlock,
    /// The block is pinned.
    Pinned,
    /// The target offset is not aligned to the block's alignment.
    Misaligned,
    /// Part of the destination is occupied by another block or lies past the buffer's end.
    Occupied,
}

impl fmt::Display for MoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoveError::NoBlock => "no live block at that offset",
            MoveError::Pinned => "the block is pinned",
            MoveError::Misaligned => "the target is misaligned",
            MoveError::Occupied => "the destination is not free",
        })
    }
}

impl std::error::Error for MoveError {}

/// A compaction strategy. It plans moves and performs them through a [`Relocator`], keeping
/// whatever cursor it needs between steps in `self`.
///
/// Between two steps of one pass the program may insert, remove, resize, pin and unpin, so a
/// cursor is a hint (an offset), never a reference to a block; the relocator re-validates
/// every move.
pub trait Compactor {
    /// Starts a new pass: resets the cursor.
    fn begin(&mut self);

    /// Moves blocks until the pass is complete ([`Progress::Done`]) or
    /// [`Relocator::exhausted`] says the budget is spent ([`Progress::Paused`]).
    fn step(&mut self, heap: &mut Relocator<'_>) -> Progress;

    /// A short name for reports and benchmarks.
    fn name(&self) -> &'static str {
        "custom"
    }
}

/// Tracks one step's spending against its [`Budget`].
pub(crate) struct Meter {
    budget: Budget,
    moves: usize,
    bytes: usize,
    started: Instant,
}

impl Meter {
    pub(crate) fn new(budget: Budget) -> Meter {
        Meter {
            budget,
            moves: 0,
            bytes: 0,
            started: Instant::now(),
        }
    }

    fn exhausted(&self) -> bool {
        // At least one move per step, so that every step makes progress.
        if self.moves == 0 {
            return false;
        }
        match self.budget {
            Budget::Bytes(b) => self.bytes >= b,
            Budget::Moves(m) => self.moves >= m,
            Budget::Time(t) => self.started.elapsed() >= t,
            Budget::Unlimited => false,
        }
    }
}

/// A compactor's checked view of the arena during one step: it can look at blocks and holes and
/// move unpinned blocks into free space.
pub struct Relocator<'a> {
    store: &'a mut Store,
    meter: Meter,
}

impl<'a> Relocator<'a> {
    pub(crate) fn new(store: &'a mut Store, budget: Budget) -> Relocator<'a> {
        Relocator {
            store,
            meter: Meter::new(budget),
        }
    }

    pub(crate) fn spent(&self) -> (usize, usize) {
        (self.meter.moves, self.meter.bytes)
    }

    fn info(&self, (offset, len, index): (usize, usize, u32)) -> LiveBlock {
        let slot = self.store.table().slot(index);
        LiveBlock {
            offset,
            len,
            align: slot.align,
            pinned: slot.pins > 0,
        }
    }

    /// Whether this step's budget is spent. Compactors check it before each move.
    pub fn exhausted(&self) -> bool {
        self.meter.exhausted()
    }

    /// The budget of this step.
    pub fn budget(&self) -> Budget {
        self.meter.budget
    }

    /// Runs one of the shipped compactors' bulk passes (see the module's invariant), counting
    /// what it moved against the budget. Returns the blocks and bytes moved.
    pub(crate) fn bulk(
        &mut self,
        pass: impl FnOnce(BulkParts<'_>) -> (usize, usize),
    ) -> (usize, usize) {
        let (moves, bytes) = self.store.bulk_pass(pass);
        self.meter.moves += moves;
        self.meter.bytes += bytes;
        (moves, bytes)
    }

    /// The first live block starting at or after `at`.
    ///
    /// The first block query or move of a pass switches the arena's live-block index to its
    /// ordered (tree) form, in O(n); it returns to its flat form when the pass ends.
    pub fn next_block(&mut self, at: usize) -> Option<LiveBlock> {
        self.store.make_ordered();
        self.store.space().live_from(at).map(|b| self.info(b))
    }

    /// The last live block starting before `at`.
    pub fn prev_block(&mut self, at: usize) -> Option<LiveBlock> {
        self.store.make_ordered();
        self.store.space().live_before(at).map(|b| self.info(b))
    }

    /// The hole that ends exactly at `at` (the free space just below a block), if any.
    pub fn hole_before(&self, at: usize) -> Option<Range<usize>> {
        self.store.space().hole_ending_at(at)
    }

    /// All holes, lowest address first.
    pub fn holes(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.store.space().holes()
    }

    /// Holes of at least `min_len` bytes, smallest first.
    pub fn holes_by_size(&self, min_len: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        self.store.space().holes_by_size(min_len)
    }

    /// One past the highest used byte; everything from here to the capacity is free.
    pub fn top(&self) -> usize {
        self.store.space().top()
    }

    /// The buffer's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.store.cap()
    }

    /// Moves the live block starting at `from` so that it starts at `to`, copying its bytes
    /// (the ranges may overlap) and updating its master pointer. Refused, with nothing changed,
    /// if the block is pinned, `to` is misaligned, or the destination (apart from the block's
    /// own range) is not free.
    pub fn move_block(&mut self, from: usize, to: usize) -> Result<(), MoveError> {
        self.store.make_ordered();
        let (off, len, index) = self
            .store
            .space()
            .live_from(from)
            .filter(|&(off, _, _)| off == from)
            .ok_or(MoveError::NoBlock)?;
        let slot = self.store.table().slot(index);
        if slot.pins > 0 {
            return Err(MoveError::Pinned);
        }
        if to % slot.align != 0 {
            return Err(MoveError::Misaligned);
        }
        if to == off {
            return Ok(());
        }
        let end = to.checked_add(len).ok_or(MoveError::Occupied)?;
        // The destination minus the block's own range must be free.
        let (need_start, need_end) = if to < off {
            (to, end.min(off))
        } else {
            (to.max(off + len), end)
        };
        let cap = self.store.cap();
        if !self.store.space().is_free(need_start, need_end, cap) {
            return Err(MoveError::Occupied);
        }
        self.store.relocate(off, to, len, index);
        self.meter.moves += 1;
        self.meter.bytes += len;
        Ok(())
    }
}
