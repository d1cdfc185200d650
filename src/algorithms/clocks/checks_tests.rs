//! A good run verifies; each corruption of its reports fails the one check it should,
//! with a counter-example that names the events.

use super::*;
use crate::algorithms::clocks::report::{Event, EventKind};
use crate::algorithms::clocks::testing;
use crate::verdict::Status;

const N: u32 = 3;
const E: u32 = 5;

/// A run with messages and chains across processes (every step sends).
fn good() -> Vec<Report> {
    let cfgs = (1..=N)
        .map(|id| {
            let mut c = testing::config(id, N, E, 5);
            c.send_probability = 1.0;
            c
        })
        .collect();
    let reports = testing::run(cfgs, 7);
    assert_eq!(reports.len(), N as usize);
    reports
}

fn status(v: &Verdict, name: &str) -> Status {
    v.checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
        .unwrap_or_else(|| panic!("no check {name}"))
}

fn detail<'a>(v: &'a Verdict, name: &str) -> &'a str {
    v.checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.detail.as_str())
        .unwrap_or_default()
}

/// Only `failing` failed (and the checks after a failed precondition did not run).
fn only_fails(v: &Verdict, failing: &str) {
    assert!(!v.verified, "{}", v.lines());
    assert_eq!(status(v, failing), Status::Failed, "{}", v.lines());
    let others: Vec<&str> = v
        .checks
        .iter()
        .filter(|c| c.status == Status::Failed && c.name != failing)
        .map(|c| c.name)
        .collect();
    assert!(others.is_empty(), "also failed: {others:?}\n{}", v.lines());
}

/// Appends an event to process `p`'s report, keeping indices and counts consistent.
fn push(reports: &mut [Report], p: PeerId, kind: EventKind, lamport: u64, vc: Vec<u64>) {
    let r = &mut reports[p as usize - 1];
    r.events.push(Event {
        index: r.events.len() as u32 + 1,
        kind,
        lamport,
        vc,
    });
    match kind {
        EventKind::Internal => r.counts.internal += 1,
        EventKind::Send { .. } => r.counts.sent += 1,
        EventKind::Receive { .. } => r.counts.received += 1,
    }
}

#[test]
fn a_good_run_verifies_and_duplicate_reports_count_once() {
    let mut reports = good();
    let v = verify(&reports, N, E);
    assert!(v.verified, "{}", v.lines());
    assert!(detail(&v, "vector_clocks").contains("ordered pairs"));
    reports.push(reports[0].clone());
    assert!(verify(&reports, N, E).verified);
}

#[test]
fn many_local_runs_verify() {
    for seed in 0..300 {
        let n = 2 + (seed % 4) as u32;
        let e = 1 + (seed % 5) as u32;
        let reports = testing::good(n, e, seed);
        let v = verify(&reports, n, e);
        assert!(v.verified, "seed {seed}: {}", v.lines());
    }
}

#[test]
fn a_changed_vector_entry_fails_vector_clocks() {
    let mut reports = good();
    // P1's first event claims to know 1000 events of P2: it is then not before P1's own
    // second event by its clock, though it is by process order.
    reports[0].events[0].vc[1] = 1000;
    let v = verify(&reports, N, E);
    only_fails(&v, "vector_clocks");
    let d = detail(&v, "vector_clocks");
    assert!(d.contains("P1 e1 (internal, L=1, VC=[1,1000,0])"), "{d}");
}

#[test]
fn a_lowered_lamport_value_fails_lamport_clocks() {
    let mut reports = good();
    let e = &mut reports[1].events[2];
    e.lamport = 0;
    let v = verify(&reports, N, E);
    only_fails(&v, "lamport_clocks");
    let d = detail(&v, "lamport_clocks");
    assert!(d.contains("→ P2 e3") && d.contains("L=0"), "{d}");
}

#[test]
fn a_receive_without_its_send_fails_messages() {
    let mut reports = good();
    let vc = reports[1]
        .events
        .last()
        .map(|e| e.vc.clone())
        .unwrap_or_default();
    push(
        &mut reports,
        2,
        EventKind::Receive { from: 3, seq: 99 },
        1000,
        vc,
    );
    let v = verify(&reports, N, E);
    assert_eq!(status(&v, "messages"), Status::Failed, "{}", v.lines());
    assert!(detail(&v, "messages").contains("P3→P2 #99 received, never sent"));
    assert_eq!(status(&v, "vector_clocks"), Status::NotRun);
}

#[test]
fn a_duplicate_receive_fails_messages() {
    let mut reports = good();
    let (p, kind) = reports
        .iter()
        .find_map(|r| {
            r.events
                .iter()
                .find(|e| matches!(e.kind, EventKind::Receive { .. }))
                .map(|e| (r.id, e.kind))
        })
        .expect("a receive in the run");
    let last = reports[p as usize - 1]
        .events
        .last()
        .cloned()
        .expect("events");
    push(&mut reports, p, kind, last.lamport + 1, last.vc);
    let v = verify(&reports, N, E);
    assert_eq!(status(&v, "messages"), Status::Failed, "{}", v.lines());
    assert!(
        detail(&v, "messages").contains("received 2 times"),
        "{}",
        v.lines()
    );
}

#[test]
fn a_missing_report_or_a_wrong_event_count_fails_its_check() {
    let mut reports = good();
    reports.pop();
    let v = verify(&reports, N, E);
    assert_eq!(status(&v, "reports"), Status::Failed);
    assert!(detail(&v, "reports").contains("no report from 3"));

    let v = verify(&good(), N, E + 1);
    only_fails(&v, "internal_events");

    let mut reports = good();
    reports[0].outcome = Outcome::Silent { peers: vec![2] };
    only_fails(&verify(&reports, N, E), "reports");

    let mut reports = good();
    reports[2].events[0].vc.pop();
    let v = verify(&reports, N, E);
    assert_eq!(status(&v, "well_formed"), Status::Failed);
    assert_eq!(status(&v, "vector_clocks"), Status::NotRun);
}

#[test]
fn concurrent_events_with_ordered_clocks_are_caught() {
    let mut reports = good();
    // Make P3's first event claim to follow everything P1 did, without a message.
    let p1_last = reports[0].events.last().map(|e| e.vc[0]).unwrap_or(0);
    reports[2].events[0].vc[0] = p1_last + 1;
    let v = verify(&reports, N, E);
    assert_eq!(status(&v, "vector_clocks"), Status::Failed, "{}", v.lines());
    assert!(
        detail(&v, "vector_clocks").contains("are not e→f, yet VC(e)<VC(f)")
            || detail(&v, "vector_clocks").contains("but not VC(e)<VC(f)")
    );
}

#[test]
fn a_cycle_in_the_log_is_not_a_partial_order() {
    // Two processes that each receive the other's message before sending their own.
    let ev = |index, kind, lamport, vc: Vec<u64>| Event {
        index,
        kind,
        lamport,
        vc,
    };
    let report = |id, events: Vec<Event>| Report {
        id,
        outcome: Outcome::Completed,
        counts: crate::algorithms::clocks::report::Counts {
            internal: 1,
            sent: 1,
            received: 1,
        },
        rejected: 0,
        events,
    };
    let reports = vec![
        report(
            1,
            vec![
                ev(1, EventKind::Internal, 1, vec![1, 0]),
                ev(2, EventKind::Receive { from: 2, seq: 1 }, 4, vec![2, 2]),
                ev(3, EventKind::Send { to: 2, seq: 1 }, 5, vec![3, 2]),
            ],
        ),
        report(
            2,
            vec![
                ev(1, EventKind::Internal, 1, vec![0, 1]),
                ev(2, EventKind::Receive { from: 1, seq: 1 }, 6, vec![3, 2]),
                ev(3, EventKind::Send { to: 1, seq: 1 }, 7, vec![3, 3]),
            ],
        ),
    ];
    let v = verify(&reports, 2, 1);
    assert_eq!(
        status(&v, "happened_before"),
        Status::Failed,
        "{}",
        v.lines()
    );
    assert!(detail(&v, "happened_before").contains("cycle"));
}

/// A simulated run of `n` processes, `events` each, every step a send by even odds (so
/// that messages cross everywhere), and how many events it logged in all: the large
/// runs the proof is timed on.
fn busy_run(n: u32, events: u32, seed: u64) -> (Vec<Report>, usize) {
    let cfgs = (1..=n)
        .map(|id| {
            let mut c = testing::config(id, n, events, 3);
            c.send_probability = 0.5;
            c
        })
        .collect();
    let reports = testing::run(cfgs, seed);
    let m = reports.iter().map(|r| r.events.len()).sum();
    (reports, m)
}

/// Thousands of events from eight busy processes are proved (how fast is the bench's
/// business, not a test's: no timed assertion here).
#[test]
fn thousands_of_events_verify() {
    let (reports, m) = busy_run(8, 250, 3);
    assert!(m > 3000, "{m} events");
    let v = verify(&reports, 8, 250);
    assert!(v.verified, "{}", v.lines());
}

#[test]
fn too_many_events_are_not_proved_rather_than_exhausting_memory() {
    let mut reports = good();
    let last = reports[0].events.last().cloned().expect("events");
    for k in 0..MAX_EVENTS_PROVED as u64 {
        let mut vc = last.vc.clone();
        vc[0] += k + 1;
        push(
            &mut reports,
            1,
            EventKind::Internal,
            last.lamport + k + 1,
            vc,
        );
    }
    let v = verify(&reports, N, E);
    assert_eq!(status(&v, "vector_clocks"), Status::NotRun, "{}", v.lines());
    assert!(detail(&v, "vector_clocks").contains("covers at most"));
    assert!(!v.verified);
}

/// How long the proof takes near its limit: `cargo test --lib near_the_limit -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn near_the_limit() {
    let (reports, m) = busy_run(10, 900, 11);
    let t = std::time::Instant::now();
    let v = verify(&reports, 10, 900);
    eprintln!("{m} events proved in {:?}", t.elapsed());
    assert!(v.verified, "{}", v.lines());
}
