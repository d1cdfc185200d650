//! One contender on the broker: the token machine ([`super::token`]) driven over a
//! [`Lease`] — deliveries in, its actions carried out one by one (a publish confirmed
//! before the next step), until it holds a slot, gives up, or loses its connection.

use super::protocol::{self, Record, Token};
use super::token::{Action, Contender, Fence, Slot};
use crate::broker::lease::{Inequivalent, Lease, LeaseEvent};
use crate::broker::{Broker, BrokerError, Shutdown, stopped};
use crate::contract::QueueType;
use std::time::Duration;

/// How long `--wait 0` waits for the token of a slot that looked free (another contender
/// may have taken it in between): one round trip, with room to spare.
pub const TRY_ONCE: Duration = Duration::from_secs(2);

/// How an acquisition ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Held { slot: Slot, fence: Fence },
    /// `--wait` ran out (or `--wait 0` found every slot held).
    GaveUp,
    /// The connection went before the lock was ours.
    Lost(String),
    /// A stop signal (Ctrl-C, SIGTERM, SIGHUP).
    Interrupted,
}

/// One contender: its lease and its machine.
pub struct Holder {
    lease: Lease,
    machine: Contender,
    lock: String,
}

impl Holder {
    /// Connects as `who` and declares lock `lock` with `limit` slots. `Ok(Err(_))`: the
    /// lock exists with another limit or queue type.
    pub async fn open(
        broker: &Broker,
        who: &str,
        lock: &str,
        limit: u32,
        queue_type: QueueType,
    ) -> Result<Result<Holder, Inequivalent>, BrokerError> {
        let names = protocol::queues(lock, limit);
        Ok(Lease::open(broker, who, names, queue_type)
            .await?
            .map(|lease| Holder {
                lease,
                machine: Contender::new(limit),
                lock: lock.to_owned(),
            }))
    }

    /// Waits for a slot: forever (`None`), once (`Some(0)`: only slots that look free are
    /// tried), or up to `wait`.
    pub async fn acquire(
        &mut self,
        wait: Option<Duration>,
        stop: &mut Shutdown,
    ) -> Result<Got, BrokerError> {
        let once = wait == Some(Duration::ZERO);
        let mut any = false;
        for slot in self.machine.reopen() {
            let genesis = Token::new(&self.lock, slot, 0).encode();
            if self.lease.consume(slot, &genesis, once).await? {
                any = true;
            } else {
                self.machine.close(slot);
            }
        }
        if !any {
            return Ok(Got::GaveUp);
        }
        let limit = if once { Some(TRY_ONCE) } else { wait };
        // A wait too long to add to now is no deadline at all.
        let deadline = limit.and_then(|d| tokio::time::Instant::now().checked_add(d));
        loop {
            let give_up = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = self.lease.next() => match ev {
                    LeaseEvent::Lost(why) => return Ok(Got::Lost(why)),
                    LeaseEvent::Token { slot, tag, body, .. } => {
                        if let Some(got) = self.on_token(slot, tag, &body, true).await? {
                            return Ok(got);
                        }
                    }
                },
                _ = give_up => {
                    self.release().await?;
                    return Ok(Got::GaveUp);
                }
                _ = stopped(stop) => return Ok(Got::Interrupted),
            }
        }
    }

    /// Feeds one delivery to the machine and carries out its actions.
    async fn on_token(
        &mut self,
        slot: Slot,
        tag: u64,
        body: &[u8],
        waiting: bool,
    ) -> Result<Option<Got>, BrokerError> {
        let token = match Token::decode(body, &self.lock, slot) {
            Ok(t) => t,
            Err(why) => {
                tracing::warn!(lock = %self.lock, slot, "dropping a message that is no token: {why}");
                self.lease.reject(slot, tag).await?;
                return Ok(None);
            }
        };
        // The ready count matters only to a contender still waiting on this slot.
        let ready = if waiting && self.machine.holding().is_none() {
            self.lease.ready(slot).await?
        } else {
            0
        };
        let mut got = None;
        for a in self.machine.deliver(slot, tag, token.fence, ready) {
            match a {
                Action::Publish { slot, fence } => {
                    let t = Token::new(&self.lock, slot, fence).encode();
                    self.lease.publish(slot, &t).await?;
                }
                Action::Ack { slot, tag } => self.lease.ack(slot, tag).await?,
                Action::GiveBack { slot } => self.lease.give_back(slot).await?,
                Action::Start { slot, fence } => got = Some(Got::Held { slot, fence }),
            }
        }
        Ok(got)
    }

    /// Leaves `slot`'s record: who holds it, since when.
    pub async fn record(&self, slot: Slot, fence: Fence, since_ms: u64) -> Result<(), BrokerError> {
        let r = Record {
            v: protocol::VERSION,
            lock: self.lock.clone(),
            slot,
            fence,
            host: super::host::hostname(),
            pid: std::process::id(),
            since_ms,
        };
        self.lease.record(slot, &r.encode()).await
    }

    /// While holding: answers the deliveries that still come (our own token, kept; tokens
    /// of other slots, given back) and returns only when the connection is lost, with why.
    pub async fn serve(&mut self) -> String {
        loop {
            match self.lease.next().await {
                LeaseEvent::Lost(why) => return why,
                LeaseEvent::Token { slot, tag, body, .. } => {
                    if let Err(e) = self.on_token(slot, tag, &body, false).await {
                        return e.to_string();
                    }
                }
            }
        }
    }

    /// Lets go of every slot (the held token goes back to its queue); the connection
    /// stays, for the next [`Holder::acquire`].
    pub async fn release(&mut self) -> Result<(), BrokerError> {
        for a in self.machine.release() {
            if let Action::GiveBack { slot } = a {
                self.lease.give_back(slot).await?;
            }
        }
        Ok(())
    }

    /// Closes the connection: releases everything at once.
    pub async fn close(self) {
        self.lease.close().await;
    }
}
