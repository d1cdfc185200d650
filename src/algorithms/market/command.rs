//! `sync-run market` and `sync-run market-peer`: the clerk and the peers as participants
//! of one run on RabbitMQ, every report read from the results queue, the checks, the
//! summary table, the exit code.

use super::cli::{MarketArgs, PeerArgs, Shape};
use super::graph::{GraphSpec, Market, PeerSpec, Role};
use super::participant::{Part, Setup};
use super::protocol::{self, CLERK, Report, Who};
use super::report::{ClerkReport, PeerEnd, PeerReport};
use crate::broker::peers::{Launch, Member, PeerRun};
use crate::broker::{Broker, BrokerError};
use crate::cli::crash::{CrashAt, Passing, Trigger};
use crate::cli::peers::{Gather, Tally, run_members, solo};
use crate::cli::session::Session;
use crate::cli::usage_error;
use crate::contract::{Millis, PeerId};
use std::time::{Duration, Instant};

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// A peer-to-peer market: buyers flood lookups with a hop count, sellers reply back
        /// along the path, buyers buy directly; never oversold, proven from the reports.
        Market(MarketArgs) => run,
        /// One peer of a market run (start it anywhere, with the run's options and --seed, or
        /// described with --role).
        MarketPeer(PeerArgs) => peer_alone,
    ]
    bench: [
        /// The market: lookup→purchase latency, success rate and messages per lookup against
        /// the flooding bound, at 6, 100 and 1,000 peers, beside the broker's one hop.
        Market(super::cli::BenchArgs) => bench,
    ]
}

/// The run's names on the broker: an inbox per peer and the clerk's; each peer declares
/// its own and its neighbours' only.
pub fn peer_run(run_id: &str, market: &Market) -> PeerRun {
    PeerRun {
        alg: "market",
        run_id: run_id.to_owned(),
        peers: market.ids(),
        roles: vec![CLERK],
        clients: Vec::new(),
        links: market.links(),
    }
}

/// The market the options describe; bad options or a bad graph file are a usage error.
pub fn market(s: &Shape, seed: u64) -> Market {
    let m = match &s.graph {
        GraphSpec::File(path) => {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
                usage_error(format!("--graph {}: cannot read it: {e}", path.display()))
            });
            Market::from_file(&text, &s.products, s.stock)
                .map_err(|e| format!("--graph {}: {e}", path.display()))
        }
        g => Market::generate(
            s.peers,
            s.buyers.unwrap_or((s.peers / 2).max(1)),
            g,
            &s.products,
            s.stock,
            seed,
        ),
    };
    m.unwrap_or_else(|e| usage_error(e))
}

/// The settings every participant here is built with.
pub fn setup(run_id: &str, s: &Shape, seed: u64) -> Setup {
    let ms = |d: Duration| d.as_millis() as Millis;
    Setup {
        run_id: run_id.to_owned(),
        hop_count: s.hop_count,
        lookups: s.lookups,
        retries: s.retries,
        restock: s.stock,
        reply_window_ms: ms(s.reply_window),
        buy_retry_ms: ms(s.buy_retry),
        buy_timeout_ms: ms(s.buy_timeout),
        deadline: Some(ms(s.run_timeout)),
        seed,
    }
}

/// What a run gathered: every report read from the results queue.
#[derive(Debug, Default)]
pub struct Gathered {
    pub peers: Vec<PeerReport>,
    pub clerk: Option<ClerkReport>,
    pub rejected_on_results: u64,
    pub wall: Duration,
}

impl Gather<Report> for Gathered {
    fn keep(&mut self, r: Report) {
        match r {
            Report::Peer(p) => self.peers.push(p),
            Report::Clerk(c) => self.clerk = Some(c),
        }
    }
    fn any_peer(&self) -> bool {
        !self.peers.is_empty()
    }
}

/// Runs the clerk and the `local` peers of `market` here, on one connection pool, and
/// reads every participant's report (local or started elsewhere) from the results
/// queue; deletes the run at the end. `Err` when the broker failed the reading of the
/// reports, or the run id is in use.
pub async fn execute(
    broker: &Broker,
    shutdown: &crate::broker::Shutdown,
    run: &PeerRun,
    market: &Market,
    setup: &Setup,
    local: &[PeerId],
    limit: Duration,
) -> Result<Gathered, BrokerError> {
    // Every inbox once, here: each peer then declares only its own and its neighbours'.
    let launch = Launch {
        probe: Some(CLERK),
        declare: Some(crate::broker::op_limit(broker) * 4),
        expect: std::iter::once(Who::Clerk)
            .chain(market.ids().into_iter().map(Who::Peer))
            .collect(),
        limit,
        grace: Duration::from_secs(5),
    };
    let machines = |_: Instant| {
        let mut machines: Vec<(Member, Part)> =
            vec![(Member::Role(CLERK), Part::Clerk(setup.clerk(market)))];
        for p in market.peers.iter().filter(|p| local.contains(&p.id)) {
            machines.push((Member::Peer(p.id), Part::Peer(setup.peer(market, p))));
        }
        machines
    };
    let (decode, who) = (protocol::decode_report, Report::who);
    let ran = run_members(broker, run, shutdown, launch, machines, decode, who).await?;
    let (mut g, tally): (Gathered, Tally) = ran;
    (g.rejected_on_results, g.wall) = (tally.rejected, tally.wall);
    g.peers.sort_by_key(|r| r.id);
    Ok(g)
}

/// `sync-run market`.
pub async fn run(s: &Session, a: &MarketArgs) -> i32 {
    let shape = &a.shape;
    let seed = shape.seed.unwrap_or_else(rand::random);
    let market = market(shape, seed);
    for k in &a.external {
        if market.peer(*k).is_none() {
            usage_error(format!("--external {k}: the market has no peer {k}"));
        }
    }
    if let Some(path) = &a.save_graph {
        let text = serde_json::to_string_pretty(&market.to_file()).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            usage_error(format!("--save-graph {}: {e}", path.display()));
        }
    }
    let run_id = a.run_id.clone().unwrap_or_else(crate::cli::random_run_id);
    if !a.external.is_empty() {
        eprintln!(
            "market run {run_id}: start peer(s) {:?} with `sync-run market-peer --run-id {run_id} --id K --seed {seed}` and the same options",
            a.external
        );
    }
    let local: Vec<PeerId> = market
        .ids()
        .into_iter()
        .filter(|k| !a.external.contains(k))
        .collect();
    let run = peer_run(&run_id, &market);
    let setup = setup(&run_id, shape, seed);
    let g = match execute(
        &s.broker,
        &s.shutdown,
        &run,
        &market,
        &setup,
        &local,
        shape.run_timeout + Duration::from_secs(10),
    )
    .await
    {
        Ok(g) => g,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    let proof = super::verify(&setup.expect(&market), &g.peers, g.clerk.as_ref());
    let code = s.or_signal(proof.verdict.exit_code());
    if let Some(path) = &a.report {
        let d = super::diagram::diagram(&format!("market run {run_id}"), &g.peers);
        if let Err(e) = crate::verdict::spacetime::write(&d, path) {
            eprintln!("sync-run market: could not write {}: {e:#}", path.display());
        }
    }
    let rejected: u64 = g.peers.iter().map(|r| r.rejected).sum::<u64>()
        + g.clerk.as_ref().map_or(0, |c| c.rejected);
    if s.global.json {
        let doc = crate::verdict::Document::new(
            "market",
            &run_id,
            code,
            &proof.verdict,
            serde_json::json!({
                "seed": seed,
                "peers": market.ids().len(),
                "buyers": market.buyers(),
                "hop_count": shape.hop_count,
                "lookups": shape.lookups,
                "retries": shape.retries,
                "products": market.products,
                "figures": proof.figures,
                "rejected": rejected,
                "rejected_on_results": g.rejected_on_results,
                "wall_ms": g.wall.as_millis() as u64,
                "peak_rss_kib": crate::bench::peak_rss_kib(),
                "graph": market.to_file(),
                "reports": { "clerk": g.clerk, "peers": g.peers },
            }),
        );
        println!("{}", doc.to_json());
    } else if !s.global.quiet {
        // `-q` asks for the verdict alone: no table.
        print!("{}", table(&market, &g.peers));
    }
    if !s.global.quiet && !s.global.json {
        eprint!("{}", proof.verdict.lines());
    }
    eprintln!("{}", summary(&run_id, seed, &market, &g, &proof, rejected));
    code
}

/// The summary table on standard output: one line per peer, then the figures.
pub fn table(market: &Market, peers: &[PeerReport]) -> String {
    let mut t = comfy_table::Table::new();
    t.set_header([
        "peer",
        "role",
        "neighbours",
        "looked up",
        "bought",
        "told no",
        "sold",
        "stall",
        "outcome",
    ]);
    for spec in &market.peers {
        let Some(r) = peers.iter().find(|r| r.id == spec.id) else {
            t.add_row(vec![
                spec.id.to_string(),
                role(spec),
                join(&spec.neighbors),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "no report".into(),
            ]);
            continue;
        };
        // Lookups sent (a product's retries each count), as the JSON's `rounds` and the
        // `hop_counts` check count them; not the products set out for.
        let (looked, bought, no) = r.buyer.as_ref().map_or_else(Default::default, |b| {
            (
                b.rounds.len().to_string(),
                b.buys
                    .iter()
                    .filter(|x| x.sold == Some(true))
                    .count()
                    .to_string(),
                b.buys
                    .iter()
                    .filter(|x| x.sold == Some(false))
                    .count()
                    .to_string(),
            )
        });
        let (sold, stall) = r.stall.as_ref().map_or_else(Default::default, |s| {
            (
                s.ledger
                    .iter()
                    .filter(|e| matches!(e, super::report::Ledger::Sold { .. }))
                    .count()
                    .to_string(),
                format!("{} {}", s.stock, s.product),
            )
        });
        t.add_row(vec![
            r.id.to_string(),
            role(spec),
            join(&r.neighbors),
            looked,
            bought,
            no,
            sold,
            stall,
            r.outcome.to_string(),
        ]);
    }
    format!("{t}\n")
}

fn role(p: &PeerSpec) -> String {
    match p.role {
        Role::Buyer if p.wants.is_empty() => "buyer".into(),
        Role::Buyer => format!("buyer of {}", p.wants.join(",")),
        Role::Seller => format!("seller of {}", p.product.as_deref().unwrap_or("?")),
    }
}

fn join(ids: &[PeerId]) -> String {
    ids.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn summary(
    run_id: &str,
    seed: u64,
    market: &Market,
    g: &Gathered,
    proof: &super::Proof,
    rejected: u64,
) -> String {
    let f = &proof.figures;
    let ms = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.1} ms"));
    let figures = format!(
        "{} lookups by {} buyers, {} bought ({:.0} %){}, {} told no; lookup→reply p50 {}, lookup→purchase p50 {} p99 {}; {:.1} lookup messages per lookup (flooding bound {:.1}), {:.1} reply messages; {} junk message(s) rejected",
        f.lookups,
        market.buyers().len(),
        f.purchases,
        f.success_rate * 100.0,
        if f.late_purchases > 0 {
            format!(" and {} more by late yes answers", f.late_purchases)
        } else {
            String::new()
        },
        f.told_no,
        ms(f.lookup_to_reply_p50_ms),
        ms(f.lookup_to_purchase_p50_ms),
        ms(f.lookup_to_purchase_p99_ms),
        f.lookup_messages_per_lookup,
        f.flooding_bound_per_lookup,
        f.reply_messages_per_lookup,
        rejected,
    );
    match proof.verdict.failure_line() {
        None => format!(
            "{figures}\nVERIFIED: never oversold, every lookup within its hop count, every reply back along its path, purchases = yes answers (run {run_id}, {} peers, --seed {seed}, {:.3} s)",
            market.peers.len(),
            g.wall.as_secs_f64()
        ),
        Some(line) => format!("{figures}\n{line} (run {run_id}, --seed {seed})"),
    }
}

/// The peer `a` describes: from the shape's market, or from `--role` and what follows.
fn described(a: &PeerArgs, seed: u64) -> (Market, PeerSpec) {
    let Some(role) = a.role else {
        let m = market(&a.shape, seed);
        let Some(p) = m.peer(a.id).cloned() else {
            usage_error(format!("--id {}: the market has no peer {}", a.id, a.id));
        };
        return (m, p);
    };
    if a.neighbors.is_empty() {
        usage_error("--role: give the peer's --neighbors too");
    }
    let spec = PeerSpec {
        id: a.id,
        role,
        product: a.product.clone(),
        stock: (role == Role::Seller).then_some(a.shape.stock as i64),
        wants: a.wants.clone(),
        neighbors: a.neighbors.clone(),
    };
    let bad = |e: String| -> ! { usage_error(format!("--id {}: {e}", a.id)) };
    let mut products: std::collections::BTreeSet<String> =
        a.shape.products.iter().cloned().collect();
    match (role, &spec.product) {
        (Role::Seller, None) => bad("a seller needs --product".into()),
        (Role::Buyer, Some(_)) => bad("a buyer has no --product (use --wants)".into()),
        (Role::Seller, Some(_)) if !spec.wants.is_empty() => bad("a seller wants nothing".into()),
        _ => {}
    }
    for p in spec
        .product
        .iter()
        .chain(&spec.wants)
        .chain(&a.shape.products)
    {
        super::graph::check_product(p).unwrap_or_else(|e| bad(e));
        products.insert(p.clone());
    }
    if spec.neighbors.contains(&spec.id) {
        bad("a peer cannot neighbour itself".into());
    }
    let m = Market {
        peers: vec![spec.clone()],
        products: products.into_iter().collect(),
    };
    (m, spec)
}

/// `sync-run market-peer`: one peer, alone; prints how it ended.
pub async fn peer_alone(s: &Session, a: &PeerArgs) -> i32 {
    let seed = a.shape.seed.unwrap_or(0);
    if a.role.is_none() && a.shape.seed.is_none() && !matches!(a.shape.graph, GraphSpec::File(_)) {
        usage_error(
            "market-peer: give the run's --seed (printed by `sync-run market`), so that this peer draws the same market, or describe it with --role",
        );
    }
    let (m, spec) = described(a, seed);
    let mut run = peer_run(&a.run_id, &m);
    if a.role.is_some() {
        run.links = [(spec.id, spec.neighbors.clone())].into_iter().collect();
    }
    let setup = setup(&a.run_id, &a.shape, seed);
    // At its N-th lookup or buy: before it floods the lookup on, or sells.
    let at = match (a.crash_after_lookups, a.crash_after_buys) {
        (Some(n), _) => Some(("lookups", "lookup", n)),
        (None, Some(n)) => Some(("buys", "buy", n)),
        (None, None) => None,
    };
    let peer = CrashAt {
        inner: setup.peer(&m, &spec),
        at: at.map(|(option, kind, left)| Trigger {
            command: "market-peer",
            option,
            kind,
            passing: Passing::Delivered,
            left,
        }),
    };
    let say = |report: &PeerReport| {
        println!(
            "peer {} of market run {}: {}; {} lookups reached it, {} replies sent",
            spec.id,
            a.run_id,
            report.outcome,
            report.arrivals.len(),
            report.replied.len()
        );
    };
    let schema = "sync-run/market-peer/v1";
    let completed = |r: &PeerReport| r.outcome == PeerEnd::Closed;
    solo(s, &run, Member::Peer(spec.id), peer, schema, completed, say).await
}

/// `sync-run bench market`.
pub async fn bench(s: &Session, a: &super::cli::BenchArgs) -> i32 {
    super::bench::run(s, a).await
}
