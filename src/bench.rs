//! `sync-run bench`: how fast a verified run is, measured against the two things that
//! bound it — the broker's own limits and the original protocol.
//!
//! Each run is a fresh `sync-run --slaves N --json` process (what a user runs; its peak
//! memory is its own), so the figures are end to end: connections, declarations, turns,
//! results, verification and cleanup. Beside them, in the same session and against the
//! same broker, it measures with lapin:
//!
//! * the broker round trip: publish on one connection → delivery on another, one message
//!   in flight (the floor of a turn, which needs two such hops: grant, then append);
//! * the raw fanout rate: one publisher, N queues, auto-ack consumers (the ceiling of
//!   deliveries per second: a run with `--no-relay` delivers about 2·N² messages; relayed
//!   and batched, about N² / (turns per batch)).
//!
//! Each N runs with every topology asked for (`--topologies`) and window (`--windows`),
//! and, up to `--no-relay-max`, once with `--no-relay` (the original protocol's shape).
//!
//! and, when Python and pika are there, the original protocol (`seed_protocol.py`) for
//! the same N. Nothing is installed: what is missing is reported as skipped.

use crate::amqp::{BrokerError, BrokerUrl, Topology, connect};
use anyhow::{Context, Result, bail};
use comfy_table::{ContentArrangement, Table};
use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
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
    /// The original protocol's script; `None` skips it.
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

#[derive(Debug, Clone, Serialize)]
pub struct SeedFigures {
    pub n: usize,
    pub wall_s: Option<f64>,
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
            None => SeedFigures {
                n,
                wall_s: None,
                note: "skipped: no seed_protocol.py (--seed-script)".into(),
            },
            Some(_) if n > cfg.seed_max => SeedFigures {
                n,
                wall_s: None,
                note: format!(
                    "skipped: N > --seed-max {} (one Python process per worker)",
                    cfg.seed_max
                ),
            },
            Some(script) => {
                eprintln!("bench: original protocol, N={n}");
                seed_once(script, &cfg.url, n, cfg.timeout).await
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

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_ms.len() as f64 * p).ceil() as usize).clamp(1, sorted_ms.len()) - 1;
    sorted_ms[i]
}

fn machine() -> String {
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

/// Publish → consume between two connections, one message in flight; sorted, in ms.
async fn broker_rtt(url: &BrokerUrl, timeout: Duration, samples: usize) -> Result<Vec<f64>> {
    let a = connect(url, "sync-run bench rtt publisher", timeout).await?;
    let b = connect(url, "sync-run bench rtt consumer", timeout).await?;
    let pch = a.create_channel().await.map_err(amqp("channel"))?;
    let cch = b.create_channel().await.map_err(amqp("channel"))?;
    let q = cch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp("declaring the round-trip queue"))?;
    let qname = q.name().as_str().to_owned();
    let mut consumer = cch
        .basic_consume(
            qname.as_str().into(),
            "rtt".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp("consuming"))?;
    let body = vec![b'x'; 160];
    let warmup = 50;
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples + warmup {
        let t = Instant::now();
        pch.basic_publish(
            "".into(),
            qname.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .map_err(amqp("publishing"))?;
        match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(_))) => {}
            _ => bail!("no delivery within 10 s during the round-trip measurement"),
        }
        if i >= warmup {
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let _ = a.close(200, "bench done".into()).await;
    let _ = b.close(200, "bench done".into()).await;
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn amqp(what: &'static str) -> impl Fn(lapin::Error) -> BrokerError {
    move |e| BrokerError::Amqp {
        context: what.into(),
        source: e,
    }
}

/// One publisher, `queues` queues on a fanout exchange, auto-ack consumers spread over a
/// few connections: deliveries per second from the first publish to the last delivery.
async fn fanout_rate(
    url: &BrokerUrl,
    timeout: Duration,
    queues: usize,
    messages: usize,
) -> Result<f64> {
    let exchange = format!("sync-run.bench-{:08x}.fanout", rand::random::<u32>());
    let publisher = connect(url, "sync-run bench fanout publisher", timeout).await?;
    let pch = publisher.create_channel().await.map_err(amqp("channel"))?;
    pch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(amqp("declaring the bench exchange"))?;
    let conns = queues.clamp(1, 8);
    let mut consumers = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let conn = connect(url, "sync-run bench fanout consumer", timeout).await?;
        let ch = conn.create_channel().await.map_err(amqp("channel"))?;
        for _ in (c..queues).step_by(conns) {
            let q = ch
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(amqp("declaring a bench queue"))?;
            ch.queue_bind(
                q.name().clone(),
                exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("binding a bench queue"))?;
            let mut consumer = ch
                .basic_consume(
                    q.name().clone(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(amqp("consuming a bench queue"))?;
            tasks.spawn(async move {
                let mut got = 0;
                while got < messages {
                    match consumer.next().await {
                        Some(Ok(_)) => got += 1,
                        _ => break,
                    }
                }
                (got, Instant::now())
            });
        }
        consumers.push(conn);
    }
    let body = vec![b'x'; 160];
    let t0 = Instant::now();
    for _ in 0..messages {
        pch.basic_publish(
            exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .map_err(amqp("publishing"))?;
    }
    let mut delivered = 0usize;
    let mut last = t0;
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            j = tasks.join_next() => match j {
                Some(Ok((got, at))) => { delivered += got; last = last.max(at); }
                Some(Err(e)) => bail!("a bench consumer failed: {e}"),
                None => break,
            },
            _ = &mut deadline => bail!("raw fanout: not all deliveries arrived within 120 s"),
        }
    }
    let _ = pch
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = publisher.close(200, "bench done".into()).await;
    for c in consumers {
        let _ = c.close(200, "bench done".into()).await;
    }
    if delivered < queues * messages {
        bail!(
            "raw fanout: {delivered} of {} deliveries arrived",
            queues * messages
        );
    }
    Ok(delivered as f64 / last.duration_since(t0).as_secs_f64().max(1e-9))
}

/// How a run is made: topology, window, relay.
type Variant = (Topology, usize, bool);

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
    let (topology, window, relay) = v;
    // The URL goes through the environment, not argv, where `ps` would show its password.
    let out = tokio::process::Command::new(&cfg.exe)
        .env("AMQP_URL", cfg.url.as_str())
        .arg("--connect-timeout")
        .arg(format!("{}ms", cfg.connect_timeout.as_millis()))
        .args(["--json", "--seed", "1", "--slaves"])
        .arg(n.to_string())
        .args(flags(v).split(' '))
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

/// The original protocol for N workers, if Python can run it here.
async fn seed_once(script: &Path, url: &BrokerUrl, n: usize, timeout: Duration) -> SeedFigures {
    let skipped = |note: String| SeedFigures {
        n,
        wall_s: None,
        note,
    };
    let pika = tokio::process::Command::new("python3")
        .args(["-c", "import pika"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match pika {
        Ok(s) if s.success() => {}
        Ok(_) => return skipped("skipped: python3 has no pika (pip install pika)".into()),
        Err(e) => return skipped(format!("skipped: cannot run python3: {e}")),
    }
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(n.to_string())
        .arg(url.as_str())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, child).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return skipped(format!("failed to start: {e}")),
        Err(_) => return skipped(format!("did not finish within {} s", timeout.as_secs())),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let wall = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("wall_s="))
        .and_then(|v| v.parse::<f64>().ok());
    let identical = text.contains("identical=True");
    match wall {
        Some(w) => SeedFigures {
            n,
            wall_s: Some(w),
            note: if identical {
                "lists identical".into()
            } else {
                "lists NOT identical".into()
            },
        },
        None => skipped(format!(
            "no wall time in its output (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The readable summary.
pub fn render(r: &BenchReport) -> String {
    let mut s = format!(
        "machine: {}\nbroker round trip (publish → deliver, two connections): p50 {:.3} ms, p99 {:.3} ms\n",
        r.machine, r.broker_rtt_p50_ms, r.broker_rtt_p99_ms
    );
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "N",
            "topology",
            "window",
            "relay",
            "verified",
            "wall s",
            "per turn ms",
            "turn p50/p99 ms",
            "turn / RTT",
            "deliveries/s",
            "÷ raw fanout",
            "peak RSS MiB",
            "original s",
            "speedup",
        ]);
    for run in &r.runs {
        let fan = r.fanout.iter().find(|f| f.queues == run.n);
        let seed = r.original.iter().find(|o| o.n == run.n);
        t.add_row(vec![
            run.n.to_string(),
            run.topology.to_string(),
            run.window.to_string(),
            if run.relay { "yes" } else { "no" }.into(),
            if run.verified { "yes" } else { "NO" }.into(),
            format!("{:.3}", run.wall_s),
            format!("{:.2}", run.per_turn_ms),
            format!("{:.0}/{:.0}", run.turn_p50_ms, run.turn_p99_ms),
            format!("{:.2}", run.per_turn_ms / r.broker_rtt_p50_ms),
            format!("{:.0}", run.deliveries_per_s),
            fan.map_or("-".into(), |f| {
                format!("{:.2}", run.deliveries_per_s / f.deliveries_per_s)
            }),
            format!("{:.1}", run.peak_rss_mib),
            seed.and_then(|o| o.wall_s)
                .map_or("-".into(), |w| format!("{w:.3}")),
            seed.and_then(|o| o.wall_s)
                .map_or("-".into(), |w| format!("{:.1}×", w / run.wall_s)),
        ]);
    }
    s += &format!("{t}\n");
    for f in &r.fanout {
        s += &format!(
            "raw fanout to {} queues: {:.0} deliveries/s ({} messages)\n",
            f.queues, f.deliveries_per_s, f.messages
        );
    }
    for o in r.original.iter().filter(|o| o.wall_s.is_none()) {
        s += &format!("original protocol N={}: {}\n", o.n, o.note);
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
