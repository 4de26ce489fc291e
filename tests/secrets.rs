//! A sentinel password, used for real against an influxd that enforces authentication, appears
//! in none of what influx2td prints or serves after a full run: logs at trace level (every
//! module, text and JSON), `validate`, `check`, `plan`, `status`, `verify`, `dead-letters`,
//! `/metrics`, `/status`, `/readyz`, and the target files.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use influx2td_testkit::{Influxd, KillOnDrop, http_request};

mod common;
use common::free_port;

const SENTINEL: &str = "SENTINEL-pw-7f3a9c";
const T0: i64 = 1_700_000_000_000_000_000;

#[test]
fn a_password_appears_in_nothing_influx2td_prints_or_serves() {
    let Some(influxd) = Influxd::with_reader("db", "copier", SENTINEL) else {
        return;
    };
    influxd.write("db", &common::cpu_lines(200, T0, 1_000_000_000));

    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let port = free_port();
    let env = vec![
        ("INFLUX2TD_SOURCE_URL", influxd.url()),
        ("INFLUX2TD_SOURCE_USERNAME", "copier".to_owned()),
        ("INFLUX2TD_SOURCE_PASSWORD", SENTINEL.to_owned()),
        ("INFLUX2TD_BUCKET", "db".to_owned()),
        ("INFLUX2TD_JOB", "secret".to_owned()),
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        ("INFLUX2TD_WINDOW", "1m".to_owned()),
        ("INFLUX2TD_DELAY", "1s".to_owned()),
        (
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", target.display()),
        ),
        ("INFLUX2TD_TARGET_DATABASE", "metrics".to_owned()),
        (
            "INFLUX2TD_STATE_DIR",
            directory.path().join("state").display().to_string(),
        ),
        ("INFLUX2TD_HTTP_LISTEN", format!("127.0.0.1:{port}")),
        ("INFLUX2TD_LOG_LEVEL", "trace".to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ];
    let command = |args: &[&str]| {
        let mut command = common::influx2td();
        command
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .args(args);
        command
    };
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, output: std::process::Output| {
        outputs.push((
            what.to_owned(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    };

    // The job runs (continuous), with every module logging at trace level, as JSON lines.
    let log = directory.path().join("run.log");
    let mut job = KillOnDrop(
        command(&["--log-format", "json", "run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let get = |path: &'static str| {
        http_request(port, "GET", path, &[], b"")
            .map(|response| response.body)
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut metrics = String::new();
    while !metrics.contains(r#"influx2td_rows_written_total{job="secret",measurement="cpu"} 200"#) {
        assert!(Instant::now() < deadline, "the job did not copy the rows");
        std::thread::sleep(Duration::from_millis(200));
        metrics = get("/metrics");
    }
    let served = [
        ("/metrics", metrics),
        ("/status", get("/status")),
        ("/readyz", get("/readyz")),
    ];
    for args in [
        vec!["validate"],
        vec!["validate", "--json"],
        vec!["check", "--json"],
        vec!["plan", "--json"],
        vec!["status", "--json"],
        vec!["status"],
        vec!["verify", "--json"],
        vec!["dead-letters", "list", "--json"],
        // A bad value next to the secret: the problem is reported, the secret is not.
        vec!["--set", "window=soon", "validate"],
    ] {
        let output = command(&args).output().unwrap();
        keep(&args.join(" "), output);
    }
    common::terminate(&mut job);
    let run_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        run_log.contains("\"level\":\"TRACE\""),
        "not logging at trace level"
    );
    outputs.push(("run (trace, json)".into(), run_log));
    for (path, body) in served {
        outputs.push((path.to_owned(), body));
    }
    for entry in std::fs::read_dir(&target).unwrap() {
        let path = entry.unwrap().path();
        outputs.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }

    // The outputs do show the job (the user name is no secret): the search looks where it should.
    assert!(
        outputs
            .iter()
            .any(|(what, text)| what == "validate" && text.contains("copier")),
        "validate did not show the job"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("copier:{SENTINEL}"));
    for (what, text) in &outputs {
        // Every command and endpoint said something (target files may be empty).
        assert!(
            !text.is_empty() || what.starts_with("dead") || what.ends_with(".sql"),
            "{what} printed nothing"
        );
        assert!(
            !text.contains(SENTINEL),
            "{what} printed the password:\n{text}"
        );
        assert!(
            !text.contains(&basic),
            "{what} printed the basic-auth header:\n{text}"
        );
    }
}
