//! The binary trace format written under `FREESPACE_TRACE` (docs/trace-format-binary.md is
//! the specification). Invariant: every chunk is a 24-byte header followed by exactly `count`
//! records of `RECORD_SIZE` bytes, all little-endian, so a reader can check each chunk alone.

/// The first eight bytes of every chunk: `FSTRACE` and the format version.
pub const MAGIC: [u8; 8] = *b"FSTRACE\x01";
/// Bytes in a chunk header: magic, pid (u32), record count (u32), record size (u32), run (u32).
pub const CHUNK_HEADER_SIZE: usize = 24;
/// Bytes in one record.
pub const RECORD_SIZE: usize = 40;

/// What a record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A block was handed out: `addr` is the block, `size` the request, `align` the alignment
    /// asked for (0 when the call asks for none).
    Alloc = 1,
    /// A block was released: `addr`; written before the block is released.
    Free = 2,
    /// The first half of a `realloc` of a live block: `addr` is the old block; written before
    /// the call, so that it sorts before any reuse of that address.
    ReallocFrom = 3,
    /// The second half: `addr` is the new block (0 if the call failed and the old block stays),
    /// `size` the new size; written after the call.
    ReallocTo = 4,
}

/// Which C function made the call (informational; replay does not depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One record, before encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// What happened.
    pub kind: Kind,
    /// The C function.
    pub call: Call,
    /// The alignment asked for, 0 for none (a power of two otherwise).
    pub align: u64,
    /// The kernel thread id of the caller.
    pub tid: u32,
    /// The process-wide sequence number: records sort into the order the calls took effect. The
    /// recorder numbers only records it keeps, so one program's numbers have no holes except
    /// where records were lost.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub nanos: u64,
    /// The block's address (the block id of the trace).
    pub addr: u64,
    /// Bytes requested.
    pub size: u64,
}

impl Record {
    /// Encodes the record into `out` (layout in docs/trace-format-binary.md).
    pub fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        out[0] = self.kind as u8;
        out[1] = self.call as u8;
        out[2] = if self.align == 0 {
            0
        } else {
            1 + self.align.trailing_zeros() as u8
        };
        out[3] = 0;
        out[4..8].copy_from_slice(&self.tid.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.nanos.to_le_bytes());
        out[24..32].copy_from_slice(&self.addr.to_le_bytes());
        out[32..40].copy_from_slice(&self.size.to_le_bytes());
    }
}

/// Fills a chunk header for `count` records written by process `pid` during run `run`.
///
/// `run` tells apart the programs that one pid runs in turn: `execve` keeps the pid, and a new
/// program starts its sequence numbers again, so the reader groups records by pid and run.
pub fn encode_chunk_header(pid: u32, run: u32, count: u32, out: &mut [u8; CHUNK_HEADER_SIZE]) {
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&pid.to_le_bytes());
    out[12..16].copy_from_slice(&count.to_le_bytes());
    out[16..20].copy_from_slice(&(RECORD_SIZE as u32).to_le_bytes());
    out[20..24].copy_from_slice(&run.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_matches_the_specification() {
        let r = Record {
            kind: Kind::Alloc,
            call: Call::Memalign,
            align: 4096,
            tid: 0x0102_0304,
            seq: 7,
            nanos: 9,
            addr: 0x1000,
            size: 33,
        };
        let mut b = [0u8; RECORD_SIZE];
        r.encode(&mut b);
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 7);
        assert_eq!(b[2], 13, "4096 = 1 << 12, stored as 12 + 1");
        assert_eq!(&b[4..8], &[4, 3, 2, 1]);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 9);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 0x1000);
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 33);
        let r0 = Record { align: 0, ..r };
        r0.encode(&mut b);
        assert_eq!(b[2], 0, "no alignment asked for");
    }

    #[test]
    fn chunk_header_starts_with_the_magic() {
        let mut h = [0u8; CHUNK_HEADER_SIZE];
        encode_chunk_header(42, 0xabcd, 3, &mut h);
        assert_eq!(&h[..8], b"FSTRACE\x01");
        assert_eq!(u32::from_le_bytes(h[8..12].try_into().unwrap()), 42);
        assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 40);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 0xabcd);
    }
}
