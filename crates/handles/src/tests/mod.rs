//! In-crate tests: the arena unit tests, the loom models of the shared arena, and the
//! generator the randomized tests share.
#[cfg(not(loom))]
mod arena_tests;
#[cfg(loom)]
mod loom_shared;
pub(crate) mod rng;
