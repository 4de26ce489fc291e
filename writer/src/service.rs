//! The writer role: pulls row batches, makes sure the super table can hold them (DDL only on
//! change), writes them as multi-table INSERTs, makes them durable, reports the batch to the
//! coordinator on DONE, and only then acknowledges it. Rows TDengine refuses for good are found
//! by bisecting the statement, parked on the DEAD stream with their reason, and reported; the
//! other rows are written. Anything retrying can fix is retried with growing delays.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influx2td_bus::{
    Bus, BusError, Delivery, OutgoingMessage, QueueConfig, Settle, StreamKind, WorkQueue,
};
use influx2td_proto::batch::{BatchDecodeError, WindowRef};
use influx2td_proto::names::{Names, header};
use influx2td_proto::{Message, pb};
use thiserror::Error;
use tracing::Instrument;

use crate::convert::{Precision, Rejected, convert, needs, refuse_batch};
use crate::mapping::super_table_name;
use crate::rows::{Segment, TableRows, cut, rows_in};
use crate::schema::{TableSchema, plan};
use crate::sink::InsertTarget;
use crate::sink::{DatabaseInfo, Sink, SinkError, SinkErrorKind};
use crate::sql::{InsertBuilder, create_database};

/// Tries of a batch before an error not known to heal by itself dead-letters its rows: with
/// the growing delays between tries (1 s, 2 s, 4 s, … at most `max_retry_delay`) about 4 minutes.
pub const DEFAULT_RETRY_LIMIT: u32 = 10;

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// The TDengine database.
    pub database: String,
    /// Rows per INSERT at most.
    pub batch_size: usize,
    /// Batches written at once.
    pub write_concurrency: usize,
    /// Timestamp precision of the database.
    pub precision: Precision,
    /// The DATA queue's ack wait.
    pub ack_wait: Duration,
    pub max_retry_delay: Duration,
    pub shutdown_grace: Duration,
    /// Tries of a batch TDengine keeps refusing with an error not known to heal by itself
    /// (see [`SinkError::is_bounded`]); at the last one the rows it refuses are dead-lettered.
    pub retry_limit: u32,
}

impl WriterSettings {
    pub fn new(database: &str) -> Self {
        Self {
            database: database.to_owned(),
            batch_size: 5000,
            write_concurrency: 50,
            precision: Precision::Nanoseconds,
            ack_wait: QueueConfig::new(StreamKind::Data).ack_wait,
            max_retry_delay: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(20),
            retry_limit: DEFAULT_RETRY_LIMIT,
        }
    }
}

#[derive(Debug, Error)]
pub enum WriterError {
    #[error("writer cannot use the bus: {0}")]
    Bus(#[from] BusError),
    #[error("{0}")]
    Target(#[from] SinkError),
}

/// Checks the target database before a job writes: it exists (or is created when
/// `create_database`), and it is empty unless `allow_non_empty` or the job is resuming its own
/// earlier run. Returns its precision; warns when it is coarser than nanoseconds.
pub async fn prepare_target<S: Sink>(
    sink: &S,
    database: &str,
    create_database_if_missing: bool,
    allow_non_empty: bool,
    resuming: bool,
) -> Result<DatabaseInfo, SinkError> {
    let info = match sink.database(database).await? {
        Some(info) => info,
        None if create_database_if_missing => {
            sink.execute(&create_database(database)).await?;
            sink.database(database).await?.ok_or_else(|| {
                SinkError::new(
                    SinkErrorKind::Fatal,
                    format!("database {database:?} was created but cannot be found"),
                )
            })?
        }
        None => {
            return Err(SinkError::new(
                SinkErrorKind::Fatal,
                format!(
                    "TDengine database {database:?} does not exist: create it (PRECISION 'ns') or set target.create_database = true"
                ),
            ));
        }
    };
    if info.tables > 0 && !allow_non_empty && !resuming {
        return Err(SinkError::new(
            SinkErrorKind::Fatal,
            format!(
                "TDengine database {database:?} already holds {} tables; set target.allow_non_empty = true to write into it anyway",
                info.tables
            ),
        ));
    }
    if info.precision != Precision::Nanoseconds {
        tracing::warn!(
            database,
            precision = ?info.precision,
            "the target database is not nanosecond precision: timestamps are rounded down and rows closer than its precision overwrite each other"
        );
    }
    Ok(info)
}

struct Context<B: Bus, S: Sink> {
    names: Names,
    sink: S,
    done: B::Queue,
    dead: B::Queue,
    settings: WriterSettings,
    schemas: Mutex<HashMap<String, TableSchema>>,
    ddl_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl<B: Bus, S: Sink> Context<B, S> {
    fn ddl_lock(&self, super_table: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.ddl_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(super_table.to_owned()).or_default().clone()
    }

    fn cached_schema(&self, super_table: &str) -> Option<TableSchema> {
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(super_table)
            .cloned()
    }

    fn set_schema(&self, super_table: &str, schema: Option<TableSchema>) {
        let mut schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        match schema {
            Some(schema) => schemas.insert(super_table.to_owned(), schema),
            None => schemas.remove(super_table),
        };
    }
}

/// What became of one batch.
#[derive(Debug, Default)]
struct Written {
    rows: u64,
    rejected: Vec<Rejected>,
}

/// Runs the writer until `shutdown` completes; batches in flight then get `shutdown_grace`.
pub async fn run<B: Bus, S: Sink>(
    bus: B,
    sink: S,
    settings: WriterSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WriterError> {
    tokio::pin!(shutdown);
    // Opening the queues retries while NATS is away or refuses; a stop asked for meanwhile ends it.
    let queues = influx2td_bus::open_queues(
        &bus,
        [
            QueueConfig {
                ack_wait: settings.ack_wait,
                ..QueueConfig::new(StreamKind::Data)
            },
            QueueConfig::new(StreamKind::Done),
            QueueConfig::new(StreamKind::DeadLetter),
        ],
        |_| (),
    );
    let Some(opened) = influx2td_bus::unless_stopped(&mut shutdown, queues).await else {
        return Ok(());
    };
    let [data, done, dead] = opened?;
    let context = Arc::new(Context::<B, S> {
        names: bus.names().clone(),
        sink,
        done,
        dead,
        settings: settings.clone(),
        schemas: Mutex::default(),
        ddl_locks: Mutex::default(),
    });
    let concurrency = settings.write_concurrency;
    influx2td_bus::consume_pulls(
        &data,
        "row batches",
        move || concurrency,
        move |deliveries| plan_writes(&context, deliveries),
        shutdown,
        settings.shutdown_grace,
    )
    .await;
    Ok(())
}

/// Row batches at most this large are written together with the other small ones of their
/// pull, in multi-table INSERTs across super tables: the window of a sparse measurement is a
/// batch of a few rows, and a round trip for each costs more than the rows themselves.
pub const SMALL_BATCH_BYTES: usize = 16 * 1024;

type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The tasks for one pull: every large batch on its own, the small ones together.
fn plan_writes<B: Bus, S: Sink>(
    context: &Arc<Context<B, S>>,
    deliveries: Vec<<B::Queue as WorkQueue>::Delivery>,
) -> Vec<Task> {
    let (small, large): (Vec<_>, Vec<_>) = deliveries
        .into_iter()
        .partition(|delivery| delivery.size() <= SMALL_BATCH_BYTES);
    let mut tasks: Vec<Task> = Vec::with_capacity(large.len() + 1);
    for delivery in large {
        let context = context.clone();
        tasks.push(Box::pin(async move { handle(&context, delivery).await }));
    }
    match small.len() {
        0 => {}
        1 => {
            let context = context.clone();
            let delivery = small.into_iter().next();
            tasks.push(Box::pin(async move {
                if let Some(delivery) = delivery {
                    handle(&context, delivery).await;
                }
            }));
        }
        _ => {
            let context = context.clone();
            tasks.push(Box::pin(
                async move { handle_together(&context, small).await },
            ));
        }
    }
    tasks
}

/// The `write batch` span of one batch, a part of its window's trace.
fn batch_span<D: Delivery>(delivery: &D, batch: &pb::RowBatch) -> tracing::Span {
    // The reader's publish of this batch is its parent.
    let span = tracing::debug_span!(
        "write batch",
        measurement = batch.measurement,
        window_start = batch.window_start_ns,
        window_end = batch.window_end_ns,
        seq = batch.seq,
        rows = batch.row_count(),
        bytes = delivery.size(),
        written = tracing::field::Empty,
        dead_lettered = tracing::field::Empty,
        outcome = tracing::field::Empty,
        together = tracing::field::Empty,
    );
    influx2td_telemetry::continue_trace(&span, |name| delivery.header(name));
    span
}

/// Small batches, written together in as few statements as TDengine takes; should anything go
/// wrong (a row refused, a schema to widen, a server away) each is written on its own instead,
/// with all the care a single batch gets.
async fn handle_together<B: Bus, S: Sink>(
    context: &Context<B, S>,
    deliveries: Vec<<B::Queue as WorkQueue>::Delivery>,
) {
    let started = std::time::Instant::now();
    let mut batches = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match row_batch(&delivery) {
            Ok(batch) => batches.push((delivery, batch)),
            Err(error) => {
                tracing::error!(subject = delivery.subject(), %error, "dropping a message that is not a RowBatch");
                let reason = format!("not a RowBatch: {error}");
                settle(delivery, Settle::Terminate { reason }).await;
            }
        }
    }
    let spans: Vec<tracing::Span> = batches
        .iter()
        .map(|(delivery, batch)| batch_span(delivery, batch))
        .collect();
    let together = batches.len();
    let written = write_together(context, &batches, &spans).await;
    if !written {
        // One by one: each with its own retries, refusals and dead letters.
        for ((delivery, batch), span) in batches.into_iter().zip(spans) {
            handle_batch(context, delivery, batch)
                .instrument(span)
                .await;
        }
        return;
    }
    for ((delivery, batch), span) in batches.into_iter().zip(spans) {
        span.record("together", together);
        let written = Written {
            rows: batch.row_count(),
            rejected: Vec::new(),
        };
        settle_written(context, delivery, &batch, written, started)
            .instrument(span)
            .await;
    }
}

/// Writes `batches` (none of whose rows TDengine may refuse) in multi-table INSERTs across
/// their super tables; `false` when any of it failed (nothing is lost: written rows are written
/// again, same table and timestamp).
async fn write_together<B: Bus, S: Sink, D: Delivery>(
    context: &Context<B, S>,
    batches: &[(D, Arc<pb::RowBatch>)],
    spans: &[tracing::Span],
) -> bool {
    let mut converted = Vec::with_capacity(batches.len());
    for ((_, batch), span) in batches.iter().zip(spans) {
        if batch.row_count() == 0 {
            continue;
        }
        let super_table = super_table_name(&batch.measurement);
        let Ok(schema) = ensure_schema(context, batch, &super_table)
            .instrument(span.clone())
            .await
        else {
            return false;
        };
        let rows = convert(batch, &schema, context.settings.precision);
        if !rows.rejected.is_empty() {
            return false;
        }
        converted.push((super_table, rows.tables, span));
    }
    let mut builder = InsertBuilder::with_max_bytes(
        &context.settings.database,
        "",
        context.settings.batch_size,
        crate::sql::MAX_SQL_BYTES,
    );
    for (super_table, tables, _) in &converted {
        for table in tables {
            builder.add_rows_into(super_table, table, 0..table.row_count());
        }
    }
    // One `tdengine insert` span per batch, each a part of its own window's trace.
    let inserts: Vec<tracing::Span> = converted
        .iter()
        .map(|(_, tables, span)| {
            let rows: usize = tables.iter().map(TableRows::row_count).sum();
            tracing::debug_span!(parent: *span, "tdengine insert", rows, together = batches.len())
        })
        .collect();
    for statement in builder.finish() {
        if let Err(error) = context.sink.execute(&statement.sql).await {
            tracing::debug!(%error, batches = batches.len(), "small batches not written together; one by one instead");
            if error.kind == SinkErrorKind::Stale {
                for (super_table, _, _) in &converted {
                    context.set_schema(super_table, None);
                }
            }
            return false;
        }
    }
    drop(inserts);
    context.sink.flush().await.is_ok()
}

/// The delivery's row batch: as the in-process bus carried it from the reader, or decoded.
fn row_batch<D: Delivery>(delivery: &D) -> Result<Arc<pb::RowBatch>, BatchDecodeError> {
    if let Some(batch) = delivery.object::<pb::RowBatch>() {
        return Ok(batch);
    }
    pb::RowBatch::decode_checked(delivery.payload().clone()).map(Arc::new)
}

async fn handle<B: Bus, S: Sink>(
    context: &Context<B, S>,
    delivery: <B::Queue as WorkQueue>::Delivery,
) {
    let batch = match row_batch(&delivery) {
        Ok(batch) => batch,
        Err(error) => {
            tracing::error!(subject = delivery.subject(), %error, "dropping a message that is not a RowBatch");
            let reason = format!("not a RowBatch: {error}");
            settle(delivery, Settle::Terminate { reason }).await;
            return;
        }
    };
    let span = batch_span(&delivery, &batch);
    handle_batch(context, delivery, batch)
        .instrument(span)
        .await;
}

async fn handle_batch<B: Bus, S: Sink>(
    context: &Context<B, S>,
    delivery: <B::Queue as WorkQueue>::Delivery,
    batch: Arc<pb::RowBatch>,
) {
    let started = std::time::Instant::now();
    let tries = delivery.delivered();
    // The last try: what is still refused for a reason retrying has not healed is dead-lettered.
    let last_try = tries >= u64::from(context.settings.retry_limit.max(1));
    let outcome = write_batch(context, &batch, last_try).await;
    let written = match outcome {
        Ok(written) => written,
        Err(error) => {
            let delay = match error.kind {
                // Nothing works until someone acts: retry, slowly, rather than drop the batch.
                SinkErrorKind::Fatal => context.settings.max_retry_delay,
                _ => retry_delay(tries, context.settings.max_retry_delay),
            };
            tracing::Span::current().record("outcome", "retry");
            influx2td_telemetry::metrics().retry(&batch.job, "writer", error.kind.label());
            tracing::warn!(
                measurement = batch.measurement, window_start = batch.window_start_ns, seq = batch.seq,
                tries, cause = error.kind.label(), %error, retry_in_ms = delay.as_millis() as u64,
                "batch not written, will retry"
            );
            let limit = if error.is_bounded() {
                context.settings.retry_limit
            } else {
                0
            };
            report_retrying(context, &batch, tries, &error, limit).await;
            settle(delivery, Settle::Nak { delay }).await;
            return;
        }
    };
    settle_written(context, delivery, &batch, written, started).await;
}

/// Reports a written batch on DONE (and its refused rows on DEAD), then acknowledges it.
async fn settle_written<B: Bus, S: Sink>(
    context: &Context<B, S>,
    delivery: <B::Queue as WorkQueue>::Delivery,
    batch: &pb::RowBatch,
    written: Written,
    started: std::time::Instant,
) {
    tracing::Span::current()
        .record("written", written.rows)
        .record("dead_lettered", written.rejected.len())
        .record("outcome", "written");
    if let Err(error) = report(context, batch, &written).await {
        // The rows are in TDengine; redelivery rewrites them (idempotent) and reports again.
        tracing::warn!(%error, "cannot report a written batch; it will be redelivered");
        settle(
            delivery,
            Settle::Nak {
                delay: Duration::from_secs(1),
            },
        )
        .await;
        return;
    }
    influx2td_telemetry::metrics().written(
        &batch.job,
        &batch.measurement,
        written.rows,
        written.rejected.len() as u64,
        delivery.size() as u64,
        started.elapsed(),
    );
    tracing::debug!(
        measurement = batch.measurement,
        window_start = batch.window_start_ns,
        seq = batch.seq,
        rows = written.rows,
        dead_lettered = written.rejected.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch written"
    );
    settle(delivery, Settle::Ack).await;
}

fn retry_delay(delivered: u64, max: Duration) -> Duration {
    let exponent = u32::try_from(delivered.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    Duration::from_secs(1u64 << exponent).min(max)
}

async fn settle<D: Delivery>(delivery: D, settle: Settle) {
    if let Err(error) = delivery.settle(settle).await {
        tracing::warn!(%error, "cannot settle a row batch; it will be redelivered");
    }
}

/// Whether `error` refuses the rows for good: TDengine says so, or on the last try an error
/// that retrying has not healed.
fn refuses(error: &SinkError, last_try: bool) -> bool {
    error.kind == SinkErrorKind::Rejected || (last_try && error.is_bounded())
}

/// Writes every row of `batch` that TDengine can hold, durably. On the `last_try`, errors not
/// known to heal by themselves count as refusals: those rows are set aside, the rest written.
async fn write_batch<B: Bus, S: Sink>(
    context: &Context<B, S>,
    batch: &pb::RowBatch,
    last_try: bool,
) -> Result<Written, SinkError> {
    // An empty window still sends one batch, so that its completion is acknowledged; it needs
    // no table.
    if batch.row_count() == 0 {
        return Ok(Written::default());
    }
    let super_table = super_table_name(&batch.measurement);
    let schema = match ensure_schema(context, batch, &super_table).await {
        Ok(schema) => schema,
        // TDengine refuses the table these rows need (more columns than it allows, say):
        // retrying cannot help; the rows are parked with its reason, to replay once fixed.
        Err(error) if refuses(&error, last_try) => {
            let reason = if error.kind == SinkErrorKind::Rejected {
                format!("TDengine refuses the super table: {error}")
            } else {
                gave_up(&error, context.settings.retry_limit)
            };
            return Ok(Written {
                rows: 0,
                rejected: refuse_batch(batch, &reason),
            });
        }
        Err(error) => return Err(error),
    };
    let converted = convert(batch, &schema, context.settings.precision);
    let mut written = Written {
        rows: 0,
        rejected: converted.rejected,
    };
    let target = InsertTarget {
        database: &context.settings.database,
        super_table: &super_table,
        precision: context.settings.precision,
    };
    for segments in cut(&converted.tables, context.settings.batch_size) {
        let rows = rows_in(&segments);
        let span = tracing::debug_span!("tdengine insert", rows, tables = segments.len());
        match context
            .sink
            .insert(&target, &converted.tables, &segments)
            .instrument(span)
            .await
        {
            Ok(()) => written.rows += rows as u64,
            Err(error) if refuses(&error, last_try) => {
                written.rows += bisect(
                    context,
                    &super_table,
                    &converted.tables,
                    &segments,
                    &mut written.rejected,
                    last_try,
                )
                .await?;
            }
            Err(error) => {
                if error.kind == SinkErrorKind::Stale {
                    context.set_schema(&super_table, None);
                }
                return Err(error);
            }
        }
    }
    context.sink.flush().await?;
    Ok(written)
}

/// Writes refused rows again as SQL, in halves, until the rows TDengine refuses are isolated
/// (with its reason for each); returns how many were written.
async fn bisect<B: Bus, S: Sink>(
    context: &Context<B, S>,
    super_table: &str,
    tables: &[TableRows<'_>],
    segments: &[Segment],
    rejected: &mut Vec<Rejected>,
    last_try: bool,
) -> Result<u64, SinkError> {
    let mut written = 0;
    let mut pending: Vec<Vec<Segment>> = split(segments);
    while let Some(segments) = pending.pop() {
        let rows = rows_in(&segments);
        let mut builder = InsertBuilder::with_max_bytes(
            &context.settings.database,
            super_table,
            usize::MAX,
            usize::MAX,
        );
        for (table, range) in &segments {
            builder.add_rows(&tables[*table], range.clone());
        }
        let Some(statement) = builder.finish().pop() else {
            continue;
        };
        match context.sink.execute(&statement.sql).await {
            Ok(()) => written += rows as u64,
            Err(error) if refuses(&error, last_try) && rows == 1 => {
                let (table, range) = &segments[0];
                let reason = if error.kind == SinkErrorKind::Rejected {
                    format!("TDengine refused the row: {}", error.message)
                } else {
                    gave_up(&error, context.settings.retry_limit)
                };
                rejected.push(Rejected {
                    child_table: tables[*table].child_table.clone(),
                    timestamp_ns: context
                        .settings
                        .precision
                        .to_nanoseconds(tables[*table].timestamps[range.start]),
                    reason,
                });
            }
            Err(error) if refuses(&error, last_try) => pending.extend(split(&segments)),
            Err(error) => return Err(error),
        }
    }
    Ok(written)
}

/// The reason rows are dead-lettered for an error that retrying did not heal.
fn gave_up(error: &SinkError, retry_limit: u32) -> String {
    format!(
        "TDengine refused the rows {retry_limit} times with an error retrying did not heal: {error}"
    )
}

/// Two halves (by rows) of a set of segments.
fn split(segments: &[Segment]) -> Vec<Vec<Segment>> {
    let total: usize = segments.iter().map(|(_, range)| range.len()).sum();
    let half = total / 2;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut counted = 0;
    for (table, range) in segments {
        if counted >= half {
            second.push((*table, range.clone()));
        } else if counted + range.len() <= half {
            first.push((*table, range.clone()));
        } else {
            let cut = range.start + (half - counted);
            first.push((*table, range.start..cut));
            second.push((*table, cut..range.end));
        }
        counted += range.len();
    }
    [first, second]
        .into_iter()
        .filter(|half| !half.is_empty())
        .collect()
}

/// The super table's schema after any DDL this batch needs; DDL only on change.
async fn ensure_schema<B: Bus, S: Sink>(
    context: &Context<B, S>,
    batch: &pb::RowBatch,
    super_table: &str,
) -> Result<TableSchema, SinkError> {
    let lock = context.ddl_lock(super_table);
    let _guard = lock.lock().await;
    let database = &context.settings.database;
    let existing = match context.cached_schema(super_table) {
        Some(schema) => Some(schema),
        None => context.sink.describe(database, super_table).await?,
    };
    let (ddl, mut schema) = plan(
        database,
        super_table,
        existing.as_ref(),
        &needs(batch, existing.as_ref()),
    );
    let mut raced = false;
    for statement in &ddl {
        match context.sink.execute(statement).await {
            Ok(()) => {}
            // Another writer got there first.
            Err(error) if error.kind == SinkErrorKind::AlreadyExists => raced = true,
            Err(error) => {
                context.set_schema(super_table, None);
                return Err(error);
            }
        }
    }
    if raced && let Some(actual) = context.sink.describe(database, super_table).await? {
        schema = actual;
    }
    context.set_schema(super_table, Some(schema.clone()));
    Ok(schema)
}

fn window_of(batch: &pb::RowBatch) -> WindowRef {
    WindowRef {
        job: batch.job.clone(),
        measurement: batch.measurement.clone(),
        window_start_ns: batch.window_start_ns,
        window_end_ns: batch.window_end_ns,
        attempt: batch.attempt,
        read: batch.read,
    }
}

/// Tells the coordinator that `batch` failed and will be tried again (best effort: the notice
/// only feeds `status`).
async fn report_retrying<B: Bus, S: Sink>(
    context: &Context<B, S>,
    batch: &pb::RowBatch,
    tries: u64,
    error: &SinkError,
    retry_limit: u32,
) {
    let message = influx2td_bus::retrying_message(
        &context.names,
        &window_of(batch),
        &influx2td_bus::Retrying {
            role: "writer",
            seq: Some(batch.seq),
            tries,
            cause: error.kind.label(),
            reason: &error.message,
            retry_limit,
        },
    );
    if let Err(error) = context.done.publish(message).await {
        tracing::debug!(%error, "cannot report a batch being retried");
    }
}

/// Parks rejected rows on DEAD, then tells the coordinator on DONE.
async fn report<B: Bus, S: Sink>(
    context: &Context<B, S>,
    batch: &pb::RowBatch,
    written: &Written,
) -> Result<(), BusError> {
    let names = &context.names;
    let window = window_of(batch);
    let batch_id = names.data_msg_id(&window, batch.seq);
    let mut headers = influx2td_bus::window_headers(
        names,
        &batch.measurement,
        batch.window_start_ns,
        batch.window_end_ns,
        batch.attempt,
    );
    headers.push((header::SEQ.to_owned(), batch.seq.to_string()));
    let first_reason = written
        .rejected
        .first()
        .map(|rejected| rejected.reason.clone())
        .unwrap_or_default();
    if !written.rejected.is_empty() {
        tracing::warn!(
            measurement = batch.measurement,
            window_start = batch.window_start_ns,
            seq = batch.seq,
            rows = written.rejected.len(),
            reason = first_reason,
            "rows dead-lettered"
        );
        let letter = pb::DeadLetter {
            batch: Some(batch.clone()),
            rows: written
                .rejected
                .iter()
                .map(|rejected| pb::RejectedRow {
                    child_table: rejected.child_table.clone(),
                    timestamp_ns: rejected.timestamp_ns,
                    reason: rejected.reason.clone(),
                })
                .collect(),
        };
        let mut dead_headers = headers.clone();
        dead_headers.push((header::ROWS.to_owned(), written.rejected.len().to_string()));
        context
            .dead
            .publish(OutgoingMessage {
                subject: names.subject(StreamKind::DeadLetter, &batch.measurement),
                msg_id: format!("{batch_id}/dead"),
                headers: dead_headers,
                payload: letter.encode_to_vec().into(),
            })
            .await?;
    }
    let outcome = if written.rejected.is_empty() {
        pb::Outcome::Written
    } else {
        pb::Outcome::DeadLettered
    };
    let done = pb::WindowDone {
        job: batch.job.clone(),
        measurement: batch.measurement.clone(),
        window_start_ns: batch.window_start_ns,
        window_end_ns: batch.window_end_ns,
        attempt: batch.attempt,
        seq: batch.seq,
        rows_written: written.rows,
        outcome: outcome as i32,
        reason: first_reason,
        rows_dead_lettered: written.rejected.len() as u64,
        totals: batch.totals,
        read: batch.read,
        ..Default::default()
    };
    headers.push((header::ROWS.to_owned(), written.rows.to_string()));
    context
        .done
        .publish(OutgoingMessage {
            subject: names.subject(StreamKind::Done, &batch.measurement),
            msg_id: format!("{batch_id}/done"),
            headers,
            payload: done.encode_to_vec().into(),
        })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_by_rows_across_tables() {
        assert_eq!(split(&[(0, 0..4)]), vec![vec![(0, 0..2)], vec![(0, 2..4)]]);
        assert_eq!(
            split(&[(0, 0..1), (1, 3..6)]),
            vec![vec![(0, 0..1), (1, 3..4)], vec![(1, 4..6)]]
        );
        assert_eq!(split(&[(0, 5..6)]), vec![vec![(0, 5..6)]]);
    }
}
