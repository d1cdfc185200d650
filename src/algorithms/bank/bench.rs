//! `sync-run bench bank`: operations per second and operation latency of the replicated
//! bank over the broker, beside the broker's own one hop measured in the same session.
//!
//! Each run is a fresh `sync-run bank FILE --concurrent --json` process (what a user
//! runs; its peak memory is its own) on a random workload ([`super::input::random`]: a
//! third queries, deposits and withdrawals of 1–100, every call at a random branch):
//!
//! * **low load**: one customer, 200 calls one after another, 3 branches: the time per
//!   operation (first call to last answer ÷ calls), in one hops — a call is four hops
//!   (request, order, ordered, reply);
//! * **load**: `--customers` customers at once, `--ops` operations in all, for each of
//!   `--branches`: operations per second, p50 / p99 latency (the customers' millisecond
//!   clocks), every check verified;
//! * **memory**: with `--no-record`, `--ops` and `--long-ops` operations: peak memory
//!   should not grow with the number of operations.
//!
//! Goal: ≥ 5,000 operations/s with 10 branches; low-load latency within 3× the broker's
//! round trip (two hops).

use super::cli::BenchArgs;
use super::input;
use crate::bench::Children;
use crate::bench::report::{finish, mib, ms, yes_no};
use crate::cli::session::Session;
use anyhow::{Context, Result};
use serde::Serialize;

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub what: String,
    pub branches: u32,
    pub customers: u32,
    pub operations: u64,
    pub recorded: bool,
    pub verified: bool,
    pub ops_per_s: f64,
    /// Low load: time per operation; under load: the customers' p50.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// Resident memory once the input was read: the workload itself.
    pub rss_after_input_kib: Option<u64>,
}

/// What the bank's report adds to the shared head.
#[derive(Debug, Clone, Serialize)]
pub struct Extra {
    /// Low load: time per operation ÷ the broker's round trip (two hops).
    pub low_load_per_round_trip: f64,
}

/// The bench's report: the shared head, [`Extra`] and one [`Figures`] per run.
pub type Report = crate::bench::report::Report<Figures, Extra>;

pub async fn run(s: &Session, a: &BenchArgs) -> i32 {
    finish("bank", s.global.json, a.json_out.as_deref(), measure(s, a).await)
}

crate::bench_columns!(Figures, |f| {
    "run" => f.what.clone(),
    "branches" => f.branches.to_string(),
    "customers" => f.customers.to_string(),
    "operations" => f.operations.to_string(),
    "record" => if f.recorded { "yes" } else { "no" }.to_string(),
    "verified" => yes_no(f.verified),
    "ops/s" => format!("{:.0}", f.ops_per_s),
    "p50" => ms(f.p50_ms, 2),
    "p99" => ms(f.p99_ms, 2),
    "peak RSS" => mib(f.peak_rss_kib, 1),
    "after input" => mib(f.rss_after_input_kib, 1),
});

/// One `sync-run bank` child run of a random workload.
async fn child(
    c: &Children,
    what: &str,
    workload: &input::Input,
    concurrent: bool,
    record: bool,
) -> Result<Figures> {
    let path = std::env::temp_dir().join(format!(
        "sync-run-bench-bank-{}-{what}.json",
        std::process::id()
    ));
    std::fs::write(&path, input::to_json(workload))
        .with_context(|| format!("writing {}", path.display()))?;
    let mut args = vec![
        "bank".to_string(),
        path.display().to_string(),
        "--json".into(),
        "--run-timeout".into(),
        c.timeout_arg(),
    ];
    if concurrent {
        args.push("--concurrent".into());
    }
    if !record {
        args.push("--no-record".into());
    }
    eprintln!(
        "bench bank: {what}: {} branches, {} customers, {} operations{}",
        workload.branches.len(),
        workload.customers.len(),
        workload.operations(),
        if record { "" } else { ", --no-record" }
    );
    let doc = c.json(&args, what).await;
    let _ = std::fs::remove_file(&path);
    let doc = doc?;
    let f = &doc["figures"];
    Ok(Figures {
        what: what.to_owned(),
        branches: workload.branches.len() as u32,
        customers: workload.customers.len() as u32,
        operations: f["operations"].as_u64().unwrap_or(0),
        recorded: record,
        verified: doc["verdict"]["verified"] == true,
        ops_per_s: f["ops_per_s"].as_f64().unwrap_or(f64::NAN),
        p50_ms: f["p50_ms"].as_f64(),
        p99_ms: f["p99_ms"].as_f64(),
        peak_rss_kib: doc["peak_rss_kib"].as_u64(),
        rss_after_input_kib: doc["rss_after_input_kib"].as_u64(),
    })
}

async fn measure(s: &Session, a: &BenchArgs) -> Result<Report> {
    let c = Children::of(&s.broker, a.runs.rtt_samples, a.runs.timeout)?;
    let hop = c.one_hop("bank").await?;
    let p50 = crate::bench::percentile(&hop, 0.5);
    let mut runs = Vec::new();
    // Low load: one customer, one call at a time.
    let low = input::random(3, 1, 200, 1_000_000, a.seed);
    let mut f = child(&c, "low load", &low, false, true).await?;
    let per_op = 1000.0 / f.ops_per_s;
    f.p50_ms = Some(per_op);
    f.p99_ms = None;
    runs.push(f);
    let per = (a.ops / a.customers).max(1);
    for &b in &a.branches {
        let w = input::random(b, a.customers, per, 1_000_000, a.seed);
        runs.push(child(&c, &format!("load {b}"), &w, true, true).await?);
    }
    if let Some(&b) = a.branches.first()
        && a.long_ops > 0
    {
        for ops in [a.ops, a.long_ops] {
            let w = input::random(
                b,
                a.customers,
                (ops / a.customers).max(1),
                1_000_000,
                a.seed,
            );
            runs.push(child(&c, &format!("memory {ops}"), &w, true, false).await?);
        }
    }
    let extra = Extra {
        low_load_per_round_trip: per_op / (2.0 * p50),
    };
    Ok(Report::new("bank", &hop, extra, runs, title))
}

/// The lines above the table.
fn title(r: &Report) -> String {
    format!(
        "{}; low load: {:.2} ms per operation = {:.1}× the round trip (four hops a call)",
        r.head(),
        r.runs.first().and_then(|f| f.p50_ms).unwrap_or(f64::NAN),
        r.extra.low_load_per_round_trip
    )
}
