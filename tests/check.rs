//! `influx2td check` against a real influxd: exit code and the reason of each failed step.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use influx2td_testkit::{Influxd, InfluxdOptions};

mod common;

/// The InfluxDB end under test; the target is the file sink, which passes wherever it can write.
fn check(influxd_url: &str, extra: &[&str]) -> Output {
    let target = std::env::temp_dir().join("influx2td-check-test");
    let mut command = common::influx2td();
    command
        .args([
            "check",
            "--set",
            "begin=2024-01-01",
            "--set",
            "target.database=metrics",
        ])
        .args(["--set", &format!("target.dsn=file://{}", target.display())])
        .args(["--set", &format!("source.url={influxd_url}")]);
    for setting in extra {
        command.args(["--set", setting]);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn with_auth() -> Option<Influxd> {
    let influxd = Influxd::start_with(InfluxdOptions {
        admin: Some(("admin".into(), "s3cret-PW".into())),
        ..InfluxdOptions::default()
    })?;
    influxd.query("CREATE DATABASE telegraf");
    influxd.write(
        "telegraf",
        "cpu,host=a usage=1.5 1700000000000000000\nmem,host=a used=3i 1700000000000000000\n",
    );
    Some(influxd)
}

#[test]
fn passes_with_good_credentials() {
    let Some(influxd) = with_auth() else { return };
    let output = check(
        &influxd.url(),
        &[
            "bucket=telegraf",
            "source.username=admin",
            "source.password=s3cret-PW",
        ],
    );
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("ok   reachable     InfluxDB 1."), "{text}");
    assert!(text.contains("ok   credentials   accepted"), "{text}");
    assert!(
        text.contains("ok   bucket        \"telegraf\" found"),
        "{text}"
    );
    assert!(
        text.contains("ok   measurements  2 found: \"cpu\", \"mem\""),
        "{text}"
    );
    assert!(!text.contains("s3cret-PW"), "{text}");
}

#[test]
fn wrong_password_fails_with_the_reason() {
    let Some(influxd) = with_auth() else { return };
    let output = check(
        &influxd.url(),
        &[
            "bucket=telegraf",
            "source.username=admin",
            "source.password=wrong",
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL credentials   InfluxDB refused the credentials (authorization failed)"),
        "{text}"
    );
    assert!(
        text.contains("skip bucket        the credentials were refused"),
        "{text}"
    );
}

#[test]
fn missing_credentials_say_what_to_set() {
    let Some(influxd) = with_auth() else { return };
    let output = check(&influxd.url(), &["bucket=telegraf"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the server requires authentication"),
        "{text}"
    );
    assert!(
        text.contains("set source.username and source.password"),
        "{text}"
    );
}

#[test]
fn unknown_bucket_and_measurement_fail_by_name() {
    let Some(influxd) = with_auth() else { return };
    let creds = ["source.username=admin", "source.password=s3cret-PW"];
    let output = check(&influxd.url(), &["bucket=telgraf", creds[0], creds[1]]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL bucket        bucket \"telgraf\" not found"),
        "{text}"
    );
    let output = check(
        &influxd.url(),
        &[
            "bucket=telegraf",
            "measurements=cpu,disk",
            creds[0],
            creds[1],
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL measurements  not in the bucket: disk; 1 found: \"cpu\""),
        "{text}"
    );
}

#[test]
fn unreachable_server_fails_and_json_says_so() {
    let Some(mut influxd) = with_auth() else {
        return;
    };
    let url = influxd.url();
    influxd.stop();
    let output = check(
        &url,
        &[
            "bucket=telegraf",
            "source.username=admin",
            "source.password=s3cret-PW",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let mut command = Command::new(common::BINARY);
    let json = command
        .env_clear()
        .args([
            "check",
            "--json",
            "--set",
            "begin=2024-01-01",
            "--set",
            "target.dsn=file:///tmp/influx2td-check-test",
            "--set",
            "target.database=m",
        ])
        .args([
            "--set",
            &format!("source.url={url}"),
            "--set",
            "bucket=telegraf",
        ])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["passed"], false);
    let steps = &report["ends"][0]["steps"];
    assert_eq!(steps[0]["name"], "reachable");
    assert_eq!(steps[0]["status"], "failed");
    assert!(
        steps[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("cannot reach InfluxDB at {url}")),
        "{report}"
    );
    assert_eq!(steps[1]["status"], "skipped");
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "FAIL reachable     cannot reach InfluxDB at {url}: connection refused — is InfluxDB running there, and is the port right?"
        )),
        "{text}"
    );
    assert!(!text.contains("os error"), "the client's own words: {text}");
}

#[test]
fn a_server_that_never_answers_is_a_timeout_with_what_to_check() {
    // Accepts connections and says nothing, as a host behind a black-holing firewall would.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let output = check(&url, &["bucket=telegraf"]);
    drop(listener);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL reachable     InfluxDB at {url} did not answer in time: is the host reachable from here (address, firewall)"
        )),
        "{text}"
    );
}

#[test]
fn host_names_that_do_not_resolve_are_named_on_both_ends() {
    let influxdb = "http://no-such-host.invalid:8086";
    let tdengine = "ws://no-such-host.invalid:6041";
    let output = check(
        influxdb,
        &["bucket=telegraf", &format!("target.dsn={tdengine}")],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for expected in [
        format!(
            "FAIL reachable     cannot reach InfluxDB at {influxdb}: the host name does not resolve — check the host in source.url"
        ),
        format!(
            "FAIL reachable     cannot connect to TDengine at {tdengine}: the host name does not resolve — check the host in target.dsn"
        ),
    ] {
        assert!(text.contains(&expected), "{expected}\n{text}");
    }
}

#[test]
fn a_tdengine_that_never_answers_is_a_timeout_with_what_to_check() {
    // Accepts connections and says nothing: without a limit the connector would wait forever.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tdengine = format!("ws://{}", listener.local_addr().unwrap());
    let influxdb = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", influxdb.local_addr().unwrap());
    drop(influxdb);
    let started = std::time::Instant::now();
    let output = check(
        &closed,
        &["bucket=telegraf", &format!("target.dsn={tdengine}")],
    );
    drop(listener);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL reachable     cannot connect to TDengine at {tdengine}: no answer in 30 s — is the host reachable from here (address, firewall), is the port TDengine's"
        )),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn configured_version_must_match_the_server() {
    let Some(influxd) = with_auth() else { return };
    let output = check(
        &influxd.url(),
        &[
            "bucket=telegraf",
            "source.version=2",
            "source.org=o",
            "source.token=t",
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("but source.version = 2"), "{text}");
}

#[test]
fn an_unreachable_tdengine_fails_the_target_with_the_reason() {
    let Some(influxd) = with_auth() else { return };
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = check(
        &influxd.url(),
        &[
            "bucket=telegraf",
            "source.username=admin",
            "source.password=s3cret-PW",
            &format!("target.dsn=ws://root:SENTINEL-PW@127.0.0.1:{closed_port}"),
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ok   measurements"),
        "the InfluxDB end still passes: {text}"
    );
    assert!(
        text.contains(&format!(
            "TDengine ws://root:%5Bredacted%5D@127.0.0.1:{closed_port}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "FAIL reachable     cannot connect to TDengine at ws://root:%5Bredacted%5D@127.0.0.1:{closed_port}: connection refused — is taosAdapter running there? (ws:// and wss:// go through taosAdapter, port 6041"
        )),
        "{text}"
    );
    assert!(
        !text.contains("ws-tool"),
        "the connector's own words: {text}"
    );
    assert!(
        text.contains("skip database      TDengine is not reachable"),
        "{text}"
    );
    assert!(!text.contains("SENTINEL-PW"), "{text}");
}

#[test]
fn https_works_with_the_ca_fails_clearly_without_it_and_skips_verification_when_told() {
    let certificates_dir = tempfile::tempdir().unwrap();
    let certificates = influx2td_testkit::TestCertificates::generate(certificates_dir.path());
    let Some(influxd) = Influxd::start_with(InfluxdOptions {
        tls: Some(certificates.clone()),
        ..InfluxdOptions::default()
    }) else {
        return;
    };
    assert!(influxd.url().starts_with("https://"));

    let trusted = check(
        &influxd.url(),
        &[
            "bucket=telegraf",
            &format!("source.tls.ca_file={}", certificates.ca_file.display()),
        ],
    );
    let text = stdout(&trusted);
    assert!(text.contains("ok   reachable"), "{text}");

    let untrusted = check(&influxd.url(), &["bucket=telegraf"]);
    let text = stdout(&untrusted);
    assert_eq!(untrusted.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL reachable"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let skipped = check(
        &influxd.url(),
        &["bucket=telegraf", "source.tls.insecure_skip_verify=true"],
    );
    let text = stdout(&skipped);
    assert!(text.contains("ok   reachable"), "{text}");
    let logs = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        logs.contains("WARN"),
        "no warning about skipping verification: {logs}"
    );
}
