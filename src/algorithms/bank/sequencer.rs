//! The sequencer: the one participant that sets the total order. A branch that receives a
//! request asks it to place it (`order`); it gives the request the next number and sends
//! it to every branch (`ordered`), each over its own inbox, so every branch sees the same
//! numbers in the same order (one publisher to one queue stays in order). It keeps a
//! replica of its own ([`Ledger`]) to drop a second order of a request already placed (a
//! customer's retry) and to hand a (re)starting branch the state so far (`sync` →
//! `state`). When every customer has said `done` (or the run's deadline passes), it sends
//! `end` after the last operation, so every branch stops at the same place.
//!
//! In `--mode propagate` it orders nothing: it only tells the branches when the customers
//! are done.

use super::branch::{Serving, next_timeout, publish, publish_report, serve, serving};
use super::ledger::{Ledger, Seen};
use super::protocol::{Body, Message, Mode, SEQUENCER};
use super::report::SequencerReport;
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use std::collections::{BTreeSet, VecDeque};

/// The sequencer's settings (the same input as every branch's).
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub run_id: String,
    pub mode: Mode,
    pub branches: Vec<PeerId>,
    pub customers: Vec<PeerId>,
    pub balance: u64,
    /// Customers one after another, in input order (`customers`' order): each starts
    /// when the sequencer says `go`, after the one before is done.
    pub sequential: bool,
    /// Past this the run ends whoever is not done (`--run-timeout`).
    pub deadline: Option<Millis>,
}

pub struct Sequencer {
    cfg: SequencerConfig,
    ledger: Ledger,
    done: BTreeSet<PeerId>,
    sequenced: u64,
    duplicates: u64,
    syncs: u64,
    rejected: u64,
    out: VecDeque<Output<Message, SequencerReport>>,
    finished: bool,
}

impl Sequencer {
    pub fn new(cfg: SequencerConfig) -> Self {
        let mut s = Sequencer {
            ledger: Ledger::new(cfg.balance),
            cfg,
            done: BTreeSet::new(),
            sequenced: 0,
            duplicates: 0,
            syncs: 0,
            rejected: 0,
            out: VecDeque::new(),
            finished: false,
        };
        match s.cfg.customers.first() {
            None => s.end("there are no customers".into()),
            Some(&c) if s.cfg.sequential => s.send(Route::Client(c), Body::Go { customer: c }),
            Some(_) => {}
        }
        s
    }

    fn send(&mut self, route: Route, body: Body) {
        publish(&mut self.out, &self.cfg.run_id, route, body);
    }

    fn send_every_branch(&mut self, body: &Body) {
        for b in self.cfg.branches.clone() {
            self.send(Route::Peer(b), body.clone());
        }
    }

    fn refuse(&mut self, why: String) -> Result<(), Rejection> {
        self.rejected += 1;
        tracing::warn!(role = SEQUENCER, %why, "rejected a delivery");
        Err(Rejection::Refused(why))
    }

    fn end(&mut self, reason: String) {
        if self.finished {
            return;
        }
        let seq = self.ledger.seq + 1;
        self.send_every_branch(&Body::End {
            seq,
            reason: reason.clone(),
            balance: self.ledger.balance,
            deposited: self.ledger.deposited,
            withdrawn: self.ledger.withdrawn,
        });
        let report = SequencerReport {
            mode: self.cfg.mode,
            sequenced: self.sequenced,
            duplicates: self.duplicates,
            syncs: self.syncs,
            customers_done: self.done.iter().copied().collect(),
            end_reason: reason,
            end_seq: seq,
            balance: self.ledger.balance,
            rejected: self.rejected,
        };
        let wrap = super::protocol::Report::Sequencer;
        publish_report(&mut self.out, &self.cfg.run_id, report, wrap);
        self.finished = true;
    }

    /// One message (or one of a packed message's).
    fn on_body(&mut self, body: Body) -> Result<(), Rejection> {
        match body {
            Body::Order { branch, op } => {
                if !self.cfg.branches.contains(&branch) {
                    return self.refuse(format!("an order from branch {branch}, not of this run"));
                }
                if !self.cfg.customers.contains(&op.customer) {
                    return self.refuse(format!(
                        "an order for customer {}, not of this run",
                        op.customer
                    ));
                }
                if self.cfg.mode == Mode::Propagate {
                    return self
                        .refuse("an order in --mode propagate, which orders nothing".into());
                }
                match self.ledger.seen(op.customer, op.req) {
                    Seen::Old | Seen::Applied(_) => self.duplicates += 1,
                    Seen::New => {
                        let seq = self.ledger.seq + 1;
                        self.ledger.apply(seq, &op, false);
                        self.sequenced += 1;
                        self.send_every_branch(&Body::Ordered { seq, branch, op });
                    }
                }
                Ok(())
            }
            Body::Sync { branch } => {
                if !self.cfg.branches.contains(&branch) {
                    return self.refuse(format!("a sync from branch {branch}, not of this run"));
                }
                self.syncs += 1;
                let l = &self.ledger;
                let state = Body::State {
                    to: branch,
                    seq: l.seq,
                    balance: l.balance,
                    deposited: l.deposited,
                    withdrawn: l.withdrawn,
                    last: l.lasts(),
                };
                self.send(Route::Peer(branch), state);
                Ok(())
            }
            Body::Done { customer } => {
                if !self.cfg.customers.contains(&customer) {
                    return self.refuse(format!("done from customer {customer}, not of this run"));
                }
                if !self.done.insert(customer) {
                    return Ok(());
                }
                if self.done.len() == self.cfg.customers.len() {
                    self.end("every customer is done".into());
                } else if self.cfg.sequential {
                    let next = self
                        .cfg
                        .customers
                        .iter()
                        .copied()
                        .find(|c| !self.done.contains(c));
                    if let Some(c) = next {
                        self.send(Route::Client(c), Body::Go { customer: c });
                    }
                }
                Ok(())
            }
            b => self.refuse(format!("a {} is not for the sequencer", b.kind())),
        }
    }
}

serving!(Sequencer);

impl StateMachine for Sequencer {
    type Msg = Message;
    type Finished = SequencerReport;

    fn handle(&mut self, _now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        serve(self, bytes)
    }

    fn next_timeout(&self) -> Option<Millis> {
        next_timeout(self)
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            let missing: Vec<PeerId> = self
                .cfg
                .customers
                .iter()
                .copied()
                .filter(|c| !self.done.contains(c))
                .collect();
            self.end(format!(
                "the run's deadline passed; customers not done: {}",
                crate::verdict::ids(&missing)
            ));
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, SequencerReport>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.end(format!("interrupted: {reason}"));
    }

    /// A step's operations go to each branch as one message.
    fn pack(&self, step: Vec<(Route, Message)>, max: usize) -> Vec<(Route, Message)> {
        super::protocol::pack(&self.cfg.run_id, step, max)
    }
}
