//! The reader against a real influxd 1.x: every value and type read equals what was written.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Row, tags};
use influx2td_config::{SourceAuth, SourceConfig};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::{ColumnType, Message, pb};
use influx2td_reader::{InfluxClient, MeasurementSchema, SourceError, WindowReader, schema};
use influx2td_testkit::Influxd;

const DB: &str = "test db";

/// Line protocol covering the hard cases: names with spaces, dots, dashes, commas, `=`, quotes,
/// backslashes, unicode and emoji; every field type; rows lacking fields; nanosecond times
/// that a float would round; points before 1970.
const LINES: &str = r#"cpu\ load,host=server\ 01,region=eu\,west f=1.5,i=-3i,s="say \"hi\" \\ ok",b=true 1700000000123456789
cpu\ load,host=server\ 01,region=eu\,west f=2.5 1700000000123456790
cpu\ load,host=server\ 02 i=9223372036854775807i,s="line
break" 1700000000123456791
cpu\ load,host=server\ 02 f=-1,b=false -1000000000
disk.io-ü,path=/var/lib\=x,emoji=🔥,quote=a"b'c\d value=42i 1700000000000000000
"#;

fn client(influxd: &Influxd, bucket: &str) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url: influxd.url(),
        version: None,
        query_language: influx2td_config::QueryLanguage::Influxql,
        auth: SourceAuth::None,
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(300),
    };
    InfluxClient::new(&config, bucket).unwrap()
}

fn seeded() -> Option<Influxd> {
    let influxd = Influxd::start()?;
    influxd.query(&format!("CREATE DATABASE \"{DB}\""));
    influxd.write(DB, LINES);
    Some(influxd)
}

fn window(measurement: &str, start: i64, end: i64) -> WindowRef {
    WindowRef {
        job: "test".into(),
        measurement: measurement.into(),
        window_start_ns: start,
        window_end_ns: end,
        attempt: 0,
        read: 1,
    }
}

async fn read(
    client: &InfluxClient,
    schema: MeasurementSchema,
    start: i64,
    end: i64,
    limit: usize,
) -> (Vec<Row>, Vec<pb::RowBatch>) {
    let mut reader = WindowReader::open(
        client,
        Arc::new(schema.clone()),
        window(&schema.measurement, start, end),
        limit,
    )
    .await
    .unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch().await.unwrap() {
        batches.push(pb::RowBatch::decode(batch.payload()).unwrap());
    }
    let rows = common::rows(&batches);
    (rows, batches)
}

#[tokio::test]
async fn ping_reports_the_server() {
    let Some(influxd) = seeded() else { return };
    let info = client(&influxd, DB).ping().await.unwrap();
    assert_eq!(info.major, Some(1));
    assert!(info.version.starts_with("1."), "{info:?}");
}

#[tokio::test]
async fn discovers_measurements_fields_and_tags() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd, DB);
    let names = schema::measurements(&client, &[]).await.unwrap();
    assert_eq!(names, ["cpu load", "disk.io-ü"]);
    let cpu = schema::schema(&client, "cpu load").await.unwrap();
    let fields: Vec<_> = cpu
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.column_type))
        .collect();
    assert_eq!(
        fields,
        [
            ("b", ColumnType::Bool),
            ("f", ColumnType::Double),
            ("i", ColumnType::Int64),
            ("s", ColumnType::String)
        ]
    );
    assert_eq!(cpu.tag_keys, ["host", "region"]);
    let all = schema::schemas(&client).await.unwrap();
    assert_eq!(all["cpu load"], cpu);
    assert_eq!(all["disk.io-ü"].tag_keys, ["emoji", "path", "quote"]);
    let bounds = schema::time_bounds(&client, "cpu load").await.unwrap();
    assert_eq!(bounds, Some((-1_000_000_000, 1_700_000_000_123_456_791)));
}

#[tokio::test]
async fn a_window_reads_back_every_value_with_its_type() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd, DB);
    let cpu = schema::schema(&client, "cpu load").await.unwrap();
    let (rows, batches) = read(
        &client,
        cpu,
        i64::MIN / 2,
        i64::MAX / 2,
        influx2td_proto::MAX_BATCH_BYTES,
    )
    .await;
    let server_01 = tags(&[("host", "server 01"), ("region", "eu,west")]);
    let server_02 = tags(&[("host", "server 02")]);
    assert_eq!(
        rows,
        vec![
            (
                server_01.clone(),
                1_700_000_000_123_456_789,
                vec![
                    "b=Bool(true)".into(),
                    "f=Double(1.5)".into(),
                    "i=Int64(-3)".into(),
                    "s=String(\"say \\\"hi\\\" \\\\ ok\")".into()
                ]
            ),
            (
                server_01,
                1_700_000_000_123_456_790,
                vec!["f=Double(2.5)".into()]
            ),
            (
                server_02.clone(),
                -1_000_000_000,
                vec!["b=Bool(false)".into(), "f=Double(-1.0)".into()]
            ),
            (
                server_02,
                1_700_000_000_123_456_791,
                vec![
                    "i=Int64(9223372036854775807)".into(),
                    "s=String(\"line\\nbreak\")".into()
                ]
            ),
        ]
    );
    let last = batches.last().unwrap();
    assert_eq!(
        last.totals,
        Some(pb::WindowTotals {
            batches: batches.len() as u32,
            rows: 4
        })
    );
}

#[tokio::test]
async fn unicode_and_escaped_names_round_trip() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd, DB);
    let disk = schema::schema(&client, "disk.io-ü").await.unwrap();
    let (rows, _) = read(
        &client,
        disk,
        0,
        i64::MAX / 2,
        influx2td_proto::MAX_BATCH_BYTES,
    )
    .await;
    assert_eq!(
        rows,
        vec![(
            tags(&[
                ("emoji", "🔥"),
                ("path", "/var/lib=x"),
                ("quote", "a\"b'c\\d")
            ]),
            1_700_000_000_000_000_000,
            vec!["value=Int64(42)".into()]
        )]
    );
}

#[tokio::test]
async fn window_edges_are_begin_inclusive_end_exclusive_and_empty_windows_still_finish() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd, DB);
    let cpu = schema::schema(&client, "cpu load").await.unwrap();
    let exact = 1_700_000_000_123_456_790;
    let (rows, _) = read(&client, cpu.clone(), exact, exact + 1, 1 << 20).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, exact);
    let (rows, _) = read(&client, cpu.clone(), exact - 1, exact, 1 << 20).await;
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), [exact - 1]);
    let (rows, batches) = read(&client, cpu, 0, 1_000, 1 << 20).await;
    assert!(rows.is_empty());
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].totals,
        Some(pb::WindowTotals {
            batches: 1,
            rows: 0
        })
    );
}

#[tokio::test]
async fn a_big_window_streams_over_many_chunks_and_batches() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE big");
    let base: i64 = 1_600_000_000_000_000_000;
    for part in 0..5 {
        let lines: String = (0..10_000)
            .map(|i| {
                let n = part * 10_000 + i;
                format!(
                    "m,series=s{} v={n}i,t=\"{}\" {}\n",
                    n % 7,
                    "x".repeat(n as usize % 50),
                    base + n
                )
            })
            .collect();
        influxd.write("big", &lines);
    }
    let client = client(&influxd, "big");
    let schema = schema::schema(&client, "m").await.unwrap();
    let (rows, batches) = read(&client, schema, base, base + 100_000, 64 * 1024).await;
    assert_eq!(rows.len(), 50_000);
    assert!(batches.len() > 10, "only {} batches", batches.len());
    let mut values: Vec<i64> = rows
        .iter()
        .map(|row| {
            row.2[1]
                .trim_start_matches("v=Int64(")
                .trim_end_matches(')')
                .parse()
                .unwrap()
        })
        .collect();
    values.sort();
    assert_eq!(values, (0..50_000).collect::<Vec<_>>());
    for row in &rows {
        let n: i64 = row.2[1]
            .trim_start_matches("v=Int64(")
            .trim_end_matches(')')
            .parse()
            .unwrap();
        assert_eq!(row.1, base + n);
        assert_eq!(row.0, tags(&[("series", &format!("s{}", n % 7))]));
    }
}

#[tokio::test]
async fn a_field_typed_differently_per_shard_is_widened_and_reported() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE mixed");
    // Different shard groups (7-day shards): one integer, one float.
    influxd.write("mixed", "m v=1i 1000000000000000000\n");
    influxd.write("mixed", "m v=2.5 1600000000000000000\n");
    let client = client(&influxd, "mixed");
    let schema = schema::schema(&client, "m").await.unwrap();
    let field = &schema.fields[0];
    assert_eq!(field.column_type, ColumnType::Double);
    assert_eq!(
        field.conflicting_types,
        [ColumnType::Double, ColumnType::Int64]
    );
    assert_eq!(schema.conflicts().count(), 1);
    // A window inside the integer shard: the integer is widened to the column's float type.
    let (rows, _) = read(
        &client,
        schema.clone(),
        999_999_999_000_000_000,
        1_000_000_001_000_000_000,
        1 << 20,
    )
    .await;
    assert_eq!(
        rows,
        vec![(
            vec![],
            1_000_000_000_000_000_000,
            vec!["v=Double(1.0)".to_string()]
        )]
    );
    let (rows, _) = read(
        &client,
        schema,
        1_599_999_999_000_000_000,
        1_600_000_001_000_000_000,
        1 << 20,
    )
    .await;
    assert_eq!(
        rows,
        vec![(
            vec![],
            1_600_000_000_000_000_000,
            vec!["v=Double(2.5)".to_string()]
        )]
    );
}

#[tokio::test]
async fn a_field_missing_from_the_schema_asks_for_a_refresh() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd, DB);
    let mut cpu = schema::schema(&client, "cpu load").await.unwrap();
    cpu.fields.retain(|f| f.name != "s");
    let mut reader = WindowReader::open(
        &client,
        Arc::new(cpu),
        window("cpu load", 0, i64::MAX / 2),
        1 << 20,
    )
    .await
    .unwrap();
    let error = reader.next_batch().await.unwrap_err();
    assert!(
        matches!(error, SourceError::SchemaChanged { ref field, .. } if field == "s"),
        "{error}"
    );
}

#[tokio::test]
async fn errors_in_an_http_200_body_are_errors_not_empty_data() {
    let Some(influxd) = seeded() else { return };
    let missing = client(&influxd, "no such db");
    let error = schema::measurements(&missing, &[]).await.unwrap_err();
    assert!(
        matches!(error, SourceError::BucketNotFound { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("\"no such db\""), "{error}");
    let missing_policy = client(&influxd, "test db/no_such_rp");
    let error = schema::measurements(&missing_policy, &[])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("retention policy \"no_such_rp\" not found"),
        "{error}"
    );
    let with_policy = client(&influxd, "test db/autogen");
    assert_eq!(
        schema::measurements(&with_policy, &[]).await.unwrap().len(),
        2
    );
    let schema = MeasurementSchema {
        measurement: "cpu load".into(),
        ..Default::default()
    };
    let result = WindowReader::open(
        &missing,
        Arc::new(schema),
        window("cpu load", 0, 10),
        1 << 20,
    )
    .await;
    let error = match result {
        Ok(mut reader) => reader.next_batch().await.unwrap_err(),
        Err(error) => error,
    };
    assert!(
        matches!(error, SourceError::BucketNotFound { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error_naming_the_url() {
    let Some(mut influxd) = seeded() else { return };
    let client = client(&influxd, DB);
    influxd.stop();
    let error = client.ping().await.unwrap_err();
    assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
    assert_eq!(error.retry(), influx2td_bus::Retry::Backoff);
    assert!(error.to_string().contains(&influxd.url()), "{error}");
    influxd.start_again();
    assert_eq!(client.ping().await.unwrap().major, Some(1));
}

#[tokio::test]
async fn influxd_killed_mid_read_is_a_retryable_error_never_a_short_window() {
    let Some(mut influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE big");
    let base: i64 = 1_600_000_000_000_000_000;
    for part in 0..20 {
        let lines: String = (0..10_000)
            .map(|i| {
                let n = part * 10_000 + i;
                format!(
                    "m,series=s{} v={n}i,pad=\"{}\" {}\n",
                    n % 13,
                    "p".repeat(40),
                    base + n
                )
            })
            .collect();
        influxd.write("big", &lines);
    }
    let client = client(&influxd, "big");
    let schema = Arc::new(schema::schema(&client, "m").await.unwrap());
    let mut reader = WindowReader::open(
        &client,
        schema,
        window("m", base, base + 1_000_000),
        64 * 1024,
    )
    .await
    .unwrap();
    let first = reader.next_batch().await.unwrap().unwrap();
    assert!(first.rows > 0);
    influxd.stop();
    let mut rows = first.rows;
    let outcome = loop {
        match reader.next_batch().await {
            Ok(Some(batch)) => rows += batch.rows,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    eprintln!("after killing influxd: {outcome:?} with {rows} rows read");
    match outcome {
        // Everything was already in the socket buffers: then it must be all of it.
        Ok(()) => assert_eq!(rows, 200_000),
        Err(error) => {
            assert_eq!(error.retry(), influx2td_bus::Retry::Backoff, "{error}");
            assert!(rows < 200_000);
        }
    }
    influxd.start_again();
}

/// Measurements that one statement with a list in `FROM` would spoil: `v` is an integer in
/// `a`, a float in `b`, a string in `c` (InfluxDB would cast `a`'s to floats and drop `c`'s
/// rows); `t` is a tag of `a` and a field of `b`; `quiet` has nothing in the window.
const GROUP_LINES: &str = r#"a,t=1 v=1i,w=1 1000
a v=9007199254740993i 4000
b,u=2 v=1.5,t=7i 2000
c v="s \"q\"" 3000
quiet v=1 99999999999
"#;

#[tokio::test]
async fn a_read_of_several_measurements_gives_each_what_a_read_of_it_alone_gives() {
    let Some(influxd) = seeded() else { return };
    influxd.write(DB, GROUP_LINES);
    let client = client(&influxd, DB);
    let names = ["a", "b", "cpu load", "c", "disk.io-ü", "quiet"];
    let schemas = schema::schemas_of(&client, &names).await.unwrap();
    assert_eq!(schemas.len(), names.len(), "{schemas:?}");
    assert_eq!(
        schemas["a"].field_type("v"),
        Some(ColumnType::Int64),
        "schemas asked for together are each a measurement's own"
    );
    assert_eq!(schemas["b"].field_type("v"), Some(ColumnType::Double));
    let (start, end) = (i64::MIN / 2, 10_000_000_000);
    let members = names
        .iter()
        .map(|name| {
            let mut window = window(name, start, end);
            window.read = influx2td_proto::GROUPED_READ | 1;
            (Arc::new(schemas[*name].clone()), window)
        })
        .collect();
    let mut reader = WindowReader::open_group(&client, members, 300)
        .await
        .unwrap();
    let mut grouped: Vec<Vec<pb::RowBatch>> = vec![Vec::new(); names.len()];
    while let Some((member, batch)) = reader.next_member_batch().await.unwrap() {
        let batch = pb::RowBatch::decode(batch.payload()).unwrap();
        assert_eq!(batch.measurement, names[member]);
        assert_eq!(batch.read, influx2td_proto::GROUPED_READ | 1);
        assert!(
            grouped[member].iter().all(|b| b.totals.is_none()),
            "{}: a batch after its last",
            names[member]
        );
        grouped[member].push(batch);
    }
    for (name, batches) in names.iter().zip(&grouped) {
        let totals = batches.last().and_then(|b| b.totals);
        let rows: u64 = batches.iter().map(pb::RowBatch::row_count).sum();
        assert_eq!(
            totals.map(|t| (t.batches as usize, t.rows)),
            Some((batches.len(), rows)),
            "{name}: every measurement ends with its totals, rows or not"
        );
        let (alone, _) = read(&client, schemas[*name].clone(), start, end, 300).await;
        assert_eq!(common::rows(batches), alone, "{name}");
    }
    assert_eq!(
        common::values(&grouped[0]),
        [
            (
                vec![],
                4000,
                vec![("v".to_owned(), "Int64(9007199254740993)".to_owned())]
            ),
            (
                tags(&[("t", "1")]),
                1000,
                vec![
                    ("v".to_owned(), "Int64(1)".to_owned()),
                    ("w".to_owned(), "Double(1.0)".to_owned())
                ]
            ),
        ],
        "a's integers stay integers"
    );
    assert_eq!(common::rows(&grouped[1]).len(), 1);
    assert_eq!(
        common::rows(&grouped[3]),
        [(vec![], 3000, vec![r#"v=String("s \"q\"")"#.to_owned()])],
        "c's strings are read"
    );
    assert_eq!(
        common::rows(&grouped[2]).len(),
        1,
        "cpu load: its point before 1970"
    );
    assert!(grouped[5].iter().all(|b| b.series.is_empty()), "quiet");
}
