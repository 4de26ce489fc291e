//! The console's JSON API against a real influxd (with authentication) and the file target:
//! connectivity check (good and wrong password), problems named by key, discovery, a job added
//! that reaches completion with every row, its status, download and deletion, the secrets
//! never sent back, and the rule that only loopback goes without a token.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, InfluxdOptions, KillOnDrop, NatsServer, http_request};
use influx2td_writer::replay::replay_directory;
use serde_json::{Value, json};

mod common;
use common::{free_port, terminate, wait_for_http};

const BINARY: &str = env!("CARGO_BIN_EXE_influx2td");
const PASSWORD: &str = "Console-Sentinel-Pw-4417";
const T0: i64 = 1_700_000_000_000_000_000;

const OPENAPI: &str = include_str!("../src/console-openapi.json");

/// Calls the API and checks the answer against the OpenAPI document: the path (`template`,
/// as documented), method and status must be there, and the body must match its schema.
fn call(port: u16, method: &str, template: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let response = http_request(
        port,
        method,
        path,
        &[("Content-Type", "application/json")],
        bytes.as_bytes(),
    )
    .unwrap();
    let value = serde_json::from_str(&response.body).unwrap_or(Value::String(response.body));
    if template.starts_with("/api/") {
        let document: Value = serde_json::from_str(OPENAPI).unwrap();
        let operation = &document["paths"][template][method.to_lowercase()];
        let documented = &operation["responses"][response.status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {} which the OpenAPI document does not list",
            response.status
        );
        if let Some(schema) = documented["content"]["application/json"]["schema"].as_object() {
            let mut root = document.clone();
            root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            for (key, value) in schema {
                root[key] = value.clone();
            }
            let validator = jsonschema::validator_for(&root).unwrap();
            let problems: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                problems.is_empty(),
                "{method} {path}: {problems:#?}\n{value:#}"
            );
        }
    }
    (response.status, value)
}

fn console(state: &std::path::Path, listen: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["console", "--listen", listen, "--state-dir"])
        .arg(state);
    command
}

#[test]
fn the_api_checks_discovers_and_runs_a_job_to_the_end() {
    let Some(influxd) = Influxd::start_with(InfluxdOptions {
        admin: Some(("admin".into(), "admin-secret".into())),
        ..Default::default()
    }) else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    influxd.query(&format!("CREATE USER copier WITH PASSWORD '{PASSWORD}'"));
    influxd.query("GRANT READ ON db TO copier");
    let lines: String = (0..300)
        .map(|n| {
            let measurement = if n % 3 == 0 { "mem" } else { "cpu" };
            format!(
                "{measurement},host=h{} value={n}i {}\n",
                n % 4,
                T0 + n * 1_000_000_000
            )
        })
        .collect();
    influxd.write("db", &lines);

    let directory = tempfile::tempdir().unwrap();
    let state = directory.path().join("state");
    let target = directory.path().join("target");
    let port = free_port();
    let mut process = KillOnDrop(
        console(&state, &format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(directory.path().join("console.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_http(port, "the console");
    let (status, page) = call(port, "GET", "/", "/", None);
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("Connectivity Check"));

    let job = |password: &str| {
        json!({
            "job": "console-job",
            "bucket": "db",
            "measurements": [],
            "begin": influx2td_config::format_time(T0),
            "end": influx2td_config::format_time(T0 + 300 * 1_000_000_000),
            "window": "1m",
            "delay": "",
            "read_concurrency": 4,
            "source": { "url": influxd.url(), "version": 1, "username": "copier", "password": password },
            "target": { "dsn": format!("file://{}", target.display()), "database": "metrics", "create_database": true },
        })
    };

    // Connectivity: good credentials, then a wrong password (reported, with the reason).
    let (status, checked) = call(
        port,
        "POST",
        "/api/check",
        "/api/check",
        Some(&job(PASSWORD)),
    );
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["passed"], true, "{checked:#}");
    let (status, checked) = call(
        port,
        "POST",
        "/api/check",
        "/api/check",
        Some(&job("wrong")),
    );
    assert_eq!(status, 200);
    assert_eq!(checked["passed"], false);
    let failed: Vec<&Value> = checked["ends"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["status"] == "failed")
        .collect();
    assert!(!failed.is_empty(), "{checked:#}");
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("auth"),
        "{checked:#}"
    );

    // A bad value is a problem naming its key, as the job file's would be.
    let mut bad = job(PASSWORD);
    bad["begin"] = json!("yesterday-ish");
    bad["batch_size"] = json!(0);
    let (status, answer) = call(port, "POST", "/api/check", "/api/check", Some(&bad));
    assert_eq!(status, 400);
    let keys: Vec<&str> = answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["begin", "batch_size"], "{answer:#}");

    let (status, found) = call(
        port,
        "POST",
        "/api/discover",
        "/api/discover",
        Some(&job(PASSWORD)),
    );
    assert_eq!(status, 200);
    assert_eq!(found["measurements"], json!(["cpu", "mem"]));
    assert_eq!(found["buckets"], json!(["db"]));
    // Before a bucket is chosen: the buckets to pick from.
    let mut unnamed = job(PASSWORD);
    unnamed["bucket"] = json!("");
    let (status, found) = call(
        port,
        "POST",
        "/api/discover",
        "/api/discover",
        Some(&unnamed),
    );
    assert_eq!(status, 200, "{found:#}");
    assert_eq!(found, json!({ "buckets": ["db"], "measurements": [] }));

    // Add: the job starts, runs to its end, and says so.
    let (status, created) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&job(PASSWORD)));
    assert_eq!(status, 201, "{created:#}");
    let (status, again) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&job(PASSWORD)));
    assert_eq!(status, 409, "{again:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let (_, shown) = call(
            port,
            "GET",
            "/api/jobs/{job}",
            "/api/jobs/console-job",
            None,
        );
        if shown["state"] == "finished" {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(shown["status"]["complete"], true);
    let written: u64 = shown["status"]["measurements"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["rows_written"].as_u64().unwrap())
        .sum();
    assert_eq!(written, 300, "{shown:#}");
    let model = replay_directory(&target).unwrap();
    assert_eq!(
        model.tables.values().map(|t| t.rows.len()).sum::<usize>(),
        300
    );

    // Pause and resume: stopped, then run again from its checkpoints (nothing left to do).
    let (status, paused) = call(
        port,
        "POST",
        "/api/jobs/{job}/stop",
        "/api/jobs/console-job/stop",
        None,
    );
    assert_eq!((status, paused["state"].as_str()), (200, Some("stopped")));
    let (status, _) = call(
        port,
        "POST",
        "/api/jobs/{job}/start",
        "/api/jobs/console-job/start",
        None,
    );
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, shown) = call(
            port,
            "GET",
            "/api/jobs/{job}",
            "/api/jobs/console-job",
            None,
        );
        if shown["state"] == "finished" {
            break;
        }
        assert!(Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = call(
        port,
        "POST",
        "/api/jobs/{job}/stop",
        "/api/jobs/nope/stop",
        None,
    );
    assert_eq!(status, 404);
    // The document the tests check against is the one served.
    let served = http_request(port, "GET", "/api/openapi.json", &[], b"").unwrap();
    assert_eq!(served.body, OPENAPI);

    // Secrets never come back: not in the job, the list, or the download.
    let (_, listed) = call(port, "GET", "/api/jobs", "/api/jobs", None);
    let download = http_request(port, "GET", "/api/jobs/console-job/toml", &[], b"").unwrap();
    for text in [shown.to_string(), listed.to_string(), download.body.clone()] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(
        download.body.contains("password = \"[redacted]\""),
        "{}",
        download.body
    );
    assert!(
        download.body.contains("bucket = \"db\""),
        "{}",
        download.body
    );
    // The stored job file holds the secret, for the owner only.
    let stored = state.join("console").join("console-job.toml");
    assert!(std::fs::read_to_string(&stored).unwrap().contains(PASSWORD));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    // The CLI works on the console's job file: `status` reads the same checkpoints.
    let status = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["status", "--json", "--config"])
        .arg(&stored)
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        report["measurements"]["cpu"]["rows_written"], 200,
        "{report:#}"
    );
    assert_eq!(
        report["measurements"]["mem"]["rows_written"], 100,
        "{report:#}"
    );
    // Its checkpoints live in the console's state directory, nowhere else.
    let checkpoints = state.join("console").join("state").join("console-job");
    assert!(checkpoints.exists());
    assert!(!std::path::Path::new(".influx2td").exists());
    let (status, _) = call(
        port,
        "DELETE",
        "/api/jobs/{job}",
        "/api/jobs/console-job",
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = call(
        port,
        "GET",
        "/api/jobs/{job}",
        "/api/jobs/console-job",
        None,
    );
    assert_eq!(status, 404);
    assert!(!stored.exists() && !checkpoints.exists());
    terminate(&mut process.0);
}

#[test]
fn only_loopback_goes_without_a_token_and_a_token_guards_the_api() {
    let directory = tempfile::tempdir().unwrap();
    let output = console(directory.path(), "0.0.0.0:0").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--token-file"), "{stderr}");

    let token_file = directory.path().join("token");
    std::fs::write(&token_file, "s3cret-console-token\n").unwrap();
    let port = free_port();
    let mut process = KillOnDrop(
        console(directory.path(), &format!("0.0.0.0:{port}"))
            .arg("--token-file")
            .arg(&token_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_http(port, "the console");
    let refused = http_request(port, "GET", "/api/jobs", &[], b"").unwrap();
    assert_eq!(refused.status, 401);
    let wrong = http_request(
        port,
        "GET",
        "/api/jobs",
        &[("Authorization", "Bearer nope")],
        b"",
    )
    .unwrap();
    assert_eq!(wrong.status, 401);
    let allowed = http_request(
        port,
        "GET",
        "/api/jobs",
        &[("Authorization", "Bearer s3cret-console-token")],
        b"",
    )
    .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    terminate(&mut process.0);
}

#[test]
fn a_job_over_nats_is_coordinated_by_the_console_with_readers_and_writers_elsewhere() {
    let (Some(influxd), Some(nats)) = (Influxd::start(), NatsServer::start()) else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let lines: String = (0..200)
        .map(|n| {
            format!(
                "cpu,host=h{} value={n}i {}\n",
                n % 4,
                T0 + n * 1_000_000_000
            )
        })
        .collect();
    influxd.write("db", &lines);
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let begin = influx2td_config::format_time(T0);
    let end = influx2td_config::format_time(T0 + 200 * 1_000_000_000);
    // The job's readers and writers, as their own processes (as on Kubernetes).
    let role = |name: &str| {
        KillOnDrop(
            Command::new(BINARY)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("INFLUX2TD_JOB", "nats-job")
                .env("INFLUX2TD_BUCKET", "db")
                .env("INFLUX2TD_BEGIN", &begin)
                .env("INFLUX2TD_SOURCE_URL", influxd.url())
                .env("INFLUX2TD_NATS_URL", nats.url())
                .env(
                    "INFLUX2TD_TARGET_DSN",
                    format!("file://{}", target.display()),
                )
                .env("INFLUX2TD_TARGET_DATABASE", "metrics")
                .arg(name)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut reader = role("reader");
    let mut writer = role("writer");
    let port = free_port();
    let mut process = KillOnDrop(
        console(
            &directory.path().join("state"),
            &format!("127.0.0.1:{port}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    wait_for_http(port, "the console");
    let job = json!({
        "job": "nats-job",
        "bucket": "db",
        "begin": begin,
        "end": end,
        "window": "1m",
        "source": { "url": influxd.url() },
        "target": { "dsn": format!("file://{}", target.display()), "database": "metrics", "create_database": true },
        "nats": { "url": nats.url() },
    });
    let (status, created) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&job));
    assert_eq!(status, 201, "{created:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let (_, shown) = call(port, "GET", "/api/jobs/{job}", "/api/jobs/nats-job", None);
        if shown["state"] == "finished" {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        shown["status"]["measurements"]["cpu"]["rows_written"], 200,
        "{shown:#}"
    );
    let model = replay_directory(&target).unwrap();
    assert_eq!(
        model.tables.values().map(|t| t.rows.len()).sum::<usize>(),
        200
    );
    // The checkpoints are in NATS (the job's KV bucket), not in the console's directory.
    assert!(
        !directory
            .path()
            .join("state/console/state/nats-job")
            .exists()
    );
    assert!(
        nats.jsz().contains("KV_influx2td_nats-job"),
        "{}",
        nats.jsz()
    );
    terminate(&mut reader.0);
    terminate(&mut writer.0);
    terminate(&mut process.0);
}
