//! The proof of a `call --check` run, from the clients' own records alone (what they sent
//! and every reply that arrived, with the reply's own headers): every call made once with
//! a body of its own, none lost, none answered twice, each reply its own, answered well,
//! and by how many servers.

use super::protocol::Status;
use super::record::{CallRecord, ClientRecord};
use crate::verdict::{Check, Verdict, check, ids, not_run};
use std::collections::{BTreeMap, HashSet};

/// What the run was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub clients: u32,
    pub calls: u32,
    /// The servers are echo servers: each reply's body is its request's.
    pub echo: bool,
    /// How many servers must have answered (the in-process ones); `None`: at least one.
    pub servers: Option<usize>,
}

/// The checks, in the order the table shows them.
pub fn verify(records: &[ClientRecord], e: &Expect) -> Verdict {
    let calls: Vec<&CallRecord> = records.iter().flat_map(|r| r.calls.iter()).collect();
    if calls.is_empty() {
        return Verdict::new(vec![not_run("calls_made", "no call was made")]);
    }
    let mut checks = vec![
        calls_made(&calls, e),
        none_lost(&calls),
        none_duplicated(&calls, records),
        each_reply_its_own(&calls),
        answered_well(&calls, e.echo),
    ];
    checks.push(servers_shared(&calls, e.servers));
    Verdict::new(checks)
}

/// `client/seq`, how a call is named in a detail.
fn name(c: &CallRecord) -> String {
    format!("{}/{}", c.client, c.seq)
}

/// C × K calls, each (client, seq) once, each with a body no other call has (so that a
/// reply's request SHA-256 names exactly one call).
fn calls_made(calls: &[&CallRecord], e: &Expect) -> Check {
    let want = u64::from(e.clients) * u64::from(e.calls);
    let mut keys = HashSet::new();
    let mut bodies = HashSet::new();
    let twice: Vec<String> = calls
        .iter()
        .filter(|c| !keys.insert((c.client, c.seq)))
        .map(|c| name(c))
        .collect();
    let same_body: Vec<String> = calls
        .iter()
        .filter(|c| !bodies.insert(c.request_sha256.as_str()))
        .map(|c| name(c))
        .collect();
    let ok = calls.len() as u64 == want && twice.is_empty() && same_body.is_empty();
    let detail = if ok {
        format!(
            "{} clients × {} calls = {want} calls, each body unique",
            e.clients, e.calls
        )
    } else {
        format!(
            "{} calls recorded of {want}; made twice: [{}]; a body another call had: [{}]",
            calls.len(),
            ids(&twice),
            ids(&same_body)
        )
    };
    check("calls_made", ok, detail)
}

/// Every call got a reply in time: none came too late for its caller, who had given up.
fn none_lost(calls: &[&CallRecord]) -> Check {
    let lost: Vec<String> = calls
        .iter()
        .filter(|c| c.replies.is_empty() || c.gave_up)
        .map(|c| name(c))
        .collect();
    let detail = if lost.is_empty() {
        format!("all {} calls got a reply in time", calls.len())
    } else {
        format!("{} calls got no reply in time: {}", lost.len(), ids(&lost))
    };
    check("none_lost", lost.is_empty(), detail)
}

/// No call got two replies, and no reply came for a call nobody made.
fn none_duplicated(calls: &[&CallRecord], records: &[ClientRecord]) -> Check {
    let twice: Vec<String> = calls
        .iter()
        .filter(|c| c.replies.len() > 1)
        .map(|c| format!("{} ({}×)", name(c), c.replies.len()))
        .collect();
    let strays: usize = records.iter().map(|r| r.strays.len()).sum();
    let ok = twice.is_empty() && strays == 0;
    let detail = if ok {
        "every call got exactly one reply, and no reply came for a call not made".to_string()
    } else {
        format!(
            "answered more than once: [{}]; replies for no call of their client: {strays}",
            ids(&twice)
        )
    };
    check("none_duplicated", ok, detail)
}

/// Every reply carries its call's correlation id and names its call's request SHA-256.
fn each_reply_its_own(calls: &[&CallRecord]) -> Check {
    let wrong: Vec<String> = calls
        .iter()
        .filter(|c| {
            c.replies.iter().any(|r| {
                r.correlation_id != c.correlation_id || r.request_sha256 != c.request_sha256
            })
        })
        .map(|c| name(c))
        .collect();
    let replies: usize = calls.iter().map(|c| c.replies.len()).sum();
    let detail = if wrong.is_empty() {
        format!("all {replies} replies carry their call's correlation id and request SHA-256")
    } else {
        format!(
            "{} calls got a reply naming another request: {}",
            wrong.len(),
            ids(&wrong)
        )
    };
    check("each_reply_its_own", wrong.is_empty(), detail)
}

/// Every reply has status `ok`; from echo servers, its body is its request's.
fn answered_well(calls: &[&CallRecord], echo: bool) -> Check {
    let bad: Vec<String> = calls
        .iter()
        .filter(|c| {
            c.replies.iter().any(|r| {
                r.status != Status::Ok || (echo && r.body_sha256 != c.request_sha256)
            })
        })
        .map(|c| name(c))
        .collect();
    let what = if echo {
        "status ok, body equal to the request's"
    } else {
        "status ok"
    };
    let detail = if bad.is_empty() {
        format!("every reply: {what}")
    } else {
        format!("{} calls got a reply without {what}: {}", bad.len(), ids(&bad))
    };
    check("answered_well", bad.is_empty(), detail)
}

/// How many servers answered, and how many calls each: at least `want` of them.
fn servers_shared(calls: &[&CallRecord], want: Option<usize>) -> Check {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for r in calls.iter().flat_map(|c| c.replies.iter()) {
        *by.entry(r.server.as_str()).or_default() += 1;
    }
    if by.is_empty() {
        return not_run("servers_shared", "no reply arrived");
    }
    let need = want.unwrap_or(1);
    let shares: Vec<String> = by.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    check(
        "servers_shared",
        by.len() >= need,
        format!(
            "{} servers answered (at least {need} expected): {}",
            by.len(),
            shares.join(", ")
        ),
    )
}

/// How many replies each server sent, for the report.
pub fn shares(records: &[ClientRecord]) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for r in records
        .iter()
        .flat_map(|r| r.calls.iter())
        .flat_map(|c| c.replies.iter())
    {
        *by.entry(r.server.clone()).or_default() += 1;
    }
    by
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
