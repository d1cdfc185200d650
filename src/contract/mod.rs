//! The core contract: what every role of every algorithm is, and what the drivers need
//! from it.
//!
//! A role is a state machine in the style of quinn-proto: deliveries (bytes) and the
//! current time go in, messages to publish come out, and it says when it next wants to be
//! woken. It never reads a clock, opens a socket or draws from an RNG it was not given.
//! That is why one algorithm-agnostic broker adapter ([`crate::broker`]) can drive it
//! against RabbitMQ and one deterministic simulator ([`crate::sim`]) can drive it under
//! hostile schedules, and why both exercise the very same code.

pub mod envelope;
pub mod fifo;
pub mod roles;

pub use envelope::{Body, EncodeError, Envelope, Sender};
pub(crate) use envelope::{body, process_report};

use std::fmt;

/// Milliseconds on a monotonic clock chosen by the driver (the adapter uses time since the
/// process started; the simulator uses virtual time). The core never reads a clock.
pub type Millis = u64;

/// The earliest of a machine's optional deadlines (its own timer, the run's deadline…):
/// what [`StateMachine::next_timeout`] answers, `None` when none is set.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Millis>>) -> Option<Millis> {
    deadlines.into_iter().flatten().min()
}

/// A participant's id within a run (a worker's id, a process's number).
pub type PeerId = u32;

/// Where a message goes. Each algorithm's wiring maps every route it uses to an exchange
/// and a routing key (or a simulated queue); routes it does not use are a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// To every participant of the run (the list agreement: its fanout exchange).
    Broadcast,
    /// To the run's coordinator (the list agreement: the master's queue).
    Coordinator,
    /// To the results queue, read by whoever renders the verdict.
    Results,
    /// To one participant, by id: its own inbox (point to point).
    Peer(PeerId),
    /// To the one participant that plays a named role in the run (the snapshot's
    /// `master` and `observer`): its own inbox, named for the role.
    Role(&'static str),
    /// To one client of the run, by id: its own inbox, apart from the peers' (the bank's
    /// customers, which call the branches request/reply and get their answers here).
    Client(PeerId),
}

/// A delivery a machine keeps unacknowledged ([`StateMachine::take_hold`]), named by the
/// machine: it is acknowledged when the machine releases it ([`Output::Release`]). A
/// machine that holds deliveries can leave content "in transit" on the broker until it
/// chooses to take it (the snapshot's channels), and a lost connection gives it all back.
pub type HoldId = u64;

/// Declares a setting every participant of a run must share (the list agreement's `start`
/// announces it): one set of derives, so its command-line value (clap), its wire name
/// (serde) and its display (strum) are the same snake_case word by construction.
macro_rules! run_choice {
    ($(#[$meta:meta])* pub enum $name:ident { $($variants:tt)* }) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Default,
            clap::ValueEnum,
            serde::Serialize,
            serde::Deserialize,
            strum::Display,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name { $($variants)* }
    };
}

run_choice! {
    /// How [`Route::Broadcast`] reaches its readers on the broker. Every participant of a run
    /// must use the same one (the list agreement's `start` announces it).
    pub enum Topology {
        /// One classic queue per worker, bound to the fanout: the broker stores and delivers a
        /// copy per worker, and deletes it once acknowledged. The default: it works with any
        /// RabbitMQ 3.x and at N=1000 within a stock broker's 1024 file descriptors.
        #[default]
        Queues,
        /// One stream (`sync-run.R.log`) bound to the fanout: stored once, read by every worker
        /// from its first message. Reading does not consume, so a reconnecting worker simply
        /// reads it again from the start. Faster to start (no queue to create per worker:
        /// N=100 in ≈ 0.2 s against ≈ 0.3 s), but every reader holds a file descriptor in the
        /// broker, so a stock broker (1024) runs out at about 850 workers. RabbitMQ 3.9+.
        Stream,
    }
}

run_choice! {
    /// The type of a run's queues on the broker. Every participant of a run must use the same
    /// one (the list agreement's `start` announces it; a queue re-declared with another type is
    /// refused by the broker).
    pub enum QueueType {
        /// A classic queue: it lives on the one node that declared it. Fast and cheap; on a
        /// cluster, losing that node loses the queue and the run (exit 3).
        #[default]
        Classic,
        /// A quorum queue: replicated by Raft over the cluster's nodes (three by default) and
        /// always durable, so a run survives losing a minority of them. RabbitMQ 3.8+.
        Quorum,
    }
}

/// Checks a run id: 1 to 64 characters from `[A-Za-z0-9_-]`, starting with a letter or a
/// digit, so it is safe in queue names, cannot contain the `.` that separates the parts of
/// a name, and can never be taken for an option on a command line.
pub fn validate_run_id(id: &str) -> Result<(), String> {
    let name = Name {
        what: "run id",
        also: &['-', '_'],
        use_only: "letters, digits, '-' and '_'",
        start_why: " (so that it is never read as an option)",
    };
    name.validate(id)
}

/// The rules of a name that goes into queue names and onto command lines (a run id, a
/// request/reply NAME): 1 to 64 characters, ASCII letters, digits and the few `also`,
/// starting with a letter or a digit. One rule, so that the names and their errors agree.
pub struct Name<'a> {
    /// What the errors call it.
    pub what: &'a str,
    /// The characters allowed besides letters and digits.
    pub also: &'a [char],
    /// The allowed characters, as the error lists them.
    pub use_only: &'a str,
    /// Said after "must start with a letter or a digit".
    pub start_why: &'a str,
}

impl Name<'_> {
    /// `s` if it follows the rules; else what is wrong, said for a user.
    pub fn validate(&self, s: &str) -> Result<(), String> {
        let what = self.what;
        if s.is_empty() || s.len() > 64 {
            return Err(format!(
                "{what} {s:?} must be 1 to 64 characters long (got {})",
                s.len()
            ));
        }
        let allowed = |c: &char| c.is_ascii_alphanumeric() || self.also.contains(c);
        if let Some(c) = s.chars().find(|c| !allowed(c)) {
            return Err(format!(
                "{what} {s:?} contains {c:?}; use {} only",
                self.use_only
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "{what} {s:?} must start with a letter or a digit{}",
                self.start_why
            ));
        }
        Ok(())
    }
}

/// What a state machine wants done next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<M, F> {
    /// Publish this message (with a publisher confirm) before acknowledging its cause.
    Publish { route: Route, msg: M },
    /// This participant is done; nothing more will be published. `F` says how it ended.
    Finished(F),
    /// Acknowledge the held delivery `HoldId` once everything published in the same step
    /// (before or after this output) is confirmed: the drivers acknowledge after the whole
    /// step's messages. Releasing a hold that a lost connection voided (see
    /// [`StateMachine::link_lost`]) does nothing: the broker delivers it again.
    Release(HoldId),
}

impl<M, F> Output<M, F> {
    /// The same output with its outcome turned into another type: a machine type made of
    /// several roles (one per variant) reports each role's outcome as its own.
    pub fn map_finished<G>(self, f: impl FnOnce(F) -> G) -> Output<M, G> {
        match self {
            Output::Publish { route, msg } => Output::Publish { route, msg },
            Output::Finished(x) => Output::Finished(f(x)),
            Output::Release(h) => Output::Release(h),
        }
    }
}

/// A message as the drivers handle it: bytes on the wire and a short name for logs,
/// counters and the AMQP `type` property.
pub trait Wire {
    /// The body as published. A message that cannot be written is an error the drivers
    /// report, never an empty body on the wire.
    fn encode(&self) -> Result<Vec<u8>, envelope::EncodeError>;
    /// The message's type (`"grant"`, `"request"`, …).
    fn kind(&self) -> &'static str;
}

/// Why a participant refused a delivery. Every rejection is counted and logged; none stops
/// the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The body is larger than the algorithm accepts: (size, limit).
    TooLarge(usize, usize),
    /// Not a message of this algorithm at all.
    Malformed(String),
    /// A protocol version other than the one spoken: (found, expected).
    Version(Option<u32>, u32),
    /// A message of another run.
    WrongRun(String),
    /// Well-formed, but not acceptable here (wrong sender, not granted, fenced, out of range…).
    Refused(String),
}

impl Rejection {
    /// A short stable label for counters.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::TooLarge(..) => "too_large",
            Rejection::Malformed(_) => "malformed",
            Rejection::Version(..) => "version",
            Rejection::WrongRun(_) => "wrong_run",
            Rejection::Refused(_) => "refused",
        }
    }
}

/// A [`Rejection::Refused`]: well formed, but not acceptable here. The one way the cores
/// say so (`Err(refused(format!(…)))`), from a `String` or a `&str`.
pub fn refused(why: impl Into<String>) -> Rejection {
    Rejection::Refused(why.into())
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooLarge(n, max) => write!(f, "body of {n} bytes exceeds {max}"),
            Rejection::Malformed(e) => write!(f, "not a sync-run message: {e}"),
            Rejection::Version(Some(v), want) => {
                write!(f, "protocol version {v}, expected {want}")
            }
            Rejection::Version(None, _) => write!(f, "no protocol version"),
            Rejection::WrongRun(r) => write!(f, "message of run {r:?}"),
            Rejection::Refused(why) => f.write_str(why),
        }
    }
}

/// The interface the drivers ([`crate::broker`] and [`crate::sim`]) need from a role:
/// deliveries and time in, outputs out. Nothing in it reads a clock or touches a socket.
pub trait StateMachine {
    /// What the role publishes.
    type Msg: Wire;
    /// How the role ended (its report).
    type Finished;
    /// One delivery. `Err`: reject it (the machine has counted and logged it).
    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection>;
    /// One delivery with the AMQP `user_id` the broker validated for its publisher, if it
    /// carried one. Machines that authenticate senders override this; the others ignore
    /// who published.
    fn handle_from(
        &mut self,
        now: Millis,
        bytes: &[u8],
        _publisher: Option<&str>,
    ) -> Result<(), Rejection> {
        self.handle(now, bytes)
    }
    /// When [`StateMachine::handle_timeout`] must run next, if ever.
    fn next_timeout(&self) -> Option<Millis>;
    /// Acts on every deadline that has passed at `now`.
    fn handle_timeout(&mut self, now: Millis);
    /// The next output, in order.
    fn poll_output(&mut self) -> Option<Output<Self::Msg, Self::Finished>>;
    /// Stop now (Ctrl-C), ending with whatever the role does when interrupted.
    fn interrupt(&mut self, now: Millis, reason: String);
    /// Called by the driver right after [`StateMachine::handle`] accepted a delivery:
    /// `Some(id)` keeps that delivery unacknowledged until the machine emits
    /// [`Output::Release`]`(id)`. The default never holds (every accepted delivery is
    /// acknowledged once its effects are confirmed).
    fn take_hold(&mut self) -> Option<HoldId> {
        None
    }
    /// The connection that carried the held deliveries is gone: the broker will deliver
    /// every one of them again (in their queue's order), so the machine forgets the holds
    /// (not the messages' effects it has already applied).
    fn link_lost(&mut self) {}
    /// Packs one step's messages for publishing, at most `max` to a packet, keeping their
    /// order per route (the list agreement's master sends `batch` messages). The default
    /// publishes each message on its own.
    fn pack(&self, step: Vec<(Route, Self::Msg)>, _max: usize) -> Vec<(Route, Self::Msg)> {
        step
    }
}

/// Most messages a machine may pack into one publish (see [`StateMachine::pack`]): the
/// broker adapter and the simulator pack alike, so a schedule in the simulator is one the
/// broker can produce.
pub const PACK_LIMIT: usize = 256;

/// Takes everything a machine has to say after a step: what it publishes (packed as the
/// machine allows, at most `max` to a packet) and its outcome if it finished. For
/// machines that never hold a delivery; the drivers use [`drain_with_releases`].
pub fn drain<M: StateMachine>(
    m: &mut M,
    finished: &mut Option<M::Finished>,
    max: usize,
) -> Vec<(Route, M::Msg)> {
    drain_with_releases(m, finished, max, &mut Vec::new())
}

/// [`drain`], and the holds the machine released in this step appended to `released`:
/// the driver acknowledges them after this step's messages are confirmed.
pub fn drain_with_releases<M: StateMachine>(
    m: &mut M,
    finished: &mut Option<M::Finished>,
    max: usize,
    released: &mut Vec<HoldId>,
) -> Vec<(Route, M::Msg)> {
    let mut step = Vec::new();
    while let Some(out) = m.poll_output() {
        match out {
            Output::Publish { route, msg } => step.push((route, msg)),
            Output::Finished(f) => *finished = Some(f),
            Output::Release(h) => released.push(h),
        }
    }
    m.pack(step, max)
}
