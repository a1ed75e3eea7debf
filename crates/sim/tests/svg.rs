//! The pictures are real pictures: rendered to pixels with resvg, they have the promised size
//! and the promised colours where the blocks are.

use freespace_sim::replay::{replay, Replay};
use freespace_sim::svg::{
    self, heap_map_height, MAP_BAR, MAP_LEFT, MAP_ROW, MAP_TOP, RIGHT, WIDTH,
};
use freespace_sim::trace::read_trace;
use resvg::{tiny_skia, usvg};

fn render(svg_text: &str) -> tiny_skia::Pixmap {
    let tree = usvg::Tree::from_str(svg_text, &usvg::Options::default()).expect("valid SVG");
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).expect("pixmap");
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
}

fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn pixel(p: &tiny_skia::Pixmap, x: f64, y: f64) -> [u8; 3] {
    let c = p.pixel(x as u32, y as u32).expect("inside the picture");
    assert_eq!(c.alpha(), 255, "opaque at ({x},{y})");
    [c.red(), c.green(), c.blue()]
}

fn sample_replay() -> Replay {
    // Three 4 KiB blocks, the middle one freed: used, hole, used in every allocator.
    let trace = read_trace("three.trace", b"a 1 4096\na 2 4096\na 3 4096\nf 2\n").unwrap();
    replay(&trace, &mut |_| {}).unwrap()
}

#[test]
fn heap_map_renders_with_used_and_free_colours_where_the_blocks_are() {
    let r = sample_replay();
    let text = svg::heap_map_svg(&r);
    let png = render(&text);
    assert_eq!(png.width(), WIDTH);
    assert_eq!(png.height(), heap_map_height(r.results.len()));

    let span = r
        .results
        .iter()
        .flat_map(|row| row.final_map.iter().map(|b| b.offset + b.len))
        .max()
        .unwrap();
    let scale = (f64::from(WIDTH) - MAP_LEFT - RIGHT) / span as f64;
    let (row_index, row) = r
        .results
        .iter()
        .enumerate()
        .find(|(_, row)| row.name == "arena sliding")
        .expect("the arena is replayed");
    let y = MAP_TOP + MAP_ROW * row_index as f64 + MAP_BAR / 2.0;
    let mut checked = (0, 0);
    for b in &row.final_map {
        if (b.len as f64 * scale) < 6.0 {
            continue;
        }
        let x = MAP_LEFT + (b.offset as f64 + b.len as f64 / 2.0) * scale;
        let want = if b.used { svg::USED } else { svg::FREE };
        assert_eq!(pixel(&png, x, y), rgb(want), "block {b:?} at x={x:.1}");
        if b.used {
            checked.0 += 1;
        } else {
            checked.1 += 1;
        }
    }
    assert!(
        checked.0 >= 2 && checked.1 >= 1,
        "checked used/free blocks: {checked:?}"
    );
    // Between two bars there is only background.
    let gap = MAP_TOP + MAP_ROW * row_index as f64 + (MAP_BAR + MAP_ROW) / 2.0;
    assert_eq!(pixel(&png, MAP_LEFT + 50.0, gap), rgb(svg::BACKGROUND));

    // Keep the rendering for a person to look at.
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("heap-map.png");
    png.save_png(&out).unwrap();
}

#[test]
fn charts_render_at_their_size_and_draw_lines() {
    let r = sample_replay();
    let arenas = r
        .results
        .iter()
        .filter(|row| row.name.starts_with("arena"))
        .count();
    let legend_rows = |series| -> usize {
        svg::line_groups(&r, series)
            .iter()
            .map(|g| g.label.len())
            .sum()
    };
    for (text, series) in [
        (
            svg::fragmentation_svg(&r),
            legend_rows(svg::Series::External),
        ),
        (svg::footprint_svg(&r), legend_rows(svg::Series::Footprint)),
        (svg::compaction_svg(&r), arenas),
    ] {
        let png = render(&text);
        assert_eq!(png.width(), WIDTH);
        assert_eq!(png.height(), svg::chart_height(series));
        assert!(png.height() > 420 || series < 20, "the legend fits");
        // Something other than background, axis grey and black was drawn: the coloured lines.
        let coloured = png
            .pixels()
            .iter()
            .filter(|c| {
                let (r, g, b) = (c.red() as i32, c.green() as i32, c.blue() as i32);
                (r - g).abs() > 40 || (g - b).abs() > 40 || (r - b).abs() > 40
            })
            .count();
        assert!(coloured > 50, "coloured pixels: {coloured}");
    }
}
