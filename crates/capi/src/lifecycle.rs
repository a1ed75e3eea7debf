//! When the library starts and stops: initialisation on the first call from any thread (or
//! from the loader's constructor, before `main`), the `fork` handlers, and the flush at exit.
//! Invariant: initialisation runs exactly once; a re-entrant call from inside it (the loader or
//! libc allocating on its behalf) proceeds without waiting, while other threads wait for it.

use crate::trace_recorder;
use crate::ALLOC;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// The thread running initialisation, so its own re-entrant calls do not wait on themselves.
static INIT_TID: AtomicU32 = AtomicU32::new(0);

/// Makes sure initialisation has run. One load on the fast path.
#[inline(always)]
pub(crate) fn ensure_init() {
    if STATE.load(Ordering::Acquire) != DONE {
        init_slow();
    }
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

#[cold]
#[inline(never)]
fn init_slow() {
    match STATE.compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            INIT_TID.store(gettid(), Ordering::Release);
            initialise();
            STATE.store(DONE, Ordering::Release);
        }
        Err(RUNNING) => {
            if INIT_TID.load(Ordering::Acquire) == gettid() {
                return;
            }
            while STATE.load(Ordering::Acquire) != DONE {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
        Err(_) => {}
    }
}

fn initialise() {
    trace_recorder::init_key();
    // SAFETY: the three handlers are plain functions that live as long as the process.
    unsafe { libc::pthread_atfork(Some(prefork), Some(postfork_parent), Some(postfork_child)) };
    // SAFETY: getauxval allocates nothing; an entry the kernel did not pass reads as 0.
    let at_secure = unsafe { libc::getauxval(libc::AT_SECURE) };
    let path = trace_path_from_env(at_secure);
    if !path.is_null() {
        // SAFETY: a non-null path from `trace_path_from_env` is a NUL-terminated string; `start`
        // copies it before anything can change the environment.
        let err = unsafe { trace_recorder::start(path) };
        if err != 0 {
            let mut msg = [0u8; 128];
            let n = start_error_message(err, &mut msg);
            // SAFETY: `msg[..n]` is initialised; write(2) allocates nothing.
            unsafe { libc::write(2, msg.as_ptr().cast(), n) };
        }
    }
}

/// The path in `FREESPACE_TRACE`, or null if it is unset or empty, or if the program runs in
/// secure-execution mode. `at_secure` is the kernel's `AT_SECURE` flag for this program
/// (`getauxval(AT_SECURE)`): non-zero when it runs with privileges that its user does not have
/// (setuid, setgid, file capabilities, or a security module's say). Such a program must not
/// let its caller's environment choose a path to create and write with its rights (the library
/// may reach it through /etc/ld.so.preload or by being linked in). glibc's `secure_getenv`,
/// which the libc crate does not bind, decides from the same flag, and glibc ignores its own
/// `MALLOC_*` variables in this mode.
fn trace_path_from_env(at_secure: libc::c_ulong) -> *const libc::c_char {
    if at_secure != 0 {
        return ptr::null();
    }
    // SAFETY: the name is NUL-terminated; getenv allocates nothing.
    let path = unsafe { libc::getenv(c"FREESPACE_TRACE".as_ptr()) };
    // SAFETY: a non-null result of getenv points to a NUL-terminated string.
    if path.is_null() || unsafe { *path } == 0 {
        return ptr::null();
    }
    path
}

/// Formats the one line written when `FREESPACE_TRACE` cannot be recorded, for the errno `err`
/// of `trace_recorder::start`, into `out`; returns its length. The program runs on unrecorded.
/// The path is not echoed: it may be of any length.
fn start_error_message(err: i32, out: &mut [u8; 128]) -> usize {
    let why: &[u8] = match err {
        libc::ENXIO => b"a FIFO with no reader",
        libc::ENOENT => b"no such file or directory",
        libc::EACCES => b"permission denied",
        libc::EISDIR => b"a directory",
        libc::ENAMETOOLONG => b"path too long",
        _ => b"cannot open",
    };
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < out.len() {
                out[n] = b;
                n += 1;
            }
        }
    };
    put(b"freespace: FREESPACE_TRACE: ");
    put(why);
    put(b" (errno ");
    let mut digits = [0u8; 10];
    put(trace_recorder::decimal(err.unsigned_abs(), &mut digits));
    put(b"); not recording\n");
    n
}

/// The `pthread_atfork` prepare handler. Registered first, so it runs last before `fork`: the
/// trace buffers are flushed and held, then every allocator lock is taken.
extern "C" fn prefork() {
    trace_recorder::prefork();
    ALLOC.prefork();
}

/// The parent handler: releases what `prefork` took, in reverse.
extern "C" fn postfork_parent() {
    ALLOC.postfork_parent();
    trace_recorder::postfork_parent();
}

/// The child handler: the allocator's locks are released and the trace continues under the
/// child's pid.
extern "C" fn postfork_child() {
    ALLOC.postfork_child();
    trace_recorder::postfork_child();
}

extern "C" fn constructor() {
    ensure_init();
}

extern "C" fn destructor() {
    trace_recorder::at_exit();
}

/// Runs initialisation when the library is loaded, before `main`.
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY: extern "C" fn() = constructor;

/// Flushes the trace when the process exits normally.
#[used]
#[link_section = ".fini_array"]
static FINI_ARRAY: extern "C" fn() = destructor;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freespace_trace_is_read_only_outside_secure_execution() {
        /// The path as bytes, `None` for null.
        fn read(at_secure: libc::c_ulong) -> Option<Vec<u8>> {
            let p = trace_path_from_env(at_secure);
            // SAFETY: a non-null result is a NUL-terminated string of the environment, which
            // only this test changes.
            (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec())
        }
        // Initialisation read the variable before this test began, so setting it starts nothing.
        std::env::set_var("FREESPACE_TRACE", "/tmp/capi-unit-secure.fstrace");
        let ordinary = read(0);
        let secure = read(1);
        std::env::set_var("FREESPACE_TRACE", "");
        let empty = read(0);
        std::env::remove_var("FREESPACE_TRACE");
        let unset = read(0);
        assert_eq!(
            ordinary.as_deref(),
            Some(&b"/tmp/capi-unit-secure.fstrace"[..])
        );
        assert_eq!(secure, None, "AT_SECURE set: the variable is ignored");
        assert_eq!(empty, None, "an empty path is no path");
        assert_eq!(unset, None);
    }

    #[test]
    fn start_errors_name_their_cause_on_one_line() {
        let mut out = [0u8; 128];
        let n = start_error_message(libc::ENXIO, &mut out);
        assert_eq!(
            &out[..n],
            b"freespace: FREESPACE_TRACE: a FIFO with no reader (errno 6); not recording\n"
        );
        let n = start_error_message(libc::EROFS, &mut out);
        assert_eq!(
            &out[..n],
            b"freespace: FREESPACE_TRACE: cannot open (errno 30); not recording\n"
        );
    }
}
