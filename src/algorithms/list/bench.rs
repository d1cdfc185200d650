//! `sync-run bench`: how fast a verified run is, measured against the two things that
//! bound it — the broker's own limits and the original protocol.
//!
//! Each run is a fresh `sync-run --slaves N --json` process (what a user runs; its peak
//! memory is its own), so the figures are end to end: connections, declarations, turns,
//! results, verification and cleanup. Beside them, in the same session and against the
//! same broker, it measures with [`crate::broker::yardstick`]:
//!
//! * the broker round trip: publish on one connection → delivery on another, one message
//!   in flight (the floor of a turn, which needs two such hops: grant, then append);
//! * the raw fanout rate: one publisher, N queues, auto-ack consumers (the ceiling of
//!   deliveries per second: a run with `--no-relay` delivers about 2·N² messages; relayed
//!   and batched, about N² / (turns per batch)).
//!
//! Each N runs with every topology asked for (`--topologies`) and window (`--windows`),
//! and, up to `--no-relay-max`, once with `--no-relay` (the original protocol's shape);
//! and, when `python3` with pika is there, the original protocol itself for the same N:
//! `bench/original_protocol.py` in this repository (found from the current directory or
//! from the binary's place in `target/`, see [`default_original_script`]). Nothing is
//! installed: what is missing is reported in the table as skipped, with the reason.

use crate::bench::{Children, broker_rtt, machine, percentile};
use crate::broker::{BrokerUrl, yardstick};
use crate::contract::Topology;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The broker, this executable and each run's limit.
    pub children: Children,
    /// Worker counts, e.g. 10, 100, 1000.
    pub sizes: Vec<usize>,
    /// `--window` values to run sync-run with (1 = turn by turn).
    pub windows: Vec<usize>,
    /// Topologies to run sync-run with.
    pub topologies: Vec<Topology>,
    /// Up to this N, also a run with `--no-relay` (the original protocol's shape).
    pub no_relay_max: usize,
    /// The original protocol's script (`bench/original_protocol.py`); `None` skips it.
    pub seed_script: Option<PathBuf>,
    /// Run the original protocol only up to this N (one Python process per worker).
    pub seed_max: usize,
    /// Where to write the SVG plot of wall time against N.
    pub plot: Option<PathBuf>,
}

/// One verified run of sync-run.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub n: usize,
    pub topology: Topology,
    pub window: usize,
    /// Appends relayed by the master (the default) or broadcast by the workers.
    pub relay: bool,
    pub verified: bool,
    pub exit_code: i32,
    pub wall_s: f64,
    /// From `start` to `end`: the turns alone.
    pub turns_s: f64,
    /// `turns_s / turns`: the time a turn costs at this window.
    pub per_turn_ms: f64,
    /// Grant published → append received by the master.
    pub turn_p50_ms: f64,
    pub turn_p99_ms: f64,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    pub peak_rss_mib: f64,
}

/// One run of the original protocol (Python + pika), or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct SeedFigures {
    pub n: usize,
    /// Its wall time, when it finished.
    pub wall_s: Option<f64>,
    /// Whether its workers' lists were identical, when it finished.
    pub identical: Option<bool>,
    /// "lists identical", "skipped (…)" or "failed: …".
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutFigures {
    pub queues: usize,
    pub messages: usize,
    pub deliveries_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub schema: &'static str,
    pub broker_rtt_p50_ms: f64,
    pub broker_rtt_p99_ms: f64,
    pub fanout: Vec<FanoutFigures>,
    pub runs: Vec<RunFigures>,
    pub original: Vec<SeedFigures>,
    pub machine: String,
}

/// Runs everything `cfg` asks for, printing progress lines on stderr.
pub async fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    let c = &cfg.children;
    eprintln!("bench: broker round trip ({} samples)", c.rtt_samples);
    let rtt = broker_rtt(&c.url, c.connect_timeout, c.rtt_samples)
        .await
        .context("measuring the broker round trip")?;
    let (rtt_p50, rtt_p99) = (percentile(&rtt, 0.5), percentile(&rtt, 0.99));
    let mut fanout = Vec::new();
    let mut runs = Vec::new();
    let mut original = Vec::new();
    // Whether python3 can import pika: asked once, when the original protocol first runs.
    let mut python: Option<Result<(), String>> = None;
    for &n in &cfg.sizes {
        let messages = (200_000 / n).clamp(50, 5_000);
        eprintln!("bench: raw fanout, {n} queues × {messages} messages");
        let rate = fanout_rate(&c.url, c.connect_timeout, n, messages)
            .await
            .with_context(|| format!("measuring the raw fanout rate to {n} queues"))?;
        fanout.push(FanoutFigures {
            queues: n,
            messages,
            deliveries_per_s: rate,
        });
        let mut variants: Vec<Variant> = cfg
            .topologies
            .iter()
            .flat_map(|&t| cfg.windows.iter().map(move |&w| (t, w, true)))
            .collect();
        if n <= cfg.no_relay_max
            && let Some(&w) = cfg.windows.first()
        {
            variants.push((Topology::Queues, w, false));
        }
        for v in variants {
            eprintln!("bench: sync-run --slaves {n} {}", flags(v));
            let r = sync_run_once(cfg, n, v).await?;
            eprintln!(
                "bench:   {:.3} s, verified: {}, {:.0} deliveries/s",
                r.wall_s, r.verified, r.deliveries_per_s
            );
            runs.push(r);
        }
        let seed = match &cfg.seed_script {
            None => {
                SeedFigures::skipped(n, "skipped (script not found: --seed-script)".to_string())
            }
            Some(_) if n > cfg.seed_max => {
                SeedFigures::skipped(n, format!("skipped (N > --seed-max {})", cfg.seed_max))
            }
            Some(script) => {
                if python.is_none() {
                    python = Some(python_with_pika().await);
                }
                match python.as_ref().and_then(|p| p.as_ref().err()) {
                    Some(why) => SeedFigures::skipped(n, why.clone()),
                    None => {
                        eprintln!("bench: original protocol, N={n} ({})", script.display());
                        let s = seed_once(script, &c.url, n, c.timeout).await;
                        match s.wall_s {
                            Some(w) => eprintln!("bench:   {w:.3} s, {}", s.note),
                            None => eprintln!("bench:   {}", s.note),
                        }
                        s
                    }
                }
            }
        };
        original.push(seed);
    }
    Ok(BenchReport {
        schema: "sync-run/bench/v1",
        broker_rtt_p50_ms: rtt_p50,
        broker_rtt_p99_ms: rtt_p99,
        fanout,
        runs,
        original,
        machine: machine(),
    })
}

/// One publisher, `queues` queues on a fanout exchange, auto-ack consumers spread over a
/// few connections: deliveries per second from the first publish to the last delivery.
async fn fanout_rate(
    url: &BrokerUrl,
    timeout: Duration,
    queues: usize,
    messages: usize,
) -> Result<f64> {
    let f = yardstick::fanout(url, timeout, queues, messages).await?;
    if f.delivered < queues * messages {
        bail!(
            "raw fanout: {} of {} deliveries arrived",
            f.delivered,
            queues * messages
        );
    }
    Ok(f.delivered as f64 / f.elapsed.as_secs_f64().max(1e-9))
}

/// How a run is made: topology, window, relay.
pub(super) type Variant = (Topology, usize, bool);

/// The command-line flags of a variant (also its label).
fn flags((topology, window, relay): Variant) -> String {
    let mut s = format!("--topology {topology} --window {window}");
    if !relay {
        s += " --no-relay";
    }
    s
}

/// One `sync-run --slaves N --json` process; its JSON report gives the figures.
async fn sync_run_once(cfg: &BenchConfig, n: usize, v: Variant) -> Result<RunFigures> {
    sync_run_against(cfg, &cfg.children.url, n, v, &[]).await
}

/// [`sync_run_once`] against `url` (a node, or a cluster's nodes), with `extra` flags
/// (e.g. `--queue-type quorum`).
pub(super) async fn sync_run_against(
    cfg: &BenchConfig,
    url: &BrokerUrl,
    n: usize,
    v: Variant,
    extra: &[&str],
) -> Result<RunFigures> {
    let (topology, window, relay) = v;
    let c = &cfg.children;
    // The URL goes through the environment, not argv, where `ps` would show its password.
    let out = tokio::process::Command::new(&c.exe)
        .env("AMQP_URL", url.as_str())
        .arg("--connect-timeout")
        .arg(format!("{}ms", c.connect_timeout.as_millis()))
        .args(["--json", "--seed", "1", "--slaves"])
        .arg(n.to_string())
        .args(flags(v).split(' '))
        .args(extra)
        .arg("--timeout")
        .arg(c.timeout_arg())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", c.exe.display()))?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "sync-run --slaves {n} printed no JSON report (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let f = |path: &[&str]| -> f64 {
        let mut v = &doc;
        for p in path {
            v = &v[*p];
        }
        v.as_f64().unwrap_or(f64::NAN)
    };
    let wall_s = f(&["timings", "wall_ms"]) / 1000.0;
    let turns_s = f(&["timings", "turns_ms"]) / 1000.0;
    let deliveries = doc["resources"]["deliveries"].as_u64().unwrap_or(0);
    let turns = doc["grant_order"].as_array().map_or(0, |a| a.len());
    Ok(RunFigures {
        n,
        topology,
        window,
        relay,
        verified: doc["verdict"]["verified"].as_bool().unwrap_or(false),
        exit_code: out.status.code().unwrap_or(-1),
        wall_s,
        turns_s,
        per_turn_ms: turns_s * 1000.0 / turns.max(1) as f64,
        turn_p50_ms: f(&["timings", "turn_p50_ms"]),
        turn_p99_ms: f(&["timings", "turn_p99_ms"]),
        deliveries,
        deliveries_per_s: deliveries as f64 / wall_s,
        peak_rss_mib: f(&["resources", "peak_rss_kib"]) / 1024.0,
    })
}

/// Where the original protocol's script lives in the repository.
pub const ORIGINAL_SCRIPT: &str = "bench/original_protocol.py";

/// The default of `--seed-script`: [`ORIGINAL_SCRIPT`] resolved by [`find_original_script`]
/// against the current directory and this executable's place; if it is found nowhere,
/// the bare relative path (and the bench reports the original protocol as skipped).
pub fn default_original_script() -> PathBuf {
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    find_original_script(
        Path::new(ORIGINAL_SCRIPT),
        cwd.as_deref(),
        exe.as_deref(),
        Some(Path::new(env!("CARGO_MANIFEST_DIR"))),
    )
    .unwrap_or_else(|| PathBuf::from(ORIGINAL_SCRIPT))
}

/// The first existing file among `rel` under: the current directory (a clone's root);
/// the repository a binary in `target/` belongs to (`target/release/sync-run`, also
/// `target/<triple>/release/…` and `target/debug/deps/…`); the source tree the binary was
/// built from (for a copy installed elsewhere).
pub fn find_original_script(
    rel: &Path,
    cwd: Option<&Path>,
    exe: Option<&Path>,
    built_from: Option<&Path>,
) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(cwd.map(|d| d.join(rel)));
    if let Some(exe) = exe {
        // exe's ancestors: [exe, target/release, target, repo, …]; the first one named
        // `target` has the repository as its parent.
        let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
        if let Some(repo) = exe
            .ancestors()
            .skip(1)
            .take(4)
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
            .and_then(Path::parent)
        {
            candidates.push(repo.join(rel));
        }
    }
    candidates.extend(built_from.map(|d| d.join(rel)));
    candidates.into_iter().find(|p| p.is_file())
}

impl SeedFigures {
    pub(super) fn skipped(n: usize, note: String) -> Self {
        SeedFigures {
            n,
            wall_s: None,
            identical: None,
            note,
        }
    }

    /// The table's "original s" cell.
    pub(super) fn cell(&self) -> String {
        match (self.wall_s, self.identical) {
            (Some(w), Some(false)) => format!("{w:.3} (lists differ)"),
            (Some(w), _) => format!("{w:.3}"),
            (None, _) if self.note.starts_with("skipped") => self.note.clone(),
            (None, _) => "failed (see below)".into(),
        }
    }
}

/// `Ok` when `python3 -c "import pika"` works, else the reason for the table.
async fn python_with_pika() -> Result<(), String> {
    let status = tokio::process::Command::new("python3")
        .args(["-c", "import pika"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(30), status).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(_)) => Err("skipped (pip install pika)".into()),
        Ok(Err(_)) => Err("skipped (needs python3 + pika)".into()),
        Err(_) => Err("skipped (python3 did not answer in 30 s)".into()),
    }
}

/// What the original protocol's script printed: its last line that starts with
/// `original-protocol ` (or the older `seed-protocol `).
#[derive(Debug, Clone, PartialEq)]
pub enum OriginalLine {
    /// `original-protocol N=10 wall_s=0.512 identical=True`
    Finished {
        n: Option<usize>,
        wall_s: f64,
        identical: bool,
    },
    /// `original-protocol N=10 error=<message>`
    Failed(String),
}

/// Parses the script's stdout; `None` if it printed no such line.
pub fn parse_original_line(stdout: &str) -> Option<OriginalLine> {
    let line = stdout.lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("original-protocol ")
            .or_else(|| l.strip_prefix("seed-protocol "))
    })?;
    // error=… runs to the end of the line, spaces and all.
    if let Some(at) = line.find("error=")
        && (at == 0 || line[..at].ends_with(' '))
    {
        return Some(OriginalLine::Failed(
            line[at + "error=".len()..].trim().into(),
        ));
    }
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    };
    let wall_s = field("wall_s")?.parse::<f64>().ok()?;
    let identical = match field("identical")? {
        "True" | "true" => true,
        "False" | "false" => false,
        _ => return None,
    };
    Some(OriginalLine::Finished {
        n: field("N").and_then(|v| v.parse().ok()),
        wall_s,
        identical,
    })
}

/// The original protocol for N workers (python3 with pika is known to be there). The URL
/// goes through `AMQP_URL`, not argv, where `ps` would show its password. The script
/// enforces `--timeout` itself and cleans up; 30 s later it is killed (its worker
/// processes die with it).
async fn seed_once(script: &Path, url: &BrokerUrl, n: usize, timeout: Duration) -> SeedFigures {
    let failed = |note: String| SeedFigures {
        note: format!("failed: {note}"),
        ..SeedFigures::skipped(n, String::new())
    };
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(n.to_string())
        .arg("--timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .env("AMQP_URL", url.as_str())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout + Duration::from_secs(30), child).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return failed(format!("cannot start python3: {e}")),
        Err(_) => {
            return failed(format!(
                "did not finish within {} s",
                (timeout + Duration::from_secs(30)).as_secs()
            ));
        }
    };
    match parse_original_line(&String::from_utf8_lossy(&out.stdout)) {
        Some(OriginalLine::Finished {
            wall_s, identical, ..
        }) => SeedFigures {
            n,
            wall_s: Some(wall_s),
            identical: Some(identical),
            note: if identical {
                "lists identical".into()
            } else {
                "lists NOT identical".into()
            },
        },
        Some(OriginalLine::Failed(e)) => failed(e),
        None => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            failed(format!(
                "no result line (exit {:?}){}",
                out.status.code(),
                last.map_or(String::new(), |l| format!(": {}", l.trim()))
            ))
        }
    }
}

#[cfg(test)]
#[path = "bench_tests.rs"]
mod tests;
