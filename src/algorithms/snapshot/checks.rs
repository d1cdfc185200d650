//! The checker: named checks derived from the nodes' reports (their event logs, in their
//! own order, and their recorded states) and the states the observer collected (what was
//! printed). Never from a driver's bookkeeping, never from wall-clock time.
//!
//! Chandy–Lamport's promise, per snapshot: the recorded states form a consistent cut
//! (nothing recorded as received that was not recorded as sent), each channel's state is
//! exactly what was in transit across the cut, and so the recorded money adds up to the
//! money in the system.

use super::master::MasterEnd;
use super::protocol::{Content, Money, SnapshotId};
use super::report::{Event, NodeReport, Outcome, Recorded};
use crate::contract::PeerId;
use crate::verdict::checks::{missing, unended};
use crate::verdict::{Check, Verdict, check, ids, not_run};
use std::collections::{BTreeMap, BTreeSet};

pub const REPORTS: &str = "every node reported";
pub const FIFO: &str = "channels FIFO, exactly once";
pub const BALANCES: &str = "balances replay, never negative";
pub const MONEY: &str = "money conserved at the end";
pub const MARKERS: &str = "markers: one per channel per snapshot";
pub const CUT: &str = "consistent cut";
pub const CHANNELS: &str = "channel states = in transit across the cut";
pub const CONSERVED: &str = "snapshot money = money in the system";
pub const COLLECTED: &str = "collected = recorded, complete";

/// What one node put on, or took off, one channel: (position in its events, seq, content).
type Traffic = Vec<(usize, u64, Content)>;

/// What each node did, indexed once for the checks (by snapshot, and by channel).
struct Node<'a> {
    r: &'a NodeReport,
    /// Position of `Recorded{s}` in the events, and its balance.
    recorded: BTreeMap<SnapshotId, (usize, Money)>,
    sent: BTreeMap<PeerId, Traffic>,
    took: BTreeMap<PeerId, Traffic>,
}

impl<'a> Node<'a> {
    fn new(r: &'a NodeReport) -> Self {
        let mut n = Node {
            r,
            recorded: BTreeMap::new(),
            sent: BTreeMap::new(),
            took: BTreeMap::new(),
        };
        for (i, e) in r.events.iter().enumerate() {
            match e {
                Event::Recorded { snapshot, balance } => {
                    n.recorded.insert(*snapshot, (i, *balance));
                }
                Event::Sent { to, seq, content } => {
                    n.sent.entry(*to).or_default().push((i, *seq, *content));
                }
                Event::Took { from, seq, content } => {
                    n.took.entry(*from).or_default().push((i, *seq, *content));
                }
                _ => {}
            }
        }
        n
    }

    /// (position, seq, content) of what it sent to `to`.
    fn sent_to(&self, to: PeerId) -> impl Iterator<Item = (usize, u64, Content)> + '_ {
        self.sent.get(&to).into_iter().flatten().copied()
    }

    /// (position, seq, content) of what it took from `from`.
    fn took_from(&self, from: PeerId) -> impl Iterator<Item = (usize, u64, Content)> + '_ {
        self.took.get(&from).into_iter().flatten().copied()
    }
}

/// Verifies a run of `nodes` from their reports and what the master saw collected.
/// `want`: how many snapshots the run must have completed (random mode); none for a
/// script, whose snapshots are checked as far as they completed (a script that takes no
/// snapshot is checked for the bank's promises alone).
pub fn verify(
    reports: &[NodeReport],
    nodes: &[PeerId],
    master: Option<&MasterEnd>,
    want: Option<u32>,
) -> Verdict {
    let by: BTreeMap<PeerId, Node> = reports.iter().map(|r| (r.id, Node::new(r))).collect();
    let mut checks = vec![reported(&by, nodes)];
    if by.is_empty() {
        for name in [
            FIFO, BALANCES, MONEY, MARKERS, CUT, CHANNELS, CONSERVED, COLLECTED,
        ] {
            checks.push(not_run(name, "no node reported"));
        }
        return Verdict::new(checks);
    }
    checks.extend([fifo(&by), balances(&by), money(&by)]);
    let snaps: BTreeSet<SnapshotId> = by
        .values()
        .flat_map(|n| n.recorded.keys().copied())
        .collect();
    let begun = master.is_some_and(|m| !m.snapshots.is_empty());
    if snaps.is_empty() && !begun && want.is_none() {
        // A script that takes no snapshot: the bank's own promises are all there is to
        // prove (the snapshot checks would have nothing to look at).
        return Verdict::new(checks);
    }
    if snaps.is_empty() {
        for name in [MARKERS, CUT, CHANNELS, CONSERVED] {
            checks.push(not_run(name, "no node recorded a snapshot"));
        }
    } else {
        checks.push(markers(&by, &snaps));
        checks.push(cut(&by, &snaps));
        checks.push(channels(&by, &snaps));
        checks.push(conserved(&by, &snaps, master, want));
    }
    checks.push(collected(&by, master, want));
    Verdict::new(checks)
}

fn reported(by: &BTreeMap<PeerId, Node>, nodes: &[PeerId]) -> Check {
    let missing = missing(nodes.iter().copied(), |k| by.contains_key(k));
    let unstopped = unended(by.values(), |n| n.r.outcome == Outcome::Stopped, |n| n.r.id);
    if !missing.is_empty() {
        return check(
            REPORTS,
            false,
            format!("no report from node(s) {}", ids(&missing)),
        );
    }
    if !unstopped.is_empty() {
        return check(
            REPORTS,
            false,
            format!(
                "node(s) {} did not end by the master's stop",
                ids(&unstopped)
            ),
        );
    }
    check(
        REPORTS,
        true,
        format!(
            "{}, each stopped by the master",
            crate::verdict::plural(nodes.len() as u64, "node", "nodes")
        ),
    )
}

/// Every channel: the receiver took seqs 1, 2, … in order, each exactly what the sender
/// sent with that seq; the sender numbered its messages 1, 2, ….
fn fifo(by: &BTreeMap<PeerId, Node>) -> Check {
    let mut taken = 0usize;
    let mut sent_total = 0usize;
    for a in by.values() {
        for b in by.values() {
            if a.r.id == b.r.id {
                continue;
            }
            let sent: Vec<(u64, Content)> = a.sent_to(b.r.id).map(|(_, s, c)| (s, c)).collect();
            sent_total += sent.len();
            if sent
                .iter()
                .enumerate()
                .any(|(i, (s, _))| *s != i as u64 + 1)
            {
                return check(
                    FIFO,
                    false,
                    format!(
                        "node {} numbered its channel to {} out of order",
                        a.r.id, b.r.id
                    ),
                );
            }
            for (i, (_, seq, content)) in b.took_from(a.r.id).enumerate() {
                taken += 1;
                if seq != i as u64 + 1 {
                    return check(
                        FIFO,
                        false,
                        format!(
                            "node {} took message {seq} of channel ({} -> {}) as its #{}",
                            b.r.id,
                            a.r.id,
                            b.r.id,
                            i + 1
                        ),
                    );
                }
                if sent.get(i).map(|(_, c)| *c) != Some(content) {
                    return check(
                        FIFO,
                        false,
                        format!(
                            "node {} took {content:?} as message {seq} of channel ({} -> {}), which node {} did not send",
                            b.r.id, a.r.id, b.r.id, a.r.id
                        ),
                    );
                }
            }
        }
    }
    if taken == 0 && sent_total == 0 {
        return not_run(FIFO, "nothing went on a channel");
    }
    check(
        FIFO,
        true,
        format!(
            "{sent_total} messages put on channels, {taken} taken, each once and in its channel's order"
        ),
    )
}

/// Replaying each node's events gives every balance it recorded and its final one.
fn balances(by: &BTreeMap<PeerId, Node>) -> Check {
    for n in by.values() {
        let mut bal: i128 = 0;
        for e in &n.r.events {
            match e {
                Event::Created { balance } => bal = i128::from(*balance),
                Event::Sent {
                    content: Content::Transfer { amount },
                    ..
                } => bal -= i128::from(*amount),
                Event::Took {
                    content: Content::Transfer { amount },
                    ..
                } => bal += i128::from(*amount),
                Event::Recorded { snapshot, balance } if i128::from(*balance) != bal => {
                    return check(
                        BALANCES,
                        false,
                        format!(
                            "node {} recorded {balance} for snapshot {snapshot}; its history says {bal}",
                            n.r.id
                        ),
                    );
                }
                _ => {}
            }
            if bal < 0 {
                return check(BALANCES, false, format!("node {} went to {bal}", n.r.id));
            }
        }
        if bal != i128::from(n.r.balance) {
            return check(
                BALANCES,
                false,
                format!(
                    "node {} ended with {}; its history says {bal}",
                    n.r.id, n.r.balance
                ),
            );
        }
    }
    check(
        BALANCES,
        true,
        match by.len() {
            1 => "1 node's history replayed".to_string(),
            n => format!("{n} nodes' histories replayed"),
        },
    )
}

fn transfer(c: &Content) -> Money {
    match c {
        Content::Transfer { amount } => *amount,
        _ => 0,
    }
}

/// Final balances plus what is still on the channels equal what the nodes started with.
fn money(by: &BTreeMap<PeerId, Node>) -> Check {
    // Sums in 128 bits: reports come off the network, and no sum of them may overflow.
    let initial: u128 = by.values().map(|n| u128::from(n.r.initial())).sum();
    let held: u128 = by.values().map(|n| u128::from(n.r.balance)).sum();
    // Money moved by every node's events of one kind (`pick` says which, and what they carry).
    let moved = |pick: fn(&Event) -> Option<&Content>| -> u128 {
        by.values()
            .flat_map(|n| n.r.events.iter())
            .filter_map(pick)
            .map(|c| u128::from(transfer(c)))
            .sum()
    };
    let sent = moved(|e| match e {
        Event::Sent { content, .. } => Some(content),
        _ => None,
    });
    let taken = moved(|e| match e {
        Event::Took { content, .. } => Some(content),
        _ => None,
    });
    let transit = sent.saturating_sub(taken);
    check(
        MONEY,
        held + transit == initial && taken <= sent,
        format!(
            "{held} in the nodes + {transit} in transit = {} (started with {initial})",
            held + transit
        ),
    )
}

/// Each node recorded each snapshot at most once and, when it recorded, put exactly one
/// marker of it on each outgoing channel.
fn markers(by: &BTreeMap<PeerId, Node>, snaps: &BTreeSet<SnapshotId>) -> Check {
    let mut total = 0usize;
    for n in by.values() {
        let mut seen: BTreeMap<(SnapshotId, PeerId), usize> = BTreeMap::new();
        let mut records: BTreeMap<SnapshotId, usize> = BTreeMap::new();
        for e in &n.r.events {
            match e {
                Event::Sent {
                    to,
                    content: Content::Marker { snapshot },
                    ..
                } => {
                    *seen.entry((*snapshot, *to)).or_default() += 1;
                    total += 1;
                }
                Event::Recorded { snapshot, .. } => *records.entry(*snapshot).or_default() += 1,
                _ => {}
            }
        }
        if let Some((s, _)) = records.iter().find(|(_, c)| **c > 1) {
            return check(
                MARKERS,
                false,
                format!("node {} recorded snapshot {s} twice", n.r.id),
            );
        }
        if let Some(((s, to), c)) = seen.iter().find(|(_, c)| **c > 1) {
            return check(
                MARKERS,
                false,
                format!("node {} sent {c} markers of snapshot {s} to {to}", n.r.id),
            );
        }
        for s in n.recorded.keys() {
            let peers = n.r.snapshot(*s).map_or(0, |r| r.channels.len());
            let sent = seen.keys().filter(|(x, _)| x == s).count();
            if sent != peers {
                return check(
                    MARKERS,
                    false,
                    format!(
                        "node {} recorded snapshot {s} with {peers} incoming channels but sent {sent} markers",
                        n.r.id
                    ),
                );
            }
        }
    }
    check(
        MARKERS,
        true,
        format!("{total} markers for {} snapshot(s)", snaps.len()),
    )
}

/// The last seq `a` put on its channel to `b` before recording `s` (0: none).
fn sent_before(a: &Node, b: PeerId, s: SnapshotId) -> Option<u64> {
    let (at, _) = *a.recorded.get(&s)?;
    Some(
        a.sent_to(b)
            .filter(|(i, _, _)| *i < at)
            .map(|(_, q, _)| q)
            .max()
            .unwrap_or(0),
    )
}

/// No transfer recorded as received before the receiver's record was sent after the
/// sender's: every taken-before-record seq is at most the sent-before-record seq.
fn cut(by: &BTreeMap<PeerId, Node>, snaps: &BTreeSet<SnapshotId>) -> Check {
    let mut pairs = 0usize;
    for &s in snaps {
        for b in by.values() {
            let Some(&(at, _)) = b.recorded.get(&s) else {
                continue;
            };
            for a in by.values() {
                if a.r.id == b.r.id {
                    continue;
                }
                let taken = b
                    .took_from(a.r.id)
                    .filter(|(i, _, c)| *i < at && matches!(c, Content::Transfer { .. }))
                    .map(|(_, q, _)| q)
                    .max()
                    .unwrap_or(0);
                if taken == 0 {
                    // Nothing taken before the record: nothing can cross the cut backwards.
                    pairs += usize::from(a.recorded.contains_key(&s));
                    continue;
                }
                pairs += 1;
                match sent_before(a, b.r.id, s) {
                    Some(sent) if taken <= sent => {}
                    Some(sent) => {
                        return check(
                            CUT,
                            false,
                            format!(
                                "snapshot {s}: node {} recorded having received message {taken} from node {} that was sent after node {}'s record (it had sent {sent})",
                                b.r.id, a.r.id, a.r.id
                            ),
                        );
                    }
                    None => {
                        return check(
                            CUT,
                            false,
                            format!(
                                "snapshot {s}: node {} recorded, node {} never did",
                                b.r.id, a.r.id
                            ),
                        );
                    }
                }
            }
        }
    }
    if pairs == 0 {
        return not_run(CUT, "no two nodes recorded the same snapshot");
    }
    check(
        CUT,
        true,
        format!(
            "{} snapshot(s), {pairs} channel crossings checked, no message received before it was sent",
            snaps.len()
        ),
    )
}

/// Each complete channel record is exactly the transfers sent before the sender's record
/// and taken after the receiver's, in order.
fn channels(by: &BTreeMap<PeerId, Node>, snaps: &BTreeSet<SnapshotId>) -> Check {
    match channels_checked(by, snaps) {
        Err(wrong) => check(CHANNELS, false, wrong),
        Ok(0) => not_run(CHANNELS, "no channel's recording completed"),
        Ok(checked) => check(
            CHANNELS,
            true,
            format!("{checked} channel states, each exactly what crossed the cut"),
        ),
    }
}

/// How many complete channel records [`channels`] checked, or the first that is wrong,
/// said.
fn channels_checked(
    by: &BTreeMap<PeerId, Node>,
    snaps: &BTreeSet<SnapshotId>,
) -> Result<usize, String> {
    let mut checked = 0usize;
    for &s in snaps {
        for b in by.values() {
            let (Some(&(at, _)), Some(rec)) = (b.recorded.get(&s), b.r.snapshot(s)) else {
                continue;
            };
            for ch in rec.channels.iter().filter(|c| c.complete) {
                let Some(a) = by.get(&ch.from) else {
                    return Err(format!(
                        "snapshot {s}: node {} recorded a channel from unknown node {}",
                        b.r.id, ch.from
                    ));
                };
                let Some(cut_seq) = sent_before(a, b.r.id, s) else {
                    return Err(format!(
                        "snapshot {s}: channel ({} -> {}) complete, but node {} never recorded",
                        ch.from, b.r.id, ch.from
                    ));
                };
                let want: Vec<(u64, Money)> = b
                    .took_from(a.r.id)
                    .filter(|(i, q, c)| {
                        *i > at && *q <= cut_seq && matches!(c, Content::Transfer { .. })
                    })
                    .map(|(_, q, c)| (q, transfer(&c)))
                    .collect();
                checked += 1;
                if want != ch.transfers {
                    return Err(format!(
                        "snapshot {s}: channel ({} -> {}) recorded {:?}; in transit across the cut were {want:?}",
                        ch.from, b.r.id, ch.transfers
                    ));
                }
            }
        }
    }
    Ok(checked)
}

/// Per complete snapshot: recorded balances plus channel states = the money its nodes
/// started with.
fn conserved(
    by: &BTreeMap<PeerId, Node>,
    snaps: &BTreeSet<SnapshotId>,
    master: Option<&MasterEnd>,
    want: Option<u32>,
) -> Check {
    let mut complete = Vec::new();
    let mut incomplete = Vec::new();
    for &s in snaps {
        // Its nodes: those that existed when it began, as the master saw them (a node
        // created later is not in it); without the master's word, every node.
        let members: Vec<PeerId> = master
            .and_then(|m| m.snapshots.iter().find(|x| x.id == s))
            .map_or_else(|| by.keys().copied().collect(), |x| x.nodes.clone());
        let recs: Vec<(&Node, &Recorded)> = members
            .iter()
            .filter_map(|k| by.get(k))
            .filter_map(|n| n.r.snapshot(s).map(|r| (n, r)))
            .collect();
        let whole = recs.len() == members.len() && recs.iter().all(|(_, r)| r.complete());
        if !whole {
            incomplete.push(s);
            continue;
        }
        let initial: u128 = recs.iter().map(|(n, _)| u128::from(n.r.initial())).sum();
        let nodes: u128 = recs
            .iter()
            .filter_map(|(_, r)| r.balance)
            .map(u128::from)
            .sum();
        let chans: u128 = recs
            .iter()
            .flat_map(|(_, r)| r.channels.iter())
            .flat_map(|c| c.transfers.iter())
            .map(|(_, a)| u128::from(*a))
            .sum();
        if nodes + chans != initial {
            return check(
                CONSERVED,
                false,
                format!(
                    "snapshot {s}: {nodes} in the nodes + {chans} on the channels = {}, but the system holds {initial}",
                    nodes + chans
                ),
            );
        }
        complete.push(s);
    }
    if let Some(w) = want
        && complete.len() != w as usize
    {
        return check(
            CONSERVED,
            false,
            format!(
                "{} of {w} snapshots complete (incomplete: {})",
                complete.len(),
                ids(&incomplete)
            ),
        );
    }
    if complete.is_empty() {
        return not_run(
            CONSERVED,
            format!(
                "no snapshot completed at every node (incomplete: {})",
                ids(&incomplete)
            ),
        );
    }
    check(
        CONSERVED,
        true,
        format!(
            "{} complete snapshot(s) each add up to the money in the system",
            complete.len()
        ),
    )
}

/// What the observer collected (and the master printed) is what the nodes recorded, and
/// it was complete when collected.
fn collected(by: &BTreeMap<PeerId, Node>, master: Option<&MasterEnd>, want: Option<u32>) -> Check {
    let Some(m) = master else {
        return not_run(COLLECTED, "the master did not report");
    };
    let done: Vec<_> = m
        .snapshots
        .iter()
        .filter(|s| s.collected_ms.is_some())
        .collect();
    if done.is_empty() {
        return match want {
            Some(w) if w > 0 => check(
                COLLECTED,
                false,
                format!("none of {w} snapshots was collected"),
            ),
            _ => not_run(COLLECTED, "no snapshot was collected"),
        };
    }
    for s in &done {
        for (k, got) in &s.states {
            if !got.complete() {
                return check(
                    COLLECTED,
                    false,
                    format!(
                        "snapshot {}: node {k}'s state was collected before its markers all came (receive them before CollectState)",
                        s.id
                    ),
                );
            }
            let own = by.get(k).and_then(|n| n.r.snapshot(s.id));
            if own != Some(got) {
                return check(
                    COLLECTED,
                    false,
                    format!(
                        "snapshot {}: the observer collected for node {k} what it did not record",
                        s.id
                    ),
                );
            }
        }
        let nodes: BTreeSet<PeerId> = s.states.iter().map(|(k, _)| *k).collect();
        let recorded: BTreeSet<PeerId> = by
            .values()
            .filter(|n| n.recorded.contains_key(&s.id))
            .map(|n| n.r.id)
            .collect();
        if nodes != recorded {
            return check(
                COLLECTED,
                false,
                format!(
                    "snapshot {}: collected from {nodes:?}, recorded by {recorded:?}",
                    s.id
                ),
            );
        }
    }
    if let Some(w) = want
        && done.len() != w as usize
    {
        return check(
            COLLECTED,
            false,
            format!("{} of {w} snapshots collected", done.len()),
        );
    }
    check(
        COLLECTED,
        true,
        format!(
            "{} snapshot(s) collected, each complete and equal to the nodes' own records",
            done.len()
        ),
    )
}
