//! What every command's options share, below the algorithms: the global options
//! ([`GlobalArgs`]), the parsers (durations, run ids, SVG paths), run ids, usage errors,
//! the [`session`] every command runs in, and the runner of point-to-point algorithms'
//! commands ([`peers`]). It names no algorithm: the dispatcher ([`crate::app`]) does.
//! Every usage error exits with code 2 and a message that says what to do instead.

pub mod crash;
pub mod peers;
pub mod session;

use crate::broker::BrokerUrl;
use crate::contract::validate_run_id;
pub use crate::contract::{QueueType, Topology};
use clap::{Args, error::ErrorKind};
use std::sync::OnceLock;
use std::time::Duration;

/// Declares an algorithm's subcommands and their dispatch, for the dispatcher
/// ([`crate::app`]) to flatten into `sync-run`'s: `Command` (each variant's doc comment is
/// its `--help` line) with `dispatch`, and `Bench` (its `sync-run bench <algorithm>`, if
/// any) with `dispatch_bench`. Each handler is an `async fn(&Session, &Args) -> i32`.
#[macro_export]
macro_rules! subcommands {
    (
        commands: [ $( $(#[$doc:meta])* $variant:ident($args:ty) => $handler:path, )* ]
        bench: [ $( $(#[$bdoc:meta])* $bvariant:ident($bargs:ty) => $bhandler:path, )* ]
    ) => {
        /// This algorithm's subcommands of `sync-run`.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command { $( $(#[$doc])* $variant($args), )* }

        /// This algorithm's `sync-run bench <algorithm>` (none: an empty enum).
        #[derive(Debug, clap::Subcommand)]
        pub enum Bench { $( $(#[$bdoc])* $bvariant($bargs), )* }

        /// Runs one of this algorithm's subcommands; returns the exit code.
        pub async fn dispatch(s: &$crate::cli::session::Session, c: &Command) -> i32 {
            match c { $( Command::$variant(a) => $handler(s, a).await, )* }
        }

        /// Runs this algorithm's bench; returns the exit code.
        pub async fn dispatch_bench(s: &$crate::cli::session::Session, b: &Bench) -> i32 {
            let _ = s;
            match *b { $( Bench::$bvariant(ref a) => $bhandler(s, a).await, )* }
        }
    };
}

/// A fresh random run id, e.g. `r-5f1c09ab`.
pub fn random_run_id() -> String {
    use rand::RngCore;
    format!("r-{:08x}", rand::rng().next_u32())
}

/// The command whose usage a usage error shows: the subcommand that was given (set once,
/// by the dispatcher, right after parsing).
static USAGE: OnceLock<clap::Command> = OnceLock::new();

/// Makes `cmd` the command whose usage [`usage_error`] shows (`sync-run bank`'s for a bad
/// `bank` input, not the top level's).
pub fn set_usage(cmd: clap::Command) {
    let _ = USAGE.set(cmd);
}

/// Exits 2 with `msg` and the usage line of the command that was given, as clap does for
/// its own errors.
pub fn usage_error(msg: impl std::fmt::Display) -> ! {
    let mut cmd = USAGE
        .get()
        .cloned()
        .unwrap_or_else(|| clap::Command::new("sync-run"));
    cmd.error(ErrorKind::ValueValidation, msg).exit()
}

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Where a whole point-to-point run goes (`sync-run mutex`, `sync-run clocks`): its id and
/// which of its processes run in this process ([`peers::plan`]).
#[derive(Debug, Args)]
pub struct Placement {
    /// Run id: names every exchange and queue of the run [default: random].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Run only these process ids here, comma-separated (e.g. 1,2,3); start the others
    /// with the algorithm's `-process` command, `--run-id R --id K` and the same options
    /// [default: all of them].
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub local: Option<Vec<u32>>,
}

/// One process of a point-to-point run, started alone (`sync-run mutex-process`, …).
#[derive(Debug, Args)]
pub struct Joining {
    /// The run to join (as given to the whole run's `--run-id`).
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: String,
    /// This process's id, 1 to --processes.
    #[arg(long)]
    pub id: u32,
}

/// What every `sync-run bench <alg>` of a peer algorithm takes after its own sizes: how
/// finely the broker's one hop is measured and how long each run may take.
#[derive(Debug, Args)]
pub struct BenchRuns {
    /// Broker one-hop samples.
    #[arg(long, default_value_t = 1000)]
    pub rtt_samples: usize,
    /// Each run's time limit.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The options of one process started alone (`sync-run mutex-process`, …): the run's
/// `shape` (as the whole run was given it) and which run and id it joins.
#[derive(Debug, Args)]
pub struct ProcessArgs<S: Args> {
    #[command(flatten)]
    pub shape: S,
    #[command(flatten)]
    pub join: Joining,
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
        Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long a duration"))?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
