//! The TSM source against the InfluxQL source on the same real influxd 1.x: for every window,
//! the same schema and the same rows (tags, times, values, types), from data flushed to TSM
//! files, data still only in the WAL, and after a dropped series and a deleted range.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use influx2td_config::tsm::TsmDirs;
use influx2td_config::{SourceAuth, SourceConfig};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::{ColumnType, Message, pb};
use influx2td_reader::{
    InfluxClient, MeasurementSchema, SourceError, TsmSource, WindowReader, WindowStream, schema,
};
use influx2td_testkit::{Influxd, InfluxdOptions};

const DB: &str = "tsm source";
const DAY: i64 = 86_400_000_000_000;

/// The reader tests' hard cases (names with spaces, commas, quotes, unicode; every type; sparse
/// rows; pre-1970 and nanosecond times), series over several blocks, many series, and a field
/// that is an integer in one shard and a float in another.
fn flushed_lines() -> String {
    let mut lines = vec![
        r#"cpu\ load,host=server\ 01,region=eu\,west f=1.5,i=-3i,s="say \"hi\" \\ ok",b=true 1700000000123456789"#.to_owned(),
        r#"cpu\ load,host=server\ 01,region=eu\,west f=2.5 1700000000123456790"#.to_owned(),
        "cpu\\ load,host=server\\ 02 i=9223372036854775807i,s=\"line\nbreak\" 1700000000123456791".to_owned(),
        r#"cpu\ load,host=server\ 02 f=-1,b=false -1000000000"#.to_owned(),
        r#"disk.io-ü,path=/var/lib\=x,emoji=🔥,quote=a"b'c\d value=42i 1700000000000000000"#.to_owned(),
        "conflict v=1i 1000000000000000000".to_owned(),
        "conflict v=7i 1000000000000000001".to_owned(),
        "conflict v=2.5 1000000000000000000".replace("1000000000000000000", &(1_000_000_000_000_000_000 + 3 * DAY).to_string()),
    ];
    for index in 0..2_500i64 {
        let mut fields = vec![format!("v={}", (index % 17) as f64 * 0.5)];
        if index % 3 == 0 {
            fields.push(format!("n={}i", index * 3));
        }
        if index % 4 == 1 {
            fields.push(format!("s=\"state {}\"", index % 4));
        }
        lines.push(format!(
            "long,host=x {} {}",
            fields.join(","),
            1_000_000_000_000_000_000 + index * 1_000_000_000
        ));
    }
    for host in 0..100 {
        for point in 0..3i64 {
            lines.push(format!(
                "many,host=h{host},dc=d{} v={point}.5,c={}i {}",
                host % 3,
                host * 10 + point,
                1_000_000_000_000_000_000 + point * 1_000_000_000 + host
            ));
        }
    }
    lines.join("\n")
}

/// Written after the flush and kept in the WAL: new points, overwrites of flushed ones, a new
/// field, a new series.
fn wal_lines() -> String {
    [
        r#"cpu\ load,host=server\ 01,region=eu\,west f=9.25,u=1i 1700000000123456790"#,
        r#"cpu\ load,host=server\ 03 f=3.5 1700000000123456800"#,
        "long,host=x v=-1.5,extra=true 1000000000000000000",
        "long,host=x v=-2.5 1000000005000000000",
        "long,host=y v=0.5 1000000007000000000",
    ]
    .join("\n")
}

fn client(influxd: &Influxd) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url: influxd.url(),
        version: None,
        query_language: influx2td_config::QueryLanguage::Influxql,
        auth: SourceAuth::None,
        tls: Default::default(),
        read_timeout: Duration::from_secs(300),
    };
    InfluxClient::new(&config, DB).unwrap()
}

fn dirs(influxd: &Influxd) -> TsmDirs {
    TsmDirs {
        data_dir: influxd.data_dir(),
        wal_dir: influxd.wal_dir(),
    }
}

/// influxd with `flushed_lines` in TSM files (day-long shards) and `wal_lines` only in the WAL.
fn seeded() -> Option<Influxd> {
    let mut influxd = Influxd::start_with(InfluxdOptions {
        cache_snapshot_write_cold_duration: Some("1s".into()),
        ..InfluxdOptions::default()
    })?;
    influxd.query(&format!(
        "CREATE DATABASE \"{DB}\" WITH DURATION INF SHARD DURATION 1d"
    ));
    influxd.write(DB, &flushed_lines());
    wait_flushed(&influxd);
    // From now on nothing is flushed.
    influxd.start_again_with(InfluxdOptions::default());
    influxd.write(DB, &wal_lines());
    // Deletes after the flush: a dropped series and a deleted range inside a flushed series.
    influxd.query_in(Some(DB), "DROP SERIES FROM \"many\" WHERE \"host\" = 'h7'");
    influxd.query_in(
        Some(DB),
        "DELETE FROM \"long\" WHERE time >= 1000000000000000000 + 100s AND time < 1000000000000000000 + 200s",
    );
    let wal_bytes: u64 = shard_dirs(&influxd.wal_dir())
        .iter()
        .flat_map(|wal| std::fs::read_dir(wal).unwrap().filter_map(Result::ok))
        .map(|entry| entry.metadata().unwrap().len())
        .sum();
    assert!(wal_bytes > 0, "the last writes are in the WAL");
    Some(influxd)
}

fn shard_dirs(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.join(DB).join("autogen"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn has_extension(directory: &std::path::Path, extension: &str) -> bool {
    std::fs::read_dir(directory).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            entry
                .path()
                .extension()
                .is_some_and(|found| found == extension)
        })
    })
}

/// Until every shard has a TSM file and its WAL segments are empty.
fn wait_flushed(influxd: &Influxd) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let shards = shard_dirs(&influxd.data_dir());
        let flushed = !shards.is_empty()
            && shards.iter().all(|shard| has_extension(shard, "tsm"))
            && shard_dirs(&influxd.wal_dir()).iter().all(|wal| {
                std::fs::read_dir(wal).is_ok_and(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .all(|entry| entry.metadata().is_ok_and(|m| m.len() == 0))
                })
            });
        if flushed {
            return;
        }
        assert!(Instant::now() < deadline, "influxd did not flush to TSM");
        std::thread::sleep(Duration::from_millis(200));
    }
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

async fn drain(mut stream: WindowStream) -> Vec<pb::RowBatch> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.next_batch().await.unwrap() {
        batches.push(pb::RowBatch::decode(batch.payload()).unwrap());
    }
    batches
}

/// The batches of a read of several measurements, by member.
async fn drain_members(mut stream: WindowStream, members: usize) -> Vec<Vec<pb::RowBatch>> {
    let mut per_member = vec![Vec::new(); members];
    while let Some((member, batch)) = stream.next_member_batch().await.unwrap() {
        per_member[member].push(pb::RowBatch::decode(batch.payload()).unwrap());
    }
    per_member
}

async fn query_read(
    client: &InfluxClient,
    schema: &MeasurementSchema,
    window: WindowRef,
    limit: usize,
) -> Vec<pb::RowBatch> {
    let reader = WindowReader::open(client, Arc::new(schema.clone()), window, limit)
        .await
        .unwrap();
    drain(WindowStream::Influxql(Box::new(reader))).await
}

async fn tsm_read(
    source: &Arc<TsmSource>,
    schema: &MeasurementSchema,
    window: WindowRef,
    limit: usize,
) -> Vec<pb::RowBatch> {
    drain(WindowStream::open_tsm(
        source.clone(),
        Arc::new(schema.clone()),
        window,
        limit,
    ))
    .await
}

/// The windows compared: everything at once, every UTC day with data, and second-long and
/// odd-length windows over the dense stretch (window edges fall between and on points).
fn windows() -> Vec<(i64, i64)> {
    let mut windows = vec![(i64::MIN / 2, i64::MAX / 2)];
    for day in [-1, 11_574, 11_577, 19_675] {
        windows.push((day * DAY, (day + 1) * DAY));
    }
    let base = 1_000_000_000_000_000_000;
    for index in 0..8 {
        windows.push((
            base + index * 1_000_000_000,
            base + (index + 1) * 1_000_000_000,
        ));
    }
    let mut start = base - 3;
    while start < base + 2_600 * 1_000_000_000 {
        windows.push((start, start + 333_333_333_337));
        start += 333_333_333_337;
    }
    windows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_yields_the_rows_the_influxql_source_yields() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd);
    let source = Arc::new(TsmSource::open(&dirs(&influxd), DB).unwrap());
    assert_eq!(source.retention_policy(), "autogen");
    // Four day shards, each flushed to a TSM file; two of them have points in the WAL too.
    let shards = source.summaries().unwrap();
    assert_eq!(shards.len(), 4, "{shards:?}");
    assert!(
        shards.iter().all(|shard| shard.tsm_files >= 1),
        "{shards:?}"
    );
    assert!(
        shards.iter().any(|shard| shard.wal_segments >= 1),
        "{shards:?}"
    );

    let names = schema::measurements(&client, &[]).await.unwrap();
    let found = source.measurements(&[]).unwrap();
    let tsm_names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(tsm_names, names);
    for (name, bounds) in &found {
        let expected = schema::time_bounds(&client, name).await.unwrap();
        assert_eq!(*bounds, expected, "bounds of {name:?}");
    }

    let mut compared_rows = 0;
    for name in &names {
        let query_schema = schema::schema(&client, name).await.unwrap();
        let tsm_schema = source.schema(name).unwrap();
        assert_eq!(tsm_schema, query_schema, "schema of {name:?}");
        for (start, end) in windows() {
            for limit in [influx2td_proto::MAX_BATCH_BYTES, 2_048] {
                let expected =
                    query_read(&client, &query_schema, window(name, start, end), limit).await;
                let read = tsm_read(&source, &tsm_schema, window(name, start, end), limit).await;
                let expected_rows = common::values(&expected);
                assert_eq!(
                    common::values(&read),
                    expected_rows,
                    "{name:?} in [{start}, {end}) by {limit}-byte batches"
                );
                let totals = read.last().unwrap().totals.unwrap();
                assert_eq!(totals.rows, expected_rows.len() as u64);
                assert_eq!(totals.batches as usize, read.len());
                assert!(read.iter().all(|batch| batch.encoded_len() <= limit));
                compared_rows += expected_rows.len();
            }
        }
    }
    assert!(compared_rows > 10_000, "{compared_rows} rows compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_typed_differently_per_shard_is_widened_as_the_query_path_widens_it() {
    let Some(influxd) = seeded() else { return };
    let source = TsmSource::open(&dirs(&influxd), DB).unwrap();
    let schema = source.schema("conflict").unwrap();
    assert_eq!(schema.fields[0].column_type, ColumnType::Double);
    assert_eq!(
        schema.fields[0].conflicting_types,
        [ColumnType::Double, ColumnType::Int64]
    );
    let expected = schema::schema(&client(&influxd), "conflict").await.unwrap();
    assert_eq!(schema, expected);
}

#[test]
fn directories_this_host_cannot_see_are_named() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("no data here");
    let refused = TsmSource::open(
        &TsmDirs {
            data_dir: missing.clone(),
            wal_dir: root.path().to_owned(),
        },
        DB,
    )
    .unwrap_err();
    assert!(matches!(refused, SourceError::Config { .. }), "{refused:?}");
    assert!(
        refused
            .to_string()
            .contains(&format!("cannot read {}", missing.display())),
        "{refused}"
    );
    let refused = TsmSource::open(
        &TsmDirs {
            data_dir: root.path().to_owned(),
            wal_dir: root.path().to_owned(),
        },
        "nope/autogen",
    )
    .unwrap_err();
    assert!(
        refused.to_string().contains("database \"nope\" not found"),
        "{refused}"
    );
}

/// A job reads beside a live server: points written since the last read (new WAL entries and
/// segments) are in the next read, and a shard dropped meanwhile (as retention drops it) holds
/// nothing any more, without an error — the same as the query path answers at that moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_read_sees_new_points_and_a_dropped_shard_as_the_query_path_does() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd);
    let source = Arc::new(TsmSource::open(&dirs(&influxd), DB).unwrap());
    let all = (i64::MIN / 2, i64::MAX / 2);
    let compare = |name: &'static str| {
        let client = client.clone();
        let source = source.clone();
        async move {
            let schema = schema::schema(&client, name).await.unwrap();
            let expected = query_read(&client, &schema, window(name, all.0, all.1), 2_048).await;
            let read = tsm_read(&source, &schema, window(name, all.0, all.1), 2_048).await;
            assert_eq!(common::values(&read), common::values(&expected), "{name:?}");
            common::values(&read).len()
        }
    };
    let before = compare("long").await;
    assert!(before > 2_000, "{before} rows");

    // New points after the first read, a new series among them.
    influxd.write(
        DB,
        "long,host=z v=4.5 1000000009000000000\nlong,host=x v=7.25 1000000010000000000",
    );
    assert_eq!(
        compare("long").await,
        before + 1,
        "one new row, one overwrite"
    );

    // The shard of that day dropped, as retention drops a shard: nothing is read from it.
    let day = 1_000_000_000_000_000_000;
    let shard = source
        .summaries()
        .unwrap()
        .into_iter()
        .find(|shard| {
            shard
                .time_range
                .is_some_and(|(first, last)| first <= day && day <= last)
        })
        .unwrap();
    influxd.query(&format!("DROP SHARD {}", shard.id));
    assert_eq!(
        compare("long").await,
        0,
        "the dropped shard's rows are gone"
    );
    assert!(
        compare("cpu load").await > 0,
        "the other shards are still read"
    );
    assert!(
        source
            .summaries()
            .unwrap()
            .iter()
            .all(|left| left.id != shard.id),
        "the dropped shard is not listed"
    );
}

/// Several sparse measurements' windows read as one work item: each member yields, in its own
/// batches ending with its own totals, what the InfluxQL read of the same group yields for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_measurements_yields_per_member_what_the_influxql_group_read_yields() {
    let Some(influxd) = seeded() else { return };
    let client = client(&influxd);
    let source = Arc::new(TsmSource::open(&dirs(&influxd), DB).unwrap());
    let names = ["conflict", "cpu load", "long", "many"];
    let mut schemas = Vec::new();
    for name in names {
        schemas.push(Arc::new(schema::schema(&client, name).await.unwrap()));
    }
    let base = 1_000_000_000_000_000_000;
    let mut compared = 0;
    for (start, end) in [
        (i64::MIN / 2, i64::MAX / 2),
        (base, base + 1_000_000_000),
        (base - 3, base + 333_333_333_337),
    ] {
        let members: Vec<(Arc<MeasurementSchema>, WindowRef)> = names
            .iter()
            .zip(&schemas)
            .map(|(name, schema)| (schema.clone(), window(name, start, end)))
            .collect();
        let expected = WindowStream::open_group(&client, members.clone(), 2_048)
            .await
            .unwrap();
        let expected = drain_members(expected, names.len()).await;
        let read = drain_members(
            WindowStream::open_tsm_group(source.clone(), members, 2_048),
            names.len(),
        )
        .await;
        for (member, name) in names.iter().enumerate() {
            let rows = common::values(&read[member]);
            assert_eq!(
                rows,
                common::values(&expected[member]),
                "{name:?} in [{start}, {end})"
            );
            let totals = read[member].last().unwrap().totals.unwrap();
            assert_eq!(totals.rows, rows.len() as u64, "{name:?}");
            compared += rows.len();
        }
    }
    assert!(compared > 2_000, "{compared} rows compared");
}
