//! No error holds a job in silence: a target that keeps refusing a batch shows in the job's
//! status (what is retried, how often, since when, the last error) while the writer retries;
//! an error no retry heals is dead-lettered at the retry limit and the job finishes; one that
//! heals leaves nothing behind. Coordinator and writer run for real over the in-process bus,
//! a stand-in reader turns each window into one row batch.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use influx2td_bus::{Bus, Delivery, MemoryBus, Names, OutgoingMessage, QueueConfig, Settle};
use influx2td_bus::{StreamKind, WorkQueue};
use influx2td_coordinator::service::{self, CoordinatorSettings};
use influx2td_coordinator::{JobStatus, JobSummary, PlannedMeasurement, StatusBoard};
use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ColumnType, Message, Value, pb};
use influx2td_writer::schema::TableSchema;
use influx2td_writer::service::WriterSettings;
use influx2td_writer::{DatabaseInfo, FileSink, Sink, SinkError, SinkErrorKind};

const HOUR: i64 = 3_600_000_000_000;
/// 2024-01-01T00:00:00Z.
const BEGIN: i64 = 1_704_067_200_000_000_000;

/// The file sink, refusing the first `failures` INSERTs (all of them: `usize::MAX`) with an
/// error code influx2td does not know.
#[derive(Clone)]
struct Refusing {
    inner: FileSink,
    failures: Arc<AtomicUsize>,
}

impl Sink for Refusing {
    async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        let refused = sql.starts_with("INSERT")
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if refused {
            return Err(SinkError::new(
                SinkErrorKind::Unclassified,
                "TDengine error [0x7ABC] running INSERT: Internal error: `something new`",
            ));
        }
        self.inner.execute(sql).await
    }
    async fn describe(
        &self,
        database: &str,
        super_table: &str,
    ) -> Result<Option<TableSchema>, SinkError> {
        self.inner.describe(database, super_table).await
    }
    async fn database(&self, database: &str) -> Result<Option<DatabaseInfo>, SinkError> {
        self.inner.database(database).await
    }
    async fn flush(&self) -> Result<(), SinkError> {
        self.inner.flush().await
    }
}

/// Stands in for the readers: every window becomes one batch of two rows of `cpu`.
async fn read_every_window<B: Bus>(bus: B) {
    let names = bus.names().clone();
    let work = bus.queue(QueueConfig::new(StreamKind::Work)).await.unwrap();
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    loop {
        for delivery in work.pull(16, Duration::from_millis(200)).await.unwrap() {
            let item = pb::WorkItem::decode(delivery.payload().clone()).unwrap();
            let window = WindowRef {
                job: item.job.clone(),
                measurement: item.measurement.clone(),
                window_start_ns: item.window_start_ns,
                window_end_ns: item.window_end_ns,
                attempt: item.attempt,
                read: 1,
            };
            let mut encoder = BatchEncoder::new(window.clone());
            encoder.begin_series(
                vec![pb::Tag {
                    key: "host".into(),
                    value: "a".into(),
                }],
                vec![("value".into(), ColumnType::Double)],
            );
            for offset in [0, 1] {
                let values = [Some(Value::Double(offset as f64))];
                let time = item.window_start_ns + offset;
                assert!(encoder.push_row(time, &values).unwrap().is_none());
            }
            let batch = encoder.finish();
            data.publish(OutgoingMessage {
                subject: names.subject(StreamKind::Data, &item.measurement),
                msg_id: names.data_msg_id(&window, batch.seq),
                headers: vec![],
                payload: batch.payload().into(),
            })
            .await
            .unwrap();
            delivery.settle(Settle::Ack).await.unwrap();
        }
    }
}

/// A two-window job of `cpu` into `sink`; returns its summary and every status seen meanwhile.
async fn run_job(sink: Refusing, retry_limit: u32) -> (JobSummary, Vec<JobStatus>) {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(Names::new("influx2td", "retrying").unwrap(), state.path());
    let board = StatusBoard::new();
    let settings = CoordinatorSettings {
        exclusive_store: true,
        status: board.clone(),
        ..CoordinatorSettings::new(BEGIN, Some(BEGIN + 2 * HOUR), Duration::from_secs(3600))
    };
    let measurements = vec![PlannedMeasurement {
        name: "cpu".into(),
        bounds: Some((BEGIN, BEGIN + 2 * HOUR - 1)),
    }];
    let reader = tokio::spawn(read_every_window(bus.clone()));
    let writer_settings = WriterSettings {
        retry_limit,
        max_retry_delay: Duration::from_millis(700),
        ..WriterSettings::new("metrics")
    };
    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(influx2td_writer::service::run(
        bus.clone(),
        sink,
        writer_settings,
        async {
            let _ = writer_stopped.await;
        },
    ));
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            seen.push(board.get());
            if seen
                .last()
                .is_some_and(|status| !status.running && status.elapsed_seconds > 0.0)
            {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        service::run(bus.clone(), measurements, settings, std::future::pending()),
    )
    .await
    .expect("the job never finished")
    .unwrap();
    let seen = watcher.await.unwrap();
    stop_writer.send(()).unwrap();
    writer.await.unwrap().unwrap();
    reader.abort();
    (summary, seen)
}

fn sink(failures: usize) -> (Refusing, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let sink = Refusing {
        inner: FileSink::create(directory.path(), "w").unwrap(),
        failures: Arc::new(AtomicUsize::new(failures)),
    };
    (sink, directory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_no_retry_heals_is_shown_while_retried_then_dead_lettered_and_the_job_ends() {
    let (sink, _directory) = sink(usize::MAX);
    let (summary, seen) = run_job(sink, 5).await;

    // While the writer retried, the status said what, how often, since when and why.
    let retried = seen
        .iter()
        .flat_map(|status| status.retrying.iter())
        .max_by_key(|retrying| retrying.tries)
        .expect("no status showed the batches being retried");
    assert_eq!(retried.measurement, "cpu");
    assert_eq!(retried.role, "writer");
    assert_eq!(retried.batch, Some(0));
    assert_eq!(retried.retry_limit, Some(5));
    assert_eq!(retried.cause, "unclassified");
    assert!(retried.tries >= 2, "{retried:?}");
    assert!(retried.last_error.contains("[0x7ABC]"), "{retried:?}");
    assert!(retried.since.starts_with("20"), "{retried:?}");
    assert!(
        seen.iter().any(|status| status.retrying_count == 2),
        "both windows' batches retried at once"
    );

    // Then the rows went to the dead letters, with TDengine's reason, and the job finished.
    assert!(summary.complete);
    let cpu = &summary.measurements["cpu"];
    assert_eq!(cpu.windows_done, 2);
    assert_eq!((cpu.rows_written, cpu.rows_dead_lettered), (0, 4));
    assert!(
        cpu.dead_letter_reason
            .starts_with("TDengine refused the rows 5 times with an error retrying did not heal")
            && cpu.dead_letter_reason.contains("[0x7ABC]"),
        "{}",
        cpu.dead_letter_reason
    );
    let last = seen.last().unwrap();
    assert!(
        last.retrying.is_empty() && last.retrying_count == 0,
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_heals_is_shown_then_forgotten_and_every_row_written() {
    let (sink, _directory) = sink(3);
    let (summary, seen) = run_job(sink, 10).await;
    assert!(
        seen.iter().any(|status| !status.retrying.is_empty()),
        "the refusals were never shown"
    );
    assert!(summary.complete);
    let cpu = &summary.measurements["cpu"];
    assert_eq!((cpu.rows_written, cpu.rows_dead_lettered), (4, 0));
    assert!(seen.last().unwrap().retrying.is_empty());
}
