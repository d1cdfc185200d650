//! The options of `sync-run market` (a whole market), `sync-run market-peer` (one peer
//! alone, on any machine) and `sync-run bench market`.

use super::graph::{GraphSpec, Role, parse_graph};
use crate::cli::{parse_duration, parse_run_id};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `--hop-count`: 0 or more (a message that says so, not a parse error about digits).
fn parse_hop_count(s: &str) -> Result<u32, String> {
    match s.parse::<i64>() {
        Ok(h) if h < 0 => Err(format!(
            "{h} is negative: give 0 or more hops (0: a lookup goes nowhere)"
        )),
        Ok(h) if h > i64::from(super::protocol::MAX_HOPS) => Err(format!(
            "{h} is more than {} hops",
            super::protocol::MAX_HOPS
        )),
        Ok(h) => Ok(h as u32),
        Err(_) => Err(format!("{s:?} is not a whole number of hops")),
    }
}

/// What every participant of a run must agree on.
#[derive(Debug, Args, Clone)]
pub struct Shape {
    /// Peers in a generated market (`--graph ring` or `random:K`).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub peers: u32,
    /// Buyers among them, drawn with `--seed` [default: half the peers].
    #[arg(long)]
    pub buyers: Option<u32>,
    /// `ring`, `random:K` (connected, every peer with at least K neighbours) or a graph
    /// file (JSON naming every peer's role, product, stock and neighbours; docs/market.md).
    #[arg(long, default_value = "ring", value_parser = parse_graph)]
    pub graph: GraphSpec,
    /// How far a lookup travels: a peer this many hops from the buyer is the farthest
    /// that sees it.
    #[arg(long, default_value = "2", value_parser = parse_hop_count, allow_hyphen_values = true)]
    pub hop_count: u32,
    /// Items a seller puts on its stall (at the start, and at each restock when sold out).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub stock: u64,
    /// The products of the market, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "fish,salt,boar")]
    pub products: Vec<String>,
    /// Products each buyer sets out to buy, one after another.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub lookups: u32,
    /// New lookups for a product after every replier said no (or nobody replied).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub retries: u32,
    /// How long a buyer collects replies to a lookup before it picks a seller.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub reply_window: Duration,
    /// A buy not answered within this long is sent again (same request id).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub buy_retry: Duration,
    /// A seller that has not answered a buy within this long is given up on (the buyer
    /// tries the next replier); at the end a buyer waits up to 3 × this long for answers
    /// still owed, so that it hears of every sale made to it.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub buy_timeout: Duration,
    /// Seed of the generated graph, the roles and every peer's random picks [default:
    /// random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The whole run's limit: past it the clerk closes the market and every peer reports
    /// where it is.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub run_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct MarketArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// Run id: names every exchange and queue of the run [default: random].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Peers that run elsewhere (`sync-run market-peer --run-id R --id K` with the same
    /// options), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub external: Vec<u32>,
    /// Write a space-time diagram of the run (its first 12 peers) as SVG.
    #[arg(long, value_name = "FILE.svg", value_parser = crate::cli::parse_svg_path)]
    pub report: Option<PathBuf>,
    /// Also write the market (roles, products, stock, neighbours) as a graph file.
    #[arg(long, value_name = "FILE.json")]
    pub save_graph: Option<PathBuf>,
}

/// `sync-run market-peer`: the peer from the shape's market (`--id`), or described
/// alone (`--role` and the options after it).
#[derive(Debug, Args)]
pub struct PeerArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// The run to join (as given to `sync-run market --run-id`).
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: String,
    /// This peer's id.
    #[arg(long)]
    pub id: u32,
    /// Describe this peer here instead of taking it from the market: its role…
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// …a seller's product (its stock is `--stock`)…
    #[arg(long, requires = "role")]
    pub product: Option<String>,
    /// …a buyer's products to look up…
    #[arg(long, value_delimiter = ',', requires = "role")]
    pub wants: Vec<String>,
    /// …and its neighbours, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "role")]
    pub neighbors: Vec<u32>,
    /// Fault tests: the peer aborts its process (as `kill -9` would: no report) when the
    /// N-th lookup reaches it, before it acts on it.
    #[arg(long, hide = true, conflicts_with = "crash_after_buys")]
    pub crash_after_lookups: Option<u64>,
    /// Fault tests: a seller aborts its process when the N-th buy reaches it, before it
    /// acts on it (its buyer times out on it).
    #[arg(long, hide = true)]
    pub crash_after_buys: Option<u64>,
}

/// `sync-run bench market`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Market sizes to run, comma-separated (6 on a ring; the others on random:4).
    #[arg(long, value_delimiter = ',', default_value = "6,100,1000", value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub peers: Vec<u32>,
    /// Products each buyer sets out to buy.
    #[arg(long, default_value_t = 20)]
    pub lookups: u32,
    #[command(flatten)]
    pub runs: crate::cli::BenchRuns,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}
