//! `sync-run snapshot` (a script, or the random mode) and `sync-run snapshot-node`: the
//! master, the observer and the nodes as participants of one run on RabbitMQ, every node's
//! report read from the results queue, the checks, the output, the exit code.

use super::auto::{AutoConfig, AutoMaster};
use super::cli::{NodeArgs, SnapshotArgs};
use super::master::{MasterEnd, MasterOutcome, ScriptMaster};
use super::node::Node;
use super::observer::Observer;
use super::protocol::{self, Auto, Message};
use super::report::{NodeReport, Outcome};
use super::script;
use crate::broker::peers::{Launch, Member, PeerRun, drive_local, drive_member, run_peers};
use crate::broker::{Broker, BrokerError, now_ms};
use crate::cli::session::Session;
use crate::cli::peers::{self, alone_document, drive_alone};
use crate::cli::usage_error;
use crate::contract::{Millis, PeerId, StateMachine};
use crate::exit;
use crate::verdict::Verdict;
use std::path::Path;
use std::time::{Duration, Instant};

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// Chandy–Lamport global snapshots of a bank: run a command script (`sync-run snapshot
        /// SCRIPT.txt`, the course's language and print format) or random transfers with
        /// snapshots taken while they go on (`--nodes N`).
        Snapshot(SnapshotArgs) => run,
        /// One node of a snapshot run (start it anywhere; the script's master drives it).
        SnapshotNode(NodeArgs) => node_alone,
    ]
    bench: [
        /// Chandy–Lamport snapshots: the latency from BeginSnapshot to every state collected,
        /// markers per snapshot, at several N on a complete graph with transfers going on.
        Snapshot(super::cli::BenchArgs) => bench,
    ]
}

/// The roles every snapshot run has besides its nodes.
pub const ROLES: [&str; 2] = ["master", "observer"];

/// The run's names on the broker.
pub fn peer_run(run_id: &str, nodes: Vec<PeerId>) -> PeerRun {
    PeerRun {
        alg: "snapshot",
        run_id: run_id.to_owned(),
        peers: nodes,
        roles: ROLES.to_vec(),
        clients: Vec::new(),
        links: Default::default(),
    }
}

/// The broker settings of a snapshot run: a node holds every message on its channels
/// unacknowledged until it takes it, so the prefetch must not cap what it can hold.
pub fn snapshot_broker(b: &Broker) -> Broker {
    let mut b = b.clone();
    b.prefetch = u16::MAX;
    b
}

/// What a run gathered.
pub struct Gathered {
    pub master: MasterEnd,
    pub reports: Vec<NodeReport>,
    pub rejected_on_results: u64,
    pub wall: Duration,
}

/// Runs `master`, the observer and the `local` nodes of `run` here and reads every node's
/// report (local or started elsewhere) from the results queue ([`run_peers`], which
/// deletes the run at the end). `Err` when the broker failed the master or the reading of
/// the reports. A master that fails stops the observer and the local nodes at once.
#[allow(clippy::too_many_arguments)]
pub async fn execute<M>(
    broker: &Broker,
    shutdown: &crate::broker::Shutdown,
    run: &PeerRun,
    master: M,
    local: &[PeerId],
    t0: Instant,
    timeout: Duration,
    grace: Duration,
) -> Result<Gathered, BrokerError>
where
    M: StateMachine<Msg = Message, Finished = MasterEnd>,
{
    // A run id in use (its master is there: its inbox has a consumer) is refused. (A
    // node started first declares the master's inbox too: that is not a run in use.)
    let launch = Launch {
        probe: Some("master"),
        declare: None,
        expect: run.peers.clone(),
        limit: timeout + Duration::from_secs(5),
        grace,
    };
    let deadline: Millis = now_ms(t0) + timeout.as_millis() as Millis;
    let nodes: Vec<(PeerId, Node)> = local
        .iter()
        .map(|k| (*k, Node::new(&run.run_id, *k, Some(deadline))))
        .collect();
    // The participants here stop on a signal, or when the master failed (nobody would
    // tell them to stop otherwise).
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let forward = {
        let (mut signal, stop_tx) = (shutdown.clone(), stop_tx.clone());
        tokio::spawn(async move {
            crate::broker::stopped(&mut signal).await;
            let _ = stop_tx.send(true);
        })
    };
    // The master's times were set from `t0`: every participant here is driven on it.
    let drive = |_: Instant| async {
        let master_f = async {
            let r = drive_member(
                broker,
                run,
                Member::Role("master"),
                master,
                t0,
                stop.clone(),
                |r| r.is_ok(),
            )
            .await;
            if r.is_err() {
                let _ = stop_tx.send(true);
            }
            r
        };
        let observer_f = drive_member(
            broker,
            run,
            Member::Role("observer"),
            Observer::new(&run.run_id, Some(deadline)),
            t0,
            stop.clone(),
            |r| r.is_ok(),
        );
        let nodes_f = drive_local(broker, run, nodes, t0, &stop, |r| r.is_ok());
        tokio::join!(master_f, observer_f, nodes_f)
    };
    let decode = |b: &[u8]| {
        protocol::decode_report(b, &run.run_id)
            .ok()
            .map(|r| (r.id, r))
    };
    let ran = run_peers(broker, run, &stop, launch, drive, decode).await;
    forward.abort();
    let wall = t0.elapsed();
    let ran = ran?;
    let (master, observer, ends) = ran.driven;
    if let Err(e) = observer {
        tracing::warn!(error = %e, "the observer failed");
    }
    for (k, r) in &ends {
        if let Err(e) = r {
            eprintln!("sync-run: node {k}: {e}");
        }
    }
    Ok(Gathered {
        master: master?,
        reports: ran.reports.into_values().collect(),
        rejected_on_results: ran.rejected,
        wall,
    })
}

/// `sync-run snapshot`.
pub async fn run(s: &Session, a: &SnapshotArgs) -> i32 {
    match (&a.script, a.nodes) {
        (Some(path), _) => run_script(s, a, path).await,
        (None, Some(n)) => run_auto(s, a, n).await,
        (None, None) => {
            usage_error("give a SCRIPT file (or - for stdin), or --nodes N for the random mode")
        }
    }
}

fn read_script(path: &Path) -> String {
    let text = if path == Path::new("-") {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map(|_| t)
    } else {
        std::fs::read_to_string(path)
    };
    text.unwrap_or_else(|e| usage_error(format!("cannot read the script {}: {e}", path.display())))
}

fn seed(a: &SnapshotArgs) -> u64 {
    a.seed.unwrap_or_else(|| {
        let s = rand::random::<u64>() >> 11;
        eprintln!("sync-run snapshot: --seed {s}");
        s
    })
}

/// Writes the `--json` document: to its file if one is named, else to stdout.
fn write_json(s: &Session, text: String) {
    match s.global.json_file() {
        Some(f) => {
            if let Err(e) = std::fs::write(f, text + "\n") {
                eprintln!("sync-run: could not write {}: {e}", f.display());
            }
        }
        None => println!("{text}"),
    }
}

fn master_code(m: &MasterEnd) -> Option<i32> {
    match &m.outcome {
        MasterOutcome::Completed => None,
        MasterOutcome::Stalled { line, waiting_for } => {
            if *line > 0 {
                eprintln!(
                    "sync-run snapshot: line {line}: gave up waiting for {waiting_for}; the run was stopped and deleted"
                );
            } else {
                eprintln!(
                    "sync-run snapshot: gave up waiting for {waiting_for}; the run was stopped and deleted"
                );
            }
            Some(exit::FAILED)
        }
        MasterOutcome::DeadlineExpired => {
            eprintln!("sync-run snapshot: the run's --timeout passed; it was stopped and deleted");
            Some(exit::FAILED)
        }
        MasterOutcome::Interrupted { .. } => Some(exit::FAILED),
    }
}

async fn run_script(s: &Session, a: &SnapshotArgs, path: &Path) -> i32 {
    let text = read_script(path);
    let script =
        script::parse(&text).unwrap_or_else(|e| usage_error(format!("{}: {e}", path.display())));
    if s.global.json && s.global.json_file().is_none() {
        usage_error(
            "a script's standard output is its lines: give the JSON document a file, --json FILE",
        );
    }
    let nodes = script.nodes();
    if let Some(bad) = a.external.iter().find(|k| !nodes.contains(k)) {
        usage_error(format!(
            "--external {bad}: the script creates no node {bad}"
        ));
    }
    let local: Vec<PeerId> = nodes
        .iter()
        .copied()
        .filter(|k| !a.external.contains(k))
        .collect();
    let run_id = a.run_id.clone().unwrap_or_else(crate::cli::random_run_id);
    if !a.external.is_empty() {
        eprintln!(
            "snapshot run {run_id}: start node(s) {:?} with `sync-run snapshot-node --run-id {run_id} --id K`",
            a.external
        );
    }
    let seed = seed(a);
    let run = peer_run(&run_id, nodes.clone());
    let broker = snapshot_broker(&s.broker);
    let t0 = Instant::now();
    let master = ScriptMaster::new(
        &run_id,
        &script,
        seed,
        a.peer_timeout.as_millis() as Millis,
        Some(a.timeout.as_millis() as Millis),
        now_ms(t0),
    );
    // Standard output is the script's lines: a failure is said on stderr only.
    let fail = |e: &BrokerError| {
        eprintln!("sync-run: {e}");
        s.or_signal(e.exit_code())
    };
    let g = match execute(
        &broker,
        &s.shutdown,
        &run,
        master,
        &local,
        t0,
        a.timeout,
        a.peer_timeout,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => return fail(&e),
    };
    let m = &g.master;
    // Standard output: exactly the script's lines.
    for line in &m.printed {
        println!("{line}");
    }
    for note in &m.notes {
        eprintln!("sync-run snapshot: {note}");
    }
    let verdict = super::verify(&g.reports, &nodes, Some(m), None);
    let code = s.or_signal(master_code(m).unwrap_or(verdict.exit_code()));
    finish(s, a, &run_id, &g, &verdict, code, || {
        serde_json::json!({
                "mode": "script",
                "script": path.display().to_string(),
                "seed": seed,
                "nodes": nodes,
                "printed": m.printed,
                "notes": m.notes,
        })
    })
}

/// The run's JSON document: the mode's own `fields`, then what a run of either mode
/// reports (the master's end, the wall time, the peak memory, the nodes' reports).
fn document(
    run_id: &str,
    code: i32,
    verdict: &Verdict,
    g: &Gathered,
    mut fields: serde_json::Value,
) -> String {
    let tail = serde_json::json!({
        "master": g.master,
        "wall_ms": g.wall.as_millis() as u64,
        "peak_rss_kib": crate::bench::peak_rss_kib(),
        "rejected_on_results": g.rejected_on_results,
        "reports": g.reports,
    });
    if let (Some(o), serde_json::Value::Object(t)) = (fields.as_object_mut(), tail) {
        o.extend(t);
    }
    crate::verdict::Document::new("snapshot", run_id, code, verdict, fields)
        .to_json()
}

/// The end of a run of either mode: the diagram, the verdict on stderr (script mode) or
/// stdout, or the JSON document (the mode's own `fields`, only built when asked for);
/// gives back `code`, the run's exit code.
fn finish(
    s: &Session,
    a: &SnapshotArgs,
    run_id: &str,
    g: &Gathered,
    verdict: &Verdict,
    code: i32,
    fields: impl FnOnce() -> serde_json::Value,
) -> i32 {
    peers::write_diagram(a.report.as_deref(), || {
        super::diagram::diagram(&format!("snapshot run {run_id}"), &g.reports)
    });
    let summary = match verdict.failure_line() {
        None => format!(
            "VERIFIED: every snapshot consistent, every channel state exact, money conserved (run {run_id})"
        ),
        Some(f) => f,
    };
    let script = a.script.is_some();
    if s.global.json {
        write_json(s, document(run_id, code, verdict, g, fields()));
        if script {
            eprintln!("{summary}");
        }
    } else if script {
        if !s.global.quiet {
            eprint!("{}", verdict.lines());
        }
        eprintln!("{summary}");
    } else {
        if !s.global.quiet {
            print!("{}", verdict.lines());
        }
        println!("{summary}");
    }
    code
}

async fn run_auto(s: &Session, a: &SnapshotArgs, n: u32) -> i32 {
    let seed = seed(a);
    let run_id = a.run_id.clone().unwrap_or_else(crate::cli::random_run_id);
    let nodes: Vec<PeerId> = (1..=n).collect();
    let run = peer_run(&run_id, nodes.clone());
    let broker = snapshot_broker(&s.broker);
    let t0 = Instant::now();
    let cfg = AutoConfig {
        nodes: n,
        balance: a.balance,
        auto: Auto {
            transfers: a.transfers,
            snapshots: a.snapshots,
            step_ms: a.step.as_millis() as u64,
            max_delay_ms: a.max_delay.as_millis() as u64,
            max_amount: a.max_amount,
            seed,
        },
        concurrent: a.concurrent,
        reply_timeout: a.peer_timeout.as_millis() as Millis,
        deadline: Some(a.timeout.as_millis() as Millis),
    };
    let master = AutoMaster::new(&run_id, cfg, seed, now_ms(t0));
    let g = match execute(
        &broker,
        &s.shutdown,
        &run,
        master,
        &nodes,
        t0,
        a.timeout,
        a.peer_timeout,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    let m = &g.master;
    let verdict = super::verify(&g.reports, &nodes, Some(m), Some(a.snapshots));
    let code = s.or_signal(master_code(m).unwrap_or(verdict.exit_code()));
    let markers: usize = g
        .reports
        .iter()
        .flat_map(|r| r.events.iter())
        .filter(|e| {
            matches!(
                e,
                super::report::Event::Sent {
                    content: protocol::Content::Marker { .. },
                    ..
                }
            )
        })
        .count();
    if !s.global.json && !s.global.quiet {
        println!(
            "snapshot run {run_id}: {n} nodes, {} transfers each, {} snapshot(s){}, {markers} markers, in {:.3} s",
            a.transfers,
            a.snapshots,
            if a.concurrent {
                " at once"
            } else {
                " one after another"
            },
            g.wall.as_secs_f64()
        );
        for sn in &m.snapshots {
            let total: u64 = sn.states.iter().filter_map(|(_, r)| r.balance).sum();
            let chans: u64 = sn
                .states
                .iter()
                .flat_map(|(_, r)| r.channels.iter())
                .map(|c| c.sum())
                .sum();
            println!(
                "  snapshot {} begun at node {}: {} in the nodes + {} in transit = {}, collected in {} ms",
                sn.id,
                sn.initiator,
                total,
                chans,
                total + chans,
                sn.collected_ms
                    .map_or("-".to_owned(), |c| (c - sn.begun_ms).to_string())
            );
        }
    }
    finish(s, a, &run_id, &g, &verdict, code, || {
        serde_json::json!({
                "mode": "random",
                "seed": seed,
                "nodes": n,
                "transfers": a.transfers,
                "snapshots": a.snapshots,
                "concurrent": a.concurrent,
                "markers": markers,
        })
    })
}

/// `sync-run snapshot-node`: one node, driven by the master of the run; prints how it
/// ended. The verdict is rendered by `sync-run snapshot`, which reads every report.
pub async fn node_alone(s: &Session, a: &NodeArgs) -> i32 {
    // It declares its own inbox (and the roles' and the results); the master declares
    // every node's.
    let run = peer_run(&a.run_id, vec![a.id]);
    let broker = snapshot_broker(&s.broker);
    let node = Node::new(&a.run_id, a.id, Some(a.timeout.as_millis() as Millis));
    let done = drive_alone(s, &broker, &run, Member::Peer(a.id), node, |r| {
        r.outcome == Outcome::Stopped
    })
    .await;
    let (report, code) = match done {
        Ok(d) => d,
        Err(code) => return code,
    };
    if s.global.json {
        let doc = alone_document("sync-run/snapshot-node/v1", &a.run_id, code, &report);
        write_json(s, serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!(
            "node {} of snapshot run {}: {:?}, balance {}, {} events",
            a.id,
            a.run_id,
            report.outcome,
            report.balance,
            report.events.len()
        );
    }
    code
}

/// `sync-run bench snapshot`.
pub async fn bench(s: &Session, a: &super::cli::BenchArgs) -> i32 {
    super::bench::run(s, a).await
}
