//! One caller: a direct reply-to channel, its pending table and its record. A call
//! publishes the request, then reads replies until its own comes (matched by correlation id
//! and request SHA-256), its timeout passes, or a signal stops it; every other reply on the
//! way is classified by the pending table and filed in the record.

use super::pending::{Arrival, Pending};
use super::protocol::{self, H_VERSION, ReplyMeta, VERSION};
use super::record::{CallRecord, ClientRecord, ReplySeen};
use crate::broker::reply::{Caller, Header, Sent};
use super::pending::Micros;
use crate::broker::{BrokerError, Shutdown, stopped};
use std::time::{Duration, Instant};

/// How a call ended.
#[derive(Debug)]
pub enum End {
    /// Its own reply came.
    Replied {
        meta: ReplyMeta,
        body: Vec<u8>,
        latency_us: Micros,
    },
    /// The request came back unrouted: no queue has NAME.
    NoServer,
    /// No reply within the timeout.
    NoReply,
    /// A signal stopped it.
    Interrupted,
}

pub struct Client {
    caller: Caller,
    pending: Pending,
    pub record: ClientRecord,
    t0: Instant,
    /// Makes this client's correlation ids its own among every client of a run.
    nonce: u64,
}

impl Client {
    /// Client `id` on `caller`, its clock starting at `t0` (shared by a run's clients).
    pub fn new(caller: Caller, id: u32, t0: Instant) -> Self {
        Client {
            caller,
            pending: Pending::new(),
            record: ClientRecord::new(id),
            t0,
            nonce: rand::random(),
        }
    }

    /// Calls `queue` with `body` (call number `seq` of this client).
    pub async fn call(
        &mut self,
        queue: &str,
        seq: u32,
        body: &[u8],
        timeout: Duration,
        stop: &mut Shutdown,
    ) -> Result<End, BrokerError> {
        let id = format!("{}-{seq}-{:016x}", self.record.client, self.nonce);
        let sha = protocol::sha256_hex(body);
        let headers = [(H_VERSION, Header::Int(i64::from(VERSION)))];
        let sent_us = self.now();
        if self.caller.request(queue, &id, &headers, body).await? == Sent::NoRoute {
            return Ok(End::NoServer);
        }
        self.pending
            .sent(&id, &sha, sent_us, timeout.as_micros() as Micros);
        self.record.calls.push(CallRecord {
            client: self.record.client,
            seq,
            correlation_id: id.clone(),
            request_sha256: sha,
            sent_us,
            replies: vec![],
            gave_up: false,
        });
        loop {
            let deadline = self.pending.next_deadline();
            tokio::select! {
                _ = stopped(stop) => return Ok(End::Interrupted),
                _ = until(self.t0, deadline) => {
                    if self.pending.expire(self.now()).contains(&id) {
                        if let Some(call) = self.record.calls.last_mut() {
                            call.gave_up = true;
                        }
                        return Ok(End::NoReply);
                    }
                }
                reply = self.caller.next_reply() => {
                    let msg = reply?;
                    let at = self.now();
                    let meta = match protocol::read_reply(msg.correlation_id.as_deref(), &msg.headers) {
                        Ok(m) => m,
                        Err(why) => {
                            tracing::warn!("reply refused: {why}");
                            self.record.rejected += 1;
                            continue;
                        }
                    };
                    let arrival = self.pending.arrived(&meta, at);
                    self.record.file(ReplySeen::new(&meta, protocol::sha256_hex(&msg.body), at));
                    match arrival {
                        Arrival::Matched { latency_us } if meta.correlation_id == id => {
                            return Ok(End::Replied { meta, body: msg.body, latency_us });
                        }
                        Arrival::Matched { .. } => {}
                        other => tracing::warn!(
                            "reply {} dropped: {other:?}", meta.correlation_id
                        ),
                    }
                }
            }
        }
    }

    /// Microseconds since the run's start.
    fn now(&self) -> Micros {
        self.t0.elapsed().as_micros() as Micros
    }

    /// The pending table's counts (duplicates, late, unknown, foreign replies).
    pub fn counts(&self) -> super::pending::Counts {
        self.pending.counts
    }

    pub async fn close(&self) {
        self.caller.close().await;
    }
}

/// Waits until `at` (µs since `t0`), or forever for `None`.
async fn until(t0: Instant, at: Option<Micros>) {
    match at {
        Some(us) => tokio::time::sleep_until((t0 + Duration::from_micros(us)).into()).await,
        None => std::future::pending().await,
    }
}
