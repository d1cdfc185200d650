//! The checker: five named checks, derived from the processes' reports alone (never from a
//! driver's bookkeeping, never from wall-clock time).
//!
//! Safety rests on the vector clocks: two critical sections that never overlapped are
//! ordered by happened-before, so one's exit vector is strictly below the other's entry
//! vector. Concurrent vectors would mean two processes could have been inside at once.

use super::report::{Event, Execution, Kind, Outcome, Report, requests_and_replies};
use crate::contract::PeerId;
use crate::verdict::checks::missing;
use crate::verdict::{Check, Verdict, check, ids, not_run};
use std::collections::BTreeMap;

pub const SAFETY: &str = "safety (vector clocks)";
pub const LIVENESS: &str = "liveness";
pub const ORDER: &str = "order (Lamport, id)";
pub const MESSAGES: &str = "messages 2(N-1) per entry";
pub const CLOCKS: &str = "clock conditions";

/// `a ≤ b` componentwise (and of one length).
pub fn vc_le(a: &[u64], b: &[u64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x <= y)
}

/// `a < b`: `a ≤ b` and `a ≠ b` — `a` happened before `b`.
pub fn vc_lt(a: &[u64], b: &[u64]) -> bool {
    vc_le(a, b) && a != b
}

/// Every critical section of the run with its process, in happened-before order if there
/// is one: sorted by the sum of the entry vector, a linear extension of happened-before.
fn executions(reports: &[Report]) -> Vec<(PeerId, &Execution)> {
    let mut all: Vec<(PeerId, &Execution)> = reports
        .iter()
        .flat_map(|r| r.executions.iter().map(move |e| (r.id, e)))
        .collect();
    all.sort_by_key(|(id, e)| (e.enter_vc.iter().sum::<u64>(), *id, e.index));
    all
}

/// Verifies a run of `processes` processes entering `entries` times each.
pub fn verify(reports: &[Report], processes: u32, entries: u32) -> Verdict {
    let execs = executions(reports);
    Verdict::new(vec![
        safety(&execs, processes),
        liveness(reports, processes, entries),
        order(&execs),
        messages(reports, processes),
        clocks(reports),
    ])
}

fn name(id: PeerId, e: &Execution) -> String {
    format!("P{id} #{}", e.index)
}

/// (1) Every two sections are ordered by happened-before. Checking neighbours in the
/// sorted order suffices: `exit(a) < enter(b) ≤ exit(b) < enter(c)` chains.
fn safety(execs: &[(PeerId, &Execution)], n: u32) -> Check {
    if execs.is_empty() {
        return not_run(SAFETY, "no critical section was reported");
    }
    let n = n as usize;
    for (id, e) in execs {
        if e.enter_vc.len() != n || !vc_le(&e.enter_vc, &e.exit_vc) {
            return check(
                SAFETY,
                false,
                format!("{}: entry and exit vectors are not ordered", name(*id, e)),
            );
        }
    }
    for w in execs.windows(2) {
        let ((a_id, a), (b_id, b)) = (w[0], w[1]);
        if !vc_lt(&a.exit_vc, &b.enter_vc) {
            return check(
                SAFETY,
                false,
                format!(
                    "{} (exit {:?}) and {} (enter {:?}) are concurrent: they may have overlapped",
                    name(a_id, a),
                    a.exit_vc,
                    name(b_id, b),
                    b.enter_vc
                ),
            );
        }
    }
    check(
        SAFETY,
        true,
        format!(
            "{} sections totally ordered by happened-before",
            execs.len()
        ),
    )
}

/// (2) Every process reported once, completed, and entered exactly K times.
fn liveness(reports: &[Report], n: u32, k: u32) -> Check {
    let mut by_id: BTreeMap<PeerId, Vec<&Report>> = BTreeMap::new();
    for r in reports {
        by_id.entry(r.id).or_default().push(r);
    }
    let missing = missing(1..=n, |i| by_id.contains_key(i));
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("no report from {}", ids(&missing)));
    }
    let strangers: Vec<PeerId> = by_id
        .keys()
        .copied()
        .filter(|i| !(1..=n).contains(i))
        .collect();
    if !strangers.is_empty() {
        problems.push(format!("reports from non-processes {}", ids(&strangers)));
    }
    for (id, rs) in &by_id {
        if rs.len() > 1 {
            problems.push(format!("P{id} reported {} times", rs.len()));
        }
        let r = rs[0];
        if r.outcome != Outcome::Completed {
            problems.push(format!("P{id} ended {:?}", r.outcome));
        }
        let indices: Vec<u32> = r.executions.iter().map(|e| e.index).collect();
        if indices != (1..=k).collect::<Vec<_>>() {
            problems.push(format!("P{id} entered {} of {k} times", indices.len()));
        }
    }
    let entered: usize = reports.iter().map(|r| r.executions.len()).sum();
    match problems.first() {
        None => check(
            LIVENESS,
            true,
            format!("{n} processes completed, {entered} of {} entries", n * k),
        ),
        Some(first) => check(
            LIVENESS,
            false,
            format!("{first} ({} problems in all)", problems.len()),
        ),
    }
}

/// (3) Sections were entered in the order of their requests' `(lamport, id)`.
fn order(execs: &[(PeerId, &Execution)]) -> Check {
    if execs.is_empty() {
        return not_run(ORDER, "no critical section was reported");
    }
    for (id, e) in execs {
        if e.request.1 != *id {
            return check(
                ORDER,
                false,
                format!("{}: a request of P{}", name(*id, e), e.request.1),
            );
        }
    }
    for w in execs.windows(2) {
        let ((a_id, a), (b_id, b)) = (w[0], w[1]);
        if a.request >= b.request {
            return check(
                ORDER,
                false,
                format!(
                    "{} with request {:?} entered before {} with request {:?}",
                    name(a_id, a),
                    a.request,
                    name(b_id, b),
                    b.request
                ),
            );
        }
    }
    check(
        ORDER,
        true,
        format!("{} entries in request-timestamp order", execs.len()),
    )
}

type Key = (PeerId, PeerId, u64);

fn key(e: &Event) -> Key {
    (e.from, e.to, e.seq)
}

/// (4) 2(N−1) requests and replies per entry, each sent once and received exactly once.
/// The logged `done`s are left out, on both sides: they are neither.
fn messages(reports: &[Report], n: u32) -> Check {
    let entries: u64 = reports.iter().map(|r| r.executions.len() as u64).sum();
    if entries == 0 {
        return not_run(MESSAGES, "no entry to count messages for");
    }
    let per_entry = 2 * (n as u64 - 1);
    let fail = |why: String| check(MESSAGES, false, why);
    for r in reports {
        let requests = r.sent.iter().filter(|e| e.kind == Kind::Request).count() as u64;
        let want = (n as u64 - 1) * r.executions.len() as u64;
        if requests != want {
            return fail(format!(
                "P{} sent {requests} requests for {} entries (expected {want})",
                r.id,
                r.executions.len()
            ));
        }
        if let Some(e) = requests_and_replies(&r.sent)
            .chain(requests_and_replies(&r.received))
            .find(|e| (e.from == r.id) == (e.to == r.id) || (e.from != r.id && e.to != r.id))
        {
            return fail(format!("P{} logged a message {} → {}", r.id, e.from, e.to));
        }
    }
    let mut sent: BTreeMap<Key, (Kind, u32)> = BTreeMap::new();
    for e in reports
        .iter()
        .flat_map(|r| requests_and_replies(&r.sent).filter(move |e| e.from == r.id))
    {
        sent.entry(key(e)).or_insert((e.kind, 0)).1 += 1;
    }
    let total: u64 = reports
        .iter()
        .map(|r| requests_and_replies(&r.sent).count() as u64)
        .sum();
    if total != per_entry * entries {
        return fail(format!(
            "{total} requests and replies for {entries} entries (expected {per_entry} each)"
        ));
    }
    if let Some(((f, t, s), _)) = sent.iter().find(|(_, (_, c))| *c > 1) {
        return fail(format!("message {f} → {t} #{s} sent more than once"));
    }
    let mut received: BTreeMap<Key, u32> = BTreeMap::new();
    for r in reports {
        for e in requests_and_replies(&r.received).filter(|e| e.to == r.id) {
            if sent.get(&key(e)).is_none_or(|(kind, _)| *kind != e.kind) {
                return fail(format!(
                    "P{} received {} {} → {} #{} that nobody sent",
                    r.id,
                    e.kind.name(),
                    e.from,
                    e.to,
                    e.seq
                ));
            }
            *received.entry(key(e)).or_insert(0) += 1;
        }
    }
    for k in sent.keys() {
        match received.get(k).copied().unwrap_or(0) {
            1 => {}
            c => {
                return fail(format!(
                    "message {} → {} #{} received {c} times",
                    k.0, k.1, k.2
                ));
            }
        }
    }
    check(
        MESSAGES,
        true,
        format!(
            "{total} messages for {entries} entries: {per_entry} each, every one received exactly once"
        ),
    )
}

/// (5) On every message: Lamport(send) < Lamport(receive) and VC(send) < VC(receive),
/// send and receive matched by (from, to, seq) across the two processes' logs. Requests
/// and replies only, as check 4 counts them: the logged `done`s are left out.
fn clocks(reports: &[Report]) -> Check {
    let sent: BTreeMap<Key, &Event> = reports
        .iter()
        .flat_map(|r| requests_and_replies(&r.sent))
        .map(|e| (key(e), e))
        .collect();
    let mut matched = 0;
    for r in reports {
        for recv in requests_and_replies(&r.received) {
            let Some(send) = sent.get(&key(recv)) else {
                continue; // an unmatched receive is the message check's finding
            };
            matched += 1;
            if send.lamport >= recv.lamport || !vc_lt(&send.vc, &recv.vc) {
                return check(
                    CLOCKS,
                    false,
                    format!(
                        "{} {} → {} #{}: sent at L={} {:?}, received at L={} {:?}",
                        recv.kind.name(),
                        recv.from,
                        recv.to,
                        recv.seq,
                        send.lamport,
                        send.vc,
                        recv.lamport,
                        recv.vc
                    ),
                );
            }
        }
    }
    if matched == 0 {
        return not_run(CLOCKS, "no message with both ends logged");
    }
    check(
        CLOCKS,
        true,
        format!("{matched} messages: send < receive in Lamport and vector time"),
    )
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
