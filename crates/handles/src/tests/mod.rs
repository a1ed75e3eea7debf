//! In-crate tests: the arena unit tests and the loom models of the shared arena. The randomized
//! tests draw from `freespace_testkit::Rng`, the workspace's seeded test generator.
#[cfg(not(loom))]
mod arena_tests;
#[cfg(loom)]
mod loom_shared;

/// How many times a test repeats its logic: `native` normally, `miri` under Miri, which
/// interprets every instruction. Only repetitions shrink, never what a repetition checks.
pub(crate) const fn runs(native: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}
