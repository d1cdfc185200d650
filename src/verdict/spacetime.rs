//! Space-time diagrams: the classic picture of a distributed computation, for any
//! algorithm.
//!
//! A horizontal lane per process, its events as dots placed by a *logical* position (a
//! Lamport time, or any order consistent with happened-before: wall-clock time would make
//! a run look different every time for the same causality), an arrow per message from its
//! send to its receive, and optional bars on a lane (a critical section from enter to
//! exit). An algorithm fills the plain data model [`Diagram`]; this module knows nothing
//! about clocks or locks.
//!
//! The SVG is written by hand (as the list agreement's timeline is not): a few element
//! kinds, every text escaped, so tests can read it back with an XML parser.

use anyhow::Context;
use std::fmt::Write as _;
use std::path::Path;

/// One event: a dot on lane `lane` at logical position `pos`, labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct DEvent {
    pub lane: usize,
    pub pos: f64,
    pub label: String,
}

/// An interval on one lane (from `from_pos` to `to_pos`), labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub lane: usize,
    pub from_pos: f64,
    pub to_pos: f64,
    pub label: String,
}

/// What to draw. `arrows` are pairs of indices into `events` (send, receive); an index out
/// of range is skipped, as is an event on a lane that does not exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagram {
    pub title: String,
    pub lanes: Vec<String>,
    pub events: Vec<DEvent>,
    pub arrows: Vec<(usize, usize)>,
    pub bars: Vec<Bar>,
}

const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 60.0;
const LANE: f64 = 70.0;
/// Pixels per logical unit: wide enough for a label, narrowed for long runs so the picture
/// stays under [`MAX_PLOT`] pixels wide.
const UNIT: f64 = 60.0;
const MAX_PLOT: f64 = 6000.0;

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The diagram as an SVG document.
pub fn render(d: &Diagram) -> String {
    let positions = d
        .events
        .iter()
        .map(|e| e.pos)
        .chain(d.bars.iter().flat_map(|b| [b.from_pos, b.to_pos]))
        .filter(|p| p.is_finite());
    let (min, max) = positions.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p), hi.max(p))
    });
    let (min, span) = if min.is_finite() {
        (min, (max - min).max(1.0))
    } else {
        (0.0, 1.0)
    };
    let unit = UNIT.min(MAX_PLOT / span).max(0.5);
    let width = LEFT + span * unit + RIGHT;
    let height = TOP + LANE * d.lanes.len().max(1) as f64 + 20.0;
    let x = |pos: f64| LEFT + (if pos.is_finite() { pos } else { min } - min) * unit;
    let y = |lane: usize| TOP + LANE * lane as f64 + LANE / 2.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
    );
    s += r##"<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#c0392b"/></marker></defs>
"##;
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    let _ = writeln!(
        s,
        r#"<text class="title" x="{LEFT}" y="26" font-size="16">{}</text>"#,
        escape(&d.title)
    );
    for (i, name) in d.lanes.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<line class="lane" x1="{LEFT}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="#999" stroke-width="1"/>"##,
            y = y(i),
            x2 = width - RIGHT / 2.0
        );
        let _ = writeln!(
            s,
            r#"<text class="lane-name" x="10" y="{:.1}" font-size="14">{}</text>"#,
            y(i) + 5.0,
            escape(name)
        );
    }
    for b in d.bars.iter().filter(|b| b.lane < d.lanes.len()) {
        let (x1, x2) = (x(b.from_pos), x(b.to_pos));
        let _ = writeln!(
            s,
            r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="12" fill="#2e86c1" fill-opacity="0.35"/>"##,
            x1.min(x2),
            y(b.lane) - 6.0,
            (x2 - x1).abs().max(2.0)
        );
        let _ = writeln!(
            s,
            r#"<text class="bar-label" x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            x1.min(x2),
            y(b.lane) + 20.0,
            escape(&b.label)
        );
    }
    let placed = |i: usize| d.events.get(i).filter(|e| e.lane < d.lanes.len());
    for &(from, to) in &d.arrows {
        let (Some(a), Some(b)) = (placed(from), placed(to)) else {
            continue;
        };
        let _ = writeln!(
            s,
            r##"<line class="msg" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c0392b" stroke-width="1.2" marker-end="url(#head)"/>"##,
            x(a.pos),
            y(a.lane),
            x(b.pos),
            y(b.lane)
        );
    }
    for e in d.events.iter().filter(|e| e.lane < d.lanes.len()) {
        let (cx, cy) = (x(e.pos), y(e.lane));
        let _ = writeln!(
            s,
            r#"<circle class="event" cx="{cx:.1}" cy="{cy:.1}" r="4" fill="black"/>"#
        );
        // Tilted so the labels of neighbouring events overlap less.
        let _ = writeln!(
            s,
            r#"<text class="event-label" x="{lx:.1}" y="{ly:.1}" font-size="9" transform="rotate(-30 {lx:.1} {ly:.1})">{}</text>"#,
            escape(&e.label),
            lx = cx + 3.0,
            ly = cy - 8.0
        );
    }
    s += "</svg>\n";
    s
}

/// Writes [`render`]'s SVG to `path`.
pub fn write(d: &Diagram, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, render(d))
        .with_context(|| format!("writing the space-time diagram to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Diagram {
        let ev = |lane, pos: f64, label: &str| DEvent {
            lane,
            pos,
            label: label.to_owned(),
        };
        Diagram {
            title: "run <r1> & \"friends\"".into(),
            lanes: vec!["P1".into(), "P2".into(), "P<3>".into()],
            events: vec![
                ev(0, 1.0, "e1 L=1 [1,0,0]"),
                ev(0, 2.0, "e2 →P2 L=2 [2,0,0]"),
                ev(1, 3.0, "e1 ←P1 L=3 [2,1,0]"),
                ev(2, 1.0, "a<b & c>d"),
                // On no lane: skipped, and so is the arrow to it.
                ev(7, 1.0, "lost"),
            ],
            arrows: vec![(1, 2), (1, 4), (0, 99)],
            bars: vec![Bar {
                lane: 1,
                from_pos: 3.0,
                to_pos: 5.0,
                label: "CS #1 'x'".into(),
            }],
        }
    }

    #[test]
    fn renders_well_formed_svg_with_every_element_and_escaped_text() {
        let svg = render(&small());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let count = |tag: &str, class: &str| {
            doc.descendants()
                .filter(|n| n.has_tag_name(tag) && n.attribute("class") == Some(class))
                .count()
        };
        assert_eq!(count("circle", "event"), 4);
        assert_eq!(count("line", "msg"), 1);
        assert_eq!(count("line", "lane"), 3);
        assert_eq!(count("rect", "bar"), 1);
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        for want in [
            "run <r1> & \"friends\"",
            "P<3>",
            "a<b & c>d",
            "CS #1 'x'",
            "e2 →P2 L=2 [2,0,0]",
        ] {
            assert!(texts.contains(&want), "{want:?} in {texts:?}");
        }
        assert!(svg.contains("a&lt;b &amp; c&gt;d"));
    }

    #[test]
    fn empty_and_odd_diagrams_still_render() {
        let mut d = Diagram::default();
        assert!(roxmltree::Document::parse(&render(&d)).is_ok());
        d.lanes = vec!["P1".into()];
        d.events.push(DEvent {
            lane: 0,
            pos: f64::NAN,
            label: "nan\u{1}".into(),
        });
        assert!(roxmltree::Document::parse(&render(&d)).is_ok());
    }
}
