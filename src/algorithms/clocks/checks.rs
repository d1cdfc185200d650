//! The proof of a logical-clock run, from the processes' reports alone.
//!
//! The checker does not trust the clocks it checks. It rebuilds the true happened-before
//! relation from the message log: each process's events in its own order, plus an edge
//! from every send to the receive of the same message, identified by (from, to, seq); then
//! the transitive closure, one bitset of ancestors per event (taken in a topological order,
//! so each set is the union of at most two others: a few thousand events take
//! milliseconds). Against that relation it proves, for every ordered pair of events:
//!
//! * `e → f` exactly when `VC(e) < VC(f)`: vector clocks characterise causality;
//! * `e → f` implies `L(e) < L(f)`: the Lamport clock condition.
//!
//! A failed check names its first counter-example: the two events, their kinds and clocks.

use super::report::{Event, EventKind, Outcome, Report, name, vc_text};
use crate::contract::PeerId;
use crate::verdict::checks::{Problems, missing, unended};
use crate::verdict::{Check, Verdict, check, ids, not_run};
use std::collections::{BTreeMap, BTreeSet};

/// Most events the pairwise proof takes on: one bitset of ancestors per event is M²/8
/// bytes (50 MB here) and the proof compares M² pairs. Beyond it the three relation checks
/// are not run (and the run is not verified) rather than exhausting the machine.
pub const MAX_EVENTS_PROVED: usize = 20_000;

/// Proves a run of `processes` processes with `events` internal events each from their
/// `reports` (in any order; identical copies of a report, from a re-publish, count once).
pub fn verify(reports: &[Report], processes: u32, events: u32) -> Verdict {
    let mut checks = Vec::new();
    let (by_id, reported) = collect(reports, processes);
    checks.push(reported);
    checks.push(internal_events(&by_id, events));
    let formed = well_formed(&by_id, processes);
    let formed_ok = formed.passed;
    checks.push(formed);
    let log = MessageLog::of(&by_id);
    let matched = log.matched();
    let matched_ok = matched.passed;
    checks.push(matched);
    checks.push(log.fifo());
    let total: usize = by_id.values().map(|r| r.events.len()).sum();
    if total > MAX_EVENTS_PROVED {
        let why = format!(
            "{total} events: the pairwise proof covers at most {MAX_EVENTS_PROVED} (memory and time grow with the square)"
        );
        for c in ["happened_before", "vector_clocks", "lamport_clocks"] {
            checks.push(not_run(c, why.clone()));
        }
    } else if formed_ok && matched_ok {
        checks.extend(Causality::of(&by_id, &log).checks());
    } else {
        let why = "needs well-formed reports and every message matched to its send and receive";
        for c in ["happened_before", "vector_clocks", "lamport_clocks"] {
            checks.push(not_run(c, why));
        }
    }
    Verdict::new(checks)
}

/// One report per id; identical copies collapse, conflicting ones are named.
fn collect(reports: &[Report], n: u32) -> (BTreeMap<PeerId, &Report>, Check) {
    let mut by_id: BTreeMap<PeerId, &Report> = BTreeMap::new();
    let mut conflicting = BTreeSet::new();
    let mut strangers = BTreeSet::new();
    for r in reports {
        if !(1..=n).contains(&r.id) {
            strangers.insert(r.id);
            continue;
        }
        match by_id.get(&r.id) {
            Some(seen) if *seen != r => {
                conflicting.insert(r.id);
            }
            Some(_) => {}
            None => {
                by_id.insert(r.id, r);
            }
        }
    }
    let missing = missing(1..=n, |p| by_id.contains_key(p));
    let unfinished = unended(
        by_id.values().copied(),
        |r| r.outcome == Outcome::Completed,
        |r| format!("P{} ({:?})", r.id, r.outcome),
    );
    let mut problems = Problems::default();
    problems.unless_empty(&missing, |l| format!("no report from {l}"));
    let conflicting: Vec<_> = conflicting.into_iter().collect();
    problems.unless_empty(&conflicting, |l| format!("conflicting reports from {l}"));
    let strangers: Vec<_> = strangers.into_iter().collect();
    problems.unless_empty(&strangers, |l| format!("reports from non-processes {l}"));
    problems.unless_empty(&unfinished, |l| format!("not completed: {l}"));
    let c = problems.check("reports", || format!("all {n} processes reported and completed"));
    (by_id, c)
}

fn internal_events(by_id: &BTreeMap<PeerId, &Report>, e: u32) -> Check {
    if by_id.is_empty() {
        return not_run("internal_events", "no reports");
    }
    let wrong: Vec<String> = by_id
        .values()
        .filter_map(|r| {
            let k = r
                .events
                .iter()
                .filter(|ev| ev.kind == EventKind::Internal)
                .count();
            (k != e as usize).then(|| format!("P{} has {k}", r.id))
        })
        .collect();
    if wrong.is_empty() {
        check(
            "internal_events",
            true,
            format!(
                "{e} internal events in each of {} reports ({} in all)",
                by_id.len(),
                by_id.len() as u64 * e as u64
            ),
        )
    } else {
        check(
            "internal_events",
            false,
            format!("expected {e} per process: {}", ids(&wrong)),
        )
    }
}

/// Indices 1, 2, 3, … in order; vector clocks of N entries; counts that match the events.
fn well_formed(by_id: &BTreeMap<PeerId, &Report>, n: u32) -> Check {
    let mut problems = Vec::new();
    for r in by_id.values() {
        if let Some(e) = r
            .events
            .iter()
            .enumerate()
            .find(|(i, e)| e.index as usize != i + 1)
        {
            problems.push(format!(
                "P{}: event {} has index {}",
                r.id,
                e.0 + 1,
                e.1.index
            ));
        }
        if let Some(e) = r.events.iter().find(|e| e.vc.len() != n as usize) {
            problems.push(format!(
                "{}: a vector clock of {} entries",
                name(r.id, e.index),
                e.vc.len()
            ));
        }
        let count = |f: fn(&EventKind) -> bool| r.events.iter().filter(|e| f(&e.kind)).count();
        let counted = (
            count(|k| *k == EventKind::Internal) as u64,
            count(|k| matches!(k, EventKind::Send { .. })) as u64,
            count(|k| matches!(k, EventKind::Receive { .. })) as u64,
        );
        let c = r.counts;
        if counted != (c.internal, c.sent, c.received) {
            problems.push(format!(
                "P{}: counts {:?} but events {:?}",
                r.id,
                (c.internal, c.sent, c.received),
                counted
            ));
        }
    }
    if by_id.is_empty() {
        not_run("well_formed", "no reports")
    } else if problems.is_empty() {
        check(
            "well_formed",
            true,
            format!("event indices in order, vector clocks of {n} entries, counts match"),
        )
    } else {
        check("well_formed", false, ids(&problems))
    }
}

/// A message: (from, to, seq).
type MsgId = (PeerId, PeerId, u64);

/// Where each message's send and receive(s) are: (process, position in its events).
struct MessageLog {
    sends: BTreeMap<MsgId, Vec<(PeerId, usize)>>,
    receives: BTreeMap<MsgId, Vec<(PeerId, usize)>>,
}

impl MessageLog {
    fn of(by_id: &BTreeMap<PeerId, &Report>) -> Self {
        let mut log = MessageLog {
            sends: BTreeMap::new(),
            receives: BTreeMap::new(),
        };
        for r in by_id.values() {
            for (i, e) in r.events.iter().enumerate() {
                match e.kind {
                    EventKind::Send { to, seq } => log
                        .sends
                        .entry((r.id, to, seq))
                        .or_default()
                        .push((r.id, i)),
                    EventKind::Receive { from, seq } => log
                        .receives
                        .entry((from, r.id, seq))
                        .or_default()
                        .push((r.id, i)),
                    EventKind::Internal => {}
                }
            }
        }
        log
    }

    fn matched(&self) -> Check {
        let show = |m: &MsgId| format!("P{}→P{} #{}", m.0, m.1, m.2);
        let mut problems = Vec::new();
        for (m, s) in &self.sends {
            if s.len() > 1 {
                problems.push(format!("{} sent {} times", show(m), s.len()));
            }
            match self.receives.get(m).map_or(0, Vec::len) {
                1 => {}
                0 => problems.push(format!("{} sent, never received", show(m))),
                k => problems.push(format!("{} received {k} times", show(m))),
            }
        }
        for m in self.receives.keys() {
            if !self.sends.contains_key(m) {
                problems.push(format!("{} received, never sent", show(m)));
            }
        }
        if self.sends.is_empty() && self.receives.is_empty() {
            check("messages", true, "no messages were sent")
        } else if problems.is_empty() {
            check(
                "messages",
                true,
                format!(
                    "{} messages, each sent once and received exactly once",
                    self.sends.len()
                ),
            )
        } else {
            check("messages", false, ids(&problems))
        }
    }

    /// Per channel: sends numbered 1, 2, 3, … in order, received in that order.
    fn fifo(&self) -> Check {
        let mut problems = Vec::new();
        for (what, side) in [("sent", &self.sends), ("received", &self.receives)] {
            let mut last: BTreeMap<(PeerId, PeerId), (u64, usize)> = BTreeMap::new();
            // BTreeMap order: by channel, then seq; positions must grow with seq.
            for (&(from, to, seq), at) in side {
                let pos = at.iter().map(|a| a.1).min().unwrap_or(0);
                let (prev_seq, prev_pos) = last.get(&(from, to)).copied().unwrap_or((0, 0));
                if seq != prev_seq + 1 || (prev_seq > 0 && pos <= prev_pos) {
                    problems.push(format!("P{from}→P{to} #{seq} {what} out of order"));
                }
                last.insert((from, to), (seq, pos));
            }
        }
        if problems.is_empty() {
            check(
                "fifo",
                true,
                "every channel numbered 1, 2, 3, … and received in that order",
            )
        } else {
            check("fifo", false, ids(&problems))
        }
    }
}

/// The true happened-before relation over every reported event.
struct Causality<'a> {
    /// Every event, (process, report) flattened; `at[k]` is event k's place.
    at: Vec<(PeerId, &'a Event)>,
    /// `anc[k]`: bitset of the events that happened before event k.
    anc: Vec<Vec<u64>>,
    messages: usize,
    /// A cycle found instead of a partial order (an event on it).
    cycle: Option<usize>,
}

impl<'a> Causality<'a> {
    fn of(by_id: &BTreeMap<PeerId, &'a Report>, log: &MessageLog) -> Self {
        let mut at = Vec::new();
        let mut first: BTreeMap<PeerId, usize> = BTreeMap::new();
        for r in by_id.values() {
            first.insert(r.id, at.len());
            at.extend(r.events.iter().map(|e| (r.id, e)));
        }
        let m = at.len();
        let global = |(p, i): (PeerId, usize)| first.get(&p).map(|f| f + i);
        // Immediate predecessors: the previous event of the process, and the send of a
        // receive. At most two each.
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); m];
        for k in 0..m {
            if k > 0 && at[k - 1].0 == at[k].0 {
                preds[k].push(k - 1);
            }
        }
        for (msg, recv) in &log.receives {
            let send = log.sends.get(msg).and_then(|s| s.first());
            let recv = recv.first().and_then(|r| global(*r));
            if let (Some(s), Some(r)) = (send.and_then(|s| global(*s)), recv) {
                preds[r].push(s);
            }
        }
        // Kahn's topological order; whatever is left over lies on a cycle.
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); m];
        let mut indeg = vec![0usize; m];
        for (k, ps) in preds.iter().enumerate() {
            indeg[k] = ps.len();
            for &p in ps {
                succs[p].push(k);
            }
        }
        let mut ready: Vec<usize> = (0..m).filter(|k| indeg[*k] == 0).collect();
        let words = m.div_ceil(64);
        let mut anc = vec![vec![0u64; words]; m];
        let mut done = 0;
        while let Some(k) = ready.pop() {
            done += 1;
            for &p in &preds[k] {
                let (a, b) = if p < k {
                    let (lo, hi) = anc.split_at_mut(k);
                    (&lo[p], &mut hi[0])
                } else {
                    let (lo, hi) = anc.split_at_mut(p);
                    (&hi[0], &mut lo[k])
                };
                for (dst, src) in b.iter_mut().zip(a) {
                    *dst |= src;
                }
                anc[k][p / 64] |= 1 << (p % 64);
            }
            for &s in &succs[k] {
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    ready.push(s);
                }
            }
        }
        let cycle = (done < m).then(|| (0..m).find(|k| indeg[*k] > 0)).flatten();
        Causality {
            at,
            anc,
            messages: log.sends.len(),
            cycle,
        }
    }

    fn before(&self, e: usize, f: usize) -> bool {
        self.anc[f][e / 64] >> (e % 64) & 1 == 1
    }

    fn show(&self, k: usize) -> String {
        let (p, e) = self.at[k];
        let what = match e.kind {
            EventKind::Internal => "internal".to_string(),
            EventKind::Send { to, seq } => format!("send→P{to} #{seq}"),
            EventKind::Receive { from, seq } => format!("receive←P{from} #{seq}"),
        };
        format!(
            "{} ({what}, L={}, VC={})",
            name(p, e.index),
            e.lamport,
            vc_text(&e.vc)
        )
    }

    fn checks(&self) -> Vec<Check> {
        if let Some(k) = self.cycle {
            let why = format!(
                "the message log has a cycle through {}: not a partial order",
                self.show(k)
            );
            return vec![
                check("happened_before", false, why),
                not_run("vector_clocks", "happened-before has a cycle"),
                not_run("lamport_clocks", "happened-before has a cycle"),
            ];
        }
        let m = self.at.len();
        let related: u64 = self
            .anc
            .iter()
            .map(|a| a.iter().map(|w| w.count_ones() as u64).sum::<u64>())
            .sum();
        let mut vc_bad: Option<(usize, usize, bool)> = None;
        let mut vc_failures = 0u64;
        let mut l_bad: Option<(usize, usize)> = None;
        let mut l_failures = 0u64;
        for f in 0..m {
            for e in 0..m {
                if e == f {
                    continue;
                }
                let hb = self.before(e, f);
                if hb != vc_less(&self.at[e].1.vc, &self.at[f].1.vc) {
                    vc_failures += 1;
                    vc_bad.get_or_insert((e, f, hb));
                }
                if hb && self.at[e].1.lamport >= self.at[f].1.lamport {
                    l_failures += 1;
                    l_bad.get_or_insert((e, f));
                }
            }
        }
        let pairs = m as u64 * (m as u64).saturating_sub(1);
        let mut out = vec![check(
            "happened_before",
            true,
            format!(
                "rebuilt from the message log: {m} events, {} messages, {related} ordered pairs e→f",
                self.messages
            ),
        )];
        out.push(match vc_bad {
            None => check(
                "vector_clocks",
                true,
                format!("e→f ⇔ VC(e)<VC(f) over all {pairs} ordered pairs of events"),
            ),
            Some((e, f, true)) => check(
                "vector_clocks",
                false,
                format!(
                    "{} → {} but not VC(e)<VC(f); {vc_failures} pairs wrong",
                    self.show(e),
                    self.show(f)
                ),
            ),
            Some((e, f, false)) => check(
                "vector_clocks",
                false,
                format!(
                    "{} and {} are not e→f, yet VC(e)<VC(f); {vc_failures} pairs wrong",
                    self.show(e),
                    self.show(f)
                ),
            ),
        });
        out.push(match l_bad {
            None => check(
                "lamport_clocks",
                true,
                format!("e→f ⇒ L(e)<L(f) over all {related} ordered pairs e→f"),
            ),
            Some((e, f)) => check(
                "lamport_clocks",
                false,
                format!(
                    "{} → {} but L(e) ≥ L(f); {l_failures} pairs wrong",
                    self.show(e),
                    self.show(f)
                ),
            ),
        });
        out
    }
}

/// `a < b`: every entry ≤ and the vectors differ.
fn vc_less(a: &[u64], b: &[u64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x <= y) && a != b
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
