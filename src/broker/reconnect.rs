//! Reconnecting: exponential backoff with jitter while the machine's own clock keeps
//! running, so a participant that cannot get back in time ends by its own deadline rather
//! than waiting forever.

use super::error::{BrokerError, is_transient};
use super::link::open_link;
use super::wiring::Endpoint;
use super::{Broker, Link, Shutdown, now_ms, stopped};
use crate::contract::{Output, Route, StateMachine};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Reconnects with exponential backoff and jitter until it works, the machine's next
/// deadline has passed (then the machine decides: it may abort) or Ctrl-C.
pub(crate) async fn reconnect<M: StateMachine, E: Endpoint>(
    broker: &Broker,
    role: &E,
    m: &mut M,
    outbox: &mut VecDeque<(Route, M::Msg)>,
    t0: Instant,
    shutdown: &mut Shutdown,
    reconnects: &mut u32,
) -> Result<Link, BrokerError> {
    use backon::BackoffBuilder;
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match open_link(broker, role, true).await {
            Ok(link) => {
                *reconnects += 1;
                tracing::info!(who = %role.conn_name(), reconnects = *reconnects, "reconnected; catching up");
                return Ok(link);
            }
            // After a reconnect our own old connection may still hold our id for a moment.
            Err(e)
                if !is_transient(&e)
                    && !matches!(
                        e,
                        BrokerError::IdTaken { .. } | BrokerError::RoleTaken { .. }
                    ) =>
            {
                return Err(e);
            }
            Err(e) => {
                tracing::debug!(error = %e, "reconnect attempt failed");
                // Time still passes for the machine (a paced grant, a lease, the run's
                // deadline): what it publishes meanwhile waits in the outbox.
                m.handle_timeout(now_ms(t0));
                let mut gave_up = false;
                while let Some(out) = m.poll_output() {
                    match out {
                        Output::Publish { route, msg } => outbox.push_back((route, msg)),
                        Output::Finished(_) => gave_up = true,
                        // The holds went with the connection; the broker delivers again.
                        Output::Release(_) => {}
                    }
                }
                if gave_up {
                    return Err(BrokerError::Lost {
                        what: format!(
                            "connection of {} (gave up at the run's deadline)",
                            role.conn_name()
                        ),
                    });
                }
                if *shutdown.borrow() {
                    return Err(e);
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(shutdown) => return Err(e),
                }
            }
        }
    }
}
