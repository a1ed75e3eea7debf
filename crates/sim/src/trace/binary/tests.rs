//! Tests of the binary reader, on chunks built byte by byte.

use super::*;

/// A test record: kind, call, alignment code, tid, seq, addr, size.
fn rec(kind: u8, tid: u32, seq: u64, addr: u64, size: u64, align_code: u8) -> [u8; RECORD_SIZE] {
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
