//! The broker adapter: drives any algorithm's state machines against RabbitMQ.
//!
//! Everything here is plumbing the algorithms deliberately know nothing about, one job a
//! file: the URL and its redaction ([`url`]), connecting and classifying failures
//! ([`connect`], [`error`]), declaring and deleting a run's names from a declarative
//! description of its wiring ([`wiring`]), the drive loop — publisher confirms, acks only
//! after the machine applied a delivery, rejects for what it refused ([`drive`]), opening
//! a participant's link ([`link`]), reconnect with backoff ([`reconnect`]), the connection
//! pool of an in-process run ([`pool`]), point-to-point runs and their one runner
//! ([`peers`]), consumers of shared queues and streams ([`consume`]), a standby following
//! the active participant ([`follow`]), leases on single-active-consumer token queues (the
//! lock's, [`lease`]), deleting what nobody uses ([`unused`]) and the benchmarks'
//! yardstick, the broker's own round trip ([`yardstick`]).
//! It turns wall-clock time into the milliseconds the core works with; the core never
//! reads a clock.

pub mod connect;
pub mod consume;
pub mod drive;
pub mod error;
pub mod follow;
pub mod lease;
pub mod link;
pub mod peers;
pub mod pool;
pub mod reconnect;
pub mod reply;
pub mod unused;
pub mod url;
pub mod wiring;
pub mod yardstick;

pub use connect::{
    FRAME_MAX, close_quietly, connect, hold_exclusive, open_channel, queue_consumers, queue_exists,
};
pub use drive::{Start, cleanup_fresh, drive, settle};
pub use error::BrokerError;
pub use pool::ConnectionPool;
pub use url::{BrokerUrl, redact_loose};
pub use wiring::{
    Consume, Endpoint, Exchange, ExchangeKind, QUEUE_EXPIRES_MS, Queue, QueueKind, QueueOpts,
    Wiring,
};

use crate::contract::Millis;
use lapin::{Channel, Connection};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Connection settings shared by every participant.
#[derive(Debug, Clone)]
pub struct Broker {
    pub url: BrokerUrl,
    pub connect_timeout: Duration,
    pub prefetch: u16,
    /// Durable exchanges and queues, persistent messages: the run survives a broker restart.
    pub durable: bool,
    /// Per-worker queues or one stream.
    pub topology: crate::contract::Topology,
    /// Classic or quorum queues (`--queue-type`).
    pub queue_type: crate::contract::QueueType,
    /// Workers driven with this `Broker` share these connections (each on a channel of
    /// its own) instead of opening one each; `None`: one connection per participant.
    pub pool: Option<std::sync::Arc<ConnectionPool>>,
    /// The run's shared names are known to be declared (an in-process run's master did it
    /// before starting its workers): a worker's first connection need not check. After a
    /// reconnect it always checks.
    pub declared: bool,
    /// Counters shared by every participant driven with this `Broker` (for `--json` and
    /// the benchmark).
    pub stats: std::sync::Arc<Stats>,
}

impl Broker {
    /// How this run's queues are declared.
    pub fn queue_opts(&self) -> QueueOpts {
        QueueOpts {
            durable: self.durable,
            queue_type: self.queue_type,
        }
    }
}

/// What the drivers of one process did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Deliveries consumed, by every participant.
    pub deliveries: std::sync::atomic::AtomicU64,
    /// Messages published (and confirmed).
    pub published: std::sync::atomic::AtomicU64,
}

/// A signal that asks a driver to stop (Ctrl-C, SIGTERM, SIGHUP). `true` means stop.
pub type Shutdown = watch::Receiver<bool>;

/// Why an interrupted participant stopped, as it tells the others in `abort`.
pub const INTERRUPTED: &str = "interrupted by a signal (Ctrl-C, SIGTERM or SIGHUP)";

pub async fn stopped(shutdown: &mut Shutdown) {
    if *shutdown.borrow() {
        return;
    }
    while shutdown.changed().await.is_ok() {
        if *shutdown.borrow() {
            return;
        }
    }
    std::future::pending::<()>().await
}

/// Waits until `at` (milliseconds since `t0`), or forever for `None`.
pub fn sleep_until_ms(t0: Instant, at: Option<Millis>) -> impl Future<Output = ()> {
    let at = at.map(|ms| tokio::time::Instant::from_std(t0 + Duration::from_millis(ms)));
    async move {
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// The core's clock: milliseconds since `t0`.
pub fn now_ms(t0: Instant) -> Millis {
    t0.elapsed().as_millis() as Millis
}

/// One live connection of a participant: its channel and merged consumers.
pub struct Link {
    pub conn: std::sync::Arc<Connection>,
    /// The connection belongs to a [`ConnectionPool`]: closing means closing the channel.
    pub shared: bool,
    pub ch: Channel,
    pub deliveries: futures::stream::SelectAll<lapin::Consumer>,
}

impl Link {
    /// Lets go of the link: its channel if the connection is shared, else the connection.
    pub async fn close(&self, why: &str) {
        if self.shared {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.ch.close(200, why.into())).await;
        } else {
            close_quietly(&self.conn, why).await;
        }
    }
}

/// Bounds a broker operation that has no timeout of its own. A broker that accepts a
/// connection but stalls (booting, overloaded, a half-dead socket) turns into a transient
/// error, which the driver answers by reconnecting: never an endless wait.
pub async fn bounded<T>(
    limit: Duration,
    what: &str,
    op: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, op).await {
        Ok(r) => r,
        Err(_) => Err(BrokerError::Stalled {
            what: what.to_owned(),
            secs: limit.as_secs(),
        }),
    }
}

/// How long one step with the broker (a link's setup, a batch's confirms, a cleanup) may
/// take before the connection is presumed dead.
pub fn op_limit(broker: &Broker) -> Duration {
    (broker.connect_timeout * 2).max(Duration::from_secs(10))
}
