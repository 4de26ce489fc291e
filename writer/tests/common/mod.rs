//! Helpers of the live suites (the writer against a real TDengine).

#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use influx2td_bus::{
    Bus, Delivery, MemoryBus, Names, OutgoingMessage, QueueConfig, Settle, StreamKind, WorkQueue,
};
use influx2td_proto::{ClosedBatch, Message, pb};
use influx2td_writer::TdengineSink;
use influx2td_writer::service::{self, WriterSettings};
use tokio::sync::oneshot;

/// The live suites' TDengine, from `TDENGINE_DSN`; `None` (and a loud note) without it.
pub fn dsn() -> Option<String> {
    match std::env::var("TDENGINE_DSN") {
        Ok(dsn) if !dsn.is_empty() => Some(dsn),
        _ => {
            eprintln!(
                "\n=== SKIPPED: the live TDengine suite needs TDENGINE_DSN (e.g. taos://localhost:6030) ===\n"
            );
            None
        }
    }
}

/// Logs of the roles under test on stderr, when `RUST_LOG` asks for them.
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// A database name of its own for each test.
pub fn database(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("influx2td_live_{name}_{}", nanos % 1_000_000_000)
}

/// Runs a writer over `batches` and returns its reports (one per batch) and the dead letters.
pub async fn write_reporting(
    sink: &TdengineSink,
    database: &str,
    precision: influx2td_writer::Precision,
    write_concurrency: usize,
    batches: Vec<ClosedBatch>,
) -> (Vec<pb::WindowDone>, Vec<pb::DeadLetter>) {
    let state = tempfile::tempdir().unwrap();
    let names = Names::new("influx2td", "live").unwrap();
    let bus = MemoryBus::new(names.clone(), state.path());
    let settings = WriterSettings {
        precision,
        write_concurrency,
        ..WriterSettings::new(database)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let writer = tokio::spawn(service::run(bus.clone(), sink.clone(), settings, async {
        let _ = stopped.await;
    }));
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    let done = bus.queue(QueueConfig::new(StreamKind::Done)).await.unwrap();
    let dead = bus
        .queue(QueueConfig::new(StreamKind::DeadLetter))
        .await
        .unwrap();
    let count = batches.len();
    for (index, batch) in batches.into_iter().enumerate() {
        data.publish(OutgoingMessage {
            subject: names.subject(StreamKind::Data, "cpu"),
            msg_id: format!("live-{index}"),
            headers: vec![],
            payload: batch.payload().into(),
        })
        .await
        .unwrap();
    }
    let mut reports = Vec::new();
    // A batch retried without end shows as this failing, not as a test that never ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while reports.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} batches reported in 120 s: {reports:#?}",
            reports.len()
        );
        for delivery in done.pull(10, Duration::from_secs(1)).await.unwrap() {
            let report = pb::WindowDone::decode(delivery.payload().clone()).unwrap();
            delivery.settle(Settle::Ack).await.unwrap();
            // A notice that a batch is being retried settles nothing.
            if report.outcome() != pb::Outcome::Retrying {
                reports.push(report);
            }
        }
    }
    let mut letters = Vec::new();
    for delivery in dead.pull(100, Duration::from_millis(200)).await.unwrap() {
        letters.push(pb::DeadLetter::decode(delivery.payload().clone()).unwrap());
        delivery.settle(Settle::Ack).await.unwrap();
    }
    stop.send(()).unwrap();
    writer.await.unwrap().unwrap();
    (reports, letters)
}
