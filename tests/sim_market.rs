//! The market on the simulator: the course's six cases come out as the issue says under
//! calm and hostile schedules; 10,000 hostile schedules of random markets verify every
//! check (crashes: the safety checks still pass and `reported` names the crashed); and
//! each check fails on a report set corrupted against it.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sync_run::algorithms::market::graph::{GraphSpec, Market, Role};
use sync_run::algorithms::market::report::{Ledger, PeerReport};
use sync_run::algorithms::market::sim::{self, CLERK_ID, SimOutcome};
use sync_run::algorithms::market::{Expect, verify};
use sync_run::sim::{RandomCrashes, SimConfig};
use sync_run::verdict::Status;

fn products() -> Vec<String> {
    ["fish", "salt", "boar"].map(String::from).to_vec()
}

fn case(file: &str) -> Market {
    let text = std::fs::read_to_string(format!("tests/data/market/{file}")).expect("case file");
    Market::from_file(&text, &products(), 3).expect("a good case")
}

/// Case 6's market: seller 1 with `n - 1` salt in the middle of `n` buyers who want salt.
fn star(n: u32) -> Market {
    let mut peers = vec![format!(
        r#"{{"id": 1, "role": "seller", "product": "salt", "stock": {}, "neighbors": []}}"#,
        n - 1
    )];
    for b in 2..=n + 1 {
        peers.push(format!(
            r#"{{"id": {b}, "role": "buyer", "wants": ["salt"], "neighbors": [1]}}"#
        ));
    }
    let text = format!(r#"{{"peers": [{}]}}"#, peers.join(","));
    Market::from_file(&text, &products(), 3).expect("star")
}

fn peer(o: &SimOutcome, k: u32) -> &PeerReport {
    o.peers.iter().find(|r| r.id == k).expect("reported")
}

fn yes(r: &PeerReport) -> usize {
    r.buyer.as_ref().map_or(0, |b| {
        b.buys.iter().filter(|x| x.sold == Some(true)).count()
    })
}

fn told_no(r: &PeerReport) -> usize {
    r.buyer.as_ref().map_or(0, |b| {
        b.buys.iter().filter(|x| x.sold == Some(false)).count()
    })
}

fn assert_verified(o: &SimOutcome, what: &str) {
    assert!(
        o.proof.verdict.verified,
        "{what}: {}",
        o.proof.verdict.lines()
    );
}

/// Runs a case calm, then under `n` hostile schedules, checking each with `check`.
fn each_schedule(m: &Market, s: &sim::Setup, n: u64, seed: u64, check: impl Fn(&SimOutcome, &str)) {
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..n {
        let cfg = if i == 0 {
            SimConfig::calm()
        } else {
            SimConfig::hostile(&mut rng)
        };
        let o = sim::run(m, s, &cfg, i);
        let what = format!("schedule {i}");
        assert_verified(&o, &what);
        check(&o, &what);
    }
}

#[test]
fn case_1_two_buyers_one_item_exactly_one_buys() {
    let m = case("case1_one_item_two_buyers.json");
    each_schedule(&m, &sim::setup(1, 1, 1, 1), 300, 1, |o, what| {
        assert_eq!(yes(peer(o, 1)) + yes(peer(o, 3)), 1, "{what}");
        assert_eq!(o.proof.figures.purchases, 1, "{what}");
    });
    // Calm: both replied to before the one item went, so the loser is told no.
    let o = sim::run(&m, &sim::setup(1, 1, 1, 1), &SimConfig::calm(), 0);
    assert_eq!(told_no(peer(&o, 1)) + told_no(peer(&o, 3)), 1);
}

#[test]
fn case_2_no_common_product_nothing_bought_lookups_die() {
    let m = case("case2_no_common_product.json");
    each_schedule(&m, &sim::setup(2, 2, 1, 2), 300, 2, |o, what| {
        assert_eq!(o.proof.figures.purchases, 0, "{what}");
        assert!(o.peers.iter().all(|r| r.replied.is_empty()), "{what}");
        // Buyer 1's lookups reach 3 with no hop left and go no further.
        let at3 = &peer(o, 3).arrivals;
        assert!(at3.iter().any(|a| a.id.buyer == 1 && a.hops == 0), "{what}");
        assert!(
            peer(o, 3).forwards.iter().all(|f| f.id.buyer == 3),
            "{what}"
        );
    });
}

#[test]
fn case_3_hop_count_zero_nothing_bought() {
    let m = case("case3_hop_count_zero.json");
    each_schedule(&m, &sim::setup(0, 1, 2, 3), 100, 3, |o, what| {
        assert_eq!(o.proof.figures.purchases, 0, "{what}");
        assert!(o.peers.iter().all(|r| r.arrivals.is_empty()), "{what}");
        assert_eq!(o.proof.figures.rounds, 2 * 3, "{what}: 1 + 2 retries each");
    });
}

#[test]
fn case_4_match_within_the_hop_count_bought_stock_down_by_one() {
    let m = case("case4_match_within_hops.json");
    each_schedule(&m, &sim::setup(2, 1, 0, 4), 300, 4, |o, what| {
        assert_eq!(yes(peer(o, 1)), 1, "{what}");
        let stall = peer(o, 3).stall.as_ref().expect("seller");
        assert_eq!((stall.product.as_str(), stall.stock), ("salt", 2), "{what}");
        // The reply came back through 2.
        let b = peer(o, 1).buyer.as_ref().expect("buyer");
        assert_eq!(b.rounds[0].replies[0].via, vec![2], "{what}");
    });
}

#[test]
fn case_5_two_sellers_one_buyer_bought_from_exactly_one() {
    let m = case("case5_two_sellers.json");
    each_schedule(&m, &sim::setup(1, 1, 0, 5), 300, 5, |o, what| {
        let stocks: Vec<u64> = [2, 3]
            .iter()
            .map(|k| peer(o, *k).stall.as_ref().expect("seller").stock)
            .collect();
        assert!(stocks == [2, 3] || stocks == [3, 2], "{what}: {stocks:?}");
        assert_eq!(yes(peer(o, 1)), 1, "{what}");
    });
}

#[test]
fn case_6_n_buyers_n_minus_1_items_never_oversold_never_a_hang() {
    for n in [3, 10, 50] {
        let m = star(n);
        let runs = if n == 50 { 20 } else { 100 };
        each_schedule(&m, &sim::setup(1, 1, 1, 6), runs, n as u64, |o, what| {
            let sold: usize = o.peers.iter().map(yes).sum();
            assert_eq!(sold, n as usize - 1, "n = {n}, {what}");
            let losers: Vec<&PeerReport> = o
                .peers
                .iter()
                .filter(|r| r.role == Role::Buyer && yes(r) == 0)
                .collect();
            assert_eq!(losers.len(), 1, "n = {n}, {what}");
            let q = &losers[0].buyer.as_ref().expect("buyer").quests[0];
            assert_eq!((q.bought, q.rounds), (None, 2), "n = {n}, {what}");
        });
        // Calm: every lookup reached the seller before the first buy, so the last buyer
        // is told no (then looks up again, finds nothing, gives up).
        let o = sim::run(&m, &sim::setup(1, 1, 1, 6), &SimConfig::calm(), 0);
        assert_eq!(o.peers.iter().map(told_no).sum::<usize>(), 1, "n = {n}");
    }
}

fn random_market(rng: &mut StdRng) -> (Market, sim::Setup) {
    let n = rng.random_range(3..=8);
    let buyers = rng.random_range(1..n);
    let graph = if rng.random_bool(0.5) {
        GraphSpec::Ring
    } else {
        GraphSpec::Random(rng.random_range(1..=3))
    };
    let products: Vec<String> = products()
        .into_iter()
        .take(rng.random_range(1..=3))
        .collect();
    let m = Market::generate(
        n,
        buyers,
        &graph,
        &products,
        rng.random_range(1..=3),
        rng.random(),
    )
    .expect("market");
    let mut s = sim::setup(
        rng.random_range(0..=4),
        rng.random_range(1..=3),
        rng.random_range(0..=2),
        rng.random(),
    );
    // Short windows and timeouts too: late replies, late answers, buys given up on.
    s.reply_window_ms = *[5, 20, 200, 10_000].choose(rng).unwrap_or(&20);
    // A buyer hears every sale made to it when its sellers answer within 3 × the buy
    // timeout (docs/market.md); the schedules' stalls stay under that.
    s.buy_timeout_ms = *[1_000, 2_000, 60_000].choose(rng).unwrap_or(&2_000);
    (m, s)
}

/// The property test: random markets under hostile schedules (duplicates, re-publishes,
/// lost connections, junk), every one verified. `MARKET_SIM_SEED` and
/// `MARKET_SIM_RUNS` change the seed and the count.
#[test]
fn ten_thousand_hostile_schedules_verify() {
    let seed = std::env::var("MARKET_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let runs = std::env::var("MARKET_SIM_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut bought, mut no, mut dup) = (0, 0, 0);
    for i in 0..runs {
        let (m, s) = random_market(&mut rng);
        let mut cfg = SimConfig::hostile(&mut rng);
        cfg.extra_junk = vec![
            br#"{"v":1,"run":"sim","type":"lookup","id":{"buyer":1,"n":1},"product":"salt","hops":9,"path":[1]}"#.to_vec(),
            br#"{"v":1,"run":"sim","type":"buy","buyer":1,"req":1,"seller":99,"product":"salt","lookup":{"buyer":1,"n":1}}"#.to_vec(),
            br#"{"v":1,"run":"other","type":"close","reason":"x"}"#.to_vec(),
            br#"{"v":1,"run":"sim","type":"reply","id":{"buyer":1,"n":1},"seller":2,"product":"salt","path":[1,2,3],"via":[3]}"#.to_vec(),
        ];
        let o = sim::run(&m, &s, &cfg, i);
        assert!(
            o.proof.verdict.verified,
            "seed {seed} run {i}: {}\nmarket {:?}\nsetup {:?}",
            o.proof.verdict.lines(),
            m,
            s
        );
        bought += o.proof.figures.purchases;
        no += o.proof.figures.told_no;
        dup += o.run.stats.duplicates;
    }
    // The schedules did what they are for.
    assert!(bought > runs && no > 0 && dup > runs, "{bought} {no} {dup}");
}

/// Crashes at random moments: the run still ends (the clerk's deadline), `reported` names
/// who crashed, and nothing the survivors reported breaks a safety check.
#[test]
fn crashes_are_named_and_never_break_safety() {
    let mut rng = StdRng::seed_from_u64(61);
    let mut named = 0;
    for i in 0..500 {
        let (m, s) = random_market(&mut rng);
        let mut cfg = SimConfig::hostile(&mut rng);
        cfg.random_crashes = Some(RandomCrashes {
            among: m.ids(),
            rate: 0.05,
            max: 1,
        });
        let o = sim::run(&m, &s, &cfg, i);
        let crashed: Vec<u32> = m
            .ids()
            .into_iter()
            .filter(|k| !o.peers.iter().any(|r| r.id == *k))
            .collect();
        for c in &o.proof.verdict.checks {
            if ["never_oversold", "hop_counts", "reverse_path", "purchases"].contains(&c.name) {
                assert_eq!(
                    c.status,
                    Status::Passed,
                    "run {i}: {}",
                    o.proof.verdict.lines()
                );
            }
        }
        let reported = &o.proof.verdict.checks[0];
        if crashed.is_empty() {
            assert_eq!(reported.status, Status::Passed, "run {i}");
        } else {
            named += 1;
            assert_eq!(reported.status, Status::Failed, "run {i}");
            let named = format!("peer(s) {} did not report", crashed[0]);
            assert!(
                reported.detail.contains(&named),
                "run {i}: {}",
                reported.detail
            );
        }
        assert!(o.clerk.is_some(), "run {i}: the clerk closes the market");
        let _ = CLERK_ID;
    }
    assert!(named > 50, "only {named} runs had a crash");
}

/// A calm run, verified, to corrupt the reports of.
struct Calm {
    o: SimOutcome,
    expect: Expect,
}

impl Calm {
    fn new(m: &Market, s: &sim::Setup) -> Calm {
        let o = sim::run(m, s, &SimConfig::calm(), 0);
        assert_verified(&o, "calm");
        Calm {
            o,
            expect: s.expect(m),
        }
    }

    /// Check `name` fails on `peers` (the calm run's reports, corrupted).
    fn fails(&self, peers: &[PeerReport], name: &str) {
        let p = verify(&self.expect, peers, self.o.clerk.as_ref());
        let c = p
            .verdict
            .checks
            .iter()
            .find(|c| c.name == name)
            .expect("check");
        assert_eq!(c.status, Status::Failed, "{name} should fail: {}", c.detail);
    }
}

/// Each check fails on reports corrupted against it.
#[test]
fn each_check_fails_on_corrupted_reports() {
    let calm = Calm::new(&star(3), &sim::setup(1, 1, 1, 6));
    let (o, fails) = (&calm.o, |p: &[PeerReport], name: &str| calm.fails(p, name));
    // An extra sale: oversold, and a sale nobody heard yes for.
    let mut p = o.peers.clone();
    if let Some(st) = p[0].stall.as_mut() {
        st.ledger.insert(
            1,
            Ledger::Sold {
                buyer: 2,
                req: 99,
                product: "salt".into(),
                at: 0,
            },
        );
    }
    fails(&p, "never_oversold");
    fails(&p, "purchases");
    // A lookup forwarded twice.
    let mut p = o.peers.clone();
    let f = p[1].forwards[0].clone();
    p[1].forwards.push(f);
    fails(&p, "hop_counts");
    // A lookup that came from further than the hop count.
    let mut p = o.peers.clone();
    p[0].arrivals[0].path.push(3);
    fails(&p, "hop_counts");
    // A reply that came by another way.
    let mut p = o.peers.clone();
    if let Some(b) = p[1].buyer.as_mut() {
        b.rounds[0].replies[0].via = vec![4];
    }
    fails(&p, "reverse_path");
    // A purchase without its yes.
    let mut p = o.peers.clone();
    for r in &mut p {
        if let Some(b) = r.buyer.as_mut()
            && let Some(x) = b.buys.iter_mut().find(|x| x.sold == Some(true))
        {
            x.sold = None;
            break;
        }
    }
    fails(&p, "purchases");
    // A buyer that stopped early.
    let mut p = o.peers.clone();
    if let Some(b) = p[1].buyer.as_mut() {
        b.quests.clear();
    }
    fails(&p, "buyers_finished");
    // A peer missing.
    fails(&o.peers[1..], "reported");

    // With a relay (case 4: buyer 1 — 2 — seller 3, hop count 2).
    let calm = Calm::new(
        &case("case4_match_within_hops.json"),
        &sim::setup(2, 1, 0, 4),
    );
    let (o, fails) = (&calm.o, |p: &[PeerReport], name: &str| calm.fails(p, name));
    // The relay swallowed the lookup (3's arrival was never forwarded there).
    let mut p = o.peers.clone();
    p[1].forwards[0].to.clear();
    fails(&p, "hop_counts");
    // The relay forwarded a lookup it never got.
    let mut p = o.peers.clone();
    p[1].arrivals.clear();
    fails(&p, "hop_counts");
    // A neighbour the market never gave.
    let mut p = o.peers.clone();
    p[0].neighbors.push(3);
    fails(&p, "hop_counts");
    // The reply relayed off its path, or twice.
    let mut p = o.peers.clone();
    p[1].relayed[0].to = 3;
    fails(&p, "reverse_path");
    let mut p = o.peers.clone();
    let r = p[1].relayed[0].clone();
    p[1].relayed.push(r);
    fails(&p, "reverse_path");
    // A seller that started with more than the market gave it.
    let mut p = o.peers.clone();
    if let Some(Ledger::Stocked { items, .. }) =
        p[2].stall.as_mut().and_then(|st| st.ledger.first_mut())
    {
        *items = 10;
    }
    fails(&p, "never_oversold");
}
