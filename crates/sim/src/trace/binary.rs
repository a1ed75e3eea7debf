//! The binary trace format that `libfreespace.so` records under `FREESPACE_TRACE`
//! (docs/trace-format-binary.md is the specification).
//!
//! Invariant: [`BinaryReader`] either refuses the file with an error naming the byte offset and
//! record number of the first problem, or yields a trace whose ids are renumbered from the
//! recorded addresses so that every free and realloc names the block its address held at that
//! moment. Records are put back into the order the calls took effect (per process, by sequence
//! number), processes follow one another in the order they first appear, and each process's
//! blocks still live at its end are freed there, since its exit returned them.

use std::collections::{HashMap, HashSet};

use super::{Event, Op, TraceError, TraceReader, DEFAULT_ALIGN};

/// The bytes every chunk starts with: `FSTRACE` and the version byte.
pub const MAGIC: [u8; 8] = *b"FSTRACE\x01";
/// Bytes in a chunk header.
pub const CHUNK_HEADER_SIZE: usize = 24;
/// Bytes in one record.
pub const RECORD_SIZE: usize = 40;

const KIND_ALLOC: u8 = 1;
const KIND_FREE: u8 = 2;
const KIND_REALLOC_FROM: u8 = 3;
const KIND_REALLOC_TO: u8 = 4;
/// The highest `call` code (`free`).
const LAST_CALL: u8 = 10;

/// True if `bytes` starts like a binary trace (any version), so [`super::read_trace`] should
/// hand it to [`BinaryReader`] rather than the text reader.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC[..7])
}

/// One decoded record and where it sits in the file.
#[derive(Debug, Clone, Copy)]
struct Raw {
    /// The program: its pid and the run number that tells apart programs one pid ran in turn.
    program: (u32, u32),
    tid: u32,
    seq: u64,
    kind: u8,
    align: usize,
    addr: u64,
    size: usize,
    /// Record number in file order, from 1.
    number: usize,
    /// Byte offset of the record in the file.
    offset: usize,
}

/// Reads a binary trace. All the work happens in [`BinaryReader::new`]; the events are then
/// handed out in order.
#[derive(Debug)]
pub struct BinaryReader {
    source: String,
    events: std::vec::IntoIter<Event>,
    foreign_frees: usize,
    processes: usize,
}

impl BinaryReader {
    /// Decodes and orders the whole trace in `bytes`; `source` names it in error messages.
    pub fn new(source: &str, bytes: &[u8]) -> Result<BinaryReader, TraceError> {
        let raws = decode(source, bytes)?;
        let mut builder = Builder {
            source,
            events: Vec::new(),
            next_id: 1,
            foreign_frees: 0,
        };
        let mut order: Vec<(u32, u32)> = Vec::new();
        let mut by_program: HashMap<(u32, u32), Vec<Raw>> = HashMap::new();
        for r in raws {
            by_program
                .entry(r.program)
                .or_insert_with(|| {
                    order.push(r.program);
                    Vec::new()
                })
                .push(r);
        }
        for program in &order {
            let mut records = by_program.remove(program).unwrap_or_default();
            records.sort_by_key(|r| r.seq);
            builder.process(&records)?;
        }
        Ok(BinaryReader {
            source: source.to_string(),
            events: builder.events.into_iter(),
            foreign_frees: builder.foreign_frees,
            processes: order.len(),
        })
    }

    /// Frees (and reallocs) of blocks allocated before the trace began (a process started
    /// recording late, or a forked child freed a block of its parent); they are left out.
    pub fn foreign_frees(&self) -> usize {
        self.foreign_frees
    }

    /// The number of programs that wrote to the trace (processes, counting each program that
    /// one process ran after `execve` on its own).
    pub fn processes(&self) -> usize {
        self.processes
    }
}

impl TraceReader for BinaryReader {
    fn source(&self) -> &str {
        &self.source
    }

    fn next_event(&mut self) -> Option<Result<Event, TraceError>> {
        self.events.next().map(Ok)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Splits the file into chunks and decodes every record, checking each field.
fn decode(source: &str, bytes: &[u8]) -> Result<Vec<Raw>, TraceError> {
    let at = |number: usize, offset: usize, msg: String| {
        TraceError::new(source, number, format!("byte offset {offset}: {msg}"))
    };
    let mut out = Vec::new();
    let mut offset = 0;
    let mut number = 0;
    if bytes.is_empty() {
        return Err(TraceError::new(source, 0, "empty file: no trace chunk"));
    }
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.len() < CHUNK_HEADER_SIZE {
            return Err(at(
                0,
                offset,
                format!(
                    "truncated chunk header ({} of {CHUNK_HEADER_SIZE} bytes)",
                    rest.len()
                ),
            ));
        }
        if rest[..7] != MAGIC[..7] {
            return Err(at(0, offset, "not a trace chunk (bad magic)".to_string()));
        }
        if rest[7] != MAGIC[7] {
            return Err(at(
                0,
                offset,
                format!(
                    "unsupported trace format version {} (this reader knows version {})",
                    rest[7], MAGIC[7]
                ),
            ));
        }
        let program = (u32_at(rest, 8), u32_at(rest, 20));
        let count = u32_at(rest, 12) as usize;
        let record_size = u32_at(rest, 16) as usize;
        if record_size != RECORD_SIZE {
            return Err(at(
                0,
                offset,
                format!("record size {record_size} in chunk header (expected {RECORD_SIZE})"),
            ));
        }
        let body = &rest[CHUNK_HEADER_SIZE..];
        let need = count.saturating_mul(RECORD_SIZE);
        if body.len() < need {
            return Err(at(
                number + body.len() / RECORD_SIZE + 1,
                offset,
                format!(
                    "truncated chunk: its header promises {count} records ({need} bytes), \
                     {} bytes follow",
                    body.len()
                ),
            ));
        }
        for i in 0..count {
            number += 1;
            let roff = offset + CHUNK_HEADER_SIZE + i * RECORD_SIZE;
            let r = &body[i * RECORD_SIZE..(i + 1) * RECORD_SIZE];
            let kind = r[0];
            if !(KIND_ALLOC..=KIND_REALLOC_TO).contains(&kind) {
                return Err(at(
                    number,
                    roff,
                    format!("corrupt record: unknown kind {kind}"),
                ));
            }
            if r[1] == 0 || r[1] > LAST_CALL {
                return Err(at(
                    number,
                    roff,
                    format!("corrupt record: unknown call {}", r[1]),
                ));
            }
            let align = match r[2] {
                0 => 0,
                b @ 1..=64 => 1u64 << (b - 1),
                b => {
                    return Err(at(
                        number,
                        roff,
                        format!("corrupt record: alignment code {b}"),
                    ))
                }
            };
            if r[3] != 0 {
                return Err(at(
                    number,
                    roff,
                    format!("corrupt record: reserved byte is {}", r[3]),
                ));
            }
            let size = u64_at(r, 32);
            let too_big = |what: &str, v: u64| {
                at(
                    number,
                    roff,
                    format!("{what} {v} does not fit in this machine's address space"),
                )
            };
            out.push(Raw {
                program,
                tid: u32_at(r, 4),
                seq: u64_at(r, 8),
                kind,
                align: usize::try_from(align).map_err(|_| too_big("alignment", align))?,
                addr: u64_at(r, 24),
                size: usize::try_from(size).map_err(|_| too_big("size", size))?,
                number,
                offset: roff,
            });
        }
        offset += CHUNK_HEADER_SIZE + need;
    }
    Ok(out)
}

/// A block's id and the record that allocated it.
type Block = (u64, usize);
/// A realloc between its two halves: the block (unless it predates the trace), its old
/// address, and the record of the first half.
type Pending = (Option<Block>, u64, usize);

/// Turns each process's ordered records into events with renumbered ids.
struct Builder<'a> {
    source: &'a str,
    events: Vec<Event>,
    next_id: u64,
    foreign_frees: usize,
}

impl Builder<'_> {
    fn err(&self, r: &Raw, msg: String) -> TraceError {
        TraceError::new(
            self.source,
            r.number,
            format!("byte offset {}: {msg}", r.offset),
        )
    }

    fn emit(&mut self, op: Op, r: &Raw) {
        self.events.push(Event { op, line: r.number });
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// One process's records, sorted by sequence number.
    fn process(&mut self, records: &[Raw]) -> Result<(), TraceError> {
        // The block id at each live address, and the record that allocated it.
        let mut live: HashMap<u64, Block> = HashMap::new();
        // Addresses whose last event was a free (to tell a double free from a foreign one).
        let mut freed: HashSet<u64> = HashSet::new();
        // Reallocs between their two halves, per thread.
        let mut pending: HashMap<u32, Pending> = HashMap::new();
        for pair in records.windows(2) {
            if pair[0].seq == pair[1].seq {
                return Err(self.err(
                    &pair[1],
                    format!(
                        "sequence number {} repeats record {} (two traces with one pid and run?)",
                        pair[1].seq, pair[0].number
                    ),
                ));
            }
        }
        for r in records {
            match r.kind {
                KIND_ALLOC => {
                    if r.addr == 0 {
                        return Err(self.err(r, "allocation of address 0".to_string()));
                    }
                    if let Some(&(_, at)) = live.get(&r.addr) {
                        return Err(self.err(
                            r,
                            format!(
                                "address {:#x} allocated again while live (since record {at})",
                                r.addr
                            ),
                        ));
                    }
                    let id = self.fresh_id();
                    live.insert(r.addr, (id, r.number));
                    freed.remove(&r.addr);
                    let align = if r.align == 0 { DEFAULT_ALIGN } else { r.align };
                    self.emit(
                        Op::Alloc {
                            id,
                            size: r.size.max(1),
                            align,
                        },
                        r,
                    );
                }
                KIND_FREE => match live.remove(&r.addr) {
                    Some((id, _)) => {
                        freed.insert(r.addr);
                        self.emit(Op::Free { id }, r);
                    }
                    None if freed.contains(&r.addr) => {
                        return Err(self.err(r, format!("double free of address {:#x}", r.addr)))
                    }
                    None => self.foreign_frees += 1,
                },
                KIND_REALLOC_FROM => {
                    if let Some(&(_, _, at)) = pending.get(&r.tid) {
                        return Err(self.err(
                            r,
                            format!(
                                "thread {} starts a realloc while the one at record {at} is \
                                 unfinished",
                                r.tid
                            ),
                        ));
                    }
                    let block = live.remove(&r.addr);
                    if block.is_none() && freed.contains(&r.addr) {
                        return Err(self.err(
                            r,
                            format!("realloc of address {:#x}, which was freed", r.addr),
                        ));
                    }
                    pending.insert(r.tid, (block, r.addr, r.number));
                }
                _ => {
                    let Some((block, old, _)) = pending.remove(&r.tid) else {
                        return Err(self.err(
                            r,
                            format!(
                                "second half of a realloc on thread {} without its first",
                                r.tid
                            ),
                        ));
                    };
                    if r.addr == 0 {
                        // The call failed; the old block stays where it was.
                        if let Some(b) = block {
                            live.insert(old, b);
                        }
                        continue;
                    }
                    if let Some(&(_, at)) = live.get(&r.addr) {
                        return Err(self.err(
                            r,
                            format!(
                                "realloc returned {:#x}, which is live (since record {at})",
                                r.addr
                            ),
                        ));
                    }
                    if old != r.addr {
                        freed.insert(old);
                    }
                    freed.remove(&r.addr);
                    match block {
                        Some((id, at)) => {
                            live.insert(r.addr, (id, at));
                            self.emit(
                                Op::Realloc {
                                    id,
                                    size: r.size.max(1),
                                },
                                r,
                            );
                        }
                        None => {
                            self.foreign_frees += 1;
                            let id = self.fresh_id();
                            live.insert(r.addr, (id, r.number));
                            self.emit(
                                Op::Alloc {
                                    id,
                                    size: r.size.max(1),
                                    align: DEFAULT_ALIGN,
                                },
                                r,
                            );
                        }
                    }
                }
            }
        }
        // A realloc cut short by the end of the process: its block stays live.
        for (_, (block, old, _)) in pending {
            if let Some(b) = block {
                live.insert(old, b);
            }
        }
        if let Some(last) = records.last() {
            let mut rest: Vec<u64> = live.values().map(|&(id, _)| id).collect();
            rest.sort_unstable();
            for id in rest {
                self.emit(Op::Free { id }, last);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
