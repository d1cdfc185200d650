//! Request/reply (`sync-run serve`, `sync-run call`) against a real RabbitMQ: an echo
//! server, a CMD, a failing CMD, a name nobody serves, two servers sharing the work, the
//! check mode, a request that breaks the protocol, and nothing left behind.

mod common;

use common::{TestBroker, broker, check, finish, json, spawn, sync_run, unique};
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

/// A `sync-run serve` process, up (consuming its queue) until [`Serving::stop`].
struct Serving {
    child: Child,
    /// Its stderr after the first line, read as it comes.
    rest: std::thread::JoinHandle<String>,
}

impl Serving {
    /// Starts `serve NAME ARGS` and waits for its first line on stderr, which it prints
    /// once it consumes its queue (or for its end, if it could not start).
    fn start(tb: &TestBroker, name: &str, args: &[&str]) -> Self {
        use std::io::{BufRead, Read};
        let mut all = vec!["serve", name];
        all.extend_from_slice(args);
        let mut child = spawn(&tb.url, &all);
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        err.read_line(&mut first).expect("read stderr");
        assert!(
            first.starts_with("serving "),
            "serve did not start: {first}"
        );
        let rest = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Serving { child, rest }
    }

    /// Ctrl-C: it answers what it holds and exits 130; returns its stderr.
    fn stop(self) -> String {
        self.stop_with_stdout().1
    }

    /// [`Serving::stop`], returning its stdout too.
    fn stop_with_stdout(self) -> (String, String) {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(sent.success());
        let (code, out, _) = finish(self.child);
        let err = self.rest.join().expect("stderr reader");
        assert_eq!(code, 130, "serve stops on Ctrl-C with 130: {err}");
        (out, err)
    }
}

/// `sync-run call ARGS` with `stdin` on its standard input.
fn call_with_stdin(tb: &TestBroker, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sync-run"))
        .args(args)
        .env("AMQP_URL", &tb.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sync-run call");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin).expect("write stdin");
    }
    common::finish_output(child)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Nothing named for `name` is left on the broker (the request queue is auto-delete).
async fn gone(tb: &TestBroker, name: &str) {
    let q = format!("sync-run.rpc.{name}");
    let conn = sync_run::broker::connect(
        &tb.broker().url,
        "rpc leak check",
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("connect");
    let left = sync_run::broker::queue_exists(&conn, &q)
        .await
        .expect("probe");
    sync_run::broker::close_quietly(&conn, "leak check done").await;
    assert!(!left, "{q} is still on the broker");
    if let Some(objs) = common::broker_objects_containing(tb, &q) {
        assert!(objs.is_empty(), "left on the broker: {objs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_server_returns_the_body_and_call_exits_0() {
    let tb = broker().await;
    let name = unique("rpc-echo");
    let srv = Serving::start(&tb, &name, &["--echo"]);
    let out = sync_run(&tb.url, &["call", &name, r#"{"n": 1}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), r#"{"n": 1}"#);
    // The body from stdin, and --json with the reply's headers.
    let out = call_with_stdin(&tb, &["call", &name, "--json"], b"from stdin");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&text(&out.stdout));
    assert_eq!(doc["schema"], "sync-run/rpc-call/v1");
    assert_eq!(doc["outcome"], "ok");
    assert_eq!(doc["body"], "from stdin");
    assert_eq!(
        doc["request_sha256"],
        sync_run::algorithms::rpc::protocol::sha256_hex(b"from stdin")
    );
    let err = srv.stop();
    assert!(err.contains("2 answered ok"), "{err}");
    gone(&tb, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmd_transforms_the_body() {
    let tb = broker().await;
    let name = unique("rpc-upper");
    let srv = Serving::start(&tb, &name, &["--", "sh", "-c", "tr a-z A-Z"]);
    let out = sync_run(&tb.url, &["call", &name, "hello rpc"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "HELLO RPC");
    srv.stop();
    gone(&tb, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cmd_is_an_error_reply_with_its_stderr_tail() {
    let tb = broker().await;
    let name = unique("rpc-fail");
    let script = "cat >/dev/null; echo 'first line' >&2; echo 'no such account' >&2; exit 7";
    let srv = Serving::start(&tb, &name, &["--", "sh", "-c", script]);
    let out = sync_run(&tb.url, &["call", &name, "{}"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "an error reply prints nothing on stdout"
    );
    assert!(err.contains("answered with an error (exit 7)"), "{err}");
    assert!(err.contains("no such account"), "{err}");
    let out = sync_run(&tb.url, &["call", &name, "{}", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&text(&out.stdout));
    assert_eq!(doc["outcome"], "error");
    assert_eq!(doc["exit"], "exit 7");
    let served = srv.stop();
    assert!(served.contains("2 with an error"), "{served}");
    gone(&tb, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_serving_the_name_exits_69_at_once() {
    let tb = broker().await;
    let name = unique("rpc-nobody");
    // A timeout the test would never outlive: the answer comes from the broker's return
    // of the unroutable request, not from waiting.
    let out = sync_run(&tb.url, &["call", &name, "{}", "--timeout", "600s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains(&format!("nobody serves {name}")), "{err}");
    let out = sync_run(
        &tb.url,
        &["call", &name, "{}", "--timeout", "600s", "--json"],
    );
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(json(&text(&out.stdout))["outcome"], "no_server");
    gone(&tb, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_the_work() {
    let tb = broker().await;
    let name = unique("rpc-two");
    let a = Serving::start(&tb, &name, &["--echo", "--server-id", "one", "--json"]);
    let b = Serving::start(&tb, &name, &["--echo", "--server-id", "two"]);
    // 4 clients × 10 calls at once against the two: each server takes one at a time.
    let out = sync_run(
        &tb.url,
        &[
            "call",
            &name,
            "--check",
            "--clients",
            "4",
            "--calls",
            "10",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&text(&out.stdout));
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    let by = doc["replies_by_server"]
        .as_object()
        .expect("replies_by_server");
    let one = by.get("one").and_then(|n| n.as_u64()).unwrap_or(0);
    let two = by.get("two").and_then(|n| n.as_u64()).unwrap_or(0);
    assert!(one > 0 && two > 0, "both answered: {by:?}");
    assert_eq!(one + two, 40);
    // With --json, what it served as one document: the same count the callers saw.
    let (out, _) = a.stop_with_stdout();
    let served = json(&out);
    assert_eq!(served["schema"], "sync-run/rpc-serve/v1");
    assert_eq!(served["exit_code"], 130);
    assert_eq!(served["served"]["ok"].as_u64(), Some(one));
    b.stop();
    gone(&tb, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_mode_proves_4_clients_times_25_calls() {
    let tb = broker().await;
    let name = unique("rpc-check");
    let out = sync_run(
        &tb.url,
        &[
            "call",
            &name,
            "--check",
            "--serve-echo",
            "2",
            "--clients",
            "4",
            "--calls",
            "25",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&text(&out.stdout));
    assert_eq!(doc["schema"], "sync-run/rpc/v2");
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    for c in [
        "calls_made",
        "none_lost",
        "none_duplicated",
        "each_reply_its_own",
        "answered_well",
        "servers_shared",
    ] {
        assert_eq!(check(&doc, c)["status"], "passed", "{c}");
    }
    assert_eq!(doc["replies"]["matched"], 100);
    assert!(doc["latency_ms"]["p50"].as_f64().is_some_and(|x| x > 0.0));
    assert!(doc["one_hop_ms"]["p50"].as_f64().is_some_and(|x| x > 0.0));
    // The in-process servers' queue is named by the run id, and gone.
    let run_id = doc["run_id"].as_str().expect("run id");
    gone(&tb, &format!("{name}.{run_id}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_replies_to_nowhere_leave_the_server_serving() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    let tb = broker().await;
    let name = unique("rpc-junk");
    let srv = Serving::start(&tb, &name, &["--echo"]);
    let conn =
        sync_run::broker::connect(&tb.broker().url, "junk", std::time::Duration::from_secs(10))
            .await
            .expect("connect");
    let ch = sync_run::broker::open_channel(&conn, 1)
        .await
        .expect("channel");
    // No reply_to, no correlation id, no version: nothing a server can answer. Then
    // valid requests whose reply_to leads nowhere (a forged direct reply-to address, a
    // queue that does not exist): answered, and the broker drops the replies.
    let mut version = lapin::types::FieldTable::default();
    version.insert(
        "x-sync-run-v".into(),
        lapin::types::AMQPValue::LongLongInt(1),
    );
    let nowhere = |to: &str| {
        BasicProperties::default()
            .with_reply_to(to.into())
            .with_correlation_id("c".into())
            .with_headers(version.clone())
    };
    for props in [
        BasicProperties::default(),
        nowhere("amq.rabbitmq.reply-to.forged"),
        nowhere("no-such-queue"),
    ] {
        ch.basic_publish(
            "".into(),
            format!("sync-run.rpc.{name}").as_str().into(),
            BasicPublishOptions::default(),
            b"junk",
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    sync_run::broker::close_quietly(&conn, "junk sent").await;
    // The server goes on: a proper call after the junk is answered (one at a time, in
    // the queue's order, so the junk was handled first).
    let out = sync_run(&tb.url, &["call", &name, "after"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "after");
    let err = srv.stop();
    assert!(err.contains("request refused"), "{err}");
    assert!(
        err.contains("3 answered ok, 0 with an error, 1 refused"),
        "{err}"
    );
    gone(&tb, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reply_within_the_timeout_exits_75_and_the_late_reply_goes_nowhere() {
    let tb = broker().await;
    let name = unique("rpc-slow");
    // A CMD that never ends by itself: the call gives up first (1 s), the server kills it
    // at its --cmd-timeout (3 s) and answers a caller that is gone.
    let srv = Serving::start(
        &tb,
        &name,
        &["--cmd-timeout", "3s", "--", "tail", "-f", "/dev/null"],
    );
    let out = sync_run(&tb.url, &["call", &name, "{}", "--timeout", "1s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("no reply from"), "{err}");
    // The server is still there and serves on (its one slot is free again once the CMD
    // was killed and its error reply went to the gone caller).
    let out = sync_run(
        &tb.url,
        &["call", &name, "{}", "--json", "--timeout", "30s"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(json(&text(&out.stdout))["exit"], "timeout 3s");
    let served = srv.stop();
    assert!(served.contains("2 with an error"), "{served}");
    gone(&tb, &name).await;
}

/// docs/PROTOCOL.md §17 promises enough to write a server in another language: this one
/// is Python with pika, written from it; `call` and the check mode take its replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_server_written_from_the_protocol_document_answers() {
    use std::io::BufRead;
    if !common::python_with_pika() {
        return;
    }
    let tb = broker().await;
    let name = unique("rpc-py");
    let mut py = Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/rpc_server.py"),
            &tb.url,
            &name,
            "11",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the python server");
    let mut out = std::io::BufReader::new(py.stdout.take().expect("stdout"));
    let mut ready = String::new();
    out.read_line(&mut ready).expect("read");
    assert_eq!(ready.trim(), "ready");
    let one = sync_run(&tb.url, &["call", &name, "from rust"]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    assert_eq!(text(&one.stdout), "FROM RUST");
    // Ten more: the checks hold for a server in another language (not an echo: each
    // reply is checked by its correlation id and its request's SHA-256).
    let check = sync_run(
        &tb.url,
        &[
            "call",
            &name,
            "--check",
            "--clients",
            "2",
            "--calls",
            "5",
            "--json",
        ],
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let doc = json(&text(&check.stdout));
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    assert_eq!(doc["replies_by_server"]["py-1"], 10);
    // Bounded: a server that does not stop is killed and the test fails.
    let (code, _, err) = finish(py);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    assert_eq!(code, 0, "{rest}{err}");
    assert_eq!(rest.trim(), "answered 11");
    gone(&tb, &name).await;
}

/// A server that dies holding a request never acknowledged it: the broker delivers it
/// again to the other server, and the call gets its reply. The death is by construction:
/// the doomed server's CMD kills the server itself (SIGKILL) while it holds the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_request_leaves_it_to_another() {
    let tb = broker().await;
    let name = unique("rpc-kill");
    let survivor = Serving::start(&tb, &name, &["--echo", "--server-id", "survivor"]);
    let mut doomed = Serving::start(
        &tb,
        &name,
        &["--server-id", "doomed", "--", "sh", "-c", "kill -9 $PPID"],
    );
    // The broker hands the two idle servers requests in turn: within a few calls one
    // reaches the doomed server. Every call is answered, by the survivor.
    let mut calls = 0;
    while doomed.child.try_wait().expect("try_wait").is_none() {
        calls += 1;
        assert!(calls <= 10, "the doomed server never got a request");
        let body = format!("call {calls}");
        let out = sync_run(&tb.url, &["call", &name, &body, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let doc = json(&text(&out.stdout));
        assert_eq!(doc["server"], "survivor");
        assert_eq!(doc["body"], body.as_str());
    }
    let (code, _, _) = finish(doomed.child);
    assert_eq!(code, -1, "the doomed server died of SIGKILL");
    let _ = doomed.rest.join();
    let err = survivor.stop();
    assert!(err.contains(&format!("{calls} answered ok")), "{err}");
    assert!(err.contains("1 delivered again"), "{err}");
    gone(&tb, &name).await;
}
