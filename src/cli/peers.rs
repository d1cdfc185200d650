//! What the commands of every point-to-point algorithm (mutex, clocks, and those after
//! them) share: choosing the run id and which processes run here, running them while the
//! reports are read from the results queue, writing the space-time diagram, and running
//! one process alone.

use super::session::Session;
use super::{Placement, usage_error};
use crate::broker::peers::{
    Launch, Member, PeerRun, Ran, drive_member, drive_members, local_failure, run_and_collect,
    run_peers,
};
use crate::broker::{Broker, BrokerError, Shutdown};
use crate::contract::{PeerId, StateMachine};
use crate::exit;
use crate::verdict::spacetime::Diagram;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// A run of `processes` peers of `alg` and the ids that run in this process (`--local`,
/// default all). An id out of range is a usage error; when some run elsewhere, says how
/// to start them (with the algorithm's `-process` command, e.g. `mutex-process`).
pub fn plan(
    s: &Session,
    alg: &'static str,
    place: &Placement,
    processes: u32,
) -> (PeerRun, Vec<PeerId>) {
    let run_id = place.run_id.clone().unwrap_or_else(super::random_run_id);
    let local: Vec<PeerId> = (place.local.clone()).unwrap_or_else(|| (1..=processes).collect());
    if let Some(bad) = local.iter().find(|k| !(1..=processes).contains(*k)) {
        usage_error(format!(
            "--local {bad}: process ids are 1 to --processes {processes}"
        ));
    }
    if !s.global.json && !s.global.quiet && local.len() < processes as usize {
        eprintln!(
            "{alg} run {run_id}: processes {local:?} here; start the others with `sync-run {alg}-process --run-id {run_id} --id K` and the same options"
        );
    }
    let run = PeerRun::numbered(alg, run_id, processes);
    (run, local)
}

/// A whole run from this process (`sync-run mutex`, `sync-run clocks`): plans it
/// ([`plan`]), makes the local processes (`machine(run_id, id)`), runs them and reads every
/// process's report (`decode(delivery, run_id)`) ([`run_local`], whose `Err(exit code)` it
/// returns).
pub async fn run_here<M: StateMachine, R>(
    s: &Session,
    alg: &'static str,
    place: &Placement,
    processes: u32,
    (timeout, peer_timeout): (Duration, Duration),
    machine: impl Fn(&str, PeerId) -> M,
    decode: impl Fn(&[u8], &str) -> Option<(PeerId, R)>,
) -> Result<(PeerRun, Finished<R>), i32> {
    let (run, local) = plan(s, alg, place, processes);
    let machines: Vec<(PeerId, M)> = local
        .iter()
        .map(|k| (*k, machine(&run.run_id, *k)))
        .collect();
    let f = run_local(s, &run, machines, timeout, peer_timeout, |b| {
        decode(b, &run.run_id)
    })
    .await?;
    Ok((run, f))
}

/// The reports of a finished run, sorted by process, and what else was seen.
pub struct Finished<R> {
    pub reports: Vec<R>,
    pub rejected_on_results: u64,
    pub wall: Duration,
}

/// Runs the local `machines` and reads every process's report (`decode` turns a delivery
/// into one); deletes the run at the end. `Err(exit code)` when the broker failed and no
/// report at all could be read (the failure is reported). A local process whose driver
/// failed is reported on stderr; the verdict then says it did not report.
pub async fn run_local<M: StateMachine, R>(
    s: &Session,
    run: &PeerRun,
    machines: Vec<(PeerId, M)>,
    timeout: Duration,
    peer_timeout: Duration,
    decode: impl Fn(&[u8]) -> Option<(PeerId, R)>,
) -> Result<Finished<R>, i32> {
    let collected = run_and_collect(
        &s.broker,
        run,
        machines,
        &s.shutdown,
        timeout + Duration::from_secs(5),
        peer_timeout + Duration::from_secs(2),
        decode,
    )
    .await;
    let c = collected.map_err(|e| s.broker_failure(&run.run_id, &e))?;
    for (k, e) in &c.errors {
        if !c.reports.contains_key(k) {
            eprintln!("sync-run: process {k}: {e}");
            if c.reports.is_empty() {
                return Err(s.broker_failure(&run.run_id, e));
            }
        }
    }
    Ok(Finished {
        reports: c.reports.into_values().collect(),
        rejected_on_results: c.rejected,
        wall: c.wall,
    })
}

/// `--report FILE.svg`: the space-time diagram. A failure to write it is reported and does
/// not change the verdict.
pub fn write_diagram(path: Option<&Path>, diagram: impl FnOnce() -> Diagram) {
    if let Some(path) = path {
        match crate::verdict::spacetime::write(&diagram(), path) {
            Ok(()) => eprintln!("space-time diagram written to {}", path.display()),
            Err(e) => eprintln!("sync-run: could not write {}: {e:#}", path.display()),
        }
    }
}

/// How one process's report reads, for [`alone`].
pub struct Alone<'a, F> {
    /// The JSON document's schema.
    pub schema: &'static str,
    /// Whether the process completed its part.
    pub completed: &'a dyn Fn(&F) -> bool,
    /// Its events, one line each.
    pub events: &'a dyn Fn(&F) -> String,
    /// How it ended, in a few words.
    pub outcome: &'a dyn Fn(&F) -> String,
}

/// Runs process `id` of `run` alone (`mutex-process`, `clocks-process`): prints its events
/// and how it ended (or, with `--json`, one document with its report), exits 0 when it
/// completed. The verdict is rendered by whoever reads every process's report.
pub async fn alone<M: StateMachine>(
    s: &Session,
    run: &PeerRun,
    id: PeerId,
    machine: M,
    how: Alone<'_, M::Finished>,
) -> i32
where
    M::Finished: Serialize,
{
    let say = |report: &M::Finished| {
        if !s.global.quiet {
            print!("{}", (how.events)(report));
        }
        println!(
            "process {id} of {} run {}: {}",
            run.alg,
            run.run_id,
            (how.outcome)(report)
        );
    };
    let member = Member::Peer(id);
    solo(s, run, member, machine, how.schema, how.completed, say).await
}

/// [`drive_alone`] on the session's broker, then what the participant ended with: with
/// `--json` its document (`schema`, [`alone_document`]), else `say(report)`. Every
/// participant command but one ends so; the exit code.
pub async fn solo<M: StateMachine>(
    s: &Session,
    run: &PeerRun,
    member: Member,
    machine: M,
    schema: &str,
    completed: impl Fn(&M::Finished) -> bool,
    say: impl FnOnce(&M::Finished),
) -> i32
where
    M::Finished: Serialize,
{
    let done = drive_alone(s, &s.broker, run, member, machine, completed).await;
    let (report, code) = match done {
        Ok(d) => d,
        Err(code) => return code,
    };
    if s.global.json {
        println!("{}", alone_document(schema, &run.run_id, code, &report));
    } else {
        say(&report);
    }
    code
}

/// Drives one participant of `run` alone until it ends (the commands that start one
/// process of a run elsewhere): `Ok((report, exit code))`, the code 0 when `completed`
/// says it did its part (or the signal's, when one stopped it), or `Err(exit code)` when
/// the broker failed it (reported). One piece, so every such command ends alike.
pub async fn drive_alone<M: StateMachine>(
    s: &Session,
    broker: &Broker,
    run: &PeerRun,
    member: Member,
    machine: M,
    completed: impl Fn(&M::Finished) -> bool,
) -> Result<(M::Finished, i32), i32> {
    let t0 = Instant::now();
    let r = drive_member(broker, run, member, machine, t0, s.shutdown.clone(), |r| {
        r.is_ok()
    })
    .await;
    let report = r.map_err(|e| s.broker_failure(&run.run_id, &e))?;
    let code = s.or_signal(if completed(&report) {
        exit::VERIFIED
    } else {
        exit::FAILED
    });
    Ok((report, code))
}

/// The `--json` document of one participant run alone: its `schema`, the run, the exit
/// code and its report (PROTOCOL.md, "Run documents").
pub fn alone_document(
    schema: &str,
    run_id: &str,
    code: i32,
    report: &impl Serialize,
) -> serde_json::Value {
    serde_json::json!({
        "schema": schema,
        "run_id": run_id,
        "exit_code": code,
        "report": report,
    })
}

/// What driving the members of a run of several roles returned, member by member.
pub type Driven<M> = Vec<(Member, Result<<M as StateMachine>::Finished, BrokerError>)>;

/// What an algorithm with roles gathers from a run (its `Gathered`): where each report
/// goes, and whether a numbered peer reported (a run where none did has nothing to verify).
pub trait Gather<R>: Default {
    /// Files one report.
    fn keep(&mut self, r: R);
    /// Whether a numbered peer (a branch, a market's peer) has reported.
    fn any_peer(&self) -> bool;
}

/// What a run of several roles read from its results queue besides the reports.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Deliveries on the results queue that were not a report of this run.
    pub rejected: u64,
    /// From the start of the drive to the last report read.
    pub wall: Duration,
}

/// Runs a run of several roles (the bank's, the market's): the members `machines(t0)`
/// builds are driven here on one connection pool, and every participant's report (local
/// or started elsewhere) is read from the results queue — `decode` reads one of this run,
/// `who` says whose it is — and gathered into `G`. A local member whose driver failed is
/// reported on stderr; `Err` only when every one failed and no peer reported (then
/// nothing is there to verify). One piece, so that the algorithms with roles run alike.
pub async fn run_members<M, R, K, E, G>(
    broker: &Broker,
    run: &PeerRun,
    shutdown: &Shutdown,
    launch: Launch<K>,
    machines: impl FnOnce(Instant) -> Vec<(Member, M)>,
    decode: fn(&[u8], &str) -> Result<R, E>,
    who: fn(&R) -> K,
) -> Result<(G, Tally), BrokerError>
where
    M: StateMachine,
    K: Ord + Clone,
    G: Gather<R>,
{
    let drive = |t0: Instant| drive_members(broker, run, machines(t0), t0, shutdown, |r| r.is_ok());
    let decode = |b: &[u8]| decode(b, &run.run_id).ok().map(|r| (who(&r), r));
    let ran: Ran<K, R, Driven<M>> = run_peers(broker, run, shutdown, launch, drive, decode).await?;
    let mut g = G::default();
    for r in ran.reports.into_values() {
        g.keep(r);
    }
    local_failure(run.alg, ran.driven, g.any_peer())?;
    let tally = Tally {
        rejected: ran.rejected,
        wall: ran.wall,
    };
    Ok((g, tally))
}
