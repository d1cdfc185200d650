//! Property test of the logical-clock exercise on the generic simulator ([`sync_run::sim`]):
//! 10,000 hostile schedules (reordering across publishers, redeliveries, re-publishes,
//! connection losses, junk), random N in 2..=5 and E in 1..=5, pacing from all-at-once to
//! 20 ms steps. Every schedule must end with every process completed, and the reports it
//! put on the results queue must pass every check of [`checks::verify`].
//!
//! A failure prints the seed; replay it (with the run's events printed) with
//! `SIM_SEED=<seed> cargo test --test sim_clocks replay -- --nocapture`. A longer soak:
//! `SIM_RUNS=200000 SIM_FROM=10000 cargo test --test sim_clocks ten_thousand`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use sync_run::algorithms::clocks::checks;
use sync_run::algorithms::clocks::print;
use sync_run::algorithms::clocks::process::{ClockConfig, Process};
use sync_run::algorithms::clocks::protocol::{Body, Message, decode_report};
use sync_run::algorithms::clocks::report::{self, Outcome, Report};
use sync_run::contract::{PeerId, Route};
use sync_run::sim::{self, Crash, SimConfig, SimStats};
use sync_run::verdict::spacetime;

const RUN: &str = "sim";
const SCHEDULES: u64 = 10_000;

/// Junk a process must refuse (never apply): another run, another version, misrouted,
/// from nobody, a report in an inbox, an unknown field, a `done` that miscounts.
fn clock_junk() -> Vec<Vec<u8>> {
    let msg = |from, to, seq| {
        Message::new(
            RUN,
            from,
            Body::Msg {
                to,
                seq,
                lamport: 1,
                vc: vec![1, 0],
            },
        )
        .encode()
        .expect("encodes")
    };
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap_or_default();
    vec![
        Message::new(
            "another-run",
            1,
            Body::Done {
                to: 2,
                seq: 1,
                sent: 0,
            },
        )
        .encode()
        .expect("encodes"),
        text(msg(1, 2, 1))
            .replace("\"v\":1", "\"v\":2")
            .into_bytes(),
        text(msg(1, 2, 1))
            .replace("\"seq\":1", "\"seq\":1,\"x\":0")
            .into_bytes(),
        msg(1, 0, 1),
        msg(0, 1, 1),
        msg(1, 2, 0),
        Message::new(
            RUN,
            2,
            Body::Done {
                to: 1,
                seq: 5,
                sent: 1,
            },
        )
        .encode()
        .expect("encodes"),
        Message::new(
            RUN,
            1,
            Body::Report {
                report: Report {
                    id: 1,
                    outcome: Outcome::Completed,
                    events: Vec::new(),
                    counts: Default::default(),
                    rejected: 0,
                },
            },
        )
        .encode()
        .expect("encodes"),
    ]
}

fn route(_from: PeerId, r: Route) -> Vec<PeerId> {
    match r {
        Route::Peer(p) => vec![p],
        _ => Vec::new(),
    }
}

struct Setup {
    n: u32,
    e: u32,
    cfgs: Vec<ClockConfig>,
    sim: SimConfig,
    seeds: Vec<u64>,
}

/// Everything about one schedule, drawn from its seed.
fn setup(seed: u64) -> Setup {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.random_range(2..=5);
    let e = rng.random_range(1..=5);
    let step_ms = if rng.random_bool(0.2) {
        0
    } else {
        rng.random_range(1..=20)
    };
    let send_probability = rng.random_range(0.0..=1.0);
    let cfgs = (1..=n)
        .map(|id| ClockConfig {
            run_id: RUN.into(),
            id,
            processes: n,
            events: e,
            send_probability,
            step_ms,
            // Far beyond any stall the schedule draws: silence here means a bug.
            peer_timeout_ms: 600_000,
            deadline: Some(3_600_000),
        })
        .collect();
    let mut sim = SimConfig::hostile(&mut rng);
    sim.extra_junk = clock_junk();
    let seeds = (1..=n).map(|_| rng.random()).collect();
    Setup {
        n,
        e,
        cfgs,
        sim,
        seeds,
    }
}

fn machines(s: &Setup) -> Vec<(PeerId, Process)> {
    s.cfgs
        .iter()
        .zip(&s.seeds)
        .filter_map(|(c, seed)| {
            let rng = Box::new(StdRng::seed_from_u64(*seed));
            Process::new(c.clone(), rng, 0).ok().map(|p| (c.id, p))
        })
        .collect()
}

/// Runs one schedule; the reports read back from the results queue, or what went wrong.
fn one(seed: u64) -> Result<(Vec<Report>, SimStats), String> {
    let s = setup(seed);
    let run = sim::run(machines(&s), route, &s.sim, seed);
    if run.step_limit_hit {
        return Err(format!(
            "the step limit ended the run after {} steps",
            run.steps
        ));
    }
    for (p, f) in &run.finished {
        match f {
            Some(r) if r.outcome == Outcome::Completed => {}
            Some(r) => return Err(format!("P{p} ended {:?}", r.outcome)),
            None => return Err(format!("P{p} never finished")),
        }
    }
    let reports = run
        .results
        .iter()
        .map(|(p, bytes)| decode_report(bytes, RUN).map_err(|e| format!("P{p}'s report: {e}")))
        .collect::<Result<Vec<Report>, String>>()?;
    // What went on the wire is what each process ended with.
    for r in &reports {
        if run.finished.get(&r.id).and_then(Option::as_ref) != Some(r) {
            return Err(format!("P{}'s published report differs from its own", r.id));
        }
    }
    let v = checks::verify(&reports, s.n, s.e);
    if !v.verified {
        return Err(format!("not verified:\n{}", v.lines()));
    }
    Ok((reports, run.stats))
}

#[test]
fn ten_thousand_hostile_schedules_verify() {
    let t = Instant::now();
    let mut failures = Vec::new();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let from = env("SIM_FROM").unwrap_or(0);
    let runs = env("SIM_RUNS").unwrap_or(SCHEDULES);
    let mut pairs = 0u64;
    let mut messages = 0u64;
    let mut total = SimStats::default();
    for seed in from..from + runs {
        match one(seed) {
            Ok((reports, stats)) => {
                let m: u64 = reports.iter().map(|r| r.events.len() as u64).sum();
                pairs += m * m.saturating_sub(1);
                messages += reports.iter().map(|r| r.counts.sent).sum::<u64>();
                total.deliveries += stats.deliveries;
                total.duplicates += stats.duplicates;
                total.stalls += stats.stalls;
                total.junk += stats.junk;
                total.rejected += stats.rejected;
                total.timeouts += stats.timeouts;
            }
            Err(e) => failures.push((seed, e)),
        }
    }
    for (seed, e) in failures.iter().take(5) {
        eprintln!(
            "seed {seed} failed: {e}\n  replay: SIM_SEED={seed} cargo test --test sim_clocks replay -- --nocapture"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} schedules failed; first seed {}",
        failures.len(),
        failures[0].0
    );
    eprintln!(
        "{runs} schedules verified in {:?}: {messages} messages, {pairs} ordered pairs of events; schedule: {total:?}",
        t.elapsed()
    );
    // The schedules were hostile: copies, lost connections and junk all happened, and
    // junk was refused (junk still queued when a process finished is never delivered).
    assert!(
        messages > 0 && total.duplicates > 0 && total.stalls > 0,
        "{total:?}"
    );
    assert!(
        total.junk > 0 && total.rejected > 0 && total.timeouts > 0,
        "{total:?}"
    );
}

/// `SIM_SEED=<seed>`: replays one schedule and prints its events and verdict.
#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let s = setup(seed);
    let k = &s.sim;
    eprintln!(
        "seed {seed}: N={} E={} step_ms={} p={:.2}; duplicate={:.3} republish={:.3} stall={:.3} (≤{} ms) step≤{} ms junk={}",
        s.n,
        s.e,
        s.cfgs[0].step_ms,
        s.cfgs[0].send_probability,
        k.duplicate,
        k.republish,
        k.stall,
        k.max_stall_ms,
        k.max_step_ms,
        k.junk
    );
    let run = sim::run(machines(&s), route, &s.sim, seed);
    eprintln!(
        "{:?} at {} ms after {} steps",
        run.stats, run.now, run.steps
    );
    let reports: Vec<Report> = run.finished.values().flatten().cloned().collect();
    let v = checks::verify(&reports, s.n, s.e);
    eprintln!("{}", print::text(&reports, &v));
    let svg = std::env::temp_dir().join(format!("sim_clocks_{seed}.svg"));
    let title = format!("clocks, seed {seed}: N={} E={}", s.n, s.e);
    match spacetime::write(&report::diagram(&title, &reports), &svg) {
        Ok(()) => eprintln!("space-time diagram: {}", svg.display()),
        Err(e) => eprintln!("{e:#}"),
    }
    assert!(one(seed).is_ok(), "{:?}", one(seed).err());
}

/// A process that crashes after its first event never sends its `done`: its peers wait,
/// then end naming it as silent, and the checker does not verify the run.
#[test]
fn a_crashed_process_is_named_silent_by_its_peers() {
    for seed in 0..50 {
        let mut s = setup(seed);
        for c in &mut s.cfgs {
            c.step_ms = 10;
            c.events = 5;
            c.peer_timeout_ms = 2_000;
        }
        s.e = 5;
        s.sim.crash = vec![Crash { peer: 2, after: 0 }];
        s.sim.stall = 0.0;
        let run = sim::run(machines(&s), route, &s.sim, seed);
        assert_eq!(run.crashed, vec![2], "seed {seed}");
        for (p, f) in run.finished.iter().filter(|(p, _)| **p != 2) {
            let outcome = f.as_ref().map(|r| r.outcome.clone());
            assert_eq!(
                outcome,
                Some(Outcome::Silent { peers: vec![2] }),
                "seed {seed}: P{p}"
            );
        }
        let reports: Vec<Report> = run
            .results
            .iter()
            .filter_map(|(_, b)| decode_report(b, RUN).ok())
            .collect();
        let v = checks::verify(&reports, s.n, s.e);
        assert!(!v.verified, "seed {seed}");
        assert!(
            v.failure_line()
                .is_some_and(|l| l.contains("no report from 2")),
            "seed {seed}: {}",
            v.lines()
        );
    }
}
