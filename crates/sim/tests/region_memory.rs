//! A simulated region costs only the pages its heap touches: replaying a trace that asks for
//! 64 MiB gives each fixed-region heap a region of 2 GiB, and the process's peak resident memory
//! must grow by far less than one such region.
//!
//! This file holds one test, so that no other test's memory shows in the process's peak.

use freespace_malloc::{Coalescing, Fit, ListOrder};
use freespace_sim::replay::{replay_specs, SubjectSpec, TraceProfile, DEFAULT_ROOM};
use freespace_sim::trace::read_trace;

/// The process's peak resident memory in KiB (`VmHWM` in /proc/self/status).
fn peak_resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn a_huge_request_touches_only_what_the_heap_writes() {
    const MIB: u64 = 1024;
    let trace = read_trace("huge.trace", b"a 1 67108864\nf 1\na 2 67108864\n").unwrap();
    let region = freespace_sim::replay::Region::for_profile(&TraceProfile::of(&trace));
    assert!(region >= 1 << 31, "each region is {region} bytes");
    let specs = [
        SubjectSpec::Core(
            Fit::Segregated,
            ListOrder::AddressOrdered,
            Coalescing::Immediate,
        ),
        SubjectSpec::Core(Fit::First, ListOrder::AddressOrdered, Coalescing::Immediate),
        SubjectSpec::Buddy,
    ];
    let before = peak_resident_kib();
    let result = replay_specs(&trace, &specs, DEFAULT_ROOM, &mut |_| {}).unwrap();
    let grown = peak_resident_kib().saturating_sub(before);
    assert_eq!(result.results.len(), specs.len());
    // The payload, its 16-byte header and the 32-byte region header.
    assert_eq!(result.results[0].peak_footprint, (64 << 20) + 16 + 32);
    assert!(
        grown < 16 * MIB,
        "peak resident memory grew by {} MiB for regions of {} MiB that the heaps barely touch",
        grown / MIB,
        region >> 20
    );
}
