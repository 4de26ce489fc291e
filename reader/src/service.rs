//! The reader role: pulls work items, reads each window from InfluxDB, publishes its row batches,
//! and acknowledges the work item only after the bus acknowledged every batch. At most
//! `read_concurrency` windows are read at once (from TSM files, at most one per core), fewer
//! while InfluxDB struggles; transient failures are retried with growing
//! delays; a window that can never be read is terminated and reported to the coordinator.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influx2td_bus::{
    Bus, BusError, Delivery, OutgoingMessage, Payload, QueueConfig, Retry, Settle, StreamKind,
    WorkQueue,
};
use influx2td_config::QueryLanguage;
use influx2td_proto::batch::WindowRef;
use influx2td_proto::names::{Names, header};
use influx2td_proto::{ClosedBatch, Message, pb};
use thiserror::Error;
use tracing::Instrument;

use crate::client::InfluxClient;
use crate::error::SourceError;
use crate::limit::{AdaptiveLimit, ReadOutcome};
use crate::schema::{self, MeasurementSchema};
use crate::source::WindowStream;

/// How the reader runs.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    /// Windows read at once.
    pub read_concurrency: usize,
    /// InfluxQL (`/query`) or Flux (`/api/v2/query`).
    pub query_language: QueryLanguage,
    /// Set: windows are read from these storage files instead (`source.kind = "tsm"`), one
    /// measurement per read, the schema from the same files.
    pub tsm: Option<Arc<crate::tsm::TsmSource>>,
    /// Largest encoded batch.
    pub batch_limit: usize,
    /// The WORK queue's ack wait; heartbeats go out three times per period.
    pub ack_wait: Duration,
    /// Longest pause before a failed window is tried again.
    pub max_retry_delay: Duration,
    /// A window holding more rows than this is split in halves and re-queued instead of read
    /// to the end: dense stretches get small windows, sparse ones stay large.
    pub max_window_rows: u64,
    /// How long in-flight windows may take to finish after shutdown was asked for.
    pub shutdown_grace: Duration,
}

impl Default for ReaderSettings {
    fn default() -> Self {
        Self {
            read_concurrency: 50,
            query_language: QueryLanguage::Influxql,
            tsm: None,
            batch_limit: influx2td_proto::MAX_BATCH_BYTES,
            ack_wait: QueueConfig::new(StreamKind::Work).ack_wait,
            max_retry_delay: Duration::from_secs(60),
            max_window_rows: 2_000_000,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Error)]
pub enum ReaderError {
    #[error("reader cannot use the bus: {0}")]
    Bus(#[from] BusError),
}

/// Why one window's read stopped.
#[derive(Debug, Error)]
enum WindowError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the window holds more than {0} rows")]
    TooLarge(u64),
}

impl WindowError {
    fn retry(&self) -> Retry {
        match self {
            Self::Source(error) => error.retry(),
            Self::Bus(error) => error.retry(),
            Self::TooLarge(_) => Retry::Never,
        }
    }

    fn cause(&self) -> &'static str {
        match self {
            Self::Source(error) => error.cause(),
            Self::Bus(_) => "bus",
            Self::TooLarge(_) => "too_large",
        }
    }
}

/// Windows are never split below this length or depth.
const MIN_SPLIT_NS: i64 = 2;
const MAX_SPLIT_DEPTH: u32 = 40;

/// Schemas by measurement, discovered on first use and refreshed when a window shows a new field.
#[derive(Debug, Default)]
struct SchemaCache {
    schemas: Mutex<HashMap<String, Arc<MeasurementSchema>>>,
    /// Held while schemas are asked for together, so that reads starting at once ask once.
    asking: tokio::sync::Mutex<()>,
}

impl SchemaCache {
    async fn get(
        &self,
        client: &InfluxClient,
        measurement: &str,
        refresh: bool,
    ) -> Result<Arc<MeasurementSchema>, SourceError> {
        if !refresh && let Some(schema) = self.lock().get(measurement) {
            return Ok(schema.clone());
        }
        let schema = Arc::new(schema::schema(client, measurement).await?);
        self.lock().insert(measurement.to_owned(), schema.clone());
        Ok(schema)
    }

    /// The schemas of `measurements`, in that order; those not cached are asked for together.
    async fn get_many(
        &self,
        client: &InfluxClient,
        measurements: &[&str],
    ) -> Result<Vec<Arc<MeasurementSchema>>, SourceError> {
        let missing = || -> Vec<&str> {
            let cached = self.lock();
            measurements
                .iter()
                .copied()
                .filter(|measurement| !cached.contains_key(*measurement))
                .collect()
        };
        if !missing().is_empty() {
            let _asking = self.asking.lock().await;
            // Those another read asked for while this one waited are cached now.
            let missing = missing();
            let found = schema::schemas_of(client, &missing).await?;
            let mut cached = self.lock();
            for (measurement, schema) in found {
                cached.insert(measurement, Arc::new(schema));
            }
        }
        let cached = self.lock();
        Ok(measurements
            .iter()
            .map(|measurement| {
                cached.get(*measurement).cloned().unwrap_or_else(|| {
                    Arc::new(MeasurementSchema {
                        measurement: (*measurement).to_owned(),
                        ..Default::default()
                    })
                })
            })
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<MeasurementSchema>>> {
        self.schemas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Context<B: Bus> {
    names: Names,
    client: InfluxClient,
    work: B::Queue,
    data: B::Queue,
    done: B::Queue,
    schemas: SchemaCache,
    settings: ReaderSettings,
    limit: AdaptiveLimit,
}

/// Runs the reader until `shutdown` completes; in-flight windows then get `shutdown_grace` to
/// finish, and whatever is still running is left unacknowledged for redelivery.
pub async fn run<B: Bus>(
    bus: B,
    client: InfluxClient,
    settings: ReaderSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ReaderError> {
    tokio::pin!(shutdown);
    // Opening the queues retries while NATS is away or refuses; a stop asked for meanwhile ends it.
    let queues = influx2td_bus::open_queues(
        &bus,
        [
            QueueConfig {
                ack_wait: settings.ack_wait,
                ..QueueConfig::new(StreamKind::Work)
            },
            // The writers' settings: whoever opens DATA first creates its consumer.
            QueueConfig {
                ack_wait: settings.ack_wait,
                ..QueueConfig::new(StreamKind::Data)
            },
            QueueConfig::new(StreamKind::Done),
        ],
        |_| (),
    );
    let Some(opened) = influx2td_bus::unless_stopped(&mut shutdown, queues).await else {
        return Ok(());
    };
    let [work, data, done] = opened?;
    let context = Arc::new(Context::<B> {
        names: bus.names().clone(),
        client,
        work: work.clone(),
        data,
        done,
        schemas: SchemaCache::default(),
        settings: settings.clone(),
        limit: AdaptiveLimit::new(reads_at_once(&settings)),
    });
    let limit_context = context.clone();
    influx2td_bus::consume(
        &work,
        "windows",
        move || limit_context.limit.current(),
        move |delivery| {
            let context = context.clone();
            async move { handle(&context, delivery).await }
        },
        shutdown,
        settings.shutdown_grace,
    )
    .await;
    Ok(())
}

/// The most windows read at once: `read_concurrency`, and for the TSM source no more than the
/// cores that decode its files (each read is CPU work on a thread of its own; more of them at
/// once only hold more decoded rows in memory and take the cores the writer needs).
fn reads_at_once(settings: &ReaderSettings) -> usize {
    if settings.tsm.is_none() {
        return settings.read_concurrency;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    settings.read_concurrency.min(cores)
}

async fn handle<B: Bus>(context: &Context<B>, delivery: <B::Queue as WorkQueue>::Delivery) {
    let item = match pb::WorkItem::decode(delivery.payload().clone()) {
        Ok(item) => item,
        Err(error) => {
            tracing::error!(subject = delivery.subject(), %error, "dropping a work item that is not a WorkItem");
            let reason = format!("not a WorkItem: {error}");
            settle(delivery, Settle::Terminate { reason }).await;
            return;
        }
    };
    let read = u32::try_from(delivery.delivered())
        .unwrap_or(u32::MAX)
        .min(influx2td_proto::GROUPED_READ - 1);
    let read = if item.measurements.len() > 1 {
        read | influx2td_proto::GROUPED_READ
    } else {
        read
    };
    let window_of = |measurement: &str| WindowRef {
        job: item.job.clone(),
        measurement: measurement.to_owned(),
        window_start_ns: item.window_start_ns,
        window_end_ns: item.window_end_ns,
        attempt: item.attempt,
        read,
    };
    // One measurement, or several sparse ones read together (the coordinator grouped them).
    let members: Vec<WindowRef> = if item.measurements.len() > 1 {
        item.measurements.iter().map(|m| window_of(m)).collect()
    } else {
        vec![window_of(&item.measurement)]
    };
    // A part of the window's trace, begun by the coordinator when it published the window.
    let window = &members[0];
    let span = tracing::debug_span!(
        "read window",
        measurement = window.measurement,
        window_start = window.window_start_ns,
        window_end = window.window_end_ns,
        attempt = window.attempt,
        read = window.read,
        measurements = members.len(),
        rows = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    influx2td_telemetry::continue_trace(&span, |name| delivery.header(name));
    handle_window(context, delivery, item, members)
        .instrument(span)
        .await;
}

async fn handle_window<B: Bus>(
    context: &Context<B>,
    delivery: <B::Queue as WorkQueue>::Delivery,
    item: pb::WorkItem,
    members: Vec<WindowRef>,
) {
    let started = std::time::Instant::now();
    let window = &members[0];
    let grouped = members.len() > 1;
    let splittable = !grouped
        && item.split_depth < MAX_SPLIT_DEPTH
        && window.window_end_ns - window.window_start_ns >= MIN_SPLIT_NS;
    let outcome = read_window(context, &delivery, &members, splittable || grouped).await;
    let learned = match &outcome {
        Ok(read) => Some(ReadOutcome::Answered {
            latency: read.latency,
        }),
        Err(WindowError::Source(error)) if error.is_overload() => Some(ReadOutcome::Overloaded),
        Err(_) => None,
    };
    let before = context.limit.current();
    if let Some(changed) = learned.and_then(|learned| context.limit.record(learned)) {
        let max = context.limit.max();
        // Backing off is news; growing back is routine.
        if changed < before {
            tracing::info!(
                reads_in_flight = changed,
                max,
                "InfluxDB is struggling: fewer reads in flight"
            );
        } else {
            tracing::debug!(reads_in_flight = changed, max, "more reads in flight");
        }
    }
    let fields = (
        window.measurement.as_str(),
        window.window_start_ns,
        window.window_end_ns,
        window.attempt,
        window.read,
    );
    match outcome {
        Ok(WindowRead {
            rows,
            batches,
            bytes,
            ..
        }) => {
            let total: u64 = rows.iter().sum();
            for (member, member_rows) in members.iter().zip(&rows) {
                influx2td_telemetry::metrics().read(
                    &member.job,
                    &member.measurement,
                    *member_rows,
                    if grouped { 0 } else { bytes },
                    started.elapsed(),
                );
            }
            tracing::Span::current()
                .record("rows", total)
                .record("outcome", "read");
            tracing::info!(
                measurement = fields.0,
                measurements = members.len(),
                window_start = fields.1,
                window_end = fields.2,
                attempt = fields.3,
                read = fields.4,
                rows = total,
                batches,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "window read"
            );
            settle(delivery, Settle::Ack).await;
        }
        // Too many rows to read together, or a failure that waiting does not heal: each
        // measurement is read on its own instead (it then fails, if it does, on its own).
        Err(error) if grouped && error.retry() != Retry::Backoff => {
            match ungroup(context, &members).await {
                Ok(()) => {
                    tracing::Span::current().record("outcome", "ungrouped");
                    tracing::info!(
                        measurement = fields.0,
                        measurements = members.len(),
                        window_start = fields.1,
                        %error,
                        "window of several measurements read one by one instead"
                    );
                    settle(delivery, Settle::Ack).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot ungroup a window; it will be redelivered");
                    let delay = Duration::from_secs(1);
                    settle(delivery, Settle::Nak { delay }).await;
                }
            }
        }
        Err(WindowError::TooLarge(rows)) => match split(context, window, item.split_depth).await {
            Ok(split_at) => {
                tracing::Span::current().record("outcome", "split");
                tracing::info!(
                    measurement = fields.0,
                    window_start = fields.1,
                    window_end = fields.2,
                    split_at,
                    rows_over = rows,
                    "window split in halves: too many rows to read at once"
                );
                settle(delivery, Settle::Ack).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot split a window; it will be redelivered");
                settle(
                    delivery,
                    Settle::Nak {
                        delay: Duration::from_secs(1),
                    },
                )
                .await;
            }
        },
        Err(error) if error.retry() == Retry::Backoff => {
            tracing::Span::current().record("outcome", "retry");
            let delay = retry_delay(delivery.delivered(), context.settings.max_retry_delay);
            influx2td_telemetry::metrics().retry(&window.job, "reader", error.cause());
            if matches!(&error, WindowError::Source(source) if source.needs_operator()) {
                tracing::error!(
                    measurement = fields.0, window_start = fields.1, window_end = fields.2,
                    %error, retry_in_ms = delay.as_millis() as u64,
                    "InfluxDB refuses the credentials; retrying until they are fixed"
                );
            } else {
                tracing::warn!(
                    measurement = fields.0, measurements = members.len(), window_start = fields.1,
                    window_end = fields.2, read = fields.4, %error, retry_in_ms = delay.as_millis() as u64,
                    "window read failed, will retry"
                );
            }
            let reason = error.to_string();
            for member in &members {
                let notice = influx2td_bus::retrying_message(
                    &context.names,
                    member,
                    &influx2td_bus::Retrying {
                        role: "reader",
                        seq: None,
                        tries: delivery.delivered(),
                        cause: error.cause(),
                        reason: &reason,
                        retry_limit: 0,
                    },
                );
                if let Err(notice_error) = context.done.publish(notice).await {
                    tracing::debug!(error = %notice_error, "cannot report a window being retried");
                }
            }
            if let WindowError::Source(SourceError::SchemaChanged { measurement, .. }) = &error
                && context.settings.tsm.is_none()
                && let Err(refresh_error) = context
                    .schemas
                    .get(&context.client, measurement, true)
                    .await
            {
                tracing::warn!(measurement, error = %refresh_error, "cannot refresh the schema");
            }
            settle(delivery, Settle::Nak { delay }).await;
        }
        Err(error) => {
            tracing::Span::current().record("outcome", "failed");
            tracing::error!(
                measurement = fields.0, measurements = members.len(), window_start = fields.1,
                window_end = fields.2, %error, "window cannot be read; reporting it"
            );
            let reason = error.to_string();
            // Reported before the item goes, so a lost report means a redelivery, never silence.
            let mut reported = Ok(());
            for member in &members {
                if let Err(report_error) = report_failure(context, member, &reason).await {
                    reported = Err(report_error);
                    break;
                }
            }
            match reported {
                Ok(()) => settle(delivery, Settle::Terminate { reason }).await,
                Err(report_error) => {
                    tracing::warn!(error = %report_error, "cannot report the failed window; it will be redelivered");
                    let delay = retry_delay(delivery.delivered(), context.settings.max_retry_delay);
                    settle(delivery, Settle::Nak { delay }).await;
                }
            }
        }
    }
}

/// Replaces a window read of several measurements by one read of each (same window, same
/// attempt): the coordinator tracks each measurement's window already.
async fn ungroup<B: Bus>(context: &Context<B>, members: &[WindowRef]) -> Result<(), BusError> {
    for member in members {
        let item = pb::WorkItem {
            job: member.job.clone(),
            measurement: member.measurement.clone(),
            window_start_ns: member.window_start_ns,
            window_end_ns: member.window_end_ns,
            attempt: member.attempt,
            ..Default::default()
        };
        context
            .work
            .publish(influx2td_bus::work_item_message(&context.names, &item))
            .await?;
    }
    Ok(())
}

fn retry_delay(delivered: u64, max: Duration) -> Duration {
    let exponent = u32::try_from(delivered.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    Duration::from_secs(1u64 << exponent).min(max)
}

async fn settle<D: Delivery>(delivery: D, settle: Settle) {
    if let Err(error) = delivery.settle(settle).await {
        // Unsettled work comes back after ack_wait; nothing is lost, it costs a re-read.
        tracing::warn!(%error, "cannot settle a work item; it will be redelivered");
    }
}

/// A window read and published.
#[derive(Debug)]
struct WindowRead {
    /// Of each measurement read, in the order asked.
    rows: Vec<u64>,
    batches: u32,
    /// Of the batches published.
    bytes: u64,
    /// Until InfluxDB began to answer.
    latency: Duration,
}

/// The schemas of `members`' measurements: from the cache, the missing ones asked for together.
async fn member_schemas<B: Bus>(
    context: &Context<B>,
    members: &[WindowRef],
) -> Result<Vec<Arc<MeasurementSchema>>, SourceError> {
    if members.len() == 1 {
        let schema = context
            .schemas
            .get(&context.client, &members[0].measurement, false)
            .await?;
        return Ok(vec![schema]);
    }
    let names: Vec<&str> = members.iter().map(|m| m.measurement.as_str()).collect();
    context.schemas.get_many(&context.client, &names).await
}

/// Reads the window (of one measurement, or of several together) and publishes every batch.
async fn read_window<B: Bus, D: Delivery>(
    context: &Context<B>,
    delivery: &D,
    members: &[WindowRef],
    bounded: bool,
) -> Result<WindowRead, WindowError> {
    let settings = &context.settings;
    if let Some(source) = &settings.tsm {
        return read_tsm_window(context, delivery, source.clone(), members, bounded).await;
    }
    let schemas = match settings.query_language {
        QueryLanguage::Influxql => Some(member_schemas(context, members).await?),
        QueryLanguage::Flux => None,
    };
    let mut heartbeat = tokio::time::interval(context.settings.ack_wait / 3);
    heartbeat.tick().await;
    let asked = std::time::Instant::now();
    // From the request until the last byte: the reader's time spent in InfluxDB.
    let query = tracing::debug_span!(
        "influxdb query",
        language = ?settings.query_language,
        rows = tracing::field::Empty,
        bytes = tracing::field::Empty,
    );
    let open = async {
        match schemas {
            Some(schemas) if members.len() > 1 => {
                let members = schemas.into_iter().zip(members.iter().cloned()).collect();
                WindowStream::open_group(&context.client, members, settings.batch_limit).await
            }
            schemas => {
                let schema = schemas.and_then(|mut schemas| schemas.pop());
                WindowStream::open(
                    &context.client,
                    settings.query_language,
                    schema,
                    members[0].clone(),
                    settings.batch_limit,
                )
                .await
            }
        }
    };
    let reader = tokio::select! {
        opened = open.instrument(query.clone()) => opened?,
        never = beat(&mut heartbeat, delivery) => match never {},
    };
    publish_window(
        context, delivery, members, bounded, reader, heartbeat, asked, query,
    )
    .await
}

/// Reads one measurement's window from the storage files (its schema from them too), or the
/// same window of several sparse ones, one after the other.
async fn read_tsm_window<B: Bus, D: Delivery>(
    context: &Context<B>,
    delivery: &D,
    source: Arc<crate::tsm::TsmSource>,
    members: &[WindowRef],
    bounded: bool,
) -> Result<WindowRead, WindowError> {
    let mut heartbeat = tokio::time::interval(context.settings.ack_wait / 3);
    heartbeat.tick().await;
    let asked = std::time::Instant::now();
    let query = tracing::debug_span!(
        "tsm read",
        rows = tracing::field::Empty,
        bytes = tracing::field::Empty,
    );
    let schema_source = source.clone();
    let measurements: Vec<String> = members.iter().map(|m| m.measurement.clone()).collect();
    let schemas = tokio::task::spawn_blocking(move || {
        measurements
            .iter()
            .map(|measurement| schema_source.schema(measurement).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
    });
    let schemas = tokio::select! {
        schemas = schemas => schemas.map_err(|error| SourceError::Storage {
            detail: format!("the schema read stopped: {error}"),
            retryable: true,
        })??,
        never = beat(&mut heartbeat, delivery) => match never {},
    };
    let members_read = schemas.into_iter().zip(members.iter().cloned()).collect();
    let reader = WindowStream::open_tsm_group(source, members_read, context.settings.batch_limit);
    publish_window(
        context, delivery, members, bounded, reader, heartbeat, asked, query,
    )
    .await
}

/// Publishes every batch of an opened read of `members`' window.
#[allow(clippy::too_many_arguments)]
async fn publish_window<B: Bus, D: Delivery>(
    context: &Context<B>,
    delivery: &D,
    members: &[WindowRef],
    bounded: bool,
    mut reader: WindowStream,
    mut heartbeat: tokio::time::Interval,
    asked: std::time::Instant,
    query: tracing::Span,
) -> Result<WindowRead, WindowError> {
    let settings = &context.settings;
    let latency = asked.elapsed();
    let mut batches = 0;
    let mut bytes = 0;
    let mut rows = vec![0u64; members.len()];
    loop {
        let next = tokio::select! {
            next = reader.next_member_batch().instrument(query.clone()) => next?,
            never = beat(&mut heartbeat, delivery) => match never {},
        };
        query
            .record("rows", reader.stats().rows)
            .record("bytes", reader.stats().bytes);
        let Some((member, batch)) = next else {
            return Ok(WindowRead {
                rows,
                batches,
                bytes,
                latency,
            });
        };
        // Too dense for one read: stop here and let the halves (or, for several measurements,
        // each of them) be read instead (the batches already published are rewritten by those
        // reads; same table, same timestamp).
        // (A measurement's last batch of a read of several is not the read's last.)
        if bounded
            && (batch.totals.is_none() || members.len() > 1)
            && reader.stats().rows > settings.max_window_rows
        {
            return Err(WindowError::TooLarge(settings.max_window_rows));
        }
        let window = members.get(member).unwrap_or(&members[0]);
        rows[member.min(members.len() - 1)] += batch.rows;
        let message = batch_message(&context.names, window, batch);
        bytes += message.payload.size() as u64;
        tokio::select! {
            published = context.data.publish(message) => { published?; }
            never = beat(&mut heartbeat, delivery) => match never {},
        }
        batches += 1;
    }
}

/// Tells the bus, every tick, that the window is still being worked on. Never returns.
async fn beat<D: Delivery>(heartbeat: &mut tokio::time::Interval, delivery: &D) -> Infallible {
    loop {
        heartbeat.tick().await;
        if let Err(error) = delivery.in_progress().await {
            tracing::debug!(%error, "heartbeat failed");
        }
    }
}

fn window_headers(names: &Names, window: &WindowRef) -> Vec<(String, String)> {
    influx2td_bus::window_headers(
        names,
        &window.measurement,
        window.window_start_ns,
        window.window_end_ns,
        window.attempt,
    )
}

/// The batch is published unencoded: NATS encodes it, the in-process bus hands it to the writer
/// as it is.
fn batch_message(names: &Names, window: &WindowRef, batch: ClosedBatch) -> OutgoingMessage {
    let mut headers = window_headers(names, window);
    headers.push((header::SEQ.to_owned(), batch.seq.to_string()));
    headers.push((header::ROWS.to_owned(), batch.rows.to_string()));
    OutgoingMessage {
        subject: names.subject(StreamKind::Data, &window.measurement),
        msg_id: names.data_msg_id(window, batch.seq),
        headers,
        payload: Payload::object(batch.batch, batch.bound),
    }
}

/// Replaces a window by its halves: tells the coordinator first (so it tracks the halves and
/// re-publishes them should this reader die), then publishes them. Returns where it was split.
async fn split<B: Bus>(
    context: &Context<B>,
    window: &WindowRef,
    split_depth: u32,
) -> Result<i64, BusError> {
    let names = &context.names;
    let split_at = window.window_start_ns + (window.window_end_ns - window.window_start_ns) / 2;
    let report = pb::WindowDone {
        outcome: pb::Outcome::Split as i32,
        split_at_ns: split_at,
        ..about(window)
    };
    report_window(context, window, &report, "split").await?;
    for (start, end) in [
        (window.window_start_ns, split_at),
        (split_at, window.window_end_ns),
    ] {
        let item = pb::WorkItem {
            job: window.job.clone(),
            measurement: window.measurement.clone(),
            window_start_ns: start,
            window_end_ns: end,
            attempt: window.attempt,
            split_depth: split_depth + 1,
            ..Default::default()
        };
        context
            .work
            .publish(influx2td_bus::work_item_message(names, &item))
            .await?;
    }
    Ok(split_at)
}

async fn report_failure<B: Bus>(
    context: &Context<B>,
    window: &WindowRef,
    reason: &str,
) -> Result<(), BusError> {
    let report = pb::WindowDone {
        outcome: pb::Outcome::ReadFailed as i32,
        reason: reason.to_owned(),
        ..about(window)
    };
    report_window(context, window, &report, "read-failed").await
}

/// A report about `window` (without an outcome yet).
fn about(window: &WindowRef) -> pb::WindowDone {
    pb::WindowDone {
        job: window.job.clone(),
        measurement: window.measurement.clone(),
        window_start_ns: window.window_start_ns,
        window_end_ns: window.window_end_ns,
        attempt: window.attempt,
        read: window.read,
        ..Default::default()
    }
}

/// Tells the coordinator on DONE; `kind` makes the dedup id of this report.
async fn report_window<B: Bus>(
    context: &Context<B>,
    window: &WindowRef,
    report: &pb::WindowDone,
    kind: &str,
) -> Result<(), BusError> {
    let names = &context.names;
    let message = OutgoingMessage {
        subject: names.subject(StreamKind::Done, &window.measurement),
        msg_id: format!("{}/{kind}", names.data_msg_id(window, 0)),
        headers: window_headers(names, window),
        payload: report.encode_to_vec().into(),
    };
    context.done.publish(message).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n, max).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_delay(u64::MAX, max), max);
    }
}
