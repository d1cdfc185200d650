//! A run's wiring on the broker, described as data: its exchanges, its queues and their
//! bindings. The adapter declares and deletes from the description, so an algorithm says
//! *what* it needs and never writes AMQP calls of its own; and what a run declares is,
//! by construction, exactly what its cleanup deletes.
//!
//! Every name carries the run id (an algorithm's names module builds them), so two runs
//! never share anything and a cleanup knows exactly what to delete.

use super::error::{BrokerError, Context};
use super::{Broker, Link};
use crate::contract::{QueueType, Route};
use futures::future::BoxFuture;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

/// A queue left behind by a crashed participant deletes itself after this long unused.
/// Explicit deletes do the normal cleanup; this is the safety net for kill -9.
pub const QUEUE_EXPIRES_MS: i64 = 120_000;

/// Most channels [`Wiring::delete`] deletes a run's queues over at once.
pub const DELETE_CHANNELS: usize = 64;

/// An exchange's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Every bound queue gets every message (broadcast).
    Fanout,
    /// A message goes to the queues bound with its routing key (point to point).
    Direct,
}

/// An exchange of a run. Exchanges are auto-delete: once every queue bound to them is gone
/// (deleted or expired), so are they.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
}

/// A queue's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A queue of the run with `x-expires`: classic (durable with `--durable`) or, with
    /// `--queue-type quorum`, a quorum queue ([`QueueOpts`]).
    Classic,
    /// A RabbitMQ stream: always durable, never expires (the run deletes it), read from
    /// the start by every reader.
    Stream,
}

/// A queue of a run and what it is bound to: `(exchange, routing key)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub kind: QueueKind,
    pub bindings: Vec<(String, String)>,
}

impl Queue {
    /// A classic queue bound as given.
    pub fn classic(name: String, bindings: Vec<(String, String)>) -> Self {
        Queue {
            name,
            kind: QueueKind::Classic,
            bindings,
        }
    }
}

/// What a run (or one participant of it) declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wiring {
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<Queue>,
}

/// How a run's queues are declared: every participant of a run passes the same (from its
/// [`Broker`]: `--durable`, `--queue-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueOpts {
    /// Durable exchanges and queues (persistent messages are the drive loop's part).
    pub durable: bool,
    /// What a [`QueueKind::Classic`] queue of the run becomes on the broker: a classic
    /// queue, or a quorum queue (replicated, always durable). Streams are streams.
    pub queue_type: QueueType,
}

impl QueueOpts {
    /// Whether a queue of `kind` is declared durable: quorum queues and streams always are.
    fn durable(&self, kind: QueueKind) -> bool {
        self.durable || kind == QueueKind::Stream || self.queue_type == QueueType::Quorum
    }
}

fn queue_args(kind: QueueKind, queue_type: QueueType) -> FieldTable {
    let mut t = FieldTable::default();
    match kind {
        QueueKind::Classic => {
            // Quorum queues honour `x-expires` too (RabbitMQ 3.8+): a crashed participant's
            // replicated queue goes away on its own just the same.
            t.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
            if queue_type == QueueType::Quorum {
                t.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
            }
        }
        QueueKind::Stream => {
            t.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("stream".into()),
            );
        }
    }
    t
}

impl Wiring {
    /// Declares the exchanges, then each queue and its bindings. Idempotent: whichever
    /// participant starts first creates them, the others find them.
    pub async fn declare(&self, ch: &Channel, opts: QueueOpts) -> Result<(), BrokerError> {
        let xopts = ExchangeDeclareOptions {
            auto_delete: true,
            durable: opts.durable,
            ..Default::default()
        };
        for x in &self.exchanges {
            let kind = match x.kind {
                ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
                ExchangeKind::Direct => lapin::ExchangeKind::Direct,
            };
            ch.exchange_declare(x.name.as_str().into(), kind, xopts, FieldTable::default())
                .await
                .ctx(|| format!("declaring exchange {}", x.name))?;
        }
        for q in &self.queues {
            let qopts = QueueDeclareOptions {
                durable: opts.durable(q.kind),
                ..Default::default()
            };
            ch.queue_declare(
                q.name.as_str().into(),
                qopts,
                queue_args(q.kind, opts.queue_type),
            )
            .await
            .ctx(|| format!("declaring queue {}", q.name))?;
            for (exchange, key) in &q.bindings {
                ch.queue_bind(
                    q.name.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .ctx(|| format!("binding {} to {exchange}", q.name))?;
            }
        }
        Ok(())
    }

    /// Deletes every queue, then every exchange. RabbitMQ treats deleting a missing queue
    /// or exchange as success, so several participants may delete the same.
    ///
    /// The queues are deleted over up to [`DELETE_CHANNELS`] channels at once, pipelined
    /// on each (a thousand queues in one go): a channel does its commands one after the
    /// other, and deleting a quorum queue while one of its replicas' nodes is down takes
    /// RabbitMQ about 5 s (it waits for that replica), so one channel would take 5 s a
    /// queue after a node loss.
    pub async fn delete(&self, conn: &Connection, ch: &Channel) -> Result<(), BrokerError> {
        // The extra channels are opened at once; the deletes go over those that opened
        // (at least `ch`).
        let wanted = self.queues.len().clamp(1, DELETE_CHANNELS) - 1;
        let extra: Vec<Channel> =
            futures::future::join_all((0..wanted).map(|_| conn.create_channel()))
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect();
        let channels: Vec<&Channel> = std::iter::once(ch).chain(&extra).collect();
        let deletes = self.queues.iter().enumerate().map(|(i, q)| {
            channels[i % channels.len()]
                .queue_delete(q.name.as_str().into(), QueueDeleteOptions::default())
        });
        let results = futures::future::join_all(deletes).await;
        futures::future::join_all(extra.iter().map(|c| {
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                c.close(200, "deleted".into()),
            )
        }))
        .await;
        for (r, q) in results.into_iter().zip(&self.queues) {
            r.ctx(|| format!("deleting queue {}", q.name))?;
        }
        for x in &self.exchanges {
            ch.exchange_delete(x.name.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .ctx(|| format!("deleting exchange {}", x.name))?;
        }
        Ok(())
    }

    /// Every queue name, for checks and leak reports.
    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().map(|q| q.name.as_str())
    }
}

/// One queue a participant consumes.
#[derive(Debug, Clone)]
pub struct Consume {
    pub queue: String,
    /// Consumer arguments (a stream reader's `x-stream-offset`).
    pub args: FieldTable,
    /// The only consumer: a second participant started with the same id is refused
    /// ([`Endpoint::taken`]).
    pub exclusive: bool,
}

impl Consume {
    /// An exclusive consumer of `queue`: the participant's own inbox.
    pub fn own(queue: String) -> Self {
        Consume {
            queue,
            args: FieldTable::default(),
            exclusive: true,
        }
    }
}

/// One participant on the broker, as the drive loop needs it: what it consumes, where each
/// of its routes goes, what it sets up on each (re)connection and what it deletes at the
/// end. An algorithm implements this once per role, from its [`Wiring`]s; the drive loop,
/// reconnect and pool are the same for every algorithm.
pub trait Endpoint: Send + Sync {
    /// What the participant deletes when it is done (decided from the machine's end).
    type Cleanup: Send + Sync;
    /// The connection's name (visible in the management UI).
    fn conn_name(&self) -> &str;
    /// The run this participant belongs to.
    fn run_id(&self) -> &str;
    /// Whether it takes a channel on the broker's pooled connections (when the broker has
    /// a pool) instead of a connection of its own.
    fn pooled(&self) -> bool {
        false
    }
    /// The queues it consumes.
    fn consumes(&self) -> Vec<Consume>;
    /// The exchange and routing key of `route`. A route the algorithm never uses is a bug.
    fn destination(&self, route: Route) -> (String, String);
    /// On each new connection, before consuming: claim what must be this participant's
    /// alone and declare what it needs. `known_declared`: the shared names are known to
    /// exist (first connection of an in-process run), so need not be checked.
    fn prepare<'a>(
        &'a self,
        conn: &'a Connection,
        ch: &'a Channel,
        broker: &'a Broker,
        known_declared: bool,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
    /// The error when an exclusive consumer is refused (another participant has this id).
    fn taken(&self) -> BrokerError;
    /// Acknowledge refused deliveries instead of rejecting them (a stream cannot drop one
    /// message; it is counted, logged and passed over).
    fn acks_refused(&self) -> bool {
        false
    }
    /// Deletes what `what` names over the participant's link at the end of the run.
    fn delete<'a>(
        &'a self,
        link: &'a Link,
        what: &'a Self::Cleanup,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
    /// Deletes what `what` names over a fresh channel of a fresh connection (the link
    /// broke, or the first attempt was refused).
    fn delete_fresh<'a>(
        &'a self,
        conn: &'a Connection,
        ch: &'a Channel,
        what: &'a Self::Cleanup,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
}
