//! Builds row batches that always encode to at most [`MAX_BATCH_BYTES`], and reads them back.
//!
//! The encoder keeps an upper bound of the encoded size while rows are appended (no re-encoding
//! per row) and cuts a new batch before a row would cross the limit. A series may continue over
//! several batches; the last batch of a window carries the window's totals.

use std::fmt;
use std::io::Write as _;

use bytes::Bytes;
use prost::Message;
use prost::encoding::encoded_len_varint;
use thiserror::Error;

use crate::pb::{self, column::Values};

/// Largest encoded batch: half of NATS's default 1 MiB max payload, leaving room for headers.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Worst-case bytes of a length-delimited field's tag plus its length prefix.
const FIELD_FRAME: usize = 1 + 5;
/// Room kept free in every batch for `seq` and the final `totals`.
const SEQ_AND_TOTALS_RESERVE: usize = (1 + 5) + FIELD_FRAME + (1 + 5) + (1 + 10);

/// The type of a field column; InfluxDB's five field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Double,
    Int64,
    Uint64,
    String,
    Bool,
}

impl ColumnType {
    /// An empty column of this type with room for `rows` values (strings: as long as `first`).
    fn values_for(self, rows: usize, first: Option<&Value<'_>>) -> Values {
        match self {
            Self::Double => Values::DoubleValues(pb::DoubleColumn {
                values: Vec::with_capacity(rows),
            }),
            Self::Int64 => Values::Int64Values(pb::Int64Column {
                values: Vec::with_capacity(rows),
            }),
            Self::Uint64 => Values::Uint64Values(pb::Uint64Column {
                values: Vec::with_capacity(rows),
            }),
            Self::String => Values::PackedStringValues(pb::PackedStringColumn {
                data: Vec::with_capacity(match first {
                    Some(Value::String(text)) => rows * text.len(),
                    _ => 0,
                }),
                ends: Vec::with_capacity(rows),
            }),
            Self::Bool => Values::BoolValues(pb::BoolColumn {
                values: Vec::with_capacity(rows),
            }),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Double => "float",
            Self::Int64 => "integer",
            Self::Uint64 => "unsigned",
            Self::String => "string",
            Self::Bool => "boolean",
        })
    }
}

/// One field value, borrowed from wherever it was decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Double(f64),
    Int64(i64),
    Uint64(u64),
    String(&'a str),
    Bool(bool),
}

impl Value<'_> {
    pub fn column_type(&self) -> ColumnType {
        match self {
            Self::Double(_) => ColumnType::Double,
            Self::Int64(_) => ColumnType::Int64,
            Self::Uint64(_) => ColumnType::Uint64,
            Self::String(_) => ColumnType::String,
            Self::Bool(_) => ColumnType::Bool,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error(
        "a row of measurement {measurement:?} at {timestamp_ns} ns needs {bytes} bytes, more than the batch limit of {limit} bytes"
    )]
    RowTooLarge {
        measurement: String,
        timestamp_ns: i64,
        bytes: usize,
        limit: usize,
    },
    #[error("field {column:?} is a {expected} column and cannot hold a {found} value")]
    TypeMismatch {
        column: String,
        expected: ColumnType,
        found: ColumnType,
    },
    #[error("a row has {found} values but the series has {expected} columns")]
    WrongArity { expected: usize, found: usize },
    #[error("a row was pushed before any series was begun")]
    NoSeries,
}

/// One batch of a window, closed and ready to publish.
#[derive(Debug, Clone)]
pub struct ClosedBatch {
    pub seq: u32,
    pub rows: u64,
    /// Set on the last batch of the window.
    pub totals: Option<pb::WindowTotals>,
    pub batch: pb::RowBatch,
    /// At least the length of the encoded batch, at most the encoder's limit.
    pub bound: usize,
}

impl ClosedBatch {
    /// The batch encoded (a transport that carries bytes encodes it; the in-process bus hands
    /// the batch over as it is).
    pub fn payload(&self) -> Bytes {
        Bytes::from(self.batch.encode_to_vec())
    }
}

/// Identifies the window whose rows are being encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRef {
    pub job: String,
    pub measurement: String,
    pub window_start_ns: i64,
    pub window_end_ns: i64,
    pub attempt: u32,
    /// Which delivery of the work item this read is (1 = the first), with [`GROUPED_READ`] set
    /// when the item read several measurements together.
    pub read: u32,
}

/// Set in [`WindowRef::read`] for a read of several measurements together. Such a read that
/// stops midway (too many rows) is replaced by one read of each measurement, whose first
/// delivery is read 1 again; the flag keeps the two reads' batches apart, in their dedup ids
/// and in the coordinator's count of a window's batches.
pub const GROUPED_READ: u32 = 1 << 31;

#[derive(Debug)]
struct OpenSeries {
    tags: Vec<pb::Tag>,
    columns: Vec<(String, ColumnType)>,
    /// Upper bound of the series block's bytes before any row is added.
    block_overhead: usize,
}

/// Cuts the rows of one window into batches of at most `limit` encoded bytes.
#[derive(Debug)]
pub struct BatchEncoder {
    limit: usize,
    batch: pb::RowBatch,
    /// Upper bound of `batch.encoded_len()` plus the reserve for seq and totals.
    bound: usize,
    empty_bound: usize,
    series: Option<OpenSeries>,
    /// Whether the open series has a block in the current batch.
    series_in_batch: bool,
    seq: u32,
    rows_in_batch: u64,
    total_rows: u64,
    /// Rows of the open series said to come next ([`BatchEncoder::expect_rows`]).
    expected_rows: usize,
}

impl BatchEncoder {
    pub fn new(window: WindowRef) -> Self {
        Self::with_limit(window, MAX_BATCH_BYTES)
    }

    pub fn with_limit(window: WindowRef, limit: usize) -> Self {
        let batch = pb::RowBatch {
            job: window.job,
            measurement: window.measurement,
            window_start_ns: window.window_start_ns,
            window_end_ns: window.window_end_ns,
            attempt: window.attempt,
            read: window.read,
            ..Default::default()
        };
        let empty_bound = batch.encoded_len() + SEQ_AND_TOTALS_RESERVE;
        Self {
            limit,
            batch,
            bound: empty_bound,
            empty_bound,
            series: None,
            series_in_batch: false,
            seq: 0,
            rows_in_batch: 0,
            total_rows: 0,
            expected_rows: 0,
        }
    }

    /// Says that about `rows` more rows of the open series come next (a hint): the columns of
    /// its next block are then allocated once for them, as far as the batch has room, instead
    /// of growing row by row.
    pub fn expect_rows(&mut self, rows: usize) {
        self.expected_rows = rows;
    }

    /// Starts the rows of one series. `tags` must be sorted by key.
    pub fn begin_series(&mut self, tags: Vec<pb::Tag>, columns: Vec<(String, ColumnType)>) {
        let tags_len: usize = tags.iter().map(|tag| FIELD_FRAME + tag.encoded_len()).sum();
        // A column: its name, its validity and its values (a packed string column frames its
        // data and its ends, the others their one repeated field).
        let columns_len: usize = columns
            .iter()
            .map(|(name, column_type)| {
                let frames = if *column_type == ColumnType::String {
                    4
                } else {
                    3
                };
                FIELD_FRAME + string_field_len(name) + frames * FIELD_FRAME
            })
            .sum();
        let block_overhead = FIELD_FRAME + tags_len + FIELD_FRAME + columns_len;
        self.series = Some(OpenSeries {
            tags,
            columns,
            block_overhead,
        });
        self.series_in_batch = false;
        self.expected_rows = 0;
    }

    /// Appends a row to the open series; returns the batch that had to be closed to make room.
    /// `values[i]` belongs to column `i`; `None` is a field the row lacks. Values are widened to
    /// the column's type where InfluxDB's widening allows (integer -> float, anything -> string).
    pub fn push_row(
        &mut self,
        timestamp_ns: i64,
        values: &[Option<Value<'_>>],
    ) -> Result<Option<ClosedBatch>, EncodeError> {
        let series = self.series.as_ref().ok_or(EncodeError::NoSeries)?;
        if values.len() != series.columns.len() {
            return Err(EncodeError::WrongArity {
                expected: series.columns.len(),
                found: values.len(),
            });
        }
        for ((name, column_type), value) in series.columns.iter().zip(values) {
            if let Some(value) = value {
                check_widening(name, *column_type, value)?;
            }
        }
        let row_bound = 10
            + series
                .columns
                .iter()
                .zip(values)
                .map(|((_, column_type), value)| 1 + value_bound(*column_type, value.as_ref()))
                .sum::<usize>();
        let block_overhead = series.block_overhead;
        // Refuse before closing anything, so that a refused row never costs the rows before it.
        if self.empty_bound + block_overhead + row_bound > self.limit {
            return Err(EncodeError::RowTooLarge {
                measurement: self.batch.measurement.clone(),
                timestamp_ns,
                bytes: self.empty_bound + block_overhead + row_bound,
                limit: self.limit,
            });
        }
        let mut needed = row_bound
            + if self.series_in_batch {
                0
            } else {
                block_overhead
            };
        let mut closed = None;
        if self.bound + needed > self.limit {
            closed = Some(self.close_batch(None));
            needed = row_bound + block_overhead;
        }
        self.append(timestamp_ns, values, row_bound);
        self.bound += needed;
        Ok(closed)
    }

    /// Closes the window: returns its last batch, which carries the totals. A window without
    /// rows still yields one (empty) batch, so its completion can be acknowledged.
    pub fn finish(mut self) -> ClosedBatch {
        let totals = pb::WindowTotals {
            batches: self.seq + 1,
            rows: self.total_rows + self.rows_in_batch,
        };
        self.close_batch(Some(totals))
    }

    /// Appends a row of `row_bound` bytes at most to the open series' block in the batch.
    fn append(&mut self, timestamp_ns: i64, values: &[Option<Value<'_>>], row_bound: usize) {
        let Some(series) = self.series.as_ref() else {
            return;
        };
        if !self.series_in_batch {
            // Room for the rows said to come, as many as fit this batch.
            let rows = self
                .expected_rows
                .min(self.limit.saturating_sub(self.bound) / row_bound.max(1) + 1);
            self.batch.series.push(pb::SeriesBlock {
                tags: series.tags.clone(),
                timestamps_ns: Vec::with_capacity(rows),
                columns: series
                    .columns
                    .iter()
                    .zip(values)
                    .map(|((name, column_type), value)| pb::Column {
                        name: name.clone(),
                        validity: Vec::with_capacity(rows.div_ceil(8)),
                        values: Some(column_type.values_for(rows, value.as_ref())),
                    })
                    .collect(),
            });
            self.series_in_batch = true;
        }
        self.expected_rows = self.expected_rows.saturating_sub(1);
        let Some(block) = self.batch.series.last_mut() else {
            return;
        };
        let row = block.timestamps_ns.len();
        block.timestamps_ns.push(timestamp_ns);
        for (column, value) in block.columns.iter_mut().zip(values) {
            if row % 8 == 0 {
                column.validity.push(0);
            }
            if value.is_some()
                && let Some(last) = column.validity.last_mut()
            {
                *last |= 1 << (row % 8);
            }
            push_value(column, value.as_ref());
        }
        self.rows_in_batch += 1;
    }

    fn close_batch(&mut self, totals: Option<pb::WindowTotals>) -> ClosedBatch {
        for block in &mut self.batch.series {
            let rows = block.timestamps_ns.len();
            for column in &mut block.columns {
                let present: usize = column
                    .validity
                    .iter()
                    .map(|b| b.count_ones() as usize)
                    .sum();
                if present == rows {
                    column.validity.clear();
                }
            }
        }
        self.batch.seq = self.seq;
        self.batch.totals = totals;
        // The next batch of the window: the same header, no rows yet.
        let next = pb::RowBatch {
            job: self.batch.job.clone(),
            measurement: self.batch.measurement.clone(),
            series: Vec::with_capacity(self.batch.series.len()),
            totals: None,
            ..self.batch
        };
        let encoded = ClosedBatch {
            seq: self.seq,
            rows: self.rows_in_batch,
            totals,
            batch: std::mem::replace(&mut self.batch, next),
            bound: self.bound.min(self.limit.max(self.empty_bound)),
        };
        self.seq += 1;
        self.total_rows += self.rows_in_batch;
        self.rows_in_batch = 0;
        self.bound = self.empty_bound;
        self.series_in_batch = false;
        encoded
    }
}

fn check_widening(
    column: &str,
    column_type: ColumnType,
    value: &Value<'_>,
) -> Result<(), EncodeError> {
    let found = value.column_type();
    let allowed = found == column_type
        || column_type == ColumnType::String
        || (column_type == ColumnType::Double
            && matches!(found, ColumnType::Int64 | ColumnType::Uint64));
    if allowed {
        return Ok(());
    }
    Err(EncodeError::TypeMismatch {
        column: column.to_owned(),
        expected: column_type,
        found,
    })
}

fn string_field_len(text: &str) -> usize {
    1 + encoded_len_varint(text.len() as u64) + text.len()
}

/// Upper bound of the bytes one value adds to its column (null values store a default; a
/// packed string adds its bytes and its end, a varint of at most 5 bytes).
fn value_bound(column_type: ColumnType, value: Option<&Value<'_>>) -> usize {
    match column_type {
        ColumnType::Double => 8,
        ColumnType::Int64 | ColumnType::Uint64 => 10,
        ColumnType::Bool => 1,
        ColumnType::String => match value {
            Some(Value::String(text)) => text.len() + 5,
            // Widened values print shorter than 32 bytes (f64 shortest form, i64, u64, bool).
            Some(_) => 32 + 5,
            None => 5,
        },
    }
}

fn push_value(column: &mut pb::Column, value: Option<&Value<'_>>) {
    match &mut column.values {
        Some(Values::DoubleValues(values)) => values.values.push(match value {
            Some(Value::Double(number)) => *number,
            Some(Value::Int64(number)) => *number as f64,
            Some(Value::Uint64(number)) => *number as f64,
            _ => 0.0,
        }),
        Some(Values::Int64Values(values)) => values.values.push(match value {
            Some(Value::Int64(number)) => *number,
            _ => 0,
        }),
        Some(Values::Uint64Values(values)) => values.values.push(match value {
            Some(Value::Uint64(number)) => *number,
            _ => 0,
        }),
        Some(Values::BoolValues(values)) => {
            values.values.push(matches!(value, Some(Value::Bool(true))))
        }
        Some(Values::PackedStringValues(values)) => {
            let data = &mut values.data;
            // Writing into a Vec cannot fail.
            let _ = match value {
                None => Ok(()),
                Some(Value::String(text)) => {
                    data.extend_from_slice(text.as_bytes());
                    Ok(())
                }
                Some(Value::Double(number)) => write!(data, "{number}"),
                Some(Value::Int64(number)) => write!(data, "{number}"),
                Some(Value::Uint64(number)) => write!(data, "{number}"),
                Some(Value::Bool(flag)) => write!(data, "{flag}"),
            };
            // A batch stays far below 4 GiB (MAX_BATCH_BYTES).
            values
                .ends
                .push(u32::try_from(data.len()).unwrap_or(u32::MAX));
        }
        // The encoder writes strings packed; the older form is only read.
        Some(Values::StringValues(_)) | None => {}
    }
}

/// The strings of a [`pb::PackedStringColumn`] whose data is UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct PackedStrings<'a> {
    text: &'a str,
    ends: &'a [u32],
}

impl<'a> PackedStrings<'a> {
    /// The string of row `row`; `None` out of range or cut inside a character.
    pub fn get(&self, row: usize) -> Option<&'a str> {
        let start = match row.checked_sub(1) {
            None => 0,
            Some(previous) => *self.ends.get(previous)? as usize,
        };
        let end = *self.ends.get(row)? as usize;
        self.text.get(start..end)
    }
}

impl pb::PackedStringColumn {
    /// The string of row `row`; `None` out of range or where the column is malformed (a batch
    /// taken through [`pb::RowBatch::decode_checked`] is not).
    pub fn get(&self, row: usize) -> Option<&str> {
        let start = match row.checked_sub(1) {
            None => 0,
            Some(previous) => *self.ends.get(previous)? as usize,
        };
        let end = *self.ends.get(row)? as usize;
        std::str::from_utf8(self.data.get(start..end)?).ok()
    }

    /// Its strings for access by row, the data checked as UTF-8 once instead of per string;
    /// `None` when the data is not UTF-8 (then [`Self::get`] still reads the rows that are).
    pub fn strings(&self) -> Option<PackedStrings<'_>> {
        Some(PackedStrings {
            text: std::str::from_utf8(&self.data).ok()?,
            ends: &self.ends,
        })
    }

    /// The longest string's length in bytes (0 for none).
    pub fn longest(&self) -> usize {
        let mut start = 0;
        let mut longest = 0;
        for end in &self.ends {
            let end = *end as usize;
            longest = longest.max(end.saturating_sub(start));
            start = end;
        }
        longest
    }

    /// Why the column is malformed: ends that go back or past the data, a string that is not
    /// UTF-8 (or cut inside a character), data after the last end.
    fn problem(&self) -> Option<String> {
        let Ok(text) = std::str::from_utf8(&self.data) else {
            return Some("its strings are not UTF-8".into());
        };
        let mut start = 0;
        for (row, end) in self.ends.iter().enumerate() {
            let end = *end as usize;
            if end < start || !text.is_char_boundary(end) {
                return Some(format!(
                    "the string of row {row} ends at byte {end}, outside its data"
                ));
            }
            start = end;
        }
        (start != text.len())
            .then(|| format!("{} bytes of data after its last string", text.len() - start))
    }
}

/// A message off the bus that is not a well-formed [`pb::RowBatch`].
#[derive(Debug, Error)]
pub enum BatchDecodeError {
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    #[error("column {column:?} of measurement {measurement:?}: {problem}")]
    Column {
        measurement: String,
        column: String,
        problem: String,
    },
}

impl pb::RowBatch {
    /// Decodes a batch and checks what protobuf cannot: that its packed string columns hold
    /// valid UTF-8 cut at character boundaries.
    pub fn decode_checked(payload: impl bytes::Buf) -> Result<Self, BatchDecodeError> {
        let batch = Self::decode(payload)?;
        for block in &batch.series {
            for column in &block.columns {
                if let Some(Values::PackedStringValues(values)) = &column.values
                    && let Some(problem) = values.problem()
                {
                    return Err(BatchDecodeError::Column {
                        measurement: batch.measurement.clone(),
                        column: column.name.clone(),
                        problem,
                    });
                }
            }
        }
        Ok(batch)
    }

    /// Rows in this batch, over all series.
    pub fn row_count(&self) -> u64 {
        self.series
            .iter()
            .map(|block| block.timestamps_ns.len() as u64)
            .sum()
    }
}

impl pb::SeriesBlock {
    pub fn row_count(&self) -> usize {
        self.timestamps_ns.len()
    }
}

impl pb::Column {
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self.values.as_ref()? {
            Values::DoubleValues(_) => ColumnType::Double,
            Values::Int64Values(_) => ColumnType::Int64,
            Values::Uint64Values(_) => ColumnType::Uint64,
            Values::StringValues(_) | Values::PackedStringValues(_) => ColumnType::String,
            Values::BoolValues(_) => ColumnType::Bool,
        })
    }

    /// Whether row `row` has a value (an empty validity bitmap means every row has one).
    pub fn is_present(&self, row: usize) -> bool {
        if self.validity.is_empty() {
            return true;
        }
        self.validity
            .get(row / 8)
            .is_some_and(|byte| byte & (1 << (row % 8)) != 0)
    }

    /// The value of row `row`, `None` when the row lacks this field (or the row is out of range).
    pub fn value(&self, row: usize) -> Option<Value<'_>> {
        if !self.is_present(row) {
            return None;
        }
        match self.values.as_ref()? {
            Values::DoubleValues(values) => values.values.get(row).copied().map(Value::Double),
            Values::Int64Values(values) => values.values.get(row).copied().map(Value::Int64),
            Values::Uint64Values(values) => values.values.get(row).copied().map(Value::Uint64),
            Values::StringValues(values) => values.values.get(row).map(|text| Value::String(text)),
            Values::PackedStringValues(values) => values.get(row).map(Value::String),
            Values::BoolValues(values) => values.values.get(row).copied().map(Value::Bool),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window() -> WindowRef {
        WindowRef {
            job: "job".into(),
            measurement: "cpu".into(),
            window_start_ns: -3_600_000_000_000,
            window_end_ns: 0,
            attempt: 1,
            read: 1,
        }
    }

    fn tag(key: &str, value: &str) -> pb::Tag {
        pb::Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn empty_window_yields_one_batch_with_zero_totals() {
        let last = BatchEncoder::new(window()).finish();
        assert_eq!(last.seq, 0);
        assert_eq!(
            last.totals,
            Some(pb::WindowTotals {
                batches: 1,
                rows: 0
            })
        );
        let decoded = pb::RowBatch::decode(last.payload()).unwrap();
        assert!(decoded.series.is_empty());
        assert_eq!(decoded.window_start_ns, -3_600_000_000_000);
        assert_eq!(decoded.totals.unwrap().rows, 0);
    }

    #[test]
    fn round_trips_every_type_nulls_and_widening() {
        let mut encoder = BatchEncoder::new(window());
        encoder.begin_series(
            vec![tag("host", "a b,c=d\"é")],
            vec![
                ("f".into(), ColumnType::Double),
                ("i".into(), ColumnType::Int64),
                ("u".into(), ColumnType::Uint64),
                ("s".into(), ColumnType::String),
                ("b".into(), ColumnType::Bool),
            ],
        );
        let rows: [(i64, [Option<Value<'_>>; 5]); 3] = [
            (
                -1,
                [
                    Some(Value::Double(1.5)),
                    Some(Value::Int64(i64::MIN)),
                    Some(Value::Uint64(u64::MAX)),
                    Some(Value::String("line\nbreak 'quote' \\")),
                    Some(Value::Bool(true)),
                ],
            ),
            (0, [None, None, None, None, None]),
            (
                1_700_000_000_123_456_789,
                [
                    Some(Value::Int64(3)),
                    None,
                    None,
                    Some(Value::Bool(false)),
                    Some(Value::Bool(false)),
                ],
            ),
        ];
        for (timestamp, values) in &rows {
            assert!(encoder.push_row(*timestamp, values).unwrap().is_none());
        }
        let last = encoder.finish();
        assert_eq!(last.rows, 3);
        let batch = pb::RowBatch::decode(last.payload()).unwrap();
        assert_eq!(batch.row_count(), 3);
        let block = &batch.series[0];
        assert_eq!(block.tags, vec![tag("host", "a b,c=d\"é")]);
        assert_eq!(block.timestamps_ns, vec![-1, 0, 1_700_000_000_123_456_789]);
        assert_eq!(block.columns[0].value(0), Some(Value::Double(1.5)));
        assert_eq!(block.columns[1].value(0), Some(Value::Int64(i64::MIN)));
        assert_eq!(block.columns[2].value(0), Some(Value::Uint64(u64::MAX)));
        assert_eq!(
            block.columns[3].value(0),
            Some(Value::String("line\nbreak 'quote' \\"))
        );
        assert_eq!(block.columns[4].value(0), Some(Value::Bool(true)));
        for column in &block.columns {
            assert_eq!(column.value(1), None, "column {}", column.name);
        }
        // An integer in a float column (type conflict between shards) is widened.
        assert_eq!(block.columns[0].value(2), Some(Value::Double(3.0)));
        assert_eq!(block.columns[3].value(2), Some(Value::String("false")));
        assert_eq!(block.columns[4].value(2), Some(Value::Bool(false)));
    }

    #[test]
    fn narrowing_is_refused_with_the_column_named() {
        let mut encoder = BatchEncoder::new(window());
        encoder.begin_series(vec![], vec![("usage".into(), ColumnType::Int64)]);
        let error = encoder
            .push_row(0, &[Some(Value::Double(0.5))])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "field \"usage\" is a integer column and cannot hold a float value"
        );
        assert!(matches!(
            encoder.push_row(0, &[]),
            Err(EncodeError::WrongArity {
                expected: 1,
                found: 0
            })
        ));
    }

    #[test]
    fn a_row_larger_than_the_limit_is_an_error_naming_it() {
        let mut encoder = BatchEncoder::new(window());
        encoder.begin_series(vec![], vec![("s".into(), ColumnType::String)]);
        let huge = "x".repeat(MAX_BATCH_BYTES);
        let error = encoder
            .push_row(42, &[Some(Value::String(&huge))])
            .unwrap_err();
        assert!(
            matches!(
                error,
                EncodeError::RowTooLarge {
                    timestamp_ns: 42,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("\"cpu\" at 42 ns"));
    }

    #[derive(Debug, Clone)]
    enum Generated {
        Double(f64),
        Int64(i64),
        Uint64(u64),
        String(String),
        Bool(bool),
    }

    impl Generated {
        fn as_value(&self) -> Value<'_> {
            match self {
                Self::Double(v) => Value::Double(*v),
                Self::Int64(v) => Value::Int64(*v),
                Self::Uint64(v) => Value::Uint64(*v),
                Self::String(v) => Value::String(v),
                Self::Bool(v) => Value::Bool(*v),
            }
        }
    }

    fn value_of(column_type: ColumnType, max_string: usize) -> BoxedStrategy<Option<Generated>> {
        let value = match column_type {
            ColumnType::Double => (-1e300f64..1e300).prop_map(Generated::Double).boxed(),
            ColumnType::Int64 => any::<i64>().prop_map(Generated::Int64).boxed(),
            ColumnType::Uint64 => any::<u64>().prop_map(Generated::Uint64).boxed(),
            ColumnType::Bool => any::<bool>().prop_map(Generated::Bool).boxed(),
            ColumnType::String => prop_oneof![
                "\\PC{0,12}".prop_map(Generated::String),
                (0..max_string, any::<char>())
                    .prop_map(|(n, c)| Generated::String(c.to_string().repeat(n))),
            ]
            .boxed(),
        };
        proptest::option::weighted(0.8, value).boxed()
    }

    type Series = (
        Vec<pb::Tag>,
        Vec<ColumnType>,
        Vec<(i64, Vec<Option<Generated>>)>,
    );

    fn series(max_columns: usize, max_string: usize) -> impl Strategy<Value = Series> {
        let column_type = prop_oneof![
            Just(ColumnType::Double),
            Just(ColumnType::Int64),
            Just(ColumnType::Uint64),
            Just(ColumnType::String),
            Just(ColumnType::Bool),
        ];
        (
            proptest::collection::vec(("[a-z]{1,8}", "\\PC{0,20}"), 0..4),
            proptest::collection::vec(column_type, 1..max_columns),
        )
            .prop_flat_map(move |(tags, types)| {
                let row = (
                    any::<i64>(),
                    types
                        .iter()
                        .map(|t| value_of(*t, max_string))
                        .collect::<Vec<_>>(),
                );
                let tags = tags
                    .into_iter()
                    .map(|(k, v)| tag(&k, &v))
                    .collect::<Vec<_>>();
                (
                    Just(tags),
                    Just(types),
                    proptest::collection::vec(row, 0..60),
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Wide rows and long strings: every encoded batch stays within the limit, and decoding
        /// all batches gives back exactly the rows pushed, in order, with correct totals.
        #[test]
        fn batches_stay_under_the_limit_and_round_trip(
            all_series in proptest::collection::vec(series(120, 12_000), 1..5),
            limit in prop_oneof![Just(MAX_BATCH_BYTES), 64_000usize..200_000],
        ) {
            let mut encoder = BatchEncoder::with_limit(window(), limit);
            let mut batches = Vec::new();
            let mut expected_rows = Vec::new();
            for (tags, types, rows) in &all_series {
                let columns: Vec<_> = types.iter().enumerate().map(|(i, t)| (format!("field_{i}"), *t)).collect();
                encoder.begin_series(tags.clone(), columns);
                if tags.len() % 2 == 0 {
                    // The reader's hint of the rows to come (the encoder must not rely on it).
                    encoder.expect_rows(rows.len());
                }
                for (timestamp, values) in rows {
                    let row: Vec<_> = values.iter().map(|v| v.as_ref().map(Generated::as_value)).collect();
                    match encoder.push_row(*timestamp, &row) {
                        Ok(closed) => batches.extend(closed),
                        Err(EncodeError::RowTooLarge { .. }) => {
                            // Refusing is right only for a row that really is large; the
                            // encoder must stay usable afterwards.
                            let payload: usize = values.iter().flatten().map(|v| match v {
                                Generated::String(text) => text.len(),
                                _ => 8,
                            }).sum();
                            prop_assert!(payload > limit / 2, "refused a row of {} bytes", payload);
                            continue;
                        }
                        Err(other) => panic!("{other}"),
                    }
                    let formatted: Vec<_> = row.iter().map(|v| v.as_ref().map(|v| format!("{v:?}"))).collect();
                    expected_rows.push((tags.clone(), *timestamp, formatted));
                }
            }
            batches.push(encoder.finish());

            let total_rows = expected_rows.len();
            let last = batches.last().unwrap();
            prop_assert_eq!(last.totals, Some(pb::WindowTotals { batches: batches.len() as u32, rows: total_rows as u64 }));

            let mut decoded_rows = Vec::new();
            for (index, batch) in batches.iter().enumerate() {
                prop_assert!(batch.payload().len() <= limit, "batch {} is {} bytes", index, batch.payload().len());
                prop_assert_eq!(batch.seq as usize, index);
                let decoded = pb::RowBatch::decode_checked(batch.payload()).unwrap();
                prop_assert_eq!(decoded.seq as usize, index);
                prop_assert_eq!(decoded.row_count(), batch.rows);
                prop_assert_eq!(decoded.totals.is_some(), index + 1 == batches.len());
                for block in decoded.series {
                    for row in 0..block.row_count() {
                        let values: Vec<_> = block.columns.iter().map(|c| c.value(row).map(|v| format!("{v:?}"))).collect();
                        decoded_rows.push((block.tags.clone(), block.timestamps_ns[row], values));
                    }
                }
            }
            prop_assert_eq!(decoded_rows, expected_rows);
        }
    }

    /// A batch of one series with one column `name` holding `values`.
    fn batch_with(values: Values) -> pb::RowBatch {
        let rows = match &values {
            Values::StringValues(column) => column.values.len(),
            Values::PackedStringValues(column) => column.ends.len(),
            _ => 0,
        };
        pb::RowBatch {
            measurement: "m".into(),
            series: vec![pb::SeriesBlock {
                tags: Vec::new(),
                timestamps_ns: (0..rows as i64).collect(),
                columns: vec![pb::Column {
                    name: "s".into(),
                    validity: Vec::new(),
                    values: Some(values),
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn strings_written_before_packing_are_still_read() {
        let batch = batch_with(Values::StringValues(pb::StringColumn {
            values: vec!["a \"b\"".into(), String::new(), "ü🔥".into()],
        }));
        let decoded = pb::RowBatch::decode_checked(Bytes::from(batch.encode_to_vec())).unwrap();
        let column = &decoded.series[0].columns[0];
        assert_eq!(column.column_type(), Some(ColumnType::String));
        let values: Vec<_> = (0..3).map(|row| column.value(row)).collect();
        assert_eq!(
            values,
            [
                Some(Value::String("a \"b\"")),
                Some(Value::String("")),
                Some(Value::String("ü🔥"))
            ]
        );
    }

    #[test]
    fn malformed_packed_strings_are_refused_naming_the_column() {
        let packed = |data: &[u8], ends: &[u32]| {
            let batch = batch_with(Values::PackedStringValues(pb::PackedStringColumn {
                data: data.to_vec(),
                ends: ends.to_vec(),
            }));
            pb::RowBatch::decode_checked(Bytes::from(batch.encode_to_vec()))
                .map(|batch| {
                    batch.series[0].columns[0]
                        .value(1)
                        .map(|v| format!("{v:?}"))
                })
                .map_err(|error| error.to_string())
        };
        assert_eq!(
            packed("abü".as_bytes(), &[1, 4]),
            Ok(Some(r#"String("bü")"#.into()))
        );
        assert_eq!(packed(b"a", &[1, 1]), Ok(Some(r#"String("")"#.into())));
        let refusals = [
            (packed(b"a\xffb", &[1, 3]), "its strings are not UTF-8"),
            (
                packed("aü".as_bytes(), &[2, 3]),
                "the string of row 0 ends at byte 2, outside its data",
            ),
            (
                packed(b"abc", &[2, 1]),
                "the string of row 1 ends at byte 1, outside its data",
            ),
            (
                packed(b"abc", &[1, 9]),
                "the string of row 1 ends at byte 9, outside its data",
            ),
            (
                packed(b"abc", &[1, 2]),
                "1 bytes of data after its last string",
            ),
        ];
        for (found, problem) in refusals {
            assert_eq!(
                found,
                Err(format!("column \"s\" of measurement \"m\": {problem}"))
            );
        }
    }

    #[test]
    fn a_full_window_fills_batches_well() {
        // 100 k narrow rows: batches are cut near the limit, not far below it.
        let mut encoder = BatchEncoder::new(window());
        encoder.begin_series(
            vec![tag("host", "server-01")],
            vec![("value".into(), ColumnType::Double)],
        );
        let mut batches = Vec::new();
        for row in 0..100_000i64 {
            batches.extend(
                encoder
                    .push_row(
                        1_700_000_000_000_000_000 + row,
                        &[Some(Value::Double(row as f64))],
                    )
                    .unwrap(),
            );
        }
        batches.push(encoder.finish());
        let (last, full) = batches.split_last().unwrap();
        assert!(!full.is_empty());
        for batch in full {
            assert!(batch.payload().len() <= MAX_BATCH_BYTES);
            assert!(
                batch.payload().len() > MAX_BATCH_BYTES * 8 / 10,
                "only {} bytes",
                batch.payload().len()
            );
        }
        let rows: u64 = batches.iter().map(|b| b.rows).sum();
        assert_eq!(rows, 100_000);
        assert_eq!(last.totals.unwrap().rows, 100_000);
    }
}
