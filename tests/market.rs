//! `sync-run market` against a real RabbitMQ: the course's six cases come out as the issue
//! says; `--peers 6` prints its table and VERIFIED; a peer that crashes mid-lookup is
//! named by the verdict while the buyers go on; bad options and graph files exit 2 naming
//! what is wrong; junk in a peer's inbox is rejected and counted while the run verifies;
//! a peer run alone with `market-peer --role …` takes part; nothing is left behind.

mod common;

use common::{TestBroker, broker, finish, spawn, sync_run, unique};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use std::time::Duration;
use sync_run::algorithms::market::command::peer_run;
use sync_run::algorithms::market::graph::Market;

fn products() -> Vec<String> {
    ["fish", "salt", "boar"].map(String::from).to_vec()
}

fn case_path(file: &str) -> String {
    format!("{}/tests/data/market/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn market_of(path: &str) -> Market {
    let text = std::fs::read_to_string(path).expect("graph file");
    Market::from_file(&text, &products(), 3).expect("a good graph")
}

/// Case 6's graph file: seller 1 with `n - 1` salt, neighbour of `n` buyers of salt.
fn star(n: u32) -> tempfile::NamedTempFile {
    let mut peers = vec![format!(
        r#"{{"id": 1, "role": "seller", "product": "salt", "stock": {}, "neighbors": []}}"#,
        n - 1
    )];
    for b in 2..=n + 1 {
        peers.push(format!(
            r#"{{"id": {b}, "role": "buyer", "wants": ["salt"], "neighbors": [1]}}"#
        ));
    }
    write(&format!(r#"{{"peers": [{}]}}"#, peers.join(",\n")))
}

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
    f
}

fn path(f: &tempfile::NamedTempFile) -> String {
    f.path().to_string_lossy().into_owned()
}

/// Runs `sync-run market --run-id R --json extra...`: (exit code, document, stderr).
fn market(tb: &TestBroker, run_id: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["market", "--run-id", run_id, "--json"];
    args.extend_from_slice(extra);
    let out = sync_run(&tb.url, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON document ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), doc, stderr)
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["verdict"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name}"))
}

fn assert_verified(doc: &serde_json::Value, stderr: &str) {
    for name in [
        "reported",
        "buyers_finished",
        "never_oversold",
        "hop_counts",
        "reverse_path",
        "purchases",
    ] {
        assert_eq!(
            check(doc, name)["status"],
            "passed",
            "{name}: {}\n{stderr}",
            check(doc, name)["detail"]
        );
    }
    assert_eq!(doc["verdict"]["verified"], true);
    assert_eq!(doc["exit_code"], 0);
}

fn peer(doc: &serde_json::Value, k: u32) -> &serde_json::Value {
    doc["reports"]["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == k))
        .unwrap_or_else(|| panic!("peer {k} reported"))
}

/// A buyer's answers: (yes, no).
fn answers(doc: &serde_json::Value, k: u32) -> (usize, usize) {
    let buys = peer(doc, k)["buyer"]["buys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let n = |v: bool| buys.iter().filter(|b| b["sold"] == v).count();
    (n(true), n(false))
}

async fn assert_nothing_left(tb: &TestBroker, run_id: &str, m: &Market) {
    assert_eq!(
        common::run_leftovers(tb, &peer_run(run_id, m)).await,
        Vec::<String>::new()
    );
}

/// The cases run with one lookup per buyer, one retry, and a reply window long enough
/// that every lookup reaches its sellers before the first buy.
const CASE: &[&str] = &[
    "--lookups",
    "1",
    "--retries",
    "1",
    "--reply-window",
    "300ms",
];

/// Runs case file `file` with hop count `h`, checks it verified and left nothing.
async fn run_case(tb: &TestBroker, file: &str, h: &str) -> serde_json::Value {
    let run = unique("market-case");
    let p = case_path(file);
    let mut args = vec!["--graph", p.as_str(), "--hop-count", h];
    args.extend_from_slice(CASE);
    let (code, doc, stderr) = market(tb, &run, &args);
    assert_eq!(code, 0, "{file}: {stderr}");
    assert_verified(&doc, &stderr);
    assert_nothing_left(tb, &run, &market_of(&p)).await;
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_courses_cases_1_to_5_against_the_broker() {
    let tb = broker().await;
    // 1. Two buyers want the one item a seller holds: exactly one buys, the other is told no.
    let d = run_case(&tb, "case1_one_item_two_buyers.json", "1").await;
    let (a, b) = (answers(&d, 1), answers(&d, 3));
    assert_eq!(a.0 + b.0, 1, "exactly one buys: {a:?} {b:?}");
    assert_eq!(a.1 + b.1, 1, "the other is told no: {a:?} {b:?}");
    // 2. No common product: nothing bought; lookups die when their hop count is spent.
    let d = run_case(&tb, "case2_no_common_product.json", "2").await;
    assert_eq!(d["figures"]["purchases"], 0);
    let at3 = peer(&d, 3)["arrivals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        at3.iter().any(|a| a["id"]["buyer"] == 1 && a["hops"] == 0),
        "{at3:?}"
    );
    // 3. Hop count 0: nothing bought, no lookup reaches anyone.
    let d = run_case(&tb, "case3_hop_count_zero.json", "0").await;
    assert_eq!(d["figures"]["purchases"], 0);
    for k in 1..=3 {
        assert_eq!(peer(&d, k)["arrivals"].as_array().map(Vec::len), Some(0));
    }
    // 4. A buyer and a seller within the hop count (through peer 2): bought, stock 3 → 2.
    let d = run_case(&tb, "case4_match_within_hops.json", "2").await;
    assert_eq!(answers(&d, 1), (1, 0));
    assert_eq!(peer(&d, 3)["stall"]["stock"], 2);
    assert_eq!(
        peer(&d, 1)["buyer"]["rounds"][0]["replies"][0]["via"],
        serde_json::json!([2])
    );
    // 5. Two sellers, one buyer: bought from exactly one.
    let d = run_case(&tb, "case5_two_sellers.json", "1").await;
    assert_eq!(answers(&d, 1), (1, 0));
    let stocks = [
        peer(&d, 2)["stall"]["stock"].clone(),
        peer(&d, 3)["stall"]["stock"].clone(),
    ];
    assert!(
        stocks == [2, 3].map(serde_json::Value::from)
            || stocks == [3, 2].map(serde_json::Value::from),
        "{stocks:?}"
    );
}

/// 6. The case the course's own report left unhandled: n buyers, one seller with n − 1
/// items: exactly n − 1 buy, the last is told no, looks up again, finds nothing (the
/// seller restocked another product) and gives up. Never an oversell, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_n_buyers_one_seller_with_n_minus_1_items() {
    let tb = broker().await;
    for n in [3u32, 10, 50] {
        let f = star(n);
        let run = unique("market-case6");
        let p = path(&f);
        let mut args = vec!["--graph", p.as_str(), "--hop-count", "1"];
        args.extend_from_slice(CASE);
        let (code, d, stderr) = market(&tb, &run, &args);
        assert_eq!(code, 0, "n = {n}: {stderr}");
        assert_verified(&d, &stderr);
        let (mut yes, mut no, mut losers) = (0, 0, 0);
        for k in 2..=n + 1 {
            let (y, x) = answers(&d, k);
            yes += y;
            no += x;
            if y == 0 {
                losers += 1;
                let q = &peer(&d, k)["buyer"]["quests"][0];
                assert_eq!(
                    (q["bought"].clone(), q["rounds"].clone()),
                    (serde_json::Value::Null, 2.into()),
                    "n = {n}"
                );
            }
        }
        assert_eq!((yes, no, losers), (n as usize - 1, 1, 1), "n = {n}");
        let sold = peer(&d, 1)["stall"]["ledger"]
            .as_array()
            .map_or(0, |l| l.iter().filter(|e| e["event"] == "sold").count());
        assert_eq!(sold, n as usize - 1, "n = {n}");
        assert_nothing_left(&tb, &run, &market_of(&p)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_peers_print_the_table_and_verified() {
    let tb = broker().await;
    let run = unique("market-6");
    let svg = tempfile::Builder::new()
        .suffix(".svg")
        .tempfile()
        .expect("temp file");
    let out = sync_run(
        &tb.url,
        &[
            "market",
            "--peers",
            "6",
            "--seed",
            "4",
            "--run-id",
            &run,
            "--report",
            &path(&svg),
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for col in [
        "peer",
        "role",
        "neighbours",
        "bought",
        "told no",
        "sold",
        "stall",
    ] {
        assert!(stdout.contains(col), "{stdout}");
    }
    assert_eq!(
        stdout.lines().filter(|l| l.contains("closed")).count(),
        6,
        "{stdout}"
    );
    assert!(stderr.contains("\nVERIFIED: never oversold"), "{stderr}");
    assert!(stderr.contains("lookup→purchase p50"), "{stderr}");
    // The "looked up" column counts lookups sent (retries included), as the hop_counts
    // check does ("… arrivals of N lookups"), not the products set out for.
    let looked: u64 = stdout
        .lines()
        .filter_map(|l| l.split('|').nth(4)?.trim().parse::<u64>().ok())
        .sum();
    let sent: u64 = stderr
        .split(" arrivals of ")
        .nth(1)
        .and_then(|t| t.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no lookup count in hop_counts: {stderr}"));
    assert_eq!(looked, sent, "{stdout}\n{stderr}");
    // The space-time diagram: a lane per peer, lookups, replies, buys.
    let text = std::fs::read_to_string(svg.path()).expect("--report written");
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for want in ["1 ", "6 ", "lookup ", "buy ", "yes"] {
        assert!(
            texts.iter().any(|t| t.contains(want)),
            "no {want:?} in the diagram"
        );
    }
    let m = Market::generate(
        6,
        3,
        &sync_run::algorithms::market::graph::GraphSpec::Ring,
        &products(),
        3,
        4,
    )
    .expect("the same market");
    assert_nothing_left(&tb, &run, &m).await;
    // `-q`: no table, the verdict line still.
    let run = unique("market-6q");
    let out = sync_run(
        &tb.url,
        &[
            "market", "--peers", "6", "--seed", "4", "--run-id", &run, "-q",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "-q prints no table"
    );
    assert!(stderr.contains("VERIFIED: never oversold"), "{stderr}");
    assert!(!stderr.contains("[ok]"), "{stderr}");
    assert_nothing_left(&tb, &run, &m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_graph_files_exit_2_saying_what_is_wrong() {
    let tb = broker().await;
    let files = [
        (
            r#"{"peers":[{"id":1,"role":"buyer","neighbors":[7]},{"id":2,"role":"seller","product":"salt","neighbors":[1]}]}"#,
            "unknown neighbour 7",
        ),
        (
            r#"{"peers":[{"id":1,"role":"buyer","neighbors":[2]},{"id":2,"role":"seller","product":"salt","stock":-2,"neighbors":[]}]}"#,
            "stock -2 is negative",
        ),
        (
            r#"{"peers":[{"id":1,"role":"buyer","neighbors":[]},{"id":2,"role":"seller","product":"salt","neighbors":[3]},{"id":3,"role":"buyer","neighbors":[]}]}"#,
            "buyer 1 has no path to any seller",
        ),
        ("not json", "not a graph file"),
    ];
    for (text, want) in files {
        let f = write(text);
        let out = sync_run(&tb.url, &["market", "--graph", &path(&f)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    for (args, want) in [
        (vec!["--hop-count", "-1"], "give 0 or more hops"),
        (
            vec!["--peers", "4", "--buyers", "4"],
            "at least one peer must sell",
        ),
        (vec!["--peers", "1"], "--peers"),
        (vec!["--graph", "random:0"], "random:K"),
        (vec!["--graph", "/no/such/graph.json"], "cannot read it"),
        (vec!["--stock", "0"], "--stock"),
        (vec!["--products", "salt,s a l t"], "product"),
    ] {
        let mut a = vec!["market"];
        a.extend_from_slice(&args);
        let out = sync_run(&tb.url, &a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// Runs the market of `graph` (a graph file's text) with `args`, peer `victim` as its
/// own process with the hidden `crash` option (`--crash-after-lookups` or
/// `--crash-after-buys`) at 1: checks that it aborted, that the run ended with exit 1 and
/// `reported` naming it while the five other checks passed, and that nothing is left.
/// Returns the JSON document.
async fn run_with_a_crash(
    tb: &TestBroker,
    graph: &str,
    victim: u32,
    crash: &str,
    args: &[&str],
) -> serde_json::Value {
    let f = write(graph);
    let p = path(&f);
    let run = unique("market-crash");
    let id = victim.to_string();
    let mut shared = vec!["--graph", p.as_str()];
    shared.extend_from_slice(args);
    let mut main_args = vec!["market", "--run-id", &run, "--json", "--external", &id];
    main_args.extend_from_slice(&shared);
    let main = spawn(&tb.url, &main_args);
    common::wait_for_consumer(tb, &format!("sync-run.market.{run}.clerk")).await;
    let mut peer_args = vec!["market-peer", "--run-id", &run, "--id", &id, crash, "1"];
    peer_args.extend_from_slice(&shared);
    let (code, _, stderr) = finish(spawn(&tb.url, &peer_args));
    assert_ne!(code, 0, "the peer aborted: {stderr}");
    assert!(stderr.contains(&format!("{crash} reached")), "{stderr}");
    let (code, stdout, stderr) = finish(main);
    assert_eq!(code, 1, "{stderr}");
    let d: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let reported = check(&d, "reported");
    assert_eq!(reported["status"], "failed");
    let named = format!("peer(s) {victim} did not report");
    assert!(
        reported["detail"]
            .as_str()
            .is_some_and(|s| s.contains(&named)),
        "{reported}"
    );
    for name in [
        "buyers_finished",
        "never_oversold",
        "hop_counts",
        "reverse_path",
        "purchases",
    ] {
        assert_eq!(
            check(&d, name)["status"],
            "passed",
            "{name}: {}",
            check(&d, name)["detail"]
        );
    }
    assert_nothing_left(tb, &run, &market_of(&p)).await;
    d
}

/// Peer 3 of a ring of 6 runs as its own process and aborts when the first lookup
/// reaches it, before acting on it (a crash mid-lookup by construction). The buyers go
/// on (lookups the other way round still find sellers), the run ends, and the verdict
/// names peer 3; nothing it left undone breaks a safety check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_crashes_mid_lookup_is_named_and_the_buyers_go_on() {
    let tb = broker().await;
    let d = run_with_a_crash(
        &tb,
        r#"{"peers": [
  {"id": 1, "role": "buyer", "wants": ["salt"], "neighbors": [2, 6]},
  {"id": 2, "role": "seller", "product": "fish", "stock": 3, "neighbors": [3]},
  {"id": 3, "role": "seller", "product": "boar", "stock": 3, "neighbors": [4]},
  {"id": 4, "role": "buyer", "wants": ["salt"], "neighbors": [5]},
  {"id": 5, "role": "seller", "product": "salt", "stock": 9, "neighbors": [6]},
  {"id": 6, "role": "seller", "product": "salt", "stock": 9, "neighbors": []}
]}"#,
        3,
        "--crash-after-lookups",
        &[
            "--hop-count",
            "3",
            "--lookups",
            "3",
            "--retries",
            "0",
            "--reply-window",
            "200ms",
            "--run-timeout",
            "60s",
        ],
    )
    .await;
    // Both buyers still buy salt from the sellers next to them (6 and 5).
    assert!(answers(&d, 1).0 >= 1, "{}", peer(&d, 1));
    assert!(answers(&d, 4).0 >= 1, "{}", peer(&d, 4));
}

/// Junk in peer 1's inbox is rejected and counted in its report, and the run verifies;
/// peer 3 takes part as its own process, described with `market-peer --role …`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_is_rejected_and_counted_and_a_peer_described_alone_takes_part() {
    let tb = broker().await;
    let run = unique("market-junk");
    let f = case_path("case5_two_sellers.json");
    let main = spawn(
        &tb.url,
        &[
            "market",
            "--run-id",
            &run,
            "--json",
            "--graph",
            &f,
            "--hop-count",
            "1",
            "--external",
            "3",
            "--lookups",
            "2",
        ],
    );
    common::wait_for_consumer(&tb, &format!("sync-run.market.{run}.peer.1")).await;
    let m = market_of(&f);
    let pr = peer_run(&run, &m);
    let conn = sync_run::broker::connect(&tb.broker().url, "junk", Duration::from_secs(10))
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let junk: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        br#"{"v":1,"run":"another","type":"open"}"#.to_vec(),
        format!(r#"{{"v":1,"run":"{run}","type":"lookup","id":{{"buyer":2,"n":1}},"product":"salt","hops":9,"path":[2]}}"#).into_bytes(),
        format!(r#"{{"v":1,"run":"{run}","type":"reply","id":{{"buyer":1,"n":7}},"seller":2,"product":"salt","path":[1],"via":[]}}"#).into_bytes(),
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
    let alone = spawn(
        &tb.url,
        &[
            "market-peer",
            "--run-id",
            &run,
            "--id",
            "3",
            "--role",
            "seller",
            "--product",
            "salt",
            "--neighbors",
            "1",
            "--hop-count",
            "1",
            "--lookups",
            "2",
        ],
    );
    let (code, stdout, stderr) = finish(alone);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("peer 3 of market run"), "{stdout}");
    let (code, stdout, stderr) = finish(main);
    assert_eq!(code, 0, "{stderr}");
    let d: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_verified(&d, &stderr);
    assert_eq!(peer(&d, 1)["rejected"], 4, "{}", peer(&d, 1));
    assert_eq!(answers(&d, 1).0, 2);
    assert_nothing_left(&tb, &run, &m).await;
}

/// A thousand peers on a random graph (100 buyers, one lookup each, hop count 2) verify
/// every check and leave nothing behind. (`sync-run bench market` runs bigger loads in a
/// release build.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_peers_verify() {
    let tb = broker().await;
    let run = unique("market-1000");
    let (code, d, stderr) = market(
        &tb,
        &run,
        &[
            "--peers",
            "1000",
            "--graph",
            "random:4",
            "--buyers",
            "100",
            "--hop-count",
            "2",
            "--lookups",
            "1",
            "--reply-window",
            "500ms",
            "--seed",
            "7",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_verified(&d, &stderr);
    assert_eq!(d["reports"]["peers"].as_array().map(Vec::len), Some(1000));
    assert!(
        d["figures"]["purchases"].as_u64().is_some_and(|p| p > 0),
        "{}",
        d["figures"]
    );
    let m = Market::generate(
        1000,
        100,
        &sync_run::algorithms::market::graph::GraphSpec::Random(4),
        &products(),
        3,
        7,
    )
    .expect("the same market");
    assert_nothing_left(&tb, &run, &m).await;
}

/// Seller 2, the only seller of salt that buyer 1 can reach, runs as its own process and
/// aborts when the first buy reaches it, before it acts on it (a crash mid-sale by
/// construction). The buyer times out on it, looks up again (nobody else sells salt),
/// gives up, does its other lookup the same way, waits for the answer still owed, and
/// says it is done: the run ends, the verdict names seller 2, and the buyer's report
/// says it timed out on 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_that_crashes_mid_sale_is_timed_out_on_and_named() {
    let tb = broker().await;
    let d = run_with_a_crash(
        &tb,
        r#"{"peers": [
  {"id": 1, "role": "buyer", "wants": ["salt"], "neighbors": [2, 3]},
  {"id": 2, "role": "seller", "product": "salt", "stock": 3, "neighbors": []},
  {"id": 3, "role": "seller", "product": "fish", "stock": 3, "neighbors": []}
]}"#,
        2,
        "--crash-after-buys",
        &[
            "--hop-count",
            "1",
            "--lookups",
            "2",
            "--retries",
            "1",
            "--reply-window",
            "200ms",
            "--buy-timeout",
            "300ms",
            "--buy-retry",
            "100ms",
        ],
    )
    .await;
    let b = &peer(&d, 1)["buyer"];
    assert_eq!(b["timed_out_on"], serde_json::json!([2]), "{b}");
    assert_eq!(b["quests"].as_array().map(Vec::len), Some(2), "{b}");
    assert!(
        b["quests"]
            .as_array()
            .is_some_and(|q| q.iter().all(|q| q["bought"].is_null())),
        "{b}"
    );
}
