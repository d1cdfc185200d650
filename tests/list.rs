//! Full runs against a real RabbitMQ: the lists compared, concurrent runs, nothing left
//! behind, reproducibility, and the timeout.

mod common;

use common::{broker, leftovers, unique};
use std::time::Duration;
use sync_run::algorithms::list::checks::verify;
use sync_run::algorithms::list::run::{RunOptions, run_all};
use sync_run::algorithms::list::worker::WorkerOutcome;
use sync_run::contract::Topology;
use tokio::sync::watch;

fn opts(run_id: &str, n: usize) -> RunOptions {
    RunOptions {
        run_id: run_id.to_string(),
        slaves: n,
        min_workers: n,
        seed: None,
        min: 1,
        max: 100,
        rounds: 1,
        timeout: Duration::from_secs(120),
        grant_timeout: Duration::from_secs(10),
        join_timeout: Duration::from_secs(60),
        pace: Duration::ZERO,
        window: 16,
        relay: true,
        connections: sync_run::algorithms::list::run::DEFAULT_CONNECTIONS,
    }
}

/// Runs N workers and checks the lists here, independently of the verifier: every worker's
/// own outcome list is compared with every other's and with the master's grant log.
async fn full_run(n: usize) {
    full_run_with(n, Topology::default(), true).await;
}

/// [`full_run`] with a topology and relay setting; returns the deliveries the run took.
async fn full_run_with(n: usize, topology: Topology, relay: bool) -> u64 {
    let tb = broker().await;
    let id = unique(&format!("n{n}"));
    let (_tx, rx) = watch::channel(false);
    let mut o = opts(&id, n);
    o.relay = relay;
    let mut broker = tb.broker();
    broker.topology = topology;
    let res = run_all(&broker, &o, rx, |_, _| {})
        .await
        .expect("run succeeds");
    let lists: Vec<Vec<i64>> = res
        .worker_outcomes
        .iter()
        .map(|(w, o)| match o {
            Ok(WorkerOutcome::Completed { entries }) => entries.iter().map(|e| e.value).collect(),
            other => panic!("worker {w} did not complete: {other:?}"),
        })
        .collect();
    assert_eq!(lists.len(), n, "one list per worker");
    for l in &lists {
        assert_eq!(l.len(), n, "each list has N entries");
        assert_eq!(l, &lists[0], "lists identical");
        assert!(l.iter().all(|v| (1..=100).contains(v)));
    }
    let committed: Vec<i64> = res.record.committed().iter().map(|e| e.value).collect();
    assert_eq!(committed, lists[0], "lists match the master's grant log");
    let mut writers: Vec<u32> = res.record.committed().iter().map(|e| e.worker).collect();
    writers.sort();
    assert_eq!(
        writers,
        (1..=n as u32).collect::<Vec<_>>(),
        "each worker wrote once"
    );
    let v = verify(&res.record);
    assert!(v.verified, "{v:?}");
    assert_eq!(
        leftovers(&tb, &id, n as u32).await,
        Vec::<String>::new(),
        "nothing left on the broker"
    );
    broker
        .stats
        .deliveries
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Both topologies, with relay and without (the default, queues, runs in every other test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_topologies_agree_with_and_without_relay_and_leave_nothing() {
    full_run_with(17, Topology::Queues, true).await;
    full_run_with(3, Topology::Queues, false).await;
    full_run_with(17, Topology::Stream, true).await;
    full_run_with(3, Topology::Stream, false).await;
}

/// Relaying appends through the master (batched with its grants) must cost fewer
/// deliveries than workers broadcasting their own: even with no batching at all it is
/// one delivery per worker per turn instead of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_appends_agree_with_fewer_deliveries_than_broadcast_ones() {
    let direct = full_run_with(20, Topology::Queues, false).await;
    let relayed = full_run_with(20, Topology::Queues, true).await;
    assert!(
        relayed < direct,
        "relayed run took {relayed} deliveries, broadcast run {direct}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker() {
    full_run(1).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers() {
    full_run(2).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers() {
    full_run(3).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_workers() {
    full_run(10).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventeen_workers() {
    full_run(17).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_workers() {
    full_run(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_do_not_interfere_and_leave_nothing() {
    let tb = broker().await;
    let (a, b) = (unique("twin-a"), unique("twin-b"));
    let (_tx, rx) = watch::channel(false);
    let broker = tb.broker();
    let (oa, ob) = (opts(&a, 8), opts(&b, 12));
    let (ra, rb) = tokio::join!(
        run_all(&broker, &oa, rx.clone(), |_, _| {}),
        run_all(&broker, &ob, rx, |_, _| {})
    );
    let (ra, rb) = (ra.expect("run a"), rb.expect("run b"));
    assert!(verify(&ra.record).verified);
    assert!(verify(&rb.record).verified);
    assert_eq!(ra.record.committed().len(), 8);
    assert_eq!(rb.record.committed().len(), 12);
    assert!(
        ra.record.rejected.is_empty() && rb.record.rejected.is_empty(),
        "no cross-talk"
    );
    assert!(leftovers(&tb, &a, 8).await.is_empty());
    assert!(leftovers(&tb, &b, 12).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_grant_order_and_list() {
    let tb = broker().await;
    let mut results = vec![];
    // Turn by turn, and pipelined with two windows: the grant order and the values are the
    // master's and the workers' seeded draws, whatever the window.
    for window in [1, 16, 3] {
        let mut o = opts(&unique("seed"), 7);
        o.seed = Some(42);
        o.window = window;
        let (_tx, rx) = watch::channel(false);
        let r = run_all(&tb.broker(), &o, rx, |_, _| {}).await.expect("run");
        let c = r.record.committed();
        results.push((
            c.iter().map(|e| e.worker).collect::<Vec<_>>(),
            c.iter().map(|e| e.value).collect::<Vec<_>>(),
        ));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_and_value_range_are_honoured() {
    let tb = broker().await;
    let mut o = opts(&unique("rounds"), 4);
    o.rounds = 3;
    o.min = -5;
    o.max = 5;
    let (_tx, rx) = watch::channel(false);
    let r = run_all(&tb.broker(), &o, rx, |_, _| {}).await.expect("run");
    assert!(verify(&r.record).verified);
    let c = r.record.committed();
    assert_eq!(c.len(), 12);
    assert!(c.iter().all(|e| (-5..=5).contains(&e.value)));
    // Each round grants every worker once before the next round begins.
    for round in c.chunks(4) {
        let mut ws: Vec<u32> = round.iter().map(|e| e.worker).collect();
        ws.sort();
        assert_eq!(ws, vec![1, 2, 3, 4]);
    }
}
