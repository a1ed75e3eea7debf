//! The tcache workloads with the system allocator as the global allocator.

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

#[path = "tcache_workloads/workloads.rs"]
mod workloads;

fn main() {
    workloads::main_with("system");
}
