//! `sync-run bench rpc`: how long a call's round trip takes, as a ratio of the broker's
//! own one hop measured in the same session (goal: p50 ≤ 2.5× one hop at low load — a
//! call is two hops, the request and the reply, plus the server's turn).
//!
//! Each client count is a fresh `sync-run call bench --check --serve-echo S --clients C
//! --calls K --json` process (what a user runs; its peak memory is its own), verified by
//! its own checks; from its document come the latency percentiles and calls per second.

use super::cli::BenchArgs;
use crate::bench::Children;
use crate::bench::report::{finish, per_size, yes_no};
use crate::cli::session::Session;
use anyhow::{Context, Result};
use serde::Serialize;

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

crate::bench_columns!(Figures, |f| {
    "clients" => f.clients.to_string(),
    "calls" => (f.clients * f.calls).to_string(),
    "servers" => f.servers.to_string(),
    "verified" => yes_no(f.verified),
    "calls/s" => format!("{:.0}", f.calls_per_s),
    "p50 ms" => format!("{:.3}", f.p50_ms),
    "p99 ms" => format!("{:.3}", f.p99_ms),
    "p50 ÷ hop (goal ≤ 2.5 at 1)" => format!("{:.1}×", f.p50_per_hop),
    "p99 ÷ hop" => format!("{:.1}×", f.p99_per_hop),
});

/// `sync-run bench rpc`: the report, printed as every bench prints it.
pub async fn run(s: &Session, a: &BenchArgs) -> i32 {
    finish("rpc", s.global.json, None, measure(s, a).await)
}

async fn measure(s: &Session, a: &BenchArgs) -> Result<Report> {
    let c = &Children::of(&s.broker, a.runs.rtt_samples, a.runs.timeout)?;
    per_size("rpc", c, &a.clients, title, |n, p50| async move {
        eprintln!("bench rpc: {n} clients × {} calls, {} echo servers", a.calls, a.servers);
        let args = [
            "call",
            "bench",
            "--check",
            "--serve-echo",
            &a.servers.to_string(),
            "--clients",
            &n.to_string(),
            "--calls",
            &a.calls.to_string(),
            "--rtt-samples",
            "1",
            "--timeout",
            &c.timeout_arg(),
            "--json",
        ]
        .map(String::from);
        let doc = c
            .json_shown(&args, &format!("call --check, {n} clients"))
            .await?;
        figures(&doc, n, a.calls, a.servers, p50)
    })
    .await
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
