//! `influx2td verify` without false alarms and without blind spots: integer sums that overflow
//! 64 bits on both sides (InfluxDB's `SUM` wraps around, so does TDengine's, the file target's
//! replay adds the same way) match exactly after a correct run, and one value changed in the
//! target is found, naming the measurement and the window, and repaired by `--repair`. Against
//! the file target always, and against a real TDengine when `TDENGINE_DSN` is set.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use influx2td_testkit::Influxd;
use influx2td_writer::mapping::child_table_name;

mod common;
use common::output_text as text;

const HOUR: i64 = 3_600_000_000_000;
/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000_000_000;

/// Integers at the edges and near ±2^62 (their sum runs past i64::MAX and wraps), and floats.
fn values() -> Vec<(i64, i64, f64)> {
    let near = 1i64 << 62;
    let big = [
        i64::MAX,
        i64::MIN + 1,
        near,
        near,
        near,
        near + 12_345,
        -near,
        near - 1,
        i64::MAX - 7,
        near,
    ];
    big.iter()
        .enumerate()
        .map(|(index, value)| {
            // Five points an hour over two hours.
            let time = T0 + (index as i64 / 5) * HOUR + (index as i64 % 5) * 1_000_000_000;
            (time, *value, index as f64 * 0.1 + 1e15)
        })
        .collect()
}

fn lines() -> String {
    values()
        .iter()
        .map(|(time, big, float)| format!("wide,host=a big={big}i,ratio={float:?} {time}\n"))
        .collect()
}

fn command(influxd: &Influxd, dsn: &str, database: &str, state: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(common::BINARY);
    command
        .env("INFLUX2TD_SOURCE_URL", influxd.url())
        .env("INFLUX2TD_BUCKET", "db")
        .env("INFLUX2TD_JOB", "verify-e2e")
        .env("INFLUX2TD_TARGET_DSN", dsn)
        .env("INFLUX2TD_TARGET_DATABASE", database)
        .env("INFLUX2TD_TARGET_CREATE_DATABASE", "true")
        .env("INFLUX2TD_STATE_DIR", state)
        .env("INFLUX2TD_WINDOW", "1h")
        .env("INFLUX2TD_BEGIN", influx2td_config::format_time(T0))
        .env(
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + 2 * HOUR),
        )
        .args(args);
    command
}

/// The sum InfluxDB and TDengine report: wrapped at 64 bits.
fn wrapped_sum() -> i64 {
    values()
        .iter()
        .fold(0i64, |sum, (_, big, _)| sum.wrapping_add(*big))
}

/// Runs the job, verifies, changes `big` of the second window's first point with `tamper`,
/// verifies again (must name the window) and repairs.
fn run_verify_tamper_repair(
    influxd: &Influxd,
    dsn: &str,
    database: &str,
    tamper: impl FnOnce(i64, i64, f64),
) {
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        command(influxd, dsn, database, state.path(), args)
            .output()
            .unwrap()
    };
    let output = run(&["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let verified = run(&["verify"]);
    let report = text(&verified);
    assert_eq!(verified.status.code(), Some(0), "{report}");
    let exact = wrapped_sum();
    // The sum wrapped around: as integers it is far from what the values add up to.
    let true_total: i128 = values().iter().map(|(_, big, _)| i128::from(*big)).sum();
    assert_ne!(i128::from(exact), true_total);
    assert!(
        report.contains(&format!(
            "  sum(big)                 influxdb {exact:>12}  tdengine {exact:>12}"
        )),
        "{report}"
    );
    assert!(report.contains("ok   wide"), "{report}");

    // One value of the second window, changed by one, in the target.
    let (time, value, ratio) = values()[5];
    tamper(time, value + 1, ratio);
    let differs = run(&["verify", "--json"]);
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs));
    let json: serde_json::Value = serde_json::from_slice(&differs.stdout).unwrap();
    let wide = &json["measurements"][0];
    assert_eq!(wide["measurement"], "wide");
    let windows = wide["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{wide:#}");
    assert_eq!(
        windows[0]["start"],
        influx2td_config::format_time(T0 + HOUR)
    );
    assert_eq!(
        windows[0]["source"], windows[0]["target"],
        "the counts agree"
    );
    assert_eq!(windows[0]["sums"][0]["field"], "big");
    let shown = text(&run(&["verify"]));
    assert!(shown.contains("DIFF wide"), "{shown}");
    assert!(
        shown.contains(&format!(
            "! window [{} .. {})",
            influx2td_config::format_time(T0 + HOUR),
            influx2td_config::format_time(T0 + 2 * HOUR)
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("! sum(big)                 influxdb {exact:>12}")),
        "{shown}"
    );

    let repaired = run(&["verify", "--repair"]);
    let report = text(&repaired);
    assert_eq!(repaired.status.code(), Some(0), "{report}");
    assert!(report.contains("repaired wide"), "{report}");
    assert!(report.contains("ok   wide"), "{report}");
}

#[test]
fn verify_is_exact_on_overflowing_integer_sums_and_finds_one_changed_value_in_a_file_target() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    influxd.write("db", &lines());
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let dsn = format!("file://{}", target.display());
    run_verify_tamper_repair(&influxd, &dsn, "metrics", |time, changed, ratio| {
        // The file target is the SQL TDengine would run: one more INSERT overwrites the row.
        let file = common::only_file(&target);
        let child = child_table_name("wide", &[("host", "a")]);
        let mut script = std::fs::read_to_string(&file).unwrap();
        script.push_str(&format!(
            "INSERT INTO `metrics`.`{child}` USING `metrics`.`wide` (`host`) TAGS ('a') (`_ts`,`big`,`ratio`) VALUES ({time},{changed},{ratio:?});\n"
        ));
        std::fs::write(&file, script).unwrap();
    });
}

#[test]
fn verify_is_exact_on_overflowing_integer_sums_and_finds_one_changed_value_in_tdengine() {
    let Some(dsn) = std::env::var("TDENGINE_DSN")
        .ok()
        .filter(|dsn| !dsn.is_empty())
    else {
        eprintln!(
            "\n=== SKIPPED: verify against a real TDengine needs TDENGINE_DSN (e.g. taos://localhost:6030) ===\n"
        );
        return;
    };
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    influxd.write("db", &lines());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let database = format!("influx2td_live_verify_{}", nanos % 1_000_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sink = runtime
        .block_on(influx2td_writer::TdengineSink::connect(
            &dsn,
            "TDENGINE_DSN",
            1,
        ))
        .unwrap();
    run_verify_tamper_repair(&influxd, &dsn, &database, |time, changed, ratio| {
        use influx2td_writer::Sink;
        // Same table, same timestamp: TDengine overwrites the row.
        let child = child_table_name("wide", &[("host", "a")]);
        runtime
            .block_on(sink.execute(&format!(
                "INSERT INTO `{database}`.`{child}` (`_ts`,`big`,`ratio`) VALUES ({time},{changed},{ratio:?})"
            )))
            .unwrap();
    });

    // A new job (no checkpoints of its own) into the database, now not empty, is refused with
    // the reason and writes nothing, though its reads begin while the target is checked: the
    // series added to the source does not arrive.
    influxd.write("db", &format!("wide,host=b big=1i,ratio=1.5 {}\n", T0 + 10));
    let fresh = tempfile::tempdir().unwrap();
    let refused = command(&influxd, &dsn, &database, fresh.path(), &["run"])
        .output()
        .unwrap();
    let said = text(&refused);
    assert_ne!(refused.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!("TDengine database {database:?} already holds")),
        "{said}"
    );
    // Still only the super table and the child table of host=a: none for host=b.
    let info = runtime
        .block_on(influx2td_writer::Sink::database(&sink, &database))
        .unwrap()
        .unwrap();
    assert_eq!(info.tables, 2, "{said}");

    runtime
        .block_on(influx2td_writer::Sink::execute(
            &sink,
            &format!("DROP DATABASE `{database}`"),
        ))
        .unwrap();
}
