//! Deleting names that may still be someone else's: each queue goes only if no one
//! consumes it (`if-unused`). How a participant whose run never started tidies the names it
//! may have declared itself, without taking them from a participant that is there.

use super::Link;
use lapin::options::QueueDeleteOptions;
use std::time::Duration;

/// Lets go of `link`'s channel (its own consumers would keep the queues "in use"), then
/// deletes each of `queues` that has no consumer, within 10 s in all. A queue in use, or
/// any refusal, leaves it in place: this is a best effort, never an error.
pub async fn delete_unused(link: &Link, queues: &[String]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), link.ch.close(200, "done".into())).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), delete_each(link, queues)).await;
}

async fn delete_each(link: &Link, queues: &[String]) {
    for q in queues {
        // A refused delete (in use) closes its channel: one channel per delete.
        let Ok(ch) = link.conn.create_channel().await else {
            return;
        };
        let opts = QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        match ch.queue_delete(q.as_str().into(), opts).await {
            Ok(_) => {
                tracing::debug!(queue = %q, "deleted a name no one uses");
                let _ = tokio::time::timeout(Duration::from_secs(2), ch.close(200, "done".into()))
                    .await;
            }
            Err(e) => tracing::debug!(queue = %q, error = %e, "left in place (in use)"),
        }
    }
}
