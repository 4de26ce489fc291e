//! What the console's charts draw: a bounded ring of samples of each job's status, taken every
//! second while it runs (`GET /api/jobs/{job}/history`, and the newest sample in every event of
//! `GET /api/events`). When the ring is full every other sample goes and the interval doubles,
//! so a long run is still shown whole, at a coarser step. Each measurement's own figures are
//! kept in the newest [`MEASURED`] samples only, so that a job of thousands of measurements
//! costs [`MEASURED`] samples of them, not [`CAPACITY`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use influx2td_coordinator::JobStatus;
use serde_json::{Value, json};

/// Samples kept per job (at most): enough points for a chart, bounded memory however long the
/// job runs.
pub const CAPACITY: usize = 360;
/// The newest samples that hold each measurement's figures too (older ones hold the job's).
pub const MEASURED: usize = 60;
/// The step between samples before any thinning.
pub const STEP_MS: i64 = 1000;

/// One measurement at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeasurementPoint {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_dead_lettered: u64,
    /// Continuous sync: how far it is behind now.
    pub lag_seconds: Option<f64>,
}

/// The job at one moment. Counts are totals over the job (from its checkpoints, so they go on
/// across pauses and restarts); rates are worked out between samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_dead_lettered: u64,
    pub windows_in_flight: usize,
    /// Reads and batches failing now and being retried.
    pub retrying: usize,
    /// Retries so far, of every kind.
    pub retries: u64,
    pub lag_seconds: Option<f64>,
    pub measurements: BTreeMap<Arc<str>, MeasurementPoint>,
}

/// A job's samples, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    samples: VecDeque<Sample>,
    step_ms: i64,
    /// Measurement names, shared by every sample that has them.
    names: BTreeMap<String, Arc<str>>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            samples: VecDeque::with_capacity(CAPACITY),
            step_ms: STEP_MS,
            names: BTreeMap::new(),
        }
    }
}

impl History {
    /// Takes a sample of `status` at `at_ms`; one closer than the current step to the last is
    /// skipped unless it is the `last` of a run (its final figures).
    pub fn record(
        &mut self,
        at_ms: i64,
        status: &JobStatus,
        retries: &BTreeMap<String, u64>,
        last: bool,
    ) {
        if self.samples.len() == CAPACITY {
            self.thin();
        }
        if !last
            && let Some(newest) = self.samples.back()
            && at_ms - newest.at_ms < self.step_ms - STEP_MS / 10
        {
            return;
        }
        let mut measurements = BTreeMap::new();
        let mut totals = MeasurementPoint::default();
        for (name, measurement) in &status.measurements {
            let progress = &measurement.progress;
            let point = MeasurementPoint {
                rows_read: progress.rows_read,
                rows_written: progress.rows_written,
                rows_dead_lettered: progress.rows_dead_lettered,
                lag_seconds: measurement.lag_seconds,
            };
            totals.rows_read += point.rows_read;
            totals.rows_written += point.rows_written;
            totals.rows_dead_lettered += point.rows_dead_lettered;
            let name = self
                .names
                .entry(name.clone())
                .or_insert_with(|| Arc::from(name.as_str()))
                .clone();
            measurements.insert(name, point);
        }
        self.samples.push_back(Sample {
            at_ms,
            rows_read: totals.rows_read,
            rows_written: totals.rows_written,
            rows_dead_lettered: totals.rows_dead_lettered,
            windows_in_flight: status.windows_in_flight,
            retrying: status.retrying_count,
            retries: retries.values().sum(),
            lag_seconds: status.max_lag_seconds(),
            measurements,
        });
        if let Some(index) = self.samples.len().checked_sub(MEASURED + 1) {
            self.samples[index].measurements.clear();
        }
    }

    /// Every other sample goes (the newest stays), and the step doubles.
    fn thin(&mut self) {
        let newest = self.samples.len() - 1;
        let kept: VecDeque<Sample> = std::mem::take(&mut self.samples)
            .into_iter()
            .enumerate()
            .filter(|(index, _)| (newest - index).is_multiple_of(2))
            .map(|(_, sample)| sample)
            .collect();
        self.samples = kept;
        self.step_ms *= 2;
    }

    #[cfg(test)]
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &Sample> {
        self.samples.iter()
    }

    /// The newest sample as JSON (rates against the one before it), if any.
    pub fn latest(&self) -> Option<Value> {
        let newest = self.samples.len().checked_sub(1)?;
        let before = newest.checked_sub(1).map(|index| &self.samples[index]);
        Some(sample_json(&self.samples[newest], before))
    }

    /// The whole history as the API gives it.
    pub fn to_json(&self, job: &str) -> Value {
        let samples: Vec<Value> = self
            .samples
            .iter()
            .enumerate()
            .map(|(index, sample)| {
                let before = index.checked_sub(1).map(|index| &self.samples[index]);
                sample_json(sample, before)
            })
            .collect();
        json!({
            "job": job,
            "step_seconds": self.step_ms as f64 / 1000.0,
            "capacity": CAPACITY,
            "samples": samples,
        })
    }
}

/// Rows per second between two totals `seconds` apart (none before the first sample).
fn rate(now: u64, then: Option<u64>, seconds: f64) -> f64 {
    match then {
        Some(then) if seconds > 0.0 => now.saturating_sub(then) as f64 / seconds,
        _ => 0.0,
    }
}

fn sample_json(sample: &Sample, before: Option<&Sample>) -> Value {
    let seconds = before.map_or(0.0, |before| (sample.at_ms - before.at_ms) as f64 / 1000.0);
    let measurements: serde_json::Map<String, Value> = sample
        .measurements
        .iter()
        .map(|(name, point)| {
            let then = before
                .and_then(|before| before.measurements.get(name))
                .map(|point| point.rows_written);
            (
                name.to_string(),
                json!({
                    "rows_read": point.rows_read,
                    "rows_written": point.rows_written,
                    "rows_per_second": rate(point.rows_written, then, seconds),
                    "rows_dead_lettered": point.rows_dead_lettered,
                    "lag_seconds": point.lag_seconds,
                }),
            )
        })
        .collect();
    json!({
        "at": influx2td_config::format_time(sample.at_ms.saturating_mul(1_000_000)),
        "at_ms": sample.at_ms,
        "rows_read": sample.rows_read,
        "rows_written": sample.rows_written,
        "rows_per_second": rate(sample.rows_written, before.map(|b| b.rows_written), seconds),
        "rows_dead_lettered": sample.rows_dead_lettered,
        "windows_in_flight": sample.windows_in_flight,
        "retrying": sample.retrying,
        "retries": sample.retries,
        "lag_seconds": sample.lag_seconds,
        "measurements": measurements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use influx2td_coordinator::MeasurementStatus;

    fn status(rows: u64, in_flight: usize) -> JobStatus {
        let mut status = JobStatus {
            windows_in_flight: in_flight,
            ..JobStatus::default()
        };
        let mut cpu = MeasurementStatus::default();
        cpu.progress.rows_written = rows;
        cpu.progress.rows_read = rows + 1;
        status.measurements.insert("cpu".into(), cpu);
        status
    }

    #[test]
    fn samples_give_rates_between_them_and_stop_after_the_run() {
        let mut history = History::default();
        let retries = BTreeMap::from([("tdengine".to_owned(), 2), ("influxdb".to_owned(), 1)]);
        history.record(10_000, &status(0, 3), &retries, false);
        // Too soon after the last: skipped.
        history.record(10_400, &status(100, 3), &retries, false);
        history.record(11_000, &status(500, 2), &retries, false);
        history.record(13_000, &status(1500, 1), &retries, false);
        // The run ended: its final figures, however soon after the last sample.
        history.record(13_200, &status(1600, 0), &retries, true);
        let json = history.to_json("j");
        let samples = json["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 4, "{json:#}");
        let rates: Vec<f64> = samples
            .iter()
            .map(|s| s["rows_per_second"].as_f64().unwrap())
            .collect();
        assert_eq!(rates, [0.0, 500.0, 500.0, 500.0]);
        assert_eq!(samples[1]["rows_read"], 501);
        assert_eq!(samples[1]["windows_in_flight"], 2);
        assert_eq!(samples[1]["retries"], 3);
        assert_eq!(samples[2]["measurements"]["cpu"]["rows_per_second"], 500.0);
        assert_eq!(samples[3]["rows_written"], 1600);
        assert_eq!(samples[0]["at"], "1970-01-01T00:00:10Z");
        assert_eq!(history.latest().unwrap(), samples[3]);
    }

    #[test]
    fn a_full_ring_keeps_every_other_sample_and_doubles_its_step() {
        let mut history = History::default();
        let retries = BTreeMap::new();
        for n in 0..CAPACITY as i64 {
            history.record(n * STEP_MS, &status(n as u64, 0), &retries, false);
        }
        assert_eq!(history.samples().len(), CAPACITY);
        // The next sample thins the ring: every other sample stays, the newest among them, and
        // the step is two seconds now, so this one, a second after the newest, is skipped.
        let next = CAPACITY as i64 * STEP_MS;
        history.record(next, &status(CAPACITY as u64, 0), &retries, false);
        assert_eq!(history.samples().len(), CAPACITY / 2);
        assert_eq!(history.samples().last().unwrap().at_ms, next - STEP_MS);
        history.record(next + STEP_MS, &status(0, 0), &retries, false);
        assert_eq!(history.samples().len(), CAPACITY / 2 + 1);
        let times: Vec<i64> = history.samples().map(|s| s.at_ms).collect();
        assert!(
            times
                .windows(2)
                .all(|pair| pair[1] - pair[0] == 2 * STEP_MS)
        );
        // However long it runs, the ring stays bounded.
        for n in 0..10 * CAPACITY as i64 {
            history.record(
                next + (3 + n) * 64 * STEP_MS,
                &status(0, 0),
                &retries,
                false,
            );
        }
        assert!(history.samples().len() <= CAPACITY);
        // Only the newest samples hold each measurement's figures.
        let measured: Vec<bool> = history
            .samples()
            .map(|sample| !sample.measurements.is_empty())
            .collect();
        let split = measured.len() - MEASURED;
        assert!(measured[..split].iter().all(|m| !m), "{measured:?}");
        assert!(measured[measured.len() - 1], "{measured:?}");
        assert!(history.to_json("j")["step_seconds"].as_f64().unwrap() >= 64.0);
    }
}
