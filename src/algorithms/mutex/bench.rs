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

use crate::bench::{broker_rtt, machine, percentile};
use crate::broker::BrokerUrl;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: BrokerUrl,
    pub connect_timeout: Duration,
    pub sizes: Vec<u32>,
    pub entries: u32,
    pub rtt_samples: usize,
    pub timeout: Duration,
    pub exe: PathBuf,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub machine: String,
    pub one_hop_p50_ms: f64,
    pub one_hop_p99_ms: f64,
    pub runs: Vec<Figures>,
}

impl crate::bench::report::BenchReport for Report {
    fn render(&self) -> String {
        render(self)
    }
    fn verified(&self) -> bool {
        self.runs.iter().all(|f| f.verified)
    }
}

pub async fn run(cfg: &Config) -> Result<Report> {
    eprintln!("bench mutex: broker one hop ({} samples)", cfg.rtt_samples);
    let hop = broker_rtt(&cfg.url, cfg.connect_timeout, cfg.rtt_samples)
        .await
        .context("measuring the broker's one-hop time")?;
    let (p50, p99) = (percentile(&hop, 0.5), percentile(&hop, 0.99));
    let mut runs = Vec::new();
    for &n in &cfg.sizes {
        eprintln!("bench mutex: N = {n}, K = {}", cfg.entries);
        let mut f = once(cfg, n).await?;
        f.handover_per_hop = f.handover_ms / p50;
        runs.push(f);
    }
    Ok(Report {
        schema: "sync-run/bench-mutex/v1",
        machine: machine(),
        one_hop_p50_ms: p50,
        one_hop_p99_ms: p99,
        runs,
    })
}

async fn once(cfg: &Config, n: u32) -> Result<Figures> {
    let out = tokio::process::Command::new(&cfg.exe)
        .args([
            "mutex",
            "--processes",
            &n.to_string(),
            "--entries",
            &cfg.entries.to_string(),
            "--hold",
            "0",
            "--json",
            "--timeout",
            &format!("{}s", cfg.timeout.as_secs().max(1)),
        ])
        .env("AMQP_URL", cfg.url.as_str())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("starting sync-run mutex")?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("sync-run mutex -n {n} printed no JSON report"))?;
    figures(&doc, n, cfg.entries)
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

/// The human table.
pub fn render(r: &Report) -> String {
    let mut t = comfy_table::Table::new();
    t.set_header(vec![
        "N",
        "entries",
        "verified",
        "wall s",
        "entries/s",
        "handover ms",
        "÷ one hop",
        "msgs/entry (2(N-1))",
        "peak MiB",
    ]);
    for f in &r.runs {
        t.add_row(vec![
            f.processes.to_string(),
            (f.processes * f.entries).to_string(),
            if f.verified { "yes" } else { "NO" }.to_string(),
            format!("{:.2}", f.wall_s),
            format!("{:.0}", f.entries_per_s),
            format!("{:.3}", f.handover_ms),
            format!("{:.1}×", f.handover_per_hop),
            format!(
                "{:.1} ({})",
                f.messages_per_entry, f.expected_messages_per_entry
            ),
            f.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        ]);
    }
    format!(
        "sync-run bench mutex — {}\nbroker one hop (publish → delivery on another connection): p50 {:.3} ms, p99 {:.3} ms\n{t}\n",
        r.machine, r.one_hop_p50_ms, r.one_hop_p99_ms
    )
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
