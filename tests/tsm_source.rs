//! A job with `source.kind = "tsm"`: `influx2td run` reads the shards' files of a real influxd
//! 1.x (some points flushed to TSM files, some only in its WAL) into the file target, and
//! `influx2td verify`, asking the still running influxd, finds the target equal; over NATS, a
//! reader beside the files serves a coordinator that cannot see them.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, InfluxdOptions, KillOnDrop, NatsServer};

mod common;
use common::output_text as text;

const HOUR: i64 = 3_600_000_000_000;
/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000_000_000;

/// Two measurements over two day shards, every field type, sparse rows, awkward names.
fn flushed_lines() -> String {
    let mut lines = Vec::new();
    for index in 0..600i64 {
        let time = T0 + index * 240_000_000_000 + index;
        let mut fields = vec![format!("value={}", index as f64 * 0.25)];
        if index % 2 == 0 {
            fields.push(format!("count={}i", index * 1_000_003));
        }
        if index % 5 == 1 {
            fields.push(format!("state=\"s {} \\\"q\\\" ü\"", index % 3));
        }
        if index % 7 == 3 {
            fields.push(format!("up={}", index % 2 == 0));
        }
        lines.push(format!(
            "cpu\\ load,host=h\\ {},dc=eu\\,1 {} {time}",
            index % 4,
            fields.join(",")
        ));
        lines.push(format!(
            "mem,host=h{} used={}i {time}",
            index % 3,
            index * 7
        ));
    }
    lines.join("\n")
}

fn wait_flushed(influxd: &Influxd) {
    let shards = |root: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(root.join("db").join("autogen"))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let files = |directory: &Path| -> Vec<std::fs::Metadata> {
        std::fs::read_dir(directory)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.metadata().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let data = shards(&influxd.data_dir());
        let flushed = !data.is_empty()
            && data.iter().all(|shard| !files(shard).is_empty())
            && shards(&influxd.wal_dir())
                .iter()
                .all(|wal| files(wal).iter().all(|segment| segment.len() == 0));
        if flushed {
            return;
        }
        assert!(Instant::now() < deadline, "influxd did not flush to TSM");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn command(influxd: &Influxd, target: &Path, state: &Path, args: &[&str]) -> Command {
    let mut command = common::influx2td();
    command
        .env("INFLUX2TD_SOURCE_URL", influxd.url())
        .env("INFLUX2TD_SOURCE_KIND", "tsm")
        .env("INFLUX2TD_SOURCE_DATA_DIR", influxd.data_dir())
        .env("INFLUX2TD_SOURCE_WAL_DIR", influxd.wal_dir())
        .env("INFLUX2TD_BUCKET", "db")
        .env("INFLUX2TD_JOB", "tsm-e2e")
        .env(
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", target.display()),
        )
        .env("INFLUX2TD_TARGET_DATABASE", "metrics")
        .env("INFLUX2TD_TARGET_CREATE_DATABASE", "true")
        .env("INFLUX2TD_STATE_DIR", state)
        .env("INFLUX2TD_WINDOW", "6h")
        .env("INFLUX2TD_BEGIN", influx2td_config::format_time(T0))
        .env(
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + 48 * HOUR),
        )
        .args(args);
    command
}

#[test]
fn a_job_read_from_tsm_files_and_the_wal_verifies_equal_against_influxdb() {
    let Some(mut influxd) = Influxd::start_with(InfluxdOptions {
        cache_snapshot_write_cold_duration: Some("1s".into()),
        ..InfluxdOptions::default()
    }) else {
        return;
    };
    influxd.query("CREATE DATABASE db WITH DURATION INF SHARD DURATION 1d");
    influxd.write("db", &flushed_lines());
    wait_flushed(&influxd);
    // What follows stays in the WAL: new points, an overwrite, a new series.
    influxd.start_again_with(InfluxdOptions::default());
    influxd.write(
        "db",
        &format!(
            "mem,host=h0 used=-1i {T0}\nmem,host=h9 used=9i {}\ncpu\\ load,host=h\\ 1,dc=eu\\,1 value=-0.5,up=true {}",
            T0 + 30 * HOUR,
            T0 + 47 * HOUR
        ),
    );

    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let state = directory.path().join("state");
    let run = |args: &[&str]| command(&influxd, &target, &state, args).output().unwrap();
    // `check` says what it found on disk.
    let checked = command(
        &influxd,
        &directory.path().join("checked"),
        &state,
        &["check"],
    )
    .output()
    .unwrap();
    let report = text(&checked);
    assert_eq!(checked.status.code(), Some(0), "{report}");
    assert!(report.contains("2 shards, 2 TSM files"), "{report}");
    assert!(
        report.contains("database \"db\", retention policy \"autogen\""),
        "{report}"
    );
    assert!(
        report.contains("2 found: \"cpu load\", \"mem\""),
        "{report}"
    );
    let output = run(&["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let verified = run(&["verify"]);
    let report = text(&verified);
    assert_eq!(verified.status.code(), Some(0), "{report}");
    assert!(report.contains("ok   cpu load"), "{report}");
    assert!(report.contains("ok   mem"), "{report}");
    let script = std::fs::read_to_string(common::only_file(&target)).unwrap();
    assert!(script.contains("-0.5"), "the WAL's point is written");
}

#[test]
fn a_tsm_job_names_what_it_cannot_find() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("no such dir");
    let output = common::influx2td()
        .env("INFLUX2TD_SOURCE_URL", "http://127.0.0.1:1")
        .env("INFLUX2TD_SOURCE_KIND", "tsm")
        .env("INFLUX2TD_SOURCE_DATA_DIR", &missing)
        .env("INFLUX2TD_SOURCE_WAL_DIR", directory.path())
        .env("INFLUX2TD_BUCKET", "db")
        .env("INFLUX2TD_TARGET_DSN", "file:///tmp/unused")
        .env("INFLUX2TD_TARGET_DATABASE", "metrics")
        .env("INFLUX2TD_BEGIN", "2024-01-01T00:00:00Z")
        .args(["run"])
        .output()
        .unwrap();
    let shown = text(&output);
    assert_ne!(output.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains(&format!(
            "source.data_dir: invalid value \"{}\"",
            missing.display()
        )),
        "{shown}"
    );
}

/// Over NATS the reader runs on the host that sees the files, the coordinator and the writer
/// elsewhere: with `source.discovery = "readers"` the coordinator, whose host has no such
/// directories, plans from what the reader found on disk, and the job verifies equal. A reader
/// that cannot see the directories refuses to start and names the one it lacks.
#[test]
fn over_nats_a_reader_beside_the_files_serves_a_coordinator_that_cannot_see_them() {
    let Some(influxd) = Influxd::start_with(InfluxdOptions {
        cache_snapshot_write_cold_duration: Some("1s".into()),
        ..InfluxdOptions::default()
    }) else {
        return;
    };
    let Some(nats) = NatsServer::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db WITH DURATION INF SHARD DURATION 1d");
    influxd.write("db", &flushed_lines());
    wait_flushed(&influxd);

    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let state = directory.path().join("state");
    let elsewhere = directory.path().join("not on this host");
    let logs = directory.path().to_owned();
    let role = |name: &str, sees_files: bool| {
        let log = std::fs::File::create(logs.join(format!("{name}.log"))).unwrap();
        let mut command = command(&influxd, &target, &state, &[name]);
        command
            .env("INFLUX2TD_NATS_URL", nats.url())
            .env("INFLUX2TD_SOURCE_DISCOVERY", "readers")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        if !sees_files {
            command
                .env("INFLUX2TD_SOURCE_DATA_DIR", &elsewhere)
                .env("INFLUX2TD_SOURCE_WAL_DIR", &elsewhere);
        }
        KillOnDrop(command.spawn().unwrap())
    };
    let log = || {
        ["coordinator", "reader", "writer", "blind reader"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(logs.join(format!("{name}.log")));
                format!("--- {name}\n{}", text.unwrap_or_default())
            })
            .collect::<String>()
    };

    // A reader on a host without the files: refused at start, the directory named.
    let mut blind = role("reader", false);
    std::fs::rename(logs.join("reader.log"), logs.join("blind reader.log")).unwrap();
    let status = common::wait_for_exit(&mut blind.0, Duration::from_secs(30), log);
    assert_ne!(status.code(), Some(0), "{}", log());
    assert!(
        log().contains(&format!("cannot read {}", elsewhere.display())),
        "{}",
        log()
    );

    let mut coordinator = role("coordinator", false);
    let mut reader = role("reader", true);
    let mut writer = role("writer", false);
    let status = common::wait_for_exit(&mut coordinator.0, Duration::from_secs(120), log);
    assert_eq!(status.code(), Some(0), "{}", log());
    common::terminate(&mut reader.0);
    common::terminate(&mut writer.0);
    assert!(
        log().contains("discovered for the coordinator"),
        "{}",
        log()
    );

    // verify reads the job's checkpoints where the job kept them: in NATS.
    let verified = command(&influxd, &target, &state, &["verify"])
        .env("INFLUX2TD_NATS_URL", nats.url())
        .output()
        .unwrap();
    let report = text(&verified);
    assert_eq!(verified.status.code(), Some(0), "{report}\n{}", log());
    assert!(report.contains("ok   cpu load"), "{report}");
    assert!(report.contains("ok   mem"), "{report}");
}
