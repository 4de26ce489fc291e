//! The live progress bar of `run` on a terminal; log lines are printed above it, never through it.

use std::io::{IsTerminal, Write};
use std::sync::RwLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use influx2td_coordinator::{JobStatus, StatusBoard};

/// The bar being shown, if any: the log writer prints around it.
static SHOWN: RwLock<Option<ProgressBar>> = RwLock::new(None);

fn shown() -> Option<ProgressBar> {
    SHOWN.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where logs go: stderr, above the progress bar while one is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

/// One log record, written as a whole when dropped.
#[derive(Debug, Default)]
pub struct LogRecord(Vec<u8>);

impl Write for LogRecord {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogRecord {
    fn drop(&mut self) {
        let record = std::mem::take(&mut self.0);
        let print = move || {
            let _ = std::io::stderr().lock().write_all(&record);
        };
        match shown() {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogRecord;

    fn make_writer(&'a self) -> Self::Writer {
        LogRecord::default()
    }
}

/// Shows the job's progress on stderr while `run` works, when stderr is a terminal; returns a
/// guard that clears the bar.
pub fn show(board: StatusBoard) -> Option<Shown> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} windows  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    *SHOWN.write().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
    let updater = tokio::spawn(async move {
        loop {
            let status = board.get();
            update(&bar, &status);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Some(Shown { updater })
}

fn update(bar: &ProgressBar, status: &JobStatus) {
    let done = status.windows_done_this_run;
    bar.set_length(done + status.windows_left.unwrap_or(0) + status.windows_in_flight as u64);
    bar.set_position(done);
    bar.set_message(message(status));
    bar.tick();
}

/// What the bar says after the counts.
pub fn message(status: &JobStatus) -> String {
    let mut parts = vec![
        format!("{} rows", status.rows_written_this_run),
        format!("{:.0} rows/s", status.rows_per_second),
    ];
    if let Some(eta) = status.eta_seconds {
        parts.push(format!(
            "ETA {}",
            humantime::format_duration(Duration::from_secs(eta.round() as u64))
        ));
    }
    if status.continuous
        && let Some(lag) = status.max_lag_seconds()
    {
        parts.push(format!("lag {lag:.0}s"));
    }
    if status.rows_dead_lettered > 0 {
        parts.push(format!("{} dead-lettered", status.rows_dead_lettered));
    }
    if status.windows_failed > 0 {
        parts.push(format!("{} windows failed", status.windows_failed));
    }
    if let Some(oldest) = status.retrying.first() {
        let cut: String = oldest.last_error.chars().take(80).collect();
        parts.push(format!(
            "{} retrying ({} try {}: {cut})",
            status.retrying_count, oldest.measurement, oldest.tries
        ));
    }
    if let Some(waiting) = &status.waiting {
        parts.push(format!("waiting: {waiting}"));
    }
    parts.join("  ")
}

/// Clears the bar when dropped.
#[derive(Debug)]
pub struct Shown {
    updater: tokio::task::JoinHandle<()>,
}

impl Drop for Shown {
    fn drop(&mut self) {
        self.updater.abort();
        if let Some(bar) = SHOWN.write().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_rows_rate_eta_and_trouble() {
        let status = JobStatus {
            rows_written_this_run: 1200,
            rows_per_second: 400.4,
            eta_seconds: Some(90.0),
            rows_dead_lettered: 2,
            ..JobStatus::default()
        };
        assert_eq!(
            message(&status),
            "1200 rows  400 rows/s  ETA 1m 30s  2 dead-lettered"
        );
        let retrying = JobStatus {
            retrying: vec![influx2td_coordinator::Retrying {
                measurement: "cpu".into(),
                window_start: String::new(),
                window_end: String::new(),
                window_start_ns: 0,
                role: "writer".into(),
                batch: Some(0),
                tries: 3,
                since: String::new(),
                last_error: "TDengine error [0x2602]: Invalid column name: _tag_null".into(),
                cause: "stale".into(),
                retry_limit: Some(10),
            }],
            retrying_count: 1,
            ..status
        };
        assert_eq!(
            message(&retrying),
            "1200 rows  400 rows/s  ETA 1m 30s  2 dead-lettered  1 retrying (cpu try 3: TDengine error [0x2602]: Invalid column name: _tag_null)"
        );
    }
}
