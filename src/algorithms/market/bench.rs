//! `sync-run bench market`: lookup→purchase latency, success rate and messages per
//! lookup of the market over the broker, beside the broker's own one hop measured in the
//! same session.
//!
//! Each run is a fresh `sync-run market --json` process (what a user runs; its peak
//! memory is its own): 6 peers on a ring with hop count 2 (the course's setting; its
//! original measured 26 s a lookup and 40 % success), and larger markets on `random:4`
//! with hop count 3 ([`settings`]). Reported: lookups, success rate, lookup→reply
//! and lookup→purchase p50 / p99 (the buyers' clocks; a purchase includes the reply
//! window), lookup messages per lookup against the flooding bound, every check verified.
//!
//! Goal: 6 peers under 10 ms p50 per purchase; 1,000 peers verified.

use super::cli::BenchArgs;
use crate::bench::{broker_rtt, child_json, machine, percentile};
use crate::cli::session::Session;
use anyhow::{Context, Result};
use serde::Serialize;

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub peers: u32,
    pub buyers: u32,
    pub graph: String,
    pub hop_count: u32,
    pub reply_window_ms: u64,
    pub verified: bool,
    pub lookups: u64,
    pub purchases: u64,
    pub success_rate: f64,
    pub lookup_to_reply_p50_ms: Option<f64>,
    pub lookup_to_purchase_p50_ms: Option<f64>,
    pub lookup_to_purchase_p99_ms: Option<f64>,
    pub lookup_messages_per_lookup: f64,
    pub flooding_bound_per_lookup: f64,
    pub reply_messages_per_lookup: f64,
    pub wall_ms: u64,
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

pub async fn run(s: &Session, a: &BenchArgs) -> i32 {
    let out = crate::bench::report::Output {
        json: s.global.json,
        json_out: a.json_out.as_deref(),
    };
    crate::bench::report::finish("market", out, measure(s, a).await)
}

impl crate::bench::report::BenchReport for Report {
    fn render(&self) -> String {
        render(self)
    }
    fn verified(&self) -> bool {
        self.runs.iter().all(|f| f.verified)
    }
}

/// The settings of a run of `n` peers: (graph, hop count, reply window ms, lookups per
/// buyer, buyers). The course's ring for 6 and fewer (half of them buyers); `random:4`
/// with hop count 3 beyond, a reply window that grows with the market (every buyer's
/// flood lands on two cores at once), half the peers buyers at 100 and a tenth at 1,000.
fn settings(n: u32, lookups: u32) -> (String, u32, u64, u32, u32) {
    if n <= 6 {
        ("ring".into(), 2, 5, lookups, (n / 2).max(1))
    } else if n <= 100 {
        ("random:4".into(), 3, 100, lookups.min(5), n / 2)
    } else {
        ("random:4".into(), 3, 200, lookups.min(3), (n / 10).max(1))
    }
}

async fn child(s: &Session, a: &BenchArgs, n: u32) -> Result<Figures> {
    let (graph, hop_count, window, lookups, buyers) = settings(n, a.lookups);
    let args: Vec<String> = [
        "market",
        "--json",
        "--peers",
        &n.to_string(),
        "--buyers",
        &buyers.to_string(),
        "--graph",
        &graph,
        "--hop-count",
        &hop_count.to_string(),
        "--lookups",
        &lookups.to_string(),
        "--reply-window",
        &format!("{window}ms"),
        "--seed",
        &a.seed.to_string(),
        "--run-timeout",
        &format!("{}s", a.timeout.as_secs().max(1)),
    ]
    .map(String::from)
    .to_vec();
    eprintln!(
        "bench market: {n} peers ({buyers} buyers) on {graph}, hop count {hop_count}, {lookups} lookups a buyer, reply window {window} ms"
    );
    let doc = child_json(&s.broker.url, &args, &format!("{n} peers")).await?;
    let f = &doc["figures"];
    Ok(Figures {
        peers: n,
        buyers,
        graph,
        hop_count,
        reply_window_ms: window,
        verified: doc["verdict"]["verified"] == true,
        lookups: f["lookups"].as_u64().unwrap_or(0),
        purchases: f["purchases"].as_u64().unwrap_or(0),
        success_rate: f["success_rate"].as_f64().unwrap_or(f64::NAN),
        lookup_to_reply_p50_ms: f["lookup_to_reply_p50_ms"].as_f64(),
        lookup_to_purchase_p50_ms: f["lookup_to_purchase_p50_ms"].as_f64(),
        lookup_to_purchase_p99_ms: f["lookup_to_purchase_p99_ms"].as_f64(),
        lookup_messages_per_lookup: f["lookup_messages_per_lookup"].as_f64().unwrap_or(f64::NAN),
        flooding_bound_per_lookup: f["flooding_bound_per_lookup"].as_f64().unwrap_or(f64::NAN),
        reply_messages_per_lookup: f["reply_messages_per_lookup"].as_f64().unwrap_or(f64::NAN),
        wall_ms: doc["wall_ms"].as_u64().unwrap_or(0),
        peak_rss_kib: doc["peak_rss_kib"].as_u64(),
    })
}

async fn measure(s: &Session, a: &BenchArgs) -> Result<Report> {
    eprintln!(
        "bench market: broker one hop ({} samples)",
        a.rtt_samples.max(1)
    );
    let hop = broker_rtt(
        &s.broker.url,
        s.global.connect_timeout,
        a.rtt_samples.max(1),
    )
    .await
    .context("measuring the broker's one-hop time")?;
    let mut runs = Vec::new();
    for &n in &a.peers {
        runs.push(child(s, a, n).await?);
    }
    Ok(Report {
        schema: "sync-run/bench-market/v1",
        machine: machine(),
        one_hop_p50_ms: percentile(&hop, 0.5),
        one_hop_p99_ms: percentile(&hop, 0.99),
        runs,
    })
}

/// The human table.
pub fn render(r: &Report) -> String {
    let mut t = comfy_table::Table::new();
    t.set_header(vec![
        "peers",
        "buyers",
        "graph",
        "hops",
        "window",
        "verified",
        "lookups",
        "success",
        "→reply p50",
        "→purchase p50",
        "p99",
        "lookup msgs/lookup",
        "flooding bound",
        "reply msgs",
        "wall",
        "peak RSS",
    ]);
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
    for f in &r.runs {
        t.add_row(vec![
            f.peers.to_string(),
            f.buyers.to_string(),
            f.graph.clone(),
            f.hop_count.to_string(),
            format!("{} ms", f.reply_window_ms),
            if f.verified { "yes" } else { "NO" }.to_string(),
            f.lookups.to_string(),
            format!("{:.0} %", f.success_rate * 100.0),
            ms(f.lookup_to_reply_p50_ms),
            ms(f.lookup_to_purchase_p50_ms),
            ms(f.lookup_to_purchase_p99_ms),
            format!("{:.1}", f.lookup_messages_per_lookup),
            format!("{:.1}", f.flooding_bound_per_lookup),
            format!("{:.1}", f.reply_messages_per_lookup),
            format!("{:.1} s", f.wall_ms as f64 / 1000.0),
            f.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
        ]);
    }
    format!(
        "sync-run bench market on {}\nbroker one hop: p50 {:.3} ms, p99 {:.3} ms (a purchase is at least the reply window plus a buy and its answer)\n{t}\n",
        r.machine, r.one_hop_p50_ms, r.one_hop_p99_ms
    )
}
