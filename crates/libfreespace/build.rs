//! Exports `writev` from the integration test executables, so that the `writev` that
//! tests/trace_recording.rs defines stands in for libc's in the `libfreespace.so` it preloads
//! (the loader looks in the executable first). That test uses it to cut one trace write short
//! at a chosen moment. The library itself is built without it.
fn main() {
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=writev");
    println!("cargo:rerun-if-changed=build.rs");
}
