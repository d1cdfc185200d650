//! Each check fails without its property: a good run's records, corrupted one way at a
//! time, fail exactly the check that guards it.

use super::*;
use crate::algorithms::rpc::protocol::sha256_hex;
use crate::algorithms::rpc::record::ReplySeen;
use crate::verdict::Status as S;

const E: Expect = Expect {
    clients: 2,
    calls: 3,
    echo: true,
    servers: Some(2),
};

fn good() -> Vec<ClientRecord> {
    (1..=E.clients)
        .map(|client| {
            let mut r = ClientRecord::new(client);
            for seq in 1..=E.calls {
                let sha = sha256_hex(format!("{client}/{seq}").as_bytes());
                let id = format!("c{client}-{seq}");
                r.calls.push(CallRecord {
                    client,
                    seq,
                    correlation_id: id.clone(),
                    request_sha256: sha.clone(),
                    sent_us: u64::from(seq) * 10,
                    replies: vec![],
                    gave_up: false,
                });
                r.file(ReplySeen {
                    correlation_id: id,
                    request_sha256: sha.clone(),
                    server: format!("s{}", seq % 2),
                    status: Status::Ok,
                    body_sha256: sha,
                    at_us: u64::from(seq) * 10 + 2,
                });
            }
            r
        })
        .collect()
}

fn status(records: &[ClientRecord], name: &str) -> S {
    verify(records, &E)
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
        .expect("check exists")
}

/// Only `name` fails.
fn fails_alone(records: &[ClientRecord], name: &str) {
    let v = verify(records, &E);
    for c in &v.checks {
        let want = if c.name == name { S::Failed } else { S::Passed };
        assert_eq!(c.status, want, "{}", v.lines());
    }
}

#[test]
fn a_good_run_passes_every_check() {
    let v = verify(&good(), &E);
    assert!(v.verified, "{}", v.lines());
    assert_eq!(v.checks.len(), 6);
    assert_eq!(good()[0].calls[0].latency_us(), Some(2));
}

#[test]
fn nothing_to_look_at_is_not_verified() {
    let v = verify(&[ClientRecord::new(1)], &E);
    assert!(!v.verified);
    assert_eq!(v.checks[0].status, S::NotRun);
}

#[test]
fn a_missing_or_repeated_call_or_body_fails_calls_made() {
    let mut r = good();
    r[0].calls.pop();
    fails_alone(&r, "calls_made");
    let mut r = good();
    r[1].calls[0].seq = 2;
    r[1].calls[0].client = 1;
    assert_eq!(status(&r, "calls_made"), S::Failed);
    let mut r = good();
    let other = r[0].calls[1].request_sha256.clone();
    r[0].calls[0].request_sha256 = other.clone();
    r[0].calls[0].replies[0].request_sha256 = other.clone();
    r[0].calls[0].replies[0].body_sha256 = other;
    fails_alone(&r, "calls_made");
}

/// A call its caller gave up on is lost, even when its reply came later (filed under it):
/// without `--check` that call would have exited 75.
#[test]
fn a_call_given_up_fails_none_lost_even_with_a_late_reply() {
    let mut r = good();
    r[0].calls[1].gave_up = true;
    fails_alone(&r, "none_lost");
}

#[test]
fn a_call_without_reply_fails_none_lost() {
    let mut r = good();
    r[1].calls[2].replies.clear();
    fails_alone(&r, "none_lost");
}

#[test]
fn a_second_reply_or_a_stray_fails_none_duplicated() {
    let mut r = good();
    let again = r[0].calls[0].replies[0].clone();
    r[0].file(again);
    fails_alone(&r, "none_duplicated");
    let mut r = good();
    let mut stray = r[0].calls[0].replies[0].clone();
    stray.correlation_id = "nobody".into();
    r[0].file(stray);
    assert_eq!(r[0].strays.len(), 1);
    fails_alone(&r, "none_duplicated");
}

#[test]
fn another_requests_reply_fails_each_reply_its_own() {
    let mut r = good();
    r[0].calls[0].replies[0].request_sha256 = r[0].calls[1].request_sha256.clone();
    assert_eq!(status(&r, "each_reply_its_own"), S::Failed);
    let mut r = good();
    r[0].calls[0].replies[0].correlation_id = "c9-9".into();
    fails_alone(&r, "each_reply_its_own");
}

#[test]
fn an_error_or_a_changed_echo_fails_answered_well() {
    let mut r = good();
    r[1].calls[1].replies[0].status = Status::Error;
    fails_alone(&r, "answered_well");
    let mut r = good();
    r[1].calls[1].replies[0].body_sha256 = sha256_hex(b"something else");
    fails_alone(&r, "answered_well");
}

#[test]
fn one_server_doing_all_fails_servers_shared() {
    let mut r = good();
    for c in r.iter_mut().flat_map(|r| r.calls.iter_mut()) {
        c.replies[0].server = "s0".into();
    }
    fails_alone(&r, "servers_shared");
    assert_eq!(shares(&r).get("s0"), Some(&6));
    let external = Expect {
        servers: None,
        ..E
    };
    assert!(verify(&r, &external).verified);
}
