//! `influx2td reader` as a separate process over a real nats-server, reading a real influxd.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use influx2td_bus::{
    Bus, Delivery, Names, NatsBus, NatsConnect, OutgoingMessage, QueueConfig, Settle, StreamKind,
    WorkQueue,
};
use influx2td_proto::{Message, pb};
use influx2td_testkit::{Influxd, NatsServer};

mod common;

fn base_command(args: &[&str]) -> Command {
    let mut command = common::influx2td();
    command
        .env("INFLUX2TD_BEGIN", "2023-01-01")
        .env("INFLUX2TD_TARGET_DSN", "ws://localhost:6041")
        .env("INFLUX2TD_TARGET_DATABASE", "metrics")
        .env("INFLUX2TD_BUCKET", "db")
        .env("INFLUX2TD_JOB", "proc")
        .args(args);
    command
}

#[test]
fn reader_without_nats_url_says_what_to_set() {
    let output = base_command(&["reader"])
        .env("INFLUX2TD_SOURCE_URL", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`influx2td reader` runs over NATS: set nats.url"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_process_reads_windows_and_stops_on_sigterm() {
    let (Some(influxd), Some(nats)) = (Influxd::start(), NatsServer::start()) else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    influxd.write(
        "db",
        "cpu,host=a usage=1.5 1700000000000000000\ncpu,host=b usage=2.5 1700000000000000001\n",
    );
    let process = influx2td_testkit::KillOnDrop(
        base_command(&["reader"])
            .env("INFLUX2TD_SOURCE_URL", influxd.url())
            .env("INFLUX2TD_NATS_URL", nats.url())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    let names = Names::new("influx2td", "proc").unwrap();
    let connect = NatsConnect::plain(nats.url(), "test");
    let bus = NatsBus::connect(&connect, names.clone()).await.unwrap();
    let work = bus.queue(QueueConfig::new(StreamKind::Work)).await.unwrap();
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    let item = pb::WorkItem {
        job: "proc".into(),
        measurement: "cpu".into(),
        window_start_ns: 1_700_000_000_000_000_000,
        window_end_ns: 1_700_000_001_000_000_000,
        attempt: 1,
        split_depth: 0,
        ..Default::default()
    };
    work.publish(OutgoingMessage {
        subject: names.subject(StreamKind::Work, "cpu"),
        msg_id: names.work_msg_id("cpu", item.window_start_ns, item.window_end_ns, 1),
        headers: vec![],
        payload: item.encode_to_vec().into(),
    })
    .await
    .unwrap();

    let deliveries = data.pull(10, Duration::from_secs(20)).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let batch = pb::RowBatch::decode(deliveries[0].payload().clone()).unwrap();
    assert_eq!(batch.row_count(), 2);
    assert_eq!(batch.totals.unwrap().rows, 2);
    for delivery in deliveries {
        delivery.settle(Settle::Ack).await.unwrap();
    }

    let pid = process.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let mut process = process;
        let mut stderr = String::new();
        if let Some(mut pipe) = process.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        }
        (process.wait().unwrap(), stderr)
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("window read"), "{stderr}");
    assert!(stderr.contains("reader stopped"), "{stderr}");
}
