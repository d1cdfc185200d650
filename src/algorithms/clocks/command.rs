//! `sync-run clocks` and `sync-run clocks-process`: run the processes, read every report
//! from the results queue, rebuild happened-before and verify the clocks, print, exit with
//! the verdict's code.

use super::cli::{ClocksArgs, ProcessArgs, Shape};
use super::process::{ClockConfig, Process};
use super::report::{Outcome, Report};
use super::{checks, print, protocol, report};
use crate::broker::peers::PeerRun;
use crate::cli::session::Session;
use crate::cli::{peers, usage_error};
use crate::contract::{Millis, PeerId};
use rand::SeedableRng;

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// The logical-clock exercise: N processes, random messages, every event stamped with
        /// Lamport and vector clocks; happened-before rebuilt and checked against them.
        Clocks(ClocksArgs) => run,
        /// One process of a logical-clock run (start the others anywhere).
        ClocksProcess(ProcessArgs) => process_alone,
    ]
    bench: []
}

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
    let decode = |b: &[u8], run: &str| protocol::decode_report(b, run).ok().map(|r| (r.id, r));
    let limits = (shape.timeout, shape.peer_timeout());
    let make = |run: &str, k| process(run, k, shape);
    let (run, f) =
        match peers::run_here(s, "clocks", &a.place, shape.processes, limits, make, decode).await {
            Ok(done) => done,
            Err(code) => return code,
        };
    let reports: Vec<Report> = f.reports;
    let verdict = checks::verify(&reports, shape.processes, shape.events);
    let code = s.or_signal(verdict.exit_code());
    peers::write_diagram(a.report.as_deref(), || {
        report::diagram(&format!("clocks run {}", run.run_id), &reports)
    });
    if s.global.json {
        let doc = crate::verdict::Document::new(
            "clocks",
            &run.run_id,
            code,
            &verdict,
            serde_json::json!({
                "processes": shape.processes,
                "events": shape.events,
                "wall_ms": f.wall.as_millis() as u64,
                "rejected_on_results": f.rejected_on_results,
                "reports": reports,
            }),
        );
        println!("{}", doc.to_json());
    } else if s.global.quiet {
        println!("{}", print::summary(&reports, &verdict));
    } else {
        println!(
            "clocks run {}: {} processes, {} internal events each, in {:.3} s",
            run.run_id,
            shape.processes,
            shape.events,
            f.wall.as_secs_f64()
        );
        print!("{}", print::text(&reports, &verdict));
    }
    code
}

/// `sync-run clocks-process`: one process; prints its own events and how it ended. The
/// verdict is rendered by `sync-run clocks`, which reads every process's report.
pub async fn process_alone(s: &Session, a: &ProcessArgs) -> i32 {
    let run = PeerRun::numbered("clocks", a.join.run_id.clone(), a.shape.processes);
    let p = process(&a.join.run_id, a.join.id, &a.shape);
    let how = peers::Alone {
        schema: "sync-run/clocks-process/v1",
        completed: &|r: &Report| r.outcome == Outcome::Completed,
        events: &|r: &Report| print::events(std::slice::from_ref(r)),
        outcome: &|r: &Report| format!("{:?}", r.outcome),
    };
    peers::alone(s, &run, a.join.id, p, how).await
}
