//! Each check fails without its property: a good run's reports, corrupted one way at a
//! time, fail exactly the check that guards it.

use super::*;
use crate::algorithms::mutex::{Process, ProcessConfig};
use crate::contract::Route;
use crate::sim::{self, SimConfig};
use crate::verdict::Status;

const N: u32 = 3;
const K: u32 = 2;

fn good() -> Vec<Report> {
    let machines = (1..=N)
        .map(|i| {
            (
                i,
                Process::new(ProcessConfig::new("c", i, N, K), 0).expect("valid"),
            )
        })
        .collect();
    let route = |_, r| match r {
        Route::Peer(p) => vec![p],
        _ => vec![],
    };
    let run = sim::run(machines, route, &SimConfig::calm(), 5);
    run.finished
        .into_values()
        .map(|r| r.expect("finished"))
        .collect()
}

fn status(reports: &[Report], name: &str) -> Status {
    verify(reports, N, K)
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
        .expect("check exists")
}

#[test]
fn a_good_run_passes_every_check() {
    let v = verify(&good(), N, K);
    assert!(v.verified, "{}", v.lines());
    assert_eq!(v.checks.len(), 5);
}

#[test]
fn overlapping_sections_fail_safety() {
    let mut r = good();
    // Two neighbours in happened-before order, of two processes: B forgets A's exit, so
    // its entry no longer comes after it.
    let execs = executions(&r);
    let w = execs
        .windows(2)
        .find(|w| w[0].0 != w[1].0)
        .expect("two processes take turns");
    let (a, a_exit, b, b_ix) = (w[0].0, w[0].1.exit_vc.clone(), w[1].0, w[1].1.index);
    let rb = r.iter_mut().find(|x| x.id == b).expect("report");
    let e = &mut rb.executions[b_ix as usize - 1];
    e.enter_vc[a as usize - 1] = a_exit[a as usize - 1] - 1;
    assert_eq!(status(&r, SAFETY), Status::Failed);
    assert_eq!(status(&r, MESSAGES), Status::Passed);
}

#[test]
fn a_missing_entry_fails_liveness() {
    let mut r = good();
    r[2].executions.pop();
    assert_eq!(status(&r, LIVENESS), Status::Failed);
    let mut r = good();
    r.pop();
    assert_eq!(status(&r, LIVENESS), Status::Failed);
}

#[test]
fn a_swapped_order_fails_order() {
    let mut r = good();
    let execs = executions(&r);
    let (first, second) = (
        (execs[0].0, execs[0].1.index),
        (execs[1].0, execs[1].1.index),
    );
    fn req(r: &mut [Report], (id, ix): (u32, u32)) -> &mut (u64, u32) {
        let rep = r.iter_mut().find(|x| x.id == id).expect("report");
        &mut rep.executions[ix as usize - 1].request
    }
    let a = *req(&mut r, first);
    let b = *req(&mut r, second);
    // The first entered now carries a later timestamp than the second (same id).
    *req(&mut r, first) = (b.0 + 100, a.1);
    assert_eq!(status(&r, ORDER), Status::Failed);
    assert_eq!(status(&r, SAFETY), Status::Passed);
}

#[test]
fn an_extra_or_duplicated_message_fails_messages() {
    let mut r = good();
    let dup = r[0].sent[0].clone();
    r[0].sent.push(dup);
    assert_eq!(status(&r, MESSAGES), Status::Failed);
    let mut r = good();
    let dup = r[1].received[0].clone();
    r[1].received.push(dup);
    assert_eq!(status(&r, MESSAGES), Status::Failed);
    let mut r = good();
    r[2].received.remove(0);
    assert_eq!(status(&r, MESSAGES), Status::Failed);
}

#[test]
fn a_receive_clock_not_above_its_send_fails_clocks() {
    let mut r = good();
    let e = &mut r[0].received[0];
    e.lamport = 0;
    assert_eq!(status(&r, CLOCKS), Status::Failed);
    let mut r = good();
    let e = &mut r[1].received[0];
    e.vc = vec![0; N as usize];
    assert_eq!(status(&r, CLOCKS), Status::Failed);
}

/// Every message of `r` numbered `(from, to, seq)` like the first logged `kind`, at both
/// ends, relabelled `to`.
fn relabel(r: &mut [Report], kind: Kind, to: Kind) {
    let first = r
        .iter()
        .flat_map(|x| &x.sent)
        .find(|e| e.kind == kind)
        .map(key)
        .expect("one of this kind");
    for x in r.iter_mut() {
        for e in x.sent.iter_mut().chain(x.received.iter_mut()) {
            if key(e) == first {
                e.kind = to;
            }
        }
    }
}

#[test]
fn a_done_is_neither_a_request_nor_a_reply() {
    let r = good();
    assert!(
        r.iter().all(|x| x
            .sent
            .iter()
            .chain(&x.received)
            .any(|e| e.kind == Kind::Done)),
        "the reports log the dones"
    );
    // Both checks count the 2(N-1) × N × K = 24 requests and replies, not the 6 dones.
    let v = verify(&r, N, K);
    for name in [MESSAGES, CLOCKS] {
        let c = v.checks.iter().find(|c| c.name == name).expect("check");
        assert!(c.detail.starts_with("24 messages"), "{}", c.detail);
    }
    // A reply logged as a done is missing from the count; a done logged as a reply is
    // one too many.
    let mut r = good();
    relabel(&mut r, Kind::Reply, Kind::Done);
    assert_eq!(status(&r, MESSAGES), Status::Failed);
    let mut r = good();
    relabel(&mut r, Kind::Done, Kind::Reply);
    assert_eq!(status(&r, MESSAGES), Status::Failed);
}

#[test]
fn the_print_shows_events_and_a_summary() {
    let r = good();
    let text = crate::algorithms::mutex::print::render(&r, N, K);
    assert!(text.contains("P2 enter #1  L="), "{text}");
    assert!(text.contains("send request -> P"), "{text}");
    assert!(text.contains("P2 send done    -> P1  seq="), "{text}");
    assert!(text.contains("P1 recv done    <- P2  seq="), "{text}");
    assert!(
        text.contains("P1 ended Completed: 2 entries, 4 requests and 4 replies sent"),
        "{text}"
    );
    assert!(text.ends_with(
        "VERIFIED: 3 processes, 6 entries, safety by vector clocks, 2(N-1)=4 messages per entry\n"
    ));
}
