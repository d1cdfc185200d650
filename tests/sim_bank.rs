//! The bank on the simulator: the course's example answers exactly 400 / 570 / 500; the
//! read-your-writes and monotonic-writes cases give their answers; 10,000 hostile
//! schedules of concurrent customers verify every check; the original design
//! (`--mode propagate`) is caught; a customer whose branch is gone gets a failure naming
//! it; and each check fails on a report set corrupted against it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_run::algorithms::bank::input::{self, Input, render};
use sync_run::algorithms::bank::protocol::{Mode, Op, Outcome};
use sync_run::algorithms::bank::report::CustomerEnd;
use sync_run::algorithms::bank::sim::{self, SimOutcome};
use sync_run::algorithms::bank::{command, verify};
use sync_run::sim::{Crash, SimConfig};
use sync_run::verdict::Status;

/// The course's example input and its exact output (tests/data/).
const EXAMPLE: &str = include_str!("data/bank_example.json");

const EXAMPLE_OUT: &str = include_str!("data/bank_example_out.json");

fn out(input: &Input, o: &SimOutcome) -> String {
    render(&command::output(input, &o.customers))
}

fn assert_verified(o: &SimOutcome, what: &str) {
    assert!(
        o.proof.verdict.verified,
        "{what}: {}\n{:?}",
        o.proof.verdict.lines(),
        o.proof.anomalies
    );
    assert!(o.proof.skipped.is_empty());
}

#[test]
fn the_example_answers_exactly_400_570_500_under_any_schedule() {
    let input = input::parse(EXAMPLE).expect("parses");
    let o = sim::run(&input, &sim::setup(), &SimConfig::calm(), 1);
    assert_verified(&o, "calm");
    assert_eq!(out(&input, &o), EXAMPLE_OUT);
    let mut rng = StdRng::seed_from_u64(15);
    for i in 0..300 {
        let o = sim::run(&input, &sim::setup(), &SimConfig::hostile(&mut rng), i);
        assert_verified(&o, &format!("schedule {i}"));
        assert_eq!(out(&input, &o), EXAMPLE_OUT, "schedule {i}");
    }
}

/// The course's session-guarantee cases, starting from 0: a customer deposits 400 at
/// branch 1 and queries branch 2 (read your writes: 400); deposits 400 at 1, withdraws
/// 400 at 2, queries 2 (monotonic writes: the withdraw succeeds, 0).
#[test]
fn read_your_writes_and_monotonic_writes_cases() {
    let ryw = r#"[{"id": 1, "type": "customer", "events": [{"interface": "deposit", "money": 400, "dest": 1}, {"interface": "query", "dest": 2}]},
 {"id": 1, "type": "branch", "balance": 0}, {"id": 2, "type": "branch", "balance": 0}]"#;
    let mw = r#"[{"id": 1, "type": "customer", "events": [{"interface": "deposit", "money": 400, "dest": 1}, {"interface": "withdraw", "money": 400, "dest": 2}, {"interface": "query", "dest": 2}]},
 {"id": 1, "type": "branch", "balance": 0}, {"id": 2, "type": "branch", "balance": 0}]"#;
    let mut rng = StdRng::seed_from_u64(16);
    for (text, want) in [
        (
            ryw,
            "[{\"id\": 1, \"recv\": [{\"interface\": \"deposit\", \"result\": \"success\"},\n                    {\"interface\": \"query\", \"result\": \"success\", \"money\": 400}]}]\n",
        ),
        (
            mw,
            "[{\"id\": 1, \"recv\": [{\"interface\": \"deposit\", \"result\": \"success\"},\n                    {\"interface\": \"withdraw\", \"result\": \"success\"},\n                    {\"interface\": \"query\", \"result\": \"success\", \"money\": 0}]}]\n",
        ),
    ] {
        let input = input::parse(text).expect("parses");
        for i in 0..200 {
            let cfg = if i == 0 {
                SimConfig::calm()
            } else {
                SimConfig::hostile(&mut rng)
            };
            let o = sim::run(&input, &sim::setup(), &cfg, i);
            assert_verified(&o, &format!("schedule {i}"));
            assert_eq!(out(&input, &o), want, "schedule {i}");
        }
    }
}

/// A small random workload: 2–4 branches, 2–6 customers of 1–6 calls at random branches,
/// withdrawals large enough that some fail.
fn workload(rng: &mut StdRng) -> Input {
    let b = rng.random_range(2..=4);
    let c = rng.random_range(2..=6);
    let ops = rng.random_range(1..=6);
    let mut i = input::random(b, c, ops, rng.random_range(0..150), rng.random());
    for c in &mut i.customers {
        for e in &mut c.events {
            if e.op == Op::Withdraw {
                e.money = rng.random_range(1..=200);
            }
        }
    }
    i
}

/// 10,000 hostile schedules (interleavings, redeliveries, re-publishes, lost
/// connections, junk) of concurrent customers: every check verifies, every time; retries
/// happen and are answered, never applied twice.
#[test]
fn hostile_schedules_of_concurrent_customers_verify() {
    let runs: u64 = std::env::var("BANK_SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("BANK_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut setup = sim::setup();
    setup.sequential = false;
    setup.retry_ms = 200;
    let (mut retries, mut fails, mut dropped, mut ops) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..runs {
        let input = workload(&mut rng);
        let mut cfg = SimConfig::hostile(&mut rng);
        cfg.extra_junk = vec![
            br#"{"v":1,"run":"other","type":"sync","branch":1}"#.to_vec(),
            br#"{"v":1,"run":"sim","type":"request","branch":1,"op":{"customer":999,"req":1,"op":"deposit","money":5}}"#.to_vec(),
            br#"{"v":1,"run":"sim","type":"order","branch":1,"op":{"customer":1,"req":1,"op":"deposit","money":1000000000001}}"#.to_vec(),
        ];
        let o = sim::run(&input, &setup, &cfg, i);
        assert!(!o.run.step_limit_hit, "schedule {i} hit the step limit");
        if !o.proof.verdict.verified {
            eprintln!("{}", input::to_json(&input));
            eprintln!("sequencer {:?}", o.sequencer);
            for b in &o.branches {
                eprintln!(
                    "branch {} synced {} last {} log {:?}",
                    b.id,
                    b.synced_seq,
                    b.last_seq,
                    b.log
                        .iter()
                        .map(|e| (e.seq, e.customer, e.req))
                        .collect::<Vec<_>>()
                );
            }
            for c in &o.customers {
                eprintln!(
                    "customer {} {:?}",
                    c.id,
                    c.log
                        .iter()
                        .map(|k| (k.req, k.branch, k.seq, k.retries))
                        .collect::<Vec<_>>()
                );
            }
        }
        assert_verified(&o, &format!("schedule {i}"));
        retries += o
            .customers
            .iter()
            .flat_map(|c| c.log.iter())
            .map(|k| u64::from(k.retries))
            .sum::<u64>();
        fails += o
            .customers
            .iter()
            .flat_map(|c| c.log.iter())
            .filter(|k| k.result == Some(Outcome::Fail))
            .count() as u64;
        dropped += o.sequencer.as_ref().map_or(0, |s| s.duplicates);
        ops += input.operations() as u64;
    }
    // The schedules did exercise what they are for.
    assert!(
        retries > 0 && fails > 0 && dropped > 0,
        "retries {retries}, failed withdrawals {fails}, duplicate orders {dropped}"
    );
    eprintln!(
        "{runs} schedules, {ops} operations: {retries} retries, {fails} refused withdrawals, {dropped} duplicate orders dropped"
    );
}

/// The course's original design, under concurrency: two customers withdraw 400 each at
/// two branches of an account of 400, a third queries. The checker catches the
/// overdraft and the disagreement whenever they happen, and they happen; the ordered
/// design never lets them.
#[test]
fn propagate_mode_is_caught_and_ordered_mode_is_not_fooled() {
    let text = r#"[{"id": 1, "type": "customer", "events": [{"interface": "withdraw", "money": 400}, {"interface": "query"}]},
 {"id": 2, "type": "customer", "events": [{"interface": "withdraw", "money": 400}, {"interface": "query"}]},
 {"id": 3, "type": "customer", "events": [{"interface": "query", "dest": 1}, {"interface": "deposit", "money": 10, "dest": 2}, {"interface": "query", "dest": 1}]},
 {"id": 1, "type": "branch", "balance": 400}, {"id": 2, "type": "branch", "balance": 400},
 {"id": 3, "type": "branch", "balance": 400}]"#;
    let input = input::parse(text).expect("parses");
    let mut rng = StdRng::seed_from_u64(18);
    let (mut caught, mut overdrawn) = (0, 0);
    for i in 0..300 {
        let cfg = SimConfig::hostile(&mut rng);
        let mut s = sim::setup();
        s.sequential = false;
        s.mode = Mode::Propagate;
        let o = sim::run(&input, &s, &cfg, i);
        assert!(
            o.run.all_survivors_finished(),
            "propagate schedule {i} did not finish"
        );
        let both = withdrawn(&o);
        if both == 2 {
            // Both withdrawals succeeded: 800 taken from 400.
            assert!(
                !o.proof.verdict.verified,
                "schedule {i}: a double spend verified"
            );
            let failed = |name| {
                o.proof
                    .verdict
                    .checks
                    .iter()
                    .any(|c| c.name == name && c.status == Status::Failed)
            };
            assert!(
                failed("never_negative"),
                "schedule {i}: {}",
                o.proof.verdict.lines()
            );
            overdrawn += 1;
        }
        if !o.proof.verdict.verified {
            caught += 1;
        }
        s.mode = Mode::Ordered;
        let o = sim::run(&input, &s, &cfg, i);
        assert_verified(&o, &format!("ordered schedule {i}"));
        let both = withdrawn(&o);
        assert_eq!(
            both, 1,
            "ordered schedule {i}: exactly one withdrawal of 400 succeeds"
        );
    }
    assert!(
        overdrawn > 20 && caught >= overdrawn,
        "overdrawn in {overdrawn}, caught in {caught} of 300"
    );
}

/// How many of the two withdrawals of 400 succeeded.
fn withdrawn(o: &SimOutcome) -> usize {
    o.customers
        .iter()
        .flat_map(|c| c.log.iter())
        .filter(|k| k.op == Op::Withdraw && k.result == Some(Outcome::Success))
        .count()
}

/// A branch that is gone: its customers give up within their timeout, naming it, and the
/// run ends (no hang) with a verdict that says so.
#[test]
fn a_customer_whose_branch_is_gone_gets_a_clear_failure() {
    let input = input::parse(EXAMPLE).expect("parses");
    let mut s = sim::setup();
    s.sequential = false;
    s.timeout_ms = 2_000;
    s.deadline = Some(30_000);
    let mut cfg = SimConfig::calm();
    cfg.crash = vec![Crash { peer: 2, after: 0 }];
    let o = sim::run(&input, &s, &cfg, 1);
    assert!(o.run.all_survivors_finished());
    let c2 = o
        .customers
        .iter()
        .find(|c| c.id == 2)
        .expect("customer 2 reported");
    assert!(
        matches!(
            c2.outcome,
            CustomerEnd::GaveUp {
                branch: 2,
                req: 1,
                ..
            }
        ),
        "{:?}",
        c2.outcome
    );
    assert!(!o.proof.verdict.verified);
    let answered = o
        .proof
        .verdict
        .checks
        .iter()
        .find(|c| c.name == "answered")
        .expect("check");
    assert!(
        answered
            .detail
            .contains("customer 2: branch 2 did not answer request 1 within"),
        "{}",
        answered.detail
    );
    // The others were served.
    let c1 = o
        .customers
        .iter()
        .find(|c| c.id == 1)
        .expect("customer 1 reported");
    assert_eq!(c1.outcome, CustomerEnd::Completed);
}

/// Each check fails on a report set corrupted against it, and only the right ones do.
#[test]
fn each_check_catches_its_corruption() {
    let text = r#"[{"id": 1, "type": "customer", "events": [{"interface": "deposit", "money": 100}, {"interface": "query", "dest": 2}, {"interface": "withdraw", "money": 50, "dest": 2}]},
 {"id": 2, "type": "customer", "events": [{"interface": "query"}, {"interface": "deposit", "money": 5}]},
 {"id": 1, "type": "branch", "balance": 10}, {"id": 2, "type": "branch", "balance": 10}]"#;
    let input = input::parse(text).expect("parses");
    let o = sim::run(&input, &sim::setup(), &SimConfig::calm(), 1);
    assert_verified(&o, "calm");
    let fails = |b: &[_], c: &[_], name: &str| {
        let p = verify(&input, Mode::Ordered, b, c, o.sequencer.as_ref());
        let failed: Vec<&str> = p
            .verdict
            .checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .map(|c| c.name)
            .collect();
        assert!(
            failed.contains(&name),
            "{name} did not fail: {}",
            p.verdict.lines()
        );
    };
    // A query's answer changed: no order gives it.
    let mut c = o.customers.clone();
    let q = c[0]
        .log
        .iter_mut()
        .find(|k| k.op == Op::Query)
        .expect("a query");
    q.balance = q.balance.map(|b| b + 1);
    fails(&o.branches, &c, "linearizable");
    // One branch holds other money.
    let mut b = o.branches.clone();
    b[1].balance += 7;
    fails(&b, &o.customers, "balances_equal");
    // A balance went below 0.
    let mut b = o.branches.clone();
    b[0].min_balance = -1;
    fails(&b, &o.customers, "never_negative");
    // A request applied twice.
    let mut b = o.branches.clone();
    let dup = b[0].log[0];
    b[0].log.push(dup);
    fails(&b, &o.customers, "exactly_once");
    // Customer 1's query at branch 2 placed before its own deposit: it missed its write.
    let mut c = o.customers.clone();
    let mut b = o.branches.clone();
    let dep = c[0].log[0].seq.expect("answered");
    let qseq = c[0].log[1].seq.expect("answered");
    for br in &mut b {
        for e in &mut br.log {
            if e.seq == dep {
                e.seq = qseq;
            } else if e.seq == qseq {
                e.seq = dep;
            }
        }
    }
    c[0].log[0].seq = Some(qseq);
    c[0].log[1].seq = Some(dep);
    fails(&b, &c, "session_guarantees");
    // A customer that never reported.
    fails(&o.branches, &o.customers[..1], "reported");
    // A customer that gave up.
    let mut c = o.customers.clone();
    c[1].outcome = CustomerEnd::GaveUp {
        req: 2,
        branch: 2,
        after_ms: 10,
    };
    fails(&o.branches, &c, "answered");
}
