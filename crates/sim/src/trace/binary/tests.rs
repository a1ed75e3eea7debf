//! Tests of the binary reader, on chunks built byte by byte.

use freespace_trace_format::{align_from_code, Call};

use super::*;

/// A test record of `kind` by thread `tid`, with the alignment stored as `align_code`.
fn rec(kind: Kind, tid: u32, seq: u64, addr: u64, size: u64, align_code: u8) -> [u8; RECORD_SIZE] {
    Record {
        kind,
        call: if kind == Kind::Free {
            Call::Free
        } else {
            Call::Malloc
        },
        align: align_from_code(align_code).expect("a valid alignment code"),
        tid,
        seq,
        nanos: seq * 100,
        addr,
        size,
    }
    .to_bytes()
}

fn chunk(pid: u32, records: &[[u8; RECORD_SIZE]]) -> Vec<u8> {
    chunk_of_run(pid, 1, records)
}

fn chunk_of_run(pid: u32, run: u32, records: &[[u8; RECORD_SIZE]]) -> Vec<u8> {
    let header = ChunkHeader {
        pid,
        count: records.len() as u32,
        run,
    };
    let mut v = header.to_bytes().to_vec();
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

fn losses(bytes: &[u8]) -> Losses {
    BinaryReader::new("t.bin", bytes).unwrap().losses().clone()
}

#[test]
fn records_are_ordered_by_sequence_across_thread_chunks() {
    // Thread 2 flushed first, but its free (seq 1) follows thread 1's alloc (seq 0), and
    // the address's reuse (seq 2) follows that free.
    let mut file = chunk(7, &[rec(Kind::Free, 2, 1, 0x1000, 0, 0)]);
    file.extend(chunk(
        7,
        &[
            rec(Kind::Alloc, 1, 0, 0x1000, 24, 0),
            rec(Kind::Alloc, 1, 2, 0x1000, 0, 13),
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
            rec(Kind::Alloc, 1, 0, 0x100, 8, 0),
            rec(Kind::ReallocFrom, 1, 1, 0x100, 0, 0),
            // Another thread reuses the old address before the realloc returns.
            rec(Kind::Alloc, 2, 2, 0x100, 16, 0),
            rec(Kind::ReallocTo, 1, 3, 0x900, 4000, 0),
            rec(Kind::ReallocFrom, 1, 4, 0x900, 0, 0),
            rec(Kind::ReallocTo, 1, 5, 0, 1 << 40, 0), // failed: block stays
            rec(Kind::Free, 1, 6, 0x900, 0, 0),
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
    let mut file = chunk(10, &[rec(Kind::Alloc, 10, 0, 0x500, 32, 0)]);
    // The forked child frees its parent's block (foreign) and allocates the same address.
    file.extend(chunk(
        11,
        &[
            rec(Kind::Free, 11, 5, 0x500, 0, 0),
            rec(Kind::Alloc, 11, 6, 0x500, 64, 0),
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
    let mut file = chunk_of_run(30, 5, &[rec(Kind::Alloc, 30, 0, 0x700, 8, 0)]);
    file.extend(chunk_of_run(30, 6, &[rec(Kind::Alloc, 30, 0, 0x700, 9, 0)]));
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
    let good = chunk(1, &[rec(Kind::Alloc, 1, 0, 0x10, 8, 0)]);
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
fn a_cut_tail_and_a_cut_header_are_reported_with_their_offsets() {
    let good = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x10, 8, 0),
            rec(Kind::Free, 1, 1, 0x10, 0, 0),
        ],
    );
    let cut = &good[..good.len() - 5];
    assert_eq!(
        losses(cut),
        Losses {
            cut_chunks: vec![CutChunk {
                offset: 0,
                present: 1,
                promised: 2
            }],
            ..Losses::default()
        }
    );
    assert_eq!(
        losses(cut).to_string(),
        "truncated chunk at byte offset 0: 1 of its 2 records"
    );
    let mut two = good.clone();
    two.extend_from_slice(&good[..10]);
    assert_eq!(
        losses(&two),
        Losses {
            cut_headers: vec![104],
            ..Losses::default()
        }
    );
    assert_eq!(
        losses(&two).to_string(),
        "truncated chunk header at byte offset 104"
    );
    assert!(losses(&good).is_empty());
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
                rec(Kind::Alloc, 1, 0, 0x20, 8, 0),
                with_byte(rec(Kind::Alloc, 1, 1, 0x10, 8, 0), 0, 9),
            ],
            "t.bin:2: byte offset 64: corrupt record: unknown kind 9",
        ),
        (
            &[with_byte(rec(Kind::Alloc, 1, 0, 0x10, 8, 0), 2, 99)],
            "t.bin:1: byte offset 24: corrupt record: alignment code 99",
        ),
        (
            &[with_byte(rec(Kind::Alloc, 1, 0, 0x10, 8, 0), 1, 0)],
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
                rec(Kind::Alloc, 1, 0, 0x10, 8, 0),
                rec(Kind::Free, 1, 1, 0x10, 0, 0),
                rec(Kind::Free, 1, 2, 0x10, 0, 0),
            ],
            "t.bin:3: byte offset 104: double free of address 0x10",
        ),
        (
            // One address handed out twice.
            &[
                rec(Kind::Alloc, 1, 0, 0x10, 8, 0),
                rec(Kind::Alloc, 2, 1, 0x10, 8, 0),
            ],
            "t.bin:2: byte offset 64: address 0x10 allocated again while live (since record 1)",
        ),
        (
            // The second half of a realloc alone.
            &[rec(Kind::ReallocTo, 3, 0, 0x10, 8, 0)],
            "t.bin:1: byte offset 24: second half of a realloc on thread 3 without its first",
        ),
        (
            // One sequence number twice.
            &[
                rec(Kind::Alloc, 1, 4, 0x10, 8, 0),
                rec(Kind::Alloc, 1, 4, 0x20, 8, 0),
            ],
            "t.bin:2: byte offset 64: sequence number 4 repeats record 1 (two traces with one \
             pid and run?)",
        ),
    ];
    for (records, message) in cases {
        assert_eq!(err(&chunk(1, records)), message);
    }
}

// Traces of a program that died: each thread writes its own buffer, so a kill leaves gaps in
// the middle of the sequence numbers, and a kill during a write leaves a chunk cut short.

#[test]
fn a_lost_free_between_two_allocations_of_one_address_is_implied() {
    // Thread 2's buffer, which held the free of 0x10 (seq 1), was never written.
    let mut file = chunk(1, &[rec(Kind::Alloc, 1, 0, 0x10, 8, 0)]);
    file.extend(chunk(1, &[rec(Kind::Alloc, 3, 2, 0x10, 24, 0)]));
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
                size: 24,
                align: DEFAULT_ALIGN
            },
            Op::Free { id: 2 },
        ]
    );
    assert_eq!(
        losses(&file),
        Losses {
            missing_records: 1,
            gaps: 1,
            implied_frees: 1,
            ..Losses::default()
        }
    );
}

#[test]
fn a_free_after_a_lost_allocation_is_left_out_not_a_double_free() {
    // The second allocation of 0x10 (seq 2) was lost; its free (seq 3) survives.
    let file = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x10, 8, 0),
            rec(Kind::Free, 1, 1, 0x10, 0, 0),
            rec(Kind::Free, 2, 3, 0x10, 0, 0),
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
            Op::Free { id: 1 }
        ]
    );
    assert_eq!(
        losses(&file),
        Losses {
            missing_records: 1,
            gaps: 1,
            orphan_frees: 1,
            ..Losses::default()
        }
    );
    // A third free with nothing lost since the second is a double free again.
    let mut records = vec![
        rec(Kind::Alloc, 1, 0, 0x10, 8, 0),
        rec(Kind::Free, 1, 1, 0x10, 0, 0),
        rec(Kind::Free, 2, 3, 0x10, 0, 0),
    ];
    records.push(rec(Kind::Free, 2, 4, 0x10, 0, 0));
    assert_eq!(
        err(&chunk(1, &records)),
        "t.bin:4: byte offset 144: double free of address 0x10"
    );
}

#[test]
fn a_double_free_with_no_gap_between_its_frees_is_still_refused() {
    // A record is missing (seq 1), but not between the two frees.
    let file = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x20, 8, 0),
            rec(Kind::Alloc, 1, 2, 0x10, 8, 0),
            rec(Kind::Free, 1, 3, 0x10, 0, 0),
            rec(Kind::Free, 1, 4, 0x10, 0, 0),
        ],
    );
    assert_eq!(
        err(&file),
        "t.bin:4: byte offset 144: double free of address 0x10"
    );
    let file = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x20, 8, 0),
            rec(Kind::Alloc, 1, 2, 0x10, 8, 0),
            rec(Kind::Alloc, 2, 3, 0x10, 8, 0),
        ],
    );
    assert_eq!(
        err(&file),
        "t.bin:3: byte offset 104: address 0x10 allocated again while live (since record 2)"
    );
}

#[test]
fn a_realloc_that_lost_a_half_keeps_its_block() {
    // The second half of the first realloc (seq 2) was lost; the thread's next realloc of the
    // same block survives whole.
    let file = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x100, 8, 0),
            rec(Kind::ReallocFrom, 1, 1, 0x100, 0, 0),
            rec(Kind::ReallocFrom, 1, 3, 0x100, 0, 0),
            rec(Kind::ReallocTo, 1, 4, 0x200, 64, 0),
            rec(Kind::Free, 1, 5, 0x200, 0, 0),
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
            Op::Realloc { id: 1, size: 64 },
            Op::Free { id: 1 },
        ]
    );
    // The first half was lost (seq 1): the block at the address the realloc returned is the
    // one it resized.
    let file = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x100, 8, 0),
            rec(Kind::ReallocTo, 1, 2, 0x100, 32, 0),
            rec(Kind::Free, 1, 3, 0x100, 0, 0),
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
            Op::Realloc { id: 1, size: 32 },
            Op::Free { id: 1 },
        ]
    );
    assert_eq!(
        losses(&file),
        Losses {
            missing_records: 1,
            gaps: 1,
            broken_reallocs: 1,
            ..Losses::default()
        }
    );
}

#[test]
fn a_chunk_cut_short_in_the_middle_keeps_its_whole_records() {
    // Thread 1's write was cut after one and a half records; thread 2's chunk follows it.
    let one = chunk(
        1,
        &[
            rec(Kind::Alloc, 1, 0, 0x10, 8, 0),
            rec(Kind::Free, 1, 2, 0x10, 0, 0),
            rec(Kind::Alloc, 1, 4, 0x30, 8, 0),
        ],
    );
    let mut file = one[..CHUNK_HEADER_SIZE + RECORD_SIZE + 20].to_vec();
    file.extend(chunk(
        1,
        &[
            rec(Kind::Alloc, 2, 1, 0x20, 16, 0),
            rec(Kind::Free, 2, 3, 0x20, 0, 0),
            rec(Kind::Alloc, 2, 5, 0x10, 32, 0),
        ],
    ));
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
            Op::Free { id: 2 },
            // The free of 0x10 (seq 2) was cut off: it is implied by the reuse.
            Op::Free { id: 1 },
            Op::Alloc {
                id: 3,
                size: 32,
                align: DEFAULT_ALIGN
            },
            Op::Free { id: 3 },
        ]
    );
    assert_eq!(
        losses(&file),
        Losses {
            cut_chunks: vec![CutChunk {
                offset: 0,
                present: 1,
                promised: 3
            }],
            missing_records: 2,
            gaps: 2,
            implied_frees: 1,
            ..Losses::default()
        }
    );
    assert_eq!(
        losses(&file).to_string(),
        "truncated chunk at byte offset 0: 1 of its 3 records; 2 records missing from the \
         sequence in 2 gaps; 1 implied free (an address allocated again after lost records)"
    );
}

#[test]
fn a_file_cut_at_any_byte_gives_the_whole_records_before_the_cut() {
    let mut file = chunk(1, &[rec(Kind::Alloc, 1, 0, 0x10, 8, 0)]);
    file.extend(chunk(
        1,
        &[
            rec(Kind::ReallocFrom, 1, 1, 0x10, 0, 0),
            rec(Kind::ReallocTo, 1, 2, 0x30, 80, 0),
            rec(Kind::Alloc, 1, 3, 0x50, 8, 0),
        ],
    ));
    let all = ops(&file).unwrap();
    assert_eq!(all.len(), 5);
    for cut in 1..file.len() {
        let got = ops(&file[..cut]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let lost = losses(&file[..cut]);
        assert_eq!(lost.is_empty(), cut == 64, "cut at {cut}: {lost:?}");
        // The records whole before the cut: the first chunk's alloc once the chunk is whole,
        // then the second chunk's records one by one.
        let whole = if cut < 64 {
            0
        } else {
            1 + (cut - 64).saturating_sub(CHUNK_HEADER_SIZE) / RECORD_SIZE
        };
        let want: Vec<Op> = match whole {
            0 => vec![],
            1 | 2 => vec![all[0], Op::Free { id: 1 }],
            3 => vec![all[0], all[1], Op::Free { id: 1 }],
            _ => all.clone(),
        };
        assert_eq!(got, want, "cut at {cut}");
    }
    // Flipping any byte never panics either.
    for i in 0..file.len() {
        let mut f = file.clone();
        f[i] ^= 0xa5;
        let _ = ops(&f);
    }
}

/// A recorder with libfreespace.so's logic (crates/capi/src/trace_recorder.rs): one
/// process-wide sequence number, one buffer per thread, and a full buffer written as one chunk.
/// What was never written is what a kill loses.
struct Recorder {
    seq: u64,
    capacity: usize,
    buffers: Vec<Vec<[u8; RECORD_SIZE]>>,
    file: Vec<u8>,
    /// Each chunk written: its byte offset and the sequence numbers of its records.
    chunks: Vec<(usize, Vec<u64>)>,
}

impl Recorder {
    fn new(threads: usize, capacity: usize) -> Self {
        Recorder {
            seq: 0,
            capacity,
            buffers: vec![Vec::new(); threads],
            file: Vec::new(),
            chunks: Vec::new(),
        }
    }

    fn record(&mut self, tid: u32, kind: Kind, addr: u64, size: u64) {
        let r = rec(kind, tid, self.seq, addr, size, 0);
        self.seq += 1;
        let buf = &mut self.buffers[tid as usize - 1];
        buf.push(r);
        if buf.len() == self.capacity {
            self.flush(tid);
        }
    }

    fn flush(&mut self, tid: u32) {
        let records = std::mem::take(&mut self.buffers[tid as usize - 1]);
        if !records.is_empty() {
            let seqs = records
                .iter()
                .map(|r| Record::decode(r).unwrap().seq)
                .collect();
            self.chunks.push((self.file.len(), seqs));
            self.file.extend(chunk(1, &records));
        }
    }

    /// A normal exit: every buffer is written.
    fn exit(&mut self) {
        for tid in 1..=self.buffers.len() as u32 {
            self.flush(tid);
        }
    }
}

/// The shared test generator (`freespace_testkit::Rng`), drawing `usize`s for the workloads.
struct Rng(freespace_testkit::Rng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(freespace_testkit::Rng::new(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.index(n)
    }
}

const THREADS: usize = 4;

/// Four threads allocate, free and realloc over twelve addresses, so that addresses are reused
/// often and a realloc's two halves are often separated by other threads' calls (its old
/// address is released inside the call, and another thread may get it before it returns).
fn record_workload(seed: u64, steps: usize, capacity: usize) -> Recorder {
    let addrs: Vec<u64> = (1..=12).map(|k| k * 0x100).collect();
    let mut rng = Rng::new(seed);
    let mut out = Recorder::new(THREADS, capacity);
    let mut live: Vec<u64> = Vec::new();
    let mut in_realloc = [false; THREADS];
    for _ in 0..steps {
        let t = rng.below(THREADS);
        let tid = t as u32 + 1;
        let size = 1 + rng.below(100) as u64;
        let free: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !live.contains(a))
            .collect();
        if in_realloc[t] {
            if let Some(&to) = free.get(rng.below(free.len().max(1))) {
                out.record(tid, Kind::ReallocTo, to, size);
                live.push(to);
                in_realloc[t] = false;
            }
            continue;
        }
        match rng.below(10) {
            0..=4 if !free.is_empty() => {
                let a = free[rng.below(free.len())];
                out.record(tid, Kind::Alloc, a, size);
                live.push(a);
            }
            5..=7 if !live.is_empty() => {
                let a = live.swap_remove(rng.below(live.len()));
                out.record(tid, Kind::Free, a, 0);
            }
            8 | 9 if !live.is_empty() => {
                let a = live.swap_remove(rng.below(live.len()));
                out.record(tid, Kind::ReallocFrom, a, 0);
                in_realloc[t] = true;
            }
            _ => {}
        }
    }
    out
}

/// Missing sequence numbers between the first and the last of `seqs`, and the runs they form.
fn expected_gaps(mut seqs: Vec<u64>) -> (u64, usize) {
    seqs.sort_unstable();
    let mut missing = 0;
    let mut gaps = 0;
    for w in seqs.windows(2) {
        if w[1] - w[0] > 1 {
            missing += w[1] - w[0] - 1;
            gaps += 1;
        }
    }
    (missing, gaps)
}

/// Reads `file` as `read_trace` does (every event checked), or panics naming the case.
fn read_losses(file: &[u8], case: &str) -> Losses {
    let mut reader = BinaryReader::new("t.bin", file).unwrap_or_else(|e| panic!("{case}: {e}"));
    let losses = reader.losses().clone();
    reader.read_all().unwrap_or_else(|e| panic!("{case}: {e}"));
    losses
}

#[test]
fn traces_of_a_killed_program_are_read_and_their_losses_counted() {
    let mut damaged = 0;
    for seed in 0..150u64 {
        let capacity = 1 + (seed % 9) as usize;
        // The program exits normally: nothing is lost, and nothing is reported.
        let mut whole = record_workload(seed, 400, capacity);
        whole.exit();
        assert!(read_losses(&whole.file, &format!("seed {seed} whole")).is_empty());

        // The program is killed: the buffers it had not written are lost.
        let killed = record_workload(seed, 400, capacity);
        let surviving: Vec<u64> = killed.chunks.iter().flat_map(|c| c.1.clone()).collect();
        if surviving.is_empty() {
            continue;
        }
        let (missing, gaps) = expected_gaps(surviving.clone());
        let lost = read_losses(&killed.file, &format!("seed {seed} killed"));
        assert_eq!(
            (lost.missing_records, lost.gaps),
            (missing, gaps),
            "seed {seed}"
        );
        damaged += usize::from(missing > 0);

        // Killed during a write: one chunk (in the middle of the file when other processes
        // went on writing, or the last one) keeps only a prefix of its bytes.
        let mut rng = Rng::new(seed + 7);
        let which = rng.below(killed.chunks.len());
        let (start, seqs) = &killed.chunks[which];
        let end = killed
            .chunks
            .get(which + 1)
            .map_or(killed.file.len(), |c| c.0);
        let keep = 1 + rng.below(end - start - 1);
        let mut file = killed.file[..start + keep].to_vec();
        file.extend_from_slice(&killed.file[end..]);
        let present = keep.saturating_sub(CHUNK_HEADER_SIZE) / RECORD_SIZE;
        let cut_seqs: Vec<u64> = killed
            .chunks
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let n = if i == which { present } else { c.1.len() };
                c.1[..n].to_vec()
            })
            .collect();
        let case = format!("seed {seed}: chunk {which} cut to {keep} bytes");
        let lost = read_losses(&file, &case);
        if keep < CHUNK_HEADER_SIZE {
            assert_eq!(lost.cut_headers, vec![*start], "{case}");
        } else {
            assert_eq!(
                lost.cut_chunks,
                vec![CutChunk {
                    offset: *start,
                    present,
                    promised: seqs.len()
                }],
                "{case}"
            );
        }
        if !cut_seqs.is_empty() {
            let (missing, gaps) = expected_gaps(cut_seqs);
            assert_eq!((lost.missing_records, lost.gaps), (missing, gaps), "{case}");
        }
    }
    assert!(
        damaged > 100,
        "only {damaged} workloads lost records mid-sequence"
    );
}
