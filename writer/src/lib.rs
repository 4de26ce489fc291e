//! The writer: turns row batches into rows in TDengine, correctly typed, never duplicated,
//! never lost.
//!
//! - [`mapping`]: names and types, compatible with TDengine's schemaless ingestion.
//! - [`schema`]: super table schemas and the DDL that evolves them.
//! - [`convert`]: a batch as rendered rows; rows TDengine cannot hold, with reasons.
//! - [`rows`]: typed rows per child table, as the sinks take them.
//! - [`sql`]: DDL and multi-table INSERT statements, exact string escaping.
//! - [`sink`]: where statements go; [`tdengine`] sends them to TDengine, [`file`](mod@file) to a file.
//! - [`target`]: opening the target named by the DSN, and its connectivity check.
//! - [`replay`]: what a file target's statements leave in TDengine (for `verify` and tests).
//! - [`service`]: the writer role: batches in, rows written, acknowledgements out.

pub mod convert;
pub mod file;
pub mod mapping;
pub mod replay;
pub mod rows;
pub mod schema;
pub mod service;
pub mod sink;
pub mod sql;
pub mod target;
pub mod tdengine;

pub use convert::Precision;
pub use file::FileSink;
pub use sink::{DatabaseInfo, InsertTarget, Sink, SinkError, SinkErrorKind};
pub use target::{AnySink, check_target, open_sink};
pub use tdengine::TdengineSink;
