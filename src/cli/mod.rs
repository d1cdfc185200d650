//! Command-line options and their validation. Every usage error exits with code 2 and a
//! message that says what to do instead.

pub mod peers;
pub mod session;

use crate::algorithms::list::cli::{AllArgs, BenchArgs, MasterArgs, WorkerArgs};
use crate::broker::BrokerUrl;
use crate::contract::validate_run_id;
pub use crate::contract::{QueueType, Topology};
use clap::{Args, CommandFactory, Parser, Subcommand, error::ErrorKind};
use std::time::Duration;

/// A fresh random run id, e.g. `r-5f1c09ab`.
pub fn random_run_id() -> String {
    use rand::RngCore;
    format!("r-{:08x}", rand::rng().next_u32())
}

/// Exits 2 with `msg` and the usage line, as clap does for its own errors.
pub fn usage_error(msg: impl std::fmt::Display) -> ! {
    Cli::command().error(ErrorKind::ValueValidation, msg).exit()
}

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

const AFTER_HELP: &str = "\
Examples:
  sync-run --slaves 10                      master + 10 workers in one process
  sync-run --slaves 50 --seed 7 --json      reproducible run, one JSON document on stdout
  sync-run master --slaves 3 --run-id demo  the master alone (start workers anywhere)
  sync-run worker --run-id demo --id 1      one worker (repeat with --id 2, 3)
  sync-run --slaves 20 --report run.svg     and a timeline picture of the run
  sync-run --slaves 100 --window 1          strictly turn by turn (no pipelining)
  sync-run bench --sizes 10,100             measure against the broker and the original
  sync-run mutex --processes 5 --entries 3  Ricart–Agrawala mutual exclusion, checked by
                                            vector clocks (mutex-process: one process)
  sync-run clocks --processes 3 --events 5  Lamport and vector clocks, checked against
                                            happened-before (clocks-process: one process)
  sync-run bench mutex                      handover and entries/s against the broker
  sync-run snapshot script.txt --seed 1     a Chandy–Lamport script: its lines on stdout,
                                            the verdict on stderr (snapshot-node: one node)
  sync-run snapshot --nodes 10 --transfers 50 --snapshots 3 --concurrent
                                            random transfers, snapshots taken meanwhile
  sync-run completions bash                 shell completions

Exit codes:
  0    verified: every check passed (all lists identical; no two critical sections
       overlapped; the clocks characterise happened-before)
  1    a check failed (lists differ, entries missing, a process went silent) or the run
       did not finish
  2    usage error (bad option or value; a worker not started with the run's options)
  3    broker error: unreachable, not AMQP, credentials refused, or lost mid-run
  4    verified for the surviving workers, but some workers were evicted or lost
  5    conflict: another master holds the run id, or another worker has this --id
  129  stopped by SIGHUP, 130 by Ctrl-C (SIGINT), 143 by SIGTERM: the run's queues and
       exchanges are deleted first";

#[derive(Debug, Parser)]
#[command(
    name = "sync-run",
    version,
    about = "Coordination algorithms over RabbitMQ, each proven by a checker at the end of every run.",
    long_about = "Coordination algorithms over RabbitMQ, each proven by a checker at the end of every run.\n\n\
        The default command is the list agreement: a master and N workers agree on one list. \
        Workers join; turn by turn the master grants one worker that has not written yet, \
        chosen at random; the granted worker publishes a random number and every worker \
        places it by its sequence number. At the end every worker reports its list and \
        sync-run checks that all lists are identical and match the grant order. \
        `sync-run mutex` and `sync-run clocks` run the other algorithms (see their --help).",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run the master and the workers in this process (the default command).
    #[command(flatten)]
    pub all: AllArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the master: wait for --slaves workers, run the turns, verify their lists.
    Master(MasterArgs),
    /// Run only one worker of the run named by --run-id.
    Worker(WorkerArgs),
    /// Measure: full runs for several N against the broker's round trip, its raw fanout
    /// rate and the original protocol; prints a table, optionally JSON and an SVG plot.
    /// `sync-run bench mutex` measures mutual exclusion instead.
    Bench(BenchCmd),
    /// Ricart–Agrawala mutual exclusion with Lamport and vector clocks: N processes each
    /// enter a critical section K times; safety is proven from the vector clocks alone.
    Mutex(crate::algorithms::mutex::cli::MutexArgs),
    /// One process of a mutual-exclusion run (start the others anywhere).
    MutexProcess(crate::algorithms::mutex::cli::ProcessArgs),
    /// The logical-clock exercise: N processes, random messages, every event stamped with
    /// Lamport and vector clocks; happened-before rebuilt and checked against them.
    Clocks(crate::algorithms::clocks::cli::ClocksArgs),
    /// One process of a logical-clock run (start the others anywhere).
    ClocksProcess(crate::algorithms::clocks::cli::ProcessArgs),
    /// Chandy–Lamport global snapshots of a bank: run a command script (`sync-run snapshot
    /// SCRIPT.txt`, the course's language and print format) or random transfers with
    /// snapshots taken while they go on (`--nodes N`).
    Snapshot(crate::algorithms::snapshot::cli::SnapshotArgs),
    /// One node of a snapshot run (start it anywhere; the script's master drives it).
    SnapshotNode(crate::algorithms::snapshot::cli::NodeArgs),
    /// Replicated bank branches (the course's JSON input and output): customers call any
    /// branch, every operation in one total order, never overdrawn, proven linearizable.
    Bank(crate::algorithms::bank::cli::BankArgs),
    /// One branch of a bank run (start it anywhere, with the run's input file).
    BankBranch(crate::algorithms::bank::cli::AloneArgs),
    /// One customer of a bank run (start it anywhere, with the run's input file).
    BankCustomer(crate::algorithms::bank::cli::AloneArgs),
    /// A peer-to-peer market: buyers flood lookups with a hop count, sellers reply back
    /// along the path, buyers buy directly; never oversold, proven from the reports.
    Market(crate::algorithms::market::cli::MarketArgs),
    /// One peer of a market run (start it anywhere, with the run's options and --seed, or
    /// described with --role).
    MarketPeer(crate::algorithms::market::cli::PeerArgs),
    /// Print a shell completion script, e.g. `sync-run completions bash > /etc/bash_completion.d/sync-run`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `sync-run bench` (the list agreement) or `sync-run bench <algorithm>`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCmd {
    #[command(subcommand)]
    pub algorithm: Option<BenchAlgorithm>,
    #[command(flatten)]
    pub list: BenchArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchAlgorithm {
    /// Mutual exclusion: entries per second, the handover time (one process's exit → the
    /// next one's entry) and messages per entry at several N, beside the broker's one hop.
    Mutex(crate::algorithms::mutex::cli::BenchArgs),
    /// Chandy–Lamport snapshots: the latency from BeginSnapshot to every state collected,
    /// markers per snapshot, at several N on a complete graph with transfers going on.
    Snapshot(crate::algorithms::snapshot::cli::BenchArgs),
    /// The replicated bank: operations per second and latency at 3 and 10 branches with
    /// 100 concurrent customers, memory with --no-record, beside the broker's one hop.
    Bank(crate::algorithms::bank::cli::BenchArgs),
    /// The market: lookup→purchase latency, success rate and messages per lookup against
    /// the flooding bound, at 6, 100 and 1,000 peers, beside the broker's one hop.
    Market(crate::algorithms::market::cli::BenchArgs),
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Broker URL (the password is never printed). A cluster: several URLs, comma-separated
    /// or the option repeated (in one place of the command line); a participant connects to the first that answers (in an
    /// order shuffled per participant, so load spreads over the nodes) and, when its
    /// connection is lost, to the next.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = DEFAULT_URL,
        global = true,
        hide_env_values = true,
        action = clap::ArgAction::Append
    )]
    pub amqp_url: Vec<String>,
    /// How long to wait for the broker to answer a connection attempt (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    pub connect_timeout: Duration,
    /// Durable exchanges and queues and persistent messages, so a run survives a broker
    /// restart. Every participant of a run must agree on it.
    #[arg(long, global = true)]
    pub durable: bool,
    /// How the run's broadcasts reach the workers: `queues`, one queue per worker bound to
    /// the fanout exchange; or `stream`, one RabbitMQ stream bound to it that every worker
    /// reads (one stored copy; a reconnecting worker replays it from the start; faster to
    /// start; RabbitMQ 3.9+ and a file descriptor in the broker per worker). Every
    /// participant of a run must agree on it.
    #[arg(long, global = true, value_enum, default_value_t = Topology::Queues)]
    pub topology: Topology,
    /// The run's queues: `classic` (on the one node that declared each) or `quorum`
    /// (replicated over a cluster's nodes by Raft, always durable: a run survives losing a
    /// node; RabbitMQ 3.8+). Every participant of a run must agree on it.
    #[arg(long, global = true, value_enum, default_value_t = QueueType::Classic)]
    pub queue_type: QueueType,
    /// Print one JSON document on stdout instead of the table. `sync-run snapshot SCRIPT`
    /// takes `--json FILE` (its standard output is the script's lines, exactly).
    #[arg(long = "json", global = true, num_args = 0..=1, value_name = "FILE")]
    pub json_to: Option<Option<std::path::PathBuf>>,
    /// `--json` was given (set from `json_to` by [`GlobalArgs::settle`]).
    #[arg(skip)]
    pub json: bool,
    /// Print only the verdict line (and errors).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

pub fn parse_svg_path(s: &str) -> Result<std::path::PathBuf, String> {
    if !s.to_ascii_lowercase().ends_with(".svg") {
        return Err(format!(
            "{s:?}: the report is an SVG picture; give a file name ending in .svg"
        ));
    }
    Ok(std::path::PathBuf::from(s))
}

pub fn parse_run_id(s: &str) -> Result<String, String> {
    validate_run_id(s).map(|_| s.to_owned())
}

/// [`parse_duration`], and zero (`0`, `0s`, `0ms`) too.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.parse::<f64>().is_ok_and(|x| x == 0.0) || t == "0s" || t == "0ms" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// `30s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = if let Ok(secs) = s.trim().parse::<f64>() {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("{s:?} must be a positive duration"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 500ms or 2m"))?
    };
    if d.is_zero() {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(d)
}

impl GlobalArgs {
    /// Derives the plain flags from what clap parsed (`--json [FILE]` → `json`).
    pub fn settle(&mut self) {
        self.json = self.json_to.is_some();
    }

    /// The file `--json FILE` names, if any.
    pub fn json_file(&self) -> Option<&std::path::Path> {
        self.json_to.as_ref().and_then(|f| f.as_deref())
    }

    pub fn broker_url(&self) -> Result<BrokerUrl, String> {
        BrokerUrl::parse(&self.amqp_url.join(","))
    }
}

/// The command line as clap should read it. `--json` takes an optional FILE (for
/// `sync-run snapshot SCRIPT`), so clap would read a word after it as that file:
/// `sync-run --json mutex …` would lose its command. A `--json` followed by a command's
/// name is moved to the end of the line, where it is the plain flag it was meant to be.
pub fn normalize_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut out = Vec::with_capacity(args.len());
    let mut moved = false;
    for (i, a) in args.iter().enumerate() {
        let before_command = a == "--json"
            && args
                .get(i + 1)
                .and_then(|n| n.to_str())
                .is_some_and(|n| names.iter().any(|c| c == n));
        if before_command {
            moved = true;
        } else {
            out.push(a.clone());
        }
    }
    if moved {
        out.push("--json".into());
    }
    out
}

/// Runs the parsed command; returns the process exit code. One line per command: adding an
/// algorithm adds its commands here and nothing else outside its folder.
pub async fn dispatch(cli: Cli) -> i32 {
    use crate::algorithms::{bank, clocks, list, market, mutex, snapshot};
    let mut global = cli.global;
    global.settle();
    if global.json_file().is_some() && !matches!(cli.command, Some(Command::Snapshot(_))) {
        usage_error(
            "--json FILE writes to a file only for `sync-run snapshot`; elsewhere --json prints to stdout (redirect it: --json > FILE)",
        );
    }
    let s = session::Session::new(global);
    match &cli.command {
        None => list::command::all(&s, &cli.all).await,
        Some(Command::Master(m)) => list::command::master(&s, m).await,
        Some(Command::Worker(w)) => list::command::worker(&s, w).await,
        Some(Command::Bench(b)) => match &b.algorithm {
            None => list::command::bench(&s, &b.list).await,
            Some(BenchAlgorithm::Mutex(a)) => mutex::command::bench(&s, a).await,
            Some(BenchAlgorithm::Snapshot(a)) => snapshot::command::bench(&s, a).await,
            Some(BenchAlgorithm::Bank(a)) => bank::command::bench(&s, a).await,
            Some(BenchAlgorithm::Market(a)) => market::command::bench(&s, a).await,
        },
        Some(Command::Mutex(a)) => mutex::command::run(&s, a).await,
        Some(Command::MutexProcess(a)) => mutex::command::process_alone(&s, a).await,
        Some(Command::Clocks(a)) => clocks::command::run(&s, a).await,
        Some(Command::ClocksProcess(a)) => clocks::command::process_alone(&s, a).await,
        Some(Command::Snapshot(a)) => snapshot::command::run(&s, a).await,
        Some(Command::SnapshotNode(a)) => snapshot::command::node_alone(&s, a).await,
        Some(Command::Bank(a)) => bank::command::run(&s, a).await,
        Some(Command::BankBranch(a)) => bank::command::branch_alone(&s, a).await,
        Some(Command::BankCustomer(a)) => bank::command::customer_alone(&s, a).await,
        Some(Command::Market(a)) => market::command::run(&s, a).await,
        Some(Command::MarketPeer(a)) => market::command::peer_alone(&s, a).await,
        // Printed before connecting (see main).
        Some(Command::Completions { .. }) => crate::exit::VERIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn json_before_a_command_stays_a_flag() {
        let parse = |line: &[&str]| {
            let args = normalize_args(line.iter().map(std::ffi::OsString::from));
            let mut cli = Cli::try_parse_from(args).expect("parses");
            cli.global.settle();
            cli
        };
        let cli = parse(&["sync-run", "--json", "mutex", "-n", "2", "-k", "1"]);
        assert!(cli.global.json && cli.global.json_file().is_none());
        assert!(matches!(cli.command, Some(Command::Mutex(_))));
        let cli = parse(&["sync-run", "snapshot", "s.txt", "--json", "out.json"]);
        assert_eq!(
            cli.global.json_file(),
            Some(std::path::Path::new("out.json"))
        );
        let cli = parse(&["sync-run", "--slaves", "3", "--json"]);
        assert!(cli.global.json && cli.global.json_file().is_none());
    }

    #[test]
    fn several_broker_urls_make_one_list() {
        let urls = |line: &[&str]| {
            let cli = Cli::try_parse_from(line).expect("parses");
            cli.global.broker_url().expect("valid URLs").nodes().len()
        };
        let (a, b) = ("amqp://u:p@h1:5681/%2f", "amqp://u:p@h2:5682/%2f");
        assert_eq!(urls(&["sync-run", "--amqp-url", a, "--slaves", "1"]), 1);
        let both = format!("{a},{b}");
        assert_eq!(urls(&["sync-run", "--amqp-url", &both, "--slaves", "1"]), 2);
        assert_eq!(
            urls(&[
                "sync-run",
                "--amqp-url",
                a,
                "--amqp-url",
                b,
                "--slaves",
                "1"
            ]),
            2
        );
        let cli = Cli::try_parse_from(["sync-run", "--queue-type", "quorum", "--slaves", "1"])
            .expect("parses");
        assert_eq!(cli.global.queue_type, QueueType::Quorum);
        assert!(
            Cli::try_parse_from(["sync-run", "--queue-type", "lazy", "--slaves", "1"]).is_err()
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
