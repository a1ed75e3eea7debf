//! `freespace replay`: one trace, run against every allocator the workspace has, measured the
//! same way.
//!
//! Invariant: every [`Subject`] sees the same events in the same order, and the numbers in a
//! [`RunResult`] are taken from the allocator's own statistics (`HeapStats`, `ArenaStats`,
//! `CompactionReport`), never estimated by the replay. A trace is checked before any subject
//! runs, so the only failures left are the allocators' own (out of memory).

mod arena;
mod buddy;
mod table;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use arena::ArenaSubject;
pub use buddy::BuddySubject;
pub use table::{human_bytes, render_table};

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
    /// `1 - largest free / total free`.
    pub external: f64,
}

/// One compaction pass of the arena, as its report gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPoint {
    /// Index of the event during which the pass ran.
    pub event: usize,
    /// Footprint before the pass.
    pub before: usize,
    /// Footprint after the pass.
    pub after: usize,
    /// Bytes the pass moved.
    pub bytes_moved: usize,
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
    /// Bytes the allocator holds now.
    fn footprint(&self) -> usize;
    /// External fragmentation now.
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
    /// Wall time of the replay (sampling included).
    pub elapsed: Duration,
    /// Footprint and fragmentation over the trace, at most [`MAX_SAMPLES`] points.
    pub samples: Vec<Sample>,
    /// The arena's compaction passes.
    pub compactions: Vec<CompactionPoint>,
    /// The blocks after the last event.
    pub final_map: Vec<MapBlock>,
}

/// The most samples kept per subject; longer traces are sampled every k-th event.
pub const MAX_SAMPLES: usize = 2000;

/// Runs `trace` through `subject`, calling `tick` every 4096 events (for a progress bar).
pub fn run_subject(
    trace: &Trace,
    subject: &mut dyn Subject,
    tick: &mut dyn FnMut(u64),
) -> Result<RunResult, TraceError> {
    let n = trace.events.len();
    let every = n.div_ceil(MAX_SAMPLES).max(1);
    let mut samples = Vec::with_capacity(n.min(MAX_SAMPLES) + 1);
    let mut compactions = Vec::new();
    let mut peak = subject.footprint();
    let start = Instant::now();
    for (i, ev) in trace.events.iter().enumerate() {
        let result = match ev.op {
            Op::Alloc { id, size, align } => subject.alloc(id, size, align),
            Op::Free { id } => subject.free(id),
            Op::Realloc { id, size } => subject.realloc(id, size),
        };
        result.map_err(|SubjectError(msg)| {
            TraceError::new(&trace.source, ev.line, format!("{}: {msg}", subject.name()))
        })?;
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
            samples.push(Sample {
                event: i,
                footprint,
                external: subject.external(),
            });
        }
        if i % 4096 == 4095 {
            tick(4096);
        }
    }
    let elapsed = start.elapsed();
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceProfile {
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
        let mut p = TraceProfile::default();
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

/// Every subject the replay compares, freshly made for `trace`.
pub fn all_subjects(trace: &Trace) -> Vec<Box<dyn Subject>> {
    let profile = TraceProfile::of(trace);
    let out: Vec<Box<dyn Subject>> = vec![
        Box::new(BuddySubject::new(&profile)),
        Box::new(ArenaSubject::sliding()),
        Box::new(ArenaSubject::two_finger()),
    ];
    out
}

/// How many subjects [`all_subjects`] makes.
pub fn subject_count() -> usize {
    all_subjects(&Trace::default()).len()
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
    /// One result per subject, in [`all_subjects`] order.
    pub results: Vec<RunResult>,
}

/// Replays `trace` against every subject. `tick` is called with progress in events.
pub fn replay(trace: &Trace, tick: &mut dyn FnMut(u64)) -> Result<Replay, TraceError> {
    let mut results = Vec::new();
    for mut subject in all_subjects(trace) {
        results.push(run_subject(trace, subject.as_mut(), tick)?);
    }
    Ok(Replay {
        source: trace.source.clone(),
        events: trace.events.len(),
        allocations: trace.allocations(),
        results,
    })
}
