//! Which windows are written: acknowledgements (DONE) counted per read of a window, windows
//! complete when every batch of one read is written, and per measurement a low watermark that
//! advances only over contiguous complete windows. Pure bookkeeping; the service does the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use influx2td_proto::pb;
use serde::{Deserialize, Serialize};

/// A window that could not be read (or written) for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedWindow {
    pub start_ns: i64,
    pub end_ns: i64,
    pub reason: String,
}

/// A window some of whose rows TDengine refused (they are parked on the dead-letter stream);
/// `dead-letters replay` reads it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadWindow {
    pub start_ns: i64,
    pub end_ns: i64,
    pub rows: u64,
    pub reason: String,
}

/// At most this many dead windows are listed per measurement (the counts go on).
pub const MAX_DEAD_WINDOWS: usize = 1000;

/// What is durable about a measurement: stored as its checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Every window before this time is written (or failed and listed in `failed`).
    pub watermark_ns: i64,
    /// Rows the readers found in the windows written (each window's final read).
    #[serde(default)]
    pub rows_read: u64,
    pub rows_written: u64,
    pub windows_done: u64,
    pub rows_dead_lettered: u64,
    /// The reason the first dead-lettered rows gave.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dead_letter_reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedWindow>,
    /// Windows with dead-lettered rows, the first [`MAX_DEAD_WINDOWS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_windows: Vec<DeadWindow>,
}

#[derive(Debug, Default)]
struct ReadTrack {
    totals: Option<pb::WindowTotals>,
    seqs: BTreeSet<u32>,
    rows_written: u64,
    rows_dead_lettered: u64,
    dead_letter_reason: String,
}

impl ReadTrack {
    fn complete(&self) -> bool {
        self.totals
            .is_some_and(|totals| self.seqs.len() as u64 == u64::from(totals.batches))
    }
}

/// A window published and not yet written.
#[derive(Debug)]
struct WindowTrack {
    end_ns: i64,
    attempt: u32,
    /// Counts per (attempt, read): a window completes from the batches of a single read.
    reads: HashMap<(u32, u32), ReadTrack>,
    outcome: Option<Result<(), String>>,
}

impl WindowTrack {
    fn new(end_ns: i64, attempt: u32) -> Self {
        Self {
            end_ns,
            attempt,
            reads: HashMap::new(),
            outcome: None,
        }
    }
}

#[derive(Debug, Default)]
struct MeasurementTrack {
    progress: Progress,
    /// By window start.
    outstanding: BTreeMap<i64, WindowTrack>,
    /// Where the next window to publish starts: the watermark once nothing is outstanding.
    cursor_ns: i64,
    /// Rows the last window read held (of this run): how dense the measurement is.
    last_window_rows: Option<u64>,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    /// Counted; the window is not complete yet.
    Counted,
    /// The window is complete (`Ok`) or failed for good (`Err(reason)`).
    WindowFinished {
        start_ns: i64,
        end_ns: i64,
        outcome: Result<(), String>,
    },
    /// The window was replaced by its halves `[start, split_at)` and `[split_at, end)`.
    Split {
        start_ns: i64,
        split_at_ns: i64,
        end_ns: i64,
    },
    /// For a window not outstanding (already finished, or from before a restart): ignored.
    Ignored,
}

/// Bookkeeping of every measurement of a job.
#[derive(Debug, Default)]
pub struct Tracker {
    measurements: BTreeMap<String, MeasurementTrack>,
}

impl Tracker {
    /// Starts tracking a measurement from its checkpoint.
    pub fn resume(&mut self, measurement: &str, progress: Progress) {
        let cursor_ns = progress.watermark_ns;
        self.measurements.insert(
            measurement.to_owned(),
            MeasurementTrack {
                progress,
                outstanding: BTreeMap::new(),
                cursor_ns,
                last_window_rows: None,
            },
        );
    }

    pub fn measurements(&self) -> impl Iterator<Item = &str> {
        self.measurements.keys().map(String::as_str)
    }

    /// Where the next window of `measurement` starts.
    pub fn cursor(&self, measurement: &str) -> Option<i64> {
        self.measurements
            .get(measurement)
            .map(|track| track.cursor_ns)
    }

    /// Moves the cursor over a stretch known to hold no data (no window is read there).
    pub fn skip_to(&mut self, measurement: &str, start_ns: i64) {
        if let Some(track) = self.measurements.get_mut(measurement)
            && start_ns > track.cursor_ns
        {
            track.cursor_ns = start_ns;
            if track.outstanding.is_empty() {
                track.progress.watermark_ns = start_ns;
            }
        }
    }

    /// Records that window `[start, end)` was published with `attempt`.
    pub fn published(&mut self, measurement: &str, start_ns: i64, end_ns: i64, attempt: u32) {
        let Some(track) = self.measurements.get_mut(measurement) else {
            return;
        };
        track.cursor_ns = track.cursor_ns.max(end_ns);
        let window = track
            .outstanding
            .entry(start_ns)
            .or_insert_with(|| WindowTrack {
                end_ns,
                attempt,
                reads: HashMap::new(),
                outcome: None,
            });
        window.attempt = window.attempt.max(attempt);
    }

    /// How many rows the last window read of `measurement` held; `None` before the first.
    pub fn last_window_rows(&self, measurement: &str) -> Option<u64> {
        self.measurements.get(measurement)?.last_window_rows
    }

    /// The attempt a window was last published with.
    pub fn attempt(&self, measurement: &str, start_ns: i64) -> Option<u32> {
        self.measurements
            .get(measurement)?
            .outstanding
            .get(&start_ns)
            .map(|window| window.attempt)
    }

    /// Windows published and not finished.
    pub fn outstanding(&self) -> usize {
        self.measurements
            .values()
            .map(|track| {
                track
                    .outstanding
                    .values()
                    .filter(|window| window.outcome.is_none())
                    .count()
            })
            .sum()
    }

    /// Counts one acknowledgement.
    pub fn acked(&mut self, done: &pb::WindowDone) -> Acked {
        let Some(track) = self.measurements.get_mut(&done.measurement) else {
            return Acked::Ignored;
        };
        let Some(window) = track.outstanding.get_mut(&done.window_start_ns) else {
            return Acked::Ignored;
        };
        if window.end_ns != done.window_end_ns || window.outcome.is_some() {
            return Acked::Ignored;
        }
        if done.outcome() == pb::Outcome::Split {
            let (start_ns, end_ns, split_at_ns) =
                (done.window_start_ns, window.end_ns, done.split_at_ns);
            if split_at_ns <= start_ns || split_at_ns >= end_ns {
                return Acked::Ignored;
            }
            let attempt = window.attempt;
            // The halves take the window's place; acknowledgements of its partial read no longer
            // match any window (their end differs) and are ignored.
            track
                .outstanding
                .insert(start_ns, WindowTrack::new(split_at_ns, attempt));
            track
                .outstanding
                .insert(split_at_ns, WindowTrack::new(end_ns, attempt));
            return Acked::Split {
                start_ns,
                split_at_ns,
                end_ns,
            };
        }
        if done.outcome() == pb::Outcome::ReadFailed {
            window.outcome = Some(Err(done.reason.clone()));
        } else {
            let read = window.reads.entry((done.attempt, done.read)).or_default();
            if read.seqs.insert(done.seq) {
                read.rows_written += done.rows_written;
                read.rows_dead_lettered += done.rows_dead_lettered;
                if read.dead_letter_reason.is_empty() {
                    read.dead_letter_reason.clone_from(&done.reason);
                }
            }
            if done.totals.is_some() {
                read.totals = done.totals;
            }
            if !read.complete() {
                return Acked::Counted;
            }
            let read = std::mem::take(read);
            if read.rows_dead_lettered > 0 && track.progress.dead_windows.len() < MAX_DEAD_WINDOWS {
                track.progress.dead_windows.push(DeadWindow {
                    start_ns: done.window_start_ns,
                    end_ns: window.end_ns,
                    rows: read.rows_dead_lettered,
                    reason: read.dead_letter_reason.clone(),
                });
            }
            track.progress.rows_read += read.totals.map_or(0, |totals| totals.rows);
            track.last_window_rows = read.totals.map(|totals| totals.rows);
            track.progress.rows_written += read.rows_written;
            track.progress.rows_dead_lettered += read.rows_dead_lettered;
            if track.progress.dead_letter_reason.is_empty() {
                track.progress.dead_letter_reason = read.dead_letter_reason;
            }
            window.outcome = Some(Ok(()));
        }
        let outcome = window.outcome.clone().unwrap_or(Ok(()));
        let (start_ns, end_ns) = (done.window_start_ns, window.end_ns);
        track.progress.windows_done += 1;
        if let Err(reason) = &outcome {
            track.progress.failed.push(FailedWindow {
                start_ns,
                end_ns,
                reason: reason.clone(),
            });
        }
        advance(track);
        Acked::WindowFinished {
            start_ns,
            end_ns,
            outcome,
        }
    }

    pub fn progress(&self, measurement: &str) -> Option<&Progress> {
        self.measurements
            .get(measurement)
            .map(|track| &track.progress)
    }

    /// Windows of `measurement` still outstanding, `(start, end, attempt)`.
    pub fn unfinished(&self, measurement: &str) -> Vec<(i64, i64, u32)> {
        self.measurements
            .get(measurement)
            .map(|track| {
                track
                    .outstanding
                    .iter()
                    .filter(|(_, window)| window.outcome.is_none())
                    .map(|(start, window)| (*start, window.end_ns, window.attempt))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Moves the watermark over finished windows at the front.
fn advance(track: &mut MeasurementTrack) {
    while let Some(entry) = track.outstanding.first_entry() {
        if entry.get().outcome.is_none() {
            track.progress.watermark_ns = *entry.key();
            return;
        }
        let finished = entry.remove();
        track.progress.watermark_ns = finished.end_ns;
    }
    track.progress.watermark_ns = track.cursor_ns;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(
        start: i64,
        end: i64,
        attempt: u32,
        read: u32,
        seq: u32,
        rows: u64,
        totals: Option<(u32, u64)>,
    ) -> pb::WindowDone {
        pb::WindowDone {
            measurement: "cpu".into(),
            window_start_ns: start,
            window_end_ns: end,
            attempt,
            read,
            seq,
            rows_written: rows,
            outcome: pb::Outcome::Written as i32,
            totals: totals.map(|(batches, rows)| pb::WindowTotals { batches, rows }),
            ..Default::default()
        }
    }

    fn tracker() -> Tracker {
        let mut tracker = Tracker::default();
        tracker.resume(
            "cpu",
            Progress {
                watermark_ns: 0,
                ..Default::default()
            },
        );
        for start in [0, 10, 20] {
            tracker.published("cpu", start, start + 10, 1);
        }
        tracker
    }

    #[test]
    fn a_window_completes_when_every_batch_of_one_read_is_written() {
        let mut tracker = tracker();
        // Batches may arrive in any order; the last one carries the count.
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 1, 1, 5, Some((3, 12)))),
            Acked::Counted
        );
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 1, 0, 4, None)),
            Acked::Counted
        );
        // A duplicate acknowledgement counts once.
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 1, 0, 4, None)),
            Acked::Counted
        );
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 1, 2, 3, None)),
            Acked::WindowFinished {
                start_ns: 0,
                end_ns: 10,
                outcome: Ok(())
            }
        );
        let progress = tracker.progress("cpu").unwrap();
        assert_eq!(
            (
                progress.watermark_ns,
                progress.rows_written,
                progress.windows_done
            ),
            (10, 12, 1)
        );
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 1, 2, 3, None)),
            Acked::Ignored,
            "finished windows ignore late acks"
        );
    }

    #[test]
    fn the_watermark_waits_for_the_earliest_window() {
        let mut tracker = tracker();
        tracker.acked(&done(10, 20, 1, 1, 0, 1, Some((1, 1))));
        tracker.acked(&done(20, 30, 1, 1, 0, 1, Some((1, 1))));
        assert_eq!(
            tracker.progress("cpu").unwrap().watermark_ns,
            0,
            "checkpoints never move past an unwritten window"
        );
        tracker.acked(&done(0, 10, 1, 1, 0, 1, Some((1, 1))));
        assert_eq!(tracker.progress("cpu").unwrap().watermark_ns, 30);
        assert_eq!(tracker.outstanding(), 0);
    }

    #[test]
    fn batches_of_different_reads_never_complete_a_window_together() {
        let mut tracker = tracker();
        // Read 1 wrote batch 0 of 2 and died; read 2 cut the window differently.
        tracker.acked(&done(0, 10, 1, 1, 0, 5, None));
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 2, 1, 7, Some((2, 12)))),
            Acked::Counted
        );
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 2, 0, 5, None)),
            Acked::WindowFinished {
                start_ns: 0,
                end_ns: 10,
                outcome: Ok(())
            }
        );
        assert_eq!(
            tracker.progress("cpu").unwrap().rows_written,
            12,
            "only the complete read counts"
        );
    }

    #[test]
    fn a_republished_window_completes_from_either_attempt() {
        let mut tracker = tracker();
        tracker.published("cpu", 0, 10, 2);
        assert_eq!(tracker.attempt("cpu", 0), Some(2));
        // The first attempt's acks arrive late, and complete it.
        assert!(matches!(
            tracker.acked(&done(0, 10, 1, 1, 0, 1, Some((1, 1)))),
            Acked::WindowFinished { .. }
        ));
    }

    #[test]
    fn a_failed_read_finishes_the_window_with_its_reason() {
        let mut tracker = tracker();
        let failed = pb::WindowDone {
            measurement: "cpu".into(),
            window_start_ns: 0,
            window_end_ns: 10,
            outcome: pb::Outcome::ReadFailed as i32,
            reason: "measurement dropped".into(),
            ..Default::default()
        };
        assert_eq!(
            tracker.acked(&failed),
            Acked::WindowFinished {
                start_ns: 0,
                end_ns: 10,
                outcome: Err("measurement dropped".into())
            }
        );
        let progress = tracker.progress("cpu").unwrap();
        assert_eq!(progress.watermark_ns, 10);
        assert_eq!(
            progress.failed,
            [FailedWindow {
                start_ns: 0,
                end_ns: 10,
                reason: "measurement dropped".into()
            }]
        );
    }

    #[test]
    fn a_split_window_is_replaced_by_its_halves() {
        let mut tracker = tracker();
        // A partial read wrote a batch before the reader found the window too large.
        tracker.acked(&done(0, 10, 1, 1, 0, 5, None));
        let split = pb::WindowDone {
            measurement: "cpu".into(),
            window_start_ns: 0,
            window_end_ns: 10,
            attempt: 1,
            outcome: pb::Outcome::Split as i32,
            split_at_ns: 4,
            ..Default::default()
        };
        assert_eq!(
            tracker.acked(&split),
            Acked::Split {
                start_ns: 0,
                split_at_ns: 4,
                end_ns: 10
            }
        );
        assert_eq!(
            tracker.unfinished("cpu"),
            [(0, 4, 1), (4, 10, 1), (10, 20, 1), (20, 30, 1)]
        );
        assert_eq!(
            tracker.acked(&done(0, 10, 1, 1, 1, 5, Some((2, 10)))),
            Acked::Ignored,
            "the partial read no longer counts"
        );
        tracker.acked(&done(4, 10, 1, 1, 0, 6, Some((1, 6))));
        assert_eq!(tracker.progress("cpu").unwrap().watermark_ns, 0);
        tracker.acked(&done(0, 4, 1, 1, 0, 4, Some((1, 4))));
        let progress = tracker.progress("cpu").unwrap();
        assert_eq!(
            (
                progress.watermark_ns,
                progress.rows_written,
                progress.windows_done
            ),
            (10, 10, 2)
        );
    }

    #[test]
    fn dead_lettered_rows_are_counted_with_their_reason() {
        let mut tracker = tracker();
        let mut report = done(0, 10, 1, 1, 0, 9, Some((1, 10)));
        report.rows_dead_lettered = 1;
        report.outcome = pb::Outcome::DeadLettered as i32;
        report.reason = "value out of range".into();
        tracker.acked(&report);
        let progress = tracker.progress("cpu").unwrap();
        assert_eq!(
            (
                progress.rows_read,
                progress.rows_written,
                progress.rows_dead_lettered
            ),
            (10, 9, 1)
        );
        assert_eq!(progress.dead_letter_reason, "value out of range");
        assert_eq!(
            progress.dead_windows,
            [DeadWindow {
                start_ns: 0,
                end_ns: 10,
                rows: 1,
                reason: "value out of range".into()
            }]
        );
    }

    #[test]
    fn skipping_an_empty_stretch_moves_the_watermark_when_nothing_is_outstanding() {
        let mut tracker = Tracker::default();
        tracker.resume("mem", Progress::default());
        tracker.skip_to("mem", 500);
        assert_eq!(
            (
                tracker.cursor("mem"),
                tracker.progress("mem").unwrap().watermark_ns
            ),
            (Some(500), 500)
        );
        let json = serde_json::to_string(tracker.progress("mem").unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"watermark_ns":500,"rows_read":0,"rows_written":0,"windows_done":0,"rows_dead_lettered":0}"#
        );
        // Checkpoints stored before `rows_read` existed still load.
        let older: Progress = serde_json::from_str(
            r#"{"watermark_ns":500,"rows_written":7,"windows_done":1,"rows_dead_lettered":0}"#,
        )
        .unwrap();
        assert_eq!((older.rows_read, older.rows_written), (0, 7));
    }
}
