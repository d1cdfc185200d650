//! `sync-run bench market`: lookup→purchase latency, success rate and messages per
//! lookup of the market over the broker, beside the broker's own one hop measured in the
//! same session.
//!
//! Each run is a fresh `sync-run market --json` process (what a user runs; its peak
//! memory is its own): 6 peers on a ring with hop count 2 (the course's setting; its
//! original measured 26 s a lookup and 40 % success), and larger markets on `random:4`
//! with hop count 3 ([`setting`]). Reported: lookups, success rate, lookup→reply
//! and lookup→purchase p50 / p99 (the buyers' clocks; a purchase includes the reply
//! window), lookup messages per lookup against the flooding bound, every check verified.
//!
//! Goal: 6 peers under 10 ms p50 per purchase; 1,000 peers verified.

use super::cli::BenchArgs;
use crate::bench::Children;
use crate::bench::report::{finish, mib, ms, per_size, yes_no};
use crate::cli::session::Session;
use anyhow::Result;
use serde::Serialize;

/// How a run of the bench is set up ([`setting`]): the market's size and shape, which the
/// run is started with and its row shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub peers: u32,
    pub buyers: u32,
    pub graph: String,
    pub hop_count: u32,
    pub reply_window_ms: u64,
    /// Lookups a buyer makes (`--lookups`); the row shows the lookups the run made.
    #[serde(skip)]
    pub lookups_per_buyer: u32,
}

/// One run's figures: its setting, then what its document said.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    #[serde(flatten)]
    pub setting: Setting,
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
    finish("market", s.global.json, a.json_out.as_deref(), measure(s, a).await)
}

crate::bench_columns!(Figures, |f| {
    "peers" => f.setting.peers.to_string(),
    "buyers" => f.setting.buyers.to_string(),
    "graph" => f.setting.graph.clone(),
    "hops" => f.setting.hop_count.to_string(),
    "window" => format!("{} ms", f.setting.reply_window_ms),
    "verified" => yes_no(f.verified),
    "lookups" => f.lookups.to_string(),
    "success" => format!("{:.0} %", f.success_rate * 100.0),
    "→reply p50" => ms(f.lookup_to_reply_p50_ms, 1),
    "→purchase p50" => ms(f.lookup_to_purchase_p50_ms, 1),
    "p99" => ms(f.lookup_to_purchase_p99_ms, 1),
    "lookup msgs/lookup" => format!("{:.1}", f.lookup_messages_per_lookup),
    "flooding bound" => format!("{:.1}", f.flooding_bound_per_lookup),
    "reply msgs" => format!("{:.1}", f.reply_messages_per_lookup),
    "wall" => format!("{:.1} s", f.wall_ms as f64 / 1000.0),
    "peak RSS" => mib(f.peak_rss_kib, 0),
});

/// The setting of a run of `n` peers, `lookups` a buyer at the most. The course's ring for
/// 6 and fewer (half of them buyers); `random:4` with hop count 3 beyond, a reply window
/// that grows with the market (every buyer's flood lands on two cores at once), half the
/// peers buyers at 100 and a tenth at 1,000.
fn setting(n: u32, lookups: u32) -> Setting {
    let (graph, hop_count, reply_window_ms, lookups_per_buyer, buyers) = if n <= 6 {
        ("ring", 2, 5, lookups, (n / 2).max(1))
    } else if n <= 100 {
        ("random:4", 3, 100, lookups.min(5), n / 2)
    } else {
        ("random:4", 3, 200, lookups.min(3), (n / 10).max(1))
    };
    Setting {
        peers: n,
        buyers,
        graph: graph.into(),
        hop_count,
        reply_window_ms,
        lookups_per_buyer,
    }
}

async fn child(c: &Children, a: &BenchArgs, n: u32) -> Result<Figures> {
    let setting = setting(n, a.lookups);
    let Setting {
        buyers,
        ref graph,
        hop_count,
        reply_window_ms: window,
        lookups_per_buyer: lookups,
        ..
    } = setting;
    let args: Vec<String> = [
        "market",
        "--json",
        "--peers",
        &n.to_string(),
        "--buyers",
        &buyers.to_string(),
        "--graph",
        graph,
        "--hop-count",
        &hop_count.to_string(),
        "--lookups",
        &lookups.to_string(),
        "--reply-window",
        &format!("{window}ms"),
        "--seed",
        &a.seed.to_string(),
        "--run-timeout",
        &c.timeout_arg(),
    ]
    .map(String::from)
    .to_vec();
    eprintln!(
        "bench market: {n} peers ({buyers} buyers) on {graph}, hop count {hop_count}, {lookups} lookups a buyer, reply window {window} ms"
    );
    let doc = c.json(&args, &format!("{n} peers")).await?;
    let f = &doc["figures"];
    Ok(Figures {
        setting,
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
    let c = &Children::of(&s.broker, a.runs.rtt_samples, a.runs.timeout)?;
    per_size("market", c, &a.peers, title, |n, _| child(c, a, n)).await
}

/// The lines above the table.
fn title(r: &Report) -> String {
    format!(
        "{} (a purchase is at least the reply window plus a buy and its answer)",
        r.head()
    )
}
