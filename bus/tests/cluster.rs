//! The bus on a real 3-server nats-server cluster: `nats.replicas` puts every stream and the
//! checkpoint bucket on three servers, losing the leader loses nothing, a single server refuses
//! three replicas with a message that says what to set, and a job's streams made with one
//! replica get three when the setting changes.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use influx2td_bus::{
    Bus, BusError, CheckpointStore, Delivery, Names, NatsBus, NatsConnect, OutgoingMessage,
    QueueConfig, Settle, StreamKind, WorkQueue,
};
use influx2td_testkit::{NatsCluster, NatsServer};

fn names() -> Names {
    Names::new("influx2td", "replicated").unwrap()
}

async fn bus(url: &str, replicas: usize) -> NatsBus {
    let connect = NatsConnect {
        replicas,
        ..NatsConnect::plain(url, "cluster-test")
    };
    NatsBus::connect(&connect, names()).await.unwrap()
}

fn work(id: &str) -> OutgoingMessage {
    OutgoingMessage {
        subject: names().subject(StreamKind::Work, "cpu"),
        msg_id: id.to_owned(),
        headers: Vec::new(),
        payload: Bytes::from(id.to_owned()).into(),
    }
}

fn config() -> QueueConfig {
    QueueConfig {
        ack_wait: Duration::from_secs(2),
        ..QueueConfig::new(StreamKind::Work)
    }
}

/// Pulls until `count` messages came (a stream whose leader just died answers once a new one
/// is elected); acknowledges them and returns their payloads, sorted.
async fn pull_all(queue: &impl WorkQueue, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < count {
        assert!(Instant::now() < deadline, "only {got:?} came back");
        match queue.pull(count - got.len(), Duration::from_secs(1)).await {
            Ok(deliveries) => {
                for delivery in deliveries {
                    got.push(String::from_utf8(delivery.payload().to_vec()).unwrap());
                    delivery.settle(Settle::Ack).await.unwrap();
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_the_leader_killed() {
    let Some(mut cluster) = NatsCluster::start() else {
        return;
    };
    let bus = bus(&cluster.url(), 3).await;
    let queue = bus.queue(config()).await.unwrap();
    let checkpoints = bus.checkpoints().await.unwrap();
    for id in ["a", "b", "c"] {
        queue.publish(work(id)).await.unwrap();
    }
    checkpoints
        .compare_and_set("checkpoint.cpu", "42".into(), None)
        .await
        .unwrap();

    let placement = bus.placement().await.unwrap();
    let work_stream = placement
        .iter()
        .find(|p| p.stream.ends_with("_WORK"))
        .unwrap();
    assert_eq!(work_stream.replicas, Some(3), "{placement:?}");
    let kv = placement
        .iter()
        .find(|p| p.stream.starts_with("KV_"))
        .unwrap();
    assert_eq!(kv.replicas, Some(3), "{placement:?}");
    let leader = work_stream
        .leader
        .clone()
        .expect("a replicated stream has a leader");

    // SIGKILL the server leading WORK; it stays down.
    cluster.server_named(&leader).stop();
    assert_eq!(pull_all(&queue, 3).await, ["a", "b", "c"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        match checkpoints.get("checkpoint.cpu").await {
            Ok(value) => break value,
            Err(error) => {
                assert!(Instant::now() < deadline, "{error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(value.unwrap().value, "42");
    // The two left elect a new leader (stream info may time out while they do).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = bus.placement().await;
        let new_leader = after.as_ref().ok().and_then(|after| {
            after
                .iter()
                .find(|p| p.stream.ends_with("_WORK"))
                .and_then(|p| p.leader.clone())
        });
        if new_leader.as_ref().is_some_and(|l| *l != leader) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{leader} was killed; now {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_refuses_three_replicas_and_says_what_to_set() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let bus = bus(&server.url(), 3).await;
    let error = bus.queue(config()).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BusError::Nats { .. }), "{text}");
    assert!(text.contains("nats.replicas = 3"), "{text}");
    assert!(text.contains("set nats.replicas = 1"), "{text}");
    let Err(error) = bus.checkpoints().await else {
        panic!("a KV bucket with three replicas on one server");
    };
    assert!(error.to_string().contains("nats.replicas = 3"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_made_with_one_replica_get_three_when_the_setting_changes() {
    let Some(cluster) = NatsCluster::start() else {
        return;
    };
    let one = bus(&cluster.url(), 1).await;
    let queue = one.queue(config()).await.unwrap();
    one.checkpoints().await.unwrap();
    queue.publish(work("kept")).await.unwrap();
    let before = one.placement().await.unwrap();
    assert!(
        before
            .iter()
            .filter(|p| p.replicas.is_some())
            .all(|p| p.replicas == Some(1)),
        "{before:?}"
    );

    let three = bus(&cluster.url(), 3).await;
    let queue = three.queue(config()).await.unwrap();
    three.checkpoints().await.unwrap();
    let after = three.placement().await.unwrap();
    for stream in ["_WORK", "KV_"] {
        let placement = after.iter().find(|p| p.stream.contains(stream)).unwrap();
        assert_eq!(placement.replicas, Some(3), "{after:?}");
    }
    assert_eq!(pull_all(&queue, 1).await, ["kept"]);
}
