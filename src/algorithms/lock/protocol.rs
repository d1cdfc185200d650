//! The lock's names on the broker and its two messages (normative text: PROTOCOL.md,
//! "Lock"): the token, the one message of a slot queue, and the holder's record, the last
//! word of whoever holds a slot.

use super::token::{Fence, Slot};
use crate::broker::lease::LeaseQueues;
use serde::{Deserialize, Serialize};

/// The version of both messages.
pub const VERSION: u32 = 1;

/// Largest token or record accepted, in bytes: anything longer is no message of ours.
pub const MAX_BYTES: usize = 4096;

/// The queue whose `x-max-length` is the lock's `--limit` (and whose consumers are the
/// contenders present).
pub fn marker(lock: &str) -> String {
    format!("sync-run.lock.{lock}")
}

/// Slot `s`'s token queue.
pub fn slot_queue(lock: &str, s: Slot) -> String {
    format!("sync-run.lock.{lock}.{s}")
}

/// Slot `s`'s record queue.
pub fn record_queue(lock: &str, s: Slot) -> String {
    format!("sync-run.lock.{lock}.{s}.holder")
}

/// Every queue of lock `lock` with `limit` slots.
pub fn queues(lock: &str, limit: u32) -> LeaseQueues {
    LeaseQueues {
        marker: marker(lock),
        slots: (0..limit).map(|s| slot_queue(lock, s)).collect(),
        records: (0..limit).map(|s| record_queue(lock, s)).collect(),
    }
}

/// A slot's token: `{"v":1,"lock":NAME,"slot":s,"fence":F}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub v: u32,
    pub lock: String,
    pub slot: Slot,
    pub fence: Fence,
}

impl Token {
    pub fn new(lock: &str, slot: Slot, fence: Fence) -> Self {
        Token {
            v: VERSION,
            lock: lock.to_owned(),
            slot,
            fence,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Plain numbers and strings: serializing cannot fail, and an empty body must never
        // be published in its place (the house's rule for every message).
        serde_json::to_vec(self).expect("a struct of plain fields serializes")
    }

    /// A token of slot `slot` of lock `lock`, strictly: anything else in a slot queue
    /// (another version, another lock's or slot's token, junk) is refused.
    pub fn decode(body: &[u8], lock: &str, slot: Slot) -> Result<Token, String> {
        if body.len() > MAX_BYTES {
            return Err(format!("{} bytes, more than {MAX_BYTES}", body.len()));
        }
        let t: Token = serde_json::from_slice(body).map_err(|e| format!("not a token: {e}"))?;
        if t.v != VERSION {
            return Err(format!("token version {} (this is {VERSION})", t.v));
        }
        if t.lock != lock || t.slot != slot {
            return Err(format!(
                "a token of {}/{} in {}/{}",
                t.lock, t.slot, lock, slot
            ));
        }
        // The next holder takes fence + 1: a token with no successor is not one any
        // contender wrote (fences count acquisitions), and must not wrap to 0.
        if t.fence == Fence::MAX {
            return Err(format!("a fence of {} leaves no next one", t.fence));
        }
        Ok(t)
    }
}

/// What a holder leaves in its slot's record queue when it starts: who, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub lock: String,
    pub slot: Slot,
    pub fence: Fence,
    pub host: String,
    pub pid: u32,
    /// Wall clock, milliseconds since the Unix epoch.
    pub since_ms: u64,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // Plain numbers and strings: serializing cannot fail, and an empty body must never
        // be published in its place (the house's rule for every message).
        serde_json::to_vec(self).expect("a struct of plain fields serializes")
    }

    pub fn decode(body: &[u8]) -> Result<Record, String> {
        if body.len() > MAX_BYTES {
            return Err(format!("{} bytes, more than {MAX_BYTES}", body.len()));
        }
        let r: Record = serde_json::from_slice(body).map_err(|e| format!("not a record: {e}"))?;
        if r.v != VERSION {
            return Err(format!("record version {} (this is {VERSION})", r.v));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_strangers_are_refused() {
        let t = Token::new("db", 1, 42);
        let b = t.encode();
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"v":1,"lock":"db","slot":1,"fence":42}"#
        );
        assert_eq!(Token::decode(&b, "db", 1), Ok(t));
        assert!(Token::decode(&b, "db", 0).is_err());
        assert!(Token::decode(&b, "other", 1).is_err());
        assert!(Token::decode(br#"{"v":2,"lock":"db","slot":1,"fence":1}"#, "db", 1).is_err());
        assert!(Token::decode(br#"{"v":1,"lock":"db","slot":1,"fence":-1}"#, "db", 1).is_err());
        assert!(Token::decode(b"junk", "db", 1).is_err());
        let last = format!(r#"{{"v":1,"lock":"db","slot":1,"fence":{}}}"#, u64::MAX);
        assert!(Token::decode(last.as_bytes(), "db", 1).is_err(), "no fence after it");
        assert!(Token::decode(&vec![b' '; MAX_BYTES + 1], "db", 1).is_err());
    }

    /// PROTOCOL.md §18's token and record examples are what the code writes and reads.
    #[test]
    fn the_documented_examples_are_the_code() {
        let doc = include_str!("../../../docs/PROTOCOL.md");
        let s18 = &doc[doc.find("## 18. The lock").expect("§18")..];
        let mut blocks = s18
            .split("```json\n")
            .skip(1)
            .filter_map(|b| b.split("\n```").next());
        let token = blocks.next().expect("a token example");
        let t = Token::decode(token.as_bytes(), "db", 0).expect("the token example decodes");
        assert_eq!(String::from_utf8_lossy(&t.encode()), token, "canonical form");
        let record = blocks.next().expect("a record example");
        let r = Record::decode(record.as_bytes()).expect("the record example decodes");
        assert_eq!(String::from_utf8_lossy(&r.encode()), record, "canonical form");
    }

    #[test]
    fn names() {
        let q = queues("db", 2);
        assert_eq!(q.marker, "sync-run.lock.db");
        assert_eq!(q.slots, ["sync-run.lock.db.0", "sync-run.lock.db.1"]);
        assert_eq!(q.records[1], "sync-run.lock.db.1.holder");
    }
}
