//! The list agreement on the broker: its wiring (as data, see [`crate::broker::wiring`]),
//! its two roles as [`Endpoint`]s, and the entry points that run a master, a worker or a
//! standby master with the shared drive loop.

use super::master::{Master, MasterConfig, RunRecord};
use super::protocol::{MASTER_KEY, Names, RESULTS_KEY, Topology, WorkerId};
use super::worker::{Worker, WorkerConfig, WorkerOutcome};
use crate::broker::drive::drive_fresh;
use crate::broker::follow::{Follower, adopt};
use crate::broker::unused::delete_unused;
use crate::broker::{
    Broker, BrokerError, Consume, Endpoint, Exchange, ExchangeKind, INTERRUPTED, Link, Queue,
    QueueKind, QueueOpts, Shutdown, Start, Wiring, close_quietly, connect, drive, hold_exclusive,
    now_ms, open_channel, queue_exists, stopped,
};
use crate::contract::{Route, StateMachine};
use futures::future::BoxFuture;
// The adapter's own handles, as `Endpoint` names them in its signatures.
use lapin::{Channel, Connection};
use rand::RngCore;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The names both roles need: both exchanges, the master's queue (its inbox on the direct
/// exchange, and a reader of the fanout) and the results queue.
pub fn shared_wiring(names: &Names) -> Wiring {
    Wiring {
        exchanges: vec![
            Exchange {
                name: names.fanout(),
                kind: ExchangeKind::Fanout,
            },
            Exchange {
                name: names.direct(),
                kind: ExchangeKind::Direct,
            },
        ],
        queues: vec![
            Queue::classic(
                names.master_queue(),
                vec![
                    (names.direct(), MASTER_KEY.into()),
                    (names.fanout(), String::new()),
                ],
            ),
            Queue::classic(
                names.results_queue(),
                vec![(names.direct(), RESULTS_KEY.into())],
            ),
        ],
    }
}

/// Worker `id`'s queue, bound to the fanout (topology `queues`).
pub fn worker_wiring(names: &Names, id: WorkerId) -> Wiring {
    Wiring {
        exchanges: vec![],
        queues: vec![Queue::classic(
            names.worker_queue(id),
            vec![(names.fanout(), String::new())],
        )],
    }
}

/// The run's stream, bound to the fanout (topology `stream`).
pub fn stream_wiring(names: &Names) -> Wiring {
    Wiring {
        exchanges: vec![],
        queues: vec![Queue {
            name: names.log(),
            kind: QueueKind::Stream,
            bindings: vec![(names.fanout(), String::new())],
        }],
    }
}

/// Everything of a run, with these workers' queues: what the master deletes at the end.
pub fn run_wiring(names: &Names, workers: &[WorkerId]) -> Wiring {
    let mut w = shared_wiring(names);
    w.queues.extend(stream_wiring(names).queues);
    for id in workers {
        w.queues.extend(worker_wiring(names, *id).queues);
    }
    w
}

/// Declares what both roles need. Idempotent, so whichever role starts first creates them.
pub async fn declare_shared(
    ch: &Channel,
    names: &Names,
    opts: QueueOpts,
) -> Result<(), BrokerError> {
    shared_wiring(names).declare(ch, opts).await
}

/// Declares worker `id`'s queue and binds it to the fanout.
pub async fn declare_worker_queue(
    ch: &Channel,
    names: &Names,
    id: WorkerId,
    opts: QueueOpts,
) -> Result<(), BrokerError> {
    worker_wiring(names, id).declare(ch, opts).await
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
pub async fn delete_run(
    conn: &Connection,
    ch: &Channel,
    names: &Names,
    what: &Cleanup,
) -> Result<(), BrokerError> {
    match what {
        Cleanup::Worker { id, .. } => worker_wiring(names, *id).delete(conn, ch).await,
        Cleanup::Run(workers) => run_wiring(names, workers).delete(conn, ch).await,
    }
}

/// What a worker whose run never started deletes besides its own queue: the names a
/// master would have deleted, had there been one — the master's and the results queue and
/// the stream (a stream never expires by itself). Each goes only if it has no consumer
/// (`if-unused`): a master or another stream reader that is there keeps it. The exchanges
/// are auto-delete and go with their last bound queue. A worker still waiting for the same
/// run re-declares what it misses (a missing name is a transient error).
fn abandoned_names(names: &Names) -> [String; 3] {
    [names.log(), names.master_queue(), names.results_queue()]
}

/// Tries to take the run's leadership lock: an exclusive, auto-delete queue that lives
/// exactly as long as the connection holding it. `Ok(false)`: another connection holds it.
async fn try_lock(conn: &Connection, names: &Names) -> Result<bool, BrokerError> {
    hold_exclusive(conn, &names.leader_queue()).await
}

/// One participant of the list agreement: the master or worker `id`.
pub struct Role {
    conn_name: String,
    names: Names,
    /// The worker's own queue, if this is a worker.
    worker: Option<WorkerId>,
    topology: Topology,
}

impl Role {
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

    async fn setup(
        &self,
        conn: &Connection,
        ch: &Channel,
        opts: QueueOpts,
        known_declared: bool,
    ) -> Result<(), BrokerError> {
        if self.worker.is_none() && !try_lock(conn, &self.names).await? {
            return Err(BrokerError::NotLeader {
                run: self.names.run().to_owned(),
            });
        }
        self.declare(conn, ch, opts, known_declared).await
    }

    /// Declares what this role needs (the master: everything shared; a worker: its queue,
    /// and the shared names if the master has not declared them yet).
    async fn declare(
        &self,
        conn: &Connection,
        ch: &Channel,
        opts: QueueOpts,
        known_declared: bool,
    ) -> Result<(), BrokerError> {
        // A worker that finds the run's shared names already declared (the master is up)
        // skips re-declaring them: each binding re-declared is a broker-wide transaction,
        // and a thousand workers re-declaring four each is most of a large run's start.
        // In an in-process run the master declared them before the workers started.
        let shared_ready =
            self.worker.is_some() && (known_declared || self.shared_exists(conn).await);
        if !shared_ready {
            declare_shared(ch, &self.names, opts).await?;
        }
        match (self.worker, self.topology) {
            (Some(id), Topology::Queues) => declare_worker_queue(ch, &self.names, id, opts).await?,
            (_, Topology::Stream) if !shared_ready => {
                stream_wiring(&self.names).declare(ch, opts).await?
            }
            _ => {}
        }
        if let (Some(id), Topology::Stream) = (self.worker, self.topology) {
            // Stream readers share one stream, so a worker's id is held by an exclusive
            // queue of its name, which lives as long as this connection.
            if !hold_exclusive(conn, &self.names.worker_queue(id)).await? {
                return Err(self.taken());
            }
        }
        Ok(())
    }
}

impl Endpoint for Role {
    type Cleanup = Cleanup;

    fn conn_name(&self) -> &str {
        &self.conn_name
    }

    fn run_id(&self) -> &str {
        self.names.run()
    }

    fn pooled(&self) -> bool {
        self.worker.is_some()
    }

    fn consumes(&self) -> Vec<Consume> {
        match (self.worker, self.topology) {
            (Some(id), Topology::Queues) => vec![Consume::own(self.names.worker_queue(id))],
            (Some(_), Topology::Stream) => vec![Consume::stream_from_start(self.names.log())],
            (None, _) => vec![
                Consume::shared(self.names.master_queue()),
                Consume::shared(self.names.results_queue()),
            ],
        }
    }

    fn destination(&self, route: Route) -> (String, String) {
        match route {
            Route::Broadcast => (self.names.fanout(), String::new()),
            Route::Coordinator => (self.names.direct(), MASTER_KEY.into()),
            Route::Results => (self.names.direct(), RESULTS_KEY.into()),
            // The list agreement has no point-to-point messages; a worker's queue is
            // reachable only through the fanout.
            Route::Peer(_) | Route::Role(_) | Route::Client(_) => {
                (self.names.fanout(), String::new())
            }
        }
    }

    fn prepare<'a>(
        &'a self,
        conn: &'a Connection,
        ch: &'a Channel,
        broker: &'a Broker,
        known_declared: bool,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.setup(conn, ch, broker.queue_opts(), known_declared))
    }

    fn taken(&self) -> BrokerError {
        BrokerError::IdTaken {
            run: self.names.run().to_owned(),
            id: self.worker.unwrap_or_default(),
        }
    }

    /// A worker reading the stream cannot drop one message (reading never removes
    /// anything): it counts, logs and passes over what it refused.
    fn acks_refused(&self) -> bool {
        self.worker.is_some() && self.topology == Topology::Stream
    }

    fn delete<'a>(
        &'a self,
        link: &'a Link,
        what: &'a Cleanup,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            delete_run(&link.conn, &link.ch, &self.names, what).await?;
            if let Cleanup::Worker {
                abandoned: true, ..
            } = what
            {
                delete_unused(link, &abandoned_names(&self.names)).await;
            }
            Ok(())
        })
    }

    fn delete_fresh<'a>(
        &'a self,
        conn: &'a Connection,
        ch: &'a Channel,
        what: &'a Cleanup,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(delete_run(conn, ch, &self.names, what))
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
    drive_fresh(broker, role, w, t0, shutdown, move |w: &Worker, _| {
        Cleanup::Worker {
            id,
            abandoned: !w.heard_master(),
        }
    })
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
    declare_shared(&ch, &names, broker.queue_opts()).await?;
    Wiring {
        exchanges: vec![],
        queues: vec![Queue::classic(
            shadow.clone(),
            vec![
                (names.fanout(), String::new()),
                (names.direct(), RESULTS_KEY.into()),
            ],
        )],
    }
    .declare(&ch, broker.queue_opts())
    .await?;
    let mut follow = Follower::start(ch, shadow).await?;
    let mut m = Master::standby(cfg, rng, now_ms(t0));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tracing::info!(run = names.run(), "standby: following the active master");
    let mut leader = false;
    while !leader {
        tokio::select! {
            r = follow.apply_next(|data| m.handle(now_ms(t0), data).is_ok()) => r?,
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
        follow
            .catch_up(|data| m.handle(now_ms(t0), data).is_ok())
            .await?;
        m.take_over(now_ms(t0));
    }
    let ch = follow.stop().await;
    if !leader || m.is_done() {
        let mut record = None;
        while let Some(out) = m.poll_output() {
            if let crate::contract::Output::Finished(r) = out {
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
    role.declare(&conn, &ch, broker.queue_opts(), false).await?;
    let link = adopt(conn, ch, &role).await?;
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
