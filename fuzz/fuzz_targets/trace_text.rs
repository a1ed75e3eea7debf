//! The text trace reader (crates/sim/src/trace/text.rs) on any bytes: it never panics, its
//! messages stay short however long the input's tokens, what it accepts writes back to text
//! that reads as the same operations, and a small accepted trace replays on a heap, the buddy
//! heap and an arena without a panic.
#![no_main]

use freespace_malloc::{Coalescing, Fit, ListOrder};
use freespace_sim::replay::{replay_specs, SubjectSpec, DEFAULT_ROOM};
use freespace_sim::trace::{read_trace, Op, TextReader, TraceReader};
use libfuzzer_sys::fuzz_target;

/// Longer inputs add nothing the reader does per line.
const MAX_INPUT: usize = 1 << 16;
/// Replays only traces this short with requests this small, so that each run stays cheap.
const REPLAY_EVENTS: usize = 64;
const REPLAY_SIZE: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let trace = match read_trace("fuzz.trace", data) {
        Ok(trace) => trace,
        Err(e) => {
            // The file name, a line number, and a message that shows 40 characters of a token.
            let msg = e.to_string();
            assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
            return;
        }
    };
    if std::str::from_utf8(data).is_ok() && !freespace_sim::trace::is_binary(data) {
        // What the text reader accepts, it writes back as the same operations.
        let text = trace.to_text();
        let again = TextReader::new("again.trace", &text)
            .read_all()
            .expect("the reader's own output reads back");
        let ops = |t: &freespace_sim::trace::Trace| -> Vec<Op> {
            t.events.iter().map(|e| e.op).collect()
        };
        assert_eq!(ops(&again), ops(&trace));
    }
    let small = trace.events.len() <= REPLAY_EVENTS
        && trace.events.iter().all(|e| match e.op {
            Op::Alloc { size, .. } | Op::Realloc { size, .. } => size <= REPLAY_SIZE,
            Op::Free { .. } => true,
        });
    if small {
        let specs = [
            SubjectSpec::Core(Fit::Best, ListOrder::SizeAscending, Coalescing::Immediate),
            SubjectSpec::Core(
                Fit::Segregated,
                ListOrder::AddressOrdered,
                Coalescing::Never,
            ),
            SubjectSpec::Buddy,
            SubjectSpec::ArenaTwoFinger,
        ];
        replay_specs(&trace, &specs, DEFAULT_ROOM, &mut |_| {}).expect("a checked trace replays");
    }
});
