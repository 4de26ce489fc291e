//! What keeps failing right now: the readers' and writers' notices (`OUTCOME_RETRYING` on DONE)
//! that a window's read or one of its row batches failed and will be tried again, kept until
//! that read or batch succeeds or the window is finished, for `status` to say what is retried,
//! how often, since when and why. Pure bookkeeping; the service does the I/O.

use std::collections::BTreeMap;

use influx2td_proto::pb;
use serde::Serialize;

/// At most this many retried reads and batches are listed in the status (oldest first); the
/// count covers them all.
pub const MAX_LISTED: usize = 20;

/// One window read or row batch being retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retrying {
    pub measurement: String,
    /// The window (RFC 3339, UTC), start inclusive, end exclusive.
    pub window_start: String,
    pub window_end: String,
    pub window_start_ns: i64,
    /// `reader` (the window's read) or `writer` (one of its row batches).
    pub role: String,
    /// The row batch, for the writer.
    pub batch: Option<u32>,
    /// Tries so far.
    pub tries: u32,
    /// When the first failure of this read or batch was reported (RFC 3339, UTC).
    pub since: String,
    /// What the last try met.
    pub last_error: String,
    /// The class of that error (as in the `influx2td_retries_total` metric).
    pub cause: String,
    /// After this many tries the rows still refused are dead-lettered; `None`: retried until
    /// the cause is fixed (a server away, refused credentials).
    pub retry_limit: Option<u32>,
}

/// (measurement, window start, role, batch).
type Key = (String, i64, String, Option<u32>);

#[derive(Debug)]
struct Entry {
    since_ns: i64,
    report: pb::WindowDone,
}

/// The retried reads and batches of a job.
#[derive(Debug, Default)]
pub struct RetryBoard {
    entries: BTreeMap<Key, Entry>,
}

fn key(report: &pb::WindowDone) -> Key {
    let batch = (report.role != "reader").then_some(report.seq);
    (
        report.measurement.clone(),
        report.window_start_ns,
        report.role.clone(),
        batch,
    )
}

impl RetryBoard {
    /// Records a notice (`OUTCOME_RETRYING`) received at `now_ns`.
    pub fn note(&mut self, report: &pb::WindowDone, now_ns: i64) {
        let entry = self.entries.entry(key(report)).or_insert_with(|| Entry {
            since_ns: now_ns,
            report: report.clone(),
        });
        if report.tries >= entry.report.tries {
            entry.report = report.clone();
        }
    }

    /// A batch of the window was written: that batch, and the window's read, no longer fail.
    pub fn settled(&mut self, report: &pb::WindowDone) {
        let window = (report.measurement.clone(), report.window_start_ns);
        self.entries.retain(|(measurement, start, role, batch), _| {
            let same_window = *measurement == window.0 && *start == window.1;
            let settled = role == "reader" || *batch == Some(report.seq);
            !(same_window && settled)
        });
    }

    /// The window is finished, split or published again: forget all of it.
    pub fn forget_window(&mut self, measurement: &str, start_ns: i64) {
        self.entries
            .retain(|(name, start, _, _), _| !(name == measurement && *start == start_ns));
    }

    /// How many reads or batches of `role` are being retried.
    pub fn count(&self, role: &str) -> usize {
        self.entries
            .keys()
            .filter(|(_, _, entry_role, _)| entry_role == role)
            .count()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The oldest [`MAX_LISTED`] retried reads and batches.
    pub fn list(&self) -> Vec<Retrying> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_by_key(|entry| entry.since_ns);
        entries
            .into_iter()
            .take(MAX_LISTED)
            .map(|entry| {
                let report = &entry.report;
                Retrying {
                    measurement: report.measurement.clone(),
                    window_start: influx2td_config::format_time(report.window_start_ns),
                    window_end: influx2td_config::format_time(report.window_end_ns),
                    window_start_ns: report.window_start_ns,
                    role: report.role.clone(),
                    batch: (report.role != "reader").then_some(report.seq),
                    tries: report.tries,
                    since: influx2td_config::format_time(entry.since_ns),
                    last_error: report.reason.clone(),
                    cause: report.cause.clone(),
                    retry_limit: (report.retry_limit > 0).then_some(report.retry_limit),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(role: &str, start: i64, seq: u32, tries: u32, reason: &str) -> pb::WindowDone {
        pb::WindowDone {
            measurement: "cpu".into(),
            window_start_ns: start,
            window_end_ns: start + 10,
            seq,
            outcome: pb::Outcome::Retrying as i32,
            reason: reason.into(),
            role: role.into(),
            tries,
            cause: "unclassified".into(),
            retry_limit: if role == "writer" { 10 } else { 0 },
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_first_failure_time_and_the_latest_try() {
        let mut board = RetryBoard::default();
        board.note(&notice("writer", 0, 1, 1, "first"), 100);
        board.note(&notice("writer", 0, 1, 3, "third"), 300);
        // A late, older notice does not roll the count back.
        board.note(&notice("writer", 0, 1, 2, "second"), 400);
        let listed = board.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].tries, 3);
        assert_eq!(listed[0].last_error, "third");
        assert_eq!(listed[0].since, influx2td_config::format_time(100));
        assert_eq!(listed[0].batch, Some(1));
        assert_eq!(listed[0].retry_limit, Some(10));
    }

    #[test]
    fn a_written_batch_clears_itself_and_the_windows_read_only() {
        let mut board = RetryBoard::default();
        board.note(&notice("reader", 0, 0, 2, "influxdb away"), 1);
        board.note(&notice("writer", 0, 1, 1, "refused"), 2);
        board.note(&notice("writer", 0, 2, 1, "refused"), 3);
        board.note(&notice("writer", 10, 1, 1, "refused"), 4);
        board.settled(&pb::WindowDone {
            measurement: "cpu".into(),
            window_start_ns: 0,
            seq: 1,
            ..Default::default()
        });
        let left: Vec<(i64, Option<u32>)> = board
            .list()
            .iter()
            .map(|entry| (entry.window_start_ns, entry.batch))
            .collect();
        assert_eq!(left, [(0, Some(2)), (10, Some(1))]);
        assert_eq!(board.count("writer"), 2);
        assert_eq!(board.count("reader"), 0);
        board.forget_window("cpu", 0);
        assert_eq!(board.len(), 1);
    }

    #[test]
    fn lists_the_oldest_and_counts_all() {
        let mut board = RetryBoard::default();
        for start in 0..(MAX_LISTED as i64 + 5) {
            board.note(&notice("reader", start * 10, 0, 1, "away"), 1000 - start);
        }
        let listed = board.list();
        assert_eq!(listed.len(), MAX_LISTED);
        assert_eq!(board.len(), MAX_LISTED + 5);
        assert_eq!(listed[0].window_start_ns, (MAX_LISTED as i64 + 4) * 10);
        assert_eq!(listed[0].retry_limit, None);
    }
}
