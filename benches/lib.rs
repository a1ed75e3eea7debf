//! freespace-benches: the benchmark harness of the freespace workspace.
//!
//! This package holds only bench targets (see `Cargo.toml` and `docs/benchmarks.md`). It is its
//! own workspace member so that the peer allocators it compares against, some of them built from
//! C, stay out of `cargo test --workspace`.
