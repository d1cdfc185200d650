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

/// What every bench's measured runs share: the broker they go to (and its connect
/// timeout), this very executable that each run is a child process of (so that its peak
/// memory is its own), each run's time limit, and how many one-hop samples every figure is
/// measured against. One piece, so that the benches resolve and clamp them the same way.
#[derive(Debug, Clone)]
pub struct Children {
    pub url: BrokerUrl,
    pub connect_timeout: Duration,
    /// The `sync-run` binary to run (normally this one).
    pub exe: std::path::PathBuf,
    /// Broker one-hop samples (at least 1).
    pub rtt_samples: usize,
    /// Each run's time limit.
    pub timeout: Duration,
}

impl Children {
    /// Runs of this executable against `broker`, with `rtt_samples` (at least 1) one-hop
    /// samples and `timeout` a run.
    pub fn of(
        broker: &crate::broker::Broker,
        rtt_samples: usize,
        timeout: Duration,
    ) -> Result<Self> {
        use anyhow::Context as _;
        Ok(Children {
            url: broker.url.clone(),
            connect_timeout: broker.connect_timeout,
            exe: std::env::current_exe().context("finding its own executable")?,
            rtt_samples: rtt_samples.max(1),
            timeout,
        })
    }

    /// The time limit as a run's option takes it: whole seconds, at least one (`300s`).
    pub fn timeout_arg(&self) -> String {
        format!("{}s", self.timeout.as_secs().max(1))
    }

    /// The broker's one hop for `alg`'s bench: publish → delivery times, sorted, in ms
    /// (announced on stderr first, as every bench does).
    pub async fn one_hop(&self, alg: &str) -> Result<Vec<f64>> {
        use anyhow::Context as _;
        eprintln!("bench {alg}: broker one hop ({} samples)", self.rtt_samples);
        broker_rtt(&self.url, self.connect_timeout, self.rtt_samples)
            .await
            .context("measuring the broker's one-hop time")
    }

    /// Runs `sync-run ARGS` as a child process, as a user would, and returns the JSON
    /// document it prints. Its stderr is kept, to say why when it printed no document.
    pub async fn json(&self, args: &[String], what: &str) -> Result<serde_json::Value> {
        use anyhow::Context as _;
        let out = self.spawn(args, std::process::Stdio::piped()).await?;
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

    /// Like [`Children::json`], but the child's stderr (its progress) goes to ours, so
    /// that a long run shows where it is.
    pub async fn json_shown(&self, args: &[String], what: &str) -> Result<serde_json::Value> {
        use anyhow::Context as _;
        let out = self.spawn(args, std::process::Stdio::inherit()).await?;
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("sync-run {what} printed no JSON report ({})", out.status))
    }

    /// The child `sync-run ARGS`, to its end; the URL goes through the environment, not
    /// argv, where `ps` would show its password.
    async fn spawn(
        &self,
        args: &[String],
        stderr: std::process::Stdio,
    ) -> Result<std::process::Output> {
        use anyhow::Context as _;
        tokio::process::Command::new(&self.exe)
            .args(args)
            .env("AMQP_URL", self.url.as_str())
            .stdin(std::process::Stdio::null())
            .stderr(stderr)
            .output()
            .await
            .with_context(|| format!("starting sync-run {}", args.first().map_or("", |a| a)))
    }
}
