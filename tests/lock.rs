//! The lock (`sync-run lock NAME -- CMD`) against a real RabbitMQ: contenders proven by the
//! checker, a holder killed with SIGKILL, `--limit 3`, `--wait 0`, the command's exit code
//! and environment, a disagreeing `--limit`, `--status` and `--delete`. Every test deletes
//! its lock and checks that nothing of it is left. Losing the connection while holding
//! needs the private broker: tests/faults.rs.

mod common;

use common::{TestBroker, broker, finish, json, spawn, sync_run, unique};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Runs `sync-run ARGS` and asserts its exit code; returns stdout and stderr.
fn expect(url: &str, args: &[&str], code: i32) -> (String, String) {
    let out = sync_run(url, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(code), "sync-run {args:?}: {o}{e}");
    (o, e)
}

/// Every queue lock `name` (with up to `limit` slots) could have that still exists, by
/// passive declares over AMQP, and whatever rabbitmqctl lists with its name.
async fn lock_left(tb: &TestBroker, name: &str, limit: u32) -> Vec<String> {
    let conn =
        sync_run::broker::connect(&tb.broker().url, "lock leak check", Duration::from_secs(10))
            .await
            .expect("connect for the leak check");
    let prefix = format!("sync-run.lock.{name}");
    let mut names = vec![prefix.clone()];
    for s in 0..limit {
        names.push(format!("{prefix}.{s}"));
        names.push(format!("{prefix}.{s}.holder"));
    }
    let mut left = vec![];
    for q in names {
        if sync_run::broker::queue_exists(&conn, &q)
            .await
            .expect("probe")
        {
            left.push(q);
        }
    }
    sync_run::broker::close_quietly(&conn, "leak check done").await;
    if let Some(objs) = common::broker_objects_containing(tb, &format!("{prefix}.")) {
        left.extend(objs);
    }
    left.sort();
    left.dedup();
    left
}

/// Deletes lock `name` (`--delete` must succeed) and checks nothing of it is left.
async fn delete_and_check_clean(tb: &TestBroker, name: &str, limit: u32) {
    expect(&tb.url, &["lock", name, "--delete"], 0);
    let left = lock_left(tb, name, limit).await;
    assert!(left.is_empty(), "lock {name} left {left:?}");
}

/// Waits (polling, bounded) until `path` exists: the command under the lock has started.
fn wait_file(path: &Path, holder: &mut Child) {
    let t = Instant::now();
    while !path.exists() {
        if let Ok(Some(st)) = holder.try_wait() {
            panic!("the holder ended ({st}) before {} appeared", path.display());
        }
        assert!(
            t.elapsed() < common::HANG_LIMIT,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--status --json` of lock `name`.
fn status(url: &str, name: &str) -> serde_json::Value {
    json(&expect(url, &["lock", name, "--status", "--json"], 0).0)
}

/// Waits (polling `--status`, bounded) until `n` contenders wait on lock `name`.
fn wait_waiting(url: &str, name: &str, n: u64) {
    let t = Instant::now();
    while status(url, name)["waiting"].as_u64() < Some(n) {
        assert!(
            t.elapsed() < common::HANG_LIMIT,
            "never {n} waiting on {name}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_u64(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("read");
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
}

/// A holder whose command writes its fence to `dir/fence` and then waits for `dir/go`.
fn holder_until_go(url: &str, name: &str, dir: &Path, extra: &[&str]) -> Child {
    let script = format!(
        "echo $SYNC_RUN_FENCE > {d}/fence.tmp && mv {d}/fence.tmp {d}/fence; while [ ! -e {d}/go ]; do sleep 0.02; done",
        d = dir.display()
    );
    let mut args = vec!["lock", name];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", "-c", &script]);
    spawn(url, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_contenders_twenty_rounds_never_overlap_and_fences_increase() {
    let tb = broker().await;
    let run = unique("lk");
    let (text, _) = expect(
        &tb.url,
        &[
            "lock",
            "ten",
            "--check",
            "--contenders",
            "10",
            "--rounds",
            "20",
            "--run-id",
            &run,
            "--json",
        ],
        0,
    );
    let doc = json(&text);
    assert_eq!(doc["schema"], "sync-run/lock/v2");
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    // The reports themselves, read here too: 200 holdings, in start order never two at
    // once, fences strictly increasing.
    let mut hs: Vec<(u64, u64, u64)> = doc["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .map(|h| {
            let n = |k: &str| h[k].as_u64().unwrap_or_else(|| panic!("{k} in {h}"));
            (n("start_ns"), n("end_ns"), n("fence"))
        })
        .collect();
    assert_eq!(hs.len(), 200);
    hs.sort();
    for w in hs.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlap: {:?} then {:?}", w[0], w[1]);
        assert!(
            w[0].2 < w[1].2,
            "fence not increasing: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let left = lock_left(&tb, &format!("ten-{run}"), 1).await;
    assert!(left.is_empty(), "the check left {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_three_reaches_three_and_never_four() {
    let tb = broker().await;
    let run = unique("lk3");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    // Each holder registers in `in/`, counts, and until three have been in at once waits
    // for them (so three at once is reached by construction); a fourth would be recorded.
    std::fs::create_dir(dir.path().join("in")).expect("mkdir");
    let script = format!(
        "touch {d}/in/$$; n=$(ls {d}/in | wc -l); [ $n -gt 3 ] && touch {d}/four; \
         [ $n -ge 3 ] && touch {d}/three; \
         while [ ! -e {d}/three ]; do sleep 0.02; [ $(ls {d}/in | wc -l) -ge 3 ] && touch {d}/three; done; \
         rm {d}/in/$$"
    );
    let (text, _) = expect(
        &tb.url,
        &[
            "lock",
            "sem",
            "--limit",
            "3",
            "--check",
            "--contenders",
            "5",
            "--rounds",
            "3",
            "--run-id",
            &run,
            "--json",
            "--",
            "sh",
            "-c",
            &script,
        ],
        0,
    );
    let doc = json(&text);
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    assert_eq!(doc["peak_holders"], 3, "{doc}");
    assert!(dir.path().join("three").exists());
    assert!(
        !dir.path().join("four").exists(),
        "four commands ran at once"
    );
    let slots: std::collections::BTreeSet<u64> = doc["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .filter_map(|h| h["slot"].as_u64())
        .collect();
    assert_eq!(slots.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    let left = lock_left(&tb, &format!("sem-{run}"), 3).await;
    assert!(left.is_empty(), "the check left {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_passes_the_lock_on() {
    let tb = broker().await;
    let name = unique("kill");
    let a_dir = tempfile::tempdir().expect("tempdir");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let mut a = holder_until_go(&tb.url, &name, a_dir.path(), &[]);
    wait_file(&a_dir.path().join("fence"), &mut a);
    let mut b = holder_until_go(&tb.url, &name, b_dir.path(), &[]);
    // B is in line before A dies: the handover is the broker seeing A's connection close.
    wait_waiting(&tb.url, &name, 1);
    a.kill().expect("SIGKILL the holder");
    let _ = a.wait();
    // A's command outlives it (nothing is left to stop it): the fence is what protects.
    std::fs::write(a_dir.path().join("go"), "").expect("go");
    wait_file(&b_dir.path().join("fence"), &mut b);
    let (fa, fb) = (
        read_u64(&a_dir.path().join("fence")),
        read_u64(&b_dir.path().join("fence")),
    );
    assert!(
        fb > fa,
        "the next holder's fence {fb} is not past the killed one's {fa}"
    );
    std::fs::write(b_dir.path().join("go"), "").expect("go");
    let (code, _, err) = finish(b);
    assert_eq!(code, 0, "{err}");
    delete_and_check_clean(&tb, &name, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_zero_on_a_held_lock_gives_up_with_75_and_delete_is_refused_while_held() {
    let tb = broker().await;
    let name = unique("w0");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = holder_until_go(&tb.url, &name, dir.path(), &[]);
    wait_file(&dir.path().join("fence"), &mut a);
    let (_, err) = expect(
        &tb.url,
        &[
            "lock",
            &name,
            "--wait",
            "0",
            "--",
            "touch",
            "/nonexistent/ran",
        ],
        75,
    );
    assert!(err.contains("gave up waiting"), "{err}");
    // Status says who holds it.
    let st = status(&tb.url, &name);
    assert_eq!(st["held"], 1, "{st}");
    assert_eq!(st["slots"][0]["holder"]["pid"], a.id(), "{st}");
    assert_eq!(
        st["slots"][0]["holder"]["fence"].as_u64(),
        Some(read_u64(&dir.path().join("fence")))
    );
    expect(&tb.url, &["lock", &name, "--delete"], 5);
    // Another --limit is refused, naming the option and both values.
    let args = ["lock", &name, "--limit", "2", "--wait", "0", "--", "true"];
    let (_, err) = expect(&tb.url, &args, 2);
    assert!(
        err.contains("--limit") && err.contains("'2'") && err.contains("'1'"),
        "{err}"
    );
    std::fs::write(dir.path().join("go"), "").expect("go");
    let (code, _, err) = finish(a);
    assert_eq!(code, 0, "{err}");
    // Free now: --wait 0 takes it at once.
    expect(&tb.url, &["lock", &name, "--wait", "0", "--", "true"], 0);
    delete_and_check_clean(&tb, &name, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_gets_its_environment_and_its_exit_code_is_ours() {
    let tb = broker().await;
    let name = unique("env");
    let env = "echo $SYNC_RUN_LOCK/$SYNC_RUN_FENCE/${SYNC_RUN_SLOT-none}; exit 7";
    let (first, _) = expect(&tb.url, &["lock", &name, "--", "sh", "-c", env], 7);
    let first = first.trim();
    let fence_only = ["lock", &name, "--", "sh", "-c", "echo $SYNC_RUN_FENCE"];
    let second: u64 = expect(&tb.url, &fence_only, 0)
        .0
        .trim()
        .parse()
        .expect("a fence");
    let (lock, rest) = first.split_once('/').expect("lock/fence/slot");
    assert_eq!(lock, name);
    let (fence, slot) = rest.split_once('/').expect("fence/slot");
    assert_eq!(slot, "none");
    assert!(
        second > fence.parse::<u64>().expect("a fence"),
        "{first} then {second}"
    );
    // A command that cannot start: 127, and the lock is let go.
    expect(&tb.url, &["lock", &name, "--", "/nonexistent/program"], 127);
    expect(&tb.url, &["lock", &name, "--wait", "0", "--", "true"], 0);
    delete_and_check_clean(&tb, &name, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_separate_holders_are_checked() {
    let tb = broker().await;
    let name = unique("rep");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("holdings.jsonl");
    let f = file.to_string_lossy().into_owned();
    let holders: Vec<Child> = (0..4)
        .map(|_| spawn(&tb.url, &["lock", &name, "--report", &f, "--", "true"]))
        .collect();
    for h in holders {
        let (code, _, err) = finish(h);
        assert_eq!(code, 0, "{err}");
    }
    let (text, _) = expect(
        &tb.url,
        &["lock", &name, "--check", "--reports", &f, "--json"],
        0,
    );
    let doc = json(&text);
    assert_eq!(doc["holdings"], 4, "{doc}");
    // A corrupted report (a fence given twice) fails the check.
    let text = std::fs::read_to_string(&file).expect("read");
    let first = text.lines().next().expect("a line").to_owned();
    std::fs::write(&file, format!("{text}{first}\n")).expect("write");
    expect(&tb.url, &["lock", &name, "--check", "--reports", &f], 1);
    delete_and_check_clean(&tb, &name, 1).await;
}
