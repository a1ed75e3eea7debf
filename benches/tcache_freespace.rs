//! The tcache workloads with freespace `ThreadCached` as the global allocator.

#[global_allocator]
static GLOBAL: freespace_tcache::ThreadCached = freespace_tcache::ThreadCached::new();

#[path = "tcache_workloads/workloads.rs"]
mod workloads;

fn main() {
    workloads::main_with("freespace");
}
