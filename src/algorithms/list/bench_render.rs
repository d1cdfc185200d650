//! What `sync-run bench` shows of its figures: the table (fitted to 100 columns) and the
//! SVG plot of wall time against N. Apart from the running ([`super::bench`]): it reads a
//! finished [`BenchReport`] and measures nothing.

use super::bench::{BenchReport, ORIGINAL_SCRIPT, RunFigures, SeedFigures, Variant};
use anyhow::{Result, bail};
use std::path::Path;

/// The widest line of the summary.
const MAX_WIDTH: usize = 100;

/// How a run is labelled in the table: its topology, its window when the runs differ in
/// it, and `no-relay` when the workers broadcast their own appends.
fn run_label(run: &RunFigures, show_window: bool) -> String {
    let mut s = run.topology.to_string();
    if show_window {
        s += &format!(" w{}", run.window);
    }
    if !run.relay {
        s += " no-relay";
    }
    s
}

/// 12345.6 → "12,346".
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 { format!("-{out}") } else { out }
}

/// Words wrapped to lines of at most `width` characters, each starting with `indent`
/// after the first.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out += &line;
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() && !line.ends_with(' ') {
            line.push(' ');
        }
        line += word;
    }
    if !line.trim().is_empty() {
        out += &line;
        out.push('\n');
    }
    out
}

/// A plain table: columns two spaces apart, a rule above and below the header and at the
/// end; the columns in `right` right-aligned. Every column is as wide as its widest cell
/// except `wrap_col`, whose cells wrap at word boundaries to keep lines within `width`.
fn grid(
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
    wrap_col: usize,
    width: usize,
) -> String {
    let len = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| len(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(len(cell));
        }
    }
    let others: usize = widths
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != wrap_col)
        .map(|(_, w)| w + 2)
        .sum();
    widths[wrap_col] = widths[wrap_col]
        .min(width.saturating_sub(others))
        .max(len(header[wrap_col]));
    let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let rule = "─".repeat(total) + "\n";
    let line = |cells: &[String]| {
        // Each cell as lines; only the wrapping column has more than one.
        let parts: Vec<Vec<String>> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == wrap_col {
                    wrap(c, widths[i], "").lines().map(str::to_owned).collect()
                } else {
                    vec![c.clone()]
                }
            })
            .collect();
        let height = parts.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut out = String::new();
        for k in 0..height {
            let mut l = String::new();
            for (i, p) in parts.iter().enumerate() {
                let c = p.get(k).map_or("", String::as_str);
                let pad = " ".repeat(widths[i].saturating_sub(len(c)));
                if i > 0 {
                    l += "  ";
                }
                if right.contains(&i) {
                    l += &pad;
                    l += c;
                } else {
                    l += c;
                    l += &pad;
                }
            }
            out += l.trim_end();
            out.push('\n');
        }
        out
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = rule.clone() + &line(&head) + &rule;
    for row in rows {
        out += &line(row);
    }
    out + &rule
}

/// The readable summary: a table that fits in 100 columns, the broker's own figures
/// under it, and a legend.
pub fn render(r: &BenchReport) -> String {
    let mut windows: Vec<usize> = r.runs.iter().map(|x| x.window).collect();
    windows.sort_unstable();
    windows.dedup();
    let show_window = windows.len() > 1;
    let header = [
        "N",
        "run",
        "ok",
        "wall s",
        "turn ms",
        "p50/p99 ms",
        "deliv/s",
        "RSS MiB",
        "original s",
        "speedup",
    ];
    let mut rows = Vec::new();
    for run in &r.runs {
        let seed = r.original.iter().find(|o| o.n == run.n);
        let speedup = match seed {
            Some(o) if o.wall_s.is_some() && run.verified => {
                format!("{:.1}×", o.wall_s.unwrap_or(f64::NAN) / run.wall_s)
            }
            Some(o) if o.note.starts_with("skipped") => "skipped".into(),
            _ => "-".into(),
        };
        rows.push(vec![
            run.n.to_string(),
            run_label(run, show_window),
            if run.verified { "yes" } else { "NO" }.into(),
            format!("{:.3}", run.wall_s),
            format!("{:.2}", run.per_turn_ms),
            format!("{:.0}/{:.0}", run.turn_p50_ms, run.turn_p99_ms),
            thousands(run.deliveries_per_s),
            format!("{:.1}", run.peak_rss_mib),
            seed.map_or("-".into(), SeedFigures::cell),
            speedup,
        ]);
    }
    let w = MAX_WIDTH;
    // Only "original s" wraps (a reason for no figure); the figures never do.
    let t = grid(&header, &rows, &[0, 3, 4, 5, 6, 7], 8, w);
    let mut s = format!("machine: {}\n{t}", r.machine);
    s += &wrap(
        &format!(
            "broker round trip (publish → delivery on another connection, one message in \
             flight): p50 {:.3} ms, p99 {:.3} ms",
            r.broker_rtt_p50_ms, r.broker_rtt_p99_ms
        ),
        w,
        "  ",
    );
    if !r.fanout.is_empty() {
        let rates: Vec<String> = r
            .fanout
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let unit = if i == 0 { " deliveries/s" } else { "" };
                format!(
                    "{}{unit} to {} queues",
                    thousands(f.deliveries_per_s),
                    f.queues
                )
            })
            .collect();
        s += &wrap(
            &format!(
                "raw fanout (one publisher, auto-ack consumers): {}",
                rates.join(", ")
            ),
            w,
            "  ",
        );
    }
    let window = match windows.as_slice() {
        [one] => format!(", every run at --window {one}"),
        _ => ", wN = --window N".into(),
    };
    s += "\n";
    for item in [
        format!(
            "run: topology{window}; no-relay = workers broadcast their own appends (the \
             original protocol's shape)."
        ),
        "ok: verified (all lists identical, every check passed; --json has the exit code). \
         wall s: the whole run, start to cleanup, as a user sees it."
            .into(),
        "turn ms: the turns phase ÷ the turns. p50/p99 ms: one grant's latency, published → \
         its append back at the master. deliv/s: broker deliveries ÷ wall s. RSS MiB: the \
         peak of the sync-run process (it holds every worker)."
            .into(),
        format!(
            "original s: {ORIGINAL_SCRIPT} (Python + pika, one process per worker), same N, \
             same broker. speedup: original s ÷ wall s."
        ),
    ] {
        s += &wrap(&item, w, "  ");
    }
    for o in r
        .original
        .iter()
        .filter(|o| o.wall_s.is_none() && !o.note.starts_with("skipped"))
    {
        s += &wrap(&format!("original protocol N={}: {}", o.n, o.note), w, "  ");
    }
    s
}

/// Wall time against N, log–log: one line per window and one for the original protocol.
pub fn plot(r: &BenchReport, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut variants: Vec<Variant> = r
        .runs
        .iter()
        .map(|x| (x.topology, x.window, x.relay))
        .collect();
    variants.sort_by_key(|&(t, w, relay)| (!relay, t as u8, w));
    variants.dedup();
    for v in variants {
        let pts = r
            .runs
            .iter()
            .filter(|x| (x.topology, x.window, x.relay) == v && x.verified)
            .map(|x| (x.n as f64, x.wall_s))
            .collect();
        let (t, w, relay) = v;
        let label = if relay {
            format!("sync-run, {t}, window {w}")
        } else {
            format!("sync-run, {t}, window {w}, no relay")
        };
        series.push((label, pts));
    }
    series.push((
        "original (Python + pika)".into(),
        r.original
            .iter()
            .filter_map(|o| o.wall_s.map(|w| (o.n as f64, w)))
            .collect(),
    ));
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        bail!("nothing to plot");
    }
    let (xmin, xmax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("sync-run: wall time of a verified run", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            ((xmin * 0.8)..(xmax * 1.25)).log_scale(),
            ((ymin * 0.5)..(ymax * 2.0)).log_scale(),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("workers (N)")
        .y_desc("wall time (s)")
        .draw()
        .map_err(plot_err)?;
    let palette = [&BLUE, &GREEN, &MAGENTA, &CYAN, &BLACK, &RED];
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = if name.starts_with("original") {
            &RED
        } else {
            palette[i % (palette.len() - 1)]
        };
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::list::bench::FanoutFigures;
    use crate::contract::Topology;

    fn figures(n: usize, topology: Topology, relay: bool, wall_s: f64) -> RunFigures {
        RunFigures {
            n,
            topology,
            window: 64,
            relay,
            verified: true,
            exit_code: 0,
            wall_s,
            turns_s: wall_s / 2.0,
            per_turn_ms: 11.3,
            turn_p50_ms: 717.0,
            turn_p99_ms: 1304.0,
            deliveries: 1_000_000,
            deliveries_per_s: 21_954.4,
            peak_rss_mib: 244.7,
        }
    }

    #[test]
    fn the_table_fits_100_columns_and_says_why_a_column_is_empty() {
        let r = BenchReport {
            schema: "sync-run/bench/v1",
            broker_rtt_p50_ms: 0.162,
            broker_rtt_p99_ms: 0.297,
            fanout: vec![
                FanoutFigures {
                    queues: 10,
                    messages: 5000,
                    deliveries_per_s: 93_258.0,
                },
                FanoutFigures {
                    queues: 1000,
                    messages: 200,
                    deliveries_per_s: 49_139.0,
                },
            ],
            runs: vec![
                figures(10, Topology::Queues, true, 0.059),
                figures(10, Topology::Queues, false, 0.053),
                figures(300, Topology::Stream, true, 0.752),
                figures(1000, Topology::Queues, true, 6.842),
                RunFigures {
                    verified: false,
                    exit_code: 1,
                    ..figures(2000, Topology::Stream, true, 600.0)
                },
            ],
            original: vec![
                SeedFigures {
                    n: 10,
                    wall_s: Some(0.16),
                    identical: Some(true),
                    note: "lists identical".into(),
                },
                SeedFigures {
                    n: 300,
                    wall_s: Some(37.0),
                    identical: Some(false),
                    note: "lists NOT identical".into(),
                },
                SeedFigures::skipped(1000, "skipped (pip install pika)".into()),
                SeedFigures {
                    note: "failed: timeout (600 s): 2001 of 2001 processes unfinished".into(),
                    ..SeedFigures::skipped(2000, String::new())
                },
            ],
            machine: "2 cores, a CPU with a rather long model name (R) @ 2.00GHz".into(),
        };
        let text = render(&r);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "{} chars: {line}",
                line.chars().count()
            );
        }
        // 2.7×: 0.16 / 0.059. Reasons wrap within their column; figures never do.
        let shown = [
            "2.7×",
            "37.000 (lists ",
            "skipped (pip ",
            " install pika)",
            "failed (see ",
            "600.000",
            "original protocol N=2000: failed: timeout",
            " NO ",
            "queues no-relay",
            "21,954",
            "93,258 deliveries/s to 10 queues",
            "every run at --window 64",
        ];
        for want in shown {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert!(!text.contains("÷ raw fanout"), "{text}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(f64::NAN), "-");
    }
}
