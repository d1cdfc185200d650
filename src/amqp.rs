//! The lapin adapter: drives the [`Master`] and [`Worker`] state machines against RabbitMQ.
//!
//! Everything here is plumbing the core deliberately knows nothing about: connecting (with a
//! timeout, and with the password kept out of every message), declaring and deleting a
//! run's exchanges and queues, publishing with publisher confirms, acknowledging a delivery
//! only after the state machine has applied it, rejecting what it refused, and turning
//! wall-clock time into the milliseconds the core works with.

use crate::master::{self, Master, MasterConfig, RunRecord};
use crate::protocol::{MASTER_KEY, Message, Names, RESULTS_KEY, WorkerId};
use crate::worker::{self, Worker, WorkerConfig, WorkerOutcome};
use crate::{Millis, Route};
use futures::StreamExt;
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
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A broker URL, validated, with a printable form that never shows the password.
#[derive(Clone)]
pub struct BrokerUrl {
    raw: String,
    redacted: String,
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
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        Ok(BrokerUrl {
            raw: s.to_owned(),
            redacted: url.to_string(),
        })
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
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
    #[error("broker error while {context}: {source}")]
    Amqp {
        context: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker closed the {what} mid-run")]
    Lost { what: String },
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

/// Connects within `timeout`, classifying failures for the user.
pub async fn connect(
    url: &BrokerUrl,
    name: &str,
    timeout: Duration,
) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name(name.to_string().into());
    match tokio::time::timeout(timeout, Connection::connect(&url.raw, props)).await {
        Err(_) => Err(BrokerError::ConnectTimeout {
            url: url.redacted.clone(),
            timeout_ms: timeout.as_millis(),
        }),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => {
            let reason = e.to_string();
            let lower = reason.to_lowercase();
            if lower.contains("access_refused")
                || lower.contains("access-refused")
                || lower.contains("authentication")
                || lower.contains("login")
                || lower.contains("403")
            {
                Err(BrokerError::Auth {
                    url: url.redacted.clone(),
                    reason: "ACCESS_REFUSED (check the user and password in --amqp-url / AMQP_URL)"
                        .into(),
                })
            } else if matches!(e.kind(), lapin::ErrorKind::IOError(_)) {
                Err(BrokerError::Unreachable {
                    url: url.redacted.clone(),
                    reason,
                })
            } else {
                // RabbitMQ closes the socket during the handshake on a bad login; lapin
                // reports that as a protocol/state error rather than an I/O error.
                Err(BrokerError::Auth {
                    url: url.redacted.clone(),
                    reason: format!(
                        "the connection was closed during the handshake ({reason}); check the credentials and the vhost"
                    ),
                })
            }
        }
    }
}

/// How a run's queues are declared.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopologyOptions {
    pub prefetch: u16,
}

/// A queue left behind by a crashed participant deletes itself after this long unused.
/// Explicit deletes do the normal cleanup; this is the safety net for kill -9.
pub const QUEUE_EXPIRES_MS: i64 = 120_000;

fn queue_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
    t
}

fn queue_opts() -> QueueDeclareOptions {
    QueueDeclareOptions::default()
}

/// Declares what both roles need: both exchanges, the master's queue and the results
/// queue with their bindings. Idempotent, so whichever role starts first creates them.
pub async fn declare_shared(ch: &Channel, names: &Names) -> Result<(), BrokerError> {
    // auto_delete: once every queue of the run is gone (deleted or expired), so is the exchange.
    let xopts = ExchangeDeclareOptions {
        auto_delete: true,
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
        ch.queue_declare(queue.as_str().into(), queue_opts(), queue_args())
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

async fn declare_worker_queue(
    ch: &Channel,
    names: &Names,
    id: WorkerId,
) -> Result<(), BrokerError> {
    let q = names.worker_queue(id);
    ch.queue_declare(q.as_str().into(), queue_opts(), queue_args())
        .await
        .ctx(|| format!("declaring queue {q}"))?;
    ch.queue_bind(
        q.as_str().into(),
        names.fanout().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .ctx(|| format!("binding {q}"))?;
    Ok(())
}

/// What a participant deletes when it is done.
#[derive(Debug, Clone)]
pub enum Cleanup {
    /// The master: everything of the run, including the queues of these workers.
    Run(Vec<WorkerId>),
    /// A worker: its own queue only.
    Worker(WorkerId),
}

/// Deletes what `what` names. RabbitMQ treats deleting a missing queue or exchange as
/// success, so both roles may delete the same thing.
pub async fn delete_run(ch: &Channel, names: &Names, what: &Cleanup) -> Result<(), BrokerError> {
    let workers = match what {
        Cleanup::Worker(id) => {
            let q = names.worker_queue(*id);
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .ctx(|| format!("deleting queue {q}"))?;
            return Ok(());
        }
        Cleanup::Run(workers) => workers,
    };
    let mut queues = vec![names.master_queue(), names.results_queue()];
    queues.extend(workers.iter().map(|w| names.worker_queue(*w)));
    for q in queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .ctx(|| format!("deleting queue {q}"))?;
    }
    for x in [names.fanout(), names.direct()] {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .ctx(|| format!("deleting exchange {x}"))?;
    }
    Ok(())
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

/// Publishes one message and waits for the broker's confirm.
async fn publish(
    ch: &Channel,
    names: &Names,
    route: Route,
    msg: &Message,
) -> Result<(), BrokerError> {
    let (exchange, key) = match route {
        Route::Fanout => (names.fanout(), ""),
        Route::Master => (names.direct(), MASTER_KEY),
        Route::Results => (names.direct(), RESULTS_KEY),
    };
    let props = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_app_id(ShortString::from("sync-run"))
        .with_type(ShortString::from(msg.body.kind()));
    let confirm = ch
        .basic_publish(
            exchange.as_str().into(),
            key.into(),
            BasicPublishOptions::default(),
            &msg.encode(),
            props,
        )
        .await
        .ctx(|| format!("publishing {} to {exchange}", msg.body.kind()))?
        .await
        .ctx(|| format!("waiting for the confirm of {}", msg.body.kind()))?;
    match confirm {
        Confirmation::Nack(_) => Err(BrokerError::Lost {
            what: format!("publish of {} (the broker nacked it)", msg.body.kind()),
        }),
        _ => Ok(()),
    }
}

/// A signal that asks a driver to stop (Ctrl-C). `true` means stop.
pub type Shutdown = watch::Receiver<bool>;

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
    mut shutdown: Shutdown,
    mut on_progress: impl FnMut(usize, usize),
) -> Result<RunRecord, BrokerError> {
    let names = Names::new(&cfg.run_id);
    let conn = connect(
        &broker.url,
        &format!("sync-run master {}", cfg.run_id),
        broker.connect_timeout,
    )
    .await?;
    let ch = open_channel(&conn, broker.prefetch).await?;
    declare_shared(&ch, &names).await?;
    let consume = |q: String| {
        let ch = ch.clone();
        async move {
            ch.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .ctx(|| format!("consuming {q}"))
        }
    };
    let inbox = consume(names.master_queue()).await?;
    let results = consume(names.results_queue()).await?;
    let mut deliveries = futures::stream::select(inbox, results);
    let mut m = Master::new(cfg, rng, now_ms(t0));
    let outcome: Result<RunRecord, BrokerError> = async {
        loop {
            // Publish first: a state change is never acknowledged before its effects are out.
            while let Some(out) = m.poll_output() {
                match out {
                    master::Output::Publish { route, msg } => publish(&ch, &names, route, &msg).await?,
                    master::Output::Finished(record) => return Ok(*record),
                }
            }
            tokio::select! {
                d = deliveries.next() => {
                    let d = match d {
                        Some(Ok(d)) => d,
                        Some(Err(e)) => return Err(BrokerError::Amqp { context: "consuming the master's queues".into(), source: e }),
                        None => return Err(BrokerError::Lost { what: "master's consumer".into() }),
                    };
                    let verdict = m.handle(now_ms(t0), &d.data);
                    while let Some(out) = m.poll_output() {
                        match out {
                            master::Output::Publish { route, msg } => publish(&ch, &names, route, &msg).await?,
                            master::Output::Finished(record) => {
                                settle(&d, verdict.is_ok()).await?;
                                return Ok(*record);
                            }
                        }
                    }
                    settle(&d, verdict.is_ok()).await?;
                    let (done, total) = m.progress();
                    on_progress(done, total);
                }
                _ = sleep_until_ms(t0, m.next_timeout()) => m.handle_timeout(now_ms(t0)),
                _ = stopped(&mut shutdown) => m.abort(now_ms(t0), "interrupted (Ctrl-C)".into()),
            }
        }
    }
    .await;
    // Cleanup happens whatever the outcome; on a broken connection, with a fresh one.
    let members = match &outcome {
        Ok(r) => r.members.clone(),
        Err(_) => vec![],
    };
    let what = Cleanup::Run(members);
    if delete_run(&ch, &names, &what).await.is_err() {
        cleanup_fresh(broker, &names, &what).await;
    }
    let _ = conn.close(200, "run over".into()).await;
    outcome
}

async fn settle(d: &lapin::message::Delivery, accepted: bool) -> Result<(), BrokerError> {
    if accepted {
        d.ack(BasicAckOptions::default())
            .await
            .ctx(|| "acknowledging a delivery".into())?;
    } else {
        d.reject(BasicRejectOptions { requeue: false })
            .await
            .ctx(|| "rejecting a delivery".into())?;
    }
    Ok(())
}

/// Best-effort deletion over a new connection, after the old one broke.
pub async fn cleanup_fresh(broker: &Broker, names: &Names, what: &Cleanup) {
    let attempt = async {
        let conn = connect(&broker.url, "sync-run cleanup", broker.connect_timeout).await?;
        let ch = conn
            .create_channel()
            .await
            .ctx(|| "opening a channel".into())?;
        delete_run(&ch, names, what).await?;
        let _ = conn.close(200, "cleanup done".into()).await;
        Ok::<(), BrokerError>(())
    };
    if let Err(e) = attempt.await {
        tracing::error!(error = %e, run = names.run(), "could not delete the run's queues; they expire on their own after {} s unused", QUEUE_EXPIRES_MS / 1000);
    }
}

/// Runs one worker until the run is over for it, then deletes its queue.
pub async fn run_worker(
    broker: &Broker,
    cfg: WorkerConfig,
    rng: Box<dyn RngCore + Send>,
    t0: Instant,
    mut shutdown: Shutdown,
) -> Result<WorkerOutcome, BrokerError> {
    let names = Names::new(&cfg.run_id);
    let id = cfg.id;
    let conn = connect(
        &broker.url,
        &format!("sync-run worker {} {}", cfg.run_id, id),
        broker.connect_timeout,
    )
    .await?;
    let ch = open_channel(&conn, broker.prefetch).await?;
    declare_shared(&ch, &names).await?;
    declare_worker_queue(&ch, &names, id).await?;
    let mut inbox = ch
        .basic_consume(
            names.worker_queue(id).as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .ctx(|| format!("consuming {}", names.worker_queue(id)))?;
    let mut w = Worker::new(cfg, rng, now_ms(t0));
    let outcome: Result<WorkerOutcome, BrokerError> = async {
        loop {
            while let Some(out) = w.poll_output() {
                match out {
                    worker::Output::Publish { route, msg } => {
                        if route == Route::Master {
                            // A join: re-declare so the master's queue exists (and does not
                            // expire) however long the master takes to start.
                            declare_shared(&ch, &names).await?;
                        }
                        publish(&ch, &names, route, &msg).await?
                    }
                    worker::Output::Finished(o) => return Ok(o),
                }
            }
            tokio::select! {
                d = inbox.next() => {
                    let d = match d {
                        Some(Ok(d)) => d,
                        Some(Err(e)) => return Err(BrokerError::Amqp { context: format!("consuming worker {id}'s queue"), source: e }),
                        None => return Err(BrokerError::Lost { what: format!("worker {id}'s queue (deleted by the master?)") }),
                    };
                    let verdict = w.handle(now_ms(t0), &d.data);
                    // Publish the effects (e.g. our append) before acknowledging the cause.
                    let mut finished = None;
                    while let Some(out) = w.poll_output() {
                        match out {
                            worker::Output::Publish { route, msg } => publish(&ch, &names, route, &msg).await?,
                            worker::Output::Finished(o) => finished = Some(o),
                        }
                    }
                    settle(&d, verdict.is_ok()).await?;
                    if let Some(o) = finished {
                        return Ok(o);
                    }
                }
                _ = sleep_until_ms(t0, w.next_timeout()) => w.handle_timeout(now_ms(t0)),
                _ = stopped(&mut shutdown) => return Ok(WorkerOutcome::Aborted { reason: "interrupted (Ctrl-C)".into() }),
            }
        }
    }
    .await;
    let what = Cleanup::Worker(id);
    if delete_run(&ch, &names, &what).await.is_err() {
        cleanup_fresh(broker, &names, &what).await;
    }
    let _ = conn.close(200, "worker done".into()).await;
    outcome
}
