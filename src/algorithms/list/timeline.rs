//! `--report FILE.svg`: a picture of one run, drawn from the master's record.
//!
//! One lane per worker and one for the master, time across. In a worker's lane: a grey
//! dot when it joined, a bar from each grant to its append (labelled `#seq`), a red bar
//! and `#seq evicted` where its lease ran out. In the master's lane: a tick per grant it
//! published. Reading it shows the protocol at work: grants in random order, one bar per
//! worker per round, the pipelining window as overlapping bars, an eviction and the turn
//! that went to someone else.

use super::master::{GrantOutcome, RunRecord};
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

const LANE_PX: u32 = 16;

/// Writes the timeline of `r` as an SVG file.
pub fn write_svg(r: &RunRecord, path: &Path) -> Result<()> {
    let lanes: BTreeMap<u32, usize> = r
        .members
        .iter()
        .enumerate()
        .map(|(i, w)| (*w, i + 1))
        .collect();
    let n_lanes = lanes.len() + 1;
    let end = r.finished_at_ms.max(1) as f64;
    let height = 90 + LANE_PX * n_lanes as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "run {}: {} workers, {} grants, {} evicted",
                r.run_id,
                r.members.len(),
                r.grants.len(),
                r.evicted.len()
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end * 1.02, (n_lanes as f64 - 0.5)..-0.5f64)
        .map_err(err)?;
    let names: BTreeMap<usize, String> = std::iter::once((0, "master".to_string()))
        .chain(lanes.iter().map(|(w, i)| (*i, format!("w{w}"))))
        .collect();
    chart
        .configure_mesh()
        .x_desc("ms since the process started")
        .y_labels(n_lanes.min(200))
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 {
                names.get(&(i as usize)).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .disable_y_mesh()
        .draw()
        .map_err(err)?;
    let label = ("sans-serif", 10).into_font();
    // Joins.
    chart
        .draw_series(r.joined_at_ms.iter().filter_map(|(w, t)| {
            lanes
                .get(w)
                .map(|lane| Circle::new((*t as f64, *lane as f64), 3, BLACK.mix(0.4).filled()))
        }))
        .map_err(err)?;
    for g in &r.grants {
        let Some(&lane) = lanes.get(&g.worker) else {
            continue;
        };
        let y = lane as f64;
        let start = g.granted_at_ms as f64;
        // The master's tick for this grant.
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(start, -0.35), (start, 0.35)],
                BLUE.stroke_width(1),
            )))
            .map_err(err)?;
        let (stop, color, text) = match g.outcome {
            GrantOutcome::Committed { at_ms, value } => {
                (at_ms as f64, BLUE.mix(0.7), format!("#{} = {value}", g.seq))
            }
            GrantOutcome::Evicted { at_ms } => {
                (at_ms as f64, RED.mix(0.8), format!("#{} evicted", g.seq))
            }
            GrantOutcome::Pending => (end, YELLOW.mix(0.8), format!("#{} pending", g.seq)),
        };
        let stop = stop.max(start + end / 1000.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start, y - 0.3), (stop, y + 0.3)],
                color.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (stop + end / 400.0, y - 0.3),
                label.clone(),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the run's timeline: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::list::sim::{self, SimConfig};

    /// A simulated run with evictions renders, and every grant is in the picture.
    #[test]
    fn every_grant_is_drawn() {
        let mut cfg = SimConfig::calm(6);
        cfg.window = 3;
        cfg.crash = 0.05;
        cfg.max_crashes = 2;
        cfg.lease_ms = 50;
        let res = sim::run(7, cfg);
        let r = res.record.expect("the simulated run ends");
        let dir = std::env::temp_dir().join(format!("sync-run-timeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.svg");
        write_svg(&r, &path).expect("renders");
        let svg = std::fs::read_to_string(&path).expect("written");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
            .collect();
        assert!(!r.grants.is_empty());
        for g in &r.grants {
            let want = match g.outcome {
                GrantOutcome::Committed { value, .. } => format!("#{} = {value}", g.seq),
                GrantOutcome::Evicted { .. } => format!("#{} evicted", g.seq),
                GrantOutcome::Pending => format!("#{} pending", g.seq),
            };
            assert!(texts.contains(&want), "grant {want:?} drawn: {texts:?}");
        }
        for w in &r.members {
            assert!(texts.contains(&format!("w{w}")), "lane of worker {w}");
        }
        assert!(texts.contains(&"master".to_owned()));
        let bars = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
        assert!(
            bars > r.grants.len(),
            "a bar per grant (plus the background)"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
