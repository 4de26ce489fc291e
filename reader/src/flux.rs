//! Reads one window of one measurement with Flux (InfluxDB 2.x, `/api/v2/query`): the answer is
//! annotated CSV, parsed incrementally, so like the InfluxQL path no window is held whole.
//! `pivot()` turns fields into columns, and the `#datatype` annotation types every column, so
//! this path needs no schema lookup. A table may change schema mid-answer (new annotations), and
//! an error can arrive mid-stream as an `error,reference` table: it is an error, never an end.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::pb::Tag;
use influx2td_proto::{BatchEncoder, ClosedBatch, ColumnType, Value};

use crate::client::InfluxClient;
use crate::error::SourceError;
use crate::influxql::ReadStats;

/// The longest CSV record accepted; a longer one is an error, not unbounded memory.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// A Flux string literal: `\`, `"` and the interpolation opener `${` escaped.
pub fn flux_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${")
    )
}

/// The query reading `[start_ns, end_ns)` of a measurement with one column per field.
pub fn window_query(bucket: &str, measurement: &str, start_ns: i64, end_ns: i64) -> String {
    format!(
        "from(bucket: {})\n  |> range(start: time(v: {start_ns}), stop: time(v: {end_ns}))\n  \
         |> filter(fn: (r) => r._measurement == {})\n  \
         |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")",
        flux_string(bucket),
        flux_string(measurement)
    )
}

/// What the columns of the current table section mean.
#[derive(Debug, Default)]
struct Section {
    datatypes: Vec<String>,
    groups: Vec<bool>,
    defaults: Vec<String>,
    plan: Option<Plan>,
}

#[derive(Debug)]
enum Plan {
    Rows {
        /// Cells in every row: the header's.
        width: usize,
        time: usize,
        /// (column, tag key), sorted by key.
        tags: Vec<(usize, String)>,
        /// (column, field, type).
        fields: Vec<(usize, String, ColumnType)>,
    },
    /// An `error,reference` table: the message is in this column.
    Error { message: usize },
}

/// Tags and typed field columns of the series open in the encoder.
type SeriesKey = (Vec<Tag>, Vec<(String, ColumnType)>);

/// The body of an answer, as it arrives.
pub type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Streams the row batches of one window read with Flux.
pub struct FluxWindowReader {
    client: InfluxClient,
    query: String,
    body: ByteStream,
    input: Bytes,
    input_offset: usize,
    at_end: bool,
    /// The last two bytes of the answer, carriage returns left out: `\n\n` when it ends
    /// with a blank line (csv-core skips blank lines, so the records cannot tell).
    tail: [u8; 2],
    csv: csv_core::Reader,
    record: Vec<u8>,
    record_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    section: Section,
    encoder: Option<BatchEncoder>,
    ready: VecDeque<ClosedBatch>,
    open_series: Option<SeriesKey>,
    stats: ReadStats,
}

impl std::fmt::Debug for FluxWindowReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FluxWindowReader")
            .field("query", &self.query)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl FluxWindowReader {
    pub async fn open(
        client: &InfluxClient,
        window: WindowRef,
        batch_limit: usize,
    ) -> Result<Self, SourceError> {
        let query = window_query(
            client.database(),
            &window.measurement,
            window.window_start_ns,
            window.window_end_ns,
        );
        let response = client.query_flux(&query).await?;
        Ok(Self::from_body(
            client,
            query,
            window,
            batch_limit,
            Box::pin(response.bytes_stream()),
        ))
    }

    /// A reader of an answer already under way (or recorded): `body` is its bytes as they come.
    pub fn from_body(
        client: &InfluxClient,
        query: String,
        window: WindowRef,
        batch_limit: usize,
        body: ByteStream,
    ) -> Self {
        Self {
            client: client.clone(),
            query,
            body,
            input: Bytes::new(),
            input_offset: 0,
            at_end: false,
            tail: [0; 2],
            csv: csv_core::Reader::new(),
            record: vec![0; 4096],
            record_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            section: Section::default(),
            encoder: Some(BatchEncoder::with_limit(window, batch_limit)),
            ready: VecDeque::new(),
            open_series: None,
            stats: ReadStats::default(),
        }
    }

    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// The next batch; the last one carries the window's totals; then `None`.
    pub async fn next_batch(&mut self) -> Result<Option<ClosedBatch>, SourceError> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            if self.encoder.is_none() {
                return Ok(None);
            }
            if self.input_offset >= self.input.len() && !self.at_end {
                match self.body.next().await {
                    Some(Ok(bytes)) => {
                        self.stats.bytes += bytes.len() as u64;
                        for byte in bytes.iter().filter(|byte| **byte != b'\r') {
                            self.tail = [self.tail[1], *byte];
                        }
                        self.input = bytes;
                        self.input_offset = 0;
                    }
                    Some(Err(error)) => return Err(self.client.stream_error(&error)),
                    None => {
                        self.at_end = true;
                        self.input = Bytes::new();
                        self.input_offset = 0;
                    }
                }
            }
            let input = &self.input[self.input_offset..];
            let (result, read, written, ended) = self.csv.read_record(
                input,
                &mut self.record[self.record_len..],
                &mut self.ends[self.ends_len..],
            );
            self.input_offset += read;
            self.record_len += written;
            self.ends_len += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    if self.record.len() >= MAX_RECORD_BYTES {
                        return Err(SourceError::Malformed {
                            detail: format!("a CSV record longer than {MAX_RECORD_BYTES} bytes"),
                        });
                    }
                    let larger = self.record.len() * 2;
                    self.record.resize(larger, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let larger = self.ends.len() * 2;
                    self.ends.resize(larger, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    let record = std::mem::take(&mut self.record);
                    let ends = std::mem::take(&mut self.ends);
                    let outcome =
                        self.handle_record(&record[..self.record_len], &ends[..self.ends_len]);
                    self.record = record;
                    self.ends = ends;
                    self.record_len = 0;
                    self.ends_len = 0;
                    outcome?;
                }
                csv_core::ReadRecordResult::End => {
                    // Flux ends every table with a blank line; an answer that stops inside a
                    // table was cut short.
                    if self.section.plan.is_some() && self.tail != [b'\n', b'\n'] {
                        return Err(SourceError::Truncated {
                            detail: format!("the Flux answer ended inside a table: {}", self.query),
                        });
                    }
                    if let Some(encoder) = self.encoder.take() {
                        self.ready.push_back(encoder.finish());
                    }
                }
            }
        }
    }

    fn handle_record(&mut self, record: &[u8], ends: &[usize]) -> Result<(), SourceError> {
        let text = std::str::from_utf8(record).map_err(|_| SourceError::Malformed {
            detail: "a CSV record is not UTF-8".into(),
        })?;
        let mut fields = Vec::with_capacity(ends.len());
        let mut start = 0;
        for end in ends {
            fields.push(text.get(start..*end).unwrap_or_default());
            start = *end;
        }
        let Some(first) = fields.first().copied() else {
            return Ok(());
        };
        if first.starts_with('#') {
            if self.section.plan.is_some() {
                self.section = Section::default();
            }
            let values: Vec<String> = fields[1..]
                .iter()
                .map(|field| (*field).to_owned())
                .collect();
            match first {
                "#datatype" => self.section.datatypes = values,
                "#group" => {
                    self.section.groups = values.iter().map(|value| value == "true").collect()
                }
                "#default" => self.section.defaults = values,
                _ => {}
            }
            return Ok(());
        }
        match &self.section.plan {
            None => {
                self.section.plan = Some(self.plan(&fields)?);
                Ok(())
            }
            Some(Plan::Error { message }) => {
                let message = fields
                    .get(*message)
                    .copied()
                    .unwrap_or("unknown error")
                    .to_owned();
                Err(self.client.statement_error(&self.query, message))
            }
            Some(Plan::Rows { .. }) => self.handle_row(&fields),
        }
    }

    /// Reads the header row of a section against its annotations.
    fn plan(&self, header: &[&str]) -> Result<Plan, SourceError> {
        if let Some(message) = header.iter().position(|name| *name == "error")
            && header.contains(&"reference")
        {
            return Ok(Plan::Error { message });
        }
        let malformed = |detail: String| SourceError::Malformed { detail };
        // Annotation rows have no value for the annotation column; data columns start at 1.
        let annotation =
            |values: &[String], index: usize| values.get(index.wrapping_sub(1)).cloned();
        let mut time = None;
        let mut tags = Vec::new();
        let mut fields = Vec::new();
        for (index, name) in header.iter().enumerate().skip(1) {
            let datatype = annotation(&self.section.datatypes, index)
                .ok_or_else(|| malformed(format!("column {name:?} has no #datatype annotation")))?;
            match *name {
                "result" | "table" | "_start" | "_stop" | "_measurement" => {}
                "_time" => time = Some(index),
                "_field" | "_value" => {
                    return Err(malformed(format!(
                        "column {name:?}: the answer was not pivoted"
                    )));
                }
                _ if self.section.groups.get(index - 1) == Some(&true) => {
                    tags.push((index, (*name).to_owned()))
                }
                _ => {
                    let column_type = flux_type(&datatype).ok_or_else(|| {
                        malformed(format!("field {name:?} has datatype {datatype:?}"))
                    })?;
                    fields.push((index, (*name).to_owned(), column_type));
                }
            }
        }
        let time = time.ok_or_else(|| malformed("a table without a _time column".into()))?;
        tags.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(Plan::Rows {
            width: header.len(),
            time,
            tags,
            fields,
        })
    }

    fn handle_row(&mut self, cells: &[&str]) -> Result<(), SourceError> {
        let Some(Plan::Rows {
            width,
            time,
            tags,
            fields,
        }) = &self.section.plan
        else {
            return Ok(());
        };
        // A short row is a cut answer; reading its missing cells as nulls would lose values.
        if cells.len() != *width {
            return Err(SourceError::Malformed {
                detail: format!("a row has {} cells, its table {width}", cells.len()),
            });
        }
        let cell = |index: usize| -> &str {
            match cells.get(index).copied() {
                Some("") | None => self
                    .section
                    .defaults
                    .get(index - 1)
                    .map(String::as_str)
                    .unwrap_or(""),
                Some(value) => value,
            }
        };
        let timestamp = parse_time(cell(*time))?;
        let row_tags: Vec<Tag> = tags
            .iter()
            .filter(|(index, _)| !cell(*index).is_empty())
            .map(|(index, key)| Tag {
                key: key.clone(),
                value: cell(*index).to_owned(),
            })
            .collect();
        let columns: Vec<(String, ColumnType)> = fields
            .iter()
            .map(|(_, name, t)| (name.clone(), *t))
            .collect();
        let mut values = Vec::with_capacity(fields.len());
        for (index, name, column_type) in fields {
            values.push(parse_value(cell(*index), *column_type, name)?);
        }
        let same_series = self
            .open_series
            .as_ref()
            .is_some_and(|(open_tags, open_columns)| {
                *open_tags == row_tags && *open_columns == columns
            });
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(());
        };
        if !same_series {
            encoder.begin_series(row_tags.clone(), columns.clone());
            self.open_series = Some((row_tags, columns));
        }
        if let Some(batch) = encoder.push_row(timestamp, &values)? {
            self.ready.push_back(batch);
        }
        self.stats.rows += 1;
        Ok(())
    }
}

fn flux_type(datatype: &str) -> Option<ColumnType> {
    Some(match datatype {
        "double" => ColumnType::Double,
        "long" => ColumnType::Int64,
        "unsignedLong" => ColumnType::Uint64,
        "string" => ColumnType::String,
        "boolean" => ColumnType::Bool,
        _ => return None,
    })
}

fn parse_time(text: &str) -> Result<i64, SourceError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|time| time.timestamp_nanos_opt())
        .ok_or_else(|| SourceError::Malformed {
            detail: format!("_time {text:?} is not an RFC 3339 time"),
        })
}

/// A cell as a field value; an empty cell (without a default) is a missing field.
fn parse_value<'a>(
    text: &'a str,
    column_type: ColumnType,
    field: &str,
) -> Result<Option<Value<'a>>, SourceError> {
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || SourceError::Malformed {
        detail: format!("field {field:?}: {text:?} is not a {column_type} value"),
    };
    Ok(Some(match column_type {
        ColumnType::Double => Value::Double(text.parse().map_err(|_| invalid())?),
        ColumnType::Int64 => Value::Int64(text.parse().map_err(|_| invalid())?),
        ColumnType::Uint64 => Value::Uint64(text.parse().map_err(|_| invalid())?),
        ColumnType::Bool => Value::Bool(text.parse().map_err(|_| invalid())?),
        ColumnType::String => Value::String(text),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_strings_escape_quotes_backslashes_and_interpolation() {
        assert_eq!(flux_string(r#"a"b\c${d}"#), r#""a\"b\\c\${d}""#);
        let query = window_query("my bucket", "cpu", -5, 10);
        assert!(
            query.contains("range(start: time(v: -5), stop: time(v: 10))"),
            "{query}"
        );
        assert!(query.contains("r._measurement == \"cpu\""), "{query}");
    }
}
