//! sync-run: a master and N workers agree on one list over RabbitMQ, and prove it.
//!
//! The crate is split the way the design card asks: a pure core and thin I/O.
//!
//! * [`protocol`] — the wire format and the names of a run's exchanges and queues.
//! * [`master`] and [`worker`] — the two roles as state machines: bytes and the current
//!   time in, messages out. No sockets, no clock reads, the RNG injected.
//! * [`verify`] — the checks that turn a run's record into a verdict.
//! * [`sim`] — a deterministic in-memory broker that drives the state machines under
//!   adversarial delivery orders, duplicates and crashes (tests and property tests).
//! * [`amqp`] — the lapin adapter that drives the same state machines against RabbitMQ.
//! * [`cli`] and [`report`] — options, validation, and what the user sees.

pub mod amqp;
pub mod bench;
pub mod cli;
pub mod master;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod run;
pub mod sim;
pub mod timeline;
pub mod verify;
pub mod worker;

/// Milliseconds on a monotonic clock chosen by the driver (the adapter uses time since the
/// process started; the simulator uses virtual time). The core never reads a clock.
pub type Millis = u64;

/// Where a message goes. The adapter maps each to an exchange and routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The run's fanout exchange: every worker's queue and the master's queue.
    Fanout,
    /// The direct exchange with key `master`: the master's queue.
    Master,
    /// The direct exchange with key `results`: the results queue.
    Results,
}

/// What a state machine wants done next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<F> {
    /// Publish this message (with a publisher confirm) before acknowledging its cause.
    Publish {
        route: Route,
        msg: protocol::Message,
    },
    /// This participant is done; nothing more will be published. `F` says how it ended.
    Finished(F),
}

/// The interface the drivers ([`amqp`] and [`sim`]) need from the master and the worker:
/// deliveries and time in, outputs out. Nothing in it reads a clock or touches a socket.
pub trait StateMachine {
    type Finished;
    /// One delivery. `Err`: reject it (the machine has counted and logged it).
    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), protocol::Rejection>;
    /// One delivery with the AMQP `user_id` the broker validated for its publisher, if it
    /// carried one. Machines that authenticate senders (a worker with `--master-user`)
    /// override this; the others ignore who published.
    fn handle_from(
        &mut self,
        now: Millis,
        bytes: &[u8],
        _publisher: Option<&str>,
    ) -> Result<(), protocol::Rejection> {
        self.handle(now, bytes)
    }
    /// When [`StateMachine::handle_timeout`] must run next, if ever.
    fn next_timeout(&self) -> Option<Millis>;
    /// Acts on every deadline that has passed at `now`.
    fn handle_timeout(&mut self, now: Millis);
    /// The next output, in order.
    fn poll_output(&mut self) -> Option<Output<Self::Finished>>;
    /// Stop now (Ctrl-C), ending with whatever the role does when interrupted.
    fn interrupt(&mut self, now: Millis, reason: String);
    /// The sender under which the driver may pack this machine's messages into one
    /// `batch` ([`protocol::coalesce`]); `None`: publish each on its own. Only the master
    /// batches: workers accept batches from the master alone.
    fn batches_as(&self) -> Option<protocol::Sender> {
        None
    }
}

/// Process exit codes, documented in the README and `--help`.
pub mod exit {
    /// Every check passed.
    pub const VERIFIED: i32 = 0;
    /// A check failed: lists disagree, an entry is missing, or the run did not finish.
    pub const FAILED: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// The broker could not be reached, refused the credentials or failed mid-run.
    pub const BROKER: i32 = 3;
    /// Every check passed for the surviving workers; some workers were evicted or lost
    /// (silent after `end`).
    pub const VERIFIED_WITH_EVICTIONS: i32 = 4;
    /// The run id is taken: another active master holds the run, or another worker of the
    /// run has this worker's id.
    pub const CONFLICT: i32 = 5;
    /// Interrupted by SIGHUP (after cleaning up): 128 + 1.
    pub const HANGUP: i32 = 129;
    /// Interrupted by Ctrl-C / SIGINT (after cleaning up): 128 + 2.
    pub const INTERRUPTED: i32 = 130;
    /// Stopped by SIGTERM (`timeout`, `docker stop`, systemd), after cleaning up: 128 + 15.
    pub const TERMINATED: i32 = 143;
}
