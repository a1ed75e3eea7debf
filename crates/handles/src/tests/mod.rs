//! In-crate tests: the arena unit tests, and the loom models of the shared arena.
#[cfg(not(loom))]
mod arena_tests;
#[cfg(loom)]
mod loom_shared;
