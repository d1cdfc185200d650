//! The proof, from the participants' reports alone: the branches' logs (what each applied,
//! in which order, with which result and balance after) and the customers' calls (what
//! each asked, what came back, and when on its clock).
//!
//! | check | what it proves |
//! |---|---|
//! | `reported` | every branch, every customer and the sequencer reported; every branch completed |
//! | `answered` | every customer's every call was answered |
//! | `balances_equal` | every branch ends with the same balance, = start + successful deposits − successful withdrawals |
//! | `never_negative` | no branch's balance was ever below 0 |
//! | `linearizable` | one total order explains every answer: the branches applied the same operations in the same order, replaying it from the start gives every result and every query's balance, each customer's calls are in its own order, and a call answered before another was sent comes first |
//! | `session_guarantees` | read-your-writes (a query sees the customer's own earlier writes, at whichever branch) and monotonic writes (a customer's writes are applied in its order, at every branch) |
//! | `exactly_once` | no request was applied twice anywhere (retries and duplicates were answered, not applied), and every answered write was applied at every branch |
//!
//! The last three need the per-operation record; `--no-record` skips them and says so.
//! [`Anomalies`] counts what the original design (`--mode propagate`) gets wrong.

use super::input::Input;
use super::protocol::{Mode, Op, Outcome};
use super::report::{
    BranchEnd, BranchReport, Call, CustomerEnd, CustomerReport, LogEntry, SequencerReport,
};
use crate::contract::PeerId;
use crate::verdict::checks::{Problems, missing, unended};
use crate::verdict::{Check, Verdict, check, ids};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What went wrong, counted (all 0 in a correct run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Anomalies {
    /// Branches whose balance went below 0.
    pub overdrawn_branches: usize,
    /// Distinct final balances among the branches (1 when they agree).
    pub distinct_balances: usize,
    /// Distinct orders in which the branches applied the writes (1 when they agree).
    pub write_orders: usize,
    /// Queries that missed a write answered before the query was sent.
    pub stale_reads: usize,
    /// Answers (or logged results) that replaying the order does not give.
    pub unexplained: usize,
    /// Pairs of calls whose order contradicts real time or a customer's own order.
    pub out_of_order: usize,
    pub read_your_writes: usize,
    pub monotonic_writes: usize,
    /// Requests applied more than once at a branch.
    pub applied_twice: usize,
}

/// The verdict, the anomalies, and the checks `--no-record` skipped.
pub struct Proof {
    pub verdict: Verdict,
    pub anomalies: Anomalies,
    pub skipped: Vec<&'static str>,
}

type Key = (PeerId, u64);

fn key(e: &LogEntry) -> Key {
    (e.customer, e.req)
}

fn is_write(op: Op, result: Outcome) -> bool {
    op != Op::Query && result == Outcome::Success
}

/// Runs every check on the reports of one run of `input` in `mode`.
pub fn verify(
    input: &Input,
    mode: Mode,
    branches: &[BranchReport],
    customers: &[CustomerReport],
    sequencer: Option<&SequencerReport>,
) -> Proof {
    let mut a = Anomalies::default();
    let mut checks = vec![
        reported(input, branches, customers, sequencer),
        answered(input, customers),
        balances_equal(input, branches, customers, &mut a),
        never_negative(branches, &mut a),
    ];
    let recorded = branches.iter().all(|b| b.recorded) && customers.iter().all(|c| c.recorded);
    let mut skipped = Vec::new();
    let calls: usize = customers.iter().map(|c| c.log.len()).sum();
    if recorded && (branches.is_empty() || (calls == 0 && input.operations() > 0)) {
        for name in ["linearizable", "session_guarantees", "exactly_once"] {
            checks.push(crate::verdict::not_run(
                name,
                "no branch log or no call to check",
            ));
        }
    } else if recorded {
        let order = Order::build(input.balance, mode, branches);
        checks.push(linearizable(&order, customers, &mut a));
        checks.push(session_guarantees(&order, customers, &mut a));
        checks.push(exactly_once(&order, branches, customers, sequencer, &mut a));
    } else {
        skipped = vec!["linearizable", "session_guarantees", "exactly_once"];
    }
    Proof {
        verdict: Verdict::new(checks),
        anomalies: a,
        skipped,
    }
}

fn reported(
    input: &Input,
    branches: &[BranchReport],
    customers: &[CustomerReport],
    sequencer: Option<&SequencerReport>,
) -> Check {
    let got_b: BTreeSet<PeerId> = branches.iter().map(|b| b.id).collect();
    let got_c: BTreeSet<PeerId> = customers.iter().map(|c| c.id).collect();
    let missing_b = missing(input.branches.iter().copied(), |b| got_b.contains(b));
    let missing_c = missing(input.customer_ids(), |c| got_c.contains(c));
    let unfinished = unended(
        branches,
        |b| b.outcome == BranchEnd::Completed,
        |b| format!("branch {} {:?}", b.id, b.outcome),
    );
    let mut bad = Problems::default();
    bad.unless_empty(&missing_b, |l| format!("no report from branch(es) {l}"));
    bad.unless_empty(&missing_c, |l| format!("no report from customer(s) {l}"));
    if sequencer.is_none() {
        bad.push("no report from the sequencer");
    }
    if !unfinished.is_empty() {
        bad.push(format!("did not complete: {}", unfinished.join(", ")));
    }
    bad.check("reported", || {
        format!(
            "{}, {} and the sequencer reported; every branch completed",
            crate::verdict::plural(branches.len() as u64, "branch", "branches"),
            crate::verdict::plural(customers.len() as u64, "customer", "customers"),
        )
    })
}

fn answered(input: &Input, customers: &[CustomerReport]) -> Check {
    let want: HashMap<PeerId, usize> = input
        .customers
        .iter()
        .map(|c| (c.id, c.events.len()))
        .collect();
    let mut bad = Problems::default();
    let mut calls = 0;
    for c in customers {
        calls += c.answered;
        match &c.outcome {
            CustomerEnd::Completed
                if c.answered as usize == want.get(&c.id).copied().unwrap_or(0) => {}
            CustomerEnd::Completed => bad.push(format!(
                "customer {} has {} answers for {} events",
                c.id,
                c.answered,
                want.get(&c.id).copied().unwrap_or(0)
            )),
            CustomerEnd::GaveUp {
                req,
                branch,
                after_ms,
            } => bad.push(format!(
                "customer {}: branch {branch} did not answer request {req} within {after_ms} ms",
                c.id
            )),
            CustomerEnd::Interrupted { reason } => {
                bad.push(format!("customer {} was interrupted ({reason})", c.id))
            }
            CustomerEnd::DeadlineExpired => bad.push(format!(
                "customer {}: the run's deadline passed after {} of {} calls",
                c.id,
                c.answered,
                want.get(&c.id).copied().unwrap_or(0)
            )),
        }
    }
    let any = !customers.is_empty();
    bad.check_over("answered", any, "no customer reported", || {
        format!("{calls} calls, every one answered")
    })
}

fn balances_equal(
    input: &Input,
    branches: &[BranchReport],
    customers: &[CustomerReport],
    a: &mut Anomalies,
) -> Check {
    let start = i128::from(input.balance);
    let finals: BTreeSet<i64> = branches.iter().map(|b| b.balance).collect();
    a.distinct_balances = finals.len();
    let mut bad = Vec::new();
    if finals.len() > 1 {
        let each: Vec<String> = branches
            .iter()
            .map(|b| format!("{}: {}", b.id, b.balance))
            .collect();
        bad.push(format!("the branches disagree ({})", each.join(", ")));
    }
    for b in branches {
        let sum = start + i128::from(b.deposited) - i128::from(b.withdrawn);
        if sum != i128::from(b.balance) {
            bad.push(format!(
                "branch {}: {} + {} − {} = {sum}, but it holds {}",
                b.id, input.balance, b.deposited, b.withdrawn, b.balance
            ));
        }
    }
    // What the customers were told succeeded must add up to the same balance (when every
    // call was answered: an unanswered one may or may not have been applied).
    let all_answered = customers.len() == input.customers.len()
        && customers
            .iter()
            .all(|c| c.outcome == CustomerEnd::Completed);
    let told = start
        + customers
            .iter()
            .map(|c| i128::from(c.deposited))
            .sum::<i128>()
        - customers
            .iter()
            .map(|c| i128::from(c.withdrawn))
            .sum::<i128>();
    if all_answered && finals.len() == 1 && finals.iter().all(|f| i128::from(*f) != told) {
        bad.push(format!(
            "the customers were told deposits and withdrawals that leave {told}, the branches hold {}",
            finals.iter().next().copied().unwrap_or_default()
        ));
    }
    match (bad.is_empty(), finals.iter().next()) {
        (true, Some(f)) => check(
            "balances_equal",
            true,
            format!(
                "every branch holds {f} = {} + deposits − withdrawals{}",
                input.balance,
                if all_answered {
                    ", as the customers were told"
                } else {
                    ""
                }
            ),
        ),
        (true, None) => check("balances_equal", false, "no branch reported"),
        (false, _) => check("balances_equal", false, bad.join("; ")),
    }
}

fn never_negative(branches: &[BranchReport], a: &mut Anomalies) -> Check {
    let mut bad = Problems::default();
    for b in branches {
        let negative = b.log.iter().filter(|e| e.balance < 0).count();
        if b.min_balance < 0 || negative > 0 {
            a.overdrawn_branches += 1;
            bad.push(format!(
                "branch {} went down to {} ({negative} operations left it negative)",
                b.id, b.min_balance
            ));
        }
    }
    let any = !branches.is_empty();
    bad.check_over("never_negative", any, "no branch reported", || {
        let low = branches.iter().map(|b| b.min_balance).min();
        format!("the lowest balance at any branch was {}", low.unwrap_or_default())
    })
}

/// Every branch's log, indexed: where each request sits in each branch's order.
struct Order<'r> {
    mode: Mode,
    start: i128,
    branches: &'r [BranchReport],
    /// Ordered mode: the one order, merged from every branch's log, by number.
    merged: BTreeMap<u64, LogEntry>,
    /// Numbers where two branches logged different things.
    conflicts: Vec<u64>,
    /// Per branch: request → its place in that branch's order (its `seq`).
    pos: BTreeMap<PeerId, HashMap<Key, u64>>,
    /// Per branch: requests it applied more than once.
    twice: Vec<(PeerId, Key)>,
}

impl<'r> Order<'r> {
    fn build(balance: u64, mode: Mode, branches: &'r [BranchReport]) -> Self {
        let mut merged: BTreeMap<u64, LogEntry> = BTreeMap::new();
        let mut conflicts = Vec::new();
        let mut pos = BTreeMap::new();
        let mut twice = Vec::new();
        for b in branches {
            let mut p: HashMap<Key, u64> = HashMap::new();
            for e in &b.log {
                if p.insert(key(e), e.seq).is_some() {
                    twice.push((b.id, key(e)));
                }
                if mode == Mode::Ordered {
                    match merged.get(&e.seq) {
                        Some(m) if m != e => conflicts.push(e.seq),
                        Some(_) => {}
                        None => {
                            merged.insert(e.seq, *e);
                        }
                    }
                }
            }
            pos.insert(b.id, p);
        }
        Order {
            mode,
            start: i128::from(balance),
            branches,
            merged,
            conflicts,
            pos,
            twice,
        }
    }

    /// Where request `k` sits in branch `b`'s order (ordered mode: the one order).
    fn place(&self, b: PeerId, k: Key) -> Option<u64> {
        match self.mode {
            Mode::Ordered => self.pos.values().find_map(|p| p.get(&k).copied()),
            Mode::Propagate => self.pos.get(&b).and_then(|p| p.get(&k).copied()),
        }
    }
}

/// The answered calls of every customer, with their customer.
fn answered_calls(customers: &[CustomerReport]) -> impl Iterator<Item = (&CustomerReport, &Call)> {
    customers.iter().flat_map(|c| {
        c.log
            .iter()
            .filter(|k| k.result.is_some())
            .map(move |k| (c, k))
    })
}

fn linearizable(o: &Order, customers: &[CustomerReport], a: &mut Anomalies) -> Check {
    let mut why = Vec::new();
    match o.mode {
        Mode::Ordered => {
            a.write_orders =
                usize::from(!o.merged.is_empty()) + usize::from(!o.conflicts.is_empty());
            if !o.conflicts.is_empty() {
                why.push(format!(
                    "branches logged different operations at number(s) {}",
                    ids(&o.conflicts)
                ));
            }
            let last = o.merged.keys().next_back().copied().unwrap_or(0);
            let missing: Vec<u64> = (1..=last).filter(|s| !o.merged.contains_key(s)).collect();
            if !missing.is_empty() {
                why.push(format!(
                    "operation(s) {} logged by no branch",
                    ids(&missing)
                ));
            }
            // Replay the one order from the start.
            let mut bal = o.start;
            let mut wrong = Vec::new();
            for e in o.merged.values() {
                let m = i128::from(e.money);
                let want = match e.op {
                    Op::Query => Outcome::Success,
                    Op::Deposit => {
                        bal += m;
                        Outcome::Success
                    }
                    Op::Withdraw if bal >= m => {
                        bal -= m;
                        Outcome::Success
                    }
                    Op::Withdraw => Outcome::Fail,
                };
                if want != e.result || i128::from(e.balance) != bal {
                    wrong.push(e.seq);
                }
            }
            // Every answer is the logged one, at the number the branch said.
            let by_key: HashMap<Key, &LogEntry> = o.merged.values().map(|e| (key(e), e)).collect();
            for (c, k) in answered_calls(customers) {
                let ok = by_key.get(&(c.id, k.req)).is_some_and(|e| {
                    Some(e.seq) == k.seq
                        && Some(e.result) == k.result
                        && e.op == k.op
                        && (e.op != Op::Query || k.balance == Some(e.balance))
                });
                if !ok {
                    wrong.push(k.seq.unwrap_or(0));
                }
            }
            a.unexplained = wrong.len();
            if !wrong.is_empty() {
                why.push(format!(
                    "{} answer(s) the order does not give (at {})",
                    wrong.len(),
                    ids(&wrong)
                ));
            }
            // Each customer's own order, and real time (customers on one clock).
            let mut out_of_order = 0;
            for c in customers {
                let seqs: Vec<u64> = c.log.iter().filter_map(|k| k.seq).collect();
                out_of_order += seqs.windows(2).filter(|w| w[0] >= w[1]).count();
            }
            let (late, stale) = real_time(customers);
            out_of_order += late;
            a.out_of_order = out_of_order;
            a.stale_reads = stale;
            if out_of_order > 0 {
                why.push(format!(
                    "{out_of_order} call(s) ordered against their customer's order or real time ({stale} stale reads)"
                ));
            }
            if why.is_empty() {
                return check(
                    "linearizable",
                    true,
                    format!(
                        "one order of {} operations explains every answer; replayed from {}, every result and query balance matches; customers' and real-time order kept",
                        o.merged.len(),
                        o.start
                    ),
                );
            }
        }
        Mode::Propagate => {
            // Which order did each branch apply the writes in?
            let orders: BTreeSet<Vec<Key>> = o
                .branches
                .iter()
                .map(|b| {
                    b.log
                        .iter()
                        .filter(|e| is_write(e.op, e.result))
                        .map(key)
                        .collect()
                })
                .collect();
            a.write_orders = orders.len();
            if orders.len() > 1 {
                why.push(format!(
                    "the branches applied the writes in {} different orders",
                    orders.len()
                ));
            }
            // Each answer against the answering branch's own log.
            let mut wrong = 0;
            for (c, k) in answered_calls(customers) {
                let b = o.branches.iter().find(|b| b.id == k.branch);
                let ok = b.is_some_and(|b| {
                    b.log.iter().any(|e| {
                        key(e) == (c.id, k.req)
                            && e.origin == b.id
                            && Some(e.result) == k.result
                            && (e.op != Op::Query || k.balance == Some(e.balance))
                    })
                });
                if !ok {
                    wrong += 1;
                }
            }
            a.unexplained = wrong;
            if wrong > 0 {
                why.push(format!(
                    "{wrong} answer(s) not in the answering branch's log"
                ));
            }
            a.stale_reads = stale_reads(o, customers);
            if a.stale_reads > 0 {
                why.push(format!(
                    "{} stale read(s): a query missed a write answered before it was sent",
                    a.stale_reads
                ));
            }
            if why.is_empty() {
                return check(
                    "linearizable",
                    true,
                    "the branches applied every write in one order and no query missed a write answered before it",
                );
            }
        }
    }
    check(
        "linearizable",
        false,
        format!("no single order explains the run: {}", why.join("; ")),
    )
}

/// Ordered mode: pairs (A answered before B was sent, on one clock) that the order puts
/// the other way round, and how many of them have a query as B (stale reads).
fn real_time(customers: &[CustomerReport]) -> (usize, usize) {
    let mut by_clock: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in customers {
        by_clock
            .entry(c.clock.as_str())
            .or_default()
            .extend(c.log.iter().filter(|k| k.seq.is_some()));
    }
    let (mut late, mut stale) = (0, 0);
    for calls in by_clock.values() {
        let mut done: Vec<(u64, u64)> = calls
            .iter()
            .filter_map(|k| Some((k.answered_at?, k.seq?)))
            .collect();
        done.sort_unstable();
        let mut sent: Vec<&&Call> = calls.iter().collect();
        sent.sort_unstable_by_key(|k| k.sent_at);
        let (mut i, mut max_seq) = (0, 0);
        for b in sent {
            while i < done.len() && done[i].0 < b.sent_at {
                max_seq = max_seq.max(done[i].1);
                i += 1;
            }
            if b.seq.is_some_and(|s| s < max_seq) {
                late += 1;
                if b.op == Op::Query {
                    stale += 1;
                }
            }
        }
    }
    (late, stale)
}

/// Propagate mode: queries at branch b that miss a write W answered (on the same clock)
/// before the query was sent: W is not in b's log before the query.
fn stale_reads(o: &Order, customers: &[CustomerReport]) -> usize {
    let mut stale = 0;
    let mut by_clock: BTreeMap<&str, Vec<(PeerId, &Call)>> = BTreeMap::new();
    for c in customers {
        by_clock.entry(c.clock.as_str()).or_default().extend(
            c.log
                .iter()
                .filter(|k| k.result.is_some())
                .map(|k| (c.id, k)),
        );
    }
    for calls in by_clock.values() {
        let mut writes: Vec<(u64, Key)> = calls
            .iter()
            .filter(|(_, k)| k.result.is_some_and(|r| is_write(k.op, r)))
            .filter_map(|(c, k)| Some((k.answered_at?, (*c, k.req))))
            .collect();
        writes.sort_unstable();
        for b in o.branches {
            let mut queries: Vec<(u64, u64)> = calls
                .iter()
                .filter(|(_, k)| k.op == Op::Query && k.branch == b.id)
                .filter_map(|(c, k)| Some((k.sent_at, o.place(b.id, (*c, k.req))?)))
                .collect();
            queries.sort_unstable();
            let (mut i, mut max_pos) = (0, 0);
            for (sent, at) in queries {
                while i < writes.len() && writes[i].0 < sent {
                    max_pos = max_pos.max(o.place(b.id, writes[i].1).unwrap_or(u64::MAX));
                    i += 1;
                }
                if max_pos > at {
                    stale += 1;
                }
            }
        }
    }
    stale
}

fn session_guarantees(o: &Order, customers: &[CustomerReport], a: &mut Anomalies) -> Check {
    // Read your writes: a query at branch b comes after the customer's own earlier writes
    // in b's order.
    let mut ryw = Vec::new();
    for c in customers {
        let mut writes: Vec<u64> = Vec::new();
        for k in &c.log {
            match (k.op, k.result) {
                (Op::Query, Some(_)) => {
                    let at = o.place(k.branch, (c.id, k.req)).unwrap_or(0);
                    if writes
                        .iter()
                        .any(|w| o.place(k.branch, (c.id, *w)).is_none_or(|p| p > at))
                    {
                        ryw.push(c.id);
                    }
                }
                (op, Some(r)) if is_write(op, r) => writes.push(k.req),
                _ => {}
            }
        }
    }
    // Monotonic writes: at every branch, each customer's writes in its own order.
    let mut mw = Vec::new();
    for b in o.branches {
        let mut last: HashMap<PeerId, u64> = HashMap::new();
        for e in b.log.iter().filter(|e| is_write(e.op, e.result)) {
            if last
                .insert(e.customer, e.req)
                .is_some_and(|prev| prev > e.req)
            {
                mw.push(b.id);
            }
        }
    }
    a.read_your_writes = ryw.len();
    a.monotonic_writes = mw.len();
    let moved = customers
        .iter()
        .filter(|c| {
            c.log
                .iter()
                .map(|k| k.branch)
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .count();
    if ryw.is_empty() && mw.is_empty() {
        check(
            "session_guarantees",
            true,
            format!(
                "read-your-writes and monotonic writes hold for every customer ({moved} moved between branches)"
            ),
        )
    } else {
        ryw.dedup();
        mw.dedup();
        check(
            "session_guarantees",
            false,
            format!(
                "{} query(ies) missed the customer's own write (customers {}); {} write(s) applied out of their customer's order (branches {})",
                a.read_your_writes,
                ids(&ryw),
                a.monotonic_writes,
                ids(&mw)
            ),
        )
    }
}

fn exactly_once(
    o: &Order,
    branches: &[BranchReport],
    customers: &[CustomerReport],
    sequencer: Option<&SequencerReport>,
    a: &mut Anomalies,
) -> Check {
    a.applied_twice = o.twice.len();
    let mut bad = Vec::new();
    if !o.twice.is_empty() {
        let shown: Vec<String> = o
            .twice
            .iter()
            .map(|(b, (c, r))| format!("customer {c} request {r} at branch {b}"))
            .take(4)
            .collect();
        bad.push(format!(
            "{} applied twice: {}",
            o.twice.len(),
            shown.join(", ")
        ));
    }
    // Every answered write is in every completed branch's order (or in the state it
    // started from).
    let mut lost = 0;
    for (c, k) in answered_calls(customers) {
        if !k.result.is_some_and(|r| is_write(k.op, r)) {
            continue;
        }
        for b in branches
            .iter()
            .filter(|b| b.outcome == BranchEnd::Completed)
        {
            let here = o
                .pos
                .get(&b.id)
                .is_some_and(|p| p.contains_key(&(c.id, k.req)));
            let before = o.mode == Mode::Ordered && k.seq.is_some_and(|s| s <= b.synced_seq);
            if !here && !before {
                lost += 1;
            }
        }
    }
    if lost > 0 {
        bad.push(format!(
            "{lost} answered write(s) missing from a branch's log"
        ));
    }
    let retries: u64 = customers
        .iter()
        .flat_map(|c| c.log.iter())
        .map(|k| u64::from(k.retries))
        .sum();
    let again: u64 = branches.iter().map(|b| b.answered_again).sum();
    let dropped = sequencer.map_or(0, |s| s.duplicates);
    if bad.is_empty() {
        check(
            "exactly_once",
            true,
            format!(
                "no request applied twice; every answered write applied at every branch ({retries} retries sent, {again} answered again from a table, {dropped} duplicate orders dropped)"
            ),
        )
    } else {
        check("exactly_once", false, bad.join("; "))
    }
}
