//! One window's stream of batches, whichever query language or source reads it.

use std::sync::Arc;

use influx2td_config::QueryLanguage;
use influx2td_proto::ClosedBatch;
use influx2td_proto::batch::WindowRef;

use crate::client::InfluxClient;
use crate::error::SourceError;
use crate::flux::FluxWindowReader;
use crate::influxql::{ReadStats, WindowReader};
use crate::schema::MeasurementSchema;
use crate::tsm::{TsmSource, TsmWindowReader};

/// The batches of one window.
#[derive(Debug)]
pub enum WindowStream {
    // Boxed: both readers hold encoder and parser state; the enum stays a pointer wide.
    Influxql(Box<WindowReader>),
    Flux(Box<FluxWindowReader>),
    Tsm(Box<TsmWindowReader>),
}

impl WindowStream {
    /// Starts reading `window`. InfluxQL needs the measurement's schema (MessagePack does not
    /// tell signed from unsigned); Flux answers carry their types.
    pub async fn open(
        client: &InfluxClient,
        language: QueryLanguage,
        schema: Option<Arc<MeasurementSchema>>,
        window: WindowRef,
        batch_limit: usize,
    ) -> Result<Self, SourceError> {
        Ok(match language {
            QueryLanguage::Influxql => {
                let schema = schema.ok_or_else(|| SourceError::Config {
                    detail: "an InfluxQL window read needs the measurement's schema".into(),
                })?;
                Self::Influxql(Box::new(
                    WindowReader::open(client, schema, window, batch_limit).await?,
                ))
            }
            QueryLanguage::Flux => Self::Flux(Box::new(
                FluxWindowReader::open(client, window, batch_limit).await?,
            )),
        })
    }

    /// Starts reading `window` from the storage files: what the InfluxQL read of it with the
    /// same schema yields.
    pub fn open_tsm(
        source: Arc<TsmSource>,
        schema: Arc<MeasurementSchema>,
        window: WindowRef,
        batch_limit: usize,
    ) -> Self {
        Self::Tsm(Box::new(TsmWindowReader::open(
            source,
            schema,
            window,
            batch_limit,
        )))
    }

    /// Starts reading the same window of several measurements from the storage files, one
    /// after the other: for each, what its InfluxQL read yields.
    pub fn open_tsm_group(
        source: Arc<TsmSource>,
        members: Vec<(Arc<MeasurementSchema>, WindowRef)>,
        batch_limit: usize,
    ) -> Self {
        Self::Tsm(Box::new(TsmWindowReader::open_group(
            source,
            members,
            batch_limit,
        )))
    }

    /// Starts one InfluxQL read of the same window of several measurements (each with its
    /// schema and window).
    pub async fn open_group(
        client: &InfluxClient,
        members: Vec<(Arc<MeasurementSchema>, WindowRef)>,
        batch_limit: usize,
    ) -> Result<Self, SourceError> {
        Ok(Self::Influxql(Box::new(
            WindowReader::open_group(client, members, batch_limit).await?,
        )))
    }

    /// The next batch and which of the read's measurements it is of (0 for a read of one).
    pub async fn next_member_batch(&mut self) -> Result<Option<(usize, ClosedBatch)>, SourceError> {
        match self {
            Self::Influxql(reader) => reader.next_member_batch().await,
            Self::Flux(reader) => Ok(reader.next_batch().await?.map(|batch| (0, batch))),
            Self::Tsm(reader) => reader.next_member_batch().await,
        }
    }

    pub async fn next_batch(&mut self) -> Result<Option<ClosedBatch>, SourceError> {
        match self {
            Self::Influxql(reader) => reader.next_batch().await,
            Self::Flux(reader) => reader.next_batch().await,
            Self::Tsm(reader) => reader.next_batch().await,
        }
    }

    pub fn stats(&self) -> ReadStats {
        match self {
            Self::Influxql(reader) => reader.stats(),
            Self::Flux(reader) => reader.stats(),
            Self::Tsm(reader) => reader.stats(),
        }
    }
}
