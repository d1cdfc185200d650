//! sync-run on a real three-node RabbitMQ cluster, and losing a node mid-run.
//!
//! The cluster is the test binary's own: `scripts/local-cluster.sh up` starts three
//! `rabbitmq-server` nodes from this machine's installation (their own names, ports, data
//! directory and Erlang cookie; never the broker on 5672), a watchdog removes it when this
//! process exits, and every `rabbitmqctl` call names its node (`local-cluster.sh ctl N …`).
//! Where `rabbitmq-server` is not installed, the tests fail saying what to install;
//! `SYNC_RUN_SKIP_CLUSTER=1` skips them instead, saying so.
//!
//! Every node loss happens mid-run **by construction**: an observer on the run's fanout (or
//! on a peer's inbox) sees the run reach a point, the run's process is frozen (SIGSTOP),
//! the test checks the run is not over, finds the node that holds the connection under
//! attack (`list_connections client_properties port`: the port says the node), stops its application
//! (`stop_app`) or kills its Erlang VM (SIGKILL), and lets the process go. The node is
//! brought back after each run, and every run is checked to leave nothing on any node.
//!
//! They run one at a time: a node loss would disturb any other run.

mod common;
mod observer;

use common::{finish, spawn, unique, verified};
use observer::{Observer, PeerObserver, freeze, is};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const REPEATS: usize = 5;

/// The three nodes, as `scripts/local-cluster.sh` runs them for this test binary.
struct Cluster {
    script: PathBuf,
    env: Vec<(String, String)>,
    ports: [u16; 3],
}

/// How a node is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// `rabbitmqctl -n NODE stop_app`: the node's application stops, its VM stays.
    StopApp,
    /// The node's Erlang VM killed with SIGKILL.
    Kill,
}

impl Cluster {
    fn sh(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Starting nodes may take minutes on a loaded machine; anything else that takes
        // more than a minute is stuck, and fails saying so instead of hanging the suite.
        let limit = match args.first() {
            Some(&"up") | Some(&"start") => Duration::from_secs(300),
            _ => Duration::from_secs(60),
        };
        common::output_within(&mut cmd, limit)
            .unwrap_or_else(|e| panic!("local-cluster.sh {args:?}: {e}"))
    }

    fn sh_ok(&self, args: &[&str]) -> String {
        let out = self.sh(args);
        assert!(
            out.status.success(),
            "local-cluster.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `rabbitmqctl -n <node i> args…` (i from 0).
    fn ctl(&self, i: usize, args: &[&str]) -> String {
        let mut all = vec!["ctl".to_string(), (i + 1).to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.sh_ok(&all)
    }

    fn url(&self, i: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.ports[i])
    }

    /// Every node's URL, as `--amqp-url` takes them.
    fn urls(&self) -> String {
        (0..3).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// The nodes (0, 1, 2) of the connections whose name (the one the client gave,
    /// `connection_name` in its properties) contains `needle`, as the cluster lists them
    /// (asked of `from`, a node that is up). The port a connection came in on says its node.
    fn nodes_of(&self, from: usize, needle: &str) -> Vec<(String, usize)> {
        const KEY: &str = "{\"connection_name\",\"";
        self.ctl(
            from,
            &[
                "-q",
                "list_connections",
                "--no-table-headers",
                "--timeout",
                "30",
                "client_properties",
                "port",
            ],
        )
        .lines()
        .filter_map(|l| {
            let (props, port) = l.rsplit_once('\t')?;
            let name = props.split_once(KEY)?.1.split_once('"')?.0;
            let port: u16 = port.trim().parse().ok()?;
            let node = self.ports.iter().position(|p| *p == port)?;
            name.contains(needle).then(|| (name.to_string(), node))
        })
        .collect()
    }

    /// Loses node `i` as `how` says.
    fn lose(&self, i: usize, how: Loss) {
        match how {
            // `rabbitmqctl -n NODE stop_app`, returning once the node's AMQP port is closed.
            Loss::StopApp => {
                self.sh_ok(&["stop", &(i + 1).to_string()]);
            }
            Loss::Kill => {
                self.sh_ok(&["kill", &(i + 1).to_string()]);
            }
        }
    }

    /// Loses node `i` as `how` says; the node comes back when the returned guard goes
    /// (at the end of the run, or when a failed assertion unwinds).
    fn lose_for_a_while(&self, i: usize, how: Loss) -> Lost<'_> {
        self.lose(i, how);
        Lost {
            cluster: self,
            node: i,
        }
    }

    /// Brings node `i` back and waits until it runs (it rejoins by itself).
    fn restore(&self, i: usize) {
        self.sh_ok(&["start", &(i + 1).to_string()]);
    }

    /// Every node runs (a test that failed half-way may have left one down).
    fn healthy(&self) {
        if !self.sh(&["status"]).status.success() {
            for i in 0..3 {
                self.restore(i);
            }
        }
    }
}

/// A node lost for the length of a run: brought back when dropped.
struct Lost<'a> {
    cluster: &'a Cluster,
    node: usize,
}

impl Drop for Lost<'_> {
    fn drop(&mut self) {
        let out = self.cluster.sh(&["start", &(self.node + 1).to_string()]);
        if !out.status.success() && !std::thread::panicking() {
            panic!(
                "node {} did not come back: {}",
                self.node + 1,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Cluster {
    /// Names of the queues and exchanges of run `run` that any node still lists (every
    /// node asked, at once).
    fn leftovers(&self, run: &str) -> Vec<String> {
        self.leftovers_on(&[0, 1, 2], run)
    }

    /// [`Cluster::leftovers`] as `nodes` list them.
    fn leftovers_on(&self, nodes: &[usize], run: &str) -> Vec<String> {
        std::thread::scope(|s| {
            let asks: Vec<_> = nodes
                .iter()
                .flat_map(|&i| ["list_queues", "list_exchanges"].map(|what| (i, what)))
                .map(|(i, what)| {
                    s.spawn(move || {
                        let listed = self.ctl(
                            i,
                            &["-q", what, "--no-table-headers", "--timeout", "30", "name"],
                        );
                        listed
                            .lines()
                            .filter(|l| l.contains(run))
                            .map(|l| format!("node {}: {l}", i + 1))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            asks.into_iter()
                .flat_map(|a| a.join().expect("a listing"))
                .collect()
        })
    }

    /// Brings the lost node back while the two others are checked for leftovers of `run`,
    /// then checks it too.
    fn back_and_clean(&self, lost: Lost<'static>, run: &str) -> Vec<String> {
        let node = lost.node;
        let survivors: Vec<usize> = (0..3).filter(|&i| i != node).collect();
        let restoring = std::thread::spawn(move || drop(lost));
        let mut left = self.leftovers_on(&survivors, run);
        if restoring.join().is_err() {
            panic!("node {} did not come back", node + 1);
        }
        left.extend(self.leftovers_on(&[node], run));
        left
    }
}

/// The cluster, started once for this test binary; `None`: skipped (said why).
fn cluster(test: &str) -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    if std::env::var_os("SYNC_RUN_SKIP_CLUSTER").is_some_and(|v| v == "1") {
        eprintln!("{test}: skipped: SYNC_RUN_SKIP_CLUSTER=1");
        return None;
    }
    match CLUSTER.get_or_init(start_cluster) {
        Ok(c) => Some(c),
        Err(why) => panic!("{test}: the cluster did not start: {why}"),
    }
}

/// The directory of the `rabbitmq-server` and `rabbitmqctl` the cluster's nodes run.
fn server_dir() -> Result<PathBuf, String> {
    common::local_rabbitmq()
        .and_then(|(server, _)| server.parent().map(PathBuf::from))
        .ok_or_else(|| {
            "the cluster tests start three RabbitMQ nodes of their own (never the broker at \
             AMQP_URL): install RabbitMQ's server (Debian/Ubuntu: `apt-get install \
             rabbitmq-server`; the service it starts is not touched), or set \
             SYNC_RUN_SKIP_CLUSTER=1 to skip them"
                .to_string()
        })
}

fn start_cluster() -> Result<Cluster, String> {
    let bin = server_dir()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/local-cluster.sh");
    let pid = std::process::id();
    let mut last = String::new();
    // Ports of their own (AMQP base..base+2, distribution base+10..base+12): try a few bases.
    for attempt in 0..5u16 {
        let base = 20_000 + ((pid as u16 % 1_000) * 20 + attempt * 4_000) % 40_000;
        let free = (0..3)
            .chain(10..13)
            .all(|d| std::net::TcpListener::bind(("127.0.0.1", base + d)).is_ok());
        if !free {
            continue;
        }
        let dir = std::env::temp_dir().join(format!("sync-run-test-cluster-{pid}-{base}"));
        let c = Cluster {
            script: script.clone(),
            env: vec![
                ("SYNC_RUN_CLUSTER_DIR".into(), dir.display().to_string()),
                (
                    "SYNC_RUN_CLUSTER_PREFIX".into(),
                    format!("sync-run-ct{base}"),
                ),
                ("SYNC_RUN_CLUSTER_PORT".into(), base.to_string()),
                (
                    "SYNC_RUN_CLUSTER_RABBITMQ_BIN".into(),
                    bin.display().to_string(),
                ),
            ],
            ports: [base, base + 1, base + 2],
        };
        let t = Instant::now();
        // The watchdog removes the cluster once this test process is gone.
        let out = c.sh(&["up", "--watch", &pid.to_string()]);
        if out.status.success() {
            eprintln!(
                "cluster up in {:.1?} on ports {base}..{}",
                t.elapsed(),
                base + 2
            );
            return Ok(c);
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Err(last)
}

// ---------------------------------------------------------------------------------------
// The list agreement.

/// What one run with a node lost showed.
struct Figures {
    /// From letting the frozen run go to the first grant after the loss (`None`: the run
    /// did not move on within 90 s).
    recover: Option<Duration>,
    wall: Duration,
    node: usize,
}

const LIST_SLAVES: usize = 10;
const LIST_ROUNDS: usize = 5;

/// One list run of 10 workers × 5 rounds with quorum queues (`topology`) on the three
/// nodes; frozen after its 3rd grant, the node holding the master's connection is lost
/// `how`, and the run let go. Returns the exit code, stdout, stderr and the figures.
async fn list_run_losing_the_masters_node(
    c: &'static Cluster,
    how: Loss,
    topology: &str,
    queue_type: &str,
    rep: usize,
) -> (i32, String, String, Figures) {
    c.healthy();
    let run = unique("cluster");
    let seed = rep.to_string();
    let (slaves, rounds) = (LIST_SLAVES.to_string(), LIST_ROUNDS.to_string());
    let args = [
        "--slaves",
        &slaves,
        "--rounds",
        &rounds,
        "--pace",
        "40ms",
        "--queue-type",
        queue_type,
        "--topology",
        topology,
        "--seed",
        &seed,
        "--run-id",
        &run,
        "--json",
        "--timeout",
        "90s",
        "--grant-timeout",
        "30s",
    ];
    // Watching from node 1 before the run starts: it misses nothing.
    let mut obs = Observer::new(&c.url(0), &run, false).await;
    let t = Instant::now();
    let child = spawn(&c.urls(), &args);
    obs.wait_for("grant 3", Duration::from_secs(60), |m| {
        is(m, "grant") && m["seq"].as_u64() >= Some(3)
    })
    .await;
    let frozen = freeze(&[child.id()]);
    // What the process sent just before it froze may still be on its way: a moment for it,
    // then everything routed to the observer up to now is read.
    tokio::time::sleep(Duration::from_millis(50)).await;
    obs.sync().await;
    assert!(
        !obs.seen.iter().any(|m| is(m, "end") || is(m, "abort")),
        "run {run}: over before the fault"
    );
    let last_grant = obs
        .seen
        .iter()
        .filter(|m| is(m, "grant"))
        .filter_map(|m| m["seq"].as_u64())
        .max()
        .unwrap_or(0);
    let masters = c.nodes_of(0, &format!("sync-run master {run}"));
    assert_eq!(
        masters.len(),
        1,
        "run {run}: the master's connection: {masters:?}"
    );
    let node = masters[0].1;
    // The observer of what comes after: on a node that stays.
    let survivor = (node + 1) % 3;
    let mut after = Observer::new(&c.url(survivor), &run, false).await;
    let lost = c.lose_for_a_while(node, how);
    drop(frozen);
    let resumed = Instant::now();
    // Until the run moves on (a grant after the last one seen before the loss, or its
    // end) or its process exits (a run that cannot survive the loss).
    let mut child = child;
    let mut recover = None;
    while resumed.elapsed() < Duration::from_secs(90) {
        let moved = after
            .saw(Duration::from_millis(20), |m| {
                (is(m, "grant") && m["seq"].as_u64() > Some(last_grant))
                    || is(m, "end")
                    || is(m, "abort")
            })
            .await;
        if moved {
            recover = Some(resumed.elapsed());
            break;
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
    }
    let (code, out, err) = finish(child);
    let wall = t.elapsed();
    after.close().await;
    if node != 0 {
        obs.close().await;
    }
    let left = c.back_and_clean(lost, &run);
    assert!(left.is_empty(), "run {run} left on the cluster: {left:?}");
    (
        code,
        out,
        err,
        Figures {
            recover,
            wall,
            node,
        },
    )
}

/// What a run that lost a node ended with, counted from its report.
#[derive(Default)]
struct Tally {
    /// Workers' lists that differ from the first worker's.
    divergent: usize,
    /// Entries short of workers × rounds in the first list.
    lost: usize,
    /// Grants committed more than once.
    twice: usize,
}

/// Checks a run that lost a node moved on and verified: every list identical, every entry
/// there once. Returns its time to recover and its tally (all zero, or it fails).
fn survived(code: i32, out: &str, err: &str, f: &Figures, what: &str) -> (Duration, Tally) {
    let expected = LIST_SLAVES * LIST_ROUNDS;
    let doc: serde_json::Value = serde_json::from_str(out)
        .unwrap_or_else(|e| panic!("{what}: JSON report: {e}: exit {code}\n{out}\n{err}"));
    let lists: Vec<&serde_json::Value> = doc["lists"]
        .as_object()
        .map(|l| l.values().collect())
        .unwrap_or_default();
    let first = lists.first().and_then(|l| l.as_array()).map_or(0, Vec::len);
    let grants = doc["grants"].as_array().cloned().unwrap_or_default();
    let committed: Vec<u64> = grants
        .iter()
        .filter(|g| g["status"] == "committed")
        .filter_map(|g| g["seq"].as_u64())
        .collect();
    let distinct: std::collections::BTreeSet<u64> = committed.iter().copied().collect();
    let tally = Tally {
        divergent: lists
            .iter()
            .filter(|l| Some(**l) != lists.first().copied())
            .count(),
        lost: expected.saturating_sub(first),
        twice: committed.len() - distinct.len(),
    };
    assert_eq!(code, 0, "{what}: {out}\n{err}");
    assert_eq!(lists.len(), LIST_SLAVES, "{what}: every worker's list");
    assert_eq!(
        (tally.divergent, tally.lost, tally.twice),
        (0, 0, 0),
        "{what}: divergent lists, lost entries, grants committed twice"
    );
    // The checker's own verdict, from the workers' lists.
    verified(out, expected);
    assert_eq!(
        distinct.len(),
        expected,
        "{what}: committed grants: {grants:?}"
    );
    assert_eq!(doc["evicted"], serde_json::json!([]), "{what}: evicted");
    assert_eq!(doc["lost"], serde_json::json!([]), "{what}: lost");
    let Some(recover) = f.recover else {
        panic!("{what}: verified, but no grant seen within 90 s of the loss: {err}");
    };
    (recover, tally)
}

/// Repeats the loss `how` of the master's node REPEATS times and prints the fault table's row.
async fn list_survives(test: &str, how: Loss) {
    let _serial = SERIAL.lock().await;
    let Some(c) = cluster(test) else { return };
    let mut recover = Vec::new();
    let mut sum = Tally::default();
    for rep in 0..REPEATS {
        let (code, out, err, f) =
            list_run_losing_the_masters_node(c, how, "queues", "quorum", rep).await;
        let (r, t) = survived(code, &out, &err, &f, &format!("{how:?} rep {rep}"));
        eprintln!(
            "{how:?} rep {rep}: lost node {} (the master's); first grant {r:.0?} after; verified in {:.1?}",
            f.node + 1,
            f.wall
        );
        recover.push(r);
        sum.divergent += t.divergent;
        sum.lost += t.lost;
        sum.twice += t.twice;
    }
    recover.sort();
    eprintln!(
        "FAULT TABLE {how:?}: runs {REPEATS}, divergent lists {}, lost entries {}, entries twice {}, time to recover min {:.1?} median {:.1?} max {:.1?}",
        sum.divergent,
        sum.lost,
        sum.twice,
        recover[0],
        recover[recover.len() / 2],
        recover[recover.len() - 1]
    );
}

/// A run of 50 workers spreads its connections over the three nodes and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_spreads_over_the_three_nodes_and_verifies() {
    let _serial = SERIAL.lock().await;
    let Some(c) = cluster("a_run_spreads_over_the_three_nodes_and_verifies") else {
        return;
    };
    c.healthy();
    let run = unique("cluster-spread");
    let mut obs = Observer::new(&c.url(0), &run, false).await;
    let child = spawn(
        &c.urls(),
        &[
            "--slaves",
            "50",
            "--queue-type",
            "quorum",
            "--run-id",
            &run,
            "--json",
            "--timeout",
            "90s",
        ],
    );
    obs.wait_for("grant 1", Duration::from_secs(60), |m| is(m, "grant"))
        .await;
    let nodes: std::collections::BTreeSet<usize> = {
        let _frozen = freeze(&[child.id()]);
        c.nodes_of(0, &run).into_iter().map(|(_, n)| n).collect()
    };
    let (code, out, err) = finish(child);
    obs.close().await;
    assert_eq!(code, 0, "{out}\n{err}");
    let doc = verified(&out, 50);
    assert_eq!(doc["lists"].as_object().map(|l| l.len()), Some(50));
    assert_eq!(
        nodes.len(),
        3,
        "the run's connections are on nodes {nodes:?} only"
    );
    let left = c.leftovers(&run);
    assert!(left.is_empty(), "left on the cluster: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_masters_node_stopped_mid_run_the_run_verifies_on_the_other_two() {
    list_survives(
        "the_masters_node_stopped_mid_run_the_run_verifies_on_the_other_two",
        Loss::StopApp,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_masters_node_killed_mid_run_the_run_verifies_on_the_other_two() {
    list_survives(
        "the_masters_node_killed_mid_run_the_run_verifies_on_the_other_two",
        Loss::Kill,
    )
    .await;
}

/// The stream topology (the stream replicated by RabbitMQ, the master's and the results
/// queue quorum): both losses, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_topology_survives_losing_the_masters_node() {
    let _serial = SERIAL.lock().await;
    let Some(c) = cluster("the_stream_topology_survives_losing_the_masters_node") else {
        return;
    };
    for how in [Loss::StopApp, Loss::Kill] {
        let (code, out, err, f) =
            list_run_losing_the_masters_node(c, how, "stream", "quorum", 0).await;
        let (r, _) = survived(code, &out, &err, &f, &format!("stream, {how:?}"));
        eprintln!(
            "stream, {how:?}: lost node {}; first grant {r:.0?} after; verified in {:.1?}",
            f.node + 1,
            f.wall
        );
    }
}

/// Classic queues live on one node: losing it loses the run. The run must end with a
/// clear error naming `--queue-type quorum` (exit 3), never with lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_queues_on_a_lost_node_end_the_run_with_a_clear_error() {
    let _serial = SERIAL.lock().await;
    let Some(c) = cluster("classic_queues_on_a_lost_node_end_the_run_with_a_clear_error") else {
        return;
    };
    let (code, out, err, f) =
        list_run_losing_the_masters_node(c, Loss::Kill, "queues", "classic", 0).await;
    assert_eq!(code, 3, "exit code; stdout {out}\nstderr {err}");
    assert!(
        err.contains("--queue-type quorum"),
        "the error names --queue-type quorum: {err}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("JSON: {e}: {out}"));
    assert_eq!(doc["schema"], "sync-run/error/v1", "{doc}");
    assert!(doc.get("lists").is_none(), "no lists: {doc}");
    eprintln!(
        "classic queues, node {} killed: exit 3 after {:.1?}: {}",
        f.node + 1,
        f.wall,
        err.lines().last().unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------
// Mutual exclusion and the bank.

/// A peer run (`args`, process/branch 1 watched) frozen once peer 1 has had `early`
/// messages and before it has `over` of `last`; the node holding the run's shared
/// connection is lost `how`; the run's checkers must verify.
async fn peer_run_losing_a_node(
    c: &'static Cluster,
    alg: &'static str,
    peers: u32,
    args: &[&str],
    early: u64,
    (last, over): (&str, u64),
    how: Loss,
) {
    c.healthy();
    let run_id = unique(&format!("{alg}-cluster"));
    let run = sync_run::broker::peers::PeerRun::numbered(alg, run_id.clone(), peers);
    let obs = PeerObserver::attach(&c.url(0), &run).await;
    let mut all = vec![alg];
    all.extend_from_slice(args);
    all.extend(["--queue-type", "quorum", "--run-id", &run_id, "--json"]);
    let t = Instant::now();
    let child = spawn(&c.urls(), &all);
    let t_wait = Instant::now();
    while obs.total() < early {
        assert!(
            t_wait.elapsed() < Duration::from_secs(60),
            "{alg}: {early} messages to peer 1 not seen"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let frozen = freeze(&[child.id()]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    obs.sync().await;
    assert!(
        obs.count(last) < over,
        "{alg}: the run was over before the fault"
    );
    // The run's shared connection (its participants' channels): its node goes.
    let conns = c.nodes_of(0, &format!("sync-run {alg} {run_id} #"));
    assert!(!conns.is_empty(), "{alg}: the run's connections: {conns:?}");
    let node = conns[0].1;
    let lost = c.lose_for_a_while(node, how);
    drop(frozen);
    let (code, out, err) = finish(child);
    let wall = t.elapsed();
    if node != 0 {
        obs.close().await;
    }
    let left = c.back_and_clean(lost, &run_id);
    assert_eq!(code, 0, "{alg}, {how:?}: {out}\n{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{alg}: JSON: {e}: {out}"));
    assert_eq!(
        doc["verdict"]["verified"], true,
        "{alg}: {}",
        doc["verdict"]
    );
    assert!(left.is_empty(), "{alg} left on the cluster: {left:?}");
    eprintln!(
        "{alg}, {how:?}: lost node {} (the run's shared connection) mid-run; verified in {wall:.1?}",
        node + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_exclusion_survives_losing_a_node() {
    let _serial = SERIAL.lock().await;
    let Some(c) = cluster("mutual_exclusion_survives_losing_a_node") else {
        return;
    };
    for how in [Loss::StopApp, Loss::Kill] {
        peer_run_losing_a_node(
            c,
            "mutex",
            4,
            &[
                "--processes",
                "4",
                "--entries",
                "20",
                "--hold",
                "20ms",
                "--timeout",
                "90s",
                // Longer than a failover can take (docs/cluster.md: after a SIGKILL, a
                // publish to a quorum queue that lost its leader may wait 10 s before the
                // adapter gives up on it and reconnects), so a peer is not named silent.
                "--peer-timeout",
                "30s",
            ],
            3,
            ("done", 3),
            how,
        )
        .await;
    }
}

/// A bank of 3 branches and 3 customers of 40 operations each.
fn bank_input() -> PathBuf {
    let mut items = Vec::new();
    let mut event = 0;
    for customer in 1..=3 {
        let events: Vec<serde_json::Value> = (0..40)
            .map(|k| {
                event += 1;
                match k % 3 {
                    0 => serde_json::json!({"id": event, "interface": "deposit", "money": 10}),
                    1 => serde_json::json!({"id": event, "interface": "withdraw", "money": 5}),
                    _ => serde_json::json!({"id": event, "interface": "query"}),
                }
            })
            .collect();
        items.push(serde_json::json!({"id": customer, "type": "customer", "events": events}));
    }
    for branch in 1..=3 {
        items.push(serde_json::json!({"id": branch, "type": "branch", "balance": 400}));
    }
    let path =
        std::env::temp_dir().join(format!("sync-run-cluster-bank-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::Value::Array(items).to_string())
        .expect("write the bank input");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_survives_losing_a_node() {
    let _serial = SERIAL.lock().await;
    let Some(c) = cluster("the_bank_survives_losing_a_node") else {
        return;
    };
    let path = bank_input();
    let input = path.display().to_string();
    for how in [Loss::StopApp, Loss::Kill] {
        peer_run_losing_a_node(
            c,
            "bank",
            3,
            &[&input, "--timeout", "60s", "--run-timeout", "90s"],
            6,
            ("end", 1),
            how,
        )
        .await;
    }
    let _ = std::fs::remove_file(&path);
}
