//! Following a run from the side, outside the drive loop: a queue of one's own bound to
//! what the run publishes, read and acknowledged delivery by delivery, until the follower
//! takes part (a standby master taking over) and turns its connection into a [`Link`] for
//! the drive loop.

use super::consume::{consume, delivered};
use super::error::{BrokerError, Context};
use super::wiring::Endpoint;
use super::{Link, settle};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::time::Duration;

const TAG: &str = "follower";

/// A consumer of a queue of the follower's own (declared beforehand).
pub struct Follower {
    ch: Channel,
    queue: String,
    consumer: Consumer,
}

impl Follower {
    /// Starts consuming `queue` on `ch`.
    pub async fn start(ch: Channel, queue: String) -> Result<Self, BrokerError> {
        let consumer = consume(&ch, &queue, TAG, BasicConsumeOptions::default()).await?;
        Ok(Follower {
            ch,
            queue,
            consumer,
        })
    }

    /// The next delivery, given to `apply`, then acknowledged if `apply` accepted it and
    /// rejected if not.
    pub async fn apply_next(
        &mut self,
        apply: impl FnOnce(&[u8]) -> bool,
    ) -> Result<(), BrokerError> {
        let next = self.consumer.next().await;
        let d = delivered(next, "following the run", "follower's consumer")?;
        Self::settle_one(&d, apply(&d.data)).await
    }

    async fn settle_one(d: &Delivery, ok: bool) -> Result<(), BrokerError> {
        settle(std::slice::from_ref(d), &[ok], true).await
    }

    /// Gives `apply` everything queued for the follower, until the queue is empty and
    /// nothing more arrives within 200 ms: what the follower continues from is complete.
    pub async fn catch_up(
        &mut self,
        mut apply: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), BrokerError> {
        loop {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let queued = self
                .ch
                .queue_declare(self.queue.as_str().into(), passive, FieldTable::default())
                .await
                .ctx(|| format!("inspecting {}", self.queue))?
                .message_count();
            match tokio::time::timeout(Duration::from_millis(200), self.consumer.next()).await {
                Ok(Some(Ok(d))) => Self::settle_one(&d, apply(&d.data)).await?,
                _ if queued == 0 => return Ok(()),
                _ => {}
            }
        }
    }

    /// Stops following and deletes the follower's queue (best effort); hands back the
    /// channel.
    pub async fn stop(self) -> Channel {
        let _ = self.ch.basic_cancel(TAG.into(), Default::default()).await;
        let _ = self
            .ch
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        self.ch
    }
}

/// Turns a connection and channel already set up for `role` into its [`Link`]: consumes
/// what `role` consumes, so the drive loop takes it from there.
pub async fn adopt<E: Endpoint>(
    conn: Connection,
    ch: Channel,
    role: &E,
) -> Result<Link, BrokerError> {
    let mut deliveries = futures::stream::SelectAll::new();
    for c in role.consumes() {
        let opts = BasicConsumeOptions {
            exclusive: c.exclusive,
            ..Default::default()
        };
        deliveries.push(
            ch.basic_consume(c.queue.as_str().into(), "".into(), opts, c.args)
                .await
                .ctx(|| format!("consuming {}", c.queue))?,
        );
    }
    Ok(Link {
        conn: std::sync::Arc::new(conn),
        shared: false,
        ch,
        deliveries,
    })
}
