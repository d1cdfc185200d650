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
    slots: tokio::sync::Mutex<Vec<Slot>>,
}

/// One pooled connection: the `k` in its name `<name> #k`, and how many workers use it.
struct Slot {
    conn: std::sync::Arc<Connection>,
    users: usize,
    k: usize,
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

    /// A live connection with room for one more worker, opened if there is none. A
    /// connection that died is replaced under its own name and place in the pool (the
    /// lowest `k` free), so the replacement starts with the node after the one it lost.
    pub(crate) async fn get(&self) -> Result<std::sync::Arc<Connection>, BrokerError> {
        let mut slots = self.slots.lock().await;
        slots.retain(|s| s.conn.status().connected());
        if let Some(s) = slots.iter_mut().find(|s| s.users < self.per_connection) {
            s.users += 1;
            return Ok(s.conn.clone());
        }
        let k = (1..)
            .find(|k| slots.iter().all(|s| s.k != *k))
            .unwrap_or(slots.len() + 1);
        let conn = self.open(k).await?;
        slots.push(Slot {
            conn: conn.clone(),
            users: 1,
            k,
        });
        Ok(conn)
    }

    /// Opens connection `#k`: its order of a cluster's nodes is the pool's turned `k`
    /// places, so the pool's connections spread over every node.
    async fn open(&self, k: usize) -> Result<std::sync::Arc<Connection>, BrokerError> {
        let name = format!("{} #{k}", self.name);
        let conn = connect_nth(&self.url, &self.name, k, &name, self.connect_timeout).await?;
        Ok(std::sync::Arc::new(conn))
    }

    /// Opens the connections `workers` workers will need, all at once, so the workers
    /// do not open them one after the other.
    pub async fn warm(&self, workers: usize) -> Result<(), BrokerError> {
        let count = workers.div_ceil(self.per_connection);
        let opened = futures::future::join_all((1..=count).map(|k| self.open(k))).await;
        let mut slots = self.slots.lock().await;
        for (conn, k) in opened.into_iter().zip(1..) {
            slots.push(Slot {
                conn: conn?,
                users: 0,
                k,
            });
        }
        Ok(())
    }

    /// Closes every connection (after the run: each worker closed its own channel).
    pub async fn close(&self) {
        let slots = std::mem::take(&mut *self.slots.lock().await);
        futures::future::join_all(slots.iter().map(|s| close_quietly(&s.conn, "run done"))).await;
    }
}
