//! Reading a range of a measurement again and writing it into the target, beside the job
//! (writes are idempotent: same table, same timestamp overwrites): what `backfill`,
//! `dead-letters replay` and `verify --repair` do.

use influx2td_config::{JobConfig, MeasurementFilter};
use influx2td_coordinator::JobSummary;

/// `measurement` over `[from_ns, to_ns)` through a one-off pipeline: its own in-process bus and
/// throwaway checkpoints, the job's source, target, window and concurrency.
pub async fn read_again(
    job: &JobConfig,
    measurement: &str,
    from_ns: i64,
    to_ns: i64,
) -> anyhow::Result<JobSummary> {
    read_again_on(job, measurement, from_ns, to_ns, None).await
}

/// As [`read_again`]; with a `board` its status goes there instead of a progress bar (the
/// console's repair).
pub async fn read_again_on(
    job: &JobConfig,
    measurement: &str,
    from_ns: i64,
    to_ns: i64,
    board: Option<influx2td_coordinator::StatusBoard>,
) -> anyhow::Result<JobSummary> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let state_dir = std::env::temp_dir().join(format!(
        "influx2td-backfill-{}-{started}",
        std::process::id()
    ));
    let mut one_off = job.clone();
    one_off.job = format!("{}-backfill", job.job);
    one_off.measurements = vec![MeasurementFilter::Name(measurement.to_owned())];
    one_off.begin_ns = from_ns;
    one_off.end_ns = Some(to_ns);
    one_off.state_dir = state_dir.clone();
    one_off.nats.url = None;
    one_off.http_listen = None;
    one_off.target.create_database = false;
    one_off.target.allow_non_empty = true;
    let summary = match board {
        Some(board) => {
            crate::pipeline::pipeline_with(&one_off, board, crate::connect::shutdown_signal()).await
        }
        None => crate::pipeline::pipeline(&one_off).await,
    };
    let _ = std::fs::remove_dir_all(&state_dir);
    summary
}
