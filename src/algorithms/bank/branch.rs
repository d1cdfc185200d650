//! A branch: a replica of the account that customers call.
//!
//! **Ordered (the default).** A request is not applied where it lands: the branch asks the
//! sequencer to place it (`order`) and applies, like every branch, the sequencer's
//! operations strictly in their numbers' order (`ordered`); when it applies one it was
//! asked for, it answers the customer. A query is ordered too, so it returns the balance
//! after exactly the operations before it: the run is linearizable, and a withdraw is
//! judged against the one true balance, so nothing is ever overdrawn. A request already
//! applied (a retry) is answered again from the branch's table and never applied twice.
//! A branch starts (or restarts after a crash) by asking the sequencer for the state so
//! far (`sync` → `state`); what it finds in its inbox from before is older than that
//! state and dropped, and it goes on from there.
//!
//! **Propagate (`--mode propagate`, the course's original).** A branch applies a request
//! at once against its own balance, answers, and tells every other branch, which applies
//! it blindly. Two customers withdrawing at once at two branches both succeed: the
//! checker counts the overdrafts, the disagreeing branches and the stale reads.

use super::ledger::{Ledger, Seen};
use super::protocol::{Body, Last, Message, Mode, Op, Operation, Outcome, SEQUENCER};
use super::report::{BranchEnd, BranchReport, LogEntry};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use std::collections::{BTreeMap, VecDeque};

/// Queues `body` for `route` in a bank role's outbox `out` (all three roles send alike).
pub(super) fn publish<F>(
    out: &mut VecDeque<Output<Message, F>>,
    run_id: &str,
    route: Route,
    body: Body,
) {
    let msg = Message::new(run_id, (), body);
    out.push_back(Output::Publish { route, msg });
}

/// How a bank role ends: its report goes to the results queue, then out as its finish.
pub(super) fn publish_report<F: Clone>(
    out: &mut VecDeque<Output<Message, F>>,
    run_id: &str,
    report: F,
    wrap: fn(F) -> super::protocol::Report,
) {
    let body = Body::Report {
        report: wrap(report.clone()),
    };
    publish(out, run_id, Route::Results, body);
    out.push_back(Output::Finished(report));
}

/// Reads a delivery for run `run_id`, counting one it cannot read in `rejected`.
pub(super) fn decode(bytes: &[u8], run_id: &str, rejected: &mut u64) -> Result<Message, Rejection> {
    Message::decode(bytes, run_id).inspect_err(|_| *rejected += 1)
}

/// A bank role that serves deliveries until it has finished (the branch, the sequencer):
/// a packed message is taken one body at a time, and nothing once finished.
pub(super) trait Serving {
    fn run_id(&self) -> &str;
    fn rejected(&mut self) -> &mut u64;
    fn finished(&self) -> bool;
    /// Past this the role reports and stops (`--run-timeout`).
    fn deadline(&self) -> Option<Millis>;
    fn on_body(&mut self, body: Body) -> Result<(), Rejection>;
}

/// [`Serving`] for a role that keeps its settings in `cfg` (with `run_id` and
/// `deadline`), its count of `rejected` deliveries and whether it has `finished`, and
/// takes a body with its own `on_body`.
macro_rules! serving {
    ($role:ident) => {
        impl Serving for $role {
            fn run_id(&self) -> &str {
                &self.cfg.run_id
            }
            fn rejected(&mut self) -> &mut u64 {
                &mut self.rejected
            }
            fn finished(&self) -> bool {
                self.finished
            }
            fn deadline(&self) -> Option<Millis> {
                self.cfg.deadline
            }
            fn on_body(&mut self, body: Body) -> Result<(), Rejection> {
                $role::on_body(self, body)
            }
        }
    };
}
pub(super) use serving;

/// [`StateMachine::next_timeout`] of a [`Serving`] role: its deadline, until it has
/// finished.
pub(super) fn next_timeout<S: Serving>(role: &S) -> Option<Millis> {
    if role.finished() {
        None
    } else {
        role.deadline()
    }
}

/// [`StateMachine::handle`] of a [`Serving`] role.
pub(super) fn serve<S: Serving>(role: &mut S, bytes: &[u8]) -> Result<(), Rejection> {
    let run_id = role.run_id().to_owned();
    let msg = decode(bytes, &run_id, role.rejected())?;
    if role.finished() {
        return Ok(());
    }
    super::protocol::each_body(msg, |body| {
        if role.finished() {
            Ok(())
        } else {
            role.on_body(body)
        }
    })
}

/// Most operations a branch keeps that arrived ahead of their turn (while it syncs).
const AHEAD_LIMIT: usize = 1_000_000;

/// A branch's settings.
#[derive(Debug, Clone)]
pub struct BranchConfig {
    pub run_id: String,
    pub id: PeerId,
    pub mode: Mode,
    pub branches: Vec<PeerId>,
    pub customers: Vec<PeerId>,
    pub balance: u64,
    /// Past this the branch reports and stops (`--run-timeout`).
    pub deadline: Option<Millis>,
    /// Keep the log of every operation for the checker (`--no-record`: not).
    pub record: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the sequencer's `state`.
    Syncing,
    Ready,
}

#[derive(Debug, Clone)]
enum Ahead {
    Op { origin: PeerId, op: Operation },
    End,
}

pub struct Branch {
    cfg: BranchConfig,
    ledger: Ledger,
    phase: Phase,
    synced_seq: u64,
    /// Requests that came while syncing, handled once the state is in.
    waiting: Vec<Operation>,
    /// Ordered operations (and the end) not yet applied, by number.
    ahead: BTreeMap<u64, Ahead>,
    /// Requests this branch must answer when they are applied: customer → req.
    pending: BTreeMap<PeerId, u64>,
    log: Vec<LogEntry>,
    answered_again: u64,
    rejected: u64,
    // --mode propagate
    propagated: u64,
    got: BTreeMap<PeerId, u64>,
    /// Propagations that came ahead of their turn (after a gap), by origin and number.
    early: BTreeMap<(PeerId, u64), Operation>,
    fins: BTreeMap<PeerId, u64>,
    end_seen: bool,
    out: VecDeque<Output<Message, BranchReport>>,
    finished: bool,
}

impl Branch {
    pub fn new(cfg: BranchConfig) -> Self {
        let phase = match cfg.mode {
            Mode::Ordered => Phase::Syncing,
            Mode::Propagate => Phase::Ready,
        };
        let mut b = Branch {
            ledger: Ledger::new(cfg.balance),
            phase,
            synced_seq: 0,
            waiting: Vec::new(),
            ahead: BTreeMap::new(),
            pending: BTreeMap::new(),
            log: Vec::new(),
            answered_again: 0,
            rejected: 0,
            propagated: 0,
            got: BTreeMap::new(),
            early: BTreeMap::new(),
            fins: BTreeMap::new(),
            end_seen: false,
            out: VecDeque::new(),
            finished: false,
            cfg,
        };
        if b.phase == Phase::Syncing {
            b.send(Route::Role(SEQUENCER), Body::Sync { branch: b.cfg.id });
        }
        b
    }

    fn send(&mut self, route: Route, body: Body) {
        publish(&mut self.out, &self.cfg.run_id, route, body);
    }

    fn refuse(&mut self, why: String) -> Result<(), Rejection> {
        self.rejected += 1;
        tracing::warn!(branch = self.cfg.id, %why, "rejected a delivery");
        Err(Rejection::Refused(why))
    }

    fn others(&self) -> Vec<PeerId> {
        self.cfg
            .branches
            .iter()
            .copied()
            .filter(|b| *b != self.cfg.id)
            .collect()
    }

    /// Sends every other branch its own message: `body(this branch, the other)`.
    fn send_others(&mut self, body: impl Fn(PeerId, PeerId) -> Body) {
        for to in self.others() {
            self.send(Route::Peer(to), body(self.cfg.id, to));
        }
    }

    fn reply(&mut self, last: Last) {
        self.send(
            Route::Client(last.customer),
            Body::Reply {
                branch: self.cfg.id,
                last,
            },
        );
    }

    fn apply(&mut self, seq: u64, origin: PeerId, op: &Operation, blind: bool) -> Last {
        let last = self.ledger.apply(seq, op, blind);
        if self.cfg.record {
            self.log.push(LogEntry {
                seq,
                origin,
                customer: op.customer,
                req: op.req,
                op: op.op,
                money: op.money,
                result: last.result,
                balance: self.ledger.balance,
            });
        }
        last
    }

    fn on_request(&mut self, op: Operation) {
        match self.ledger.seen(op.customer, op.req) {
            // The customer has its answer to this one and has moved on.
            Seen::Old => {}
            Seen::Applied(last) => {
                self.answered_again += 1;
                self.reply(last);
            }
            Seen::New => match self.cfg.mode {
                // Already asked for: it is on its way to the sequencer and back.
                Mode::Ordered if self.pending.get(&op.customer) == Some(&op.req) => {}
                Mode::Ordered => {
                    self.pending.insert(op.customer, op.req);
                    self.send(
                        Route::Role(SEQUENCER),
                        Body::Order {
                            branch: self.cfg.id,
                            op,
                        },
                    );
                }
                Mode::Propagate => {
                    let seq = self.ledger.seq + 1;
                    let last = self.apply(seq, self.cfg.id, &op, false);
                    if op.op != Op::Query && last.result == Outcome::Success {
                        self.propagated += 1;
                        let n = self.propagated;
                        self.send_others(|branch, to| Body::Propagate { branch, to, n, op });
                    }
                    self.reply(last);
                }
            },
        }
    }

    /// Applies the ordered operations whose turn it is.
    fn drain(&mut self) {
        while self.phase == Phase::Ready && !self.finished {
            let next = self.ledger.seq + 1;
            let Some(a) = self.ahead.remove(&next) else {
                return;
            };
            match a {
                Ahead::Op { origin, op } => {
                    let last = self.apply(next, origin, &op, false);
                    if self.pending.get(&op.customer) == Some(&op.req) {
                        self.pending.remove(&op.customer);
                        self.reply(last);
                    }
                }
                Ahead::End => self.finish(BranchEnd::Completed),
            }
        }
    }

    fn maybe_done_propagating(&mut self) {
        let all = self.others().iter().all(|b| {
            self.fins
                .get(b)
                .is_some_and(|sent| self.got.get(b).copied().unwrap_or(0) >= *sent)
        });
        if self.end_seen && all {
            self.finish(BranchEnd::Completed);
        }
    }

    fn finish(&mut self, outcome: BranchEnd) {
        if self.finished {
            return;
        }
        self.finished = true;
        let l = &self.ledger;
        let report = BranchReport {
            id: self.cfg.id,
            mode: self.cfg.mode,
            outcome,
            synced_seq: self.synced_seq,
            last_seq: l.seq,
            balance: l.balance,
            min_balance: l.min_balance,
            deposited: l.deposited,
            withdrawn: l.withdrawn,
            answered_again: self.answered_again,
            rejected: self.rejected,
            recorded: self.cfg.record,
            log: std::mem::take(&mut self.log),
        };
        let wrap = super::protocol::Report::Branch;
        publish_report(&mut self.out, &self.cfg.run_id, report, wrap);
    }

    /// One message (or one of a packed message's).
    fn on_body(&mut self, body: Body) -> Result<(), Rejection> {
        let ordered = self.cfg.mode == Mode::Ordered;
        match body {
            Body::Request { branch, op } => {
                if branch != self.cfg.id {
                    return self.refuse(format!("a request for branch {branch}"));
                }
                if !self.cfg.customers.contains(&op.customer) {
                    return self.refuse(format!(
                        "a request of customer {}, not of this run",
                        op.customer
                    ));
                }
                if self.phase == Phase::Syncing {
                    // Customers call one request at a time: this holds one per customer
                    // and the retries of it; past that a retry comes again anyway.
                    if self.waiting.len() < 4 * self.cfg.customers.len() + 16 {
                        self.waiting.push(op);
                    }
                } else {
                    self.on_request(op);
                }
                Ok(())
            }
            Body::Ordered { seq, branch, op } if ordered => {
                if !self.cfg.branches.contains(&branch) {
                    return self
                        .refuse(format!("an operation of branch {branch}, not of this run"));
                }
                if seq > self.ledger.seq && !self.ahead.contains_key(&seq) {
                    if self.ahead.len() >= AHEAD_LIMIT {
                        return self.refuse(format!("operation {seq} is too far ahead"));
                    }
                    self.ahead.insert(seq, Ahead::Op { origin: branch, op });
                }
                self.drain();
                Ok(())
            }
            Body::End {
                seq,
                balance,
                deposited,
                withdrawn,
                ..
            } if ordered && self.phase == Phase::Syncing => {
                // The run ended before this branch got its state: the end's is the same.
                let done = seq.saturating_sub(1);
                self.ledger = Ledger::from_state(done, balance, deposited, withdrawn, &[]);
                self.synced_seq = done;
                self.phase = Phase::Ready;
                self.finish(BranchEnd::Completed);
                Ok(())
            }
            Body::End { seq, .. } if ordered => {
                if seq > self.ledger.seq {
                    self.ahead.insert(seq, Ahead::End);
                }
                self.drain();
                Ok(())
            }
            Body::State {
                to,
                seq,
                balance,
                deposited,
                withdrawn,
                last,
            } if ordered => {
                if to != self.cfg.id {
                    return self.refuse(format!("a state for branch {to}"));
                }
                if self.phase == Phase::Syncing {
                    self.ledger = Ledger::from_state(seq, balance, deposited, withdrawn, &last);
                    self.synced_seq = seq;
                    self.phase = Phase::Ready;
                    self.ahead = self.ahead.split_off(&(seq + 1));
                    for op in std::mem::take(&mut self.waiting) {
                        self.on_request(op);
                    }
                    self.drain();
                }
                Ok(())
            }
            Body::End { .. } => {
                if !self.end_seen {
                    self.end_seen = true;
                    let sent = self.propagated;
                    self.send_others(|branch, to| Body::Fin { branch, to, sent });
                }
                self.maybe_done_propagating();
                Ok(())
            }
            Body::Propagate { branch, to, n, op } if !ordered => {
                if to != self.cfg.id
                    || branch == self.cfg.id
                    || !self.cfg.branches.contains(&branch)
                {
                    return self.refuse(format!("a propagation from {branch} to {to}"));
                }
                // Each origin's propagations in their order, each once.
                let got = self.got.get(&branch).copied().unwrap_or(0);
                if n > got && self.early.len() < AHEAD_LIMIT {
                    self.early.insert((branch, n), op);
                }
                let mut next = got + 1;
                while let Some(op) = self.early.remove(&(branch, next)) {
                    let seq = self.ledger.seq + 1;
                    self.apply(seq, branch, &op, true);
                    self.got.insert(branch, next);
                    next += 1;
                }
                self.maybe_done_propagating();
                Ok(())
            }
            Body::Fin { branch, to, sent } if !ordered => {
                if to != self.cfg.id || !self.cfg.branches.contains(&branch) {
                    return self.refuse(format!("a fin from {branch} to {to}"));
                }
                self.fins.insert(branch, sent);
                self.maybe_done_propagating();
                Ok(())
            }
            b => {
                let mode = if ordered { "ordered" } else { "propagate" };
                self.refuse(format!(
                    "a {} is not for a branch in --mode {mode}",
                    b.kind()
                ))
            }
        }
    }
}

serving!(Branch);

impl StateMachine for Branch {
    type Msg = Message;
    type Finished = BranchReport;

    fn handle(&mut self, _now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        serve(self, bytes)
    }

    fn next_timeout(&self) -> Option<Millis> {
        next_timeout(self)
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            self.finish(BranchEnd::DeadlineExpired);
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, BranchReport>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(BranchEnd::Interrupted { reason });
    }

    /// Ordered: a step's `order`s go to the sequencer as one message. Propagate: every
    /// message on its own, as the original sends them.
    fn pack(&self, step: Vec<(Route, Message)>, max: usize) -> Vec<(Route, Message)> {
        match self.cfg.mode {
            Mode::Ordered => super::protocol::pack(&self.cfg.run_id, step, max),
            Mode::Propagate => step,
        }
    }
}
