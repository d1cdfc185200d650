//! `sync-run clocks` and `sync-run clocks-process`: run the processes, read every report
//! from the results queue, rebuild happened-before and verify the clocks, print, exit with
//! the verdict's code.

use super::cli::{ClocksArgs, ProcessArgs, Shape};
use super::process::{ClockConfig, Process};
use super::report::{Outcome, Report};
use super::{checks, print, protocol, report};
use crate::broker::BrokerError;
use crate::broker::peers::{PeerRun, run_and_collect};
use crate::cli::session::Session;
use crate::cli::usage_error;
use crate::contract::{Millis, PeerId};
use crate::exit;
use rand::SeedableRng;
use std::time::{Duration, Instant};

/// The JSON document's schema name (docs/clocks.md).
pub const SCHEMA: &str = "sync-run/clocks/v1";

fn process(run_id: &str, id: PeerId, s: &Shape) -> Process {
    let cfg = ClockConfig {
        run_id: run_id.to_owned(),
        id,
        processes: s.processes,
        events: s.events,
        send_probability: s.send_probability,
        step_ms: s.step.as_millis() as Millis,
        peer_timeout_ms: s.peer_timeout().as_millis() as Millis,
        deadline: Some(s.timeout.as_millis() as Millis),
    };
    // Each process its own stream: the same seed gives the same scripts, and two
    // processes never share one.
    let rng: Box<dyn rand::RngCore + Send> = match s.seed {
        Some(seed) => Box::new(rand::rngs::StdRng::seed_from_u64(
            seed ^ (u64::from(id)).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )),
        None => Box::new(rand::rngs::StdRng::from_os_rng()),
    };
    Process::new(cfg, rng, 0).unwrap_or_else(|e| usage_error(e))
}

/// `sync-run clocks`: the run's processes here (all, or `--local`), every report read from
/// the results queue, the checks.
pub async fn run(s: &Session, a: &ClocksArgs) -> i32 {
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
        alg: "clocks",
        run_id: run_id.clone(),
        processes: shape.processes,
    };
    if !s.global.json && !s.global.quiet && local.len() < shape.processes as usize {
        eprintln!(
            "clocks run {run_id}: processes {:?} here; start the others with `sync-run clocks-process --run-id {run_id} --id K --processes {} --events {}`",
            local, shape.processes, shape.events
        );
    }
    let t0 = Instant::now();
    let machines: Vec<(PeerId, Process)> = local
        .iter()
        .map(|k| (*k, process(&run_id, *k, shape)))
        .collect();
    let decode = |b: &[u8]| protocol::decode_report(b, &run_id).ok().map(|r| (r.id, r));
    let collected = run_and_collect(
        &s.broker,
        &run,
        machines,
        t0,
        &s.shutdown,
        shape.timeout + Duration::from_secs(5),
        shape.peer_timeout() + Duration::from_secs(2),
        decode,
    )
    .await;
    let wall = t0.elapsed();
    let c = match collected {
        Ok(c) => c,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    let reports: Vec<Report> = c.reports.into_values().collect();
    if let Some((k, e)) = c.errors.first()
        && !reports.iter().any(|r| r.id == *k)
    {
        eprintln!("sync-run: process {k}: {e}");
        if reports.is_empty() {
            return s.broker_failure(&run_id, e);
        }
    }
    let verdict = checks::verify(&reports, shape.processes, shape.events);
    let code = s.or_signal(verdict.exit_code());
    if let Some(path) = &a.report {
        let d = report::diagram(&format!("clocks run {run_id}"), &reports);
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
            "events": shape.events,
            "verified": verdict.verified,
            "checks": verdict.checks,
            "exit_code": code,
            "wall_ms": wall.as_millis() as u64,
            "rejected_on_results": c.rejected,
            "reports": reports,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if s.global.quiet {
        println!("{}", print::summary(&reports, &verdict));
    } else {
        println!(
            "clocks run {run_id}: {} processes, {} internal events each, in {:.3} s",
            shape.processes,
            shape.events,
            wall.as_secs_f64()
        );
        print!("{}", print::text(&reports, &verdict));
    }
    code
}

/// `sync-run clocks-process`: one process; prints its own events and how it ended. The
/// verdict is rendered by `sync-run clocks`, which reads every process's report.
pub async fn process_alone(s: &Session, a: &ProcessArgs) -> i32 {
    let p = process(&a.run_id, a.id, &a.shape);
    let run = PeerRun {
        alg: "clocks",
        run_id: a.run_id.clone(),
        processes: a.shape.processes,
    };
    let t0 = Instant::now();
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
                    "schema": "sync-run/clocks-process/v1",
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
                    "process {} of clocks run {}: {:?}",
                    a.id, a.run_id, report.outcome
                );
            }
            code
        }
        Err(e) => s.broker_failure(&a.run_id, &e),
    }
}
