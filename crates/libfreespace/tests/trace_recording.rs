//! Trace recording must never change whether the traced program runs. These tests run a program
//! under `LD_PRELOAD` of the built `libfreespace.so` with `FREESPACE_TRACE` naming a FIFO, and
//! check that it runs to its end: with no reader, with a reader that goes away, and with a slow
//! reader that must receive well-formed chunks from several threads at once.
//!
//! The traced program is this test binary itself, run again with `CAPI_TRACE_CHILD` set: the
//! ignored test `child_program` then does what the mode names. It resets SIGPIPE to its default
//! action, as a C program has it (Rust's runtime ignores SIGPIPE), and calls `malloc` and
//! `free` through libc, so every call reaches the preloaded library. This binary does not link
//! the library itself, so the preloaded copy is the only allocator.
//!
//! A watchdog kills a child that does not finish within `HANG_LIMIT`: it detects a hang, it does
//! not measure time.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a child may run before it counts as hung (its real run takes well under a second).
const HANG_LIMIT: Duration = Duration::from_secs(60);
/// Threads and malloc/free pairs per thread of the `threads` modes.
const THREADS: usize = 4;
const PAIRS: usize = 5000;
/// The request size of thread `t`'s blocks is `MARK + t`, so their records can be counted.
const MARK: usize = 7001;

use freespace_trace_format::{CHUNK_HEADER_SIZE as CHUNK_HEADER, MAGIC, RECORD_SIZE as RECORD};
/// Records a chunk may hold: one thread buffer.
const MAX_CHUNK_RECORDS: usize = 1636;
/// The file size limit of the `threads-under-a-size-limit` child: inside the second chunk.
const SIZE_LIMIT: u64 = 100_000;

/// The child side: runs only when a test below spawns this binary with `CAPI_TRACE_CHILD` set.
#[test]
#[ignore = "the traced program of the other tests; they run it in a child process"]
fn child_program() {
    let Ok(mode) = std::env::var("CAPI_TRACE_CHILD") else {
        return;
    };
    // SAFETY: restoring the default action of SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let out = std::io::stdout();
    match mode.as_str() {
        "idle" => {
            malloc_free_pairs(0, 100);
            writeln!(out.lock(), "child: ran").unwrap();
        }
        "threads-after-stdin" => {
            writeln!(out.lock(), "child: started").unwrap();
            out.lock().flush().unwrap();
            let mut go = String::new();
            std::io::stdin().read_to_string(&mut go).unwrap();
            let workers: Vec<_> = (0..THREADS)
                .map(|t| std::thread::spawn(move || malloc_free_pairs(t, PAIRS)))
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            writeln!(out.lock(), "child: done").unwrap();
        }
        "one-write-cut-short" => {
            // SAFETY: ignoring SIGXFSZ has no preconditions (the cut write raises none; this
            // only keeps a stray one from ending the test).
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let trace = PathBuf::from(std::env::var_os("FREESPACE_TRACE").unwrap());
            cut_short::arm(&trace);
            // Enough records for several chunks: the second is cut short.
            malloc_free_pairs(0, 4 * MAX_CHUNK_RECORDS);
            assert!(cut_short::fired(), "no trace write was cut short");
            writeln!(out.lock(), "child: done").unwrap();
        }
        "threads-under-a-size-limit" => {
            // SAFETY: ignoring SIGXFSZ has no preconditions.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let lim = libc::rlimit {
                rlim_cur: SIZE_LIMIT,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: a valid rlimit.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
            let workers: Vec<_> = (0..THREADS)
                .map(|t| std::thread::spawn(move || malloc_free_pairs(t, PAIRS)))
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            writeln!(out.lock(), "child: done").unwrap();
        }
        "threads-at-the-size-limit" => {
            // SAFETY: restoring the default action (death) of SIGXFSZ has no preconditions.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_DFL) };
            let trace = PathBuf::from(std::env::var_os("FREESPACE_TRACE").unwrap());
            let lim = libc::rlimit {
                rlim_cur: std::fs::metadata(trace).unwrap().len(),
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: a valid rlimit.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
            let workers: Vec<_> = (0..THREADS)
                .map(|t| std::thread::spawn(move || malloc_free_pairs(t, PAIRS)))
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            writeln!(out.lock(), "child: done").unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// `n` pairs of `malloc(MARK + t)` and `free`. Neither call may change errno, whatever
/// happens to the trace (free must keep it, and a successful malloc has no reason to touch it).
fn malloc_free_pairs(t: usize, n: usize) {
    const KEPT: i32 = 12345;
    for i in 0..n {
        // SAFETY: errno is this thread's; malloc has no preconditions; the block is freed at
        // once, and null is checked.
        unsafe {
            *libc::__errno_location() = KEPT;
            let p = libc::malloc(MARK + t);
            assert!(!p.is_null());
            libc::free(p);
            let e = *libc::__errno_location();
            assert_eq!(e, KEPT, "pair {i} of thread {t} changed errno");
        }
    }
}

/// The `writev` of this executable, which stands in for libc's in the preloaded library
/// (build.rs exports it). It passes every call to the kernel, except that once armed it cuts
/// the second write to the trace file after arming short, for real: it lowers RLIMIT_FSIZE to just past the
/// file's end, so the kernel writes only `CUT` bytes of the chunk and returns that count; it
/// lifts the limit again; and it appends another writer's whole chunk, as another process that
/// shares the file would. A writer that then writes the rest of its chunk splits the chunk.
mod cut_short {
    use std::path::Path;
    use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

    /// Bytes of the cut chunk that reach the file.
    pub const CUT: u64 = 100;
    /// The pid in the other writer's chunk header.
    pub const OTHER_PID: u32 = 1;
    /// 0: not armed, everything passes; 1: armed; 2: armed and one trace write passed, so the
    /// next is cut; `DONE` after the cut, everything passes again.
    static STATE: AtomicU8 = AtomicU8::new(0);
    const DONE: u8 = u8::MAX;
    static DEV: AtomicU64 = AtomicU64::new(0);
    static INO: AtomicU64 = AtomicU64::new(0);
    static OTHER_FD: AtomicI32 = AtomicI32::new(-1);

    /// Arms the cut for writes to the file at `trace` (which the library has open).
    pub fn arm(trace: &Path) {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::IntoRawFd;
        let m = std::fs::metadata(trace).unwrap();
        DEV.store(m.dev(), Ordering::Relaxed);
        INO.store(m.ino(), Ordering::Relaxed);
        let other = std::fs::OpenOptions::new()
            .append(true)
            .open(trace)
            .unwrap();
        OTHER_FD.store(other.into_raw_fd(), Ordering::Relaxed);
        STATE.store(1, Ordering::Release);
    }

    pub fn fired() -> bool {
        STATE.load(Ordering::Acquire) == DONE
    }

    fn raw_writev(fd: libc::c_int, iov: *const libc::iovec, n: libc::c_int) -> libc::ssize_t {
        // SAFETY: the caller's iovecs, passed on unchanged.
        unsafe { libc::syscall(libc::SYS_writev, fd, iov, n) as libc::ssize_t }
    }

    fn is_trace(fd: libc::c_int) -> bool {
        // SAFETY: an all-zero stat is valid storage for fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-pointer.
        let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
        ok && st.st_dev == DEV.load(Ordering::Relaxed)
            && st.st_ino == INO.load(Ordering::Relaxed)
            && fd != OTHER_FD.load(Ordering::Relaxed)
    }

    fn set_size_limit(soft: u64) {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
    }

    /// # Safety
    /// As writev(2): `iov` points to `n` valid iovecs.
    #[no_mangle]
    pub unsafe extern "C" fn writev(
        fd: libc::c_int,
        iov: *const libc::iovec,
        n: libc::c_int,
    ) -> libc::ssize_t {
        let state = STATE.load(Ordering::Acquire);
        if state == 0 || state == DONE || !is_trace(fd) {
            return raw_writev(fd, iov, n);
        }
        if state == 1 {
            STATE.store(2, Ordering::Release);
            return raw_writev(fd, iov, n);
        }
        // SAFETY: an all-zero stat is valid storage for fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-pointer.
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        set_size_limit(st.st_size as u64 + CUT);
        let cut = raw_writev(fd, iov, n);
        set_size_limit(libc::RLIM_INFINITY);
        let mut other = [0u8; super::CHUNK_HEADER + super::RECORD];
        other[..8].copy_from_slice(&super::MAGIC);
        other[8..12].copy_from_slice(&OTHER_PID.to_le_bytes());
        other[12..16].copy_from_slice(&1u32.to_le_bytes());
        other[16..20].copy_from_slice(&(super::RECORD as u32).to_le_bytes());
        other[20..24].copy_from_slice(&1u32.to_le_bytes());
        let rec = &mut other[super::CHUNK_HEADER..];
        (rec[0], rec[1]) = (1, 1);
        rec[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        rec[32..40].copy_from_slice(&16u64.to_le_bytes());
        // SAFETY: `other` is initialised; the descriptor is this module's own.
        let n = unsafe {
            libc::write(
                OTHER_FD.load(Ordering::Relaxed),
                other.as_ptr().cast(),
                other.len(),
            )
        };
        assert_eq!(n as usize, other.len(), "the other writer's chunk");
        STATE.store(DONE, Ordering::Release);
        assert_eq!(
            cut, CUT as libc::ssize_t,
            "the kernel cut the write at the limit"
        );
        cut
    }
}

/// The library as cargo built it for this test run: next to this binary in target/*/deps.
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libfreespace.so");
    assert!(lib.exists(), "{} is not built", lib.display());
    lib
}

/// A fresh directory for one test's FIFO.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capi-trace-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Spawns this binary as the traced program in `mode`, recording into `trace`.
fn spawn_child(mode: &str, trace: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_program", "--exact", "--ignored", "--nocapture", "-q"])
        .args(["--test-threads", "1"])
        .env("CAPI_TRACE_CHILD", mode)
        .env("LD_PRELOAD", library())
        .env("FREESPACE_TRACE", trace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills the child if it is still running after `HANG_LIMIT`. Dropping the watchdog (or
/// calling `finish`) disarms it; `finish` says whether it had to kill.
struct Watchdog {
    disarm: mpsc::Sender<()>,
    fired: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn new(child: &Child) -> Watchdog {
        let pid = child.id() as libc::pid_t;
        let (disarm, rx) = mpsc::channel();
        let fired = std::thread::spawn(move || {
            if rx.recv_timeout(HANG_LIMIT).is_ok() {
                return false;
            }
            // SAFETY: kill has no memory preconditions; the child is not yet reaped (the test
            // holds its `Child` until the watchdog is finished), so the pid is still its own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        });
        Watchdog { disarm, fired }
    }

    fn finish(self) -> bool {
        let _ = self.disarm.send(());
        self.fired.join().unwrap()
    }
}

/// Reads the rest of the child's stdout and stderr, waits for it, then disarms the watchdog.
/// Panics, naming `what`, if the watchdog had to kill it.
fn wait_child(mut child: Child, dog: Watchdog, what: &str) -> (ExitStatus, String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).unwrap();
    }
    stderr.push_str(&reader.join().unwrap());
    let status = child.wait().unwrap();
    assert!(
        !dog.finish(),
        "{what}: the traced program hung and was killed after {HANG_LIMIT:?}; stderr: {stderr}"
    );
    (status, stdout, stderr)
}

/// Reads the child's stdout up to its `child: started` line; false if it ends first.
fn wait_for_start(stdout: &mut impl BufRead) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line == "child: started\n" => return true,
            Ok(_) => {}
        }
    }
}

/// The library's own lines on stderr.
fn library_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("freespace:"))
        .collect()
}

#[test]
fn a_fifo_with_no_reader_does_not_stop_the_program() {
    let dir = scratch("no-reader");
    let fifo = dir.join("trace.fifo");
    mkfifo(&fifo);
    let mut child = spawn_child("idle", &fifo);
    drop(child.stdin.take());
    let dog = Watchdog::new(&child);
    let (status, stdout, stderr) = wait_child(child, dog, "FIFO with no reader");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "status {status}; stderr: {stderr}");
    assert!(stdout.contains("child: ran"), "stdout: {stdout}");
    let lines = library_lines(&stderr);
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].contains("FIFO with no reader") && lines[0].contains("not recording"),
        "the line says why nothing is recorded: {}",
        lines[0]
    );
}

#[test]
fn a_reader_that_goes_away_does_not_kill_the_program() {
    let dir = scratch("reader-leaves");
    let fifo = dir.join("trace.fifo");
    mkfifo(&fifo);
    // Opened without blocking, so the reader exists before the child opens the FIFO.
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut child = spawn_child("threads-after-stdin", &fifo);
    let dog = Watchdog::new(&child);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let started = wait_for_start(&mut stdout);
    // The child is in main, so its trace is open: now the reader goes away, then the child
    // allocates enough to fill and flush its buffers.
    drop(reader);
    // (A write error here means the child is already gone; its status tells why.)
    let _ = child.stdin.take().unwrap().write_all(b"go\n");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let (status, _, stderr) = wait_child(child, dog, "reader went away");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started, "the child never reached main; stderr: {stderr}");
    assert!(
        status.success(),
        "the traced program must survive its reader: status {status}; stderr: {stderr}"
    );
    assert!(rest.contains("child: done"), "stdout: {rest}");
    let lines = library_lines(&stderr);
    assert_eq!(lines.len(), 1, "at most one line on stderr, got: {stderr}");
    assert!(
        lines[0].contains("broken pipe") && lines[0].contains("recording stopped"),
        "the line says why recording stopped: {}",
        lines[0]
    );
}

#[test]
fn a_slow_reader_gets_whole_chunks_from_every_thread() {
    let dir = scratch("slow-reader");
    let fifo = dir.join("trace.fifo");
    mkfifo(&fifo);
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    // The smallest pipe: every chunk larger than it waits for the reader several times.
    // SAFETY: F_SETPIPE_SZ on our own FIFO descriptor.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let mut child = spawn_child("threads-after-stdin", &fifo);
    let dog = Watchdog::new(&child);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    assert!(wait_for_start(&mut stdout), "the child never reached main");
    // The child has the FIFO open: read it in blocking mode to its end, slowly.
    set_blocking(&reader);
    // (A write error here means the child is already gone; its status tells why.)
    let _ = child.stdin.take().unwrap().write_all(b"go\n");
    let bytes = read_slowly(reader);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let (status, _, stderr) = wait_child(child, dog, "slow reader");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "status {status}; stderr: {stderr}");
    assert!(rest.contains("child: done"), "stdout: {rest}");
    assert!(library_lines(&stderr).is_empty(), "stderr: {stderr}");
    let marked = check_chunks(&bytes);
    assert_eq!(
        marked,
        THREADS * PAIRS,
        "every worker allocation arrived once"
    );
}

#[test]
fn a_chunk_cut_short_is_never_finished_after_another_writers_chunk() {
    let dir = scratch("cut-short");
    let trace = dir.join("t.fstrace");
    let mut child = spawn_child("one-write-cut-short", &trace);
    drop(child.stdin.take());
    let dog = Watchdog::new(&child);
    let (status, stdout, stderr) = wait_child(child, dog, "one write cut short");
    let bytes = std::fs::read(&trace).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "status {status}; stderr: {stderr}");
    assert!(stdout.contains("child: done"), "stdout: {stdout}");
    let (whole, cut) = walk_chunks_with_cuts(&bytes);
    assert_eq!(cut, 1, "the cut chunk stays cut: {whole} whole chunks");
    assert!(
        whole >= 2,
        "the first chunk and the other writer's: {whole}"
    );
    let lines = library_lines(&stderr);
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].contains("cannot grow") && lines[0].contains("recording stopped"),
        "the line says why recording stopped: {}",
        lines[0]
    );
}

#[test]
fn a_file_size_limit_ends_the_trace_on_a_chunk_boundary_or_one_cut_chunk() {
    let dir = scratch("size-limit");
    let trace = dir.join("t.fstrace");
    let mut child = spawn_child("threads-under-a-size-limit", &trace);
    drop(child.stdin.take());
    let dog = Watchdog::new(&child);
    let (status, stdout, stderr) = wait_child(child, dog, "size limit");
    let bytes = std::fs::read(&trace).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "status {status}; stderr: {stderr}");
    assert!(stdout.contains("child: done"), "stdout: {stdout}");
    assert!(bytes.len() as u64 <= SIZE_LIMIT, "{} bytes", bytes.len());
    let (whole, cut) = walk_chunks_with_cuts(&bytes);
    assert!(cut <= 1, "{cut} cut chunks");
    assert!(whole >= 1, "the chunks before the limit are whole");
    let lines = library_lines(&stderr);
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].contains("cannot grow") && lines[0].contains("recording stopped"),
        "the line says why recording stopped: {}",
        lines[0]
    );
}

#[test]
fn a_trace_file_at_the_size_limit_does_not_kill_the_program() {
    let dir = scratch("at-size-limit");
    let trace = dir.join("t.fstrace");
    let mut child = spawn_child("threads-at-the-size-limit", &trace);
    drop(child.stdin.take());
    let dog = Watchdog::new(&child);
    let (status, stdout, stderr) = wait_child(child, dog, "at the size limit");
    let bytes = std::fs::read(&trace).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.success(),
        "the traced program must survive its trace file's size limit: status {status}; \
         stderr: {stderr}"
    );
    assert!(stdout.contains("child: done"), "stdout: {stdout}");
    let (_, cut) = walk_chunks_with_cuts(&bytes);
    assert_eq!(cut, 0, "nothing was written past the limit");
    let lines = library_lines(&stderr);
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].contains("cannot grow") && lines[0].contains("recording stopped"),
        "the line says why recording stopped: {}",
        lines[0]
    );
}

/// Walks a trace file that may hold chunks cut short (a write that stopped at a limit). Each
/// chunk runs to the next chunk header (or the end of the file): it is whole if that is exactly
/// where its header says it ends, cut short if that comes sooner. If it comes later, the bytes
/// in between belong to no chunk: the rest of a chunk written after other chunks, a split
/// chunk. Returns the counts of whole and cut chunks.
fn walk_chunks_with_cuts(bytes: &[u8]) -> (usize, usize) {
    let next_header = |from: usize| {
        (from..bytes.len().saturating_sub(7))
            .find(|&i| bytes[i..i + 8] == MAGIC)
            .unwrap_or(bytes.len())
    };
    let (mut at, mut whole, mut cut) = (next_header(0), 0, 0);
    assert_eq!(at, 0, "the file starts with a chunk header");
    while at < bytes.len() {
        let next = next_header(at + 8);
        let end = (at + CHUNK_HEADER <= next).then(|| {
            let count = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap()) as usize;
            at + CHUNK_HEADER + count * RECORD
        });
        match end {
            Some(end) if end == next => whole += 1,
            Some(end) if end < next => panic!(
                "offset {end}: {} bytes that belong to no chunk, after a whole chunk at {at} \
                 (the rest of a split chunk; {whole} whole and {cut} cut chunks before)",
                next - end
            ),
            _ => cut += 1,
        }
        at = next;
    }
    (whole, cut)
}

fn set_blocking(f: &File) {
    let fd = f.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on our own descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK), 0);
    }
}

/// Reads to end of file, 4 KiB at a time with a pause between reads, so writers find the pipe
/// full and wait.
fn read_slowly(mut f: File) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Walks the stream chunk by chunk, checking every header and record; returns the number of
/// alloc records of the workers' marked sizes.
fn check_chunks(bytes: &[u8]) -> usize {
    let (mut at, mut marked, mut seqs) = (0, 0, Vec::new());
    while at < bytes.len() {
        assert!(at + CHUNK_HEADER <= bytes.len(), "offset {at}: cut header");
        assert_eq!(&bytes[at..at + 8], MAGIC, "offset {at}: not a chunk header");
        let word = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
        let (count, size) = (word(12) as usize, word(16) as usize);
        assert_eq!(size, RECORD, "offset {at}: record size");
        assert!(
            (1..=MAX_CHUNK_RECORDS).contains(&count),
            "offset {at}: count {count}"
        );
        let end = at + CHUNK_HEADER + count * RECORD;
        assert!(end <= bytes.len(), "offset {at}: chunk cut short");
        for r in bytes[at + CHUNK_HEADER..end].chunks_exact(RECORD) {
            assert!((1..=4).contains(&r[0]), "offset {at}: record kind {}", r[0]);
            assert!(
                (1..=10).contains(&r[1]),
                "offset {at}: record call {}",
                r[1]
            );
            assert_eq!(r[3], 0, "offset {at}: reserved byte");
            seqs.push(u64::from_le_bytes(r[8..16].try_into().unwrap()));
            let size = u64::from_le_bytes(r[32..40].try_into().unwrap()) as usize;
            if r[0] == 1 && (MARK..MARK + THREADS).contains(&size) {
                marked += 1;
            }
        }
        at = end;
    }
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "sequence numbers are unique");
    marked
}
