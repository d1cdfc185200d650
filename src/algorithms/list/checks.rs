//! Turns a [`RunRecord`] into a verdict: the proof that the workers agree.
//!
//! The checks are independent and each says what it found, so a failing run shows exactly
//! which promise broke. They compare every worker's own list with every other's and with
//! the master's grant log — never with the broker's delivery order.

use super::master::{RunOutcome, RunRecord};
use super::protocol::{Entry, WorkerId};
use std::collections::BTreeMap;

pub use crate::verdict::{Check, Status, Verdict, ids};
use crate::verdict::{check, not_run};

/// The exit code a list run's verdict calls for: 0 verified, 4 verified for the
/// survivors with some workers evicted or lost, 1 not verified.
pub fn exit_code(v: &Verdict, record: &RunRecord) -> i32 {
    match (
        v.verified,
        record.evicted.is_empty() && record.lost.is_empty(),
    ) {
        (false, _) => crate::exit::FAILED,
        (true, true) => crate::exit::VERIFIED,
        (true, false) => crate::exit::VERIFIED_WITH_EVICTIONS,
    }
}

pub fn verify(r: &RunRecord) -> Verdict {
    let committed = r.committed();
    let survivors = r.survivors();
    let lists: BTreeMap<WorkerId, &Vec<Entry>> = r
        .results
        .iter()
        .map(|(w, rep)| (*w, &rep.entries))
        .collect();
    let mut checks = Vec::new();
    // Checks of the lists compare what was reported: with none, there is nothing to pass.
    let no_lists = lists.is_empty().then_some("no worker reported a list");

    checks.push(match &r.outcome {
        RunOutcome::Completed => check("run completed", true, "end announced"),
        RunOutcome::Aborted { reason } => check("run completed", false, reason.clone()),
    });

    let missing: Vec<WorkerId> = survivors
        .iter()
        .copied()
        .filter(|w| !lists.contains_key(w))
        .collect();
    let lost = if r.lost.is_empty() {
        String::new()
    } else {
        format!(
            "; {} lost after writing (no result by the deadline): {}",
            r.lost.len(),
            ids(&r.lost)
        )
    };
    checks.push(if survivors.is_empty() && lists.is_empty() {
        not_run("every surviving worker reported", "no surviving worker")
    } else {
        check(
            "every surviving worker reported",
            missing.is_empty(),
            if missing.is_empty() {
                format!(
                    "{} lists from {} surviving workers{lost}",
                    lists.len(),
                    survivors.len()
                )
            } else {
                format!(
                    "no list from {} workers: {}{lost}",
                    missing.len(),
                    ids(&missing)
                )
            },
        )
    });

    // Every member that was not evicted wrote `rounds` times (a lost worker too: it went
    // away after writing); an evicted worker's entries committed before its eviction stay.
    let writers = r.members.iter().filter(|w| !r.evicted.contains(w)).count();
    let expected_len = writers * r.rounds as usize
        + committed
            .iter()
            .filter(|e| r.evicted.contains(&e.worker))
            .count();
    let wrong_len: Vec<WorkerId> = lists
        .iter()
        .filter(|(_, l)| l.len() != expected_len)
        .map(|(w, _)| *w)
        .collect();
    checks.push(match no_lists {
        Some(why) => not_run("each list has the expected length", why),
        None => check(
            "each list has the expected length",
            wrong_len.is_empty() && committed.len() == expected_len,
            if wrong_len.is_empty() && committed.len() == expected_len {
                format!("{expected_len} entries each")
            } else {
                format!(
                    "expected {expected_len}, the master committed {}; wrong length: {}",
                    committed.len(),
                    ids(&wrong_len)
                )
            },
        ),
    });

    let first = lists.values().next();
    let differing: Vec<WorkerId> = lists
        .iter()
        .filter(|(_, l)| Some(*l) != first)
        .map(|(w, _)| *w)
        .collect();
    checks.push(match no_lists {
        Some(why) => not_run("all lists identical", why),
        None => check(
            "all lists identical",
            differing.is_empty(),
            workers_off(
                &differing,
                format!("{} lists, every one equal to every other", lists.len()),
                "differ from the first list",
            ),
        ),
    });

    let mut writes: BTreeMap<WorkerId, u32> = BTreeMap::new();
    for e in &committed {
        *writes.entry(e.worker).or_default() += 1;
    }
    let bad_writes: Vec<WorkerId> = r
        .members
        .iter()
        .map(|w| (*w, writes.get(w).copied().unwrap_or(0)))
        .filter(|(w, n)| {
            if r.evicted.contains(w) {
                *n >= r.rounds
            } else {
                *n != r.rounds
            }
        })
        .map(|(w, _)| w)
        .collect();
    let strangers = writes.keys().filter(|w| !r.members.contains(w)).count();
    checks.push(if committed.is_empty() && r.ended_at_ms.is_none() {
        not_run(
            "each worker wrote exactly once per round",
            "the run ended before its turns",
        )
    } else {
        check(
            "each worker wrote exactly once per round",
            bad_writes.is_empty() && strangers == 0,
            if bad_writes.is_empty() && strangers == 0 {
                format!("{writers} writers x {} round(s)", r.rounds)
            } else {
                format!(
                    "{} workers wrote a wrong number of times: {}; entries from non-members: {strangers}",
                    bad_writes.len(),
                    ids(&bad_writes)
                )
            },
        )
    });

    let out_of_range = lists
        .values()
        .flat_map(|l| l.iter())
        .chain(committed.iter())
        .filter(|e| !(r.min..=r.max).contains(&e.value))
        .count();
    checks.push(if committed.is_empty() && lists.is_empty() {
        not_run("every value in range", "no values")
    } else {
        check(
            "every value in range",
            out_of_range == 0,
            format!("{out_of_range} values outside {}..={}", r.min, r.max),
        )
    });

    let off_order: Vec<WorkerId> = lists
        .iter()
        .filter(|(_, l)| l.as_slice() != committed.as_slice())
        .map(|(w, _)| *w)
        .collect();
    let increasing = committed.windows(2).all(|p| p[0].seq < p[1].seq);
    checks.push(match no_lists {
        Some(why) => not_run("lists follow the grant order", why),
        None => check(
            "lists follow the grant order",
            off_order.is_empty() && increasing,
            workers_off(
                &off_order,
                format!("{} committed grants, in sequence order", committed.len()),
                "disagree with the master's grant log",
            ),
        ),
    });

    let voided: Vec<_> = r
        .grants
        .iter()
        .filter(|g| matches!(g.outcome, super::master::GrantOutcome::Evicted { .. }))
        .map(|g| g.seq)
        .collect();
    let leaked = lists
        .values()
        .flat_map(|l| l.iter())
        .filter(|e| voided.contains(&e.seq))
        .count();
    checks.push(match no_lists {
        Some(why) => not_run("nothing accepted from voided grants", why),
        None => check(
            "nothing accepted from voided grants",
            leaked == 0,
            format!(
                "{} voided grant(s), {leaked} of their appends in lists",
                voided.len()
            ),
        ),
    });

    Verdict::new(checks)
}

/// The detail of a check that every worker's list agrees: `ok` when no worker is `off`,
/// else how many are and which, `what` saying how they are off.
fn workers_off(off: &[WorkerId], ok: String, what: &str) -> String {
    if off.is_empty() {
        ok
    } else {
        format!("{} workers {what}: {}", off.len(), ids(off))
    }
}
