//! `sync-run mutex` and `sync-run mutex-process`: run the processes, read every report
//! from the results queue, verify, print, exit with the verdict's code.

use super::cli::{MutexArgs, ProcessArgs, Shape};
use super::process::{Process, ProcessConfig};
use super::report::{Outcome, Report};
use super::{diagram, print, protocol};
use crate::broker::BrokerError;
use crate::broker::peers::{PeerRun, run_and_collect};
use crate::cli::session::Session;
use crate::cli::usage_error;
use crate::contract::{Millis, PeerId};
use crate::exit;
use std::time::{Duration, Instant};

/// The JSON document's schema name (docs/mutex.md).
pub const SCHEMA: &str = "sync-run/mutex/v1";

fn config(run_id: &str, id: PeerId, s: &Shape) -> ProcessConfig {
    let mut cfg = ProcessConfig::new(run_id, id, s.processes, s.entries);
    cfg.hold_ms = s.hold.as_millis() as Millis;
    cfg.peer_timeout_ms = s.peer_timeout.as_millis() as Millis;
    cfg.deadline = Some(s.timeout.as_millis() as Millis);
    if let Err(e) = cfg.validate() {
        usage_error(e);
    }
    cfg
}

/// `sync-run mutex`: the run's processes here (all, or `--local`), every report read from
/// the results queue, the five checks.
pub async fn run(s: &Session, a: &MutexArgs) -> i32 {
    let shape = &a.shape;
    let run_id = a.run_id.clone().unwrap_or_else(crate::cli::random_run_id);
    let local: Vec<PeerId> = a
        .local
        .clone()
        .unwrap_or_else(|| (1..=shape.processes).collect());
    if let Some(bad) = local.iter().find(|k| !(1..=shape.processes).contains(*k)) {
        usage_error(format!(
            "--local {bad}: process ids are 1 to --processes {}",
            shape.processes
        ));
    }
    let run = PeerRun {
        alg: "mutex",
        run_id: run_id.clone(),
        processes: shape.processes,
    };
    if !s.global.json && !s.global.quiet && local.len() < shape.processes as usize {
        eprintln!(
            "mutex run {run_id}: processes {:?} here; start the others with `sync-run mutex-process --run-id {run_id} --id K --processes {} --entries {}`",
            local, shape.processes, shape.entries
        );
    }
    let t0 = Instant::now();
    let machines: Vec<(PeerId, Process)> = local
        .iter()
        .map(|k| {
            let p = Process::new(config(&run_id, *k, shape), 0).unwrap_or_else(|e| usage_error(e));
            (*k, p)
        })
        .collect();
    let decode = |b: &[u8]| protocol::decode_report(b, &run_id).ok().map(|r| (r.id, r));
    let collected = run_and_collect(
        &s.broker,
        &run,
        machines,
        t0,
        &s.shutdown,
        shape.timeout + Duration::from_secs(5),
        shape.peer_timeout + Duration::from_secs(2),
        decode,
    )
    .await;
    let wall = t0.elapsed();
    let c = match collected {
        Ok(c) => c,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    let reports: Vec<Report> = c.reports.into_values().collect();
    // A local process whose driver failed reported nothing: the broker's error says why
    // (the verdict would only say "did not report").
    if let Some((k, e)) = c.errors.first()
        && !reports.iter().any(|r| r.id == *k)
    {
        eprintln!("sync-run: process {k}: {e}");
        if reports.is_empty() {
            return s.broker_failure(&run_id, e);
        }
    }
    let verdict = super::verify(&reports, shape.processes, shape.entries);
    let code = s.or_signal(verdict.exit_code());
    if let Some(path) = &a.report {
        let d = diagram::diagram(&format!("mutex run {run_id}"), shape.processes, &reports);
        match crate::verdict::spacetime::write(&d, path) {
            Ok(()) => eprintln!("space-time diagram written to {}", path.display()),
            Err(e) => eprintln!("sync-run: could not write {}: {e:#}", path.display()),
        }
    }
    if s.global.json {
        let doc = serde_json::json!({
            "schema": SCHEMA,
            "run_id": run_id,
            "processes": shape.processes,
            "entries": shape.entries,
            "hold_ms": shape.hold.as_millis() as u64,
            "verified": verdict.verified,
            "checks": verdict.checks,
            "exit_code": code,
            "wall_ms": wall.as_millis() as u64,
            "rejected_on_results": c.rejected,
            "peak_rss_kib": crate::bench::peak_rss_kib(),
            "reports": reports,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if s.global.quiet {
        println!(
            "{}",
            print::summary(&verdict, shape.processes, shape.entries)
        );
    } else {
        println!(
            "mutex run {run_id}: {} processes, {} entries each, hold {} ms, in {:.3} s",
            shape.processes,
            shape.entries,
            shape.hold.as_millis(),
            wall.as_secs_f64()
        );
        print!("{}{}", print::events(&reports), verdict.lines());
        println!(
            "{}",
            print::summary(&verdict, shape.processes, shape.entries)
        );
    }
    code
}

/// `sync-run mutex-process`: one process; prints its own events and how it ended. The
/// verdict is rendered by `sync-run mutex`, which reads every process's report.
pub async fn process(s: &Session, a: &ProcessArgs) -> i32 {
    let cfg = config(&a.run_id, a.id, &a.shape);
    let run = PeerRun {
        alg: "mutex",
        run_id: a.run_id.clone(),
        processes: a.shape.processes,
    };
    let t0 = Instant::now();
    let p = Process::new(cfg, 0).unwrap_or_else(|e| usage_error(e));
    let r = crate::broker::peers::drive_peer(
        &s.broker,
        &run,
        a.id,
        p,
        t0,
        s.shutdown.clone(),
        |r: &Result<Report, BrokerError>| r.is_ok(),
    )
    .await;
    match r {
        Ok(report) => {
            let code = s.or_signal(match report.outcome {
                Outcome::Completed => exit::VERIFIED,
                _ => exit::FAILED,
            });
            if s.global.json {
                let doc = serde_json::json!({
                    "schema": "sync-run/mutex-process/v1",
                    "run_id": a.run_id,
                    "exit_code": code,
                    "report": report,
                });
                println!("{doc}");
            } else {
                if !s.global.quiet {
                    print!("{}", print::events(std::slice::from_ref(&report)));
                }
                println!(
                    "process {} of mutex run {}: {:?}",
                    a.id, a.run_id, report.outcome
                );
            }
            code
        }
        Err(e) => s.broker_failure(&a.run_id, &e),
    }
}

/// `sync-run bench mutex`.
pub async fn bench(s: &Session, a: &super::cli::BenchArgs) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sync-run bench mutex: cannot find its own executable: {e}");
            return exit::FAILED;
        }
    };
    let cfg = super::bench::Config {
        url: s.broker.url.clone(),
        connect_timeout: s.global.connect_timeout,
        sizes: a.sizes.clone(),
        entries: a.entries,
        rtt_samples: a.rtt_samples.max(1),
        timeout: a.timeout,
        exe,
    };
    match super::bench::run(&cfg).await {
        Ok(r) => {
            if s.global.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", super::bench::render(&r));
            }
            if r.runs.iter().all(|f| f.verified) {
                exit::VERIFIED
            } else {
                exit::FAILED
            }
        }
        Err(e) => {
            eprintln!("sync-run bench mutex: {e:#}");
            if e.downcast_ref::<BrokerError>().is_some() {
                exit::BROKER
            } else {
                exit::FAILED
            }
        }
    }
}
