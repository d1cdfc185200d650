//! Faults: lost connections, a worker killed with SIGKILL, a broker restart with and
//! without --durable, the active master killed under a standby. Each fault is repeated;
//! every run must verify (or, without --durable across a restart, end with a clear error),
//! never hang past its timeout, and leave nothing behind.
//!
//! Every test here runs against the test binary's **private** RabbitMQ node
//! ([`common::private_broker`]), addressed with `rabbitmqctl -n NODE`: these tests stop,
//! restart and close the connections of their broker, which must never be a broker they
//! did not start. As proof, each test first puts a canary queue holding one message on the
//! external broker (`AMQP_URL` / 127.0.0.1:5672, when one answers) and checks at the end
//! that the message is still there and that the canary's connection was never closed.
//!
//! Every fault happens mid-run by construction, not by timing: an observer queue bound to
//! the run's fanout exchange sees the master's grants; once it has seen an early grant the
//! participant processes are frozen (SIGSTOP), the observer checks that no `end` has been
//! published, the fault is applied while they are frozen, and they are let go (SIGCONT).
//! A frozen process cannot finish its run.
//!
//! They run one at a time: a broker restart would disturb any other run.

mod common;
mod observer;

use common::{
    PrivateBroker, TestBroker, close_connections, ctl_ok, finish, leftovers, spawn, unique,
    verified,
};
use futures::StreamExt;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use observer::{PeerObserver, freeze};
use std::collections::{BTreeMap, HashSet};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sync_run::algorithms::list::protocol::Names;
use sync_run::broker::BrokerUrl;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const REPEATS: usize = 5;

// ---------------------------------------------------------------------------------------
// The private broker, and the canary on the external one.

/// What every test here starts with: the canary on the external broker, then the private
/// broker. `None`: skipped (`SYNC_RUN_SKIP_FAULTS=1`).
struct Setup {
    pb: &'static PrivateBroker,
    tb: TestBroker,
    canary: Option<Canary>,
    test: &'static str,
    started: Instant,
}

async fn setup(test: &'static str) -> Option<Setup> {
    if common::skip_faults(test) {
        return None;
    }
    let started = Instant::now();
    // The canary goes first: it also watches the private node's start.
    let canary = Canary::put(test).await;
    let pb = common::private_broker();
    Some(Setup {
        pb,
        tb: pb.test_broker(),
        canary,
        test,
        started,
    })
}

impl Setup {
    /// The test's end: the external broker's canary is intact.
    async fn done(self) {
        if let Some(c) = self.canary {
            c.check(self.test).await;
        }
        eprintln!("{}: passed in {:.1?}", self.test, self.started.elapsed());
    }
}

/// A queue with one message on the external broker, and the connection that put it there,
/// kept open: both must survive everything a fault test does.
struct Canary {
    conn: Connection,
    ch: Channel,
    queue: String,
    body: Vec<u8>,
    errors: Arc<Mutex<Vec<String>>>,
    url: String,
}

impl Canary {
    async fn put(test: &str) -> Option<Canary> {
        let url = common::external_url();
        let parsed = BrokerUrl::parse(&url).expect("AMQP_URL parses");
        if !common::answers(&url) {
            eprintln!(
                "{test}: no broker answers at {}: no canary there",
                parsed.redacted()
            );
            return None;
        }
        let conn = sync_run::broker::connect(
            &parsed,
            "sync-run fault-test canary",
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("canary: connect to {}: {e}", parsed.redacted()));
        let errors = Arc::new(Mutex::new(vec![]));
        let mut events = conn.events_listener();
        let seen = errors.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                if let lapin::Event::Error(e) = ev {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        });
        let ch = conn.create_channel().await.expect("canary channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("canary confirms");
        let queue = unique("sync-run-fault-canary");
        // A safety net only: if this test process dies, the queue goes after 30 minutes.
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongLongInt(30 * 60 * 1000));
        ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
            .await
            .expect("declare the canary queue");
        let body = format!("canary of {test}").into_bytes();
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .expect("publish the canary")
        .await
        .expect("canary confirmed");
        Some(Canary {
            conn,
            ch,
            queue,
            body,
            errors,
            url: parsed.redacted().to_string(),
        })
    }

    async fn check(self, test: &str) {
        let errors = self.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty() && self.conn.status().connected(),
            "{test}: the canary's connection to the external broker {} was closed: {errors:?}",
            self.url
        );
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = self
            .ch
            .queue_declare(self.queue.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{test}: the canary queue {} on the external broker {} is gone: {e}",
                    self.queue, self.url
                )
            });
        assert_eq!(
            q.message_count(),
            1,
            "{test}: the canary queue on the external broker lost its message"
        );
        let got = self
            .ch
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get the canary")
            .expect("the canary message");
        assert_eq!(got.delivery.data, self.body, "{test}: the canary's message");
        self.ch
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete the canary queue");
        // Bounded: a close-ok the broker never sends must not hang the suite.
        tokio::time::timeout(
            Duration::from_secs(10),
            self.conn.close(200, "canary checked".into()),
        )
        .await
        .expect("the canary's connection closes within 10 s")
        .expect("close the canary's connection");
        eprintln!(
            "{test}: canary on {} intact (message kept, connection never closed)",
            self.url
        );
    }
}

// ---------------------------------------------------------------------------------------
// Faults on the private broker.

/// Brings the private broker's application back up whatever happens in the test.
struct RestartGuard(&'static PrivateBroker);
impl Drop for RestartGuard {
    fn drop(&mut self) {
        self.0.ctl(&["start_app"]);
        self.0.ctl(&["await_startup"]);
    }
}

// ---------------------------------------------------------------------------------------
// Freezing participants, and watching the run.

fn pid(c: &Child) -> u32 {
    c.id()
}

/// What the observer has seen of a run.
#[derive(Default)]
struct Seen {
    /// Grants by seq: the worker each named.
    grants: BTreeMap<u64, u64>,
    /// `end` or `abort` seen.
    over: Option<String>,
    markers: HashSet<String>,
}

impl Seen {
    fn take(&mut self, body: &[u8]) {
        if let Some(marker) = body.strip_prefix(b"observer-marker ") {
            self.markers
                .insert(String::from_utf8_lossy(marker).into_owned());
            return;
        }
        // Junk published by a test is not for us: ignore what does not parse.
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let parts = match msg["type"].as_str() {
            Some("batch") => msg["messages"].as_array().cloned().unwrap_or_default(),
            _ => vec![msg],
        };
        for part in parts {
            match part["type"].as_str() {
                Some("grant") => {
                    if let (Some(seq), Some(w)) = (part["seq"].as_u64(), part["worker"].as_u64()) {
                        self.grants.insert(seq, w);
                    }
                }
                Some(t @ ("end" | "abort")) => {
                    self.over.get_or_insert_with(|| t.to_string());
                }
                _ => {}
            }
        }
    }

    fn last_grant(&self) -> u64 {
        self.grants.keys().next_back().copied().unwrap_or(0)
    }
}

/// The test's own view of a run: an exclusive, server-named queue bound to the run's
/// fanout exchange, declared before the run starts, so it sees everything the master
/// broadcasts from the first message on.
struct Observer {
    conn: Connection,
    ch: Channel,
    queue: String,
    seen: Arc<Mutex<Seen>>,
    run: String,
}

impl Observer {
    /// `durable` must be the run's `--durable`: the fanout is declared exactly as the
    /// master declares it (fanout, auto-delete, durable per --durable, no arguments).
    async fn attach(pb: &PrivateBroker, run: &str, durable: bool) -> Observer {
        // Named without the run id: nothing that looks for the run's connections finds it.
        let observer::Watch {
            conn,
            ch,
            queue,
            mut consumer,
        } = observer::watch(
            &pb.url,
            "sync-run fault observer",
            &Names::new(run).fanout(),
            lapin::ExchangeKind::Fanout,
            durable,
            "",
        )
        .await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let into = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                into.lock().unwrap().take(&d.data);
            }
        });
        Observer {
            conn,
            ch,
            queue,
            seen,
            run: run.to_string(),
        }
    }

    /// Waits until the observer has seen grant `seq`; fails if the run is over first.
    async fn wait_grant(&self, seq: u64) {
        let t = Instant::now();
        loop {
            {
                let s = self.seen.lock().unwrap();
                assert!(
                    s.over.is_none(),
                    "run {}: {:?} before grant {seq} was seen",
                    self.run,
                    s.over
                );
                if s.last_grant() >= seq {
                    return;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "run {}: grant {seq} not seen within 90 s (last: {})",
                self.run,
                self.seen.lock().unwrap().last_grant()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Returns once the observer has read everything routed to it before this call: a
    /// marker sent to its own queue comes back behind it.
    async fn sync(&self) {
        let marker = unique("m");
        self.ch
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                format!("observer-marker {marker}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("observer: publish a marker");
        let t = Instant::now();
        while !self.seen.lock().unwrap().markers.contains(&marker) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "observer: marker not back"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Freezes `pids` (the processes that could end the run), makes sure the run has not
    /// ended, applies `fault` while they are frozen, then lets them go. The fault is
    /// therefore mid-run by construction.
    async fn while_frozen<T>(&self, pids: &[u32], what: &str, fault: impl FnOnce() -> T) -> T {
        let frozen = freeze(pids);
        // A message the frozen processes sent just before may still be in flight: give it
        // a moment, then read everything up to now.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.sync().await;
        {
            let s = self.seen.lock().unwrap();
            assert!(
                s.over.is_none(),
                "run {}: {:?} before the fault ({what})",
                self.run,
                s.over
            );
        }
        let out = fault();
        drop(frozen);
        out
    }

    fn grant_of(&self, seq: u64) -> Option<u64> {
        self.seen.lock().unwrap().grants.get(&seq).copied()
    }

    /// Closes the observer (before the leak check: its binding keeps the fanout alive).
    async fn close(self) {
        if self.conn.status().connected() {
            sync_run::broker::close_quietly(&self.conn, "observer done").await;
        }
    }
}

/// Waits until `queue` exists on the broker (passive declares over AMQP).
async fn wait_queue(pb: &PrivateBroker, queue: &str) {
    let url = BrokerUrl::parse(&pb.url).expect("URL");
    let conn = sync_run::broker::connect(&url, "sync-run fault probe", Duration::from_secs(10))
        .await
        .expect("probe: connect");
    let t = Instant::now();
    loop {
        let ch = conn.create_channel().await.expect("probe: channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "queue {queue} did not appear"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sync_run::broker::close_quietly(&conn, "probe done").await;
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Workers sharing connections (`--connections`), with per-worker queues and with the
/// stream: a shared connection closed mid-run takes several workers down at once; they
/// reconnect through the pool (a stream reader re-reads the log from its start) and the
/// run verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_connections_reconnect_with_queues_and_with_the_stream() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("shared_connections_reconnect_with_queues_and_with_the_stream").await
    else {
        return;
    };
    for rep in 0..REPEATS {
        let topology = if rep % 2 == 0 { "queues" } else { "stream" };
        let run = unique("pool");
        let (n, rounds) = (12, 3);
        let obs = Observer::attach(s.pb, &run, false).await;
        let child = spawn(
            &s.pb.url,
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
                // Frozen time counts against the lease: no eviction for being frozen.
                "--grant-timeout",
                "60s",
                "--run-id",
                &run,
                "--json",
                "--timeout",
                "120s",
            ],
        );
        // 36 grants in all: one shared connection at grant 2, all three at grant 14.
        obs.wait_grant(2).await;
        let first = obs
            .while_frozen(&[pid(&child)], "closing workers #2", || {
                close_connections(s.pb, &[format!("workers {run} #2")])
            })
            .await;
        obs.wait_grant(14).await;
        let all = obs
            .while_frozen(&[pid(&child)], "closing all worker connections", || {
                close_connections(s.pb, &[format!("workers {run} #")])
            })
            .await;
        let (code, out, err) = finish(child);
        obs.close().await;
        assert_eq!(code, 0, "rep {rep} ({topology}): {err}");
        assert_eq!(first, 1, "rep {rep}: shared connection #2 closed");
        assert!(all >= 3, "rep {rep}: all shared connections closed ({all})");
        assert!(
            err.contains("connection lost; reconnecting"),
            "rep {rep}: {err}"
        );
        let doc = verified(&out, n * rounds);
        assert_eq!(doc["evicted"].as_array().map(Vec::len), Some(0));
        assert_eq!(leftovers(&s.tb, &run, n as u32).await, Vec::<String>::new());
        eprintln!("shared connections ({topology}) rep {rep}: closed {first} then {all}, verified");
    }
    s.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_reconnect_and_catch_up() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("lost_connections_reconnect_and_catch_up").await else {
        return;
    };
    for rep in 0..REPEATS {
        let run = unique("conn");
        let (n, rounds) = (10, 4);
        let obs = Observer::attach(s.pb, &run, false).await;
        let child = spawn(
            &s.pb.url,
            &[
                "--slaves",
                "10",
                "--rounds",
                "4",
                "--pace",
                "150ms",
                "--grant-timeout",
                "60s",
                "--run-id",
                &run,
                "--json",
                "--timeout",
                "120s",
            ],
        );
        // 40 grants in all. A worker's connection, then the master's, then two workers'
        // at once, each while the process is frozen.
        let mut closed = vec![];
        for (at, needles) in [
            (2, vec![format!("worker {run} 3")]),
            (12, vec![format!("master {run}")]),
            (
                22,
                vec![format!("worker {run} 7"), format!("worker {run} 9")],
            ),
        ] {
            obs.wait_grant(at).await;
            let n = obs
                .while_frozen(&[pid(&child)], &format!("closing {needles:?}"), || {
                    close_connections(s.pb, &needles)
                })
                .await;
            closed.push(n);
        }
        let (code, out, err) = finish(child);
        obs.close().await;
        assert_eq!(code, 0, "rep {rep}: {err}");
        assert_eq!(closed, [1, 1, 2], "rep {rep}: connections closed mid-run");
        assert!(
            err.contains("connection lost; reconnecting"),
            "rep {rep}: {err}"
        );
        let doc = verified(&out, n * rounds);
        assert_eq!(doc["evicted"].as_array().map(Vec::len), Some(0));
        assert_eq!(leftovers(&s.tb, &run, n as u32).await, Vec::<String>::new());
        eprintln!("lost connections rep {rep}: closed {closed:?}, verified");
    }
    s.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_is_evicted_and_survivors_agree() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("killed_worker_is_evicted_and_survivors_agree").await else {
        return;
    };
    for rep in 0..REPEATS {
        let run = unique("kill");
        let n = 10u32;
        let obs = Observer::attach(s.pb, &run, false).await;
        let master = spawn(
            &s.pb.url,
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
        let mut workers: Vec<Child> = (1..=n)
            .map(|k| {
                spawn(
                    &s.pb.url,
                    &["worker", "--run-id", &run, "--id", &k.to_string()],
                )
            })
            .collect();
        // 50 grants in all; worker 4 dies at grant 2, while the master (which alone could
        // end the run) is frozen.
        obs.wait_grant(2).await;
        obs.while_frozen(&[pid(&master)], "killing worker 4", || {
            workers[3].kill().expect("kill -9 worker 4");
        })
        .await;
        let t = Instant::now();
        let (code, out, err) = finish(master);
        obs.close().await;
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
        assert_eq!(leftovers(&s.tb, &run, n).await, Vec::<String>::new());
        eprintln!("kill -9 rep {rep}: worker 4 evicted, 9 survivors agree");
    }
    s.done().await;
}

/// One run of 5 workers whose broker restarts mid-run (stop_app while the run's process is
/// frozen after grant 2 of 60, then start_app); `rep` odd: with the stream.
async fn restart_broker_mid_run(
    pb: &'static PrivateBroker,
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
    let obs = Observer::attach(pb, &run, durable).await;
    let t = Instant::now();
    let child = spawn(&pb.url, &args);
    obs.wait_grant(2).await;
    // The node goes down while the run is frozen; the run is let go before the node comes
    // back up (as in a real restart, it finds the broker gone and retries), which keeps the
    // freeze short: frozen time counts against the run's timers, and a broker step under
    // way when it was frozen must not be declared stalled (10 s) because of the freeze.
    let guard = RestartGuard(pb);
    obs.while_frozen(&[pid(&child)], "stopping the broker", || {
        ctl_ok(pb, &["stop_app"]);
    })
    .await;
    ctl_ok(pb, &["start_app"]);
    std::mem::forget(guard);
    // The observer's connection went with the restart.
    drop(obs);
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
    let Some(s) = setup("broker_restart_with_durable_completes_and_without_fails_clearly").await
    else {
        return;
    };
    for rep in 0..REPEATS {
        let (code, out, err, took, run) = restart_broker_mid_run(s.pb, true, rep).await;
        assert_eq!(code, 0, "rep {rep} durable: {out}{err}");
        no_stream_left(&s.tb, &run).await;
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
        assert!(took < Duration::from_secs(60), "rep {rep}: {took:?}: {err}");
        eprintln!("durable restart rep {rep}: verified in {took:.1?}");
    }
    for rep in 0..REPEATS {
        let (code, out, err, took, run) = restart_broker_mid_run(s.pb, false, rep).await;
        assert_eq!(code, 3, "rep {rep} transient: {out}{err}");
        no_stream_left(&s.tb, &run).await;
        assert!(
            err.contains("use --durable"),
            "rep {rep}: clear error: {err}"
        );
        // With --json, a lost run prints an error document, never lists.
        let doc: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("rep {rep}: error JSON: {e}: {out}"));
        assert_eq!(doc["schema"], "sync-run/error/v1", "rep {rep}: {out}{err}");
        assert_eq!(doc["error"]["kind"], "run_lost", "rep {rep}: {out}{err}");
        assert_eq!(doc["exit_code"], 3, "rep {rep}: {out}{err}");
        assert!(doc.get("lists").is_none(), "no lists for a lost run: {out}");
        assert!(took < Duration::from_secs(60), "rep {rep}: {took:?}: {err}");
        eprintln!("transient restart rep {rep}: failed clearly in {took:.1?}");
    }
    s.done().await;
}

/// Waits until the standby master `standby` of `run` has bound its queue to the run's
/// fanout, so it follows the run from its start; returns it.
fn wait_for_standby(pb: &PrivateBroker, run: &str, mut standby: Child) -> Child {
    let names = Names::new(run);
    let (fanout, prefix) = (names.fanout(), format!("sync-run.{run}.standby."));
    let t = Instant::now();
    loop {
        let out = pb.ctl(&["-q", "list_bindings", "source_name", "destination_name"]);
        let bound = String::from_utf8_lossy(&out.stdout).lines().any(|l| {
            let mut cols = l.split_whitespace();
            cols.next() == Some(fanout.as_str())
                && cols.next().is_some_and(|d| d.starts_with(&prefix))
        });
        if bound {
            return standby;
        }
        if let Ok(Some(_)) = standby.try_wait() {
            let (code, out, err) = finish(standby);
            panic!("the standby of {run} exited ({code}) before binding its queue: {out}{err}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the standby of {run} did not bind its queue within 120 s: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_master_takes_over_when_the_active_master_is_killed() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("standby_master_takes_over_when_the_active_master_is_killed").await else {
        return;
    };
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
        let obs = Observer::attach(s.pb, &run, false).await;
        let mut active = spawn(&s.pb.url, &[&["master"][..], &common[..]].concat());
        // The active master holds the leadership lock before it declares the results queue.
        wait_queue(s.pb, &Names::new(&run).results_queue()).await;
        let standby = spawn(
            &s.pb.url,
            &[&["master", "--standby"][..], &common[..]].concat(),
        );
        let standby = wait_for_standby(s.pb, &run, standby);
        let workers: Vec<Child> = (1..=n)
            .map(|k| {
                spawn(
                    &s.pb.url,
                    &["worker", "--run-id", &run, "--id", &k.to_string()],
                )
            })
            .collect();
        // 30 grants in all; the active master dies (SIGKILL) at grant 5, frozen.
        obs.wait_grant(5).await;
        obs.while_frozen(&[pid(&active)], "killing the active master", || {
            active.kill().expect("kill -9 the active master");
        })
        .await;
        let (code, out, err) = finish(standby);
        obs.close().await;
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
        assert_eq!(leftovers(&s.tb, &run, n).await, Vec::<String>::new());
        eprintln!("standby rep {rep}: took over, verified");
    }
    s.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_active_master_is_refused() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("a_second_active_master_is_refused").await else {
        return;
    };
    let run = unique("two-masters");
    let first = spawn(
        &s.pb.url,
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
    // The first master holds the leadership lock before it declares the results queue.
    wait_queue(s.pb, &Names::new(&run).results_queue()).await;
    let out = common::sync_run(&s.pb.url, &["master", "--slaves", "2", "--run-id", &run]);
    let err = String::from_utf8_lossy(&out.stderr);
    // Exit 5: a conflict (README, "Exit codes").
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("leadership lock") && err.contains("--standby"),
        "{err}"
    );
    observer::signal(pid(&first), "INT");
    assert_eq!(finish(first).0, 130);
    assert_eq!(leftovers(&s.tb, &run, 2).await, Vec::<String>::new());
    s.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_mid_run_are_rejected_counted_and_the_run_verifies() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("bad_messages_mid_run_are_rejected_counted_and_the_run_verifies").await
    else {
        return;
    };
    let run = unique("bad");
    let n = 3usize;
    let obs = Observer::attach(s.pb, &run, false).await;
    let child = spawn(
        &s.pb.url,
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
    obs.wait_grant(2).await; // started, seq 1 committed
    // An append for seq 1 from a worker that was not granted it.
    let granted = obs.grant_of(1).expect("grant 1 seen");
    let other = (1..=n as u64)
        .find(|w| *w != granted)
        .expect("another worker");
    let w = |id: u64| format!(r#"{{"role":"worker","id":{id},"instance":1}}"#);
    let junk: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"{\"v\":1,".to_vec()),
        ("version", br#"{"v":2,"type":"grant"}"#.to_vec()),
        ("wrong_run", format!(r#"{{"v":1,"run":"elsewhere","from":{},"type":"append","seq":1,"worker":1,"value":5}}"#, w(1)).into_bytes()),
        ("forged grant", format!(r#"{{"v":1,"run":"{run}","from":{{"role":"master","instance":12345}},"type":"grant","seq":2,"worker":1,"lease_ms":5}}"#).into_bytes()),
        ("out of range", format!(r#"{{"v":1,"run":"{run}","from":{},"type":"append","seq":1,"worker":1,"value":100000}}"#, w(1)).into_bytes()),
        ("not granted", format!(r#"{{"v":1,"run":"{run}","from":{},"type":"append","seq":1,"worker":{other},"value":5}}"#, w(other)).into_bytes()),
        ("too large", vec![b' '; sync_run::algorithms::list::protocol::MAX_BODY_BYTES + 1]),
    ];
    let conn = sync_run::broker::connect(&s.tb.broker().url, "junk", Duration::from_secs(5))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let fanout = Names::new(&run).fanout();
    // Published (and confirmed: in every queue of the run) while the run is frozen, so
    // everyone gets them before the end.
    let frozen = freeze(&[pid(&child)]);
    obs.sync().await;
    assert!(obs.seen.lock().unwrap().over.is_none(), "run over early");
    for (what, body) in &junk {
        ch.basic_publish(
            fanout.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("publish {what}: {e}"))
        .await
        .unwrap_or_else(|e| panic!("confirm {what}: {e}"));
    }
    drop(frozen);
    sync_run::broker::close_quietly(&conn, "bye").await;
    let (code, out, err) = finish(child);
    obs.close().await;
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
    assert_eq!(leftovers(&s.tb, &run, n as u32).await, Vec::<String>::new());
    s.done().await;
}

// ---------------------------------------------------------------------------------------
// Point-to-point algorithms (mutual exclusion, logical clocks): connections closed mid-run.

/// Every connection of a mutual-exclusion run and of a logical-clock run (the processes'
/// pooled connections and the results reader) is closed by the broker mid-run, while the
/// run's process is frozen after process 1 has received its 3rd message and before it has
/// every peer's `done` (so the run cannot be over). The processes reconnect, re-publish
/// what was unconfirmed, get unacknowledged deliveries again, and drop the duplicates
/// (per-sender FIFO): the run still verifies — safety, 2(N−1) messages per entry, every
/// message received exactly once — and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_runs_survive_connections_closed_mid_run() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("peer_runs_survive_connections_closed_mid_run").await else {
        return;
    };
    let n = 4u32;
    // (algorithm, a message type seen early, a message type peer 1 gets only at the end
    // and how many of it mean the run is over, the run's shape). The snapshot's channels
    // are held on the broker until taken: closing the connections gives them back, and the
    // nodes take them again, once each.
    let runs: [(&'static str, &str, &str, u64, &[&str]); 3] = [
        (
            "mutex",
            "request",
            "done",
            u64::from(n - 1),
            &["--processes", "4", "--entries", "15", "--hold", "10ms"],
        ),
        (
            "clocks",
            "msg",
            "done",
            u64::from(n - 1),
            &[
                "--processes",
                "4",
                "--events",
                "40",
                "--step",
                "10ms",
                "--seed",
                "3",
            ],
        ),
        (
            "snapshot",
            "channel",
            "stop",
            1,
            &[
                "--nodes",
                "4",
                "--transfers",
                "60",
                "--step",
                "10ms",
                "--snapshots",
                "3",
                "--concurrent",
                "--seed",
                "3",
            ],
        ),
    ];
    for (alg, first, last, over, shape) in runs {
        for rep in 0..3 {
            let run_id = unique(&format!("{alg}-cc"));
            let run = sync_run::broker::peers::PeerRun::numbered(alg, run_id.clone(), n);
            let obs = PeerObserver::attach(&s.pb.url, &run).await;
            let mut args = vec![alg, "--run-id", &run_id, "--json", "--timeout", "60s"];
            args.extend(shape);
            let t = Instant::now();
            let child = spawn(&s.pb.url, &args);
            obs.wait_for(first, 3).await;
            let frozen = freeze(&[pid(&child)]);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(
                obs.count(last) < over,
                "{alg} rep {rep}: the run was over before the fault"
            );
            let closed = close_connections(s.pb, std::slice::from_ref(&run_id));
            assert!(closed >= 2, "{alg} rep {rep}: closed {closed} connections");
            drop(frozen);
            let (code, out, err) = finish(child);
            let took = t.elapsed();
            obs.close().await;
            assert_eq!(code, 0, "{alg} rep {rep}: {out}{err}");
            let doc: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("{alg} rep {rep}: JSON: {e}: {out}"));
            assert_eq!(
                doc["verdict"]["verified"], true,
                "{alg} rep {rep}: {}",
                doc["verdict"]
            );
            assert!(
                err.contains("reconnecting"),
                "{alg} rep {rep}: reconnected: {err}"
            );
            let duplicates: u64 = doc["reports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["counts"]["duplicates"].as_u64().unwrap_or(0))
                .sum();
            eprintln!(
                "{alg} rep {rep}: {closed} connections closed mid-run; verified in {took:.1?}, {duplicates} duplicates dropped"
            );
            let left =
                common::broker_objects_containing(&s.tb, &format!("sync-run.{alg}.{run_id}."));
            assert_eq!(
                left.unwrap_or_default(),
                Vec::<String>::new(),
                "{alg} rep {rep}"
            );
        }
    }
    s.done().await;
}

/// The lock lost: a holder's connection is closed on the private node while its command
/// runs (it has written its fence: running, by construction). The holder stops the
/// command — SIGTERM to its process group, which the command's trap records — and exits
/// 76, "lock lost"; the next holder gets a larger fence; the lock is deleted and nothing
/// of it is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_that_loses_its_connection_stops_its_command_and_exits_76() {
    let _serial = SERIAL.lock().await;
    let Some(s) =
        setup("a_lock_holder_that_loses_its_connection_stops_its_command_and_exits_76").await
    else {
        return;
    };
    let name = unique("lost");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let script = format!(
        "trap 'echo term > {d}/term; exit 0' TERM; \
         echo $SYNC_RUN_FENCE > {d}/fence.tmp && mv {d}/fence.tmp {d}/fence; \
         while :; do sleep 0.05; done"
    );
    let args = ["lock", &name, "--grace", "30s", "--", "sh", "-c", &script];
    let mut holder = spawn(&s.pb.url, &args);
    let fence_file = dir.path().join("fence");
    let t = Instant::now();
    while !fence_file.exists() {
        if let Ok(Some(st)) = holder.try_wait() {
            panic!("the holder ended ({st}) before its command started");
        }
        assert!(
            t.elapsed() < common::HANG_LIMIT,
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let first: u64 = std::fs::read_to_string(&fence_file)
        .expect("fence")
        .trim()
        .parse()
        .expect("a fence");
    let closed = close_connections(s.pb, &[format!("sync-run lock {name} pid")]);
    assert_eq!(closed, 1, "closed {closed} connections");
    let (code, _, err) = finish(holder);
    assert_eq!(code, 76, "{err}");
    assert!(err.contains("lock lost"), "{err}");
    assert!(
        dir.path().join("term").exists(),
        "the command was not sent SIGTERM"
    );
    let next = common::sync_run(
        &s.pb.url,
        &["lock", &name, "--", "sh", "-c", "echo $SYNC_RUN_FENCE"],
    );
    assert_eq!(next.status.code(), Some(0));
    let second: u64 = String::from_utf8_lossy(&next.stdout)
        .trim()
        .parse()
        .expect("a fence");
    assert!(second > first, "fence {second} after {first}");
    let del = common::sync_run(&s.pb.url, &["lock", &name, "--delete"]);
    assert_eq!(del.status.code(), Some(0), "{del:?}");
    let left = common::broker_objects_containing(&s.tb, &format!("sync-run.lock.{name}"));
    assert_eq!(left.unwrap_or_default(), Vec::<String>::new());
    s.done().await;
}
