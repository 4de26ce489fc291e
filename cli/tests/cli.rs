//! The real binary, run as a user would: help, version, exit codes and messages.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_influx2td");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("cannot run influx2td")
}

fn example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/job.toml").to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version() {
    let help = run(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let stdout = text(&help.stdout);
    assert!(stdout.contains("Migrate and continuously sync"), "{stdout}");
    assert!(stdout.contains("validate"), "{stdout}");
    let version = run(&["--version"], &[]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("influx2td {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let unknown = run(&["frobnicate"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("unrecognized subcommand 'frobnicate'"));
}

#[test]
fn validate_prints_the_effective_job() {
    let output = run(
        &[
            "validate",
            "--config",
            &example(),
            "--set",
            "batch_size=1000",
        ],
        &[("INFLUX2TD_DELAY", "1m")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for expected in [
        "job = \"telegraf_autogen-to-metrics\"",
        "batch_size = 1000",
        "delay = \"1m\"",
        "window = \"1h\"",
        "begin = \"2024-01-01T00:00:00Z\"",
        "url = \"http://localhost:8086\"",
        "dsn = \"ws://localhost:6041\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
}

#[test]
fn validate_json_is_json_and_hides_secrets() {
    let output = run(
        &[
            "validate",
            "--json",
            "--set",
            "source.version=2",
            "--set",
            "source.org=acme",
        ],
        &[
            ("INFLUX2TD_CONFIG", &example()),
            ("INFLUX2TD_SOURCE_TOKEN", "SENTINEL-TOKEN-7"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let job: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["source"]["auth"]["kind"], "token");
    assert_eq!(job["source"]["auth"]["token"], "[redacted]");
    let all = format!("{stdout}{}", text(&output.stderr));
    assert!(!all.contains("SENTINEL-TOKEN-7"), "secret printed:\n{all}");
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let job = directory.path().join("job.toml");
    let content = std::fs::read_to_string(example())
        .unwrap()
        .replace("batch_size = 5000", "batch_sise = 5000");
    std::fs::write(&job, content.replace("# batch_sise", "batch_sise")).unwrap();
    let output = run(&["validate", "--config", job.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("batch_sise"), "{stderr}");
    assert!(
        stderr.contains("unknown key; did you mean batch_size?"),
        "{stderr}"
    );
}

#[test]
fn bad_value_exits_2_naming_key_and_value() {
    let output = run(
        &[
            "validate",
            "--config",
            &example(),
            "--set",
            "read_concurrency=0",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("read_concurrency: invalid value \"0\" (from the command line): must be between 1 and 10000"),
        "{stderr}"
    );
}

#[test]
fn missing_config_file_exits_2() {
    let output = run(&["validate", "--config", "/no/such/job.toml"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read config file /no/such/job.toml"));
}

#[test]
fn unknown_environment_variable_exits_2() {
    let output = run(
        &["validate", "--config", &example()],
        &[("INFLUX2TD_BATCH", "5")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("INFLUX2TD_BATCH: unknown environment variable"));
}
