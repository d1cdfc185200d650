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

use crate::bench::{broker_rtt, machine, percentile};
use crate::broker::{BrokerUrl, yardstick};
use crate::contract::Topology;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub url: BrokerUrl,
    pub connect_timeout: Duration,
    /// Worker counts, e.g. 10, 100, 1000.
    pub sizes: Vec<usize>,
    /// `--window` values to run sync-run with (1 = turn by turn).
    pub windows: Vec<usize>,
    /// Topologies to run sync-run with.
    pub topologies: Vec<Topology>,
    /// Up to this N, also a run with `--no-relay` (the original protocol's shape).
    pub no_relay_max: usize,
    /// The `sync-run` binary to run (normally this one).
    pub exe: PathBuf,
    /// The original protocol's script (`bench/original_protocol.py`); `None` skips it.
    pub seed_script: Option<PathBuf>,
    /// Run the original protocol only up to this N (one Python process per worker).
    pub seed_max: usize,
    pub rtt_samples: usize,
    /// Where to write the SVG plot of wall time against N.
    pub plot: Option<PathBuf>,
    /// Each run's limit.
    pub timeout: Duration,
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
    eprintln!("bench: broker round trip ({} samples)", cfg.rtt_samples);
    let rtt = broker_rtt(&cfg.url, cfg.connect_timeout, cfg.rtt_samples)
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
        let rate = fanout_rate(&cfg.url, cfg.connect_timeout, n, messages)
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
                        let s = seed_once(script, &cfg.url, n, cfg.timeout).await;
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
    sync_run_against(cfg, &cfg.url, n, v, &[]).await
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
    // The URL goes through the environment, not argv, where `ps` would show its password.
    let out = tokio::process::Command::new(&cfg.exe)
        .env("AMQP_URL", url.as_str())
        .arg("--connect-timeout")
        .arg(format!("{}ms", cfg.connect_timeout.as_millis()))
        .args(["--json", "--seed", "1", "--slaves"])
        .arg(n.to_string())
        .args(flags(v).split(' '))
        .args(extra)
        .arg("--timeout")
        .arg(format!("{}s", cfg.timeout.as_secs().max(1)))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", cfg.exe.display()))?;
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
    fn skipped(n: usize, note: String) -> Self {
        SeedFigures {
            n,
            wall_s: None,
            identical: None,
            note,
        }
    }

    /// The table's "original s" cell.
    fn cell(&self) -> String {
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

/// The widest line of the summary.
const MAX_WIDTH: usize = 100;

/// How a run is labelled in the table: its topology, its window when the runs differ in
/// it, and `no-relay` when the workers broadcast their own appends.
fn run_label(run: &RunFigures, show_window: bool) -> String {
    let mut s = run.topology.to_string();
    if show_window {
        s += &format!(" w{}", run.window);
    }
    if !run.relay {
        s += " no-relay";
    }
    s
}

/// 12345.6 → "12,346".
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 { format!("-{out}") } else { out }
}

/// Words wrapped to lines of at most `width` characters, each starting with `indent`
/// after the first.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out += &line;
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() && !line.ends_with(' ') {
            line.push(' ');
        }
        line += word;
    }
    if !line.trim().is_empty() {
        out += &line;
        out.push('\n');
    }
    out
}

/// A plain table: columns two spaces apart, a rule above and below the header and at the
/// end; the columns in `right` right-aligned. Every column is as wide as its widest cell
/// except `wrap_col`, whose cells wrap at word boundaries to keep lines within `width`.
fn grid(
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
    wrap_col: usize,
    width: usize,
) -> String {
    let len = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| len(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(len(cell));
        }
    }
    let others: usize = widths
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != wrap_col)
        .map(|(_, w)| w + 2)
        .sum();
    widths[wrap_col] = widths[wrap_col]
        .min(width.saturating_sub(others))
        .max(len(header[wrap_col]));
    let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let rule = "─".repeat(total) + "\n";
    let line = |cells: &[String]| {
        // Each cell as lines; only the wrapping column has more than one.
        let parts: Vec<Vec<String>> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == wrap_col {
                    wrap(c, widths[i], "").lines().map(str::to_owned).collect()
                } else {
                    vec![c.clone()]
                }
            })
            .collect();
        let height = parts.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut out = String::new();
        for k in 0..height {
            let mut l = String::new();
            for (i, p) in parts.iter().enumerate() {
                let c = p.get(k).map_or("", String::as_str);
                let pad = " ".repeat(widths[i].saturating_sub(len(c)));
                if i > 0 {
                    l += "  ";
                }
                if right.contains(&i) {
                    l += &pad;
                    l += c;
                } else {
                    l += c;
                    l += &pad;
                }
            }
            out += l.trim_end();
            out.push('\n');
        }
        out
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = rule.clone() + &line(&head) + &rule;
    for row in rows {
        out += &line(row);
    }
    out + &rule
}

/// The readable summary: a table that fits in 100 columns, the broker's own figures
/// under it, and a legend.
pub fn render(r: &BenchReport) -> String {
    let mut windows: Vec<usize> = r.runs.iter().map(|x| x.window).collect();
    windows.sort_unstable();
    windows.dedup();
    let show_window = windows.len() > 1;
    let header = [
        "N",
        "run",
        "ok",
        "wall s",
        "turn ms",
        "p50/p99 ms",
        "deliv/s",
        "RSS MiB",
        "original s",
        "speedup",
    ];
    let mut rows = Vec::new();
    for run in &r.runs {
        let seed = r.original.iter().find(|o| o.n == run.n);
        let speedup = match seed {
            Some(o) if o.wall_s.is_some() && run.verified => {
                format!("{:.1}×", o.wall_s.unwrap_or(f64::NAN) / run.wall_s)
            }
            Some(o) if o.note.starts_with("skipped") => "skipped".into(),
            _ => "-".into(),
        };
        rows.push(vec![
            run.n.to_string(),
            run_label(run, show_window),
            if run.verified { "yes" } else { "NO" }.into(),
            format!("{:.3}", run.wall_s),
            format!("{:.2}", run.per_turn_ms),
            format!("{:.0}/{:.0}", run.turn_p50_ms, run.turn_p99_ms),
            thousands(run.deliveries_per_s),
            format!("{:.1}", run.peak_rss_mib),
            seed.map_or("-".into(), SeedFigures::cell),
            speedup,
        ]);
    }
    let w = MAX_WIDTH;
    // Only "original s" wraps (a reason for no figure); the figures never do.
    let t = grid(&header, &rows, &[0, 3, 4, 5, 6, 7], 8, w);
    let mut s = format!("machine: {}\n{t}", r.machine);
    s += &wrap(
        &format!(
            "broker round trip (publish → delivery on another connection, one message in \
             flight): p50 {:.3} ms, p99 {:.3} ms",
            r.broker_rtt_p50_ms, r.broker_rtt_p99_ms
        ),
        w,
        "  ",
    );
    if !r.fanout.is_empty() {
        let rates: Vec<String> = r
            .fanout
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let unit = if i == 0 { " deliveries/s" } else { "" };
                format!(
                    "{}{unit} to {} queues",
                    thousands(f.deliveries_per_s),
                    f.queues
                )
            })
            .collect();
        s += &wrap(
            &format!(
                "raw fanout (one publisher, auto-ack consumers): {}",
                rates.join(", ")
            ),
            w,
            "  ",
        );
    }
    let window = match windows.as_slice() {
        [one] => format!(", every run at --window {one}"),
        _ => ", wN = --window N".into(),
    };
    s += "\n";
    for item in [
        format!(
            "run: topology{window}; no-relay = workers broadcast their own appends (the \
             original protocol's shape)."
        ),
        "ok: verified (all lists identical, every check passed; --json has the exit code). \
         wall s: the whole run, start to cleanup, as a user sees it."
            .into(),
        "turn ms: the turns phase ÷ the turns. p50/p99 ms: one grant's latency, published → \
         its append back at the master. deliv/s: broker deliveries ÷ wall s. RSS MiB: the \
         peak of the sync-run process (it holds every worker)."
            .into(),
        format!(
            "original s: {ORIGINAL_SCRIPT} (Python + pika, one process per worker), same N, \
             same broker. speedup: original s ÷ wall s."
        ),
    ] {
        s += &wrap(&item, w, "  ");
    }
    for o in r
        .original
        .iter()
        .filter(|o| o.wall_s.is_none() && !o.note.starts_with("skipped"))
    {
        s += &wrap(&format!("original protocol N={}: {}", o.n, o.note), w, "  ");
    }
    s
}

/// Wall time against N, log–log: one line per window and one for the original protocol.
pub fn plot(r: &BenchReport, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut variants: Vec<Variant> = r
        .runs
        .iter()
        .map(|x| (x.topology, x.window, x.relay))
        .collect();
    variants.sort_by_key(|&(t, w, relay)| (!relay, t as u8, w));
    variants.dedup();
    for v in variants {
        let pts = r
            .runs
            .iter()
            .filter(|x| (x.topology, x.window, x.relay) == v && x.verified)
            .map(|x| (x.n as f64, x.wall_s))
            .collect();
        let (t, w, relay) = v;
        let label = if relay {
            format!("sync-run, {t}, window {w}")
        } else {
            format!("sync-run, {t}, window {w}, no relay")
        };
        series.push((label, pts));
    }
    series.push((
        "original (Python + pika)".into(),
        r.original
            .iter()
            .filter_map(|o| o.wall_s.map(|w| (o.n as f64, w)))
            .collect(),
    ));
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        bail!("nothing to plot");
    }
    let (xmin, xmax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("sync-run: wall time of a verified run", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            ((xmin * 0.8)..(xmax * 1.25)).log_scale(),
            ((ymin * 0.5)..(ymax * 2.0)).log_scale(),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("workers (N)")
        .y_desc("wall time (s)")
        .draw()
        .map_err(plot_err)?;
    let palette = [&BLUE, &GREEN, &MAGENTA, &CYAN, &BLACK, &RED];
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = if name.starts_with("original") {
            &RED
        } else {
            palette[i % (palette.len() - 1)]
        };
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_result_line() {
        let out = "some noise\noriginal-protocol N=10 wall_s=0.512 identical=True\n";
        assert_eq!(
            parse_original_line(out),
            Some(OriginalLine::Finished {
                n: Some(10),
                wall_s: 0.512,
                identical: true
            })
        );
        assert_eq!(
            parse_original_line("original-protocol N=3 wall_s=12.000 identical=False"),
            Some(OriginalLine::Finished {
                n: Some(3),
                wall_s: 12.0,
                identical: false
            })
        );
        // The script this one replaced printed the same fields under another name.
        assert_eq!(
            parse_original_line("seed-protocol N=100 wall_s=4.234 identical=True\n"),
            Some(OriginalLine::Finished {
                n: Some(100),
                wall_s: 4.234,
                identical: true
            })
        );
        // An error runs to the end of the line.
        assert_eq!(
            parse_original_line(
                "original-protocol N=10 error=timeout (5 s): 3 of 11 processes unfinished\n"
            ),
            Some(OriginalLine::Failed(
                "timeout (5 s): 3 of 11 processes unfinished".into()
            ))
        );
        // The last result line counts.
        assert_eq!(
            parse_original_line(
                "original-protocol N=1 wall_s=9 identical=False\n\
                 original-protocol N=1 wall_s=1 identical=True\n"
            ),
            Some(OriginalLine::Finished {
                n: Some(1),
                wall_s: 1.0,
                identical: true
            })
        );
        for junk in [
            "",
            "Traceback (most recent call last):\n  ImportError: pika",
            "original-protocol N=10 identical=True",
            "original-protocol N=10 wall_s=abc identical=True",
            "original-protocol N=10 wall_s=1.0 identical=maybe",
            "original-protocolN=10 wall_s=1.0 identical=True",
            "original-protocol N=10 my_wall_s=1.0 identical=True",
        ] {
            assert_eq!(parse_original_line(junk), None, "{junk:?}");
        }
    }

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "sync-run-bench-{tag}-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn touch(&self, rel: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"").unwrap();
            p
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn finds_the_original_script_from_a_clone() {
        let d = Scratch::new("find");
        let rel = Path::new(ORIGINAL_SCRIPT);
        let repo = d.0.join("clone");
        let script = d.touch("clone/bench/original_protocol.py");
        let exe = d.touch("clone/target/release/sync-run");
        let elsewhere = d.0.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let find = |cwd: &Path, exe: &Path| find_original_script(rel, Some(cwd), Some(exe), None);

        // From the clone's root.
        assert_eq!(
            find(&repo, Path::new("/nonexistent/sync-run")),
            Some(repo.join(rel))
        );
        // From anywhere, through the binary's place in target/.
        let found = find(&elsewhere, &exe).unwrap();
        assert_eq!(
            found.canonicalize().unwrap(),
            script.canonicalize().unwrap()
        );
        let exe2 = d.touch("clone/target/x86_64-unknown-linux-gnu/release/sync-run");
        assert!(find(&elsewhere, &exe2).is_some());
        let test_exe = d.touch("clone/target/debug/deps/sync_run-0123456789abcdef");
        assert!(find(&elsewhere, &test_exe).is_some());
        // The current directory comes first.
        let other = d.touch("other/bench/original_protocol.py");
        assert_eq!(find(&d.0.join("other"), &exe), Some(other));
        // A binary outside any target/ (installed): the tree it was built from, if any.
        let installed = d.touch("bin/sync-run");
        assert_eq!(find(&elsewhere, &installed), None);
        assert_eq!(
            find_original_script(rel, Some(&elsewhere), Some(&installed), Some(&repo)),
            Some(repo.join(rel))
        );
        assert_eq!(find_original_script(rel, None, None, None), None);
        // A directory of that name is not the script.
        let dir = d.0.join("dirclone");
        std::fs::create_dir_all(dir.join(rel)).unwrap();
        assert_eq!(find(&dir, Path::new("/nonexistent/sync-run")), None);
    }

    #[test]
    fn the_default_script_is_this_repositorys() {
        // Tests run from the package root (cargo sets the current directory), and the
        // test binary sits in target/debug/deps: either way it is found.
        let p = default_original_script();
        assert!(p.is_file(), "{}", p.display());
        assert!(p.ends_with(ORIGINAL_SCRIPT));
    }

    fn figures(n: usize, topology: Topology, relay: bool, wall_s: f64) -> RunFigures {
        RunFigures {
            n,
            topology,
            window: 64,
            relay,
            verified: true,
            exit_code: 0,
            wall_s,
            turns_s: wall_s / 2.0,
            per_turn_ms: 11.3,
            turn_p50_ms: 717.0,
            turn_p99_ms: 1304.0,
            deliveries: 1_000_000,
            deliveries_per_s: 21_954.4,
            peak_rss_mib: 244.7,
        }
    }

    #[test]
    fn the_table_fits_100_columns_and_says_why_a_column_is_empty() {
        let r = BenchReport {
            schema: "sync-run/bench/v1",
            broker_rtt_p50_ms: 0.162,
            broker_rtt_p99_ms: 0.297,
            fanout: vec![
                FanoutFigures {
                    queues: 10,
                    messages: 5000,
                    deliveries_per_s: 93_258.0,
                },
                FanoutFigures {
                    queues: 1000,
                    messages: 200,
                    deliveries_per_s: 49_139.0,
                },
            ],
            runs: vec![
                figures(10, Topology::Queues, true, 0.059),
                figures(10, Topology::Queues, false, 0.053),
                figures(300, Topology::Stream, true, 0.752),
                figures(1000, Topology::Queues, true, 6.842),
                RunFigures {
                    verified: false,
                    exit_code: 1,
                    ..figures(2000, Topology::Stream, true, 600.0)
                },
            ],
            original: vec![
                SeedFigures {
                    n: 10,
                    wall_s: Some(0.16),
                    identical: Some(true),
                    note: "lists identical".into(),
                },
                SeedFigures {
                    n: 300,
                    wall_s: Some(37.0),
                    identical: Some(false),
                    note: "lists NOT identical".into(),
                },
                SeedFigures::skipped(1000, "skipped (pip install pika)".into()),
                SeedFigures {
                    note: "failed: timeout (600 s): 2001 of 2001 processes unfinished".into(),
                    ..SeedFigures::skipped(2000, String::new())
                },
            ],
            machine: "2 cores, a CPU with a rather long model name (R) @ 2.00GHz".into(),
        };
        let text = render(&r);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "{} chars: {line}",
                line.chars().count()
            );
        }
        assert!(text.contains("2.7×"), "{text}"); // 0.16 / 0.059
        // Reasons wrap within their column; figures never do.
        assert!(text.contains("37.000 (lists "), "{text}");
        assert!(text.contains("skipped (pip "), "{text}");
        assert!(text.contains(" install pika)"), "{text}");
        assert!(text.contains("failed (see "), "{text}");
        assert!(text.contains("600.000"), "{text}");
        assert!(
            text.contains("original protocol N=2000: failed: timeout"),
            "{text}"
        );
        assert!(text.contains(" NO "), "{text}");
        assert!(text.contains("queues no-relay"), "{text}");
        assert!(text.contains("21,954"), "{text}");
        assert!(text.contains("93,258 deliveries/s to 10 queues"), "{text}");
        assert!(text.contains("every run at --window 64"), "{text}");
        assert!(!text.contains("÷ raw fanout"), "{text}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(f64::NAN), "-");
    }
}
