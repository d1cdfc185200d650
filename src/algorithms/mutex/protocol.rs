//! The mutual exclusion wire format: JSON objects with the protocol version `v`, the run id
//! `run`, the sender `from` and an explicit `type`.
//!
//! ```json
//! {"v":2,"run":"r1","from":2,"type":"request","to":3,"seq":1,"lamport":7,"vc":[3,4,1]}
//! ```
//!
//! `request`, `reply` and `done` travel point to point (`Route::Peer(to)`) and carry the
//! sender's Lamport clock and vector clock as stamped at the send event, and `seq`, the
//! message's number on its channel (sender → `to`), which makes delivery exactly once and
//! FIFO ([`crate::contract::fifo`]). `to` lets a receiver refuse a message that is not for
//! it. `report` travels on the results route and carries a process's [`Report`].
//!
//! Decoding is strict: another version, another run, an unknown field or an oversized body
//! is a [`Rejection`]; the run goes on.

pub use super::clock::{Lamport, VectorClock};
use super::report::Report;
use crate::contract::PeerId;
use serde::{Deserialize, Serialize};

/// Protocol version carried in every message (`"v": 2`). Version 2 logs `done` events in
/// the report (`kind: "done"`), which a version 1 reader refuses: a participant of either
/// version refuses the other's messages as another version, both numbers named.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest body accepted. A report logs every request and reply a process sent and
/// received with its vector clock: at N = 64 and K = 16 about 2 × 2 × 63 × 16 records of
/// ~300 bytes, 1.2 MB. 4 MiB keeps a misbehaving publisher from making a process buffer
/// more.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The message types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::VariantNames))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Body {
    /// "May I enter?" Its timestamp is `(lamport, from)`: the older request wins.
    Request {
        to: PeerId,
        seq: u64,
        lamport: Lamport,
        vc: VectorClock,
    },
    /// "Go ahead": the answer to the receiver's current request.
    Reply {
        to: PeerId,
        seq: u64,
        lamport: Lamport,
        vc: VectorClock,
    },
    /// The sender has made its K entries: it makes no more requests. `requests` and
    /// `replies` count what it sent to `to` before this on the channel. It may still send
    /// `to` replies afterwards (to requests `to` makes later); `to` applies them before it
    /// can finish, since it needs them to enter.
    Done {
        to: PeerId,
        seq: u64,
        lamport: Lamport,
        vc: VectorClock,
        requests: u64,
        replies: u64,
    },
    /// A process's final report, on the results route.
    Report { report: Report },
}

/// A whole message as it travels: the shared envelope ([`crate::contract::Envelope`]),
/// `from` the sending process.
pub type Message = crate::contract::Envelope<PeerId, Body>;

crate::contract::body!(Body, version: PROTOCOL_VERSION, max_bytes: MAX_BODY_BYTES);

crate::contract::process_report!(Body, Report);

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str =
        r#"{"v":2,"run":"r1","from":2,"type":"request","to":3,"seq":1,"lamport":7,"vc":[3,4,1]}"#;

    #[test]
    fn the_documented_example_round_trips() {
        let request = Body::Request {
            to: 3,
            seq: 1,
            lamport: 7,
            vc: vec![3, 4, 1],
        };
        Message::new("r1", 2, request).assert_round_trip(EXAMPLE);
    }

    #[test]
    fn decode_rejects_each_kind_of_bad_input() {
        let label = |s: &str| Message::decode(s.as_bytes(), "r1").expect_err(s).label();
        // A version 1 message (before reports logged `done`) is another version.
        assert_eq!(label(&EXAMPLE.replace("\"v\":2", "\"v\":1")), "version");
        assert_eq!(label(&EXAMPLE.replace("\"v\":2,", "")), "version");
        assert_eq!(label(&EXAMPLE.replace("r1", "r2")), "wrong_run");
        assert_eq!(label(&EXAMPLE.replace("}", ",\"x\":1}")), "malformed");
        assert_eq!(label(&EXAMPLE.replace("request", "teleport")), "malformed");
        assert_eq!(label(&EXAMPLE.replace("\"seq\":1,", "")), "malformed");
        Message::assert_refuses_garbage();
    }

    #[test]
    fn only_a_report_of_its_sender_is_a_report() {
        assert_eq!(
            decode_report(EXAMPLE.as_bytes(), "r1")
                .expect_err("a request")
                .label(),
            "refused"
        );
        let report = Report::empty(2, super::super::report::Outcome::Completed);
        let ok = Message::new("r1", 2, Body::Report { report })
            .encode()
            .expect("encodes");
        assert_eq!(decode_report(&ok, "r1").expect("report").id, 2);
        let forged = String::from_utf8(ok)
            .expect("utf8")
            .replacen("\"from\":2", "\"from\":3", 1);
        assert!(decode_report(forged.as_bytes(), "r1").is_err());
    }
}
