//! Discovery before a job runs: the measurements it copies and where each one's data lies.

use futures::StreamExt;
use influx2td_config::JobConfig;
use influx2td_reader::{InfluxClient, SourceError, schema};

use crate::service::PlannedMeasurement;

/// The job's measurements (its filter applied) with their first and last timestamps, looked up
/// `concurrency` at a time.
pub async fn discover(
    client: &InfluxClient,
    job: &JobConfig,
    concurrency: usize,
) -> Result<Vec<PlannedMeasurement>, SourceError> {
    let names = schema::measurements(client, &job.measurements).await?;
    let planned: Vec<Result<PlannedMeasurement, SourceError>> = futures::stream::iter(names)
        .map(|name| async move {
            let bounds = schema::time_bounds(client, &name).await?;
            Ok(PlannedMeasurement { name, bounds })
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    planned.into_iter().collect()
}
