//! The `sync-run` command: parses options, runs the chosen role(s), prints the verdict and
//! exits with the documented code.

use clap::{CommandFactory, Parser, error::ErrorKind};
use std::io::Write;
use std::time::{Duration, Instant};
use sync_run::algorithms::list::broker as amqp;
use sync_run::algorithms::list::run::{self, RunOptions};
use sync_run::algorithms::list::worker::WorkerOutcome;
use sync_run::algorithms::list::{checks as verify, report};
use sync_run::broker::{Broker, BrokerError};
use sync_run::cli::{Cli, Command, GlobalArgs, RunArgs};
use sync_run::exit;
use sync_run::progress::Progress;
use tokio::sync::watch;

fn usage_error(msg: impl std::fmt::Display) -> ! {
    Cli::command().error(ErrorKind::ValueValidation, msg).exit()
}

fn init_logging(g: &GlobalArgs) {
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // lapin logs every channel the broker closes as an error, including the expected
        // ones (a passive probe of a queue not there yet); sync-run reports what matters.
        let lapin = if g.verbose >= 2 { "warn" } else { "off" };
        tracing_subscriber::EnvFilter::new(format!("sync_run={default},lapin={lapin}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .init();
}

/// Colour in logs only for a person at a terminal: never in a file or a pipe, and never
/// when `NO_COLOR` is set (https://no-color.org).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn run_options(slaves: usize, a: &RunArgs) -> RunOptions {
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

/// The signal that stopped the run, if any, as the exit code it calls for.
type Stopped = std::sync::Arc<std::sync::atomic::AtomicI32>;

/// Ctrl-C (SIGINT), SIGTERM (what `timeout`, `docker stop` and systemd send) and SIGHUP (a
/// closed terminal) flip the returned receiver to `true`: the drivers then abort, clean up
/// everything of the run, and the process exits with 128 + the signal's number.
fn stop_signals() -> (watch::Receiver<bool>, Stopped) {
    let (tx, rx) = watch::channel(false);
    let code: Stopped = Default::default();
    let flag = code.clone();
    tokio::spawn(async move {
        let got = wait_for_signal().await;
        flag.store(got, std::sync::atomic::Ordering::SeqCst);
        let _ = tx.send(true);
    });
    (rx, code)
}

#[cfg(unix)]
async fn wait_for_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return exit::INTERRUPTED;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => exit::INTERRUPTED,
        _ = term.recv() => exit::TERMINATED,
        _ = hup.recv() => exit::HANGUP,
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> i32 {
    let _ = tokio::signal::ctrl_c().await;
    exit::INTERRUPTED
}

/// `--report FILE.svg`: the run's timeline. A failure to write it is reported, and does not
/// change the verdict.
fn write_report(a: &RunArgs, record: &sync_run::algorithms::list::master::RunRecord) {
    if let Some(path) = &a.report {
        match sync_run::algorithms::list::timeline::write_svg(record, path) {
            Ok(()) => eprintln!("timeline written to {}", path.display()),
            Err(e) => eprintln!("sync-run: could not write {}: {e:#}", path.display()),
        }
    }
}

/// Reports a run that ended with a broker error or a conflict: the message on stderr and,
/// with `--json`, a JSON document (schema `sync-run/error/v1`) on stdout with the reason.
fn broker_failure(g: &GlobalArgs, run_id: &str, e: &BrokerError, stopped: &Stopped) -> i32 {
    eprintln!("sync-run: {e}");
    let code = or_signal(e.exit_code(), stopped);
    if g.json {
        let doc = serde_json::json!({
            "schema": "sync-run/error/v1",
            "run_id": run_id,
            "error": { "kind": e.kind(), "message": e.to_string() },
            "exit_code": code,
        });
        println!("{doc}");
    }
    code
}

/// The exit code of a finished run: the signal's when one stopped it.
fn or_signal(code: i32, stopped: &Stopped) -> i32 {
    match stopped.load(std::sync::atomic::Ordering::SeqCst) {
        0 => code,
        signal => signal,
    }
}

/// Prints the run's report and returns the exit code: the verdict's, or the signal's when
/// one stopped the run (the JSON document says the same code).
fn print_record(
    g: &GlobalArgs,
    broker: &Broker,
    record: &sync_run::algorithms::list::master::RunRecord,
    wall: Duration,
    stopped: &Stopped,
) -> i32 {
    let verdict = verify::verify(record);
    let code = or_signal(verdict.exit_code(record), stopped);
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

async fn main_async(cli: Cli) -> i32 {
    let g = &cli.global;
    let url = g.broker_url().unwrap_or_else(|e| usage_error(e));
    let broker = Broker {
        url,
        connect_timeout: g.connect_timeout,
        prefetch: 256,
        durable: g.durable,
        topology: g.topology,
        pool: None,
        declared: false,
        stats: Default::default(),
    };
    let (shutdown, stopped) = stop_signals();
    match &cli.command {
        None => {
            let Some(slaves) = cli.all.slaves else {
                usage_error(
                    "say how many workers to run, e.g. `sync-run --slaves 10` (see --help)",
                );
            };
            let mut opts = run_options(slaves, &cli.all.run);
            opts.connections = cli.all.connections as usize;
            let mut progress = Progress::new(g.quiet || g.json);
            let result = run::run_all(&broker, &opts, shutdown, |d, t| progress.update(d, t)).await;
            progress.finish();
            match result {
                Ok(res) => {
                    write_report(&cli.all.run, &res.record);
                    print_record(g, &broker, &res.record, res.wall, &stopped)
                }
                Err(e) => broker_failure(g, &opts.run_id, &e, &stopped),
            }
        }
        Some(Command::Master(m)) => {
            let opts = run_options(m.slaves, &m.run);
            if !g.json && !g.quiet {
                eprintln!(
                    "master of run {} waiting for {} workers on {}",
                    opts.run_id, opts.slaves, broker.url
                );
            }
            let t0 = Instant::now();
            let cfg = run::master_config(&opts, &broker);
            let rng = run::master_rng(opts.seed);
            let result = if m.standby {
                amqp::run_standby(&broker, cfg, rng, t0, shutdown).await
            } else {
                let mut progress = Progress::new(g.quiet || g.json);
                let r = amqp::run_master(&broker, cfg, rng, t0, shutdown, |d, t| {
                    progress.update(d, t)
                })
                .await;
                progress.finish();
                r
            };
            match result {
                Ok(record) => {
                    write_report(&m.run, &record);
                    print_record(g, &broker, &record, t0.elapsed(), &stopped)
                }
                Err(e) => broker_failure(g, &opts.run_id, &e, &stopped),
            }
        }
        Some(Command::Bench(b)) => bench(g, &broker, b).await,
        Some(Command::Completions { .. }) => exit::VERIFIED, // handled before connecting
        Some(Command::Worker(w)) => {
            let id =
                w.id.unwrap_or_else(|| 1 + rand::random::<u32>() % 1_000_000);
            let t0 = Instant::now();
            let cfg = run::worker_config(&w.run_id, id, w.timeout, &broker, w.master_user.clone());
            match amqp::run_worker(&broker, cfg, run::worker_rng(w.seed, id), t0, shutdown).await {
                Ok(outcome) => worker_exit(g, &w.run_id, id, &outcome, &stopped),
                Err(e) => broker_failure(g, &w.run_id, &e, &stopped),
            }
        }
    }
}

async fn bench(g: &GlobalArgs, broker: &Broker, b: &sync_run::cli::BenchArgs) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sync-run bench: cannot find its own executable: {e}");
            return exit::FAILED;
        }
    };
    let cfg = sync_run::algorithms::list::bench::BenchConfig {
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
    let report = match sync_run::algorithms::list::bench::run(&cfg).await {
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
        print!("{}", sync_run::algorithms::list::bench::render(&report));
    }
    if let Some(path) = &cfg.plot {
        match sync_run::algorithms::list::bench::plot(&report, path) {
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

fn main() {
    let cli = Cli::parse();
    if let Some(Command::Completions { shell }) = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "sync-run",
            &mut std::io::stdout(),
        );
        return;
    }
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sync-run: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    let code = runtime.block_on(main_async(cli));
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
