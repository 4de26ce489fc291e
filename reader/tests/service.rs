//! The reader role end to end on both transports: work items in, row batches out, work acked
//! only after every batch is on the bus; an unreadable window is reported; a window read while
//! influxd is down is retried and completes when it returns.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use influx2td_bus::{
    Bus, Delivery, MemoryBus, Names, NatsBus, NatsConnect, OutgoingMessage, QueueConfig,
    QueueDepth, Settle, StreamKind, WorkQueue,
};
use influx2td_config::{SourceAuth, SourceConfig};
use influx2td_proto::{Message, pb};
use influx2td_reader::InfluxClient;
use influx2td_reader::service::{self, ReaderSettings};
use influx2td_testkit::{Influxd, NatsServer};
use tokio::sync::oneshot;

const LINES: &str = "cpu,host=a usage=1.5,count=3i 1700000000000000000\ncpu,host=a usage=2.5 1700000000000000001\ncpu,host=b usage=9.5 1700000003600000000\n";

fn names() -> Names {
    Names::new("influx2td", "reader-test").unwrap()
}

fn client(influxd: &Influxd, bucket: &str) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url: influxd.url(),
        version: None,
        query_language: influx2td_config::QueryLanguage::Influxql,
        auth: SourceAuth::None,
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(300),
    };
    InfluxClient::new(&config, bucket).unwrap()
}

fn work(measurement: &str, start: i64, end: i64) -> OutgoingMessage {
    let item = pb::WorkItem {
        job: "reader-test".into(),
        measurement: measurement.into(),
        window_start_ns: start,
        window_end_ns: end,
        attempt: 1,
        split_depth: 0,
        ..Default::default()
    };
    OutgoingMessage {
        subject: names().subject(StreamKind::Work, measurement),
        msg_id: names().work_msg_id(measurement, start, end, 1),
        headers: vec![],
        payload: item.encode_to_vec().into(),
    }
}

fn settings() -> ReaderSettings {
    ReaderSettings {
        read_concurrency: 4,
        query_language: influx2td_config::QueryLanguage::Influxql,
        tsm: None,
        batch_limit: 200,
        ack_wait: Duration::from_secs(3),
        max_retry_delay: Duration::from_secs(1),
        max_window_rows: 2_000_000,
        shutdown_grace: Duration::from_secs(5),
    }
}

fn work_config() -> QueueConfig {
    QueueConfig {
        ack_wait: settings().ack_wait,
        ..QueueConfig::new(StreamKind::Work)
    }
}

/// Batches of one window as they arrive on DATA: (headers seq/rows, decoded batch).
async fn collect_window<Q: WorkQueue>(data: &Q, expected_windows: usize) -> Vec<pb::RowBatch> {
    let mut batches = Vec::new();
    let mut finished = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while finished < expected_windows {
        assert!(
            tokio::time::Instant::now() < deadline,
            "windows did not finish: {batches:#?}"
        );
        for delivery in data.pull(100, Duration::from_millis(500)).await.unwrap() {
            let batch = pb::RowBatch::decode(delivery.payload().clone()).unwrap();
            assert_eq!(
                delivery.header("Influx2td-Seq"),
                Some(batch.seq.to_string().as_str())
            );
            assert_eq!(
                delivery.header("Influx2td-Rows"),
                Some(batch.row_count().to_string().as_str())
            );
            assert_eq!(
                delivery.header("Influx2td-Measurement"),
                Some(batch.measurement.as_str())
            );
            if batch.totals.is_some() {
                finished += 1;
            }
            batches.push(batch);
            delivery.settle(Settle::Ack).await.unwrap();
        }
    }
    batches
}

async fn windows_become_batches<B: Bus>(bus: B, influxd: &Influxd) {
    let (stop, stopped) = oneshot::channel::<()>();
    let reader = tokio::spawn(service::run(
        bus.clone(),
        client(influxd, "db"),
        settings(),
        async {
            let _ = stopped.await;
        },
    ));
    let work_queue = bus.queue(work_config()).await.unwrap();
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    work_queue
        .publish(work(
            "cpu",
            1_700_000_000_000_000_000,
            1_700_000_003_600_000_000,
        ))
        .await
        .unwrap();
    work_queue
        .publish(work(
            "cpu",
            1_700_000_003_600_000_000,
            1_700_000_007_200_000_000,
        ))
        .await
        .unwrap();

    let batches = collect_window(&data, 2).await;
    let first_window: Vec<_> = batches
        .iter()
        .filter(|b| b.window_start_ns == 1_700_000_000_000_000_000)
        .collect();
    let rows: u64 = first_window.iter().map(|b| b.row_count()).sum();
    assert_eq!(rows, 2);
    let totals = first_window.iter().find_map(|b| b.totals).unwrap();
    assert_eq!(totals.rows, 2);
    assert_eq!(totals.batches as usize, first_window.len());
    assert!(
        first_window.len() >= 2,
        "a 200-byte limit cuts this window into several batches"
    );
    let mut seqs: Vec<u32> = first_window.iter().map(|b| b.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..totals.batches).collect::<Vec<_>>());
    assert!(first_window.iter().all(|b| b.read == 1 && b.attempt == 1));
    let second_rows: u64 = batches
        .iter()
        .filter(|b| b.window_start_ns == 1_700_000_003_600_000_000)
        .map(|b| b.row_count())
        .sum();
    assert_eq!(second_rows, 1);

    // Every work item was acknowledged once its batches were on the bus.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while work_queue.depth().await.unwrap() != QueueDepth::default() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "work not acknowledged: {:?}",
            work_queue.depth().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

async fn an_unreadable_window_is_reported<B: Bus>(bus: B, influxd: &Influxd) {
    let (stop, stopped) = oneshot::channel::<()>();
    let reader = tokio::spawn(service::run(
        bus.clone(),
        client(influxd, "no_such_db"),
        settings(),
        async {
            let _ = stopped.await;
        },
    ));
    let work_queue = bus.queue(work_config()).await.unwrap();
    let done = bus.queue(QueueConfig::new(StreamKind::Done)).await.unwrap();
    work_queue.publish(work("cpu", 0, 10)).await.unwrap();
    let reports = done.pull(1, Duration::from_secs(20)).await.unwrap();
    let report = pb::WindowDone::decode(reports[0].payload().clone()).unwrap();
    assert_eq!(report.outcome(), pb::Outcome::ReadFailed);
    assert!(report.reason.contains("not found"), "{}", report.reason);
    assert_eq!(
        (
            report.measurement.as_str(),
            report.window_start_ns,
            report.window_end_ns
        ),
        ("cpu", 0, 10)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while work_queue.depth().await.unwrap().messages != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "failed work item was not terminated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    reader.await.unwrap().unwrap();
}

fn seeded_influxd() -> Option<Influxd> {
    let influxd = Influxd::start()?;
    influxd.query("CREATE DATABASE db");
    influxd.write("db", LINES);
    Some(influxd)
}

async fn nats_bus(server: &NatsServer) -> NatsBus {
    let connect = NatsConnect::plain(server.url(), "reader-test");
    NatsBus::connect(&connect, names()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_windows_become_batches() {
    let Some(influxd) = seeded_influxd() else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    windows_become_batches(MemoryBus::new(names(), state.path()), &influxd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_windows_become_batches() {
    let (Some(influxd), Some(nats)) = (seeded_influxd(), NatsServer::start()) else {
        return;
    };
    windows_become_batches(nats_bus(&nats).await, &influxd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_an_unreadable_window_is_reported() {
    let Some(influxd) = seeded_influxd() else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    an_unreadable_window_is_reported(MemoryBus::new(names(), state.path()), &influxd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_an_unreadable_window_is_reported() {
    let (Some(influxd), Some(nats)) = (seeded_influxd(), NatsServer::start()) else {
        return;
    };
    an_unreadable_window_is_reported(nats_bus(&nats).await, &influxd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_read_while_influxd_is_down_completes_when_it_returns() {
    let (Some(mut influxd), Some(nats)) = (seeded_influxd(), NatsServer::start()) else {
        return;
    };
    let bus = nats_bus(&nats).await;
    // Schema known before the outage, so the failure is the window read itself.
    let (stop, stopped) = oneshot::channel::<()>();
    let reader = tokio::spawn(service::run(
        bus.clone(),
        client(&influxd, "db"),
        settings(),
        async {
            let _ = stopped.await;
        },
    ));
    let work_queue = bus.queue(work_config()).await.unwrap();
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    work_queue
        .publish(work(
            "cpu",
            1_700_000_003_600_000_000,
            1_700_000_007_200_000_000,
        ))
        .await
        .unwrap();
    collect_window(&data, 1).await;

    influxd.stop();
    work_queue
        .publish(work(
            "cpu",
            1_700_000_000_000_000_000,
            1_700_000_003_600_000_000,
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        data.pull(10, Duration::ZERO).await.unwrap().is_empty(),
        "batches while influxd was down"
    );
    influxd.start_again();
    let batches = collect_window(&data, 1).await;
    assert_eq!(batches.iter().map(|b| b.row_count()).sum::<u64>(), 2);
    assert!(
        batches.iter().all(|b| b.read >= 2),
        "the successful read is a redelivery"
    );
    stop.send(()).unwrap();
    reader.await.unwrap().unwrap();
}

/// A work item reading `measurements` together over `[start, end)`.
fn group_work(measurements: &[&str], start: i64, end: i64) -> OutgoingMessage {
    let item = pb::WorkItem {
        job: "reader-test".into(),
        measurement: measurements[0].into(),
        window_start_ns: start,
        window_end_ns: end,
        attempt: 1,
        measurements: measurements.iter().map(|m| (*m).to_owned()).collect(),
        ..Default::default()
    };
    influx2td_bus::work_item_message(&names(), &item)
}

/// Until each of `measurements` has a whole read: the batches of such reads, by measurement
/// (the first whole read each), and every batch seen.
async fn whole_reads<Q: WorkQueue>(
    data: &Q,
    measurements: &[&str],
) -> (
    std::collections::BTreeMap<String, Vec<pb::RowBatch>>,
    Vec<pb::RowBatch>,
) {
    let mut seen = Vec::new();
    let mut whole = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while whole.len() < measurements.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reads did not finish: {seen:#?}"
        );
        for delivery in data.pull(100, Duration::from_millis(500)).await.unwrap() {
            let batch = pb::RowBatch::decode(delivery.payload().clone()).unwrap();
            delivery.settle(Settle::Ack).await.unwrap();
            seen.push(batch.clone());
            let Some(totals) = batch.totals else { continue };
            let read: Vec<pb::RowBatch> = seen
                .iter()
                .filter(|b| b.measurement == batch.measurement && b.read == batch.read)
                .cloned()
                .collect();
            assert_eq!(read.len(), totals.batches as usize, "{read:#?}");
            whole.entry(batch.measurement.clone()).or_insert(read);
        }
    }
    (whole, seen)
}

/// Reads `measurements` together over the first two hours of the seeded data (with `mem` added)
/// through a reader with `settings`; the whole reads and every batch, as [`whole_reads`].
async fn read_together(
    settings: ReaderSettings,
    measurements: &[&str],
) -> Option<(
    std::collections::BTreeMap<String, Vec<pb::RowBatch>>,
    Vec<pb::RowBatch>,
)> {
    let influxd = seeded_influxd()?;
    influxd.write(
        "db",
        "mem used=1i 1700000000000000005\nmem,host=z used=2i 1700000000000000006\n",
    );
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let (stop, stopped) = oneshot::channel::<()>();
    let reader = tokio::spawn(service::run(
        bus.clone(),
        client(&influxd, "db"),
        settings,
        async {
            let _ = stopped.await;
        },
    ));
    let work_queue = bus.queue(work_config()).await.unwrap();
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    let (start, end) = (1_700_000_000_000_000_000, 1_700_000_007_200_000_000);
    work_queue
        .publish(group_work(measurements, start, end))
        .await
        .unwrap();
    let read = whole_reads(&data, measurements).await;
    stop.send(()).unwrap();
    reader.await.unwrap().unwrap();
    Some(read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurements_read_together_are_each_published_whole_and_flagged() {
    let Some((whole, seen)) = read_together(settings(), &["cpu", "mem", "nothing_here"]).await
    else {
        return;
    };
    let rows = |m: &str| whole[m].iter().map(|b| b.row_count()).sum::<u64>();
    assert_eq!((rows("cpu"), rows("mem"), rows("nothing_here")), (3, 2, 0));
    assert!(
        seen.iter()
            .all(|b| b.read == (influx2td_proto::GROUPED_READ | 1) && b.attempt == 1),
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurements_too_many_rows_to_read_together_are_read_one_by_one() {
    // cpu's 3 rows and mem's 2 fit a read each, not one read together (the 200-byte batches
    // let the read stop before cpu's last batch).
    let settings = ReaderSettings {
        max_window_rows: 3,
        ..settings()
    };
    let Some((whole, seen)) = read_together(settings, &["mem", "cpu"]).await else {
        return;
    };
    let rows = |m: &str| whole[m].iter().map(|b| b.row_count()).sum::<u64>();
    assert_eq!((rows("cpu"), rows("mem")), (3, 2));
    assert!(
        whole["cpu"].iter().all(|b| b.read == 1),
        "cpu is read on its own: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|b| b.read == (influx2td_proto::GROUPED_READ | 1)),
        "the read together began: {seen:#?}"
    );
}
