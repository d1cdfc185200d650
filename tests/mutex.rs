//! Mutual exclusion (`sync-run mutex`) against a real RabbitMQ: whole runs, runs split
//! over separate processes, a silent process, junk on an inbox, bad options, and nothing
//! left behind. Faults that close connections are in tests/faults.rs (they need the
//! private broker).

mod common;

use common::{broker, check, json, peer_leftovers, split_run, sync_run, unique};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use std::time::{Duration, Instant};
use sync_run::broker::peers::PeerRun;

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
        br#"{"v":2,"run":"other-run","type":"request","from":2,"to":1,"seq":1,"lamport":1,"vc":[0,1,0]}"#.to_vec(),
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
    ] {
        let out = sync_run(&tb.url, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}
