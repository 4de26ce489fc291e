//! Reads one window of one measurement with InfluxQL: a chunked, streaming MessagePack `/query`
//! decoded chunk by chunk into size-bounded row batches. A window is never held in memory whole:
//! the next chunk is read only when the caller asks for the next batch.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use influx2td_proto::batch::WindowRef;
use influx2td_proto::pb::Tag;
use influx2td_proto::{BatchEncoder, ColumnType, EncodedBatch, Value};

use crate::client::InfluxClient;
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
    format!(
        "SELECT *::field FROM {} WHERE time >= {start_ns} AND time < {end_ns} GROUP BY *",
        from_clause(client, measurement)
    )
}

pub use crate::flux::ByteStream;

/// What the read of a window found, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub rows: u64,
    pub bytes: u64,
    pub chunks: u64,
}

/// Streams the row batches of one window.
pub struct WindowReader {
    client: InfluxClient,
    statement: String,
    schema: Arc<MeasurementSchema>,
    body: ByteStream,
    buffer: Vec<u8>,
    framer: Framer,
    encoder: Option<BatchEncoder>,
    ready: VecDeque<EncodedBatch>,
    /// Tags and field columns of the series open in the encoder.
    open_series: Option<(Vec<Tag>, Vec<String>)>,
    stats: ReadStats,
}

impl std::fmt::Debug for WindowReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WindowReader")
            .field("statement", &self.statement)
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
        let statement = window_statement(
            client,
            &window.measurement,
            window.window_start_ns,
            window.window_end_ns,
        );
        let response = client.query_msgpack(&statement, CHUNK_ROWS).await?;
        Ok(Self::from_body(
            client,
            statement,
            schema,
            window,
            batch_limit,
            Box::pin(response.bytes_stream()),
        ))
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
        Self {
            client: client.clone(),
            statement,
            schema,
            body,
            buffer: Vec::new(),
            framer: Framer::new(MAX_CHUNK_BYTES),
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
    pub async fn next_batch(&mut self) -> Result<Option<EncodedBatch>, SourceError> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            if self.encoder.is_none() {
                return Ok(None);
            }
            if let Some(length) = self.framer.scan(&self.buffer)? {
                let frame: Vec<u8> = self.buffer.drain(..length).collect();
                self.framer.reset();
                self.stats.chunks += 1;
                self.decode_chunk(&frame)?;
                continue;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    self.stats.bytes += bytes.len() as u64;
                    self.buffer.extend_from_slice(&bytes);
                }
                Some(Err(error)) => return Err(self.client.stream_error(&error)),
                None if self.framer.in_value() || !self.buffer.is_empty() => {
                    return Err(SourceError::Truncated {
                        detail: format!(
                            "the answer stopped in the middle of a chunk ({} bytes pending) to {}",
                            self.buffer.len(),
                            self.statement
                        ),
                    });
                }
                None => {
                    if let Some(encoder) = self.encoder.take() {
                        self.ready.push_back(encoder.finish());
                    }
                }
            }
        }
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

    fn decode_series(&mut self, cursor: &mut Cursor<'_>) -> Result<(), SourceError> {
        let mut tags = Vec::new();
        let mut columns: Vec<String> = Vec::new();
        for _ in 0..cursor.map()? {
            match cursor.str()? {
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
                "values" => self.decode_rows(cursor, &tags, &columns)?,
                _ => cursor.skip()?,
            }
        }
        Ok(())
    }

    fn decode_rows(
        &mut self,
        cursor: &mut Cursor<'_>,
        tags: &[Tag],
        columns: &[String],
    ) -> Result<(), SourceError> {
        let rows = cursor.array()?;
        if rows == 0 {
            return Ok(());
        }
        let Some(time_index) = columns.iter().position(|column| column == "time") else {
            return Err(SourceError::Malformed {
                detail: format!(
                    "a series without a time column in the answer to {}",
                    self.statement
                ),
            });
        };
        let fields: Vec<String> = columns.iter().filter(|c| *c != "time").cloned().collect();
        let types: Vec<ColumnType> = fields
            .iter()
            .map(|name| {
                self.schema
                    .field_type(name)
                    .ok_or_else(|| SourceError::SchemaChanged {
                        measurement: self.schema.measurement.clone(),
                        field: name.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let same_series = self
            .open_series
            .as_ref()
            .is_some_and(|(open_tags, open_fields)| open_tags == tags && *open_fields == fields);
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(());
        };
        if !same_series {
            encoder.begin_series(
                tags.to_vec(),
                fields.iter().cloned().zip(types.iter().copied()).collect(),
            );
            self.open_series = Some((tags.to_vec(), fields.clone()));
        }
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
                self.ready.push_back(batch);
            }
            self.stats.rows += 1;
        }
        Ok(())
    }
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
