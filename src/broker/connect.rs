//! Connecting (within the connect timeout, a refused connection retried while a broker
//! starts, failures classified for the user) and the small probes every participant
//! needs: a channel with confirms, whether a queue exists, an exclusive hold.

use super::error::{BrokerError, Context, is_locked, is_not_found, stream_not_ready_text};
use super::url::{BrokerUrl, NodeUrl};
use lapin::options::{BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// The frame size sync-run asks for (bytes) unless the URL sets `frame_max`.
pub const FRAME_MAX: u32 = 8192;

/// Connects within `timeout`, classifying failures for the user. A refused connection is
/// tried again until the timeout: a broker that is still starting (the normal case right
/// after `docker compose up`) refuses connections for a few seconds, and that is no reason
/// to give up.
///
/// With several URLs (a cluster) the nodes are tried in the participant's own order
/// ([`BrokerUrl::order`], keyed by `name`), each within its share of the timeout, starting
/// after the node this name was connected to last: the first that answers wins. Only when
/// every node refuses for good (the credentials, not AMQP) does that refusal end it.
pub async fn connect(
    url: &BrokerUrl,
    name: &str,
    timeout: Duration,
) -> Result<Connection, BrokerError> {
    connect_ordered(url, name, 0, name, timeout).await
}

/// Connects the `nth` connection of a group keyed `key` (a pool's): its order of the nodes
/// is the group's turned `nth` places, so a group's connections cover every node.
pub(crate) async fn connect_nth(
    url: &BrokerUrl,
    key: &str,
    nth: usize,
    name: &str,
    timeout: Duration,
) -> Result<Connection, BrokerError> {
    connect_ordered(url, key, nth, name, timeout).await
}

async fn connect_ordered(
    url: &BrokerUrl,
    key: &str,
    offset: usize,
    name: &str,
    timeout: Duration,
) -> Result<Connection, BrokerError> {
    use tokio::time::Instant;
    let deadline = Instant::now() + timeout;
    let order = url.order(key, offset);
    let n = order.len();
    let start = url.next_start(name);
    let timed_out = || BrokerError::ConnectTimeout {
        url: url.redacted().to_owned(),
        timeout_ms: timeout.as_millis(),
    };
    let mut delay = Duration::from_millis(100);
    loop {
        let mut refused: Option<String> = None;
        let mut for_good: Vec<BrokerError> = Vec::new();
        for i in 0..n {
            let pos = (start + i) % n;
            let node = &url.nodes()[order[pos]];
            // Each node gets an equal share of what is left, so a node that accepts the
            // connection but does not answer (frozen, overloaded) cannot take the others'
            // time; with one node, that is all of it.
            let now = Instant::now();
            let until = now + (deadline.saturating_duration_since(now) / (n - i) as u32);
            match tokio::time::timeout_at(until, connect_once(node, name)).await {
                Ok(Ok(c)) => {
                    url.connected(name, pos);
                    if n > 1 {
                        tracing::debug!(who = name, node = node.redacted(), "connected");
                    }
                    return Ok(c);
                }
                Ok(Err(e)) if is_refused(&e) => {
                    tracing::debug!(url = node.redacted(), error = %e, "connection refused");
                    refused = Some(at_node(n, node.redacted(), e.to_string()));
                }
                Ok(Err(e)) => {
                    // The broker said no to the credentials: a cluster's users are the same
                    // on every node, so no other node will say yes.
                    let said_no = refused_credentials(&e);
                    let e = classify(node.redacted(), e);
                    if said_no {
                        return Err(e);
                    }
                    // A node going down or coming up may drop a handshake or a socket:
                    // another node may still take us, and this one may on the next round.
                    tracing::debug!(url = node.redacted(), error = %e, "node did not take the connection");
                    for_good.push(e);
                }
                Err(_) => {
                    tracing::debug!(
                        url = node.redacted(),
                        "no answer within its share of the connect timeout"
                    );
                    refused = Some(at_node(n, node.redacted(), "no answer".into()));
                }
            }
            if Instant::now() >= deadline {
                return Err(timed_out());
            }
        }
        if for_good.len() == n {
            return Err(for_good.remove(0));
        }
        if Instant::now() + delay >= deadline {
            let last = for_good
                .first()
                .map(|e| match e {
                    BrokerError::Unreachable { url, reason } => at_node(n, url, reason.clone()),
                    other => other.to_string(),
                })
                .or(refused)
                .unwrap_or_default();
            return Err(BrokerError::Unreachable {
                url: url.redacted().to_owned(),
                reason: format!(
                    "{last} (tried for {} ms, the connect timeout)",
                    timeout.as_millis()
                ),
            });
        }
        tracing::debug!(url = %url, "no node took the connection; trying again");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(1000));
    }
}

/// What went wrong at one node, for the message that names the URL once: the node is
/// named only when the URL lists several.
fn at_node(n: usize, node: &str, what: String) -> String {
    if n > 1 {
        format!("{node}: {what}")
    } else {
        what
    }
}

/// The broker answered that the user or the password is wrong (ACCESS_REFUSED).
fn refused_credentials(e: &lapin::Error) -> bool {
    let lower = e.to_string().to_lowercase();
    lower.contains("access_refused")
        || lower.contains("access-refused")
        || lower.contains("authentication")
        || lower.contains("login")
        || lower.contains("403")
}

/// The node refused the TCP connection: nothing listens there (yet).
fn is_refused(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::IOError(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

async fn connect_once(url: &NodeUrl, name: &str) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name(name.to_string().into());
    // Validated by `BrokerUrl::parse` already; an unparsable one is refused here as a
    // protocol error (`classify` reports it as such).
    let mut uri: lapin::uri::AMQPUri = url.as_str().parse().map_err(|_| {
        lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
            lapin::ConnectionState::Error,
        ))
    })?;
    // lapin keeps 2 × 32 frames of buffer per connection: at RabbitMQ's default frame_max
    // of 128 KiB that is 8 MiB per worker. Protocol messages are a few hundred bytes
    // (larger ones are split into frames), so ask for small frames unless the URL says
    // otherwise.
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Connection::connect_uri(uri, props).await
}

/// Says what a failed connection attempt to the node at `url` (redacted) means for the user.
fn classify(url: &str, e: lapin::Error) -> BrokerError {
    let url = url.to_owned();
    let reason = e.to_string();
    if refused_credentials(&e) {
        return BrokerError::Auth {
            url,
            reason: "ACCESS_REFUSED (check the user and password in --amqp-url / AMQP_URL)".into(),
        };
    }
    match e.kind() {
        lapin::ErrorKind::IOError(_) => BrokerError::Unreachable { url, reason },
        // The peer answered with something that is not AMQP 0-9-1 (an HTTP server, a
        // database, another protocol's port).
        lapin::ErrorKind::ParsingError(_)
        | lapin::ErrorKind::InvalidProtocolVersion(_)
        | lapin::ErrorKind::SerialisationError(_) => BrokerError::NotAmqp { url, reason },
        // RabbitMQ closes the socket during the handshake on a bad login; lapin reports
        // that as a protocol/state error rather than an I/O error.
        _ => BrokerError::Auth {
            url,
            reason: format!(
                "the connection was closed during the handshake ({reason}); check the credentials and the vhost"
            ),
        },
    }
}

/// A channel as it opens, without confirms: for one declare or delete that the broker may
/// refuse (a refusal closes its channel, so such an attempt gets a channel of its own).
pub async fn bare_channel(conn: &Connection) -> Result<Channel, BrokerError> {
    conn.create_channel()
        .await
        .ctx(|| "opening a channel".into())
}

/// A channel with publisher confirms and the given prefetch.
pub async fn open_channel(conn: &Connection, prefetch: u16) -> Result<Channel, BrokerError> {
    let ch = bare_channel(conn).await?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ctx(|| "enabling publisher confirms".into())?;
    ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .ctx(|| "setting the prefetch".into())?;
    Ok(ch)
}

/// Whether queue `q` exists, asked with a passive declare on a channel of its own (a
/// refused passive declare closes its channel). `Ok(false)`: NOT_FOUND; `Err`: any other
/// answer, including a stream that is still starting (it exists, it is just not ready).
pub async fn queue_exists(conn: &Connection, q: &str) -> Result<bool, BrokerError> {
    Ok(queue_consumers(conn, q).await?.is_some())
}

/// How many consumers queue `q` has (`None`: it does not exist), by a passive declare as
/// [`queue_exists`] asks: whether a participant is there, not merely its queue.
pub async fn queue_consumers(conn: &Connection, q: &str) -> Result<Option<u32>, BrokerError> {
    let probe = bare_channel(conn).await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match probe
        .queue_declare(q.into(), passive, FieldTable::default())
        .await
    {
        Ok(ok) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                probe.close(200, "probe done".into()),
            )
            .await;
            Ok(Some(ok.consumer_count()))
        }
        Err(e) if is_not_found(&e) && !stream_not_ready_text(&e.to_string()) => Ok(None),
        Err(e) => Err(BrokerError::Amqp {
            context: format!("checking that {q} exists"),
            source: e,
        }),
    }
}

/// Declares `q` as an exclusive, auto-delete queue held by `conn`: `Ok(false)` when another
/// connection already holds it. How a run's single active master (the leadership lock) and
/// a stream reader's worker id are held.
pub async fn hold_exclusive(conn: &Connection, q: &str) -> Result<bool, BrokerError> {
    // A refused declare closes its channel, so the attempt gets a channel of its own.
    let ch = bare_channel(conn).await?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    match ch
        .queue_declare(q.into(), opts, FieldTable::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_locked(&e) => Ok(false),
        Err(e) => Err(BrokerError::Amqp {
            context: format!("declaring {q}"),
            source: e,
        }),
    }
}

/// Closes a connection without waiting long for the broker's close-ok: a connection whose
/// socket died may never get one, and a run must not hang on a goodbye.
pub async fn close_quietly(conn: &Connection, why: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, why.into())).await;
}
