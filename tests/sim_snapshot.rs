//! The snapshot on the simulator: the worked example prints exactly its lines; random
//! scripts print the same lines under every hostile schedule as under a calm one, and
//! verify; the random mode verifies with concurrent snapshots.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_run::algorithms::snapshot::auto::AutoConfig;
use sync_run::algorithms::snapshot::protocol::Auto;
use sync_run::algorithms::snapshot::script;
use sync_run::algorithms::snapshot::sim::{run_auto, run_script};
use sync_run::sim::SimConfig;

const WORKED: &str = "StartMaster\nCreateNode 1 1000\nCreateNode 2 500\nSend 1 2 300\nSend 2 1 100\nSend 1 2 400\nReceive 2 1\nBeginSnapshot 1\nReceive 2\nReceive 2\nReceiveAll\nCollectState\nPrintSnapshot\nSend 1 2 5000\nKillAll\n";

const WORKED_OUT: &str = "1 Transfer 300\nStarted by Node 1\n1 Transfer 400\n1 SnapshotToken -1\n---Node states\nnode 1 = 300\nnode 2 = 1100\n---Channel states\nchannel (1 -> 2) = 0\nchannel (2 -> 1) = 100\nERR_SEND";

#[test]
fn the_worked_example_prints_exactly_its_lines() {
    let s = script::parse(WORKED).expect("parses");
    let o = run_script(&s, 1, &SimConfig::calm(), 1);
    let m = o.master.expect("master ended");
    assert_eq!(m.printed.join("\n"), WORKED_OUT);
    assert!(o.verdict.verified, "{}", o.verdict.lines());
}

/// A random script over `n` nodes: creations, sends (some refused), receives with and
/// without a source, snapshots begun, received, collected and printed.
fn random_script(rng: &mut StdRng) -> String {
    let n: u32 = rng.random_range(2..=6);
    let mut s = String::from("StartMaster\n");
    for k in 1..=n {
        s += &format!("CreateNode {k} {}\n", rng.random_range(0..500));
    }
    let snaps = rng.random_range(1..=3);
    for _ in 0..snaps {
        for _ in 0..rng.random_range(0..12) {
            let a = rng.random_range(1..=n);
            let b = (a % n) + 1;
            match rng.random_range(0..4) {
                0 | 1 => s += &format!("Send {a} {b} {}\n", rng.random_range(0..300)),
                2 => s += &format!("Receive {b} {a}\n"),
                _ => s += &format!("Receive {b}\n"),
            }
        }
        s += &format!("BeginSnapshot {}\n", rng.random_range(1..=n));
        for _ in 0..rng.random_range(0..6) {
            let a = rng.random_range(1..=n);
            let b = (a % n) + 1;
            if rng.random_bool(0.5) {
                s += &format!("Send {a} {b} {}\n", rng.random_range(0..300));
            } else {
                s += &format!("Receive {b}\n");
            }
        }
        s += "ReceiveAll\nCollectState\nPrintSnapshot\n";
    }
    s += "KillAll\n";
    s
}

/// 10,000 hostile schedules: random scripts print exactly what they print on a calm
/// schedule, and every run verifies (every snapshot consistent and conserving).
#[test]
fn hostile_schedules_change_nothing_a_script_prints() {
    let runs: u64 = std::env::var("SNAPSHOT_SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut rng = StdRng::seed_from_u64(14);
    let mut scripts = 0;
    let mut calm_lines = Vec::new();
    let mut text = String::new();
    let mut parsed = None;
    for i in 0..runs {
        if i % 20 == 0 {
            text = random_script(&mut rng);
            let s = script::parse(&text).expect("a generated script parses");
            let o = run_script(&s, i, &SimConfig::calm(), i);
            assert!(
                o.verdict.verified,
                "calm, script:\n{text}\n{}",
                o.verdict.lines()
            );
            calm_lines = o.master.expect("master").printed;
            parsed = Some((s, i));
            scripts += 1;
        }
        let (s, seed) = parsed.as_ref().expect("parsed");
        let cfg = SimConfig::hostile(&mut rng);
        let o = run_script(s, *seed, &cfg, i);
        assert!(
            o.verdict.verified,
            "schedule {i}, script:\n{text}\n{}",
            o.verdict.lines()
        );
        assert_eq!(
            o.master.expect("master").printed,
            calm_lines,
            "schedule {i} printed other lines; script:\n{text}"
        );
    }
    assert!(scripts >= runs / 20);
}

/// The random mode: nodes transfer on their own while snapshots are taken, several at
/// once; every snapshot verifies under hostile schedules.
#[test]
fn random_mode_with_concurrent_snapshots_verifies_under_hostile_schedules() {
    let mut rng = StdRng::seed_from_u64(15);
    let (mut in_transit, mut overlapped) = (0, 0);
    for i in 0..300 {
        let nodes = rng.random_range(2..=6);
        let snapshots = rng.random_range(1..=4);
        let cfg = AutoConfig {
            nodes,
            balance: 1000,
            auto: Auto {
                transfers: rng.random_range(1..=20),
                snapshots,
                step_ms: rng.random_range(1..=5),
                max_delay_ms: rng.random_range(0..=20),
                max_amount: 300,
                seed: i,
            },
            concurrent: i % 2 == 0,
            reply_timeout: 600_000,
            deadline: None,
        };
        let sim = SimConfig::hostile(&mut rng);
        let o = run_auto(cfg, i, &sim, i);
        assert!(o.verdict.verified, "run {i}: {}", o.verdict.lines());
        let m = o.master.expect("master");
        assert_eq!(m.snapshots.len(), snapshots as usize);
        // Not a trivial pass: money was caught on the channels, and snapshots overlapped.
        in_transit += m
            .snapshots
            .iter()
            .flat_map(|s| s.states.iter())
            .flat_map(|(_, r)| r.channels.iter())
            .filter(|c| c.sum() > 0)
            .count();
        overlapped += m
            .snapshots
            .windows(2)
            .filter(|w| w[1].begun_ms < w[0].collected_ms.unwrap_or(0))
            .count();
    }
    assert!(
        in_transit > 100,
        "only {in_transit} channel states held money"
    );
    assert!(overlapped > 50, "only {overlapped} snapshots overlapped");
}

/// A node created after a snapshot is not one of its nodes: collecting that snapshot
/// again asks only its own nodes, and its money still adds up.
#[test]
fn a_node_created_after_a_snapshot_is_not_in_it() {
    let text = "StartMaster\nCreateNode 1 100\nCreateNode 2 50\nSend 1 2 30\nBeginSnapshot 2\nReceiveAll\nCollectState\nCreateNode 3 7\nSend 3 1 7\nCollectState\nPrintSnapshot\nReceiveAll\nKillAll\n";
    let s = script::parse(text).expect("parses");
    let o = run_script(&s, 3, &SimConfig::calm(), 3);
    let printed = o.master.expect("master").printed.join("\n");
    assert_eq!(
        printed,
        "Started by Node 2\n---Node states\nnode 1 = 70\nnode 2 = 50\n---Channel states\nchannel (1 -> 2) = 30\nchannel (2 -> 1) = 0"
    );
    assert!(o.verdict.verified, "{}", o.verdict.lines());
}
