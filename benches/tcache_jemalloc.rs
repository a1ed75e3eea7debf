//! The tcache workloads with jemalloc (tikv-jemallocator) as the global allocator.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "tcache_workloads/workloads.rs"]
mod workloads;

fn main() {
    workloads::main_with("jemalloc");
}
