//! A job end to end: the embedded pipeline (every role as a task of this process over the
//! in-process bus) and each role as a process of its own over NATS, with their endpoints
//! (`/healthz`, `/readyz`, `/metrics`, `/status`) and their settings from the job.

use influx2td_config::JobConfig;

use crate::connect::{embedded_bus, nats_bus, nats_bus_unless_stopped, shutdown_signal};
use crate::progress;

/// The reader's settings; with `source.kind = "tsm"` its storage files, which a reader on a
/// host that cannot see them refuses to start without.
fn reader_settings(
    job: &JobConfig,
) -> Result<influx2td_reader::service::ReaderSettings, influx2td_reader::SourceError> {
    let tsm = match &job.source.kind {
        influx2td_config::SourceKind::Query => None,
        influx2td_config::SourceKind::Tsm(dirs) => Some(std::sync::Arc::new(
            influx2td_reader::TsmSource::open(dirs, &job.bucket)?,
        )),
    };
    Ok(influx2td_reader::service::ReaderSettings {
        read_concurrency: job.read_concurrency,
        query_language: job.source.query_language,
        tsm,
        ack_wait: job.ack_wait,
        max_window_rows: job.max_window_rows,
        ..Default::default()
    })
}

fn coordinator_settings(job: &JobConfig) -> influx2td_coordinator::CoordinatorSettings {
    influx2td_coordinator::CoordinatorSettings {
        delay: job.delay,
        lookback: job.lookback,
        lease_ttl: job.lease_ttl,
        ack_wait: job.ack_wait,
        max_outstanding: (job.read_concurrency * 4).max(8),
        // InfluxQL on 1.x reads several measurements in one query; Flux, 2.x and 3.x one at a
        // time (a reader that finds 2.x or 3.x behind an unset version reads a group one by one).
        // The TSM source reads a group's measurements one after the other in one work item:
        // a window of a few rows costs its trip through the pipeline, not its reading.
        max_group: if job.source.kind != influx2td_config::SourceKind::Query
            || matches!(
                (job.source.query_language, job.source.version),
                (influx2td_config::QueryLanguage::Influxql, Some(1) | None)
            ) {
            influx2td_coordinator::service::DEFAULT_MAX_GROUP
        } else {
            1
        },
        ..influx2td_coordinator::CoordinatorSettings::new(job.begin_ns, job.end_ns, job.window)
    }
}

/// Serves `/healthz`, `/readyz`, `/metrics` (and `/status` when given) while the process runs,
/// when `http.listen` is set.
async fn serve_http(
    job: &JobConfig,
    endpoints: influx2td_telemetry::Endpoints,
) -> anyhow::Result<()> {
    if let Some(address) = &job.http_listen {
        influx2td_telemetry::spawn(address, endpoints, shutdown_signal()).await?;
    }
    Ok(())
}

/// Readiness of the bus.
fn bus_probe<B: influx2td_bus::Bus>(
    endpoints: influx2td_telemetry::Endpoints,
    bus: &B,
) -> influx2td_telemetry::Endpoints {
    let bus = bus.clone();
    endpoints.probe("bus", move || {
        let bus = bus.clone();
        async move { bus.ready().await }
    })
}

/// Readiness of InfluxDB: it answers `/ping`, and a statement with the job's credentials is not
/// refused (`/ping` alone needs none, so a changed password would pass it).
fn influxdb_probe(
    endpoints: influx2td_telemetry::Endpoints,
    client: &influx2td_reader::InfluxClient,
) -> influx2td_telemetry::Endpoints {
    let client = client.clone();
    endpoints.probe("influxdb", move || {
        let client = client.clone();
        async move {
            client.ping().await.map_err(|error| error.to_string())?;
            match client.query("SHOW DATABASES").await {
                Err(error) if error.needs_operator() => Err(error.to_string()),
                // Other answers (a server without the statement) say nothing about readiness.
                _ => Ok(()),
            }
        }
    })
}

/// Readiness of TDengine: it answers and holds the target database.
fn tdengine_probe(
    endpoints: influx2td_telemetry::Endpoints,
    sink: &influx2td_writer::AnySink,
    database: &str,
) -> influx2td_telemetry::Endpoints {
    let sink = sink.clone();
    let database = database.to_owned();
    endpoints.probe("tdengine", move || {
        let sink = sink.clone();
        let database = database.clone();
        async move {
            use influx2td_writer::Sink;
            match sink.database(&database).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(format!("database {database:?} does not exist yet")),
                Err(error) => Err(error.to_string()),
            }
        }
    })
}

/// Serves the coordinator's status board at `/status`.
fn status_source(
    endpoints: influx2td_telemetry::Endpoints,
    board: &influx2td_coordinator::StatusBoard,
) -> influx2td_telemetry::Endpoints {
    let board = board.clone();
    endpoints.status(move || serde_json::to_value(board.get()).unwrap_or_default())
}

/// Prepares the target (once per job) and discovers what to copy; the part of a job before any
/// row moves.
async fn prepare_job<B: influx2td_bus::Bus>(
    job: &JobConfig,
    bus: &B,
    sink: &influx2td_writer::AnySink,
) -> anyhow::Result<Vec<influx2td_coordinator::PlannedMeasurement>> {
    let resuming = is_resuming(bus).await?;
    prepare_target(job, sink, resuming).await?;
    let client = influx2td_reader::InfluxClient::new(&job.source, &job.bucket)?;
    let planned = influx2td_coordinator::plan::discover(&client, job, job.read_concurrency).await?;
    planned_log(job, &planned, resuming);
    Ok(planned)
}

fn planned_log(
    job: &JobConfig,
    planned: &[influx2td_coordinator::PlannedMeasurement],
    resuming: bool,
) {
    tracing::info!(
        job = job.job,
        measurements = planned.len(),
        resuming,
        "job planned"
    );
}

/// Whether the job resumes: it has checkpoints.
async fn is_resuming<B: influx2td_bus::Bus>(bus: &B) -> anyhow::Result<bool> {
    use influx2td_bus::CheckpointStore;
    let store = bus.checkpoints().await?;
    Ok(store
        .keys()
        .await?
        .iter()
        .any(|key| key.starts_with("checkpoint.")))
}

/// Prepares the target (once per job): creates the database, or checks the one there.
async fn prepare_target(
    job: &JobConfig,
    sink: &influx2td_writer::AnySink,
    resuming: bool,
) -> anyhow::Result<()> {
    let target = &job.target;
    influx2td_writer::service::prepare_target(
        sink,
        &target.database,
        target.create_database,
        target.allow_non_empty,
        resuming,
    )
    .await?;
    Ok(())
}

/// What a finished (or stopped) job says; an error when rows did not all arrive.
fn conclude(summary: &influx2td_coordinator::JobSummary) -> anyhow::Result<()> {
    tracing::info!(
        complete = summary.complete,
        rows_written = summary.rows_written(),
        rows_dead_lettered = summary.rows_dead_lettered(),
        windows_failed = summary.failed_windows(),
        "job {}",
        if summary.complete {
            "finished"
        } else {
            "stopped; run it again to resume"
        }
    );
    if summary.failed_windows() > 0 || summary.rows_dead_lettered() > 0 {
        anyhow::bail!(
            "{} windows failed and {} rows were dead-lettered; `influx2td status` shows why",
            summary.failed_windows(),
            summary.rows_dead_lettered()
        );
    }
    Ok(())
}

pub async fn run(job: &JobConfig) -> anyhow::Result<()> {
    conclude(&pipeline(job).await?)
}

/// Every role of `job` in this process over the in-process bus, until the job is complete or
/// a signal stops it, with a progress bar on a terminal.
pub async fn pipeline(job: &JobConfig) -> anyhow::Result<influx2td_coordinator::JobSummary> {
    pipeline_of(job, None, shutdown_signal()).await
}

/// A whole job in this process for the console: its status on `board`, until `shutdown`.
pub async fn pipeline_with(
    job: &JobConfig,
    board: influx2td_coordinator::StatusBoard,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<influx2td_coordinator::JobSummary> {
    pipeline_of(job, Some(board), shutdown).await
}

/// `board`: `None` for `run` (its own endpoints and progress bar), or the console's.
async fn pipeline_of(
    job: &JobConfig,
    board: Option<influx2td_coordinator::StatusBoard>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<influx2td_coordinator::JobSummary> {
    let bus = embedded_bus(job)?;
    let sink = writer_sink(job).await?;
    let client = influx2td_reader::InfluxClient::new(&job.source, &job.bucket)?;
    let mut coordinator_settings = coordinator_settings(job);
    let interactive = board.is_none();
    if let Some(board) = board {
        coordinator_settings.status = board;
    } else {
        let endpoints = influxdb_probe(influx2td_telemetry::Endpoints::new(), &client);
        let endpoints = tdengine_probe(endpoints, &sink, &job.target.database);
        serve_http(job, status_source(endpoints, &coordinator_settings.status)).await?;
    }
    // The target is made ready (the database created, its precision read) while InfluxDB is
    // asked what to copy and the first windows are read: the writer starts when it is ready.
    let resuming = is_resuming(&bus).await?;
    let (target_failed, target_failure) = tokio::sync::oneshot::channel::<()>();
    let preparing = {
        let (job, sink) = (job.clone(), sink.clone());
        tokio::spawn(async move {
            prepare_target(&job, &sink, resuming).await?;
            writer_settings(&job, &sink).await
        })
    };
    let planned =
        match influx2td_coordinator::plan::discover(&client, job, job.read_concurrency).await {
            Ok(planned) => planned,
            Err(error) => {
                preparing.abort();
                return Err(error.into());
            }
        };
    planned_log(job, &planned, resuming);

    let settings = match reader_settings(job) {
        Ok(settings) => settings,
        Err(error) => {
            preparing.abort();
            return Err(error.into());
        }
    };
    let (stop_reader, reader_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(influx2td_reader::service::run(
        bus.clone(),
        client,
        settings,
        async {
            let _ = reader_stopped.await;
        },
    ));
    let writer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            // When the target cannot be made ready, nothing was written: the job stops with
            // the target's error.
            let prepared = preparing.await.unwrap_or_else(|failed| {
                Err(anyhow::anyhow!("preparing the target failed: {failed}"))
            });
            let settings = match prepared {
                Ok(settings) => settings,
                Err(error) => {
                    let _ = target_failed.send(());
                    return Err(error);
                }
            };
            influx2td_writer::service::run(bus, sink, settings, async {
                let _ = writer_stopped.await;
            })
            .await
            .map_err(anyhow::Error::from)
        })
    };
    tracing::info!(
        job = job.job,
        source = job.source.url,
        target = job.target.dsn.redacted(),
        "run started"
    );
    let bar = interactive.then(|| progress::show(coordinator_settings.status.clone()));
    let summary = influx2td_coordinator::service::run(bus, planned, coordinator_settings, async {
        tokio::select! {
            () = shutdown => {}
            _ = target_failure => {}
        }
    })
    .await;
    drop(bar);
    // Readers stop first; writers then drain what was read.
    let _ = stop_reader.send(());
    reader.await??;
    let _ = stop_writer.send(());
    writer.await??;
    Ok(summary?)
}

pub async fn coordinator(job: &JobConfig) -> anyhow::Result<()> {
    let Some(bus) = nats_bus_unless_stopped(job, "coordinator").await? else {
        return Ok(());
    };
    let settings = coordinator_settings(job);
    let endpoints = bus_probe(influx2td_telemetry::Endpoints::new(), &bus);
    serve_http(job, status_source(endpoints, &settings.status)).await?;
    conclude(&coordinate(job, bus, settings, shutdown_signal()).await?)
}

/// The console's coordinator of a job over NATS (its readers and writers run elsewhere): its
/// status on `board`, until `shutdown`.
pub async fn coordinator_with(
    job: &JobConfig,
    board: influx2td_coordinator::StatusBoard,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<influx2td_coordinator::JobSummary> {
    let bus = nats_bus(job, "console").await?;
    let mut settings = coordinator_settings(job);
    settings.status = board;
    coordinate(job, bus, settings, shutdown).await
}

/// Prepares the target, plans and coordinates the job over `bus` until it ends or `shutdown`.
async fn coordinate(
    job: &JobConfig,
    bus: influx2td_bus::NatsBus,
    settings: influx2td_coordinator::CoordinatorSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<influx2td_coordinator::JobSummary> {
    let sink = influx2td_writer::open_sink(
        &job.target.dsn,
        &format!("{}-coordinator", job.job),
        1,
        job.target.insert,
    )
    .await?;
    tokio::pin!(shutdown);
    let planned = match job.discovery {
        influx2td_config::Discovery::Coordinator => prepare_job(job, &bus, &sink).await?,
        influx2td_config::Discovery::Readers => {
            let resuming = is_resuming(&bus).await?;
            prepare_target(job, &sink, resuming).await?;
            let asked = crate::discovery::ask(&bus, &settings.status, &mut shutdown);
            let Some(planned) = asked.await? else {
                return Ok(influx2td_coordinator::JobSummary::default());
            };
            planned_log(job, &planned, resuming);
            planned
        }
    };
    Ok(influx2td_coordinator::service::run(bus, planned, settings, shutdown).await?)
}

pub async fn reader(job: &JobConfig) -> anyhow::Result<()> {
    let Some(bus) = nats_bus_unless_stopped(job, "reader").await? else {
        return Ok(());
    };
    let client = influx2td_reader::InfluxClient::new(&job.source, &job.bucket)?;
    let endpoints = bus_probe(influx2td_telemetry::Endpoints::new(), &bus);
    serve_http(job, influxdb_probe(endpoints, &client)).await?;
    tracing::info!(
        job = job.job,
        source = job.source.url,
        read_concurrency = job.read_concurrency,
        "reader started"
    );
    let reading = influx2td_reader::service::run(
        bus.clone(),
        client.clone(),
        reader_settings(job)?,
        shutdown_signal(),
    );
    match job.discovery {
        influx2td_config::Discovery::Coordinator => reading.await?,
        influx2td_config::Discovery::Readers => {
            let answering = crate::discovery::answer(job, &bus, &client, shutdown_signal());
            let (read, answered) = tokio::join!(reading, answering);
            read?;
            answered?;
        }
    }
    tracing::info!("reader stopped");
    Ok(())
}

/// The target as a writer of `job` writes into it: `write_concurrency` connections, its insert
/// mode, and a file of its own in the file sink.
async fn writer_sink(job: &JobConfig) -> anyhow::Result<influx2td_writer::AnySink> {
    Ok(influx2td_writer::open_sink(
        &job.target.dsn,
        &writer_name(job),
        job.write_concurrency,
        job.target.insert,
    )
    .await?)
}

/// A name unique to this writer process, for its file in the file sink.
fn writer_name(job: &JobConfig) -> String {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    format!("{}-writer-{}-{started}", job.job, std::process::id())
}

/// The writer's settings from the job, with the target's precision.
async fn writer_settings(
    job: &JobConfig,
    sink: &influx2td_writer::AnySink,
) -> anyhow::Result<influx2td_writer::service::WriterSettings> {
    use influx2td_writer::Sink;
    // The coordinator creates the database; a writer that starts first waits for it, looking
    // again soon (the coordinator usually creates it within a second) and then every 5 s.
    let mut pause = std::time::Duration::from_millis(100);
    let mut said = false;
    let info = loop {
        match sink.database(&job.target.database).await? {
            Some(info) => break info,
            None => {
                if !said || pause >= std::time::Duration::from_secs(5) {
                    tracing::warn!(
                        database = job.target.database,
                        "target database does not exist yet; waiting for the coordinator to create it"
                    );
                    said = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
        }
    };
    Ok(influx2td_writer::service::WriterSettings {
        batch_size: job.batch_size,
        write_concurrency: job.write_concurrency,
        precision: info.precision,
        ack_wait: job.ack_wait,
        retry_limit: job.retry_limit,
        ..influx2td_writer::service::WriterSettings::new(&job.target.database)
    })
}

pub async fn writer(job: &JobConfig) -> anyhow::Result<()> {
    let Some(bus) = nats_bus_unless_stopped(job, "writer").await? else {
        return Ok(());
    };
    let sink = writer_sink(job).await?;
    let endpoints = bus_probe(influx2td_telemetry::Endpoints::new(), &bus);
    serve_http(job, tdengine_probe(endpoints, &sink, &job.target.database)).await?;
    let settings = tokio::select! {
        settings = writer_settings(job, &sink) => settings?,
        () = shutdown_signal() => return Ok(()),
    };
    tracing::info!(
        job = job.job,
        target = job.target.dsn.redacted(),
        write_concurrency = job.write_concurrency,
        "writer started"
    );
    influx2td_writer::service::run(bus, sink, settings, shutdown_signal()).await?;
    tracing::info!("writer stopped");
    Ok(())
}

/// The connectivity check of both ends, at once: InfluxDB's and TDengine's reports, and
/// whether both passed.
pub async fn check_ends(job: &JobConfig) -> ([influx2td_config::check::EndCheck; 2], bool) {
    let (source, target) = tokio::join!(
        influx2td_reader::check::check_source(job),
        influx2td_writer::check_target(job)
    );
    let passed = source.passed() && target.passed();
    ([source, target], passed)
}
