//! The process on its own: clocks by the rules, exactly-once receives, the end, and every
//! way it can stop early.

use super::*;
use crate::algorithms::clocks::testing::{self, bytes};
use crate::contract::Wire;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn process(cfg: ClockConfig) -> Process {
    Process::new(cfg, Box::new(StdRng::seed_from_u64(1)), 0).expect("valid config")
}

/// Process `id` of `n`, `e` events paced `step_ms` apart, each step a send with
/// probability `send` (1.0: all sends, 0.0: none, so a test knows what comes out).
fn sending(id: PeerId, n: u32, e: u32, step_ms: u64, send: f64) -> Process {
    let mut cfg = testing::config(id, n, e, step_ms);
    cfg.send_probability = send;
    process(cfg)
}

fn outputs(p: &mut Process) -> (Vec<(Route, Message)>, Option<Report>) {
    let mut fin = None;
    let msgs = crate::contract::drain(p, &mut fin, usize::MAX);
    (msgs, fin)
}

fn msg(from: PeerId, to: PeerId, seq: u64, lamport: u64, vc: Vec<u64>) -> Vec<u8> {
    bytes(Message::new(
        "t",
        from,
        Body::Msg {
            to,
            seq,
            lamport,
            vc,
        },
    ))
}

fn done(from: PeerId, to: PeerId, seq: u64) -> Vec<u8> {
    bytes(Message::new(
        "t",
        from,
        Body::Done {
            to,
            seq,
            sent: seq - 1,
        },
    ))
}

#[test]
fn configs_are_validated() {
    let ok = testing::config(1, 2, 1, 0);
    assert!(ok.validate().is_ok());
    for bad in [
        ClockConfig {
            processes: 1,
            id: 1,
            ..ok.clone()
        },
        ClockConfig {
            events: 0,
            ..ok.clone()
        },
        ClockConfig {
            id: 3,
            ..ok.clone()
        },
        ClockConfig {
            id: 0,
            ..ok.clone()
        },
        ClockConfig {
            send_probability: 1.5,
            ..ok.clone()
        },
        ClockConfig {
            send_probability: f64::NAN,
            ..ok.clone()
        },
        ClockConfig {
            peer_timeout_ms: 0,
            ..ok.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(Process::new(bad, Box::new(StdRng::seed_from_u64(1)), 0).is_err());
    }
}

#[test]
fn all_at_once_then_done_to_each_peer() {
    let mut p = sending(2, 3, 4, 0, 1.0);
    let (msgs, fin) = outputs(&mut p);
    assert!(fin.is_none());
    // 4 sends then a done to each of P1 and P3, each done after that channel's messages.
    let sends = msgs.iter().filter(|(_, m)| m.kind() == "msg").count();
    assert_eq!(sends, 4);
    for peer in [1, 3] {
        let on: Vec<&Message> = msgs
            .iter()
            .filter(|(r, _)| *r == Route::Peer(peer))
            .map(|(_, m)| m)
            .collect();
        let Some(Message {
            body: Body::Done { seq, sent, .. },
            ..
        }) = on.last()
        else {
            panic!("no done to P{peer}: {on:?}")
        };
        assert_eq!(*sent as usize, on.len() - 1);
        assert_eq!(*seq as usize, on.len());
    }
    assert_eq!(p.next_timeout(), Some(1_000_000), "only the peers' silence");
}

#[test]
fn receives_follow_the_rules_and_duplicates_are_applied_once() {
    let mut p = sending(2, 3, 3, 0, 0.0);
    let _ = outputs(&mut p);
    // P1's second message arrives first: held; then the first; then both again.
    let m1 = msg(1, 2, 1, 3, vec![3, 0, 0]);
    let m2 = msg(1, 2, 2, 9, vec![5, 1, 2]);
    assert_eq!(p.handle(1, &m2), Ok(()));
    assert_eq!(p.handle(2, &m1), Ok(()));
    assert_eq!(p.handle(3, &m1), Ok(()));
    assert_eq!(p.handle(4, &m2), Ok(()));
    assert_eq!(p.handle(5, &done(1, 2, 3)), Ok(()));
    assert_eq!(p.handle(6, &done(3, 2, 1)), Ok(()));
    let (msgs, fin) = outputs(&mut p);
    let r = fin.expect("finished");
    assert_eq!(r.outcome, Outcome::Completed);
    let got: Vec<(EventKind, u64, Vec<u64>)> = r
        .events
        .iter()
        .map(|e| (e.kind, e.lamport, e.vc.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Internal, 1, vec![0, 1, 0]),
            (EventKind::Internal, 2, vec![0, 2, 0]),
            (EventKind::Internal, 3, vec![0, 3, 0]),
            (EventKind::Receive { from: 1, seq: 1 }, 4, vec![3, 4, 0]),
            (EventKind::Receive { from: 1, seq: 2 }, 10, vec![5, 5, 2]),
        ]
    );
    assert_eq!(r.counts.received, 2);
    assert_eq!(r.rejected, 0);
    // The report also goes to the results queue, and reads back.
    let (route, m) = msgs.last().expect("report published");
    assert_eq!(*route, Route::Results);
    assert_eq!(
        super::super::protocol::decode_report(&m.encode().expect("encodes"), "t"),
        Ok(r)
    );
}

#[test]
fn bad_deliveries_are_refused_counted_and_the_run_goes_on() {
    let mut p = process(testing::config(2, 3, 1, 0));
    let _ = outputs(&mut p);
    let bad = [
        b"{oops".to_vec(),
        msg(1, 3, 1, 1, vec![1, 0, 0]), // misrouted
        msg(2, 2, 1, 1, vec![0, 1, 0]), // from itself
        msg(4, 2, 1, 1, vec![0, 0, 0]), // not a process
        msg(1, 2, 1, 1, vec![1, 0]),    // wrong vector length
        msg(1, 2, 0, 1, vec![1, 0, 0]), // seq 0
        msg(1, 2, 1, 9, vec![1, 7, 0]), // knows more of P2 than P2 does
        b"xxxx".to_vec(),               // junk
        bytes(Message::new(
            "other",
            1,
            Body::Done {
                to: 2,
                seq: 1,
                sent: 0,
            },
        )),
        bytes(Message::new(
            "t",
            1,
            Body::Done {
                to: 2,
                seq: 2,
                sent: 0,
            },
        )),
        msg(1, 2, 50_000, 1, vec![1, 0, 0]), // too far ahead
    ];
    for (i, b) in bad.iter().enumerate() {
        assert!(p.handle(i as u64, b).is_err(), "case {i}");
    }
    // Saturating clocks: a huge Lamport value cannot overflow.
    assert_eq!(p.handle(20, &msg(1, 2, 1, u64::MAX, vec![1, 0, 0])), Ok(()));
    assert_eq!(p.handle(21, &done(1, 2, 2)), Ok(()));
    // Nothing after a peer's done.
    assert!(p.handle(22, &msg(1, 2, 3, 1, vec![1, 0, 0])).is_err());
    assert_eq!(p.handle(23, &done(3, 2, 1)), Ok(()));
    let (_, fin) = outputs(&mut p);
    let r = fin.expect("finished");
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.rejected, bad.len() as u64 + 1);
    assert_eq!(r.events.last().map(|e| e.lamport), Some(u64::MAX));
}

#[test]
fn a_silent_peer_the_deadline_and_an_interrupt_end_it() {
    let mut cfg = testing::config(1, 3, 2, 0);
    cfg.peer_timeout_ms = 100;
    cfg.deadline = Some(500);
    let mut p = process(cfg.clone());
    let _ = outputs(&mut p);
    assert_eq!(p.handle(60, &done(2, 1, 1)), Ok(()));
    assert_eq!(p.next_timeout(), Some(100), "P3 silent since 0");
    p.handle_timeout(100);
    let (_, fin) = outputs(&mut p);
    assert_eq!(
        fin.map(|r| r.outcome),
        Some(Outcome::Silent { peers: vec![3] })
    );
    assert_eq!(p.next_timeout(), None);

    cfg.peer_timeout_ms = 10_000;
    let mut p = process(cfg.clone());
    p.handle_timeout(500);
    let (_, fin) = outputs(&mut p);
    assert_eq!(
        fin.map(|r| r.outcome),
        Some(Outcome::TimedOut {
            waiting: vec![2, 3]
        })
    );

    let mut p = process(cfg);
    p.interrupt(1, "ctrl-c".into());
    let (msgs, fin) = outputs(&mut p);
    assert_eq!(
        fin.map(|r| r.outcome),
        Some(Outcome::Interrupted {
            reason: "ctrl-c".into()
        })
    );
    assert_eq!(msgs.last().map(|(r, _)| *r), Some(Route::Results));
    assert_eq!(p.handle(2, &done(2, 1, 1)), Ok(()), "ignored once finished");
}

#[test]
fn paced_steps_follow_the_timer() {
    let mut p = sending(1, 2, 3, 10, 0.0);
    let (msgs, _) = outputs(&mut p);
    assert!(msgs.is_empty(), "one internal event at start, no done yet");
    let mut now = 0;
    while let Some(t) = p.next_timeout().filter(|t| *t < 1_000) {
        assert!(t > now && t <= now + 10, "{t} after {now}");
        now = t;
        p.handle_timeout(now);
    }
    let (msgs, _) = outputs(&mut p);
    assert_eq!(msgs.len(), 1, "the done to P2: {msgs:?}");
    assert_eq!(p.handle(now, &done(2, 1, 1)), Ok(()));
    let (_, fin) = outputs(&mut p);
    assert_eq!(fin.map(|r| r.counts.internal), Some(3));
}
