//! The in-process bus for a single machine: the same queue semantics as JetStream (dedup ids,
//! explicit acks, nak delays, redelivery after `ack_wait`, bounded capacity) held in memory, and
//! checkpoints in a [`StateFile`]. Queue contents do not survive the process; checkpoints do,
//! and the coordinator re-publishes whatever was not written.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

use crate::state_file::StateFile;
use crate::{
    Bus, BusError, Delivery, Headers, Names, OutgoingMessage, Payload, Published, QueueConfig,
    QueueDepth, Settle, StreamKind, WorkQueue,
};

/// In-process bus. Clones share the same queues.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    names: Names,
    state_dir: PathBuf,
    queues: Arc<Mutex<HashMap<StreamKind, MemoryQueue>>>,
    checkpoints: Arc<OnceCell<StateFile>>,
}

impl MemoryBus {
    /// `state_dir` holds the checkpoint file; it is created when missing.
    pub fn new(names: Names, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            names,
            state_dir: state_dir.into(),
            queues: Arc::default(),
            checkpoints: Arc::default(),
        }
    }
}

impl MemoryBus {
    /// Where the checkpoints of a state directory are.
    pub fn state_file(state_dir: &std::path::Path) -> PathBuf {
        state_dir.join("checkpoints.json")
    }
}

impl Bus for MemoryBus {
    type Queue = MemoryQueue;
    type Checkpoints = StateFile;

    fn names(&self) -> &Names {
        &self.names
    }

    async fn queue(&self, config: QueueConfig) -> Result<MemoryQueue, BusError> {
        let mut queues = lock(&self.queues);
        let ack_wait = config.ack_wait;
        let queue = queues.entry(config.kind).or_insert_with(|| MemoryQueue {
            inner: Arc::new(QueueInner {
                ack_wait: Mutex::new(ack_wait),
                name: self.names.stream(config.kind),
                subject_prefix: self
                    .names
                    .subject_filter(config.kind)
                    .trim_end_matches('>')
                    .to_owned(),
                config,
                state: Mutex::default(),
                changed: Notify::new(),
            }),
        });
        *lock(&queue.inner.ack_wait) = ack_wait;
        Ok(queue.clone())
    }

    async fn checkpoints(&self) -> Result<StateFile, BusError> {
        let path = Self::state_file(&self.state_dir);
        self.checkpoints
            .get_or_try_init(|| async { StateFile::open(path) })
            .await
            .cloned()
    }
}

/// One in-process work queue.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    inner: Arc<QueueInner>,
}

#[derive(Debug)]
struct QueueInner {
    name: String,
    /// `<prefix>.<job>.<kind>.`: every subject this queue takes starts with it.
    subject_prefix: String,
    config: QueueConfig,
    /// The last opener's `ack_wait`, like a JetStream consumer updated by the last role.
    ack_wait: Mutex<Duration>,
    state: Mutex<QueueState>,
    /// Woken on every change a waiting consumer may care about.
    changed: Notify,
}

#[derive(Debug)]
struct Stored {
    subject: String,
    headers: Headers,
    payload: Payload,
    /// An object payload's bytes, once someone asked for them.
    encoded: OnceLock<Bytes>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    message: Arc<Stored>,
    /// Deliveries so far.
    delivered: u64,
}

#[derive(Debug)]
struct InFlight {
    entry: Entry,
    deadline: Instant,
    /// Tells this delivery from a later redelivery of the same message.
    token: u64,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<Entry>,
    /// Nak'd messages, keyed by the instant they become ready again.
    delayed: BTreeMap<(Instant, u64), Entry>,
    in_flight: HashMap<u64, InFlight>,
    /// Message ids seen within the duplicate window, oldest first.
    recent_ids: VecDeque<(Instant, String)>,
    recent_id_set: HashMap<String, Instant>,
    stored_messages: u64,
    stored_bytes: u64,
    next_seq: u64,
    next_token: u64,
}

impl QueueState {
    /// Moves messages whose nak delay or ack deadline passed back to the front of the queue.
    fn requeue_due(&mut self, now: Instant) {
        let mut expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, in_flight)| in_flight.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        expired.sort_unstable_by(|a, b| b.cmp(a));
        for seq in expired {
            if let Some(in_flight) = self.in_flight.remove(&seq) {
                self.ready.push_front(in_flight.entry);
            }
        }
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push_back(entry.remove());
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let in_flight = self
            .in_flight
            .values()
            .map(|in_flight| in_flight.deadline)
            .min();
        let delayed = self.delayed.keys().next().map(|(instant, _)| *instant);
        in_flight.into_iter().chain(delayed).min()
    }

    fn forget_old_ids(&mut self, now: Instant, window: Duration) {
        while let Some((seen, _)) = self.recent_ids.front() {
            if now.duration_since(*seen) < window {
                break;
            }
            if let Some((seen, id)) = self.recent_ids.pop_front()
                && self.recent_id_set.get(&id) == Some(&seen)
            {
                self.recent_id_set.remove(&id);
            }
        }
    }

    fn remove(&mut self, entry: &Entry) {
        self.stored_messages -= 1;
        self.stored_bytes -= entry.message.payload.size() as u64;
    }
}

impl WorkQueue for MemoryQueue {
    type Delivery = MemoryDelivery;

    async fn try_publish(&self, message: OutgoingMessage) -> Result<Published, BusError> {
        let config = &self.inner.config;
        let now = Instant::now();
        {
            let mut state = lock(&self.inner.state);
            state.forget_old_ids(now, config.duplicate_window);
            if state.recent_id_set.contains_key(&message.msg_id) {
                return Ok(Published::Duplicate);
            }
            // Like JetStream, which has no stream for a subject outside the filter.
            if !message.subject.starts_with(&self.inner.subject_prefix) {
                return Err(BusError::Nats {
                    operation: "publish",
                    target: message.subject,
                    detail: format!(
                        "no stream found for given subject (queue {} takes {}>)",
                        self.inner.name, self.inner.subject_prefix
                    ),
                });
            }
            let bytes = message.payload.size() as u64;
            if bytes > config.max_bytes {
                return Err(BusError::TooLarge {
                    subject: message.subject,
                    detail: format!("{bytes} bytes, the queue holds {} bytes", config.max_bytes),
                });
            }
            if state.stored_messages + 1 > config.max_messages {
                return Err(self.full(format!("{} messages", state.stored_messages)));
            }
            if state.stored_bytes + bytes > config.max_bytes {
                return Err(self.full(format!("{} bytes", state.stored_bytes)));
            }
            state.recent_id_set.insert(message.msg_id.clone(), now);
            state.recent_ids.push_back((now, message.msg_id));
            state.stored_messages += 1;
            state.stored_bytes += bytes;
            let seq = state.next_seq;
            state.next_seq += 1;
            state.ready.push_back(Entry {
                seq,
                message: Arc::new(Stored {
                    subject: message.subject,
                    headers: message.headers,
                    payload: message.payload,
                    encoded: OnceLock::new(),
                }),
                delivered: 0,
            });
        }
        self.inner.changed.notify_waiters();
        Ok(Published::Stored)
    }

    async fn depth(&self) -> Result<QueueDepth, BusError> {
        let state = lock(&self.inner.state);
        Ok(QueueDepth {
            messages: state.stored_messages,
            unsettled: state.in_flight.len() as u64,
        })
    }

    async fn pull(&self, max: usize, wait: Duration) -> Result<Vec<MemoryDelivery>, BusError> {
        let give_up = Instant::now() + wait;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change between the look and the wait is not missed.
            changed.as_mut().enable();
            let next_deadline = {
                let mut state = lock(&self.inner.state);
                let now = Instant::now();
                state.requeue_due(now);
                let deliveries = self.take(&mut state, max, now);
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
                state.next_deadline()
            };
            let wake = next_deadline.map_or(give_up, |deadline| deadline.min(give_up));
            if Instant::now() >= give_up {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout_at(wake, changed).await;
        }
    }
}

impl MemoryQueue {
    fn full(&self, detail: String) -> BusError {
        BusError::Full {
            queue: self.inner.name.clone(),
            detail: format!("holding {detail}"),
        }
    }

    fn take(&self, state: &mut QueueState, max: usize, now: Instant) -> Vec<MemoryDelivery> {
        let room =
            (self.inner.config.max_ack_pending as usize).saturating_sub(state.in_flight.len());
        let mut deliveries = Vec::new();
        while deliveries.len() < max.min(room) {
            let Some(mut entry) = state.ready.pop_front() else {
                break;
            };
            entry.delivered += 1;
            let token = state.next_token;
            state.next_token += 1;
            deliveries.push(MemoryDelivery {
                queue: self.inner.clone(),
                seq: entry.seq,
                token,
                delivered: entry.delivered,
                message: entry.message.clone(),
            });
            state.in_flight.insert(
                entry.seq,
                InFlight {
                    entry,
                    deadline: now + *lock(&self.inner.ack_wait),
                    token,
                },
            );
        }
        deliveries
    }
}

/// A message delivered by a [`MemoryQueue`].
#[derive(Debug)]
pub struct MemoryDelivery {
    queue: Arc<QueueInner>,
    seq: u64,
    token: u64,
    delivered: u64,
    message: Arc<Stored>,
}

impl Delivery for MemoryDelivery {
    fn subject(&self) -> &str {
        &self.message.subject
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.message
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn payload(&self) -> &Bytes {
        match &self.message.payload {
            Payload::Bytes(bytes) => bytes,
            object => self.message.encoded.get_or_init(|| object.to_bytes()),
        }
    }

    fn object<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.message.payload.downcast()
    }

    fn size(&self) -> usize {
        self.message.payload.size()
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    async fn in_progress(&self) -> Result<(), BusError> {
        let mut state = lock(&self.queue.state);
        if let Some(in_flight) = state.in_flight.get_mut(&self.seq)
            && in_flight.token == self.token
        {
            in_flight.deadline = Instant::now() + *lock(&self.queue.ack_wait);
        }
        Ok(())
    }

    async fn settle(self, settle: Settle) -> Result<(), BusError> {
        {
            let mut state = lock(&self.queue.state);
            // A delivery whose ack_wait ran out was handed to someone else; that one settles it.
            let current = state
                .in_flight
                .get(&self.seq)
                .is_some_and(|in_flight| in_flight.token == self.token);
            if !current {
                return Ok(());
            }
            let Some(in_flight) = state.in_flight.remove(&self.seq) else {
                return Ok(());
            };
            match settle {
                Settle::Ack | Settle::Terminate { .. } => state.remove(&in_flight.entry),
                Settle::Nak { delay } => {
                    let ready_at = Instant::now() + delay;
                    state.delayed.insert((ready_at, self.seq), in_flight.entry);
                }
            }
        }
        self.queue.changed.notify_waiters();
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent at every await-free step, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
