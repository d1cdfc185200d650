//! `--crash-after-…` (hidden options of the commands that run one participant alone): a
//! participant that aborts its process when its N-th message of a kind passes, for fault
//! tests. A crash in the middle of a run by construction — deliveries handled and not yet
//! acknowledged, a sale or a reply half done — never by sleeping and hoping. One wrapper,
//! so every algorithm's crash is the same abort at the same kind of moment.

use crate::contract::{HoldId, Millis, Output, Rejection, Route, StateMachine, Wire};

/// Where the counted messages pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passing {
    /// Arriving, before the machine acts on it (by its `type` field).
    Delivered,
    /// Leaving, when the machine is about to publish it (by its kind).
    Published,
}

/// When to abort: at the `left`-th message of `kind` passing `passing`.
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    /// The command, for the message on stderr (`bank-branch`).
    pub command: &'static str,
    /// The option's name after `--crash-after-` (`replies`).
    pub option: &'static str,
    /// The message's type (`reply`).
    pub kind: &'static str,
    pub passing: Passing,
    /// How many more messages of `kind` until the crash.
    pub left: u64,
}

/// `inner`, aborting the process at its trigger (none: never).
pub struct CrashAt<M> {
    pub inner: M,
    pub at: Option<Trigger>,
}

impl<M> CrashAt<M> {
    /// Counts one message of `kind` passing `passing`; aborts when it is the last one.
    fn count(&mut self, passing: Passing, kind: &str) {
        if let Some(t) = &mut self.at
            && t.passing == passing
            && t.kind == kind
        {
            t.left = t.left.saturating_sub(1);
            if t.left == 0 {
                eprintln!(
                    "sync-run {}: --crash-after-{} reached: aborting",
                    t.command, t.option
                );
                std::process::abort();
            }
        }
    }
}

impl<M: StateMachine> StateMachine for CrashAt<M> {
    type Msg = M::Msg;
    type Finished = M::Finished;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if self.at.is_some_and(|t| t.passing == Passing::Delivered) {
            let v = serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_default();
            if let Some(kind) = v["type"].as_str() {
                self.count(Passing::Delivered, kind);
            }
        }
        self.inner.handle(now, bytes)
    }
    fn next_timeout(&self) -> Option<Millis> {
        self.inner.next_timeout()
    }
    fn handle_timeout(&mut self, now: Millis) {
        self.inner.handle_timeout(now)
    }
    fn poll_output(&mut self) -> Option<Output<Self::Msg, Self::Finished>> {
        let out = self.inner.poll_output()?;
        if let Output::Publish { msg, .. } = &out {
            self.count(Passing::Published, msg.kind());
        }
        Some(out)
    }
    fn interrupt(&mut self, now: Millis, reason: String) {
        self.inner.interrupt(now, reason)
    }
    fn take_hold(&mut self) -> Option<HoldId> {
        self.inner.take_hold()
    }
    fn link_lost(&mut self) {
        self.inner.link_lost()
    }
    fn pack(&self, step: Vec<(Route, Self::Msg)>, max: usize) -> Vec<(Route, Self::Msg)> {
        self.inner.pack(step, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishes one `"ping"` per delivery; counts what it handled.
    struct Echo {
        out: Vec<Output<Ping, ()>>,
        handled: u32,
    }

    #[derive(Debug)]
    struct Ping;

    impl Wire for Ping {
        fn encode(&self) -> Result<Vec<u8>, crate::contract::EncodeError> {
            Ok(br#"{"type":"ping"}"#.to_vec())
        }
        fn kind(&self) -> &'static str {
            "ping"
        }
    }

    impl StateMachine for Echo {
        type Msg = Ping;
        type Finished = ();
        fn handle(&mut self, _: Millis, _: &[u8]) -> Result<(), Rejection> {
            self.handled += 1;
            self.out.push(Output::Publish {
                route: Route::Broadcast,
                msg: Ping,
            });
            Ok(())
        }
        fn next_timeout(&self) -> Option<Millis> {
            None
        }
        fn handle_timeout(&mut self, _: Millis) {}
        fn poll_output(&mut self) -> Option<Output<Ping, ()>> {
            self.out.pop()
        }
        fn interrupt(&mut self, _: Millis, _: String) {}
    }

    /// A trigger not reached, or on another kind, passes everything through untouched
    /// (reaching one aborts the process: the fault tests prove that end to end).
    #[test]
    fn short_of_its_trigger_it_is_the_machine_itself() {
        for (passing, kind) in [
            (Passing::Delivered, "ping"),
            (Passing::Published, "ping"),
            (Passing::Delivered, "pong"),
        ] {
            let at = Trigger {
                command: "test",
                option: "pings",
                kind,
                passing,
                left: 3,
            };
            let mut m = CrashAt {
                inner: Echo {
                    out: Vec::new(),
                    handled: 0,
                },
                at: Some(at),
            };
            for _ in 0..2 {
                assert_eq!(m.handle(0, br#"{"type":"ping"}"#), Ok(()));
                assert!(matches!(m.poll_output(), Some(Output::Publish { .. })));
            }
            assert_eq!(m.inner.handled, 2);
            let left = m.at.map(|t| t.left);
            assert_eq!(left, Some(if kind == "ping" { 1 } else { 3 }));
        }
    }
}
