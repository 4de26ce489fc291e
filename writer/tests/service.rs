//! The writer role on both transports, writing through the file sink: the exact statements, the
//! DONE reports, dead-lettering by bisection, and retries.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use influx2td_bus::{
    Bus, Delivery, MemoryBus, Names, NatsBus, NatsConnect, OutgoingMessage, QueueConfig,
    QueueDepth, Settle, StreamKind, WorkQueue,
};
use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ClosedBatch, ColumnType, Message, Value, pb};
use influx2td_testkit::NatsServer;
use influx2td_writer::schema::TableSchema;
use influx2td_writer::service::{self, WriterSettings};
use influx2td_writer::{DatabaseInfo, FileSink, Sink, SinkError, SinkErrorKind};
use tokio::sync::oneshot;

fn names() -> Names {
    Names::new("influx2td", "writer-test").unwrap()
}

fn window(measurement: &str) -> WindowRef {
    WindowRef {
        job: "writer-test".into(),
        measurement: measurement.into(),
        window_start_ns: 0,
        window_end_ns: 1_800_000_000_000_000_000,
        attempt: 1,
        read: 1,
    }
}

fn tag(key: &str, value: &str) -> pb::Tag {
    pb::Tag {
        key: key.into(),
        value: value.into(),
    }
}

/// `cpu` with two series (one with a string full of quotes), and tagless `mem`.
fn batches() -> Vec<ClosedBatch> {
    let mut cpu = BatchEncoder::new(window("cpu"));
    cpu.begin_series(
        vec![tag("host", "a")],
        vec![
            ("usage".into(), ColumnType::Double),
            ("state".into(), ColumnType::String),
        ],
    );
    cpu.push_row(
        1_700_000_000_000_000_001,
        &[
            Some(Value::Double(1.5)),
            Some(Value::String("it's \"ok\"\n")),
        ],
    )
    .unwrap();
    cpu.push_row(-1_000_000_000, &[Some(Value::Double(-2.0)), None])
        .unwrap();
    cpu.begin_series(
        vec![tag("host", "b"), tag("region", "eu")],
        vec![
            ("usage".into(), ColumnType::Double),
            ("state".into(), ColumnType::String),
        ],
    );
    cpu.push_row(
        1_700_000_000_000_000_002,
        &[Some(Value::Double(0.25)), Some(Value::String("poison"))],
    )
    .unwrap();
    let mut mem = BatchEncoder::new(window("mem"));
    mem.begin_series(
        vec![],
        vec![
            ("used".into(), ColumnType::Int64),
            ("ok".into(), ColumnType::Bool),
        ],
    );
    mem.push_row(5, &[Some(Value::Int64(42)), Some(Value::Bool(true))])
        .unwrap();
    vec![cpu.finish(), mem.finish()]
}

fn message(batch: &ClosedBatch) -> OutgoingMessage {
    let decoded = pb::RowBatch::decode(batch.payload()).unwrap();
    OutgoingMessage {
        subject: names().subject(StreamKind::Data, &decoded.measurement),
        msg_id: names().data_msg_id(&window(&decoded.measurement), batch.seq),
        headers: vec![],
        payload: batch.payload().into(),
    }
}

fn settings() -> WriterSettings {
    WriterSettings {
        write_concurrency: 2,
        max_retry_delay: Duration::from_secs(1),
        ..WriterSettings::new("metrics")
    }
}

/// `t_` + md5 of `cpu,host=a` etc., computed independently (Python hashlib).
const CPU_A: &str = "t_630ceacf723a6a06ea68a91ab3ca11ee";
const CPU_B: &str = "t_e74a2569942cecd5fcfbcd53b0a9c69d";
const MEM: &str = "t_afc4fc7e48a0710a1dc94ef3e8bc5764";

/// What the file sink must hold, whatever order the two batches were written in.
fn expected_statements() -> Vec<String> {
    vec![
        "CREATE STABLE IF NOT EXISTS `metrics`.`cpu` (`_ts` TIMESTAMP,`state` VARCHAR(16),`usage` DOUBLE) TAGS (`host` NCHAR(16),`region` NCHAR(16))".into(),
        format!(
            "INSERT INTO `metrics`.`{CPU_A}` USING `metrics`.`cpu` (`host`) TAGS ('a') (`_ts`,`usage`,`state`) VALUES (1700000000000000001,1.5,'it\\'s \"ok\"\\n')(-1000000000,-2.0,NULL) \
             `metrics`.`{CPU_B}` USING `metrics`.`cpu` (`host`,`region`) TAGS ('b','eu') (`_ts`,`usage`,`state`) VALUES (1700000000000000002,0.25,'poison')"
        ),
        "CREATE STABLE IF NOT EXISTS `metrics`.`mem` (`_ts` TIMESTAMP,`ok` BOOL,`used` BIGINT) TAGS (`_tag_null` NCHAR(1))".into(),
        format!("INSERT INTO `metrics`.`{MEM}` USING `metrics`.`mem` (`_tag_null`) TAGS (NULL) (`_ts`,`used`,`ok`) VALUES (5,42,true)"),
    ]
}

/// The DDL statements and the table clauses of the INSERTs, sorted: what the statements write,
/// however the clauses were cut into statements.
fn clauses(statements: &[String]) -> Vec<String> {
    let mut clauses = Vec::new();
    for statement in statements {
        match statement.strip_prefix("INSERT INTO ") {
            Some(tables) => clauses.extend(
                tables
                    .split(" `metrics`.`t_")
                    .map(|clause| clause.trim_start_matches("`metrics`.`t_").to_owned()),
            ),
            None => clauses.push(statement.clone()),
        }
    }
    clauses.sort();
    clauses
}

fn statements(sink: &FileSink) -> Vec<String> {
    std::fs::read_to_string(sink.path())
        .unwrap()
        .lines()
        .map(|line| line.trim_end_matches(';').to_owned())
        .collect()
}

async fn collect_done<Q: WorkQueue>(done: &Q, count: usize) -> Vec<pb::WindowDone> {
    collect_reports(done, count).await.0
}

/// `count` reports of settled batches, and the notices of batches being retried on the way.
async fn collect_reports<Q: WorkQueue>(
    done: &Q,
    count: usize,
) -> (Vec<pb::WindowDone>, Vec<pb::WindowDone>) {
    let (mut reports, mut retrying) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while reports.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} DONE reports: {reports:#?}",
            reports.len()
        );
        for delivery in done.pull(10, Duration::from_millis(500)).await.unwrap() {
            let report = pb::WindowDone::decode(delivery.payload().clone()).unwrap();
            delivery.settle(Settle::Ack).await.unwrap();
            if report.outcome() == pb::Outcome::Retrying {
                retrying.push(report);
            } else {
                reports.push(report);
            }
        }
    }
    reports.sort_by(|a, b| a.measurement.cmp(&b.measurement));
    (reports, retrying)
}

/// A writer service running on `bus` into `sink`, with the queues a test talks to it by.
struct Started<B: Bus> {
    stop: oneshot::Sender<()>,
    writer: tokio::task::JoinHandle<Result<(), service::WriterError>>,
    data: B::Queue,
    done: B::Queue,
    dead: B::Queue,
}

async fn start<B: Bus, S: Sink + Clone>(bus: &B, sink: &S) -> Started<B> {
    start_with(bus, sink, settings()).await
}

async fn start_with<B: Bus, S: Sink + Clone>(
    bus: &B,
    sink: &S,
    settings: WriterSettings,
) -> Started<B> {
    let (stop, stopped) = oneshot::channel::<()>();
    let writer = tokio::spawn(service::run(bus.clone(), sink.clone(), settings, async {
        let _ = stopped.await;
    }));
    let queue = |kind| bus.queue(QueueConfig::new(kind));
    Started {
        stop,
        writer,
        data: queue(StreamKind::Data).await.unwrap(),
        done: queue(StreamKind::Done).await.unwrap(),
        dead: queue(StreamKind::DeadLetter).await.unwrap(),
    }
}

impl<B: Bus> Started<B> {
    /// Stops the writer; it must end without an error.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.writer.await.unwrap().unwrap();
    }
}

async fn writes_batches_and_reports<B: Bus>(bus: B) {
    let directory = tempfile::tempdir().unwrap();
    let sink = FileSink::create(directory.path(), "writer-1").unwrap();
    let writer = start(&bus, &sink).await;
    for batch in batches() {
        writer.data.publish(message(&batch)).await.unwrap();
    }
    let reports = collect_done(&writer.done, 2).await;
    assert_eq!(
        (
            reports[0].measurement.as_str(),
            reports[0].rows_written,
            reports[0].outcome()
        ),
        ("cpu", 3, pb::Outcome::Written)
    );
    assert_eq!(
        reports[0].totals,
        Some(pb::WindowTotals {
            batches: 1,
            rows: 3
        })
    );
    assert_eq!(
        (reports[1].measurement.as_str(), reports[1].rows_written),
        ("mem", 2 - 1)
    );
    let found = statements(&sink);
    // Small batches pulled together are written in one INSERT across super tables, else one
    // INSERT each: the same table clauses either way, and the same DDL.
    assert_eq!(
        clauses(&found),
        clauses(&expected_statements()),
        "{found:#?}"
    );
    // The two batches may be written in either order; each super table is created first.
    for table in ["`cpu`", "`mem`"] {
        let created = found
            .iter()
            .position(|s| s.starts_with("CREATE STABLE") && s.contains(table))
            .unwrap();
        let inserted = found
            .iter()
            .position(|s| {
                s.starts_with("INSERT") && s.contains(&format!("USING `metrics`.{table}"))
            })
            .unwrap();
        assert!(created < inserted, "{found:#?}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.data.depth().await.unwrap() != QueueDepth::default() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "batches not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Redelivery of the same batch: the same statements again (same table, same timestamp
    // overwrites in TDengine), and no DDL, since the schema is known. Its DONE report carries the
    // same dedup id as the first, so the coordinator does not hear of it twice.
    writer
        .data
        .publish(OutgoingMessage {
            msg_id: "again".into(),
            ..message(&batches()[1])
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.data.depth().await.unwrap() != QueueDepth::default()
        || statements(&sink).len() == found.len()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redelivered batch not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        writer
            .done
            .pull(10, Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty(),
        "DONE reported twice"
    );
    let after = statements(&sink);
    assert_eq!(after.len(), found.len() + 1);
    assert_eq!(after.last().unwrap(), &expected_statements()[3]);
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_writes_batches_and_reports() {
    let state = tempfile::tempdir().unwrap();
    writes_batches_and_reports(MemoryBus::new(names(), state.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_writes_batches_and_reports() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let connect = NatsConnect::plain(nats.url(), "writer-test");
    writes_batches_and_reports(NatsBus::connect(&connect, names()).await.unwrap()).await;
}

/// What a scripted sink answers a statement: `Some(error)` refuses it.
type Script = dyn Fn(&str) -> Option<SinkError> + Send + Sync;

/// The file sink, refusing the statements its script says, the way TDengine would.
#[derive(Clone)]
struct Scripted {
    inner: FileSink,
    script: Arc<Script>,
    executed: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(
        directory: &std::path::Path,
        script: impl Fn(&str) -> Option<SinkError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: FileSink::create(directory, "w").unwrap(),
            script: Arc::new(script),
            executed: Arc::default(),
        }
    }
}

impl Sink for Scripted {
    async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        self.executed.fetch_add(1, Ordering::SeqCst);
        if let Some(error) = (self.script)(sql) {
            return Err(error);
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

/// Refuses statements with a poison value the way TDengine refuses a row, and `mem`'s super
/// table as one of too many columns, after failing the first `transient` statements as a
/// network error would.
fn faulty(directory: &std::path::Path, transient: usize) -> Scripted {
    let transient = AtomicUsize::new(transient);
    Scripted::new(directory, move |sql| {
        if transient
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Some(SinkError::new(SinkErrorKind::Retryable, "connection reset"));
        }
        if sql.starts_with("CREATE STABLE") && sql.contains("`mem`") {
            return Some(SinkError::new(
                SinkErrorKind::Rejected,
                "TDengine error [0x2640] running CREATE STABLE: Internal error: `Too many columns`",
            ));
        }
        sql.contains("'poison'")
            .then(|| SinkError::new(SinkErrorKind::Rejected, "value out of range"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_bisected_out_dead_lettered_and_the_rest_written() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let directory = tempfile::tempdir().unwrap();
    let sink = faulty(directory.path(), 2);
    let writer = start(&bus, &sink).await;
    writer.data.publish(message(&batches()[0])).await.unwrap();

    let reports = collect_done(&writer.done, 1).await;
    assert_eq!(reports[0].outcome(), pb::Outcome::DeadLettered);
    assert_eq!(
        (reports[0].rows_written, reports[0].rows_dead_lettered),
        (2, 1)
    );
    assert_eq!(
        reports[0].reason,
        "TDengine refused the row: value out of range"
    );
    let letters = writer.dead.pull(10, Duration::from_secs(5)).await.unwrap();
    let letter = pb::DeadLetter::decode(letters[0].payload().clone()).unwrap();
    assert_eq!(letter.rows.len(), 1);
    assert_eq!(
        (
            letter.rows[0].child_table.as_str(),
            letter.rows[0].timestamp_ns
        ),
        (CPU_B, 1_700_000_000_000_000_002)
    );
    assert_eq!(
        letter.batch.unwrap().row_count(),
        3,
        "the whole batch travels for replay"
    );
    assert_eq!(letters[0].header("Influx2td-Rows"), Some("1"));

    let written = statements(&sink.inner);
    assert!(
        written.iter().all(|s| !s.contains("poison")),
        "{written:#?}"
    );
    assert!(
        written
            .iter()
            .any(|s| s.contains("(1700000000000000001,1.5,")),
        "{written:#?}"
    );
    assert!(
        written
            .iter()
            .any(|s| s.contains("(-1000000000,-2.0,NULL)")),
        "{written:#?}"
    );
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_tdengine_refuses_dead_letters_the_batch_instead_of_retrying_it() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let directory = tempfile::tempdir().unwrap();
    // Refuses the DDL of `mem` the way TDengine refuses a super table of too many columns.
    let sink = faulty(directory.path(), 0);
    let writer = start(&bus, &sink).await;
    let mem = &batches()[1];
    writer.data.publish(message(mem)).await.unwrap();
    let reports = collect_done(&writer.done, 1).await;
    assert_eq!(reports[0].outcome(), pb::Outcome::DeadLettered);
    assert_eq!(reports[0].rows_written, 0);
    assert_eq!(reports[0].rows_dead_lettered, mem.rows);
    assert_eq!(
        reports[0].reason,
        "TDengine refuses the super table: TDengine error [0x2640] running CREATE STABLE: Internal error: `Too many columns`"
    );
    let letters = writer.dead.pull(10, Duration::from_secs(5)).await.unwrap();
    let letter = pb::DeadLetter::decode(letters[0].payload().clone()).unwrap();
    assert_eq!(letter.rows.len() as u64, mem.rows);
    assert!(letter.rows.iter().all(|row| row.child_table == MEM));
    // Tried once, not again and again.
    assert_eq!(sink.executed.load(Ordering::SeqCst), 1);
    writer.stop().await;
}

#[derive(Clone, Default)]
struct FakeTarget {
    exists: bool,
    tables: u64,
    executed: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink for FakeTarget {
    async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        self.executed.lock().unwrap().push(sql.to_owned());
        Ok(())
    }
    async fn describe(&self, _: &str, _: &str) -> Result<Option<TableSchema>, SinkError> {
        Ok(None)
    }
    async fn database(&self, _: &str) -> Result<Option<DatabaseInfo>, SinkError> {
        let created = self
            .executed
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.starts_with("CREATE DATABASE"));
        Ok((self.exists || created).then_some(DatabaseInfo {
            precision: influx2td_writer::Precision::Nanoseconds,
            tables: self.tables,
        }))
    }
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[tokio::test]
async fn target_checks_name_the_database_and_the_key_to_set() {
    let missing = FakeTarget::default();
    let error = service::prepare_target(&missing, "metrics", false, false, false)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "TDengine database \"metrics\" does not exist: create it (PRECISION 'ns') or set target.create_database = true"
    );
    service::prepare_target(&missing, "metrics", true, false, false)
        .await
        .unwrap();
    assert_eq!(
        missing.executed.lock().unwrap().as_slice(),
        ["CREATE DATABASE IF NOT EXISTS `metrics` PRECISION 'ns' KEEP 36500"]
    );

    let full = FakeTarget {
        exists: true,
        tables: 3,
        ..Default::default()
    };
    let error = service::prepare_target(&full, "metrics", false, false, false)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("already holds 3 tables; set target.allow_non_empty = true"),
        "{error}"
    );
    service::prepare_target(&full, "metrics", false, true, false)
        .await
        .unwrap();
    service::prepare_target(&full, "metrics", false, false, true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_window_is_reported_without_any_statement() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let directory = tempfile::tempdir().unwrap();
    let sink = FileSink::create(directory.path(), "w").unwrap();
    let writer = start(&bus, &sink).await;
    writer
        .data
        .publish(message(&BatchEncoder::new(window("cpu")).finish()))
        .await
        .unwrap();
    let reports = collect_done(&writer.done, 1).await;
    assert_eq!(
        (reports[0].rows_written, reports[0].totals),
        (
            0,
            Some(pb::WindowTotals {
                batches: 1,
                rows: 0
            })
        )
    );
    assert!(statements(&sink).is_empty());
    writer.stop().await;
}

/// Refuses INSERTs the way TDengine refuses with an error influx2td does not know (`kind`
/// Unclassified) or a lost connection (`kind` Retryable): the first `failures` of them, or
/// every one holding `'poison'` when `failures` is `None`.
fn refusing(directory: &std::path::Path, kind: SinkErrorKind, failures: Option<usize>) -> Scripted {
    let left = failures.map(AtomicUsize::new);
    Scripted::new(directory, move |sql| {
        let refuse = match &left {
            _ if !sql.starts_with("INSERT") => false,
            Some(left) => left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
            None => sql.contains("'poison'"),
        };
        let message = match kind {
            SinkErrorKind::Retryable => "cannot connect to TDengine: connection refused",
            _ => "TDengine error [0x7ABC] running INSERT: Internal error: `something new`",
        };
        refuse.then(|| SinkError::new(kind, message))
    })
}

fn retrying_settings(retry_limit: u32) -> WriterSettings {
    WriterSettings {
        retry_limit,
        max_retry_delay: Duration::from_millis(100),
        ..settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_error_refusing_rows_forever_dead_letters_them_at_the_retry_limit() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let directory = tempfile::tempdir().unwrap();
    let sink = refusing(directory.path(), SinkErrorKind::Unclassified, None);
    let writer = start_with(&bus, &sink, retrying_settings(3)).await;
    writer.data.publish(message(&batches()[0])).await.unwrap();

    let (reports, retrying) = collect_reports(&writer.done, 1).await;
    // Tries 1 and 2 failed and said so; the third wrote what TDengine takes.
    let tries: Vec<u32> = retrying.iter().map(|notice| notice.tries).collect();
    assert_eq!(tries, [1, 2], "{retrying:#?}");
    for notice in &retrying {
        assert_eq!(notice.role, "writer");
        assert_eq!(notice.cause, "unclassified");
        assert_eq!(notice.retry_limit, 3);
        assert_eq!(notice.measurement, "cpu");
        assert!(notice.reason.contains("[0x7ABC]"), "{}", notice.reason);
    }
    assert_eq!(reports[0].outcome(), pb::Outcome::DeadLettered);
    assert_eq!(
        (reports[0].rows_written, reports[0].rows_dead_lettered),
        (2, 1),
        "the rest of the batch is written"
    );
    assert_eq!(
        reports[0].reason,
        "TDengine refused the rows 3 times with an error retrying did not heal: TDengine error [0x7ABC] running INSERT: Internal error: `something new`"
    );
    let letters = writer.dead.pull(10, Duration::from_secs(5)).await.unwrap();
    let letter = pb::DeadLetter::decode(letters[0].payload().clone()).unwrap();
    assert_eq!(
        (letter.rows.len(), letter.rows[0].timestamp_ns),
        (1, 1_700_000_000_000_000_002)
    );
    let written = statements(&sink.inner);
    assert!(
        written
            .iter()
            .any(|s| s.contains("(1700000000000000001,1.5,")),
        "{written:#?}"
    );
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_error_that_heals_before_the_limit_loses_nothing() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let directory = tempfile::tempdir().unwrap();
    let sink = refusing(directory.path(), SinkErrorKind::Unclassified, Some(2));
    let writer = start_with(&bus, &sink, retrying_settings(5)).await;
    writer.data.publish(message(&batches()[0])).await.unwrap();

    let (reports, retrying) = collect_reports(&writer.done, 1).await;
    assert_eq!(retrying.len(), 2, "{retrying:#?}");
    assert_eq!(reports[0].outcome(), pb::Outcome::Written);
    assert_eq!(
        (reports[0].rows_written, reports[0].rows_dead_lettered),
        (3, 0)
    );
    assert!(
        writer
            .dead
            .pull(10, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_retried_past_the_limit_and_shown_all_along() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let directory = tempfile::tempdir().unwrap();
    let sink = refusing(directory.path(), SinkErrorKind::Retryable, Some(5));
    let writer = start_with(&bus, &sink, retrying_settings(2)).await;
    writer.data.publish(message(&batches()[0])).await.unwrap();

    let (reports, retrying) = collect_reports(&writer.done, 1).await;
    assert_eq!(retrying.len(), 5, "{retrying:#?}");
    assert!(
        retrying
            .iter()
            .all(|notice| notice.retry_limit == 0 && notice.cause == "retryable"),
        "retried until TDengine is back: {retrying:#?}"
    );
    assert_eq!(reports[0].outcome(), pb::Outcome::Written);
    assert_eq!(reports[0].rows_written, 3);
    writer.stop().await;
}

/// A small batch of `measurement`'s window starting at `start`: one series, `rows` rows.
fn small_batch(measurement: &str, start: i64, rows: i64) -> ClosedBatch {
    let mut encoder = BatchEncoder::new(WindowRef {
        window_start_ns: start,
        window_end_ns: start + 1_000,
        ..window(measurement)
    });
    encoder.begin_series(
        vec![tag("host", "a")],
        vec![("value".into(), ColumnType::Double)],
    );
    for row in 0..rows {
        let values = [Some(Value::Double(row as f64))];
        assert!(encoder.push_row(start + row, &values).unwrap().is_none());
    }
    encoder.finish()
}

fn published(batch: &ClosedBatch, id: &str) -> OutgoingMessage {
    let decoded = pb::RowBatch::decode(batch.payload()).unwrap();
    OutgoingMessage {
        subject: names().subject(StreamKind::Data, &decoded.measurement),
        msg_id: id.into(),
        headers: vec![],
        payload: batch.payload().into(),
    }
}

/// The windows of sparse measurements are batches of a few rows: pulled together, they go into
/// TDengine in one multi-table INSERT across super tables, not one round trip each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_of_many_measurements_are_written_in_one_insert() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    let mut count = 0;
    for measurement in 0..10 {
        for window in 0..2 {
            let batch = small_batch(&format!("m{measurement}"), window * 1_000, 3);
            data.publish(published(&batch, &format!("b{count}")))
                .await
                .unwrap();
            count += 1;
        }
    }
    let directory = tempfile::tempdir().unwrap();
    let sink = FileSink::create(directory.path(), "w").unwrap();
    // A pull brings at most as many batches as writes may start: the default 50.
    let settings = WriterSettings {
        write_concurrency: 50,
        ..settings()
    };
    let writer = start_with(&bus, &sink, settings).await;
    let reports = collect_done(&writer.done, count).await;
    assert!(
        reports
            .iter()
            .all(|report| report.outcome() == pb::Outcome::Written && report.rows_written == 3),
        "{reports:#?}"
    );
    let written = statements(&sink);
    let inserts: Vec<&String> = written.iter().filter(|s| s.starts_with("INSERT")).collect();
    assert_eq!(inserts.len(), 1, "{written:#?}");
    assert_eq!(inserts[0].matches(" USING ").count(), 20);
    let model = influx2td_writer::replay::replay_directory(directory.path()).unwrap();
    assert_eq!(
        (0..10).map(|m| model.rows(&format!("m{m}"))).sum::<usize>(),
        60
    );
    writer.stop().await;
}

/// Should TDengine refuse a row of one small batch written together with others, each batch
/// is written on its own: the refused row is dead-lettered, every other row written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_among_small_batches_costs_no_other_row() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(names(), state.path());
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    data.publish(message(&batches()[0])).await.unwrap();
    data.publish(published(&small_batch("load", 0, 4), "load"))
        .await
        .unwrap();
    data.publish(published(&small_batch("temp", 0, 2), "temp"))
        .await
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let sink = faulty(directory.path(), 0);
    let settings = WriterSettings {
        write_concurrency: 50,
        ..settings()
    };
    let writer = start_with(&bus, &sink, settings).await;
    let reports = collect_done(&writer.done, 3).await;
    let outcomes: Vec<(&str, pb::Outcome, u64, u64)> = reports
        .iter()
        .map(|r| {
            (
                r.measurement.as_str(),
                r.outcome(),
                r.rows_written,
                r.rows_dead_lettered,
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("cpu", pb::Outcome::DeadLettered, 2, 1),
            ("load", pb::Outcome::Written, 4, 0),
            ("temp", pb::Outcome::Written, 2, 0),
        ]
    );
    let letters = writer.dead.pull(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = pb::DeadLetter::decode(letters[0].payload().clone()).unwrap();
    assert_eq!(letter.rows.len(), 1);
    let model =
        influx2td_writer::replay::replay_directory(sink.inner.path().parent().unwrap()).unwrap();
    assert_eq!(
        (model.rows("cpu"), model.rows("load"), model.rows("temp")),
        (2, 4, 2)
    );
    writer.stop().await;
}
