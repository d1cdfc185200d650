//! What every command shares once the options are parsed: the broker settings, the stop
//! signals (Ctrl-C, SIGTERM, SIGHUP → clean up, then exit 128 + the signal), logging, and
//! how a failure is reported (a message on stderr; with `--json`, an error document).

use super::GlobalArgs;
use crate::broker::{Broker, BrokerError, Shutdown};
use crate::exit;
use tokio::sync::watch;

/// One command's context: the options every command has, the broker settings built from
/// them, and the stop signal the drivers watch.
pub struct Session {
    pub global: GlobalArgs,
    pub broker: Broker,
    pub shutdown: Shutdown,
    pub stopped: Stopped,
}

impl Session {
    /// The broker settings from the global options; the stop signals start being watched.
    /// A bad URL is a usage error (exit 2).
    pub fn new(global: GlobalArgs) -> Self {
        let url = global
            .broker_url()
            .unwrap_or_else(|e| super::usage_error(e));
        let broker = Broker {
            url,
            connect_timeout: global.connect_timeout,
            prefetch: 256,
            durable: global.durable,
            // Only the list agreement has a topology: its commands set it from their own
            // `--topology`.
            topology: Default::default(),
            queue_type: global.queue_type,
            pool: None,
            declared: false,
            stats: Default::default(),
        };
        let (shutdown, stopped) = stop_signals();
        Session {
            global,
            broker,
            shutdown,
            stopped,
        }
    }

    /// The broker settings with `--seed` mixed into each participant's order of a
    /// cluster's nodes (the same seed spreads the same participants the same way).
    pub fn seeded(&self, seed: Option<u64>) -> Broker {
        let mut b = self.broker.clone();
        if let Some(seed) = seed {
            b.url = b.url.with_seed(seed);
        }
        b
    }

    /// The exit code of a finished run: the signal's when one stopped it.
    pub fn or_signal(&self, code: i32) -> i32 {
        or_signal(code, &self.stopped)
    }

    /// Reports a run that ended with a broker error or a conflict: the message on stderr
    /// and, with `--json`, a JSON document (schema `sync-run/error/v1`) on stdout.
    pub fn broker_failure(&self, run_id: &str, e: &BrokerError) -> i32 {
        broker_failure(&self.global, run_id, e, &self.stopped)
    }
}

/// The signal that stopped the run, if any, as the exit code it calls for.
pub type Stopped = std::sync::Arc<std::sync::atomic::AtomicI32>;

/// Ctrl-C (SIGINT), SIGTERM (what `timeout`, `docker stop` and systemd send) and SIGHUP (a
/// closed terminal) flip the returned receiver to `true`: the drivers then abort, clean up
/// everything of the run, and the process exits with 128 + the signal's number.
///
/// The handlers are installed here, before this returns, not when a task first runs: a
/// signal that comes while the runtime is still busy starting the run (seen under load:
/// seconds) is then caught, not left to the default action that kills the process with
/// the run's queues still on the broker.
pub fn stop_signals() -> (watch::Receiver<bool>, Stopped) {
    let (tx, rx) = watch::channel(false);
    let code: Stopped = Default::default();
    let flag = code.clone();
    let waiting = signal_handlers();
    tokio::spawn(async move {
        let got = waiting.await;
        flag.store(got, std::sync::atomic::Ordering::SeqCst);
        let _ = tx.send(true);
    });
    (rx, code)
}

/// Installs the handlers now; the returned future resolves with the exit code of the
/// first signal.
#[cfg(unix)]
fn signal_handlers() -> std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>> {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut int), Ok(mut term), Ok(mut hup)) => Box::pin(async move {
            tokio::select! {
                _ = int.recv() => exit::INTERRUPTED,
                _ = term.recv() => exit::TERMINATED,
                _ = hup.recv() => exit::HANGUP,
            }
        }),
        _ => Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
            exit::INTERRUPTED
        }),
    }
}

#[cfg(not(unix))]
fn signal_handlers() -> std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>> {
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
        exit::INTERRUPTED
    })
}

/// Reports a run that ended with a broker error or a conflict: the message on stderr and,
/// with `--json`, a JSON document (schema `sync-run/error/v1`) on stdout with the reason.
pub fn broker_failure(g: &GlobalArgs, run_id: &str, e: &BrokerError, stopped: &Stopped) -> i32 {
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
pub fn or_signal(code: i32, stopped: &Stopped) -> i32 {
    match stopped.load(std::sync::atomic::Ordering::SeqCst) {
        0 => code,
        signal => signal,
    }
}

/// Logs on stderr, `warn` by default (`-v` info, `-vv` debug, `--quiet` errors only);
/// `RUST_LOG` overrides.
pub fn init_logging(g: &GlobalArgs) {
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
