//! Pictures of an arena, as hand-written SVG: address maps (allocated and
//! free segments across the address range the allocations occupy) and the
//! free-size histogram as bars.
//!
//! A map has a fixed number of columns; each column is coloured by the
//! share of its addresses that are allocated, so a map of a million
//! segments is as small as a map of ten.

use std::fmt::Write as _;
use std::path::Path;

use crate::sizes::{human, Bin};

/// Columns of a map.
const COLUMNS: usize = 800;
/// Left margin (labels), map row height, histogram bar height.
const LEFT: usize = 150;
const ROW: usize = 46;
const BAR: usize = 16;
const ALLOCATED: (u8, u8, u8) = (0x2f, 0x6d, 0xb5);
const FREE: (u8, u8, u8) = (0xe4, 0xe7, 0xeb);

/// One address map: a title and the segments (start, end, allocated) in
/// address order.
pub struct Map {
    /// What the map shows.
    pub title: String,
    /// Allocated and free segments.
    pub segments: Vec<(usize, usize, bool)>,
}

/// `s` as XML text: markup escaped, and the control characters XML 1.0
/// does not allow at all (not even as references; a file name may hold
/// them) shown as U+FFFD.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            '\0'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The address window a map draws: the allocations' extent, or everything
/// when nothing is allocated.
fn window(segments: &[(usize, usize, bool)]) -> Option<(usize, usize)> {
    let allocated = segments.iter().filter(|s| s.2);
    let lo = allocated.clone().map(|s| s.0).min();
    let hi = allocated.map(|s| s.1).max();
    match (lo, hi) {
        (Some(lo), Some(hi)) => Some((lo, hi)),
        _ => Some((segments.first()?.0, segments.last()?.1)),
    }
}

/// The allocated share of each of `COLUMNS` equal slices of `[lo, hi)`.
fn shares(segments: &[(usize, usize, bool)], lo: usize, hi: usize) -> Vec<f64> {
    let width = (hi - lo) as f64 / COLUMNS as f64;
    let mut filled = vec![0.0f64; COLUMNS];
    for &(s, e, allocated) in segments {
        let (s, e) = (s.max(lo), e.min(hi));
        if !allocated || s >= e {
            continue;
        }
        let (a, b) = ((s - lo) as f64 / width, (e - lo) as f64 / width);
        let mut c = a.floor() as usize;
        while c < COLUMNS && (c as f64) < b {
            let overlap = b.min(c as f64 + 1.0) - a.max(c as f64);
            filled[c] += overlap.max(0.0);
            c += 1;
        }
    }
    filled.iter().map(|f| f.clamp(0.0, 1.0)).collect()
}

fn colour(share: f64) -> String {
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * share).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(FREE.0, ALLOCATED.0),
        mix(FREE.1, ALLOCATED.1),
        mix(FREE.2, ALLOCATED.2)
    )
}

fn map(svg: &mut String, m: &Map, y: usize) {
    let _ = writeln!(svg, r#"<text x="10" y="{}" class="h">{}</text>"#, y + 14, escape(&m.title));
    let top = y + 22;
    let Some((lo, hi)) = window(&m.segments).filter(|(lo, hi)| hi > lo) else {
        let _ = writeln!(svg, r#"<text x="{LEFT}" y="{}">empty arena</text>"#, top + 16);
        return;
    };
    let sh = shares(&m.segments, lo, hi);
    // Runs of columns of one (quantized) colour become one rectangle.
    let level = |s: f64| (s * 16.0).round() as u32;
    let mut c = 0;
    while c < COLUMNS {
        let mut d = c + 1;
        while d < COLUMNS && level(sh[d]) == level(sh[c]) {
            d += 1;
        }
        let fill = colour(f64::from(level(sh[c])) / 16.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{top}" width="{}" height="{ROW}" fill="{fill}"/>"#,
            LEFT + c,
            d - c
        );
        c = d;
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{top}" width="{COLUMNS}" height="{ROW}" class="frame"/>"#
    );
    let below = top + ROW + 14;
    let _ = writeln!(svg, r#"<text x="{LEFT}" y="{below}">{lo:#x}</text>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{below}" text-anchor="end">{hi:#x} ({} shown)</text>"#,
        LEFT + COLUMNS,
        human((hi - lo) as u128)
    );
    let n = m.segments.iter().filter(|s| s.2).count();
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}">allocated: {n}</text><text x="10" y="{}">free segments: {}</text>"#,
        top + 18,
        top + 34,
        m.segments.len() - n
    );
}

fn histogram(svg: &mut String, bins: &[Bin], y: usize) {
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}" class="h">free segments by size, at the end</text>"#,
        y + 14
    );
    let max = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    if bins.is_empty() {
        let _ = writeln!(svg, r#"<text x="{LEFT}" y="{}">no free segment</text>"#, y + 38);
    }
    for (i, b) in bins.iter().enumerate() {
        let top = y + 24 + i * (BAR + 4);
        let w = ((b.count as f64 / max as f64) * (COLUMNS - 80) as f64).ceil().max(1.0) as usize;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LEFT}" y="{top}" width="{w}" height="{BAR}" class="bar"/><text x="{}" y="{}">{}</text>"#,
            LEFT - 8,
            top + 12,
            escape(&b.label()),
            LEFT + w + 6,
            top + 12,
            b.count
        );
    }
}

/// The whole picture as SVG text.
pub fn render(title: &str, maps: &[Map], bins: &[Bin]) -> String {
    let maps_h = maps.len() * (ROW + 46);
    let hist_h = 34 + bins.len().max(1) * (BAR + 4);
    let (w, h) = (LEFT + COLUMNS + 20, 70 + maps_h + hist_h);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        "<style>.h{{font-weight:bold}} .frame{{fill:none;stroke:#555}} .bar{{fill:#c8553d}}</style>"
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="10" y="20" class="h" font-size="14">{}</text>"#, escape(title));
    let _ = writeln!(
        svg,
        r##"<rect x="10" y="32" width="12" height="12" fill="{}"/><text x="28" y="42">allocated</text><rect x="100" y="32" width="12" height="12" fill="{}"/><text x="118" y="42">free (maps span the allocations' extent; a column's shade is its allocated share)</text>"##,
        colour(1.0),
        colour(0.0)
    );
    let mut y = 56;
    for m in maps {
        map(&mut svg, m, y);
        y += ROW + 46;
    }
    histogram(&mut svg, bins, y);
    svg.push_str("</svg>\n");
    svg
}

/// Write the picture to `path`.
pub fn write(path: &Path, title: &str, maps: &[Map], bins: &[Bin]) -> Result<(), String> {
    std::fs::write(path, render(title, maps, bins))
        .map_err(|e| format!("writing {}: {e}", crate::input::shown(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_segments_across_columns() {
        let segs = [(0, 400, true), (400, 800, false), (800, 1600, true)];
        let s = shares(&segs, 0, 1600);
        assert_eq!(s.len(), COLUMNS);
        assert!((s[0] - 1.0).abs() < 1e-9 && s[300].abs() < 1e-9 && (s[799] - 1.0).abs() < 1e-9);
        assert_eq!(window(&segs), Some((0, 1600)));
        assert_eq!(window(&[(5, 9, false)]), Some((5, 9)));
    }

    #[test]
    fn renders_maps_and_bars() {
        let maps = [Map { title: "a <b>".into(), segments: vec![(0, 10, true), (10, 30, false)] }];
        let bins = [Bin { from: 16, to: 32, count: 3 }];
        let svg = render("t", &maps, &bins);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("[16 B, 32 B)"));
        let empty = render("t", &[Map { title: "e".into(), segments: vec![] }], &[]);
        assert!(empty.contains("empty arena") && empty.contains("no free segment"));
    }

    #[test]
    fn escapes_what_xml_cannot_hold() {
        assert_eq!(escape("a\u{1}b\u{1b}[31m&\u{ffff}\t"), "a\u{fffd}b\u{fffd}[31m&amp;\u{fffd}\t");
        assert_eq!(escape("caf\u{e9} \u{7f}"), "caf\u{e9} \u{7f}");
    }
}
