//! The consumers a participant asks for besides its own exclusive inbox
//! ([`Consume::own`]): a queue it shares with others, and a stream read from its start.
//! Kept here so that an algorithm names what it reads and never an AMQP argument. Also
//! the adapter's own readers' one consumer call and one reading of a consumer's stream.

use super::error::{BrokerError, Context};
use super::wiring::Consume;
use lapin::message::Delivery;
use lapin::options::BasicConsumeOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};

impl Consume {
    /// A plain consumer of `queue`, not exclusive: a queue others may read too (a
    /// coordinator's inbox that a standby takes over).
    pub fn shared(queue: String) -> Self {
        Consume {
            queue,
            args: FieldTable::default(),
            exclusive: false,
        }
    }

    /// A reader of stream `queue` from its first message (`x-stream-offset: first`): every
    /// reader sees the whole log, whenever it joins. Not exclusive: a stream has many
    /// readers.
    pub fn stream_from_start(queue: String) -> Self {
        let mut args = FieldTable::default();
        args.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString("first".into()),
        );
        Consume {
            queue,
            args,
            exclusive: false,
        }
    }
}

/// Consumes `queue` on `ch` with `opts` and no arguments, the error said as "consuming
/// QUEUE": the one consumer call of the adapter's own readers (a follower, a server's
/// requests, a caller's replies, a run's results), so they differ only in what they ask.
pub(super) async fn consume(
    ch: &Channel,
    queue: &str,
    tag: &str,
    opts: BasicConsumeOptions,
) -> Result<Consumer, BrokerError> {
    ch.basic_consume(queue.into(), tag.into(), opts, FieldTable::default())
        .await
        .ctx(|| format!("consuming {queue}"))
}

/// Options of a consumer whose deliveries the broker forgets on sending (a reply-to
/// address demands it; a measuring queue wants no acknowledgement traffic).
pub(super) fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

/// What a consumer's stream gave, as a delivery or an error a user can read: `context`
/// names what was being read when the broker failed, `what` the consumer whose stream
/// ended (the channel or the connection closed).
pub(super) fn delivered(
    next: Option<Result<Delivery, lapin::Error>>,
    context: &str,
    what: &str,
) -> Result<Delivery, BrokerError> {
    match next {
        Some(Ok(d)) => Ok(d),
        Some(Err(source)) => Err(BrokerError::Amqp {
            context: context.into(),
            source,
        }),
        None => Err(BrokerError::Lost { what: what.into() }),
    }
}
