//! Fatal errors: the one line written to stderr before `abort()` when a program hands the
//! allocator a pointer it does not own. Invariant: nothing here allocates or takes a lock; the
//! message is formatted into a stack buffer and written with one `write(2)`.

/// Formats `freespace: CALL(): invalid pointer 0xADDR\n` into `out`, returning the length used.
/// `what` names the problem (`invalid pointer`, `double free`). The buffer is large enough for
/// any call name of this crate.
pub(crate) fn format_message(call: &str, what: &str, addr: usize, out: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < out.len() {
                out[n] = b;
                n += 1;
            }
        }
    };
    put(b"freespace: ");
    put(call.as_bytes());
    put(b"(): ");
    put(what.as_bytes());
    put(b" 0x");
    let mut digits = [0u8; 16];
    let mut len = 0;
    let mut v = addr;
    loop {
        digits[len] = b"0123456789abcdef"[v & 0xf];
        len += 1;
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        put(&digits[i..i + 1]);
    }
    put(b"\n");
    n
}

/// Writes the message for a bad pointer handed to `call`, then aborts the process.
pub(crate) fn bad_pointer(call: &str, what: &str, addr: usize) -> ! {
    let mut buf = [0u8; 128];
    let n = format_message(call, what, addr, &mut buf);
    crate::trace_recorder::flush_all_best_effort();
    // SAFETY: `buf[..n]` is initialised memory; write(2) and abort(3) allocate nothing.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_call_and_pointer_in_hex() {
        let mut buf = [0u8; 128];
        let n = format_message("free", "invalid pointer", 0x7f00_dead_beef, &mut buf);
        assert_eq!(
            &buf[..n],
            b"freespace: free(): invalid pointer 0x7f00deadbeef\n"
        );
        let n = format_message("realloc", "double free of", 0, &mut buf);
        assert_eq!(&buf[..n], b"freespace: realloc(): double free of 0x0\n");
        let n = format_message("free", "invalid pointer", usize::MAX, &mut buf);
        assert_eq!(
            &buf[..n],
            b"freespace: free(): invalid pointer 0xffffffffffffffff\n"
        );
    }
}
