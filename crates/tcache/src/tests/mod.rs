//! Unit tests that need the crate's internals: the central lists and caches on private state.
#[cfg(not(loom))]
mod central_model;
#[cfg(loom)]
mod loom_central;
