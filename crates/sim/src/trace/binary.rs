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
mod tests {
    use super::*;

    /// A test record: kind, call, alignment code, tid, seq, addr, size.
    fn rec(
        kind: u8,
        tid: u32,
        seq: u64,
        addr: u64,
        size: u64,
        align_code: u8,
    ) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        b[0] = kind;
        b[1] = if kind == KIND_FREE { 10 } else { 1 };
        b[2] = align_code;
        b[4..8].copy_from_slice(&tid.to_le_bytes());
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b[16..24].copy_from_slice(&(seq * 100).to_le_bytes());
        b[24..32].copy_from_slice(&addr.to_le_bytes());
        b[32..40].copy_from_slice(&size.to_le_bytes());
        b
    }

    fn chunk(pid: u32, records: &[[u8; RECORD_SIZE]]) -> Vec<u8> {
        chunk_of_run(pid, 1, records)
    }

    fn chunk_of_run(pid: u32, run: u32, records: &[[u8; RECORD_SIZE]]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&pid.to_le_bytes());
        v.extend_from_slice(&(records.len() as u32).to_le_bytes());
        v.extend_from_slice(&(RECORD_SIZE as u32).to_le_bytes());
        v.extend_from_slice(&run.to_le_bytes());
        for r in records {
            v.extend_from_slice(r);
        }
        v
    }

    fn ops(bytes: &[u8]) -> Result<Vec<Op>, TraceError> {
        let trace = BinaryReader::new("t.bin", bytes)?.read_all()?;
        Ok(trace.events.into_iter().map(|e| e.op).collect())
    }

    fn err(bytes: &[u8]) -> String {
        ops(bytes).unwrap_err().to_string()
    }

    #[test]
    fn records_are_ordered_by_sequence_across_thread_chunks() {
        // Thread 2 flushed first, but its free (seq 1) follows thread 1's alloc (seq 0), and
        // the address's reuse (seq 2) follows that free.
        let mut file = chunk(7, &[rec(KIND_FREE, 2, 1, 0x1000, 0, 0)]);
        file.extend(chunk(
            7,
            &[
                rec(KIND_ALLOC, 1, 0, 0x1000, 24, 0),
                rec(KIND_ALLOC, 1, 2, 0x1000, 0, 13),
            ],
        ));
        assert_eq!(
            ops(&file).unwrap(),
            vec![
                Op::Alloc {
                    id: 1,
                    size: 24,
                    align: DEFAULT_ALIGN
                },
                Op::Free { id: 1 },
                Op::Alloc {
                    id: 2,
                    size: 1,
                    align: 4096
                },
                Op::Free { id: 2 },
            ]
        );
    }

    #[test]
    fn realloc_halves_keep_the_id_and_free_the_old_address() {
        let file = chunk(
            1,
            &[
                rec(KIND_ALLOC, 1, 0, 0x100, 8, 0),
                rec(KIND_REALLOC_FROM, 1, 1, 0x100, 0, 0),
                // Another thread reuses the old address before the realloc returns.
                rec(KIND_ALLOC, 2, 2, 0x100, 16, 0),
                rec(KIND_REALLOC_TO, 1, 3, 0x900, 4000, 0),
                rec(KIND_REALLOC_FROM, 1, 4, 0x900, 0, 0),
                rec(KIND_REALLOC_TO, 1, 5, 0, 1 << 40, 0), // failed: block stays
                rec(KIND_FREE, 1, 6, 0x900, 0, 0),
            ],
        );
        assert_eq!(
            ops(&file).unwrap(),
            vec![
                Op::Alloc {
                    id: 1,
                    size: 8,
                    align: DEFAULT_ALIGN
                },
                Op::Alloc {
                    id: 2,
                    size: 16,
                    align: DEFAULT_ALIGN
                },
                Op::Realloc { id: 1, size: 4000 },
                Op::Free { id: 1 },
                Op::Free { id: 2 },
            ]
        );
    }

    #[test]
    fn processes_get_their_own_ids_and_foreign_frees_are_counted() {
        let mut file = chunk(10, &[rec(KIND_ALLOC, 10, 0, 0x500, 32, 0)]);
        // The forked child frees its parent's block (foreign) and allocates the same address.
        file.extend(chunk(
            11,
            &[
                rec(KIND_FREE, 11, 5, 0x500, 0, 0),
                rec(KIND_ALLOC, 11, 6, 0x500, 64, 0),
            ],
        ));
        let reader = BinaryReader::new("t.bin", &file).unwrap();
        assert_eq!(reader.foreign_frees(), 1);
        assert_eq!(reader.processes(), 2);
        // The count reaches the trace that `replay` reports from.
        assert_eq!(
            super::super::read_trace("t.bin", &file)
                .unwrap()
                .foreign_frees,
            1
        );
        assert_eq!(
            ops(&file).unwrap(),
            vec![
                Op::Alloc {
                    id: 1,
                    size: 32,
                    align: DEFAULT_ALIGN
                },
                Op::Free { id: 1 },
                Op::Alloc {
                    id: 2,
                    size: 64,
                    align: DEFAULT_ALIGN
                },
                Op::Free { id: 2 },
            ]
        );
    }

    #[test]
    fn a_program_started_by_execve_is_a_process_of_its_own() {
        // Same pid, a new run: its sequence numbers start again, and its addresses are its own.
        let mut file = chunk_of_run(30, 5, &[rec(KIND_ALLOC, 30, 0, 0x700, 8, 0)]);
        file.extend(chunk_of_run(30, 6, &[rec(KIND_ALLOC, 30, 0, 0x700, 9, 0)]));
        let reader = BinaryReader::new("t.bin", &file).unwrap();
        assert_eq!(reader.processes(), 2);
        assert_eq!(
            ops(&file).unwrap(),
            vec![
                Op::Alloc {
                    id: 1,
                    size: 8,
                    align: DEFAULT_ALIGN
                },
                Op::Free { id: 1 },
                Op::Alloc {
                    id: 2,
                    size: 9,
                    align: DEFAULT_ALIGN
                },
                Op::Free { id: 2 },
            ]
        );
    }

    #[test]
    fn unknown_magic_and_version_are_refused_at_their_offset() {
        let good = chunk(1, &[rec(KIND_ALLOC, 1, 0, 0x10, 8, 0)]);
        let mut bad = good.clone();
        bad.extend_from_slice(b"GARBAGE!GARBAGE!GARBAGE!");
        assert_eq!(
            err(&bad),
            "t.bin: byte offset 64: not a trace chunk (bad magic)"
        );
        let mut v2 = good.clone();
        v2[7] = 2;
        assert_eq!(
            err(&v2),
            "t.bin: byte offset 0: unsupported trace format version 2 (this reader knows version 1)"
        );
        assert_eq!(err(b""), "t.bin: empty file: no trace chunk");
    }

    #[test]
    fn truncation_is_reported_with_offset_and_record() {
        let good = chunk(
            1,
            &[
                rec(KIND_ALLOC, 1, 0, 0x10, 8, 0),
                rec(KIND_FREE, 1, 1, 0x10, 0, 0),
            ],
        );
        assert_eq!(
            err(&good[..good.len() - 5]),
            "t.bin:2: byte offset 0: truncated chunk: its header promises 2 records (80 bytes), \
             75 bytes follow"
        );
        let mut two = good.clone();
        two.extend_from_slice(&good[..10]);
        assert_eq!(
            err(&two),
            "t.bin: byte offset 104: truncated chunk header (10 of 24 bytes)"
        );
    }

    /// `r` with byte `i` set to `value`.
    fn with_byte(mut r: [u8; RECORD_SIZE], i: usize, value: u8) -> [u8; RECORD_SIZE] {
        r[i] = value;
        r
    }

    #[test]
    fn corrupt_records_name_their_number() {
        let cases: [(&[[u8; RECORD_SIZE]], &str); 3] = [
            (
                &[
                    rec(KIND_ALLOC, 1, 0, 0x20, 8, 0),
                    with_byte(rec(KIND_ALLOC, 1, 1, 0x10, 8, 0), 0, 9),
                ],
                "t.bin:2: byte offset 64: corrupt record: unknown kind 9",
            ),
            (
                &[with_byte(rec(KIND_ALLOC, 1, 0, 0x10, 8, 0), 2, 99)],
                "t.bin:1: byte offset 24: corrupt record: alignment code 99",
            ),
            (
                &[with_byte(rec(KIND_ALLOC, 1, 0, 0x10, 8, 0), 1, 0)],
                "t.bin:1: byte offset 24: corrupt record: unknown call 0",
            ),
        ];
        for (records, message) in cases {
            assert_eq!(err(&chunk(1, records)), message);
        }
    }

    #[test]
    fn inconsistent_histories_are_refused() {
        let cases: [(&[[u8; RECORD_SIZE]], &str); 4] = [
            (
                // A double free.
                &[
                    rec(KIND_ALLOC, 1, 0, 0x10, 8, 0),
                    rec(KIND_FREE, 1, 1, 0x10, 0, 0),
                    rec(KIND_FREE, 1, 2, 0x10, 0, 0),
                ],
                "t.bin:3: byte offset 104: double free of address 0x10",
            ),
            (
                // One address handed out twice.
                &[
                    rec(KIND_ALLOC, 1, 0, 0x10, 8, 0),
                    rec(KIND_ALLOC, 2, 1, 0x10, 8, 0),
                ],
                "t.bin:2: byte offset 64: address 0x10 allocated again while live (since record 1)",
            ),
            (
                // The second half of a realloc alone.
                &[rec(KIND_REALLOC_TO, 3, 0, 0x10, 8, 0)],
                "t.bin:1: byte offset 24: second half of a realloc on thread 3 without its first",
            ),
            (
                // One sequence number twice.
                &[
                    rec(KIND_ALLOC, 1, 4, 0x10, 8, 0),
                    rec(KIND_ALLOC, 1, 4, 0x20, 8, 0),
                ],
                "t.bin:2: byte offset 64: sequence number 4 repeats record 1 (two traces with one \
                 pid and run?)",
            ),
        ];
        for (records, message) in cases {
            assert_eq!(err(&chunk(1, records)), message);
        }
    }

    #[test]
    fn every_truncation_of_a_valid_trace_is_an_error_not_a_panic() {
        let mut file = chunk(1, &[rec(KIND_ALLOC, 1, 0, 0x10, 8, 0)]);
        file.extend(chunk(
            1,
            &[
                rec(KIND_REALLOC_FROM, 1, 1, 0x10, 0, 0),
                rec(KIND_REALLOC_TO, 1, 2, 0x30, 80, 0),
            ],
        ));
        assert!(ops(&file).is_ok());
        for cut in 0..file.len() {
            let whole_chunks = cut == 64;
            assert_eq!(ops(&file[..cut]).is_ok(), whole_chunks, "cut at {cut}");
        }
        // Flipping any byte never panics either.
        for i in 0..file.len() {
            let mut f = file.clone();
            f[i] ^= 0xa5;
            let _ = ops(&f);
        }
    }
}
