//! The snapshot wire format: JSON objects with the protocol version `v`, the run id `run`,
//! the sender `from` (a node's id, or `"master"` / `"observer"`) and an explicit `type`.
//!
//! ```json
//! {"v":1,"run":"r1","from":1,"type":"channel","to":2,"seq":3,"content":{"kind":"transfer","amount":300}}
//! ```
//!
//! Three kinds of traffic (normative text: docs/PROTOCOL.md §14):
//! - on a channel, node to node (`channel`): a transfer, a marker or, in the random mode,
//!   the close that ends the channel. `seq` numbers the messages of one channel (1, 2, …):
//!   the receiver takes them in that order, exactly once, whatever the broker redelivers;
//! - commands and their answers between the master, the observer and the nodes, each
//!   carrying `cmd`, the master's command number, which makes a redelivered command a
//!   duplicate the receiver ignores;
//! - a node's final `report`, on the results route.
//!
//! Decoding is strict: another version, another run, an unknown field or an oversized body
//! is a [`Rejection`]; the run goes on.

pub use super::channel::{Content, Money, SnapshotId};
use super::report::{NodeReport, Recorded};
use crate::contract::{PeerId, Rejection};
use serde::{Deserialize, Serialize};

/// Protocol version carried in every message (`"v": 1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest body accepted. A node's report logs every message it sent and took: 100 000
/// events of ~80 bytes is 8 MB.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The master's command number: 1, 2, … in the order it issued them.
pub type Cmd = u64;

/// The two named participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Observer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Observer => "observer",
        }
    }
}

/// Who sent a message: a node (by id) or a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Who {
    Node(PeerId),
    Role(Role),
}

/// A message a node put on a channel (answers say which, so the master knows which
/// channels hold something without holding their content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Put {
    pub to: PeerId,
    pub seq: u64,
}

/// The random mode's parameters, given to every node when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auto {
    /// Transfers this node makes.
    pub transfers: u32,
    /// Snapshots of the run (numbered 1..=snapshots): a node closes its channels only once
    /// it has recorded every one, so every marker precedes every close.
    pub snapshots: u32,
    /// Time between two of its transfers.
    pub step_ms: u64,
    /// Longest time a message stays on its channel before the node takes it.
    pub max_delay_ms: u64,
    /// Largest transfer.
    pub max_amount: Money,
    /// Seeds this node's RNG (with its id).
    pub seed: u64,
}

/// The message types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::VariantNames))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Body {
    // ---- node → node -------------------------------------------------------------
    /// A message on the channel from the sender to `to`.
    Channel {
        to: PeerId,
        seq: u64,
        content: Content,
    },
    // ---- master → node -----------------------------------------------------------
    /// `CreateNode`: the node's balance and the nodes that exist already (channels to and
    /// from each); `auto` in the random mode.
    Create {
        cmd: Cmd,
        balance: Money,
        peers: Vec<PeerId>,
        auto: Option<Auto>,
    },
    /// Node `node` was created: a channel to it and one from it.
    Join { cmd: Cmd, node: PeerId },
    /// `Send`: put a transfer of `amount` on the channel to `to`, if the balance allows.
    Send { cmd: Cmd, to: PeerId, amount: Money },
    /// `Receive`: take the head of the channel from `source` (waiting for it if it is
    /// still on its way).
    Receive { cmd: Cmd, source: PeerId },
    /// Random mode: begin transferring.
    Start { cmd: Cmd },
    /// `KillAll`, or the end of the run: report and stop (node, observer).
    Stop { cmd: Cmd },
    // ---- node → master -----------------------------------------------------------
    /// `Create`, `Join` or `Start` done.
    Done { cmd: Cmd },
    /// `Send` done: `seq` of the transfer on its channel, or none: refused (`ERR_SEND`).
    Sent {
        cmd: Cmd,
        to: PeerId,
        seq: Option<u64>,
    },
    /// `Receive` done: what the head was, and the markers taking it made the node put on
    /// its outgoing channels (its first marker of a snapshot).
    Received {
        cmd: Cmd,
        source: PeerId,
        seq: u64,
        content: Content,
        relayed: Vec<Put>,
    },
    /// Random mode: every transfer made, every channel closed both ways, nothing held.
    Idle,
    // ---- master → observer -------------------------------------------------------
    /// `BeginSnapshot`: have `node` start snapshot `snapshot`.
    BeginAt {
        cmd: Cmd,
        snapshot: SnapshotId,
        node: PeerId,
    },
    /// `CollectState`: every node's recorded state of `snapshot`; `wait`: until every one
    /// is complete (random mode), else at once, as far as recorded.
    CollectAll {
        cmd: Cmd,
        snapshot: SnapshotId,
        nodes: Vec<PeerId>,
        wait: bool,
    },
    // ---- observer → node ---------------------------------------------------------
    /// Start snapshot `snapshot` here (record, relay markers).
    Begin { cmd: Cmd, snapshot: SnapshotId },
    /// Send your state of `snapshot` now, as far as recorded.
    Collect { cmd: Cmd, snapshot: SnapshotId },
    // ---- node → observer ---------------------------------------------------------
    /// `Begin` done: the markers the node put on its outgoing channels.
    Began {
        cmd: Cmd,
        snapshot: SnapshotId,
        relayed: Vec<Put>,
    },
    /// The node's recorded state of `snapshot`: pushed once complete (`cmd` none), or the
    /// answer to a `Collect`.
    State {
        cmd: Option<Cmd>,
        snapshot: SnapshotId,
        state: Recorded,
    },
    // ---- observer → master -------------------------------------------------------
    /// `BeginAt` done.
    Started {
        cmd: Cmd,
        snapshot: SnapshotId,
        node: PeerId,
        relayed: Vec<Put>,
    },
    /// `CollectAll` done: each node's state.
    Collected {
        cmd: Cmd,
        snapshot: SnapshotId,
        states: Vec<(PeerId, Recorded)>,
    },
    // ---- node → results ----------------------------------------------------------
    /// A node's final report.
    Report { report: NodeReport },
}

/// A whole message as it travels: the shared envelope ([`crate::contract::Envelope`]),
/// `from` a node's id or a role.
pub type Message = crate::contract::Envelope<Who, Body>;

impl crate::contract::Sender for Who {}

crate::contract::body!(Body, version: PROTOCOL_VERSION, max_bytes: MAX_BODY_BYTES, kind: kind);

/// A channel message names itself by its content (`transfer`, `marker`, `close`): what the
/// logs and counters tell apart. Every other message, by its `type`.
fn kind(body: &Body) -> &'static str {
    match body {
        Body::Channel { content, .. } => match content {
            Content::Transfer { .. } => "transfer",
            Content::Marker { .. } => "marker",
            Content::Close => "close",
        },
        b => b.into(),
    }
}

/// Decodes a `report` from the results route: only a node's report of itself.
pub fn decode_report(bytes: &[u8], run: &str) -> Result<NodeReport, Rejection> {
    match Message::decode(bytes, run)? {
        Message {
            from: Who::Node(k),
            body: Body::Report { report },
            ..
        } if report.id == k => Ok(report),
        m => Err(Rejection::Refused(format!(
            "a {} from {:?} on the results route",
            m.body.kind(),
            m.from
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"v":1,"run":"r1","from":1,"type":"channel","to":2,"seq":3,"content":{"kind":"transfer","amount":300}}"#;

    #[test]
    fn the_documented_example_round_trips() {
        let channel = Body::Channel {
            to: 2,
            seq: 3,
            content: Content::Transfer { amount: 300 },
        };
        Message::new("r1", Who::Node(1), channel).assert_round_trip(EXAMPLE);
        let m = Message::new(
            "r1",
            Who::Role(Role::Observer),
            Body::Begin {
                cmd: 4,
                snapshot: 1,
            },
        );
        let s = String::from_utf8(m.encode().expect("encodes")).expect("utf8");
        assert_eq!(
            s,
            r#"{"v":1,"run":"r1","from":"observer","type":"begin","cmd":4,"snapshot":1}"#
        );
        assert_eq!(Message::decode(s.as_bytes(), "r1").expect("decodes"), m);
    }

    #[test]
    fn decode_rejects_each_kind_of_bad_input() {
        let label = |s: &str| Message::decode(s.as_bytes(), "r1").expect_err(s).label();
        assert_eq!(label(&EXAMPLE.replace("\"v\":1", "\"v\":2")), "version");
        assert_eq!(label(&EXAMPLE.replace("r1", "r2")), "wrong_run");
        assert_eq!(
            label(&EXAMPLE.replace("\"seq\":3", "\"seq\":3,\"x\":1")),
            "malformed"
        );
        assert_eq!(label(&EXAMPLE.replace("transfer", "gift")), "malformed");
        assert_eq!(
            label(&EXAMPLE.replace("\"from\":1", "\"from\":\"boss\"")),
            "malformed"
        );
        assert_eq!(label(&EXAMPLE.replace("300", "-300")), "malformed");
        Message::assert_refuses_garbage();
    }

    #[test]
    fn only_a_nodes_own_report_is_a_report() {
        assert!(decode_report(EXAMPLE.as_bytes(), "r1").is_err());
        let report = NodeReport::empty(2);
        let ok = Message::new("r1", Who::Node(2), Body::Report { report })
            .encode()
            .expect("encodes");
        assert_eq!(decode_report(&ok, "r1").expect("report").id, 2);
        let forged = Message::new(
            "r1",
            Who::Node(3),
            Body::Report {
                report: NodeReport::empty(2),
            },
        )
        .encode()
        .expect("encodes");
        assert!(decode_report(&forged, "r1").is_err());
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use crate::algorithms::snapshot::report::{ChannelRecord, Event};

    #[test]
    fn a_full_report_round_trips() {
        let mut r = NodeReport::empty(1);
        r.events = vec![
            Event::Created { balance: 5 },
            Event::Sent {
                to: 2,
                seq: 1,
                content: Content::Marker { snapshot: 1 },
            },
            Event::Took {
                from: 2,
                seq: 1,
                content: Content::Transfer { amount: 3 },
            },
            Event::Recorded {
                snapshot: 1,
                balance: 5,
            },
            Event::Refused { to: 2, amount: 9 },
        ];
        r.snapshots.push((
            1,
            Recorded {
                balance: Some(5),
                channels: vec![ChannelRecord {
                    from: 2,
                    transfers: vec![(1, 3)],
                    complete: true,
                }],
            },
        ));
        let bytes = Message::new("r1", Who::Node(1), Body::Report { report: r.clone() })
            .encode()
            .expect("encodes");
        let back = decode_report(&bytes, "r1").map_err(|e| e.to_string());
        assert_eq!(back, Ok(r), "{}", String::from_utf8_lossy(&bytes));
    }
}
