//! Where statements go: TDengine, or a file of SQL. The writer only sees this trait.

use std::future::Future;

use influx2td_bus::Retry;
use thiserror::Error;

use crate::convert::Precision;
use crate::rows::{Segment, TableRows};
use crate::schema::TableSchema;
use crate::sql::{InsertBuilder, MAX_SQL_BYTES};

/// What the target database is like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseInfo {
    pub precision: Precision,
    /// Tables (super and child) it holds.
    pub tables: u64,
}

/// What kind of failure a statement met; the writer decides from this, never from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// Network, timeout, server busy, leader change: the same statement succeeds once the
    /// server is back. Retried for as long as it takes.
    Retryable,
    /// An error influx2td does not know (an unlisted TDengine code): retried, but only
    /// `retry_limit` times; then the rows it keeps refusing are dead-lettered with its reason.
    Unclassified,
    /// DDL for something another writer created first: success.
    AlreadyExists,
    /// The schema the writer assumed is out of date (column missing or too narrow): describe
    /// the table again, then retry.
    Stale,
    /// TDengine refuses these rows and would refuse them again: dead-letter them.
    Rejected,
    /// Nothing will work until a person acts (credentials, missing database).
    Fatal,
}

impl SinkErrorKind {
    /// A short name, for metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Unclassified => "unclassified",
            Self::AlreadyExists => "already_exists",
            Self::Stale => "stale",
            Self::Rejected => "rejected",
            Self::Fatal => "fatal",
        }
    }
}

#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct SinkError {
    pub kind: SinkErrorKind,
    pub message: String,
}

impl SinkError {
    pub fn new(kind: SinkErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying is bounded: an error that is not known to heal by itself (unclassified,
    /// or a schema that stays stale after describing it again) stops being retried after
    /// `retry_limit` tries, and the rows it refuses are dead-lettered.
    pub fn is_bounded(&self) -> bool {
        matches!(
            self.kind,
            SinkErrorKind::Unclassified | SinkErrorKind::Stale
        )
    }

    pub fn retry(&self) -> Retry {
        match self.kind {
            SinkErrorKind::Retryable | SinkErrorKind::Unclassified | SinkErrorKind::Stale => {
                Retry::Backoff
            }
            SinkErrorKind::AlreadyExists | SinkErrorKind::Rejected | SinkErrorKind::Fatal => {
                Retry::Never
            }
        }
    }
}

/// Where rows go: a super table of a database of some precision.
#[derive(Debug, Clone, Copy)]
pub struct InsertTarget<'a> {
    pub database: &'a str,
    pub super_table: &'a str,
    pub precision: Precision,
}

/// The multi-table INSERTs that write rows `segments` of `tables` (under TDengine's size limit).
pub fn insert_statements(
    target: &InsertTarget<'_>,
    tables: &[TableRows<'_>],
    segments: &[Segment],
) -> Vec<crate::sql::Insert> {
    let mut builder = InsertBuilder::with_max_bytes(
        target.database,
        target.super_table,
        usize::MAX,
        MAX_SQL_BYTES,
    );
    for (table, rows) in segments {
        builder.add_rows(&tables[*table], rows.clone());
    }
    builder.finish()
}

/// Writes rows `segments` of `tables` as multi-table INSERT statements through `sink`.
pub fn insert_as_sql<'a, S: Sink>(
    sink: &'a S,
    target: &InsertTarget<'_>,
    tables: &[TableRows<'_>],
    segments: &[Segment],
) -> impl Future<Output = Result<(), SinkError>> + Send + 'a {
    let statements = insert_statements(target, tables, segments);
    async move {
        for statement in statements {
            sink.execute(&statement.sql).await?;
        }
        Ok(())
    }
}

/// A target for rows and SQL statements.
pub trait Sink: Clone + Send + Sync + 'static {
    /// Runs one statement.
    fn execute(&self, sql: &str) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Writes rows `segments` of `tables` (at most the writer's `batch_size`), all or none of
    /// them; unless the sink knows better, as multi-table INSERT statements.
    fn insert(
        &self,
        target: &InsertTarget<'_>,
        tables: &[TableRows<'_>],
        segments: &[Segment],
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        insert_as_sql(self, target, tables, segments)
    }

    /// A super table's columns and tags as the target has them; `None` when it does not exist.
    fn describe(
        &self,
        database: &str,
        super_table: &str,
    ) -> impl Future<Output = Result<Option<TableSchema>, SinkError>> + Send;

    /// The target database, `None` when it does not exist.
    fn database(
        &self,
        database: &str,
    ) -> impl Future<Output = Result<Option<DatabaseInfo>, SinkError>> + Send;

    /// Makes every statement executed so far durable; called before a batch is acknowledged.
    fn flush(&self) -> impl Future<Output = Result<(), SinkError>> + Send;
}
