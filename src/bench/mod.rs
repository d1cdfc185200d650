//! What every benchmark shares: the broker's own one-hop time measured in the same run
//! (the yardstick every figure is a ratio of), percentiles, the machine's description and
//! the process's peak memory.

pub mod report;

use crate::broker::BrokerUrl;
use crate::broker::yardstick::round_trips;
use anyhow::Result;
use std::time::Duration;

/// Percentiles live with the verdict (pure: checkers compute figures too).
pub use crate::verdict::percentile;

/// `2 cores, <CPU model>`.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {cpu}")
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux only).
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Resident set size of this process now (Linux only).
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Publish → consume between two connections, one message in flight; sorted, in ms
/// (measured by [`crate::broker::yardstick::round_trips`]).
pub async fn broker_rtt(url: &BrokerUrl, timeout: Duration, samples: usize) -> Result<Vec<f64>> {
    Ok(round_trips(url, timeout, samples).await?)
}

/// Runs `sync-run ARGS` (this very executable) against `url` as a child process, as a
/// user would, and returns the JSON document it prints (its peak memory is its own). Its
/// stderr is kept, to say why when it printed no document.
pub async fn child_json(url: &BrokerUrl, args: &[String], what: &str) -> Result<serde_json::Value> {
    use anyhow::Context as _;
    let exe = std::env::current_exe().context("finding its own executable")?;
    let out = spawn(&exe, url, args, std::process::Stdio::piped()).await?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        format!(
            "sync-run ({what}) printed no JSON report ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
    })
}

/// Like [`child_json`] with the executable `exe`, but the child's stderr (its progress)
/// goes to ours, so that a long run shows where it is.
pub async fn child_json_shown(
    exe: &std::path::Path,
    url: &BrokerUrl,
    args: &[String],
    what: &str,
) -> Result<serde_json::Value> {
    use anyhow::Context as _;
    let out = spawn(exe, url, args, std::process::Stdio::inherit()).await?;
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("sync-run {what} printed no JSON report ({})", out.status))
}

async fn spawn(
    exe: &std::path::Path,
    url: &BrokerUrl,
    args: &[String],
    stderr: std::process::Stdio,
) -> Result<std::process::Output> {
    use anyhow::Context as _;
    tokio::process::Command::new(exe)
        .args(args)
        .env("AMQP_URL", url.as_str())
        .stdin(std::process::Stdio::null())
        .stderr(stderr)
        .output()
        .await
        .with_context(|| format!("starting sync-run {}", args.first().map_or("", |a| a)))
}
