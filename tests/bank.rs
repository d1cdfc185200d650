//! `sync-run bank` against a real RabbitMQ: the course's example prints exactly its output
//! (and writes it with -o); the read-your-writes and monotonic-writes cases give their
//! answers; 3 branches × 100 concurrent customers verify every check; the original design
//! (`--mode propagate`) is caught overdrawing; bad input is refused naming the entry; a
//! customer whose branch is gone fails clearly within its timeout; a branch that crashes
//! mid-run restarts and catches up; bad messages are rejected and counted; nothing is
//! left behind.

mod common;

use common::{TestBroker, broker, finish, spawn, sync_run, unique};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use std::time::{Duration, Instant};
use sync_run::algorithms::bank::command::peer_run;
use sync_run::algorithms::bank::input::{self, Input};

/// The course's example input and its exact output (tests/data/).
const EXAMPLE: &str = include_str!("data/bank_example.json");

const EXAMPLE_OUT: &str = include_str!("data/bank_example_out.json");

/// The same answers as the course's first (gRPC) version printed them, worked out by hand
/// from the example (tests/data/README.md).
const EXAMPLE_LINES: &str = include_str!("data/bank_example_lines.txt");

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write the input");
    f
}

fn path(f: &tempfile::NamedTempFile) -> String {
    f.path().to_string_lossy().into_owned()
}

/// Everything of a bank run still on the broker.
async fn leftovers(tb: &TestBroker, run_id: &str, input: &Input) -> Vec<String> {
    common::run_leftovers(tb, &peer_run(run_id, input)).await
}

/// Runs `sync-run bank FILE --run-id R extra...`; (exit code, stdout, stderr).
fn bank(tb: &TestBroker, file: &str, run_id: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["bank", file, "--run-id", run_id];
    args.extend_from_slice(extra);
    let out = sync_run(&tb.url, &args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn doc(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("no JSON document ({e}): {stdout}"))
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["verdict"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name}"))
}

/// Every one of the seven checks ran and passed.
fn assert_every_check_passed(doc: &serde_json::Value) {
    for name in [
        "reported",
        "answered",
        "balances_equal",
        "never_negative",
        "linearizable",
        "session_guarantees",
        "exactly_once",
    ] {
        assert_eq!(
            check(doc, name)["status"],
            "passed",
            "{name}: {}",
            check(doc, name)["detail"]
        );
    }
    assert_eq!(doc["verdict"]["verified"], true);
    assert_eq!(doc["skipped"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_prints_exactly_the_courses_output_and_leaves_nothing() {
    let tb = broker().await;
    let f = write(EXAMPLE);
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let run = unique("bank-ex");
    let (code, stdout, stderr) = bank(&tb, &path(&f), &run, &["-o", &path(&out)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, EXAMPLE_OUT);
    assert_eq!(
        std::fs::read_to_string(out.path()).expect("-o written"),
        EXAMPLE_OUT
    );
    assert!(
        stderr.contains("VERIFIED: 3 branches agree on 500"),
        "{stderr}"
    );
    let input = input::parse(EXAMPLE).expect("parses");
    assert_eq!(leftovers(&tb, &run, &input).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_with_print_lines_prints_the_first_versions_lines() {
    let tb = broker().await;
    let f = write(EXAMPLE);
    let run = unique("bank-lines");
    let (code, stdout, stderr) = bank(&tb, &path(&f), &run, &["--print", "lines"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, EXAMPLE_LINES);
    assert!(
        stderr.contains("VERIFIED: 3 branches agree on 500"),
        "{stderr}"
    );
    let input = input::parse(EXAMPLE).expect("parses");
    assert_eq!(leftovers(&tb, &run, &input).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_and_monotonic_writes_cases_give_their_answers() {
    let tb = broker().await;
    let cases = [
        (
            r#"[{"id": 1, "type": "customer", "events": [{"interface": "deposit", "money": 400, "dest": 1}, {"interface": "query", "dest": 2}]},
 {"id": 1, "type": "branch", "balance": 0}, {"id": 2, "type": "branch", "balance": 0}]"#,
            "[{\"id\": 1, \"recv\": [{\"interface\": \"deposit\", \"result\": \"success\"},\n                    {\"interface\": \"query\", \"result\": \"success\", \"money\": 400}]}]\n",
        ),
        (
            r#"[{"id": 1, "type": "customer", "events": [{"interface": "deposit", "money": 400, "dest": 1}, {"interface": "withdraw", "money": 400, "dest": 2}, {"interface": "query", "dest": 2}]},
 {"id": 1, "type": "branch", "balance": 0}, {"id": 2, "type": "branch", "balance": 0}]"#,
            "[{\"id\": 1, \"recv\": [{\"interface\": \"deposit\", \"result\": \"success\"},\n                    {\"interface\": \"withdraw\", \"result\": \"success\"},\n                    {\"interface\": \"query\", \"result\": \"success\", \"money\": 0}]}]\n",
        ),
    ];
    for (text, want) in cases {
        let f = write(text);
        let run = unique("bank-session");
        let (code, stdout, stderr) = bank(&tb, &path(&f), &run, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout, want);
        let input = input::parse(text).expect("parses");
        assert_eq!(leftovers(&tb, &run, &input).await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_branches_and_100_concurrent_customers_verify_every_check() {
    let tb = broker().await;
    let workload = input::random(3, 100, 10, 500, 3);
    let f = write(&input::to_json(&workload));
    let run = unique("bank-100");
    let (code, stdout, stderr) = bank(&tb, &path(&f), &run, &["--concurrent", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let d = doc(&stdout);
    assert_every_check_passed(&d);
    assert_eq!(d["figures"]["operations"], 1000);
    let a = &d["anomalies"];
    assert_eq!(a["overdrawn_branches"], 0);
    assert_eq!(a["stale_reads"], 0);
    assert_eq!(a["distinct_balances"], 1);
    assert_eq!(leftovers(&tb, &run, &workload).await, Vec::<String>::new());
}

/// 60 customers at three branches of an account of 400 each withdraw 400 at once. The
/// original design lets several succeed and overdraws; the checker says so and the run
/// fails. The ordered design lets exactly one succeed and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagate_mode_is_caught_overdrawing_and_ordered_mode_never_is() {
    let tb = broker().await;
    let mut text = String::from("[");
    for c in 1..=60 {
        text += &format!(
            r#"{{"id": {c}, "type": "customer", "events": [{{"interface": "withdraw", "money": 400, "dest": {}}}, {{"interface": "query", "dest": {}}}]}},"#,
            c % 3 + 1,
            (c + 1) % 3 + 1
        );
    }
    text += r#"{"id": 1, "type": "branch", "balance": 400}, {"id": 2, "type": "branch", "balance": 400}, {"id": 3, "type": "branch", "balance": 400}]"#;
    let f = write(&text);
    let input = input::parse(&text).expect("parses");
    let successes = |d: &serde_json::Value| {
        d["output"]
            .as_array()
            .expect("output")
            .iter()
            .filter(|c| c["recv"][0]["result"] == "success")
            .count()
    };
    let mut caught = false;
    for attempt in 0..5 {
        let run = unique("bank-prop");
        let (code, stdout, stderr) = bank(
            &tb,
            &path(&f),
            &run,
            &["--concurrent", "--mode", "propagate", "--json"],
        );
        let d = doc(&stdout);
        if successes(&d) > 1 {
            assert_eq!(code, 1, "a double spend must fail the run: {stderr}");
            assert_eq!(check(&d, "never_negative")["status"], "failed");
            assert!(d["anomalies"]["overdrawn_branches"].as_u64() > Some(0));
            eprintln!(
                "attempt {attempt}: {} withdrawals of 400 succeeded from 400; caught: {}",
                successes(&d),
                d["anomalies"]
            );
            caught = true;
        }
        assert_eq!(leftovers(&tb, &run, &input).await, Vec::<String>::new());
        if caught {
            break;
        }
    }
    assert!(
        caught,
        "60 concurrent withdrawals never double-spent in propagate mode"
    );
    let run = unique("bank-ord");
    let (code, stdout, stderr) = bank(&tb, &path(&f), &run, &["--concurrent", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let d = doc(&stdout);
    assert_every_check_passed(&d);
    assert_eq!(successes(&d), 1, "exactly one withdrawal of 400 succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_naming_the_entry() {
    let tb = broker().await;
    for (text, want) in [
        ("not json", "not JSON"),
        (
            r#"[{"id": 1, "type": "customer", "events": [{"interface": "transfer", "money": 5}]}, {"id": 1, "type": "branch", "balance": 0}]"#,
            "entry 1 (customer 1), event 1: unknown interface \"transfer\"",
        ),
        (
            r#"[{"id": 1, "type": "branch", "balance": 400}, {"id": 2, "type": "branch", "balance": 300}]"#,
            "entry 2 (branch 2): balance 300, but branch 1 starts with 400",
        ),
    ] {
        let f = write(text);
        let (code, stdout, stderr) = bank(&tb, &path(&f), &unique("bank-bad"), &[]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(want), "{stderr} lacks {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_whose_branch_is_gone_fails_clearly_within_its_timeout() {
    let tb = broker().await;
    let f = write(EXAMPLE);
    let run = unique("bank-gone");
    let t = Instant::now();
    let (code, stdout, stderr) = bank(
        &tb,
        &path(&f),
        &run,
        &[
            "--concurrent",
            "--external-branches",
            "2",
            "--timeout",
            "2s",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("customer 2: branch 2 did not answer request 1 within"),
        "{stderr}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "took {:?}",
        t.elapsed()
    );
    // The customers of the other branches were served (customer 1's query sees 400 or,
    // ordered after customer 3's withdrawal, 330).
    assert!(
        stdout.contains(
            r#"{"id": 1, "recv": [{"interface": "query", "result": "success", "money": "#
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"{"id": 3, "recv": [{"interface": "withdraw", "result": "success"}"#),
        "{stdout}"
    );
    let input = input::parse(EXAMPLE).expect("parses");
    assert_eq!(leftovers(&tb, &run, &input).await, Vec::<String>::new());
}

/// Branch 2 runs as its own process and aborts (as kill -9 would) when about to send its
/// 40th answer: mid-run by construction, since its customers have 200 calls to make there
/// and wait for each answer. Started again, it asks the sequencer for the state, drops
/// what its inbox held from before, goes on, and ends equal to the others; the customers'
/// retries are answered, not applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_that_crashes_mid_run_restarts_and_catches_up() {
    let tb = broker().await;
    let mut workload = input::random(3, 30, 20, 1000, 9);
    // Every third call at branch 2: 200 there.
    for c in &mut workload.customers {
        for (i, e) in c.events.iter_mut().enumerate() {
            e.branch = (i % 3) as u32 + 1;
        }
    }
    let f = write(&input::to_json(&workload));
    let run = unique("bank-crash");
    let file = path(&f);
    let main = spawn(
        &tb.url,
        &[
            "bank",
            &file,
            "--run-id",
            &run,
            "--concurrent",
            "--external-branches",
            "2",
            "--retry",
            "300ms",
            "--json",
        ],
    );
    common::wait_for_consumer(&tb, &format!("sync-run.bank.{run}.sequencer")).await;
    let crashing = spawn(
        &tb.url,
        &[
            "bank-branch",
            &file,
            "--run-id",
            &run,
            "--id",
            "2",
            "--crash-after-replies",
            "40",
        ],
    );
    let (code, _, stderr) = finish(crashing);
    assert_ne!(code, 0, "the branch did not crash: {stderr}");
    assert!(stderr.contains("aborting"), "{stderr}");
    let again = spawn(
        &tb.url,
        &["bank-branch", &file, "--run-id", &run, "--id", "2"],
    );
    let (code, stdout, stderr) = finish(again);
    assert_eq!(code, 0, "restarted branch: {stdout} {stderr}");
    let (code, stdout, stderr) = finish(main);
    assert_eq!(code, 0, "{stderr}");
    let d = doc(&stdout);
    assert_every_check_passed(&d);
    let branches = d["reports"]["branches"].as_array().expect("branch reports");
    let b2 = branches
        .iter()
        .find(|b| b["id"] == 2)
        .expect("branch 2 reported");
    assert!(
        b2["synced_seq"].as_u64() > Some(0),
        "the restarted branch started from a state: {b2}"
    );
    let balances: Vec<&serde_json::Value> = branches.iter().map(|b| &b["balance"]).collect();
    assert!(balances.windows(2).all(|w| w[0] == w[1]), "{balances:?}");
    eprintln!(
        "branch 2 restarted from operation {}; {}",
        b2["synced_seq"],
        check(&d, "exactly_once")["detail"]
    );
    assert_eq!(leftovers(&tb, &run, &workload).await, Vec::<String>::new());
}

/// Junk in branch 1's inbox before it starts (not JSON, another run, a request of a
/// customer the run does not have, an amount over the limit): rejected, counted in its
/// report, and the run verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_rejected_counted_and_the_run_verifies() {
    let tb = broker().await;
    let f = write(EXAMPLE);
    let file = path(&f);
    let run = unique("bank-junk");
    let input = input::parse(EXAMPLE).expect("parses");
    let main = spawn(
        &tb.url,
        &[
            "bank",
            &file,
            "--run-id",
            &run,
            "--external-branches",
            "1",
            "--json",
        ],
    );
    common::wait_for_consumer(&tb, &format!("sync-run.bank.{run}.sequencer")).await;
    let pr = peer_run(&run, &input);
    let conn = sync_run::broker::connect(&tb.broker().url, "junk", Duration::from_secs(10))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let junk: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        br#"{"v":1,"run":"another","type":"sync","branch":1}"#.to_vec(),
        format!(r#"{{"v":1,"run":"{run}","type":"request","branch":1,"op":{{"customer":77,"req":1,"op":"deposit","money":5}}}}"#).into_bytes(),
        format!(r#"{{"v":1,"run":"{run}","type":"request","branch":1,"op":{{"customer":1,"req":1,"op":"deposit","money":1000000000001}}}}"#).into_bytes(),
    ];
    for body in &junk {
        ch.basic_publish(
            pr.exchange().as_str().into(),
            "peer.1".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    }
    sync_run::broker::close_quietly(&conn, "junk sent").await;
    let branch = spawn(
        &tb.url,
        &["bank-branch", &file, "--run-id", &run, "--id", "1"],
    );
    let (code, _, stderr) = finish(branch);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = finish(main);
    assert_eq!(code, 0, "{stderr}");
    let d = doc(&stdout);
    assert_every_check_passed(&d);
    let b1 = d["reports"]["branches"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == 1))
        .expect("branch 1 reported");
    assert_eq!(b1["rejected"], 4, "{b1}");
    assert_eq!(leftovers(&tb, &run, &input).await, Vec::<String>::new());
}
