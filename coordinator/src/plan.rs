//! Discovery before a job runs: the measurements it copies and where each one's data lies.

use futures::StreamExt;
use influx2td_config::tsm::TsmDirs;
use influx2td_config::{JobConfig, SourceKind};
use influx2td_reader::{InfluxClient, SourceError, schema};

use crate::service::PlannedMeasurement;

/// Measurements whose bounds one task looks up (in as few requests as their names allow).
const BOUNDS_PER_TASK: usize = 16;

/// The job's measurements (its filter applied) with their first and last timestamps, looked up
/// `concurrency` requests at a time, each for several measurements.
pub async fn discover(
    client: &InfluxClient,
    job: &JobConfig,
    concurrency: usize,
) -> Result<Vec<PlannedMeasurement>, SourceError> {
    if let SourceKind::Tsm(dirs) = &job.source.kind {
        return discover_files(dirs, job).await;
    }
    let names = schema::measurements(client, &job.measurements).await?;
    let chunks: Vec<Vec<String>> = names
        .chunks(BOUNDS_PER_TASK)
        .map(<[String]>::to_vec)
        .collect();
    let planned: Vec<Result<Vec<PlannedMeasurement>, SourceError>> = futures::stream::iter(chunks)
        .map(|names| async move {
            let bounds = schema::time_bounds_of(client, &names).await?;
            Ok(names
                .into_iter()
                .zip(bounds)
                .map(|(name, bounds)| PlannedMeasurement { name, bounds })
                .collect())
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut measurements = Vec::with_capacity(names.len());
    for chunk in planned {
        measurements.extend(chunk?);
    }
    Ok(measurements)
}

/// The TSM source's discovery: from the shards' indexes and WALs, no query sent.
async fn discover_files(
    dirs: &TsmDirs,
    job: &JobConfig,
) -> Result<Vec<PlannedMeasurement>, SourceError> {
    let source = influx2td_reader::TsmSource::open(dirs, &job.bucket)?;
    let filters = job.measurements.clone();
    let found = tokio::task::spawn_blocking(move || source.measurements(&filters))
        .await
        .map_err(|error| SourceError::Storage {
            detail: format!("discovery stopped: {error}"),
            retryable: true,
        })??;
    Ok(found
        .into_iter()
        .map(|(name, bounds)| PlannedMeasurement { name, bounds })
        .collect())
}
