//! The job's live status, refreshed by the coordinator every second: what `GET /status` serves
//! and the progress bar of `run` shows.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::retrying::Retrying;
use crate::tracker::Progress;

/// One measurement's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MeasurementStatus {
    /// Every window before this is written: the moment a user can cut over (RFC 3339, UTC).
    pub consistent_up_to: String,
    #[serde(flatten)]
    pub progress: Progress,
    /// Windows left before `end` (an estimate: windows split for size count once); `None` when
    /// the job has no end.
    pub windows_left: Option<u64>,
    /// Continuous sync: how far `consistent_up_to` is behind now.
    pub lag_seconds: Option<f64>,
    /// Windows published again because their acknowledgements stopped.
    pub republished: u64,
}

/// The whole job's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobStatus {
    pub job: String,
    /// Whether the coordinator is running it now.
    pub running: bool,
    /// Every window up to `end` is written (never for a job without end).
    pub complete: bool,
    pub continuous: bool,
    pub elapsed_seconds: f64,
    pub rows_written_this_run: u64,
    /// Over this run.
    pub rows_per_second: f64,
    pub windows_done_this_run: u64,
    pub windows_left: Option<u64>,
    pub windows_in_flight: usize,
    /// Time left at this run's pace; `None` without an end or before the first window is done.
    pub eta_seconds: Option<f64>,
    pub rows_dead_lettered: u64,
    pub windows_failed: usize,
    /// Why the job cannot start yet, while the coordinator retries (NATS refuses its streams,
    /// the checkpoint store does not answer); `None` once it runs.
    pub waiting: Option<String>,
    /// Window reads and row batches failing now and being retried: what, how often, since
    /// when, the last error (the oldest [`crate::retrying::MAX_LISTED`]).
    pub retrying: Vec<Retrying>,
    /// How many reads and batches are being retried (all of them, listed or not).
    pub retrying_count: usize,
    pub measurements: BTreeMap<String, MeasurementStatus>,
}

impl JobStatus {
    /// Continuous sync: the lag of the measurement furthest behind now.
    pub fn max_lag_seconds(&self) -> Option<f64> {
        self.measurements
            .values()
            .filter_map(|measurement| measurement.lag_seconds)
            .reduce(f64::max)
    }
}

/// Shared between the coordinator, which writes it, and the endpoints that read it.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<JobStatus>>);

impl StatusBoard {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self) -> JobStatus {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What the job waits for (`None`: nothing); also before the coordinator runs, while its
    /// process prepares the job.
    pub fn set_waiting(&self, reason: Option<String>) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).waiting = reason;
    }

    pub(crate) fn set(&self, status: JobStatus) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = status;
    }
}

/// Windows from `from` to `end` in steps of `window`, rounded up.
pub(crate) fn windows_between(from: i64, end: i64, window: i64) -> u64 {
    if end <= from || window <= 0 {
        return 0;
    }
    let span = i128::from(end) - i128::from(from);
    let window = i128::from(window);
    u64::try_from((span + window - 1) / window).unwrap_or(u64::MAX)
}

/// Time left for `left` windows at the pace of `done` windows in `elapsed_seconds`.
pub(crate) fn eta_seconds(left: u64, done: u64, elapsed_seconds: f64) -> Option<f64> {
    (done > 0).then(|| left as f64 * elapsed_seconds / done as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_left_round_up_and_never_go_negative() {
        assert_eq!(windows_between(0, 100, 10), 10);
        assert_eq!(windows_between(0, 101, 10), 11);
        assert_eq!(windows_between(5, 5, 10), 0);
        assert_eq!(windows_between(50, 10, 10), 0);
        assert_eq!(windows_between(i64::MIN, i64::MAX, 1), u64::MAX);
    }

    #[test]
    fn eta_follows_the_pace_of_this_run() {
        assert_eq!(eta_seconds(10, 0, 5.0), None);
        assert_eq!(eta_seconds(10, 5, 5.0), Some(10.0));
        assert_eq!(eta_seconds(0, 5, 5.0), Some(0.0));
    }
}
