//! Mutual exclusion (`sync-run mutex`) and logical clocks (`sync-run clocks`) against a
//! real RabbitMQ: whole runs, runs split over separate processes, a silent process, junk on
//! an inbox, bad options, and nothing left behind. Faults that close connections are in
//! tests/faults.rs (they need the private broker).

mod common;

use common::{TestBroker, broker, finish, spawn, sync_run, unique};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use serde_json::Value;
use std::time::{Duration, Instant};
use sync_run::broker::peers::PeerRun;

/// Everything of a mutex or clocks run still on the broker.
async fn peer_leftovers(tb: &TestBroker, alg: &'static str, run_id: &str, n: u32) -> Vec<String> {
    common::run_leftovers(tb, &PeerRun::numbered(alg, run_id.to_owned(), n)).await
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not one JSON document ({e}): {out}"))
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["verdict"]["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name:?} in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_five_processes_three_entries_verified_and_clean() {
    let tb = broker().await;
    let run = unique("mx");
    let out = sync_run(
        &tb.url,
        &[
            "mutex",
            "--processes",
            "5",
            "--entries",
            "3",
            "--run-id",
            &run,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The events, with both clocks, and the verdict.
    assert!(text.contains("P3 enter #2"), "{text}");
    assert!(text.contains("VC=["), "{text}");
    assert!(text.contains("VERIFIED: 5 processes, 15 entries"), "{text}");
    assert_eq!(text.matches("[ok]").count(), 5, "{text}");
    assert!(peer_leftovers(&tb, "mutex", &run, 5).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_json_has_every_check_and_every_section() {
    let tb = broker().await;
    let run = unique("mxj");
    let out = sync_run(
        &tb.url,
        &[
            "mutex", "-n", "4", "-k", "5", "--hold", "2ms", "--run-id", &run, "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let doc = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(doc["schema"], "sync-run/mutex/v2");
    assert_eq!(doc["verdict"]["verified"], true);
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["verdict"]["checks"].as_array().map(Vec::len), Some(5));
    for c in doc["verdict"]["checks"].as_array().into_iter().flatten() {
        assert_eq!(c["status"], "passed", "{c}");
    }
    let reports = doc["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 4);
    let sections: usize = reports
        .iter()
        .map(|r| r["executions"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(sections, 20);
    // 2(N−1) = 6 messages per entry, counted by the processes themselves.
    let sent: u64 = reports
        .iter()
        .map(|r| {
            r["counts"]["requests_sent"].as_u64().unwrap_or(0)
                + r["counts"]["replies_sent"].as_u64().unwrap_or(0)
        })
        .sum();
    assert_eq!(sent, 20 * 6);
}

/// Runs `alg` split over processes: the collector runs `local` (with `flags`) and renders
/// the verdict; every other id runs alone as `<alg>-process`. Returns the collector's exit
/// code, stdout and stderr, after checking that every process alone completed.
fn split_run(
    url: &str,
    alg: &str,
    run: &str,
    shape: &[&str],
    local: &[u32],
    flags: &[&str],
) -> (i32, String, String) {
    let n: u32 = shape[1].parse().expect("--processes N first in the shape");
    let local_ids = local
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![alg, "--run-id", run, "--local", &local_ids];
    args.extend(flags);
    args.extend(shape);
    let collector = spawn(url, &args);
    let alone = format!("{alg}-process");
    let others: Vec<_> = (1..=n)
        .filter(|k| !local.contains(k))
        .map(|k| {
            let id = k.to_string();
            let mut a = vec![alone.as_str(), "--run-id", run, "--id", &id];
            a.extend(shape);
            spawn(url, &a)
        })
        .collect();
    let collected = finish(collector);
    for p in others {
        let (c, o, e) = finish(p);
        assert_eq!(c, 0, "{alone}: {o}{e}");
        assert!(o.contains("Completed"), "{alone}: {o}");
    }
    collected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_split_over_separate_processes() {
    let tb = broker().await;
    let run = unique("mxs");
    let shape = ["--processes", "4", "--entries", "3"];
    let (code, out, err) = split_run(&tb.url, "mutex", &run, &shape, &[1, 2], &["--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("VERIFIED: 4 processes, 12 entries"), "{out}");
    assert!(peer_leftovers(&tb, "mutex", &run, 4).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_process_is_named_and_the_run_ends_cleanly() {
    let tb = broker().await;
    let run = unique("mxq");
    // Process 3 never starts: Ricart–Agrawala cannot enter without its reply.
    let t = Instant::now();
    let out = sync_run(
        &tb.url,
        &[
            "mutex",
            "-n",
            "3",
            "-k",
            "2",
            "--local",
            "1,2",
            "--peer-timeout",
            "2s",
            "--run-id",
            &run,
            "--json",
        ],
    );
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(doc["verdict"]["verified"], false);
    let live = check(&doc, "liveness");
    assert_eq!(live["status"], "failed", "{live}");
    let detail = live["detail"].as_str().unwrap_or_default();
    assert!(detail.contains('3'), "names the silent process: {detail}");
    for r in doc["reports"].as_array().into_iter().flatten() {
        assert_eq!(r["outcome"]["outcome"], "stalled", "{r}");
        // Every survivor names it (a live peer blocked behind it may be named too).
        let silent = r["outcome"]["silent"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(silent.contains(&serde_json::json!(3)), "{r}");
    }
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(peer_leftovers(&tb, "mutex", &run, 3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_an_inbox_is_rejected_counted_and_the_run_goes_on() {
    let tb = broker().await;
    let run_id = unique("mxjunk");
    let run = PeerRun::numbered("mutex", run_id.clone(), 3);
    let conn = sync_run::broker::connect(&tb.broker().url, "junk", Duration::from_secs(5))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    run.wiring()
        .declare(&ch, Default::default())
        .await
        .expect("declare");
    let junk: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        br#"{"v":99,"run":"x","type":"request"}"#.to_vec(),
        br#"{"v":1,"run":"other-run","type":"request","from":2,"to":1,"seq":1,"lamport":1,"vc":[0,1,0]}"#.to_vec(),
    ];
    for body in &junk {
        ch.basic_publish(
            run.exchange().as_str().into(),
            "peer.1".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    sync_run::broker::close_quietly(&conn, "done").await;
    let out = sync_run(
        &tb.url,
        &["mutex", "-n", "3", "-k", "2", "--run-id", &run_id, "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&String::from_utf8_lossy(&out.stdout));
    let p1 = doc["reports"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["id"] == 1))
        .expect("report of process 1");
    assert_eq!(p1["rejected"], junk.len() as u64, "{p1}");
    assert!(peer_leftovers(&tb, "mutex", &run_id, 3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_exit_2_with_a_message() {
    let tb = broker().await;
    for args in [
        vec!["mutex", "--processes", "1", "--entries", "3"],
        vec!["mutex", "--processes", "3", "--entries", "0"],
        vec![
            "mutex",
            "--processes",
            "3",
            "--entries",
            "2",
            "--local",
            "4",
        ],
        vec![
            "mutex",
            "--processes",
            "3",
            "--entries",
            "2",
            "--hold",
            "soon",
        ],
        vec![
            "mutex-process",
            "--run-id",
            "r",
            "--id",
            "9",
            "--processes",
            "3",
            "--entries",
            "1",
        ],
        vec!["clocks", "--processes", "1", "--events", "5"],
        vec!["clocks", "--processes", "3", "--events", "0"],
        vec![
            "clocks",
            "--processes",
            "3",
            "--events",
            "2",
            "--send-probability",
            "2",
        ],
    ] {
        let out = sync_run(&tb.url, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_three_processes_five_events_verified_and_clean() {
    let tb = broker().await;
    let run = unique("clk");
    let svg = std::env::temp_dir().join(format!("{run}.svg"));
    let out = sync_run(
        &tb.url,
        &[
            "clocks",
            "--processes",
            "3",
            "--events",
            "5",
            "--seed",
            "7",
            "--run-id",
            &run,
            "--report",
            svg.to_str().expect("utf-8 path"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("P1 e1"), "{text}");
    assert!(text.contains("VC=[1,0,0]"), "{text}");
    assert!(
        text.contains("VERIFIED: 3 processes, 15 internal events"),
        "{text}"
    );
    let picture = std::fs::read_to_string(&svg).expect("the space-time diagram");
    assert!(picture.contains("<svg") && picture.contains("P3"));
    let _ = std::fs::remove_file(&svg);
    assert!(peer_leftovers(&tb, "clocks", &run, 3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_split_over_separate_processes() {
    let tb = broker().await;
    let run = unique("clks");
    let shape = ["--processes", "3", "--events", "6"];
    let (code, out, err) = split_run(&tb.url, "clocks", &run, &shape, &[1], &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let doc = json(&out);
    assert_eq!(doc["schema"], "sync-run/clocks/v2");
    assert_eq!(doc["verdict"]["verified"], true, "{doc}");
    assert!(peer_leftovers(&tb, "clocks", &run, 3).await.is_empty());
}
