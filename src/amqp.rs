//! The lapin adapter: drives the [`Master`] and [`Worker`] state machines against RabbitMQ.
//!
//! Everything here is plumbing the core deliberately knows nothing about: connecting (with a
//! timeout, and with the password kept out of every message), declaring and deleting a
//! run's exchanges and queues, publishing with publisher confirms, acknowledging a delivery
//! only after the state machine has applied it, rejecting what it refused, and turning
//! wall-clock time into the milliseconds the core works with.

use crate::master::{Master, MasterConfig, RunRecord};
use crate::protocol::{
    MASTER_KEY, MAX_BATCH_MESSAGES, Message, Names, RESULTS_KEY, WorkerId, coalesce,
};
use crate::worker::{Worker, WorkerConfig, WorkerOutcome};
use crate::{Millis, Route, StateMachine};
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use rand::RngCore;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::Instrument;

/// A broker URL, validated, with a printable form that never shows the password.
#[derive(Clone)]
pub struct BrokerUrl {
    raw: String,
    redacted: String,
    /// The user the broker authenticates this URL as (AMQP's default `guest` when the URL
    /// names none): every message is published with it as its AMQP `user_id`, which
    /// RabbitMQ checks against the connection's user.
    user: String,
}

impl BrokerUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(s).map_err(|e| {
            format!(
                "invalid AMQP URL {:?}: {e}; expected e.g. amqp://guest:guest@127.0.0.1:5672/%2f",
                redact_loose(s)
            )
        })?;
        if url.scheme() != "amqp" {
            return Err(format!(
                "unsupported URL scheme {:?} in {}: use amqp:// (TLS is not built in)",
                url.scheme(),
                redact_loose(s)
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("the AMQP URL {} names no host", redact_loose(s)));
        }
        // Let lapin's own parser have its say too (vhost, port, query options).
        s.parse::<lapin::uri::AMQPUri>()
            .map_err(|e| format!("invalid AMQP URL {}: {e}", redact_loose(s)))?;
        let user = match url.username() {
            "" => "guest".to_string(),
            u => percent_encoding::percent_decode_str(u)
                .decode_utf8_lossy()
                .into_owned(),
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        Ok(BrokerUrl {
            raw: s.to_owned(),
            redacted: url.to_string(),
            user,
        })
    }

    /// The user this URL logs in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL as given, password included: for handing to a child process's
    /// environment, never for printing.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({})", self.redacted)
    }
}

/// Redacts `user:password@` in a string that may not even parse as a URL.
pub fn redact_loose(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &s[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &s[..scheme_end + 3],
                    &userinfo[..colon],
                    &s[at..]
                ),
                None => s.to_owned(),
            }
        }
        _ => s.to_owned(),
    }
}

/// Everything that can go wrong talking to the broker. Messages name the URL redacted.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot connect to the broker at {url}: {reason} (is RabbitMQ running? try `docker compose up -d`)"
    )]
    Unreachable { url: String, reason: String },
    #[error("no answer from the broker at {url} within {timeout_ms} ms (connect timeout)")]
    ConnectTimeout { url: String, timeout_ms: u128 },
    #[error("the broker at {url} refused the credentials: {reason}")]
    Auth { url: String, reason: String },
    #[error(
        "{url} is not an AMQP broker (protocol error: {reason}); check the host and port (RabbitMQ's AMQP port is 5672, its management UI 15672)"
    )]
    NotAmqp { url: String, reason: String },
    #[error("broker error while {context}: {source}")]
    Amqp {
        context: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker closed the {what} mid-run")]
    Lost { what: String },
    #[error("the broker did not answer while {what} within {secs} s (connection presumed dead)")]
    Stalled { what: String, secs: u64 },
    #[error(
        "queue {queue} is gone after reconnecting (the broker restarted?): the run's messages are lost; use --durable to survive broker restarts"
    )]
    RunLost { queue: String },
    #[error(
        "another master holds run {run}'s leadership lock: a run has one active master (start this one with --standby to take over when the active one is gone, or pick another --run-id)"
    )]
    NotLeader { run: String },
    #[error(
        "another worker of run {run} already has id {id} (its queue is in exclusive use): give each worker its own --id"
    )]
    IdTaken { run: String, id: WorkerId },
}

impl BrokerError {
    /// The process exit code for this error: a conflict over the run id or the worker id
    /// is the user's to resolve (5); everything else is the broker's (3).
    pub fn exit_code(&self) -> i32 {
        match self {
            BrokerError::NotLeader { .. } | BrokerError::IdTaken { .. } => crate::exit::CONFLICT,
            _ => crate::exit::BROKER,
        }
    }

    /// A short stable label for `--json` documents.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::Unreachable { .. } => "unreachable",
            BrokerError::ConnectTimeout { .. } => "connect_timeout",
            BrokerError::Auth { .. } => "auth",
            BrokerError::NotAmqp { .. } => "not_amqp",
            BrokerError::Amqp { .. } => "amqp",
            BrokerError::Lost { .. } => "lost",
            BrokerError::Stalled { .. } => "stalled",
            BrokerError::RunLost { .. } => "run_lost",
            BrokerError::NotLeader { .. } => "master_conflict",
            BrokerError::IdTaken { .. } => "worker_id_conflict",
        }
    }
}

trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, BrokerError>;
}

impl<T> Context<T> for Result<T, lapin::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, BrokerError> {
        self.map_err(|source| BrokerError::Amqp {
            context: context(),
            source,
        })
    }
}

/// Connects within `timeout`, classifying failures for the user. A refused connection is
/// tried again until the timeout: a broker that is still starting (the normal case right
/// after `docker compose up`) refuses connections for a few seconds, and that is no reason
/// to give up.
pub async fn connect(
    url: &BrokerUrl,
    name: &str,
    timeout: Duration,
) -> Result<Connection, BrokerError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = tokio::time::timeout_at(deadline, connect_once(url, name));
        let refused = match attempt.await {
            Err(_) => {
                return Err(BrokerError::ConnectTimeout {
                    url: url.redacted.clone(),
                    timeout_ms: timeout.as_millis(),
                });
            }
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) => match e.kind() {
                lapin::ErrorKind::IOError(io)
                    if io.kind() == std::io::ErrorKind::ConnectionRefused =>
                {
                    e
                }
                _ => return Err(classify(url, e)),
            },
        };
        if tokio::time::Instant::now() + delay >= deadline {
            return Err(BrokerError::Unreachable {
                url: url.redacted.clone(),
                reason: format!(
                    "{refused} (tried for {} ms, the connect timeout)",
                    timeout.as_millis()
                ),
            });
        }
        tracing::debug!(url = %url, error = %refused, "connection refused; trying again");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(1000));
    }
}

async fn connect_once(url: &BrokerUrl, name: &str) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name(name.to_string().into());
    // Validated by `BrokerUrl::parse` already; an unparsable one is refused here as a
    // protocol error (`classify` reports it as such).
    let mut uri: lapin::uri::AMQPUri = url.raw.parse().map_err(|_| {
        lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
            lapin::ConnectionState::Error,
        ))
    })?;
    // lapin keeps 2 × 32 frames of buffer per connection: at RabbitMQ's default frame_max
    // of 128 KiB that is 8 MiB per worker. Protocol messages are a few hundred bytes
    // (larger ones are split into frames), so ask for small frames unless the URL says
    // otherwise.
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Connection::connect_uri(uri, props).await
}

/// Says what a failed connection attempt means for the user.
fn classify(url: &BrokerUrl, e: lapin::Error) -> BrokerError {
    let reason = e.to_string();
    let lower = reason.to_lowercase();
    if lower.contains("access_refused")
        || lower.contains("access-refused")
        || lower.contains("authentication")
        || lower.contains("login")
        || lower.contains("403")
    {
        return BrokerError::Auth {
            url: url.redacted.clone(),
            reason: "ACCESS_REFUSED (check the user and password in --amqp-url / AMQP_URL)".into(),
        };
    }
    match e.kind() {
        lapin::ErrorKind::IOError(_) => BrokerError::Unreachable {
            url: url.redacted.clone(),
            reason,
        },
        // The peer answered with something that is not AMQP 0-9-1 (an HTTP server, a
        // database, another protocol's port).
        lapin::ErrorKind::ParsingError(_)
        | lapin::ErrorKind::InvalidProtocolVersion(_)
        | lapin::ErrorKind::SerialisationError(_) => BrokerError::NotAmqp {
            url: url.redacted.clone(),
            reason,
        },
        // RabbitMQ closes the socket during the handshake on a bad login; lapin reports
        // that as a protocol/state error rather than an I/O error.
        _ => BrokerError::Auth {
            url: url.redacted.clone(),
            reason: format!(
                "the connection was closed during the handshake ({reason}); check the credentials and the vhost"
            ),
        },
    }
}

pub use crate::protocol::Topology;

/// How a run's queues are declared.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopologyOptions {
    pub prefetch: u16,
}

/// A queue left behind by a crashed participant deletes itself after this long unused.
/// Explicit deletes do the normal cleanup; this is the safety net for kill -9.
pub const QUEUE_EXPIRES_MS: i64 = 120_000;

/// The frame size sync-run asks for (bytes) unless the URL sets `frame_max`.
pub const FRAME_MAX: u32 = 8192;

/// Deliveries handled before their effects are published and they are acknowledged.
const MAX_BATCH: usize = 64;

fn queue_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
    t
}

fn queue_opts(durable: bool) -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable,
        ..Default::default()
    }
}

/// The stream's arguments. Streams are always durable and take no `x-expires`: the master
/// deletes the stream when the run ends (see docs/PROTOCOL.md on leftovers).
fn stream_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    t
}

/// Declares the run's stream (topology `stream`) and binds it to the fanout.
async fn declare_stream(ch: &Channel, names: &Names) -> Result<(), BrokerError> {
    declare_on_fanout(ch, names, &names.log(), queue_opts(true), stream_args()).await
}

/// Declares queue `q` and binds it to the run's fanout: how every reader of the
/// broadcasts (a worker's queue, the stream) is set up.
async fn declare_on_fanout(
    ch: &Channel,
    names: &Names,
    q: &str,
    opts: QueueDeclareOptions,
    args: FieldTable,
) -> Result<(), BrokerError> {
    ch.queue_declare(q.into(), opts, args)
        .await
        .ctx(|| format!("declaring queue {q}"))?;
    ch.queue_bind(
        q.into(),
        names.fanout().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .ctx(|| format!("binding {q}"))?;
    Ok(())
}

/// Declares what both roles need: both exchanges, the master's queue and the results
/// queue with their bindings. Idempotent, so whichever role starts first creates them.
pub async fn declare_shared(ch: &Channel, names: &Names, durable: bool) -> Result<(), BrokerError> {
    // auto_delete: once every queue of the run is gone (deleted or expired), so is the exchange.
    let xopts = ExchangeDeclareOptions {
        auto_delete: true,
        durable,
        ..Default::default()
    };
    ch.exchange_declare(
        names.fanout().into(),
        ExchangeKind::Fanout,
        xopts,
        FieldTable::default(),
    )
    .await
    .ctx(|| format!("declaring exchange {}", names.fanout()))?;
    ch.exchange_declare(
        names.direct().into(),
        ExchangeKind::Direct,
        xopts,
        FieldTable::default(),
    )
    .await
    .ctx(|| format!("declaring exchange {}", names.direct()))?;
    for (queue, bindings) in [
        (
            names.master_queue(),
            vec![(names.direct(), MASTER_KEY), (names.fanout(), "")],
        ),
        (names.results_queue(), vec![(names.direct(), RESULTS_KEY)]),
    ] {
        ch.queue_declare(queue.as_str().into(), queue_opts(durable), queue_args())
            .await
            .ctx(|| format!("declaring queue {queue}"))?;
        for (exchange, key) in bindings {
            ch.queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .ctx(|| format!("binding {queue} to {exchange}"))?;
        }
    }
    Ok(())
}

/// Declares worker `id`'s queue and binds it to the fanout.
pub async fn declare_worker_queue(
    ch: &Channel,
    names: &Names,
    id: WorkerId,
    durable: bool,
) -> Result<(), BrokerError> {
    let q = names.worker_queue(id);
    declare_on_fanout(ch, names, &q, queue_opts(durable), queue_args()).await
}

/// What a participant deletes when it is done.
#[derive(Debug, Clone)]
pub enum Cleanup {
    /// The master: everything of the run, including the queues of these workers.
    Run(Vec<WorkerId>),
    /// A worker: its own queue; and, if the run never started for it (`abandoned`: no
    /// master ever answered), the run's shared names it may have declared itself — each
    /// only if no one uses it (see [`delete_abandoned`]).
    Worker { id: WorkerId, abandoned: bool },
}

/// Deletes what `what` names. RabbitMQ treats deleting a missing queue or exchange as
/// success, so both roles may delete the same thing.
pub async fn delete_run(ch: &Channel, names: &Names, what: &Cleanup) -> Result<(), BrokerError> {
    let workers = match what {
        Cleanup::Worker { id, .. } => {
            let q = names.worker_queue(*id);
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .ctx(|| format!("deleting queue {q}"))?;
            return Ok(());
        }
        Cleanup::Run(workers) => workers,
    };
    let mut queues = vec![names.master_queue(), names.results_queue(), names.log()];
    queues.extend(workers.iter().map(|w| names.worker_queue(*w)));
    // Pipelined: every delete is sent, then the answers are awaited (in order), instead
    // of one round trip per queue — a thousand workers' queues in one go.
    let deletes = queues
        .iter()
        .map(|q| ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()));
    for (r, q) in futures::future::join_all(deletes)
        .await
        .into_iter()
        .zip(&queues)
    {
        r.ctx(|| format!("deleting queue {q}"))?;
    }
    for x in [names.fanout(), names.direct()] {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .ctx(|| format!("deleting exchange {x}"))?;
    }
    Ok(())
}

/// What a worker whose run never started deletes besides its own queue: the names a
/// master would have deleted, had there been one — the master's and the results queue and
/// the stream (a stream never expires by itself). Each goes only if it has no consumer
/// (`if-unused`): a master or another stream reader that is there keeps it. The exchanges
/// are auto-delete and go with their last bound queue. A worker still waiting for the same
/// run re-declares what it misses (a missing name is a transient error).
async fn delete_abandoned(conn: &Connection, names: &Names) {
    for q in [names.log(), names.master_queue(), names.results_queue()] {
        // A refused delete (in use) closes its channel: one channel per delete.
        let Ok(ch) = conn.create_channel().await else {
            return;
        };
        let opts = QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        match ch.queue_delete(q.as_str().into(), opts).await {
            Ok(_) => {
                tracing::debug!(queue = %q, "deleted a name of a run that never started");
                let _ = tokio::time::timeout(Duration::from_secs(2), ch.close(200, "done".into()))
                    .await;
            }
            Err(e) => tracing::debug!(queue = %q, error = %e, "left in place (in use)"),
        }
    }
}

async fn open_channel(conn: &Connection, prefetch: u16) -> Result<Channel, BrokerError> {
    let ch = conn
        .create_channel()
        .await
        .ctx(|| "opening a channel".into())?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ctx(|| "enabling publisher confirms".into())?;
    ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .ctx(|| "setting the prefetch".into())?;
    Ok(ch)
}

/// Sends one message; the returned future resolves to the broker's confirm.
async fn send(
    ch: &Channel,
    names: &Names,
    route: Route,
    msg: &Message,
    broker: &Broker,
) -> Result<lapin::PublisherConfirm, BrokerError> {
    let (exchange, key) = match route {
        Route::Fanout => (names.fanout(), ""),
        Route::Master => (names.direct(), MASTER_KEY),
        Route::Results => (names.direct(), RESULTS_KEY),
    };
    let props = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_app_id(ShortString::from("sync-run"))
        .with_type(ShortString::from(msg.body.kind()))
        // RabbitMQ refuses a `user_id` other than the connection's own user, so a receiver
        // can trust it: `--master-user` rests on this.
        .with_user_id(ShortString::from(broker.url.user()))
        .with_delivery_mode(if broker.durable { 2 } else { 1 });
    ch.basic_publish(
        exchange.as_str().into(),
        key.into(),
        BasicPublishOptions::default(),
        &msg.encode(),
        props,
    )
    .await
    .ctx(|| format!("publishing {} to {exchange}", msg.body.kind()))
}

/// Publishes everything in `outbox`, pipelined (all sent, then all confirms awaited), and
/// removes each message once the broker has confirmed it. On error the unconfirmed rest
/// stays in the outbox, to be published again after a reconnect.
async fn publish_all(
    ch: &Channel,
    names: &Names,
    outbox: &mut VecDeque<(Route, Message)>,
    broker: &Broker,
) -> Result<(), BrokerError> {
    let stats = &broker.stats;
    let mut confirms = Vec::with_capacity(outbox.len());
    for (route, msg) in outbox.iter() {
        confirms.push(send(ch, names, *route, msg, broker).await?);
    }
    for confirm in confirms {
        let kind = outbox.front().map_or("message", |(_, m)| m.body.kind());
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

/// A signal that asks a driver to stop (Ctrl-C, SIGTERM, SIGHUP). `true` means stop.
pub type Shutdown = watch::Receiver<bool>;

/// Why an interrupted participant stopped, as it tells the others in `abort`.
const INTERRUPTED: &str = "interrupted by a signal (Ctrl-C, SIGTERM or SIGHUP)";

async fn stopped(shutdown: &mut Shutdown) {
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

fn sleep_until_ms(t0: Instant, at: Option<Millis>) -> impl Future<Output = ()> {
    let at = at.map(|ms| tokio::time::Instant::from_std(t0 + Duration::from_millis(ms)));
    async move {
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

fn now_ms(t0: Instant) -> Millis {
    t0.elapsed().as_millis() as Millis
}

/// Connection settings shared by every participant.
#[derive(Debug, Clone)]
pub struct Broker {
    pub url: BrokerUrl,
    pub connect_timeout: Duration,
    pub prefetch: u16,
    /// Durable exchanges and queues, persistent messages: the run survives a broker restart.
    pub durable: bool,
    /// Per-worker queues or one stream.
    pub topology: Topology,
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

/// What the drivers of one process did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Deliveries consumed, by every participant.
    pub deliveries: std::sync::atomic::AtomicU64,
    /// Messages published (and confirmed).
    pub published: std::sync::atomic::AtomicU64,
}

/// What one participant consumes and declares; the rest of the driver is the same for
/// both roles.
struct Role {
    conn_name: String,
    names: Names,
    /// The worker's own queue, if this is a worker.
    worker: Option<WorkerId>,
    topology: Topology,
}

impl Role {
    /// What this participant consumes, with the consumer arguments for each.
    fn queues(&self) -> Vec<(String, FieldTable)> {
        match (self.worker, self.topology) {
            (Some(id), Topology::Queues) => {
                vec![(self.names.worker_queue(id), FieldTable::default())]
            }
            (Some(_), Topology::Stream) => {
                let mut from_start = FieldTable::default();
                from_start.insert(
                    "x-stream-offset".into(),
                    AMQPValue::LongString("first".into()),
                );
                vec![(self.names.log(), from_start)]
            }
            (None, _) => vec![
                (self.names.master_queue(), FieldTable::default()),
                (self.names.results_queue(), FieldTable::default()),
            ],
        }
    }

    async fn declare(
        &self,
        conn: &Connection,
        ch: &Channel,
        durable: bool,
        known_declared: bool,
    ) -> Result<(), BrokerError> {
        // A worker that finds the run's shared names already declared (the master is up)
        // skips re-declaring them: each binding re-declared is a broker-wide transaction,
        // and a thousand workers re-declaring four each is most of a large run's start.
        // In an in-process run the master declared them before the workers started.
        let shared_ready =
            self.worker.is_some() && (known_declared || self.shared_exists(conn).await);
        if !shared_ready {
            declare_shared(ch, &self.names, durable).await?;
        }
        match (self.worker, self.topology) {
            (Some(id), Topology::Queues) => {
                declare_worker_queue(ch, &self.names, id, durable).await?
            }
            (_, Topology::Stream) if !shared_ready => declare_stream(ch, &self.names).await?,
            _ => {}
        }
        Ok(())
    }

    /// Whether the last name a master declares exists (the results queue, or the stream),
    /// which means the others do too. A passive declare of a missing queue closes its
    /// channel, so it gets one of its own.
    async fn shared_exists(&self, conn: &Connection) -> bool {
        let last = match self.topology {
            Topology::Queues => self.names.results_queue(),
            Topology::Stream => self.names.log(),
        };
        matches!(queue_exists(conn, &last).await, Ok(true))
    }

    /// Whether rejected deliveries are acknowledged instead: a stream cannot drop one
    /// message (reading never removes anything), so it is counted, logged and passed over.
    fn reads_a_stream(&self) -> bool {
        self.worker.is_some() && self.topology == Topology::Stream
    }
}

/// Connections shared by the workers of one in-process run, `per_connection` workers on
/// each. A thousand workers on a thousand connections cost a thousand sockets (beyond a
/// stock broker's file-descriptor limit), a thousand I/O threads here and a thousand
/// connection processes in the broker; on sixty-four they cost sixty-four, and the frames
/// of many workers share each read and write.
///
/// A worker whose shared connection dies asks the pool again and gets a live one: the
/// first to ask opens it, the others join it.
pub struct ConnectionPool {
    url: BrokerUrl,
    name: String,
    connect_timeout: Duration,
    per_connection: usize,
    slots: tokio::sync::Mutex<Vec<(std::sync::Arc<Connection>, usize)>>,
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("name", &self.name)
            .field("per_connection", &self.per_connection)
            .finish()
    }
}

impl ConnectionPool {
    /// A pool whose connections are named `<name> #k` (visible in the management UI).
    pub fn new(
        url: BrokerUrl,
        connect_timeout: Duration,
        name: String,
        per_connection: usize,
    ) -> Self {
        ConnectionPool {
            url,
            name,
            connect_timeout,
            per_connection: per_connection.max(1),
            slots: Default::default(),
        }
    }

    /// A live connection with room for one more worker, opened if there is none.
    async fn get(&self) -> Result<std::sync::Arc<Connection>, BrokerError> {
        let mut slots = self.slots.lock().await;
        slots.retain(|(c, _)| c.status().connected());
        if let Some((c, users)) = slots.iter_mut().find(|(_, u)| *u < self.per_connection) {
            *users += 1;
            return Ok(c.clone());
        }
        let name = format!("{} #{}", self.name, slots.len() + 1);
        let conn = std::sync::Arc::new(connect(&self.url, &name, self.connect_timeout).await?);
        slots.push((conn.clone(), 1));
        Ok(conn)
    }

    /// Opens the connections `workers` workers will need, all at once, so the workers
    /// do not open them one after the other.
    pub async fn warm(&self, workers: usize) -> Result<(), BrokerError> {
        let count = workers.div_ceil(self.per_connection);
        let opened = futures::future::join_all((1..=count).map(|k| {
            let name = format!("{} #{k}", self.name);
            async move { connect(&self.url, &name, self.connect_timeout).await }
        }))
        .await;
        let mut slots = self.slots.lock().await;
        for conn in opened {
            slots.push((std::sync::Arc::new(conn?), 0));
        }
        Ok(())
    }

    /// Closes every connection (after the run: each worker closed its own channel).
    pub async fn close(&self) {
        let slots = std::mem::take(&mut *self.slots.lock().await);
        futures::future::join_all(slots.iter().map(|(c, _)| close_quietly(c, "run done"))).await;
    }
}

/// One live connection of a participant: its channel and merged consumers.
struct Link {
    conn: std::sync::Arc<Connection>,
    /// The connection belongs to a [`ConnectionPool`]: closing means closing the channel.
    shared: bool,
    ch: Channel,
    deliveries: futures::stream::SelectAll<lapin::Consumer>,
}

impl Link {
    /// Lets go of the link: its channel if the connection is shared, else the connection.
    async fn close(&self, why: &str) {
        if self.shared {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.ch.close(200, why.into())).await;
        } else {
            close_quietly(&self.conn, why).await;
        }
    }
}

/// Closes a connection without waiting long for the broker's close-ok: a connection whose
/// socket died may never get one, and a run must not hang on a goodbye.
async fn close_quietly(conn: &Connection, why: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, why.into())).await;
}

/// Bounds a broker operation that has no timeout of its own. A broker that accepts a
/// connection but stalls (booting, overloaded, a half-dead socket) turns into a transient
/// error, which the driver answers by reconnecting: never an endless wait.
async fn bounded<T>(
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
fn op_limit(broker: &Broker) -> Duration {
    (broker.connect_timeout * 2).max(Duration::from_secs(10))
}

async fn open_link(broker: &Broker, role: &Role, reconnect: bool) -> Result<Link, BrokerError> {
    bounded(
        op_limit(broker) + broker.connect_timeout,
        &format!("setting up the connection of {}", role.conn_name),
        open_link_unbounded(broker, role, reconnect),
    )
    .await
}

async fn open_link_unbounded(
    broker: &Broker,
    role: &Role,
    reconnect: bool,
) -> Result<Link, BrokerError> {
    let (conn, shared) = match (&broker.pool, role.worker) {
        (Some(pool), Some(_)) => (pool.get().await?, true),
        _ => (
            std::sync::Arc::new(
                connect(&broker.url, &role.conn_name, broker.connect_timeout).await?,
            ),
            false,
        ),
    };
    let ch = open_channel(&conn, broker.prefetch).await?;
    if reconnect && !broker.durable {
        // Our queues must have survived the outage, or messages of the run are gone: a
        // non-durable run cannot catch up after a broker restart, and says so.
        for (q, _) in role.queues() {
            let lost = match queue_exists(&conn, &q).await {
                Ok(true) => continue,
                Ok(false) => BrokerError::RunLost { queue: q },
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
    if role.worker.is_none() && !try_lock(&conn, &role.names).await? {
        close_quietly(&conn, "not the leader").await;
        return Err(BrokerError::NotLeader {
            run: role.names.run().to_owned(),
        });
    }
    tracing::trace!(who = %role.conn_name, "channel open");
    role.declare(&conn, &ch, broker.durable, broker.declared && !reconnect)
        .await?;
    tracing::trace!(who = %role.conn_name, "declared");
    let taken = |id| BrokerError::IdTaken {
        run: role.names.run().to_owned(),
        id,
    };
    if let (Some(id), Topology::Stream) = (role.worker, role.topology) {
        // Stream readers share one stream, so a worker's id is held by an exclusive queue
        // of its name, which lives as long as this connection.
        if !hold_exclusive(&conn, &role.names.worker_queue(id)).await? {
            return Err(taken(id));
        }
    }
    let mut deliveries = futures::stream::SelectAll::new();
    for (q, args) in role.queues() {
        // A worker's own queue has one consumer, exclusively: a second worker started with
        // the same id is refused here and told so.
        let opts = BasicConsumeOptions {
            exclusive: role.worker.is_some() && role.topology == Topology::Queues,
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
                return Err(taken(role.worker.unwrap_or_default()));
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

/// Opens a participant's first connection. A broker that cannot be reached is reported at
/// once (within the connect timeout); a connection the broker drops while it is being set up
/// is tried again a few times. That happens with `--topology stream`: when many
/// participants declare the same new stream at once, RabbitMQ may answer a consumer on it
/// with `stream_not_found` (its replica is still starting) and close that connection.
async fn first_link(broker: &Broker, role: &Role) -> Result<Link, BrokerError> {
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
                tracing::debug!(who = %role.conn_name, error = %e, attempt, "setting up the connection failed; trying again");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// RabbitMQ's answers about a stream that is still starting — just declared by another
/// participant, or recovering after a broker restart: the channel errors
/// `PRECONDITION_FAILED - ... does not have a replica on the local node` and
/// `NOT_FOUND - home node ... of durable queue ... is down or inaccessible`, or
/// `stream_not_found` (which closes the connection with `INTERNAL_ERROR`). All pass.
fn stream_not_ready(e: &BrokerError) -> bool {
    stream_not_ready_text(&e.to_string())
}

fn stream_not_ready_text(text: &str) -> bool {
    text.contains("does not have a replica")
        || text.contains("stream_not_found")
        || (text.contains("home node") && text.contains("is down or inaccessible"))
}

/// Whether queue `q` exists, asked with a passive declare on a channel of its own (a
/// refused passive declare closes its channel). `Ok(false)`: NOT_FOUND; `Err`: any other
/// answer, including a stream that is still starting (it exists, it is just not ready).
async fn queue_exists(conn: &Connection, q: &str) -> Result<bool, BrokerError> {
    let probe = conn
        .create_channel()
        .await
        .ctx(|| "opening a channel".into())?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match probe
        .queue_declare(q.into(), passive, FieldTable::default())
        .await
    {
        Ok(_) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                probe.close(200, "probe done".into()),
            )
            .await;
            Ok(true)
        }
        Err(e) if is_not_found(&e) && !stream_not_ready_text(&e.to_string()) => Ok(false),
        Err(e) => Err(BrokerError::Amqp {
            context: format!("checking that {q} exists"),
            source: e,
        }),
    }
}

/// Whether the broker refused because another connection holds a queue exclusively
/// (`ACCESS_REFUSED` for an exclusive consumer, `RESOURCE_LOCKED` for an exclusive queue).
fn is_locked(e: &lapin::Error) -> bool {
    let text = e.to_string();
    text.contains("ACCESS_REFUSED")
        || text.contains("RESOURCE_LOCKED")
        || text.contains("exclusive")
        || text.contains("403")
        || text.contains("405")
}

/// Declares `q` as an exclusive, auto-delete queue held by `conn`: `Ok(false)` when another
/// connection already holds it. How a run's single active master (the leadership lock) and
/// a stream reader's worker id are held.
async fn hold_exclusive(conn: &Connection, q: &str) -> Result<bool, BrokerError> {
    // A refused declare closes its channel, so the attempt gets a channel of its own.
    let ch = conn
        .create_channel()
        .await
        .ctx(|| "opening a channel".into())?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    match ch
        .queue_declare(q.into(), opts, FieldTable::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_locked(&e) => Ok(false),
        Err(e) => Err(BrokerError::Amqp {
            context: format!("declaring {q}"),
            source: e,
        }),
    }
}

/// Whether the broker answered `NOT_FOUND` (404): the queue or exchange does not exist.
fn is_not_found(e: &lapin::Error) -> bool {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => matches!(
            amqp.kind(),
            lapin::protocol::AMQPErrorKind::Soft(lapin::protocol::AMQPSoftError::NOTFOUND)
        ),
        _ => false,
    }
}

/// Tries to take the run's leadership lock: an exclusive, auto-delete queue that lives
/// exactly as long as the connection holding it. `Ok(false)`: another connection holds it.
async fn try_lock(conn: &Connection, names: &Names) -> Result<bool, BrokerError> {
    hold_exclusive(conn, &names.leader_queue()).await
}

/// Whether an error is the connection going away (worth reconnecting) rather than the
/// broker refusing something (a bug or a misconfiguration: reconnecting would not help).
fn is_transient(e: &BrokerError) -> bool {
    if stream_not_ready(e) {
        return true;
    }
    match e {
        BrokerError::Lost { .. }
        | BrokerError::Stalled { .. }
        | BrokerError::Unreachable { .. }
        | BrokerError::ConnectTimeout { .. } => true,
        BrokerError::Amqp { source, .. } => match source.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => {
                // Connection-level closes (CONNECTION_FORCED by rabbitmqctl or a restart),
                // and a name of the run that went away under us (a participant that gave
                // up deleted it): reconnecting declares it again.
                matches!(
                    amqp.kind(),
                    lapin::protocol::AMQPErrorKind::Hard(_)
                        | lapin::protocol::AMQPErrorKind::Soft(
                            lapin::protocol::AMQPSoftError::NOTFOUND
                        )
                )
            }
            lapin::ErrorKind::ParsingError(_) | lapin::ErrorKind::SerialisationError(_) => false,
            _ => true,
        },
        BrokerError::Auth { .. }
        | BrokerError::NotAmqp { .. }
        | BrokerError::RunLost { .. }
        | BrokerError::NotLeader { .. }
        | BrokerError::IdTaken { .. } => false,
    }
}

/// How a driver starts: the participant, its link if already open (a standby taking
/// over), and whom to tell once the link is up.
struct Start {
    role: Role,
    link: Option<Link>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Takes everything a machine has to say after a step: what it publishes, packed into
/// batches if the machine allows it, and its outcome if it finished.
fn drain<M: StateMachine>(m: &mut M, finished: &mut Option<M::Finished>) -> Vec<(Route, Message)> {
    let mut step = Vec::new();
    while let Some(out) = m.poll_output() {
        match out {
            crate::Output::Publish { route, msg } => step.push((route, msg)),
            crate::Output::Finished(f) => *finished = Some(f),
        }
    }
    match m.batches_as() {
        Some(me) => coalesce(step, me, MAX_BATCH_MESSAGES),
        None => step,
    }
}

/// Drives one state machine against the broker until it finishes, reconnecting with
/// exponential backoff when the connection drops (until the machine's own deadline), then
/// deletes what `cleanup` names.
///
/// Delivery guarantees: a delivery is acknowledged only after every message it caused has
/// been confirmed by the broker. Messages whose confirm did not arrive before a connection
/// loss are published again on the new connection, and unacknowledged deliveries come back
/// redelivered: both are duplicates the state machines recognise by sequence number.
async fn drive<M: StateMachine>(
    broker: &Broker,
    Start { role, link, ready }: Start,
    mut m: M,
    t0: Instant,
    mut shutdown: Shutdown,
    mut on_progress: impl FnMut(&M),
    cleanup: impl Fn(&M, &Result<M::Finished, BrokerError>) -> Cleanup,
) -> Result<M::Finished, BrokerError> {
    let mut link = match link {
        Some(l) => l,
        None => first_link(broker, &role).await?,
    };
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    // Published but not yet confirmed, in order.
    let mut outbox: VecDeque<(Route, Message)> = Default::default();
    let mut finished: Option<M::Finished> = None;
    let mut reconnects = 0u32;
    let outcome = loop {
        let step: Result<(), BrokerError> = async {
            loop {
                outbox.extend(drain(&mut m, &mut finished));
                bounded(op_limit(broker), "publishing", publish_all(&link.ch, &role.names, &mut outbox, broker)).await?;
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
                                None => return Err(BrokerError::Lost { what: format!("consumer of {}", role.conn_name) }),
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
                        tracing::trace!(who = %role.conn_name, deliveries = batch.len(), "batch in");
                        let mut accepted = Vec::with_capacity(batch.len());
                        for d in &batch {
                            let publisher = d.properties.user_id().as_ref().map(|u| u.as_str());
                            accepted.push(m.handle_from(now, &d.data, publisher).is_ok());
                        }
                        // Everything this batch caused, packed: N workers get one delivery
                        // for the lot instead of one per message.
                        outbox.extend(drain(&mut m, &mut finished));
                        // Effects first, then the acknowledgement of their causes.
                        bounded(op_limit(broker), "publishing and acknowledging", async {
                            publish_all(&link.ch, &role.names, &mut outbox, broker).await?;
                            tracing::trace!(who = %role.conn_name, "effects confirmed");
                            if role.reads_a_stream() {
                                accepted.iter_mut().for_each(|a| *a = true);
                            }
                            settle(&batch, &accepted, role.worker.is_some()).await
                        }).await?;
                        tracing::trace!(who = %role.conn_name, "batch settled");
                        broker.stats.deliveries.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
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
                tracing::warn!(who = %role.conn_name, error = %e, "connection lost; reconnecting");
                link.close("reconnecting").await;
                match reconnect(
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
                        tracing::debug!(who = %role.conn_name, pending = outbox.len(), "re-publishing unconfirmed messages");
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
        delete_run(&link.ch, &role.names, &what),
    )
    .await
    .is_err()
    {
        cleanup_fresh(broker, &role.names, &what).await;
    } else if let Cleanup::Worker {
        abandoned: true, ..
    } = what
    {
        // Our own consumer (of the stream) would keep it "in use": let go of it first.
        let _ =
            tokio::time::timeout(Duration::from_secs(2), link.ch.close(200, "done".into())).await;
        let _ =
            tokio::time::timeout(op_limit(broker), delete_abandoned(&link.conn, &role.names)).await;
    }
    link.close("done").await;
    outcome
}

/// Reconnects with exponential backoff and jitter until it works, the machine's next
/// deadline has passed (then the machine decides: it may abort) or Ctrl-C.
async fn reconnect<M: StateMachine>(
    broker: &Broker,
    role: &Role,
    m: &mut M,
    outbox: &mut VecDeque<(Route, Message)>,
    t0: Instant,
    shutdown: &mut Shutdown,
    reconnects: &mut u32,
) -> Result<Link, BrokerError> {
    use backon::BackoffBuilder;
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match open_link(broker, role, true).await {
            Ok(link) => {
                *reconnects += 1;
                tracing::info!(who = %role.conn_name, reconnects = *reconnects, "reconnected; catching up");
                return Ok(link);
            }
            // After a reconnect our own old connection may still hold our id for a moment.
            Err(e) if !is_transient(&e) && !matches!(e, BrokerError::IdTaken { .. }) => {
                return Err(e);
            }
            Err(e) => {
                tracing::debug!(error = %e, "reconnect attempt failed");
                // Time still passes for the machine (a paced grant, a lease, the run's
                // deadline): what it publishes meanwhile waits in the outbox.
                m.handle_timeout(now_ms(t0));
                let mut gave_up = false;
                while let Some(out) = m.poll_output() {
                    match out {
                        crate::Output::Publish { route, msg } => outbox.push_back((route, msg)),
                        crate::Output::Finished(_) => gave_up = true,
                    }
                }
                if gave_up {
                    return Err(BrokerError::Lost {
                        what: format!(
                            "connection of {} (gave up at the run's deadline)",
                            role.conn_name
                        ),
                    });
                }
                if *shutdown.borrow() {
                    return Err(e);
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(shutdown) => return Err(e),
                }
            }
        }
    }
}

/// Acknowledges the accepted deliveries of a batch and rejects the others (dead-lettered
/// nowhere: they are counted and logged by the state machine). With one consumer on the
/// channel the deliveries arrive in tag order and every earlier one is settled, so one
/// `multiple` ack covers the batch; with two (the master's) each is acked on its own, all
/// handed to lapin at once (in order: `join_all` polls them in turn) and awaited together.
async fn settle(
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
pub async fn cleanup_fresh(broker: &Broker, names: &Names, what: &Cleanup) {
    let attempt = async {
        let conn = connect(&broker.url, "sync-run cleanup", broker.connect_timeout).await?;
        let mut tries = 0;
        loop {
            let ch = conn
                .create_channel()
                .await
                .ctx(|| "opening a channel".into())?;
            match delete_run(&ch, names, what).await {
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
        tracing::error!(error = %e, run = names.run(), "could not delete the run's queues; they expire on their own after {} s unused", QUEUE_EXPIRES_MS / 1000);
    }
}

/// Runs the master until the run is over, then deletes the run's topology.
///
/// `t0` is the instant the core's clock counts from (its `deadline` is relative to it).
/// `on_progress` is called with (turns done, turns total) after each delivery.
pub async fn run_master(
    broker: &Broker,
    cfg: MasterConfig,
    rng: Box<dyn RngCore + Send>,
    t0: Instant,
    shutdown: Shutdown,
    on_progress: impl FnMut(usize, usize),
) -> Result<RunRecord, BrokerError> {
    run_master_signalling(broker, cfg, rng, t0, shutdown, on_progress, None).await
}

/// [`run_master`], telling `ready` once the master holds the lock and has declared the
/// run's names (an in-process run starts its workers then, so they need not declare them).
pub async fn run_master_signalling(
    broker: &Broker,
    cfg: MasterConfig,
    rng: Box<dyn RngCore + Send>,
    t0: Instant,
    shutdown: Shutdown,
    mut on_progress: impl FnMut(usize, usize),
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<RunRecord, BrokerError> {
    let role = Role {
        conn_name: format!("sync-run master {}", cfg.run_id),
        names: Names::new(&cfg.run_id),
        worker: None,
        topology: broker.topology,
    };
    let m = Master::new(cfg, rng, now_ms(t0));
    let cleanup = |_: &Master, r: &Result<Box<RunRecord>, BrokerError>| {
        Cleanup::Run(r.as_ref().map(|r| r.members.clone()).unwrap_or_default())
    };
    let span = tracing::info_span!("run", run = %role.names.run(), role = "master");
    let start = Start {
        role,
        link: None,
        ready,
    };
    drive(
        broker,
        start,
        m,
        t0,
        shutdown,
        |m: &Master| {
            let (done, total) = m.progress();
            on_progress(done, total)
        },
        cleanup,
    )
    .instrument(span)
    .await
    .map(|r| *r)
}

/// Runs one worker until the run is over for it, then deletes its queue.
pub async fn run_worker(
    broker: &Broker,
    cfg: WorkerConfig,
    rng: Box<dyn RngCore + Send>,
    t0: Instant,
    shutdown: Shutdown,
) -> Result<WorkerOutcome, BrokerError> {
    let id = cfg.id;
    let role = Role {
        conn_name: format!("sync-run worker {} {}", cfg.run_id, id),
        names: Names::new(&cfg.run_id),
        worker: Some(id),
        topology: broker.topology,
    };
    let span = tracing::info_span!("worker", run = %role.names.run(), id);
    let w = Worker::new(cfg, rng, now_ms(t0));
    let start = Start {
        role,
        link: None,
        ready: None,
    };
    drive(
        broker,
        start,
        w,
        t0,
        shutdown,
        |_| {},
        move |w: &Worker, _| Cleanup::Worker {
            id,
            abandoned: !w.heard_master(),
        },
    )
    .instrument(span)
    .await
}

/// Runs a standby master (`sync-run master --standby`): it follows the run through a queue
/// of its own, tries the leadership lock every 250 ms, and when the active master's
/// connection is gone (the lock with it) catches up on everything queued for it, takes over
/// with a new epoch and drives the run to its end like [`run_master`].
///
/// If the run ends while it is still following, it returns the record it rebuilt.
pub async fn run_standby(
    broker: &Broker,
    cfg: MasterConfig,
    rng: Box<dyn RngCore + Send>,
    t0: Instant,
    mut shutdown: Shutdown,
) -> Result<RunRecord, BrokerError> {
    let names = Names::new(&cfg.run_id);
    let shadow = names.standby_queue(cfg.instance);
    let conn_name = format!("sync-run standby {}", cfg.run_id);
    let conn = connect(&broker.url, &conn_name, broker.connect_timeout).await?;
    let ch = open_channel(&conn, broker.prefetch).await?;
    declare_shared(&ch, &names, broker.durable).await?;
    ch.queue_declare(
        shadow.as_str().into(),
        queue_opts(broker.durable),
        queue_args(),
    )
    .await
    .ctx(|| format!("declaring queue {shadow}"))?;
    for (exchange, key) in [(names.fanout(), ""), (names.direct(), RESULTS_KEY)] {
        ch.queue_bind(
            shadow.as_str().into(),
            exchange.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .ctx(|| format!("binding {shadow}"))?;
    }
    let tag = "standby";
    let mut follow = ch
        .basic_consume(
            shadow.as_str().into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .ctx(|| format!("consuming {shadow}"))?;
    let mut m = Master::standby(cfg, rng, now_ms(t0));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tracing::info!(run = names.run(), "standby: following the active master");
    let mut leader = false;
    while !leader {
        tokio::select! {
            d = follow.next() => {
                let d = match d {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Err(BrokerError::Amqp { context: "following the run".into(), source: e }),
                    None => return Err(BrokerError::Lost { what: "standby's consumer".into() }),
                };
                let verdict = m.handle(now_ms(t0), &d.data);
                settle(std::slice::from_ref(&d), &[verdict.is_ok()], true).await?;
            }
            _ = tick.tick() => {
                m.handle_timeout(now_ms(t0));
                if !m.is_done() {
                    leader = try_lock(&conn, &names).await?;
                }
            }
            _ = stopped(&mut shutdown) => m.interrupt(now_ms(t0), INTERRUPTED.into()),
        }
        if m.is_done() {
            break;
        }
    }
    if leader {
        // Everything the old master published is already in our queue: apply all of it
        // before acting, so the state we continue from is complete.
        loop {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let queued = ch
                .queue_declare(shadow.as_str().into(), passive, FieldTable::default())
                .await
                .ctx(|| format!("inspecting {shadow}"))?
                .message_count();
            match tokio::time::timeout(Duration::from_millis(200), follow.next()).await {
                Ok(Some(Ok(d))) => {
                    let verdict = m.handle(now_ms(t0), &d.data);
                    settle(std::slice::from_ref(&d), &[verdict.is_ok()], true).await?;
                }
                _ if queued == 0 => break,
                _ => {}
            }
        }
        m.take_over(now_ms(t0));
    }
    let _ = ch.basic_cancel(tag.into(), Default::default()).await;
    let _ = ch
        .queue_delete(shadow.as_str().into(), QueueDeleteOptions::default())
        .await;
    if !leader || m.is_done() {
        let mut record = None;
        while let Some(out) = m.poll_output() {
            if let crate::Output::Finished(r) = out {
                record = Some(*r);
            }
        }
        close_quietly(&conn, "standby done").await;
        return record.ok_or(BrokerError::Lost {
            what: "run (no outcome)".into(),
        });
    }
    let role = Role {
        conn_name,
        names,
        worker: None,
        topology: broker.topology,
    };
    role.declare(&conn, &ch, broker.durable, false).await?;
    let mut deliveries = futures::stream::SelectAll::new();
    for (q, args) in role.queues() {
        deliveries.push(
            ch.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .ctx(|| format!("consuming {q}"))?,
        );
    }
    let link = Link {
        conn: std::sync::Arc::new(conn),
        shared: false,
        ch,
        deliveries,
    };
    let cleanup = |_: &Master, r: &Result<Box<RunRecord>, BrokerError>| {
        Cleanup::Run(r.as_ref().map(|r| r.members.clone()).unwrap_or_default())
    };
    let start = Start {
        role,
        link: Some(link),
        ready: None,
    };
    drive(broker, start, m, t0, shutdown, |_| {}, cleanup)
        .await
        .map(|r| *r)
}
