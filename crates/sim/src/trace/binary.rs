//! The reader of the binary trace format that `libfreespace.so` records under
//! `FREESPACE_TRACE` (docs/trace-format-binary.md is the specification; the chunk header and
//! record layouts, and their checks, are freespace-trace-format's).
//!
//! Invariant: [`BinaryReader`] either refuses the file with an error naming the byte offset and
//! record number of the first problem, or yields a trace whose ids are renumbered from the
//! recorded addresses so that every free and realloc names the block its address held at that
//! moment. Records are put back into the order the calls took effect (per process, by sequence
//! number), processes follow one another in the order they first appear, and each process's
//! blocks still live at its end are freed there, since its exit returned them.
//!
//! A trace of a program that died is read too ([`Losses`] says what it lost): a chunk cut short
//! keeps its whole records, and a conflict in an address's history is resolved only when
//! records are missing from the sequence between its two events. Everything else that does not
//! fit the format (a bad magic number where a chunk must begin, a corrupt record, a double
//! free with nothing lost in between) is refused.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use freespace_trace_format::{
    ChunkHeader, Kind, Record, CHUNK_HEADER_SIZE, RECORD_SIZE, SIGNATURE,
};

use super::{CutChunk, Event, Losses, Op, TraceError, TraceReader, DEFAULT_ALIGN};

/// True if `bytes` is a binary trace rather than a text one, so [`super::read_trace`] should
/// hand it to [`BinaryReader`]: it starts with `FSTRACE` (any version), or its first 24 bytes
/// (one chunk header) hold a NUL byte. A text trace holds none, and every chunk header does (its record size, 40, is a little-endian `u32`), so a binary trace whose first magic
/// number is damaged is still read as binary, and refused for its bad magic.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(&SIGNATURE) || bytes.iter().take(CHUNK_HEADER_SIZE).any(|&b| b == 0)
}

/// One decoded record and where it sits in the file.
#[derive(Debug, Clone, Copy)]
struct Raw {
    /// The program: its pid and the run number that tells apart programs one pid ran in turn.
    program: (u32, u32),
    tid: u32,
    seq: u64,
    kind: Kind,
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
    losses: Losses,
}

impl BinaryReader {
    /// Decodes and orders the whole trace in `bytes`; `source` names it in error messages.
    pub fn new(source: &str, bytes: &[u8]) -> Result<BinaryReader, TraceError> {
        let mut losses = Losses::default();
        let raws = decode(source, bytes, &mut losses)?;
        let mut builder = Builder {
            source,
            events: Vec::new(),
            next_id: 1,
            foreign_frees: 0,
            losses,
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
            losses: builder.losses,
        })
    }

    /// What the trace lost (chunks cut short, records missing from the sequence) and how the
    /// reader filled in around it; empty for a whole trace.
    pub fn losses(&self) -> &Losses {
        &self.losses
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

/// True if a chunk may begin at `at`: the end of the file, or bytes that begin the magic
/// number (all seven of `FSTRACE`, or as many as the file still has).
fn chunk_may_start(bytes: &[u8], at: usize) -> bool {
    let rest = &bytes[at..];
    let n = rest.len().min(7);
    rest[..n] == SIGNATURE[..n]
}

/// The first offset in `from..to` where `FSTRACE` begins.
fn find_magic(bytes: &[u8], from: usize, to: usize) -> Option<usize> {
    let end = to.saturating_add(6).min(bytes.len());
    if from >= end {
        return None;
    }
    bytes[from..end]
        .windows(7)
        .position(|w| w == SIGNATURE)
        .map(|i| from + i)
}

/// Splits the file into chunks and decodes every record, checking each field.
///
/// A chunk is whole when its promised records end at the end of the file or where the next
/// magic number begins. Otherwise it was cut short (a write interrupted by the program's
/// death): it ends where the next magic number begins within its promised extent, or at the
/// end of the file, and its whole records are kept. Bytes that do not begin with the magic
/// number where a chunk must begin are an error.
fn decode(source: &str, bytes: &[u8], losses: &mut Losses) -> Result<Vec<Raw>, TraceError> {
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
        // A header cut short: the file ends inside it, or the next chunk begins inside it.
        let header_end = offset + rest.len().min(CHUNK_HEADER_SIZE);
        let next = find_magic(bytes, offset + 1, header_end);
        // The bytes here that match the magic number: all seven, all the file has, or a
        // prefix that the next chunk cuts short.
        let matched = rest
            .iter()
            .zip(&SIGNATURE)
            .take_while(|(a, b)| a == b)
            .count();
        if matched < rest.len().min(7) && !next.is_some_and(|n| n - offset <= matched) {
            return Err(at(0, offset, "not a trace chunk (bad magic)".to_string()));
        }
        let header = match rest.first_chunk::<CHUNK_HEADER_SIZE>() {
            Some(header) if next.is_none() => header,
            _ => {
                losses.cut_headers.push(offset);
                offset = next.unwrap_or(bytes.len());
                continue;
            }
        };
        let header = ChunkHeader::decode(header).map_err(|e| at(0, offset, e.to_string()))?;
        let program = (header.pid, header.run);
        let promised = header.count as usize;
        let body_at = offset + CHUNK_HEADER_SIZE;
        let promised_end = body_at.saturating_add(promised.saturating_mul(RECORD_SIZE));
        let whole = promised_end <= bytes.len() && chunk_may_start(bytes, promised_end);
        let end = if whole {
            promised_end
        } else {
            match find_magic(bytes, body_at, promised_end.min(bytes.len())) {
                Some(next) => next,
                // Nothing begins inside: the chunk runs to its promised end (and whatever
                // follows is refused as a bad magic number) or to the end of the file.
                None => promised_end.min(bytes.len()),
            }
        };
        let count = (end - body_at) / RECORD_SIZE;
        if count < promised {
            losses.cut_chunks.push(CutChunk {
                offset,
                present: count,
                promised,
            });
        }
        let body = &bytes[body_at..body_at + count * RECORD_SIZE];
        for (i, r) in body.chunks_exact(RECORD_SIZE).enumerate() {
            number += 1;
            let roff = body_at + i * RECORD_SIZE;
            let r = r.try_into().expect("chunks_exact yields whole records");
            let rec = Record::decode(r).map_err(|e| at(number, roff, e.to_string()))?;
            let too_big = |what: &str, v: u64| {
                at(
                    number,
                    roff,
                    format!("{what} {v} does not fit in this machine's address space"),
                )
            };
            out.push(Raw {
                program,
                tid: rec.tid,
                seq: rec.seq,
                kind: rec.kind,
                align: usize::try_from(rec.align).map_err(|_| too_big("alignment", rec.align))?,
                addr: rec.addr,
                size: usize::try_from(rec.size).map_err(|_| too_big("size", rec.size))?,
                number,
                offset: roff,
            });
        }
        offset = end;
    }
    Ok(out)
}

/// A live block: its id, the record that allocated it, and the index (in its program's records,
/// sorted by sequence number) of the event that put it at its address.
#[derive(Debug, Clone, Copy)]
struct Block {
    id: u64,
    number: usize,
    at: usize,
}

/// A realloc between its two halves.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The block, unless it was allocated before the trace began or its allocation was lost.
    block: Option<Block>,
    /// Its allocation was lost (counted in [`Losses::orphan_frees`], not as a foreign free).
    lost_alloc: bool,
    /// The old address.
    old: u64,
    /// The record of the first half, and its index.
    number: usize,
    at: usize,
}

/// True if records are missing from the sequence between `records[i]` and `records[j]`
/// (`i < j`, sorted by sequence number, no number repeated): lost records could lie between.
fn lost_between(records: &[Raw], i: usize, j: usize) -> bool {
    records[j].seq - records[i].seq != (j - i) as u64
}

/// A realloc that returned an address another block holds.
fn realloc_conflict(addr: u64, since: usize) -> String {
    format!("realloc returned {addr:#x}, which is live (since record {since})")
}

/// Turns each process's ordered records into events with renumbered ids.
struct Builder<'a> {
    source: &'a str,
    events: Vec<Event>,
    next_id: u64,
    foreign_frees: usize,
    losses: Losses,
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

    /// Makes room at `r.addr` for a block that event `j` puts there. A block already live there
    /// lost its free if records are missing since it arrived: it is freed here. Otherwise the
    /// history is impossible, and `conflict` (given the address and the record that put the
    /// live block there) says how.
    fn evict(
        &mut self,
        records: &[Raw],
        live: &mut HashMap<u64, Block>,
        j: usize,
        conflict: fn(u64, usize) -> String,
    ) -> Result<(), TraceError> {
        let r = &records[j];
        if let Some(&b) = live.get(&r.addr) {
            if !lost_between(records, b.at, j) {
                return Err(self.err(r, conflict(r.addr, b.number)));
            }
            live.remove(&r.addr);
            self.losses.implied_frees += 1;
            self.emit(Op::Free { id: b.id }, r);
        }
        Ok(())
    }

    /// A realloc whose second half never came: its block stays at the old address, unless a
    /// new owner has that address, which means the block moved to an address the trace does
    /// not have; it is then freed here.
    fn settle(&mut self, p: Pending, live: &mut HashMap<u64, Block>, r: &Raw) {
        if let Some(b) = p.block {
            match live.entry(p.old) {
                Entry::Occupied(_) => self.emit(Op::Free { id: b.id }, r),
                Entry::Vacant(slot) => {
                    slot.insert(b);
                }
            }
        }
    }

    /// One process's records, sorted by sequence number.
    fn process(&mut self, records: &[Raw]) -> Result<(), TraceError> {
        // The block at each live address.
        let mut live: HashMap<u64, Block> = HashMap::new();
        // Addresses whose last event was a free, and the index of that free (to tell a double
        // free from a foreign one, and from one whose allocation was lost).
        let mut freed: HashMap<u64, usize> = HashMap::new();
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
            let step = pair[1].seq - pair[0].seq;
            if step > 1 {
                self.losses.gaps += 1;
                self.losses.missing_records += step - 1;
            }
        }
        // Chunks cut short may have lost records from before the first one that survives.
        let cut = !self.losses.cut_chunks.is_empty() || !self.losses.cut_headers.is_empty();
        for (j, r) in records.iter().enumerate() {
            match r.kind {
                Kind::Alloc => {
                    if r.addr == 0 {
                        return Err(self.err(r, "allocation of address 0".to_string()));
                    }
                    self.evict(records, &mut live, j, |addr, since| {
                        format!(
                            "address {addr:#x} allocated again while live (since record {since})"
                        )
                    })?;
                    let id = self.fresh_id();
                    live.insert(
                        r.addr,
                        Block {
                            id,
                            number: r.number,
                            at: j,
                        },
                    );
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
                Kind::Free => match live.remove(&r.addr) {
                    Some(b) => {
                        freed.insert(r.addr, j);
                        self.emit(Op::Free { id: b.id }, r);
                    }
                    None => match freed.get(&r.addr) {
                        Some(&i) if !lost_between(records, i, j) => {
                            return Err(self.err(r, format!("double free of address {:#x}", r.addr)))
                        }
                        Some(_) => {
                            // The allocation in between was lost.
                            self.losses.orphan_frees += 1;
                            freed.insert(r.addr, j);
                        }
                        None => self.foreign_frees += 1,
                    },
                },
                Kind::ReallocFrom => {
                    if let Some(p) = pending.remove(&r.tid) {
                        if !lost_between(records, p.at, j) {
                            return Err(self.err(
                                r,
                                format!(
                                    "thread {} starts a realloc while the one at record {} is \
                                     unfinished",
                                    r.tid, p.number
                                ),
                            ));
                        }
                        // The earlier realloc's second half was lost.
                        self.losses.broken_reallocs += 1;
                        self.settle(p, &mut live, r);
                    }
                    let block = live.remove(&r.addr);
                    let mut lost_alloc = false;
                    if block.is_none() {
                        if let Some(&i) = freed.get(&r.addr) {
                            if !lost_between(records, i, j) {
                                return Err(self.err(
                                    r,
                                    format!("realloc of address {:#x}, which was freed", r.addr),
                                ));
                            }
                            self.losses.orphan_frees += 1;
                            lost_alloc = true;
                        }
                    }
                    pending.insert(
                        r.tid,
                        Pending {
                            block,
                            lost_alloc,
                            old: r.addr,
                            number: r.number,
                            at: j,
                        },
                    );
                }
                Kind::ReallocTo => {
                    let Some(p) = pending.remove(&r.tid) else {
                        if !(cut || lost_between(records, 0, j)) {
                            return Err(self.err(
                                r,
                                format!(
                                    "second half of a realloc on thread {} without its first",
                                    r.tid
                                ),
                            ));
                        }
                        // The first half was lost: the block at the address returned, if one
                        // is live there since before the loss, is the one resized in place.
                        self.losses.broken_reallocs += 1;
                        if r.addr == 0 {
                            continue;
                        }
                        match live.get_mut(&r.addr) {
                            Some(b) if lost_between(records, b.at, j) => {
                                b.at = j;
                                let id = b.id;
                                self.emit(
                                    Op::Realloc {
                                        id,
                                        size: r.size.max(1),
                                    },
                                    r,
                                );
                            }
                            Some(b) => {
                                let since = b.number;
                                return Err(self.err(r, realloc_conflict(r.addr, since)));
                            }
                            None => {
                                let id = self.fresh_id();
                                live.insert(
                                    r.addr,
                                    Block {
                                        id,
                                        number: r.number,
                                        at: j,
                                    },
                                );
                                freed.remove(&r.addr);
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
                        continue;
                    };
                    if r.addr == 0 {
                        // The call failed; the old block stays where it was.
                        self.settle(p, &mut live, r);
                        continue;
                    }
                    self.evict(records, &mut live, j, realloc_conflict)?;
                    // The old address was released inside the call, just after the first half.
                    if p.old != r.addr && !live.contains_key(&p.old) {
                        freed.insert(p.old, p.at);
                    }
                    freed.remove(&r.addr);
                    match p.block {
                        Some(b) => {
                            live.insert(r.addr, Block { at: j, ..b });
                            self.emit(
                                Op::Realloc {
                                    id: b.id,
                                    size: r.size.max(1),
                                },
                                r,
                            );
                        }
                        None => {
                            if !p.lost_alloc {
                                self.foreign_frees += 1;
                            }
                            let id = self.fresh_id();
                            live.insert(
                                r.addr,
                                Block {
                                    id,
                                    number: r.number,
                                    at: j,
                                },
                            );
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
        // The process's exit gives back what it still holds, a block in the middle of a
        // realloc included.
        if let Some(last) = records.last() {
            let mut rest: Vec<u64> = live.values().map(|b| b.id).collect();
            rest.extend(pending.values().filter_map(|p| p.block.map(|b| b.id)));
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
