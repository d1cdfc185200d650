//! Runs of peers that talk point to point (mutual exclusion, logical clocks, and the
//! algorithms after them): each of N peers has an inbox queue on the run's direct
//! exchange, and every peer's final report goes to the run's results queue, where whoever
//! renders the verdict reads them.
//!
//! Names (every one carries the run id, so cleanup knows exactly what to delete):
//!
//! | name | what |
//! |---|---|
//! | `sync-run.<alg>.<run>.direct` | direct exchange |
//! | `sync-run.<alg>.<run>.peer.<k>` | peer k's inbox, bound with key `peer.<k>` |
//! | `sync-run.<alg>.<run>.results` | the reports, bound with key `results` |
//!
//! Every peer declares *every* inbox when it starts: a message to a peer that has not
//! started yet then waits in its queue instead of being dropped by the exchange, so
//! peers may start in any order, on any machine. In a run on a graph
//! ([`PeerRun::links`], the market) a peer declares its own inbox and its neighbours'
//! only, and whoever starts the run declares every inbox first.

use super::consume::{consume, delivered};
use super::drive::drive_fresh;
use super::error::{BrokerError, Context};
use super::wiring::{Consume, Endpoint, Exchange, ExchangeKind, Queue, Wiring};
use super::{Broker, Link, Shutdown, bounded, close_quietly, connect, op_limit, open_channel};
use crate::contract::{PeerId, Route, StateMachine};
use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicRejectOptions};
use lapin::{Channel, Connection};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One run of algorithm `alg`: its peers, by id, and the participants that play a named
/// role (the snapshot's `master` and `observer`), each with an inbox of its own.
#[derive(Debug, Clone)]
pub struct PeerRun {
    pub alg: &'static str,
    pub run_id: String,
    /// The peers' ids, ascending.
    pub peers: Vec<PeerId>,
    /// The named roles (`Route::Role`), each one participant.
    pub roles: Vec<&'static str>,
    /// The clients (`Route::Client`: the bank's customers), by id. A client declares its
    /// own inbox only (nobody writes to it before it has called someone), so a run of
    /// many clients does not cost every participant a declare per client.
    pub clients: Vec<PeerId>,
    /// A graph's links (the market's neighbours): when not empty, peer `k` declares its
    /// own inbox and those of `links[k]` only, instead of every peer's, so that a run of
    /// 1,000 peers does not cost a million declares. Whoever starts such a run declares
    /// the whole of it first ([`PeerRun::wiring`]); a peer that publishes to a peer
    /// outside its links does so only once that peer has shown it is running.
    pub links: BTreeMap<PeerId, Vec<PeerId>>,
}

/// One participant of a [`PeerRun`]: a peer by id or a named role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Peer(PeerId),
    Role(&'static str),
    Client(PeerId),
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Member::Peer(k) => write!(f, "peer {k}"),
            Member::Role(r) => f.write_str(r),
            Member::Client(k) => write!(f, "client {k}"),
        }
    }
}

impl PeerRun {
    /// A run of peers 1 to `processes` and no roles (mutex, clocks).
    pub fn numbered(alg: &'static str, run_id: impl Into<String>, processes: u32) -> Self {
        PeerRun {
            alg,
            run_id: run_id.into(),
            peers: (1..=processes).collect(),
            roles: Vec::new(),
            clients: Vec::new(),
            links: BTreeMap::new(),
        }
    }

    fn prefix(&self) -> String {
        format!("sync-run.{}.{}", self.alg, self.run_id)
    }

    /// The run's direct exchange.
    pub fn exchange(&self) -> String {
        format!("{}.direct", self.prefix())
    }

    /// Peer `k`'s inbox.
    pub fn inbox(&self, k: PeerId) -> String {
        format!("{}.peer.{k}", self.prefix())
    }

    /// A member's inbox: `.peer.<k>` for a peer, `.<role>` for a role.
    pub fn inbox_of(&self, m: Member) -> String {
        match m {
            Member::Peer(k) => self.inbox(k),
            Member::Role(r) => format!("{}.{r}", self.prefix()),
            Member::Client(k) => format!("{}.client.{k}", self.prefix()),
        }
    }

    /// The routing key of a member's inbox on the direct exchange.
    fn key_of(m: Member) -> String {
        match m {
            Member::Peer(k) => format!("peer.{k}"),
            Member::Role(r) => r.to_owned(),
            Member::Client(k) => format!("client.{k}"),
        }
    }

    /// The queue the reports go to.
    pub fn results(&self) -> String {
        format!("{}.results", self.prefix())
    }

    /// Everything of the run: [`PeerRun::shared_wiring`] and every client's inbox (what
    /// the run's cleanup deletes).
    pub fn wiring(&self) -> Wiring {
        let mut w = self.shared_wiring();
        w.queues
            .extend(self.clients.iter().map(|k| self.client_queue(*k)));
        w
    }

    fn client_queue(&self, k: PeerId) -> Queue {
        let m = Member::Client(k);
        Queue::classic(self.inbox_of(m), vec![(self.exchange(), Self::key_of(m))])
    }

    /// What every participant declares: the exchange, every peer's and role's inbox and
    /// the results queue.
    pub fn shared_wiring(&self) -> Wiring {
        self.wiring_with(&self.peers)
    }

    /// What member `m` declares when it starts: [`PeerRun::shared_wiring`], or, in a run
    /// with [`PeerRun::links`], for a peer only its own inbox and its links' (and the
    /// roles' and the results); a client adds its own inbox.
    pub fn member_wiring(&self, m: Member) -> Wiring {
        let mut w = match (m, self.links.is_empty()) {
            (Member::Peer(k), false) => {
                let mut peers: Vec<PeerId> = vec![k];
                peers.extend(self.links.get(&k).into_iter().flatten().copied());
                self.wiring_with(&peers)
            }
            _ => self.shared_wiring(),
        };
        if let Member::Client(k) = m {
            w.queues.push(self.client_queue(k));
        }
        w
    }

    fn wiring_with(&self, peers: &[PeerId]) -> Wiring {
        let x = self.exchange();
        let members = peers
            .iter()
            .map(|k| Member::Peer(*k))
            .chain(self.roles.iter().map(|r| Member::Role(r)));
        let mut queues: Vec<Queue> = members
            .map(|m| Queue::classic(self.inbox_of(m), vec![(x.clone(), Self::key_of(m))]))
            .collect();
        queues.push(Queue::classic(
            self.results(),
            vec![(x.clone(), "results".into())],
        ));
        Wiring {
            exchanges: vec![Exchange {
                name: x,
                kind: ExchangeKind::Direct,
            }],
            queues,
        }
    }

    /// Peer `k` of this run, as the drive loop sees it.
    pub fn endpoint(&self, k: PeerId) -> PeerEndpoint {
        self.member(Member::Peer(k))
    }

    /// Any member of this run, as the drive loop sees it.
    pub fn member(&self, m: Member) -> PeerEndpoint {
        PeerEndpoint {
            run: self.clone(),
            id: m,
            conn_name: format!("sync-run {} {} {m}", self.alg, self.run_id),
        }
    }

    /// Deletes everything of the run over a connection of its own (after the verdict, or
    /// when a run is stopped). Deleting what is already gone is not an error.
    pub async fn delete(&self, broker: &Broker) -> Result<(), BrokerError> {
        let conn = connect(&broker.url, "sync-run cleanup", broker.connect_timeout).await?;
        let r = async {
            let ch = open_channel(&conn, 1).await?;
            self.wiring().delete(&conn, &ch).await
        };
        let r = bounded(op_limit(broker), "deleting the run", r).await;
        close_quietly(&conn, "cleanup done").await;
        r
    }
}

/// A member of a [`PeerRun`].
pub struct PeerEndpoint {
    run: PeerRun,
    id: Member,
    conn_name: String,
}

/// What a peer deletes when it is done: its own inbox (its machine ended with a report:
/// completed, or stalled / timed out, after which nothing it would act on can arrive), or
/// nothing (its driver failed). The collector of the run deletes everything of the run
/// at the end in any case; a process started alone with no collector leaves the other
/// names to expire (`x-expires`, 120 s unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCleanup {
    OwnInbox,
    Nothing,
}

impl Endpoint for PeerEndpoint {
    type Cleanup = PeerCleanup;

    fn conn_name(&self) -> &str {
        &self.conn_name
    }

    fn run_id(&self) -> &str {
        &self.run.run_id
    }

    fn pooled(&self) -> bool {
        true
    }

    fn consumes(&self) -> Vec<Consume> {
        vec![Consume::own(self.run.inbox_of(self.id))]
    }

    fn destination(&self, route: Route) -> (String, String) {
        let key = match route {
            Route::Peer(k) => PeerRun::key_of(Member::Peer(k)),
            Route::Role(r) => PeerRun::key_of(Member::Role(r)),
            Route::Client(k) => PeerRun::key_of(Member::Client(k)),
            Route::Results => "results".into(),
            // Point-to-point algorithms address peers one by one; a broadcast or a
            // coordinator message has no queue bound for it and would be dropped.
            Route::Broadcast | Route::Coordinator => {
                tracing::error!(?route, "a peer algorithm used a route it has no queue for");
                "unrouted".into()
            }
        };
        (self.run.exchange(), key)
    }

    fn prepare<'a>(
        &'a self,
        _conn: &'a Connection,
        ch: &'a Channel,
        broker: &'a Broker,
        _known_declared: bool,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            self.run
                .member_wiring(self.id)
                .declare(ch, broker.queue_opts())
                .await
        })
    }

    fn taken(&self) -> BrokerError {
        match self.id {
            Member::Peer(id) => BrokerError::IdTaken {
                run: self.run.run_id.clone(),
                id,
            },
            Member::Role(role) => BrokerError::RoleTaken {
                run: self.run.run_id.clone(),
                role,
            },
            Member::Client(id) => BrokerError::IdTaken {
                run: self.run.run_id.clone(),
                id,
            },
        }
    }

    fn delete<'a>(
        &'a self,
        link: &'a Link,
        what: &'a PeerCleanup,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(delete_own(&link.ch, self, *what))
    }

    fn delete_fresh<'a>(
        &'a self,
        _conn: &'a Connection,
        ch: &'a Channel,
        what: &'a PeerCleanup,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(delete_own(ch, self, *what))
    }
}

async fn delete_own(ch: &Channel, p: &PeerEndpoint, what: PeerCleanup) -> Result<(), BrokerError> {
    if what == PeerCleanup::OwnInbox {
        let q = p.run.inbox_of(p.id);
        ch.queue_delete(q.as_str().into(), Default::default())
            .await
            .ctx(|| format!("deleting queue {q}"))?;
    }
    Ok(())
}

/// Drives peer `id`'s machine until it finishes; `clean` says from its end whether its
/// inbox may go.
pub async fn drive_peer<M: StateMachine>(
    broker: &Broker,
    run: &PeerRun,
    id: PeerId,
    m: M,
    t0: Instant,
    shutdown: Shutdown,
    clean: impl Fn(&Result<M::Finished, BrokerError>) -> bool,
) -> Result<M::Finished, BrokerError> {
    drive_member(broker, run, Member::Peer(id), m, t0, shutdown, clean).await
}

/// [`drive_peer`] for any member, a peer or a named role.
pub async fn drive_member<M: StateMachine>(
    broker: &Broker,
    run: &PeerRun,
    id: Member,
    m: M,
    t0: Instant,
    shutdown: Shutdown,
    clean: impl Fn(&Result<M::Finished, BrokerError>) -> bool,
) -> Result<M::Finished, BrokerError> {
    drive_fresh(broker, run.member(id), m, t0, shutdown, |_, r| {
        if clean(r) {
            PeerCleanup::OwnInbox
        } else {
            PeerCleanup::Nothing
        }
    })
    .await
}

/// Reads the run's results queue until every one of `expect` peers has reported, `limit`
/// passes, a stop signal comes, or `grace` after `local_done` turns true (the peers of
/// this process have all ended: a peer elsewhere that has not reported by then crashed or
/// never started, and the verdict names it). `decode` turns a delivery into (peer, report):
/// a delivery it refuses (malformed, another run, a forgery) is rejected, counted and
/// logged, and reading goes on; a second report of the same peer (a re-publish after a
/// reconnect) keeps the first. Returns the reports by peer and the rejected count.
#[allow(clippy::too_many_arguments)]
pub async fn collect_reports<K: Ord + Clone, R>(
    broker: &Broker,
    run: &PeerRun,
    expect: &[K],
    limit: Duration,
    shutdown: Shutdown,
    local_done: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
    decode: impl Fn(&[u8]) -> Option<(K, R)>,
) -> Result<(BTreeMap<K, R>, u64), BrokerError> {
    let mut st = Reading {
        reports: BTreeMap::new(),
        rejected: 0,
        deadline: tokio::time::Instant::now() + limit,
        waiting_for_locals: true,
        shutdown,
        local_done,
        grace,
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        match read_reports(broker, run, expect, &mut st, &decode).await {
            Ok(()) => return Ok((st.reports, st.rejected)),
            // The connection went away (closed by an operator, a broker restart): the
            // reports not yet acknowledged are still queued; read on over a new one.
            Err(e)
                if super::error::is_transient(&e)
                    && tokio::time::Instant::now() + backoff < st.deadline
                    && !*st.shutdown.borrow() =>
            {
                tracing::warn!(error = %e, run = %run.run_id, "results connection lost; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the reader of the results has so far, kept across reconnections.
struct Reading<K, R> {
    reports: BTreeMap<K, R>,
    rejected: u64,
    deadline: tokio::time::Instant,
    waiting_for_locals: bool,
    shutdown: Shutdown,
    local_done: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
}

/// One connection's worth of [`collect_reports`]: `Ok` when it is over (all reported, the
/// deadline, a stop signal), `Err` when the connection failed.
async fn read_reports<K: Ord + Clone, R>(
    broker: &Broker,
    run: &PeerRun,
    expect: &[K],
    st: &mut Reading<K, R>,
    decode: &impl Fn(&[u8]) -> Option<(K, R)>,
) -> Result<(), BrokerError> {
    let conn = connect(
        &broker.url,
        &format!("sync-run {} {} results", run.alg, run.run_id),
        broker.connect_timeout,
    )
    .await?;
    let r = async {
        let ch = open_channel(&conn, 64).await?;
        run.wiring().declare(&ch, broker.queue_opts()).await?;
        let exclusive = BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        };
        let mut consumer = consume(&ch, run.results().as_str(), "", exclusive).await?;
        while expect.iter().any(|k| !st.reports.contains_key(k)) {
            let d = tokio::select! {
                d = consumer.next() => d,
                _ = tokio::time::sleep_until(st.deadline) => break,
                _ = super::stopped(&mut st.shutdown) => break,
                changed = st.local_done.changed(), if st.waiting_for_locals => {
                    if changed.is_err() || *st.local_done.borrow() {
                        st.waiting_for_locals = false;
                        st.deadline = st.deadline.min(tokio::time::Instant::now() + st.grace);
                    }
                    continue;
                }
            };
            let d = delivered(d, "reading the results", "results consumer")?;
            match decode(&d.data) {
                Some((k, rep)) if expect.contains(&k) => {
                    st.reports.entry(k).or_insert(rep);
                    d.ack(BasicAckOptions::default())
                        .await
                        .ctx(|| "acknowledging a report".into())?;
                }
                _ => {
                    st.rejected += 1;
                    tracing::warn!(run = %run.run_id, "rejected a delivery on the results queue");
                    d.reject(BasicRejectOptions { requeue: false })
                        .await
                        .ctx(|| "rejecting a delivery".into())?;
                }
            }
        }
        Ok(())
    }
    .await;
    close_quietly(&conn, "results read").await;
    r
}

/// Drives the given peers' machines in this process, concurrently, each on a channel of
/// the broker's pool (one is made for them when the broker has none), until every one has
/// finished. Returns each peer's end, in the order given.
pub async fn drive_local<M: StateMachine>(
    broker: &Broker,
    run: &PeerRun,
    machines: Vec<(PeerId, M)>,
    t0: Instant,
    shutdown: &Shutdown,
    clean: impl Fn(&Result<M::Finished, BrokerError>) -> bool + Copy,
) -> Vec<(PeerId, Result<M::Finished, BrokerError>)> {
    let members = machines
        .into_iter()
        .map(|(k, m)| (Member::Peer(k), m))
        .collect();
    drive_members(broker, run, members, t0, shutdown, clean)
        .await
        .into_iter()
        .map(|(m, r)| match m {
            Member::Peer(k) | Member::Client(k) => (k, r),
            Member::Role(_) => (0, r),
        })
        .collect()
}

/// [`drive_local`] for any members: peers, roles, clients.
pub async fn drive_members<M: StateMachine>(
    broker: &Broker,
    run: &PeerRun,
    machines: Vec<(Member, M)>,
    t0: Instant,
    shutdown: &Shutdown,
    clean: impl Fn(&Result<M::Finished, BrokerError>) -> bool + Copy,
) -> Vec<(Member, Result<M::Finished, BrokerError>)> {
    let mut broker = broker.clone();
    let pool = broker.pool.clone().unwrap_or_else(|| {
        std::sync::Arc::new(super::ConnectionPool::new(
            broker.url.clone(),
            broker.connect_timeout,
            format!("sync-run {} {}", run.alg, run.run_id),
            16,
        ))
    });
    broker.pool = Some(pool.clone());
    let broker = &broker;
    let ends = futures::future::join_all(machines.into_iter().map(|(k, m)| async move {
        let span = tracing::info_span!("peer", alg = run.alg, run = %run.run_id, member = %k);
        let r = tracing::Instrument::instrument(
            drive_member(broker, run, k, m, t0, shutdown.clone(), clean),
            span,
        )
        .await;
        (k, r)
    }))
    .await;
    pool.close().await;
    ends
}

/// How a run is started by whoever renders its verdict ([`run_peers`]).
#[derive(Debug, Clone)]
pub struct Launch<K> {
    /// The role whose inbox, when it has a consumer, means the run id is in use (the
    /// bank's sequencer, the market's clerk, the snapshot's master): such a run is
    /// refused before anything is declared or deleted, the other run's names not being
    /// ours to touch. `None`: the participants' exclusive consumers refuse it.
    pub probe: Option<&'static str>,
    /// Declare every name of the run before anyone starts, within this time (the bank's
    /// customers' inboxes, the market's whole graph); `None`: each participant declares
    /// what it needs.
    pub declare: Option<Duration>,
    /// Whose reports the verdict needs.
    pub expect: Vec<K>,
    /// How long the reports are read at most.
    pub limit: Duration,
    /// How long the reports of participants elsewhere are awaited once the local ones
    /// have all ended.
    pub grace: Duration,
}

/// What [`run_peers`] gathered.
#[derive(Debug)]
pub struct Ran<K, R, D> {
    /// The reports read from the results queue, by participant (the verdict's only input).
    pub reports: BTreeMap<K, R>,
    /// Deliveries on the results queue that were not a report of this run.
    pub rejected: u64,
    /// What driving the local participants returned.
    pub driven: D,
    /// From the start of the drive to the last report read.
    pub wall: Duration,
}

/// The one way a run is run here: probe (is the run id in use?) → declare → drive the
/// local participants while every report (local or from elsewhere) is read from the
/// results queue → delete everything of the run. The probe's connection is always closed;
/// a failed declare deletes what it declared; the run is deleted at the end whatever
/// happened. `drive` gets the drive's start and returns what the local participants
/// ended with; `decode` turns a delivery into (participant, report). The reports come
/// from the participants themselves, over the broker: the verdict is derived from them,
/// never from this driver's bookkeeping.
pub async fn run_peers<K, R, D, F>(
    broker: &Broker,
    run: &PeerRun,
    shutdown: &Shutdown,
    launch: Launch<K>,
    drive: impl FnOnce(Instant) -> F,
    decode: impl Fn(&[u8]) -> Option<(K, R)>,
) -> Result<Ran<K, R, D>, BrokerError>
where
    K: Ord + Clone,
    F: std::future::Future<Output = D>,
{
    prepare(broker, run, launch.probe, launch.declare).await?;
    let t0 = Instant::now();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let driving = async {
        let driven = drive(t0).await;
        let _ = done_tx.send(true);
        driven
    };
    let collect = collect_reports(
        broker,
        run,
        &launch.expect,
        launch.limit,
        shutdown.clone(),
        done_rx,
        launch.grace,
        decode,
    );
    let (driven, collected) = tokio::join!(driving, collect);
    let wall = t0.elapsed();
    delete_logged(broker, run).await;
    let (reports, rejected) = collected?;
    Ok(Ran {
        reports,
        rejected,
        driven,
        wall,
    })
}

/// The probe and the declare of [`run_peers`], over one connection that is closed
/// whatever happens.
async fn prepare(
    broker: &Broker,
    run: &PeerRun,
    probe: Option<&'static str>,
    declare: Option<Duration>,
) -> Result<(), BrokerError> {
    if probe.is_none() && declare.is_none() {
        return Ok(());
    }
    let name = format!("sync-run {} {} start", run.alg, run.run_id);
    let conn = connect(&broker.url, &name, broker.connect_timeout).await?;
    // `Err(Ok(e))`: the probe failed or refused, nothing declared; `Err(Err(e))`: the
    // declare failed, something of ours may be there.
    let r: Result<(), Result<BrokerError, BrokerError>> = async {
        if let Some(role) = probe {
            let q = run.inbox_of(Member::Role(role));
            let consumers = super::queue_consumers(&conn, &q).await.map_err(Ok)?;
            if consumers.is_some_and(|c| c > 0) {
                return Err(Ok(BrokerError::RoleTaken {
                    run: run.run_id.clone(),
                    role,
                }));
            }
        }
        if let Some(limit) = declare {
            let declared = async {
                let ch = open_channel(&conn, 1).await?;
                run.wiring().declare(&ch, broker.queue_opts()).await
            };
            bounded(limit, "declaring the run", declared)
                .await
                .map_err(Err)?;
        }
        Ok(())
    }
    .await;
    close_quietly(&conn, "run started").await;
    match r {
        Ok(()) => Ok(()),
        Err(Ok(e)) => Err(e),
        Err(Err(e)) => {
            // What was declared before the failure is this run's: remove it.
            delete_logged(broker, run).await;
            Err(e)
        }
    }
}

/// [`PeerRun::delete`], a failure logged: the names expire on their own.
async fn delete_logged(broker: &Broker, run: &PeerRun) {
    if let Err(e) = run.delete(broker).await {
        tracing::error!(error = %e, run = %run.run_id, "could not delete the run's queues; they expire on their own after {} s unused", super::QUEUE_EXPIRES_MS / 1000);
    }
}

/// The error of a run none of whose local participants could reach the broker (and none
/// of whose peers reported): that is the run's failure, not a verdict. Every failed
/// local participant is said on stderr, `alg` naming the command.
pub fn local_failure<F>(
    alg: &str,
    ends: Vec<(Member, Result<F, BrokerError>)>,
    any_report: bool,
) -> Result<(), BrokerError> {
    for (m, r) in &ends {
        if let Err(e) = r {
            eprintln!("sync-run {alg}: {m}: {e}");
        }
    }
    if !any_report
        && ends.iter().all(|(_, r)| r.is_err())
        && let Some((_, Err(e))) = ends.into_iter().next()
    {
        return Err(e);
    }
    Ok(())
}

/// What [`run_and_collect`] gathered.
#[derive(Debug)]
pub struct Collected<R> {
    /// The reports read from the results queue, by peer (the verdict's only input).
    pub reports: BTreeMap<PeerId, R>,
    /// Deliveries on the results queue that were not a report of this run.
    pub rejected: u64,
    /// Local peers whose driver failed (the broker went away, the id was taken…).
    pub errors: Vec<(PeerId, BrokerError)>,
    /// From the start of the drive to the last report read.
    pub wall: Duration,
}

/// [`run_peers`] for a run of numbered peers that declare their own names (mutex,
/// clocks): the given local peers are driven, every peer's report read.
pub async fn run_and_collect<M: StateMachine, R>(
    broker: &Broker,
    run: &PeerRun,
    machines: Vec<(PeerId, M)>,
    shutdown: &Shutdown,
    limit: Duration,
    grace: Duration,
    decode: impl Fn(&[u8]) -> Option<(PeerId, R)>,
) -> Result<Collected<R>, BrokerError> {
    let launch = Launch {
        probe: None,
        declare: None,
        expect: run.peers.clone(),
        limit,
        grace,
    };
    let drive = |t0| drive_local(broker, run, machines, t0, shutdown, |r| r.is_ok());
    let ran = run_peers(broker, run, shutdown, launch, drive, decode).await?;
    let errors = ran
        .driven
        .into_iter()
        .filter_map(|(k, r)| r.err().map(|e| (k, e)))
        .collect();
    Ok(Collected {
        reports: ran.reports,
        rejected: ran.rejected,
        errors,
        wall: ran.wall,
    })
}
