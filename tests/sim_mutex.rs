//! Ricart–Agrawala under the generic simulator: thousands of hostile schedules (random N
//! and K, duplicates, re-publishes, reordering, delays, connection losses, junk), each one
//! verified by all five checks from the reports the processes published; a crash for good
//! that every survivor must name; and a broken process the checker must catch.
//!
//! A failure prints the seed; replay it with
//! `SIM_SEED=<seed> cargo test --test sim_mutex replay -- --nocapture`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use sync_run::algorithms::mutex::print;
use sync_run::algorithms::mutex::protocol::{Body, Message};
use sync_run::algorithms::mutex::{Outcome, Process, ProcessConfig, Report, decode_report, verify};
use sync_run::contract::{PeerId, Route};
use sync_run::sim::{self, Crash, SimConfig, SimRun};

const RUN: &str = "sim";

fn point_to_point(_from: PeerId, r: Route) -> Vec<PeerId> {
    match r {
        Route::Peer(p) => vec![p],
        _ => vec![],
    }
}

/// One schedule's shape, all drawn from its seed.
struct Schedule {
    n: u32,
    k: u32,
    hold_ms: u64,
    cfg: SimConfig,
}

fn schedule(seed: u64) -> Schedule {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cfg = SimConfig::hostile(&mut rng);
    cfg.extra_junk = junk();
    Schedule {
        n: rng.random_range(2..=6),
        k: rng.random_range(1..=3),
        hold_ms: if rng.random_bool(0.5) {
            0
        } else {
            rng.random_range(1..=20)
        },
        cfg,
    }
}

/// Messages of the right shape that a process must refuse: another run, another version,
/// not for it, a clock of the wrong length, a report in its inbox.
fn junk() -> Vec<Vec<u8>> {
    let req = |run: &str, to, vc: Vec<u64>| {
        Message::new(
            run,
            1,
            Body::Request {
                to,
                seq: 1,
                lamport: 1,
                vc,
            },
        )
        .encode()
        .expect("encodes")
    };
    let v2 = String::from_utf8(req(RUN, 2, vec![1, 0]))
        .unwrap_or_default()
        .replace("\"v\":1", "\"v\":2");
    vec![
        req("other", 2, vec![1, 0]),
        req(RUN, 99, vec![1, 0]),
        req(RUN, 2, vec![1; 40]),
        v2.into_bytes(),
    ]
}

fn processes(n: u32, k: u32, hold_ms: u64, never_defer: bool) -> Vec<(PeerId, Process)> {
    (1..=n)
        .map(|i| {
            let mut c = ProcessConfig::new(RUN, i, n, k);
            c.hold_ms = hold_ms;
            c.peer_timeout_ms = 60_000;
            c.never_defer = never_defer;
            (i, Process::new(c, 0).expect("a valid config"))
        })
        .collect()
}

/// The reports as published on the results route, one per process (re-publishes
/// collapsed); a report that does not decode is an error.
fn published(run: &SimRun<Report>) -> Result<Vec<Report>, String> {
    let mut by_id = BTreeMap::new();
    for (from, bytes) in &run.results {
        let r = decode_report(bytes, RUN).map_err(|e| format!("P{from}'s report: {e}"))?;
        by_id.insert(r.id, r);
    }
    Ok(by_id.into_values().collect())
}

fn run_one(seed: u64) -> (Schedule, SimRun<Report>) {
    let s = schedule(seed);
    let run = sim::run(
        processes(s.n, s.k, s.hold_ms, false),
        point_to_point,
        &s.cfg,
        seed,
    );
    (s, run)
}

fn check(s: &Schedule, run: &SimRun<Report>) -> Result<(), String> {
    if run.step_limit_hit || !run.all_survivors_finished() {
        return Err(format!("did not end after {} steps", run.steps));
    }
    let reports = published(run)?;
    let finished: Vec<Report> = run.finished.values().flatten().cloned().collect();
    if reports != finished {
        return Err("the published reports differ from the finished ones".into());
    }
    let v = verify(&reports, s.n, s.k);
    if !v.verified {
        return Err(v.lines());
    }
    Ok(())
}

#[test]
fn ten_thousand_hostile_schedules_verify() {
    let count: u64 = std::env::var("SIM_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let started = std::time::Instant::now();
    let mut stats = sim::SimStats::default();
    let mut rejected_by_processes = 0;
    for seed in 0..count {
        let (s, run) = run_one(seed);
        if let Err(e) = check(&s, &run) {
            panic!(
                "seed {seed} (N={}, K={}): {e}\nreplay: SIM_SEED={seed} cargo test --test sim_mutex replay -- --nocapture",
                s.n, s.k
            );
        }
        stats.deliveries += run.stats.deliveries;
        stats.duplicates += run.stats.duplicates;
        stats.stalls += run.stats.stalls;
        stats.junk += run.stats.junk;
        stats.rejected += run.stats.rejected;
        stats.timeouts += run.stats.timeouts;
        rejected_by_processes += run
            .finished
            .values()
            .flatten()
            .map(|r| r.rejected)
            .sum::<u64>();
    }
    println!(
        "{count} schedules verified in {:.1?}: {stats:?}",
        started.elapsed()
    );
    // The schedules must exercise the hostile paths, or the test proves little.
    assert!(stats.duplicates > count && stats.stalls > count / 10 && stats.junk > count);
    assert_eq!(
        stats.rejected, rejected_by_processes,
        "every refused delivery is counted in a report"
    );
}

#[test]
fn a_crashed_process_is_named_by_every_survivor() {
    for seed in 0..50 {
        let n = 2 + (seed % 5) as u32;
        let victim = 1 + (seed as u32 % n);
        let mut cfg = SimConfig::hostile(&mut StdRng::seed_from_u64(seed));
        cfg.crash = vec![Crash {
            peer: victim,
            after: 0,
        }];
        // Survivors with a short peer timeout, so the test is quick.
        let machines = (1..=n)
            .map(|i| {
                let mut c = ProcessConfig::new(RUN, i, n, 2);
                c.hold_ms = 5;
                c.peer_timeout_ms = 2_000;
                (i, Process::new(c, 0).expect("valid"))
            })
            .collect();
        let run = sim::run(machines, point_to_point, &cfg, seed);
        assert!(!run.step_limit_hit, "seed {seed}: it ended");
        assert_eq!(run.crashed, vec![victim]);
        let reports = published(&run).expect("reports decode");
        assert_eq!(
            reports.len() as u32,
            n - 1,
            "seed {seed}: every survivor reported"
        );
        for r in &reports {
            match &r.outcome {
                Outcome::Stalled { silent } => {
                    assert!(silent.contains(&victim), "seed {seed}: {silent:?}")
                }
                o => panic!("seed {seed}: P{} ended {o:?}", r.id),
            }
        }
        assert!(!verify(&reports, n, 2).verified);
    }
}

#[test]
fn the_checker_catches_a_process_that_never_defers() {
    let mut caught = 0;
    for seed in 0..200u64 {
        let s = schedule(seed);
        let run = sim::run(
            processes(s.n.max(3), s.k, s.hold_ms.max(5), true),
            point_to_point,
            &s.cfg,
            seed,
        );
        let Ok(reports) = published(&run) else {
            continue;
        };
        let v = verify(&reports, s.n.max(3), s.k);
        let safety = v
            .checks
            .iter()
            .find(|c| c.name == sync_run::algorithms::mutex::checks::SAFETY);
        if safety.is_some_and(|c| !c.passed) {
            caught += 1;
        }
    }
    assert!(
        caught > 20,
        "safety violations found in only {caught} of 200"
    );
}

#[test]
fn calm_runs_print_their_events() {
    let run = sim::run(
        processes(5, 3, 0, false),
        point_to_point,
        &SimConfig::calm(),
        1,
    );
    let reports = published(&run).expect("reports");
    let text = print::render(&reports, 5, 3);
    assert!(text.ends_with(
        "VERIFIED: 5 processes, 15 entries, safety by vector clocks, 2(N-1)=8 messages per entry\n"
    ));
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return; // nothing to replay
    };
    let (s, run) = run_one(seed);
    println!(
        "seed {seed}: N={} K={} hold={} {:?}\n{:?}",
        s.n, s.k, s.hold_ms, s.cfg, run.stats
    );
    if let Ok(reports) = published(&run) {
        println!("{}", print::render(&reports, s.n, s.k));
    }
    check(&s, &run).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
}
