//! The binary trace reader (crates/sim/src/trace/binary.rs), on raw bytes and on chunks built
//! from records that the fuzzer picks over a few addresses, threads and sequence numbers, cut
//! short and with records left out. It never panics, an accepted trace passes the trace checks
//! (read_all runs them), and the missing records and gaps it reports are the ones a direct
//! count of each program's sequence numbers finds.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use freespace_sim::trace::{read_trace, BinaryReader, TraceReader};
use freespace_trace_format::{align_from_code, Call, ChunkHeader, Kind};
use libfuzzer_sys::fuzz_target;

const MAX_INPUT: usize = 1 << 18;

#[derive(Debug, Arbitrary)]
struct Chunk {
    /// The program: pid and run, from a few of each.
    pid: u8,
    run: u8,
    records: Vec<Record>,
    /// Keep only this many bytes of the chunk (a write cut short), if set.
    cut: Option<u16>,
    /// Promise more records than follow.
    extra_count: u8,
}

#[derive(Debug, Arbitrary)]
struct Record {
    kind: u8,
    call: u8,
    align: u8,
    tid: u8,
    seq: u16,
    addr: u8,
    size: u16,
}

fn serialise(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let header = ChunkHeader {
            pid: u32::from(c.pid % 3),
            count: c.records.len() as u32 + u32::from(c.extra_count % 4),
            run: u32::from(c.run % 2),
        };
        let mut bytes = header.to_bytes().to_vec();
        for r in &c.records {
            let record = freespace_trace_format::Record {
                kind: Kind::ALL[usize::from(r.kind % 4)],
                call: Call::ALL[usize::from(r.call % 10)],
                align: align_from_code(if r.align % 4 == 0 { r.align % 14 } else { 0 })
                    .unwrap_or(0),
                tid: u32::from(r.tid % 4),
                seq: u64::from(r.seq),
                nanos: 0,
                addr: u64::from(r.addr % 16) * 16,
                size: u64::from(r.size % 4096),
            };
            bytes.extend_from_slice(&record.to_bytes());
        }
        if let Some(cut) = c.cut {
            bytes.truncate(usize::from(cut) % (bytes.len() + 1));
        }
        out.extend(bytes);
    }
    out
}

/// Missing sequence numbers and gaps over the records of each program, counted directly; only
/// meaningful for chunks serialised whole (a cut chunk loses records the count must not see).
fn direct_gaps(chunks: &[Chunk]) -> (u64, usize) {
    let mut programs: BTreeMap<(u8, u8), Vec<u64>> = BTreeMap::new();
    for c in chunks {
        let seqs = programs.entry((c.pid % 3, c.run % 2)).or_default();
        seqs.extend(c.records.iter().map(|r| u64::from(r.seq)));
    }
    let (mut missing, mut gaps) = (0, 0);
    for seqs in programs.values_mut() {
        seqs.sort_unstable();
        for w in seqs.windows(2) {
            if w[1] - w[0] > 1 {
                missing += w[1] - w[0] - 1;
                gaps += 1;
            }
        }
    }
    (missing, gaps)
}

// The first byte chooses: even, the rest is the trace as it is (the corpus holds real
// recorded traces); odd, the rest builds chunks of records that are then serialised as the
// recorder writes them.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (bytes, whole) = if mode % 2 == 0 {
        (rest.to_vec(), None)
    } else {
        let Ok(chunks) = Vec::<Chunk>::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        // Chunks serialised whole: the reader must count exactly the gaps counted directly.
        let clean = chunks
            .iter()
            .all(|c| c.cut.is_none() && c.extra_count % 4 == 0);
        let bytes = serialise(&chunks);
        if !clean {
            // Cut or over-promising chunks: read as `freespace replay` reads them.
            if let Err(e) = read_trace("fuzz.fstrace", &bytes) {
                assert!(e.to_string().len() < 400, "{e}");
            }
            return;
        }
        (bytes, Some(direct_gaps(&chunks)))
    };
    if bytes.len() > MAX_INPUT {
        return;
    }
    let Some(expected) = whole else {
        // As `freespace replay` reads a file: binary by its first chunk header, else text.
        if let Err(e) = read_trace("fuzz.fstrace", &bytes) {
            assert!(e.to_string().len() < 400, "{e}");
        }
        return;
    };
    match BinaryReader::new("fuzz.fstrace", &bytes) {
        Ok(mut reader) => {
            let losses = reader.losses().clone();
            match reader.read_all() {
                Ok(_) => {
                    assert_eq!((losses.missing_records, losses.gaps), expected);
                    assert!(losses.cut_chunks.is_empty() && losses.cut_headers.is_empty());
                }
                Err(e) => assert!(e.to_string().len() < 400, "{e}"),
            }
        }
        Err(e) => assert!(e.to_string().len() < 400, "{e}"),
    }
});
