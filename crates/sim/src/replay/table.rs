//! The replay table: one row per allocator, fixed-width columns, numbers as the subjects
//! reported them.
//!
//! Invariant: the text depends only on the results, except for the time column, so tests can
//! compare every other column exactly.

use std::fmt::Write as _;

use super::Replay;

/// Bytes in a short human form: `512 B`, `12.0 KiB`, `3.50 MiB`.
pub fn human_bytes(n: usize) -> String {
    const KIB: f64 = 1024.0;
    let x = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if x < KIB * KIB {
        format!("{:.1} KiB", x / KIB)
    } else if x < KIB * KIB * KIB {
        format!("{:.2} MiB", x / (KIB * KIB))
    } else {
        format!("{:.2} GiB", x / (KIB * KIB * KIB))
    }
}

/// Renders the table. Bytes are exact (the test suite compares them with `HeapStats`).
pub fn render_table(r: &Replay) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {}: {} events, {} allocations",
        r.source, r.events, r.allocations
    );
    let _ = writeln!(
        out,
        "{:<28} {:>12} {:>12} {:>9} {:>9} {:>13} {:>12} {:>10}",
        "allocator",
        "peak bytes",
        "final bytes",
        "ext frag",
        "int frag",
        "search/alloc",
        "bytes moved",
        "time"
    );
    for row in &r.results {
        let search = row
            .search_per_alloc
            .map_or_else(|| "-".to_string(), |s| format!("{s:.2}"));
        let moved = row
            .bytes_moved
            .map_or_else(|| "-".to_string(), |m| m.to_string());
        let ms = row.elapsed.as_secs_f64() * 1000.0;
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>12} {:>9.3} {:>9.3} {:>13} {:>12} {:>7.2} ms",
            row.name,
            row.peak_footprint,
            row.final_footprint,
            row.external,
            row.internal,
            search,
            moved,
            ms
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12 * 1024), "12.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.50 MiB");
    }
}
