//! `sync-run bench snapshot`: how long a Chandy–Lamport snapshot takes over the broker,
//! beside the broker's own one hop measured in the same session.
//!
//! Each size is a fresh `sync-run snapshot --nodes N --snapshots S --json` process (what
//! a user runs; its peak memory is its own) on a complete graph — N(N−1) channels — with
//! every node transferring while the snapshots are taken (one after another) and taking
//! each message as soon as it arrives (`--max-delay 0`: the latency is the protocol's, not
//! a simulated delay). From its document:
//!
//! * **latency**: `BeginSnapshot` sent → every node's complete state at the master, per
//!   snapshot (p50 and max over the run's snapshots), and in one hops;
//! * **markers**: counted from the nodes' reports, against N(N−1) per snapshot;
//! * **peak memory** of the run's process, and per channel.
//!
//! Goal: N = 100 (9,900 channels) under 1 s; memory linear in channels.

use super::cli::BenchArgs;
use crate::bench::Children;
use crate::bench::report::{finish, mib, per_size, yes_no};
use crate::bench::percentile;
use crate::cli::session::Session;
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub nodes: u32,
    pub channels: u64,
    pub snapshots: u32,
    pub verified: bool,
    pub wall_s: f64,
    pub latency_p50_ms: f64,
    pub latency_max_ms: f64,
    pub latency_per_hop: f64,
    pub markers: u64,
    pub expected_markers: u64,
    pub peak_rss_kib: Option<u64>,
    pub kib_per_channel: Option<f64>,
}

/// The bench's report: the shared head and one [`Figures`] per size.
pub type Report = crate::bench::report::Report<Figures>;

pub async fn run(s: &Session, a: &BenchArgs) -> i32 {
    finish("snapshot", s.global.json, None, measure(s, a).await)
}

crate::bench_columns!(Figures, |f| {
    "N" => f.nodes.to_string(),
    "channels" => f.channels.to_string(),
    "verified" => yes_no(f.verified),
    "latency p50" => format!("{:.1} ms", f.latency_p50_ms),
    "max" => format!("{:.1} ms", f.latency_max_ms),
    "× one hop" => format!("{:.0}×", f.latency_per_hop),
    "markers (expected)" => format!("{} ({})", f.markers, f.expected_markers),
    "peak RSS" => mib(f.peak_rss_kib, 1),
    "KiB/channel" => f.kib_per_channel.map_or("-".into(), |k| format!("{k:.2}")),
});

async fn measure(s: &Session, a: &BenchArgs) -> Result<Report> {
    let c = &Children::of(&s.broker, a.runs.rtt_samples, a.runs.timeout)?;
    per_size("snapshot", c, &a.sizes, Report::head, |n, p50| async move {
        eprintln!("bench snapshot: N = {n}, {} snapshots", a.snapshots);
        let args = [
            "snapshot",
            "--nodes",
            &n.to_string(),
            "--transfers",
            "50",
            "--step",
            "5ms",
            "--max-delay",
            "0",
            "--snapshots",
            &a.snapshots.to_string(),
            "--seed",
            "1",
            "--json",
            "--timeout",
            &c.timeout_arg(),
        ]
        .map(String::from);
        let what = format!("snapshot --nodes {n}");
        let doc = c.json_shown(&args, &what).await?;
        let f = figures(&doc, n, a.snapshots)?;
        Ok(Figures {
            latency_per_hop: f.latency_p50_ms / p50,
            ..f
        })
    })
    .await
}

/// The figures of one run's JSON document.
pub fn figures(doc: &serde_json::Value, n: u32, snapshots: u32) -> Result<Figures> {
    let mut lat: Vec<f64> = doc["master"]["snapshots"]
        .as_array()
        .context("the document has no snapshots")?
        .iter()
        .filter_map(|s| Some((s["collected_ms"].as_u64()? - s["begun_ms"].as_u64()?) as f64))
        .collect();
    if lat.is_empty() {
        bail!("the run of N = {n} collected no snapshot");
    }
    lat.sort_by(f64::total_cmp);
    let channels = u64::from(n) * u64::from(n - 1);
    let rss = doc["peak_rss_kib"].as_u64();
    Ok(Figures {
        nodes: n,
        channels,
        snapshots,
        verified: doc["verdict"]["verified"] == true,
        wall_s: doc["wall_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        latency_p50_ms: percentile(&lat, 0.5),
        latency_max_ms: lat.last().copied().unwrap_or(f64::NAN),
        latency_per_hop: f64::NAN,
        markers: doc["markers"].as_u64().unwrap_or(0),
        expected_markers: channels * u64::from(snapshots),
        peak_rss_kib: rss,
        kib_per_channel: rss.map(|k| k as f64 / channels as f64),
    })
}
