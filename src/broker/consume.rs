//! The consumers a participant asks for besides its own exclusive inbox
//! ([`Consume::own`]): a queue it shares with others, and a stream read from its start.
//! Kept here so that an algorithm names what it reads and never an AMQP argument.

use super::wiring::Consume;
use lapin::types::{AMQPValue, FieldTable};

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
