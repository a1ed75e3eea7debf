//! The tcache workloads with mimalloc as the global allocator.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "tcache_workloads/workloads.rs"]
mod workloads;

fn main() {
    workloads::main_with("mimalloc");
}
