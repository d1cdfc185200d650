//! The wire format of request/reply (normative text: docs/PROTOCOL.md §17): the request
//! queue's name, the headers every reply carries, and what makes a request or a reply
//! valid. Plain AMQP properties and headers, no envelope: the body is the caller's and the
//! CMD's own bytes, so that a client or server in any language needs nothing but a
//! RabbitMQ library and SHA-256.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The protocol version, in every request's and reply's `x-sync-run-v` header.
pub const VERSION: u32 = 1;
/// The header naming the protocol version (an integer; a string of digits is accepted).
pub const H_VERSION: &str = "x-sync-run-v";
/// A reply's header: the SHA-256 (64 lowercase hex digits) of the request body it answers.
pub const H_REQUEST_SHA256: &str = "x-sync-run-request-sha256";
/// A reply's header: which server answered (its `--server-id`).
pub const H_SERVER: &str = "x-sync-run-server";
/// A reply's header: `ok` (the body is the reply) or `error` (the body says why).
pub const H_STATUS: &str = "x-sync-run-status";
/// An error reply's header: what became of CMD (`exit 3`, `signal 9`, `timeout 30s`,
/// `refused: …`, `spawn: …`, `too large`).
pub const H_EXIT: &str = "x-sync-run-exit";
/// The largest reply body a server sends (a CMD printing more gets an error reply), and
/// the largest request body a caller sends: 16 MiB, far below RabbitMQ's own limit.
pub const MAX_BODY: usize = 16 << 20;
/// The longest correlation id accepted (an AMQP short string holds 255 bytes).
pub const MAX_CORRELATION_ID: usize = 255;

/// The queue a NAME's servers consume and its callers publish to (default exchange).
pub fn queue(name: &str) -> String {
    format!("sync-run.rpc.{name}")
}

/// A NAME: 1 to 64 letters, digits, `.`, `-` or `_`, starting with a letter or a digit
/// (it becomes part of a queue name and is typed on command lines).
pub fn validate_name(name: &str) -> Result<(), String> {
    let rules = crate::contract::Name {
        what: "NAME",
        also: &['.', '-', '_'],
        use_only: "letters, digits, '.', '-' and '_'",
        start_why: "",
    };
    rules.validate(name)
}

/// SHA-256 of `body`, 64 lowercase hex digits: how a reply names its request.
pub fn sha256_hex(body: &[u8]) -> String {
    format!("{:x}", Sha256::digest(body))
}

/// A reply's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// A valid request, as a server reads it: where the reply goes and how it is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    pub reply_to: String,
    pub correlation_id: String,
}

/// What a reply says of itself (its headers and correlation id), once valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplyMeta {
    pub correlation_id: String,
    pub request_sha256: String,
    pub server: String,
    pub status: Status,
    /// For an error reply: what became of CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
}

/// The version header is 1 (an integer or a string of digits: both are what a client in
/// another language most naturally writes).
fn version_ok(headers: &BTreeMap<String, String>) -> Result<(), String> {
    match headers.get(H_VERSION).map(|v| v.trim()) {
        Some(v) if v.parse::<u32>() == Ok(VERSION) => Ok(()),
        Some(v) => Err(format!("{H_VERSION} is {v:?}, this build speaks {VERSION}")),
        None => Err(format!("no {H_VERSION} header")),
    }
}

fn correlation_ok(id: Option<&str>) -> Result<String, String> {
    match id {
        None | Some("") => Err("no correlation_id".into()),
        Some(id) if id.len() > MAX_CORRELATION_ID => Err(format!(
            "a correlation_id of {} bytes (at most {MAX_CORRELATION_ID})",
            id.len()
        )),
        Some(id) => Ok(id.to_owned()),
    }
}

/// Reads a request's properties: a server answers only a request that says where to
/// reply, how to match the reply, in this protocol's version, within the size limit.
pub fn read_request(
    reply_to: Option<&str>,
    correlation_id: Option<&str>,
    headers: &BTreeMap<String, String>,
    body_len: usize,
) -> Result<RequestMeta, String> {
    version_ok(headers)?;
    if body_len > MAX_BODY {
        return Err(format!("a body of {body_len} bytes (at most {MAX_BODY})"));
    }
    let reply_to = match reply_to {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => return Err("no reply_to: nowhere to send the reply".into()),
    };
    Ok(RequestMeta {
        reply_to,
        correlation_id: correlation_ok(correlation_id)?,
    })
}

/// Reads a reply's properties and headers: a correlation id, the version, a request
/// SHA-256 of 64 hex digits, a server, a status.
pub fn read_reply(
    correlation_id: Option<&str>,
    headers: &BTreeMap<String, String>,
) -> Result<ReplyMeta, String> {
    version_ok(headers)?;
    let correlation_id = correlation_ok(correlation_id)?;
    let sha = headers
        .get(H_REQUEST_SHA256)
        .ok_or_else(|| format!("no {H_REQUEST_SHA256} header"))?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{H_REQUEST_SHA256} {sha:?} is not 64 hex digits"));
    }
    let server = headers
        .get(H_SERVER)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no {H_SERVER} header"))?;
    let status = match headers.get(H_STATUS).map(String::as_str) {
        Some("ok") => Status::Ok,
        Some("error") => Status::Error,
        other => return Err(format!("{H_STATUS} is {other:?}, not \"ok\" or \"error\"")),
    };
    Ok(ReplyMeta {
        correlation_id,
        request_sha256: sha.to_ascii_lowercase(),
        server: server.clone(),
        status,
        exit: headers.get(H_EXIT).cloned(),
    })
}

/// The headers of a reply to a request whose body hashes to `request_sha256`, as text
/// (the adapter writes the version as an integer).
pub fn reply_headers(
    server: &str,
    request_sha256: &str,
    status: Status,
    exit: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (H_REQUEST_SHA256, request_sha256.to_owned()),
        (H_SERVER, server.to_owned()),
        (H_STATUS, status.as_str().to_owned()),
    ];
    if let Some(e) = exit {
        h.push((H_EXIT, e.to_owned()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn good_reply() -> BTreeMap<String, String> {
        let mut h = headers(&[(H_VERSION, "1")]);
        for (k, v) in reply_headers("s1", &sha256_hex(b"hi"), Status::Ok, None) {
            h.insert(k.to_owned(), v);
        }
        h
    }

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// PROTOCOL.md §17's example names the real headers, the real queue and the SHA-256
    /// of its request body: a client written from it matches this code.
    #[test]
    fn the_protocol_documents_example_is_true() {
        let doc = include_str!("../../../docs/PROTOCOL.md");
        let s17 = &doc[doc.find("## 17. Request/reply messages").expect("§17")..];
        for name in [H_VERSION, H_REQUEST_SHA256, H_SERVER, H_STATUS, H_EXIT] {
            assert!(s17.contains(name), "{name} in §17");
        }
        assert!(s17.contains(&queue("upper")));
        assert!(s17.contains("body:       hello"));
        assert!(s17.contains(&sha256_hex(b"hello")));
        assert!(s17.contains(&format!("\"{H_VERSION}\": {VERSION}")));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("upper.v2-x_1").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(queue("upper"), "sync-run.rpc.upper");
    }

    #[test]
    fn a_valid_reply_reads_back() {
        let m = read_reply(Some("c1"), &good_reply()).expect("valid");
        assert_eq!(m.server, "s1");
        assert_eq!(m.status, Status::Ok);
        assert_eq!(m.request_sha256, sha256_hex(b"hi"));
    }

    #[test]
    fn broken_replies_are_refused() {
        assert!(read_reply(None, &good_reply()).is_err());
        for (k, v) in [
            (H_VERSION, "2"),
            (H_REQUEST_SHA256, "abc"),
            (H_STATUS, "fine"),
            (H_SERVER, ""),
        ] {
            let mut h = good_reply();
            h.insert(k.to_owned(), v.to_owned());
            assert!(read_reply(Some("c1"), &h).is_err(), "{k}={v}");
        }
        let mut h = good_reply();
        h.remove(H_SERVER);
        assert!(read_reply(Some("c1"), &h).is_err());
    }

    #[test]
    fn requests_need_a_reply_address_a_correlation_id_and_the_version() {
        let v = headers(&[(H_VERSION, "1")]);
        assert!(read_request(Some("amq.rabbitmq.reply-to.x"), Some("c"), &v, 3).is_ok());
        assert!(read_request(None, Some("c"), &v, 3).is_err());
        assert!(read_request(Some("r"), None, &v, 3).is_err());
        assert!(read_request(Some("r"), Some("c"), &BTreeMap::new(), 3).is_err());
        assert!(read_request(Some("r"), Some("c"), &v, MAX_BODY + 1).is_err());
        let long = "c".repeat(MAX_CORRELATION_ID + 1);
        assert!(read_request(Some("r"), Some(&long), &v, 3).is_err());
    }
}
