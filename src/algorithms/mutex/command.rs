//! `sync-run mutex` and `sync-run mutex-process`: run the processes, read every report
//! from the results queue, verify, print, exit with the verdict's code.

use super::cli::{MutexArgs, ProcessArgs, Shape};
use super::process::{Process, ProcessConfig};
use super::report::{Outcome, Report};
use super::{diagram, print, protocol};
use crate::broker::peers::PeerRun;
use crate::cli::session::Session;
use crate::cli::{own_executable, peers, usage_error};
use crate::contract::{Millis, PeerId};

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// Ricart–Agrawala mutual exclusion with Lamport and vector clocks: N processes each
        /// enter a critical section K times; safety is proven from the vector clocks alone.
        Mutex(MutexArgs) => run,
        /// One process of a mutual-exclusion run (start the others anywhere).
        MutexProcess(ProcessArgs) => process_alone,
    ]
    bench: [
        /// Mutual exclusion: entries per second, the handover time (one process's exit → the
        /// next one's entry) and messages per entry at several N, beside the broker's one hop.
        Mutex(super::cli::BenchArgs) => bench,
    ]
}

/// Process `id` of the run, as the options describe it (a bad combination is a usage
/// error).
fn process(run_id: &str, id: PeerId, s: &Shape) -> Process {
    Process::new(config(run_id, id, s), 0).unwrap_or_else(|e| usage_error(e))
}

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
    let decode = |b: &[u8], run: &str| protocol::decode_report(b, run).ok().map(|r| (r.id, r));
    let limits = (shape.timeout, shape.peer_timeout);
    let make = |run: &str, k| process(run, k, shape);
    let (run, f) =
        match peers::run_here(s, "mutex", &a.place, shape.processes, limits, make, decode).await {
            Ok(done) => done,
            Err(code) => return code,
        };
    let reports: Vec<Report> = f.reports;
    let verdict = super::verify(&reports, shape.processes, shape.entries);
    let code = s.or_signal(verdict.exit_code());
    peers::write_diagram(a.report.as_deref(), || {
        diagram::diagram(
            &format!("mutex run {}", run.run_id),
            shape.processes,
            &reports,
        )
    });
    if s.global.json {
        let doc = crate::verdict::Document::new(
            "mutex",
            &run.run_id,
            code,
            &verdict,
            serde_json::json!({
                "processes": shape.processes,
                "entries": shape.entries,
                "hold_ms": shape.hold.as_millis() as u64,
                "wall_ms": f.wall.as_millis() as u64,
                "rejected_on_results": f.rejected_on_results,
                "peak_rss_kib": crate::bench::peak_rss_kib(),
                "reports": reports,
            }),
        );
        println!("{}", doc.to_json());
    } else if s.global.quiet {
        println!(
            "{}",
            print::summary(&verdict, shape.processes, shape.entries)
        );
    } else {
        println!(
            "mutex run {}: {} processes, {} entries each, hold {} ms, in {:.3} s",
            run.run_id,
            shape.processes,
            shape.entries,
            shape.hold.as_millis(),
            f.wall.as_secs_f64()
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
pub async fn process_alone(s: &Session, a: &ProcessArgs) -> i32 {
    let run = PeerRun::numbered("mutex", a.join.run_id.clone(), a.shape.processes);
    let p = process(&a.join.run_id, a.join.id, &a.shape);
    let how = peers::Alone {
        schema: "sync-run/mutex-process/v1",
        completed: &|r: &Report| r.outcome == Outcome::Completed,
        events: &|r: &Report| print::events(std::slice::from_ref(r)),
        outcome: &|r: &Report| format!("{:?}", r.outcome),
    };
    peers::alone(s, &run, a.join.id, p, how).await
}

/// `sync-run bench mutex`.
pub async fn bench(s: &Session, a: &super::cli::BenchArgs) -> i32 {
    let exe = match own_executable("sync-run bench mutex") {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cfg = super::bench::Config {
        url: s.broker.url.clone(),
        connect_timeout: s.global.connect_timeout,
        sizes: a.sizes.clone(),
        entries: a.entries,
        rtt_samples: a.runs.rtt_samples.max(1),
        timeout: a.runs.timeout,
        exe,
    };
    let out = crate::bench::report::Output {
        json: s.global.json,
        json_out: None,
    };
    crate::bench::report::finish("mutex", out, super::bench::run(&cfg).await)
}
