//! The wire format of the logical-clock exercise.
//!
//! Every message is a JSON object with the protocol version `v`, the run id `run`, the
//! sender `from` (a process id, 1..=N) and an explicit `type`:
//!
//! ```json
//! {"v":1,"run":"r1","from":1,"type":"msg","to":2,"seq":1,"lamport":4,"vc":[3,1,0]}
//! {"v":1,"run":"r1","from":1,"type":"done","to":2,"seq":2,"sent":1}
//! {"v":1,"run":"r1","from":1,"type":"report","report":{...}}
//! ```
//!
//! `msg` and `done` travel on one channel per (sender, receiver) and share its sequence
//! numbers (1, 2, …, see [`crate::contract::fifo`]): `done` is the last message on its
//! channel, so a receiver that has applied it in FIFO order has applied every `msg` before
//! it. `sent` repeats that count in plain words (`seq - 1`) so a reader of a log does not
//! have to know the rule. `report` goes to the results queue.
//!
//! Decoding is strict, as in the list agreement: the size first, then the version (before
//! the shape: a v2 message may carry fields v1 does not know), then the shape with no
//! unknown field at any level, then the run. Checks that need the run's size (is `from` a
//! process, is `vc` N entries long) belong to [`super::process`].

use super::report::Report;
use crate::contract::PeerId;
use serde::{Deserialize, Serialize};

/// Protocol version carried in every message (`"v": 1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest body accepted, in bytes. A report is the biggest message: about 40 bytes plus
/// 8 per process for each event, so this allows reports of tens of thousands of events
/// while keeping a stray publisher from making a process buffer megabytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What a message says, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::VariantNames))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Body {
    /// An application message: the send event's clocks, on channel `from → to`.
    Msg {
        to: PeerId,
        seq: u64,
        lamport: u64,
        vc: Vec<u64>,
    },
    /// The sender's last message to `to`: it sent `sent` messages before this one. Not an
    /// event of the computation (it carries no clocks): it only tells the receiver when it
    /// has heard everything.
    Done { to: PeerId, seq: u64, sent: u64 },
    /// A process's final record, to the results queue.
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
    use crate::algorithms::clocks::report::{Counts, Event, EventKind, Outcome};

    #[test]
    fn messages_round_trip_in_the_documented_form() {
        let msg = Message::new(
            "r1",
            1,
            Body::Msg {
                to: 2,
                seq: 1,
                lamport: 4,
                vc: vec![3, 1, 0],
            },
        );
        let json = String::from_utf8(msg.encode().expect("encodes")).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"run":"r1","from":1,"type":"msg","to":2,"seq":1,"lamport":4,"vc":[3,1,0]}"#
        );
        assert_eq!(Message::decode(json.as_bytes(), "r1").unwrap(), msg);
        let done = Message::new(
            "r1",
            1,
            Body::Done {
                to: 2,
                seq: 2,
                sent: 1,
            },
        );
        let json = String::from_utf8(done.encode().expect("encodes")).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"run":"r1","from":1,"type":"done","to":2,"seq":2,"sent":1}"#
        );
        assert_eq!(Message::decode(json.as_bytes(), "r1").unwrap(), done);
    }

    #[test]
    fn a_report_round_trips_and_is_read_from_the_results_queue() {
        let report = Report {
            id: 2,
            outcome: Outcome::Completed,
            events: vec![
                Event {
                    index: 1,
                    kind: EventKind::Internal,
                    lamport: 1,
                    vc: vec![0, 1],
                },
                Event {
                    index: 2,
                    kind: EventKind::Send { to: 1, seq: 1 },
                    lamport: 2,
                    vc: vec![0, 2],
                },
                Event {
                    index: 3,
                    kind: EventKind::Receive { from: 1, seq: 1 },
                    lamport: 5,
                    vc: vec![3, 3],
                },
            ],
            counts: Counts {
                internal: 1,
                sent: 1,
                received: 1,
            },
            rejected: 4,
        };
        let bytes = Message::new(
            "r",
            2,
            Body::Report {
                report: report.clone(),
            },
        )
        .encode()
        .expect("encodes");
        assert_eq!(decode_report(&bytes, "r").unwrap(), report);
        let forged = Message::new("r", 3, Body::Report { report })
            .encode()
            .expect("encodes");
        assert_eq!(decode_report(&forged, "r").unwrap_err().label(), "refused");
        let done = Message::new(
            "r",
            1,
            Body::Done {
                to: 2,
                seq: 1,
                sent: 0,
            },
        );
        assert_eq!(
            decode_report(&done.encode().expect("encodes"), "r")
                .unwrap_err()
                .label(),
            "refused"
        );
    }

    /// Every message example in docs/clocks.md decodes and re-encodes to the same JSON: the
    /// document cannot drift from the code.
    #[test]
    fn the_documented_examples_are_valid_messages() {
        let doc = include_str!("../../../docs/clocks.md");
        let kinds = crate::contract::envelope::assert_documented_examples(doc, Message::decode);
        assert_eq!(kinds, ["msg", "done", "report"]);
    }

    #[test]
    fn decode_rejects_each_kind_of_bad_input() {
        let ok = r#"{"v":1,"run":"r","from":1,"type":"done","to":2,"seq":1,"sent":0}"#;
        assert!(Message::decode(ok.as_bytes(), "r").is_ok());
        let cases = [
            (ok.replace("\"v\":1", "\"v\":2"), "version"),
            (ok.replace("\"v\":1,", ""), "version"),
            (ok.replace("\"run\":\"r\"", "\"run\":\"x\""), "wrong_run"),
            (ok.replace("\"done\"", "\"teleport\""), "malformed"),
            (
                ok.replace("\"sent\":0", "\"sent\":0,\"extra\":1"),
                "malformed",
            ),
            (ok.replace("\"seq\":1", "\"seq\":-1"), "malformed"),
            ("{not json".to_string(), "malformed"),
            (
                r#"{"v":1,"run":"r","from":1,"type":"report","report":{"id":1,"extra":1}}"#
                    .to_string(),
                "malformed",
            ),
        ];
        for (bytes, label) in cases {
            assert_eq!(
                Message::decode(bytes.as_bytes(), "r").unwrap_err().label(),
                label,
                "{bytes}"
            );
        }
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(Message::decode(&big, "r").unwrap_err().label(), "too_large");
    }
}
