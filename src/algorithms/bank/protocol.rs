//! The bank's wire format: JSON objects with the protocol version `v`, the run id `run` and
//! an explicit `type` (normative text: docs/PROTOCOL.md §15).
//!
//! ```json
//! {"v":1,"run":"r1","type":"request","branch":2,"op":{"customer":2,"req":1,"op":"deposit","money":170}}
//! {"v":1,"run":"r1","type":"reply","branch":2,"last":{"customer":2,"req":1,"op":"deposit","result":"success","money":null,"seq":4}}
//! ```
//!
//! | type | from → to | route |
//! |---|---|---|
//! | `request` | customer → branch | `Peer(branch)` |
//! | `reply` | branch → customer | `Client(customer)` |
//! | `order` | branch → sequencer | `Role("sequencer")` |
//! | `ordered` | sequencer → every branch | `Peer(b)` |
//! | `sync` / `state` | branch → sequencer / back | `Role("sequencer")` / `Peer(b)` |
//! | `done` | customer → sequencer | `Role("sequencer")` |
//! | `go` | sequencer → customer (one after another) | `Client(customer)` |
//! | `end` | sequencer → every branch | `Peer(b)` |
//! | `propagate` / `fin` | branch → branch (`--mode propagate`) | `Peer(b)` |
//! | `report` | anyone → the results | `Results` |
//!
//! A request's correlation id is `(customer, req)`: `req` counts the customer's requests
//! from 1, and a retry carries the same one, so a branch answers it again instead of
//! applying it twice. Decoding is strict: another version, another run, an unknown field
//! or an oversized body is a [`Rejection`]; the run goes on.

pub use super::ops::{Mode, Op, Outcome};
use super::report::{BranchReport, CustomerReport, SequencerReport};
use crate::contract::{PeerId, Rejection, Route};
use serde::{Deserialize, Serialize};

/// Protocol version carried in every message (`"v": 1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest body accepted. A branch's report carries its log of every operation it applied
/// (about 150 bytes each); 64 MiB holds 400,000 of them. `--no-record` drops the log.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest amount of money in one operation or balance: a trillion, so that a run of a
/// million operations stays far inside `i64`.
pub const MAX_MONEY: u64 = 1_000_000_000_000;

/// The sequencer's role name (its inbox `sync-run.bank.<run>.sequencer`).
pub const SEQUENCER: &str = "sequencer";

/// One operation as it travels: who asked, which request, what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub customer: PeerId,
    pub req: u64,
    pub op: Op,
    /// 0 for a query.
    pub money: u64,
}

/// What a branch (and the sequencer) remembers of a customer's latest applied request,
/// so that a retry is answered again and never applied twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Last {
    pub customer: PeerId,
    pub req: u64,
    pub op: Op,
    pub result: Outcome,
    /// The balance a query returned (negative only in `--mode propagate`).
    pub money: Option<i64>,
    /// Its place in the order (`--mode propagate`: the answering branch's own count).
    pub seq: u64,
}

/// The message types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::VariantNames))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Body {
    /// A customer's call to `branch`.
    Request { branch: PeerId, op: Operation },
    /// A branch's answer, to the customer's inbox.
    Reply { branch: PeerId, last: Last },
    /// A branch asks the sequencer to place a request in the order.
    Order { branch: PeerId, op: Operation },
    /// The sequencer's `seq`-th operation, to every branch; `branch` answers it.
    Ordered {
        seq: u64,
        branch: PeerId,
        op: Operation,
    },
    /// A branch that starts (or restarts) asks for the state so far.
    Sync { branch: PeerId },
    /// The state after operation `seq`, to the branch that asked.
    State {
        to: PeerId,
        seq: u64,
        balance: i64,
        deposited: u64,
        withdrawn: u64,
        last: Vec<Last>,
    },
    /// A customer has made all its calls (or gave up).
    Done { customer: PeerId },
    /// Customers one after another (the default): the sequencer tells the next one to
    /// start, in input order.
    Go { customer: PeerId },
    /// The run is over after operation `seq - 1`; a branch reports once it applied them.
    /// It carries the state after them, so that a branch still waiting for its `state`
    /// (its `sync` came after the end) ends in that state too.
    End {
        seq: u64,
        reason: String,
        balance: i64,
        deposited: u64,
        withdrawn: u64,
    },
    /// `--mode propagate`: the `n`-th write `branch` applied itself, to `to`.
    Propagate {
        branch: PeerId,
        to: PeerId,
        n: u64,
        op: Operation,
    },
    /// `--mode propagate`: `branch` has sent `to` all its `sent` propagations.
    Fin {
        branch: PeerId,
        to: PeerId,
        sent: u64,
    },
    /// A participant's final report, on the results route.
    Report { report: Report },
    /// Several messages to one receiver, in order, as one delivery (the sequencer's
    /// `ordered` and a branch's `order`s under load: one publish and one confirm for
    /// many). Never nested.
    Packed { bodies: Vec<Body> },
}

/// The three kinds of report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Report {
    Branch(BranchReport),
    Customer(CustomerReport),
    Sequencer(SequencerReport),
}

/// Who reported: the key the reader of the results keeps reports by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    Sequencer,
    Branch(PeerId),
    Customer(PeerId),
}

impl Report {
    pub fn who(&self) -> Who {
        match self {
            Report::Branch(r) => Who::Branch(r.id),
            Report::Customer(r) => Who::Customer(r.id),
            Report::Sequencer(_) => Who::Sequencer,
        }
    }
}

/// A whole message as it travels: the shared envelope ([`crate::contract::Envelope`]),
/// with no `from` (a message says who it concerns in its body: `branch`, `customer`).
pub type Message = crate::contract::Envelope<(), Body>;

crate::contract::body!(Body, version: PROTOCOL_VERSION, max_bytes: MAX_BODY_BYTES, check: check);

/// The amounts and request ids of every operation (a packed message's too), and no
/// packed message inside a packed one.
fn check(body: &Body) -> Result<(), Rejection> {
    let inner: &[Body] = match body {
        Body::Packed { bodies } => bodies,
        b => std::slice::from_ref(b),
    };
    for b in inner {
        let op = match b {
            Body::Request { op, .. }
            | Body::Order { op, .. }
            | Body::Ordered { op, .. }
            | Body::Propagate { op, .. } => Some(op),
            Body::Packed { .. } => {
                return Err(Rejection::Refused(
                    "a packed message inside a packed one".into(),
                ));
            }
            _ => None,
        };
        if let Some(op) = op {
            if op.money > MAX_MONEY {
                return Err(Rejection::Refused(format!(
                    "an amount of {} exceeds {MAX_MONEY}",
                    op.money
                )));
            }
            if op.req == 0 {
                return Err(Rejection::Refused("request ids start at 1".into()));
            }
        }
    }
    Ok(())
}

impl Body {
    /// The bodies this one carries, in order (itself, or a packed message's).
    pub fn unpacked(self) -> Vec<Body> {
        match self {
            Body::Packed { bodies } => bodies,
            b => vec![b],
        }
    }
}

/// Hands each of `msg`'s bodies (one, or a packed message's) to `on`, in order. The
/// delivery is refused only when every body was (with the first reason); a body refused
/// among accepted ones is counted and logged by `on`, and the others still apply.
pub fn each_body(
    msg: Message,
    mut on: impl FnMut(Body) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    let mut accepted = false;
    let mut refused = None;
    for body in msg.body.unpacked() {
        match on(body) {
            Ok(()) => accepted = true,
            Err(e) => refused = refused.or(Some(e)),
        }
    }
    match refused {
        Some(e) if !accepted => Err(e),
        _ => Ok(()),
    }
}

/// Packs one step's messages: those to one receiver go as one `packed` message (at most
/// `max` to a packet), keeping their order; receivers come in the order of their first
/// message. A receiver with one message gets it as it is.
pub fn pack(run: &str, step: Vec<(Route, Message)>, max: usize) -> Vec<(Route, Message)> {
    let mut groups: Vec<(Route, Vec<Body>)> = Vec::new();
    for (route, msg) in step {
        match groups.iter_mut().find(|g| g.0 == route) {
            Some(g) => g.1.push(msg.body),
            None => groups.push((route, vec![msg.body])),
        }
    }
    let mut out = Vec::new();
    for (route, bodies) in groups {
        let mut bodies = bodies.into_iter().peekable();
        while bodies.peek().is_some() {
            let mut chunk: Vec<Body> = bodies.by_ref().take(max.max(1)).collect();
            let body = if chunk.len() == 1 {
                chunk.remove(0)
            } else {
                Body::Packed { bodies: chunk }
            };
            out.push((route, Message::new(run, (), body)));
        }
    }
    out
}

/// A report from the results queue, if it is one of this run's.
pub fn decode_report(bytes: &[u8], run: &str) -> Result<Report, Rejection> {
    match Message::decode(bytes, run)?.body {
        Body::Report { report } => Ok(report),
        b => Err(Rejection::Refused(format!(
            "a {} on the results route",
            b.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let m = Message::new(
            "r1",
            (),
            Body::Request {
                branch: 2,
                op: Operation {
                    customer: 2,
                    req: 1,
                    op: Op::Deposit,
                    money: 170,
                },
            },
        );
        m.assert_round_trip(
            r#"{"v":1,"run":"r1","type":"request","branch":2,"op":{"customer":2,"req":1,"op":"deposit","money":170}}"#,
        );
        let big = br#"{"v":1,"run":"r1","type":"request","branch":2,"op":{"customer":2,"req":1,"op":"deposit","money":1000000000001}}"#;
        assert!(matches!(
            Message::decode(big, "r1"),
            Err(Rejection::Refused(_))
        ));
        let extra = br#"{"v":1,"run":"r1","type":"sync","branch":2,"x":1}"#;
        assert!(matches!(
            Message::decode(extra, "r1"),
            Err(Rejection::Malformed(_))
        ));
        let neg = br#"{"v":1,"run":"r1","type":"request","branch":2,"op":{"customer":2,"req":1,"op":"deposit","money":-5}}"#;
        assert!(Message::decode(neg, "r1").is_err());
    }
}
