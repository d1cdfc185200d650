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
use crate::bench::child_json;
use crate::bench::report::{Run, one_hop, yes_no};
use crate::cli::session::Session;
use anyhow::Result;
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

/// The bench's report: the shared head and one [`Figures`] per run.
pub type Report = crate::bench::report::Report<Figures>;

pub async fn run(s: &Session, a: &BenchArgs) -> i32 {
    let out = crate::bench::report::Output {
        json: s.global.json,
        json_out: a.json_out.as_deref(),
    };
    crate::bench::report::finish("market", out, measure(s, a).await)
}

impl Run for Figures {
    const HEADER: &'static [&'static str] = &[
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
    ];
    fn verified(&self) -> bool {
        self.verified
    }
    fn row(&self) -> Vec<String> {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
        vec![
            self.peers.to_string(),
            self.buyers.to_string(),
            self.graph.clone(),
            self.hop_count.to_string(),
            format!("{} ms", self.reply_window_ms),
            yes_no(self.verified),
            self.lookups.to_string(),
            format!("{:.0} %", self.success_rate * 100.0),
            ms(self.lookup_to_reply_p50_ms),
            ms(self.lookup_to_purchase_p50_ms),
            ms(self.lookup_to_purchase_p99_ms),
            format!("{:.1}", self.lookup_messages_per_lookup),
            format!("{:.1}", self.flooding_bound_per_lookup),
            format!("{:.1}", self.reply_messages_per_lookup),
            format!("{:.1} s", self.wall_ms as f64 / 1000.0),
            self.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
        ]
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
        &format!("{}s", a.runs.timeout.as_secs().max(1)),
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
    let hop = one_hop(
        "market",
        &s.broker.url,
        s.global.connect_timeout,
        a.runs.rtt_samples.max(1),
    )
    .await?;
    let mut runs = Vec::new();
    for &n in &a.peers {
        runs.push(child(s, a, n).await?);
    }
    Ok(Report::new("market", &hop, (), runs, title))
}

/// The lines above the table.
fn title(r: &Report) -> String {
    format!(
        "sync-run bench market on {}\nbroker one hop: p50 {:.3} ms, p99 {:.3} ms (a purchase is at least the reply window plus a buy and its answer)",
        r.machine, r.one_hop_p50_ms, r.one_hop_p99_ms
    )
}
