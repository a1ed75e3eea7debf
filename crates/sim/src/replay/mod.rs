//! `freespace replay`: one trace, run against every allocator the workspace has, measured the
//! same way.
//!
//! Invariant: every [`Subject`] sees the same events in the same order, and the numbers in a
//! [`RunResult`] are taken from the allocator's own statistics (`HeapStats`, `ArenaStats`,
//! `CompactionReport`), never estimated by the replay. A trace is checked before any subject
//! runs, so the only failures left are the allocators' own (out of memory).

mod address_subject;
mod arena;
mod buddy;
mod core_heap;
mod region;
mod table;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use address_subject::AddressSubject;
pub use arena::ArenaSubject;
pub use buddy::BuddySubject;
pub use core_heap::{core_label, fit_name, order_name, CoreSubject};
pub use region::Region;
pub use table::{human_bytes, render_table};

use freespace_malloc::{Coalescing, Fit, ListOrder};

use crate::trace::{Op, Trace, TraceError};

/// What kind of allocator a subject is; the pictures colour and group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// freespace-malloc's `Heap` with one placement policy and list order.
    Core,
    /// freespace-malloc's `BuddyHeap`.
    Buddy,
    /// freespace-handles' `Arena`, which can compact.
    Arena,
}

/// A block of the final heap map, as an offset from the start of the allocator's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapBlock {
    /// Offset of the block's first byte (its header, for heaps with headers).
    pub offset: usize,
    /// Length in bytes, header included.
    pub len: usize,
    /// Whether the block is in use.
    pub used: bool,
}

/// The state of an allocator after one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Index of the event just replayed (from 0).
    pub event: usize,
    /// Bytes the allocator holds.
    pub footprint: usize,
    /// External fragmentation below the footprint, measured at every
    /// [`EXTERNAL_EVERY`]-th sample and at the last event (it walks the whole heap).
    pub external: Option<f64>,
}

/// External fragmentation is measured at one sample in this many (and at the last event),
/// since each measurement walks every block.
pub const EXTERNAL_EVERY: usize = 4;

/// One compaction pass of the arena, as its report gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPoint {
    /// Index of the event during which the pass ran.
    pub event: usize,
    /// Footprint (used span) before the event that ran the pass.
    pub before: usize,
    /// Footprint (used span) after that event.
    pub after: usize,
    /// Bytes the pass moved.
    pub bytes_moved: usize,
}

/// External fragmentation of the free space below `limit`: `1 - largest hole / hole bytes`
/// over the free blocks of `map` that start below `limit` (0 when there are none). Room above
/// the highest live block is not a hole: an `sbrk` heap would give it back.
pub fn holes_below(map: &[MapBlock], limit: usize) -> f64 {
    holes_below_iter(map.iter().copied(), limit)
}

/// [`holes_below`] over blocks as they come from a walk, without collecting them.
pub fn holes_below_iter(map: impl Iterator<Item = MapBlock>, limit: usize) -> f64 {
    let (mut total, mut largest) = (0usize, 0usize);
    for b in map.take_while(|b| b.offset < limit).filter(|b| !b.used) {
        let len = b.len.min(limit - b.offset);
        total += len;
        largest = largest.max(len);
    }
    if total == 0 {
        0.0
    } else {
        1.0 - largest as f64 / total as f64
    }
}

/// An allocator failed to serve an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectError(pub String);

/// An allocator as the replay drives it: trace ids in, statistics out.
pub trait Subject {
    /// The row label, e.g. `first-fit addr`.
    fn name(&self) -> String;
    /// The family, for grouping.
    fn family(&self) -> Family;
    /// Allocates block `id`.
    fn alloc(&mut self, id: u64, size: usize, align: usize) -> Result<(), SubjectError>;
    /// Frees block `id` (the trace guarantees it is live).
    fn free(&mut self, id: u64) -> Result<(), SubjectError>;
    /// Resizes block `id` (the trace guarantees it is live).
    fn realloc(&mut self, id: u64, size: usize) -> Result<(), SubjectError>;
    /// The footprint now: bytes from the start of the allocator's memory to the end of its
    /// highest live block (what a heap that gives back its top would hold).
    fn footprint(&self) -> usize;
    /// External fragmentation of the holes below the footprint (see [`holes_below`]).
    fn external(&self) -> f64;
    /// Internal fragmentation now.
    fn internal(&self) -> f64;
    /// Free-list elements searched per allocation so far, if the allocator counts them.
    fn search_per_alloc(&self) -> Option<f64>;
    /// Bytes moved by compaction so far, if the allocator can compact.
    fn bytes_moved(&self) -> Option<u64>;
    /// Compaction passes that ran during the last event (arena only).
    fn take_compactions(&mut self) -> Vec<(usize, usize, usize)> {
        Vec::new()
    }
    /// The blocks in address order.
    fn heap_map(&self) -> Vec<MapBlock>;
    /// Whether the last failure was the subject's fixed region running out of room (so a
    /// larger region would help), rather than a request the allocator can never serve.
    fn ran_out_of_room(&self) -> bool {
        false
    }
}

/// Why a subject's replay stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// The failure, located at the event that caused it.
    pub error: TraceError,
    /// Whether a larger region would have helped (see [`Subject::ran_out_of_room`]).
    pub out_of_room: bool,
}

impl From<RunError> for TraceError {
    fn from(e: RunError) -> TraceError {
        e.error
    }
}

/// What one subject did with the whole trace.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Row label.
    pub name: String,
    /// Allocator family.
    pub family: Family,
    /// Largest footprint seen after any event.
    pub peak_footprint: usize,
    /// Footprint after the last event.
    pub final_footprint: usize,
    /// External fragmentation after the last event.
    pub external: f64,
    /// Internal fragmentation after the last event.
    pub internal: f64,
    /// Search steps per allocation, if counted.
    pub search_per_alloc: Option<f64>,
    /// Bytes moved by compaction, if the allocator compacts.
    pub bytes_moved: Option<u64>,
    /// Wall time spent inside the allocator calls (with the replay's own id bookkeeping), not
    /// in sampling.
    pub elapsed: Duration,
    /// Footprint and fragmentation over the trace, at most [`MAX_SAMPLES`] points.
    pub samples: Vec<Sample>,
    /// The arena's compaction passes.
    pub compactions: Vec<CompactionPoint>,
    /// The blocks after the last event.
    pub final_map: Vec<MapBlock>,
}

/// The most samples kept per subject; longer traces are sampled every k-th event.
pub const MAX_SAMPLES: usize = 1000;

/// Runs `trace` through `subject`, calling `tick` every 4096 events (for a progress bar).
pub fn run_subject(
    trace: &Trace,
    subject: &mut dyn Subject,
    tick: &mut dyn FnMut(u64),
) -> Result<RunResult, RunError> {
    let n = trace.events.len();
    let every = n.div_ceil(MAX_SAMPLES).max(1);
    let mut samples = Vec::with_capacity(n.min(MAX_SAMPLES) + 1);
    let mut compactions = Vec::new();
    let mut peak = subject.footprint();
    let mut elapsed = Duration::ZERO;
    for (i, ev) in trace.events.iter().enumerate() {
        let start = Instant::now();
        let result = match ev.op {
            Op::Alloc { id, size, align } => subject.alloc(id, size, align),
            Op::Free { id } => subject.free(id),
            Op::Realloc { id, size } => subject.realloc(id, size),
        };
        elapsed += start.elapsed();
        if let Err(SubjectError(msg)) = result {
            return Err(RunError {
                error: TraceError::new(
                    &trace.source,
                    ev.line,
                    format!("{}: {msg}", subject.name()),
                ),
                out_of_room: subject.ran_out_of_room(),
            });
        }
        let footprint = subject.footprint();
        peak = peak.max(footprint);
        for (before, after, bytes_moved) in subject.take_compactions() {
            compactions.push(CompactionPoint {
                event: i,
                before,
                after,
                bytes_moved,
            });
        }
        if i % every == 0 || i + 1 == n {
            let measure = samples.len() % EXTERNAL_EVERY == 0 || i + 1 == n;
            samples.push(Sample {
                event: i,
                footprint,
                external: measure.then(|| subject.external()),
            });
        }
        if i % 4096 == 4095 {
            tick(4096);
        }
    }
    tick((n % 4096) as u64);
    Ok(RunResult {
        name: subject.name(),
        family: subject.family(),
        peak_footprint: peak,
        final_footprint: subject.footprint(),
        external: subject.external(),
        internal: subject.internal(),
        search_per_alloc: subject.search_per_alloc(),
        bytes_moved: subject.bytes_moved(),
        elapsed,
        samples,
        compactions,
        final_map: subject.heap_map(),
    })
}

/// Facts about a trace that size the fixed-region subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceProfile {
    /// Regions get this many times the peak live bytes plus the largest request.
    pub room: usize,
    /// The most bytes live at once.
    pub peak_live: usize,
    /// The largest single request.
    pub largest: usize,
    /// The largest alignment.
    pub max_align: usize,
}

impl TraceProfile {
    /// Walks the trace once.
    pub fn of(trace: &Trace) -> Self {
        let mut sizes: HashMap<u64, usize> = HashMap::new();
        let mut live = 0usize;
        let mut p = TraceProfile {
            room: DEFAULT_ROOM,
            peak_live: 0,
            largest: 0,
            max_align: 0,
        };
        for ev in &trace.events {
            match ev.op {
                Op::Alloc { id, size, align } => {
                    sizes.insert(id, size);
                    live += size;
                    p.largest = p.largest.max(size);
                    p.max_align = p.max_align.max(align);
                }
                Op::Free { id } => live -= sizes.remove(&id).unwrap_or(0),
                Op::Realloc { id, size } => {
                    let old = sizes.insert(id, size).unwrap_or(0);
                    live = live - old + size;
                    p.largest = p.largest.max(size);
                }
            }
            p.peak_live = p.peak_live.max(live);
        }
        p
    }
}

/// One allocator configuration the replay compares; [`SubjectSpec::make`] builds it fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSpec {
    /// The core `Heap` with a fit, a list order and a coalescing mode.
    Core(Fit, ListOrder, Coalescing),
    /// The buddy heap.
    Buddy,
    /// The handle arena with `Sliding`.
    ArenaSliding,
    /// The handle arena with `TwoFinger`.
    ArenaTwoFinger,
}

impl SubjectSpec {
    /// The row label the subject will have.
    pub fn name(self) -> String {
        match self {
            SubjectSpec::Core(fit, order, coalescing) => core_label(fit, order, coalescing),
            SubjectSpec::Buddy => "buddy".to_string(),
            SubjectSpec::ArenaSliding => "arena sliding".to_string(),
            SubjectSpec::ArenaTwoFinger => "arena two-finger".to_string(),
        }
    }

    /// Builds the subject, sized for `profile` where that matters.
    pub fn make(self, profile: &TraceProfile) -> Box<dyn Subject> {
        match self {
            SubjectSpec::Core(fit, order, coalescing) => {
                Box::new(CoreSubject::new(fit, order, coalescing, profile))
            }
            SubjectSpec::Buddy => Box::new(BuddySubject::new(profile)),
            SubjectSpec::ArenaSliding => Box::new(ArenaSubject::sliding()),
            SubjectSpec::ArenaTwoFinger => Box::new(ArenaSubject::two_finger()),
        }
    }
}

/// Every configuration the replay compares, in table order: each textbook fit with each list
/// order (immediate coalescing), first fit over an address-ordered list with no coalescing,
/// segregated fit, buddy, and the arena with each compactor. (Deferred coalescing runs only
/// when an allocation fails, which the replay's generously sized region never lets happen, so
/// it would repeat the no-coalescing row.)
pub fn all_specs() -> Vec<SubjectSpec> {
    let mut out = Vec::new();
    for fit in [Fit::First, Fit::Next, Fit::Best, Fit::Worst] {
        for order in ListOrder::ALL {
            out.push(SubjectSpec::Core(fit, order, Coalescing::Immediate));
        }
    }
    out.push(SubjectSpec::Core(
        Fit::First,
        ListOrder::AddressOrdered,
        Coalescing::Never,
    ));
    out.push(SubjectSpec::Core(
        Fit::Segregated,
        ListOrder::AddressOrdered,
        Coalescing::Immediate,
    ));
    out.push(SubjectSpec::Buddy);
    out.push(SubjectSpec::ArenaSliding);
    out.push(SubjectSpec::ArenaTwoFinger);
    out
}

/// The configurations whose names match `only`: an entry matches a name that equals it or
/// starts with it followed by a space (`first-fit` selects every first-fit row, `arena` both
/// arenas). An empty `only` selects everything. An entry that matches nothing is returned as
/// the error.
pub fn select_specs(only: &[String]) -> Result<Vec<SubjectSpec>, String> {
    let all = all_specs();
    if only.is_empty() {
        return Ok(all);
    }
    let matches = |entry: &str, name: &str| {
        name == entry
            || name
                .strip_prefix(entry)
                .is_some_and(|rest| rest.starts_with(' '))
    };
    for entry in only {
        if !all.iter().any(|s| matches(entry, &s.name())) {
            return Err(entry.clone());
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| only.iter().any(|e| matches(e, &s.name())))
        .collect())
}

/// The results of a whole replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The trace's file name.
    pub source: String,
    /// Number of events.
    pub events: usize,
    /// Number of allocations.
    pub allocations: usize,
    /// One result per subject, in the order they ran ([`all_specs`] order unless selected).
    pub results: Vec<RunResult>,
}

/// The default room factor of [`TraceProfile`].
pub const DEFAULT_ROOM: usize = 16;
/// The largest room factor a replay retries with before it reports the failure.
pub const MAX_ROOM: usize = 1024;

/// Replays `trace` against every subject. `tick` is called with progress in events.
pub fn replay(trace: &Trace, tick: &mut dyn FnMut(u64)) -> Result<Replay, TraceError> {
    replay_specs(trace, &all_specs(), DEFAULT_ROOM, tick)
}

/// As [`replay`], with regions of `room` times the trace's peak live bytes plus its largest
/// request to begin with. A subject whose region fills up is replayed again from the start
/// with four times the room, up to [`MAX_ROOM`]; the region's size changes no number in the
/// table, only whether the trace fits.
pub fn replay_with_room(
    trace: &Trace,
    room: usize,
    tick: &mut dyn FnMut(u64),
) -> Result<Replay, TraceError> {
    replay_specs(trace, &all_specs(), room, tick)
}

/// Replays `trace` against the subjects `specs`, in that order, with regions of `room` to begin
/// with (see [`replay_with_room`]).
pub fn replay_specs(
    trace: &Trace,
    specs: &[SubjectSpec],
    room: usize,
    tick: &mut dyn FnMut(u64),
) -> Result<Replay, TraceError> {
    let base = TraceProfile::of(trace);
    let mut results = Vec::new();
    for &spec in specs {
        let mut profile = TraceProfile {
            room: room.max(1),
            ..base
        };
        // One subject at a time: each is dropped, and its memory returned, before the next.
        let result = loop {
            let mut subject = spec.make(&profile);
            match run_subject(trace, subject.as_mut(), tick) {
                Ok(result) => break result,
                Err(e) if e.out_of_room && profile.room < MAX_ROOM => profile.room *= 4,
                Err(e) => return Err(e.error),
            }
        };
        results.push(result);
    }
    Ok(Replay {
        source: trace.source.clone(),
        events: trace.events.len(),
        allocations: trace.allocations(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::read_trace;

    /// 1100 blocks of 1040 bytes: with a room factor of 1 the region is 2 MiB, but buddy
    /// rounds each block to 2048 bytes and needs 2.2 MB, so its first run fills the region and
    /// the replay must retry it with more room. The numbers do not depend on the room.
    #[test]
    fn a_full_region_is_retried_with_more_room() {
        let text: String = (1..=1100).map(|i| format!("a {i} 1040\n")).collect();
        let trace = read_trace("full.trace", text.as_bytes()).unwrap();
        let mut profile = TraceProfile::of(&trace);
        profile.room = 1;
        let mut tight = SubjectSpec::Buddy.make(&profile);
        let err = run_subject(&trace, tight.as_mut(), &mut |_| {}).unwrap_err();
        assert!(err.out_of_room, "{:?}", err.error);

        let small = replay_with_room(&trace, 1, &mut |_| {}).unwrap();
        let normal = replay(&trace, &mut |_| {}).unwrap();
        for (a, b) in small.results.iter().zip(&normal.results) {
            assert_eq!(
                (
                    a.name.as_str(),
                    a.peak_footprint,
                    a.final_footprint,
                    a.final_map.len()
                ),
                (
                    b.name.as_str(),
                    b.peak_footprint,
                    b.final_footprint,
                    b.final_map.len()
                )
            );
        }
        let buddy = small.results.iter().find(|r| r.name == "buddy").unwrap();
        assert_eq!(buddy.final_footprint, 1100 * 2048);
    }

    #[test]
    fn selection_by_name_prefix() {
        let names = |only: &[&str]| -> Vec<String> {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            select_specs(&only)
                .unwrap()
                .into_iter()
                .map(|s| s.name())
                .collect()
        };
        assert_eq!(names(&[]).len(), all_specs().len());
        assert_eq!(names(&["arena"]), ["arena sliding", "arena two-finger"]);
        assert_eq!(
            names(&["first-fit addr"]),
            ["first-fit addr", "first-fit addr no-coalesce"]
        );
        assert_eq!(names(&["buddy", "segregated"]), ["segregated", "buddy"]);
        assert_eq!(names(&["first-fit"]).len(), 6);
        assert_eq!(
            select_specs(&["first".to_string()]),
            Err("first".to_string())
        );
        assert_eq!(
            select_specs(&["arena slid".to_string()]),
            Err("arena slid".to_string())
        );
        for spec in all_specs() {
            let subject = spec.make(&TraceProfile::of(&Trace::default()));
            assert_eq!(subject.name(), spec.name());
        }
    }

    #[test]
    fn holes_below_ignores_room_above_the_footprint() {
        let b = |offset, len, used| MapBlock { offset, len, used };
        let map = [
            b(0, 10, true),
            b(10, 10, false),
            b(20, 10, true),
            b(30, 30, false),
            b(60, 100, false),
        ];
        // Below 60: holes of 10 and 30.
        assert!((holes_below(&map, 60) - 0.25).abs() < 1e-12);
        assert_eq!(holes_below(&map, 10), 0.0);
    }
}
