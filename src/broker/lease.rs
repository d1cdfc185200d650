//! Leases on single-active-consumer token queues: the broker side of anything held "as
//! long as my connection lives" (the lock is one).
//!
//! A [`LeaseQueues`] names a marker queue (declared with `x-max-length` = the number of
//! slots, so that everyone sharing the names agrees on it: the broker refuses an
//! inequivalent redeclare), one durable slot queue per slot with
//! `x-single-active-consumer` (its token is delivered to one consumer at a time, consumers
//! activated in the order they registered), and one record queue per slot
//! (`x-max-length` 1: the last word of whoever holds it). Everything is durable and never
//! expires: the queues outlive every participant, and that is the point.
//!
//! A [`Lease`] is one participant's connection to them: a channel per slot (prefetch 1,
//! publisher confirms), each consuming its slot, deliveries merged into [`Lease::next`]
//! with the connection's loss. Closing a slot's channel ([`Lease::give_back`]) is how a
//! token goes back: the broker returns the unacknowledged token to the queue and
//! activates the next consumer in one step; a lost connection does the same for every
//! slot. It also consumes from the marker queue (which never holds a message) for its
//! whole life, so the marker's consumer count is how many participants are there.
//!
//! What to do with a delivered token is the caller's business (a pure machine); this file
//! moves bytes.

use super::Broker;
use super::connect::{close_quietly, connect, open_channel};
use super::error::{BrokerError, Context};
use crate::contract::QueueType;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The names of one lease's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseQueues {
    /// Declared with `x-max-length` = the slot count; consumed by every participant.
    pub marker: String,
    /// One per slot, single active consumer.
    pub slots: Vec<String>,
    /// One per slot, `x-max-length` 1.
    pub records: Vec<String>,
}

/// The broker refused a declare because the queue exists with other arguments: a
/// participant with another slot count or queue type. Carries the broker's words (which
/// argument, both values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inequivalent {
    pub queue: String,
    pub detail: String,
}

/// What [`Lease::next`] brings.
#[derive(Debug)]
pub enum LeaseEvent {
    /// A token on `slot` (from the channel opened `epoch`-th for that slot).
    Token {
        slot: u32,
        epoch: u64,
        tag: u64,
        body: Vec<u8>,
    },
    /// The connection (or a slot's channel, by the broker's doing) is gone: every token
    /// held has gone back to its queue.
    Lost(String),
}

/// One participant's connection to a lease's queues.
pub struct Lease {
    conn: Arc<Connection>,
    names: LeaseQueues,
    queue_type: QueueType,
    chans: Vec<Option<(Channel, u64)>>,
    epoch: u64,
    tx: mpsc::UnboundedSender<Raw>,
    rx: mpsc::UnboundedReceiver<Raw>,
    _marker: Channel,
}

/// What the consumers' tasks send: tokens, and failures of a slot's channel (which count
/// only if that channel is still the slot's) or of the whole connection.
enum Raw {
    Token(LeaseEvent),
    SlotEnded { slot: u32, epoch: u64, why: String },
    Lost(String),
}

fn args(queue_type: QueueType, max_length: Option<i64>, single_active: bool) -> FieldTable {
    let mut t = FieldTable::default();
    if queue_type == QueueType::Quorum {
        t.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    if let Some(n) = max_length {
        t.insert("x-max-length".into(), AMQPValue::LongLongInt(n));
    }
    if single_active {
        t.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    t
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// The broker's PRECONDITION_FAILED (406) on a declare: the queue exists, otherwise.
fn is_inequivalent(e: &lapin::Error) -> bool {
    e.to_string().contains("PRECONDITION_FAILED")
}

/// Declares `q`; `Ok(Err(_))` when it exists with other arguments.
async fn declare(
    conn: &Connection,
    q: &str,
    table: FieldTable,
) -> Result<Result<(), Inequivalent>, BrokerError> {
    // A refused declare closes its channel: each gets its own.
    let ch = conn
        .create_channel()
        .await
        .ctx(|| "opening a channel".into())?;
    match ch.queue_declare(q.into(), durable(), table).await {
        Ok(_) => {
            let _ = ch.close(200, "declared".into()).await;
            Ok(Ok(()))
        }
        Err(e) if is_inequivalent(&e) => Ok(Err(Inequivalent {
            queue: q.to_owned(),
            detail: e.to_string(),
        })),
        Err(e) => Err(BrokerError::Amqp {
            context: format!("declaring {q}"),
            source: e,
        }),
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_app_id(ShortString::from("sync-run"))
        .with_delivery_mode(2)
}

/// Publishes `body` to queue `q` on `ch` (persistent) and waits for the confirm.
async fn publish_confirmed(ch: &Channel, q: &str, body: &[u8]) -> Result<(), BrokerError> {
    let confirm = ch
        .basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body,
            persistent(),
        )
        .await
        .ctx(|| format!("publishing to {q}"))?
        .await
        .ctx(|| format!("waiting for the confirm of a publish to {q}"))?;
    match confirm {
        Confirmation::Nack(_) => Err(BrokerError::Lost {
            what: format!("publish to {q} (the broker refused it)"),
        }),
        _ => Ok(()),
    }
}

impl Lease {
    /// Connects as `who`, declares the marker (`slots` long), the slot and record queues,
    /// and joins the marker's consumers. `Ok(Err(_))`: the names exist with another slot
    /// count or queue type.
    pub async fn open(
        broker: &Broker,
        who: &str,
        names: LeaseQueues,
        queue_type: QueueType,
    ) -> Result<Result<Lease, Inequivalent>, BrokerError> {
        let conn = Arc::new(connect(&broker.url, who, broker.connect_timeout).await?);
        let n = names.slots.len() as i64;
        let plan = std::iter::once((&names.marker, args(queue_type, Some(n), false)))
            .chain(
                names
                    .slots
                    .iter()
                    .map(|q| (q, args(queue_type, None, true))),
            )
            .chain(
                names
                    .records
                    .iter()
                    .map(|q| (q, args(queue_type, Some(1), false))),
            );
        for (q, table) in plan {
            if let Err(no) = declare(&conn, q, table).await? {
                close_quietly(&conn, "inequivalent").await;
                return Ok(Err(no));
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let marker = open_channel(&conn, 1).await?;
        let present = marker
            .basic_consume(
                names.marker.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .ctx(|| format!("consuming from {}", names.marker))?;
        let lost = tx.clone();
        let mut events = conn.events_listener();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if let lapin::Event::Error(e) = e {
                    let _ = lost.send(Raw::Lost(format!("the connection failed: {e}")));
                    return;
                }
            }
        });
        // The marker never holds a message: its consumer ends only with the connection
        // (or with the marker, deleted under us).
        let lost = tx.clone();
        tokio::spawn(async move {
            let mut present = present;
            let why = loop {
                match present.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("the connection failed: {e}"),
                    None => break "the broker ended the lease (its queues deleted?)".into(),
                }
            };
            let _ = lost.send(Raw::Lost(why));
        });
        let slots = names.slots.len();
        Ok(Ok(Lease {
            conn,
            names,
            queue_type,
            chans: vec![None; slots],
            epoch: 0,
            tx,
            rx,
            _marker: marker,
        }))
    }

    /// How many slots.
    pub fn slots(&self) -> u32 {
        self.names.slots.len() as u32
    }

    /// The queue type the lease was opened with.
    pub fn queue_type(&self) -> QueueType {
        self.queue_type
    }

    fn chan(&self, slot: u32) -> Result<&Channel, BrokerError> {
        match self.chans.get(slot as usize) {
            Some(Some((ch, _))) => Ok(ch),
            _ => Err(BrokerError::Lost {
                what: format!("channel of slot {slot}"),
            }),
        }
    }

    /// Opens `slot`'s channel and consumes its queue. `genesis`: the first token, published
    /// (confirmed) before consuming if the queue has neither a ready token nor a consumer
    /// — no token exists then, since a holder stays a consumer while it holds and a release
    /// returns the token and removes the consumer in one step. Two participants doing so at
    /// once make duplicates, which the caller's machine must tolerate. With `only_if_free`,
    /// a slot that has a consumer (held, or others wait) is not consumed: `Ok(false)`.
    pub async fn consume(
        &mut self,
        slot: u32,
        genesis: &[u8],
        only_if_free: bool,
    ) -> Result<bool, BrokerError> {
        let q = self.names.slots[slot as usize].clone();
        let ch = open_channel(&self.conn, 1).await?;
        let ok = ch
            .queue_declare(q.as_str().into(), passive(), FieldTable::default())
            .await
            .ctx(|| format!("looking at {q}"))?;
        if only_if_free && ok.consumer_count() > 0 {
            let _ = ch.close(200, "held".into()).await;
            return Ok(false);
        }
        if ok.message_count() == 0 && ok.consumer_count() == 0 {
            publish_confirmed(&ch, &q, genesis).await?;
        }
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .ctx(|| format!("consuming from {q}"))?;
        self.epoch += 1;
        let epoch = self.epoch;
        self.chans[slot as usize] = Some((ch, epoch));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let why = loop {
                match consumer.next().await {
                    Some(Ok(d)) => {
                        let token = Raw::Token(LeaseEvent::Token {
                            slot,
                            epoch,
                            tag: d.delivery_tag,
                            body: d.data,
                        });
                        if tx.send(token).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => break format!("the channel of slot {slot} failed: {e}"),
                    None => break format!("the broker ended the consumer of slot {slot}"),
                }
            };
            let _ = tx.send(Raw::SlotEnded { slot, epoch, why });
        });
        Ok(true)
    }

    /// The next token or the loss of the connection. Tokens from a channel closed since
    /// are passed over.
    pub async fn next(&mut self) -> LeaseEvent {
        let current = |chans: &[Option<(Channel, u64)>], slot: u32, epoch: u64| {
            chans
                .get(slot as usize)
                .and_then(|c| c.as_ref())
                .is_some_and(|(_, ep)| *ep == epoch)
        };
        loop {
            let Some(raw) = self.rx.recv().await else {
                return LeaseEvent::Lost("the lease's event channel closed".into());
            };
            match raw {
                Raw::Token(t @ LeaseEvent::Token { slot, epoch, .. }) => {
                    if current(&self.chans, slot, epoch) {
                        return t;
                    }
                }
                Raw::Token(other) => return other,
                // A channel we closed ourselves ends its consumer too: only the failure of
                // a channel still in use counts.
                Raw::SlotEnded { slot, epoch, why } => {
                    if current(&self.chans, slot, epoch) {
                        return LeaseEvent::Lost(why);
                    }
                }
                Raw::Lost(why) => return LeaseEvent::Lost(why),
            }
        }
    }

    /// How many tokens wait ready in `slot`'s queue (not counting one delivered and
    /// unacknowledged).
    pub async fn ready(&self, slot: u32) -> Result<u64, BrokerError> {
        let q = &self.names.slots[slot as usize];
        let ok = self
            .chan(slot)?
            .queue_declare(q.as_str().into(), passive(), FieldTable::default())
            .await
            .ctx(|| format!("counting the tokens of {q}"))?;
        Ok(ok.message_count() as u64)
    }

    /// Publishes a token to `slot`'s queue, confirmed.
    pub async fn publish(&self, slot: u32, body: &[u8]) -> Result<(), BrokerError> {
        publish_confirmed(self.chan(slot)?, &self.names.slots[slot as usize], body).await
    }

    /// Leaves `body` as `slot`'s record (the record queue keeps the last one).
    pub async fn record(&self, slot: u32, body: &[u8]) -> Result<(), BrokerError> {
        publish_confirmed(self.chan(slot)?, &self.names.records[slot as usize], body).await
    }

    pub async fn ack(&self, slot: u32, tag: u64) -> Result<(), BrokerError> {
        self.chan(slot)?
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .ctx(|| format!("acknowledging a token of slot {slot}"))
    }

    /// Drops a delivery that is no token (not requeued).
    pub async fn reject(&self, slot: u32, tag: u64) -> Result<(), BrokerError> {
        self.chan(slot)?
            .basic_reject(tag, BasicRejectOptions { requeue: false })
            .await
            .ctx(|| format!("rejecting a message of slot {slot}"))
    }

    /// Closes `slot`'s channel: its unacknowledged token goes back to the queue and the
    /// next consumer becomes active.
    pub async fn give_back(&mut self, slot: u32) -> Result<(), BrokerError> {
        if let Some((ch, _)) = self.chans.get_mut(slot as usize).and_then(Option::take) {
            ch.close(200, "given back".into())
                .await
                .ctx(|| format!("closing the channel of slot {slot}"))?;
        }
        Ok(())
    }

    /// Closes the connection: everything held goes back at once.
    pub async fn close(self) {
        close_quietly(&self.conn, "done").await;
    }
}

/// One slot as a passer-by sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSurvey {
    pub ready: u32,
    /// Consumers the broker reports (a quorum queue with a single active consumer
    /// reports only the active one).
    pub consumers: u32,
    /// The slot's last record, read and put back.
    pub record: Option<Vec<u8>>,
}

/// What [`survey`] found: `None` if the marker does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    pub slots: Vec<SlotSurvey>,
    /// Consumers of the marker: participants connected (holding or waiting).
    pub present: u32,
}

/// Looks at a lease's queues without taking part: slot `k` is probed for `k = 0, 1, …`
/// until one does not exist. Each passive declare gets a channel of its own (a refused one
/// closes it); each record is fetched and returned by closing its channel unacknowledged.
pub async fn survey(
    broker: &Broker,
    who: &str,
    marker: &str,
    slot_name: impl Fn(u32) -> (String, String),
) -> Result<Option<Survey>, BrokerError> {
    let conn = connect(&broker.url, who, broker.connect_timeout).await?;
    let out = survey_on(&conn, marker, slot_name).await;
    close_quietly(&conn, "surveyed").await;
    out
}

async fn probe(conn: &Connection, q: &str) -> Result<Option<(u32, u32)>, BrokerError> {
    let ch = conn
        .create_channel()
        .await
        .ctx(|| "opening a channel".into())?;
    match ch
        .queue_declare(q.into(), passive(), FieldTable::default())
        .await
    {
        Ok(ok) => {
            let _ = ch.close(200, "probed".into()).await;
            Ok(Some((ok.message_count(), ok.consumer_count())))
        }
        Err(e) if super::error::is_not_found(&e) => Ok(None),
        Err(e) => Err(BrokerError::Amqp {
            context: format!("looking at {q}"),
            source: e,
        }),
    }
}

async fn survey_on(
    conn: &Connection,
    marker: &str,
    slot_name: impl Fn(u32) -> (String, String),
) -> Result<Option<Survey>, BrokerError> {
    let Some((_, present)) = probe(conn, marker).await? else {
        return Ok(None);
    };
    let mut slots = Vec::new();
    for k in 0.. {
        let (q, rec) = slot_name(k);
        let Some((ready, consumers)) = probe(conn, &q).await? else {
            break;
        };
        let ch = conn
            .create_channel()
            .await
            .ctx(|| "opening a channel".into())?;
        let record = ch
            .basic_get(rec.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .ctx(|| format!("reading {rec}"))?
            .map(|m| m.delivery.data);
        // Closing with the record unacknowledged puts it back.
        let _ = ch.close(200, "read".into()).await;
        slots.push(SlotSurvey {
            ready,
            consumers,
            record,
        });
    }
    Ok(Some(Survey { slots, present }))
}

/// Why [`delete`] did not delete.
#[derive(Debug)]
pub enum Refused {
    /// Someone holds or waits (the marker has consumers).
    InUse,
    Broker(BrokerError),
}

/// Deletes a lease's queues, refused while anyone takes part (the marker has a consumer).
/// Quorum queues do not take `if-unused` (RabbitMQ answers NOT_IMPLEMENTED and closes the
/// connection), so the marker's consumers are counted first: a contender arriving between
/// the count and the delete loses its queues under it and stops with a broker error.
/// Names that do not exist are passed over.
pub async fn delete(broker: &Broker, who: &str, names: &LeaseQueues) -> Result<(), Refused> {
    let conn = connect(&broker.url, who, broker.connect_timeout)
        .await
        .map_err(Refused::Broker)?;
    let out = match probe(&conn, &names.marker).await {
        Ok(Some((_, consumers))) if consumers > 0 => Err(Refused::InUse),
        Ok(_) => delete_on(&conn, names).await,
        Err(e) => Err(Refused::Broker(e)),
    };
    close_quietly(&conn, "deleted").await;
    out
}

async fn delete_on(conn: &Connection, names: &LeaseQueues) -> Result<(), Refused> {
    let all = std::iter::once(&names.marker)
        .chain(&names.slots)
        .chain(&names.records);
    for q in all {
        let ch = conn
            .create_channel()
            .await
            .ctx(|| "opening a channel".into())
            .map_err(Refused::Broker)?;
        match ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            Ok(_) => {
                let _ = ch.close(200, "deleted".into()).await;
            }
            Err(e) if super::error::is_not_found(&e) => {}
            Err(e) => {
                return Err(Refused::Broker(BrokerError::Amqp {
                    context: format!("deleting {q}"),
                    source: e,
                }));
            }
        }
    }
    Ok(())
}
