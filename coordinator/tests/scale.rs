//! A job over 10 years × 10,000 measurements: the coordinator plans it without enumerating its
//! windows, never has more than `max_outstanding` of them published and unwritten, takes the
//! measurements in turn, and moves their checkpoints as windows are written.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use influx2td_bus::{Bus, CheckpointStore, Delivery, MemoryBus, Names, OutgoingMessage};
use influx2td_bus::{QueueConfig, Settle, StreamKind, WorkQueue};
use influx2td_coordinator::service::{self, CoordinatorSettings};
use influx2td_coordinator::{PlannedMeasurement, tracker::Progress};
use influx2td_proto::{Message, pb};

const MEASUREMENTS: usize = 10_000;
const HOUR: i64 = 3_600_000_000_000;
const YEAR: i64 = 365 * 24 * HOUR;
/// 2015-01-01T00:00:00Z.
const BEGIN: i64 = 1_420_070_400_000_000_000;

/// Plays readers and writers: every window is written (empty) as soon as it is published.
async fn write_every_window<B: Bus>(bus: B, windows: usize, max_outstanding: usize) -> usize {
    let names = bus.names().clone();
    let work = bus.queue(QueueConfig::new(StreamKind::Work)).await.unwrap();
    let done = bus.queue(QueueConfig::new(StreamKind::Done)).await.unwrap();
    let mut written = 0;
    let mut most_waiting = 0;
    while written < windows {
        let depth = work.depth().await.unwrap().messages as usize;
        most_waiting = most_waiting.max(depth);
        assert!(
            depth <= max_outstanding,
            "{depth} windows waiting, more than {max_outstanding}"
        );
        for delivery in work.pull(256, Duration::from_secs(5)).await.unwrap() {
            // Exactly `windows` are written: the rest of this pull stays unacknowledged.
            if written == windows {
                break;
            }
            let item = pb::WorkItem::decode(delivery.payload().clone()).unwrap();
            let report = pb::WindowDone {
                job: item.job.clone(),
                measurement: item.measurement.clone(),
                window_start_ns: item.window_start_ns,
                window_end_ns: item.window_end_ns,
                attempt: item.attempt,
                seq: 0,
                rows_written: 1,
                outcome: pb::Outcome::Written as i32,
                totals: Some(pb::WindowTotals {
                    batches: 1,
                    rows: 1,
                }),
                read: 1,
                ..Default::default()
            };
            done.publish(OutgoingMessage {
                subject: names.subject(StreamKind::Done, &item.measurement),
                msg_id: format!(
                    "{}/{}/{}",
                    item.measurement, item.window_start_ns, item.attempt
                ),
                headers: vec![],
                payload: report.encode_to_vec().into(),
            })
            .await
            .unwrap();
            delivery.settle(Settle::Ack).await.unwrap();
            written += 1;
        }
    }
    most_waiting
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_years_of_ten_thousand_measurements_are_published_lazily_and_in_turn() {
    let state = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(Names::new("influx2td", "scale").unwrap(), state.path());
    let measurements: Vec<PlannedMeasurement> = (0..MEASUREMENTS)
        .map(|index| PlannedMeasurement {
            name: format!("m{index:05}"),
            bounds: Some((BEGIN, BEGIN + 10 * YEAR - 1)),
        })
        .collect();
    let max_outstanding = 200;
    let settings = CoordinatorSettings {
        max_outstanding,
        exclusive_store: true,
        ..CoordinatorSettings::new(BEGIN, Some(BEGIN + 10 * YEAR), Duration::from_secs(3600))
    };
    let board = settings.status.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let coordinator = tokio::spawn(service::run(bus.clone(), measurements, settings, async {
        let _ = stopped.await;
    }));

    // As many windows as two of every measurement; taken in turn, the first, middle and last
    // measurement each get theirs.
    let windows = 2 * MEASUREMENTS;
    let most_waiting = write_every_window(bus.clone(), windows, max_outstanding).await;
    assert!(most_waiting > 0);

    // Checkpoints move as windows are written (stored at most a second later).
    let store = bus.checkpoints().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let advanced = loop {
        let mut advanced = 0;
        for index in [0, MEASUREMENTS / 2, MEASUREMENTS - 1] {
            let key = influx2td_proto::names::checkpoint_key(&format!("m{index:05}"));
            if let Some(stored) = store.get(&key).await.unwrap() {
                let progress: Progress = serde_json::from_str(&stored.value).unwrap();
                if progress.watermark_ns >= BEGIN + HOUR {
                    advanced += 1;
                }
            }
        }
        if advanced == 3 || tokio::time::Instant::now() > deadline {
            break advanced;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(advanced, 3, "first, middle and last measurement all moved");

    // Every acknowledgement counted (the board is refreshed every second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = board.get();
        if status.rows_written_this_run >= windows as u64 || tokio::time::Instant::now() > deadline
        {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status.rows_written_this_run, windows as u64);
    assert_eq!(status.measurements.len(), MEASUREMENTS);
    let left = status.windows_left.unwrap();
    let total = (10 * YEAR / HOUR) as u64 * MEASUREMENTS as u64;
    assert!(
        left < total && left >= total - windows as u64,
        "{left} of {total} windows left"
    );
    assert!(status.windows_in_flight <= max_outstanding);

    stop.send(()).unwrap();
    let summary = coordinator.await.unwrap().unwrap();
    assert!(!summary.complete);
    assert_eq!(summary.measurements.len(), MEASUREMENTS);
    let rows: u64 = summary.measurements.values().map(|p| p.rows_written).sum();
    assert_eq!(rows, windows as u64);
}
