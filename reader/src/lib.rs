//! The reader: turns "measurement M, window [s, e)" into typed row batches, streaming from
//! InfluxDB without holding a window in memory.
//!
//! - [`client`]: HTTP to InfluxDB (`/ping`, `/query`), TLS, auth, errors.
//! - [`schema`]: measurements, field types (conflicts widened), tag keys, time bounds.
//! - [`influxql`]: the window read, chunked MessagePack into batches.
//! - [`flux`]: the window read with Flux (2.x), annotated CSV into batches.
//! - [`limit`]: the adaptive number of reads in flight.
//! - [`msgpack`]: the incremental MessagePack framer and decoder.
//! - [`check`]: the connectivity check behind `influx2td check`.
//! - [`tsm`]: the TSM source: a 1.x server's storage files read on its host.
//! - [`source`]: one window's batches, whichever language or source reads it.
//! - [`recorded`]: an answer held in memory decoded as a live one (fuzzing, hostile data).
//! - [`service`]: the reader role: work items in, row batches out.

pub mod check;
pub mod client;
pub mod error;
pub mod flux;
pub mod influxql;
pub mod limit;
pub mod msgpack;
pub mod recorded;
pub mod schema;
pub mod service;
pub mod source;
pub mod tsm;

pub use client::{AnswerFormat, InfluxClient, ServerInfo};
pub use error::SourceError;
pub use influxql::{ReadStats, WindowReader};
pub use schema::MeasurementSchema;
pub use source::WindowStream;
pub use tsm::TsmSource;
