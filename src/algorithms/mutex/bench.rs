//! `sync-run bench mutex`: how fast verified mutual exclusion is over the broker, as
//! ratios of the broker's own one-hop time measured in the same session.
//!
//! Each size is a fresh `sync-run mutex --processes N --entries K --hold 0 --json`
//! process (what a user runs; its peak memory is its own). From the reports it returns:
//!
//! * **entries per second**: N·K over the span from the first entry to the last exit;
//! * **handover**: with `--hold 0` the sections follow one another, so the mean time from
//!   one process's exit to the next one's entry is that span over N·K − 1 — the algorithm's
//!   critical path: a deferred reply (one hop) when the next in line was waiting;
//! * **messages per entry**: requests and replies counted by the processes (2(N−1));
//! * **peak memory** of the run's process.
//!
//! The one-hop time is [`crate::bench::broker_rtt`]: publish on one connection, delivery
//! on another, one message in flight. Goal: handover within 3× one hop at N = 10.

use super::cli::BenchArgs;
use crate::bench::Children;
use crate::bench::report::{finish, per_size, yes_no};
use crate::cli::session::Session;
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub processes: u32,
    pub entries: u32,
    pub verified: bool,
    pub wall_s: f64,
    pub entries_per_s: f64,
    pub handover_ms: f64,
    pub handover_per_hop: f64,
    pub messages_per_entry: f64,
    pub expected_messages_per_entry: u32,
    pub peak_rss_kib: Option<u64>,
}

/// The bench's report: the shared head and one [`Figures`] per size.
pub type Report = crate::bench::report::Report<Figures>;

crate::bench_columns!(Figures, |f| {
    "N" => f.processes.to_string(),
    "entries" => (f.processes * f.entries).to_string(),
    "verified" => yes_no(f.verified),
    "wall s" => format!("{:.2}", f.wall_s),
    "entries/s" => format!("{:.0}", f.entries_per_s),
    "handover ms" => format!("{:.3}", f.handover_ms),
    "÷ one hop" => format!("{:.1}×", f.handover_per_hop),
    "msgs/entry (2(N-1))" => format!("{:.1} ({})", f.messages_per_entry, f.expected_messages_per_entry),
    "peak MiB" => f.peak_rss_kib.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
});

pub async fn run(s: &Session, a: &BenchArgs) -> i32 {
    finish("mutex", s.global.json, None, measure(s, a).await)
}

async fn measure(s: &Session, a: &BenchArgs) -> Result<Report> {
    let c = &Children::of(&s.broker, a.runs.rtt_samples, a.runs.timeout)?;
    per_size("mutex", c, &a.sizes, title, |n, p50| async move {
        eprintln!("bench mutex: N = {n}, K = {}", a.entries);
        let f = once(c, n, a.entries).await?;
        Ok(Figures {
            handover_per_hop: f.handover_ms / p50,
            ..f
        })
    })
    .await
}

/// The lines above the table.
fn title(r: &Report) -> String {
    format!(
        "sync-run bench mutex — {}\nbroker one hop (publish → delivery on another connection): p50 {:.3} ms, p99 {:.3} ms",
        r.machine, r.one_hop_p50_ms, r.one_hop_p99_ms
    )
}

async fn once(c: &Children, n: u32, entries: u32) -> Result<Figures> {
    let args = [
        "mutex",
        "--processes",
        &n.to_string(),
        "--entries",
        &entries.to_string(),
        "--hold",
        "0",
        "--json",
        "--timeout",
        &c.timeout_arg(),
    ]
    .map(String::from);
    let doc = c.json_shown(&args, &format!("mutex -n {n}")).await?;
    figures(&doc, n, entries)
}

/// The figures of one run's JSON document.
pub fn figures(doc: &serde_json::Value, n: u32, k: u32) -> Result<Figures> {
    let reports = doc["reports"]
        .as_array()
        .context("the report has no process reports")?;
    let mut first_enter = u64::MAX;
    let mut last_exit = 0u64;
    let mut messages = 0u64;
    let mut sections = 0u64;
    for r in reports {
        for x in r["executions"].as_array().into_iter().flatten() {
            first_enter = first_enter.min(x["enter_ms"].as_u64().unwrap_or(u64::MAX));
            last_exit = last_exit.max(x["exit_ms"].as_u64().unwrap_or(0));
            sections += 1;
        }
        messages += r["counts"]["requests_sent"].as_u64().unwrap_or(0)
            + r["counts"]["replies_sent"].as_u64().unwrap_or(0);
    }
    if sections == 0 || last_exit < first_enter {
        bail!("the run of N = {n} reported no critical section");
    }
    let span_ms = (last_exit - first_enter).max(1) as f64;
    Ok(Figures {
        processes: n,
        entries: k,
        verified: doc["verdict"]["verified"] == true,
        wall_s: doc["wall_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        entries_per_s: sections as f64 / (span_ms / 1000.0),
        handover_ms: span_ms / (sections.saturating_sub(1).max(1)) as f64,
        handover_per_hop: f64::NAN,
        messages_per_entry: messages as f64 / sections as f64,
        expected_messages_per_entry: 2 * (n - 1),
        peak_rss_kib: doc["peak_rss_kib"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_a_report() {
        let doc = serde_json::json!({
            "verified": true,
            "wall_ms": 500,
            "peak_rss_kib": 2048,
            "reports": [
                {"executions": [{"enter_ms": 10, "exit_ms": 10}, {"enter_ms": 30, "exit_ms": 30}],
                 "counts": {"requests_sent": 2, "replies_sent": 2}},
                {"executions": [{"enter_ms": 20, "exit_ms": 20}, {"enter_ms": 40, "exit_ms": 40}],
                 "counts": {"requests_sent": 2, "replies_sent": 2}}
            ]
        });
        let f = figures(&doc, 2, 2).expect("figures");
        assert_eq!(f.messages_per_entry, 2.0);
        assert_eq!(f.expected_messages_per_entry, 2);
        assert!((f.handover_ms - 10.0).abs() < 1e-9);
        assert!((f.entries_per_s - 4.0 / 0.03).abs() < 1e-6);
        assert!(figures(&serde_json::json!({"reports": []}), 2, 2).is_err());
    }
}
