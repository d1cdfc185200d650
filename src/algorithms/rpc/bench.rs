//! `sync-run bench rpc`: how long a call's round trip takes, as a ratio of the broker's
//! own one hop measured in the same session (goal: p50 ≤ 2.5× one hop at low load — a
//! call is two hops, the request and the reply, plus the server's turn).
//!
//! Each client count is a fresh `sync-run call bench --check --serve-echo S --clients C
//! --calls K --json` process (what a user runs; its peak memory is its own), verified by
//! its own checks; from its document come the latency percentiles and calls per second.

use crate::bench::child_json_shown;
use crate::bench::report::{Run, one_hop, yes_no};
use crate::broker::BrokerUrl;
use anyhow::{Context, Result};
use serde::Serialize;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: BrokerUrl,
    pub connect_timeout: Duration,
    pub clients: Vec<u32>,
    pub calls: u32,
    pub servers: u32,
    pub rtt_samples: usize,
    pub timeout: Duration,
}

/// One client count's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub clients: u32,
    pub calls: u32,
    pub servers: u32,
    pub verified: bool,
    pub calls_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p50_per_hop: f64,
    pub p99_per_hop: f64,
}

/// The bench's report: the shared head and one [`Figures`] per client count.
pub type Report = crate::bench::report::Report<Figures>;

impl Run for Figures {
    const HEADER: &'static [&'static str] = &[
        "clients",
        "calls",
        "servers",
        "verified",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "p50 ÷ hop (goal ≤ 2.5 at 1)",
        "p99 ÷ hop",
    ];
    fn verified(&self) -> bool {
        self.verified
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.clients.to_string(),
            (self.clients * self.calls).to_string(),
            self.servers.to_string(),
            yes_no(self.verified),
            format!("{:.0}", self.calls_per_s),
            format!("{:.3}", self.p50_ms),
            format!("{:.3}", self.p99_ms),
            format!("{:.1}×", self.p50_per_hop),
            format!("{:.1}×", self.p99_per_hop),
        ]
    }
}

pub async fn run(cfg: &Config) -> Result<Report> {
    let exe = std::env::current_exe().context("finding its own executable")?;
    let hop = one_hop("rpc", &cfg.url, cfg.connect_timeout, cfg.rtt_samples).await?;
    let p50 = crate::bench::percentile(&hop, 0.5);
    let mut runs = Vec::new();
    for &c in &cfg.clients {
        eprintln!("bench rpc: {c} clients × {} calls, {} echo servers", cfg.calls, cfg.servers);
        let args = [
            "call",
            "bench",
            "--check",
            "--serve-echo",
            &cfg.servers.to_string(),
            "--clients",
            &c.to_string(),
            "--calls",
            &cfg.calls.to_string(),
            "--rtt-samples",
            "1",
            "--timeout",
            &format!("{}s", cfg.timeout.as_secs().max(1)),
            "--json",
        ]
        .map(String::from);
        let doc = child_json_shown(&exe, &cfg.url, &args, &format!("call --check, {c} clients")).await?;
        runs.push(figures(&doc, c, cfg.calls, cfg.servers, p50)?);
    }
    Ok(Report::new("rpc", &hop, (), runs, title))
}

/// The lines above the table.
fn title(r: &Report) -> String {
    format!(
        "sync-run bench rpc — {}\nbroker one hop (publish → delivery on another connection): p50 {:.3} ms, p99 {:.3} ms",
        r.machine, r.one_hop_p50_ms, r.one_hop_p99_ms
    )
}

/// The figures of one check run's document, beside this session's one hop `hop_p50`.
pub fn figures(doc: &serde_json::Value, clients: u32, calls: u32, servers: u32, hop_p50: f64) -> Result<Figures> {
    let p50 = doc["latency_ms"]["p50"]
        .as_f64()
        .context("the check run reported no latency")?;
    let p99 = doc["latency_ms"]["p99"].as_f64().unwrap_or(f64::NAN);
    Ok(Figures {
        clients,
        calls,
        servers,
        verified: doc["verdict"]["verified"] == true,
        calls_per_s: doc["calls_per_s"].as_f64().unwrap_or(f64::NAN),
        p50_ms: p50,
        p99_ms: p99,
        p50_per_hop: p50 / hop_p50,
        p99_per_hop: p99 / hop_p50,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_a_check_document() {
        let doc = serde_json::json!({
            "verdict": {"verified": true},
            "latency_ms": {"p50": 1.0, "p99": 3.0},
            "calls_per_s": 900.0,
        });
        let f = figures(&doc, 4, 25, 2, 0.5).expect("figures");
        assert!(f.verified);
        assert!((f.p50_per_hop - 2.0).abs() < 1e-9);
        assert!((f.p99_per_hop - 6.0).abs() < 1e-9);
        assert!(figures(&serde_json::json!({}), 1, 1, 1, 0.5).is_err());
    }
}
