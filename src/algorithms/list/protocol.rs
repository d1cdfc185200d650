//! The wire format: every message sync-run puts on the broker, and the names of the
//! exchanges and queues of a run.
//!
//! Messages are JSON objects with a protocol version `v`, the run id `run`, the
//! sender `from` and an explicit `type`. docs/PROTOCOL.md is the normative description;
//! this module is its executable form, and the tests at the bottom pin the examples
//! the document shows.
//!
//! Decoding is strict on purpose: a message that is not exactly what a participant of
//! this run would send is rejected with a [`Rejection`] that says why, so the adapter can
//! reject the delivery, count it and log it, and the run goes on.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Protocol version carried in every message (`"v": 1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest message body a participant accepts, in bytes. Results of large runs are
/// the biggest messages (about 40 bytes an entry), so this allows lists of ~100,000
/// entries while keeping a misbehaving publisher from making a worker buffer megabytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A worker's identity within a run. Numbers keep the Python/other-language worker simple.
pub type WorkerId = u32;

/// A grant's sequence number: 1, 2, 3, … in the order the master issued the grants.
/// An entry's place in every list is its grant's sequence number, never its arrival order.
pub type Seq = u64;

/// One element of the agreed list: the value `worker` wrote when granted turn `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: Seq,
    pub worker: WorkerId,
    pub value: i64,
}

/// A committed turn as the master announces it in [`Body::End`]: which worker's append
/// for which grant belongs in the list. Workers take the value from the append they
/// received themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub seq: Seq,
    pub worker: WorkerId,
}

/// Who sent a message. Workers accept grants, evictions and the end only from the
/// master instance named in `start`; this catches a stray second master, it is not an
/// authentication mechanism (that is `--master-user`: the broker-validated AMQP `user_id`).
///
/// `instance` is random per process and stays below 2^53, so that JSON parsers that read
/// numbers as doubles (JavaScript, many others) keep it exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sender {
    Master { instance: u64 },
    Worker { id: WorkerId, instance: u64 },
}

/// The message types. See docs/PROTOCOL.md for who publishes and consumes each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::VariantNames))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Body {
    /// Worker → master (direct exchange, key `master`). Re-sent until `start` arrives.
    Join { worker: WorkerId },
    /// Master → all (fanout). The members of the run and the rules every worker applies.
    /// `epoch` is 0 for the first master and grows with each standby that takes over;
    /// workers follow the master of the highest epoch. `relay`: granted workers send their
    /// appends to the master alone, which re-broadcasts each committed append (batched with
    /// its grants); otherwise they broadcast appends on the fanout themselves.
    /// `topology`, `durable` and `queue_type` are the options every participant must
    /// share: a worker started with others reports the mismatch and stops instead of
    /// joining in silence. `queue_type` may be absent (a master that predates it): classic.
    Start {
        epoch: u32,
        workers: Vec<WorkerId>,
        rounds: u32,
        min: i64,
        max: i64,
        relay: bool,
        topology: Topology,
        durable: bool,
        #[serde(default)]
        queue_type: QueueType,
    },
    /// Master → all (fanout). Turn `seq` belongs to `worker` for `lease_ms` milliseconds.
    Grant {
        seq: Seq,
        worker: WorkerId,
        lease_ms: u64,
    },
    /// Granted worker → master (relay) or all (fanout, the master's queue is bound too);
    /// relayed by the master inside a [`Body::Batch`] with the worker's own `from`.
    Append {
        seq: Seq,
        worker: WorkerId,
        value: i64,
    },
    /// Master → all (fanout). `worker` missed its lease for grant `seq`: grant `seq` is void
    /// and nothing from `worker` is accepted from now on.
    Evict {
        seq: Seq,
        worker: WorkerId,
        reason: String,
    },
    /// Master → all (fanout). The run is over; `commits` is the list in order.
    End { commits: Vec<Commit> },
    /// Master → all (fanout). The run failed; workers stop and clean up.
    Abort { reason: String },
    /// Worker → master (direct exchange, key `results`). The worker's final list.
    Result {
        worker: WorkerId,
        entries: Vec<Entry>,
        rejected: u64,
    },
    /// Master → all (fanout). Several messages in one delivery, to be handled in order as
    /// if each had arrived on its own. This is what keeps a run of N workers from costing
    /// N deliveries per message: everything the master publishes in one step (grants,
    /// relayed appends, an evict, the end) reaches each worker as one delivery.
    /// Batches do not nest. Each part is decoded and checked exactly as a message on its
    /// own ([`Part::decode`]): a bad part is rejected and counted, the others are kept.
    Batch { messages: Vec<Part> },
}

pub use crate::contract::{QueueType, Topology};

/// One part of a [`Body::Batch`], kept as the JSON text it arrived as until the receiver
/// decodes it with the same checks as any message ([`Part::decode`]). A part that does not
/// decode (another version, another run, an unknown field) is refused on its own: it cannot
/// take its valid neighbours down with it, and it is never acted on.
///
/// Batches are taken apart by [`decode`] itself (a batch's parts cannot be read
/// as raw text through the flattened, tagged [`Body`]), so each part is parsed exactly once,
/// by the same code as a message on its own.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Part(Box<RawValue>);

impl Part {
    /// A message, as a part of a batch.
    pub fn of(msg: &Message) -> Result<Part, crate::contract::EncodeError> {
        serde_json::value::to_raw_value(msg)
            .map(Part)
            .map_err(|e| crate::contract::EncodeError {
                kind: msg.body.kind(),
                reason: e.to_string(),
            })
    }

    /// Decodes and checks the part exactly as [`decode`] checks a message on its
    /// own (version, run, shape, no unknown fields), and refuses a batch inside it. (Its
    /// size is bounded by the delivery's.)
    pub fn decode(&self, run: &str) -> Result<Message, Rejection> {
        let msg = decode(self.0.get().as_bytes(), run)?;
        if matches!(msg.body, Body::Batch { .. }) {
            return Err(Rejection::Refused("a batch inside a batch".into()));
        }
        Ok(msg)
    }

    /// The part as JSON text (for logs and tests).
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Part {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}
impl Eq for Part {}

impl<'de> Deserialize<'de> for Part {
    /// Only [`decode`] reads batches (see [`Part`]); through the tagged [`Body`]
    /// a part's text is not available.
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Part, D::Error> {
        Err(serde::de::Error::custom(
            "batch parts are read by protocol::decode",
        ))
    }
}

/// A whole message as it travels: the shared envelope ([`crate::contract::Envelope`]),
/// `from` the master or a worker (with its instance).
pub type Message = crate::contract::Envelope<Sender, Body>;

impl crate::contract::Sender for Sender {}

crate::contract::body!(Body, version: PROTOCOL_VERSION, max_bytes: MAX_BODY_BYTES);

/// Decodes and checks, in this order: the size, the version (before the shape: a v2
/// message may have fields v1 does not know), the shape (no unknown fields at any
/// level), the run, and for a batch the number of parts. Its parts are checked the
/// same way when they are handled ([`Part::decode`]). Type-specific checks (is this
/// grant from our master, is this append fenced) belong to the state machines.
pub fn decode(bytes: &[u8], run: &str) -> Result<Message, Rejection> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Rejection::TooLarge(bytes.len(), MAX_BODY_BYTES));
    }
    #[derive(Deserialize)]
    struct Probe<'a> {
        v: Option<serde_json::Value>,
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let malformed = |e: serde_json::Error| Rejection::Malformed(e.to_string());
    let probe: Probe = serde_json::from_slice(bytes).map_err(malformed)?;
    match probe.v.as_ref().map(serde_json::Value::as_u64) {
        Some(Some(v)) if v == PROTOCOL_VERSION as u64 => {}
        Some(Some(v)) => {
            return Err(Rejection::Version(
                Some(v.min(u32::MAX as u64) as u32),
                PROTOCOL_VERSION,
            ));
        }
        _ => return Err(Rejection::Version(None, PROTOCOL_VERSION)),
    }
    let msg = if probe.kind.as_deref() == Some("batch") {
        /// A batch's envelope, read directly (not through the tagged [`Body`]) so that
        /// its parts stay text until each is decoded on its own.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Batch {
            #[allow(dead_code)]
            v: u32,
            run: String,
            from: Sender,
            #[serde(rename = "type")]
            #[allow(dead_code)]
            kind: String,
            messages: Vec<Box<RawValue>>,
        }
        let b: Batch = serde_json::from_slice(bytes).map_err(malformed)?;
        Message {
            v: PROTOCOL_VERSION,
            run: b.run,
            from: b.from,
            body: Body::Batch {
                messages: b.messages.into_iter().map(Part).collect(),
            },
        }
    } else {
        serde_json::from_slice(bytes).map_err(malformed)?
    };
    if msg.run != run {
        return Err(Rejection::WrongRun(msg.run));
    }
    if let Body::Batch { messages } = &msg.body
        && messages.len() > MAX_BATCH_MESSAGES
    {
        return Err(Rejection::Refused(format!(
            "a batch of {} parts (at most {MAX_BATCH_MESSAGES})",
            messages.len()
        )));
    }
    Ok(msg)
}

/// Most messages one [`Body::Batch`] carries: bounded so a batch stays a few tens of
/// kilobytes (about 130 bytes a message) however far a run has pipelined.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// Packs consecutive messages with the same route into [`Body::Batch`] messages from
/// `publisher`, at most `max` parts each (a run of one stays as it is). Order is kept, so
/// every receiver still sees one publisher's messages in the order they were made. The
/// parts keep their own senders (a relayed append stays the worker's).
pub fn coalesce(
    msgs: Vec<(crate::contract::Route, Message)>,
    publisher: Sender,
    max: usize,
) -> Vec<(crate::contract::Route, Message)> {
    let mut out: Vec<(crate::contract::Route, Vec<Message>)> = Vec::new();
    for (route, msg) in msgs {
        match out.last_mut() {
            Some((r, group))
                if *r == route
                    && group.len() < max.max(1)
                    && !matches!(msg.body, Body::Batch { .. }) =>
            {
                group.push(msg)
            }
            _ => out.push((route, vec![msg])),
        }
    }
    out.into_iter()
        .flat_map(|(route, group)| {
            if group.len() == 1 {
                return group.into_iter().map(|m| (route, m)).collect::<Vec<_>>();
            }
            // A part that cannot be written leaves its group unbatched: each message then
            // goes on its own, and the driver reports the one that fails.
            match group.iter().map(Part::of).collect::<Result<Vec<_>, _>>() {
                Ok(messages) => {
                    let run = group[0].run.clone();
                    vec![(
                        route,
                        Message::new(&run, publisher, Body::Batch { messages }),
                    )]
                }
                Err(_) => group.into_iter().map(|m| (route, m)).collect(),
            }
        })
        .collect()
}

pub use crate::contract::Rejection;

/// Names of everything a run declares on the broker. Every name carries the run id, so
/// two runs never share anything and cleanup knows exactly what to delete.
#[derive(Debug, Clone)]
pub struct Names {
    run: String,
}

/// Routing key of the master's inbox on the direct exchange.
pub const MASTER_KEY: &str = "master";
/// Routing key of the results queue on the direct exchange.
pub const RESULTS_KEY: &str = "results";

impl Names {
    pub fn new(run: &str) -> Self {
        Names {
            run: run.to_owned(),
        }
    }
    pub fn run(&self) -> &str {
        &self.run
    }
    /// Fanout exchange: start, grants, appends, evictions, end, abort.
    pub fn fanout(&self) -> String {
        format!("sync-run.{}.fanout", self.run)
    }
    /// Direct exchange: joins (key `master`) and results (key `results`).
    pub fn direct(&self) -> String {
        format!("sync-run.{}.direct", self.run)
    }
    /// The master's inbox: bound to the direct exchange with key `master` and to the fanout.
    pub fn master_queue(&self) -> String {
        format!("sync-run.{}.master", self.run)
    }
    /// Where workers report their final lists.
    pub fn results_queue(&self) -> String {
        format!("sync-run.{}.results", self.run)
    }
    /// The leadership lock: an exclusive queue held by the active master's connection.
    pub fn leader_queue(&self) -> String {
        format!("sync-run.{}.leader", self.run)
    }
    /// A standby master's inbox: bound to the fanout and to the results key.
    pub fn standby_queue(&self, instance: u64) -> String {
        format!("sync-run.{}.standby.{instance:016x}", self.run)
    }
    /// The run's broadcast log with topology `stream`: a stream bound to the fanout.
    pub fn log(&self) -> String {
        format!("sync-run.{}.log", self.run)
    }
    /// A worker's inbox, bound to the fanout.
    pub fn worker_queue(&self, id: WorkerId) -> String {
        format!("sync-run.{}.worker.{}", self.run, id)
    }
}

pub use crate::contract::validate_run_id;

#[cfg(test)]
mod tests {
    use super::*;

    const M: Sender = Sender::Master { instance: 7 };

    #[test]
    fn grant_round_trips_and_matches_the_documented_example() {
        let msg = Message::new(
            "r1",
            M,
            Body::Grant {
                seq: 3,
                worker: 5,
                lease_ms: 2000,
            },
        );
        let json = String::from_utf8(msg.encode().expect("encodes")).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"run":"r1","from":{"role":"master","instance":7},"type":"grant","seq":3,"worker":5,"lease_ms":2000}"#
        );
        assert_eq!(decode(json.as_bytes(), "r1").unwrap(), msg);
    }

    #[test]
    fn decode_rejects_each_kind_of_bad_input() {
        let ok = Message::new("r1", M, Body::Abort { reason: "x".into() })
            .encode()
            .expect("encodes");
        assert!(decode(&ok, "r1").is_ok());
        assert_eq!(decode(&ok, "r2").unwrap_err().label(), "wrong_run");
        assert_eq!(decode(b"{not json", "r1").unwrap_err().label(), "malformed");
        let v2 = String::from_utf8(ok.clone())
            .unwrap()
            .replace("\"v\":1", "\"v\":2");
        assert_eq!(
            decode(v2.as_bytes(), "r1").unwrap_err(),
            Rejection::Version(Some(2), PROTOCOL_VERSION)
        );
        let unknown = String::from_utf8(ok.clone())
            .unwrap()
            .replace("\"abort\"", "\"teleport\"");
        assert_eq!(
            decode(unknown.as_bytes(), "r1").unwrap_err().label(),
            "malformed"
        );
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(decode(&big, "r1").unwrap_err().label(), "too_large");
    }

    /// Every message example in docs/PROTOCOL.md decodes, and re-encodes to the same JSON:
    /// the document cannot drift from the code.
    #[test]
    fn protocol_document_examples_are_valid_messages() {
        // The list's sections (1–10) are the ones whose `json` blocks are list messages.
        let doc = include_str!("../../../docs/PROTOCOL.md");
        let end = doc.find("\n## 11. ").expect("PROTOCOL.md has section 11");
        let kinds = crate::contract::envelope::assert_documented_examples(&doc[..end], decode);
        assert!(kinds.len() >= 8, "every message type has an example");
        let kinds: std::collections::BTreeSet<_> = kinds.into_iter().collect();
        assert_eq!(kinds.len(), 9, "{kinds:?}");
    }

    #[test]
    fn coalesce_packs_runs_of_one_route_and_sender_in_order() {
        use crate::contract::Route;
        let w = Sender::Worker { id: 2, instance: 9 };
        let grant = |seq| {
            Message::new(
                "r",
                M,
                Body::Grant {
                    seq,
                    worker: 1,
                    lease_ms: 5,
                },
            )
        };
        let append = Message::new(
            "r",
            w,
            Body::Append {
                seq: 1,
                worker: 2,
                value: 3,
            },
        );
        let msgs = vec![
            (Route::Broadcast, grant(1)),
            (Route::Broadcast, grant(2)),
            (Route::Broadcast, grant(3)),
            (Route::Coordinator, grant(4)),
            (Route::Broadcast, append.clone()),
            (Route::Broadcast, grant(5)),
        ];
        let out = coalesce(msgs, M, 2);
        let shape: Vec<(Route, &str, usize)> = out
            .iter()
            .map(|(r, m)| match &m.body {
                Body::Batch { messages } => (*r, "batch", messages.len()),
                b => (*r, b.kind(), 1),
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (Route::Broadcast, "batch", 2),
                (Route::Broadcast, "grant", 1),
                (Route::Coordinator, "grant", 1),
                (Route::Broadcast, "batch", 2),
            ]
        );
        // The batch decodes back to its parts, in order, with their own senders.
        let bytes = out[0].1.encode().expect("encodes");
        let Body::Batch { messages } = decode(&bytes, "r").unwrap().body else {
            panic!("not a batch")
        };
        let parts: Vec<Message> = messages.iter().map(|p| p.decode("r").unwrap()).collect();
        assert_eq!(parts, vec![grant(1), grant(2)]);
        assert_eq!(out[0].1.from, M);
        // A relayed append keeps its writer as sender inside the master's batch.
        let Body::Batch { messages } = &out[3].1.body else {
            panic!("not a batch")
        };
        assert_eq!(messages[0].decode("r").unwrap().from, w);
        assert_eq!(
            coalesce(vec![(Route::Broadcast, append.clone())], M, 64),
            vec![(Route::Broadcast, append)]
        );
    }

    /// A batch part is checked exactly as a message on its own: another version, another
    /// run, an unknown field or a nested batch is refused by itself.
    #[test]
    fn batch_parts_are_checked_one_by_one_and_batches_are_bounded() {
        let good = Message::new("r", M, Body::Abort { reason: "x".into() })
            .encode()
            .expect("encodes");
        let good = String::from_utf8(good).unwrap();
        let bad = [
            good.replace("\"v\":1", "\"v\":2"),
            good.replace("\"run\":\"r\"", "\"run\":\"other\""),
            good.replace("\"instance\":7", "\"instance\":7,\"x\":1"),
            r#"{"v":1,"run":"r","from":{"role":"master","instance":7},"type":"batch","messages":[]}"#
                .to_string(),
        ];
        let labels = ["version", "wrong_run", "malformed", "refused"];
        let parts = std::iter::once(good.clone())
            .chain(bad.iter().cloned())
            .collect::<Vec<_>>()
            .join(",");
        let batch = format!(
            r#"{{"v":1,"run":"r","from":{{"role":"master","instance":7}},"type":"batch","messages":[{parts}]}}"#
        );
        let Body::Batch { messages } = decode(batch.as_bytes(), "r").unwrap().body else {
            panic!("not a batch")
        };
        assert_eq!(messages.len(), 5, "one bad part does not void the batch");
        assert!(messages[0].decode("r").is_ok());
        for (part, label) in messages[1..].iter().zip(labels) {
            assert_eq!(
                part.decode("r").unwrap_err().label(),
                label,
                "{}",
                part.json()
            );
        }
        let many = vec![good.as_str(); MAX_BATCH_MESSAGES + 1].join(",");
        let too_many = format!(
            r#"{{"v":1,"run":"r","from":{{"role":"master","instance":7}},"type":"batch","messages":[{many}]}}"#
        );
        assert_eq!(
            decode(too_many.as_bytes(), "r").unwrap_err().label(),
            "refused"
        );
    }

    /// Unknown fields are refused at every level: the message, `from`, and the elements of
    /// `commits` and `entries`.
    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let cases = [
            r#"{"v":1,"run":"r","from":{"role":"master","instance":7},"type":"abort","reason":"x","extra":1}"#,
            r#"{"v":1,"run":"r","from":{"role":"master","instance":7,"extra":1},"type":"abort","reason":"x"}"#,
            r#"{"v":1,"run":"r","from":{"role":"worker","id":1,"instance":7,"extra":1},"type":"join","worker":1}"#,
            r#"{"v":1,"run":"r","from":{"role":"master","instance":7},"type":"end","commits":[{"seq":1,"worker":1,"extra":1}]}"#,
            r#"{"v":1,"run":"r","from":{"role":"worker","id":1,"instance":7},"type":"result","worker":1,"entries":[{"seq":1,"worker":1,"value":5,"extra":1}],"rejected":0}"#,
        ];
        for case in cases {
            assert_eq!(
                decode(case.as_bytes(), "r").unwrap_err().label(),
                "malformed",
                "{case}"
            );
            let fixed = case.replace(",\"extra\":1", "");
            assert!(decode(fixed.as_bytes(), "r").is_ok(), "{fixed}");
        }
    }

    #[test]
    fn run_ids_are_checked() {
        assert!(validate_run_id("run-42_a").is_ok());
        for bad in ["-x", "_x", "", "a.b", &"x".repeat(65)] {
            assert!(validate_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
