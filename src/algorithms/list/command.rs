//! The list agreement's commands: run them, print the report, say the exit code.

use super::cli::{AllArgs, BenchArgs, MasterArgs, RunArgs, WorkerArgs};
use super::master::RunRecord;
use super::run::{self, RunOptions};
use super::worker::WorkerOutcome;
use super::{broker as amqp, checks as verify, report};
use crate::broker::{Broker, BrokerError, BrokerUrl};
use crate::cli::session::{Session, Stopped, or_signal};
use crate::cli::{GlobalArgs, own_executable, usage_error};
use crate::exit;
use crate::progress::Progress;
use std::io::Write;
use std::time::{Duration, Instant};

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// Run only the master: wait for --slaves workers, run the turns, verify their lists.
        Master(MasterArgs) => master,
        /// Run only one worker of the run named by --run-id.
        Worker(WorkerArgs) => worker,
        // Its bench is `sync-run bench` itself (`bench`), its default command `sync-run`.
    ]
    bench: []
}

/// The session's broker settings for a participant of the list agreement: `--seed` mixed
/// into its order of a cluster's nodes, and the run's `--topology` (the list's own option:
/// no other algorithm has one).
fn list_broker(s: &Session, seed: Option<u64>, topology: crate::contract::Topology) -> Broker {
    let mut b = s.seeded(seed);
    b.topology = topology;
    b
}

pub fn run_options(slaves: usize, a: &RunArgs) -> RunOptions {
    if let Err(e) = a.validate(slaves) {
        usage_error(e);
    }
    RunOptions {
        run_id: a.run_id.clone().unwrap_or_else(run::random_run_id),
        slaves,
        min_workers: a.min_workers.unwrap_or(slaves),
        seed: a.seed,
        min: a.min,
        max: a.max,
        rounds: a.rounds,
        timeout: a.timeout,
        grant_timeout: a.grant_timeout,
        join_timeout: a.join_timeout,
        pace: a.pace,
        window: a.window as usize,
        relay: !a.no_relay,
        connections: run::DEFAULT_CONNECTIONS,
    }
}

/// `--report FILE.svg`: the run's timeline. A failure to write it is reported, and does not
/// change the verdict.
fn write_report(a: &RunArgs, record: &RunRecord) {
    if let Some(path) = &a.report {
        match super::timeline::write_svg(record, path) {
            Ok(()) => eprintln!("timeline written to {}", path.display()),
            Err(e) => eprintln!("sync-run: could not write {}: {e:#}", path.display()),
        }
    }
}

/// Prints the run's report and returns the exit code: the verdict's, or the signal's when
/// one stopped the run (the JSON document says the same code).
fn print_record(
    g: &GlobalArgs,
    broker: &Broker,
    record: &RunRecord,
    wall: Duration,
    stopped: &Stopped,
) -> i32 {
    let verdict = verify::verify(record);
    let code = or_signal(verify::exit_code(&verdict, record), stopped);
    let out = if g.json {
        report::json(
            record,
            &verdict,
            wall,
            report::Resources::of(&broker.stats),
            code,
        )
    } else if g.quiet {
        report::verdict_line(record, &verdict, wall)
    } else {
        report::human(record, &verdict, wall)
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", out.trim_end());
    code
}

/// `sync-run --slaves N`: the master and N workers in this process.
pub async fn all(s: &Session, a: &AllArgs) -> i32 {
    let Some(slaves) = a.slaves else {
        usage_error("say how many workers to run, e.g. `sync-run --slaves 10` (see --help)");
    };
    let g = &s.global;
    let mut opts = run_options(slaves, &a.run);
    opts.connections = a.connections as usize;
    let mut progress = Progress::new(g.quiet || g.json);
    let broker = list_broker(s, opts.seed, a.run.topology);
    let result = run::run_all(&broker, &opts, s.shutdown.clone(), |d, t| {
        progress.update(d, t)
    })
    .await;
    progress.finish();
    match result {
        Ok(res) => {
            write_report(&a.run, &res.record);
            print_record(g, &s.broker, &res.record, res.wall, &s.stopped)
        }
        Err(e) => s.broker_failure(&opts.run_id, &e),
    }
}

/// `sync-run master`: the master alone (or a standby).
pub async fn master(s: &Session, m: &MasterArgs) -> i32 {
    let g = &s.global;
    let opts = run_options(m.slaves, &m.run);
    let broker = &list_broker(s, opts.seed, m.run.topology);
    if !g.json && !g.quiet {
        eprintln!(
            "master of run {} waiting for {} workers on {}",
            opts.run_id, opts.slaves, broker.url
        );
    }
    let t0 = Instant::now();
    let cfg = run::master_config(&opts, broker);
    let rng = run::master_rng(opts.seed);
    let shutdown = s.shutdown.clone();
    let result = if m.standby {
        amqp::run_standby(broker, cfg, rng, t0, shutdown).await
    } else {
        let mut progress = Progress::new(g.quiet || g.json);
        let r =
            amqp::run_master(broker, cfg, rng, t0, shutdown, |d, t| progress.update(d, t)).await;
        progress.finish();
        r
    };
    match result {
        Ok(record) => {
            write_report(&m.run, &record);
            print_record(g, broker, &record, t0.elapsed(), &s.stopped)
        }
        Err(e) => s.broker_failure(&opts.run_id, &e),
    }
}

/// `sync-run worker`: one worker.
pub async fn worker(s: &Session, w: &WorkerArgs) -> i32 {
    let id =
        w.id.unwrap_or_else(|| 1 + rand::random::<u32>() % 1_000_000);
    let t0 = Instant::now();
    let broker = &list_broker(s, w.seed, w.topology);
    let cfg = run::worker_config(&w.run_id, id, w.timeout, broker, w.master_user.clone());
    match amqp::run_worker(
        broker,
        cfg,
        run::worker_rng(w.seed, id),
        t0,
        s.shutdown.clone(),
    )
    .await
    {
        Ok(outcome) => worker_exit(&s.global, &w.run_id, id, &outcome, &s.stopped),
        Err(e) => s.broker_failure(&w.run_id, &e),
    }
}

/// `sync-run bench`: the list agreement against the broker and the original protocol.
pub async fn bench(s: &Session, b: &BenchArgs) -> i32 {
    let (g, broker) = (&s.global, &s.broker);
    let exe = match own_executable("sync-run bench") {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cfg = super::bench::BenchConfig {
        url: broker.url.clone(),
        connect_timeout: g.connect_timeout,
        sizes: b.sizes.clone(),
        windows: b.windows.iter().map(|w| *w as usize).collect(),
        topologies: b.topologies.clone(),
        no_relay_max: b.no_relay_max,
        exe,
        seed_script: b.seed_script.exists().then(|| b.seed_script.clone()),
        seed_max: b.seed_max,
        rtt_samples: b.rtt_samples.max(1),
        plot: b.plot.clone(),
        timeout: b.timeout,
    };
    if b.cluster {
        return cluster_bench(s, b, &cfg).await;
    }
    let report = match super::bench::run(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sync-run bench: {e:#}");
            return if e.downcast_ref::<BrokerError>().is_some() {
                exit::BROKER
            } else {
                exit::FAILED
            };
        }
    };
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", super::bench_render::render(&report));
    }
    if let Some(path) = &cfg.plot {
        match super::bench_render::plot(&report, path) {
            Ok(()) => eprintln!("bench: plot written to {}", path.display()),
            Err(e) => {
                eprintln!("sync-run bench: {e:#}");
                return exit::FAILED;
            }
        }
    }
    if report.runs.iter().all(|r| r.verified) {
        exit::VERIFIED
    } else {
        exit::FAILED
    }
}

/// The worker's own report: one line, or with `--json` one document of schema
/// `sync-run/worker/v1` (docs/PROTOCOL.md §9): `run_id`, `worker`, `outcome` (completed,
/// evicted, not_admitted, aborted, timed_out, mismatch) with that outcome's fields
/// (`entries`, `seq`, `reason`), and `exit_code`.
fn worker_exit(g: &GlobalArgs, run_id: &str, id: u32, o: &WorkerOutcome, stopped: &Stopped) -> i32 {
    let (line, code) = match o {
        WorkerOutcome::Completed { entries } => (
            format!(
                "worker {id} of run {run_id}: {} entries: {}",
                entries.len(),
                entries
                    .iter()
                    .map(|e| e.value.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            exit::VERIFIED,
        ),
        WorkerOutcome::Evicted { seq } => (
            format!("worker {id} of run {run_id}: evicted at grant {seq}"),
            exit::VERIFIED_WITH_EVICTIONS,
        ),
        WorkerOutcome::NotAdmitted => (
            format!("worker {id} of run {run_id}: the run started without this worker"),
            exit::FAILED,
        ),
        WorkerOutcome::Aborted { reason } => (
            format!("worker {id} of run {run_id}: run aborted: {reason}"),
            exit::FAILED,
        ),
        WorkerOutcome::TimedOut { entries } => (
            format!("worker {id} of run {run_id}: timed out with {entries} entries"),
            exit::FAILED,
        ),
        WorkerOutcome::Mismatch { reason } => (
            format!("worker {id} of run {run_id}: not started with the run's options: {reason}"),
            exit::USAGE,
        ),
    };
    let code = or_signal(code, stopped);
    if g.json {
        let mut doc = serde_json::json!({
            "schema": "sync-run/worker/v1",
            "run_id": run_id,
            "worker": id,
            "exit_code": code,
        });
        if let (Some(doc), Ok(serde_json::Value::Object(fields))) =
            (doc.as_object_mut(), serde_json::to_value(o))
        {
            doc.extend(fields);
        }
        println!("{doc}");
    } else {
        println!("{line}");
    }
    code
}

/// `sync-run bench --cluster`: the same runs on one node and on the cluster.
async fn cluster_bench(s: &Session, b: &BenchArgs, cfg: &super::bench::BenchConfig) -> i32 {
    if cfg.url.nodes().len() < 2 {
        usage_error(
            "bench --cluster needs the cluster's nodes in --amqp-url (two URLs or more, comma-separated; e.g. --amqp-url \"$(scripts/local-cluster.sh urls)\")",
        );
    }
    let single = BrokerUrl::parse(&b.single_url)
        .unwrap_or_else(|e| usage_error(format!("--single-url: {e}")));
    match super::cluster_bench::run(cfg, &single).await {
        Ok(report) => {
            if s.global.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", super::cluster_bench::render(&report));
            }
            let all_verified = report
                .runs
                .iter()
                .all(|r| r.figures.as_ref().is_some_and(|f| f.verified));
            if all_verified {
                exit::VERIFIED
            } else {
                exit::FAILED
            }
        }
        Err(e) => {
            eprintln!("sync-run bench --cluster: {e:#}");
            if e.downcast_ref::<BrokerError>().is_some() {
                exit::BROKER
            } else {
                exit::FAILED
            }
        }
    }
}
