//! `sync-run lock NAME -- CMD`: take the lock, run the command while holding it, let go
//! when it ends, exit with its code. `--status`, `--delete` and `--check` go to their own
//! files.

use super::child::{Cmd, Env};
use super::cli::{BenchArgs, LockArgs};
use super::holder::Got;
use super::open::open;
use super::report::{self, Holding, Outcome};
use super::{GAVE_UP, LOST, host};
use crate::cli::session::Session;
use crate::cli::usage_error;

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// Hold a named lock while a command runs (FIFO waiters, --limit N holders, a fencing
        /// token in SYNC_RUN_FENCE); exits with the command's code, 75 gave up, 76 lock lost.
        Lock(LockArgs) => run,
    ]
    bench: [
        /// The lock: handover (release → the next holder starts) and an uncontended acquire,
        /// beside the broker's one hop.
        Lock(BenchArgs) => bench,
    ]
}

/// `sync-run lock`.
pub async fn run(s: &Session, a: &LockArgs) -> i32 {
    if a.status {
        return super::status::status(s, a).await;
    }
    if a.delete {
        return super::status::delete(s, a).await;
    }
    if a.check {
        return super::check::check(s, a).await;
    }
    if a.cmd.is_empty() {
        usage_error("give the command to run under the lock after `--`: sync-run lock NAME -- CMD [ARGS…]");
    }
    hold(s, a).await
}

async fn hold(s: &Session, a: &LockArgs) -> i32 {
    let who = format!("sync-run lock {} pid {}", a.name, std::process::id());
    let mut h = match open(s, &who, &a.name, a.limit).await {
        Ok(h) => h,
        Err(e) => return s.broker_failure(&a.name, &e),
    };
    let mut stop = s.shutdown.clone();
    let (slot, fence) = match h.acquire(a.wait, &mut stop).await {
        Ok(Got::Held { slot, fence }) => (slot, fence),
        Ok(Got::GaveUp) => {
            h.close().await;
            eprintln!("sync-run lock {}: gave up waiting (held by others)", a.name);
            return GAVE_UP;
        }
        Ok(Got::Lost(why)) => {
            eprintln!("sync-run lock {}: connection lost while waiting: {why}", a.name);
            return crate::exit::BROKER;
        }
        Ok(Got::Interrupted) => {
            h.close().await;
            return s.or_signal(crate::exit::INTERRUPTED);
        }
        Err(e) => {
            h.close().await;
            return s.broker_failure(&a.name, &e);
        }
    };
    // The record is for `--status` only: a broker that blocks publishers (a memory or disk
    // alarm) must not keep the lock held with no command running.
    match tokio::time::timeout(
        s.global.connect_timeout,
        h.record(slot, fence, host::wall_ms()),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("could not leave the holder's record: {e}"),
        Err(_) => tracing::warn!("the holder's record was not confirmed in time; going on"),
    }
    let start_ns = host::monotonic_ns();
    let env = Env {
        lock: &a.name,
        fence,
        slot: (a.limit > 1).then_some(slot),
    };
    let mut cmd = match Cmd::start(&a.cmd, &env) {
        Ok(c) => c,
        Err(why) => {
            h.close().await;
            eprintln!("sync-run lock {}: {why}", a.name);
            return 127;
        }
    };
    let (code, outcome) = tokio::select! {
        code = cmd.wait() => (code, Outcome::Released),
        why = h.serve() => {
            eprintln!(
                "sync-run lock {}: lock lost ({why}); stopping the command (SIGTERM, SIGKILL after {:?})",
                a.name, a.grace
            );
            cmd.stop(a.grace).await;
            (LOST, Outcome::Lost)
        }
        _ = crate::broker::stopped(&mut stop) => {
            let code = cmd.stop(a.grace).await;
            (s.or_signal(code), Outcome::Released)
        }
    };
    let end_ns = host::monotonic_ns();
    // The report is written before the lock is let go, so its end is before the next
    // holder's start on this machine's clock.
    if let Some(path) = &a.report {
        let r = Holding {
            v: super::protocol::VERSION,
            lock: a.name.clone(),
            limit: a.limit,
            slot,
            fence,
            host: host::hostname(),
            pid: std::process::id(),
            boot_id: host::boot_id(),
            contender: 0,
            round: 0,
            start_ns,
            end_ns,
            outcome,
            exit_code: (outcome == Outcome::Released).then_some(code),
        };
        if let Err(e) = report::append(path, &r) {
            eprintln!("sync-run lock {}: cannot append to {}: {e}", a.name, path.display());
        }
    }
    h.close().await;
    code
}

/// `sync-run bench lock`.
pub async fn bench(s: &Session, a: &BenchArgs) -> i32 {
    crate::bench::report::finish("lock", s.global.json, None, super::bench::run(s, a).await)
}
