//! The dispatcher: the one place that names every algorithm. It builds `sync-run`'s
//! command line from each algorithm's own subcommands (`algorithms/<name>/command.rs`
//! exports `Command`, `Bench`, `dispatch` and `dispatch_bench`) and hands a parsed command
//! to its algorithm. It sits above the algorithms; [`crate::cli`] (the options every
//! command shares, the session, the usage errors) sits below them and names none.
//!
//! Adding an algorithm: its folder, and its name in the one list of `src/algorithms/mod.rs`;
//! nothing here changes.

use crate::algorithms::list::cli::{AllArgs, BenchArgs};
use crate::cli::{GlobalArgs, session, usage_error};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples, one per algorithm (each command's --help has more):
  sync-run --slaves 10                      list agreement: master + 10 workers in one process
  sync-run master --slaves 3 --run-id demo  its master alone; then `sync-run worker --run-id demo`
                                            three times, anywhere that reaches the broker
  sync-run mutex --processes 5 --entries 3  Ricart-Agrawala mutual exclusion, checked by
                                            vector clocks (mutex-process: one process)
  sync-run clocks --processes 3 --events 5  Lamport and vector clocks, checked against
                                            happened-before (clocks-process: one process)
  sync-run snapshot examples/snapshot-script.txt
                                            a Chandy-Lamport script: its lines on stdout,
                                            the verdict on stderr (snapshot-node: one node)
  sync-run bank examples/bank-input.json    replicated bank branches: the course's output,
                                            proven linearizable (bank-branch, bank-customer)
  sync-run market --peers 6                 a peer-to-peer market, never oversold
                                            (market-peer: one peer)
  sync-run lock NAME -- CMD                 hold a named lock while CMD runs; its fencing
                                            token in SYNC_RUN_FENCE (75 gave up, 76 lost)
  sync-run serve upper -- tr a-z A-Z        request/reply: answer each request on NAME
  sync-run call upper hello                 with CMD; call prints the reply (exit 69:
                                            nobody serves NAME, 75: no reply in time)
  sync-run call demo --check --serve-echo 2 C clients x K calls, each its own reply
  sync-run bench [mutex|snapshot|bank|market|lock|rpc]
                                            measure against the broker's own round trip
  sync-run --slaves 50 --seed 7 --json      any run: one JSON document on stdout
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
        The subcommands below run the other algorithms (mutual exclusion, logical clocks, \
        global snapshots, replicated bank branches, a peer-to-peer market, request/reply), each ending \
        with its own proof; see each one's --help.",
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

/// Declares `sync-run`'s subcommands and their dispatch from one list of algorithm
/// folders: each contributes its `Command` (flattened into [`Command`]) and its `Bench`
/// (flattened into [`BenchAlgorithm`], as `sync-run bench <algorithm>`).
macro_rules! algorithms {
    ($($alg:ident),* $(,)?) => {
        /// Every subcommand of `sync-run`: each algorithm's own, then `bench` and
        /// `completions`.
        #[derive(Debug, Subcommand)]
        #[allow(non_camel_case_types)]
        pub enum Command {
            $(
                #[command(flatten)]
                $alg(crate::algorithms::$alg::command::Command),
            )*
            /// Measure: full runs for several N against the broker's round trip, its raw
            /// fanout rate and the original protocol; prints a table, optionally JSON and an
            /// SVG plot. `sync-run bench <algorithm>` measures another algorithm instead.
            Bench(BenchCmd),
            /// Print a shell completion script, e.g. `sync-run completions bash > /etc/bash_completion.d/sync-run`.
            Completions {
                #[arg(value_enum)]
                shell: clap_complete::Shell,
            },
        }

        /// `sync-run bench <algorithm>`: each algorithm's bench.
        #[derive(Debug, Subcommand)]
        #[allow(non_camel_case_types)]
        pub enum BenchAlgorithm {
            $(
                #[command(flatten)]
                $alg(crate::algorithms::$alg::command::Bench),
            )*
        }

        /// Hands a parsed subcommand to its algorithm.
        async fn run(s: &session::Session, c: &Command) -> i32 {
            match c {
                $( Command::$alg(c) => crate::algorithms::$alg::command::dispatch(s, c).await, )*
                Command::Bench(BenchCmd { algorithm: None, list }) => {
                    crate::algorithms::list::command::bench(s, list).await
                }
                Command::Bench(BenchCmd { algorithm: Some(b), .. }) => match b {
                    $( BenchAlgorithm::$alg(b) => crate::algorithms::$alg::command::dispatch_bench(s, b).await, )*
                },
                // Printed before connecting (see `main`).
                Command::Completions { .. } => crate::exit::VERIFIED,
            }
        }
    };
}

// The algorithms, named once in `src/algorithms/mod.rs`.
crate::algorithms::each_algorithm!(algorithms);

/// `sync-run bench` (the list agreement) or `sync-run bench <algorithm>`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCmd {
    #[command(subcommand)]
    pub algorithm: Option<BenchAlgorithm>,
    #[command(flatten)]
    pub list: BenchArgs,
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

/// Parses the command line (after [`normalize_args`]); a usage error exits 2 here. The
/// subcommand that was given becomes the one whose usage every later usage error shows
/// ([`crate::cli::set_usage`]).
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Cli {
    let mut root = Cli::command();
    let matches = root.clone().get_matches_from(normalize_args(args));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    root.build();
    let mut leaf = root;
    let mut m = &matches;
    while let Some((name, sub)) = m.subcommand() {
        match leaf.find_subcommand(name) {
            Some(c) => leaf = c.clone(),
            None => break,
        }
        m = sub;
    }
    crate::cli::set_usage(leaf);
    cli
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> i32 {
    let mut global = cli.global;
    global.settle();
    let snapshot_script = matches!(
        &cli.command,
        Some(Command::snapshot(
            crate::algorithms::snapshot::command::Command::Snapshot(_)
        ))
    );
    if global.json_file().is_some() && !snapshot_script {
        usage_error(
            "--json FILE writes to a file only for `sync-run snapshot`; elsewhere --json prints to stdout (redirect it: --json > FILE)",
        );
    }
    let s = session::Session::new(global);
    match &cli.command {
        None => crate::algorithms::list::command::all(&s, &cli.all).await,
        Some(c) => run(&s, c).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::QueueType;

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
        assert!(matches!(
            cli.command,
            Some(Command::mutex(
                crate::algorithms::mutex::command::Command::Mutex(_)
            ))
        ));
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
}
