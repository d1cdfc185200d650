//! The broker's URL, or a cluster's URLs: validated once, printed only with the passwords
//! redacted, and put in a per-participant order so a cluster's load spreads over its nodes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// One node's URL.
#[derive(Clone)]
pub struct NodeUrl {
    raw: String,
    redacted: String,
}

impl NodeUrl {
    /// The URL as given, password included: for connecting, never for printing.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// A broker's URL, or several (the nodes of a cluster), validated, with a printable form
/// that never shows a password.
///
/// Cluster awareness lives here and in [`super::connect`]: each participant tries the
/// nodes in an order of its own (ranked by a hash of its connection name and `--seed`),
/// connects to the first that answers, and after losing a connection starts with the
/// node after the one it had. Nothing else in sync-run knows there is more than one node.
#[derive(Clone)]
pub struct BrokerUrl {
    nodes: Vec<NodeUrl>,
    raw: String,
    redacted: String,
    /// The user the broker authenticates these URLs as (AMQP's default `guest` when a URL
    /// names none; every URL of a list must name the same): every message is published
    /// with it as its AMQP `user_id`, which RabbitMQ checks against the connection's user.
    user: String,
    /// Mixed into every participant's order of the nodes (`--seed`).
    seed: u64,
    /// Per connection name, the position in its order of the node it connected to last:
    /// the next connection under that name starts with the node after it.
    last: Arc<Mutex<HashMap<String, usize>>>,
}

impl BrokerUrl {
    /// Parses one URL, or several separated by commas (a cluster's nodes).
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts = split_list(s);
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "empty URL in the list {:?}: give one or more amqp:// URLs separated by commas",
                redact_loose(s)
            ));
        }
        let mut nodes = Vec::with_capacity(parts.len());
        let mut user: Option<String> = None;
        for part in parts {
            let (node, u) = parse_one(part)?;
            match &user {
                Some(first) if *first != u => {
                    return Err(format!(
                        "the URLs of one run must log in as the same user (messages carry it): {} logs in as {u:?}, the first URL as {first:?}",
                        node.redacted
                    ));
                }
                _ => user = Some(u),
            }
            nodes.push(node);
        }
        Ok(BrokerUrl {
            raw: nodes
                .iter()
                .map(|n| n.raw.as_str())
                .collect::<Vec<_>>()
                .join(","),
            redacted: nodes
                .iter()
                .map(|n| n.redacted.as_str())
                .collect::<Vec<_>>()
                .join(","),
            nodes,
            user: user.unwrap_or_else(|| "guest".into()),
            seed: 0,
            last: Default::default(),
        })
    }

    /// The same URLs, `seed` mixed into each participant's order of the nodes.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The user these URLs log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Every URL, comma-separated, passwords redacted.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URLs as given (comma-separated), passwords included: for handing to a child
    /// process's environment (`AMQP_URL`), never for printing.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The nodes, in the order given.
    pub fn nodes(&self) -> &[NodeUrl] {
        &self.nodes
    }

    /// The order in which the participant connecting as `name` tries the nodes: the nodes
    /// ranked by a hash of `name`, `--seed` and the node (rendezvous hashing: the same name
    /// and seed give the same order in every run and every build, and different names
    /// spread evenly), turned `offset` places (a pool's k-th connection takes offset k, so
    /// a pool's connections spread over every node whatever the ranking).
    pub fn order(&self, name: &str, offset: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        if order.len() > 1 {
            let key = fnv1a(name.as_bytes(), fnv1a(&self.seed.to_le_bytes(), FNV_OFFSET));
            order.sort_by_key(|&i| mix(fnv1a(&(i as u64).to_le_bytes(), key)));
            let by = offset % order.len();
            order.rotate_left(by);
        }
        order
    }

    /// Where in its order the next connection named `name` starts: after the node its
    /// last connection went to (a lost connection moves on to the next node).
    pub(crate) fn next_start(&self, name: &str) -> usize {
        self.last
            .lock()
            .map(|m| m.get(name).map_or(0, |p| p + 1))
            .unwrap_or(0)
    }

    /// Remembers that `name` connected to the node at `pos` of its order.
    pub(crate) fn connected(&self, name: &str, pos: usize) {
        if self.nodes.len() > 1
            && let Ok(mut m) = self.last.lock()
        {
            m.insert(name.to_owned(), pos);
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A stable 64-bit hash (FNV-1a) of `bytes`, continuing from `h`: the same participant gets
/// the same order of the nodes in every run and every build.
fn fnv1a(bytes: &[u8], h: u64) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A final mix (splitmix64's), so that ranks differ in their high bits too.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Splits a list of URLs at the commas that start another URL (`,scheme://`): a comma
/// inside a URL (in a password, say) stays where it is.
fn split_list(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in s.match_indices(',') {
        let rest = s[i + 1..].trim_start();
        let next_is_url = rest.is_empty()
            || rest.starts_with(',')
            || rest.split_once("://").is_some_and(|(scheme, _)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            });
        if next_is_url {
            parts.push(s[start..i].trim());
            start = i + 1;
        }
    }
    parts.push(s[start..].trim());
    parts
}

/// One URL, checked, and the user it logs in as.
fn parse_one(s: &str) -> Result<(NodeUrl, String), String> {
    let mut url = url::Url::parse(s).map_err(|e| {
        format!(
            "invalid AMQP URL {:?}: {e}; expected e.g. amqp://guest:guest@127.0.0.1:5672/%2f",
            redact_loose(s)
        )
    })?;
    if url.scheme() != "amqp" {
        return Err(format!(
            "unsupported URL scheme {:?} in {}: use amqp:// (TLS is not built in)",
            url.scheme(),
            redact_loose(s)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the AMQP URL {} names no host", redact_loose(s)));
    }
    // Let lapin's own parser have its say too (vhost, port, query options).
    s.parse::<lapin::uri::AMQPUri>()
        .map_err(|e| format!("invalid AMQP URL {}: {e}", redact_loose(s)))?;
    let user = match url.username() {
        "" => "guest".to_string(),
        u => percent_encoding::percent_decode_str(u)
            .decode_utf8_lossy()
            .into_owned(),
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    Ok((
        NodeUrl {
            raw: s.to_owned(),
            redacted: url.to_string(),
        },
        user,
    ))
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({})", self.redacted)
    }
}

/// Redacts `user:password@` in a string that may not even parse as a URL (or a
/// comma-separated list of them).
pub fn redact_loose(s: &str) -> String {
    split_list(s)
        .into_iter()
        .map(redact_one)
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &s[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &s[..scheme_end + 3],
                    &userinfo[..colon],
                    &s[at..]
                ),
                None => s.to_owned(),
            }
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = "amqp://u:secret@127.0.0.1:5681/%2f,amqp://u:secret@127.0.0.1:5682/%2f, amqp://u:secret@127.0.0.1:5683/%2f";

    #[test]
    fn a_list_parses_and_never_shows_a_password() {
        let u = BrokerUrl::parse(THREE).expect("three URLs");
        assert_eq!(u.nodes().len(), 3);
        assert_eq!(u.user(), "u");
        assert!(!u.redacted().contains("secret"), "{}", u.redacted());
        assert!(!format!("{u} {u:?}").contains("secret"));
        assert_eq!(u.redacted().matches("***").count(), 3);
        // What a child process gets back parses to the same nodes.
        let again = BrokerUrl::parse(u.as_str()).expect("round trip");
        assert_eq!(again.redacted(), u.redacted());
        assert!(!redact_loose(THREE).contains("secret"));
    }

    #[test]
    fn a_comma_in_a_password_is_part_of_the_url() {
        let u = BrokerUrl::parse("amqp://u:pa,ss@h1:5681/%2f,amqp://u:pa,ss@h2:5682/%2f")
            .expect("a comma inside a URL");
        assert_eq!(u.nodes().len(), 2);
        assert!(!u.redacted().contains("pa,ss") && !u.redacted().contains("ss@"));
        assert!(!redact_loose("amqp://u:pa,ss@h/%2f").contains("pa"));
        let e = BrokerUrl::parse("amqp://u:pa,ss@h1:badport/%2f").expect_err("bad port");
        assert!(!e.contains("pa,ss"), "{e}");
    }

    #[test]
    fn a_bad_list_is_refused_naming_what_is_wrong() {
        let e = BrokerUrl::parse("amqp://a:x@h1,,amqp://a:x@h2").expect_err("empty part");
        assert!(e.contains("empty URL"), "{e}");
        assert!(!e.contains(":x@"), "{e}");
        let e = BrokerUrl::parse("amqp://a:x@h1,amqp://b:y@h2").expect_err("two users");
        assert!(e.contains("same user"), "{e}");
        assert!(!e.contains(":y@"), "{e}");
        let e = BrokerUrl::parse("amqp://a:x@h1,http://h2").expect_err("bad scheme");
        assert!(e.contains("scheme"), "{e}");
    }

    #[test]
    fn orders_are_stable_per_participant_and_spread_over_the_nodes() {
        let u = BrokerUrl::parse(THREE).expect("three URLs");
        assert_eq!(u.order("worker 1", 0), u.order("worker 1", 0));
        let mut first = [0usize; 3];
        for w in 0..300 {
            let o = u.order(&format!("sync-run worker {w} of run r"), 0);
            let mut sorted = o.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2], "a permutation");
            first[o[0]] += 1;
        }
        assert!(
            first.iter().all(|&n| n > 60),
            "first nodes spread: {first:?}"
        );
        // A pool's k-th connection: the group's order turned k places, so three
        // connections start on three different nodes.
        let starts: std::collections::BTreeSet<usize> =
            (0..3).map(|k| u.order("pool", k)[0]).collect();
        assert_eq!(starts.len(), 3);
        // The seed changes the orders.
        let seeded = u.clone().with_seed(7);
        assert!((0..20).any(|w| {
            let n = format!("w{w}");
            seeded.order(&n, 0) != u.order(&n, 0)
        }));
        // A lost connection moves on to the next node.
        assert_eq!(u.next_start("w"), 0);
        u.connected("w", 1);
        assert_eq!(u.next_start("w"), 2);
    }
}
