//! The connection pool of an in-process run: many participants, few connections.

use super::connect::{close_quietly, connect_nth};
use super::error::BrokerError;
use super::url::BrokerUrl;
use lapin::Connection;
use std::fmt;
use std::time::Duration;

/// Connections shared by the workers of one in-process run, `per_connection` workers on
/// each. A thousand workers on a thousand connections cost a thousand sockets (beyond a
/// stock broker's file-descriptor limit), a thousand I/O threads here and a thousand
/// connection processes in the broker; on sixty-four they cost sixty-four, and the frames
/// of many workers share each read and write.
///
/// A worker whose shared connection dies asks the pool again and gets a live one: the
/// first to ask opens it, the others join it.
pub struct ConnectionPool {
    url: BrokerUrl,
    name: String,
    connect_timeout: Duration,
    per_connection: usize,
    slots: tokio::sync::Mutex<Vec<(std::sync::Arc<Connection>, usize)>>,
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("name", &self.name)
            .field("per_connection", &self.per_connection)
            .finish()
    }
}

impl ConnectionPool {
    /// A pool whose connections are named `<name> #k` (visible in the management UI).
    pub fn new(
        url: BrokerUrl,
        connect_timeout: Duration,
        name: String,
        per_connection: usize,
    ) -> Self {
        ConnectionPool {
            url,
            name,
            connect_timeout,
            per_connection: per_connection.max(1),
            slots: Default::default(),
        }
    }

    /// A live connection with room for one more worker, opened if there is none.
    pub(crate) async fn get(&self) -> Result<std::sync::Arc<Connection>, BrokerError> {
        let mut slots = self.slots.lock().await;
        slots.retain(|(c, _)| c.status().connected());
        if let Some((c, users)) = slots.iter_mut().find(|(_, u)| *u < self.per_connection) {
            *users += 1;
            return Ok(c.clone());
        }
        let k = slots.len() + 1;
        let name = format!("{} #{k}", self.name);
        let conn = std::sync::Arc::new(
            connect_nth(&self.url, &self.name, k, &name, self.connect_timeout).await?,
        );
        slots.push((conn.clone(), 1));
        Ok(conn)
    }

    /// Opens the connections `workers` workers will need, all at once, so the workers
    /// do not open them one after the other.
    pub async fn warm(&self, workers: usize) -> Result<(), BrokerError> {
        let count = workers.div_ceil(self.per_connection);
        let opened =
            futures::future::join_all(
                (1..=count).map(|k| {
                    let name = format!("{} #{k}", self.name);
                    async move {
                        connect_nth(&self.url, &self.name, k, &name, self.connect_timeout).await
                    }
                }),
            )
            .await;
        let mut slots = self.slots.lock().await;
        for conn in opened {
            slots.push((std::sync::Arc::new(conn?), 0));
        }
        Ok(())
    }

    /// Closes every connection (after the run: each worker closed its own channel).
    pub async fn close(&self) {
        let slots = std::mem::take(&mut *self.slots.lock().await);
        futures::future::join_all(slots.iter().map(|(c, _)| close_quietly(c, "run done"))).await;
    }
}
