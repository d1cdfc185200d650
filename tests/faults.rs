//! Faults against the real broker: lost connections, a worker killed with SIGKILL, a broker
//! restart with and without --durable. Each fault is repeated; every run must verify (or,
//! without --durable across a restart, end with a clear error), never hang past its
//! timeout, and leave nothing behind.
//!
//! These tests drive the local broker with `rabbitmqctl`, so they need the broker on this
//! machine (external mode); against a container broker they report that and do nothing.
//! They run one at a time: a broker restart would disturb any other run.

mod common;

use common::{TestBroker, broker, finish, leftovers, spawn, unique};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const REPEATS: usize = 5;

fn ctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pids of the broker's connections whose client-provided name contains `needle`.
fn connections(needle: &str) -> Vec<String> {
    ctl(&["-q", "list_connections", "pid", "client_properties"])
        .lines()
        .filter(|l| {
            l.split("\"connection_name\",\"")
                .nth(1)
                .is_some_and(|rest| {
                    rest.split('"')
                        .next()
                        .is_some_and(|name| name.contains(needle))
                })
        })
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn close_connections(needle: &str) -> usize {
    let pids = connections(needle);
    for pid in &pids {
        ctl(&["close_connection", pid, "sync-run fault test"]);
    }
    pids.len()
}

fn wait_for_connections(needle: &str, n: usize, within: Duration) {
    let t = Instant::now();
    while connections(needle).len() < n {
        assert!(
            t.elapsed() < within,
            "{n} connections named {needle:?} did not appear"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses the master's JSON report and checks the lists agree; returns the report.
fn verified(stdout: &str, entries: usize) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("JSON report: {e}: {stdout}"));
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    let lists = doc["lists"].as_object().expect("lists");
    let first = lists.values().next().expect("a list").clone();
    for l in lists.values() {
        assert_eq!(l, &first, "lists identical");
    }
    assert_eq!(
        first.as_array().map(Vec::len),
        Some(entries),
        "no entry lost, none twice"
    );
    doc
}

fn local(tb: &TestBroker) -> bool {
    if !tb.local_ctl {
        eprintln!(
            "fault tests need rabbitmqctl for the broker under test; not run against {}",
            tb.url
        );
    }
    tb.local_ctl
}

/// Workers sharing connections (`--connections`), with per-worker queues and with the
/// stream: a shared connection closed mid-run takes several workers down at once; they
/// reconnect through the pool (a stream reader re-reads the log from its start) and the
/// run verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_connections_reconnect_with_queues_and_with_the_stream() {
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    if !local(&tb) {
        return;
    }
    for rep in 0..REPEATS {
        let topology = if rep % 2 == 0 { "queues" } else { "stream" };
        let run = unique("pool");
        let (n, rounds) = (12, 3);
        let child = spawn(
            &tb.url,
            &[
                "--slaves",
                "12",
                "--connections",
                "3",
                "--topology",
                topology,
                "--rounds",
                "3",
                "--pace",
                "100ms",
                "--run-id",
                &run,
                "--json",
                "--timeout",
                "120s",
            ],
        );
        // Three shared connections for the workers and the master's own.
        wait_for_connections(&format!("workers {run} #"), 3, Duration::from_secs(20));
        wait_for_connections(&format!("master {run}"), 1, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(500));
        let mut closed = close_connections(&format!("workers {run} #2"));
        std::thread::sleep(Duration::from_millis(500));
        closed += close_connections(&format!("workers {run} #"));
        let (code, out, err) = finish(child);
        assert_eq!(code, 0, "rep {rep} ({topology}): {err}");
        assert!(
            closed >= 2,
            "rep {rep}: the run ended before the faults ({closed} closed)"
        );
        assert!(
            err.contains("connection lost; reconnecting"),
            "rep {rep}: {err}"
        );
        let doc = verified(&out, n * rounds);
        assert_eq!(doc["evicted"].as_array().map(Vec::len), Some(0));
        assert!(leftovers(&tb, &run, n as u32).await.is_empty());
        eprintln!("shared connections ({topology}) rep {rep}: closed {closed}, verified");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_reconnect_and_catch_up() {
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    if !local(&tb) {
        return;
    }
    for rep in 0..REPEATS {
        let run = unique("conn");
        let (n, rounds) = (10, 4);
        let child = spawn(
            &tb.url,
            &[
                "--slaves",
                "10",
                "--rounds",
                "4",
                "--pace",
                "150ms",
                "--run-id",
                &run,
                "--json",
                "--timeout",
                "120s",
            ],
        );
        wait_for_connections(&run, n + 1, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(300));
        // A worker's connection, then the master's, then two workers' at once.
        let mut closed = close_connections(&format!("worker {run} 3"));
        std::thread::sleep(Duration::from_millis(300));
        closed += close_connections(&format!("master {run}"));
        std::thread::sleep(Duration::from_millis(300));
        closed += close_connections(&format!("worker {run} 7"));
        closed += close_connections(&format!("worker {run} 9"));
        let (code, out, err) = finish(child);
        assert_eq!(code, 0, "rep {rep}: {err}");
        assert!(
            closed >= 3,
            "rep {rep}: the run ended before the faults ({closed} closed)"
        );
        assert!(
            err.contains("connection lost; reconnecting"),
            "rep {rep}: {err}"
        );
        let doc = verified(&out, n * rounds);
        assert_eq!(doc["evicted"].as_array().map(Vec::len), Some(0));
        assert!(leftovers(&tb, &run, n as u32).await.is_empty());
        eprintln!("lost connections rep {rep}: closed {closed}, verified");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_is_evicted_and_survivors_agree() {
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    if !local(&tb) {
        return;
    }
    for rep in 0..REPEATS {
        let run = unique("kill");
        let n = 10u32;
        let master = spawn(
            &tb.url,
            &[
                "master",
                "--slaves",
                "10",
                "--rounds",
                "5",
                "--pace",
                "100ms",
                "--grant-timeout",
                "1s",
                "--run-id",
                &run,
                "--json",
                "--timeout",
                "120s",
            ],
        );
        let workers: Vec<Child> = (1..=n)
            .map(|k| {
                spawn(
                    &tb.url,
                    &["worker", "--run-id", &run, "--id", &k.to_string()],
                )
            })
            .collect();
        wait_for_connections(&run, n as usize + 1, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(500));
        let victim = &workers[3]; // worker 4
        assert!(
            Command::new("kill")
                .args(["-9", &victim.id().to_string()])
                .status()
                .expect("kill")
                .success()
        );
        let t = Instant::now();
        let (code, out, err) = finish(master);
        assert_eq!(
            code, 4,
            "rep {rep}: verified with evictions expected: {out}{err}"
        );
        let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(doc["verdict"]["verified"], true);
        assert_eq!(
            doc["evicted"],
            serde_json::json!([4]),
            "the report names the evicted worker"
        );
        let lists = doc["lists"].as_object().expect("lists");
        assert_eq!(lists.len(), 9, "nine survivors reported");
        let first = lists.values().next().cloned();
        assert!(lists.values().all(|l| Some(l.clone()) == first));
        assert!(t.elapsed() < Duration::from_secs(60));
        for (k, w) in workers.into_iter().enumerate() {
            let (code, _, _) = finish(w);
            if k != 3 {
                assert_eq!(code, 0, "survivor {} exit", k + 1);
            }
        }
        assert!(leftovers(&tb, &run, n).await.is_empty());
        eprintln!("kill -9 rep {rep}: worker 4 evicted, 9 survivors agree");
    }
}

/// Brings the broker's application back up whatever happens in the test.
struct RestartGuard;
impl Drop for RestartGuard {
    fn drop(&mut self) {
        ctl(&["start_app"]);
        ctl(&["await_startup"]);
    }
}

/// One run of 5 workers whose broker restarts mid-run; `rep` odd: with the stream.
fn restart_broker_mid_run(
    url: &str,
    durable: bool,
    rep: usize,
) -> (i32, String, String, Duration, String) {
    let run = unique(if durable { "restart-d" } else { "restart-t" });
    let topology = if rep % 2 == 1 { "stream" } else { "queues" };
    let mut args = vec![
        "--topology",
        topology,
        "--slaves",
        "5",
        "--rounds",
        "12",
        "--pace",
        "100ms",
        "--run-id",
        &run,
        "--json",
        "--timeout",
        "60s",
        "--grant-timeout",
        "30s",
    ];
    if durable {
        args.push("--durable");
    }
    let t = Instant::now();
    let child = spawn(url, &args);
    wait_for_connections(&run, 6, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let guard = RestartGuard;
    ctl(&["stop_app"]);
    std::thread::sleep(Duration::from_secs(1));
    drop(guard); // start_app
    let (code, out, err) = finish(child);
    (code, out, err, t.elapsed(), run)
}

/// A stream never expires: whatever became of the run, its stream must be gone.
async fn no_stream_left(tb: &TestBroker, run: &str) {
    let left = leftovers(tb, run, 5).await;
    assert!(
        !left.iter().any(|l| l.ends_with(".log")),
        "the run's stream is left: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_with_durable_completes_and_without_fails_clearly() {
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    if !local(&tb) {
        return;
    }
    for rep in 0..REPEATS {
        let (code, out, err, took, run) = restart_broker_mid_run(&tb.url, true, rep);
        assert_eq!(code, 0, "rep {rep} durable: {out}{err}");
        no_stream_left(&tb, &run).await;
        assert!(
            err.contains("connection lost; reconnecting"),
            "rep {rep}: the restart happened mid-run: {err}"
        );
        let doc = verified(&out, 5 * 12);
        assert_eq!(
            doc["evicted"],
            serde_json::json!([]),
            "rep {rep}: nobody evicted"
        );
        assert!(took < Duration::from_secs(60), "rep {rep}: {took:?}");
        eprintln!(
            "durable restart rep {rep}: verified, evicted {}",
            doc["evicted"]
        );
    }
    for rep in 0..REPEATS {
        let (code, out, err, took, run) = restart_broker_mid_run(&tb.url, false, rep);
        assert_eq!(code, 3, "rep {rep} transient: {out}{err}");
        no_stream_left(&tb, &run).await;
        assert!(
            err.contains("use --durable"),
            "rep {rep}: clear error: {err}"
        );
        assert!(
            out.trim().is_empty(),
            "no lists printed for a lost run: {out}"
        );
        assert!(took < Duration::from_secs(60), "rep {rep}: {took:?}");
        eprintln!("transient restart rep {rep}: failed clearly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_master_takes_over_when_the_active_master_is_killed() {
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    if !local(&tb) {
        return;
    }
    for rep in 0..REPEATS {
        let run = unique("standby");
        let n = 10u32;
        let common = [
            "--slaves",
            "10",
            "--rounds",
            "3",
            "--pace",
            "60ms",
            "--run-id",
            &run,
            "--json",
            "--timeout",
            "120s",
        ];
        let active = spawn(&tb.url, &[&["master"][..], &common[..]].concat());
        wait_for_connections(&format!("master {run}"), 1, Duration::from_secs(20));
        let standby = spawn(
            &tb.url,
            &[&["master", "--standby"][..], &common[..]].concat(),
        );
        let workers: Vec<Child> = (1..=n)
            .map(|k| {
                spawn(
                    &tb.url,
                    &["worker", "--run-id", &run, "--id", &k.to_string()],
                )
            })
            .collect();
        wait_for_connections(&run, n as usize + 2, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            Command::new("kill")
                .args(["-9", &active.id().to_string()])
                .status()
                .expect("kill")
                .success()
        );
        let (code, out, err) = finish(standby);
        assert_eq!(code, 0, "rep {rep}: {out}{err}");
        assert!(
            err.contains("taking over as master"),
            "rep {rep}: the standby took over mid-run: {err}"
        );
        let doc = verified(&out, n as usize * 3);
        let seqs: Vec<u64> = doc["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .filter_map(|g| g["seq"].as_u64())
            .collect();
        assert_eq!(
            seqs,
            (1..=30).collect::<Vec<u64>>(),
            "rep {rep}: no grant issued twice, none skipped"
        );
        for w in workers {
            let (code, out, _) = finish(w);
            assert_eq!(code, 0, "worker: {out}");
        }
        let _ = finish(active);
        assert!(leftovers(&tb, &run, n).await.is_empty());
        eprintln!("standby rep {rep}: took over, verified");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_active_master_is_refused() {
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    let run = unique("two-masters");
    let first = spawn(
        &tb.url,
        &[
            "master",
            "--slaves",
            "2",
            "--run-id",
            &run,
            "--timeout",
            "20s",
        ],
    );
    wait_for_connections_or_sleep(&tb, &format!("master {run}"));
    let out = common::sync_run(&tb.url, &["master", "--slaves", "2", "--run-id", &run]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("leadership lock") && err.contains("--standby"),
        "{err}"
    );
    let _ = Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status();
    assert_eq!(finish(first).0, 130);
    assert!(leftovers(&tb, &run, 2).await.is_empty());
}

fn wait_for_connections_or_sleep(tb: &TestBroker, needle: &str) {
    if tb.local_ctl {
        wait_for_connections(needle, 1, Duration::from_secs(20));
    } else {
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_mid_run_are_rejected_counted_and_the_run_verifies() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    let _serial = SERIAL.lock().await;
    let tb = broker().await;
    let run = unique("bad");
    let n = 3usize;
    let child = spawn(
        &tb.url,
        &[
            "--slaves",
            "3",
            "--rounds",
            "10",
            "--pace",
            "100ms",
            "--run-id",
            &run,
            "--json",
            "--timeout",
            "60s",
        ],
    );
    wait_for_connections_or_sleep(&tb, &format!("master {run}"));
    std::thread::sleep(Duration::from_millis(800)); // started, seq 1 committed
    let w = |id: u32| format!(r#"{{"role":"worker","id":{id},"instance":1}}"#);
    let junk: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"{\"v\":1,".to_vec()),
        ("version", br#"{"v":2,"type":"grant"}"#.to_vec()),
        ("wrong_run", format!(r#"{{"v":1,"run":"elsewhere","from":{},"type":"append","seq":1,"worker":1,"value":5}}"#, w(1)).into_bytes()),
        ("forged grant", format!(r#"{{"v":1,"run":"{run}","from":{{"role":"master","instance":12345}},"type":"grant","seq":2,"worker":1,"lease_ms":5}}"#).into_bytes()),
        ("out of range", format!(r#"{{"v":1,"run":"{run}","from":{},"type":"append","seq":1,"worker":1,"value":100000}}"#, w(1)).into_bytes()),
        ("not granted", format!(r#"{{"v":1,"run":"{run}","from":{},"type":"append","seq":1,"worker":2,"value":5}}"#, w(2)).into_bytes()),
        ("too large", vec![b' '; sync_run::protocol::MAX_BODY_BYTES + 1]),
    ];
    let conn = sync_run::amqp::connect(&tb.broker().url, "junk", Duration::from_secs(5))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let fanout = sync_run::protocol::Names::new(&run).fanout();
    for (what, body) in &junk {
        ch.basic_publish(
            fanout.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("publish {what}: {e}"));
    }
    let _ = conn.close(200, "bye".into()).await;
    let (code, out, err) = finish(child);
    assert_eq!(code, 0, "{out}{err}");
    let doc = verified(&out, n * 10);
    // The master's queue is bound to the fanout too: it saw all of them.
    let by_master: u64 = doc["rejected_by_master"]
        .as_object()
        .expect("counts")
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(
        by_master,
        junk.len() as u64,
        "{}",
        doc["rejected_by_master"]
    );
    assert_eq!(
        doc["rejected_by_workers"],
        (junk.len() * n) as u64,
        "each worker rejected each"
    );
    assert!(err.contains("rejected a message"), "logged");
    assert!(leftovers(&tb, &run, n as u32).await.is_empty());
}
