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
    consumer: lapin::Consumer,
    /// Every message seen so far, batches unpacked into their parts, in arrival order.
    pub seen: Vec<Value>,
}

impl Observer {
    /// Starts watching run `run` (call before starting the run's master).
    pub async fn new(url: &str, run: &str, durable: bool) -> Observer {
        let url = BrokerUrl::parse(url).expect("observer URL");
        let conn = sync_run::broker::connect(&url, "test observer", Duration::from_secs(10))
            .await
            .expect("observer connects");
        let ch = conn.create_channel().await.expect("observer channel");
        let fanout = Names::new(run).fanout();
        ch.exchange_declare(
            fanout.as_str().into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                durable,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare the run's fanout");
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
            .expect("observer queue");
        ch.queue_bind(
            q.name().clone(),
            fanout.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind the observer");
        let consumer = ch
            .basic_consume(
                q.name().clone(),
                "observer".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("observe");
        Observer {
            conn,
            consumer,
            seen: Vec::new(),
        }
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
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid}");
}

/// The run's `type` field of a message.
pub fn is(m: &Value, kind: &str) -> bool {
    m["type"] == kind
}
