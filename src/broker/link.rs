//! Opening a participant's link: a connection (its own, or one of the pool's), a channel
//! with confirms, the participant's declarations, and its consumers. The drive loop opens
//! the first one ([`super::drive`]) and every one after a lost connection
//! ([`super::reconnect`]); it lives apart from both so that neither imports the other.

use super::connect::{close_quietly, connect, open_channel, queue_exists};
use super::error::{BrokerError, is_locked};
use super::wiring::{Consume, Endpoint};
use super::{Broker, Link, bounded, op_limit};
use lapin::options::BasicConsumeOptions;

/// Opens `role`'s link within the connect timeout plus the operation limit. After a
/// reconnect (`reconnect`), a run that is not durable checks first that its queues are
/// still there: if they are gone, so are the run's messages ([`BrokerError::RunLost`]).
pub(crate) async fn open_link<E: Endpoint>(
    broker: &Broker,
    role: &E,
    reconnect: bool,
) -> Result<Link, BrokerError> {
    bounded(
        op_limit(broker) + broker.connect_timeout,
        &format!("setting up the connection of {}", role.conn_name()),
        open_link_unbounded(broker, role, reconnect),
    )
    .await
}

async fn open_link_unbounded<E: Endpoint>(
    broker: &Broker,
    role: &E,
    reconnect: bool,
) -> Result<Link, BrokerError> {
    let (conn, shared) = match &broker.pool {
        Some(pool) if role.pooled() => (pool.get().await?, true),
        _ => (
            std::sync::Arc::new(
                connect(&broker.url, role.conn_name(), broker.connect_timeout).await?,
            ),
            false,
        ),
    };
    let ch = open_channel(&conn, broker.prefetch).await?;
    if reconnect && !broker.durable {
        // Our queues must have survived the outage, or messages of the run are gone: a
        // non-durable run cannot catch up after a broker restart, and says so.
        for c in role.consumes() {
            let lost = match queue_exists(&conn, &c.queue).await {
                Ok(true) => continue,
                Ok(false) => BrokerError::RunLost { queue: c.queue },
                // Anything but NOT_FOUND (the broker still starting, out of file
                // descriptors, a stream recovering) is not news about the run, and goes the
                // way of any other failed reconnect.
                Err(e) => e,
            };
            if !shared {
                close_quietly(&conn, "reconnect check failed").await;
            }
            return Err(lost);
        }
    }
    tracing::trace!(who = %role.conn_name(), "channel open");
    if let Err(e) = role
        .prepare(&conn, &ch, broker, broker.declared && !reconnect)
        .await
    {
        if !shared {
            close_quietly(&conn, "setup refused").await;
        }
        return Err(e);
    }
    tracing::trace!(who = %role.conn_name(), "declared");
    let mut deliveries = futures::stream::SelectAll::new();
    for Consume {
        queue: q,
        args,
        exclusive,
    } in role.consumes()
    {
        // A participant's own queue has one consumer, exclusively: a second one started
        // with the same id is refused here and told so.
        let opts = BasicConsumeOptions {
            exclusive,
            ..Default::default()
        };
        let consumer = match ch
            .basic_consume(q.as_str().into(), "".into(), opts, args)
            .await
        {
            Ok(c) => c,
            Err(e) if opts.exclusive && is_locked(&e) => {
                if !shared {
                    close_quietly(&conn, "worker id taken").await;
                }
                return Err(role.taken());
            }
            Err(e) => {
                return Err(BrokerError::Amqp {
                    context: format!("consuming {q}"),
                    source: e,
                });
            }
        };
        deliveries.push(consumer);
    }
    Ok(Link {
        conn,
        shared,
        ch,
        deliveries,
    })
}
