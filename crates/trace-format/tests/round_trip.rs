//! The format round-trips: every record and header that can be encoded decodes to itself, every
//! byte string that decodes encodes back to the same bytes, and every malformed one is refused
//! with the error of its first bad field. The byte offsets are checked against the tables of
//! docs/trace-format-binary.md, independently of the encoder.

use freespace_testkit::Rng;
use freespace_trace_format::{
    align_code, align_from_code, Call, ChunkHeader, HeaderError, Kind, Record, RecordError,
    CHUNK_HEADER_SIZE, MAGIC, MAX_ALIGN_CODE, RECORD_SIZE, SIGNATURE, VERSION,
};

/// Random cases per property (fewer under Miri).
const CASES: usize = if cfg!(miri) { 32 } else { 4096 };

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn sample() -> Record {
    Record {
        kind: Kind::Alloc,
        call: Call::Memalign,
        align: 4096,
        tid: 0x0102_0304,
        seq: 7,
        nanos: 9,
        addr: 0x1000,
        size: 33,
    }
}

#[test]
fn record_layout_matches_the_specification() {
    let b = sample().to_bytes();
    assert_eq!(b[0], 1);
    assert_eq!(b[1], 7);
    assert_eq!(b[2], 13, "4096 = 1 << 12, stored as 12 + 1");
    assert_eq!(b[3], 0);
    assert_eq!(&b[4..8], &[4, 3, 2, 1]);
    assert_eq!(le64(&b, 8), 7);
    assert_eq!(le64(&b, 16), 9);
    assert_eq!(le64(&b, 24), 0x1000);
    assert_eq!(le64(&b, 32), 33);
    let none = Record {
        align: 0,
        ..sample()
    };
    assert_eq!(none.to_bytes()[2], 0, "no alignment asked for");
}

#[test]
fn chunk_header_layout_matches_the_specification() {
    let h = ChunkHeader {
        pid: 42,
        count: 3,
        run: 0xabcd,
    }
    .to_bytes();
    assert_eq!(&h[..8], b"FSTRACE\x01");
    assert_eq!(le32(&h, 8), 42);
    assert_eq!(le32(&h, 12), 3);
    assert_eq!(le32(&h, 16), 40);
    assert_eq!(le32(&h, 20), 0xabcd);
    assert_eq!((CHUNK_HEADER_SIZE, RECORD_SIZE), (24, 40));
    assert_eq!((&MAGIC[..7], MAGIC[7]), (&SIGNATURE[..], VERSION));
}

#[test]
fn codes_are_the_specifications() {
    let kinds: Vec<u8> = Kind::ALL.iter().map(|k| k.code()).collect();
    assert_eq!(kinds, [1, 2, 3, 4]);
    let calls: Vec<u8> = Call::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(calls, (1..=10).collect::<Vec<u8>>());
    for code in 0..=u8::MAX {
        assert_eq!(
            Kind::from_code(code).map(Kind::code),
            (1..=4).contains(&code).then_some(code)
        );
        assert_eq!(
            Call::from_code(code).map(Call::code),
            (1..=10).contains(&code).then_some(code)
        );
    }
}

#[test]
fn every_alignment_code_round_trips_and_larger_ones_are_refused() {
    assert_eq!(align_code(0), 0);
    assert_eq!(align_from_code(0), Some(0));
    for log in 0..64u8 {
        let align = 1u64 << log;
        assert_eq!(align_code(align), log + 1);
        assert_eq!(align_from_code(log + 1), Some(align));
    }
    assert_eq!(align_code(1 << 63), MAX_ALIGN_CODE);
    for code in MAX_ALIGN_CODE + 1..=u8::MAX {
        assert_eq!(align_from_code(code), None);
    }
}

#[test]
fn every_kind_and_call_round_trips_with_edge_values() {
    let edges64 = [0, 1, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
    let edges32 = [0, 1, u32::MAX];
    let aligns = [0, 1, 8, 4096, 1 << 32, 1 << 63];
    let mut checked = 0;
    for kind in Kind::ALL {
        for call in Call::ALL {
            for (i, &wide) in edges64.iter().enumerate() {
                for &align in &aligns {
                    let r = Record {
                        kind,
                        call,
                        align,
                        tid: edges32[i % edges32.len()],
                        seq: wide,
                        nanos: edges64[(i + 1) % edges64.len()],
                        addr: edges64[(i + 2) % edges64.len()],
                        size: edges64[(i + 3) % edges64.len()],
                    };
                    assert_eq!(Record::decode(&r.to_bytes()), Ok(r));
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 10 * 5 * 6);
    for pid in edges32 {
        for count in edges32 {
            for run in edges32 {
                let h = ChunkHeader { pid, count, run };
                assert_eq!(ChunkHeader::decode(&h.to_bytes()), Ok(h));
            }
        }
    }
}

#[test]
fn malformed_records_get_the_error_of_their_first_bad_field() {
    let good = sample().to_bytes();
    let with = |i: usize, v: u8| {
        let mut b = good;
        b[i] = v;
        b
    };
    let cases = [
        (
            with(0, 0),
            RecordError::UnknownKind(0),
            "corrupt record: unknown kind 0",
        ),
        (
            with(0, 5),
            RecordError::UnknownKind(5),
            "corrupt record: unknown kind 5",
        ),
        (
            with(1, 0),
            RecordError::UnknownCall(0),
            "corrupt record: unknown call 0",
        ),
        (
            with(1, 11),
            RecordError::UnknownCall(11),
            "corrupt record: unknown call 11",
        ),
        (
            with(2, 65),
            RecordError::AlignCode(65),
            "corrupt record: alignment code 65",
        ),
        (
            with(2, 255),
            RecordError::AlignCode(255),
            "corrupt record: alignment code 255",
        ),
        (
            with(3, 1),
            RecordError::Reserved(1),
            "corrupt record: reserved byte is 1",
        ),
    ];
    for (bytes, error, message) in cases {
        assert_eq!(Record::decode(&bytes), Err(error));
        assert_eq!(error.to_string(), message);
    }
    // Several bad fields: the first, in record order, is named.
    let mut all_bad = good;
    all_bad[..4].copy_from_slice(&[9, 0, 99, 1]);
    assert_eq!(Record::decode(&all_bad), Err(RecordError::UnknownKind(9)));
    all_bad[0] = 2;
    assert_eq!(Record::decode(&all_bad), Err(RecordError::UnknownCall(0)));
    all_bad[1] = 10;
    assert_eq!(Record::decode(&all_bad), Err(RecordError::AlignCode(99)));
    all_bad[2] = 64;
    assert_eq!(Record::decode(&all_bad), Err(RecordError::Reserved(1)));
}

#[test]
fn malformed_headers_get_the_error_of_their_first_bad_field() {
    let good = ChunkHeader {
        pid: 1,
        count: 2,
        run: 3,
    }
    .to_bytes();
    for i in 0..7 {
        let mut b = good;
        b[i] ^= 0x20;
        assert_eq!(
            ChunkHeader::decode(&b),
            Err(HeaderError::BadMagic),
            "byte {i}"
        );
    }
    let mut b = good;
    b[7] = 2;
    assert_eq!(
        ChunkHeader::decode(&b),
        Err(HeaderError::UnsupportedVersion(2))
    );
    b[16] = 41;
    assert_eq!(
        ChunkHeader::decode(&b),
        Err(HeaderError::UnsupportedVersion(2))
    );
    b[7] = VERSION;
    assert_eq!(ChunkHeader::decode(&b), Err(HeaderError::RecordSize(41)));
    b[0] = 0;
    assert_eq!(ChunkHeader::decode(&b), Err(HeaderError::BadMagic));
    assert_eq!(
        HeaderError::BadMagic.to_string(),
        "not a trace chunk (bad magic)"
    );
    assert_eq!(
        HeaderError::UnsupportedVersion(2).to_string(),
        "unsupported trace format version 2 (this reader knows version 1)"
    );
    assert_eq!(
        HeaderError::RecordSize(41).to_string(),
        "record size 41 in chunk header (expected 40)"
    );
}

fn any_record(rng: &mut Rng) -> Record {
    let [seq, nanos, addr, size] = [rng.next(), rng.next(), rng.next(), rng.next()];
    Record {
        kind: Kind::ALL[rng.index(Kind::ALL.len())],
        call: Call::ALL[rng.index(Call::ALL.len())],
        align: if rng.chance(20) {
            0
        } else {
            1u64 << rng.below(64)
        },
        tid: rng.next() as u32,
        seq,
        nanos,
        addr,
        size,
    }
}

fn random_bytes<const N: usize>(rng: &mut Rng) -> [u8; N] {
    core::array::from_fn(|_| rng.next() as u8)
}

/// The error a reader must give for `b`, from the specification's rules alone.
fn expected_record_error(b: &[u8; RECORD_SIZE]) -> Option<RecordError> {
    if !(1..=4).contains(&b[0]) {
        Some(RecordError::UnknownKind(b[0]))
    } else if !(1..=10).contains(&b[1]) {
        Some(RecordError::UnknownCall(b[1]))
    } else if b[2] > 64 {
        Some(RecordError::AlignCode(b[2]))
    } else if b[3] != 0 {
        Some(RecordError::Reserved(b[3]))
    } else {
        None
    }
}

#[test]
fn decoding_an_encoded_record_gives_it_back() {
    let mut rng = Rng::new(1);
    for _ in 0..CASES {
        let r = any_record(&mut rng);
        let bytes = r.to_bytes();
        assert_eq!(Record::decode(&bytes), Ok(r));
        let mut out = [0xa5; RECORD_SIZE];
        r.encode(&mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn decoding_an_encoded_header_gives_it_back() {
    let mut rng = Rng::new(2);
    for _ in 0..CASES {
        let (pid, count, run) = (rng.next() as u32, rng.next() as u32, rng.next() as u32);
        let h = ChunkHeader { pid, count, run };
        assert_eq!(ChunkHeader::decode(&h.to_bytes()), Ok(h));
    }
}

#[test]
fn any_record_bytes_decode_to_what_encodes_them_or_to_their_first_error() {
    let mut rng = Rng::new(3);
    for case in 0..CASES {
        let mut bytes: [u8; RECORD_SIZE] = random_bytes(&mut rng);
        // Half the cases keep their random code bytes (mostly refused); the others get codes
        // in range, so that the accepted path is exercised as often.
        if case % 2 == 0 {
            let codes = [bytes[0], bytes[1], bytes[2], bytes[3]];
            bytes[0] = 1 + codes[0] % 4;
            bytes[1] = 1 + codes[1] % 10;
            bytes[2] = codes[2] % 65;
            bytes[3] = if codes[3] % 4 == 0 { codes[3] } else { 0 };
        }
        match (Record::decode(&bytes), expected_record_error(&bytes)) {
            (Ok(r), None) => assert_eq!(r.to_bytes(), bytes),
            (Err(e), Some(expected)) => assert_eq!(e, expected, "{bytes:?}"),
            (got, expected) => {
                panic!("{bytes:?}: decoded {got:?}, expected error {expected:?}")
            }
        }
    }
}

#[test]
fn any_header_bytes_decode_to_what_encodes_them_or_to_their_first_error() {
    let mut rng = Rng::new(4);
    for _ in 0..CASES {
        let mut bytes: [u8; CHUNK_HEADER_SIZE] = random_bytes(&mut rng);
        if rng.chance(50) {
            bytes[..8].copy_from_slice(&MAGIC);
            bytes[7] = if rng.chance(50) {
                VERSION
            } else {
                rng.next() as u8
            };
        }
        if rng.chance(50) {
            bytes[16..20].copy_from_slice(&40u32.to_le_bytes());
        }
        let expected = if bytes[..7] != *b"FSTRACE" {
            Some(HeaderError::BadMagic)
        } else if bytes[7] != 1 {
            Some(HeaderError::UnsupportedVersion(bytes[7]))
        } else if le32(&bytes, 16) != 40 {
            Some(HeaderError::RecordSize(le32(&bytes, 16)))
        } else {
            None
        };
        match (ChunkHeader::decode(&bytes), expected) {
            (Ok(h), None) => assert_eq!(h.to_bytes(), bytes),
            (Err(e), Some(expected)) => assert_eq!(e, expected, "{bytes:?}"),
            (got, expected) => {
                panic!("{bytes:?}: decoded {got:?}, expected error {expected:?}")
            }
        }
    }
}
