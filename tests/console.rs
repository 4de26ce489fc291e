//! The console's JSON API against a real influxd (with authentication) and the file target:
//! connectivity check (good and wrong password), problems named by key, discovery, a job added
//! that reaches completion with every row, its status, download and deletion, the secrets
//! never sent back, and the rule that only loopback goes without a token.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, KillOnDrop, NatsServer, http_request};
use influx2td_writer::replay::replay_directory;
use serde_json::{Value, json};

mod common;
use common::{free_port, terminate, wait_for_http};

const PASSWORD: &str = "Console-Sentinel-Pw-4417";
const T0: i64 = 1_700_000_000_000_000_000;

const OPENAPI: &str = include_str!("../console/src/console-openapi.json");

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
            assert_conforms(&document, schema, &value, &format!("{method} {path}"));
        }
    }
    (response.status, value)
}

/// `value` matches `schema`, whose references point into the OpenAPI `document`.
fn assert_conforms(
    document: &Value,
    schema: &serde_json::Map<String, Value>,
    value: &Value,
    what: &str,
) {
    let mut root = document.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    for (key, schema) in schema {
        root[key] = schema.clone();
    }
    let validator = jsonschema::validator_for(&root).unwrap();
    let problems: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{what}: {problems:#?}\n{value:#}");
}

/// Opens `GET /api/events` and reads its first `count` events: each is a `jobs` event whose
/// data matches the documented JobList. The stream is left open, to be dropped by the caller.
fn events(port: u16, count: usize) -> (std::net::TcpStream, Vec<Value>) {
    use std::io::{BufRead, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lines = std::io::BufReader::new(stream.try_clone().unwrap()).lines();
    let head: Vec<String> = lines
        .by_ref()
        .map(Result::unwrap)
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(head[0].contains(" 200 "), "{head:?}");
    assert!(
        head.iter()
            .any(|line| line.to_lowercase() == "content-type: text/event-stream"),
        "{head:?}"
    );
    let document: Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(
        document["paths"]["/api/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            .is_object()
    );
    let list = json!({ "$ref": "#/components/schemas/JobList" });
    let mut found = Vec::new();
    let mut event = None;
    while found.len() < count {
        // Chunked transfer: the chunk sizes come as lines of their own, and are skipped.
        let line = lines.next().unwrap().unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            event = Some(name.to_owned());
        } else if let Some(data) = line.strip_prefix("data: ") {
            assert_eq!(event.take().as_deref(), Some("jobs"), "{data}");
            let value: Value = serde_json::from_str(data).unwrap();
            assert_conforms(&document, list.as_object().unwrap(), &value, "an event");
            found.push(value);
        }
    }
    (stream, found)
}

/// The JSON `influx2td <args> --config <job>` prints (exit code 0 required), with the source
/// password given by its variable when `password` is.
fn json_of(args: &[&str], job: &std::path::Path, password: Option<&str>) -> Value {
    let mut command = Command::new(common::BINARY);
    command.env_clear().args(args).arg("--config").arg(job);
    if let Some(password) = password {
        command.env("INFLUX2TD_SOURCE_PASSWORD", password);
    }
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn console(state: &std::path::Path, listen: &str) -> Command {
    let mut command = common::influx2td();
    command
        .args(["console", "--listen", listen, "--state-dir"])
        .arg(state);
    command
}

#[test]
fn the_api_checks_discovers_and_runs_a_job_to_the_end() {
    let Some(influxd) = Influxd::with_reader("db", "copier", PASSWORD) else {
        return;
    };
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
    let shown = wait_for_state(port, "console-job", "finished", 60);
    assert_eq!(shown["status"]["complete"], true);
    let written: u64 = shown["status"]["measurements"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["rows_written"].as_u64().unwrap())
        .sum();
    assert_eq!(written, 300, "{shown:#}");
    // What the charts draw: samples of the run, the last with every row; and the same live.
    let (status, history) = call(
        port,
        "GET",
        "/api/jobs/{job}/history",
        "/api/jobs/console-job/history",
        None,
    );
    assert_eq!(status, 200, "{history:#}");
    let samples = history["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    assert_eq!(last["rows_written"], 300, "{history:#}");
    assert_eq!(last["rows_read"], 300, "{history:#}");
    assert_eq!(
        last["measurements"]["cpu"]["rows_written"], 200,
        "{history:#}"
    );
    assert_eq!(
        last["measurements"]["mem"]["rows_written"], 100,
        "{history:#}"
    );
    assert_eq!(shown["sample"]["rows_written"], 300, "{shown:#}");
    let times: Vec<i64> = samples
        .iter()
        .map(|s| s["at_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
    let (stream, live) = events(port, 2);
    for event in &live {
        let listed = &event["jobs"][0];
        assert_eq!(listed["job"], "console-job", "{event:#}");
        assert_eq!(listed["sample"]["rows_written"], 300, "{event:#}");
    }
    drop(stream);
    assert_eq!(
        call(
            port,
            "GET",
            "/api/jobs/{job}/history",
            "/api/jobs/nope/history",
            None
        )
        .0,
        404
    );
    let model = replay_directory(&target).unwrap();
    assert_eq!(
        model.tables.values().map(|t| t.rows.len()).sum::<usize>(),
        300
    );
    // The console verifies as `influx2td verify` does.
    let verify = |job: &str| {
        call(
            port,
            "POST",
            "/api/jobs/{job}/verify",
            &format!("/api/jobs/{job}/verify"),
            None,
        )
    };
    let (status, verified) = verify("console-job");
    assert_eq!(status, 200, "{verified:#}");
    assert_eq!(verified["matches"], true, "{verified:#}");
    let measurements: Vec<&str> = verified["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["measurement"].as_str().unwrap())
        .collect();
    assert_eq!(measurements, ["cpu", "mem"], "{verified:#}");
    assert_eq!(verify("nope").0, 404);

    // Pause and resume: paused, then run again from its checkpoints (nothing left to do).
    let (status, paused) = act(port, "console-job", "pause");
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")));
    let (status, _) = act(port, "console-job", "resume");
    assert_eq!(status, 200);
    wait_for_state(port, "console-job", "finished", 30);
    for action in ["pause", "resume", "stop"] {
        let (status, _) = act(port, "nope", action);
        assert_eq!(status, 404, "{action}");
    }
    // The jobs' metrics, labelled by job, on the console's own listener.
    let metrics = http_request(port, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains(r#"influx2td_rows_written_total{job="console-job",measurement="cpu"} 200"#),
        "{}",
        metrics.body
    );
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
        download.body.contains("bucket = \"db\""),
        "{}",
        download.body
    );
    // The stored job file names its secret's file, which holds it for the owner only.
    let stored = state.join("console").join("console-job.toml");
    let text = std::fs::read_to_string(&stored).unwrap();
    assert!(!text.contains(PASSWORD), "{text}");
    let secret = state
        .join("console/secrets/console-job/source.password")
        .canonicalize()
        .unwrap();
    assert!(
        text.contains(&format!("password_file = \"{}\"", secret.display())),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), PASSWORD);
    // The download leaves out the console's own secret files and says what to give instead;
    // given that, it is a job the CLI runs.
    assert!(
        download
            .body
            .contains("#   INFLUX2TD_SOURCE_PASSWORD (or source.password_file = ")
            && !download.body.contains("password_file = \"/"),
        "{}",
        download.body
    );
    let downloaded = directory.path().join("downloaded.toml");
    std::fs::write(&downloaded, &download.body).unwrap();
    let validated = json_of(&["validate", "--json"], &downloaded, Some(PASSWORD));
    assert_eq!(validated["source"]["auth"]["username"], "copier");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for path in [&stored, &secret, &secret.parent().unwrap().to_path_buf()] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}: {mode:o}", path.display());
        }
    }

    // The CLI works on the console's job file: `status` reads the same checkpoints.
    let report = json_of(&["status", "--json"], &stored, None);
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
    // A target that lost its rows is a difference, with the windows where.
    for file in std::fs::read_dir(&target).unwrap() {
        std::fs::remove_file(file.unwrap().path()).unwrap();
    }
    let (status, verified) = verify("console-job");
    assert_eq!(status, 200, "{verified:#}");
    assert_eq!(verified["matches"], false, "{verified:#}");
    assert!(
        verified["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["windows"].as_array().unwrap().is_empty()),
        "{verified:#}"
    );
    // Repair reads those windows again: every row is back, and verify says so.
    let repair = || {
        call(
            port,
            "POST",
            "/api/jobs/{job}/repair",
            "/api/jobs/console-job/repair",
            None,
        )
    };
    let (status, repaired) = repair();
    assert_eq!(status, 200, "{repaired:#}");
    assert_eq!(repaired["matches"], true, "{repaired:#}");
    let rewritten: u64 = repaired["repaired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|window| window["rows_written"].as_u64().unwrap())
        .sum();
    assert_eq!(rewritten, 300, "{repaired:#}");
    assert_eq!(
        replay_directory(&target)
            .unwrap()
            .tables
            .values()
            .map(|t| t.rows.len())
            .sum::<usize>(),
        300
    );
    let (status, verified) = verify("console-job");
    assert_eq!(
        (status, &verified["matches"]),
        (200, &json!(true)),
        "{verified:#}"
    );
    // Nothing differs now: repair has nothing to read again.
    let (status, repaired) = repair();
    assert_eq!(status, 200, "{repaired:#}");
    assert_eq!(repaired["repaired"], json!([]), "{repaired:#}");
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
    assert!(!stored.exists() && !checkpoints.exists() && !secret.exists());
    // A page still watching does not hold the console's shutdown.
    let (_open, _) = events(port, 1);
    common::sigterm(&process.0);
    let status = common::wait_for_exit(&mut process.0, Duration::from_secs(20), || {
        "the console did not stop with an event stream open".into()
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn only_loopback_goes_without_a_token_and_a_token_guards_the_api() {
    let directory = tempfile::tempdir().unwrap();
    let output = console(directory.path(), "0.0.0.0:0").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--token-file"), "{stderr}");

    // The console's NATS settings are checked like a job's.
    let output = console(directory.path(), "127.0.0.1:0")
        .args([
            "--nats-url",
            "nats://127.0.0.1:1",
            "--set",
            "nats.user=alone",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nats.user: invalid value \"alone\" (from the command line): needs nats.password or nats.password_file"),
        "{stderr}"
    );

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
    for path in ["/api/jobs", "/metrics"] {
        let refused = http_request(port, "GET", path, &[], b"").unwrap();
        assert_eq!(refused.status, 401, "{path}");
    }
    let health = http_request(port, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(health.status, 200);
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

/// The value of `key` in the KV bucket `bucket` of the NATS server at `url`.
fn kv_value(url: &str, bucket: &str, key: &str) -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = async_nats::connect(url).await.unwrap();
            let store = async_nats::jetstream::new(client)
                .get_key_value(bucket)
                .await
                .unwrap();
            store
                .get(key)
                .await
                .unwrap()
                .map(|value| String::from_utf8(value.to_vec()).unwrap())
        })
}

/// Polls a job until `done` says so; returns it then.
fn wait_for(port: u16, job: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let (_, shown) = call(
            port,
            "GET",
            "/api/jobs/{job}",
            &format!("/api/jobs/{job}"),
            None,
        );
        if done(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls a job until its state is `state`; returns it then.
fn wait_for_state(port: u16, job: &str, state: &str, seconds: u64) -> Value {
    wait_for(port, job, seconds, |shown| shown["state"] == state)
}

/// `POST /api/jobs/{job}/{action}` (pause, resume, stop).
fn act(port: u16, job: &str, action: &str) -> (u16, Value) {
    call(
        port,
        "POST",
        &format!("/api/jobs/{{job}}/{action}"),
        &format!("/api/jobs/{job}/{action}"),
        None,
    )
}

/// Polls a job, which must keep running, until its `cpu` measurement has `rows` rows written.
fn wait_for_rows(port: u16, job: &str, rows: u64) {
    wait_for(port, job, 60, |shown| {
        assert_eq!(shown["state"], "running", "{shown:#}");
        shown["status"]["measurements"]["cpu"]["rows_written"] == rows
    });
}

#[test]
fn a_job_over_nats_is_kept_in_nats_and_coordinated_by_the_console_with_readers_and_writers_elsewhere()
 {
    let (Some(influxd), Some(nats)) = (Influxd::start(), NatsServer::start()) else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    influxd.write("db", &common::cpu_lines(200, T0, 1_000_000_000));
    let directory = tempfile::tempdir().unwrap();
    let state = directory.path().join("state");
    let target = directory.path().join("target");
    let begin = influx2td_config::format_time(T0);
    let end = influx2td_config::format_time(T0 + 200 * 1_000_000_000);
    // The job's readers and writers, as their own processes (as on Kubernetes).
    let (source, nats_url) = (influxd.url(), nats.url());
    let dsn = format!("file://{}", target.display());
    let role = |name: &str| {
        let env = [
            ("INFLUX2TD_JOB", "nats-job"),
            ("INFLUX2TD_BUCKET", "db"),
            ("INFLUX2TD_BEGIN", begin.as_str()),
            ("INFLUX2TD_SOURCE_URL", source.as_str()),
            ("INFLUX2TD_NATS_URL", nats_url.as_str()),
            ("INFLUX2TD_TARGET_DSN", dsn.as_str()),
            ("INFLUX2TD_TARGET_DATABASE", "metrics"),
            ("INFLUX2TD_SOURCE_DISCOVERY", "readers"),
        ];
        KillOnDrop(common::spawn_role(name, env, Stdio::null()))
    };
    let mut reader = role("reader");
    let mut writer = role("writer");
    // The console keeps its jobs in NATS, and runs them over it.
    let start_console = |port: u16| {
        KillOnDrop(
            console(&state, &format!("127.0.0.1:{port}"))
                .args(["--nats-url", &nats.url()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let port = free_port();
    let mut process = start_console(port);
    wait_for_http(port, "the console");
    // No `nats` table: the job runs over the console's NATS. The password is a secret even
    // where InfluxDB does not ask for one. The readers are agents at the source's site: the
    // console reaches InfluxDB at no address (nothing listens where its copy of the job says),
    // and asks them for the measurements.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let job = json!({
        "job": "nats-job",
        "bucket": "db",
        "begin": begin,
        "end": end,
        "window": "1m",
        "source": { "url": nowhere, "username": "copier", "password": PASSWORD, "discovery": "readers" },
        "target": { "dsn": format!("file://{}", target.display()), "database": "metrics", "create_database": true },
    });
    let (status, created) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&job));
    assert_eq!(status, 201, "{created:#}");
    let shown = wait_for_state(port, "nats-job", "finished", 60);
    assert_eq!(shown["config"]["discovery"], "readers", "{shown:#}");
    assert_eq!(
        shown["status"]["measurements"]["cpu"]["rows_written"], 200,
        "{shown:#}"
    );
    let model = replay_directory(&target).unwrap();
    assert_eq!(
        model.tables.values().map(|t| t.rows.len()).sum::<usize>(),
        200
    );
    // The checkpoints are in NATS (the job's KV bucket), not in the console's directory, and
    // so is the job itself, with its secret left in a file on the console's machine.
    assert!(!state.join("console/state/nats-job").exists());
    assert!(!state.join("console/nats-job.toml").exists());
    assert!(
        nats.jsz().contains("KV_influx2td_nats-job"),
        "{}",
        nats.jsz()
    );
    let stored = kv_value(&nats.url(), "influx2td-console", "job.nats-job").unwrap();
    assert!(!stored.contains(PASSWORD), "{stored}");
    assert!(stored.contains("password_file = "), "{stored}");
    assert!(stored.contains("bucket = \"db\""), "{stored}");
    assert!(stored.contains("discovery = \"readers\""), "{stored}");
    assert_eq!(
        kv_value(&nats.url(), "influx2td-console", "state.nats-job").as_deref(),
        Some("finished")
    );
    // The download says where NATS is.
    let download = http_request(port, "GET", "/api/jobs/nats-job/toml", &[], b"").unwrap();
    assert!(
        download.body.contains(&format!("url = \"{}\"", nats.url())),
        "{}",
        download.body
    );

    // A console started again finds the job in NATS, as it was.
    terminate(&mut process.0);
    let port = free_port();
    let mut process = start_console(port);
    wait_for_http(port, "the console");
    let shown = wait_for_state(port, "nats-job", "finished", 10);
    assert_eq!(shown["config"]["bucket"], "db", "{shown:#}");

    // Deleting it deletes its streams and checkpoints too: a new job of the name starts over.
    let (status, _) = call(
        port,
        "DELETE",
        "/api/jobs/{job}",
        "/api/jobs/nats-job",
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(
        kv_value(&nats.url(), "influx2td-console", "job.nats-job"),
        None
    );
    let jsz = nats.jsz();
    assert!(!jsz.contains("KV_influx2td_nats-job"), "{jsz}");
    assert!(!jsz.contains("INFLUX2TD_nats-job_WORK"), "{jsz}");
    assert!(!state.join("console/secrets/nats-job").exists());
    terminate(&mut reader.0);
    terminate(&mut writer.0);
    terminate(&mut process.0);
}

#[test]
fn jobs_come_back_after_a_restart_as_they_were_left_and_a_stopped_job_stays_stopped() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let minute = 60 * 1_000_000_000;
    influxd.write("db", &common::cpu_lines(50, now - 5 * minute, 1));
    let directory = tempfile::tempdir().unwrap();
    let state = directory.path().join("state");
    let start_console = || {
        let port = free_port();
        let process = KillOnDrop(
            console(&state, &format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_http(port, "the console");
        (port, process)
    };
    let (port, mut process) = start_console();
    // Two continuous jobs (no end): they copy the last ten minutes, then keep syncing.
    for name in ["sync-a", "sync-b"] {
        let job = json!({
            "job": name,
            "bucket": "db",
            "begin": influx2td_config::format_time(now - 10 * minute),
            "window": "1m",
            "delay": "1s",
            "source": { "url": influxd.url() },
            "target": { "dsn": format!("file://{}", directory.path().join(name).display()), "database": "metrics", "create_database": true },
        });
        let (status, created) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&job));
        assert_eq!(status, 201, "{created:#}");
    }
    for name in ["sync-a", "sync-b"] {
        wait_for_rows(port, name, 50);
    }
    // A job whose run fails says why, on one line.
    let doomed = json!({
        "job": "doomed",
        "bucket": "db",
        "begin": influx2td_config::format_time(now - 10 * minute),
        "source": { "url": influxd.url() },
        "target": { "dsn": "file:///proc/influx2td-cannot-write-here", "database": "metrics", "create_database": true },
    });
    let (status, created) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&doomed));
    assert_eq!(status, 201, "{created:#}");
    let failed = wait_for(port, "doomed", 30, |shown| {
        shown["state"].as_str().unwrap().starts_with("failed: ")
    });
    let reason = failed["state"].as_str().unwrap();
    assert!(
        reason.contains("/proc/influx2td-cannot-write-here") && !reason.contains('\n'),
        "{reason}"
    );
    let (status, _) = call(port, "DELETE", "/api/jobs/{job}", "/api/jobs/doomed", None);
    assert_eq!(status, 204);
    let (status, paused) = act(port, "sync-b", "pause");
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")));

    // Started again: the running job runs, the paused one waits.
    terminate(&mut process.0);
    let (port, mut process) = start_console();
    let (_, shown) = call(port, "GET", "/api/jobs/{job}", "/api/jobs/sync-a", None);
    assert_eq!(shown["state"], "running", "{shown:#}");
    wait_for_state(port, "sync-b", "paused", 1);

    // Stop ends a job for good: resuming it is refused, saying why, even after a restart.
    let (status, stopped) = act(port, "sync-a", "stop");
    assert_eq!((status, stopped["state"].as_str()), (200, Some("stopped")));
    terminate(&mut process.0);
    // A stored job this console cannot load (edited wrong) is listed as failed, with why.
    std::fs::write(state.join("console/broken.toml"), "bucket = 7\n").unwrap();
    let (port, mut process) = start_console();
    let shown = wait_for(port, "broken", 1, |shown| {
        shown["state"]
            .as_str()
            .unwrap()
            .starts_with("failed: cannot load the stored job:")
    });
    assert!(
        shown["state"].as_str().unwrap().contains("bucket"),
        "{shown:#}"
    );
    let (status, refused) = act(port, "broken", "resume");
    assert_eq!(status, 409, "{refused:#}");
    let download = http_request(port, "GET", "/api/jobs/broken/toml", &[], b"").unwrap();
    assert!(download.body.contains("bucket = 7"), "{}", download.body);
    let (status, _) = call(port, "DELETE", "/api/jobs/{job}", "/api/jobs/broken", None);
    assert_eq!(status, 204);
    assert!(!state.join("console/broken.toml").exists());
    wait_for_state(port, "sync-a", "stopped", 1);
    wait_for_state(port, "sync-b", "paused", 1);
    for action in ["resume", "pause"] {
        let (status, refused) = act(port, "sync-a", action);
        assert_eq!(status, 409, "{refused:#}");
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("stopped for good"),
            "{refused:#}"
        );
    }
    // It keeps its progress for all to see; the paused one goes on where it was.
    let (_, shown) = call(port, "GET", "/api/jobs/{job}", "/api/jobs/sync-a", None);
    assert_eq!(shown["state"], "stopped", "{shown:#}");
    let (status, resumed) = act(port, "sync-b", "resume");
    assert_eq!((status, resumed["state"].as_str()), (200, Some("running")));
    wait_for_rows(port, "sync-b", 50);
    let rows = replay_directory(&directory.path().join("sync-b"))
        .unwrap()
        .tables
        .values()
        .map(|t| t.rows.len())
        .sum::<usize>();
    assert_eq!(rows, 50);
    terminate(&mut process.0);
}

/// A job over a NATS that refuses its streams (JetStream storage too small) shows why it waits
/// on its page, and can be paused while it waits.
#[test]
fn a_job_nats_refuses_says_why_it_waits_and_pauses() {
    let Some((influxd, nats)) = common::source_and_cramped_nats(T0) else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
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
        "job": "refused",
        "bucket": "db",
        "begin": influx2td_config::format_time(T0),
        "end": influx2td_config::format_time(T0 + 60 * 1_000_000_000),
        "source": { "url": influxd.url() },
        "target": { "dsn": format!("file://{}", directory.path().join("target").display()), "database": "metrics", "create_database": true },
        "nats": { "url": nats.url() },
    });
    let (status, created) = call(port, "POST", "/api/jobs", "/api/jobs", Some(&job));
    assert_eq!(status, 201, "{created:#}");
    let shown = wait_for(port, "refused", 30, |shown| {
        shown["status"]["waiting"]
            .as_str()
            .is_some_and(|why| why.contains("insufficient storage resources"))
    });
    assert_eq!(shown["state"], "running", "{shown:#}");
    let why = shown["status"]["waiting"].as_str().unwrap();
    assert!(
        why.starts_with("cannot open a queue yet:") && why.contains("max_file_store"),
        "{why}"
    );
    let (status, paused) = act(port, "refused", "pause");
    assert_eq!(status, 200, "{paused:#}");
    let shown = wait_for_state(port, "refused", "paused", 10);
    assert_eq!(shown["status"]["waiting"], Value::Null, "{shown:#}");
    terminate(&mut process);
}
