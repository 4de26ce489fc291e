//! The message bus every role talks through: work queues with explicit acknowledgement and a
//! checkpoint store with compare-and-set, over NATS JetStream ([`nats`]) or in-process
//! ([`memory`], with checkpoints in a [`state_file`]). Both pass one conformance suite.

pub mod memory;
pub mod messages;
pub mod nats;
pub mod state_file;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

pub use influx2td_proto::names::{Names, StreamKind};
pub use memory::MemoryBus;
pub use messages::{Retrying, retrying_message, window_headers, work_item_message};
pub use nats::{NatsAuth, NatsBus, NatsConnect, Placement, StoredMessage, WhichMessage};
pub use state_file::StateFile;

/// Header name/value pairs, in order.
pub type Headers = Vec<(String, String)>;

/// A message to publish.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub subject: String,
    /// De-duplication id: a second message with the same id within the queue's
    /// `duplicate_window` is dropped and reported as [`Published::Duplicate`].
    pub msg_id: String,
    pub headers: Headers,
    pub payload: Payload,
}

/// A message's body: bytes, or an object not yet encoded. The in-process bus hands an object
/// to its consumer as it is (a reader's row batch reaches the writer of the same process
/// without being encoded and decoded again); NATS encodes it when it is published.
#[derive(Clone)]
pub enum Payload {
    Bytes(Bytes),
    Object {
        object: Arc<dyn Encode>,
        /// At least the encoded length: what the object counts against a queue's capacity.
        size: usize,
    },
}

/// An object that can travel as a [`Payload`]: any protobuf message.
pub trait Encode: Any + Send + Sync {
    fn encode(&self) -> Bytes;
}

impl<T: prost::Message + Any> Encode for T {
    fn encode(&self) -> Bytes {
        self.encode_to_vec().into()
    }
}

impl Payload {
    /// `object` unencoded, `size` at least its encoded length.
    pub fn object<T: Encode>(object: T, size: usize) -> Self {
        Self::Object {
            object: Arc::new(object),
            size,
        }
    }

    /// The bytes (for an object: an upper bound) the payload counts against a queue's capacity.
    pub fn size(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Object { size, .. } => *size,
        }
    }

    /// The encoded bytes (an object is encoded here).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Self::Bytes(bytes) => bytes.clone(),
            Self::Object { object, .. } => object.encode(),
        }
    }

    /// The object, when this payload is one of type `T`.
    pub fn downcast<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        match self {
            Self::Bytes(_) => None,
            Self::Object { object, .. } => {
                let object: Arc<dyn Any + Send + Sync> = object.clone();
                object.downcast().ok()
            }
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(bytes) => formatter.debug_tuple("Bytes").field(bytes).finish(),
            Self::Object { size, .. } => formatter
                .debug_struct("Object")
                .field("size", size)
                .finish_non_exhaustive(),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Self::Bytes(bytes)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes.into())
    }
}

impl From<&'static [u8]> for Payload {
    fn from(bytes: &'static [u8]) -> Self {
        Self::Bytes(Bytes::from_static(bytes))
    }
}

impl From<&'static str> for Payload {
    fn from(text: &'static str) -> Self {
        Self::Bytes(Bytes::from_static(text.as_bytes()))
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Self {
        Self::Bytes(text.into())
    }
}

/// What became of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Stored,
    /// A message with the same id was already stored; nothing was added.
    Duplicate,
}

/// How a consumer settles a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Done: the message leaves the queue.
    Ack,
    /// Not now: deliver it again after `delay`.
    Nak { delay: Duration },
    /// Never: remove it without success; the caller reports `reason` (e.g. to the coordinator).
    Terminate { reason: String },
}

/// Whether retrying an operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Backoff,
    Never,
}

#[derive(Debug, Error)]
pub enum BusError {
    #[error("queue {queue} is full ({detail})")]
    Full { queue: String, detail: String },
    #[error(
        "checkpoint {key:?} was changed by someone else (expected revision {expected:?}, found {found:?})"
    )]
    Conflict {
        key: String,
        expected: Option<u64>,
        found: Option<u64>,
    },
    #[error("message to {subject} is too large: {detail}")]
    TooLarge { subject: String, detail: String },
    #[error("failed to connect to NATS at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("{operation} on {target} failed: {}", nats::explain(detail))]
    Nats {
        operation: &'static str,
        target: String,
        detail: String,
    },
    #[error("state file {path}: {detail}")]
    StateFile { path: String, detail: String },
}

impl BusError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Full { .. } | Self::Nats { .. } | Self::Connect { .. } => Retry::Backoff,
            Self::Conflict { .. } | Self::TooLarge { .. } | Self::StateFile { .. } => Retry::Never,
        }
    }
}

/// The byte capacity a queue of `kind` gets by default. Windows and acknowledgements are a few
/// hundred bytes each and the coordinator keeps at most a few hundred windows out, so their
/// queues stay small; row batches wait for writers in 128 MiB at most; dead letters keep whole
/// batches until someone replays them.
pub fn default_max_bytes(kind: StreamKind) -> u64 {
    match kind {
        StreamKind::Work | StreamKind::Done => 64 << 20,
        StreamKind::Data => 128 << 20,
        StreamKind::DeadLetter => 256 << 20,
    }
}

/// The JetStream file storage one job's streams reserve: 512 MiB.
pub const JOB_STREAM_BYTES: u64 = (64 << 20) + (128 << 20) + (64 << 20) + (256 << 20);

/// Limits and timings of one queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub kind: StreamKind,
    /// A delivered message not settled within this time is delivered again.
    pub ack_wait: Duration,
    /// Capacity in messages; a full queue refuses publishers until consumers catch up.
    pub max_messages: u64,
    /// Capacity in bytes of payload.
    pub max_bytes: u64,
    /// At most this many delivered, unsettled messages across all consumers of the queue.
    pub max_ack_pending: u64,
    /// How long a message id is remembered for de-duplication.
    pub duplicate_window: Duration,
}

impl QueueConfig {
    /// Defaults that suit the role that drains `kind`. Row batches are bounded to 128 MiB, so
    /// that the in-process bus stays small and readers wait for writers instead of buffering.
    /// JetStream reserves each stream's `max_bytes` when it is created, so a job needs
    /// [`JOB_STREAM_BYTES`] of its file storage.
    pub fn new(kind: StreamKind) -> Self {
        Self {
            kind,
            ack_wait: Duration::from_secs(60),
            max_messages: 100_000,
            max_bytes: default_max_bytes(kind),
            max_ack_pending: 1_000,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// A work queue: many publishers, many competing consumers sharing one durable position.
pub trait WorkQueue: Clone + Send + Sync + 'static {
    type Delivery: Delivery;

    /// Publishes once: [`BusError::Full`] when the queue has no room.
    fn try_publish(
        &self,
        message: OutgoingMessage,
    ) -> impl Future<Output = Result<Published, BusError>> + Send;

    /// Publishes, waiting while the queue is full: the backpressure that keeps a fast producer
    /// from outrunning its consumers. Other errors are returned at once.
    fn publish(
        &self,
        message: OutgoingMessage,
    ) -> impl Future<Output = Result<Published, BusError>> + Send {
        async move {
            let mut pause = Duration::from_millis(5);
            loop {
                match self.try_publish(message.clone()).await {
                    Err(BusError::Full { queue, detail }) => {
                        tracing::debug!(
                            queue,
                            detail,
                            pause_ms = pause.as_millis() as u64,
                            "queue full, waiting"
                        );
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                    other => return other,
                }
            }
        }
    }

    /// How much the queue holds: for status, metrics and tests.
    fn depth(&self) -> impl Future<Output = Result<QueueDepth, BusError>> + Send;

    /// Waits up to `wait` for messages; returns at most `max` (possibly none).
    fn pull(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Delivery>, BusError>> + Send;
}

/// What a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages stored and not yet acknowledged (delivered or not).
    pub messages: u64,
    /// Of those, delivered and not yet settled.
    pub unsettled: u64,
}

/// One delivered message. Dropping it unsettled gets it delivered again after `ack_wait`.
pub trait Delivery: Send + Sync + 'static {
    fn subject(&self) -> &str;
    fn header(&self, name: &str) -> Option<&str>;
    /// The encoded payload (an object the in-process bus carried is encoded on first use).
    fn payload(&self) -> &Bytes;
    /// The payload's object, when the transport carried it unencoded and it is a `T`: then
    /// [`Delivery::payload`] need not be decoded.
    fn object<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        None
    }
    /// The payload's size in bytes (for an unencoded object: an upper bound).
    fn size(&self) -> usize {
        self.payload().len()
    }
    /// 1 on the first delivery, 2 on the first redelivery, and so on.
    fn delivered(&self) -> u64;
    /// Still working on it: restarts the `ack_wait` clock.
    fn in_progress(&self) -> impl Future<Output = Result<(), BusError>> + Send;
    fn settle(self, settle: Settle) -> impl Future<Output = Result<(), BusError>> + Send;
}

/// A stored value and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: String,
    pub revision: u64,
}

/// Small durable values (checkpoints) updated with compare-and-set.
pub trait CheckpointStore: Clone + Send + Sync + 'static {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Versioned>, BusError>> + Send;

    /// Writes `value` if the key is still at `expected` (`None`: the key must not exist);
    /// returns the new revision, or [`BusError::Conflict`].
    fn compare_and_set(
        &self,
        key: &str,
        value: String,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Every key, sorted.
    fn keys(&self) -> impl Future<Output = Result<Vec<String>, BusError>> + Send;

    /// Several compare-and-sets, `(key, value, expected)` each; returns the new revisions in
    /// order. The state file checks them all and writes once (all or none); the default, for
    /// stores without multi-key writes, applies them one by one and stops at the first error.
    fn compare_and_set_many(
        &self,
        updates: Vec<(String, String, Option<u64>)>,
    ) -> impl Future<Output = Result<Vec<u64>, BusError>> + Send {
        async move {
            let mut revisions = Vec::with_capacity(updates.len());
            for (key, value, expected) in updates {
                revisions.push(self.compare_and_set(&key, value, expected).await?);
            }
            Ok(revisions)
        }
    }
}

/// Retries `operation` while it fails in a way retrying can fix (a bus restarting), with growing
/// pauses and a warning each time; returns its result, or the first error retrying cannot fix.
pub async fn retrying<T, F, Fut>(what: &str, operation: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    retrying_and(what, |_| (), operation).await
}

/// An error that says whether waiting and trying again can heal it (a bus restarting, a
/// cluster without quorum), for [`retrying_and`].
pub trait Transient: std::fmt::Display {
    fn transient(&self) -> bool;
}

impl Transient for BusError {
    fn transient(&self) -> bool {
        self.retry() == Retry::Backoff
    }
}

/// [`retrying`], telling `waiting` each time why it waits (`cannot <what> yet: <error>`), so
/// that a status page shows it; for any error that knows whether it is [`Transient`].
pub async fn retrying_and<T, E, F, Fut>(
    what: &str,
    mut waiting: impl FnMut(String),
    mut operation: F,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pause = Duration::from_millis(200);
    loop {
        match operation().await {
            Err(error) if error.transient() => {
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "cannot {what} yet, retrying");
                waiting(format!("cannot {what} yet: {error}"));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Opens the queues of `configs` in order, each [`retrying_and`] while the bus is away or
/// refuses (telling `waiting` why); the first to open a stream creates its consumer with the
/// settings given here.
pub async fn open_queues<B: Bus, const N: usize>(
    bus: &B,
    configs: [QueueConfig; N],
    mut waiting: impl FnMut(String),
) -> Result<[B::Queue; N], BusError> {
    let mut queues = Vec::with_capacity(N);
    for config in configs {
        let queue =
            retrying_and("open a queue", &mut waiting, || bus.queue(config.clone())).await?;
        queues.push(queue);
    }
    Ok(queues
        .try_into()
        .unwrap_or_else(|_| unreachable!("one queue per config")))
}

/// Runs `work` unless `shutdown` completes first (then `None`): a role still retrying its
/// start-up stops when asked to instead of holding on until the bus answers.
pub async fn unless_stopped<T>(
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = shutdown.as_mut() => None,
    }
}

/// A transport: opens the job's queues and its checkpoint store.
pub trait Bus: Clone + Send + Sync + 'static {
    type Queue: WorkQueue;
    type Checkpoints: CheckpointStore;

    fn names(&self) -> &Names;

    fn queue(
        &self,
        config: QueueConfig,
    ) -> impl Future<Output = Result<Self::Queue, BusError>> + Send;

    fn checkpoints(&self) -> impl Future<Output = Result<Self::Checkpoints, BusError>> + Send;

    /// Whether the bus answers now (for readiness probes); the reason when it does not.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

/// Runs a role's consume loop: pulls from `queue` and handles each delivery in its own task,
/// with at most `limit()` in flight, until `shutdown` completes; deliveries in flight then get
/// `grace` to finish, and the rest are abandoned unsettled (so they are delivered again).
pub async fn consume<Q, H, Fut>(
    queue: &Q,
    what: &'static str,
    limit: impl Fn() -> usize,
    handle: H,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    Q: WorkQueue,
    H: Fn(Q::Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    consume_pulls(
        queue,
        what,
        limit,
        |deliveries| deliveries.into_iter().map(&handle).collect(),
        shutdown,
        grace,
    )
    .await;
}

/// [`consume`], but `plan` gets every delivery of one pull at once and turns them into the
/// tasks to run (one per delivery, or one for several that are better handled together); at
/// most `limit()` tasks are in flight, and a pull never asks for more deliveries than tasks
/// may still start.
pub async fn consume_pulls<Q, P, Fut>(
    queue: &Q,
    what: &'static str,
    limit: impl Fn() -> usize,
    plan: P,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    Q: WorkQueue,
    P: Fn(Vec<Q::Delivery>) -> Vec<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut in_flight = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = limit().max(1).saturating_sub(in_flight.len());
        if free == 0 {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = in_flight.join_next() => continue,
            }
        }
        let pulled = tokio::select! {
            _ = &mut shutdown => break,
            pulled = queue.pull(free, Duration::from_secs(1)) => pulled,
        };
        match pulled {
            Ok(deliveries) if deliveries.is_empty() => {}
            Ok(deliveries) => {
                for task in plan(deliveries) {
                    in_flight.spawn(task);
                }
            }
            Err(error) => {
                tracing::warn!(%error, what, "cannot pull, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    while in_flight.try_join_next().is_some() {}
    tracing::info!(in_flight = in_flight.len(), what, "stopping");
    let drained = tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = in_flight.len(),
            what,
            "left in flight at shutdown, to be delivered again"
        );
        in_flight.abort_all();
    }
}
