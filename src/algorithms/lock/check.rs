//! `sync-run lock NAME --check`: C contenders in this process, each on its own connection,
//! K acquisitions each on the lock NAME-RUNID (deleted at the end), their reports checked;
//! or, with `--reports F…`, the reports of holders started separately (`--report F`).

use super::checks::{self, Expect};
use super::child::{Cmd, Env};
use super::cli::LockArgs;
use super::holder::Got;
use super::report::{self, Holding, Outcome};
use super::{host, protocol};
use crate::broker::BrokerError;
use crate::cli::session::Session;
use crate::verdict::{Document, Verdict};
use std::time::Duration;

/// What one contender does while it holds the lock.
#[derive(Debug, Clone)]
pub enum Section {
    /// Sleep this long (zero: yield once).
    Builtin(Duration),
    /// Run this command.
    Command(Vec<String>),
}

/// A run of in-process contenders.
#[derive(Debug, Clone)]
pub struct Plan {
    pub lock: String,
    pub limit: u32,
    pub contenders: u32,
    pub rounds: u32,
    pub section: Section,
    pub timeout: Duration,
}

/// Runs the contenders; every holding they reported (fewer than C·K if one failed or the
/// timeout came: the checks say so). The lock's queues are deleted at the end.
pub async fn contenders(s: &Session, plan: &Plan) -> Result<Vec<Holding>, BrokerError> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 1..=plan.contenders {
        let plan = plan.clone();
        let mut stop = s.shutdown.clone();
        let who = format!("sync-run lock {} contender {c}", plan.lock);
        let holder = super::open::open(s, &who, &plan.lock, plan.limit).await;
        tasks.spawn(async move {
            let mut out = Vec::new();
            let mut h = holder?;
            let r = rounds(&mut h, &plan, c, &mut stop, &mut out).await;
            h.close().await;
            r.map(|()| out)
        });
    }
    let mut all = Vec::new();
    let mut first_error = None;
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);
    let mut fired = false;
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                None => break,
                Some(Ok(Ok(hs))) => all.extend(hs),
                Some(Ok(Err(e))) => { first_error.get_or_insert(e); }
                Some(Err(e)) => tracing::warn!("a contender panicked: {e}"),
            },
            _ = &mut deadline, if !fired => {
                fired = true;
                eprintln!("sync-run lock: --timeout reached; stopping the contenders");
                tasks.abort_all();
            }
        }
    }
    // Every contender of this lock is ours and has ended, but the broker lets go of a
    // closed connection's consumers a moment later: "in use" is retried for a few seconds.
    let names = protocol::queues(&plan.lock, plan.limit);
    let mut tries = 0;
    loop {
        match crate::broker::lease::delete(&s.broker, "sync-run lock cleanup", &names).await {
            Err(crate::broker::lease::Refused::InUse) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => {
                eprintln!("sync-run lock: could not delete lock {}: {e:?}", plan.lock);
                break;
            }
            Ok(()) => break,
        }
    }
    match first_error {
        Some(e) if all.is_empty() => Err(e),
        Some(e) => {
            eprintln!("sync-run lock: a contender failed: {e}");
            Ok(all)
        }
        None => Ok(all),
    }
}

async fn rounds(
    h: &mut super::holder::Holder,
    plan: &Plan,
    contender: u32,
    stop: &mut crate::broker::Shutdown,
    out: &mut Vec<Holding>,
) -> Result<(), BrokerError> {
    for round in 0..plan.rounds {
        let (slot, fence) = match h.acquire(None, stop).await? {
            Got::Held { slot, fence } => (slot, fence),
            Got::Lost(why) => {
                return Err(BrokerError::Lost {
                    what: format!("connection of contender {contender} ({why})"),
                });
            }
            Got::GaveUp | Got::Interrupted => return Ok(()),
        };
        let start_ns = host::monotonic_ns();
        // The section runs while the holder answers its deliveries: tokens of the other
        // slots must be given back at once, or a semaphore would be a mutex.
        let section = section(&plan.section, &plan.lock, plan.limit, slot, fence);
        let exit_code = tokio::select! {
            code = section => code?,
            why = h.serve() => {
                return Err(BrokerError::Lost {
                    what: format!("connection of contender {contender} while holding ({why})"),
                });
            }
        };
        let end_ns = host::monotonic_ns();
        out.push(Holding {
            v: protocol::VERSION,
            lock: plan.lock.clone(),
            limit: plan.limit,
            slot,
            fence,
            host: host::hostname(),
            pid: std::process::id(),
            boot_id: host::boot_id(),
            contender,
            round,
            start_ns,
            end_ns,
            outcome: Outcome::Released,
            exit_code,
        });
        h.release().await?;
    }
    Ok(())
}

/// The critical section: the built-in one (no exit code) or the command's exit code.
async fn section(
    section: &Section,
    lock: &str,
    limit: u32,
    slot: u32,
    fence: u64,
) -> Result<Option<i32>, BrokerError> {
    match section {
        Section::Builtin(d) if d.is_zero() => {
            tokio::task::yield_now().await;
            Ok(None)
        }
        Section::Builtin(d) => {
            tokio::time::sleep(*d).await;
            Ok(None)
        }
        Section::Command(argv) => {
            let env = Env {
                lock,
                fence,
                slot: (limit > 1).then_some(slot),
            };
            let mut cmd = Cmd::start(argv, &env).map_err(|why| BrokerError::Lost {
                what: format!("command ({why})"),
            })?;
            Ok(Some(cmd.wait().await))
        }
    }
}

/// `sync-run lock NAME --check`.
pub async fn check(s: &Session, a: &LockArgs) -> i32 {
    let (run_id, lock, reports, expected) = if a.reports.is_empty() {
        let run_id = a.run_id.clone().unwrap_or_else(crate::cli::random_run_id);
        let lock = format!("{}-{run_id}", a.name);
        let plan = Plan {
            lock: lock.clone(),
            limit: a.limit,
            contenders: a.contenders,
            rounds: a.rounds,
            section: if a.cmd.is_empty() {
                Section::Builtin(a.hold)
            } else {
                Section::Command(a.cmd.clone())
            },
            timeout: a.timeout,
        };
        match contenders(s, &plan).await {
            Ok(r) => (run_id, lock, r, Some((a.contenders * a.rounds) as usize)),
            Err(e) => return s.broker_failure(&run_id, &e),
        }
    } else {
        let mut all = Vec::new();
        for f in &a.reports {
            match report::read(f) {
                Ok(r) => all.extend(r),
                Err(why) => crate::cli::usage_error(why),
            }
        }
        (a.name.clone(), a.name.clone(), all, None)
    };
    let expect = Expect {
        holdings: expected,
        lock: &lock,
        limit: a.limit,
    };
    let verdict = checks::verify(&reports, expect);
    let code = s.or_signal(verdict.exit_code());
    print(s, &run_id, &lock, a.limit, code, &verdict, &reports);
    code
}

fn print(
    s: &Session,
    run_id: &str,
    lock: &str,
    limit: u32,
    code: i32,
    verdict: &Verdict,
    reports: &[Holding],
) {
    let peak = checks::peak(reports);
    if s.global.json {
        let doc = Document::new(
            "lock",
            run_id,
            code,
            verdict,
            serde_json::json!({
                "lock": lock,
                "limit": limit,
                "holdings": reports.len(),
                "peak_holders": peak,
                "reports": reports,
            }),
        );
        println!("{}", doc.to_json());
        return;
    }
    let line = if verdict.verified {
        format!("VERIFIED: lock {lock}, {} holdings, peak {peak} of {limit} at once", reports.len())
    } else {
        format!("NOT VERIFIED: lock {lock} (exit {code})")
    };
    if !s.global.quiet {
        print!("{}", verdict.lines());
    }
    println!("{line}");
}
