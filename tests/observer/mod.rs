//! Watching a run from outside, so that a test can act at a chosen point of it *by
//! construction* rather than by timing: an observer queue bound to the run's fanout sees
//! every broadcast (`start`, grants, relayed appends, `end`), and a participant process can
//! be frozen (SIGSTOP) while the test acts, so the run cannot move past that point.
//!
//! The observer declares the run's fanout exchange itself, before the run starts, with the
//! master's arguments (auto-delete; durable with `--durable`), so it misses nothing. Its own
//! queue is server-named and exclusive: it goes with the observer's connection and never
//! carries the run id, so a leak check of the run does not see it.
#![allow(dead_code)]

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde_json::Value;
use std::time::Duration;
use sync_run::algorithms::list::protocol::Names;
use sync_run::broker::BrokerUrl;

pub struct Observer {
    conn: lapin::Connection,
    ch: lapin::Channel,
    queue: String,
    consumer: lapin::Consumer,
    /// Every message seen so far, batches unpacked into their parts, in arrival order.
    pub seen: Vec<Value>,
}

impl Observer {
    /// Starts watching run `run` (call before starting the run's master). A broker that
    /// does not answer within 60 s fails the test, saying so.
    pub async fn new(url: &str, run: &str, durable: bool) -> Observer {
        tokio::time::timeout(Duration::from_secs(60), Self::attach(url, run, durable))
            .await
            .expect("the observer's setup did not finish within 60 s")
    }

    async fn attach(url: &str, run: &str, durable: bool) -> Observer {
        let fanout = Names::new(run).fanout();
        let Watch {
            conn,
            ch,
            queue,
            consumer,
        } = watch(
            url,
            "test observer",
            &fanout,
            lapin::ExchangeKind::Fanout,
            durable,
            "",
        )
        .await;
        Observer {
            conn,
            ch,
            queue,
            consumer,
            seen: Vec::new(),
        }
    }

    /// Returns once the observer has read everything routed to it before this call: a
    /// marker it sends to its own queue comes back behind it.
    pub async fn sync(&mut self) {
        let marker = send_marker(&self.ch, &self.queue).await;
        self.wait_for("the observer's marker", Duration::from_secs(30), |m| {
            m["type"] == marker.as_str()
        })
        .await;
    }

    fn take(&mut self, body: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        match msg["messages"].as_array() {
            Some(parts) if msg["type"] == "batch" => self.seen.extend(parts.iter().cloned()),
            _ => self.seen.push(msg),
        }
    }

    /// Waits until a message matching `pred` has been seen (now or before) and returns it;
    /// panics naming `what` after `limit`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(m) = self.seen.iter().find(|m| pred(m)) {
                return m.clone();
            }
            match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Ok(Some(Ok(d))) => self.take(&d.data),
                Ok(_) => panic!("the observer's consumer ended while waiting for {what}"),
                Err(_) => panic!(
                    "{what} not seen within {limit:?}; seen: {:?}",
                    self.seen.iter().map(|m| &m["type"]).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Takes in everything delivered so far (waiting `settle` for stragglers) and says
    /// whether any message matches `pred`.
    pub async fn saw(&mut self, settle: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        while let Ok(Some(Ok(d))) = tokio::time::timeout(settle, self.consumer.next()).await {
            self.take(&d.data);
        }
        self.seen.iter().any(pred)
    }

    pub async fn close(self) {
        sync_run::broker::close_quietly(&self.conn, "observer done").await;
    }
}

/// Sends `signal` (e.g. "STOP", "CONT", "KILL", "TERM") to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    assert!(signal_all(signal, &[pid]), "kill -{signal} {pid}");
}

/// The run's `type` field of a message.
pub fn is(m: &Value, kind: &str) -> bool {
    m["type"] == kind
}

/// Watches everything sent to process 1 of a peer run: an exclusive, server-named queue
/// bound to the run's direct exchange with process 1's key, declared before the run
/// starts. Counts the messages by type.
pub struct PeerObserver {
    conn: lapin::Connection,
    ch: lapin::Channel,
    queue: String,
    seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl PeerObserver {
    pub async fn attach(url: &str, run: &sync_run::broker::peers::PeerRun) -> PeerObserver {
        // Named without the run id: closing the run's connections leaves it alone. The
        // exchange as the run declares it (broker::wiring): direct, auto-delete, not durable.
        let Watch {
            conn,
            ch,
            queue,
            mut consumer,
        } = watch(
            url,
            "sync-run fault observer",
            &run.exchange(),
            lapin::ExchangeKind::Direct,
            false,
            "peer.1",
        )
        .await;
        let seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> =
            Default::default();
        let into = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                if let Ok(m) = serde_json::from_slice::<serde_json::Value>(&d.data) {
                    let mut seen = into.lock().unwrap();
                    let kind = m["type"].as_str().unwrap_or("?").to_owned();
                    *seen.entry(kind).or_default() += 1;
                    // The parts of a packed delivery (the bank's `bodies`) count too.
                    for part in m["bodies"].as_array().into_iter().flatten() {
                        let kind = part["type"].as_str().unwrap_or("?").to_owned();
                        *seen.entry(kind).or_default() += 1;
                    }
                }
            }
        });
        PeerObserver {
            conn,
            ch,
            queue,
            seen,
        }
    }

    /// Returns once everything routed to the observer before this call is counted: a
    /// marker it sends to its own queue comes back behind it.
    pub async fn sync(&self) {
        let marker = send_marker(&self.ch, &self.queue).await;
        self.wait_for(&marker, 1).await;
    }

    /// Every message seen, whatever its type, and every part of a packed one.
    pub fn total(&self) -> u64 {
        let seen = self.seen.lock().unwrap();
        seen.values().sum::<u64>()
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.seen.lock().unwrap().get(kind).copied().unwrap_or(0)
    }

    pub async fn wait_for(&self, kind: &str, n: u64) {
        let t = std::time::Instant::now();
        while self.count(kind) < n {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{n} {kind} to process 1 not seen; seen {:?}",
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn close(self) {
        sync_run::broker::close_quietly(&self.conn, "observer done").await;
    }
}

/// Processes stopped with SIGSTOP; SIGCONT when dropped (also when the test fails).
pub struct Frozen(Vec<u32>);

/// Stops `pids` and waits until the kernel reports each stopped.
pub fn freeze(pids: &[u32]) -> Frozen {
    assert!(signal_all("STOP", pids), "kill -STOP {pids:?}");
    let frozen = Frozen(pids.to_vec());
    let t = std::time::Instant::now();
    for pid in pids {
        // /proc/PID/stat: "PID (comm) STATE …"; T is stopped.
        while let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if state == Some('T') {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "process {pid} did not stop: {stat}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    frozen
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // A process killed while frozen is a zombie until reaped: the signal is harmless.
        signal_all("CONT", &self.0);
    }
}

/// Sends `sig` to every process of `pids`; whether `kill` succeeded.
fn signal_all(sig: &str, pids: &[u32]) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .is_ok_and(|s| s.success())
}

/// Publishes a marker, `{"type":"observer-marker-<random>"}`, to an observer's own queue
/// and returns its type.
async fn send_marker(ch: &lapin::Channel, queue: &str) -> String {
    let kind = format!("observer-marker-{:016x}", rand::random::<u64>());
    ch.basic_publish(
        "".into(),
        queue.into(),
        lapin::options::BasicPublishOptions::default(),
        serde_json::json!({ "type": kind }).to_string().as_bytes(),
        lapin::BasicProperties::default(),
    )
    .await
    .expect("observer: publish a marker");
    kind
}

/// An observer's connection and its exclusive, server-named queue bound to a run's exchange.
pub struct Watch {
    pub conn: lapin::Connection,
    pub ch: lapin::Channel,
    pub queue: String,
    pub consumer: lapin::Consumer,
}

/// Connects to `url` as `conn_name`, declares `exchange` as the run declares it
/// (auto-delete, durable per `durable`, no arguments), binds an exclusive, server-named
/// queue to it with `key` and consumes it without acknowledgements. The queue goes with
/// the connection and never carries the run id, so a leak check of the run does not see it.
pub async fn watch(
    url: &str,
    conn_name: &str,
    exchange: &str,
    kind: lapin::ExchangeKind,
    durable: bool,
    key: &str,
) -> Watch {
    let url = BrokerUrl::parse(url).expect("observer URL");
    let conn = sync_run::broker::connect(&url, conn_name, Duration::from_secs(10))
        .await
        .expect("observer: connect");
    let ch = conn.create_channel().await.expect("observer: channel");
    ch.exchange_declare(
        exchange.into(),
        kind,
        ExchangeDeclareOptions {
            auto_delete: true,
            durable,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("observer: declare the run's exchange");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("observer: queue");
    let queue = q.name().to_string();
    ch.queue_bind(
        queue.as_str().into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("observer: bind");
    let consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "observer".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("observer: consume");
    Watch {
        conn,
        ch,
        queue,
        consumer,
    }
}
