//! Logical clocks (`sync-run clocks`) against a real RabbitMQ: whole runs, runs split over
//! separate processes, bad options, and nothing left behind.

mod common;

use common::{broker, json, peer_leftovers, split_run, sync_run, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_exit_2_with_a_message() {
    let tb = broker().await;
    for args in [
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
