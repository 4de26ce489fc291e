//! The HTTP endpoints of `influx2td run`: metrics that equal the rows moved, a status document,
//! and readiness that follows InfluxDB going away and coming back.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, http_request};
use influx2td_writer::replay::replay_directory;

mod common;
use common::free_port;

/// The sum of a metric's samples for the job `tele`.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains("job=\"tele\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, &[], b"")
        .ok()
        .map(|response| (response.status, response.body))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn run_serves_metrics_equal_to_the_rows_moved_status_and_readiness() {
    let Some(mut influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let begin = common::now_ns() - 120_000_000_000;
    let mut lines = String::new();
    for measurement in ["cpu", "mem"] {
        for host in 0..3 {
            for point in 0..50 {
                lines.push_str(&format!(
                    "{measurement},host=h{host} value={point}i {}\n",
                    begin + point * 1_000_000_000 + host
                ));
            }
        }
    }
    influxd.write("db", &lines);
    let rows = 2 * 3 * 50;

    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let port = free_port();
    let job_env: Vec<(&str, String)> = vec![
        ("INFLUX2TD_SOURCE_URL", influxd.url()),
        ("INFLUX2TD_BUCKET", "db".into()),
        ("INFLUX2TD_JOB", "tele".into()),
        (
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", target.display()),
        ),
        ("INFLUX2TD_TARGET_DATABASE", "metrics".into()),
        (
            "INFLUX2TD_STATE_DIR",
            directory.path().join("state").display().to_string(),
        ),
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(begin)),
        ("INFLUX2TD_WINDOW", "10s".into()),
        ("INFLUX2TD_DELAY", "1s".into()),
        ("INFLUX2TD_HTTP_LISTEN", format!("127.0.0.1:{port}")),
    ];
    let mut job = influx2td_testkit::KillOnDrop(
        common::influx2td()
            .envs(job_env.iter().map(|(key, value)| (*key, value.as_str())))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Every row written, and the metrics say exactly that.
    wait_until("every row in the target", || {
        replay_directory(&target)
            .map(|model| model.rows("cpu") + model.rows("mem"))
            .unwrap_or(0)
            == rows
    });
    let mut text = String::new();
    wait_until("the metrics to count every row", || {
        text = get(port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        metric(&text, "influx2td_rows_written_total") == rows as u64
    });
    assert_eq!(
        metric(&text, "influx2td_rows_read_total"),
        rows as u64,
        "{text}"
    );
    assert_eq!(metric(&text, "influx2td_rows_dead_lettered_total"), 0);
    assert!(metric(&text, "influx2td_windows_total") > 0, "{text}");
    assert!(text.contains("influx2td_build_info{version="), "{text}");
    assert!(
        text.contains("influx2td_lag_seconds{job=\"tele\"}"),
        "{text}"
    );
    for stream in ["work", "data", "done"] {
        let pending = format!("influx2td_bus_pending{{job=\"tele\",stream=\"{stream}\"}}");
        assert!(text.contains(&pending), "{pending} missing: {text}");
    }

    // The status document: continuous, both measurements consistent up to a recent time.
    let mut status = serde_json::Value::Null;
    wait_until("the status to show every row", || {
        status = get(port, "/status")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default();
        status["measurements"]["cpu"]["rows_written"].as_u64() == Some(150)
            && status["measurements"]["mem"]["rows_written"].as_u64() == Some(150)
    });
    assert_eq!(status["job"], "tele");
    assert_eq!(status["running"], true);
    assert_eq!(status["continuous"], true);
    let lag = status["measurements"]["cpu"]["lag_seconds"]
        .as_f64()
        .unwrap();
    assert!((0.0..120.0).contains(&lag), "{status}");
    assert!(
        status["measurements"]["cpu"]["consistent_up_to"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{status}"
    );

    // `influx2td status` of the same job shows the checkpoints and, from /status, the live run.
    let output = common::influx2td()
        .envs(job_env.iter().map(|(key, value)| (*key, value.as_str())))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["measurements"]["cpu"]["rows_read"], 150, "{report}");
    assert_eq!(
        report["measurements"]["cpu"]["rows_written"], 150,
        "{report}"
    );
    assert!(
        report["measurements"]["cpu"]["lag_seconds"]
            .as_f64()
            .is_some(),
        "{report}"
    );
    assert_eq!(report["live"]["running"], true, "{report}");
    assert_eq!(report["live"]["continuous"], true, "{report}");

    // Readiness follows InfluxDB.
    assert_eq!(get(port, "/healthz"), Some((200, "ok\n".to_owned())));
    assert_eq!(get(port, "/readyz").unwrap().0, 200);
    influxd.stop();
    let mut unready = (0, String::new());
    wait_until("/readyz to fail", || {
        unready = get(port, "/readyz").unwrap_or_default();
        unready.0 == 503
    });
    let body: serde_json::Value = serde_json::from_str(&unready.1).unwrap();
    assert_eq!(body["checks"]["tdengine"], "ok", "{body}");
    assert_ne!(body["checks"]["influxdb"], "ok", "{body}");
    influxd.start_again();
    wait_until("/readyz to pass again", || {
        get(port, "/readyz").is_some_and(|(code, _)| code == 200)
    });

    common::terminate(&mut job);
}
