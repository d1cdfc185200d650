//! The process by hand: two or three processes, their outputs delivered one by one.

use super::*;
use crate::algorithms::mutex::protocol::decode_report;

fn cfg(id: PeerId, n: u32, k: u32) -> ProcessConfig {
    ProcessConfig::new("t", id, n, k)
}

/// Everything `p` published: (route, message).
fn outputs(p: &mut Process) -> (Vec<(Route, Message)>, Option<Report>) {
    let mut done = None;
    let msgs = crate::contract::drain(p, &mut done, usize::MAX);
    (msgs, done)
}

fn kinds(msgs: &[(Route, Message)]) -> Vec<(Route, &'static str)> {
    msgs.iter().map(|(r, m)| (*r, m.body.kind())).collect()
}

/// Process 2's first reply to process 1 (its answer to 1's first request), encoded.
fn first_reply_of_2(vc: Vec<u64>) -> Vec<u8> {
    let body = Body::Reply {
        to: 1,
        seq: 1,
        lamport: 2,
        vc,
    };
    Message::new("t", 2, body).encode().expect("encodes")
}

#[test]
fn configs_are_validated() {
    assert!(cfg(1, 2, 1).validate().is_ok());
    assert!(cfg(1, 1, 1).validate().is_err());
    assert!(cfg(1, 2, 0).validate().is_err());
    assert!(cfg(0, 2, 1).validate().is_err());
    assert!(cfg(3, 2, 1).validate().is_err());
    assert!(Process::new(cfg(3, 2, 1), 0).is_err());
}

#[test]
fn the_older_request_wins_and_the_younger_is_deferred() {
    let mut p1 = Process::new(cfg(1, 2, 1), 0).expect("p1");
    let mut p2 = Process::new(cfg(2, 2, 1), 0).expect("p2");
    let (m1, _) = outputs(&mut p1);
    let (m2, _) = outputs(&mut p2);
    assert_eq!(kinds(&m1), vec![(Route::Peer(2), "request")]);
    // Both requests carry L=1: (1, 1) < (1, 2), so P1's is older.
    p1.handle(1, &m2[0].1.encode().expect("encodes"))
        .expect("request to p1");
    let (nothing, _) = outputs(&mut p1);
    assert!(nothing.is_empty(), "P1 defers the younger request");
    p2.handle(1, &m1[0].1.encode().expect("encodes"))
        .expect("request to p2");
    let (reply, _) = outputs(&mut p2);
    assert_eq!(kinds(&reply), vec![(Route::Peer(1), "reply")]);
    // A duplicate of the request earns no second reply.
    p2.handle(2, &m1[0].1.encode().expect("encodes"))
        .expect("duplicate");
    assert!(outputs(&mut p2).0.is_empty());
    p1.handle(2, &reply[0].1.encode().expect("encodes"))
        .expect("reply to p1");
    let (after, _) = outputs(&mut p1);
    // P1 entered and exited (hold 0), sent its deferred reply, then its done.
    assert_eq!(
        kinds(&after),
        vec![(Route::Peer(2), "reply"), (Route::Peer(2), "done")]
    );
    for (_, m) in &after {
        p2.handle(3, &m.encode().expect("encodes")).expect("to p2");
    }
    let (end2, report2) = outputs(&mut p2);
    assert_eq!(
        kinds(&end2),
        vec![(Route::Peer(1), "done"), (Route::Results, "report")]
    );
    let report2 = report2.expect("P2 finished");
    assert_eq!(report2.outcome, Outcome::Completed);
    assert_eq!(report2.counts.duplicates, 1);
    assert_eq!(
        decode_report(&end2[1].1.encode().expect("encodes"), "t").expect("report"),
        report2
    );
    p1.handle(4, &end2[0].1.encode().expect("encodes"))
        .expect("done to p1");
    let report1 = outputs(&mut p1).1.expect("P1 finished");
    let e1 = &report1.executions[0];
    let e2 = &report2.executions[0];
    assert_eq!(e1.request, (1, 1));
    assert!(crate::algorithms::mutex::checks::vc_lt(
        &e1.exit_vc,
        &e2.enter_vc
    ));
    let v = crate::algorithms::mutex::verify(&[report1, report2], 2, 1);
    assert!(v.verified, "{}", v.lines());
}

#[test]
fn junk_and_foreign_messages_are_rejected_and_counted() {
    let mut p = Process::new(cfg(1, 3, 1), 0).expect("p");
    outputs(&mut p);
    let ok = Message::new(
        "t",
        2,
        Body::Reply {
            to: 1,
            seq: 1,
            lamport: 1,
            vc: vec![0, 1, 0],
        },
    );
    let variants = [
        b"{oops".to_vec(),
        Message {
            run: "x".into(),
            ..ok.clone()
        }
        .encode()
        .expect("encodes"),
        Message {
            from: 1,
            ..ok.clone()
        }
        .encode()
        .expect("encodes"),
        Message {
            from: 9,
            ..ok.clone()
        }
        .encode()
        .expect("encodes"),
        Message::new(
            "t",
            2,
            Body::Reply {
                to: 3,
                seq: 1,
                lamport: 1,
                vc: vec![0, 1, 0],
            },
        )
        .encode()
        .expect("encodes"),
        Message::new(
            "t",
            2,
            Body::Reply {
                to: 1,
                seq: 1,
                lamport: 1,
                vc: vec![1],
            },
        )
        .encode()
        .expect("encodes"),
    ];
    for v in &variants {
        assert!(p.handle(1, v).is_err());
    }
    assert!(p.handle(1, &ok.encode().expect("encodes")).is_ok());
    p.interrupt(2, "stop".into());
    let report = outputs(&mut p).1.expect("finished");
    assert_eq!(report.rejected, variants.len() as u64);
    assert_eq!(
        report.outcome,
        Outcome::Interrupted {
            reason: "stop".into()
        }
    );
    assert_eq!(report.counts.replies_received, 1);
}

#[test]
fn a_silent_peer_is_named_after_the_peer_timeout() {
    let mut c = cfg(1, 3, 1);
    c.peer_timeout_ms = 100;
    let mut p = Process::new(c, 0).expect("p");
    outputs(&mut p);
    p.handle(50, &first_reply_of_2(vec![1, 2, 0]))
        .expect("reply");
    // Peer 2 spoke at 50: stuck once both are silent for 100 ms.
    assert_eq!(p.next_timeout(), Some(150));
    p.handle_timeout(149);
    assert!(outputs(&mut p).0.is_empty());
    p.handle_timeout(150);
    let (msgs, report) = outputs(&mut p);
    assert_eq!(kinds(&msgs), vec![(Route::Results, "report")]);
    assert_eq!(
        report.expect("finished").outcome,
        Outcome::Stalled { silent: vec![2, 3] }
    );
}

#[test]
fn the_hold_is_a_timeout_and_the_deadline_ends_the_run() {
    let mut c = cfg(1, 2, 2);
    c.hold_ms = 30;
    c.deadline = Some(1_000);
    let mut p = Process::new(c, 0).expect("p");
    outputs(&mut p);
    p.handle(10, &first_reply_of_2(vec![1, 2])).expect("reply");
    assert!(outputs(&mut p).0.is_empty(), "inside until 40");
    assert_eq!(p.next_timeout(), Some(40));
    p.handle_timeout(40);
    assert_eq!(kinds(&outputs(&mut p).0), vec![(Route::Peer(2), "request")]);
    p.handle_timeout(1_000);
    let report = outputs(&mut p).1.expect("finished");
    assert_eq!(report.outcome, Outcome::DeadlineExpired);
    assert_eq!(report.executions.len(), 1);
}

/// Every local and receive event of a process ticks its own vector entry once, and the
/// report logs each — `done` sends and receipts included: the own entries of the logged
/// events are exactly 1, 2, …, the last (a request's copies share one), so a trace of
/// the report has no jump.
#[test]
fn every_clock_step_is_logged_done_included() {
    use crate::contract::Route;
    use crate::sim::{self, SimConfig};
    use std::collections::BTreeSet;
    let (n, k) = (3, 2);
    let machines = (1..=n)
        .map(|i| (i, Process::new(cfg(i, n, k), 0).expect("valid")))
        .collect();
    let route = |_, r| match r {
        Route::Peer(p) => vec![p],
        _ => vec![],
    };
    let reports: Vec<Report> = sim::run(machines, route, &SimConfig::calm(), 7)
        .finished
        .into_values()
        .map(|r| r.expect("finished"))
        .collect();
    for r in &reports {
        let me = r.id as usize - 1;
        let mut own: Vec<u64> = r
            .executions
            .iter()
            .flat_map(|x| [x.enter_vc[me], x.exit_vc[me]])
            .chain(r.sent.iter().chain(&r.received).map(|e| e.vc[me]))
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect();
        let last = own.pop().expect("events");
        assert_eq!(own, (1..last).collect::<Vec<_>>(), "P{}", r.id);
        let logged = |log: &[Event], kind| log.iter().filter(|e| e.kind == kind).count() as u64;
        let c = &r.counts;
        assert_eq!(c.done_sent, u64::from(n - 1));
        assert_eq!(
            (logged(&r.sent, Kind::Done), logged(&r.received, Kind::Done)),
            (c.done_sent, c.done_received)
        );
        assert_eq!(
            (logged(&r.sent, Kind::Request), logged(&r.sent, Kind::Reply)),
            (c.requests_sent, c.replies_sent)
        );
        assert_eq!(
            (
                logged(&r.received, Kind::Request),
                logged(&r.received, Kind::Reply)
            ),
            (c.requests_received, c.replies_received)
        );
    }
    // Each `done` logged at its receiver was logged at its sender, stamped below it.
    for r in &reports {
        for got in r.received.iter().filter(|e| e.kind == Kind::Done) {
            let sender = reports.iter().find(|s| s.id == got.from).expect("sender");
            let sent = sender
                .sent
                .iter()
                .find(|e| (e.to, e.seq) == (got.to, got.seq))
                .expect("logged at its sender");
            assert_eq!(sent.kind, Kind::Done);
            assert!(sent.lamport < got.lamport);
            assert!(crate::algorithms::mutex::checks::vc_lt(&sent.vc, &got.vc));
        }
    }
}
