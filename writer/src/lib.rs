//! The writer: turns row batches into rows in TDengine, correctly typed, never duplicated,
//! never lost.
//!
//! - [`mapping`]: names and types, compatible with TDengine's schemaless ingestion.
//! - [`schema`]: super table schemas and the DDL that evolves them.
//! - [`convert`]: a batch as rendered rows; rows TDengine cannot hold, with reasons.
//! - [`sql`]: DDL and multi-table INSERT statements, exact string escaping.
//! - [`sink`]: where statements go; [`file`] writes them to a file.
//! - [`service`]: the writer role: batches in, rows written, acknowledgements out.

pub mod convert;
pub mod file;
pub mod mapping;
pub mod schema;
pub mod service;
pub mod sink;
pub mod sql;

pub use convert::Precision;
pub use file::FileSink;
pub use sink::{DatabaseInfo, Sink, SinkError, SinkErrorKind};
