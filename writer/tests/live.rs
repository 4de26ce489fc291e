//! The live suite: the writer against a real TDengine. Runs when `TDENGINE_DSN` is set
//! (`taos://localhost:6030` native, `ws://localhost:6041` taosAdapter); says it was skipped
//! otherwise. Each test creates its own database and drops it at the end.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ClosedBatch, ColumnType, Value, pb};
use influx2td_writer::service;
use influx2td_writer::{Sink, TdengineSink};

mod common;
use common::{database, dsn, logs, write_reporting};

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

fn batch(rows: &[(i64, [Option<Value<'_>>; 5])], extra_tag: bool) -> ClosedBatch {
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

/// Runs a writer over `batches`; every row must be written.
async fn write(
    sink: &TdengineSink,
    database: &str,
    precision: influx2td_writer::Precision,
    batches: Vec<ClosedBatch>,
) {
    let (reports, letters) = write_reporting(sink, database, precision, 4, batches).await;
    for report in &reports {
        assert_eq!(report.outcome(), pb::Outcome::Written, "{report:?}");
    }
    assert!(letters.is_empty(), "{letters:?}");
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

/// `verify` compares integer sums modulo 2^64 because that is what TDengine's `SUM` of a
/// BIGINT and of a BIGINT UNSIGNED returns when the values add up past 64 bits (as InfluxDB's
/// does): pinned here on the real server, with the extremes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_integer_sums_wrap_around_at_64_bits_as_verify_expects() {
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 2)
        .await
        .unwrap();
    let database = database("sums");
    let info = service::prepare_target(&sink, &database, true, false, false)
        .await
        .unwrap();
    let near = 1i64 << 62;
    let signed = [
        i64::MAX,
        i64::MIN + 1,
        near,
        near,
        near,
        -near,
        i64::MAX - 3,
    ];
    let unsigned = [u64::MAX, u64::MAX - 1, 1 << 63, 1 << 63, 7, 0, u64::MAX / 3];
    let rows: Vec<(i64, [Option<Value<'_>>; 5])> = signed
        .iter()
        .zip(unsigned)
        .enumerate()
        .map(|(index, (count, bytes))| {
            (
                1_700_000_000_000_000_000 + index as i64,
                [
                    None,
                    Some(Value::Int64(*count)),
                    Some(Value::Uint64(bytes)),
                    None,
                    None,
                ],
            )
        })
        .collect();
    write(&sink, &database, info.precision, vec![batch(&rows, false)]).await;
    let found = sink
        .records(&format!(
            "SELECT SUM(`count`), SUM(`bytes`), MIN(`count`), MAX(`bytes`) FROM `{database}`.`cpu`"
        ))
        .await
        .unwrap();
    let wrapped_signed = signed
        .iter()
        .fold(0i64, |sum, value| sum.wrapping_add(*value));
    let wrapped_unsigned = unsigned
        .iter()
        .fold(0u64, |sum, value| sum.wrapping_add(*value));
    assert_ne!(
        i128::from(wrapped_signed),
        signed.iter().map(|value| i128::from(*value)).sum::<i128>(),
        "the signed sum runs past 64 bits"
    );
    assert_eq!(
        found,
        [[
            wrapped_signed.to_string(),
            wrapped_unsigned.to_string(),
            (i64::MIN + 1).to_string(),
            u64::MAX.to_string()
        ]]
    );
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}

/// The two insert modes leave the very same rows: every type, NULLs, quotes, backslashes,
/// newlines and emoji, before 1970, two child tables with different tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_binding_and_sql_write_the_same_rows() {
    use influx2td_writer::tdengine::InsertMode;
    let Some(dsn) = dsn() else { return };
    logs();
    let rows = [
        (
            1_700_000_000_123_456_789,
            [
                Some(Value::Double(-0.0)),
                Some(Value::Int64(i64::MIN + 1)),
                Some(Value::Uint64(u64::MAX)),
                Some(Value::String("it's \"quoted\" \\ and\nnew 🔥")),
                Some(Value::Bool(false)),
            ],
        ),
        (
            -1,
            [
                None,
                Some(Value::Int64(i64::MAX)),
                None,
                Some(Value::String("")),
                None,
            ],
        ),
        (
            0,
            [
                Some(Value::Double(1e-300)),
                None,
                Some(Value::Uint64(0)),
                None,
                Some(Value::Bool(true)),
            ],
        ),
    ];
    let mut found = Vec::new();
    for mode in [InsertMode::Bind, InsertMode::Sql] {
        let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 2)
            .await
            .unwrap()
            .with_mode(mode);
        let database = database("modes");
        let info = service::prepare_target(&sink, &database, true, false, false)
            .await
            .unwrap();
        // (One write each: the two batches are of one window, their reports of one id.)
        write(&sink, &database, info.precision, vec![batch(&rows, false)]).await;
        write(
            &sink,
            &database,
            info.precision,
            vec![batch(&rows[..1], true)],
        )
        .await;
        found.push(
            sink.records(&format!(
                "SELECT tbname, CAST(`_ts` AS BIGINT), `value`, `count`, `bytes`, `state`, `current`, `host`, `rack` FROM `{database}`.`cpu` ORDER BY tbname, `_ts`"
            ))
            .await
            .unwrap(),
        );
        sink.execute(&format!("DROP DATABASE `{database}`"))
            .await
            .unwrap();
    }
    assert_eq!(found[0].len(), 4, "{:?}", found[0]);
    assert_eq!(found[0], found[1], "binding (left) and SQL (right) differ");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_schemaless_clients_continue_the_same_child_tables() {
    use taos::taos_query::common::{SchemalessPrecision, SchemalessProtocol, SmlDataBuilder};
    use taos::{AsyncQueryable, AsyncTBuilder};
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 2)
        .await
        .unwrap();
    let database = database("sml");
    let info = service::prepare_target(&sink, &database, true, false, false)
        .await
        .unwrap();
    let rows = [(
        1_700_000_000_000_000_000,
        [Some(Value::Double(1.0)), None, None, None, None],
    )];
    write(&sink, &database, info.precision, vec![batch(&rows, false)]).await;

    // After the cut-over, a line-protocol client writes the same series.
    let taos = taos::TaosBuilder::from_dsn(format!("{dsn}/{database}"))
        .unwrap()
        .build()
        .await
        .unwrap();
    let line = r"cpu,host=server\ 'a'\ 🔥 value=2 1700000001000000000";
    let data = SmlDataBuilder::default()
        .protocol(SchemalessProtocol::Line)
        .precision(SchemalessPrecision::Nanosecond)
        .data(vec![line.to_owned()])
        .build()
        .unwrap();
    taos.put(&data).await.unwrap();

    let tables = sink
        .records(&format!(
            "SELECT table_name FROM information_schema.ins_tables WHERE db_name = '{database}'"
        ))
        .await
        .unwrap();
    assert_eq!(
        tables.len(),
        1,
        "schemaless made a table of its own: {tables:?}"
    );
    let found = sink
        .records(&format!(
            "SELECT CAST(`_ts` AS BIGINT), `value` FROM `{database}`.`cpu` ORDER BY `_ts`"
        ))
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            ["1700000000000000000".to_owned(), "1".to_owned()],
            ["1700000001000000000".to_owned(), "2".to_owned()]
        ]
    );
    drop(taos);
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rows_tdengine_rejects_are_dead_lettered_and_the_rest_written() {
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 2)
        .await
        .unwrap();
    let database = database("poison");
    let info = service::prepare_target(&sink, &database, true, false, false)
        .await
        .unwrap();
    // KEEP 36500 days: a point from 1800 is older than the database keeps, so TDengine refuses it.
    let year_1800 = -5_364_662_400_000_000_000;
    let good = |ts| (ts, [Some(Value::Double(1.0)), None, None, None, None]);
    let rows = [
        good(1_700_000_000_000_000_000),
        good(1_700_000_001_000_000_000),
        good(year_1800),
        good(1_700_000_002_000_000_000),
    ];
    let (reports, letters) = write_reporting(
        &sink,
        &database,
        info.precision,
        2,
        vec![batch(&rows, false)],
    )
    .await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].rows_written, 3, "{:?}", reports[0]);
    assert_eq!(reports[0].rows_dead_lettered, 1, "{:?}", reports[0]);
    assert!(!reports[0].reason.is_empty());
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].rows.len(), 1);
    assert_eq!(letters[0].rows[0].timestamp_ns, year_1800);
    let found = sink
        .records(&format!("SELECT COUNT(*) FROM `{database}`.`cpu`"))
        .await
        .unwrap();
    assert_eq!(found, [["3".to_owned()]]);
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_concurrent_batches_race_their_ddl_safely() {
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 8)
        .await
        .unwrap();
    let database = database("race");
    let info = service::prepare_target(&sink, &database, true, false, false)
        .await
        .unwrap();
    // 40 batches at once, each with a new tag set, half with an extra tag and growing strings:
    // the writer creates and alters the super table while inserts run.
    let batches: Vec<ClosedBatch> = (0..40)
        .map(|index| {
            let text = "s".repeat(10 + index * 20);
            let mut encoder = BatchEncoder::new(WindowRef {
                window_start_ns: index as i64,
                ..window()
            });
            let mut tags = vec![pb::Tag {
                key: "host".into(),
                value: format!("h{index}"),
            }];
            if index % 2 == 1 {
                tags.push(pb::Tag {
                    key: "rack".into(),
                    value: format!("r{index}"),
                });
            }
            encoder.begin_series(
                tags,
                vec![
                    ("value".into(), ColumnType::Double),
                    ("state".into(), ColumnType::String),
                ],
            );
            for row in 0..50 {
                let values = [Some(Value::Double(row as f64)), Some(Value::String(&text))];
                assert!(
                    encoder
                        .push_row(1_700_000_000_000_000_000 + row, &values)
                        .unwrap()
                        .is_none()
                );
            }
            encoder.finish()
        })
        .collect();
    write(&sink, &database, info.precision, batches).await;
    let rows = sink
        .records(&format!("SELECT COUNT(*) FROM `{database}`.`cpu`"))
        .await
        .unwrap();
    assert_eq!(rows, [["2000".to_owned()]]);
    let tables = sink
        .records(&format!(
            "SELECT COUNT(*) FROM information_schema.ins_tables WHERE db_name = '{database}'"
        ))
        .await
        .unwrap();
    assert_eq!(tables, [["40".to_owned()]]);
    let longest = sink
        .records(&format!(
            "SELECT MAX(LENGTH(`state`)) FROM `{database}`.`cpu`"
        ))
        .await
        .unwrap();
    assert_eq!(longest, [[(10 + 39 * 20).to_string()]]);
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_wrong_password_is_a_clear_fatal_error() {
    let Some(dsn) = dsn() else { return };
    let Ok(mut url) = url::Url::parse(&dsn) else {
        return;
    };
    url.set_username("root").unwrap();
    url.set_password(Some("definitely-wrong")).unwrap();
    let error = match TdengineSink::connect(url.as_str(), "taos://root:[redacted]@...", 1).await {
        Ok(sink) => sink.database("information_schema").await.unwrap_err(),
        Err(error) => error,
    };
    assert_eq!(
        error.kind,
        influx2td_writer::SinkErrorKind::Fatal,
        "{error}"
    );
    let text = error.to_string();
    assert!(!text.contains("definitely-wrong"), "{text}");
    assert!(
        text.contains("wrong user or password — check the user:password in target.dsn"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_a_port_where_taosd_does_not_listen_says_what_to_check() {
    let Some(dsn) = dsn() else { return };
    if !dsn.starts_with("taos://") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("taos://127.0.0.1:{port}");
    let error = TdengineSink::connect(&url, &url, 1).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "cannot connect to TDengine at {url}: nothing answers there — is taosd running on that host, and is the port right?"
        )),
        "{text}"
    );
    assert_eq!(
        error.kind,
        influx2td_writer::SinkErrorKind::Retryable,
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_a_host_name_that_does_not_resolve_is_named_as_such_not_as_a_stopped_taosd() {
    let Some(dsn) = dsn() else { return };
    if !dsn.starts_with("taos://") {
        return;
    }
    // The native client says "Unable to establish connection" here as for a stopped taosd.
    let url = "taos://no-such-host.invalid:6030";
    let error = TdengineSink::connect(url, url, 1).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "cannot connect to TDengine at {url}: the host name does not resolve — check the host in target.dsn"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_a_measurement_wider_than_tdengine_allows_is_dead_lettered_not_retried() {
    let Some(dsn) = dsn() else { return };
    let sink = TdengineSink::connect(&dsn, "TDENGINE_DSN", 2)
        .await
        .unwrap();
    let database = database("wide");
    let info = service::prepare_target(&sink, &database, true, false, false)
        .await
        .unwrap();
    // TDengine 3 allows 4,096 columns in a super table; InfluxDB allows a point 5,000 fields.
    let mut encoder = BatchEncoder::new(window());
    let columns: Vec<(String, ColumnType)> = (0..5000)
        .map(|i| (format!("f{i:05}"), ColumnType::Double))
        .collect();
    encoder.begin_series(
        vec![pb::Tag {
            key: "host".into(),
            value: "a".into(),
        }],
        columns,
    );
    let values: Vec<Option<Value<'_>>> = (0..5000)
        .map(|i| Some(Value::Double(f64::from(i))))
        .collect();
    for time in [1_700_000_000_000_000_000, 1_700_000_001_000_000_000] {
        assert!(encoder.push_row(time, &values).unwrap().is_none());
    }
    let (reports, letters) = tokio::time::timeout(
        Duration::from_secs(60),
        write_reporting(&sink, &database, info.precision, 1, vec![encoder.finish()]),
    )
    .await
    .expect("the batch was retried instead of reported");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome(), pb::Outcome::DeadLettered);
    assert_eq!(reports[0].rows_written, 0);
    assert_eq!(reports[0].rows_dead_lettered, 2);
    assert!(
        reports[0]
            .reason
            .starts_with("TDengine refuses the super table")
            && reports[0].reason.contains("Too many columns"),
        "{}",
        reports[0].reason
    );
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].rows.len(), 2);
    sink.execute(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}
