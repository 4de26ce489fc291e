//! The process's Prometheus metrics: one registry for every role in the process (the embedded
//! `run` holds all three), labelled by job so several jobs never mix.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MeasurementLabels {
    pub job: String,
    pub measurement: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub job: String,
    /// published, republished, done, failed, split.
    pub event: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub job: String,
    /// reader or writer.
    pub role: String,
    /// What went wrong, from the error's classification (never its text: labels stay few).
    pub cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub job: String,
    /// reader or writer.
    pub role: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub job: String,
    pub stream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every metric influx2td exports. Names follow Prometheus conventions: `_total` counters,
/// base units (seconds, bytes).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub rows_read: Family<MeasurementLabels, Counter>,
    pub bytes_read: Family<MeasurementLabels, Counter>,
    pub rows_written: Family<MeasurementLabels, Counter>,
    pub bytes_written: Family<MeasurementLabels, Counter>,
    pub rows_dead_lettered: Family<MeasurementLabels, Counter>,
    pub windows: Family<WindowLabels, Counter>,
    pub windows_in_flight: Family<JobLabels, Gauge>,
    pub retries: Family<RetryLabels, Counter>,
    pub retrying: Family<RoleLabels, Gauge>,
    pub query_seconds: Family<JobLabels, Histogram>,
    pub insert_seconds: Family<JobLabels, Histogram>,
    pub batch_rows: Family<JobLabels, Histogram>,
    pub bus_pending: Family<StreamLabels, Gauge>,
    pub lag_seconds: Family<JobLabels, Gauge<f64, AtomicU64>>,
    /// The retries again, per job and `role/cause`, for the console's task page (a Family
    /// cannot be listed).
    retries_by_job: std::sync::Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn rows_histogram() -> Histogram {
    // 1 .. 65536 rows.
    Histogram::new(exponential_buckets(1.0, 2.0, 17))
}

impl Metrics {
    fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("influx2td"),
            rows_read: Family::default(),
            bytes_read: Family::default(),
            rows_written: Family::default(),
            bytes_written: Family::default(),
            rows_dead_lettered: Family::default(),
            windows: Family::default(),
            windows_in_flight: Family::default(),
            retries: Family::default(),
            retrying: Family::default(),
            query_seconds: Family::new_with_constructor(latency_histogram),
            insert_seconds: Family::new_with_constructor(latency_histogram),
            batch_rows: Family::new_with_constructor(rows_histogram),
            bus_pending: Family::default(),
            lag_seconds: Family::default(),
            retries_by_job: std::sync::Mutex::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "rows_read",
            "Rows read from InfluxDB and published to the bus",
            metrics.rows_read.clone(),
        );
        registry.register(
            "bytes_read",
            "Bytes of row batches published to the bus by readers (encoded; within one process, where batches travel unencoded, an upper bound)",
            metrics.bytes_read.clone(),
        );
        registry.register(
            "rows_written",
            "Rows TDengine accepted",
            metrics.rows_written.clone(),
        );
        registry.register(
            "bytes_written",
            "Bytes of row batches written to TDengine (encoded; within one process an upper bound)",
            metrics.bytes_written.clone(),
        );
        registry.register(
            "rows_dead_lettered",
            "Rows TDengine rejected, parked on the dead-letter stream",
            metrics.rows_dead_lettered.clone(),
        );
        registry.register(
            "windows",
            "Window events: published, republished (deadline passed), done, failed, split, lookback (read again)",
            metrics.windows.clone(),
        );
        registry.register(
            "windows_in_flight",
            "Windows published and not yet written",
            metrics.windows_in_flight.clone(),
        );
        registry.register(
            "retries",
            "Reads and writes that failed and will be retried, by role and cause",
            metrics.retries.clone(),
        );
        registry.register(
            "retrying",
            "Window reads (reader) and row batches (writer) failing now and being retried (set by the coordinator)",
            metrics.retrying.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time to read one window from InfluxDB and publish it",
            metrics.query_seconds.clone(),
        );
        registry.register(
            "insert_duration_seconds",
            "Time to write one row batch into TDengine",
            metrics.insert_seconds.clone(),
        );
        registry.register(
            "batch_rows",
            "Rows per row batch written",
            metrics.batch_rows.clone(),
        );
        registry.register(
            "bus_pending",
            "Messages waiting on a bus stream",
            metrics.bus_pending.clone(),
        );
        registry.register(
            "lag_seconds",
            "Continuous sync: how far the newest written window ends behind now",
            metrics.lag_seconds.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The running influx2td version", build);
        metrics
    }

    /// The registry in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub fn read(&self, job: &str, measurement: &str, rows: u64, bytes: u64, elapsed: Duration) {
        let labels = measurement_labels(job, measurement);
        self.rows_read.get_or_create(&labels).inc_by(rows);
        self.bytes_read.get_or_create(&labels).inc_by(bytes);
        self.query_seconds
            .get_or_create(&job_labels(job))
            .observe(elapsed.as_secs_f64());
    }

    pub fn written(
        &self,
        job: &str,
        measurement: &str,
        rows: u64,
        dead_lettered: u64,
        bytes: u64,
        elapsed: Duration,
    ) {
        let labels = measurement_labels(job, measurement);
        self.rows_written.get_or_create(&labels).inc_by(rows);
        self.bytes_written.get_or_create(&labels).inc_by(bytes);
        if dead_lettered > 0 {
            self.rows_dead_lettered
                .get_or_create(&labels)
                .inc_by(dead_lettered);
        }
        let job = job_labels(job);
        self.insert_seconds
            .get_or_create(&job)
            .observe(elapsed.as_secs_f64());
        self.batch_rows
            .get_or_create(&job)
            .observe((rows + dead_lettered) as f64);
    }

    pub fn retry(&self, job: &str, role: &str, cause: &str) {
        self.retries
            .get_or_create(&RetryLabels {
                job: job.to_owned(),
                role: role.to_owned(),
                cause: cause.to_owned(),
            })
            .inc();
        let mut by_job = self
            .retries_by_job
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *by_job
            .entry(job.to_owned())
            .or_default()
            .entry(format!("{role}/{cause}"))
            .or_default() += 1;
    }

    /// A job's retries in this process so far, by `role/cause` (`reader/unavailable`, ...).
    pub fn retries_of(&self, job: &str) -> BTreeMap<String, u64> {
        self.retries_by_job
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(job)
            .cloned()
            .unwrap_or_default()
    }

    pub fn window(&self, job: &str, event: &str) {
        self.windows
            .get_or_create(&WindowLabels {
                job: job.to_owned(),
                event: event.to_owned(),
            })
            .inc();
    }

    pub fn in_flight(&self, job: &str, windows: usize) {
        self.windows_in_flight
            .get_or_create(&job_labels(job))
            .set(i64::try_from(windows).unwrap_or(i64::MAX));
    }

    /// How many window reads or row batches of `role` fail now and are being retried.
    pub fn retrying(&self, job: &str, role: &str, count: usize) {
        self.retrying
            .get_or_create(&RoleLabels {
                job: job.to_owned(),
                role: role.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn pending(&self, job: &str, stream: &str, messages: u64) {
        self.bus_pending
            .get_or_create(&StreamLabels {
                job: job.to_owned(),
                stream: stream.to_owned(),
            })
            .set(i64::try_from(messages).unwrap_or(i64::MAX));
    }

    pub fn lag(&self, job: &str, lag: Duration) {
        self.lag_seconds
            .get_or_create(&job_labels(job))
            .set(lag.as_secs_f64());
    }
}

fn job_labels(job: &str) -> JobLabels {
    JobLabels {
        job: job.to_owned(),
    }
}

fn measurement_labels(job: &str, measurement: &str) -> MeasurementLabels {
    MeasurementLabels {
        job: job.to_owned(),
        measurement: measurement.to_owned(),
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_listed_per_job_by_role_and_cause() {
        let metrics = Metrics::new();
        metrics.retry("j", "reader", "unavailable");
        metrics.retry("j", "reader", "unavailable");
        metrics.retry("j", "writer", "retryable");
        metrics.retry("other", "writer", "fatal");
        let listed: Vec<(String, u64)> = metrics.retries_of("j").into_iter().collect();
        assert_eq!(
            listed,
            [
                ("reader/unavailable".to_owned(), 2),
                ("writer/retryable".to_owned(), 1)
            ]
        );
        assert!(metrics.retries_of("none").is_empty());
    }

    #[test]
    fn counts_appear_in_the_exposition_with_their_labels() {
        let metrics = Metrics::new();
        metrics.read("j", "cpu", 10, 300, Duration::from_millis(5));
        metrics.written("j", "cpu", 9, 1, 280, Duration::from_millis(3));
        metrics.retry("j", "writer", "retryable");
        metrics.window("j", "done");
        let text = metrics.encode();
        for line in [
            r#"influx2td_rows_read_total{job="j",measurement="cpu"} 10"#,
            r#"influx2td_bytes_read_total{job="j",measurement="cpu"} 300"#,
            r#"influx2td_rows_written_total{job="j",measurement="cpu"} 9"#,
            r#"influx2td_rows_dead_lettered_total{job="j",measurement="cpu"} 1"#,
            r#"influx2td_retries_total{job="j",role="writer",cause="retryable"} 1"#,
            r#"influx2td_windows_total{job="j",event="done"} 1"#,
            r#"influx2td_insert_duration_seconds_count{job="j"} 1"#,
            r#"influx2td_batch_rows_sum{job="j"} 10.0"#,
            r#"influx2td_build_info{version=""#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
