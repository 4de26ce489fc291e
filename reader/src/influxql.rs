//! Reads one window of one measurement with InfluxQL: a chunked, streaming MessagePack `/query`
//! decoded chunk by chunk into size-bounded row batches. A window is never held in memory whole:
//! the next chunk is read only when the caller asks for the next batch.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use influx2td_proto::batch::WindowRef;
use influx2td_proto::pb::Tag;
use influx2td_proto::{BatchEncoder, ClosedBatch, ColumnType, Value};

use crate::client::{AnswerFormat, InfluxClient};
use crate::error::SourceError;
use crate::msgpack::{Cursor, Framer, Item};
use crate::schema::{MeasurementSchema, from_clause};

/// Rows InfluxDB puts in one chunk.
pub const CHUNK_ROWS: usize = 10_000;
/// Largest chunk accepted; a larger one is an error, not unbounded memory.
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;

/// The statement reading `[start_ns, end_ns)` of a measurement, every field, grouped by series.
pub fn window_statement(
    client: &InfluxClient,
    measurement: &str,
    start_ns: i64,
    end_ns: i64,
) -> String {
    group_statement(client, &[measurement], start_ns, end_ns)
}

/// The statements reading `[start_ns, end_ns)` of several measurements in one query: one
/// statement each, `;`-separated, so that each is read exactly as on its own. (One statement
/// with a list in `FROM` would be cheaper for InfluxDB, but it casts a field that two
/// measurements type differently to one type: integers become floats, strings vanish.)
pub fn group_statement(
    client: &InfluxClient,
    measurements: &[&str],
    start_ns: i64,
    end_ns: i64,
) -> String {
    let statements: Vec<String> = measurements
        .iter()
        .map(|measurement| {
            format!(
                "SELECT *::field FROM {} WHERE time >= {start_ns} AND time < {end_ns} GROUP BY *",
                from_clause(client, measurement)
            )
        })
        .collect();
    statements.join(";")
}

pub use crate::flux::ByteStream;

/// What the read of a window found, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub rows: u64,
    pub bytes: u64,
    pub chunks: u64,
}

/// One measurement of a read: its schema, and the batches of its window.
struct Member {
    schema: Arc<MeasurementSchema>,
    encoder: Option<BatchEncoder>,
    /// Tags and field columns of the series open in the encoder.
    open_series: Option<(Vec<Tag>, Vec<String>)>,
}

/// Streams the row batches of one window, of one measurement or of several read together.
pub struct WindowReader {
    client: InfluxClient,
    statement: String,
    members: Vec<Member>,
    body: ByteStream,
    buffer: Vec<u8>,
    framer: Framer,
    /// Finished batches and the member they are of.
    ready: VecDeque<(usize, ClosedBatch)>,
    finished: bool,
    format: AnswerFormat,
    stats: ReadStats,
}

impl std::fmt::Debug for WindowReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WindowReader")
            .field("statement", &self.statement)
            .field("measurements", &self.members.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WindowReader {
    /// Sends the query; batches come from [`WindowReader::next_batch`].
    pub async fn open(
        client: &InfluxClient,
        schema: Arc<MeasurementSchema>,
        window: WindowRef,
        batch_limit: usize,
    ) -> Result<Self, SourceError> {
        Self::open_group(client, vec![(schema, window)], batch_limit).await
    }

    /// Sends one query for the same window of several measurements (`members`: each one's
    /// schema and window); their batches come from [`WindowReader::next_member_batch`].
    pub async fn open_group(
        client: &InfluxClient,
        members: Vec<(Arc<MeasurementSchema>, WindowRef)>,
        batch_limit: usize,
    ) -> Result<Self, SourceError> {
        let Some((_, first)) = members.first() else {
            return Err(SourceError::Config {
                detail: "a window read needs a measurement".into(),
            });
        };
        // Several statements in one request are answered in order by 1.x (tested); 2.x and 3.x
        // are not known to, so there the reader reads each measurement on its own instead.
        if members.len() > 1 && client.major_version().await? != Some(1) {
            return Err(SourceError::Config {
                detail: "only InfluxDB 1.x is read several measurements per query".into(),
            });
        }
        let names: Vec<&str> = members
            .iter()
            .map(|(_, window)| window.measurement.as_str())
            .collect();
        let statement = group_statement(client, &names, first.window_start_ns, first.window_end_ns);
        let (response, format) = client.query_window(&statement, CHUNK_ROWS).await?;
        Ok(Self::from_group_body(
            client,
            statement,
            members,
            batch_limit,
            Box::pin(response.bytes_stream()),
        )
        .with_format(format))
    }

    /// A reader of an answer already under way (or recorded): `body` is its bytes as they come.
    pub fn from_body(
        client: &InfluxClient,
        statement: String,
        schema: Arc<MeasurementSchema>,
        window: WindowRef,
        batch_limit: usize,
        body: ByteStream,
    ) -> Self {
        Self::from_group_body(client, statement, vec![(schema, window)], batch_limit, body)
    }

    /// [`WindowReader::from_body`] of a read of several measurements.
    pub fn from_group_body(
        client: &InfluxClient,
        statement: String,
        members: Vec<(Arc<MeasurementSchema>, WindowRef)>,
        batch_limit: usize,
        body: ByteStream,
    ) -> Self {
        Self {
            client: client.clone(),
            statement,
            members: members
                .into_iter()
                .map(|(schema, window)| Member {
                    schema,
                    encoder: Some(BatchEncoder::with_limit(window, batch_limit)),
                    open_series: None,
                })
                .collect(),
            body,
            buffer: Vec::new(),
            framer: Framer::new(MAX_CHUNK_BYTES),
            ready: VecDeque::new(),
            finished: false,
            format: AnswerFormat::Msgpack,
            stats: ReadStats::default(),
        }
    }

    /// The same reader for an answer in `format` (MessagePack unless told).
    pub fn with_format(mut self, format: AnswerFormat) -> Self {
        self.format = format;
        self
    }

    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// The next batch; the last one carries the window's totals; then `None`.
    pub async fn next_batch(&mut self) -> Result<Option<ClosedBatch>, SourceError> {
        Ok(self.next_member_batch().await?.map(|(_, batch)| batch))
    }

    /// The next batch and the member (by its place in the read) it is of; each member's last
    /// batch carries its totals, and every member has one, rows or not; then `None`.
    pub async fn next_member_batch(&mut self) -> Result<Option<(usize, ClosedBatch)>, SourceError> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            if self.finished {
                return Ok(None);
            }
            match self.format {
                AnswerFormat::Msgpack => {
                    if let Some(length) = self.framer.scan(&self.buffer)? {
                        let frame: Vec<u8> = self.buffer.drain(..length).collect();
                        self.framer.reset();
                        self.stats.chunks += 1;
                        self.decode_chunk(&frame)?;
                        continue;
                    }
                }
                AnswerFormat::JsonLines => {
                    if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                        let line: Vec<u8> = self.buffer.drain(..=end).collect();
                        self.decode_json_line(&line)?;
                        continue;
                    }
                    if self.buffer.len() as u64 > MAX_CHUNK_BYTES {
                        return Err(SourceError::Malformed {
                            detail: format!(
                                "a line of the answer to {} is longer than {MAX_CHUNK_BYTES} bytes",
                                self.statement
                            ),
                        });
                    }
                }
            }
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    self.stats.bytes += bytes.len() as u64;
                    self.buffer.extend_from_slice(&bytes);
                }
                Some(Err(error)) => return Err(self.client.stream_error(&error)),
                // The last JSON line may end without a newline.
                None if self.format == AnswerFormat::JsonLines
                    && !self.buffer.iter().all(u8::is_ascii_whitespace) =>
                {
                    let line = std::mem::take(&mut self.buffer);
                    self.decode_json_line(&line).map_err(|error| match error {
                        SourceError::Malformed { detail } => SourceError::Truncated {
                            detail: format!("the answer stopped in its last line: {detail}"),
                        },
                        other => other,
                    })?;
                }
                None if self.format == AnswerFormat::Msgpack
                    && (self.framer.in_value() || !self.buffer.is_empty()) =>
                {
                    return Err(SourceError::Truncated {
                        detail: format!(
                            "the answer stopped in the middle of a chunk ({} bytes pending) to {}",
                            self.buffer.len(),
                            self.statement
                        ),
                    });
                }
                None => {
                    self.finished = true;
                    for (index, member) in self.members.iter_mut().enumerate() {
                        if let Some(encoder) = member.encoder.take() {
                            self.ready.push_back((index, encoder.finish()));
                        }
                    }
                }
            }
        }
    }

    /// One line of a chunked JSON answer: `{"results":[{"series":[...]}]}`.
    fn decode_json_line(&mut self, line: &[u8]) -> Result<(), SourceError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.stats.chunks += 1;
        let chunk: JsonChunk =
            serde_json::from_slice(line).map_err(|error| SourceError::Malformed {
                detail: format!("{error} in a line of the answer to {}", self.statement),
            })?;
        if let Some(message) = chunk.error {
            return Err(self.client.statement_error(&self.statement, message));
        }
        for result in chunk.results {
            if let Some(message) = result.error {
                return Err(self.client.statement_error(&self.statement, message));
            }
            for series in result.series {
                self.decode_json_series(series)?;
            }
        }
        Ok(())
    }

    fn decode_json_series(&mut self, series: JsonWindowSeries) -> Result<(), SourceError> {
        if series.values.is_empty() {
            return Ok(());
        }
        let member = self.member_of(series.name.as_deref())?;
        // A tag a series lacks comes as an empty string, or as null.
        let mut tags: Vec<Tag> = series
            .tags
            .into_iter()
            .filter_map(|(key, value)| {
                value
                    .filter(|value| !value.is_empty())
                    .map(|value| Tag { key, value })
            })
            .collect();
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        let columns = series.columns;
        let Some((time_index, fields, types)) = self.open_rows(member, &tags, &columns)? else {
            return Ok(());
        };
        let Some(encoder) = self.members[member].encoder.as_mut() else {
            return Ok(());
        };
        encoder.expect_rows(series.values.len());
        let mut row: Vec<Option<Value<'_>>> = Vec::with_capacity(fields.len());
        for values in &series.values {
            if values.len() != columns.len() {
                return Err(SourceError::Malformed {
                    detail: format!(
                        "a row of {} values where the series has {} columns: {values:?}",
                        values.len(),
                        columns.len()
                    ),
                });
            }
            row.clear();
            let mut timestamp = 0;
            for (index, value) in values.iter().enumerate() {
                if index == time_index {
                    timestamp = value.as_i64().ok_or_else(|| SourceError::Malformed {
                        detail: format!("time is {value}, not an integer (epoch=ns)"),
                    })?;
                    continue;
                }
                let column = row.len();
                row.push(json_field_value(value, types[column], &fields[column])?);
            }
            if let Some(batch) = encoder.push_row(timestamp, &row)? {
                self.ready.push_back((member, batch));
            }
            self.stats.rows += 1;
        }
        Ok(())
    }

    fn decode_chunk(&mut self, frame: &[u8]) -> Result<(), SourceError> {
        let mut cursor = Cursor::new(frame);
        for _ in 0..cursor.map()? {
            match cursor.str()? {
                "results" => {
                    for _ in 0..cursor.array()? {
                        self.decode_result(&mut cursor)?;
                    }
                }
                "error" => {
                    let message = cursor.str()?.to_owned();
                    return Err(self.client.statement_error(&self.statement, message));
                }
                _ => cursor.skip()?,
            }
        }
        Ok(())
    }

    fn decode_result(&mut self, cursor: &mut Cursor<'_>) -> Result<(), SourceError> {
        for _ in 0..cursor.map()? {
            match cursor.str()? {
                "series" => {
                    for _ in 0..cursor.array()? {
                        self.decode_series(cursor)?;
                    }
                }
                // InfluxDB reports query errors in the body of an HTTP 200, even mid-stream.
                "error" => {
                    let message = cursor.str()?.to_owned();
                    return Err(self.client.statement_error(&self.statement, message));
                }
                _ => cursor.skip()?,
            }
        }
        Ok(())
    }

    /// The member a series named `name` is of (a read of one measurement takes any name).
    fn member_of(&self, name: Option<&str>) -> Result<usize, SourceError> {
        if self.members.len() == 1 {
            return Ok(0);
        }
        name.and_then(|name| {
            self.members
                .iter()
                .position(|member| member.schema.measurement == name)
        })
        .ok_or_else(|| SourceError::Malformed {
            detail: format!(
                "a series of {name:?}, not one of the measurements asked for in {}",
                self.statement
            ),
        })
    }

    fn decode_series(&mut self, cursor: &mut Cursor<'_>) -> Result<(), SourceError> {
        let mut name = None;
        let mut tags = Vec::new();
        let mut columns: Vec<String> = Vec::new();
        for _ in 0..cursor.map()? {
            match cursor.str()? {
                "name" => name = Some(cursor.str()?.to_owned()),
                "tags" => {
                    for _ in 0..cursor.map()? {
                        let key = cursor.str()?;
                        let value = cursor.str()?;
                        // GROUP BY * gives a series without a tag that tag with an empty value.
                        if !value.is_empty() {
                            tags.push(Tag {
                                key: key.to_owned(),
                                value: value.to_owned(),
                            });
                        }
                    }
                    tags.sort_by(|a, b| a.key.cmp(&b.key));
                }
                "columns" => {
                    columns = (0..cursor.array()?)
                        .map(|_| cursor.str().map(str::to_owned))
                        .collect::<Result<_, _>>()?;
                }
                "values" => {
                    let member = self.member_of(name.as_deref())?;
                    self.decode_rows(cursor, member, &tags, &columns)?;
                }
                _ => cursor.skip()?,
            }
        }
        Ok(())
    }

    /// Makes ready for rows of `member` with `tags` and `columns`: their time column, fields and
    /// types (the schema's), the batches of the members asked before it finished, the series
    /// begun in its encoder; `None` when the read is over.
    #[allow(clippy::type_complexity)]
    fn open_rows(
        &mut self,
        member: usize,
        tags: &[Tag],
        columns: &[String],
    ) -> Result<Option<(usize, Vec<String>, Vec<ColumnType>)>, SourceError> {
        let Some(time_index) = columns.iter().position(|column| column == "time") else {
            return Err(SourceError::Malformed {
                detail: format!(
                    "a series without a time column in the answer to {}",
                    self.statement
                ),
            });
        };
        let schema = self.members[member].schema.clone();
        let fields: Vec<String> = columns.iter().filter(|c| *c != "time").cloned().collect();
        let types: Vec<ColumnType> = fields
            .iter()
            .map(|name| {
                schema
                    .field_type(name)
                    .ok_or_else(|| SourceError::SchemaChanged {
                        measurement: schema.measurement.clone(),
                        field: name.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        // The statements are answered one after the other: a member's first rows mean that
        // those asked before it are whole, and their last batches can go now.
        for (index, earlier) in self.members[..member].iter_mut().enumerate() {
            if let Some(encoder) = earlier.encoder.take() {
                self.ready.push_back((index, encoder.finish()));
            }
        }
        let state = &mut self.members[member];
        if state.encoder.is_none() {
            return Err(SourceError::Malformed {
                detail: format!(
                    "rows of {:?} after those of a later statement in {}",
                    schema.measurement, self.statement
                ),
            });
        }
        let same_series = state
            .open_series
            .as_ref()
            .is_some_and(|(open_tags, open_fields)| open_tags == tags && *open_fields == fields);
        let Some(encoder) = state.encoder.as_mut() else {
            return Ok(None);
        };
        if !same_series {
            encoder.begin_series(
                tags.to_vec(),
                fields.iter().cloned().zip(types.iter().copied()).collect(),
            );
            state.open_series = Some((tags.to_vec(), fields.clone()));
        }
        Ok(Some((time_index, fields, types)))
    }

    fn decode_rows(
        &mut self,
        cursor: &mut Cursor<'_>,
        member: usize,
        tags: &[Tag],
        columns: &[String],
    ) -> Result<(), SourceError> {
        let rows = cursor.array()?;
        if rows == 0 {
            return Ok(());
        }
        let Some((time_index, fields, types)) = self.open_rows(member, tags, columns)? else {
            return Ok(());
        };
        let Some(encoder) = self.members[member].encoder.as_mut() else {
            return Ok(());
        };
        encoder.expect_rows(rows);
        let mut row: Vec<Option<Value<'_>>> = Vec::with_capacity(fields.len());
        for _ in 0..rows {
            let offset = cursor.position();
            if cursor.array()? != columns.len() {
                return Err(SourceError::Malformed {
                    detail: format!(
                        "a row at byte {offset} does not have {} values",
                        columns.len()
                    ),
                });
            }
            row.clear();
            let mut timestamp = None;
            for index in 0..columns.len() {
                let item = cursor.value()?;
                if index == time_index {
                    timestamp = Some(match item {
                        Item::Int(nanos) => nanos,
                        Item::Uint(nanos) => i64::try_from(nanos).unwrap_or(i64::MAX),
                        other => {
                            return Err(SourceError::Malformed {
                                detail: format!("time is {other:?}, not an integer (epoch=ns)"),
                            });
                        }
                    });
                    continue;
                }
                let column = row.len();
                row.push(field_value(item, types[column], &fields[column])?);
            }
            let timestamp = timestamp.unwrap_or_default();
            if let Some(batch) = encoder.push_row(timestamp, &row)? {
                self.ready.push_back((member, batch));
            }
            self.stats.rows += 1;
        }
        Ok(())
    }
}

/// One line of a chunked JSON answer.
#[derive(Debug, serde::Deserialize)]
struct JsonChunk {
    #[serde(default)]
    results: Vec<JsonResult>,
    error: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct JsonResult {
    #[serde(default)]
    series: Vec<JsonWindowSeries>,
    error: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct JsonWindowSeries {
    name: Option<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, Option<String>>,
    #[serde(default)]
    columns: Vec<String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// A JSON cell as the value of a column of `column_type`: JSON writes a float without a
/// fraction like an integer, so the schema decides (integers are parsed from their digits,
/// never through a float).
fn json_field_value<'a>(
    value: &'a serde_json::Value,
    column_type: ColumnType,
    field: &str,
) -> Result<Option<Value<'a>>, SourceError> {
    use serde_json::Value as Json;
    let mismatch = || SourceError::Malformed {
        detail: format!("field {field:?} holds {value}, not a {column_type} value"),
    };
    Ok(Some(match (value, column_type) {
        (Json::Null, _) => return Ok(None),
        (Json::Number(number), ColumnType::Double) => {
            Value::Double(number.as_f64().ok_or_else(mismatch)?)
        }
        (Json::Number(number), ColumnType::Int64) => {
            Value::Int64(number.as_i64().ok_or_else(mismatch)?)
        }
        (Json::Number(number), ColumnType::Uint64) => {
            Value::Uint64(number.as_u64().ok_or_else(mismatch)?)
        }
        (Json::String(text), ColumnType::String) => Value::String(text),
        (Json::Bool(flag), ColumnType::Bool) => Value::Bool(*flag),
        _ => return Err(mismatch()),
    }))
}

/// A decoded cell as the value of a column of `column_type`. MessagePack writes small integers
/// the same whether signed or not, so the schema decides.
fn field_value<'a>(
    item: Item<'a>,
    column_type: ColumnType,
    field: &str,
) -> Result<Option<Value<'a>>, SourceError> {
    let out_of_range = |shown: String| SourceError::Malformed {
        detail: format!("field {field:?}: {shown} does not fit a {column_type} column"),
    };
    Ok(Some(match (item, column_type) {
        (Item::Nil, _) => return Ok(None),
        (Item::Int(number), ColumnType::Uint64) => {
            Value::Uint64(u64::try_from(number).map_err(|_| out_of_range(number.to_string()))?)
        }
        (Item::Int(number), _) => Value::Int64(number),
        (Item::Uint(number), ColumnType::Int64) => {
            Value::Int64(i64::try_from(number).map_err(|_| out_of_range(number.to_string()))?)
        }
        (Item::Uint(number), _) => Value::Uint64(number),
        (Item::Float(number), _) => Value::Double(number),
        (Item::Str(text), _) => Value::String(text),
        (Item::Bool(flag), _) => Value::Bool(flag),
        (other, _) => {
            return Err(SourceError::Malformed {
                detail: format!("field {field:?} holds {other:?}, not a field value"),
            });
        }
    }))
}
