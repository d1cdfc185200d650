//! The `sync-run` binary as users run it: separate master and worker processes, bad
//! input, broker failures, the timeout, Ctrl-C, malformed messages. Against a real broker.

mod common;

use common::{broker, finish, leftovers, spawn, sync_run, unique};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Master and workers as separate processes; `workers_first` picks who starts first.
async fn separate_processes(workers_first: bool) {
    let tb = broker().await;
    let run = unique("proc");
    let n = 4;
    let start_workers = || {
        (1..=n)
            .map(|k| {
                spawn(
                    &tb.url,
                    &[
                        "worker",
                        "--run-id",
                        &run,
                        "--id",
                        &k.to_string(),
                        "--timeout",
                        "60s",
                    ],
                )
            })
            .collect::<Vec<_>>()
    };
    let master_args = [
        "master",
        "--slaves",
        "4",
        "--run-id",
        &run,
        "--json",
        "--timeout",
        "60s",
    ];
    let (master, workers) = if workers_first {
        let w = start_workers();
        std::thread::sleep(Duration::from_millis(1500)); // workers wait, re-sending joins
        (spawn(&tb.url, &master_args), w)
    } else {
        let m = spawn(&tb.url, &master_args);
        std::thread::sleep(Duration::from_millis(1500));
        (m, start_workers())
    };
    let (code, stdout, stderr) = finish(master);
    assert_eq!(code, 0, "master: {stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("master prints JSON");
    assert_eq!(doc["schema"], "sync-run/list/v2");
    assert_eq!(doc["verdict"]["verified"], true);
    let lists = doc["lists"].as_object().expect("lists");
    assert_eq!(lists.len(), n);
    let first = lists.values().next().cloned();
    assert!(lists.values().all(|l| Some(l.clone()) == first));
    let mut worker_lists = vec![];
    for w in workers {
        let (code, out, err) = finish(w);
        assert_eq!(code, 0, "worker: {out}\n{err}");
        worker_lists.push(
            out.split(": ")
                .last()
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
    }
    // Each worker process printed the same list the master verified.
    let expected: Vec<String> = first
        .and_then(|l| l.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|v| v.to_string())
        .collect();
    for l in worker_lists {
        assert_eq!(l, expected.join(" "));
    }
    assert!(leftovers(&tb, &run, n as u32).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_master_first() {
    separate_processes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_workers_first() {
    separate_processes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_command_prints_lists_and_verdict() {
    let tb = broker().await;
    let out = sync_run(&tb.url, &["--slaves", "5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("VERIFIED: 5 lists identical, 5 entries each"),
        "{stdout}"
    );
    assert!(stdout.contains("grant order"), "{stdout}");
}

/// `--report run.svg` draws every grant of the run the JSON report lists, one lane per
/// worker; the progress bar stays off when stderr is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_svg_shows_every_grant_and_no_bar_when_piped() {
    let tb = broker().await;
    let dir = std::env::temp_dir().join(format!("sync-run-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let svg_path = dir.join("run.svg");
    let svg_arg = svg_path.to_string_lossy().into_owned();
    let out = sync_run(
        &tb.url,
        &[
            "--slaves", "6", "--window", "3", "--json", "--report", &svg_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("turns "),
        "no progress bar when piped: {stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let svg = std::fs::read_to_string(&svg_path).expect("report written");
    let tree = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<String> = tree
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect();
    let grants = doc["grants"].as_array().expect("grants");
    assert_eq!(grants.len(), 6);
    for g in grants {
        let want = format!("#{} = {}", g["seq"], g["value"]);
        assert!(texts.contains(&want), "{want} in the picture: {texts:?}");
    }
    for w in doc["members"].as_array().expect("members") {
        assert!(texts.contains(&format!("w{w}")), "lane of worker {w}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["--slaves", "0"], "out of range"),
        (&["--slaves", "-1"], "the number of workers is 1 to 2000"),
        (
            &["master", "--slaves", "-1"],
            "the number of workers is 1 to 2000",
        ),
        (&["--slaves", "ten"], "not a number"),
        (&["--slaves", "3", "--report", "run.txt"], "ending in .svg"),
        (&["--slaves", "2001"], "out of range"),
        (
            &["--slaves", "3", "--min", "5", "--max", "1"],
            "--min 5 is greater than --max 1",
        ),
        (
            &["--slaves", "3", "--amqp-url", "http://x:secretpw@host/"],
            "unsupported URL scheme",
        ),
        (
            &["--slaves", "3", "--amqp-url", "not a url"],
            "invalid AMQP URL",
        ),
        (&["--slaves", "3", "--timeout", "soon"], "not a duration"),
        (&["--slaves", "3", "--run-id", "a.b"], "letters, digits"),
        (&[], "--slaves"),
        (&["worker"], "--run-id"),
        // `--topology` is the list agreement's own option: the other algorithms refuse it.
        (
            &["mutex", "--topology", "stream"],
            "unexpected argument '--topology'",
        ),
        (
            &["bank", "--topology", "stream"],
            "unexpected argument '--topology'",
        ),
    ];
    for (args, needle) in cases {
        let out = sync_run(common::DEFAULT_URL, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        assert!(!err.contains("secretpw"), "password leaked: {err}");
    }
}

#[test]
fn unreachable_broker_exits_3_within_the_connect_timeout_and_redacts_the_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let t = Instant::now();
    let out = sync_run(
        "amqp://alice:hunter2@127.0.0.1:1/%2f",
        &["--slaves", "2", "--connect-timeout", "3s"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("amqp://alice:***@127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));

    // A listener that never speaks AMQP: the connect timeout must fire.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let t = Instant::now();
    let url = format!("amqp://bob:s3cret@127.0.0.1:{port}/%2f");
    let out = sync_run(&url, &["--slaves", "2", "--connect-timeout", "1s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("within 1000 ms"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_exit_3() {
    let tb = broker().await;
    let mut u = url::Url::parse(&tb.url).expect("url");
    u.set_username("nobody").expect("user");
    u.set_password(Some("wrongpass")).expect("password");
    let out = sync_run(u.as_str(), &["--slaves", "2", "--connect-timeout", "5s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("wrongpass"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_never_hangs_past_its_timeout_and_cleans_up() {
    let tb = broker().await;
    let run = unique("timeout");
    let t = Instant::now();
    // No worker ever comes: the master gives up at --timeout.
    let out = sync_run(
        &tb.url,
        &[
            "master",
            "--slaves",
            "3",
            "--run-id",
            &run,
            "--timeout",
            "2s",
            "-q",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("0 of 3 workers joined"),
        "{stdout}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert!(leftovers(&tb, &run, 3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_workers_fail_after_the_join_timeout_and_enough_proceed() {
    let tb = broker().await;
    // 2 of 3 workers come; --min-workers 2 lets the run proceed with them.
    let run = unique("minw");
    let master = spawn(
        &tb.url,
        &[
            "master",
            "--slaves",
            "3",
            "--min-workers",
            "2",
            "--join-timeout",
            "2s",
            "--run-id",
            &run,
            "-q",
        ],
    );
    let workers: Vec<_> = (1..=2)
        .map(|k| {
            spawn(
                &tb.url,
                &["worker", "--run-id", &run, "--id", &k.to_string()],
            )
        })
        .collect();
    let (code, out, err) = finish(master);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("VERIFIED: 2 lists identical, 2 entries each"),
        "{out}"
    );
    for w in workers {
        assert_eq!(finish(w).0, 0);
    }
    assert!(leftovers(&tb, &run, 3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_exits_130_and_leaves_nothing() {
    let tb = broker().await;
    let run = unique("sigint");
    let master = spawn(&tb.url, &["master", "--slaves", "3", "--run-id", &run]);
    let worker = spawn(&tb.url, &["worker", "--run-id", &run, "--id", "1"]);
    std::thread::sleep(Duration::from_millis(1500));
    // One at a time, the worker first: signalled together, the master's abort can reach
    // the worker before its own signal does, and the worker then rightly exits 1 (the
    // master aborted), which is not what this test is about.
    let interrupt = |child: &std::process::Child| {
        let ok = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
    };
    interrupt(&worker);
    let (wc, wo, we) = finish(worker);
    assert_eq!(wc, 130, "worker: {wo}{we}");
    interrupt(&master);
    let (mc, mo, me) = finish(master);
    assert_eq!(mc, 130, "master: {mo}{me}");
    assert!(leftovers(&tb, &run, 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_rejected_counted_and_the_run_goes_on() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    let tb = broker().await;
    let run = unique("junk");
    let names = sync_run::algorithms::list::protocol::Names::new(&run);
    // Create the run's topology first and put garbage in the master's inbox.
    let conn = sync_run::broker::connect(&tb.broker().url, "junk", Duration::from_secs(5))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    sync_run::algorithms::list::broker::declare_shared(&ch, &names, Default::default())
        .await
        .expect("declare");
    let junk: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        br#"{"v":99,"run":"x","type":"join"}"#.to_vec(),
        br#"{"v":1,"run":"other-run","from":{"role":"worker","id":1,"instance":1},"type":"join","worker":1}"#.to_vec(),
        format!(r#"{{"v":1,"run":"{run}","from":{{"role":"worker","id":1,"instance":1}},"type":"grant","seq":1,"worker":1,"lease_ms":5}}"#).into_bytes(),
    ];
    for body in &junk {
        ch.basic_publish(
            names.direct().as_str().into(),
            "master".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    sync_run::broker::close_quietly(&conn, "bye").await;
    let master = spawn(
        &tb.url,
        &["master", "--slaves", "2", "--run-id", &run, "--json"],
    );
    let workers: Vec<_> = (1..=2)
        .map(|k| {
            spawn(
                &tb.url,
                &["worker", "--run-id", &run, "--id", &k.to_string()],
            )
        })
        .collect();
    let (code, out, err) = finish(master);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rejected = &doc["rejected_by_master"];
    assert_eq!(rejected["malformed"], 1, "{rejected}");
    assert_eq!(rejected["version"], 1, "{rejected}");
    assert_eq!(rejected["wrong_run"], 1, "{rejected}");
    assert_eq!(rejected["refused"], 1, "{rejected}");
    assert!(err.contains("master rejected a message"), "logged: {err}");
    for w in workers {
        assert_eq!(finish(w).0, 0);
    }
    assert!(leftovers(&tb, &run, 2).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leak_check_sees_what_is_left() {
    // The check used everywhere above must be able to fail.
    let tb = broker().await;
    let run = unique("leak");
    let names = sync_run::algorithms::list::protocol::Names::new(&run);
    let conn = sync_run::broker::connect(&tb.broker().url, "leak", Duration::from_secs(5))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    sync_run::algorithms::list::broker::declare_shared(&ch, &names, Default::default())
        .await
        .expect("declare");
    let left = leftovers(&tb, &run, 1).await;
    assert!(
        left.iter()
            .any(|l| l.contains("queue sync-run.") && l.contains(".master")),
        "{left:?}"
    );
    assert!(
        left.iter().any(|l| l.contains("exchange sync-run.")),
        "{left:?}"
    );
    sync_run::algorithms::list::broker::delete_run(
        &conn,
        &ch,
        &names,
        &sync_run::algorithms::list::broker::Cleanup::Run(vec![]),
    )
    .await
    .expect("delete");
    assert!(leftovers(&tb, &run, 1).await.is_empty());
}

/// docs/PROTOCOL.md promises enough to write a worker in another language: this one is
/// Python with pika, written from the document, running beside Rust workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_written_from_the_protocol_document_takes_part() {
    if !common::python_with_pika() {
        return;
    }
    let tb = broker().await;
    let run = unique("py");
    let master = spawn(
        &tb.url,
        &[
            "master",
            "--slaves",
            "3",
            "--run-id",
            &run,
            "--json",
            "--timeout",
            "60s",
        ],
    );
    let rust: Vec<_> = (1..=2)
        .map(|k| {
            spawn(
                &tb.url,
                &["worker", "--run-id", &run, "--id", &k.to_string()],
            )
        })
        .collect();
    let py = Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/worker.py"),
            &tb.url,
            &run,
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python worker");
    let (code, out, err) = finish(master);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    let expected: Vec<String> = doc["lists"]["3"]
        .as_array()
        .expect("python worker's list")
        .iter()
        .map(|v| v.to_string())
        .collect();
    let (pc, pout, perr) = finish(py);
    assert_eq!(pc, 0, "{pout}{perr}");
    assert_eq!(pout.trim(), format!("worker 3: {}", expected.join(" ")));
    for w in rust {
        assert_eq!(finish(w).0, 0);
    }
    assert!(leftovers(&tb, &run, 3).await.is_empty());
}

/// A usage error shows the usage of the command that was given, not the top level's:
/// `sync-run bank` with a missing file says how to call `sync-run bank`.
#[test]
fn a_usage_error_shows_the_given_commands_usage() {
    let cases: &[(&[&str], &str)] = &[
        (&["bank", "/nonexistent/input.json"], "Usage: sync-run bank"),
        (
            &["snapshot", "/nonexistent/script.txt"],
            "Usage: sync-run snapshot",
        ),
        (
            &[
                "mutex",
                "--processes",
                "3",
                "--entries",
                "1",
                "--local",
                "7",
            ],
            "Usage: sync-run mutex",
        ),
        (
            &["--slaves", "3", "--min", "5", "--max", "1"],
            "Usage: sync-run",
        ),
    ];
    for (args, needle) in cases {
        let out = sync_run(common::DEFAULT_URL, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    }
    // The top level's own usage is not shown for a subcommand's error.
    let out = sync_run(common::DEFAULT_URL, &["bank", "/nonexistent/input.json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Usage: sync-run [OPTIONS]"), "{err}");
}
