//! `influx2td run` end to end: a real influxd, the binary, the file target replayed as TDengine
//! would hold it, compared row by row with the source.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use influx2td_testkit::Influxd;
use influx2td_writer::mapping::child_table_name;
use influx2td_writer::replay::{Literal, replay_directory};

mod common;
use common::{output_text, terminate};

const HOUR: i64 = 3_600_000_000_000;
/// 2023-11-14T21:46:40Z: the job's begin.
const T0: i64 = 1_700_000_000_000_000_000 - 1_600_000_000_000;

/// A point: measurement, tags, time, fields with the value TDengine should hold.
#[derive(Debug, Clone)]
struct Point {
    measurement: &'static str,
    tags: Vec<(&'static str, String)>,
    time: i64,
    fields: Vec<(&'static str, Literal, String)>,
}

fn float(value: f64) -> (Literal, String) {
    (Literal::Number(format!("{value:?}")), format!("{value:?}"))
}
fn int(value: i64) -> (Literal, String) {
    (Literal::Number(value.to_string()), format!("{value}i"))
}
fn text(value: &str) -> (Literal, String) {
    (
        Literal::Text(value.to_owned()),
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
    )
}
fn boolean(value: bool) -> (Literal, String) {
    (Literal::Bool(value), value.to_string())
}

fn field(name: &'static str, value: (Literal, String)) -> (&'static str, Literal, String) {
    (name, value.0, value.1)
}

fn escape_key(text: &str) -> String {
    text.replace(',', "\\,")
        .replace('=', "\\=")
        .replace(' ', "\\ ")
}

fn line(point: &Point) -> String {
    let mut line = escape_key(point.measurement).replace("\\=", "=");
    for (key, value) in &point.tags {
        line.push_str(&format!(",{}={}", escape_key(key), escape_key(value)));
    }
    let fields: Vec<String> = point
        .fields
        .iter()
        .map(|(name, _, lp)| format!("{}={lp}", escape_key(name)))
        .collect();
    format!("{line} {} {}\n", fields.join(","), point.time)
}

/// The source: `cpu` over five hours with two hosts and every type, a point exactly at begin,
/// one exactly at end (not copied), one before begin (not copied), `disk io` with hard tag
/// values, tagless `mem` before 1970 relative to nothing (it has its own hour), `skip_me`
/// excluded by the measurement filter.
fn points(end: i64) -> (Vec<Point>, Vec<Point>) {
    let mut copied = Vec::new();
    for hour in 0..5 {
        for (index, host) in ["server 01", "server,02"].iter().enumerate() {
            let time = T0 + hour * HOUR + index as i64 * 1_000 + 123;
            copied.push(Point {
                measurement: "cpu",
                tags: vec![("host", (*host).to_owned()), ("region", "eu-west".into())],
                time,
                fields: vec![
                    field("usage", float(hour as f64 + 0.5)),
                    field("count", int(-(hour * 10 + index as i64))),
                    field(
                        "state",
                        text(if hour % 2 == 0 {
                            "ok"
                        } else {
                            "it's \"hot\"\\"
                        }),
                    ),
                    field("up", boolean(hour % 2 == 0)),
                ],
            });
        }
    }
    copied.push(Point {
        measurement: "cpu",
        tags: vec![("host", "edge".into())],
        time: T0,
        fields: vec![field("usage", float(7.25))],
    });
    copied.push(Point {
        measurement: "disk io",
        tags: vec![("path", "/var/lib x=1,y".into()), ("emoji", "🔥".into())],
        time: T0 + HOUR / 2,
        fields: vec![field("free", int(1 << 40))],
    });
    copied.push(Point {
        measurement: "mem",
        tags: vec![],
        time: T0 + 2 * HOUR + 1,
        fields: vec![field("used", int(42)), field("ok", boolean(true))],
    });
    let skipped = vec![
        Point {
            measurement: "cpu",
            tags: vec![("host", "edge".into())],
            time: end,
            fields: vec![field("usage", float(8.5))],
        },
        Point {
            measurement: "cpu",
            tags: vec![("host", "edge".into())],
            time: T0 - 1,
            fields: vec![field("usage", float(6.5))],
        },
        Point {
            measurement: "skip_me",
            tags: vec![],
            time: T0 + 1,
            fields: vec![field("v", int(1))],
        },
    ];
    (copied, skipped)
}

/// The target holds exactly `expected`: every row, with its values, and nothing else.
fn assert_target_equals(directory: &Path, expected: &[Point]) {
    let model = replay_directory(directory).unwrap();
    let mut wanted: BTreeMap<(String, i64), BTreeMap<String, Literal>> = BTreeMap::new();
    for point in expected {
        let tags: Vec<(&str, &str)> = point.tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let child = child_table_name(point.measurement, &tags);
        let values = point
            .fields
            .iter()
            .map(|(name, literal, _)| ((*name).to_owned(), literal.clone()))
            .collect();
        wanted.insert((child, point.time), values);
    }
    let mut found: BTreeMap<(String, i64), BTreeMap<String, Literal>> = BTreeMap::new();
    for (child, table) in &model.tables {
        for (time, row) in &table.rows {
            let values = row
                .iter()
                .filter(|(_, v)| **v != Literal::Null)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            found.insert((child.clone(), *time), values);
        }
    }
    assert_eq!(found, wanted);
}

/// `line` without the clauses writing into super table `metrics`.`stable` (an INSERT of
/// several child tables names each `metrics`.`t_...`); `None` when nothing is left of it.
fn without_super_table(line: &str, stable: &str) -> Option<String> {
    let Some(clauses) = line.strip_prefix("INSERT INTO ") else {
        return Some(line.to_owned());
    };
    let using = format!("USING `metrics`.`{stable}`");
    let kept: Vec<&str> = clauses
        .trim_end_matches(';')
        .split(" `metrics`.`t_")
        .enumerate()
        .filter(|(_, clause)| !clause.contains(&using))
        .map(|(index, clause)| {
            if index == 0 {
                clause.strip_prefix("`metrics`.`t_").unwrap_or(clause)
            } else {
                clause
            }
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    let clauses: Vec<String> = kept
        .iter()
        .map(|clause| format!("`metrics`.`t_{clause}"))
        .collect();
    Some(format!("INSERT INTO {};", clauses.join(" ")))
}

fn command(
    args: &[&str],
    source: &str,
    target: &Path,
    state: &Path,
    extra: &[(&str, String)],
) -> Command {
    let mut command = common::influx2td();
    command
        .env("INFLUX2TD_SOURCE_URL", source)
        .env("INFLUX2TD_BUCKET", "db")
        .env("INFLUX2TD_JOB", "e2e")
        .env(
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", target.display()),
        )
        .env("INFLUX2TD_TARGET_DATABASE", "metrics")
        .env("INFLUX2TD_STATE_DIR", state)
        .env("INFLUX2TD_WINDOW", "1h")
        .args(args);
    for (name, value) in extra {
        command.env(name, value);
    }
    command
}

#[test]
fn run_copies_the_source_exactly_with_begin_end_edges_and_filter() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let end = T0 + 5 * HOUR;
    let (copied, skipped) = points(end);
    let lines: String = copied.iter().chain(&skipped).map(line).collect();
    influxd.write("db", &lines);
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        ("INFLUX2TD_END", influx2td_config::format_time(end)),
        ("INFLUX2TD_MEASUREMENTS", "cpu,/^(disk|mem)/".to_owned()),
    ];
    let run = |args: &[&str]| {
        command(args, &influxd.url(), &target, &state, &settings)
            .output()
            .unwrap()
    };
    let output = run(&["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    assert_target_equals(&target, &copied);

    let status = run(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let measurements = &report["measurements"];
    assert_eq!(measurements["cpu"]["rows_written"], 11);
    assert_eq!(
        measurements["cpu"]["watermark_ns"], end,
        "consistent up to end"
    );
    assert_eq!(measurements["disk io"]["rows_written"], 1);
    assert_eq!(measurements["mem"]["rows_written"], 1);
    assert!(measurements.get("skip_me").is_none());

    // verify: every field's count matches over the written range.
    let verified = run(&["verify"]);
    let text = output_text(&verified);
    assert_eq!(verified.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok   cpu [2023-11-14T21:46:40Z .. 2023-11-15T02:46:40Z)"),
        "{text}"
    );
    assert!(
        text.contains("usage                    influxdb           11  tdengine           11"),
        "{text}"
    );

    // Take mem's rows out of the target: verify says where.
    let file = common::only_file(&target);
    let original = std::fs::read_to_string(&file).unwrap();
    // (A statement may hold the rows of several measurements: only mem's clauses go.)
    let tampered: String = original
        .lines()
        .filter_map(|line| without_super_table(line, "mem"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, tampered).unwrap();
    let differs = run(&["verify"]);
    let text = output_text(&differs);
    assert_eq!(differs.status.code(), Some(1), "{text}");
    assert!(text.contains("DIFF mem"), "{text}");
    assert!(
        text.contains("! used                     influxdb            1  tdengine            0"),
        "{text}"
    );
    assert!(text.contains("ok   cpu"), "{text}");
    assert!(
        text.contains(
            "! window [2023-11-14T23:46:40Z .. 2023-11-15T00:46:40Z)  influxdb 2 values  tdengine 0"
        ),
        "{text}"
    );
    // The sum of cpu's first numeric field matches: -(0+1+10+11+...+40+41) = -205.
    assert!(
        text.contains("  sum(count)               influxdb         -205  tdengine         -205"),
        "{text}"
    );

    // --repair reads the window again and verifies anew.
    let repaired = run(&["verify", "--repair"]);
    let text = output_text(&repaired);
    assert_eq!(repaired.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "repaired mem [2023-11-14T23:46:40Z .. 2023-11-15T00:46:40Z): 1 rows written"
        ),
        "{text}"
    );
    assert!(text.contains("ok   mem"), "{text}");
    assert_target_equals(&target, &copied);

    // Run again: nothing left to do, nothing written twice.
    let again = run(&["run"]);
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    assert_target_equals(&target, &copied);
    let text = String::from_utf8_lossy(&run(&["status"]).stdout).into_owned();
    assert!(
        text.contains("cpu                      2023-11-15T02:46:40Z"),
        "{text}"
    );
}

#[test]
fn run_resumes_after_being_killed_midway() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    // 3000 one-second windows of 2 rows each: long enough to be killed midway.
    let second = 1_000_000_000;
    let copied: Vec<Point> = (0..6000)
        .map(|n| Point {
            measurement: "load",
            tags: vec![("shard", format!("s{}", n % 2))],
            time: T0 + (n as i64 / 2) * second,
            fields: vec![field("value", int(n as i64))],
        })
        .collect();
    influxd.write("db", &copied.iter().map(line).collect::<String>());
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        (
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + 3000 * second),
        ),
        ("INFLUX2TD_WINDOW", "1s".to_owned()),
        ("INFLUX2TD_READ_CONCURRENCY", "1".to_owned()),
    ];
    let mut first = spawn_run(&influxd, &target, &state, &settings);
    // Kill it (SIGKILL: no goodbye) once some windows are checkpointed.
    let checkpoints = state.join("e2e").join("checkpoints.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let watermark = std::fs::read_to_string(&checkpoints)
            .ok()
            .and_then(|text| {
                text.split("watermark_ns\\\":").nth(1).map(|rest| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
            })
            .and_then(|digits| digits.parse::<i64>().ok());
        if watermark.is_some_and(|w| w > T0 + 100 * second) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let partial = replay_directory(&target).unwrap().rows("load");
    assert!(
        partial < copied.len(),
        "killed too late to test a resume ({partial} rows already)"
    );

    let second = command(&["run"], &influxd.url(), &target, &state, &settings)
        .output()
        .unwrap();
    let text = output_text(&second);
    assert_eq!(second.status.code(), Some(0), "{text}");
    assert!(
        text.contains("resuming") && text.contains("true"),
        "the second run resumes: {text}"
    );
    assert_target_equals(&target, &copied);
}

/// A temporary directory with the target and state paths of a job in it.
fn workdir() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let state = directory.path().join("state");
    (directory, target, state)
}

/// Starts `influx2td run` in the background, its output discarded.
fn spawn_run(
    influxd: &Influxd,
    target: &Path,
    state: &Path,
    settings: &[(&str, String)],
) -> influx2td_testkit::KillOnDrop {
    influx2td_testkit::KillOnDrop(
        command(&["run"], &influxd.url(), target, state, settings)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `status --json` of the job.
fn status_json(
    influxd: &Influxd,
    target: &Path,
    state: &Path,
    settings: &[(&str, String)],
) -> serde_json::Value {
    let output = command(
        &["status", "--json"],
        &influxd.url(),
        target,
        state,
        settings,
    )
    .output()
    .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// One point of a `live` measurement at `begin + 1`, written to the source.
fn live_history(influxd: &Influxd, begin: i64) -> Point {
    influxd.query("CREATE DATABASE db");
    let history = Point {
        measurement: "live",
        tags: vec![("host", "a".into())],
        time: begin + 1,
        fields: vec![field("v", int(1))],
    };
    influxd.write("db", &line(&history));
    history
}

#[test]
fn run_without_end_keeps_syncing_new_points_after_the_delay() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    let now = common::now_ns;
    let begin = now() - 20_000_000_000;
    let history = live_history(&influxd, begin);
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(begin)),
        ("INFLUX2TD_WINDOW", "1s".to_owned()),
        ("INFLUX2TD_DELAY", "2s".to_owned()),
    ];
    let mut job = spawn_run(&influxd, &target, &state, &settings);
    let wait_for = |rows: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while replay_directory(&target)
            .map(|model| model.rows("live"))
            .unwrap_or(0)
            < rows
        {
            assert!(std::time::Instant::now() < deadline, "rows did not arrive");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(1);
    // New points, one of them late (older than the newest, still within the delay).
    let fresh = Point {
        measurement: "live",
        tags: vec![("host", "a".into())],
        time: now(),
        fields: vec![field("v", int(2))],
    };
    let late = Point {
        measurement: "live",
        tags: vec![("host", "b".into())],
        time: now() - 1_000_000_000,
        fields: vec![field("v", int(3))],
    };
    influxd.write("db", &(line(&fresh) + &line(&late)));
    wait_for(3);
    assert_target_equals(&target, &[history, fresh, late]);
    terminate(&mut job);
}

#[test]
fn run_splits_a_dense_window_and_still_copies_every_row() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    // 40,000 rows in one hour: far over max_window_rows = 1000.
    let copied: Vec<Point> = (0..40_000)
        .map(|n| Point {
            measurement: "dense",
            tags: vec![("sensor", format!("s{}", n % 4))],
            time: T0 + n as i64 * 50_000_000,
            fields: vec![field("value", int(n as i64))],
        })
        .collect();
    influxd.write("db", &copied.iter().map(line).collect::<String>());
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        ("INFLUX2TD_END", influx2td_config::format_time(T0 + HOUR)),
        ("INFLUX2TD_MAX_WINDOW_ROWS", "1000".to_owned()),
    ];
    let output = command(&["run"], &influxd.url(), &target, &state, &settings)
        .output()
        .unwrap();
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("window split in halves"), "{text}");
    assert_target_equals(&target, &copied);
    let report = status_json(&influxd, &target, &state, &settings);
    assert_eq!(
        report["measurements"]["dense"]["rows_written"], 40_000,
        "rows of the partial reads are not counted"
    );
    assert!(
        report["measurements"]["dense"]["windows_done"]
            .as_u64()
            .unwrap()
            > 1
    );
    assert_eq!(report["measurements"]["dense"]["watermark_ns"], T0 + HOUR);
}

/// 30 sparse measurements over five hours, two series each, one point per series and hour;
/// `v` is an integer, a float, a string or a boolean depending on the measurement (a read of
/// them together must keep each one's type), and some names need quoting.
fn sparse_points() -> Vec<Point> {
    let mut points = Vec::new();
    for index in 0..30 {
        let name = match index {
            7 => "we ird,m".to_owned(),
            8 => "disk.io-ü".to_owned(),
            _ => format!("m{index:02}"),
        };
        let measurement: &'static str = Box::leak(name.into_boxed_str());
        for hour in 0..5 {
            for series in 0..2 {
                let n = index * 10 + hour * 2 + series;
                let value = match index % 4 {
                    0 => int(9_007_199_254_740_993 + n),
                    1 => float(n as f64 + 0.25),
                    2 => text(&format!("v \"{n}\"")),
                    _ => boolean(n % 2 == 0),
                };
                points.push(Point {
                    measurement,
                    tags: vec![("site", format!("s{series}"))],
                    time: T0 + hour * HOUR + series * 1_000 + index,
                    fields: vec![field("v", value)],
                });
            }
        }
    }
    points
}

#[test]
fn sparse_measurements_are_read_together_and_each_copied_exactly() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let copied = sparse_points();
    influxd.write("db", &copied.iter().map(line).collect::<String>());
    let end = influx2td_config::format_time(T0 + 5 * HOUR);
    // As it comes, and with reads of at most 5 rows: a read together then stops midway and
    // each measurement is read on its own instead; either way every row arrives once.
    for (job, max_window_rows) in [("together", "1000000"), ("apart", "5")] {
        let (_directory, target, state) = workdir();
        let settings = [
            ("INFLUX2TD_JOB", job.to_owned()),
            ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
            ("INFLUX2TD_END", end.clone()),
            ("INFLUX2TD_MAX_WINDOW_ROWS", max_window_rows.to_owned()),
        ];
        let output = command(&["run"], &influxd.url(), &target, &state, &settings)
            .output()
            .unwrap();
        let text = output_text(&output);
        assert_eq!(output.status.code(), Some(0), "{job}: {text}");
        let reads = text.matches("window read").count();
        if job == "together" {
            assert!((5..=15).contains(&reads), "{job}: {reads} reads: {text}");
        } else {
            assert!(text.contains("read one by one instead"), "{job}: {text}");
            assert!(reads >= 150, "{job}: {reads} reads: {text}");
        }
        assert_target_equals(&target, &copied);
        let report = status_json(&influxd, &target, &state, &settings);
        for name in ["m00", "m01", "m02", "m03", "we ird,m", "disk.io-ü"] {
            let measurement = &report["measurements"][name];
            assert_eq!(
                (
                    measurement["rows_written"].as_u64(),
                    measurement["windows_done"].as_u64(),
                    measurement["watermark_ns"].as_i64()
                ),
                (Some(10), Some(5), Some(T0 + 5 * HOUR)),
                "{job} {name}: {measurement}"
            );
        }
    }
}

#[test]
fn plan_reports_conflicts_windows_rows_and_ddl_and_writes_nothing() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    // `v` is an integer in one shard group and a float in another.
    influxd.write(
        "db",
        &format!("m,host=a v=1i {}\nm,host=b v=2i {}\n", T0, T0 + 1),
    );
    influxd.write("db", &format!("m,host=a v=2.5 {}\n", T0 + 30 * 24 * HOUR));
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        (
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + 31 * 24 * HOUR),
        ),
        ("INFLUX2TD_WINDOW", "1d".to_owned()),
    ];
    let output = command(
        &["plan", "--json"],
        &influxd.url(),
        &target,
        &state,
        &settings,
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let m = &plan["measurements"][0];
    assert_eq!(m["measurement"], "m");
    // InfluxDB counts host=a once per shard group holding it.
    assert!(m["series_estimate"].as_u64().unwrap() >= 2, "{m}");
    assert_eq!(m["estimated_rows"], 3);
    assert_eq!(m["windows"], 31);
    assert_eq!(m["fields"][0]["column_type"], "float");
    assert_eq!(
        m["fields"][0]["conflicting_types"],
        serde_json::json!(["float", "integer"])
    );
    assert_eq!(
        m["ddl"][0],
        "CREATE STABLE IF NOT EXISTS `metrics`.`m` (`_ts` TIMESTAMP,`v` DOUBLE) TAGS (`host` NCHAR(16))"
    );
    assert!(!target.exists() && !state.exists(), "plan wrote something");
}

#[test]
fn backfill_and_dead_letter_replay_write_what_the_job_missed() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let end = T0 + 2 * HOUR;
    let point = |time: i64, state: &str| Point {
        measurement: "cpu",
        tags: vec![("host", "a".into())],
        time,
        fields: vec![field("state", text(state))],
    };
    let good: Vec<Point> = (0..4).map(|k| point(T0 + k * HOUR / 2, "ok")).collect();
    // TDengine cannot hold a NUL character in a string: the writer dead-letters this row.
    let bad = point(T0 + HOUR + 5, "bad\0value");
    let lines: String = good.iter().chain([&bad]).map(line).collect();
    influxd.write("db", &lines);
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        ("INFLUX2TD_END", influx2td_config::format_time(end)),
    ];
    let run = |args: &[&str]| {
        command(args, &influxd.url(), &target, &state, &settings)
            .output()
            .unwrap()
    };
    let output = run(&["run"]);
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert!(output_text(&output).contains("1 rows were dead-lettered"));
    assert_target_equals(&target, &good);

    let listed = run(&["dead-letters", "list", "--json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", output_text(&listed));
    let report: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let cpu = &report["measurements"]["cpu"];
    assert_eq!(cpu["rows_dead_lettered"], 1, "{report}");
    assert_eq!(cpu["windows"][0]["start_ns"], T0 + HOUR, "{report}");
    assert_eq!(cpu["windows"][0]["end_ns"], T0 + 2 * HOUR, "{report}");
    assert!(
        cpu["windows"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("NUL"),
        "{report}"
    );

    // Replaying before the cause is fixed refuses the row again, and says so.
    let replayed = run(&["dead-letters", "replay"]);
    assert_eq!(
        replayed.status.code(),
        Some(1),
        "{}",
        output_text(&replayed)
    );
    assert!(output_text(&replayed).contains("1 rows still refused"));

    // The user fixes the point at the source; the replay writes it.
    let fixed = point(T0 + HOUR + 5, "fixed");
    influxd.write("db", &line(&fixed));
    let replayed = run(&["dead-letters", "replay", "--measurement", "cpu"]);
    assert_eq!(
        replayed.status.code(),
        Some(0),
        "{}",
        output_text(&replayed)
    );
    assert!(
        String::from_utf8_lossy(&replayed.stdout).contains("every row written"),
        "{}",
        output_text(&replayed)
    );
    let mut expected = good.clone();
    expected.push(fixed);
    assert_target_equals(&target, &expected);

    // A point that arrived late, in a range the job finished long ago: backfill fetches it.
    let late = point(T0 + HOUR / 4, "late");
    influxd.write("db", &line(&late));
    let from = influx2td_config::format_time(T0);
    let to = influx2td_config::format_time(T0 + HOUR);
    let backfill = |measurement: &str, from: &str, to: &str| {
        run(&[
            "backfill",
            "--measurement",
            measurement,
            "--from",
            from,
            "--to",
            to,
        ])
    };
    let backfilled = backfill("cpu", &from, &to);
    assert_eq!(
        backfilled.status.code(),
        Some(0),
        "{}",
        output_text(&backfilled)
    );
    assert!(
        String::from_utf8_lossy(&backfilled.stdout).contains("backfilled cpu"),
        "{}",
        output_text(&backfilled)
    );
    expected.push(late);
    assert_target_equals(&target, &expected);

    // Bad arguments name the bad value.
    let wrong = backfill("cpu", "yesterday", &to);
    assert_ne!(wrong.status.code(), Some(0));
    assert!(
        output_text(&wrong).contains("--from \"yesterday\""),
        "{}",
        output_text(&wrong)
    );
    let missing = backfill("nope", &from, &to);
    assert_ne!(missing.status.code(), Some(0));
    assert!(
        output_text(&missing).contains("\"nope\" not found"),
        "{}",
        output_text(&missing)
    );
}

#[test]
fn lookback_reads_windows_again_for_points_later_than_the_delay() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    let now = common::now_ns;
    let begin = now() - 10_000_000_000;
    let history = live_history(&influxd, begin);
    let (_directory, target, state) = workdir();
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(begin)),
        ("INFLUX2TD_WINDOW", "1s".to_owned()),
        ("INFLUX2TD_DELAY", "1s".to_owned()),
        ("INFLUX2TD_LOOKBACK", "4s".to_owned()),
    ];
    let mut job = spawn_run(&influxd, &target, &state, &settings);
    let watermark = || {
        let output = command(
            &["status", "--json"],
            &influxd.url(),
            &target,
            &state,
            &settings,
        )
        .output()
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .ok()
            .and_then(|report| report["measurements"]["live"]["watermark_ns"].as_i64())
            .unwrap_or(i64::MIN)
    };
    // A point for a time whose window is already written (and checkpointed): later than the
    // delay, only a second read can find it.
    let late_time = now() - 2_500_000_000;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while watermark() < late_time + 1_000_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the window was not written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = Point {
        measurement: "live",
        tags: vec![("host", "late".into())],
        time: late_time,
        fields: vec![field("v", int(2))],
    };
    influxd.write("db", &line(&late));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while replay_directory(&target)
        .map(|model| model.rows("live"))
        .unwrap_or(0)
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the late point was not read again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_target_equals(&target, &[history, late]);
    terminate(&mut job);
}

#[test]
fn run_rides_out_influxdb_down_credentials_revoked_and_a_measurement_dropped() {
    let Some(mut influxd) = Influxd::with_reader("db", "copier", "copier-secret") else {
        return;
    };
    let begin = common::now_ns() - 5_000_000_000;
    let point = |measurement: &'static str, time: i64, value: i64| Point {
        measurement,
        tags: vec![("host", "a".into())],
        time,
        fields: vec![field("v", int(value))],
    };
    let mut expected = vec![point("live", begin + 1, 1), point("gone", begin + 2, 2)];
    influxd.write("db", &expected.iter().map(line).collect::<String>());
    let (_directory, target, state) = workdir();
    let http_port = common::free_port();
    let readyz = || {
        influx2td_testkit::http_request(http_port, "GET", "/readyz", &[], b"")
            .map(|response| (response.status, response.body))
            .unwrap_or_default()
    };
    let settings = [
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(begin)),
        ("INFLUX2TD_WINDOW", "1s".to_owned()),
        ("INFLUX2TD_DELAY", "1s".to_owned()),
        ("INFLUX2TD_SOURCE_USERNAME", "copier".to_owned()),
        ("INFLUX2TD_SOURCE_PASSWORD", "copier-secret".to_owned()),
        ("INFLUX2TD_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
    ];
    let mut job = spawn_run(&influxd, &target, &state, &settings);
    let rows = || {
        replay_directory(&target)
            .map(|model| model.rows("live") + model.rows("gone"))
            .unwrap_or(0)
    };
    let wait_for = |count: usize, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while rows() < count {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(2, "the history did not arrive");

    // A measurement dropped midway: the job goes on with the others.
    influxd.query_in(Some("db"), "DROP MEASUREMENT gone");
    // InfluxDB away for a few seconds: windows wait and are read when it is back.
    influxd.stop();
    std::thread::sleep(Duration::from_secs(3));
    influxd.start_again();
    let fresh = point("live", common::now_ns(), 3);
    influxd.write("db", &line(&fresh));
    expected.push(fresh);
    wait_for(3, "a point written after InfluxDB came back did not arrive");

    // Credentials revoked midway (the password changed): reads are refused and retried,
    // nothing fails for good, /readyz says why, and what was written meanwhile arrives once the
    // credentials work again.
    assert_eq!(readyz().0, 200, "{:?}", readyz());
    influxd.query("SET PASSWORD FOR copier = 'rotated'");
    let during = point("live", common::now_ns(), 4);
    influxd.write("db", &line(&during));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rows(), 3, "read with revoked credentials");
    let (code, body) = readyz();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("credentials"), "{body}");
    influxd.query("SET PASSWORD FOR copier = 'copier-secret'");
    expected.push(during);
    wait_for(4, "the point written while revoked did not arrive");
    assert_eq!(readyz().0, 200, "{:?}", readyz());

    assert_target_equals(&target, &expected);
    let report = status_json(&influxd, &target, &state, &settings);
    assert!(
        report["measurements"]["live"].get("failed").is_none(),
        "{report}"
    );
    terminate(&mut job);
}
