//! One conformance suite for both transports: every case runs against the in-process bus and
//! against a real nats-server started by the test harness.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use influx2td_bus::{
    Bus, BusError, CheckpointStore, Delivery, MemoryBus, Names, NatsBus, NatsConnect,
    OutgoingMessage, Payload, Published, QueueConfig, QueueDepth, Settle, StreamKind, WorkQueue,
};
use influx2td_proto::{Message, pb};
use influx2td_testkit::NatsServer;

trait Fixture {
    type B: Bus;
    /// A new client of the same bus (for NATS: a new connection).
    async fn bus(&self) -> Self::B;
    /// Restarts the bus as a crash would: a new process (NATS) or a new bus instance on the same
    /// state directory (in-process). Clients from before must have been dropped.
    async fn restart(&mut self);
}

fn names() -> Names {
    Names::new("influx2td", "conformance").unwrap()
}

struct MemoryFixture {
    state: tempfile::TempDir,
    bus: MemoryBus,
}

impl MemoryFixture {
    fn new() -> Self {
        let state = tempfile::tempdir().unwrap();
        let bus = MemoryBus::new(names(), state.path());
        Self { state, bus }
    }
}

impl Fixture for MemoryFixture {
    type B = MemoryBus;
    async fn bus(&self) -> MemoryBus {
        self.bus.clone()
    }
    async fn restart(&mut self) {
        self.bus = MemoryBus::new(names(), self.state.path());
    }
}

struct NatsFixture {
    server: NatsServer,
}

impl NatsFixture {
    fn new() -> Option<Self> {
        Some(Self {
            server: NatsServer::start()?,
        })
    }
}

impl Fixture for NatsFixture {
    type B = NatsBus;
    async fn bus(&self) -> NatsBus {
        let connect = NatsConnect::plain(self.server.url(), "conformance");
        NatsBus::connect(&connect, names()).await.unwrap()
    }
    async fn restart(&mut self) {
        self.server.stop();
        self.server.start_again();
    }
}

fn config(kind: StreamKind) -> QueueConfig {
    QueueConfig {
        ack_wait: Duration::from_secs(1),
        ..QueueConfig::new(kind)
    }
}

fn message(kind: StreamKind, measurement: &str, id: &str, payload: &str) -> OutgoingMessage {
    OutgoingMessage {
        subject: names().subject(kind, measurement),
        msg_id: id.to_owned(),
        headers: vec![("Influx2td-Seq".to_owned(), id.to_owned())],
        payload: Bytes::from(payload.to_owned()).into(),
    }
}

fn payloads<D: Delivery>(deliveries: &[D]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8(d.payload().to_vec()).unwrap())
        .collect()
}

async fn ack_all<D: Delivery>(deliveries: Vec<D>) {
    for delivery in deliveries {
        delivery.settle(Settle::Ack).await.unwrap();
    }
}

async fn publish_pull_ack<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    for (index, measurement) in ["cpu", "disk io", "mem"].iter().enumerate() {
        let published = queue
            .publish(message(
                StreamKind::Work,
                measurement,
                &format!("id-{index}"),
                &format!("payload {index}"),
            ))
            .await
            .unwrap();
        assert_eq!(published, Published::Stored);
    }
    let deliveries = queue.pull(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        payloads(&deliveries),
        ["payload 0", "payload 1", "payload 2"]
    );
    assert_eq!(
        deliveries[1].subject(),
        "influx2td.conformance.work.disk=20io"
    );
    assert_eq!(deliveries[1].header("Influx2td-Seq"), Some("id-1"));
    assert_eq!(deliveries[0].delivered(), 1);
    ack_all(deliveries).await;
    assert_eq!(
        queue.depth().await.unwrap(),
        QueueDepth {
            messages: 0,
            unsettled: 0
        }
    );
    let after = queue.pull(10, Duration::from_millis(1500)).await.unwrap();
    assert!(
        after.is_empty(),
        "acked messages came back: {:?}",
        payloads(&after)
    );
}

async fn dedup_drops_a_republished_id<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Data))
        .await
        .unwrap();
    assert_eq!(
        queue
            .publish(message(StreamKind::Data, "cpu", "job/cpu/0-1/0/0", "first"))
            .await
            .unwrap(),
        Published::Stored
    );
    assert_eq!(
        queue
            .publish(message(
                StreamKind::Data,
                "cpu",
                "job/cpu/0-1/0/0",
                "second"
            ))
            .await
            .unwrap(),
        Published::Duplicate
    );
    assert_eq!(
        queue
            .publish(message(
                StreamKind::Data,
                "cpu",
                "job/cpu/0-1/1/0",
                "new attempt"
            ))
            .await
            .unwrap(),
        Published::Stored
    );
    let deliveries = queue.pull(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(payloads(&deliveries), ["first", "new attempt"]);
}

async fn redelivers_when_a_consumer_dies_without_acking<F: Fixture>(fixture: &mut F) {
    {
        let first_client = fixture
            .bus()
            .await
            .queue(config(StreamKind::Work))
            .await
            .unwrap();
        first_client
            .publish(message(StreamKind::Work, "cpu", "a", "window"))
            .await
            .unwrap();
        let taken = first_client.pull(1, Duration::from_secs(2)).await.unwrap();
        assert_eq!(payloads(&taken), ["window"]);
        // The consumer dies: its delivery and connection go away unsettled.
    }
    let second_client = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    let started = Instant::now();
    let redelivered = second_client.pull(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(payloads(&redelivered), ["window"]);
    assert_eq!(redelivered[0].delivered(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "redelivered before ack_wait"
    );
}

/// The consumer follows the last opener's `ack_wait` (roles start in any order; a job's
/// settings may change between runs).
async fn reopening_with_another_ack_wait_applies_it<F: Fixture>(fixture: &mut F) {
    let bus = fixture.bus().await;
    let slow = bus
        .queue(QueueConfig {
            ack_wait: Duration::from_secs(60),
            ..QueueConfig::new(StreamKind::Work)
        })
        .await
        .unwrap();
    slow.publish(message(StreamKind::Work, "cpu", "a", "window"))
        .await
        .unwrap();
    let fast = bus.queue(config(StreamKind::Work)).await.unwrap();
    let taken = fast.pull(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(payloads(&taken), ["window"]);
    // Left unsettled: back after one second, not sixty.
    let again = fast.pull(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(payloads(&again), ["window"]);
    ack_all(again).await;
}

async fn nak_delay_is_honoured<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    queue
        .publish(message(StreamKind::Work, "cpu", "a", "retry me"))
        .await
        .unwrap();
    let delivery = queue
        .pull(1, Duration::from_secs(2))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let nak_at = Instant::now();
    delivery
        .settle(Settle::Nak {
            delay: Duration::from_millis(1500),
        })
        .await
        .unwrap();
    let early = queue.pull(1, Duration::from_millis(300)).await.unwrap();
    assert!(early.is_empty(), "delivered again before the nak delay");
    let again = queue.pull(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(payloads(&again), ["retry me"]);
    assert!(
        nak_at.elapsed() >= Duration::from_millis(1200),
        "after {:?}",
        nak_at.elapsed()
    );
    assert_eq!(again[0].delivered(), 2);
}

async fn in_progress_holds_a_message<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    let other = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    queue
        .publish(message(StreamKind::Work, "cpu", "a", "long window"))
        .await
        .unwrap();
    let delivery = queue
        .pull(1, Duration::from_secs(2))
        .await
        .unwrap()
        .pop()
        .unwrap();
    // Three ack_waits of work, with a heartbeat every 0.5 s: nobody else gets the message.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        delivery.in_progress().await.unwrap();
        assert!(other.pull(1, Duration::ZERO).await.unwrap().is_empty());
    }
    delivery.settle(Settle::Ack).await.unwrap();
    assert!(
        other
            .pull(1, Duration::from_millis(1500))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn terminate_removes_for_good<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    queue
        .publish(message(StreamKind::Work, "cpu", "a", "poison"))
        .await
        .unwrap();
    let delivery = queue
        .pull(1, Duration::from_secs(2))
        .await
        .unwrap()
        .pop()
        .unwrap();
    delivery
        .settle(Settle::Terminate {
            reason: "measurement dropped".into(),
        })
        .await
        .unwrap();
    assert!(
        queue
            .pull(1, Duration::from_millis(2000))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_full_queue_pushes_back_on_publishers<F: Fixture>(fixture: &mut F) {
    let small = QueueConfig {
        max_messages: 3,
        ..config(StreamKind::Data)
    };
    let queue = fixture.bus().await.queue(small).await.unwrap();
    for index in 0..3 {
        queue
            .publish(message(
                StreamKind::Data,
                "cpu",
                &format!("m{index}"),
                &format!("m{index}"),
            ))
            .await
            .unwrap();
    }
    let refused = queue
        .try_publish(message(StreamKind::Data, "cpu", "m3", "m3"))
        .await
        .unwrap_err();
    assert!(matches!(refused, BusError::Full { .. }), "{refused}");

    let publisher = {
        let queue = queue.clone();
        tokio::spawn(async move {
            queue
                .publish(message(StreamKind::Data, "cpu", "m3", "m3"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !publisher.is_finished(),
        "publish went through a full queue"
    );

    let first = queue.pull(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(payloads(&first), ["m0"]);
    ack_all(first).await;
    let published = tokio::time::timeout(Duration::from_secs(5), publisher)
        .await
        .expect("publisher still blocked after room was made")
        .unwrap()
        .unwrap();
    assert_eq!(published, Published::Stored);
    let rest = queue.pull(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(payloads(&rest), ["m1", "m2", "m3"]);
}

async fn max_ack_pending_bounds_unsettled_deliveries<F: Fixture>(fixture: &mut F) {
    let bounded = QueueConfig {
        max_ack_pending: 2,
        ..config(StreamKind::Work)
    };
    let queue = fixture.bus().await.queue(bounded).await.unwrap();
    for index in 0..5 {
        queue
            .publish(message(
                StreamKind::Work,
                "cpu",
                &format!("m{index}"),
                &format!("m{index}"),
            ))
            .await
            .unwrap();
    }
    let first = queue.pull(5, Duration::from_secs(2)).await.unwrap();
    assert_eq!(payloads(&first), ["m0", "m1"]);
    assert!(
        queue
            .pull(5, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    ack_all(first).await;
    let second = queue.pull(5, Duration::from_secs(2)).await.unwrap();
    assert_eq!(payloads(&second), ["m2", "m3"]);
}

async fn competing_consumers_share_the_work<F: Fixture>(fixture: &mut F) {
    let publisher = fixture
        .bus()
        .await
        .queue(config(StreamKind::Work))
        .await
        .unwrap();
    for index in 0..40 {
        publisher
            .publish(message(
                StreamKind::Work,
                "cpu",
                &format!("m{index}"),
                &format!("m{index}"),
            ))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..2 {
        let queue = fixture
            .bus()
            .await
            .queue(config(StreamKind::Work))
            .await
            .unwrap();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let deliveries = queue.pull(3, Duration::from_millis(700)).await.unwrap();
                if deliveries.is_empty() {
                    return seen;
                }
                seen.extend(payloads(&deliveries));
                ack_all(deliveries).await;
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(
        all.len(),
        40,
        "a message was delivered twice or lost: {all:?}"
    );
    assert_eq!(unique.len(), 40);
}

async fn checkpoint_compare_and_set<F: Fixture>(fixture: &mut F) {
    let store = fixture.bus().await.checkpoints().await.unwrap();
    let key = influx2td_proto::names::checkpoint_key("cpu load");
    assert_eq!(store.get(&key).await.unwrap(), None);
    let first = store
        .compare_and_set(&key, "100".into(), None)
        .await
        .unwrap();
    let conflict = store
        .compare_and_set(&key, "999".into(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, BusError::Conflict { found: Some(found), .. } if found == first),
        "{conflict}"
    );
    let second = store
        .compare_and_set(&key, "200".into(), Some(first))
        .await
        .unwrap();
    assert!(second > first);
    let stale = store
        .compare_and_set(&key, "150".into(), Some(first))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, BusError::Conflict { expected: Some(_), found: Some(found), .. } if found == second),
        "{stale}"
    );
    let current = store.get(&key).await.unwrap().unwrap();
    assert_eq!((current.value.as_str(), current.revision), ("200", second));
    store
        .compare_and_set("checkpoint.a", "1".into(), None)
        .await
        .unwrap();
    assert_eq!(
        store.keys().await.unwrap(),
        ["checkpoint.a", "checkpoint.cpu=20load"]
    );
}

async fn many_compare_and_sets_at_once<F: Fixture>(fixture: &mut F) {
    let store = fixture.bus().await.checkpoints().await.unwrap();
    let first = store
        .compare_and_set_many(vec![
            ("checkpoint.a".into(), "1".into(), None),
            ("checkpoint.b".into(), "2".into(), None),
        ])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let second = store
        .compare_and_set_many(vec![
            ("checkpoint.a".into(), "10".into(), Some(first[0])),
            ("checkpoint.b".into(), "20".into(), Some(first[1])),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get("checkpoint.a").await.unwrap().unwrap().value,
        "10"
    );
    assert_eq!(
        store.get("checkpoint.b").await.unwrap().unwrap().revision,
        second[1]
    );
    let stale = store
        .compare_and_set_many(vec![("checkpoint.a".into(), "x".into(), Some(first[0]))])
        .await
        .unwrap_err();
    assert!(matches!(stale, BusError::Conflict { .. }), "{stale}");
    assert_eq!(
        store.get("checkpoint.a").await.unwrap().unwrap().value,
        "10"
    );
}

async fn checkpoints_survive_a_restart<F: Fixture>(fixture: &mut F) {
    let revision = {
        let store = fixture.bus().await.checkpoints().await.unwrap();
        store
            .compare_and_set("checkpoint.cpu", "{\"low_watermark_ns\":42}".into(), None)
            .await
            .unwrap()
    };
    fixture.restart().await;
    let store = fixture.bus().await.checkpoints().await.unwrap();
    let restored = store.get("checkpoint.cpu").await.unwrap().unwrap();
    assert_eq!(restored.value, "{\"low_watermark_ns\":42}");
    assert_eq!(restored.revision, revision);
    let next = store
        .compare_and_set(
            "checkpoint.cpu",
            "{\"low_watermark_ns\":43}".into(),
            Some(revision),
        )
        .await
        .unwrap();
    assert!(next > revision);
}

/// A consumer waiting for work gets the first message, returns, and pulls again: messages
/// published between its two pulls must reach the second, not an abandoned request of the
/// first (NATS would deliver them there and hold them until ack_wait; this stalled writers).
async fn messages_arriving_between_pulls_are_not_lost<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(QueueConfig {
            ack_wait: Duration::from_secs(30),
            ..QueueConfig::new(StreamKind::Data)
        })
        .await
        .unwrap();
    let publisher = queue.clone();
    let publishing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for index in 0..5 {
            publisher
                .publish(message(
                    StreamKind::Data,
                    "cpu",
                    &format!("m{index}"),
                    &format!("{index}"),
                ))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while got.len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {got:?} arrived; the rest are held by an abandoned pull"
        );
        let deliveries = queue.pull(10, Duration::from_secs(2)).await.unwrap();
        got.extend(payloads(&deliveries));
        ack_all(deliveries).await;
    }
    publishing.await.unwrap();
    got.sort();
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
}

/// An object payload reaches the consumer with the same bytes either way: NATS encodes it on
/// publish, the in-process bus hands the object itself over (and encodes it only if asked).
async fn an_object_payload_arrives_as_it_was_published<F: Fixture>(fixture: &mut F) {
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Data))
        .await
        .unwrap();
    let window = pb::WindowDone {
        job: "conformance".into(),
        measurement: "cpu".into(),
        rows_written: 42,
        ..Default::default()
    };
    let encoded = window.encode_to_vec();
    queue
        .publish(OutgoingMessage {
            payload: Payload::object(window.clone(), encoded.len() + 8),
            ..message(StreamKind::Data, "cpu", "object-1", "")
        })
        .await
        .unwrap();
    let mut deliveries = queue.pull(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let delivery = deliveries.pop().unwrap();
    match delivery.object::<pb::WindowDone>() {
        // In process: the very object, its stated size, and no object of another type.
        Some(object) => {
            assert_eq!(*object, window);
            assert_eq!(delivery.size(), encoded.len() + 8);
            assert!(delivery.object::<pb::RowBatch>().is_none());
        }
        None => assert_eq!(delivery.size(), encoded.len()),
    }
    assert_eq!(delivery.payload().to_vec(), encoded);
    assert_eq!(
        pb::WindowDone::decode(delivery.payload().clone()).unwrap(),
        window
    );
    delivery.settle(Settle::Ack).await.unwrap();
    assert_eq!(queue.depth().await.unwrap().messages, 0);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut fixture = super::MemoryFixture::new();
                    super::$case(&mut fixture).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(mut fixture) = super::NatsFixture::new() else { return };
                    super::$case(&mut fixture).await;
                }
            )*
        }
    };
}

conformance!(
    publish_pull_ack,
    dedup_drops_a_republished_id,
    redelivers_when_a_consumer_dies_without_acking,
    reopening_with_another_ack_wait_applies_it,
    nak_delay_is_honoured,
    in_progress_holds_a_message,
    terminate_removes_for_good,
    a_full_queue_pushes_back_on_publishers,
    max_ack_pending_bounds_unsettled_deliveries,
    competing_consumers_share_the_work,
    checkpoint_compare_and_set,
    many_compare_and_sets_at_once,
    checkpoints_survive_a_restart,
    messages_arriving_between_pulls_are_not_lost,
    an_object_payload_arrives_as_it_was_published,
);

#[tokio::test]
async fn memory_state_file_refuses_a_second_process_of_the_same_job() {
    let state = tempfile::tempdir().unwrap();
    let first = MemoryBus::new(names(), state.path())
        .checkpoints()
        .await
        .unwrap();
    let error = MemoryBus::new(names(), state.path())
        .checkpoints()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("in use by another influx2td process"),
        "{error}"
    );
    drop(first);
    MemoryBus::new(names(), state.path())
        .checkpoints()
        .await
        .unwrap();
}

#[tokio::test]
async fn nats_streams_are_work_queues_with_discard_new_and_durable_consumers() {
    let Some(fixture) = NatsFixture::new() else {
        return;
    };
    let bus = fixture.bus().await;
    for kind in [StreamKind::Work, StreamKind::Data, StreamKind::Done] {
        bus.queue(config(kind)).await.unwrap();
    }
    let jsz: serde_json::Value = serde_json::from_str(&fixture.server.jsz()).unwrap();
    let streams = jsz["account_details"][0]["stream_detail"]
        .as_array()
        .unwrap();
    let work = streams
        .iter()
        .find(|s| s["name"] == "INFLUX2TD_conformance_WORK")
        .unwrap();
    assert_eq!(work["config"]["retention"], "workqueue");
    assert_eq!(work["config"]["discard"], "new");
    assert_eq!(work["config"]["storage"], "file");
    assert_eq!(
        work["config"]["subjects"][0],
        "influx2td.conformance.work.>"
    );
    let consumer = &work["consumer_detail"][0];
    assert_eq!(consumer["name"], "readers");
    assert_eq!(consumer["config"]["durable_name"], "readers");
    assert_eq!(consumer["config"]["ack_policy"], "explicit");
    let data = streams
        .iter()
        .find(|s| s["name"] == "INFLUX2TD_conformance_DATA")
        .unwrap();
    assert_eq!(data["consumer_detail"][0]["name"], "writers");
}

#[tokio::test]
async fn memory_queue_refuses_a_subject_of_another_stream() {
    let fixture = MemoryFixture::new();
    let queue = fixture
        .bus()
        .await
        .queue(config(StreamKind::Data))
        .await
        .unwrap();
    let error = queue
        .publish(message(StreamKind::Work, "cpu", "a", "x"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no stream found"), "{error}");
}

#[tokio::test]
async fn state_file_applies_many_updates_all_or_none() {
    let fixture = MemoryFixture::new();
    let store = fixture.bus().await.checkpoints().await.unwrap();
    let first = store
        .compare_and_set("checkpoint.a", "1".into(), None)
        .await
        .unwrap();
    let refused = store
        .compare_and_set_many(vec![
            ("checkpoint.new".into(), "n".into(), None),
            ("checkpoint.a".into(), "2".into(), Some(first + 7)),
        ])
        .await
        .unwrap_err();
    assert!(matches!(refused, BusError::Conflict { .. }), "{refused}");
    assert_eq!(
        store.get("checkpoint.new").await.unwrap(),
        None,
        "nothing of a refused batch is written"
    );
    assert_eq!(store.get("checkpoint.a").await.unwrap().unwrap().value, "1");
}

/// JetStream reserves each stream's `max_bytes` when it is created; a job's streams fit in
/// `JOB_STREAM_BYTES` of file storage, and the checkpoints a little more (before, they took 3.1 GiB and a CI machine with little
/// free disk refused them).
#[tokio::test]
async fn nats_a_jobs_streams_fit_in_its_stated_storage() {
    let budget = influx2td_bus::JOB_STREAM_BYTES;
    assert_eq!(
        budget,
        StreamKind::ALL
            .into_iter()
            .map(influx2td_bus::default_max_bytes)
            .sum::<u64>()
    );
    let config = format!("jetstream {{ max_file_store: {budget} }}");
    let Some(server) = NatsServer::start_with_config(Some(&config)) else {
        return;
    };
    let connect = NatsConnect::plain(server.url(), "conformance");
    let bus = NatsBus::connect(&connect, names()).await.unwrap();
    for kind in StreamKind::ALL {
        bus.queue(QueueConfig::new(kind)).await.unwrap();
    }
    // The checkpoints need a little more: a key-value bucket reserves nothing, but JetStream
    // creates nothing once the reservations take all of its storage.
    let refused = bus.checkpoints().await.unwrap_err().to_string();
    assert!(
        refused.contains("cannot create a key-value bucket") && refused.contains("max_file_store"),
        "{refused}"
    );
    let jsz: serde_json::Value = serde_json::from_str(&server.jsz()).unwrap();
    let reserved: u64 = jsz["account_details"][0]["stream_detail"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|stream| stream["config"]["max_bytes"].as_i64())
        .filter(|bytes| *bytes > 0)
        .map(|bytes| bytes as u64)
        .sum();
    assert_eq!(reserved, budget);
    // Another job does not fit in what is left: the refusal says what to change.
    let other = NatsBus::connect(&connect, Names::new("influx2td", "other").unwrap())
        .await
        .unwrap();
    let refused = other
        .queue(QueueConfig::new(StreamKind::DeadLetter))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("cannot reserve the 256 MiB") && refused.contains("max_file_store"),
        "{refused}"
    );
}
