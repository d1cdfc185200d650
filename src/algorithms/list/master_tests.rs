use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn cfg(n: usize) -> MasterConfig {
    MasterConfig {
        run_id: "t".into(),
        instance: 1,
        workers: n,
        min_workers: n,
        rounds: 1,
        min: 1,
        max: 100,
        join_timeout_ms: 1_000,
        lease_ms: 500,
        result_timeout_ms: 1_000,
        deadline: Some(60_000),
        pace_ms: 0,
        window: 1,
        relay: false,
        topology: Default::default(),
        durable: false,
        queue_type: Default::default(),
    }
}

fn from_worker(id: WorkerId, body: Body) -> Vec<u8> {
    Message::new("t", Sender::Worker { id, instance: 9 }, body)
        .encode()
        .expect("encodes")
}

/// Worker `w`'s append of `value` for grant `seq`.
fn append_of(seq: Seq, w: WorkerId, value: i64) -> Vec<u8> {
    from_worker(
        w,
        Body::Append {
            seq,
            worker: w,
            value,
        },
    )
}

fn drain(m: &mut Master) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn last_grant(outs: &[Output]) -> Option<(Seq, WorkerId)> {
    grants(outs).last().copied()
}

fn master(n: usize) -> Master {
    master_with(cfg(n))
}

fn master_with(c: MasterConfig) -> Master {
    Master::new(c, Box::new(StdRng::seed_from_u64(3)), 0)
}

/// `workers` join at time 0, each once.
fn join(m: &mut Master, workers: impl IntoIterator<Item = WorkerId>) {
    for w in workers {
        m.handle(0, &from_worker(w, Body::Join { worker: w }))
            .unwrap();
    }
}

/// With relay, a committed append goes out once, with its writer as sender, before the
/// grant it frees up; a duplicate is not relayed again; `start` announces the relay.
#[test]
fn with_relay_each_committed_append_is_relayed_once_before_the_next_grant() {
    let mut c = cfg(2);
    c.relay = true;
    let mut m = master_with(c);
    join(&mut m, [1, 2]);
    let outs = drain(&mut m);
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Publish {
            msg: Message {
                body: Body::Start { relay: true, .. },
                ..
            },
            ..
        }
    )));
    let (seq, w) = last_grant(&outs).unwrap();
    let append = append_of(seq, w, 5);
    m.handle(1, &append).unwrap();
    let outs = drain(&mut m);
    let kinds: Vec<(&str, Sender)> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Publish {
                route: Route::Broadcast,
                msg,
            } => Some((msg.body.kind(), msg.from)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("append", Sender::Worker { id: w, instance: 9 }),
            ("grant", Sender::Master { instance: 1 }),
        ]
    );
    m.handle(2, &append).unwrap();
    assert!(drain(&mut m).is_empty(), "a duplicate is not relayed again");
}

#[test]
fn starts_when_all_joined_and_grants_each_worker_once() {
    let mut m = master(3);
    for w in [1, 2, 3] {
        m.handle(0, &from_worker(w, Body::Join { worker: w }))
            .unwrap();
        // A repeated join is harmless.
        m.handle(0, &from_worker(w, Body::Join { worker: w }))
            .unwrap();
    }
    let mut granted = vec![];
    let mut outs = drain(&mut m);
    while let Some((seq, w)) = last_grant(&outs) {
        if granted.iter().any(|(s, _)| *s == seq) {
            break;
        }
        granted.push((seq, w));
        m.handle(1, &append_of(seq, w, 42)).unwrap();
        outs = drain(&mut m);
    }
    let mut workers: Vec<_> = granted.iter().map(|(_, w)| *w).collect();
    workers.sort();
    assert_eq!(workers, vec![1, 2, 3]);
    assert!(outs.iter().any(|o| matches!(o, Output::Publish { msg: Message { body: Body::End { commits }, .. }, .. } if commits.len() == 3)));
}

fn grants(outs: &[Output]) -> Vec<(Seq, WorkerId)> {
    outs.iter().filter_map(Output::body)
        .filter_map(|b| match b {
            Body::Grant { seq, worker, .. } => Some((*seq, *worker)),
            _ => None,
        })
        .collect()
}

/// Runs a master with `window` to the end, committing appends in reverse order of
/// their grants, and returns the grant order.
fn pipelined_order(n: usize, window: usize) -> Vec<(Seq, WorkerId)> {
    let mut c = cfg(n);
    c.window = window;
    let mut m = master_with(c);
    let mut order = vec![];
    join(&mut m, 1..=n as WorkerId);
    let mut outs = drain(&mut m);
    loop {
        let batch = grants(&outs);
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= window, "{batch:?} exceeds window {window}");
        order.extend(batch.iter().copied());
        outs.clear();
        for &(seq, worker) in batch.iter().rev() {
            let append = Body::Append {
                seq,
                worker,
                value: 7,
            };
            m.handle(1, &from_worker(worker, append)).unwrap();
            outs.extend(drain(&mut m));
        }
    }
    assert!(outs.iter().any(|o| matches!(o, Output::Publish { msg: Message { body: Body::End { commits }, .. }, .. } if commits.len() == n)));
    order
}

#[test]
fn a_window_pipelines_grants_without_changing_their_order() {
    let one = pipelined_order(7, 1);
    for window in [2, 3, 7, 50] {
        assert_eq!(pipelined_order(7, window), one, "window {window}");
    }
    let mut c = cfg(5);
    c.window = 3;
    let mut m = master_with(c);
    join(&mut m, 1..=5);
    let first = grants(&drain(&mut m));
    assert_eq!(first.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    // Seq 2 commits; seq 1 and 3 run out of lease: both evicted, two new grants.
    let (s2, w2) = first[1];
    let append = Body::Append {
        seq: s2,
        worker: w2,
        value: 9,
    };
    m.handle(100, &from_worker(w2, append)).unwrap();
    let refill = grants(&drain(&mut m));
    assert_eq!(refill.iter().map(|g| g.0).collect::<Vec<_>>(), vec![4]);
    assert_eq!(m.next_timeout(), Some(500));
    m.handle_timeout(500);
    let outs = drain(&mut m);
    let evicted: Vec<_> = outs.iter().filter_map(Output::body)
        .filter_map(|b| match b {
            Body::Evict { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, vec![1, 3]);
    // Of five workers two are evicted and two have written or hold seq 4: one grant.
    assert_eq!(grants(&outs).len(), 1);
}

#[test]
fn lease_expiry_evicts_and_fences_the_late_append() {
    let mut m = master(2);
    join(&mut m, [1, 2]);
    let (seq, w) = last_grant(&drain(&mut m)).unwrap();
    assert_eq!(m.next_timeout(), Some(500));
    m.handle_timeout(500);
    let outs = drain(&mut m);
    assert!(outs.iter().any(|o| matches!(o, Output::Publish { msg: Message { body: Body::Evict { worker, .. }, .. }, .. } if *worker == w)));
    let late = append_of(seq, w, 5);
    assert!(
        m.handle(600, &late)
            .unwrap_err()
            .to_string()
            .contains("fenced")
    );
    let (seq2, w2) = last_grant(&outs).unwrap();
    assert_eq!(seq2, 2);
    assert_ne!(w2, w);
}

#[test]
fn appends_from_the_wrong_worker_or_out_of_range_are_refused() {
    let mut m = master(2);
    join(&mut m, [1, 2]);
    let (seq, w) = last_grant(&drain(&mut m)).unwrap();
    let other = 3 - w;
    // `from` sends an append on behalf of `worker` for grant `seq`.
    let mut refused = |from: WorkerId, seq: Seq, worker: WorkerId, value: i64| {
        m.handle(1, &from_worker(from, Body::Append { seq, worker, value }))
            .is_err()
    };
    assert!(refused(other, seq, other, 5));
    assert!(refused(other, seq, w, 5));
    assert!(refused(w, seq, w, 101));
    assert!(refused(w, 9, w, 5));
    assert!(m.handle(1, b"garbage").is_err());
    assert_eq!(m.rejected.values().sum::<u64>(), 5);
    m.handle(1, &append_of(seq, w, 100)).unwrap();
}

#[test]
fn too_few_joins_abort_and_enough_start_after_the_join_timeout() {
    let mut m = master(3);
    join(&mut m, [1]);
    m.handle_timeout(1_000);
    let outs = drain(&mut m);
    assert!(
        matches!(outs.last(), Some(Output::Finished(r)) if matches!(r.outcome, RunOutcome::Aborted { .. }))
    );

    let mut c = cfg(3);
    c.min_workers = 1;
    let mut m = master_with(c);
    join(&mut m, [1]);
    m.handle_timeout(1_000);
    assert_eq!(last_grant(&drain(&mut m)), Some((1, 1)));
}

#[test]
fn a_standby_follows_then_takes_over_without_granting_twice() {
    let mut active = master(3);
    let mut scfg = cfg(3);
    scfg.instance = 2;
    let mut standby = Master::standby(scfg, Box::new(StdRng::seed_from_u64(4)), 0);
    let feed = |outs: Vec<Output>, standby: &mut Master| {
        for o in outs {
            if let Output::Publish { msg, .. } = o {
                standby.handle(0, &msg.encode().expect("encodes")).unwrap();
            }
        }
    };
    join(&mut active, [1, 2, 3]);
    let outs = drain(&mut active);
    let (seq, w) = last_grant(&outs).unwrap();
    feed(outs, &mut standby);
    let append = append_of(seq, w, 9);
    active.handle(1, &append).unwrap();
    standby.handle(1, &append).unwrap();
    let outs = drain(&mut active);
    let (seq2, w2) = last_grant(&outs).unwrap();
    feed(outs, &mut standby);
    assert!(
        drain(&mut standby).is_empty(),
        "a standby publishes nothing"
    );
    // The active master dies with grant 2 outstanding.
    standby.take_over(5);
    let outs = drain(&mut standby);
    assert!(matches!(
        &outs[0],
        Output::Publish {
            msg: Message {
                body: Body::Start { epoch: 1, .. },
                ..
            },
            ..
        }
    ));
    assert_eq!(last_grant(&outs), None, "grant 2 is not re-issued");
    standby.handle(6, &append_of(seq2, w2, 8)).unwrap();
    let (seq3, w3) = last_grant(&drain(&mut standby)).unwrap();
    assert_eq!(seq3, 3);
    assert!(
        w3 != w && w3 != w2,
        "the third grant goes to the worker that has not written"
    );
}

#[test]
fn the_run_deadline_aborts() {
    let mut m = master(2);
    join(&mut m, [1]);
    m.handle_timeout(60_000);
    assert!(m.is_done());
}
