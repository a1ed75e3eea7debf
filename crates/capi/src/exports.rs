//! The C allocation functions, exported unmangled so that `LD_PRELOAD=libfreespace.so` puts
//! them in front of libc's. Invariant: each one follows the C standard and glibc's documented
//! behaviour (errno, overflow, alignment rules), records itself when a trace is on, and aborts
//! with one line on stderr when handed a pointer this allocator does not own.

use crate::fatal::bad_pointer;
use crate::lifecycle::ensure_init;
use crate::trace_recorder as trace;
use crate::ALLOC;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use freespace_tcache::{FreeError, ReallocError};
use freespace_trace_format::Call;

/// The smallest alignment `posix_memalign` accepts, and what `malloc` always gives at least.
const WORD: usize = core::mem::size_of::<*mut c_void>();

fn set_errno(e: i32) {
    // SAFETY: __errno_location always returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

static PAGE: AtomicUsize = AtomicUsize::new(0);

fn page_size() -> usize {
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// Frees `p` for `call`, aborting on a pointer the allocator refuses.
///
/// # Safety
/// `p` is null, or a block of this allocator the caller will not use again, or a pointer to
/// readable memory (which is then refused).
unsafe fn release(call: &str, p: *mut u8) {
    // SAFETY: forwarded.
    match unsafe { ALLOC.free(p) } {
        Ok(()) => {}
        Err(FreeError::DoubleFree) => bad_pointer(call, "double free of", p as usize),
        Err(_) => bad_pointer(call, "invalid pointer", p as usize),
    }
}

/// Allocates with `align` (0: the default), sets errno and records the call.
fn alloc_with(call: Call, size: usize, align: usize) -> *mut c_void {
    ensure_init();
    let p = if align == 0 {
        ALLOC.malloc(size)
    } else {
        ALLOC.aligned_alloc(align, size)
    };
    if p.is_null() {
        set_errno(libc::ENOMEM);
    } else {
        trace::alloc(call, p, size, align);
    }
    p.cast()
}

/// `malloc(3)`: `size` bytes aligned to 16; `malloc(0)` returns a unique minimal block. NULL
/// with errno `ENOMEM` when memory runs out.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc_with(Call::Malloc, size, 0)
}

/// `free(3)`: releases a block; `free(NULL)` does nothing. A pointer this allocator does not
/// own, or one already freed, aborts the program with one line on stderr.
///
/// # Safety
/// `p` is null or a block from this library that the caller will not use again.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    trace::free(Call::Free, p.cast());
    // SAFETY: forwarded contract.
    unsafe { release("free", p.cast()) };
}

/// `calloc(3)`: `count * size` zeroed bytes; NULL with errno `ENOMEM` when the product
/// overflows or memory runs out.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    ensure_init();
    let Some(bytes) = count.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    let p = ALLOC.calloc(count, size);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    } else {
        trace::alloc(Call::Calloc, p, bytes, 0);
    }
    p.cast()
}

/// The body of `realloc` and `reallocarray`.
///
/// # Safety
/// As for [`realloc`].
unsafe fn resize(call: Call, name: &str, p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return alloc_with(call, size, 0);
    }
    let p = p.cast::<u8>();
    if size == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL.
        trace::free(call, p);
        // SAFETY: forwarded contract.
        unsafe { release(name, p) };
        return ptr::null_mut();
    }
    trace::realloc_from(call, p);
    // SAFETY: forwarded contract: `p` is a block of this allocator or readable memory; a
    // pointer the allocator does not own, or a freed one, is refused before anything changes.
    let q = match unsafe { ALLOC.try_realloc(p, size) } {
        Ok(q) => q.as_ptr(),
        Err(ReallocError::Invalid(FreeError::DoubleFree)) => {
            bad_pointer(name, "double free of", p as usize)
        }
        Err(ReallocError::Invalid(_)) => bad_pointer(name, "invalid pointer", p as usize),
        Err(ReallocError::OutOfMemory) => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    };
    trace::realloc_to(call, q, size);
    q.cast()
}

/// `realloc(3)`: resizes a block, moving it if needed. `realloc(NULL, n)` is `malloc(n)`;
/// `realloc(p, 0)` frees `p` and returns NULL (glibc's behaviour). On failure the old block is
/// untouched and errno is `ENOMEM`. A pointer this allocator does not own aborts.
///
/// # Safety
/// `p` is null or a live block from this library; on success only the returned pointer may be
/// used.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { resize(Call::Realloc, "realloc", p, size) }
}

/// `reallocarray(3)`: `realloc(p, count * size)`, except that an overflowing product fails with
/// errno `ENOMEM` and leaves `p` untouched.
///
/// # Safety
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    let Some(bytes) = count.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: forwarded contract.
    unsafe { resize(Call::Reallocarray, "reallocarray", p, bytes) }
}

/// `posix_memalign(3)`: stores a block of `size` bytes aligned to `align` in `*out`. Returns
/// `EINVAL` (and leaves `*out` alone) unless `align` is a power of two and a multiple of
/// `sizeof(void *)`; `ENOMEM` when memory runs out. errno is not changed.
///
/// # Safety
/// `out` is valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % WORD != 0 {
        return libc::EINVAL;
    }
    ensure_init();
    let p = ALLOC.aligned_alloc(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    trace::alloc(Call::PosixMemalign, p, size, align);
    // SAFETY: the caller's contract.
    unsafe { *out = p.cast() };
    0
}

/// `aligned_alloc(3)`: `size` bytes aligned to `align`, which must be a power of two (NULL with
/// errno `EINVAL` otherwise, as glibc 2.38 does).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    alloc_with(Call::AlignedAlloc, size, align)
}

/// The alignment glibc's `memalign` really uses: at most malloc's own (then it is plain
/// malloc), or `align` rounded up to a power of two; `None` (EINVAL) when that overflows.
fn memalign_alignment(align: usize) -> Option<usize> {
    if align <= 16 {
        Some(0)
    } else {
        align.checked_next_power_of_two()
    }
}

fn memalign_with(call: Call, align: usize, size: usize) -> *mut c_void {
    match memalign_alignment(align) {
        Some(a) => alloc_with(call, size, a),
        None => {
            set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// `memalign(3)` (obsolete): like `aligned_alloc`, but an alignment that is not a power of two is
/// rounded up to one, as glibc does.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    memalign_with(Call::Memalign, align, size)
}

/// `valloc(3)` (obsolete): `size` bytes aligned to the page size.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign_with(Call::Valloc, page_size(), size)
}

/// `pvalloc(3)` (obsolete): like `valloc`, with `size` rounded up to whole pages (NULL with
/// errno `ENOMEM` if that overflows).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    let Some(rounded) = size.checked_add(page - 1).map(|s| s & !(page - 1)) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    memalign_with(Call::Pvalloc, page, rounded.max(page))
}

/// `malloc_usable_size(3)`: the bytes usable in a block, at least what was asked for; 0 for
/// NULL. A pointer this allocator does not own aborts.
///
/// # Safety
/// `p` is null or a live block from this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: forwarded contract.
    match unsafe { ALLOC.usable_size(p.cast()) } {
        Some(n) => n,
        None => bad_pointer("malloc_usable_size", "invalid pointer", p as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> i32 {
        // SAFETY: __errno_location always returns this thread's errno.
        unsafe { *libc::__errno_location() }
    }

    #[test]
    fn overflowing_requests_fail_with_enomem() {
        set_errno(0);
        assert!(calloc(usize::MAX / 2, 3).is_null());
        assert_eq!(errno(), libc::ENOMEM);
        set_errno(0);
        assert!(malloc(usize::MAX).is_null());
        assert_eq!(errno(), libc::ENOMEM);
        set_errno(0);
        assert!(pvalloc(usize::MAX - 10).is_null());
        assert_eq!(errno(), libc::ENOMEM);
        let p = malloc(40).cast::<u8>();
        // SAFETY: `p` is a live 40-byte block.
        unsafe { p.write_bytes(7, 40) };
        set_errno(0);
        // SAFETY: `p` is live; the call fails and leaves it alone.
        assert!(unsafe { reallocarray(p.cast(), usize::MAX / 4, 8) }.is_null());
        assert_eq!(errno(), libc::ENOMEM);
        // SAFETY: `p` is still live and 40 bytes long.
        assert!(unsafe { core::slice::from_raw_parts(p, 40) }
            .iter()
            .all(|&b| b == 7));
        // SAFETY: `p` is live and not used again.
        unsafe { free(p.cast()) };
    }

    #[test]
    fn posix_memalign_refuses_bad_alignments_without_touching_out() {
        for bad in [0, 3, 4, 24, 100] {
            let mut out = 1usize as *mut c_void;
            // SAFETY: `out` is a valid place for one pointer.
            assert_eq!(unsafe { posix_memalign(&mut out, bad, 8) }, libc::EINVAL);
            assert_eq!(out as usize, 1, "alignment {bad}");
        }
        let mut a = 8;
        while a <= 1 << 16 {
            let mut out = ptr::null_mut();
            // SAFETY: as above.
            assert_eq!(unsafe { posix_memalign(&mut out, a, a + 1) }, 0);
            assert_eq!(out as usize % a, 0);
            // SAFETY: `out` is live.
            assert!(unsafe { malloc_usable_size(out) } > a);
            // SAFETY: `out` is live and not used again.
            unsafe { free(out) };
            a *= 2;
        }
        set_errno(0);
        assert!(aligned_alloc(48, 8).is_null());
        assert_eq!(errno(), libc::EINVAL);
    }

    #[test]
    fn realloc_keeps_contents_growing_and_shrinking() {
        // SAFETY: realloc(NULL, n) is malloc(n).
        let mut p = unsafe { realloc(ptr::null_mut(), 8) }.cast::<u8>();
        // SAFETY: `p` has 8 bytes.
        unsafe { p.copy_from(b"freespac".as_ptr(), 8) };
        for size in [8, 200, 5000, 100_000, 3_000_000, 70_000, 64, 8] {
            // SAFETY: `p` is live; on success only the result is used.
            p = unsafe { realloc(p.cast(), size) }.cast();
            assert!(!p.is_null());
            // SAFETY: the block has at least 8 bytes.
            assert_eq!(unsafe { core::slice::from_raw_parts(p, 8) }, b"freespac");
        }
        // SAFETY: realloc(p, 0) frees `p`, as glibc does.
        assert!(unsafe { realloc(p.cast(), 0) }.is_null());
    }

    #[test]
    fn obsolete_page_functions_align_to_pages() {
        let page = page_size();
        let v = valloc(1);
        let pv = pvalloc(1);
        assert_eq!(v as usize % page, 0);
        assert_eq!(pv as usize % page, 0);
        // SAFETY: both are live blocks.
        assert!(unsafe { malloc_usable_size(pv) } >= page);
        // SAFETY: live, not used again.
        unsafe {
            free(v);
            free(pv);
        }
    }

    #[test]
    fn memalign_rounds_like_glibc() {
        assert_eq!(memalign_alignment(0), Some(0));
        assert_eq!(memalign_alignment(16), Some(0));
        assert_eq!(memalign_alignment(24), Some(32));
        assert_eq!(memalign_alignment(4096), Some(4096));
        assert_eq!(memalign_alignment(usize::MAX), None);
    }
}
