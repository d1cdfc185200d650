//! `sync-run snapshot` against a real RabbitMQ: scripts print exactly their expected lines
//! (the worked example, several snapshots in a row, sends between BeginSnapshot and
//! CollectState, KillAll with money still in transit), the same seed prints the same lines
//! as the simulator does, bad scripts are refused by line number before anything runs,
//! channel content stays on the broker until received, a node runs as its own process,
//! the random mode verifies with concurrent snapshots, and nothing is left behind.

mod common;

use common::{TestBroker, broker, finish, spawn, sync_run, unique};
use std::time::{Duration, Instant};
use sync_run::algorithms::snapshot::command::{peer_run, snapshot_broker};
use sync_run::algorithms::snapshot::protocol::{Body, Content, Message, Role, Who};
use sync_run::algorithms::snapshot::{node::Node, script, sim};
use sync_run::broker::peers::{Member, PeerRun};
use sync_run::contract::PeerId;

/// Everything of a snapshot run still on the broker.
async fn leftovers(tb: &TestBroker, run_id: &str, nodes: &[PeerId]) -> Vec<String> {
    common::run_leftovers(tb, &peer_run(run_id, nodes.to_vec())).await
}

fn write_script(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write the script");
    f
}

/// Runs `script` on the broker; returns (exit code, stdout, stderr).
fn run_script(
    tb: &TestBroker,
    run_id: &str,
    script: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let f = write_script(script);
    let path = f.path().to_string_lossy().to_string();
    let mut args = vec!["snapshot", path.as_str(), "--run-id", run_id];
    args.extend_from_slice(extra);
    let out = sync_run(&tb.url, &args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WORKED: &str = "StartMaster\nCreateNode 1 1000\nCreateNode 2 500\nSend 1 2 300\nSend 2 1 100\nSend 1 2 400\nReceive 2 1\nBeginSnapshot 1\nReceive 2\nReceive 2\nReceiveAll\nCollectState\nPrintSnapshot\nSend 1 2 5000\nKillAll\n";

const WORKED_OUT: &str = "1 Transfer 300\nStarted by Node 1\n1 Transfer 400\n1 SnapshotToken -1\n---Node states\nnode 1 = 300\nnode 2 = 1100\n---Channel states\nchannel (1 -> 2) = 0\nchannel (2 -> 1) = 100\nERR_SEND\n";

/// Three nodes, two snapshots in a row, sends between BeginSnapshot and CollectState,
/// every receive named so the expected lines follow by hand (see the comments).
const TWO_IN_A_ROW: &str = "StartMaster
CreateNode 1 100
CreateNode 2 200
CreateNode 3 300
Send 1 2 10
Send 2 3 20
BeginSnapshot 1
Send 3 1 5
Receive 2 1
Receive 2 1
Receive 3 1
ReceiveAll
CollectState
PrintSnapshot
Send 2 1 50
BeginSnapshot 3
Receive 1 3
Receive 1 2
Receive 2 3
ReceiveAll
CollectState
PrintSnapshot
Send 3 2 1000
KillAll
";

// Snapshot 1: node 1 records 90 (after sending 10); node 2 records 190 on 1's marker
// (after taking 10); node 3 records 295 on 1's marker (after sending 5). In transit across
// the cut: 20 on 2 -> 3 (sent before 2 recorded, taken after 3 did) and 5 on 3 -> 1.
// Snapshot 2: node 3 records 315; node 1 records 95 on 3's marker, then takes 50 from 2
// (sent before 2 recorded): channel 2 -> 1 holds 50; node 2 records 140.
const TWO_IN_A_ROW_OUT: &str = "Started by Node 1
1 Transfer 10
1 SnapshotToken -1
1 SnapshotToken -1
---Node states
node 1 = 90
node 2 = 190
node 3 = 295
---Channel states
channel (1 -> 2) = 0
channel (1 -> 3) = 0
channel (2 -> 1) = 0
channel (2 -> 3) = 20
channel (3 -> 1) = 5
channel (3 -> 2) = 0
Started by Node 3
3 SnapshotToken -1
2 Transfer 50
3 SnapshotToken -1
---Node states
node 1 = 95
node 2 = 140
node 3 = 315
---Channel states
channel (1 -> 2) = 0
channel (1 -> 3) = 0
channel (2 -> 1) = 50
channel (2 -> 3) = 0
channel (3 -> 1) = 0
channel (3 -> 2) = 0
ERR_SEND
";

/// KillAll with money still on a channel, and no snapshot: the bank's checks alone.
const KILL_IN_TRANSIT: &str = "StartMaster\nCreateNode 1 10\nCreateNode 2 10\nSend 1 2 7\nSend 2 1 3\nSend 1 2 4\nReceive 1\nKillAll\n";
const KILL_IN_TRANSIT_OUT: &str = "ERR_SEND\n2 Transfer 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_print_exactly_their_lines_and_leave_nothing() {
    let tb = broker().await;
    for (name, text, want) in [
        ("worked example", WORKED, WORKED_OUT),
        ("two snapshots in a row", TWO_IN_A_ROW, TWO_IN_A_ROW_OUT),
        (
            "KillAll with money in transit",
            KILL_IN_TRANSIT,
            KILL_IN_TRANSIT_OUT,
        ),
    ] {
        let run = unique("snap");
        let (code, out, err) = run_script(&tb, &run, text, &["--seed", "1"]);
        assert_eq!(out, want, "{name}: stdout\n{err}");
        assert_eq!(code, 0, "{name}: {err}");
        assert!(err.contains("VERIFIED"), "{name}: {err}");
        let nodes = script::parse(text).expect("parses").nodes();
        let left = leftovers(&tb, &run, &nodes).await;
        assert!(left.is_empty(), "{name}: left on the broker: {left:?}");
    }
}

/// A ring of ten nodes: transfers all round, a snapshot begun while they are on the
/// channels, random picks: the broker prints exactly what the simulator prints for the
/// same seed, twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_random_picks_print_what_the_simulator_prints() {
    let tb = broker().await;
    let mut text = String::from("StartMaster\n");
    for k in 1..=10 {
        text += &format!("CreateNode {k} {}\n", 100 * k);
    }
    for k in 1..=10 {
        text += &format!("Send {k} {} {}\n", k % 10 + 1, 10 + k);
    }
    text += "Receive 3\nReceive 7\nBeginSnapshot 4\n";
    for k in 1..=10 {
        text += &format!("Send {} {k} 1\n", k % 10 + 1);
    }
    text += "Receive 5\nReceive 6\nReceiveAll\nCollectState\nPrintSnapshot\nKillAll\n";
    let parsed = script::parse(&text).expect("parses");
    let want = sim::run_script(&parsed, 42, &sync_run::sim::SimConfig::calm(), 1)
        .master
        .expect("the simulated master ended")
        .printed
        .join("\n")
        + "\n";
    assert!(want.contains("---Channel states"), "{want}");
    for _ in 0..2 {
        let run = unique("snap10");
        let (code, out, err) = run_script(&tb, &run, &text, &["--seed", "42"]);
        assert_eq!(out, want, "{err}");
        assert_eq!(code, 0, "{err}");
        assert!(leftovers(&tb, &run, &parsed.nodes()).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scripts_are_refused_by_line_before_anything_runs() {
    let tb = broker().await;
    for (body, line, says) in [
        ("CreateNode 1 10\nFly 1", 3, "unknown command"),
        ("CreateNode 1 10\nSend 1 2 5", 3, "TO 2 is not a node"),
        ("CreateNode 1 10\nCreateNode 1 5", 3, "exists already"),
        ("CreateNode 1 ten", 2, "whole number"),
        ("CreateNode 1 10\nReceive", 3, "takes 1 or 2"),
        (
            "CreateNode 1 10\nCreateNode 2 1\nBeginSnapshot 1\nCreateNode 3 1",
            5,
            "between BeginSnapshot",
        ),
    ] {
        let run = unique("snapbad");
        let (code, out, err) = run_script(&tb, &run, &format!("StartMaster\n{body}\n"), &[]);
        assert_eq!(code, 2, "{body}: {err}");
        assert!(out.is_empty(), "{body}: {out}");
        assert!(err.contains(&format!("line {line}:")), "{body}: {err}");
        assert!(err.contains(says), "{body}: {err}");
        assert!(leftovers(&tb, &run, &[1, 2, 3]).await.is_empty(), "{body}");
    }
    // --json needs a file in script mode: its stdout is the script's lines.
    let (code, _, err) = run_script(&tb, &unique("snapj"), WORKED, &["--json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--json FILE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_file_carries_the_document_while_stdout_keeps_the_lines() {
    let tb = broker().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("run.json");
    let svg = dir.path().join("run.svg");
    let run = unique("snapjson");
    let (code, out, err) = run_script(
        &tb,
        &run,
        WORKED,
        &[
            "--json",
            &json.to_string_lossy(),
            "--report",
            &svg.to_string_lossy(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, WORKED_OUT);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON file"))
            .expect("JSON");
    assert_eq!(doc["schema"], "sync-run/snapshot/v2");
    assert_eq!(doc["verdict"]["verified"], true);
    assert_eq!(doc["verdict"]["checks"].as_array().map(Vec::len), Some(9));
    assert_eq!(doc["reports"].as_array().map(Vec::len), Some(2));
    let picture = std::fs::read_to_string(&svg).expect("the SVG");
    assert!(picture.contains("cut S1"), "the cut is drawn");
}

/// A message on a channel is held unacknowledged by its receiver until a `Receive` takes
/// it: when the node's connection goes, the broker has every untaken message back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_content_stays_on_the_broker_until_received() {
    use lapin::BasicProperties;
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    let tb = broker().await;
    let run_id = unique("snaphold");
    let run: PeerRun = peer_run(&run_id, vec![1, 2]);
    let b = snapshot_broker(&tb.broker());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node = {
        let (b, run, run_id) = (b.clone(), run.clone(), run_id.clone());
        tokio::spawn(async move {
            sync_run::broker::peers::drive_peer(
                &b,
                &run,
                2,
                Node::new(&run_id, 2, None),
                Instant::now(),
                stop_rx,
                |_| false,
            )
            .await
        })
    };
    let conn = sync_run::broker::connect(&b.url, "test publisher", Duration::from_secs(10))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    run.wiring()
        .declare(&ch, Default::default())
        .await
        .expect("declare");
    let publish = |from: Who, body: Body| {
        let ch = ch.clone();
        let x = run.exchange();
        let bytes = Message::new(&run_id, from, body).encode().expect("encodes");
        async move {
            ch.basic_publish(
                x.as_str().into(),
                "peer.2".into(),
                BasicPublishOptions::default(),
                &bytes,
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        }
    };
    let master = Who::Role(Role::Master);
    publish(
        master,
        Body::Create {
            cmd: 1,
            balance: 0,
            peers: vec![1],
            auto: None,
        },
    )
    .await;
    for (seq, amount) in [(1, 30), (2, 20)] {
        publish(
            Who::Node(1),
            Body::Channel {
                to: 2,
                seq,
                content: Content::Transfer { amount },
            },
        )
        .await;
    }
    publish(master, Body::Receive { cmd: 2, source: 1 }).await;
    // The master's inbox gets `done` and then `received` (30): the node took seq 1 only.
    let inbox = run.inbox_of(Member::Role("master"));
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < 2 && t.elapsed() < Duration::from_secs(20) {
        match ch
            .basic_get(
                inbox.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get")
        {
            Some(m) => got.push(
                Message::decode(&m.delivery.data, &run_id)
                    .expect("decodes")
                    .body,
            ),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        matches!(
            got.get(1),
            Some(Body::Received {
                seq: 1,
                content: Content::Transfer { amount: 30 },
                ..
            })
        ),
        "{got:?}"
    );
    // Nothing of node 2's inbox is ready: the untaken transfer is delivered and held.
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(run.inbox(2).as_str().into(), passive, Default::default())
        .await
        .expect("inbox");
    assert_eq!(q.message_count(), 0);
    // The node stops; its connection goes: the broker has the untaken transfer back.
    stop_tx.send(true).expect("stop");
    let report = node.await.expect("join").expect("the node ran");
    assert_eq!(report.unread, 1);
    let mut back = 0;
    let t = Instant::now();
    while back == 0 && t.elapsed() < Duration::from_secs(10) {
        back = ch
            .queue_declare(run.inbox(2).as_str().into(), passive, Default::default())
            .await
            .expect("inbox")
            .message_count();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(back, 1, "exactly the untaken message is back on the broker");
    run.delete(&b).await.expect("delete");
    sync_run::broker::close_quietly(&conn, "done").await;
}

/// Node 2 runs as its own process (`snapshot-node`); the script's output is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_as_its_own_process_takes_part() {
    let tb = broker().await;
    let run = unique("snapext");
    let node = spawn(
        &tb.url,
        &[
            "snapshot-node",
            "--run-id",
            &run,
            "--id",
            "2",
            "--timeout",
            "60s",
        ],
    );
    let (code, out, err) = run_script(&tb, &run, WORKED, &["--external", "2", "--seed", "1"]);
    assert_eq!(out, WORKED_OUT, "{err}");
    assert_eq!(code, 0, "{err}");
    let (ncode, nout, nerr) = finish(node);
    assert_eq!(ncode, 0, "{nout}{nerr}");
    assert!(nout.contains("node 2 of snapshot run"), "{nout}");
    assert!(leftovers(&tb, &run, &[1, 2]).await.is_empty());
}

/// The random mode: nodes transfer on their own while snapshots are taken, several at
/// once; every snapshot verifies at N = 4, 10 and 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_mode_verifies_concurrent_snapshots_at_4_10_50() {
    let tb = broker().await;
    for n in [4, 10, 50] {
        let run = unique("snaprand");
        let out = sync_run(
            &tb.url,
            &[
                "snapshot",
                "--nodes",
                &n.to_string(),
                "--transfers",
                "20",
                "--snapshots",
                "3",
                "--concurrent",
                "--seed",
                "7",
                "--run-id",
                &run,
                "--json",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "N={n}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
        assert_eq!(doc["verdict"]["verified"], true);
        assert_eq!(
            doc["markers"].as_u64(),
            Some(3 * n * (n - 1)),
            "N(N-1) markers per snapshot"
        );
        let snaps = doc["master"]["snapshots"].as_array().expect("snapshots");
        assert_eq!(snaps.len(), 3);
        let nodes: Vec<PeerId> = (1..=n as u32).collect();
        assert!(leftovers(&tb, &run, &nodes).await.is_empty(), "N={n}");
    }
}

/// A second run with the id of a run in progress is refused (exit 5) without touching
/// it; the first run, whose node 2 starts late (as its own process), still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_id_in_use_is_refused_and_the_first_run_goes_on() {
    let tb = broker().await;
    let run = unique("snapdup");
    let f = write_script(WORKED);
    let path = f.path().to_string_lossy().to_string();
    let first = spawn(
        &tb.url,
        &[
            "snapshot",
            &path,
            "--run-id",
            &run,
            "--external",
            "2",
            "--seed",
            "1",
            "--peer-timeout",
            "30s",
        ],
    );
    // The first run's master is up once its inbox exists.
    common::wait_for_consumer(&tb, &format!("sync-run.snapshot.{run}.master")).await;
    let (code, out, err) = run_script(&tb, &run, WORKED, &["--seed", "1"]);
    assert_eq!(code, 5, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("in use"), "{err}");
    let node = spawn(
        &tb.url,
        &[
            "snapshot-node",
            "--run-id",
            &run,
            "--id",
            "2",
            "--timeout",
            "60s",
        ],
    );
    let (code, out, err) = finish(first);
    assert_eq!(out, WORKED_OUT, "{err}");
    assert_eq!(code, 0, "{err}");
    let (ncode, _, nerr) = finish(node);
    assert_eq!(ncode, 0, "{nerr}");
    assert!(leftovers(&tb, &run, &[1, 2]).await.is_empty());
}

/// A node that never starts: the master gives up at its line after --peer-timeout, exit 1,
/// and the run is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_starts_stops_the_run_at_its_line() {
    let tb = broker().await;
    let run = unique("snapsilent");
    let (code, out, err) = run_script(
        &tb,
        &run,
        WORKED,
        &["--external", "2", "--peer-timeout", "1s"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("line 3: gave up waiting for node(s) {2}"),
        "{err}"
    );
    assert!(leftovers(&tb, &run, &[1, 2]).await.is_empty());
}

/// SIGTERM mid-run: every participant stops, the run is deleted, exit 143.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_deletes_everything() {
    let tb = broker().await;
    let run = unique("snapterm");
    let child = spawn(
        &tb.url,
        &[
            "snapshot",
            "--nodes",
            "6",
            "--transfers",
            "100000",
            "--step",
            "5ms",
            "--snapshots",
            "2",
            "--run-id",
            &run,
        ],
    );
    // Mid-run by construction: 100,000 transfers a node at one per 5 ms cannot be over
    // when the signal comes, half a second after the master is up.
    common::wait_for_consumer(&tb, &format!("sync-run.snapshot.{run}.master")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let (code, out, err) = finish(child);
    assert_eq!(code, 143, "{out}{err}");
    let nodes: Vec<PeerId> = (1..=6).collect();
    assert!(leftovers(&tb, &run, &nodes).await.is_empty());
}
