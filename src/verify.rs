//! Turns a [`RunRecord`] into a verdict: the proof that the workers agree.
//!
//! The checks are independent and each says what it found, so a failing run shows exactly
//! which promise broke. They compare every worker's own list with every other's and with
//! the master's grant log — never with the broker's delivery order.

use crate::master::{RunOutcome, RunRecord};
use crate::protocol::{Entry, WorkerId};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub verified: bool,
    pub checks: Vec<Check>,
}

impl Verdict {
    /// The process exit code this verdict calls for.
    pub fn exit_code(&self, record: &RunRecord) -> i32 {
        match (self.verified, record.evicted.is_empty()) {
            (false, _) => crate::exit::FAILED,
            (true, true) => crate::exit::VERIFIED,
            (true, false) => crate::exit::VERIFIED_WITH_EVICTIONS,
        }
    }
}

fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        detail: detail.into(),
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

    checks.push(match &r.outcome {
        RunOutcome::Completed => check("run completed", true, "end announced"),
        RunOutcome::Aborted { reason } => check("run completed", false, reason.clone()),
    });

    let missing: Vec<_> = survivors
        .iter()
        .filter(|w| !lists.contains_key(w))
        .collect();
    checks.push(check(
        "every surviving worker reported",
        missing.is_empty() && !survivors.is_empty(),
        if missing.is_empty() {
            format!(
                "{} lists from {} surviving workers",
                lists.len(),
                survivors.len()
            )
        } else {
            format!("no list from workers {missing:?}")
        },
    ));

    let expected_len = survivors.len() * r.rounds as usize
        + committed
            .iter()
            .filter(|e| r.evicted.contains(&e.worker))
            .count();
    let wrong_len: Vec<_> = lists
        .iter()
        .filter(|(_, l)| l.len() != expected_len)
        .map(|(w, l)| (*w, l.len()))
        .collect();
    checks.push(check(
        "each list has the expected length",
        wrong_len.is_empty() && committed.len() == expected_len,
        if wrong_len.is_empty() {
            format!("{expected_len} entries each")
        } else {
            format!("expected {expected_len}; (worker, length): {wrong_len:?}")
        },
    ));

    let first = lists.values().next();
    let differing: Vec<_> = lists
        .iter()
        .filter(|(_, l)| Some(*l) != first)
        .map(|(w, _)| *w)
        .collect();
    checks.push(check(
        "all lists identical",
        differing.is_empty(),
        if differing.is_empty() {
            "every list equals every other".to_string()
        } else {
            format!("workers {differing:?} differ from the first list")
        },
    ));

    let mut writes: BTreeMap<WorkerId, u32> = BTreeMap::new();
    for e in &committed {
        *writes.entry(e.worker).or_default() += 1;
    }
    let bad_writes: Vec<_> = r
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
        .collect();
    let strangers = writes.keys().filter(|w| !r.members.contains(w)).count();
    checks.push(check(
        "each worker wrote exactly once per round",
        bad_writes.is_empty() && strangers == 0,
        if bad_writes.is_empty() && strangers == 0 {
            format!("{} writers x {} round(s)", survivors.len(), r.rounds)
        } else {
            format!("(worker, writes): {bad_writes:?}; entries from non-members: {strangers}")
        },
    ));

    let out_of_range = lists
        .values()
        .flat_map(|l| l.iter())
        .chain(committed.iter())
        .filter(|e| !(r.min..=r.max).contains(&e.value))
        .count();
    checks.push(check(
        "every value in range",
        out_of_range == 0,
        format!("{out_of_range} values outside {}..={}", r.min, r.max),
    ));

    let off_order: Vec<_> = lists
        .iter()
        .filter(|(_, l)| l.as_slice() != committed.as_slice())
        .map(|(w, _)| *w)
        .collect();
    let increasing = committed.windows(2).all(|p| p[0].seq < p[1].seq);
    checks.push(check(
        "lists follow the grant order",
        off_order.is_empty() && increasing,
        if off_order.is_empty() {
            format!("{} committed grants, in sequence order", committed.len())
        } else {
            format!("workers {off_order:?} disagree with the master's grant log")
        },
    ));

    let voided: Vec<_> = r
        .grants
        .iter()
        .filter(|g| matches!(g.outcome, crate::master::GrantOutcome::Evicted { .. }))
        .map(|g| g.seq)
        .collect();
    let leaked = lists
        .values()
        .flat_map(|l| l.iter())
        .filter(|e| voided.contains(&e.seq))
        .count();
    checks.push(check(
        "nothing accepted from voided grants",
        leaked == 0,
        format!(
            "{} voided grant(s), {leaked} of their appends in lists",
            voided.len()
        ),
    ));

    Verdict {
        verified: checks.iter().all(|c| c.passed),
        checks,
    }
}
