//! The drive loop: one state machine, one participant, against the broker, until it
//! finishes.
//!
//! Delivery guarantees, the same for every algorithm: a delivery is acknowledged only
//! after every message it caused has been confirmed by the broker; what the machine
//! refused is rejected (never requeued); messages whose confirm did not arrive before a
//! connection loss are published again on the new connection, and unacknowledged
//! deliveries come back redelivered — duplicates the machines recognise (by sequence
//! number, see [`crate::contract::fifo`]).

use super::connect::{close_quietly, connect};
use super::error::{BrokerError, Context, is_transient, stream_not_ready};
use super::link::open_link;
use super::wiring::{Endpoint, QUEUE_EXPIRES_MS};
use super::{
    Broker, INTERRUPTED, Link, Shutdown, bounded, now_ms, op_limit, sleep_until_ms, stopped,
};
use crate::contract::{HoldId, PACK_LIMIT, Route, StateMachine, Wire, drain_with_releases};
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicPublishOptions, BasicRejectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Deliveries handled before their effects are published and they are acknowledged.
const MAX_BATCH: usize = 64;

/// Sends one message; the returned future resolves to the broker's confirm.
async fn send<E: Endpoint, W: Wire>(
    ch: &Channel,
    endpoint: &E,
    route: Route,
    msg: &W,
    broker: &Broker,
) -> Result<lapin::PublisherConfirm, BrokerError> {
    let (exchange, key) = endpoint.destination(route);
    let props = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_app_id(ShortString::from("sync-run"))
        .with_type(ShortString::from(msg.kind()))
        // RabbitMQ refuses a `user_id` other than the connection's own user, so a receiver
        // can trust it: `--master-user` rests on this.
        .with_user_id(ShortString::from(broker.url.user()))
        .with_delivery_mode(if broker.durable { 2 } else { 1 });
    let body = msg.encode()?;
    ch.basic_publish(
        exchange.as_str().into(),
        key.as_str().into(),
        BasicPublishOptions::default(),
        &body,
        props,
    )
    .await
    .ctx(|| format!("publishing {} to {exchange}", msg.kind()))
}

/// Publishes everything in `outbox`, pipelined (all sent, then all confirms awaited), and
/// removes each message once the broker has confirmed it. On error the unconfirmed rest
/// stays in the outbox, to be published again after a reconnect.
async fn publish_all<E: Endpoint, W: Wire>(
    ch: &Channel,
    endpoint: &E,
    outbox: &mut VecDeque<(Route, W)>,
    broker: &Broker,
) -> Result<(), BrokerError> {
    let stats = &broker.stats;
    let mut confirms = Vec::with_capacity(outbox.len());
    for (route, msg) in outbox.iter() {
        confirms.push(send(ch, endpoint, *route, msg, broker).await?);
    }
    for confirm in confirms {
        let kind = outbox.front().map_or("message", |(_, m)| m.kind());
        match confirm
            .await
            .ctx(|| format!("waiting for the confirm of {kind}"))?
        {
            Confirmation::Ack(_) => {
                outbox.pop_front();
                stats
                    .published
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // A nack, or no confirm at all (the channel went away): publish again later.
            other => {
                return Err(BrokerError::Lost {
                    what: format!("publish of {kind} (confirm: {other:?})"),
                });
            }
        }
    }
    Ok(())
}

/// Opens a participant's first connection. A broker that cannot be reached is reported at
/// once (within the connect timeout); a connection the broker drops while it is being set up
/// is tried again a few times. That happens with `--topology stream`: when many
/// participants declare the same new stream at once, RabbitMQ may answer a consumer on it
/// with `stream_not_found` (its replica is still starting) and close that connection.
async fn first_link<E: Endpoint>(broker: &Broker, role: &E) -> Result<Link, BrokerError> {
    let mut attempt = 0u64;
    loop {
        match open_link(broker, role, false).await {
            Ok(l) => return Ok(l),
            Err(e)
                if attempt < 10
                    && (stream_not_ready(&e)
                        || is_transient(&e)
                            && !matches!(
                                e,
                                BrokerError::Unreachable { .. }
                                    | BrokerError::ConnectTimeout { .. }
                            )) =>
            {
                attempt += 1;
                tracing::debug!(who = %role.conn_name(), error = %e, attempt, "setting up the connection failed; trying again");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How a driver starts: the participant, its link if already open (a standby taking
/// over), and whom to tell once the link is up.
pub struct Start<E> {
    pub role: E,
    pub link: Option<Link>,
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
}

/// [`drive`] for the common start: a participant that opens its own link, tells no one
/// when it is up and reports no progress (a list worker, a point-to-point peer).
pub async fn drive_fresh<M: StateMachine, E: Endpoint>(
    broker: &Broker,
    role: E,
    m: M,
    t0: Instant,
    shutdown: Shutdown,
    cleanup: impl Fn(&M, &Result<M::Finished, BrokerError>) -> E::Cleanup,
) -> Result<M::Finished, BrokerError> {
    let start = Start {
        role,
        link: None,
        ready: None,
    };
    drive(broker, start, m, t0, shutdown, |_| {}, cleanup).await
}

/// Drives one state machine against the broker until it finishes, reconnecting with
/// exponential backoff when the connection drops (until the machine's own deadline), then
/// deletes what `cleanup` names.
///
/// Delivery guarantees: a delivery is acknowledged only after every message it caused has
/// been confirmed by the broker. Messages whose confirm did not arrive before a connection
/// loss are published again on the new connection, and unacknowledged deliveries come back
/// redelivered: both are duplicates the state machines recognise by sequence number.
pub async fn drive<M: StateMachine, E: Endpoint>(
    broker: &Broker,
    Start { role, link, ready }: Start<E>,
    mut m: M,
    t0: Instant,
    mut shutdown: Shutdown,
    mut on_progress: impl FnMut(&M),
    cleanup: impl Fn(&M, &Result<M::Finished, BrokerError>) -> E::Cleanup,
) -> Result<M::Finished, BrokerError> {
    let mut link = match link {
        Some(l) => l,
        None => first_link(broker, &role).await?,
    };
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let single_consumer = role.consumes().len() == 1;
    // Published but not yet confirmed, in order.
    let mut outbox: VecDeque<(Route, M::Msg)> = Default::default();
    let mut finished: Option<M::Finished> = None;
    let mut reconnects = 0u32;
    // Deliveries the machine keeps unacknowledged (`StateMachine::take_hold`), and the
    // holds it has released but whose acknowledgement is still to be sent.
    let mut held: HashMap<HoldId, lapin::message::Delivery> = HashMap::new();
    let mut released: Vec<HoldId> = Vec::new();
    let outcome = loop {
        let step: Result<(), BrokerError> = async {
            loop {
                outbox.extend(drain_with_releases(&mut m, &mut finished, PACK_LIMIT, &mut released));
                bounded(op_limit(broker), "publishing", async {
                    publish_all(&link.ch, &role, &mut outbox, broker).await?;
                    release(&mut held, &mut released, broker).await
                }).await?;
                if finished.is_some() {
                    return Ok(());
                }
                tokio::select! {
                    d = link.deliveries.next() => {
                        // This delivery and every one already here, up to a batch: their
                        // effects are published together and confirmed together.
                        let mut batch = Vec::with_capacity(16);
                        let mut next = d;
                        loop {
                            match next {
                                Some(Ok(d)) => batch.push(d),
                                Some(Err(e)) => return Err(BrokerError::Amqp { context: "consuming".into(), source: e }),
                                None => return Err(BrokerError::Lost { what: format!("consumer of {}", role.conn_name()) }),
                            }
                            if batch.len() >= MAX_BATCH {
                                break;
                            }
                            match link.deliveries.next().now_or_never() {
                                Some(n) => next = n,
                                None => break,
                            }
                        }
                        let now = now_ms(t0);
                        tracing::trace!(who = %role.conn_name(), deliveries = batch.len(), "batch in");
                        let mut accepted = Vec::with_capacity(batch.len());
                        let mut holds: Vec<Option<HoldId>> = Vec::with_capacity(batch.len());
                        for d in &batch {
                            let publisher = d.properties.user_id().as_ref().map(|u| u.as_str());
                            let ok = m.handle_from(now, &d.data, publisher).is_ok();
                            accepted.push(ok);
                            holds.push(if ok { m.take_hold() } else { None });
                        }
                        // Everything this batch caused, packed: N workers get one delivery
                        // for the lot instead of one per message.
                        outbox.extend(drain_with_releases(&mut m, &mut finished, PACK_LIMIT, &mut released));
                        // What the machine holds is acknowledged when it releases it, not now.
                        let mut settled = Vec::with_capacity(batch.len());
                        let mut settled_ok = Vec::with_capacity(batch.len());
                        for ((d, ok), h) in batch.into_iter().zip(accepted).zip(holds) {
                            match h {
                                Some(h) => { held.insert(h, d); }
                                None => { settled.push(d); settled_ok.push(ok); }
                            }
                        }
                        // Effects first, then the acknowledgement of their causes.
                        bounded(op_limit(broker), "publishing and acknowledging", async {
                            publish_all(&link.ch, &role, &mut outbox, broker).await?;
                            tracing::trace!(who = %role.conn_name(), "effects confirmed");
                            if role.acks_refused() {
                                settled_ok.iter_mut().for_each(|a| *a = true);
                            }
                            release(&mut held, &mut released, broker).await?;
                            // One `multiple` ack would also acknowledge what is still held.
                            settle(&settled, &settled_ok, single_consumer && held.is_empty()).await
                        }).await?;
                        tracing::trace!(who = %role.conn_name(), "batch settled");
                        broker.stats.deliveries.fetch_add(settled.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        on_progress(&m);
                    }
                    _ = sleep_until_ms(t0, m.next_timeout()) => m.handle_timeout(now_ms(t0)),
                    _ = stopped(&mut shutdown) => m.interrupt(now_ms(t0), INTERRUPTED.into()),
                }
            }
        }
        .await;
        match step {
            Ok(()) => break Ok(finished.take()),
            Err(e) if is_transient(&e) && !*shutdown.borrow() => {
                tracing::warn!(who = %role.conn_name(), error = %e, "connection lost; reconnecting");
                link.close("reconnecting").await;
                // The broker gives back everything that was held: the machine takes it
                // again from the redeliveries.
                held.clear();
                released.clear();
                m.link_lost();
                match super::reconnect::reconnect(
                    broker,
                    &role,
                    &mut m,
                    &mut outbox,
                    t0,
                    &mut shutdown,
                    &mut reconnects,
                )
                .await
                {
                    Ok(l) => {
                        tracing::debug!(who = %role.conn_name(), pending = outbox.len(), "re-publishing unconfirmed messages");
                        link = l
                    }
                    Err(e) => break Err(e),
                }
            }
            Err(e) => break Err(e),
        }
    };
    let outcome = match outcome {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(BrokerError::Lost {
            what: "run (no outcome)".into(),
        }),
        Err(e) => Err(e),
    };
    let what = cleanup(&m, &outcome);
    if bounded(
        op_limit(broker),
        "deleting the run",
        role.delete(&link, &what),
    )
    .await
    .is_err()
    {
        cleanup_fresh(broker, &role, &what).await;
    }
    link.close("done").await;
    outcome
}

/// Acknowledges the deliveries the machine released (each on its own: they may be
/// anywhere among the unacknowledged). A release of a hold that is gone (voided by a lost
/// connection) does nothing.
async fn release(
    held: &mut HashMap<HoldId, lapin::message::Delivery>,
    released: &mut Vec<HoldId>,
    broker: &Broker,
) -> Result<(), BrokerError> {
    let ds: Vec<_> = released.drain(..).filter_map(|h| held.remove(&h)).collect();
    let acks = ds.iter().map(|d| d.ack(BasicAckOptions::default()));
    for r in futures::future::join_all(acks).await {
        r.ctx(|| "acknowledging a held delivery".into())?;
    }
    broker
        .stats
        .deliveries
        .fetch_add(ds.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Acknowledges the accepted deliveries of a batch and rejects the others (dead-lettered
/// nowhere: they are counted and logged by the state machine). With one consumer on the
/// channel the deliveries arrive in tag order and every earlier one is settled, so one
/// `multiple` ack covers the batch; with two (the master's) each is acked on its own, all
/// handed to lapin at once (in order: `join_all` polls them in turn) and awaited together.
pub async fn settle(
    batch: &[lapin::message::Delivery],
    accepted: &[bool],
    single_consumer: bool,
) -> Result<(), BrokerError> {
    let rejects = batch
        .iter()
        .zip(accepted)
        .filter(|(_, ok)| !**ok)
        .map(|(d, _)| d.reject(BasicRejectOptions { requeue: false }));
    for r in futures::future::join_all(rejects).await {
        r.ctx(|| "rejecting a delivery".into())?;
    }
    let mut ok = batch.iter().zip(accepted).filter(|(_, ok)| **ok);
    if single_consumer {
        if let Some((last, _)) = ok.next_back() {
            last.ack(BasicAckOptions { multiple: true })
                .await
                .ctx(|| "acknowledging deliveries".into())?;
        }
    } else {
        let acks = ok.map(|(d, _)| d.ack(BasicAckOptions::default()));
        for r in futures::future::join_all(acks).await {
            r.ctx(|| "acknowledging a delivery".into())?;
        }
    }
    Ok(())
}

/// Best-effort deletion over a new connection, after the old one broke (or the first
/// attempt was refused). A stream still recovering from a broker restart refuses to be
/// deleted for a few seconds, and a stream never expires on its own: that is tried again,
/// on a fresh channel each time (a refusal closes the channel).
pub async fn cleanup_fresh<E: Endpoint>(broker: &Broker, role: &E, what: &E::Cleanup) {
    let attempt = async {
        let conn = connect(&broker.url, "sync-run cleanup", broker.connect_timeout).await?;
        let mut tries = 0;
        loop {
            let ch = super::connect::bare_channel(&conn).await?;
            match role.delete_fresh(&conn, &ch, what).await {
                Ok(()) => break,
                Err(e) if stream_not_ready(&e) && tries < 16 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    close_quietly(&conn, "cleanup failed").await;
                    return Err(e);
                }
            }
        }
        close_quietly(&conn, "cleanup done").await;
        Ok::<(), BrokerError>(())
    };
    if let Err(e) = bounded(
        op_limit(broker) + broker.connect_timeout,
        "cleaning up",
        attempt,
    )
    .await
    {
        tracing::error!(error = %e, run = role.run_id(), "could not delete the run's queues; they expire on their own after {} s unused", QUEUE_EXPIRES_MS / 1000);
    }
}
