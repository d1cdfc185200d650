//! The options of `sync-run serve NAME -- CMD`, `sync-run call NAME [JSON]` (one call, or
//! `--check`: C clients × K calls, proven) and `sync-run bench rpc`.

use super::protocol::validate_name;
use crate::cli::parse_duration;
use clap::Args;
use std::time::Duration;

fn parse_name(s: &str) -> Result<String, String> {
    validate_name(s).map(|_| s.to_owned())
}

const SERVE_HELP: &str = "\
Examples:
  sync-run serve upper -- tr a-z A-Z        answer each request on NAME `upper` with CMD's output
  sync-run serve echo --echo --concurrency 8
                                            answer with the request itself, 8 at a time
  sync-run call upper '\"hello\"'             then, anywhere: prints \"HELLO\"

Each request runs CMD once: the request body on its stdin, its stdout is the reply, its
stderr goes to ours; a CMD that exits non-zero or outlives --cmd-timeout is answered as an
error carrying its status and the last lines of its stderr. Several `serve` of one NAME
share its requests. Runs until Ctrl-C or SIGTERM (it finishes the requests it has, then
exits 130 or 143); exit 3 when the broker fails.";

/// `sync-run serve`.
#[derive(Debug, Args)]
#[command(after_help = SERVE_HELP)]
pub struct ServeArgs {
    /// The name to serve: requests go to the queue sync-run.rpc.NAME.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Answer each request with its own body (no CMD).
    #[arg(long, conflicts_with = "cmd")]
    pub echo: bool,
    /// How many requests this server handles at once (its prefetch, and how many CMDs
    /// run at the same time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// A CMD still running after this long is killed and the request answered as an
    /// error (`timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub cmd_timeout: Duration,
    /// How this server names itself in each reply's x-sync-run-server header
    /// [default: HOST:PID].
    #[arg(long)]
    pub server_id: Option<String>,
    /// The command that answers a request (after `--`; no shell: `sh -c '…'` for one).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

const CALL_HELP: &str = "\
Examples:
  sync-run call upper '\"hello\"'             prints the reply of whoever serves `upper`
  echo '{\"n\": 3}' | sync-run call work      the request body read from stdin
  sync-run call upper hi --json             the reply and its headers as one JSON document
  sync-run call demo --check --serve-echo 2 --clients 4 --calls 25
                                            2 echo servers here, 4 clients × 25 calls, proven

Exit codes:
  0    the reply came (printed on stdout as it is); with --check: every check passed
  1    the server answered with an error (its status and stderr tail on stderr);
       with --check: a check failed
  2    usage error
  3    broker error
  69   nobody serves NAME: the request came back unrouted, at once
  75   no reply within --timeout";

/// `sync-run call`.
#[derive(Debug, Args)]
#[command(after_help = CALL_HELP)]
pub struct CallArgs {
    /// The name to call (as given to `sync-run serve`).
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The request body, sent as given (JSON by convention, not parsed); `-` or none:
    /// read it from stdin.
    #[arg(value_name = "JSON", conflicts_with = "check")]
    pub body: Option<String>,
    /// How long a call waits for its reply.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Check mode: C clients × K calls against NAME's servers, each call's body unique;
    /// proves every call got exactly its own reply (see docs/rpc.md).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub load: Load,
}

/// The size of a `--check` run.
#[derive(Debug, Args, Clone)]
pub struct Load {
    /// --check: clients calling at once, each on a channel of its own.
    #[arg(long, default_value_t = 4, requires = "check", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub clients: u32,
    /// --check: calls each client makes, one after the other.
    #[arg(long, default_value_t = 25, requires = "check", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub calls: u32,
    /// --check: start S echo servers in this process for a self-contained run; their
    /// queue is named NAME plus the run id, and deleted at the end.
    #[arg(long, value_name = "S", requires = "check", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub serve_echo: Option<u32>,
    /// --check: broker one-hop samples measured first, the yardstick of the latency.
    #[arg(long, default_value_t = 200, requires = "check", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rtt_samples: u32,
}

/// `sync-run bench rpc`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Client counts to run, comma-separated (each a `call --check` against 2 echo
    /// servers).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub clients: Vec<u32>,
    /// Calls per client in each run.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub calls: u32,
    /// Echo servers in each run.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub servers: u32,
    #[command(flatten)]
    pub runs: crate::cli::BenchRuns,
}
