//! Orchestration: one run with the master and every worker in this process, as
//! `sync-run --slaves N` does: the master first, then the workers, each on a channel of its
//! own over at most `--connections` shared connections. Also the per-role entry points used
//! by `sync-run master` and `sync-run worker`.

use super::broker;
use super::master::{MasterConfig, RunRecord};
use super::protocol::WorkerId;
use super::worker::{WorkerConfig, WorkerOutcome};
use crate::broker::{Broker, BrokerError, ConnectionPool, Shutdown};
use crate::contract::Millis;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Everything a run needs besides the broker.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    pub slaves: usize,
    pub min_workers: usize,
    pub seed: Option<u64>,
    pub min: i64,
    pub max: i64,
    pub rounds: u32,
    pub timeout: Duration,
    pub grant_timeout: Duration,
    pub join_timeout: Duration,
    pub pace: Duration,
    /// Grants outstanding at once (`--window`).
    pub window: usize,
    /// The master relays appends (see [`MasterConfig::relay`]).
    pub relay: bool,
    /// The workers share at most this many connections (`--connections`).
    pub connections: usize,
}

/// Default of `--connections`: up to 16 workers get a connection each; beyond, they share
/// (measured at N=100: joining takes ≈ 100 ms on 4–16 connections, ≈ 150 ms on 64).
pub const DEFAULT_CONNECTIONS: usize = 16;

pub use crate::cli::random_run_id;

/// The master's RNG: seeded when `--seed` is given, from the OS otherwise.
pub fn master_rng(seed: Option<u64>) -> Box<dyn RngCore + Send> {
    match seed {
        Some(s) => Box::new(StdRng::seed_from_u64(s)),
        None => Box::new(StdRng::from_os_rng()),
    }
}

/// Worker `id`'s RNG: with a seed, a stream of its own derived from (seed, id).
pub fn worker_rng(seed: Option<u64>, id: WorkerId) -> Box<dyn RngCore + Send> {
    match seed {
        Some(s) => Box::new(StdRng::seed_from_u64(
            s ^ (id as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(17),
        )),
        None => Box::new(StdRng::from_os_rng()),
    }
}

fn ms(d: Duration) -> Millis {
    d.as_millis().min(u64::MAX as u128) as Millis
}

/// A random `instance` for a participant's `from`: below 2^53, so that every JSON parser
/// (including those that read numbers as doubles) keeps it exact.
pub fn random_instance() -> u64 {
    rand::rng().next_u64() & ((1 << 53) - 1)
}

/// The master's configuration; the options every participant must share (topology,
/// durability) come from `broker`, and `start` announces them.
pub fn master_config(o: &RunOptions, broker: &Broker) -> MasterConfig {
    MasterConfig {
        run_id: o.run_id.clone(),
        instance: random_instance(),
        workers: o.slaves,
        min_workers: o.min_workers,
        rounds: o.rounds,
        min: o.min,
        max: o.max,
        join_timeout_ms: ms(o.join_timeout.min(o.timeout)),
        lease_ms: ms(o.grant_timeout),
        // Results follow `end` within a round trip; this bounds a crashed worker's silence.
        result_timeout_ms: ms(o.grant_timeout.max(Duration::from_secs(2))),
        deadline: Some(ms(o.timeout)),
        pace_ms: ms(o.pace),
        window: o.window,
        relay: o.relay,
        topology: broker.topology,
        durable: broker.durable,
        queue_type: broker.queue_type,
    }
}

/// A worker's configuration: it gives up at `deadline` (on the driver's clock), and takes
/// topology and durability from `broker` (checked against the run's `start`).
pub fn worker_config(
    run_id: &str,
    id: WorkerId,
    deadline: Duration,
    broker: &Broker,
    master_user: Option<String>,
) -> WorkerConfig {
    WorkerConfig {
        run_id: run_id.to_owned(),
        id,
        instance: random_instance(),
        join_retry_ms: 500,
        deadline: Some(ms(deadline)),
        topology: broker.topology,
        durable: broker.durable,
        queue_type: broker.queue_type,
        master_user,
    }
}

/// The result of a whole in-process run.
#[derive(Debug)]
pub struct AllResult {
    pub record: RunRecord,
    pub worker_outcomes: Vec<(WorkerId, Result<WorkerOutcome, String>)>,
    pub wall: Duration,
}

/// Runs the master and `slaves` workers (ids 1..=N) in this process and returns the
/// master's record once every participant has stopped and cleaned up.
pub async fn run_all(
    broker: &Broker,
    opts: &RunOptions,
    shutdown: Shutdown,
    on_progress: impl FnMut(usize, usize),
) -> Result<AllResult, BrokerError> {
    let t0 = Instant::now();
    let per_connection = opts.slaves.div_ceil(opts.connections.max(1));
    let mut broker = broker.clone();
    let pool = (per_connection > 1 && broker.pool.is_none()).then(|| {
        std::sync::Arc::new(ConnectionPool::new(
            broker.url.clone(),
            broker.connect_timeout,
            format!("sync-run workers {}", opts.run_id),
            per_connection,
        ))
    });
    if let Some(p) = &pool {
        broker.pool = Some(p.clone());
    }
    let master_broker = broker.clone();
    // Workers start once the master has declared the run's names (below).
    broker.declared = true;
    let broker = &broker;
    // Workers that fail (e.g. cannot connect) stop the whole run rather than leave the
    // master waiting for its join timeout.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut outer = shutdown.clone();
    let forward = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            while outer.changed().await.is_ok() {
                if *outer.borrow() {
                    let _ = stop_tx.send(true);
                    return;
                }
            }
        })
    };
    // The master first: once it holds the lock and has declared the run's names, the
    // workers start and find them there (re-declaring costs the broker a transaction per
    // binding and worker). A master that fails to start leaves no worker behind.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut workers = tokio::task::JoinSet::new();
    let start_workers = async {
        // The workers' shared connections open while the master starts.
        let warmed = match &pool {
            Some(p) => p.warm(opts.slaves).await,
            None => Ok(()),
        };
        tracing::debug!(
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "worker connections open"
        );
        if ready_rx.await.is_err() {
            return Ok(());
        }
        if let Err(e) = warmed {
            let _ = stop_tx.send(true);
            return Err(e);
        }
        for id in 1..=opts.slaves as WorkerId {
            let broker = broker.clone();
            // A little after the master's deadline, so that the master's abort arrives first.
            let deadline = opts.timeout + Duration::from_secs(2);
            let cfg = worker_config(&opts.run_id, id, deadline, &broker, None);
            let rng = worker_rng(opts.seed, id);
            let stop = stop_rx.clone();
            let stop_tx = stop_tx.clone();
            workers.spawn(async move {
                let r = broker::run_worker(&broker, cfg, rng, t0, stop).await;
                if let Err(e) = &r {
                    tracing::error!(worker = id, error = %e, "worker failed; stopping the run");
                    let _ = stop_tx.send(true);
                }
                (id, r)
            });
        }
        Ok(())
    };
    let cfg = master_config(opts, &master_broker);
    let (master, started) = tokio::join!(
        broker::run_master_signalling(
            &master_broker,
            cfg,
            master_rng(opts.seed),
            t0,
            stop_rx.clone(),
            on_progress,
            Some(ready_tx),
        ),
        start_workers
    );
    if master.is_err() {
        let _ = stop_tx.send(true);
    }
    let mut outcomes = Vec::with_capacity(opts.slaves);
    let mut first_broker_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok((id, Ok(o))) => outcomes.push((id, Ok(o))),
            Ok((id, Err(e))) => {
                outcomes.push((id, Err(e.to_string())));
                first_broker_error.get_or_insert(e);
            }
            Err(e) => tracing::error!(error = %e, "worker task panicked"),
        }
    }
    forward.abort();
    if let Some(p) = &pool {
        p.close().await;
    }
    outcomes.sort_by_key(|(id, _)| *id);
    // The workers' connections could not be opened: that, not the master's abort, is news.
    started?;
    let record = match (master, first_broker_error) {
        // A worker's failure stopped the run while the master was still reconnecting: the
        // master's lost connection is a consequence; the worker's error (the run's queues
        // gone after a broker restart, say) is the news.
        (Err(BrokerError::Lost { .. } | BrokerError::Stalled { .. }), Some(w)) => return Err(w),
        (Err(e), _) => return Err(e),
        // A worker's broker failure stops the run; report it as the broker error it is.
        // Unless a signal stopped the run: then a worker failing on its way out (the
        // master already deleted the run's queues under it) is a consequence, and the
        // master's record of the interrupted run is what the user asked to see.
        (Ok(r), Some(e))
            if !matches!(r.outcome, super::master::RunOutcome::Completed)
                && !*shutdown.borrow() =>
        {
            return Err(e);
        }
        (Ok(r), _) => r,
    };
    Ok(AllResult {
        record,
        worker_outcomes: outcomes,
        wall: t0.elapsed(),
    })
}
