//! The trace recorder behind `FREESPACE_TRACE`: every C call becomes a record in a per-thread
//! buffer, and full buffers go to the trace file as chunks, one `writev(2)` each.
//!
//! Invariants:
//! - Nothing here allocates through malloc. Buffers are `mmap`ed, 64 KiB each, kept on a
//!   push-only registry and reused by later threads; thread-local state is `const` cells.
//! - A buffer's records are touched only under its spin lock, so `fork`, `stop` and process exit
//!   can flush every thread's buffer. A record is appended only while tracing is on (checked
//!   under that lock), so `stop` leaves nothing behind to write to a closed file.
//! - Sequence numbers give the order calls took effect: an allocation takes its number after
//!   the block is obtained, a free before the block is released, so a reuse of an address
//!   always sorts after the free that made it available.
//! - A record takes its sequence number only once it is sure to be kept (tracing is on, checked
//!   under its buffer's lock or while counted in `USERS`), so a record dropped in a race with
//!   `stop` uses up no number: the numbers of one program are dense, and a hole in them means
//!   records made and then lost (a failed write, or a process that died with them buffered).
//! - One session at a time: `STATE` moves OFF -> STARTING -> ON -> STOPPING -> OFF. Only the
//!   thread that moved it out of OFF opens a descriptor, and only the one that moved it out of
//!   ON closes it. A write that finds the trace unusable (a broken pipe, a file that cannot
//!   grow, a descriptor the program took over) ends the session itself, ON -> OFF, without
//!   waiting for anything; the descriptor's last user then closes it (a broken pipe, a full
//!   file) or leaves it alone (taken over).
//! - A chunk written to a regular file lands whole, or is cut short at its end by a file that
//!   cannot grow and its rest dropped; never split around other writers' chunks (`write_chunk`).
//! - The descriptor is closed only when no thread is using it (`USERS`), so its number is never
//!   handed to the program while a write to it is still in progress.
//! - Recording never changes whether the program runs: opening never blocks (a FIFO with no
//!   reader is refused), a write never raises SIGPIPE or SIGXFSZ, and errno is left as the
//!   call set it.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use freespace_malloc::SpinLock;
use freespace_trace_format::{Call, ChunkHeader, Kind, Record, CHUNK_HEADER_SIZE, RECORD_SIZE};

/// Bytes per thread buffer (one mapping).
const BUF_BYTES: usize = 64 * 1024;
/// Where the records start in a buffer, after its head.
const RECORDS_AT: usize = 64;
/// Records a buffer holds, and so the most a chunk holds.
const CAPACITY: usize = (BUF_BYTES - RECORDS_AT) / RECORD_SIZE;
/// The most records a chunk written to a pipe holds: the whole chunk fits in `PIPE_BUF` bytes,
/// so the kernel writes it in one piece, never interleaved with another thread's or process's
/// chunk, however slowly the reader reads.
const PIPE_CHUNK_RECORDS: usize = (libc::PIPE_BUF - CHUNK_HEADER_SIZE) / RECORD_SIZE;
/// The lowest descriptor number the trace file is moved to, out of the way of programs that
/// reuse low numbers.
const FD_FLOOR: i32 = 700;

/// The head of one thread buffer; the records follow at `RECORDS_AT`.
#[repr(C)]
struct Buf {
    /// Guards the records that follow the head, and `len`.
    lock: SpinLock<()>,
    in_use: AtomicBool,
    /// Records held (written only under `lock`).
    len: AtomicUsize,
    /// The next buffer on the registry; set once before the buffer is published.
    next: *mut Buf,
}

const _: () = assert!(core::mem::size_of::<Buf>() <= RECORDS_AT);
// The records fill the mapping: CAPACITY fit, one more would not.
const _: () = assert!(RECORDS_AT + CAPACITY * RECORD_SIZE <= BUF_BYTES);
const _: () = assert!(RECORDS_AT + (CAPACITY + 1) * RECORD_SIZE > BUF_BYTES);
const _: () = assert!(PIPE_CHUNK_RECORDS >= 1 && PIPE_CHUNK_RECORDS <= CAPACITY);
const _: () = assert!(CHUNK_HEADER_SIZE + PIPE_CHUNK_RECORDS * RECORD_SIZE <= libc::PIPE_BUF);

/// The session states (`STATE`).
const OFF: u8 = 0;
const STARTING: u8 = 1;
const ON: u8 = 2;
const STOPPING: u8 = 3;
/// Where the trace session is; see the module invariants. `start` and `stop` claim it with a
/// compare-exchange, so of several concurrent callers exactly one proceeds.
static STATE: AtomicU8 = AtomicU8::new(OFF);
/// True while records are taken: the fast-path check. Set last by `start`, cleared first by
/// `stop` and by a write that ends the session.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Threads that may write to `FD`: from before they load it (or check `ACTIVE`, for a direct
/// write) until their write is done. Plus
/// `CLOSE_PENDING` while a descriptor whose trace ended on a broken pipe or a full file
/// (`ORPHAN_FD`) waits
/// for its last user; that user closes it and clears the word to 0 in one step.
static USERS: AtomicUsize = AtomicUsize::new(0);
const CLOSE_PENDING: usize = 1 << (usize::BITS - 1);
/// The descriptor to close when `USERS` drops to `CLOSE_PENDING`; read only while that bit is
/// set, written only before it is set.
static ORPHAN_FD: AtomicI32 = AtomicI32::new(-1);
/// True when the trace file is a FIFO: chunks are cut to `PIPE_CHUNK_RECORDS` and writes block
/// SIGPIPE.
static TO_PIPE: AtomicBool = AtomicBool::new(false);
/// True when the trace file is a regular file: a chunk lands whole or its rest is dropped (see
/// `write_chunk`).
static TO_FILE: AtomicBool = AtomicBool::new(false);
/// After process exit has started: every record is written at once.
static WRITE_THROUGH: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(-1);
static PID: AtomicU32 = AtomicU32::new(0);
/// Tells this program's chunks from those of an earlier program under the same pid (`execve`).
static RUN: AtomicU32 = AtomicU32::new(0);
static SEQ: AtomicU64 = AtomicU64::new(0);
static REGISTRY: AtomicPtr<Buf> = AtomicPtr::new(ptr::null_mut());
/// The pthread key whose destructor flushes a thread's buffer, plus one (0: none yet).
static KEY: AtomicU32 = AtomicU32::new(0);
static RECORDS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);
/// The identity of the trace file (device and inode), checked before every write.
static FILE_DEV: AtomicU64 = AtomicU64::new(0);
static FILE_INO: AtomicU64 = AtomicU64::new(0);

/// The thread's buffer, or one of the markers below.
const NO_BUF: usize = 0;
const DESTROYED: usize = 1;
const ACQUIRING: usize = 2;

thread_local! {
    /// True while this thread is inside `record`: a signal handler that allocates then writes
    /// its record directly instead of waiting for the buffer lock its own thread holds.
    static IN_RECORD: Cell<bool> = const { Cell::new(false) };
    static SLOT: Cell<usize> = const { Cell::new(NO_BUF) };
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Counters of the recorder, for `freespace_stats`.
pub(crate) struct TraceCounters {
    pub records: u64,
    pub bytes: u64,
    pub write_errors: u64,
    pub active: bool,
}

pub(crate) fn counters() -> TraceCounters {
    TraceCounters {
        records: RECORDS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
        write_errors: WRITE_ERRORS.load(Ordering::Relaxed),
        active: ACTIVE.load(Ordering::Relaxed),
    }
}

/// True while a trace is being recorded: the one check on the fast path.
#[inline(always)]
pub(crate) fn enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Creates the thread-exit key. Called once, from initialisation.
pub(crate) fn init_key() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer and `thread_exit` has the destructor signature.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
        KEY.store(key + 1, Ordering::Release);
    }
}

/// Starts recording to `path` (a NUL-terminated string; `%p` is replaced by the process id).
/// Returns 0, or an errno value: `EBUSY` if a trace is being recorded, started or stopped
/// (of several threads starting at once, exactly one gets 0 and the others `EBUSY`),
/// `ENAMETOOLONG`, `ENXIO` for a FIFO that no process has open for reading, or open(2)'s.
///
/// The file is opened without blocking, so a FIFO with no reader is refused rather than
/// waited for. Writes to a FIFO that has a reader do block while the pipe is full, as writes to
/// any pipe do.
///
/// # Safety
/// `path` points to a NUL-terminated string.
pub(crate) unsafe fn start(path: *const libc::c_char) -> i32 {
    if STATE
        .compare_exchange(OFF, STARTING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return libc::EBUSY;
    }
    // Writers of an earlier session that ended on its own may still be leaving; once they are
    // gone, records it left in buffers are dropped.
    wait_for_users();
    for_each_buffer(|buf| {
        // SAFETY: a live buffer.
        let b = unsafe { &*buf };
        let _locked = b.lock.lock();
        b.len.store(0, Ordering::Relaxed);
    });
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    // SAFETY: forwarded: `path` is NUL-terminated.
    match unsafe { open_trace(path, pid) } {
        Ok((fd, file_type)) => {
            TO_PIPE.store(file_type == libc::S_IFIFO, Ordering::Relaxed);
            TO_FILE.store(file_type == libc::S_IFREG, Ordering::Relaxed);
            PID.store(pid, Ordering::Relaxed);
            let t = now_nanos();
            RUN.store((t ^ (t >> 32)) as u32 | 1, Ordering::Relaxed);
            FD.store(fd, Ordering::SeqCst);
            ACTIVE.store(true, Ordering::SeqCst);
            STATE.store(ON, Ordering::Release);
            0
        }
        Err(e) => {
            STATE.store(OFF, Ordering::Release);
            e
        }
    }
}

/// Opens the trace file for `start`: without blocking, close-on-exec, moved to `FD_FLOOR` or
/// above, its identity noted for `still_ours`. Returns the descriptor and its file type (the
/// `S_IFMT` bits of its mode).
///
/// # Safety
/// `path` points to a NUL-terminated string.
unsafe fn open_trace(path: *const libc::c_char, pid: u32) -> Result<(i32, libc::mode_t), i32> {
    let mut expanded = [0u8; 4096];
    // SAFETY: forwarded: `path` is NUL-terminated.
    let Some(_) = (unsafe { expand_path(path, pid, &mut expanded) }) else {
        return Err(libc::ENAMETOOLONG);
    };
    // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, before `main`
    // when the path comes from FREESPACE_TRACE; with it, no reader means ENXIO. No O_NOFOLLOW:
    // the path is the user's, and /dev/stdout or /dev/stderr (symbolic links) are natural
    // places to send a trace to a reader.
    // SAFETY: `expanded` is NUL-terminated by `expand_path`.
    let fd = unsafe {
        libc::open(
            expanded.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC | libc::O_NONBLOCK,
            0o644,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` is open; F_DUPFD_CLOEXEC only duplicates it.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FD_FLOOR) };
    let fd = if high >= 0 {
        // SAFETY: `fd` is ours and replaced by `high`.
        unsafe { libc::close(fd) };
        high
    } else {
        fd
    };
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // Writes block again once the file is open: a reader that is slow holds the program back
    // rather than losing records. (EAGAIN is still handled, by waiting in poll.)
    // SAFETY: `fd` is open; F_GETFL and F_SETFL change only its status flags.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0
            && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
            && libc::fstat(fd, &mut st) == 0
    };
    if !ok {
        let e = errno();
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    FILE_DEV.store(st.st_dev as u64, Ordering::Relaxed);
    FILE_INO.store(st.st_ino as u64, Ordering::Relaxed);
    Ok((fd, st.st_mode & libc::S_IFMT))
}

/// Copies `path` into `out`, replacing `%p` with `pid`; `None` if it does not fit.
///
/// # Safety
/// `path` points to a NUL-terminated string.
unsafe fn expand_path(path: *const libc::c_char, pid: u32, out: &mut [u8; 4096]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    loop {
        // SAFETY: the string is NUL-terminated and we stop at the NUL.
        let c = unsafe { *path.add(i) } as u8;
        if c == 0 {
            break;
        }
        // SAFETY: as above; `i + 1` is within the string since `c` is not the NUL.
        if c == b'%' && unsafe { *path.add(i + 1) } as u8 == b'p' {
            let mut digits = [0u8; 10];
            for &d in decimal(pid, &mut digits) {
                *out.get_mut(n)? = d;
                n += 1;
            }
            i += 2;
            continue;
        }
        *out.get_mut(n)? = c;
        n += 1;
        i += 1;
    }
    *out.get_mut(n)? = 0;
    Some(n)
}

/// Writes `v` in decimal into `digits`, returning the digits used.
pub(crate) fn decimal(mut v: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &digits[at..];
        }
    }
}

/// Stops recording: flushes every buffer and closes the file. Returns 0, or `EINVAL` if no
/// trace was being recorded (none started, or it is still starting, or another thread is
/// stopping it, or it ended on its own).
pub(crate) fn stop() -> i32 {
    if STATE
        .compare_exchange(ON, STOPPING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return libc::EINVAL;
    }
    ACTIVE.store(false, Ordering::SeqCst);
    flush_all();
    // Direct writers that saw tracing on still write their record; then nobody uses `FD`.
    wait_for_users();
    let fd = FD.swap(-1, Ordering::SeqCst);
    if fd >= 0 && still_ours(fd) {
        // SAFETY: the descriptor is ours and no writer can reach it any more.
        unsafe { libc::close(fd) };
    }
    STATE.store(OFF, Ordering::Release);
    0
}

/// Counts the calling thread as a user of `FD` until `leave`.
fn enter() {
    USERS.fetch_add(1, Ordering::SeqCst);
}

/// Ends a use begun by `enter`. The last user of a descriptor whose session ended on a broken
/// pipe closes it.
fn leave() {
    let mut cur = USERS.load(Ordering::SeqCst);
    loop {
        let last_of_orphan = cur == CLOSE_PENDING | 1;
        // Read before the word can drop to 0: after that a new session may set a new orphan.
        let orphan = if last_of_orphan {
            ORPHAN_FD.load(Ordering::Acquire)
        } else {
            -1
        };
        let next = if last_of_orphan { 0 } else { cur - 1 };
        match USERS.compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                if orphan >= 0 {
                    // SAFETY: the orphan is ours and its last user has left; its number stays
                    // allocated (so unused by anyone else) until this close.
                    unsafe { libc::close(orphan) };
                }
                return;
            }
            Err(c) => cur = c,
        }
    }
}

/// Waits until no thread uses `FD` and no orphaned descriptor is left to close.
fn wait_for_users() {
    while USERS.load(Ordering::SeqCst) != 0 {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Ends the session from inside a write, where `stop` cannot run (the caller may hold a buffer
/// lock, or be a signal handler): tracing goes off and `fd` is no longer used. With
/// `close_it`, the last user closes `fd` (a broken pipe, a full file); without, it is left alone (the
/// program took the number over). False if another thread ended or stopped the session first.
fn end_session(fd: i32, close_it: bool) -> bool {
    if FD
        .compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return false;
    }
    ACTIVE.store(false, Ordering::SeqCst);
    if close_it {
        ORPHAN_FD.store(fd, Ordering::Release);
        // The caller is a user, so the word cannot reach 0 before this bit is set.
        USERS.fetch_or(CLOSE_PENDING, Ordering::SeqCst);
    }
    // A concurrent `stop` (STOPPING) finishes the state change itself.
    let _ = STATE.compare_exchange(ON, OFF, Ordering::AcqRel, Ordering::Acquire);
    true
}

/// Records an allocation of `size` bytes at `addr` (after the block was obtained).
#[inline]
pub(crate) fn alloc(call: Call, addr: *mut u8, size: usize, align: usize) {
    if enabled() {
        record(Kind::Alloc, call, addr as u64, size as u64, align as u64);
    }
}

/// Records a free of `addr` (before the block is released).
#[inline]
pub(crate) fn free(call: Call, addr: *mut u8) {
    if enabled() {
        record(Kind::Free, call, addr as u64, 0, 0);
    }
}

/// Records the first half of a realloc of `addr` (before the call).
#[inline]
pub(crate) fn realloc_from(call: Call, addr: *mut u8) {
    if enabled() {
        record(Kind::ReallocFrom, call, addr as u64, 0, 0);
    }
}

/// Records the second half of a realloc: the new block (null if the call failed).
#[inline]
pub(crate) fn realloc_to(call: Call, addr: *mut u8, size: usize) {
    if enabled() {
        record(Kind::ReallocTo, call, addr as u64, size as u64, 0);
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location always returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

fn now_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC is always available.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn current_tid() -> u32 {
    TID.with(|t| {
        let mut tid = t.get();
        if tid == 0 {
            // SAFETY: gettid has no preconditions.
            tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
            t.set(tid);
        }
        tid
    })
}

/// Records one call. errno is the caller's again afterwards: a failed trace write (or mmap of
/// a buffer) must not show through a successful `malloc` or `free`.
#[cold]
#[inline(never)]
fn record(kind: Kind, call: Call, addr: u64, size: u64, align: u64) {
    let saved = errno();
    record_keeping_errno(kind, call, addr, size, align);
    set_errno(saved);
}

fn record_keeping_errno(kind: Kind, call: Call, addr: u64, size: u64, align: u64) {
    // The sequence number is filled in only once the record is sure to be kept.
    let rec = Record {
        kind,
        call,
        align,
        tid: current_tid(),
        seq: 0,
        nanos: now_nanos(),
        addr,
        size,
    };
    if IN_RECORD.with(|r| r.replace(true)) {
        write_direct(rec);
        return;
    }
    let slot = SLOT.with(|s| s.get());
    let buf = match slot {
        NO_BUF => acquire_buffer(),
        DESTROYED | ACQUIRING => ptr::null_mut(),
        b => b as *mut Buf,
    };
    if buf.is_null() {
        write_direct(rec);
        IN_RECORD.with(|r| r.set(false));
        return;
    }
    // SAFETY: `buf` is this thread's live buffer (buffers are never unmapped).
    let b = unsafe { &*buf };
    let locked = b.lock.lock();
    if ACTIVE.load(Ordering::Acquire) {
        let len = b.len.load(Ordering::Relaxed);
        let mut bytes = [0u8; RECORD_SIZE];
        Record {
            seq: next_seq(),
            ..rec
        }
        .encode(&mut bytes);
        // SAFETY: `len < CAPACITY` (a full buffer is flushed at once below), so the record lies
        // inside the mapping; we hold the buffer's lock.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), record_slot(buf, len), RECORD_SIZE) };
        b.len.store(len + 1, Ordering::Relaxed);
        RECORDS.fetch_add(1, Ordering::Relaxed);
        if len + 1 == CAPACITY || WRITE_THROUGH.load(Ordering::Relaxed) {
            // SAFETY: we hold the lock.
            unsafe { flush_locked(buf) };
        }
    }
    drop(locked);
    IN_RECORD.with(|r| r.set(false));
}

/// Takes the next sequence number. Called only for a record that will be kept (tracing was on
/// under its buffer's lock, or for a direct write while counted in `USERS`), so the numbers of
/// one program are dense: a hole means a record that was kept and then lost (its write failed,
/// or its process died with it buffered).
fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::AcqRel)
}

/// The address of record `i` of `buf`.
///
/// # Safety
/// `buf` is a live buffer and `i < CAPACITY`.
unsafe fn record_slot(buf: *mut Buf, i: usize) -> *mut u8 {
    // SAFETY: within the 64 KiB mapping by the caller's bound.
    unsafe { buf.cast::<u8>().add(RECORDS_AT + i * RECORD_SIZE) }
}

/// Writes one record as its own chunk, bypassing buffers; takes its sequence number only if
/// it is written.
fn write_direct(rec: Record) {
    // SeqCst pairs with `stop`: either `stop` sees this writer in `USERS` and waits, or this
    // writer sees tracing off and writes nothing.
    enter();
    if ACTIVE.load(Ordering::SeqCst) {
        let mut bytes = [0u8; RECORD_SIZE];
        Record {
            seq: next_seq(),
            ..rec
        }
        .encode(&mut bytes);
        RECORDS.fetch_add(1, Ordering::Relaxed);
        write_records(&bytes);
    }
    leave();
}

/// True if `fd` is still the trace file that `start` opened. A program may close descriptors it
/// did not open (daemons close them all) and get the number back for a file of its own; the
/// recorder must never write into that.
fn still_ours(fd: i32) -> bool {
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; fstat allocates nothing.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok && st.st_dev as u64 == FILE_DEV.load(Ordering::Relaxed)
        && st.st_ino as u64 == FILE_INO.load(Ordering::Relaxed)
}

/// Writes `records` (whole records of one thread, in order) to the trace file: as one chunk to
/// a file, as chunks of at most `PIPE_CHUNK_RECORDS` to a FIFO. Ends the session if the file
/// is no longer ours (the descriptor is left to its new owner), its reader has gone, or it
/// cannot grow (the descriptor is closed); other write errors lose these records and are
/// counted.
fn write_records(records: &[u8]) {
    enter();
    let fd = FD.load(Ordering::SeqCst);
    if fd >= 0 {
        if !still_ours(fd) {
            WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
            end_session(fd, false);
        } else if TO_PIPE.load(Ordering::Relaxed) {
            let guard = SignalBlock::new(libc::SIGPIPE);
            let mut broken = false;
            for piece in records.chunks(PIPE_CHUNK_RECORDS * RECORD_SIZE) {
                if write_chunk(fd, piece, false) == Err(ChunkError::Failed(libc::EPIPE)) {
                    broken = true;
                    break;
                }
            }
            if broken && end_session(fd, true) {
                let msg =
                    b"freespace: the trace reader went away (broken pipe); recording stopped\n";
                // SAFETY: a static message; SIGPIPE is still blocked, in case stderr is that
                // same pipe.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            }
            guard.restore(broken);
        } else if TO_FILE.load(Ordering::Relaxed) {
            let guard = SignalBlock::new(libc::SIGXFSZ);
            let result = write_chunk(fd, records, true);
            let full = matches!(
                result,
                Err(ChunkError::Cut)
                    | Err(ChunkError::Failed(
                        libc::EFBIG | libc::ENOSPC | libc::EDQUOT
                    ))
            );
            let mut raised = result == Err(ChunkError::Failed(libc::EFBIG));
            if full && end_session(fd, true) {
                let msg = b"freespace: the trace file cannot grow (a file size limit, or no \
                            space); recording stopped\n";
                // SAFETY: a static message; SIGXFSZ is still blocked, in case stderr is a file
                // at the same limit.
                let n = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
                raised |= n < 0 && errno() == libc::EFBIG;
            }
            guard.restore(raised);
        } else {
            let _ = write_chunk(fd, records, false);
        }
    }
    leave();
}

/// Why `write_chunk` did not write a whole chunk. Either way it is counted in `WRITE_ERRORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkError {
    /// The write failed with this errno.
    Failed(i32),
    /// A regular file took only the start of the chunk, and the rest was dropped.
    Cut,
}

/// Writes `records` as one chunk (header and records in one `writev`), retrying after a
/// signal that came before anything was written.
///
/// With `whole_or_nothing` (a regular file), a write that takes only part of the chunk is not
/// followed by another for the rest. A short write to a regular file is the kernel's answer
/// when the file cannot grow by the whole chunk: it wrote what fit under the process's
/// RLIMIT_FSIZE (only a write that can write nothing fails, with EFBIG), or what fit in the
/// space or quota left (ENOSPC and EDQUOT come only when nothing fits), or up to the file
/// system's largest file size; or a fatal signal came in the middle of the write. The file is
/// opened `O_APPEND`, so a second write would put the rest at the end of the file as it is
/// then, after any chunk that another thread or process wrote in between (once the limit is
/// raised or space is freed): the chunk would be split, its header promising records that do
/// not follow it. The bytes written cannot be taken back (a truncate could cut another
/// process's chunk that landed after them), so the chunk stays cut short where they end, which
/// a reader sees as a truncated chunk, and its records are lost: `Err(Cut)`.
///
/// Otherwise (a FIFO, a terminal, a socket) the rest is written at once: there a partial
/// write is flow control, not a limit. A FIFO never takes part of a chunk, as its chunks fit in
/// `PIPE_BUF`.
fn write_chunk(fd: i32, records: &[u8], whole_or_nothing: bool) -> Result<(), ChunkError> {
    let mut header = ChunkHeader {
        pid: PID.load(Ordering::Relaxed),
        count: (records.len() / RECORD_SIZE) as u32,
        run: RUN.load(Ordering::Relaxed),
    }
    .to_bytes();
    let mut iov = [
        libc::iovec {
            iov_base: header.as_mut_ptr().cast(),
            iov_len: header.len(),
        },
        libc::iovec {
            iov_base: records.as_ptr().cast_mut().cast(),
            iov_len: records.len(),
        },
    ];
    let mut first = 0;
    while first < iov.len() {
        // SAFETY: `iov[first..]` describes initialised memory (the header and `records`) that
        // outlives the call; writev only reads it.
        let n = unsafe {
            libc::writev(
                fd,
                iov[first..].as_ptr(),
                (iov.len() - first) as libc::c_int,
            )
        };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => {
                    wait_writable(fd);
                    continue;
                }
                e => {
                    WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
                    return Err(ChunkError::Failed(e));
                }
            }
        }
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        let mut n = n as usize;
        while first < iov.len() && n >= iov[first].iov_len {
            n -= iov[first].iov_len;
            first += 1;
        }
        if first < iov.len() && whole_or_nothing {
            WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
            return Err(ChunkError::Cut);
        }
        if n > 0 {
            // SAFETY: `n` is less than this entry's length, so the new base stays inside it.
            iov[first].iov_base = unsafe { iov[first].iov_base.cast::<u8>().add(n) }.cast();
            iov[first].iov_len -= n;
        }
    }
    Ok(())
}

/// Waits until `fd` takes a write (or reports an error, which the next write returns).
fn wait_writable(fd: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd; poll allocates nothing.
    unsafe { libc::poll(&mut p, 1, -1) };
}

/// One signal blocked in the calling thread for the length of a trace write, the way libraries
/// that write to descriptors they do not own keep the program alive (libcurl and OpenSSL do
/// this for SIGPIPE): the write then fails with an errno instead of raising a signal whose
/// default action kills the program. SIGPIPE is raised by a write to a pipe whose reader has
/// gone (EPIPE), SIGXFSZ by a write to a file that is already at the process's RLIMIT_FSIZE
/// (EFBIG). `restore` takes back the signal that the write raised, unless one was already
/// pending for the program, and restores the thread's signal mask.
struct SignalBlock {
    signal: i32,
    old: libc::sigset_t,
    was_pending: bool,
}

impl SignalBlock {
    fn new(signal: i32) -> SignalBlock {
        let set = signal_set(signal);
        // SAFETY: an all-zero sigset_t is a valid value for the calls below to overwrite.
        let (mut pending, mut old) = unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
        // SAFETY: valid sigset pointers; sigpending and pthread_sigmask allocate nothing.
        let was_pending = unsafe {
            libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, signal) == 1
        };
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        SignalBlock {
            signal,
            old,
            was_pending,
        }
    }

    /// `raised`: a write failed in the way that raises the signal at this thread.
    fn restore(self, raised: bool) {
        if raised && !self.was_pending {
            let set = signal_set(self.signal);
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            loop {
                // SAFETY: valid pointers; a null info pointer is allowed; the zero timeout
                // makes this a poll for the one pending signal.
                let r = unsafe { libc::sigtimedwait(&set, ptr::null_mut(), &zero) };
                if r >= 0 || errno() != libc::EINTR {
                    break;
                }
            }
        }
        // SAFETY: `old` is the mask `new` saved.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, ptr::null_mut()) };
    }
}

fn signal_set(signal: i32) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is valid; the callers pass SIGPIPE or SIGXFSZ, valid signal numbers.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
    }
    set
}

/// Writes `buf`'s records and empties it.
///
/// # Safety
/// The caller holds `buf`'s lock.
unsafe fn flush_locked(buf: *mut Buf) {
    // SAFETY: the caller holds the lock, so `buf` is live and ours.
    let b = unsafe { &*buf };
    let len = b.len.load(Ordering::Relaxed);
    if len == 0 {
        return;
    }
    // SAFETY: `len` records are initialised and contiguous in the mapping; we hold the lock.
    let records = unsafe { core::slice::from_raw_parts(record_slot(buf, 0), len * RECORD_SIZE) };
    write_records(records);
    b.len.store(0, Ordering::Relaxed);
}

/// Gives the calling thread a buffer: a released one from the registry, or a new mapping.
/// Null if none can be had (the thread then writes its records directly).
#[cold]
fn acquire_buffer() -> *mut Buf {
    SLOT.with(|s| s.set(ACQUIRING));
    let buf = reuse_buffer().unwrap_or_else(map_buffer);
    if buf.is_null() {
        SLOT.with(|s| s.set(NO_BUF));
        return buf;
    }
    let key = KEY.load(Ordering::Acquire);
    if key != 0 {
        // SAFETY: the key was created by `init_key`; the value is our buffer.
        unsafe { libc::pthread_setspecific(key - 1, buf.cast()) };
    }
    SLOT.with(|s| s.set(buf as usize));
    buf
}

fn reuse_buffer() -> Option<*mut Buf> {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are live mappings, never unmapped; `next` is immutable.
        let b = unsafe { &*p };
        if !b.in_use.load(Ordering::Relaxed)
            && b.in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(p);
        }
        p = b.next;
    }
    None
}

fn map_buffer() -> *mut Buf {
    // SAFETY: an anonymous private mapping; the result is checked.
    let m = unsafe {
        libc::mmap(
            ptr::null_mut(),
            BUF_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    let buf = m.cast::<Buf>();
    let mut head = REGISTRY.load(Ordering::Acquire);
    loop {
        // SAFETY: `buf` is a fresh, private, suitably aligned mapping.
        unsafe {
            buf.write(Buf {
                lock: SpinLock::new(()),
                in_use: AtomicBool::new(true),
                len: AtomicUsize::new(0),
                next: head,
            })
        };
        match REGISTRY.compare_exchange_weak(head, buf, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return buf,
            Err(h) => head = h,
        }
    }
}

/// Calls `f` on every buffer ever mapped.
fn for_each_buffer(mut f: impl FnMut(*mut Buf)) {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never unmapped; `next` is immutable once published.
        let next = unsafe { (*p).next };
        f(p);
        p = next;
    }
}

/// The pthread key destructor: flushes the exiting thread's buffer and gives it back.
extern "C" fn thread_exit(value: *mut libc::c_void) {
    SLOT.with(|s| s.set(DESTROYED));
    let buf = value.cast::<Buf>();
    if buf.is_null() {
        return;
    }
    // SAFETY: the value is the buffer this thread registered; buffers are never unmapped.
    let b = unsafe { &*buf };
    let _locked = b.lock.lock();
    // SAFETY: we hold the lock.
    unsafe { flush_locked(buf) };
    b.in_use.store(false, Ordering::Release);
}

/// Flushes every thread's buffer (at stop).
pub(crate) fn flush_all() {
    for_each_buffer(|buf| {
        // SAFETY: a live buffer.
        let b = unsafe { &*buf };
        let _locked = b.lock.lock();
        // SAFETY: we hold the lock.
        unsafe { flush_locked(buf) };
    });
}

/// Flushes every buffer whose lock can be had soon. Used where the caller may itself hold a
/// buffer lock without knowing it (`exit` or `abort` from a signal handler that interrupted a
/// record): a buffer that stays locked is skipped rather than waited for forever.
pub(crate) fn flush_all_best_effort() {
    for_each_buffer(|buf| {
        // SAFETY: a live buffer.
        let b = unsafe { &*buf };
        for _ in 0..1000 {
            if let Some(_locked) = b.lock.try_lock() {
                // SAFETY: we hold the lock.
                unsafe { flush_locked(buf) };
                return;
            }
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    });
}

/// Process exit: flush everything, and write every later record at once.
pub(crate) fn at_exit() {
    WRITE_THROUGH.store(true, Ordering::Release);
    flush_all_best_effort();
}

fn own_buffer() -> *mut Buf {
    match SLOT.with(|s| s.get()) {
        NO_BUF | DESTROYED | ACQUIRING => ptr::null_mut(),
        b => b as *mut Buf,
    }
}

/// Before `fork()`: flush every buffer and hold every other thread's buffer lock, so the child
/// inherits no half-written record and the parent's records are not written twice.
pub(crate) fn prefork() {
    let own = own_buffer();
    for_each_buffer(|buf| {
        // SAFETY: a live buffer.
        let b = unsafe { &*buf };
        let locked = b.lock.lock();
        // SAFETY: we hold the lock.
        unsafe { flush_locked(buf) };
        if buf != own {
            // Held across `fork()`; `postfork_parent` and `postfork_child` release it.
            core::mem::forget(locked);
        }
    });
}

/// In the parent after `fork()`: release what `prefork` held.
pub(crate) fn postfork_parent() {
    let own = own_buffer();
    for_each_buffer(|buf| {
        if buf != own {
            // SAFETY: a live buffer, locked by `prefork` on this thread, which forgot the guard.
            unsafe { (*buf).lock.force_unlock() };
        }
    });
}

/// In the child after `fork()`: the other threads are gone, so their buffers are emptied and
/// freed for reuse; records from here on carry the child's pid and thread id. A write, start or
/// stop that another thread of the parent was in the middle of is settled: nobody uses the
/// descriptor, an orphaned one is closed, and a half-done start or stop ends ON or OFF.
pub(crate) fn postfork_child() {
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    TID.with(|t| t.set(0));
    if USERS.swap(0, Ordering::SeqCst) & CLOSE_PENDING != 0 {
        // SAFETY: the child's copy of the orphan; no thread here uses it.
        unsafe { libc::close(ORPHAN_FD.load(Ordering::Acquire)) };
    }
    if matches!(STATE.load(Ordering::Acquire), STARTING | STOPPING) {
        if ACTIVE.load(Ordering::SeqCst) {
            STATE.store(ON, Ordering::Release);
        } else {
            let fd = FD.swap(-1, Ordering::SeqCst);
            if fd >= 0 {
                // SAFETY: the child's copy of the trace descriptor; no thread here uses it.
                unsafe { libc::close(fd) };
            }
            STATE.store(OFF, Ordering::Release);
        }
    }
    let own = own_buffer();
    for_each_buffer(|buf| {
        // SAFETY: a live buffer; the child has one thread, so nothing else touches it.
        let b = unsafe { &*buf };
        b.len.store(0, Ordering::Relaxed);
        if buf != own {
            b.in_use.store(false, Ordering::Relaxed);
        }
        // SAFETY: the lock is free or held through a guard that `prefork` forgot or that a
        // thread of the parent held; that thread does not exist in the child.
        unsafe { b.lock.force_unlock() };
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex, MutexGuard};

    /// Held by every test that starts a trace: the recorder has one session per process.
    fn one_session_at_a_time() -> MutexGuard<'static, ()> {
        static SESSION: Mutex<()> = Mutex::new(());
        SESSION.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The (pid, run, seq) of every record of a trace file, in file order. Panics unless the file
    /// is whole chunks of the format in freespace-trace-format.
    fn parse_records(bytes: &[u8]) -> Vec<(u32, u32, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let header = bytes[at..]
                .first_chunk::<CHUNK_HEADER_SIZE>()
                .unwrap_or_else(|| panic!("offset {at}: cut header"));
            let h = ChunkHeader::decode(header).unwrap_or_else(|e| panic!("offset {at}: {e}"));
            let end = at + CHUNK_HEADER_SIZE + h.count as usize * RECORD_SIZE;
            assert!(end <= bytes.len(), "offset {at}: chunk cut short");
            for rec in bytes[at + CHUNK_HEADER_SIZE..end].chunks_exact(RECORD_SIZE) {
                let r = Record::decode(rec.try_into().unwrap())
                    .unwrap_or_else(|e| panic!("offset {at}: {e}"));
                out.push((h.pid, h.run, r.seq));
            }
            at = end;
        }
        out
    }

    /// Panics unless the sequence numbers of each (pid, run) are consecutive, with no repeat and
    /// no hole.
    fn assert_dense(records: &[(u32, u32, u64)], what: &str) {
        let mut programs: Vec<((u32, u32), Vec<u64>)> = Vec::new();
        for &(pid, run, seq) in records {
            match programs.iter_mut().find(|(p, _)| *p == (pid, run)) {
                Some((_, seqs)) => seqs.push(seq),
                None => programs.push(((pid, run), vec![seq])),
            }
        }
        for ((pid, run), seqs) in programs {
            let (lo, hi) = (*seqs.iter().min().unwrap(), *seqs.iter().max().unwrap());
            let mut seen = vec![false; (hi - lo + 1) as usize];
            for &seq in &seqs {
                let at = (seq - lo) as usize;
                assert!(!seen[at], "{what}: pid {pid} run {run:#x}: {seq} twice");
                seen[at] = true;
            }
            let holes = seen.iter().filter(|&&s| !s).count();
            let first = seen.iter().position(|&s| !s).map(|i| lo + i as u64);
            assert_eq!(
                holes, 0,
                "{what}: pid {pid} run {run:#x}: {holes} holes in {lo}..={hi}, the first at {first:?}"
            );
        }
    }

    #[test]
    fn records_dropped_by_a_racing_stop_leave_no_hole_in_the_sequence() {
        const ROUNDS: usize = 20;
        const THREADS: usize = 8;
        let _session = one_session_at_a_time();
        for round in 0..ROUNDS {
            let path = std::env::temp_dir().join(format!(
                "capi-unit-stop-race-{}-{round}.fstrace",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: `c` is NUL-terminated.
            assert_eq!(unsafe { start(c.as_ptr()) }, 0, "round {round}");
            // Each worker records until it sees tracing off; one that has taken its number and
            // is descheduled before the check is the race.
            let running = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let running = running.clone();
                    std::thread::spawn(move || {
                        running.fetch_add(1, Ordering::Relaxed);
                        let mut i = 0usize;
                        while enabled() {
                            alloc(
                                Call::Malloc,
                                (0x1000 + t * 0x100_0000 + i * 16) as *mut u8,
                                i,
                                0,
                            );
                            i = (i + 1) % 0x10_0000;
                        }
                    })
                })
                .collect();
            // Stop once every worker is recording.
            let at_start = counters().records;
            while running.load(Ordering::Relaxed) < THREADS || counters().records < at_start + 2_000
            {
                std::thread::yield_now();
            }
            assert_eq!(stop(), 0, "round {round}");
            for w in workers {
                w.join().unwrap();
            }
            let bytes = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            let records = parse_records(&bytes);
            assert!(
                records.len() >= 2_000,
                "round {round}: {} records",
                records.len()
            );
            assert_dense(&records, &format!("round {round}"));
        }
    }

    #[test]
    fn a_recorded_trace_holds_exactly_the_counted_records() {
        let _session = one_session_at_a_time();
        let path = std::env::temp_dir().join(format!("capi-unit-{}.fstrace", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let before = counters().records;
        // SAFETY: `c` is NUL-terminated.
        assert_eq!(unsafe { start(c.as_ptr()) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { start(c.as_ptr()) }, libc::EBUSY);
        let workers: Vec<_> = (0..3)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..3000usize {
                        alloc(
                            Call::Malloc,
                            (0x1000 + t * 0x100_0000 + i * 16) as *mut u8,
                            i,
                            0,
                        );
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(stop(), 0);
        assert_eq!(stop(), libc::EINVAL);
        let counted = counters().records - before;
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let records = parse_records(&bytes);
        assert_eq!(records.len() as u64, counted);
        assert!(
            records.len() >= 9000,
            "the three workers' records are all there"
        );
        let mut seqs: Vec<u64> = records.iter().map(|r| r.2).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), records.len(), "sequence numbers are unique");
    }

    #[test]
    fn percent_p_becomes_the_pid() {
        let mut out = [0u8; 4096];
        // SAFETY: C string literals are NUL-terminated.
        let n = unsafe { expand_path(c"/tmp/t.%p.bin".as_ptr(), 4321, &mut out) }.unwrap();
        assert_eq!(&out[..n], b"/tmp/t.4321.bin");
        assert_eq!(out[n], 0);
        // SAFETY: as above.
        let n = unsafe { expand_path(c"plain%".as_ptr(), 1, &mut out) }.unwrap();
        assert_eq!(&out[..n], b"plain%");
    }

    #[test]
    fn overlong_path_is_refused() {
        let long = [b'a'; 5000];
        let mut s = long.to_vec();
        s.push(0);
        let mut out = [0u8; 4096];
        // SAFETY: `s` ends with a NUL.
        assert!(unsafe { expand_path(s.as_ptr().cast(), 1, &mut out) }.is_none());
    }
}
