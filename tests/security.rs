//! Who may speak for the master (`--master-user`), shown with two broker users on the
//! suite's private RabbitMQ node (creating users reconfigures a broker: never the user's).
//!
//! The master connects as `sr-master`, the workers and a forger as `sr-worker`. RabbitMQ
//! checks a message's AMQP `user_id` against the publishing connection's user, so the
//! forger can neither claim `sr-master` (the broker refuses the publish) nor get a grant
//! without it past a worker started with `--master-user sr-master` (refused and counted).

mod common;
mod observer;

use common::{finish, leftovers, private_broker, skip_faults, spawn, unique};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use observer::{Observer, is, signal};
use serde_json::{Value, json};
use std::time::Duration;

/// Creates `user` with full permissions on `/`; deleted again on drop.
struct User<'a>(&'a str);
impl<'a> User<'a> {
    fn add(user: &'a str) -> Self {
        let b = private_broker();
        // A user left by an aborted earlier test is replaced.
        let _ = b.ctl(&["delete_user", user]);
        let out = b.ctl(&["add_user", user, "pw-of-the-test"]);
        assert!(out.status.success(), "add_user {user}: {out:?}");
        let out = b.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
        assert!(out.status.success(), "set_permissions {user}: {out:?}");
        User(user)
    }
    fn url(&self) -> String {
        private_broker().url_as(self.0, "pw-of-the-test")
    }
}
impl Drop for User<'_> {
    fn drop(&mut self) {
        let _ = private_broker().ctl(&["delete_user", self.0]);
    }
}

/// Publishes `body` on the run's fanout as `url`'s user, with `user_id` if given; returns
/// whether the broker accepted (confirmed) it.
async fn forge(url: &str, run: &str, body: &Value, user_id: Option<&str>) -> bool {
    let url = sync_run::broker::BrokerUrl::parse(url).expect("url");
    let conn = sync_run::broker::connect(&url, "forger", Duration::from_secs(10))
        .await
        .expect("forger connects");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirms");
    let mut props = BasicProperties::default();
    if let Some(u) = user_id {
        props = props.with_user_id(u.into());
    }
    let fanout = sync_run::algorithms::list::protocol::Names::new(run).fanout();
    let sent = ch
        .basic_publish(
            fanout.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            props,
        )
        .await;
    let accepted = match sent {
        Ok(confirm) => matches!(confirm.await, Ok(lapin::Confirmation::Ack(_))),
        Err(_) => false,
    };
    sync_run::broker::close_quietly(&conn, "forger done").await;
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_forged_with_a_workers_credentials_is_refused_and_counted() {
    if skip_faults("a_grant_forged_with_a_workers_credentials_is_refused_and_counted") {
        return;
    }
    let b = private_broker();
    let (master_user, worker_user) = (User::add("sr-master"), User::add("sr-worker"));
    let run = unique("forged");
    let mut obs = Observer::new(&worker_user.url(), &run, false).await;
    let master = spawn(
        &master_user.url(),
        &[
            "master",
            "--slaves",
            "2",
            "--pace",
            "300ms",
            "--rounds",
            "3",
            "--grant-timeout",
            "3s",
            "--run-id",
            &run,
            "--json",
            "--timeout",
            "60s",
        ],
    );
    let workers: Vec<_> = (1..=2)
        .map(|k| {
            spawn(
                &worker_user.url(),
                &[
                    "worker",
                    "--run-id",
                    &run,
                    "--id",
                    &k.to_string(),
                    "--master-user",
                    "sr-master",
                    "--timeout",
                    "60s",
                ],
            )
        })
        .collect();
    let first = obs
        .wait_for("the first grant", Duration::from_secs(60), |m| {
            is(m, "grant")
        })
        .await;
    // Freeze the master between turns (--pace: the next grant waits 300 ms after a commit,
    // and five more turns are to come): the run cannot end before the forgeries arrive.
    signal(master.id(), "STOP");
    assert!(
        !obs.saw(Duration::from_millis(100), |m| is(m, "end")).await,
        "the run must still be going"
    );
    let granted = obs.seen.iter().filter(|m| is(m, "grant")).count() as u64;
    let victim = if first["worker"] == 1 { 2 } else { 1 };
    let forged = json!({
        "v": 1, "run": run, "from": first["from"], "type": "grant",
        "seq": granted + 1, "worker": victim, "lease_ms": 1
    });
    // Claiming the master's user is refused by the broker itself...
    assert!(
        !forge(&worker_user.url(), &run, &forged, Some("sr-master")).await,
        "RabbitMQ must refuse a user_id that is not the connection's user"
    );
    // ...and without it (or with its own), every worker refuses the grant.
    assert!(forge(&worker_user.url(), &run, &forged, None).await);
    assert!(forge(&worker_user.url(), &run, &forged, Some("sr-worker")).await);
    signal(master.id(), "CONT");
    let (code, out, err) = finish(master);
    assert_eq!(code, 0, "no honest worker evicted: {out}{err}");
    let doc: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(doc["verdict"]["verified"], true);
    assert_eq!(doc["evicted"], json!([]));
    // Two forged grants reached each of the two workers.
    assert_eq!(doc["rejected_by_workers"], json!(4), "{err}");
    for w in workers {
        let (code, _, err) = finish(w);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("--master-user"),
            "the refusal is logged: {err}"
        );
    }
    obs.close().await;
    assert!(leftovers(&b.test_broker(), &run, 2).await.is_empty());
}
