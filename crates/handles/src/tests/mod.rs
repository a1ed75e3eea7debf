//! In-crate tests: the arena unit tests, the loom models of the shared arena, and the
//! generator the randomized tests share.
#[cfg(not(loom))]
mod arena_tests;
#[cfg(loom)]
mod loom_shared;
pub(crate) mod rng;

/// How many times a test repeats its logic: `native` normally, `miri` under Miri, which
/// interprets every instruction. Only repetitions shrink, never what a repetition checks.
pub(crate) const fn runs(native: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}
