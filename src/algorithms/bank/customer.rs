//! A customer: calls its branch (or an event's `dest`) request/reply, one event at a time,
//! in order. A request carries the customer's id and its number `req` (the correlation
//! id); the answer comes to the customer's own inbox. No answer within `retry` sends the
//! same request again (then after twice as long, up to 32×) (the branch answers a request it already applied from its table, so
//! a retry is never applied twice); no answer within `timeout` gives up with a failure
//! that names the branch. At the end it tells the sequencer it is `done` and reports every
//! call with the times it was sent and answered, on a clock it names.

use super::branch::{decode, publish, publish_report};
use super::input::Event;
use super::protocol::{Body, Message, Op, Operation, Outcome, SEQUENCER};
use super::report::{Call, CustomerEnd, CustomerReport};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use std::collections::VecDeque;

/// A customer's settings.
#[derive(Debug, Clone)]
pub struct CustomerConfig {
    pub run_id: String,
    pub id: PeerId,
    pub events: Vec<Event>,
    /// Send a request again after this long without an answer.
    pub retry_ms: Millis,
    /// Give up on a request after this long without an answer.
    pub timeout_ms: Millis,
    /// The clock the times are read on, and its value at the driver's time 0 (ms), so
    /// that customers of different processes on one machine can be compared.
    pub clock: String,
    pub clock_base: u64,
    /// Keep every call for the report (`--no-record`: only the counts).
    pub record: bool,
    /// Wait for the sequencer's `go` before the first call (customers one after
    /// another).
    pub wait_for_go: bool,
    /// Past this the customer reports and stops, whatever it was doing
    /// (`--run-timeout`).
    pub deadline: Option<Millis>,
}

struct Current {
    idx: usize,
    sent_at: Millis,
    last_sent: Millis,
    retries: u32,
}

pub struct Customer {
    cfg: CustomerConfig,
    started: bool,
    /// When to make the first call (not waiting for `go`): the driver's first timer
    /// round, so that the time to connect is not counted as the first call's latency.
    start_at: Option<Millis>,
    cur: Option<Current>,
    log: Vec<Call>,
    calls: u64,
    answered: u64,
    deposited: u64,
    withdrawn: u64,
    rejected: u64,
    out: VecDeque<Output<Message, CustomerReport>>,
    finished: bool,
}

impl Customer {
    /// A customer that sends its first request at `now` (or when told `go`).
    pub fn new(cfg: CustomerConfig, now: Millis) -> Self {
        Customer {
            started: false,
            start_at: (!cfg.wait_for_go).then_some(now),
            cfg,
            cur: None,
            log: Vec::new(),
            calls: 0,
            answered: 0,
            deposited: 0,
            withdrawn: 0,
            rejected: 0,
            out: VecDeque::new(),
            finished: false,
        }
    }

    fn send(&mut self, route: Route, body: Body) {
        publish(&mut self.out, &self.cfg.run_id, route, body);
    }

    /// Calls event `idx` (its request number is `idx + 1`), or ends after the last.
    fn call(&mut self, idx: usize, now: Millis) {
        let Some(ev) = self.cfg.events.get(idx).cloned() else {
            self.end(CustomerEnd::Completed);
            return;
        };
        self.calls += 1;
        self.cur = Some(Current {
            idx,
            sent_at: now,
            last_sent: now,
            retries: 0,
        });
        self.request(&ev, idx);
    }

    fn request(&mut self, ev: &Event, idx: usize) {
        let op = Operation {
            customer: self.cfg.id,
            req: idx as u64 + 1,
            op: ev.op,
            money: ev.money,
        };
        self.send(
            Route::Peer(ev.branch),
            Body::Request {
                branch: ev.branch,
                op,
            },
        );
    }

    fn record(&mut self, cur: &Current, answer: Option<(Outcome, Option<i64>, u64)>, now: Millis) {
        let ev = &self.cfg.events[cur.idx];
        if let Some((Outcome::Success, _, _)) = answer {
            match ev.op {
                Op::Deposit => self.deposited += ev.money,
                Op::Withdraw => self.withdrawn += ev.money,
                Op::Query => {}
            }
        }
        if answer.is_some() {
            self.answered += 1;
        }
        if self.cfg.record {
            let base = self.cfg.clock_base;
            self.log.push(Call {
                req: cur.idx as u64 + 1,
                event: ev.id,
                op: ev.op,
                money: ev.money,
                branch: ev.branch,
                result: answer.map(|a| a.0),
                balance: answer.and_then(|a| a.1),
                seq: answer.map(|a| a.2),
                sent_at: base + cur.sent_at,
                answered_at: answer.map(|_| base + now),
                retries: cur.retries,
            });
        }
    }

    /// When the current request is sent again: `retry`, doubling with every retry up
    /// to 32×, so that a slow branch is not buried under copies of the same request.
    fn retry_at(&self, c: &Current) -> Millis {
        c.last_sent + (self.cfg.retry_ms << c.retries.min(5))
    }

    fn end(&mut self, outcome: CustomerEnd) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.cur = None;
        self.send(
            Route::Role(SEQUENCER),
            Body::Done {
                customer: self.cfg.id,
            },
        );
        let report = CustomerReport {
            id: self.cfg.id,
            clock: self.cfg.clock.clone(),
            outcome,
            calls: self.calls,
            answered: self.answered,
            deposited: self.deposited,
            withdrawn: self.withdrawn,
            rejected: self.rejected,
            recorded: self.cfg.record,
            log: std::mem::take(&mut self.log),
        };
        let wrap = super::protocol::Report::Customer;
        publish_report(&mut self.out, &self.cfg.run_id, report, wrap);
    }
}

impl StateMachine for Customer {
    type Msg = Message;
    type Finished = CustomerReport;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        let msg = decode(bytes, &self.cfg.run_id, &mut self.rejected)?;
        // A branch packs what it sends one customer in one step (an answer and a retry's
        // answer again): one body at a time.
        super::protocol::each_body(msg, |body| {
            let r = self.on_body(now, body);
            if r.is_err() {
                self.rejected += 1;
            }
            r
        })
    }

    fn next_timeout(&self) -> Option<Millis> {
        self.next_wake()
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.wake(now)
    }

    fn poll_output(&mut self) -> Option<Output<Message, CustomerReport>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.end(CustomerEnd::Interrupted { reason });
    }
}

impl Customer {
    fn on_body(&mut self, now: Millis, body: Body) -> Result<(), Rejection> {
        if let Body::Go { customer } = body {
            if customer != self.cfg.id {
                return Err(Rejection::Refused(format!("a go for customer {customer}")));
            }
            if !self.started && !self.finished {
                self.started = true;
                self.call(0, now);
            }
            return Ok(());
        }
        let Body::Reply { branch, last } = body else {
            return Err(Rejection::Refused(format!(
                "a {} is not for a customer",
                body.kind()
            )));
        };
        if last.customer != self.cfg.id {
            return Err(Rejection::Refused(format!(
                "an answer for customer {}",
                last.customer
            )));
        }
        let Some(cur) = self.cur.take() else {
            return Ok(());
        };
        let ev = &self.cfg.events[cur.idx];
        if last.req != cur.idx as u64 + 1 {
            // A late copy of an earlier answer: already taken.
            self.cur = Some(cur);
            return Ok(());
        }
        if last.op != ev.op || branch != ev.branch {
            let why = format!(
                "request {} was a {} at branch {}, the answer says a {} at branch {branch}",
                last.req,
                ev.op.name(),
                ev.branch,
                last.op.name()
            );
            self.cur = Some(cur);
            return Err(Rejection::Refused(why));
        }
        self.record(&cur, Some((last.result, last.money, last.seq)), now);
        self.call(cur.idx + 1, now);
        Ok(())
    }

    fn next_wake(&self) -> Option<Millis> {
        if self.finished {
            return None;
        }
        let call = match (&self.start_at, &self.cur) {
            (Some(at), _) => Some(*at),
            (None, Some(c)) => Some(self.retry_at(c).min(c.sent_at + self.cfg.timeout_ms)),
            (None, None) => None,
        };
        [call, self.cfg.deadline].into_iter().flatten().min()
    }

    fn wake(&mut self, now: Millis) {
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            if let Some(cur) = self.cur.take() {
                self.record(&cur, None, now);
            }
            self.end(CustomerEnd::DeadlineExpired);
            return;
        }
        if let Some(at) = self.start_at
            && now >= at
        {
            self.start_at = None;
            if !self.started && !self.finished {
                self.started = true;
                self.call(0, now);
            }
            return;
        }
        let Some(mut cur) = self.cur.take() else {
            return;
        };
        if now >= cur.sent_at + self.cfg.timeout_ms {
            let branch = self.cfg.events[cur.idx].branch;
            self.record(&cur, None, now);
            self.end(CustomerEnd::GaveUp {
                req: cur.idx as u64 + 1,
                branch,
                after_ms: now - cur.sent_at,
            });
        } else if now >= self.retry_at(&cur) {
            cur.last_sent = now;
            cur.retries += 1;
            let ev = self.cfg.events[cur.idx].clone();
            self.request(&ev, cur.idx);
            self.cur = Some(cur);
        } else {
            self.cur = Some(cur);
        }
    }
}
