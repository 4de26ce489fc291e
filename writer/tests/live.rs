//! The live suite: the writer against a real TDengine. Runs when `TDENGINE_DSN` is set
//! (`taos://localhost:6030` native, `ws://localhost:6041` taosAdapter); says it was skipped
//! otherwise. Each test creates its own database and drops it at the end.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use influx2td_bus::{
    Bus, Delivery, MemoryBus, Names, OutgoingMessage, QueueConfig, Settle, StreamKind, WorkQueue,
};
use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ColumnType, EncodedBatch, Message, Value, pb};
use influx2td_writer::service::{self, WriterSettings};
use influx2td_writer::{Sink, TdengineSink};
use tokio::sync::oneshot;

fn dsn() -> Option<String> {
    match std::env::var("TDENGINE_DSN") {
        Ok(dsn) if !dsn.is_empty() => Some(dsn),
        _ => {
            eprintln!(
                "\n=== SKIPPED: the live TDengine suite needs TDENGINE_DSN (e.g. taos://localhost:6030) ===\n"
            );
            None
        }
    }
}

fn database(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("influx2td_live_{name}_{}", nanos % 1_000_000_000)
}

fn window() -> WindowRef {
    WindowRef {
        job: "live".into(),
        measurement: "cpu".into(),
        window_start_ns: i64::MIN / 2,
        window_end_ns: i64::MAX / 2,
        attempt: 1,
        read: 1,
    }
}

fn batch(rows: &[(i64, [Option<Value<'_>>; 5])], extra_tag: bool) -> EncodedBatch {
    let mut encoder = BatchEncoder::new(window());
    let mut tags = vec![pb::Tag {
        key: "host".into(),
        value: "server 'a' 🔥".into(),
    }];
    if extra_tag {
        tags.push(pb::Tag {
            key: "rack".into(),
            value: "r1".into(),
        });
    }
    encoder.begin_series(
        tags,
        vec![
            ("value".into(), ColumnType::Double),
            ("count".into(), ColumnType::Int64),
            ("bytes".into(), ColumnType::Uint64),
            ("state".into(), ColumnType::String),
            ("current".into(), ColumnType::Bool),
        ],
    );
    for (time, values) in rows {
        assert!(encoder.push_row(*time, values).unwrap().is_none());
    }
    encoder.finish()
}

/// Writes `batches` through the real writer service and waits for every DONE report.
async fn write(
    sink: &TdengineSink,
    database: &str,
    precision: influx2td_writer::Precision,
    batches: Vec<EncodedBatch>,
) {
    let state = tempfile::tempdir().unwrap();
    let names = Names::new("influx2td", "live").unwrap();
    let bus = MemoryBus::new(names.clone(), state.path());
    let settings = WriterSettings {
        precision,
        ..WriterSettings::new(database)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let writer = tokio::spawn(service::run(bus.clone(), sink.clone(), settings, async {
        let _ = stopped.await;
    }));
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await.unwrap();
    let done = bus.queue(QueueConfig::new(StreamKind::Done)).await.unwrap();
    let count = batches.len();
    for (index, batch) in batches.into_iter().enumerate() {
        data.publish(OutgoingMessage {
            subject: names.subject(StreamKind::Data, "cpu"),
            msg_id: format!("live-{index}"),
            headers: vec![],
            payload: batch.payload,
        })
        .await
        .unwrap();
    }
    let mut reports = 0;
    while reports < count {
        for delivery in done.pull(10, Duration::from_secs(30)).await.unwrap() {
            let report = pb::WindowDone::decode(delivery.payload().clone()).unwrap();
            assert_eq!(report.outcome(), pb::Outcome::Written, "{report:?}");
            delivery.settle(Settle::Ack).await.unwrap();
            reports += 1;
        }
    }
    stop.send(()).unwrap();
    writer.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_values_types_evolution_and_redelivery() {
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 4)
        .await
        .unwrap();
    let database = database("values");
    let info = service::prepare_target(&sink, &database, true, false, false)
        .await
        .unwrap();
    assert_eq!(info.precision, influx2td_writer::Precision::Nanoseconds);

    let rows = [
        (
            1_700_000_000_123_456_789,
            [
                Some(Value::Double(1.5)),
                Some(Value::Int64(i64::MIN + 1)),
                Some(Value::Uint64(u64::MAX)),
                Some(Value::String("it's \"quoted\" \\ and\nnew")),
                Some(Value::Bool(true)),
            ],
        ),
        (
            -1_000_000_000,
            [
                Some(Value::Double(-2.25)),
                None,
                None,
                None,
                Some(Value::Bool(false)),
            ],
        ),
    ];
    write(&sink, &database, info.precision, vec![batch(&rows, false)]).await;
    let select = format!(
        "SELECT CAST(`_ts` AS BIGINT), `value`, `count`, `bytes`, `state`, `current` FROM `{database}`.`cpu` ORDER BY `_ts`"
    );
    let found = sink.records(&select).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[1][0], "1700000000123456789");
    assert_eq!(found[1][1], "1.5");
    assert_eq!(found[1][2], (i64::MIN + 1).to_string());
    assert_eq!(found[1][3], u64::MAX.to_string());
    assert_eq!(found[1][4], "it's \"quoted\" \\ and\nnew");
    assert_eq!(found[1][5], "true");
    assert_eq!(found[0][0], "-1000000000", "before 1970");

    // Schema evolution: a new tag and a longer string widen the super table.
    let longer = "x".repeat(300);
    let evolved = [(
        1_700_000_001_000_000_000,
        [
            Some(Value::Double(3.0)),
            None,
            None,
            Some(Value::String(&longer)),
            None,
        ],
    )];
    write(
        &sink,
        &database,
        info.precision,
        vec![batch(&evolved, true)],
    )
    .await;
    let described = sink.describe(&database, "cpu").await.unwrap().unwrap();
    assert!(described.tags.contains_key("rack"), "{described:?}");
    assert!(
        matches!(described.columns["state"], influx2td_writer::schema::ColumnSpec::Typed(ColumnType::String, width) if width >= 300)
    );

    // Redelivery: the same batch again leaves the table as it was.
    let count = format!("SELECT COUNT(*) FROM `{database}`.`cpu`");
    let before = sink.records(&count).await.unwrap();
    write(&sink, &database, info.precision, vec![batch(&rows, false)]).await;
    assert_eq!(sink.records(&count).await.unwrap(), before);

    // The child table is the one TDengine's schemaless ingestion would have named.
    let tables = sink
        .records(&format!(
            "SELECT table_name FROM information_schema.ins_tables WHERE db_name = '{database}'"
        ))
        .await
        .unwrap();
    let expected = influx2td_writer::mapping::child_table_name("cpu", &[("host", "server 'a' 🔥")]);
    assert!(tables.iter().any(|row| row[0] == expected), "{tables:?}");
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_millisecond_database_gets_converted_timestamps() {
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 2)
        .await
        .unwrap();
    let database = database("ms");
    sink.execute(&format!(
        "CREATE DATABASE `{database}` PRECISION 'ms' KEEP 36500"
    ))
    .await
    .unwrap();
    let info = service::prepare_target(&sink, &database, false, false, false)
        .await
        .unwrap();
    assert_eq!(info.precision, influx2td_writer::Precision::Milliseconds);
    let rows = [(
        1_700_000_000_123_456_789,
        [Some(Value::Double(1.0)), None, None, None, None],
    )];
    write(&sink, &database, info.precision, vec![batch(&rows, false)]).await;
    let found = sink
        .records(&format!(
            "SELECT CAST(`_ts` AS BIGINT) FROM `{database}`.`cpu`"
        ))
        .await
        .unwrap();
    assert_eq!(found, [["1700000000123".to_owned()]]);
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}
