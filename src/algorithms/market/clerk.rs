//! The clerk: the one participant that knows when the market opens and when it is over.
//! Every peer tells it when it is consuming its inbox; once all are, it opens the market
//! (`open`: buyers start, so no lookup waits on a peer still starting). Buyers tell it
//! when they have done all their lookups; once every buyer has (or `--run-timeout`
//! passed) it closes the market: every peer gets `close` and reports. It takes no part in trading,
//! so no trading check reads it; `reported` and `buyers_finished` use its report to say
//! whether the market opened and which buyers never finished.

use super::protocol::{Body, Message, Report};
use super::report::ClerkReport;
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use std::collections::{BTreeSet, VecDeque};

pub struct Clerk {
    run_id: String,
    peers: Vec<PeerId>,
    buyers: BTreeSet<PeerId>,
    ready: BTreeSet<PeerId>,
    opened: bool,
    done: BTreeSet<PeerId>,
    deadline: Option<Millis>,
    rejected: u64,
    out: VecDeque<Output<Message, ClerkReport>>,
    closed: bool,
}

impl Clerk {
    pub fn new(
        run_id: &str,
        peers: Vec<PeerId>,
        buyers: Vec<PeerId>,
        deadline: Option<Millis>,
    ) -> Self {
        Clerk {
            run_id: run_id.to_owned(),
            peers,
            buyers: buyers.into_iter().collect(),
            ready: BTreeSet::new(),
            opened: false,
            done: BTreeSet::new(),
            deadline,
            rejected: 0,
            out: VecDeque::new(),
            closed: false,
        }
    }

    fn close(&mut self, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        for k in self.peers.clone() {
            self.out.push_back(Output::Publish {
                route: Route::Peer(k),
                msg: Message::new(
                    &self.run_id,
                    (),
                    Body::Close {
                        reason: reason.to_owned(),
                    },
                ),
            });
        }
        let report = ClerkReport {
            opened: self.opened,
            not_ready: self
                .peers
                .iter()
                .copied()
                .filter(|k| !self.ready.contains(k))
                .collect(),
            done: self.done.iter().copied().collect(),
            missing: self.buyers.difference(&self.done).copied().collect(),
            reason: reason.to_owned(),
            rejected: self.rejected,
        };
        self.out.push_back(Output::Publish {
            route: Route::Results,
            msg: Message::new(
                &self.run_id,
                (),
                Body::Report {
                    report: Report::Clerk(report.clone()),
                },
            ),
        });
        self.out.push_back(Output::Finished(report));
    }
}

impl StateMachine for Clerk {
    type Msg = Message;
    type Finished = ClerkReport;

    fn handle(&mut self, _now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        let refuse = |c: &mut Clerk, e: Rejection| {
            c.rejected += 1;
            tracing::warn!("clerk rejected: {e}");
            Err(e)
        };
        let msg = match Message::decode(bytes, &self.run_id) {
            Ok(m) => m,
            Err(e) => return refuse(self, e),
        };
        match msg.body {
            Body::Ready { peer } if self.peers.contains(&peer) => {
                self.ready.insert(peer);
                if !self.opened && !self.closed && self.ready.len() == self.peers.len() {
                    self.opened = true;
                    for k in self.peers.clone() {
                        self.out.push_back(Output::Publish {
                            route: Route::Peer(k),
                            msg: Message::new(&self.run_id, (), Body::Open),
                        });
                    }
                }
                Ok(())
            }
            Body::Ready { peer } => refuse(
                self,
                Rejection::Refused(format!("ready from {peer}, not a peer of the market")),
            ),
            Body::Done { buyer } if self.buyers.contains(&buyer) => {
                self.done.insert(buyer);
                if self.done.len() == self.buyers.len() {
                    self.close("every buyer is done");
                }
                Ok(())
            }
            Body::Done { buyer } => refuse(
                self,
                Rejection::Refused(format!("done from {buyer}, not a buyer")),
            ),
            b => refuse(
                self,
                Rejection::Refused(format!("a {} at the clerk", b.kind())),
            ),
        }
    }

    fn next_timeout(&self) -> Option<Millis> {
        if self.closed {
            return None;
        }
        // A market without buyers closes at once.
        if self.buyers.is_empty() {
            return Some(0);
        }
        self.deadline
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.buyers.is_empty() {
            self.close("no buyers");
        } else if self.deadline.is_some_and(|d| now >= d) {
            self.close("--run-timeout passed");
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, ClerkReport>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.close(&format!("interrupted: {reason}"));
    }
}
