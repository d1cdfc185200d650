//! What each client of `call --check` writes down: every call it made and every reply
//! that arrived for it, as the reply's own headers said — the only input of the checks.
//! Filed by correlation id alone, whatever the pending table thought of the reply, so a
//! duplicate or another request's reply stays visible to the checker.

use super::protocol::{ReplyMeta, Status};
use super::pending::Micros;
use serde::{Deserialize, Serialize};

/// One reply as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplySeen {
    pub correlation_id: String,
    /// The request SHA-256 the reply names.
    pub request_sha256: String,
    pub server: String,
    pub status: Status,
    /// SHA-256 of the reply's body (an echo's equals its request's).
    pub body_sha256: String,
    /// When it arrived, on the client's clock (µs).
    pub at_us: Micros,
}

impl ReplySeen {
    pub fn new(meta: &ReplyMeta, body_sha256: String, at_us: Micros) -> Self {
        ReplySeen {
            correlation_id: meta.correlation_id.clone(),
            request_sha256: meta.request_sha256.clone(),
            server: meta.server.clone(),
            status: meta.status,
            body_sha256,
            at_us,
        }
    }
}

/// One call: what was sent, and every reply filed under its correlation id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub client: u32,
    pub seq: u32,
    pub correlation_id: String,
    pub request_sha256: String,
    pub sent_us: Micros,
    pub replies: Vec<ReplySeen>,
    /// The caller gave up on it (no reply within `--timeout`, which alone would exit 75):
    /// a reply filed after that came too late to count.
    #[serde(default)]
    pub gave_up: bool,
}

impl CallRecord {
    /// From the request to its first reply, if one came.
    pub fn latency_us(&self) -> Option<Micros> {
        self.replies
            .first()
            .map(|r| r.at_us.saturating_sub(self.sent_us))
    }
}

/// Everything one client saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client: u32,
    pub calls: Vec<CallRecord>,
    /// Replies whose correlation id is none of this client's calls.
    pub strays: Vec<ReplySeen>,
    /// Replies refused as malformed (a header missing or wrong): counted, not filed.
    pub rejected: u64,
}

impl ClientRecord {
    pub fn new(client: u32) -> Self {
        ClientRecord {
            client,
            ..Default::default()
        }
    }

    /// Files a reply under its call, or as a stray.
    pub fn file(&mut self, reply: ReplySeen) {
        match self
            .calls
            .iter_mut()
            .rev()
            .find(|c| c.correlation_id == reply.correlation_id)
        {
            Some(c) => c.replies.push(reply),
            None => self.strays.push(reply),
        }
    }
}
