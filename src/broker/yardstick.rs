//! The broker's own limits, measured in the same session as a benchmark's runs: the
//! one-hop round trip (publish on one connection, delivery on another) and the raw fanout
//! rate (one publisher, N queues, auto-ack consumers). Every benchmark's figures are ratios
//! of these, so they live with the adapter: the benchmarks themselves write no AMQP calls.

use super::connect::{close_quietly, connect};
use super::consume::no_ack;
use super::error::BrokerError;
use super::url::BrokerUrl;
use futures::StreamExt;
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use std::time::{Duration, Instant};

/// The body of every measuring message: about the size of a turn's message.
const BODY: [u8; 160] = [b'x'; 160];

fn amqp(what: &'static str) -> impl Fn(lapin::Error) -> BrokerError {
    move |e| BrokerError::Amqp {
        context: what.into(),
        source: e,
    }
}

/// A server-named, exclusive, auto-delete queue on `ch`, optionally bound to `exchange`,
/// consumed with auto-ack: a measuring queue that goes with its connection.
async fn scratch_queue(
    ch: &Channel,
    exchange: Option<&str>,
) -> Result<(String, Consumer), BrokerError> {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp("declaring a bench queue"))?;
    if let Some(x) = exchange {
        ch.queue_bind(
            q.name().clone(),
            x.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("binding a bench queue"))?;
    }
    let consumer = ch
        .basic_consume(q.name().clone(), "".into(), no_ack(), FieldTable::default())
        .await
        .map_err(amqp("consuming a bench queue"))?;
    Ok((q.name().as_str().to_owned(), consumer))
}

async fn publish(ch: &Channel, exchange: &str, key: &str) -> Result<(), BrokerError> {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        &BODY,
        BasicProperties::default(),
    )
    .await
    .map_err(amqp("publishing"))?;
    Ok(())
}

/// Publish → consume between two connections, one message in flight, after 50 warm-up
/// rounds; `samples` round trips in ms, sorted.
pub async fn round_trips(
    url: &BrokerUrl,
    timeout: Duration,
    samples: usize,
) -> Result<Vec<f64>, BrokerError> {
    let a = connect(url, "sync-run bench rtt publisher", timeout).await?;
    let b = connect(url, "sync-run bench rtt consumer", timeout).await?;
    let pch = a.create_channel().await.map_err(amqp("channel"))?;
    let cch = b.create_channel().await.map_err(amqp("channel"))?;
    let (qname, mut consumer) = scratch_queue(&cch, None).await?;
    let warmup = 50;
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples + warmup {
        let t = Instant::now();
        publish(&pch, "", &qname).await?;
        match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(_))) => {}
            _ => {
                return Err(BrokerError::Stalled {
                    what: "delivering during the round-trip measurement".into(),
                    secs: 10,
                });
            }
        }
        if i >= warmup {
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    close_quietly(&a, "bench done").await;
    close_quietly(&b, "bench done").await;
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// What [`fanout`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    /// Deliveries that arrived (`queues × messages` when none was lost).
    pub delivered: usize,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
}

/// One publisher, `queues` queues on a fanout exchange of its own, auto-ack consumers
/// spread over up to 8 connections, `messages` published; waits up to 120 s for them.
pub async fn fanout(
    url: &BrokerUrl,
    timeout: Duration,
    queues: usize,
    messages: usize,
) -> Result<Fanout, BrokerError> {
    let exchange = format!("sync-run.bench-{:08x}.fanout", rand::random::<u32>());
    let publisher = connect(url, "sync-run bench fanout publisher", timeout).await?;
    let pch = publisher.create_channel().await.map_err(amqp("channel"))?;
    pch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(amqp("declaring the bench exchange"))?;
    let conns = queues.clamp(1, 8);
    let mut consumers = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let conn = connect(url, "sync-run bench fanout consumer", timeout).await?;
        let ch = conn.create_channel().await.map_err(amqp("channel"))?;
        for _ in (c..queues).step_by(conns) {
            let (_, mut consumer) = scratch_queue(&ch, Some(&exchange)).await?;
            tasks.spawn(async move {
                let mut got = 0;
                while got < messages {
                    match consumer.next().await {
                        Some(Ok(_)) => got += 1,
                        _ => break,
                    }
                }
                (got, Instant::now())
            });
        }
        consumers.push(conn);
    }
    let t0 = Instant::now();
    for _ in 0..messages {
        publish(&pch, &exchange, "").await?;
    }
    let mut delivered = 0usize;
    let mut last = t0;
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            j = tasks.join_next() => match j {
                Some(Ok((got, at))) => { delivered += got; last = last.max(at); }
                Some(Err(e)) => return Err(BrokerError::Lost { what: format!("bench consumer ({e})") }),
                None => break,
            },
            _ = &mut deadline => return Err(BrokerError::Stalled {
                what: "delivering the raw fanout (not all deliveries arrived)".into(),
                secs: 120,
            }),
        }
    }
    let _ = pch
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    close_quietly(&publisher, "bench done").await;
    for c in consumers {
        close_quietly(&c, "bench done").await;
    }
    Ok(Fanout {
        delivered,
        elapsed: last.duration_since(t0),
    })
}
