//! `influx2td inspect` against a real nats-server: a work item and a row batch published on
//! the job's streams come back as readable JSON, with their headers.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use influx2td_bus::{Bus, Names, NatsBus, NatsConnect, QueueConfig, StreamKind, WorkQueue};
use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ColumnType, Value, pb};
use influx2td_testkit::NatsServer;

mod common;

const T0: i64 = 1_700_000_000_000_000_000;

fn inspect(nats: &NatsServer, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(common::BINARY)
        .env_clear()
        .env("INFLUX2TD_NATS_URL", nats.url())
        .env("INFLUX2TD_JOB", "peek")
        .env("INFLUX2TD_SOURCE_URL", "http://127.0.0.1:9")
        .env("INFLUX2TD_BUCKET", "db")
        .env("INFLUX2TD_BEGIN", "2023-01-01T00:00:00Z")
        .env("INFLUX2TD_TARGET_DSN", "file:///nonexistent")
        .env("INFLUX2TD_TARGET_DATABASE", "metrics")
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_decodes_work_items_and_row_batches() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let names = Names::new("influx2td", "peek").unwrap();
    let bus = NatsBus::connect(
        &NatsConnect::plain(nats.url(), "inspect-test"),
        names.clone(),
    )
    .await
    .unwrap();

    let item = pb::WorkItem {
        job: "peek".into(),
        measurement: "disk io".into(),
        window_start_ns: T0,
        window_end_ns: T0 + 3_600_000_000_000,
        attempt: 1001,
        split_depth: 0,
        ..Default::default()
    };
    let work = bus.queue(QueueConfig::new(StreamKind::Work)).await.unwrap();
    work.publish(influx2td_bus::work_item_message(&names, &item))
        .await
        .unwrap();

    let window = WindowRef {
        job: "peek".into(),
        measurement: "cpu".into(),
        window_start_ns: T0,
        window_end_ns: T0 + 3_600_000_000_000,
        attempt: 1001,
        read: 1,
    };
    let mut encoder = BatchEncoder::new(window.clone());
    encoder.begin_series(
        vec![pb::Tag {
            key: "host".into(),
            value: "a".into(),
        }],
        vec![
            ("usage".into(), ColumnType::Double),
            ("state".into(), ColumnType::String),
        ],
    );
    assert!(
        encoder
            .push_row(T0 + 1, &[Some(Value::Double(0.5)), None])
            .unwrap()
            .is_none()
    );
    assert!(
        encoder
            .push_row(
                T0 + 2,
                &[Some(Value::Double(1.5)), Some(Value::String("ok"))]
            )
            .unwrap()
            .is_none()
    );
    let batch = encoder.finish();
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    let mut headers = influx2td_bus::window_headers(&names, "cpu", T0, window.window_end_ns, 1001);
    headers.push(("Influx2td-Seq".into(), "0".into()));
    data.publish(influx2td_bus::OutgoingMessage {
        subject: names.subject(StreamKind::Data, "cpu"),
        msg_id: names.data_msg_id(&window, 0),
        headers,
        payload: batch.payload().into(),
    })
    .await
    .unwrap();

    let (code, stdout, stderr) = inspect(&nats, &["--stream", "work"]);
    assert_eq!(code, Some(0), "{stderr}");
    let work_json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(work_json["subject"], "influx2td.peek.work.disk=20io");
    assert_eq!(work_json["headers"]["Influx2td-Measurement"], "disk io");
    assert_eq!(work_json["message"]["measurement"], "disk io");
    assert_eq!(
        work_json["message"]["window"]["start"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(work_json["message"]["attempt"], 1001);
    // Where the stream lives: one copy, on (and led by) this single server.
    assert_eq!(work_json["stream"]["name"], "INFLUX2TD_peek_WORK");
    assert_eq!(work_json["stream"]["replicas"], 1);
    assert_eq!(work_json["stream"]["current"], 1);
    assert!(work_json["stream"]["leader"].is_string(), "{work_json}");

    let (code, stdout, stderr) = inspect(&nats, &["--stream", "data", "--measurement", "cpu"]);
    assert_eq!(code, Some(0), "{stderr}");
    let data_json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let message = &data_json["message"];
    assert_eq!(message["rows"], 2);
    assert_eq!(message["series"][0]["tags"]["host"], "a");
    assert_eq!(message["series"][0]["field_types"]["usage"], "float");
    assert_eq!(message["series"][0]["rows"][0]["usage"], 0.5);
    assert_eq!(
        message["series"][0]["rows"][0]["state"],
        serde_json::Value::Null
    );
    assert_eq!(message["series"][0]["rows"][1]["state"], "ok");
    assert_eq!(data_json["headers"]["Influx2td-Seq"], "0");

    let sequence = data_json["sequence"].as_u64().unwrap().to_string();
    let (code, stdout, _) = inspect(&nats, &["--stream", "data", "--seq", &sequence]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        data_json
    );

    let (code, _, stderr) = inspect(&nats, &["--stream", "done"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("INFLUX2TD_peek_DONE holds no such message"),
        "{stderr}"
    );
}
