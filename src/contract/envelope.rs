//! The envelope every algorithm's messages travel in: `{"v": …, "run": …, "from": …,
//! "type": …, …}`, written once for all six protocols.
//!
//! An algorithm says only what is its own: its sender type (a peer id, the list's
//! `Sender`, the snapshot's `Who`, or `()` where messages carry no `from`, as the bank's
//! and the market's) and its [`Body`] (the `type`-tagged message types, their version,
//! their size limit and the checks any receiver can make alone). Decoding checks, in this
//! order: the size (a misbehaving publisher cannot make a participant parse megabytes),
//! the version (read first, so that a newer message is refused as a newer version rather
//! than as garbage: a v2 message may have fields v1 does not know), the shape (no unknown
//! fields), the run, then the body's own checks. Encoding cannot fail silently: a message
//! that cannot be written is an [`EncodeError`], never an empty body on the wire.

use super::{Rejection, Wire};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An algorithm's message types, as the envelope carries them (flattened beside `v`,
/// `run` and `from`, tagged by `type`).
pub trait Body: Serialize + DeserializeOwned {
    /// The protocol version every message of the algorithm carries (`"v"`).
    const VERSION: u32;
    /// The largest body a participant accepts, in bytes.
    const MAX_BYTES: usize;
    /// The `type` field's value, for logs, counters and the AMQP `type` property.
    fn kind(&self) -> &'static str;
    /// What any receiver can check alone, after the run (amounts, ids, paths); who may
    /// send what to whom is the receiving machine's business.
    fn check(&self) -> Result<(), Rejection> {
        Ok(())
    }
}

/// Who sent a message, as its `from` field says. `()` is "no `from` field": such messages
/// are refused when they carry one, and named senders are refused when they do not.
pub trait Sender: Serialize + DeserializeOwned {
    /// Whether the field is written and required.
    const NAMED: bool = true;
}

impl Sender for () {
    const NAMED: bool = false;
}

impl Sender for u32 {}

/// A message: the version, the run, the sender and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<F, B> {
    pub v: u32,
    pub run: String,
    pub from: F,
    pub body: B,
}

/// A message that could not be written (a bug: every body is plain data with string
/// keys). The drivers refuse to publish it and say so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not encode a {kind} message: {reason}")]
pub struct EncodeError {
    pub kind: &'static str,
    pub reason: String,
}

impl<F: Sender, B: Body> Envelope<F, B> {
    /// A message of this protocol's version.
    pub fn new(run: &str, from: F, body: B) -> Self {
        Envelope {
            v: B::VERSION,
            run: run.to_owned(),
            from,
            body,
        }
    }

    /// Decodes and checks (see the module's doc for the order).
    pub fn decode(bytes: &[u8], run: &str) -> Result<Self, Rejection> {
        precheck(bytes, B::MAX_BYTES, B::VERSION)?;
        let msg: Self = parse(bytes)?;
        if msg.run != run {
            return Err(Rejection::WrongRun(msg.run));
        }
        msg.body.check()?;
        Ok(msg)
    }

    /// The message as JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        serde_json::to_vec(self).map_err(|e| EncodeError {
            kind: self.body.kind(),
            reason: e.to_string(),
        })
    }
}

impl<F: Sender, B: Body> Wire for Envelope<F, B> {
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Envelope::encode(self)
    }
    fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

/// The envelope as written: `from` only where the protocol names senders.
#[derive(Serialize)]
struct Out<'a, F, B> {
    v: u32,
    run: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a F>,
    #[serde(flatten)]
    body: &'a B,
}

impl<F: Sender, B: Body> Serialize for Envelope<F, B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Out {
            v: self.v,
            run: &self.run,
            from: F::NAMED.then_some(&self.from),
            body: &self.body,
        }
        .serialize(s)
    }
}

/// The envelope as read: `from` is checked against [`Sender::NAMED`] afterwards.
#[derive(Deserialize)]
#[serde(bound = "F: Sender, B: Body")]
struct In<F, B> {
    v: u32,
    run: String,
    #[serde(default = "none")]
    from: Option<F>,
    #[serde(flatten)]
    body: B,
}

fn none<F>() -> Option<F> {
    None
}

impl<'de, F: Sender, B: Body> Deserialize<'de> for Envelope<F, B> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let m = In::<F, B>::deserialize(d)?;
        let from = match (m.from, F::NAMED) {
            (Some(f), true) => f,
            (None, true) => return Err(D::Error::missing_field("from")),
            (Some(_), false) => return Err(D::Error::unknown_field("from", &[])),
            // `()`: the only value of a sender that is not named.
            (None, false) => serde_json::from_value(serde_json::Value::Null)
                .map_err(|e| D::Error::custom(e.to_string()))?,
        };
        Ok(Envelope {
            v: m.v,
            run: m.run,
            from,
            body: m.body,
        })
    }
}

/// Declares an algorithm's message types as a [`Body`]: their version, their size limit
/// and, where they have them, the checks any receiver can make alone (`check: f`, `f(&body)`).
/// Their `kind` (also an inherent method, for the algorithm's own logs) is the variant's
/// name as serde tags it: the enum derives `strum::IntoStaticStr` with
/// `serialize_all = "snake_case"`, serde's `rename_all` rule, so no protocol writes its
/// tags twice; the test this declares proves the two agree ([`serde_tags`]): the enum
/// also derives `strum::VariantNames` under `cfg(test)`. `kind: f` replaces the rule
/// where a variant names itself otherwise (the snapshot's channel messages, by content).
///
/// ```ignore
/// crate::contract::body!(Body, version: PROTOCOL_VERSION, max_bytes: MAX_BODY_BYTES);
/// ```
macro_rules! body {
    ($body:ty, version: $v:expr, max_bytes: $max:expr $(, kind: $kind:expr)? $(, check: $check:expr)? $(,)?) => {
        impl $body {
            /// The `type` field's value, for logs and counters.
            pub fn kind(&self) -> &'static str {
                $crate::contract::body!(@kind self $(, $kind)?)
            }
        }

        impl $crate::contract::Body for $body {
            const VERSION: u32 = $v;
            const MAX_BYTES: usize = $max;
            fn kind(&self) -> &'static str {
                <$body>::kind(self)
            }
            $(
                fn check(&self) -> Result<(), $crate::contract::Rejection> {
                    $check(self)
                }
            )?
        }

        /// The proof that every variant's `kind` is its `type` tag (strum's names, which
        /// are the `kind`s, against serde's).
        #[cfg(test)]
        mod kinds {
            use super::*;

            #[test]
            fn every_kind_is_its_type_tag() {
                assert_eq!(
                    $crate::contract::envelope::serde_tags::<$body>(),
                    <$body as strum::VariantNames>::VARIANTS
                );
            }
        }
    };
    (@kind $s:ident) => {
        $s.into()
    };
    (@kind $s:ident, $kind:expr) => {
        $kind($s)
    };
}

pub(crate) use body;

/// A process's report, read from the results route: `take` gets it out of the protocol's
/// `report` message (`None`: another message, which has no business there) and
/// `id` says whose it is. A process reports only for itself: a report whose `from` is
/// another process is refused.
pub fn decode_report<B: Body, R>(
    bytes: &[u8],
    run: &str,
    take: impl FnOnce(B) -> Option<R>,
    id: impl Fn(&R) -> super::PeerId,
) -> Result<R, Rejection> {
    let msg = Envelope::<super::PeerId, B>::decode(bytes, run)?;
    let kind = msg.body.kind();
    match take(msg.body) {
        Some(report) if id(&report) == msg.from => Ok(report),
        Some(report) => Err(Rejection::Refused(format!(
            "process {} sent the report of process {}",
            msg.from,
            id(&report)
        ))),
        None => Err(Rejection::Refused(format!(
            "a {kind} message on the results route"
        ))),
    }
}

/// `decode_report` of a protocol of numbered processes (mutex, clocks), whose `Body` has
/// a `Report { report }` variant and whose reports say their process's `id`: one
/// [`decode_report`] for each, as both read their results alike.
///
/// ```ignore
/// crate::contract::process_report!(Body, Report);
/// ```
macro_rules! process_report {
    ($body:ident, $report:ty) => {
        /// Reads a process's report from a delivery on the results route: only a process's
        /// report of itself.
        pub fn decode_report(
            bytes: &[u8],
            run: &str,
        ) -> Result<$report, $crate::contract::Rejection> {
            let take = |b| match b {
                $body::Report { report } => Some(report),
                _ => None,
            };
            $crate::contract::envelope::decode_report(bytes, run, take, |r: &$report| r.id)
        }
    };
}

pub(crate) use process_report;

/// The `type` tags serde reads for `B`, in the order of its variants. Serde keeps its
/// variant names to itself but for one place, its refusal of an unknown tag ("unknown
/// variant `?`, expected one of `a`, `b`, …"): the protocols' tests compare them with
/// strum's names, which are their `kind`s.
#[cfg(test)]
pub fn serde_tags<B: DeserializeOwned>() -> Vec<String> {
    let err = match serde_json::from_str::<B>(r#"{"type":"?"}"#) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("\"?\" is a type tag"),
    };
    let expected = err.split(", expected ").nth(1).unwrap_or_default();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every message example of a protocol's document (its ` ```json ` blocks) decodes with
/// `decode` (in run `demo`) and re-encodes to exactly itself: the document cannot drift
/// from the code. The examples' kinds, in the document's order.
#[cfg(test)]
pub fn assert_documented_examples<M: super::Wire>(
    doc: &str,
    decode: impl Fn(&[u8], &str) -> Result<M, Rejection>,
) -> Vec<&'static str> {
    let examples = doc
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next());
    let mut kinds = Vec::new();
    for ex in examples {
        let msg = decode(ex.as_bytes(), "demo")
            .unwrap_or_else(|e| panic!("example does not decode: {e}\n{ex}"));
        let bytes = msg.encode().expect("encodes");
        assert_eq!(String::from_utf8_lossy(&bytes), ex, "canonical form");
        kinds.push(msg.kind());
    }
    kinds
}

/// The body of a published message (`None` for any other output): tests pick what a step
/// sent by matching bodies, not the whole output around them.
#[cfg(test)]
impl<F, B, R> super::Output<Envelope<F, B>, R> {
    pub fn body(&self) -> Option<&B> {
        match self {
            super::Output::Publish { msg, .. } => Some(&msg.body),
            _ => None,
        }
    }
}

/// What every protocol's tests check of its envelope, said once.
#[cfg(test)]
impl<F, B> Envelope<F, B>
where
    F: Sender + std::fmt::Debug + PartialEq,
    B: Body + std::fmt::Debug + PartialEq,
{
    /// The message encodes to exactly `json` (in run "r1"), decodes back to itself in
    /// its run, and is refused as another run's.
    pub fn assert_round_trip(self, json: &str) {
        let b = self.encode().expect("encodes");
        assert_eq!(String::from_utf8_lossy(&b), json);
        assert_eq!(Self::decode(&b, "r1"), Ok(self));
        assert!(matches!(
            Self::decode(&b, "r2"),
            Err(Rejection::WrongRun(_))
        ));
    }

    /// Bytes that are no message are malformed; one byte more than the body may take
    /// is too large, whatever the bytes.
    pub fn assert_refuses_garbage() {
        let label = |b: &[u8]| Self::decode(b, "r1").expect_err("no message").label();
        assert_eq!(label(b"{oops"), "malformed");
        assert_eq!(label(&vec![b' '; B::MAX_BYTES + 1]), "too_large");
    }
}

/// Refuses a body larger than `max` bytes or whose `v` is not `version`.
pub fn precheck(bytes: &[u8], max: usize, version: u32) -> Result<(), Rejection> {
    if bytes.len() > max {
        return Err(Rejection::TooLarge(bytes.len(), max));
    }
    #[derive(Deserialize)]
    struct Probe {
        v: Option<serde_json::Value>,
    }
    let probe: Probe = parse(bytes)?;
    match probe.v.as_ref().map(serde_json::Value::as_u64) {
        Some(Some(v)) if v == u64::from(version) => Ok(()),
        Some(Some(v)) => Err(Rejection::Version(
            Some(v.min(u64::from(u32::MAX)) as u32),
            version,
        )),
        _ => Err(Rejection::Version(None, version)),
    }
}

/// Parses JSON, a failure being a [`Rejection::Malformed`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejection> {
    serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_then_version() {
        assert_eq!(precheck(b"{\"v\":1}", 3, 1), Err(Rejection::TooLarge(7, 3)));
        assert_eq!(precheck(b"{\"v\":1}", 100, 1), Ok(()));
        assert_eq!(
            precheck(b"{\"v\":2,\"new\":true}", 100, 1),
            Err(Rejection::Version(Some(2), 1))
        );
        assert_eq!(precheck(b"{}", 100, 1), Err(Rejection::Version(None, 1)));
        assert!(matches!(
            precheck(b"{not json", 100, 1),
            Err(Rejection::Malformed(_))
        ));
    }

    #[derive(
        Debug,
        Clone,
        PartialEq,
        Eq,
        Serialize,
        Deserialize,
        strum::IntoStaticStr,
        strum::VariantNames,
    )]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    #[strum(serialize_all = "snake_case")]
    enum Toy {
        Ping { n: u64 },
        PingBack { n: u64 },
    }

    crate::contract::body!(Toy, version: 3, max_bytes: 100, check: toy_check);

    fn toy_check(toy: &Toy) -> Result<(), Rejection> {
        match toy {
            Toy::Ping { n: 0 } => Err(Rejection::Refused("n counts from 1".into())),
            _ => Ok(()),
        }
    }

    #[test]
    fn kinds_are_the_serde_tags() {
        assert_eq!(serde_tags::<Toy>(), ["ping", "ping_back"]);
        assert_eq!(serde_tags::<Toy>(), <Toy as strum::VariantNames>::VARIANTS);
        assert_eq!(Toy::PingBack { n: 1 }.kind(), "ping_back");
        let bytes = Envelope::new("r", 7u32, Toy::PingBack { n: 1 }).encode();
        assert_eq!(
            String::from_utf8_lossy(&bytes.expect("encodes")),
            r#"{"v":3,"run":"r","from":7,"type":"ping_back","n":1}"#
        );
    }

    #[test]
    fn named_and_anonymous_senders_round_trip_strictly() {
        let named = Envelope::new("r", 7u32, Toy::Ping { n: 1 });
        let bytes = named.encode().expect("encodes");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"v":3,"run":"r","from":7,"type":"ping","n":1}"#
        );
        assert_eq!(Envelope::decode(&bytes, "r"), Ok(named));
        let anon = Envelope::new("r", (), Toy::Ping { n: 1 });
        let bytes = anon.encode().expect("encodes");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"v":3,"run":"r","type":"ping","n":1}"#
        );
        assert_eq!(Envelope::decode(&bytes, "r"), Ok(anon));
        // A named protocol refuses a message without `from`; an anonymous one, with it.
        let no_from = br#"{"v":3,"run":"r","type":"ping","n":1}"#;
        assert!(matches!(
            Envelope::<u32, Toy>::decode(no_from, "r"),
            Err(Rejection::Malformed(_))
        ));
        let with_from = br#"{"v":3,"run":"r","from":7,"type":"ping","n":1}"#;
        assert!(matches!(
            Envelope::<(), Toy>::decode(with_from, "r"),
            Err(Rejection::Malformed(_))
        ));
        // Unknown fields, another run, the body's own checks, the version.
        let extra = br#"{"v":3,"run":"r","from":7,"type":"ping","n":1,"x":0}"#;
        assert!(matches!(
            Envelope::<u32, Toy>::decode(extra, "r"),
            Err(Rejection::Malformed(_))
        ));
        let bytes = Envelope::new("other", 7u32, Toy::Ping { n: 1 })
            .encode()
            .expect("encodes");
        assert_eq!(
            Envelope::<u32, Toy>::decode(&bytes, "r"),
            Err(Rejection::WrongRun("other".into()))
        );
        let zero = br#"{"v":3,"run":"r","from":7,"type":"ping","n":0}"#;
        assert!(matches!(
            Envelope::<u32, Toy>::decode(zero, "r"),
            Err(Rejection::Refused(_))
        ));
        let v1 = br#"{"v":1,"run":"r","from":7,"type":"ping","n":1}"#;
        assert_eq!(
            Envelope::<u32, Toy>::decode(v1, "r"),
            Err(Rejection::Version(Some(1), 3))
        );
    }
}
