//! The trace model: a sequence of allocation events, each with the place it was read from.
//!
//! Invariant: a [`Trace`] that [`Trace::check`] accepts is *well formed*: every free and
//! realloc names a live id, no id is allocated twice while live, and every size and alignment
//! fits the limits below. Replay relies on that and never has to report bad input itself.
//! Readers for concrete formats implement [`TraceReader`]; [`read_trace`] picks one by
//! content, so a new format is added here, beside the text one, and replay is untouched.

mod binary;
mod text;

use std::collections::HashMap;
use std::fmt;

pub use binary::{is_binary, BinaryReader};
pub use text::{write_text, TextReader};

/// The largest request a trace may make (1 GiB).
pub const MAX_SIZE: usize = 1 << 30;
/// The largest alignment a trace may ask for (one 4 KiB page).
pub const MAX_ALIGN: usize = 4096;

/// One operation of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `a ID SIZE [ALIGN]`: allocate `size` bytes aligned to `align` and call the block `id`.
    Alloc {
        /// The name the trace uses for the block.
        id: u64,
        /// Requested bytes.
        size: usize,
        /// Requested alignment (a power of two; 8 when the trace gives none).
        align: usize,
    },
    /// `f ID`: free the block `id`.
    Free {
        /// The block.
        id: u64,
    },
    /// `r ID SIZE`: resize the block `id` to `size` bytes (it may move).
    Realloc {
        /// The block.
        id: u64,
        /// The new size in bytes.
        size: usize,
    },
}

/// The alignment an `a` line gets when it gives none.
pub const DEFAULT_ALIGN: usize = 8;

/// An operation and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The operation.
    pub op: Op,
    /// The line (text traces) or record number (binary traces), from 1.
    pub line: usize,
}

/// A whole trace, read into memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    /// The file name used in messages.
    pub source: String,
    /// The events in order.
    pub events: Vec<Event>,
    /// Frees and reallocs of blocks allocated before recording began, which the reader left
    /// out (binary traces only: a process that started recording late, or a forked child
    /// freeing its parent's block).
    pub foreign_frees: usize,
    /// What a damaged binary trace lost (a program that died mid-recording); empty for a
    /// whole trace and for every text trace.
    pub losses: Losses,
}

/// A chunk of a binary trace whose records stop short of the count its header promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutChunk {
    /// Byte offset of the chunk header.
    pub offset: usize,
    /// Whole records present.
    pub present: usize,
    /// Records the header promises.
    pub promised: usize,
}

/// What a binary trace lost and what the reader did about it. A program killed while recording
/// leaves each thread's unwritten buffer out of the file, and a write cut short leaves a chunk
/// cut short. The reader keeps every whole record, and it resolves a conflict in the history
/// (an address allocated twice, freed twice) only when lost records between the two events
/// can explain it. A conflict with nothing lost in between is still an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Losses {
    /// Chunks cut short, in file order.
    pub cut_chunks: Vec<CutChunk>,
    /// Byte offsets of chunk headers cut short; the records they announced are lost.
    pub cut_headers: Vec<usize>,
    /// Sequence numbers missing between the first and last surviving record of each program:
    /// records lost in the middle of the trace (a loss at a program's very end leaves no gap).
    pub missing_records: u64,
    /// Runs of consecutive missing sequence numbers.
    pub gaps: usize,
    /// Frees of a block whose allocation was lost (its address was last freed, with a gap
    /// since); left out.
    pub orphan_frees: usize,
    /// Blocks freed by the reader because their address was handed out again after a gap,
    /// which must have held their lost free. The free is placed just before the new owner.
    pub implied_frees: usize,
    /// Reallocs that lost one of their two halves.
    pub broken_reallocs: usize,
}

impl Losses {
    /// True if nothing was lost that the reader can see.
    pub fn is_empty(&self) -> bool {
        *self == Losses::default()
    }
}

impl fmt::Display for Losses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let mut parts = Vec::new();
        if let Some(first) = self.cut_chunks.first() {
            let n = self.cut_chunks.len();
            let at = format!(
                "byte offset {}: {} of its {} records",
                first.offset, first.present, first.promised
            );
            parts.push(if n == 1 {
                format!("truncated chunk at {at}")
            } else {
                format!("{n} truncated chunks (the first at {at})")
            });
        }
        if let Some(first) = self.cut_headers.first() {
            let n = self.cut_headers.len();
            parts.push(if n == 1 {
                format!("truncated chunk header at byte offset {first}")
            } else {
                format!("{n} truncated chunk headers (the first at byte offset {first})")
            });
        }
        if self.missing_records > 0 {
            let records = if self.missing_records == 1 {
                "1 record".to_string()
            } else {
                format!("{} records", self.missing_records)
            };
            parts.push(format!(
                "{records} missing from the sequence in {}",
                plural(self.gaps, "gap", "gaps")
            ));
        }
        if self.orphan_frees > 0 {
            parts.push(format!(
                "{} left out",
                plural(
                    self.orphan_frees,
                    "free of a lost allocation",
                    "frees of lost allocations"
                )
            ));
        }
        if self.implied_frees > 0 {
            parts.push(format!(
                "{} (an address allocated again after lost records)",
                plural(self.implied_frees, "implied free", "implied frees")
            ));
        }
        if self.broken_reallocs > 0 {
            parts.push(format!(
                "{} missing a half",
                plural(self.broken_reallocs, "realloc", "reallocs")
            ));
        }
        if parts.is_empty() {
            return f.write_str("nothing lost");
        }
        f.write_str(&parts.join("; "))
    }
}

/// A problem with a trace, located at `source:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// The file name.
    pub source: String,
    /// The line (or record) number, from 1; 0 for problems with the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl TraceError {
    /// An error at `source:line`.
    pub fn new(source: &str, line: usize, message: impl Into<String>) -> Self {
        TraceError {
            source: source.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}:{}: {}", self.source, self.line, self.message)
        }
    }
}

impl std::error::Error for TraceError {}

/// A reader of one trace format: yields events in order, each with its location.
pub trait TraceReader {
    /// The file name used in messages.
    fn source(&self) -> &str;
    /// The next event, `None` at the end, or the first syntax error.
    fn next_event(&mut self) -> Option<Result<Event, TraceError>>;

    /// Reads every event and checks that the trace is well formed.
    fn read_all(&mut self) -> Result<Trace, TraceError>
    where
        Self: Sized,
    {
        let mut trace = Trace {
            source: self.source().to_string(),
            ..Trace::default()
        };
        while let Some(event) = self.next_event() {
            trace.events.push(event?);
        }
        trace.check()?;
        Ok(trace)
    }
}

/// Reads a trace from `bytes`, choosing the reader by content: a binary trace (recorded by
/// `libfreespace.so`) by its magic bytes or a NUL byte in its first chunk header (see
/// [`is_binary`]), anything else as text.
pub fn read_trace(source: &str, bytes: &[u8]) -> Result<Trace, TraceError> {
    if is_binary(bytes) {
        let mut reader = BinaryReader::new(source, bytes)?;
        let mut trace = reader.read_all()?;
        trace.foreign_frees = reader.foreign_frees();
        trace.losses = reader.losses().clone();
        return Ok(trace);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        TraceError::new(source, line, "not a text trace (invalid UTF-8)")
    })?;
    TextReader::new(source, text).read_all()
}

/// Reads the trace file at `path`.
pub fn read_trace_file(path: &std::path::Path) -> Result<Trace, TraceError> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| TraceError::new(&source, 0, format!("cannot read: {e}")))?;
    read_trace(&source, &bytes)
}

impl Trace {
    /// Checks that the trace is well formed (see the module docs).
    pub fn check(&self) -> Result<(), TraceError> {
        #[derive(Clone, Copy)]
        enum State {
            Live(usize),
            Freed(usize),
        }
        let mut ids: HashMap<u64, State> = HashMap::new();
        let err = |line, msg: String| TraceError::new(&self.source, line, msg);
        let size_ok = |line, size: usize| {
            if size == 0 {
                Err(err(
                    line,
                    "size 0: requests must be at least 1 byte".to_string(),
                ))
            } else if size > MAX_SIZE {
                Err(err(
                    line,
                    format!("size {size} does not fit (the largest request is {MAX_SIZE} bytes)"),
                ))
            } else {
                Ok(())
            }
        };
        for ev in &self.events {
            let line = ev.line;
            match ev.op {
                Op::Alloc { id, size, align } => {
                    size_ok(line, size)?;
                    if !align.is_power_of_two() || align > MAX_ALIGN {
                        return Err(err(
                            line,
                            format!("alignment {align} must be a power of two no larger than {MAX_ALIGN}"),
                        ));
                    }
                    if let Some(State::Live(at)) = ids.get(&id) {
                        return Err(err(
                            line,
                            format!("id {id} is already live (allocated at line {at})"),
                        ));
                    }
                    ids.insert(id, State::Live(line));
                }
                Op::Free { id } => match ids.get(&id) {
                    Some(State::Live(_)) => {
                        ids.insert(id, State::Freed(line));
                    }
                    Some(State::Freed(at)) => {
                        return Err(err(
                            line,
                            format!("double free of id {id} (already freed at line {at})"),
                        ))
                    }
                    None => return Err(err(line, format!("free of unknown id {id}"))),
                },
                Op::Realloc { id, size } => {
                    size_ok(line, size)?;
                    match ids.get(&id) {
                        Some(State::Live(_)) => {}
                        Some(State::Freed(at)) => {
                            return Err(err(
                                line,
                                format!("realloc of id {id}, which was freed at line {at}"),
                            ))
                        }
                        None => return Err(err(line, format!("realloc of unknown id {id}"))),
                    }
                }
            }
        }
        Ok(())
    }

    /// The number of allocation events (`a` lines).
    pub fn allocations(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.op, Op::Alloc { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(text: &str) -> Result<Trace, TraceError> {
        read_trace("t.trace", text.as_bytes())
    }

    #[test]
    fn well_formed_trace_is_accepted() {
        let t = trace("a 1 16\na 2 32 64\nr 1 48\nf 1\na 1 8\nf 2\n").unwrap();
        assert_eq!(t.events.len(), 6);
        assert_eq!(t.allocations(), 3);
        assert_eq!(
            t.events[1].op,
            Op::Alloc {
                id: 2,
                size: 32,
                align: 64
            }
        );
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let cases = [
            ("a 1 8\nf 2\n", "t.trace:2: free of unknown id 2"),
            (
                "a 1 8\nf 1\nf 1\n",
                "t.trace:3: double free of id 1 (already freed at line 2)",
            ),
            (
                "a 1 8\n\na 1 8\n",
                "t.trace:3: id 1 is already live (allocated at line 1)",
            ),
            ("r 4 8\n", "t.trace:1: realloc of unknown id 4"),
            (
                "a 1 8\nf 1\nr 1 8\n",
                "t.trace:3: realloc of id 1, which was freed at line 2",
            ),
            (
                "a 1 0\n",
                "t.trace:1: size 0: requests must be at least 1 byte",
            ),
            (
                "a 1 2000000000\n",
                "t.trace:1: size 2000000000 does not fit (the largest request is 1073741824 bytes)",
            ),
            (
                "a 1 8 24\n",
                "t.trace:1: alignment 24 must be a power of two no larger than 4096",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(trace(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn a_binary_trace_with_a_damaged_first_magic_is_refused_as_binary() {
        // A chunk header (24 bytes: magic, pid, count, record size 40, run) whose magic lost
        // a byte, and one record.
        let mut file = b"FSTRACX\x01".to_vec();
        for field in [7u32, 1, 40, 1] {
            file.extend_from_slice(&field.to_le_bytes());
        }
        file.extend_from_slice(&[1, 1, 0, 0, 7, 0, 0, 0]);
        file.extend_from_slice(&[0; 32]);
        assert_eq!(
            read_trace("b.fstrace", &file).unwrap_err().to_string(),
            "b.fstrace: byte offset 0: not a trace chunk (bad magic)"
        );
        let mut garbage = file.clone();
        garbage[..8].copy_from_slice(b"GARBAGE!");
        assert_eq!(
            read_trace("b.fstrace", &garbage).unwrap_err().to_string(),
            "b.fstrace: byte offset 0: not a trace chunk (bad magic)"
        );
        // A NUL byte past the first 24 bytes leaves a text trace a text trace.
        let text = b"a 1 8\na 2 8\na 3 8\na 4 8\nf \x00\n";
        assert_eq!(
            read_trace("t.trace", text).unwrap_err().to_string(),
            "t.trace:5: id must be a non-negative integer, got \"\\0\""
        );
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_line() {
        let err = read_trace("b.trace", b"a 1 8\n\xff\xfe\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.trace:2: not a text trace (invalid UTF-8)"
        );
    }
}
