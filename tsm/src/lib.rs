//! Read-only reader of InfluxDB 1.x storage files: a shard's TSM files, their tombstones and
//! its WAL segments, resolved as InfluxDB resolves them.
//!
//! - [`Shard`]: one shard's data and WAL directories; lists measurements, series and fields and
//!   reads one key's points over a time range, newest write winning, deletes applied.
//! - [`TsmFile`]: one `.tsm` file: header, index (binary search by key), CRC-checked blocks.
//! - [`tombstone`], [`wal`]: the parsers of `.tombstone` files and `_NNNNN.wal` segments.
//! - [`encoding`]: the block decoders (timestamps, floats, integers, unsigned, booleans,
//!   strings).
//! - [`key`]: series keys with InfluxDB's escaping.
//!
//! Nothing here writes, locks or renames a file: every file is opened read-only, so a live
//! influxd beside the reader is not disturbed.

pub mod encoding;
mod error;
pub mod key;
mod points;
mod shard;
pub mod tombstone;
mod tsm;
pub mod wal;

pub use error::{DecodeError, Error};
pub use key::SeriesKey;
pub use points::{FieldType, Points, Values};
pub use shard::{Shard, ShardKey};
pub use tsm::{IndexEntry, TsmFile};
