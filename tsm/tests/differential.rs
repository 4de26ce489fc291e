//! Differential tests: a real influxd 1.6 writes the files, then every series and field read
//! from its shard directories must equal what InfluxQL answers for the same series, point for
//! point and type for type — after flushes to TSM, with data only in the WAL, after deletes,
//! overwrites and a full compaction, and with a field whose type differs between shards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, InfluxdOptions};
use influx2td_tsm::{FieldType, Shard, Values};
use serde_json::Value;

const DAY: i64 = 86_400_000_000_000;
const DATABASE: &str = "tsm test";

/// (measurement, tags, field), unescaped.
type SeriesField = (String, BTreeMap<String, String>, String);

/// InfluxQL's points per UTC day (= shard).
type Expected = BTreeMap<i64, BTreeMap<SeriesField, Vec<(i64, Value)>>>;

#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Float(f64),
    Integer(i64),
    Boolean(bool),
    String(String),
}

fn start(cold: Option<&str>, full_cold: Option<&str>) -> Option<Influxd> {
    let influxd = Influxd::start_with(InfluxdOptions {
        cache_snapshot_write_cold_duration: cold.map(str::to_owned),
        compact_full_write_cold_duration: full_cold.map(str::to_owned),
        ..InfluxdOptions::default()
    })?;
    // Day-long shard groups: a point's shard is the UTC day it falls in.
    influxd.query(&format!(
        "CREATE DATABASE \"{DATABASE}\" WITH DURATION INF SHARD DURATION 1d"
    ));
    Some(influxd)
}

/// The shard directories of the database: (data dir, WAL dir), by shard id.
fn shards(influxd: &Influxd) -> Vec<(PathBuf, PathBuf)> {
    let data = influxd.data_dir().join(DATABASE).join("autogen");
    let mut shards: Vec<(u64, PathBuf)> = std::fs::read_dir(&data)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let id = entry.file_name().to_str()?.parse().ok()?;
                    Some((id, entry.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    shards
        .into_iter()
        .map(|(id, path)| {
            let wal = influxd
                .wal_dir()
                .join(DATABASE)
                .join("autogen")
                .join(id.to_string());
            (path, wal)
        })
        .collect()
}

fn files_with_extension(directory: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|found| found == extension))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Waits until every shard's cache is in TSM files: each shard has one, and its WAL segments
/// are empty (influxd removes the segments a snapshot wrote out).
fn wait_flushed(influxd: &Influxd) {
    wait_until("every shard flushed to TSM", || {
        let shards = shards(influxd);
        !shards.is_empty()
            && shards.iter().all(|(data, wal)| {
                !files_with_extension(data, "tsm").is_empty()
                    && files_with_extension(wal, "wal")
                        .iter()
                        .all(|segment| segment.metadata().is_ok_and(|m| m.len() == 0))
            })
    });
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// InfluxQL's answer, every series and field of the database, by the UTC day (= shard).
fn query_by_day(influxd: &Influxd) -> Expected {
    let all = query_points(influxd, i64::MIN / 2, i64::MAX / 2);
    let days: BTreeSet<i64> = all
        .values()
        .flat_map(|points| points.iter().map(|(time, _)| time.div_euclid(DAY)))
        .collect();
    // Per day, so that each shard's field types are its own (a type conflict between shards
    // is cast when one query spans both).
    days.into_iter()
        .map(|day| (day, query_points(influxd, day * DAY, (day + 1) * DAY)))
        .collect()
}

fn query_points(
    influxd: &Influxd,
    start: i64,
    end: i64,
) -> BTreeMap<SeriesField, Vec<(i64, Value)>> {
    let body = influxd.query_ns(
        DATABASE,
        &format!("SELECT * FROM /.*/ WHERE time >= {start} AND time < {end} GROUP BY *"),
    );
    let response: Value = serde_json::from_str(&body).expect("query answer is JSON");
    let mut points: BTreeMap<SeriesField, Vec<(i64, Value)>> = BTreeMap::new();
    let series = response["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for one in series {
        let measurement = one["name"].as_str().expect("name").to_owned();
        let tags: BTreeMap<String, String> = one["tags"]
            .as_object()
            .map(|tags| {
                tags.iter()
                    .filter_map(|(key, value)| {
                        let value = value.as_str()?;
                        (!value.is_empty()).then(|| (key.clone(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let columns: Vec<String> = one["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|column| column.as_str().expect("column name").to_owned())
            .collect();
        for row in one["values"].as_array().expect("values") {
            let row = row.as_array().expect("row");
            let time = row[0].as_i64().expect("epoch=ns time");
            for (column, value) in columns.iter().zip(row).skip(1) {
                if value.is_null() {
                    continue;
                }
                points
                    .entry((measurement.clone(), tags.clone(), column.clone()))
                    .or_default()
                    .push((time, value.clone()));
            }
        }
    }
    points
}

/// `SHOW FIELD KEYS`: (measurement, field) → the types InfluxDB lists.
fn field_types(influxd: &Influxd) -> BTreeSet<(String, String, String)> {
    let body = influxd.query_in(Some(DATABASE), "SHOW FIELD KEYS");
    let response: Value = serde_json::from_str(&body).expect("JSON");
    let mut types = BTreeSet::new();
    for one in response["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let measurement = one["name"].as_str().expect("name").to_owned();
        for row in one["values"].as_array().expect("values") {
            types.insert((
                measurement.clone(),
                row[0].as_str().expect("field").to_owned(),
                row[1].as_str().expect("type").to_owned(),
            ));
        }
    }
    types
}

/// What the TSM reader finds: every shard, every key, by the shard's day.
#[derive(Debug, Default)]
struct Read {
    by_day: BTreeMap<i64, BTreeMap<SeriesField, Vec<(i64, Typed)>>>,
    types: BTreeSet<(String, String, String)>,
    tsm_files: usize,
}

fn open_shards(shards: &[(PathBuf, PathBuf)], with_wal: bool) -> Vec<Shard> {
    shards
        .iter()
        .map(|(data, wal)| {
            Shard::open(data, with_wal.then_some(wal.as_path()))
                .unwrap_or_else(|error| panic!("open shard {}: {error}", data.display()))
        })
        .collect()
}

fn read_shards(shards: &[(PathBuf, PathBuf)], with_wal: bool) -> Read {
    read_opened(&open_shards(shards, with_wal))
}

fn read_opened(shards: &[Shard]) -> Read {
    let mut read = Read::default();
    for shard in shards {
        read.tsm_files += shard.files().count();
        let Some((min, max)) = shard.time_range() else {
            continue;
        };
        let day = min.div_euclid(DAY);
        assert_eq!(day, max.div_euclid(DAY), "a shard holds one day");
        for measurement in shard.measurements() {
            for (field, field_type) in shard.fields(&measurement) {
                read.types
                    .insert((measurement.clone(), field, field_type.name().to_owned()));
            }
        }
        for key in shard.keys() {
            let points = shard
                .read_key(key.key(), i64::MIN, i64::MAX)
                .unwrap_or_else(|error| panic!("read {:?}: {error}", key.key()))
                .expect("a listed key");
            assert_eq!(points.field_type(), key.field_type);
            if points.is_empty() {
                continue;
            }
            let values: Vec<Typed> = match points.values {
                Values::Float(values) => values.into_iter().map(Typed::Float).collect(),
                Values::Integer(values) => values.into_iter().map(Typed::Integer).collect(),
                Values::Boolean(values) => values.into_iter().map(Typed::Boolean).collect(),
                Values::String(values) => values.into_iter().map(Typed::String).collect(),
                Values::Unsigned(_) => panic!("influxd 1.6 writes no unsigned fields"),
            };
            let series_field = (
                key.measurement().to_owned(),
                key.series().tags.into_iter().collect(),
                key.field().to_owned(),
            );
            let previous = read
                .by_day
                .entry(day)
                .or_default()
                .insert(series_field, points.times.into_iter().zip(values).collect());
            assert!(previous.is_none(), "one key once per shard");
        }
    }
    read
}

fn same_value(ours: &Typed, theirs: &Value) -> bool {
    match ours {
        // JSON writes 2.0 as 2: the type is checked against SHOW FIELD KEYS instead.
        Typed::Float(value) => theirs.as_f64() == Some(*value),
        Typed::Integer(value) => theirs.as_i64() == Some(*value),
        Typed::Boolean(value) => theirs.as_bool() == Some(*value),
        Typed::String(value) => theirs.as_str() == Some(value.as_str()),
    }
}

/// Asserts the reader found exactly InfluxQL's points, and returns how many.
fn assert_same(ours: &Read, expected: &Expected) -> usize {
    let our_days: BTreeSet<_> = ours.by_day.keys().collect();
    let their_days: BTreeSet<_> = expected.keys().collect();
    assert_eq!(our_days, their_days, "the days (shards) with data");
    let mut total = 0;
    for (day, theirs) in expected {
        let our_series = &ours.by_day[day];
        let our_keys: BTreeSet<_> = our_series.keys().collect();
        let their_keys: BTreeSet<_> = theirs.keys().collect();
        assert_eq!(our_keys, their_keys, "series and fields of day {day}");
        for (series_field, their_points) in theirs {
            let our_points = &our_series[series_field];
            assert_eq!(
                our_points.iter().map(|(time, _)| *time).collect::<Vec<_>>(),
                their_points
                    .iter()
                    .map(|(time, _)| *time)
                    .collect::<Vec<_>>(),
                "times of {series_field:?}"
            );
            for ((time, ours), (_, theirs)) in our_points.iter().zip(their_points) {
                assert!(
                    same_value(ours, theirs),
                    "{series_field:?} at {time}: ours {ours:?}, InfluxQL {theirs}"
                );
            }
            total += our_points.len();
        }
    }
    total
}

/// Escapes a line protocol measurement, tag key or tag value, or field key.
fn escape(text: &str, measurement: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c == ',' || c == ' ' || (!measurement && c == '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_field(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A deterministic stream of numbers for values.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Mixed types, awkward names, pre-1970 and nanosecond times, sparse rows, many series, and
/// long series spanning several blocks.
fn mixed_data() -> String {
    let mut numbers = Numbers(0x2545_F491_4F6C_DD1D);
    let mut lines = Vec::new();
    // Pre-1970 (1969-12-31) with odd nanoseconds.
    let before_1970 = -DAY + 123;
    for index in 0..50i64 {
        let time = before_1970 + index * 1_234_567_891;
        let mut fields = vec![format!("f={}", (numbers.next() % 10_000) as f64 / 7.0)];
        if index % 3 == 0 {
            fields.push(format!("i={}i", numbers.next() as i64));
        }
        if index % 4 == 1 {
            fields.push(format!(
                "s={}",
                string_field("say \"hi\" \\ and\nnew line ✓ ünï")
            ));
        }
        if index % 5 == 2 {
            fields.push(format!("b={}", index % 2 == 0));
        }
        lines.push(format!("mixed,host=a {} {time}", fields.join(",")));
    }
    // Awkward names: spaces, commas, equals, quotes and unicode everywhere a name goes.
    let measurement = escape("we ird,m\"é", true);
    let tag_key = escape("t=k 1", false);
    let tag_value = escape("v,a l=ue\"ü", false);
    let field_key = escape("f i,e=ld\"✓", false);
    for index in 0..20i64 {
        lines.push(format!(
            "{measurement},{tag_key}={tag_value},plain=x {field_key}={index}i,other={}.25 {}",
            index,
            1_000_000_000_123_456_789 + index * 7
        ));
    }
    // Many series, a few points each, on 2001-09-09.
    for host in 0..200 {
        for point in 0..5i64 {
            lines.push(format!(
                "many,host=h{host},dc=d{} v={},c={}i {}",
                host % 3,
                numbers.next() as f64 / 3.0e15,
                numbers.next() % 1000,
                1_000_000_000_000_000_000 + point * 1_000_000_000 + host
            ));
        }
    }
    // Long series (several 1000-point blocks): regular times (RLE), repeating values.
    for index in 0..2_500i64 {
        lines.push(format!(
            "long,host=x v={},n={}i,s=\"state {}\",b={} {}",
            (index % 17) as f64 * 0.5,
            index * 3,
            index % 4,
            index % 3 == 0,
            1_000_000_000_000_000_000 + index * 1_000_000_000
        ));
    }
    lines.join("\n")
}

fn check_types(influxd: &Influxd, read: &Read) {
    assert_eq!(
        read.types,
        field_types(influxd),
        "field types against SHOW FIELD KEYS"
    );
}

#[test]
fn tsm_files_match_the_query_path() {
    let Some(influxd) = start(Some("1s"), None) else {
        return;
    };
    influxd.write(DATABASE, &mixed_data());
    wait_flushed(&influxd);
    let read = read_shards(&shards(&influxd), true);
    // Two shards: 1969-12-31 and 2001-09-09.
    assert_eq!(read.tsm_files, 2, "{} TSM files", read.tsm_files);
    let points = assert_same(&read, &query_by_day(&influxd));
    assert_eq!(points, 50 + 17 + 13 + 10 + 40 + 2000 + 4 * 2500);
    check_types(&influxd, &read);
}

fn hash_tree(directory: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("readable directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).expect("readable file"));
            }
        }
    }
    files
}

#[test]
fn wal_only_data_matches_and_the_directories_stay_byte_identical() {
    // influxd's default cold duration (10 minutes): nothing is flushed during the test.
    let Some(mut influxd) = start(None, None) else {
        return;
    };
    influxd.write(DATABASE, &mixed_data());
    // Overwrites and deletes in the WAL too.
    influxd.write(
        DATABASE,
        "mixed,host=a f=-1.5 -86399999999877\nlong,host=x v=99.5 1000000000000000000",
    );
    influxd.query_in(Some(DATABASE), "DELETE FROM \"many\" WHERE \"host\" = 'h7'");
    influxd.query_in(
        Some(DATABASE),
        "DELETE FROM \"long\" WHERE time >= 1000000000000000000 + 100s AND time < 1000000000000000000 + 200s",
    );
    let expected = query_by_day(&influxd);
    // Killed like a crash, so the WAL stays as it is and nothing changes below the reader.
    influxd.stop();
    let shards = shards(&influxd);
    assert!(
        shards
            .iter()
            .all(|(data, _)| files_with_extension(data, "tsm").is_empty())
    );
    let before = (
        hash_tree(&influxd.data_dir()),
        hash_tree(&influxd.wal_dir()),
    );
    assert!(
        before.1.values().any(|segment| !segment.is_empty()),
        "data is in the WAL"
    );

    let read = read_shards(&shards, true);
    assert_eq!(read.tsm_files, 0);
    let points = assert_same(&read, &expected);
    assert_eq!(
        points,
        50 + 17 + 13 + 10 + 40 + 2000 - 10 + 4 * (2500 - 100)
    );

    let after = (
        hash_tree(&influxd.data_dir()),
        hash_tree(&influxd.wal_dir()),
    );
    assert!(
        before == after,
        "reading changed a file under the data or WAL directory"
    );
}

#[test]
fn deleted_ranges_and_dropped_series_never_reappear() {
    let Some(mut influxd) = start(Some("1s"), None) else {
        return;
    };
    influxd.write(DATABASE, &mixed_data());
    wait_flushed(&influxd);
    influxd.query_in(
        Some(DATABASE),
        "DELETE FROM \"long\" WHERE time < 1000000000000000000 + 1000s",
    );
    influxd.query_in(
        Some(DATABASE),
        "DROP SERIES FROM \"many\" WHERE \"dc\" = 'd1'",
    );
    influxd.query_in(Some(DATABASE), "DELETE FROM \"mixed\"");
    let shards = shards(&influxd);
    assert!(
        shards
            .iter()
            .any(|(data, _)| !files_with_extension(data, "tombstone").is_empty()),
        "the deletes wrote tombstones"
    );
    let expected = query_by_day(&influxd);
    let read = read_shards(&shards, true);
    let points = assert_same(&read, &expected);
    // All of `mixed` gone, 67 of the 200 `many` hosts dropped, `long`'s first 1000 s deleted.
    assert_eq!(points, 40 + 2 * 133 * 5 + 4 * 1500);
    assert!(
        read.by_day.keys().all(|&day| day != -1),
        "the deleted day stays empty"
    );

    // The same after a crash, reading what influxd left on disk.
    influxd.stop();
    let read = read_shards(&shards, true);
    assert_eq!(assert_same(&read, &expected), points);
}

#[test]
fn an_overwritten_point_takes_the_newer_file() {
    let Some(influxd) = start(Some("1s"), None) else {
        return;
    };
    let base = 1_500_000_000_000_000_000i64;
    let first: Vec<String> = (0..1500)
        .map(|index| {
            format!(
                "over,host=a v={index}.5,s=\"old {index}\" {}",
                base + index * 1_000_000
            )
        })
        .collect();
    influxd.write(DATABASE, &first.join("\n"));
    wait_flushed(&influxd);
    // Every third point again with new values, and a few new points between them.
    let second: Vec<String> = (0..1500)
        .step_by(3)
        .map(|index| {
            format!(
                "over,host=a v=-{index}.25,s=\"new {index}\" {}",
                base + index * 1_000_000
            )
        })
        .chain((0..10).map(|index| format!("over,host=a v=7 {}", base + index * 1_000_000 + 1)))
        .collect();
    influxd.write(DATABASE, &second.join("\n"));
    wait_until("a second TSM file", || {
        shards(&influxd)
            .iter()
            .map(|(data, _)| files_with_extension(data, "tsm").len())
            .sum::<usize>()
            >= 2
    });
    wait_flushed(&influxd);
    let read = read_shards(&shards(&influxd), true);
    assert!(read.tsm_files >= 2, "{} TSM files", read.tsm_files);
    assert_same(&read, &query_by_day(&influxd));
    let (_, series) = read.by_day.iter().next().expect("a day");
    let values = &series[&(
        "over".to_owned(),
        [("host".to_owned(), "a".to_owned())].into(),
        "s".to_owned(),
    )];
    assert_eq!(values.len(), 1500);
    assert_eq!(values[3].1, Typed::String("new 3".into()));
    assert_eq!(values[4].1, Typed::String("old 4".into()));
}

#[test]
fn a_full_compaction_keeps_the_same_points() {
    let Some(influxd) = start(Some("1s"), Some("2s")) else {
        return;
    };
    let data = mixed_data();
    let lines: Vec<&str> = data.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    influxd.write(DATABASE, &first.join("\n"));
    wait_flushed(&influxd);
    influxd.write(DATABASE, &second.join("\n"));
    // Compacted: one file per shard, with a sequence above 1.
    wait_until("a full compaction", || {
        let shards = shards(&influxd);
        shards.iter().any(|(data, _)| {
            let files = files_with_extension(data, "tsm");
            files.len() == 1
                && files[0]
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| !name.ends_with("-000000001.tsm"))
        }) && shards
            .iter()
            .all(|(data, _)| files_with_extension(data, "tsm").len() == 1)
    });
    wait_flushed(&influxd);
    let read = read_shards(&shards(&influxd), true);
    let points = assert_same(&read, &query_by_day(&influxd));
    assert_eq!(points, 50 + 17 + 13 + 10 + 40 + 2000 + 4 * 2500);
}

#[test]
fn a_field_of_two_types_in_two_shards_is_read_as_each_shard_wrote_it() {
    let Some(influxd) = start(Some("1s"), None) else {
        return;
    };
    influxd.write(
        DATABASE,
        "conflict,host=a f=1i 1000000000000000000\nconflict,host=a f=2i 1000000001000000000",
    );
    // Another day, another shard: there the field is a float.
    influxd.write(
        DATABASE,
        &format!(
            "conflict,host=a f=2.5 {}",
            1_000_000_000_000_000_000 + 3 * DAY
        ),
    );
    wait_flushed(&influxd);
    let shards = shards(&influxd);
    assert_eq!(shards.len(), 2);
    let read = read_shards(&shards, true);
    assert_same(&read, &query_by_day(&influxd));
    let types: Vec<FieldType> = shards
        .iter()
        .map(|(data, _)| Shard::open(data, None).expect("shard").fields("conflict")["f"])
        .collect();
    assert_eq!(types, vec![FieldType::Integer, FieldType::Float]);
}

#[test]
fn the_wal_wins_over_tsm_files_and_its_deletes_reach_them() {
    let Some(mut influxd) = start(Some("1s"), None) else {
        return;
    };
    influxd.write(DATABASE, &mixed_data());
    wait_flushed(&influxd);
    // From now on nothing is flushed: what follows stays in the WAL, over the TSM files.
    influxd.start_again_with(InfluxdOptions::default());
    let overwrites: Vec<String> = (0..2_500i64)
        .step_by(5)
        .map(|index| {
            format!(
                "long,host=x v=-{index}.5,s=\"wal {index}\" {}",
                1_000_000_000_000_000_000 + index * 1_000_000_000
            )
        })
        .collect();
    influxd.write(DATABASE, &overwrites.join("\n"));
    influxd.query_in(
        Some(DATABASE),
        "DROP SERIES FROM \"many\" WHERE \"host\" = 'h3'",
    );
    influxd.query_in(
        Some(DATABASE),
        "DELETE FROM \"long\" WHERE time >= 1000000000000000000 + 2000s",
    );
    let expected = query_by_day(&influxd);
    influxd.stop();
    let shards = shards(&influxd);
    assert!(
        shards
            .iter()
            .any(|(_, wal)| files_with_extension(wal, "wal")
                .iter()
                .any(|segment| segment.metadata().is_ok_and(|metadata| metadata.len() > 0))),
        "the overwrites are in the WAL"
    );
    let read = read_shards(&shards, true);
    assert_eq!(read.tsm_files, 2);
    let points = assert_same(&read, &expected);
    assert_eq!(points, 50 + 17 + 13 + 10 + 40 + 2000 - 10 + 4 * 2000);
    let (_, series) = read.by_day.iter().last().expect("a day");
    let long_s = &series[&(
        "long".to_owned(),
        [("host".to_owned(), "x".to_owned())].into(),
        "s".to_owned(),
    )];
    assert_eq!(long_s[5].1, Typed::String("wal 5".into()));
    assert_eq!(long_s[6].1, Typed::String("state 2".into()));
}

#[test]
fn a_shard_opened_before_a_compaction_reads_the_files_it_opened() {
    let Some(mut influxd) = start(Some("1s"), None) else {
        return;
    };
    let data = mixed_data();
    let lines: Vec<&str> = data.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    influxd.write(DATABASE, &first.join("\n"));
    wait_flushed(&influxd);
    influxd.write(DATABASE, &second.join("\n"));
    wait_until("two TSM files in a shard", || {
        shards(&influxd)
            .iter()
            .any(|(data, _)| files_with_extension(data, "tsm").len() >= 2)
    });
    wait_flushed(&influxd);
    let expected = query_by_day(&influxd);
    let paths = shards(&influxd);
    let opened = open_shards(&paths, true);
    let before: Vec<PathBuf> = paths
        .iter()
        .flat_map(|(data, _)| files_with_extension(data, "tsm"))
        .collect();

    // Now influxd compacts every shard into one new file and deletes the files we opened.
    influxd.start_again_with(InfluxdOptions {
        cache_snapshot_write_cold_duration: Some("1s".into()),
        compact_full_write_cold_duration: Some("1s".into()),
        ..InfluxdOptions::default()
    });
    wait_until("the opened files replaced by a compaction", || {
        before.iter().any(|path| !path.exists())
            && paths
                .iter()
                .all(|(data, _)| files_with_extension(data, "tsm").len() == 1)
    });
    // The shard opened before reads what it opened; one opened now reads the new file.
    assert_same(&read_opened(&opened), &expected);
    assert_same(&read_shards(&paths, true), &expected);
}
