#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

use core::fmt;

/// The first seven bytes of every chunk, whatever its version.
pub const SIGNATURE: [u8; 7] = *b"FSTRACE";
/// The format version this crate writes and reads: the eighth byte of every chunk.
pub const VERSION: u8 = 1;
/// The first eight bytes of every chunk: [`SIGNATURE`] and [`VERSION`].
pub const MAGIC: [u8; 8] = [
    SIGNATURE[0],
    SIGNATURE[1],
    SIGNATURE[2],
    SIGNATURE[3],
    SIGNATURE[4],
    SIGNATURE[5],
    SIGNATURE[6],
    VERSION,
];
/// Bytes in a chunk header: magic, pid, record count, record size, run.
pub const CHUNK_HEADER_SIZE: usize = 24;
/// Bytes in one record.
pub const RECORD_SIZE: usize = 40;
/// The largest alignment code: alignments are powers of two up to `1 << 63`, stored as
/// log2 + 1, so a code above 64 is corrupt.
pub const MAX_ALIGN_CODE: u8 = 64;
/// The most records one chunk can announce (its count is a `u32`).
pub const MAX_CHUNK_RECORDS: u32 = u32::MAX;

// Byte offsets of the chunk header's fields.
const PID_AT: usize = 8;
const COUNT_AT: usize = 12;
const RECORD_SIZE_AT: usize = 16;
const RUN_AT: usize = 20;

// Byte offsets of a record's fields.
const KIND_AT: usize = 0;
const CALL_AT: usize = 1;
const ALIGN_AT: usize = 2;
const RESERVED_AT: usize = 3;
const TID_AT: usize = 4;
const SEQ_AT: usize = 8;
const NANOS_AT: usize = 16;
const ADDR_AT: usize = 24;
const SIZE_AT: usize = 32;

const _: () = assert!(RUN_AT + 4 == CHUNK_HEADER_SIZE);
const _: () = assert!(SIZE_AT + 8 == RECORD_SIZE);

/// What a record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A block was handed out: `addr` is the block, `size` the request, `align` the alignment
    /// asked for (0 when the call asks for none). Written after the call.
    Alloc = 1,
    /// A block is being released: `addr`. Written before the block is released, so any reuse
    /// of the address sorts after it.
    Free = 2,
    /// The first half of a `realloc` of a live block: `addr` is the old block. Written before
    /// the call, so that it sorts before any reuse of that address.
    ReallocFrom = 3,
    /// The second half: `addr` is the new block (0 if the call failed and the old block stays),
    /// `size` the new size. Written after the call.
    ReallocTo = 4,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 4] = [Kind::Alloc, Kind::Free, Kind::ReallocFrom, Kind::ReallocTo];

    /// The kind whose code is `code`, if any.
    pub const fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Alloc),
            2 => Some(Kind::Free),
            3 => Some(Kind::ReallocFrom),
            4 => Some(Kind::ReallocTo),
            _ => None,
        }
    }

    /// The byte that stands for this kind in a record.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// Which C function made the call (informational; replay does not depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Call {
    /// `malloc`
    Malloc = 1,
    /// `calloc`
    Calloc = 2,
    /// `realloc` (also `realloc(NULL, n)`, recorded as an allocation)
    Realloc = 3,
    /// `reallocarray`
    Reallocarray = 4,
    /// `posix_memalign`
    PosixMemalign = 5,
    /// `aligned_alloc`
    AlignedAlloc = 6,
    /// `memalign`
    Memalign = 7,
    /// `valloc`
    Valloc = 8,
    /// `pvalloc`
    Pvalloc = 9,
    /// `free`
    Free = 10,
}

impl Call {
    /// Every call, in code order.
    pub const ALL: [Call; 10] = [
        Call::Malloc,
        Call::Calloc,
        Call::Realloc,
        Call::Reallocarray,
        Call::PosixMemalign,
        Call::AlignedAlloc,
        Call::Memalign,
        Call::Valloc,
        Call::Pvalloc,
        Call::Free,
    ];

    /// The call whose code is `code`, if any.
    pub const fn from_code(code: u8) -> Option<Call> {
        match code {
            1 => Some(Call::Malloc),
            2 => Some(Call::Calloc),
            3 => Some(Call::Realloc),
            4 => Some(Call::Reallocarray),
            5 => Some(Call::PosixMemalign),
            6 => Some(Call::AlignedAlloc),
            7 => Some(Call::Memalign),
            8 => Some(Call::Valloc),
            9 => Some(Call::Pvalloc),
            10 => Some(Call::Free),
            _ => None,
        }
    }

    /// The byte that stands for this call in a record.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// The byte that stores alignment `align`: 0 for none asked for (`align == 0`), otherwise
/// log2(`align`) + 1, from 1 to [`MAX_ALIGN_CODE`]. An alignment is a power of two; any other
/// value is stored as its lowest set bit.
pub const fn align_code(align: u64) -> u8 {
    if align == 0 {
        0
    } else {
        1 + align.trailing_zeros() as u8
    }
}

/// The alignment that `code` stores (0 for none), or `None` if the code is above
/// [`MAX_ALIGN_CODE`].
pub const fn align_from_code(code: u8) -> Option<u64> {
    match code {
        0 => Some(0),
        1..=MAX_ALIGN_CODE => Some(1 << (code - 1)),
        _ => None,
    }
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// What happened.
    pub kind: Kind,
    /// The C function.
    pub call: Call,
    /// The alignment asked for: 0 for none, a power of two otherwise (see [`align_code`]).
    pub align: u64,
    /// The kernel thread id of the caller.
    pub tid: u32,
    /// The process-wide sequence number: records sort into the order the calls took effect.
    /// The recorder numbers only records it keeps, so one program's numbers have no holes
    /// except where records were lost.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub nanos: u64,
    /// The block's address (the block id of the trace).
    pub addr: u64,
    /// Bytes requested (calloc: count × size).
    pub size: u64,
}

impl Record {
    /// Writes the record into `out`; the reserved byte is written as 0.
    pub fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        out[KIND_AT] = self.kind.code();
        out[CALL_AT] = self.call.code();
        out[ALIGN_AT] = align_code(self.align);
        out[RESERVED_AT] = 0;
        put(out, TID_AT, &self.tid.to_le_bytes());
        put(out, SEQ_AT, &self.seq.to_le_bytes());
        put(out, NANOS_AT, &self.nanos.to_le_bytes());
        put(out, ADDR_AT, &self.addr.to_le_bytes());
        put(out, SIZE_AT, &self.size.to_le_bytes());
    }

    /// The record's bytes.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0; RECORD_SIZE];
        self.encode(&mut out);
        out
    }

    /// Reads one record, checking its fields in order: kind, call, alignment code, reserved byte.
    /// The first that is wrong is the error.
    pub fn decode(bytes: &[u8; RECORD_SIZE]) -> Result<Record, RecordError> {
        let kind =
            Kind::from_code(bytes[KIND_AT]).ok_or(RecordError::UnknownKind(bytes[KIND_AT]))?;
        let call =
            Call::from_code(bytes[CALL_AT]).ok_or(RecordError::UnknownCall(bytes[CALL_AT]))?;
        let align =
            align_from_code(bytes[ALIGN_AT]).ok_or(RecordError::AlignCode(bytes[ALIGN_AT]))?;
        if bytes[RESERVED_AT] != 0 {
            return Err(RecordError::Reserved(bytes[RESERVED_AT]));
        }
        Ok(Record {
            kind,
            call,
            align,
            tid: u32_at(bytes, TID_AT),
            seq: u64_at(bytes, SEQ_AT),
            nanos: u64_at(bytes, NANOS_AT),
            addr: u64_at(bytes, ADDR_AT),
            size: u64_at(bytes, SIZE_AT),
        })
    }
}

/// Why [`Record::decode`] refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The kind byte is not a [`Kind`] code.
    UnknownKind(u8),
    /// The call byte is not a [`Call`] code.
    UnknownCall(u8),
    /// The alignment code is above [`MAX_ALIGN_CODE`].
    AlignCode(u8),
    /// The reserved byte is not 0.
    Reserved(u8),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::UnknownKind(k) => write!(f, "corrupt record: unknown kind {k}"),
            RecordError::UnknownCall(c) => write!(f, "corrupt record: unknown call {c}"),
            RecordError::AlignCode(a) => write!(f, "corrupt record: alignment code {a}"),
            RecordError::Reserved(r) => write!(f, "corrupt record: reserved byte is {r}"),
        }
    }
}

/// The header that starts every chunk; the [`MAGIC`] number and the record size are implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkHeader {
    /// The process that wrote the chunk.
    pub pid: u32,
    /// Records that follow the header.
    pub count: u32,
    /// A number chosen when recording starts, the same in every chunk of one program. `execve`
    /// keeps the pid, and the new program starts its sequence numbers again, so a reader groups
    /// records by pid and run.
    pub run: u32,
}

impl ChunkHeader {
    /// Writes the header into `out`.
    pub fn encode(&self, out: &mut [u8; CHUNK_HEADER_SIZE]) {
        put(out, 0, &MAGIC);
        put(out, PID_AT, &self.pid.to_le_bytes());
        put(out, COUNT_AT, &self.count.to_le_bytes());
        put(out, RECORD_SIZE_AT, &(RECORD_SIZE as u32).to_le_bytes());
        put(out, RUN_AT, &self.run.to_le_bytes());
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; CHUNK_HEADER_SIZE] {
        let mut out = [0; CHUNK_HEADER_SIZE];
        self.encode(&mut out);
        out
    }

    /// Reads one header, checking in order the signature, the version and the record size.
    pub fn decode(bytes: &[u8; CHUNK_HEADER_SIZE]) -> Result<ChunkHeader, HeaderError> {
        if bytes[..SIGNATURE.len()] != SIGNATURE {
            return Err(HeaderError::BadMagic);
        }
        let version = bytes[SIGNATURE.len()];
        if version != VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let record_size = u32_at(bytes, RECORD_SIZE_AT);
        if record_size != RECORD_SIZE as u32 {
            return Err(HeaderError::RecordSize(record_size));
        }
        Ok(ChunkHeader {
            pid: u32_at(bytes, PID_AT),
            count: u32_at(bytes, COUNT_AT),
            run: u32_at(bytes, RUN_AT),
        })
    }
}

/// Why [`ChunkHeader::decode`] refused a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The bytes do not start with [`SIGNATURE`]: this is not a chunk.
    BadMagic,
    /// A chunk of another version of the format.
    UnsupportedVersion(u8),
    /// The header's record size is not [`RECORD_SIZE`].
    RecordSize(u32),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::BadMagic => f.write_str("not a trace chunk (bad magic)"),
            HeaderError::UnsupportedVersion(v) => write!(
                f,
                "unsupported trace format version {v} (this reader knows version {VERSION})"
            ),
            HeaderError::RecordSize(s) => write!(
                f,
                "record size {s} in chunk header (expected {RECORD_SIZE})"
            ),
        }
    }
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}
