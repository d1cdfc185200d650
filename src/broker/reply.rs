//! Request/reply on the broker with direct reply-to (`amq.rabbitmq.reply-to`): a
//! [`Server`] consumes a shared, auto-delete request queue and answers each request to its
//! `reply_to` with its `correlation_id`; a [`Caller`] consumes its channel's pseudo-queue
//! (no queue is declared for replies, nothing is left behind) and publishes requests
//! `mandatory`, so that a name nobody serves comes back at once as unroutable.
//!
//! What RabbitMQ (3.10) does here, verified before this was written and relied upon:
//! * a `mandatory` publish to a queue that does not exist is returned (`NO_ROUTE`) before
//!   its confirm — the caller knows at once that nobody serves the name;
//! * a reply published `mandatory` to a direct reply-to address is returned even when the
//!   caller is there (the address is not a queue), so replies go without `mandatory`; a
//!   reply to a caller that is gone is dropped by the broker;
//! * the auto-delete request queue goes when its last server's consumer goes, crash or not
//!   (but a queue that never had a consumer stays: hence its `x-expires` as well).
//!
//! It knows nothing of what the headers mean: the algorithm reads and writes them.

use super::connect::{close_quietly, connect, open_channel};
use super::consume::{consume, delivered, no_ack};
use super::error::{BrokerError, Context};
use super::url::BrokerUrl;
use super::wiring::QUEUE_EXPIRES_MS;
use futures::StreamExt;
use lapin::Acker;
use lapin::Confirmation;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use std::collections::BTreeMap;
use std::time::Duration;

/// The pseudo-queue a caller consumes its replies from.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A header value as sent: integers stay integers for readers in other languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    Int(i64),
    Text(String),
}

/// A request or a reply as received: properties, headers (integers written in decimal;
/// values of other types left out) and body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Message {
    fn of(props: &BasicProperties, body: Vec<u8>) -> Self {
        let mut headers = BTreeMap::new();
        for (k, v) in props.headers().iter().flat_map(|t| t.inner().iter()) {
            let text = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_owned(),
                AMQPValue::ShortShortInt(i) => i.to_string(),
                AMQPValue::ShortShortUInt(i) => i.to_string(),
                AMQPValue::ShortInt(i) => i.to_string(),
                AMQPValue::ShortUInt(i) => i.to_string(),
                AMQPValue::LongInt(i) => i.to_string(),
                AMQPValue::LongUInt(i) => i.to_string(),
                AMQPValue::LongLongInt(i) => i.to_string(),
                _ => continue,
            };
            headers.insert(k.as_str().to_owned(), text);
        }
        Message {
            correlation_id: props
                .correlation_id()
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            reply_to: props.reply_to().as_ref().map(|s| s.as_str().to_owned()),
            headers,
            body,
        }
    }
}

fn table(headers: &[(&str, Header)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in headers {
        let v = match v {
            Header::Int(i) => AMQPValue::LongLongInt(*i),
            Header::Text(s) => AMQPValue::LongString(s.as_str().into()),
        };
        t.insert(ShortString::from(*k), v);
    }
    t
}

fn amqp(what: &str) -> impl Fn(lapin::Error) -> BrokerError + '_ {
    move |source| BrokerError::Amqp {
        context: what.to_owned(),
        source,
    }
}

/// A request or a reply to publish on the default exchange.
struct Outgoing<'a> {
    to: &'a str,
    correlation_id: &'a str,
    reply_to: Option<&'a str>,
    headers: &'a [(&'a str, Header)],
    body: &'a [u8],
}

/// Publishes `m` and waits for the broker's confirm (after the return of a `mandatory`
/// message no queue took, which the confirm then carries).
async fn publish(
    ch: &Channel,
    m: Outgoing<'_>,
    mandatory: bool,
    what: &str,
) -> Result<Confirmation, BrokerError> {
    let mut props = BasicProperties::default()
        .with_correlation_id(m.correlation_id.into())
        .with_app_id("sync-run".into())
        .with_headers(table(m.headers));
    if let Some(r) = m.reply_to {
        props = props.with_reply_to(r.into());
    }
    let options = BasicPublishOptions {
        mandatory,
        ..Default::default()
    };
    ch.basic_publish("".into(), m.to.into(), options, m.body, props)
        .await
        .ctx(|| format!("publishing {what}"))?
        .await
        .ctx(|| format!("waiting for the confirm of {what}"))
}

/// One request taken from the queue, to be answered or refused exactly once.
pub struct Request {
    pub msg: Message,
    /// Delivered before and not acknowledged then (a server died with it).
    pub redelivered: bool,
    acker: Acker,
}

/// A server's end: its connection, its channel (confirms on, prefetch = how many requests
/// it handles at once) and its consumer of the request queue.
pub struct Server {
    conn: Connection,
    ch: Channel,
    requests: Consumer,
    pub queue: String,
}

/// What a server needs to answer, cheap to clone into each request's task.
#[derive(Clone)]
pub struct Replier {
    ch: Channel,
}

/// A classic, non-durable, auto-delete queue: there while someone serves it. Auto-delete
/// only deletes a queue that had a consumer, so it also expires after
/// [`QUEUE_EXPIRES_MS`] unused: a server that dies between its declare and its consume
/// does not leave a queue that swallows requests for good. Every server declares it the
/// same way (another declaration of the name is refused with PRECONDITION_FAILED).
fn request_queue() -> (QueueDeclareOptions, FieldTable) {
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
    (opts, args)
}

impl Server {
    /// Connects as `who`, declares `queue` and consumes it with `concurrency` requests
    /// unacknowledged at most.
    pub async fn open(
        url: &BrokerUrl,
        timeout: Duration,
        who: &str,
        queue: &str,
        concurrency: u16,
    ) -> Result<Self, BrokerError> {
        let conn = connect(url, who, timeout).await?;
        let ch = open_channel(&conn, concurrency).await?;
        let (opts, args) = request_queue();
        ch.queue_declare(queue.into(), opts, args)
            .await
            .ctx(|| format!("declaring the request queue {queue}"))?;
        let requests = consume(&ch, queue, "", BasicConsumeOptions::default()).await?;
        Ok(Server {
            conn,
            ch,
            requests,
            queue: queue.to_owned(),
        })
    }

    /// The next request; `Err(Lost)` when the broker closed the channel or the connection.
    pub async fn next(&mut self) -> Result<Request, BrokerError> {
        let next = self.requests.next().await;
        let what = format!("consumer of {}", self.queue);
        let d = delivered(next, "receiving a request", &what)?;
        Ok(Request {
            msg: Message::of(&d.properties, d.data),
            redelivered: d.redelivered,
            acker: d.acker,
        })
    }

    pub fn replier(&self) -> Replier {
        Replier {
            ch: self.ch.clone(),
        }
    }

    /// Stops taking requests (the ones already taken can still be answered). The last
    /// server's cancel deletes the queue (auto-delete).
    pub async fn stop_taking(&self) {
        let tag = self.requests.tag();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.ch
                .basic_cancel(tag.as_str().into(), Default::default()),
        )
        .await;
    }

    pub async fn close(self) {
        close_quietly(&self.conn, "serve done").await;
    }
}

impl Replier {
    /// Publishes the reply to the request's `reply_to` with its correlation id, waits for
    /// the broker's confirm, then acknowledges the request: a server that dies in between
    /// leaves the request to be delivered again, never a request acknowledged unanswered.
    pub async fn answer(
        &self,
        req: Request,
        reply_to: &str,
        correlation_id: &str,
        headers: &[(&str, Header)],
        body: &[u8],
    ) -> Result<(), BrokerError> {
        // Not mandatory: a direct reply-to address is no queue, and RabbitMQ returns a
        // mandatory message to it as unroutable even when its caller is there.
        let message = Outgoing {
            to: reply_to,
            correlation_id,
            reply_to: None,
            headers,
            body,
        };
        let confirm = publish(&self.ch, message, false, "a reply").await?;
        if confirm.is_nack() {
            return Err(BrokerError::Lost {
                what: "reply (the broker refused it)".into(),
            });
        }
        req.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(amqp("acknowledging a request"))?;
        Ok(())
    }

    /// Rejects a request that breaks the protocol, without requeueing it (it would only
    /// come back).
    pub async fn refuse(&self, req: Request) -> Result<(), BrokerError> {
        req.acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map_err(amqp("rejecting a request"))?;
        Ok(())
    }
}

/// What became of a published request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A queue took it.
    Routed,
    /// No queue has that name: nobody serves it.
    NoRoute,
}

/// A caller's end: a channel with confirms consuming its direct reply-to address.
pub struct Caller {
    ch: Channel,
    replies: Consumer,
}

impl Caller {
    /// A channel on `conn` consuming [`REPLY_TO`] (with auto-ack, as the broker demands).
    /// It consumes before anything is published: a reply-to address only exists then.
    pub async fn open(conn: &Connection) -> Result<Self, BrokerError> {
        let ch = open_channel(conn, 1).await?;
        let replies = consume(&ch, REPLY_TO, "", no_ack()).await?;
        Ok(Caller { ch, replies })
    }

    /// Publishes `body` to `queue` (default exchange, `mandatory`) with `reply_to` this
    /// channel's address and `correlation_id`, and waits for the confirm, which comes
    /// after the return of an unroutable message.
    pub async fn request(
        &self,
        queue: &str,
        correlation_id: &str,
        headers: &[(&str, Header)],
        body: &[u8],
    ) -> Result<Sent, BrokerError> {
        let message = Outgoing {
            to: queue,
            correlation_id,
            reply_to: Some(REPLY_TO),
            headers,
            body,
        };
        let confirm = publish(&self.ch, message, true, "a request").await?;
        match confirm {
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Ok(Sent::NoRoute),
            Confirmation::Ack(None) => Ok(Sent::Routed),
            Confirmation::Nack(None) | Confirmation::NotRequested => Err(BrokerError::Lost {
                what: format!("request to {queue} (the broker did not take it)"),
            }),
        }
    }

    /// The next reply on this channel's address.
    pub async fn next_reply(&mut self) -> Result<Message, BrokerError> {
        let d = delivered(
            self.replies.next().await,
            "receiving a reply",
            "reply consumer",
        )?;
        Ok(Message::of(&d.properties, d.data))
    }

    pub async fn close(&self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.ch.close(200, "done".into())).await;
    }
}

/// Deletes `queue` (an in-process check's own request queue, once its servers are done;
/// the auto-delete has usually done it already, so "not found" is no error).
pub async fn delete_queue(
    url: &BrokerUrl,
    timeout: Duration,
    queue: &str,
) -> Result<(), BrokerError> {
    let conn = connect(url, "sync-run rpc cleanup", timeout).await?;
    let ch = conn
        .create_channel()
        .await
        .ctx(|| "opening a channel".into())?;
    let r = ch
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    close_quietly(&conn, "cleanup done").await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if super::error::is_not_found(&e) => Ok(()),
        Err(e) => Err(amqp("deleting the request queue")(e)),
    }
}

/// Opens a connection for callers (each [`Caller`] a channel on it).
pub async fn connect_callers(
    url: &BrokerUrl,
    timeout: Duration,
    who: &str,
) -> Result<Connection, BrokerError> {
    connect(url, who, timeout).await
}
