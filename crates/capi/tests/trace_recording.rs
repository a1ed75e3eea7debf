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

const MAGIC: &[u8; 8] = b"FSTRACE\x01";
const CHUNK_HEADER: usize = 24;
const RECORD: usize = 40;
/// Records a chunk may hold: one thread buffer.
const MAX_CHUNK_RECORDS: usize = 1636;

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
