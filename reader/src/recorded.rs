//! Decoding an InfluxDB answer held in memory, without a server: exactly what the reader does
//! with a live response, for the fuzz targets (`fuzz/`) and for tests of hostile answers. The
//! answer comes in `parts`, as an HTTP body arrives in pieces of any size.

use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use influx2td_proto::ClosedBatch;
use influx2td_proto::batch::WindowRef;

use crate::client::InfluxClient;
use crate::error::SourceError;
use crate::flux::{ByteStream, FluxWindowReader};
use crate::influxql::WindowReader;
use crate::schema::MeasurementSchema;
use crate::source::WindowStream;

/// Every batch an InfluxQL (MessagePack) answer makes, or the error it ends in.
pub fn influxql_answer(
    client: &InfluxClient,
    schema: Arc<MeasurementSchema>,
    window: WindowRef,
    batch_limit: usize,
    parts: Vec<Bytes>,
) -> Result<Vec<ClosedBatch>, SourceError> {
    let reader = WindowReader::from_body(
        client,
        "SELECT * FROM recorded".into(),
        schema,
        window,
        batch_limit,
        body(parts),
    );
    drain(WindowStream::Influxql(Box::new(reader)))
}

/// Every batch a Flux (annotated CSV) answer makes, or the error it ends in.
pub fn flux_answer(
    client: &InfluxClient,
    window: WindowRef,
    batch_limit: usize,
    parts: Vec<Bytes>,
) -> Result<Vec<ClosedBatch>, SourceError> {
    let reader = FluxWindowReader::from_body(
        client,
        "from(bucket: \"recorded\")".into(),
        window,
        batch_limit,
        body(parts),
    );
    drain(WindowStream::Flux(Box::new(reader)))
}

fn body(parts: Vec<Bytes>) -> ByteStream {
    Box::pin(futures::stream::iter(parts.into_iter().map(Ok)))
}

fn drain(mut stream: WindowStream) -> Result<Vec<ClosedBatch>, SourceError> {
    let mut batches = Vec::new();
    loop {
        // The body is in memory: every poll is ready.
        match stream.next_batch().now_or_never() {
            Some(Ok(Some(batch))) => batches.push(batch),
            Some(Ok(None)) => return Ok(batches),
            Some(Err(error)) => return Err(error),
            None => {
                return Err(SourceError::Malformed {
                    detail: "the reader waited on an answer held in memory".into(),
                });
            }
        }
    }
}
