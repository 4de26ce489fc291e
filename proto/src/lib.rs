//! The wire contract between coordinator, readers and writers: protobuf messages, the
//! size-bounded row batch encoder, and every stream, subject, header and KV name.

pub mod batch;
pub mod names;

/// Types generated from `proto/influx2td/v1/influx2td.proto`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/influx2td.v1.rs"));
}

pub use batch::{
    BatchDecodeError, BatchEncoder, ClosedBatch, ColumnType, EncodeError, GROUPED_READ,
    MAX_BATCH_BYTES, Value,
};
pub use prost::Message;
