use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const M: Sender = Sender::Master { instance: 1 };

fn worker(id: WorkerId) -> Worker {
    let cfg = WorkerConfig {
        run_id: "t".into(),
        id,
        instance: 5,
        join_retry_ms: 100,
        deadline: None,
        topology: Default::default(),
        durable: false,
        queue_type: Default::default(),
        master_user: None,
    };
    Worker::new(cfg, Box::new(StdRng::seed_from_u64(id as u64)), 0)
}

/// `body` from `sender`, encoded as it arrives.
fn from(sender: Sender, body: Body) -> Vec<u8> {
    Message::new("t", sender, body).encode().expect("encodes")
}
fn m(body: Body) -> Vec<u8> {
    from(M, body)
}
fn parts(msgs: Vec<Message>) -> Vec<crate::algorithms::list::protocol::Part> {
    msgs.iter()
        .map(|m| crate::algorithms::list::protocol::Part::of(m).expect("encodes"))
        .collect()
}
fn w(id: WorkerId, body: Body) -> Vec<u8> {
    from(Sender::Worker { id, instance: 1 }, body)
}
/// Worker `id`'s append of `value` for grant `seq`.
fn append(seq: Seq, id: WorkerId, value: i64) -> Vec<u8> {
    w(
        id,
        Body::Append {
            seq,
            worker: id,
            value,
        },
    )
}
fn start(workers: Vec<WorkerId>) -> Vec<u8> {
    m(start_body(0, workers, false))
}
/// A master's `start` of `epoch` for `workers` (one round, values 1 to 100).
fn start_body(epoch: u32, workers: Vec<WorkerId>, relay: bool) -> Body {
    Body::Start {
        epoch,
        workers,
        rounds: 1,
        min: 1,
        max: 100,
        relay,
        topology: Default::default(),
        durable: false,
        queue_type: Default::default(),
    }
}
fn grant(seq: Seq, worker: WorkerId) -> Body {
    Body::Grant {
        seq,
        worker,
        lease_ms: 9,
    }
}
fn evict(seq: Seq, worker: WorkerId) -> Body {
    Body::Evict {
        seq,
        worker,
        reason: "lease".into(),
    }
}
fn drain(x: &mut Worker) -> Vec<Output> {
    std::iter::from_fn(|| x.poll_output()).collect()
}
fn finished(outs: &[Output]) -> Option<&WorkerOutcome> {
    outs.iter().find_map(|o| match o {
        Output::Finished(f) => Some(f),
        _ => None,
    })
}

#[test]
fn rejoins_until_start() {
    let mut x = worker(1);
    assert_eq!(drain(&mut x).len(), 1);
    x.handle_timeout(100);
    assert_eq!(drain(&mut x).len(), 1, "join re-sent");
    x.handle(150, &start(vec![1, 2])).unwrap();
    assert_eq!(x.next_timeout(), None);
}

/// A master's batch is handled part by part, as if each part came alone: it may open
/// with `start`; a bad part is counted and the others kept; a batch from a worker, or
/// inside a batch, is refused. With relay, this worker's append goes to the master.
#[test]
fn batches_are_handled_part_by_part_and_relay_routes_appends_to_the_master() {
    let mut x = worker(1);
    drain(&mut x);
    let part = |sender: Sender, body: Body| Message::new("t", sender, body);
    let relayed = |seq, worker, value| {
        part(
            Sender::Worker {
                id: worker,
                instance: 1,
            },
            Body::Append { seq, worker, value },
        )
    };
    let batch = from(
        M,
        Body::Batch {
            messages: parts(vec![
                part(M, start_body(0, vec![1, 2], true)),
                part(M, grant(1, 2)),
                relayed(1, 2, 42),
                relayed(1, 2, 43), // conflicts with the part before: refused, counted
                part(M, grant(2, 1)),
            ]),
        },
    );
    x.handle(1, &batch).unwrap();
    assert_eq!(x.rejected(), 1);
    let outs = drain(&mut x);
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Publish {
                route: Route::Coordinator,
                msg: Message {
                    body: Body::Append {
                        seq: 2,
                        worker: 1,
                        ..
                    },
                    ..
                }
            }
        )),
        "granted with relay: the append goes to the master: {outs:?}"
    );
    let from_worker = from(
        Sender::Worker { id: 2, instance: 1 },
        Body::Batch {
            messages: parts(vec![relayed(2, 1, 7)]),
        },
    );
    assert!(x.handle(2, &from_worker).is_err(), "only a master batches");
    let nested = from(
        M,
        Body::Batch {
            messages: parts(vec![Message::new("t", M, Body::Batch { messages: vec![] })]),
        },
    );
    let before = x.rejected();
    assert!(x.handle(3, &nested).is_ok());
    assert_eq!(
        x.rejected(),
        before + 1,
        "batches do not nest: the part is refused"
    );
    // The relayed append for seq 2 (its own, back from the master) and the end finish it.
    let own = outs.iter().filter_map(Output::body)
        .find_map(|b| match b {
            Body::Append { value, .. } => Some(*value),
            _ => None,
        })
        .unwrap();
    let end = from(
        M,
        Body::Batch {
            messages: parts(vec![
                relayed(2, 1, own),
                part(
                    M,
                    Body::End {
                        commits: vec![Commit { seq: 1, worker: 2 }, Commit { seq: 2, worker: 1 }],
                    },
                ),
            ]),
        },
    );
    x.handle(4, &end).unwrap();
    let done = drain(&mut x);
    assert!(done.iter().any(|o| matches!(o, Output::Finished(WorkerOutcome::Completed { entries }) if entries.iter().map(|e| e.value).collect::<Vec<_>>() == vec![42, own])), "{done:?}");
}

#[test]
fn places_by_seq_whatever_the_arrival_order() {
    let mut x = worker(1);
    x.handle(0, &start(vec![1, 2, 3])).unwrap();
    drain(&mut x);
    // Appends arrive before their grants and in reverse order; one twice.
    x.handle(1, &append(2, 3, 30)).unwrap();
    x.handle(1, &append(1, 2, 20)).unwrap();
    x.handle(1, &append(1, 2, 20)).unwrap();
    x.handle(1, &m(grant(1, 2))).unwrap();
    x.handle(1, &m(grant(2, 3))).unwrap();
    x.handle(1, &m(grant(3, 1))).unwrap();
    let outs = drain(&mut x);
    let my_value = outs.iter().filter_map(Output::body)
        .find_map(|b| match b {
            Body::Append { seq: 3, value, .. } => Some(*value),
            _ => None,
        })
        .expect("granted worker appends");
    // A redelivered grant does not produce a second value.
    x.handle(1, &m(grant(3, 1))).unwrap();
    assert!(drain(&mut x).is_empty());
    let commits = vec![
        Commit { seq: 1, worker: 2 },
        Commit { seq: 2, worker: 3 },
        Commit { seq: 3, worker: 1 },
    ];
    x.handle(2, &m(Body::End { commits })).unwrap();
    assert!(drain(&mut x).is_empty(), "waits for its own append");
    x.handle(3, &append(3, 1, my_value)).unwrap();
    let outs = drain(&mut x);
    let Some(WorkerOutcome::Completed { entries }) = finished(&outs) else {
        panic!("not completed: {outs:?}")
    };
    let values: Vec<i64> = entries.iter().map(|e| e.value).collect();
    assert_eq!(values, vec![20, 30, my_value]);
}

#[test]
fn evict_fences_late_appends_in_either_order() {
    // Late append before the evict: dropped when the evict arrives.
    let mut a = worker(1);
    a.handle(0, &start(vec![1, 2, 3])).unwrap();
    a.handle(0, &m(grant(1, 2))).unwrap();
    a.handle(0, &append(1, 2, 7)).unwrap();
    a.handle(0, &m(evict(1, 2))).unwrap();
    // Late append after the evict: refused.
    let mut b = worker(3);
    b.handle(0, &start(vec![1, 2, 3])).unwrap();
    b.handle(0, &m(grant(1, 2))).unwrap();
    b.handle(0, &m(evict(1, 2))).unwrap();
    assert!(b.handle(0, &append(1, 2, 7)).is_err());
    for x in [&mut a, &mut b] {
        x.handle(0, &m(grant(2, 3))).unwrap();
        x.handle(0, &append(2, 3, 8)).unwrap();
        x.handle(
            0,
            &m(Body::End {
                commits: vec![Commit { seq: 2, worker: 3 }],
            }),
        )
        .unwrap();
    }
    let la = finished(&drain(&mut a)).cloned();
    let lb = finished(&drain(&mut b)).cloned();
    assert_eq!(la, lb);
    assert!(matches!(la, Some(WorkerOutcome::Completed { entries }) if entries.len() == 1));
}

#[test]
fn refuses_forged_and_unknown_senders() {
    let mut x = worker(1);
    assert!(x.handle(0, &m(grant(1, 1))).is_err(), "grant before start");
    x.handle(0, &start(vec![1, 2])).unwrap();
    let stray = from(Sender::Master { instance: 99 }, grant(1, 1));
    assert!(x.handle(0, &stray).is_err(), "grant from another master");
    assert!(
        x.handle(0, &w(2, grant(1, 2))).is_err(),
        "grant from a worker"
    );
    assert!(
        x.handle(
            0,
            &w(
                2,
                Body::Append {
                    seq: 1,
                    worker: 1,
                    value: 3
                }
            )
        )
        .is_err(),
        "append on behalf of another"
    );
    assert!(x.handle(0, &append(1, 2, 1000)).is_err(), "out of range");
    assert_eq!(x.rejected(), 5);
}

#[test]
fn follows_a_standby_of_a_higher_epoch_and_ignores_the_old_master() {
    let mut x = worker(1);
    x.handle(0, &start(vec![1, 2])).unwrap();
    x.handle(0, &m(grant(1, 2))).unwrap();
    let new = Sender::Master { instance: 2 };
    let takeover = from(new, start_body(1, vec![1, 2], false));
    x.handle(0, &takeover).unwrap();
    assert!(x.handle(0, &m(grant(2, 1))).is_err(), "old master fenced");
    let new_grant = from(new, grant(2, 1));
    x.handle(0, &new_grant).unwrap();
    drain(&mut x);
    // A stale start of an older epoch does not switch back.
    let stale = from(
        Sender::Master { instance: 3 },
        start_body(0, vec![1, 2], false),
    );
    assert!(x.handle(0, &stale).is_err());
}

#[test]
fn not_admitted_when_start_omits_us() {
    let mut x = worker(9);
    x.handle(0, &start(vec![1, 2])).unwrap();
    assert_eq!(finished(&drain(&mut x)), Some(&WorkerOutcome::NotAdmitted));
}
