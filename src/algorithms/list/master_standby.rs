//! The master as a standby (`sync-run master --standby`): it follows the active master's
//! messages, publishing nothing, and takes over with a new epoch when the active one is
//! gone. Apart from the active master's logic so that each reads on its own; it is the same
//! machine ([`Master`]) in another mode.

use super::{Master, MasterConfig, Member, Phase, refused};
use crate::algorithms::list::protocol::{Body, Rejection, Seq};
use crate::algorithms::list::record::{GrantOutcome, GrantRecord, RunOutcome};
use crate::contract::Millis;
use rand::RngCore;

impl Master {
    /// A standby: it rebuilds the run's state from the messages of the active master and
    /// the workers (its queue is bound to the fanout and to the results key) and publishes
    /// nothing until it holds the leadership lock and [`Master::take_over`] is called.
    pub fn standby(cfg: MasterConfig, rng: Box<dyn RngCore + Send>, now: Millis) -> Self {
        let mut m = Master::new(cfg, rng, now);
        m.following = true;
        m
    }

    pub fn is_following(&self) -> bool {
        self.following
    }

    /// The active master is gone and this standby holds the lock: announce a new epoch and
    /// continue from the state it followed. Outstanding grants keep their seq and get a
    /// fresh lease (the granted workers may well append); nothing is granted twice.
    pub fn take_over(&mut self, now: Millis) {
        if !self.following {
            return;
        }
        self.following = false;
        self.retired.extend(self.followed.take());
        self.epoch += 1;
        tracing::warn!(
            epoch = self.epoch,
            grants = self.grants.len(),
            "taking over as master"
        );
        match self.phase {
            Phase::Joining { .. } => {
                self.phase = Phase::Joining {
                    until: now.saturating_add(self.cfg.join_timeout_ms),
                };
            }
            Phase::Granting => {
                self.publish_start();
                let lease = now.saturating_add(self.cfg.lease_ms);
                self.leases = self
                    .grants
                    .iter()
                    .filter(|g| g.outcome == GrantOutcome::Pending)
                    .map(|g| (g.seq, lease))
                    .collect();
                self.fill_window(now);
            }
            Phase::Collecting { .. } => {
                self.publish_start();
                self.end(now);
            }
            Phase::Done => {}
        }
    }

    /// Follow-mode bookkeeping for a message of the active master.
    pub(super) fn observe(
        &mut self,
        now: Millis,
        instance: u64,
        body: Body,
    ) -> Result<(), Rejection> {
        match body {
            Body::Start {
                workers,
                epoch,
                relay,
                ..
            } => {
                self.followed = Some(instance);
                // Carry on the way the run was started, whatever this standby was told.
                self.cfg.relay = relay;
                self.epoch = self.epoch.max(epoch);
                if matches!(self.phase, Phase::Joining { .. }) {
                    self.members = workers
                        .into_iter()
                        .map(|w| (w, Member::default()))
                        .collect();
                    self.phase = Phase::Granting;
                    self.started_at = Some(now);
                }
            }
            Body::Grant { seq, worker, .. } if seq == self.grants.len() as Seq + 1 => {
                while self.round < self.cfg.rounds
                    && !self
                        .members
                        .values()
                        .any(|m| !m.evicted && m.writes + m.pending < self.round)
                {
                    self.round += 1;
                }
                if let Some(m) = self.members.get_mut(&worker) {
                    m.pending += 1;
                }
                self.grants.push(GrantRecord {
                    seq,
                    worker,
                    round: self.round,
                    granted_at_ms: now,
                    outcome: GrantOutcome::Pending,
                });
            }
            Body::Grant { .. } => {} // a duplicate
            Body::Evict { seq, worker, .. } => {
                if let Some(g) = seq
                    .checked_sub(1)
                    .and_then(|i| self.grants.get_mut(i as usize))
                    && g.outcome == GrantOutcome::Pending
                {
                    g.outcome = GrantOutcome::Evicted { at_ms: now };
                }
                if let Some(m) = self.members.get_mut(&worker) {
                    m.evicted = true;
                    m.pending = 0;
                }
            }
            Body::End { .. } => {
                if !matches!(self.phase, Phase::Collecting { .. }) {
                    self.ended_at = Some(now);
                    self.phase = Phase::Collecting {
                        until: now.saturating_add(self.cfg.result_timeout_ms),
                    };
                }
            }
            Body::Abort { reason } => {
                self.finish(
                    now,
                    RunOutcome::Aborted {
                        reason: format!("the active master aborted: {reason}"),
                    },
                );
            }
            Body::Batch { messages } => {
                for part in messages {
                    // Each part is checked as a message on its own and counts on its own;
                    // one bad part does not void the rest.
                    let handled = part
                        .decode(&self.cfg.run_id)
                        .and_then(|inner| self.on_message(now, inner));
                    if let Err(r) = handled {
                        self.count_rejection(&r);
                    }
                }
            }
            other => {
                return Err(refused(format!(
                    "a master does not send {} messages",
                    other.kind()
                )));
            }
        }
        Ok(())
    }
}
