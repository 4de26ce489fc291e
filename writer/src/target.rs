//! Opening the job's target (TDengine or a file), and its connectivity check.

use influx2td_config::check::{EndCheck, Status};
use influx2td_config::{Dsn, InsertMode, JobConfig};

use crate::convert::Precision;
use crate::file::FileSink;
use crate::rows::{Segment, TableRows};
use crate::schema::TableSchema;
use crate::sink::{DatabaseInfo, InsertTarget, Sink, SinkError};
use crate::tdengine::TdengineSink;

/// The sink a DSN names.
#[derive(Debug, Clone)]
pub enum AnySink {
    File(FileSink),
    Tdengine(TdengineSink),
}

/// Opens the sink of `dsn`. `writer_name` names this writer's file (file sink); `connections`
/// bounds TDengine connections (one per concurrent statement); `insert` says how rows go into
/// TDengine.
pub async fn open_sink(
    dsn: &Dsn,
    writer_name: &str,
    connections: usize,
    insert: InsertMode,
) -> Result<AnySink, SinkError> {
    Ok(match dsn {
        Dsn::File { directory } => AnySink::File(FileSink::create(directory, writer_name)?),
        Dsn::WebSocket { url, redacted } | Dsn::Native { url, redacted } => AnySink::Tdengine(
            TdengineSink::connect(url.expose(), redacted, connections)
                .await?
                .with_mode(insert),
        ),
    })
}

impl Sink for AnySink {
    async fn insert(
        &self,
        target: &InsertTarget<'_>,
        tables: &[TableRows<'_>],
        segments: &[Segment],
    ) -> Result<(), SinkError> {
        match self {
            Self::File(sink) => sink.insert(target, tables, segments).await,
            Self::Tdengine(sink) => sink.insert(target, tables, segments).await,
        }
    }

    async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        match self {
            Self::File(sink) => sink.execute(sql).await,
            Self::Tdengine(sink) => sink.execute(sql).await,
        }
    }

    async fn describe(
        &self,
        database: &str,
        super_table: &str,
    ) -> Result<Option<TableSchema>, SinkError> {
        match self {
            Self::File(sink) => sink.describe(database, super_table).await,
            Self::Tdengine(sink) => sink.describe(database, super_table).await,
        }
    }

    async fn database(&self, database: &str) -> Result<Option<DatabaseInfo>, SinkError> {
        match self {
            Self::File(sink) => sink.database(database).await,
            Self::Tdengine(sink) => sink.database(database).await,
        }
    }

    async fn flush(&self) -> Result<(), SinkError> {
        match self {
            Self::File(sink) => sink.flush().await,
            Self::Tdengine(sink) => sink.flush().await,
        }
    }
}

/// Checks the job's target: reachable with these credentials, and the database ready (present
/// or to be created, empty unless allowed, its precision).
pub async fn check_target(job: &JobConfig) -> EndCheck {
    let target = &job.target;
    let mut report = EndCheck::new("TDengine", target.dsn.redacted());
    let sink = match open_sink(&target.dsn, &format!("{}-check", job.job), 1, target.insert).await {
        Ok(sink) => sink,
        Err(error) => {
            report.step("reachable", Status::Failed, error.to_string());
            report.skip_rest(&["database"], "TDengine is not reachable");
            return report;
        }
    };
    let reached = match &sink {
        AnySink::File(file) => format!("writes SQL to {}", file.path().display()),
        AnySink::Tdengine(_) => "connected, credentials accepted".to_owned(),
    };
    report.step("reachable", Status::Passed, reached);
    let database = &target.database;
    match sink.database(database).await {
        Err(error) => report.step("database", Status::Failed, error.to_string()),
        Ok(None) if target.create_database => {
            report.step("database", Status::Passed, format!("{database:?} will be created (PRECISION 'ns')"));
        }
        Ok(None) => report.step(
            "database",
            Status::Failed,
            format!("{database:?} does not exist: create it (PRECISION 'ns') or set target.create_database = true"),
        ),
        Ok(Some(info)) if info.tables > 0 && !target.allow_non_empty => report.step(
            "database",
            Status::Failed,
            format!("{database:?} already holds {} tables; set target.allow_non_empty = true to write into it", info.tables),
        ),
        Ok(Some(info)) => {
            let precision = match info.precision {
                Precision::Nanoseconds => "nanosecond precision".to_owned(),
                other => format!("{other:?} precision: timestamps are rounded down"),
            };
            report.step("database", Status::Passed, format!("{database:?} found, {} tables, {precision}", info.tables));
        }
    }
    report
}
