//! The coordinator role: takes the job's lease, resumes every measurement from its checkpoint,
//! publishes windows lazily (a new read only while fewer than `max_outstanding` windows are in
//! flight; sparse measurements due for the same window in one read together), counts the writers'
//! acknowledgements, re-publishes windows whose acknowledgements do not arrive in time (a new
//! attempt, so a new dedup id), stores checkpoints with compare-and-set, and ends when every
//! window up to `end` is written, or keeps following new data when the job has no end.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use influx2td_bus::{
    Bus, BusError, CheckpointStore, Delivery, QueueConfig, Settle, StreamKind, WorkQueue,
};
use influx2td_proto::names::{LEASE_KEY, checkpoint_key};
use influx2td_proto::{Message, pb};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;
use tracing::Instrument;

use crate::retrying::RetryBoard;
use crate::status::{JobStatus, MeasurementStatus, StatusBoard, eta_seconds, windows_between};
use crate::tracker::{Acked, Progress, Tracker};

/// How the coordinator runs a job.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    pub begin_ns: i64,
    /// `None`: keep syncing.
    pub end_ns: Option<i64>,
    pub window_ns: i64,
    /// How far behind now continuous sync stays.
    pub delay: Duration,
    /// Continuous sync reads each window once more when `window_end + delay + lookback <= now`
    /// (zero: never), for points that arrive later than `delay`.
    pub lookback: Duration,
    /// A new read is published only while fewer windows than this are published and not yet
    /// written (a read together then adds up to `max_group` windows).
    pub max_outstanding: usize,
    /// A window whose acknowledgements stop arriving for this long is published again.
    pub window_deadline: Duration,
    pub progress_interval: Duration,
    /// How long the job's lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How long a window taken by a reader that died waits before another one gets it (the
    /// WORK consumer's ack wait; readers ask for the same).
    pub ack_wait: Duration,
    /// The checkpoint store itself guarantees one process per job (the embedded state file is
    /// locked by the OS, and the lock dies with its process): a lease left by a crashed run is
    /// taken over at once instead of waited out.
    pub exclusive_store: bool,
    /// Where the coordinator shows the job's live status (for `/status` and progress bars).
    pub status: StatusBoard,
    /// Sparse measurements whose next windows are the same are read together, this many at most
    /// in one query (1: each on its own; InfluxQL only).
    pub max_group: usize,
    /// A measurement whose last window held more rows than this is read on its own.
    pub sparse_rows: u64,
}

/// Measurements read together at most, by default, where the source can (InfluxQL).
pub const DEFAULT_MAX_GROUP: usize = 64;
/// A window of at most this many rows is sparse: its measurement is read with others.
pub const DEFAULT_SPARSE_ROWS: u64 = 5_000;
/// The statements of one read together at most (bytes, estimated): the query travels in a URL,
/// and proxies in front of InfluxDB refuse long ones (nginx: 8 KiB by default).
const MAX_GROUP_QUERY_BYTES: usize = 6_144;
/// What a window's statement costs beside its measurement's name (bytes, estimated generously).
const STATEMENT_BYTES: usize = 128;

impl CoordinatorSettings {
    pub fn new(begin_ns: i64, end_ns: Option<i64>, window: Duration) -> Self {
        Self {
            begin_ns,
            end_ns,
            window_ns: i64::try_from(window.as_nanos()).unwrap_or(i64::MAX).max(1),
            delay: Duration::from_secs(30),
            lookback: Duration::ZERO,
            max_outstanding: 200,
            window_deadline: Duration::from_secs(600),
            progress_interval: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(30),
            ack_wait: QueueConfig::new(StreamKind::Work).ack_wait,
            exclusive_store: false,
            status: StatusBoard::new(),
            max_group: 1,
            sparse_rows: DEFAULT_SPARSE_ROWS,
        }
    }
}

/// A measurement to copy and where its data lies (`None`: it holds no point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMeasurement {
    pub name: String,
    pub bounds: Option<(i64, i64)>,
}

#[derive(Debug, Error)]
pub enum CoordinatorError {
    #[error("coordinator cannot use the bus: {0}")]
    Bus(#[from] BusError),
    #[error(
        "job {job} is run by another coordinator ({owner}) until {until}; stop it or wait for its lease to expire"
    )]
    Leased {
        job: String,
        owner: String,
        until: String,
    },
    #[error("lost the lease of job {job} to {owner}: another coordinator took over")]
    LeaseLost { job: String, owner: String },
    #[error("checkpoint {key} holds invalid data: {detail}")]
    BadCheckpoint { key: String, detail: String },
}

impl influx2td_bus::Transient for CoordinatorError {
    fn transient(&self) -> bool {
        matches!(self, Self::Bus(error) if error.transient())
    }
}

/// The state of a job when the coordinator returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobSummary {
    pub measurements: BTreeMap<String, Progress>,
    /// Whether every window up to `end` is written (never for a job without end).
    pub complete: bool,
}

impl JobSummary {
    pub fn rows_written(&self) -> u64 {
        self.measurements
            .values()
            .map(|progress| progress.rows_written)
            .sum()
    }

    pub fn rows_dead_lettered(&self) -> u64 {
        self.measurements
            .values()
            .map(|progress| progress.rows_dead_lettered)
            .sum()
    }

    pub fn failed_windows(&self) -> usize {
        self.measurements
            .values()
            .map(|progress| progress.failed.len())
            .sum()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    owner: String,
    expires_unix_ms: u128,
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default()
}

/// Now, in nanoseconds since 1970 (`i64::MAX` past 2262).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_nanos()).ok())
        .unwrap_or(i64::MAX)
}

/// The job's lease in the checkpoint store.
struct LeaseHolder<C: CheckpointStore> {
    store: C,
    job: String,
    owner: String,
    revision: u64,
    ttl: Duration,
    /// The leases this holder tried to write since its last write that succeeded, each failed
    /// (no answer): one of them found stored means that write was stored after all.
    in_doubt: Vec<String>,
}

impl<C: CheckpointStore> LeaseHolder<C> {
    /// Takes the lease; while another live coordinator holds it, waits (a standby) and takes
    /// over once it expires. `force`: take it over at once (see `exclusive_store`).
    async fn acquire(
        store: C,
        job: &str,
        ttl: Duration,
        force: bool,
    ) -> Result<Self, CoordinatorError> {
        // Unique to this holder: two containers both run as PID 1, maybe in the same millisecond.
        let nonce = {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(unix_ms());
            hasher.finish()
        };
        let owner = format!("pid-{}-{}-{nonce:016x}", std::process::id(), unix_ms());
        let mut announced = false;
        loop {
            let current = store.get(LEASE_KEY).await?;
            let holder = current
                .as_ref()
                .and_then(|versioned| serde_json::from_str::<Lease>(&versioned.value).ok())
                .filter(|lease| lease.expires_unix_ms > unix_ms());
            match holder {
                Some(lease) if force => {
                    tracing::warn!(
                        job,
                        previous = lease.owner,
                        "taking over the lease a previous run left behind"
                    );
                }
                Some(lease) => {
                    if !announced {
                        tracing::warn!(
                            job,
                            holder = lease.owner,
                            expires_in_ms = (lease.expires_unix_ms - unix_ms()) as u64,
                            "another coordinator runs this job; standing by until its lease expires"
                        );
                        announced = true;
                    }
                    tokio::time::sleep(ttl / 3).await;
                    continue;
                }
                None => {}
            }
            let mut holder = Self {
                store: store.clone(),
                job: job.to_owned(),
                owner: owner.clone(),
                revision: 0,
                ttl,
                in_doubt: Vec::new(),
            };
            match holder
                .write(current.map(|versioned| versioned.revision))
                .await
            {
                Ok(()) => return Ok(holder),
                // Another standby was faster: stand by again.
                Err(CoordinatorError::LeaseLost { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
    }

    async fn write(&mut self, mut expected: Option<u64>) -> Result<(), CoordinatorError> {
        let mut adopted = false;
        loop {
            let value = serde_json::to_string(&Lease {
                owner: self.owner.clone(),
                expires_unix_ms: unix_ms() + self.ttl.as_millis(),
            })
            .unwrap_or_default();
            match self
                .store
                .compare_and_set(LEASE_KEY, value.clone(), expected)
                .await
            {
                Ok(revision) => {
                    self.revision = revision;
                    self.in_doubt.clear();
                    return Ok(());
                }
                Err(BusError::Conflict { .. }) => {
                    let stored = self.store.get(LEASE_KEY).await?;
                    // A renewal that failed (timed out while NATS had no quorum) may have been
                    // stored after all: the lease holds exactly what this holder wrote then, at
                    // a newer revision; renew from that one.
                    if let Some(versioned) = &stored
                        && self.in_doubt.contains(&versioned.value)
                        && expected.is_some()
                        && !adopted
                    {
                        tracing::info!(
                            job = self.job,
                            "a lease renewal that failed was stored after all"
                        );
                        expected = Some(versioned.revision);
                        adopted = true;
                        continue;
                    }
                    let owner = stored
                        .and_then(|versioned| serde_json::from_str::<Lease>(&versioned.value).ok())
                        .map(|lease| lease.owner)
                        .unwrap_or_default();
                    return Err(CoordinatorError::LeaseLost {
                        job: self.job.clone(),
                        owner,
                    });
                }
                Err(other) => {
                    remember_in_doubt(&mut self.in_doubt, value);
                    return Err(other.into());
                }
            }
        }
    }

    async fn renew(&mut self) -> Result<(), CoordinatorError> {
        self.write(Some(self.revision)).await
    }

    /// Lets another coordinator take over at once.
    async fn release(&mut self) {
        let expired = Lease {
            owner: self.owner.clone(),
            expires_unix_ms: 0,
        };
        let value = serde_json::to_string(&expired).unwrap_or_default();
        let _ = self
            .store
            .compare_and_set(LEASE_KEY, value, Some(self.revision))
            .await;
    }
}

/// Runs `operation` until it succeeds or fails in a way waiting cannot heal, waiting out a bus
/// that does not answer (a NATS cluster without quorum, or a stream not led yet) with the
/// reason on the status board; `None` when `shutdown` comes first.
async fn patiently<T, Fut>(
    what: &str,
    board: &StatusBoard,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    operation: impl FnMut() -> Fut,
) -> Result<Option<T>, CoordinatorError>
where
    Fut: Future<Output = Result<T, CoordinatorError>>,
{
    let waiting = |reason: String| board.set_waiting(Some(format!("NATS: {reason}")));
    let done = tokio::select! {
        done = influx2td_bus::retrying_and(what, waiting, operation) => done,
        () = shutdown.as_mut() => return Ok(None),
    };
    board.set_waiting(None);
    done.map(Some)
}

/// Reads every measurement's checkpoint.
pub async fn load_progress<C: CheckpointStore>(
    store: &C,
    measurement: &str,
) -> Result<Option<(Progress, u64)>, CoordinatorError> {
    let key = checkpoint_key(measurement);
    let Some(stored) = store.get(&key).await? else {
        return Ok(None);
    };
    let progress =
        serde_json::from_str(&stored.value).map_err(|e| CoordinatorError::BadCheckpoint {
            key,
            detail: e.to_string(),
        })?;
    Ok(Some((progress, stored.revision)))
}

/// Per measurement: where its windows stop (bounded jobs), and the stored checkpoint revision.
#[derive(Debug)]
struct Plan {
    /// `None`: keep following new data.
    end_ns: Option<i64>,
    revision: Option<u64>,
    persisted: Progress,
    /// Checkpoints written without an answer (NATS timed out), newest last: any may have been
    /// stored.
    in_doubt: Vec<String>,
}

/// Runs the job until every window up to `end` is written, or `shutdown` completes.
pub async fn run<B: Bus>(
    bus: B,
    measurements: Vec<PlannedMeasurement>,
    settings: CoordinatorSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<JobSummary, CoordinatorError> {
    tokio::pin!(shutdown);
    let Some(mut coordinator) = Coordinator::open(&bus, &settings, &mut shutdown).await? else {
        return Ok(JobSummary::default());
    };
    if !coordinator.plan(&measurements, &mut shutdown).await? {
        coordinator.lease.release().await;
        return Ok(JobSummary::default());
    }
    let complete = loop {
        coordinator.publish_due().await?;
        coordinator.publish_lookbacks().await?;
        if coordinator.finished() {
            break true;
        }
        let pulled = tokio::select! {
            _ = &mut shutdown => break false,
            pulled = coordinator.done.pull(256, Duration::from_millis(200)) => pulled,
        };
        match pulled {
            Ok(deliveries) => {
                coordinator.bus_answered("pull acknowledgements");
                for delivery in deliveries {
                    coordinator.record_done(delivery).await;
                }
            }
            Err(error) => {
                coordinator.bus_failed("pull acknowledgements", &error);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let now = Instant::now();
        coordinator.republish_overdue(now).await?;
        coordinator.on_ticks(now).await?;
    };
    coordinator.finish(complete).await
}

/// A coordinator at work: the job's lease, its queues, and the bookkeeping of its windows. Each
/// step of [`run`]'s loop is one of its methods.
struct Coordinator<'s, B: Bus> {
    settings: &'s CoordinatorSettings,
    names: influx2td_proto::names::Names,
    store: B::Checkpoints,
    lease: LeaseHolder<B::Checkpoints>,
    work: B::Queue,
    done: B::Queue,
    /// Only to show how many row batches wait for writers.
    data: B::Queue,
    /// The attempt number of this run's first publication of a window.
    first_attempt: u32,
    tracker: Tracker,
    plans: BTreeMap<String, Plan>,
    /// The measurements in the order they take turns.
    order: Vec<String>,
    round_robin: usize,
    /// When each outstanding window must have shown progress.
    deadlines: HashMap<(String, i64), Instant>,
    /// Continuous sync with lookback: windows to read once more, in the order they fall due.
    lookbacks: std::collections::VecDeque<(String, i64, i64)>,
    republished: HashMap<String, u64>,
    retry_board: RetryBoard,
    /// What NATS refuses now, by operation (`pull acknowledgements`, `store checkpoints`, …):
    /// the status says the job waits while any is left.
    bus_trouble: BTreeMap<&'static str, String>,
    /// What earlier runs did, so that rates and ETA measure this run.
    baseline: (u64, u64),
    started: Instant,
    next_persist: Instant,
    next_renew: Instant,
    next_progress: Instant,
}

impl<'s, B: Bus> Coordinator<'s, B> {
    /// Opens the checkpoint store, takes the lease and opens the queues, retrying while NATS is
    /// away or refuses; `None` when `shutdown` came first (as for a standby waiting for the lease).
    async fn open(
        bus: &B,
        settings: &'s CoordinatorSettings,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Option<Self>, CoordinatorError> {
        let names = bus.names().clone();
        let board = &settings.status;
        let waiting = |reason| board.set_waiting(Some(reason));
        let Some(store) = influx2td_bus::unless_stopped(
            shutdown,
            influx2td_bus::retrying_and("open the checkpoint store", waiting, || bus.checkpoints()),
        )
        .await
        else {
            board.set_waiting(None);
            return Ok(None);
        };
        let store = store?;
        board.set_waiting(None);
        let acquire = || {
            LeaseHolder::acquire(
                store.clone(),
                names.job(),
                settings.lease_ttl,
                settings.exclusive_store,
            )
        };
        let Some(mut lease) = patiently("take the job's lease", board, shutdown, acquire).await?
        else {
            return Ok(None);
        };
        // Attempt numbers are unique across coordinator restarts: a window published again by a
        // new coordinator must not carry the dedup id of the old one's (the bus would drop it).
        let Some(epoch) =
            patiently("count this run", board, shutdown, || next_epoch(&store)).await?
        else {
            lease.release().await;
            return Ok(None);
        };
        let first_attempt = epoch.saturating_mul(ATTEMPTS_PER_EPOCH).saturating_add(1);
        let queues = influx2td_bus::open_queues(
            bus,
            [
                // The readers' settings: whoever opens WORK first creates its consumer.
                QueueConfig {
                    ack_wait: settings.ack_wait,
                    ..QueueConfig::new(StreamKind::Work)
                },
                QueueConfig::new(StreamKind::Done),
                // Only to show how many row batches wait for writers (the writers' settings).
                QueueConfig {
                    ack_wait: settings.ack_wait,
                    ..QueueConfig::new(StreamKind::Data)
                },
            ],
            waiting,
        );
        let Some(opened) = influx2td_bus::unless_stopped(shutdown, queues).await else {
            board.set_waiting(None);
            lease.release().await;
            return Ok(None);
        };
        let [work, done, data] = opened?;
        board.set_waiting(None);
        let now = Instant::now();
        Ok(Some(Self {
            settings,
            names,
            store,
            lease,
            work,
            done,
            data,
            first_attempt,
            tracker: Tracker::default(),
            plans: BTreeMap::new(),
            order: Vec::new(),
            round_robin: 0,
            deadlines: HashMap::new(),
            lookbacks: Default::default(),
            republished: HashMap::new(),
            retry_board: RetryBoard::default(),
            bus_trouble: BTreeMap::new(),
            baseline: (0, 0),
            started: now,
            next_persist: now,
            next_renew: now + settings.lease_ttl / 3,
            next_progress: now + settings.progress_interval,
        }))
    }

    /// Resumes each measurement from its checkpoint and plans where its windows begin and end,
    /// then the lookback windows due again after a restart; `false` when `shutdown` came first.
    async fn plan(
        &mut self,
        measurements: &[PlannedMeasurement],
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<bool, CoordinatorError> {
        for measurement in measurements {
            let read = || load_progress(&self.store, &measurement.name);
            let board = &self.settings.status;
            let Some(stored) = patiently("read the checkpoints", board, shutdown, read).await?
            else {
                return Ok(false);
            };
            self.plan_one(measurement, stored);
        }
        self.order = self.plans.keys().cloned().collect();
        self.plan_lookbacks();
        self.baseline = totals(&self.tracker, &self.plans);
        // The clocks of this run start when its plan is made.
        let now = Instant::now();
        self.started = now;
        self.next_persist = now;
        self.next_renew = now + self.settings.lease_ttl / 3;
        self.next_progress = now + self.settings.progress_interval;
        Ok(true)
    }

    /// One measurement's plan, from its checkpoint (`stored`) and where its data lies.
    fn plan_one(&mut self, measurement: &PlannedMeasurement, stored: Option<(Progress, u64)>) {
        let settings = self.settings;
        let window = settings.window_ns;
        let (progress, revision) = match stored {
            Some((progress, revision)) => (progress, Some(revision)),
            None => (
                Progress {
                    watermark_ns: settings.begin_ns,
                    ..Default::default()
                },
                None,
            ),
        };
        let resumed_at = progress.watermark_ns;
        self.tracker.resume(&measurement.name, progress.clone());
        let end_ns = match (settings.end_ns, measurement.bounds) {
            // Stop after the window holding the last point.
            (Some(end), Some((_, last))) => {
                Some(end.min(align_up(last.saturating_add(1), settings.begin_ns, window)))
            }
            (Some(_), None) => Some(resumed_at),
            (None, _) => None,
        };
        // Nothing is read before the window holding the first point (the cursor only moves
        // forward, so a checkpoint further on wins).
        let first_window = match measurement.bounds {
            Some((first, _)) => align_down(first, settings.begin_ns, window),
            // An empty measurement in continuous sync starts with the window now being written.
            None if settings.end_ns.is_none() => {
                align_down(live_limit(settings), settings.begin_ns, window)
            }
            None => resumed_at,
        };
        self.tracker.skip_to(
            &measurement.name,
            end_ns.map_or(first_window, |end| first_window.min(end)),
        );
        tracing::info!(
            measurement = measurement.name,
            resume_from = resumed_at,
            first_window = self.tracker.cursor(&measurement.name),
            end = end_ns,
            "planned"
        );
        self.plans.insert(
            measurement.name.clone(),
            Plan {
                end_ns,
                revision,
                persisted: progress,
                in_doubt: Vec::new(),
            },
        );
    }

    /// After a restart in continuous sync with lookback, the windows just below each watermark
    /// are due again (their first reads may have been the only ones).
    fn plan_lookbacks(&mut self) {
        let lookback_ns = self.lookback_ns();
        if lookback_ns == 0 {
            return;
        }
        let (begin, window) = (self.settings.begin_ns, self.settings.window_ns);
        for (name, plan) in &self.plans {
            let Some(watermark) = self.tracker.progress(name).map(|p| p.watermark_ns) else {
                continue;
            };
            if plan.end_ns.is_some() {
                continue;
            }
            let mut start =
                align_down(watermark.saturating_sub(lookback_ns), begin, window).max(begin);
            while start < watermark {
                self.lookbacks
                    .push_back((name.clone(), start, start.saturating_add(window)));
                start = start.saturating_add(window);
            }
        }
    }

    fn lookback_ns(&self) -> i64 {
        i64::try_from(self.settings.lookback.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Publishes due windows while fewer than `max_outstanding` are in flight, taking the
    /// measurements in turn (sparse ones due for the same window in one read together).
    async fn publish_due(&mut self) -> Result<(), CoordinatorError> {
        let settings = self.settings;
        let now_limit = live_limit(settings);
        let lookback = self.lookback_ns() > 0;
        let metrics = influx2td_telemetry::metrics();
        let mut idle_rounds = 0;
        while self.tracker.outstanding() < settings.max_outstanding
            && idle_rounds < self.order.len()
        {
            let name = &self.order[self.round_robin % self.order.len().max(1)];
            self.round_robin = self.round_robin.wrapping_add(1);
            let due = Due {
                tracker: &self.tracker,
                plans: &self.plans,
                window: settings.window_ns,
                now_limit,
            };
            let Some((cursor, publish_end)) = due.next(name) else {
                idle_rounds += 1;
                continue;
            };
            idle_rounds = 0;
            let group = due.read_with(
                name,
                (cursor, publish_end),
                &self.order,
                self.round_robin,
                settings,
            );
            publish(
                &self.work,
                &settings.status,
                &self.names,
                &group,
                cursor,
                publish_end,
                self.first_attempt,
            )
            .await?;
            for member in group {
                self.tracker
                    .published(&member, cursor, publish_end, self.first_attempt);
                metrics.window(self.names.job(), "published");
                if lookback && self.plans[&member].end_ns.is_none() {
                    self.lookbacks
                        .push_back((member.clone(), cursor, publish_end));
                }
                self.deadlines
                    .insert((member, cursor), Instant::now() + settings.window_deadline);
            }
        }
        Ok(())
    }

    /// Windows due for their second read: not tracked (the first read moved the watermark);
    /// what the re-read finds overwrites or adds rows.
    async fn publish_lookbacks(&mut self) -> Result<(), CoordinatorError> {
        let lookback_limit = live_limit(self.settings).saturating_sub(self.lookback_ns());
        let lookback_attempt = self.first_attempt + ATTEMPTS_PER_EPOCH - 1;
        while let Some((name, start, end)) = self.lookbacks.front().cloned() {
            if end > lookback_limit {
                break;
            }
            publish_one(
                &self.work,
                &self.settings.status,
                &self.names,
                &name,
                (start, end),
                lookback_attempt,
            )
            .await?;
            influx2td_telemetry::metrics().window(self.names.job(), "lookback");
            tracing::debug!(
                measurement = name,
                window_start = start,
                window_end = end,
                "window read again (lookback)"
            );
            self.lookbacks.pop_front();
        }
        Ok(())
    }

    /// Whether every window of a bounded job is written (a job without end never is).
    fn finished(&self) -> bool {
        self.plans.iter().all(|(name, plan)| {
            plan.end_ns
                .is_some_and(|end| self.tracker.cursor(name).unwrap_or(end) >= end)
        }) && self.tracker.outstanding() == 0
    }

    /// Records one DONE message (its trace ends here: the report's sender is its parent), then
    /// acknowledges it.
    async fn record_done(&mut self, delivery: <B::Queue as WorkQueue>::Delivery) {
        let span = tracing::debug_span!(
            "record done",
            measurement = tracing::field::Empty,
            window_start = tracing::field::Empty,
            outcome = tracing::field::Empty,
            rows_written = tracing::field::Empty,
        );
        influx2td_telemetry::continue_trace(&span, |name| delivery.header(name));
        let entered = span.enter();
        match pb::WindowDone::decode(delivery.payload().clone()) {
            Ok(report) => {
                span.record("measurement", report.measurement.as_str())
                    .record("window_start", report.window_start_ns)
                    .record("outcome", {
                        let name = report.outcome().as_str_name();
                        name.strip_prefix("OUTCOME_").unwrap_or(name)
                    })
                    .record("rows_written", report.rows_written);
                self.record_report(&report);
            }
            Err(error) => {
                tracing::error!(%error, "ignoring a DONE message that is not a WindowDone")
            }
        }
        drop(entered);
        if let Err(error) = delivery.settle(Settle::Ack).await {
            tracing::debug!(%error, "cannot acknowledge a DONE message; it comes again and counts once");
        }
    }

    /// What a reader's or writer's report changes: a retry noted, a batch counted, a window
    /// finished or split.
    fn record_report(&mut self, report: &pb::WindowDone) {
        let deadline = Instant::now() + self.settings.window_deadline;
        let key = (report.measurement.clone(), report.window_start_ns);
        if report.outcome() == pb::Outcome::Retrying {
            // Someone holds the window and keeps trying: no deadline passes while it does (a
            // re-read would fail the same way).
            if self
                .tracker
                .attempt(&report.measurement, report.window_start_ns)
                .is_some()
            {
                self.retry_board.note(report, now_ns());
                self.deadlines.insert(key, deadline);
            }
            return;
        }
        let metrics = influx2td_telemetry::metrics();
        match self.tracker.acked(report) {
            Acked::Counted => {
                self.retry_board.settled(report);
                // Progress: the window is alive, give it more time.
                self.deadlines.insert(key, deadline);
            }
            Acked::WindowFinished {
                start_ns,
                end_ns,
                outcome,
            } => {
                self.retry_board
                    .forget_window(&report.measurement, start_ns);
                self.deadlines.remove(&key);
                let counted = if outcome.is_ok() { "done" } else { "failed" };
                metrics.window(self.names.job(), counted);
                if let Err(reason) = outcome {
                    tracing::error!(
                        measurement = report.measurement,
                        window_start = start_ns,
                        window_end = end_ns,
                        reason,
                        "window failed for good"
                    );
                }
            }
            Acked::Split {
                start_ns,
                split_at_ns,
                end_ns,
            } => {
                self.retry_board
                    .forget_window(&report.measurement, start_ns);
                metrics.window(self.names.job(), "split");
                tracing::info!(
                    measurement = report.measurement,
                    window_start = start_ns,
                    split_at = split_at_ns,
                    window_end = end_ns,
                    "window split: too many rows to read at once"
                );
                // The reader publishes the halves; should it die first, their deadline does.
                self.deadlines.remove(&key);
                for start in [start_ns, split_at_ns] {
                    self.deadlines
                        .insert((report.measurement.clone(), start), deadline);
                }
            }
            Acked::Ignored => {}
        }
    }

    /// Windows whose acknowledgements stopped: published again, as a new attempt.
    async fn republish_overdue(&mut self, now: Instant) -> Result<(), CoordinatorError> {
        let expired: Vec<(String, i64)> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for (name, start) in expired {
            let Some((_, end, attempt)) = self
                .tracker
                .unfinished(&name)
                .into_iter()
                .find(|(s, _, _)| *s == start)
            else {
                self.deadlines.remove(&(name, start));
                continue;
            };
            tracing::warn!(
                measurement = name,
                window_start = start,
                attempt = attempt + 1,
                "window not written in time; publishing it again"
            );
            publish_one(
                &self.work,
                &self.settings.status,
                &self.names,
                &name,
                (start, end),
                attempt + 1,
            )
            .await?;
            self.tracker.published(&name, start, end, attempt + 1);
            self.retry_board.forget_window(&name, start);
            influx2td_telemetry::metrics().window(self.names.job(), "republished");
            *self.republished.entry(name.clone()).or_default() += 1;
            self.deadlines
                .insert((name, start), now + self.settings.window_deadline);
        }
        Ok(())
    }

    /// What is done on a timer: checkpoints and the status every second, the lease a third of
    /// its time to live, the progress line every `progress_interval`.
    async fn on_ticks(&mut self, now: Instant) -> Result<(), CoordinatorError> {
        if now >= self.next_persist {
            self.persist().await?;
            self.report_status().await;
            self.next_persist = now + Duration::from_secs(1);
        }
        if now >= self.next_renew {
            match self.lease.renew().await {
                Ok(()) => self.bus_answered("renew the lease"),
                Err(CoordinatorError::Bus(error)) => self.bus_failed("renew the lease", &error),
                Err(other) => return Err(other),
            }
            self.next_renew = now + self.settings.lease_ttl / 3;
        }
        if now >= self.next_progress {
            log_progress(&self.settings.status.get());
            self.next_progress = now + self.settings.progress_interval;
        }
        Ok(())
    }

    /// Stores the checkpoints that moved; while the bus is down, on a later tick.
    async fn persist(&mut self) -> Result<(), CoordinatorError> {
        match persist(&self.store, &self.tracker, &mut self.plans).await {
            Ok(()) => {
                self.bus_answered("store checkpoints");
                Ok(())
            }
            Err(CoordinatorError::Bus(error)) => {
                self.bus_failed("store checkpoints", &error);
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// NATS refused `what` (to be retried): logged, and shown as what the job waits for.
    fn bus_failed(&mut self, what: &'static str, error: &BusError) {
        tracing::warn!(%error, "cannot {what}, retrying");
        self.bus_trouble
            .insert(what, format!("NATS: cannot {what}: {error}"));
        self.settings.status.set_waiting(self.waiting());
    }

    /// NATS did `what` again.
    fn bus_answered(&mut self, what: &'static str) {
        self.bus_trouble.remove(what);
    }

    fn waiting(&self) -> Option<String> {
        (!self.bus_trouble.is_empty()).then(|| {
            self.bus_trouble
                .values()
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn status(&self) -> JobStatus {
        let status = job_status(
            self.names.job(),
            &self.tracker,
            &self.plans,
            &ThisRun {
                republished: &self.republished,
                retrying: &self.retry_board,
                baseline: self.baseline,
                started: self.started,
            },
            self.settings.window_ns,
        );
        JobStatus {
            waiting: self.waiting(),
            ..status
        }
    }

    /// Refreshes the status board and the metrics (in flight, retrying, queue depths, lag).
    async fn report_status(&self) {
        let job = self.names.job();
        let metrics = influx2td_telemetry::metrics();
        let status = self.status();
        metrics.in_flight(job, status.windows_in_flight);
        for role in ["reader", "writer"] {
            metrics.retrying(job, role, self.retry_board.count(role));
        }
        for (stream, queue) in [
            ("work", &self.work),
            ("data", &self.data),
            ("done", &self.done),
        ] {
            if let Ok(depth) = queue.depth().await {
                metrics.pending(job, stream, depth.messages);
            }
        }
        if let Some(lag) = status.max_lag_seconds() {
            metrics.lag(job, Duration::from_secs_f64(lag.max(0.0)));
        }
        self.settings.status.set(status);
    }

    /// Stores the last checkpoints, gives the lease up and reports how the run ended.
    async fn finish(mut self, complete: bool) -> Result<JobSummary, CoordinatorError> {
        persist(&self.store, &self.tracker, &mut self.plans).await?;
        self.lease.release().await;
        let status = JobStatus {
            running: false,
            complete,
            ..self.status()
        };
        log_progress(&status);
        self.settings.status.set(status);
        Ok(JobSummary {
            measurements: self
                .plans
                .keys()
                .filter_map(|name| Some((name.clone(), self.tracker.progress(name)?.clone())))
                .collect(),
            complete,
        })
    }
}

/// The newest time a window may end at to be read now: `delay` behind the clock.
fn live_limit(settings: &CoordinatorSettings) -> i64 {
    now_ns().saturating_sub(i64::try_from(settings.delay.as_nanos()).unwrap_or(i64::MAX))
}

/// What is due to be published: windows of `window` nanoseconds, none ending after `now_limit`
/// in continuous sync.
struct Due<'a> {
    tracker: &'a Tracker,
    plans: &'a BTreeMap<String, Plan>,
    window: i64,
    now_limit: i64,
}

impl Due<'_> {
    /// The next window of `name` to publish, `(start, end)`, if one is due.
    fn next(&self, name: &str) -> Option<(i64, i64)> {
        let cursor = self.tracker.cursor(name).unwrap_or(i64::MAX);
        let window_end = cursor.saturating_add(self.window);
        let end = match self.plans.get(name)?.end_ns {
            Some(end) if cursor < end => window_end.min(end),
            Some(_) => return None,
            None if window_end <= self.now_limit => window_end,
            None => return None,
        };
        Some((cursor, end))
    }

    /// The measurements to read in one query with `first`, whose next window is `next`: those
    /// sparse like it whose next window is the same, taken in turn from `names[after..]`, as
    /// many as the settings allow.
    fn read_with(
        &self,
        first: &str,
        next: (i64, i64),
        names: &[String],
        after: usize,
        settings: &CoordinatorSettings,
    ) -> Vec<String> {
        let mut group = vec![first.to_owned()];
        let sparse = |name: &str| {
            self.tracker
                .last_window_rows(name)
                .is_none_or(|rows| rows <= settings.sparse_rows)
        };
        if settings.max_group <= 1 || !sparse(first) {
            return group;
        }
        let mut bytes = first.len() + STATEMENT_BYTES;
        for offset in 0..names.len().saturating_sub(1) {
            // (A read together is one read for `max_outstanding`: publishing starts while fewer
            // windows than that are in flight, and then takes the whole group, else reads
            // together would shrink to one as windows finish one by one.)
            if group.len() >= settings.max_group {
                break;
            }
            let other = &names[(after + offset) % names.len()];
            if bytes + other.len() + STATEMENT_BYTES > MAX_GROUP_QUERY_BYTES {
                break;
            }
            if other != first && sparse(other) && self.next(other) == Some(next) {
                bytes += other.len() + STATEMENT_BYTES;
                group.push(other.clone());
            }
        }
        group
    }
}

/// Attempts of one coordinator run: `epoch * ATTEMPTS_PER_EPOCH + 1`, then one more per re-publish.
const ATTEMPTS_PER_EPOCH: u32 = 1000;
/// The checkpoint key counting coordinator runs of a job.
const EPOCH_KEY: &str = "epoch";

/// Counts this coordinator run (compare-and-set on the `epoch` key) and returns its number.
async fn next_epoch<C: CheckpointStore>(store: &C) -> Result<u32, CoordinatorError> {
    loop {
        let current = store.get(EPOCH_KEY).await?;
        let epoch = match &current {
            Some(versioned) => {
                versioned.value.trim().parse::<u32>().map_err(|e| {
                    CoordinatorError::BadCheckpoint {
                        key: EPOCH_KEY.into(),
                        detail: e.to_string(),
                    }
                })? + 1
            }
            None => 1,
        };
        match store
            .compare_and_set(
                EPOCH_KEY,
                epoch.to_string(),
                current.map(|versioned| versioned.revision),
            )
            .await
        {
            Ok(_) => return Ok(epoch),
            Err(BusError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
}

/// The start of the window holding `time`, for windows laid from `origin`.
pub fn align_down(time: i64, origin: i64, window: i64) -> i64 {
    origin + (time.saturating_sub(origin)).div_euclid(window) * window
}

/// The end of the window holding `time - 1` (the first window boundary at or after `time`).
pub fn align_up(time: i64, origin: i64, window: i64) -> i64 {
    let down = align_down(time, origin, window);
    if down == time {
        time
    } else {
        down.saturating_add(window)
    }
}

/// Publishes a window `(start, end)` of one measurement.
async fn publish_one<Q: WorkQueue>(
    work: &Q,
    board: &StatusBoard,
    names: &influx2td_proto::names::Names,
    measurement: &str,
    (start_ns, end_ns): (i64, i64),
    attempt: u32,
) -> Result<(), BusError> {
    let measurements = [measurement.to_owned()];
    publish(work, board, names, &measurements, start_ns, end_ns, attempt).await
}

/// Publishes a window of one measurement, or of several read together (`measurements`, the
/// first named in subjects and logs); a bus that is down for a while (NATS restarting) is
/// waited out (the status saying so).
async fn publish<Q: WorkQueue>(
    work: &Q,
    board: &StatusBoard,
    names: &influx2td_proto::names::Names,
    measurements: &[String],
    start_ns: i64,
    end_ns: i64,
    attempt: u32,
) -> Result<(), BusError> {
    let measurement = measurements.first().map_or("", String::as_str);
    let item = pb::WorkItem {
        job: names.job().to_owned(),
        measurement: measurement.to_owned(),
        window_start_ns: start_ns,
        window_end_ns: end_ns,
        attempt,
        split_depth: 0,
        measurements: if measurements.len() > 1 {
            measurements.to_vec()
        } else {
            Vec::new()
        },
    };
    // Each window (and each attempt of it) is a trace of its own: this span is its root.
    let span = tracing::debug_span!(
        parent: None,
        "publish window",
        measurement,
        measurements = measurements.len(),
        window_start = start_ns,
        window_end = end_ns,
        attempt,
    );
    let message = span.in_scope(|| influx2td_bus::work_item_message(names, &item));
    let waiting = |reason| board.set_waiting(Some(format!("NATS: {reason}")));
    influx2td_bus::retrying_and("publish a window", waiting, || {
        work.publish(message.clone())
    })
    .instrument(span)
    .await
    .map(|_| ())
}

/// Stores every checkpoint that changed, with compare-and-set, in one store operation.
async fn persist<C: CheckpointStore>(
    store: &C,
    tracker: &Tracker,
    plans: &mut BTreeMap<String, Plan>,
) -> Result<(), CoordinatorError> {
    // (measurement, progress, the progress as stored)
    let changed: Vec<(String, Progress, String)> = plans
        .iter()
        .filter_map(|(name, plan)| {
            let progress = tracker.progress(name)?;
            (*progress != plan.persisted).then(|| {
                let value = serde_json::to_string(progress).unwrap_or_default();
                (name.clone(), progress.clone(), value)
            })
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let updates = changed
        .iter()
        .map(|(name, _, value)| {
            (
                checkpoint_key(name),
                value.clone(),
                plans.get(name).and_then(|plan| plan.revision),
            )
        })
        .collect();
    match store.compare_and_set_many(updates).await {
        Ok(revisions) => {
            for ((name, progress, _), revision) in changed.into_iter().zip(revisions) {
                if let Some(plan) = plans.get_mut(&name) {
                    plan.revision = Some(revision);
                    plan.persisted = progress;
                    plan.in_doubt.clear();
                }
            }
            Ok(())
        }
        Err(BusError::Conflict { key, .. }) => {
            // A write that failed (timed out while NATS had no quorum) may have been stored
            // after all: then the checkpoint holds what this coordinator wrote, and it goes on
            // from that revision.
            let stored = store.get(&key).await?;
            let plan = plans
                .iter_mut()
                .find(|(name, _)| checkpoint_key(name) == key)
                .map(|(_, plan)| plan);
            if let (Some(plan), Some(stored)) = (plan, stored)
                && plan.in_doubt.contains(&stored.value)
                && let Ok(progress) = serde_json::from_str(&stored.value)
            {
                tracing::info!(key, "a checkpoint write that failed was stored after all");
                plan.revision = Some(stored.revision);
                plan.persisted = progress;
                plan.in_doubt.clear();
                return Ok(());
            }
            // Someone else writes this job's checkpoints: another coordinator took over.
            Err(CoordinatorError::LeaseLost {
                job: key,
                owner: "another coordinator (checkpoint changed under us)".into(),
            })
        }
        Err(other) => {
            for (name, _, value) in changed {
                if let Some(plan) = plans.get_mut(&name) {
                    remember_in_doubt(&mut plan.in_doubt, value);
                }
            }
            Err(other.into())
        }
    }
}

/// Keeps `value`, a write that failed without an answer (it may have been stored after all),
/// among the newest [`MAX_IN_DOUBT`] such writes.
fn remember_in_doubt(in_doubt: &mut Vec<String>, value: String) {
    if in_doubt.len() >= MAX_IN_DOUBT {
        in_doubt.remove(0);
    }
    in_doubt.push(value);
}

/// How many writes that failed without an answer are remembered (per checkpoint, and for the
/// lease).
const MAX_IN_DOUBT: usize = 64;

/// Rows written and windows done so far, over every measurement.
fn totals(tracker: &Tracker, plans: &BTreeMap<String, Plan>) -> (u64, u64) {
    plans.keys().filter_map(|name| tracker.progress(name)).fold(
        (0, 0),
        |(rows, windows), progress| {
            (
                rows + progress.rows_written,
                windows + progress.windows_done,
            )
        },
    )
}

/// What this run of the coordinator has seen, for its status.
struct ThisRun<'a> {
    republished: &'a HashMap<String, u64>,
    retrying: &'a RetryBoard,
    /// Rows written and windows done before this run.
    baseline: (u64, u64),
    started: Instant,
}

fn job_status(
    job: &str,
    tracker: &Tracker,
    plans: &BTreeMap<String, Plan>,
    this_run: &ThisRun<'_>,
    window_ns: i64,
) -> JobStatus {
    let ThisRun {
        republished,
        retrying: retry_board,
        baseline: (rows_before, windows_before),
        started,
    } = *this_run;
    let now = now_ns();
    let elapsed = started.elapsed();
    let continuous = plans.values().any(|plan| plan.end_ns.is_none());
    let measurements: BTreeMap<String, MeasurementStatus> = plans
        .iter()
        .filter_map(|(name, plan)| {
            let progress = tracker.progress(name)?.clone();
            let watermark = progress.watermark_ns;
            Some((
                name.clone(),
                MeasurementStatus {
                    consistent_up_to: influx2td_config::format_time(watermark),
                    windows_left: plan
                        .end_ns
                        .map(|end| windows_between(watermark, end, window_ns)),
                    lag_seconds: plan
                        .end_ns
                        .is_none()
                        .then(|| now.saturating_sub(watermark) as f64 / 1e9),
                    republished: republished.get(name).copied().unwrap_or_default(),
                    progress,
                },
            ))
        })
        .collect();
    let (rows, windows) = totals(tracker, plans);
    let elapsed_seconds = elapsed.as_secs_f64();
    let windows_done_this_run = windows.saturating_sub(windows_before);
    let windows_left = (!continuous).then(|| {
        measurements
            .values()
            .filter_map(|measurement| measurement.windows_left)
            .sum()
    });
    JobStatus {
        job: job.to_owned(),
        running: true,
        complete: false,
        continuous,
        elapsed_seconds,
        rows_written_this_run: rows.saturating_sub(rows_before),
        rows_per_second: rows.saturating_sub(rows_before) as f64 / elapsed_seconds.max(0.001),
        windows_done_this_run,
        windows_left,
        windows_in_flight: tracker.outstanding(),
        eta_seconds: windows_left
            .and_then(|left| eta_seconds(left, windows_done_this_run, elapsed_seconds)),
        rows_dead_lettered: measurements
            .values()
            .map(|measurement| measurement.progress.rows_dead_lettered)
            .sum(),
        windows_failed: measurements
            .values()
            .map(|measurement| measurement.progress.failed.len())
            .sum(),
        waiting: None,
        retrying: retry_board.list(),
        retrying_count: retry_board.len(),
        measurements,
    }
}

fn log_progress(status: &JobStatus) {
    tracing::info!(
        measurements = status.measurements.len(),
        windows_done = status.windows_done_this_run,
        windows_left = status.windows_left,
        windows_in_flight = status.windows_in_flight,
        rows_written = status.rows_written_this_run,
        rows_per_second = status.rows_per_second as u64,
        eta_seconds = status.eta_seconds.map(|eta| eta as u64),
        rows_dead_lettered = status.rows_dead_lettered,
        windows_failed = status.windows_failed,
        retrying = status.retrying_count,
        "progress"
    );
    // What keeps failing is news until it stops: one line each, at every progress report.
    for retrying in &status.retrying {
        tracing::warn!(
            measurement = retrying.measurement,
            window_start = retrying.window_start,
            role = retrying.role,
            batch = retrying.batch,
            tries = retrying.tries,
            since = retrying.since,
            retry_limit = retrying.retry_limit,
            last_error = retrying.last_error,
            "still retrying"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_job_begin() {
        assert_eq!(align_down(25, 0, 10), 20);
        assert_eq!(align_down(5, 3, 10), 3);
        assert_eq!(align_down(-5, 0, 10), -10);
        assert_eq!(align_up(20, 0, 10), 20);
        assert_eq!(align_up(21, 0, 10), 30);
        assert_eq!(align_up(-9, 0, 10), 0);
    }

    /// Measurements `names` from 0 to `end`, `dense` having read a window of 10,000 rows, and
    /// `late` one window further on.
    fn grouping(names: &[String], end: i64) -> (Tracker, BTreeMap<String, Plan>) {
        let mut tracker = Tracker::default();
        let mut plans = BTreeMap::new();
        for name in names {
            tracker.resume(name, Progress::default());
            plans.insert(
                name.clone(),
                Plan {
                    end_ns: Some(end),
                    revision: None,
                    persisted: Progress::default(),
                    in_doubt: Vec::new(),
                },
            );
        }
        tracker.published("dense", 0, 10, 1);
        tracker.acked(&pb::WindowDone {
            measurement: "dense".into(),
            window_start_ns: 0,
            window_end_ns: 10,
            attempt: 1,
            read: 1,
            rows_written: 10_000,
            outcome: pb::Outcome::Written as i32,
            totals: Some(pb::WindowTotals {
                batches: 1,
                rows: 10_000,
            }),
            ..Default::default()
        });
        tracker.skip_to("dense", 0);
        tracker.published("late", 0, 10, 1);
        (tracker, plans)
    }

    #[test]
    fn sparse_measurements_due_for_the_same_window_are_grouped_within_the_limits() {
        let mut names: Vec<String> = ["dense", "late"].map(str::to_owned).to_vec();
        names.extend((0..100).map(|n| format!("m{n:03}")));
        names.push("x".repeat(6_000));
        let (tracker, plans) = grouping(&names, 100);
        let due = Due {
            tracker: &tracker,
            plans: &plans,
            window: 10,
            now_limit: i64::MAX,
        };
        let mut settings = CoordinatorSettings::new(0, Some(100), Duration::from_nanos(10));
        settings.max_group = 64;
        settings.max_outstanding = 1_000;
        assert_eq!(due.next("m000"), Some((0, 10)));
        assert_eq!(due.next("late"), Some((10, 20)));
        let group = due.read_with("m000", (0, 10), &names, 0, &settings);
        assert_eq!(group.len(), 6_144 / (4 + STATEMENT_BYTES), "{group:?}");
        assert_eq!(group[0], "m000");
        assert!(
            group.iter().all(|name| name.starts_with('m')),
            "neither the dense one, nor one due for another window, nor a name too long: {group:?}"
        );
        let mut unique = group.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), group.len());
        settings.max_group = 8;
        assert_eq!(
            due.read_with("m000", (0, 10), &names, 0, &settings).len(),
            8
        );
        settings.max_outstanding = 4;
        assert_eq!(
            due.read_with("m000", (0, 10), &names, 0, &settings).len(),
            8,
            "a read together counts as one read in flight"
        );
        assert_eq!(
            due.read_with("dense", (0, 10), &names, 0, &settings),
            ["dense"],
            "a dense measurement is read on its own"
        );
        settings.max_group = 1;
        assert_eq!(
            due.read_with("m000", (0, 10), &names, 0, &settings),
            ["m000"]
        );
    }
}

#[cfg(test)]
mod lease_tests {
    use super::*;
    use influx2td_bus::StateFile;

    /// A renewal that timed out may have been stored after all (NATS without quorum answers
    /// late): the lease is still this coordinator's and renews on. One written by another
    /// coordinator is lost.
    #[tokio::test]
    async fn a_renewal_stored_after_a_failure_is_adopted_and_another_owner_is_not() {
        let directory = tempfile::tempdir().unwrap();
        let store = StateFile::open(directory.path().join("state")).unwrap();
        let ttl = Duration::from_secs(30);
        let mut lease = LeaseHolder::acquire(store.clone(), "job", ttl, false)
            .await
            .unwrap();
        lease.renew().await.unwrap();
        // Renewals that failed (no answer), the first of them stored after all: the holder knows
        // an older revision than the store's.
        let owner = lease.owner.clone();
        let lease_value = |expires_unix_ms| {
            serde_json::to_string(&Lease {
                owner: owner.clone(),
                expires_unix_ms,
            })
            .unwrap()
        };
        let late = lease_value(unix_ms() + ttl.as_millis());
        lease.in_doubt = vec![late.clone(), lease_value(unix_ms() + ttl.as_millis() + 1)];
        let stored = store
            .compare_and_set(LEASE_KEY, late, Some(lease.revision))
            .await
            .unwrap();
        lease.renew().await.unwrap();
        assert!(lease.revision > stored);
        assert!(lease.in_doubt.is_empty());
        // The same owner's name, but not a lease this holder wrote (another holder named alike):
        // lost.
        let alike = lease_value(1);
        store
            .compare_and_set(LEASE_KEY, alike, Some(lease.revision))
            .await
            .unwrap();
        let revision = lease.revision;
        assert!(matches!(
            lease.renew().await,
            Err(CoordinatorError::LeaseLost { .. })
        ));
        lease.revision = store.get(LEASE_KEY).await.unwrap().unwrap().revision;
        assert!(lease.revision > revision);
        // Another coordinator's lease: lost, naming it.
        let theirs = serde_json::to_string(&Lease {
            owner: "pid-1-2".into(),
            expires_unix_ms: unix_ms() + ttl.as_millis(),
        })
        .unwrap();
        store
            .compare_and_set(LEASE_KEY, theirs, Some(lease.revision))
            .await
            .unwrap();
        match lease.renew().await {
            Err(CoordinatorError::LeaseLost { owner, .. }) => assert_eq!(owner, "pid-1-2"),
            other => panic!("{other:?}"),
        }
    }
}
