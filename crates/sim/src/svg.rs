//! `--svg DIR`: the pictures, written as plain SVG text.
//!
//! Invariant: every picture is a self-contained SVG document whose size is fixed by the
//! constants below, and whose colours say one thing each: [`USED`] for live blocks, [`FREE`]
//! for free space inside the footprint; lines get one colour per allocator, the same in every
//! picture. Allocators whose series are identical are drawn as one line, in the colour of the
//! first of them, under one legend entry that names them all ([`line_groups`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::replay::{human_bytes, Family, MapBlock, Replay, RunResult};

/// Fill of a live block in the heap map.
pub const USED: &str = "#2f6db5";
/// Fill of free space in the heap map.
pub const FREE: &str = "#f2a93b";
/// The page background.
pub const BACKGROUND: &str = "#ffffff";

/// Width of every picture, in pixels.
pub const WIDTH: u32 = 960;
/// Left margin of the heap map, where the row labels go.
pub const MAP_LEFT: f64 = 170.0;
/// Right margin.
pub const RIGHT: f64 = 20.0;
/// Height of one heap-map row (the bar plus its gap).
pub const MAP_ROW: f64 = 26.0;
/// Height of one heap-map bar.
pub const MAP_BAR: f64 = 18.0;
/// Top margin of the heap map (title and axis note).
pub const MAP_TOP: f64 = 48.0;

const PALETTE: [&str; 16] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn open(out: &mut String, width: u32, height: u32, title: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="{BACKGROUND}"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
}

/// Adjacent blocks in the same state merged, so a map of many small blocks stays small.
fn merge_runs(map: &[MapBlock]) -> Vec<MapBlock> {
    let mut out: Vec<MapBlock> = Vec::with_capacity(map.len());
    for b in map {
        match out.last_mut() {
            Some(last) if last.used == b.used && last.offset + last.len == b.offset => {
                last.len += b.len;
            }
            _ => out.push(*b),
        }
    }
    out
}

/// Height of the heap map for `rows` allocators.
pub fn heap_map_height(rows: usize) -> u32 {
    (MAP_TOP + MAP_ROW * rows as f64 + 30.0) as u32
}

/// The heap map: one bar per allocator, address along x on a scale common to all bars (the
/// largest final footprint spans the width), live blocks in [`USED`], free space in [`FREE`].
pub fn heap_map_svg(r: &Replay) -> String {
    let height = heap_map_height(r.results.len());
    let mut out = String::new();
    open(
        &mut out,
        WIDTH,
        height,
        &format!("Heap map after the last event of {}", r.source),
    );
    let span = r
        .results
        .iter()
        .map(|row| map_extent(&row.final_map))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = f64::from(WIDTH) - MAP_LEFT - RIGHT;
    let scale = plot_w / span as f64;
    let _ = writeln!(
        out,
        r##"<text x="{MAP_LEFT}" y="38" fill="#555">address offset 0 to {} ({}); blue = used, orange = free, mixed = both within one pixel</text>"##,
        span,
        escape(&human_bytes(span))
    );
    for (i, row) in r.results.iter().enumerate() {
        let y = MAP_TOP + MAP_ROW * i as f64;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            MAP_LEFT - 8.0,
            y + MAP_BAR - 4.0,
            escape(&row.name)
        );
        let runs = merge_runs(&row.final_map);
        if runs.len() as f64 <= plot_w {
            for b in runs {
                let x = MAP_LEFT + b.offset as f64 * scale;
                let w = (b.len as f64 * scale).max(0.5);
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{MAP_BAR}" fill="{}"/>"#,
                    if b.used { USED } else { FREE }
                );
            }
        } else {
            // More runs than pixels: one rectangle per pixel column, its colour mixed from
            // USED and FREE by the share of free bytes in that column.
            let columns = pixel_columns(&runs, scale, plot_w as usize);
            let mut x0 = 0;
            while x0 < columns.len() {
                let mut x1 = x0 + 1;
                while x1 < columns.len() && columns[x1] == columns[x0] {
                    x1 += 1;
                }
                if let Some(fill) = &columns[x0] {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{:.2}" y="{y:.1}" width="{}" height="{MAP_BAR}" fill="{fill}"/>"#,
                        MAP_LEFT + x0 as f64,
                        x1 - x0
                    );
                }
                x0 = x1;
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The colour of each pixel column of a heap-map bar (`None` where no block reaches): USED and
/// FREE mixed by the share of free bytes, in eight steps so that equal columns merge.
fn pixel_columns(runs: &[MapBlock], scale: f64, width: usize) -> Vec<Option<String>> {
    let mut used = vec![0f64; width];
    let mut free = vec![0f64; width];
    for b in runs {
        let (start, end) = (b.offset as f64 * scale, (b.offset + b.len) as f64 * scale);
        let mut x = start;
        while x < end {
            let col = x.floor() as usize;
            if col >= width {
                break;
            }
            let next = (col as f64 + 1.0).min(end);
            let share = next - x;
            if b.used {
                used[col] += share;
            } else {
                free[col] += share;
            }
            x = next;
        }
    }
    (0..width)
        .map(|c| {
            let total = used[c] + free[c];
            if total <= 0.0 {
                return None;
            }
            let step = (free[c] / total * 8.0).round() / 8.0;
            Some(mix(USED, FREE, step))
        })
        .collect()
}

/// `a` blended towards `b` by `t` in [0, 1], as `#rrggbb`.
fn mix(a: &str, b: &str, t: f64) -> String {
    let parse = |hex: &str| {
        let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
        [(v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]
    };
    let (pa, pb) = (parse(a), parse(b));
    let c: Vec<u32> = (0..3)
        .map(|i| (f64::from(pa[i]) + (f64::from(pb[i]) - f64::from(pa[i])) * t).round() as u32)
        .collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn map_extent(map: &[MapBlock]) -> usize {
    map.iter().map(|b| b.offset + b.len).max().unwrap_or(0)
}

/// A line chart: x is the event index, one polyline per series, a legend on the right.
struct Chart<'a> {
    title: String,
    height: u32,
    y_label: &'a str,
    events: usize,
    y_max: f64,
    y_format: &'a dyn Fn(f64) -> String,
}

/// Height of a chart with room for `rows` legend rows (at least 420 pixels).
pub fn chart_height(rows: usize) -> u32 {
    ((CHART_TOP + LEGEND_STEP * rows as f64 + 20.0) as u32).max(420)
}

const LEGEND_STEP: f64 = 15.0;
const CHART_LEFT: f64 = 80.0;
const CHART_RIGHT: f64 = 250.0;
const CHART_TOP: f64 = 40.0;
const CHART_BOTTOM: f64 = 50.0;

impl Chart<'_> {
    fn x(&self, event: usize) -> f64 {
        let w = f64::from(WIDTH) - CHART_LEFT - CHART_RIGHT;
        CHART_LEFT + w * event as f64 / self.events.max(1) as f64
    }

    fn y(&self, v: f64) -> f64 {
        let h = f64::from(self.height) - CHART_TOP - CHART_BOTTOM;
        CHART_TOP + h * (1.0 - v / self.y_max.max(f64::MIN_POSITIVE))
    }

    fn frame(&self, out: &mut String) {
        open(out, WIDTH, self.height, &self.title);
        let (x0, x1) = (self.x(0), self.x(self.events));
        let (y0, y1) = (self.y(0.0), self.y(self.y_max));
        let _ = writeln!(
            out,
            "<path d=\"M{x0:.1},{y1:.1} V{y0:.1} H{x1:.1}\" stroke=\"#333\" fill=\"none\"/>"
        );
        for k in 0..=4 {
            let v = self.y_max * f64::from(k) / 4.0;
            let y = self.y(v);
            let _ = writeln!(
                out,
                "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>"
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 6.0,
                y + 4.0,
                escape(&(self.y_format)(v))
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">event (0 to {})</text>"#,
            (x0 + x1) / 2.0,
            f64::from(self.height) - 15.0,
            self.events
        );
        let _ = writeln!(
            out,
            r#"<text x="15" y="{:.1}" transform="rotate(-90 15 {:.1})" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            escape(self.y_label)
        );
    }

    fn line(&self, out: &mut String, points: &[(usize, f64)], colour: &str, dashed: bool) {
        if points.is_empty() {
            return;
        }
        // Pixel coordinates at a tenth of a pixel, simplified to within 0.3 pixel, so long
        // traces still make small files.
        let px: Vec<(i64, i64)> = points
            .iter()
            .map(|(e, v)| {
                (
                    (self.x(*e) * 10.0).round() as i64,
                    (self.y(*v) * 10.0).round() as i64,
                )
            })
            .collect();
        let kept = simplify(&px, 3.0);
        let mut d = String::new();
        for (i, (x, y)) in kept.iter().enumerate() {
            let _ = write!(
                d,
                "{}{}.{},{}.{} ",
                if i == 0 { "M" } else { "L" },
                x / 10,
                x % 10,
                y / 10,
                y % 10
            );
        }
        let _ = writeln!(
            out,
            r#"<path d="{}" stroke="{colour}" stroke-width="1.5" fill="none"{}/>"#,
            d.trim_end(),
            if dashed {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            }
        );
    }

    /// A legend entry at legend row `index`: a swatch and `label`, one row per line.
    fn legend(&self, out: &mut String, index: usize, label: &[String], colour: &str) {
        let x = f64::from(WIDTH) - CHART_RIGHT + 12.0;
        let y = CHART_TOP + LEGEND_STEP * index as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>",
            x + 18.0
        );
        for (k, line) in label.iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                x + 24.0,
                y + 4.0 + LEGEND_STEP * k as f64,
                escape(line)
            );
        }
    }
}

/// Ramer-Douglas-Peucker: the fewest points of `pts` such that no dropped point lies farther
/// than `tolerance` from the polyline through the kept ones.
fn simplify(pts: &[(i64, i64)], tolerance: f64) -> Vec<(i64, i64)> {
    if pts.len() < 3 {
        return pts.to_vec();
    }
    let mut keep = vec![false; pts.len()];
    keep[0] = true;
    keep[pts.len() - 1] = true;
    let mut stack = vec![(0, pts.len() - 1)];
    while let Some((a, b)) = stack.pop() {
        let (pa, pb) = (pts[a], pts[b]);
        let (dx, dy) = ((pb.0 - pa.0) as f64, (pb.1 - pa.1) as f64);
        let len = (dx * dx + dy * dy).sqrt();
        let mut worst = (0.0, a);
        for (i, p) in pts.iter().enumerate().take(b).skip(a + 1) {
            let (px, py) = ((p.0 - pa.0) as f64, (p.1 - pa.1) as f64);
            let dist = if len == 0.0 {
                (px * px + py * py).sqrt()
            } else {
                (px * dy - py * dx).abs() / len
            };
            if dist > worst.0 {
                worst = (dist, i);
            }
        }
        if worst.0 > tolerance {
            keep[worst.1] = true;
            stack.push((a, worst.1));
            stack.push((worst.1, b));
        }
    }
    pts.iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn bytes_axis(v: f64) -> String {
    human_bytes(v.round() as usize)
}

fn ratio_axis(v: f64) -> String {
    format!("{v:.2}")
}

/// Allocators whose series in one chart are identical, drawn as one line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineGroup {
    /// Indices into [`Replay::results`], in replay order; the first one gives the colour.
    pub rows: Vec<usize>,
    /// The legend label, one line per name prefix: `first-fit addr/lifo` for two first-fit
    /// list orders (see `group_label`).
    pub label: Vec<String>,
    /// The shared series: (event, value) points.
    pub points: Vec<(usize, f64)>,
}

/// A series drawn once per [`LineGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Bytes held at every sample ([`footprint_svg`]).
    Footprint,
    /// External fragmentation at the samples that measured it ([`fragmentation_svg`]).
    External,
}

impl Series {
    fn points(self, row: &RunResult) -> Vec<(usize, f64)> {
        match self {
            Series::Footprint => footprint_points(row),
            Series::External => external_points(row),
        }
    }
}

/// The allocators of `r` grouped by identical `series`, in order of each group's first row.
/// Many policies hold exactly the same footprint on a trace; one line each would draw the same
/// line many times under a legend entry each.
pub fn line_groups(r: &Replay, series: Series) -> Vec<LineGroup> {
    let mut groups: Vec<LineGroup> = Vec::new();
    for (i, row) in r.results.iter().enumerate() {
        let points = series.points(row);
        match groups.iter_mut().find(|g| g.points == points) {
            Some(g) => g.rows.push(i),
            None => groups.push(LineGroup {
                rows: vec![i],
                label: Vec::new(),
                points,
            }),
        }
    }
    for g in &mut groups {
        let names: Vec<&str> = g.rows.iter().map(|&i| r.results[i].name.as_str()).collect();
        g.label = group_label(&names);
    }
    groups
}

/// The legend lines of a group: names that are a prefix and one more word share a line per
/// prefix (the word before the first space), in order of first appearance; other names keep
/// their own line. `["first-fit addr", "first-fit lifo", "first-fit addr no-coalesce",
/// "buddy"]` gives `first-fit addr/lifo`, `first-fit addr no-coalesce` and `buddy`.
fn group_label(names: &[&str]) -> Vec<String> {
    let mut lines: Vec<(&str, Vec<&str>)> = Vec::new();
    for name in names {
        match name.split_once(' ') {
            Some((prefix, word)) if !word.contains(' ') => {
                match lines
                    .iter_mut()
                    .find(|(p, words)| *p == prefix && !words.is_empty())
                {
                    Some((_, words)) => words.push(word),
                    None => lines.push((prefix, vec![word])),
                }
            }
            _ => lines.push((name, Vec::new())),
        }
    }
    lines
        .into_iter()
        .map(|(prefix, words)| {
            if words.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix} {}", words.join("/"))
            }
        })
        .collect()
}

/// Draws `chart` with one line per [`LineGroup`] of `r` and `series`. The arena's line is
/// dashed, so that the one allocator that compacts stands out.
fn line_per_group(mut chart: Chart, r: &Replay, series: Series) -> String {
    let groups = line_groups(r, series);
    chart.height = chart_height(groups.iter().map(|g| g.label.len()).sum());
    let mut out = String::new();
    chart.frame(&mut out);
    let mut legend_row = 0;
    for g in &groups {
        let first = g.rows[0];
        let dashed = g.rows.iter().any(|&i| r.results[i].family == Family::Arena);
        chart.line(&mut out, &g.points, colour(first), dashed);
        chart.legend(&mut out, legend_row, &g.label, colour(first));
        legend_row += g.label.len();
    }
    out.push_str("</svg>\n");
    out
}

/// A row's external fragmentation at the samples that measured it.
fn external_points(row: &RunResult) -> Vec<(usize, f64)> {
    row.samples
        .iter()
        .filter_map(|s| s.external.map(|e| (s.event, e)))
        .collect()
}

/// A row's footprint at every sample.
fn footprint_points(row: &RunResult) -> Vec<(usize, f64)> {
    row.samples
        .iter()
        .map(|s| (s.event, s.footprint as f64))
        .collect()
}

/// External fragmentation over the trace, one line per group of allocators with identical
/// series ([`line_groups`]).
pub fn fragmentation_svg(r: &Replay) -> String {
    let chart = Chart {
        height: 0, // line_per_group sizes it to the legend
        title: format!("External fragmentation over {}", r.source),
        y_label: "1 - largest free / total free",
        events: r.events,
        y_max: 1.0,
        y_format: &ratio_axis,
    };
    line_per_group(chart, r, Series::External)
}

/// Footprint over the trace, one line per group of allocators with identical footprints
/// ([`line_groups`]).
pub fn footprint_svg(r: &Replay) -> String {
    let y_max = r
        .results
        .iter()
        .map(|row| row.peak_footprint)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let chart = Chart {
        height: 0, // line_per_group sizes it to the legend
        title: format!("Footprint over {}", r.source),
        y_label: "bytes held",
        events: r.events,
        y_max,
        y_format: &bytes_axis,
    };
    line_per_group(chart, r, Series::Footprint)
}

/// The arena's footprint over the trace, with each compaction pass drawn as a drop from the
/// footprint before it to the footprint after it.
pub fn compaction_svg(r: &Replay) -> String {
    let arenas: Vec<(usize, &RunResult)> = r
        .results
        .iter()
        .enumerate()
        .filter(|(_, row)| row.family == Family::Arena)
        .collect();
    let y_max = arenas
        .iter()
        .flat_map(|(_, row)| {
            row.compactions
                .iter()
                .map(|c| c.before)
                .chain(std::iter::once(row.peak_footprint))
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let chart = Chart {
        height: chart_height(arenas.len()),
        title: format!("Arena footprint and compaction passes over {}", r.source),
        y_label: "arena footprint",
        events: r.events,
        y_max,
        y_format: &bytes_axis,
    };
    let mut out = String::new();
    chart.frame(&mut out);
    for (legend, (i, row)) in arenas.iter().enumerate() {
        chart.line(&mut out, &footprint_points(row), colour(*i), false);
        chart.legend(
            &mut out,
            legend,
            std::slice::from_ref(&row.name),
            colour(*i),
        );
        for c in &row.compactions {
            let x = chart.x(c.event);
            let (yb, ya) = (chart.y(c.before as f64), chart.y(c.after as f64));
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" y1="{yb:.1}" x2="{x:.1}" y2="{ya:.1}" stroke="{}" stroke-width="2"/>"#,
                colour(*i)
            );
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{yb:.1}" r="3" fill="{BACKGROUND}" stroke="{}"/><circle cx="{x:.1}" cy="{ya:.1}" r="3" fill="{}"/>"#,
                colour(*i),
                colour(*i)
            );
        }
    }
    let passes: usize = arenas.iter().map(|(_, row)| row.compactions.len()).sum();
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" fill="#555">{} compaction pass{}: hollow dot = before, filled = after</text>"##,
        CHART_LEFT + 10.0,
        CHART_TOP + 14.0,
        passes,
        if passes == 1 { "" } else { "es" }
    );
    out.push_str("</svg>\n");
    out
}

/// An error writing the pictures.
#[derive(Debug)]
pub struct SvgError(pub String);

impl std::fmt::Display for SvgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SvgError {}

/// Writes `heap-map.svg`, `fragmentation.svg`, `footprint.svg` and `compaction.svg` into
/// `dir` (created if missing) and returns their paths.
pub fn write_all(dir: &Path, r: &Replay) -> Result<Vec<PathBuf>, SvgError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SvgError(format!("{}: cannot create: {e}", dir.display())))?;
    let pictures = [
        ("heap-map.svg", heap_map_svg(r)),
        ("fragmentation.svg", fragmentation_svg(r)),
        ("footprint.svg", footprint_svg(r)),
        ("compaction.svg", compaction_svg(r)),
    ];
    let mut paths = Vec::new();
    for (name, text) in pictures {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| SvgError(format!("{}: cannot write: {e}", path.display())))?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_only_touching_blocks_of_one_state() {
        let b = |offset, len, used| MapBlock { offset, len, used };
        let merged = merge_runs(&[
            b(0, 4, true),
            b(4, 4, true),
            b(8, 2, false),
            b(12, 2, false),
        ]);
        assert_eq!(merged, vec![b(0, 8, true), b(8, 2, false), b(12, 2, false)]);
    }

    #[test]
    fn columns_mix_colours_by_free_share() {
        let b = |offset, len, used| MapBlock { offset, len, used };
        // Scale 1: column 0 all used, column 1 half free, column 2 all free, column 3 empty.
        let runs = [b(0, 1, true), b(1, 1, true), b(1, 0, false), b(2, 1, false)];
        let cols = pixel_columns(&runs, 1.0, 4);
        assert_eq!(cols[0].as_deref(), Some(USED));
        assert_eq!(cols[2].as_deref(), Some(FREE));
        assert_eq!(cols[3], None);
        let half = pixel_columns(&[b(0, 1, true), b(1, 1, false)], 0.5, 1);
        assert_eq!(half[0], Some(mix(USED, FREE, 0.5)));
        assert_eq!(mix("#000000", "#ffffff", 0.5), "#808080");
    }

    #[test]
    fn simplify_keeps_corners_and_drops_straight_runs() {
        let line: Vec<(i64, i64)> = (0..100).map(|i| (i * 10, i * 5)).collect();
        assert_eq!(simplify(&line, 3.0), vec![(0, 0), (990, 495)]);
        // A right angle keeps its corner.
        let mut corner: Vec<(i64, i64)> = (0..50).map(|i| (i * 10, 0)).collect();
        corner.extend((0..50).map(|i| (490, i * 10)));
        let kept = simplify(&corner, 3.0);
        assert!(kept.contains(&(490, 0)), "{kept:?}");
        // A smooth curve is not flattened: every dropped point stays within the tolerance.
        let curve: Vec<(i64, i64)> = (0..200).map(|i| (i * 10, (i * i) / 4)).collect();
        let kept = simplify(&curve, 3.0);
        assert!(kept.len() > 5, "{kept:?}");
    }

    fn row(name: &str, footprints: &[usize]) -> RunResult {
        RunResult {
            name: name.to_string(),
            family: Family::Core,
            peak_footprint: footprints.iter().copied().max().unwrap_or(0),
            final_footprint: footprints.last().copied().unwrap_or(0),
            external: 0.0,
            internal: 0.0,
            search_per_alloc: None,
            bytes_moved: None,
            elapsed: std::time::Duration::ZERO,
            samples: footprints
                .iter()
                .enumerate()
                .map(|(event, &footprint)| crate::replay::Sample {
                    event,
                    footprint,
                    external: Some(0.0),
                })
                .collect(),
            compactions: Vec::new(),
            final_map: Vec::new(),
        }
    }

    /// Lines drawn and legend swatches in a chart.
    fn lines_and_legend(svg: &str) -> (usize, usize) {
        (
            svg.matches(r#"stroke-width="1.5""#).count(),
            svg.matches(r#"stroke-width="3""#).count(),
        )
    }

    #[test]
    fn identical_series_are_drawn_once_under_one_legend_entry() {
        let r = Replay {
            source: "t".to_string(),
            events: 3,
            allocations: 2,
            results: vec![
                row("first-fit addr", &[16, 32, 16]),
                row("first-fit lifo", &[16, 32, 16]),
                row("best-fit addr", &[16, 32, 48]),
            ],
        };
        let svg = footprint_svg(&r);
        assert_eq!(lines_and_legend(&svg), (2, 2), "{svg}");
        assert!(svg.contains(">first-fit addr/lifo<"), "{svg}");
        assert!(svg.contains(">best-fit addr<"), "{svg}");
    }

    #[test]
    fn group_labels_share_a_line_per_prefix() {
        let names = [
            "first-fit addr",
            "first-fit lifo",
            "first-fit addr no-coalesce",
            "buddy",
            "next-fit addr",
            "first-fit fifo",
        ];
        assert_eq!(
            group_label(&names),
            [
                "first-fit addr/lifo/fifo",
                "first-fit addr no-coalesce",
                "buddy",
                "next-fit addr",
            ]
        );
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
