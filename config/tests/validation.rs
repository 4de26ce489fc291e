//! One test per validation rule: each bad value is refused with a message naming key and value.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use influx2td_config::{ConfigError, Dsn, JobConfig, Layers, LogLevel, SourceAuth};

const BASE: &str = r#"
bucket = "telegraf/autogen"
begin = "2024-01-01T00:00:00Z"

[source]
url = "http://localhost:8086"

[target]
dsn = "ws://localhost:6041"
database = "metrics"
"#;

fn load(text: &str, env: &[(&str, &str)], flags: &[&str]) -> Result<JobConfig, ConfigError> {
    let mut layers = Layers::default();
    layers.toml_text(text, "job.toml")?;
    layers.env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    layers.flags(flags.iter().copied());
    influx2td_config::validate(layers)
}

/// `BASE` with `extra` lines added to the top level (before any table) and `tables` appended.
fn with(extra: &str, tables: &str) -> String {
    format!("{extra}\n{BASE}\n{tables}")
}

fn problems(text: &str) -> Vec<String> {
    problems_with(text, &[], &[])
}

fn problems_with(text: &str, env: &[(&str, &str)], flags: &[&str]) -> Vec<String> {
    match load(text, env, flags) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

fn assert_problem(text: &str, expected: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|p| p == expected),
        "expected problem {expected:?}, found {found:#?}"
    );
}

#[test]
fn a_minimal_job_gets_every_default() {
    let job = load(BASE, &[], &[]).unwrap();
    assert_eq!(job.job, "telegraf_autogen-to-metrics");
    assert_eq!(job.bucket, "telegraf/autogen");
    assert!(job.measurements.is_empty());
    assert_eq!(job.begin_ns, 1_704_067_200_000_000_000);
    assert_eq!(job.end_ns, None);
    assert_eq!(job.window, Duration::from_secs(3600));
    assert_eq!(job.delay, Duration::from_secs(30));
    assert_eq!(job.log_level, LogLevel::Info);
    assert_eq!(
        (job.read_concurrency, job.write_concurrency, job.batch_size),
        (50, 50, 5000)
    );
    assert_eq!(job.source.url, "http://localhost:8086");
    assert_eq!(job.source.version, None);
    assert!(matches!(job.source.auth, SourceAuth::None));
    assert_eq!(job.target.dsn.redacted(), "ws://localhost:6041");
    assert!(!job.target.create_database && !job.target.allow_non_empty);
    assert_eq!(job.nats.url, None);
    assert_eq!(job.nats.prefix, "influx2td");
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let env = [
        ("INFLUX2TD_BATCH_SIZE", "100"),
        ("INFLUX2TD_MEASUREMENTS", "cpu, mem"),
        ("PATH", "/bin"),
    ];
    let job = load(BASE, &env, &[]).unwrap();
    assert_eq!(job.batch_size, 100);
    assert_eq!(job.measurements.len(), 2);
    assert!(job.measurements[1].matches("mem"));
    let job = load(BASE, &env, &["batch_size=7", "target.create_database=true"]).unwrap();
    assert_eq!(job.batch_size, 7);
    assert!(job.target.create_database);
    let file_value = load(&with("batch_size = 9", ""), &[], &[]).unwrap();
    assert_eq!(file_value.batch_size, 9);
}

#[test]
fn unknown_keys_are_refused_with_a_suggestion() {
    assert_problem(
        &with("", "[nats]\nprefx = \"x\""),
        "nats.prefx (in job.toml): unknown key; did you mean nats.prefix?",
    );
    assert_problem(
        &with("colour = \"blue\"", ""),
        "colour (in job.toml): unknown key",
    );
    let found = problems_with(BASE, &[("INFLUX2TD_BATCHSIZE", "5")], &[]);
    assert_eq!(
        found,
        ["INFLUX2TD_BATCHSIZE: unknown environment variable: no config key maps to it"]
    );
    let found = problems_with(BASE, &[], &["source.tokn=abc"]);
    assert_eq!(
        found,
        ["source.tokn (from the command line): unknown key; did you mean source.token?"]
    );
    let found = problems_with(BASE, &[], &["batch_size"]);
    assert_eq!(
        found,
        ["batch_size (from the command line): expected KEY=VALUE"]
    );
}

#[test]
fn wrong_types_name_the_key() {
    assert_problem(
        &with("batch_size = \"lots\"", ""),
        "batch_size: invalid value \"lots\" (in job.toml): expected an integer",
    );
    let found = problems_with(BASE, &[("INFLUX2TD_TARGET_CREATE_DATABASE", "maybe")], &[]);
    assert_eq!(
        found,
        [
            "target.create_database: invalid value \"maybe\" (from INFLUX2TD_TARGET_CREATE_DATABASE): expected true or false"
        ]
    );
}

#[test]
fn required_keys_are_named_with_their_env_var() {
    let found = problems("");
    for expected in [
        "bucket: required but not set (or set INFLUX2TD_BUCKET)",
        "begin: required but not set (or set INFLUX2TD_BEGIN)",
        "source.url: required but not set (or set INFLUX2TD_SOURCE_URL)",
        "target.dsn: required but not set (or set INFLUX2TD_TARGET_DSN)",
        "target.database: required but not set (or set INFLUX2TD_TARGET_DATABASE)",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn begin_must_parse() {
    let found = problems_with(BASE, &[], &["begin=2024-13-01"]);
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .starts_with("begin: invalid value \"2024-13-01\" (from the command line): not a time"),
        "{found:?}"
    );
}

#[test]
fn begin_accepts_dates_offsets_and_times_before_1970() {
    let job = load(BASE, &[], &["begin=2024-01-01"]).unwrap();
    assert_eq!(job.begin_ns, 1_704_067_200_000_000_000);
    let job = load(BASE, &[], &["begin=2024-01-01T08:00:00+08:00"]).unwrap();
    assert_eq!(job.begin_ns, 1_704_067_200_000_000_000);
    let job = load(BASE, &[], &["begin=1969-12-31T23:59:59.999999999Z"]).unwrap();
    assert_eq!(job.begin_ns, -1);
    let found = problems_with(BASE, &[], &["begin=1500-01-01"]);
    assert!(
        found[0].contains("outside the range of nanosecond timestamps"),
        "{found:?}"
    );
}

#[test]
fn begin_after_end_is_refused() {
    let found = problems_with(BASE, &[], &["end=2023-12-31T00:00:00Z"]);
    assert_eq!(
        found,
        [
            "end: invalid value \"2023-12-31T00:00:00Z\" (from the command line): must be after begin"
        ]
    );
    let equal = problems_with(BASE, &[], &["end=2024-01-01T00:00:00Z"]);
    assert_eq!(equal.len(), 1);
}

#[test]
fn window_zero_or_unparsable_is_refused() {
    assert_eq!(
        problems_with(BASE, &[], &["window=0s"]),
        ["window: invalid value \"0s\" (from the command line): must be longer than zero"]
    );
    let found = problems_with(BASE, &[], &["window=an hour"]);
    assert!(
        found[0].starts_with("window: invalid value \"an hour\""),
        "{found:?}"
    );
    assert_eq!(
        problems_with(BASE, &[], &["ack_wait=100ms"]),
        ["ack_wait: invalid value \"100ms\" (from the command line): must be at least 1s"]
    );
    let job = load(BASE, &[], &["window=15m", "delay=0s"]).unwrap();
    assert_eq!(
        (job.window, job.delay),
        (Duration::from_secs(900), Duration::ZERO)
    );
}

#[test]
fn concurrency_and_batch_size_zero_are_refused() {
    for key in ["read_concurrency", "write_concurrency", "batch_size"] {
        let found = problems_with(BASE, &[], &[&format!("{key}=0")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!(
                "{key}: invalid value \"0\" (from the command line): must be between 1 and"
            )),
            "{found:?}"
        );
    }
}

#[test]
fn url_without_scheme_or_host_is_refused() {
    let found = problems_with(BASE, &[], &["source.url=localhost:8086"]);
    assert_eq!(
        found,
        [
            "source.url: invalid value \"localhost:8086\" (from the command line): needs a scheme: http://host:port or https://host:port"
        ]
    );
    let found = problems_with(BASE, &[], &["source.url=ftp://host"]);
    assert!(
        found[0].contains("scheme \"ftp\" is not one of http, https"),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["source.url=http://"]);
    assert!(
        found[0].starts_with("source.url: invalid value \"http://\""),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["source.url=http://admin:pw@host"]);
    assert!(found[0].contains("must not hold credentials"), "{found:?}");
}

#[test]
fn otlp_endpoint_is_a_collector_base_url() {
    assert_eq!(load(BASE, &[], &[]).unwrap().otlp_traces_endpoint, None);
    let job = load(
        BASE,
        &[("INFLUX2TD_TELEMETRY_OTLP_ENDPOINT", "http://collector")],
        &[],
    )
    .unwrap();
    assert_eq!(
        job.otlp_traces_endpoint.as_deref(),
        Some("http://collector/v1/traces")
    );
    let job = load(
        &with(
            "",
            "[telemetry]\notlp_endpoint = \"https://otel.example.com:443/\"",
        ),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        job.otlp_traces_endpoint.as_deref(),
        Some("https://otel.example.com/v1/traces")
    );
    let found = problems_with(BASE, &[], &["telemetry.otlp_endpoint=collector:4318"]);
    assert_eq!(
        found,
        [
            "telemetry.otlp_endpoint: invalid value \"collector:4318\" (from the command line): needs a scheme: http://host:port or https://host:port"
        ]
    );
}

#[test]
fn url_gets_the_influxdb_port_when_none_is_given() {
    assert_eq!(
        load(BASE, &[], &["source.url=http://influx"])
            .unwrap()
            .source
            .url,
        "http://influx:8086"
    );
    assert_eq!(
        load(BASE, &[], &["source.url=http://influx:80"])
            .unwrap()
            .source
            .url,
        "http://influx"
    );
    assert_eq!(
        load(BASE, &[], &["source.url=https://cloud.example"])
            .unwrap()
            .source
            .url,
        "https://cloud.example"
    );
    assert_eq!(
        load(BASE, &[], &["source.url=http://[::1]"])
            .unwrap()
            .source
            .url,
        "http://[::1]:8086"
    );
}

#[test]
fn version_2_needs_token_and_org() {
    let found = problems_with(BASE, &[], &["source.version=2"]);
    assert_eq!(
        found,
        [
            "source.token: required: InfluxDB 2.x needs a token",
            "source.org: required: InfluxDB 2.x needs the organization name or ID"
        ]
    );
    let job = load(
        BASE,
        &[],
        &["source.version=2", "source.token=t0ken", "source.org=acme"],
    )
    .unwrap();
    assert!(
        matches!(job.source.auth, SourceAuth::Token { org: Some(ref org), .. } if org == "acme")
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.version=4"]),
        [
            "source.version: invalid value \"4\" (from the command line): use 1, 2 or 3 (or leave it out to detect)"
        ]
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.version=3"]),
        ["source.token: required: InfluxDB 3.x needs a token"]
    );
}

#[test]
fn version_1_auth_rules() {
    let job = load(
        BASE,
        &[],
        &[
            "source.version=1",
            "source.username=admin",
            "source.password=pw",
        ],
    )
    .unwrap();
    assert!(
        matches!(job.source.auth, SourceAuth::Basic { ref username, .. } if username == "admin")
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.username=admin"]),
        [
            "source.username: invalid value \"admin\" (from the command line): needs source.password or source.password_file"
        ]
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.password=pw"]),
        [
            "source.password: invalid value \"[redacted]\" (from the command line): needs source.username"
        ]
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.version=1", "source.token=t"]),
        [
            "source.token: invalid value \"[redacted]\" (from the command line): InfluxDB 1.x takes source.username and source.password"
        ]
    );
}

#[test]
fn flux_needs_version_2() {
    assert_eq!(
        problems_with(BASE, &[], &["source.query_language=flux"]),
        [
            "source.query_language: invalid value \"flux\" (from the command line): flux needs source.version = 2"
        ]
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.query_language=sql"]),
        [
            "source.query_language: invalid value \"sql\" (from the command line): use influxql or flux"
        ]
    );
}

#[test]
fn bad_log_level_is_refused() {
    assert_eq!(
        problems_with(BASE, &[], &["log_level=verbose"]),
        [
            "log_level: invalid value \"verbose\" (from the command line): use one of error, warn, info, debug, trace"
        ]
    );
    assert_eq!(
        load(BASE, &[], &["log_level=trace"]).unwrap().log_level,
        LogLevel::Trace
    );
}

#[test]
fn bad_dsn_scheme_is_refused() {
    assert_eq!(
        problems_with(BASE, &[], &["target.dsn=http://localhost:6041"]),
        [
            "target.dsn: invalid value \"http://localhost:6041\" (from the command line): scheme must be ws:// or wss:// (taosAdapter), taos:// (native) or file:///dir"
        ]
    );
    assert_eq!(
        problems_with(BASE, &[], &["target.dsn=file://relative/dir"]),
        [
            "target.dsn: invalid value \"file://relative/dir\" (from the command line): a file DSN needs an absolute directory: file:///path/to/dir"
        ]
    );
}

#[test]
fn dsn_ports_and_passwords() {
    let job = load(BASE, &[], &["target.dsn=taos://root:taosdata@td1"]).unwrap();
    assert!(matches!(job.target.dsn, Dsn::Native { .. }));
    assert_eq!(
        job.target.dsn.redacted(),
        "taos://root:%5Bredacted%5D@td1:6030"
    );
    assert!(!format!("{job:?}").contains("taosdata"));
    let job = load(BASE, &[], &["target.dsn=wss://cloud.tdengine:443"]).unwrap();
    assert_eq!(job.target.dsn.redacted(), "wss://cloud.tdengine");
    let job = load(
        BASE,
        &[],
        &["target.dsn=wss://gw.cloud.example?token=SENTINEL"],
    )
    .unwrap();
    assert_eq!(
        job.target.dsn.redacted(),
        "wss://gw.cloud.example:6041/?token=%5Bredacted%5D"
    );
    assert!(!format!("{job:?}").contains("SENTINEL"));
    let job = load(BASE, &[], &["target.dsn=file:///tmp/out"]).unwrap();
    assert!(
        matches!(job.target.dsn, Dsn::File { ref directory } if directory.as_os_str() == "/tmp/out")
    );
}

#[test]
fn bad_database_and_job_names_are_refused() {
    let found = problems_with(BASE, &[], &["target.database=1metrics"]);
    assert!(
        found[0].starts_with("target.database: invalid value \"1metrics\""),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["job=my job"]);
    assert_eq!(
        found,
        [
            "job: invalid value \"my job\" (from the command line): invalid job name \"my job\": use 1 to 64 characters from A-Z a-z 0-9 _ -"
        ]
    );
}

#[test]
fn measurement_regexes_must_compile() {
    let job = load(BASE, &[], &["measurements=cpu,/^disk_.*/"]).unwrap();
    assert!(job.measurements[1].matches("disk_io"));
    assert!(!job.measurements[1].matches("cpu"));
    let found = problems_with(&with("measurements = [\"/([/\"]", ""), &[], &[]);
    assert!(
        found[0].starts_with("measurements: invalid value"),
        "{found:?}"
    );
    assert!(found[0].contains("bad regular expression"), "{found:?}");
}

#[test]
fn nats_rules() {
    let job = load(
        BASE,
        &[],
        &["nats.url=nats://a:4222,nats://b:4222", "nats.prefix=acme"],
    )
    .unwrap();
    assert_eq!(job.nats.url.as_deref(), Some("nats://a:4222,nats://b:4222"));
    let found = problems_with(BASE, &[], &["nats.url=http://a:4222"]);
    assert!(
        found[0].contains("scheme must be nats, tls, ws or wss"),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["nats.prefix=in_flux"]);
    assert!(
        found[0].starts_with("nats.prefix: invalid value \"in_flux\""),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["nats.user=u", "nats.token=t"]);
    assert!(
        found[0].contains("give one way to authenticate to NATS, not nats.user and nats.token"),
        "{found:?}"
    );
    let seed = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
    let job = load(BASE, &[("INFLUX2TD_NATS_NKEY_SEED", seed)], &[]).unwrap();
    assert!(matches!(
        job.nats.auth,
        influx2td_config::NatsAuthConfig::Nkey { .. }
    ));
    assert!(!format!("{job:?}").contains(seed));
    let found = problems_with(
        BASE,
        &[("INFLUX2TD_NATS_NKEY_SEED", "SUAMLK-not-a-seed")],
        &[],
    );
    assert_eq!(
        found,
        [
            "nats.nkey_seed: invalid value \"[redacted]\" (from INFLUX2TD_NATS_NKEY_SEED): must be a user NKey seed: 58 characters starting with SU (`nk -gen user`)"
        ]
    );
    let found = problems_with(
        BASE,
        &[],
        &["nats.token=t", &format!("nats.nkey_seed={seed}")],
    );
    assert!(
        found[0].contains("not nats.token and nats.nkey_seed"),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["nats.cert_file=Cargo.toml"]);
    assert_eq!(
        found,
        [
            "nats.cert_file: invalid value \"Cargo.toml\" (from the command line): needs nats.key_file"
        ]
    );
    let job = load(
        BASE,
        &[],
        &[
            "nats.cert_file=Cargo.toml",
            "nats.key_file=Cargo.toml",
            "nats.tls_required=true",
        ],
    )
    .unwrap();
    assert!(job.nats.client_certificate.is_some());
    assert!(job.nats.tls_required);
}

#[test]
fn secrets_come_from_files_and_never_print() {
    let directory = tempfile::tempdir().unwrap();
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, "SENTINEL-SECRET-42\n").unwrap();
    let job = load(
        BASE,
        &[("INFLUX2TD_SOURCE_TOKEN_FILE", token_file.to_str().unwrap())],
        &["source.org=acme", "source.version=2"],
    )
    .unwrap();
    let SourceAuth::Token { token, .. } = &job.source.auth else {
        panic!("no token")
    };
    assert_eq!(token.expose(), "SENTINEL-SECRET-42");
    let debug = format!("{job:?}");
    let json = serde_json::to_string(&job).unwrap();
    for output in [&debug, &json] {
        assert!(
            !output.contains("SENTINEL-SECRET-42"),
            "secret leaked: {output}"
        );
        assert!(output.contains("[redacted]"));
    }
    let found = problems_with(
        BASE,
        &[],
        &[
            "source.token=a",
            &format!("source.token_file={}", token_file.display()),
        ],
    );
    assert!(
        found[0].contains("give source.token or source.token_file, not both"),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["source.token_file=/no/such/file"]);
    assert!(
        found[0].starts_with("source.token_file: invalid value \"/no/such/file\""),
        "{found:?}"
    );
    let found = problems_with(BASE, &[], &["source.password=SENTINEL-SECRET-42"]);
    assert!(
        !found.join("\n").contains("SENTINEL-SECRET-42"),
        "{found:?}"
    );
}

#[test]
fn the_target_dsn_may_come_from_a_file() {
    let directory = tempfile::tempdir().unwrap();
    let dsn_file = directory.path().join("dsn");
    std::fs::write(&dsn_file, "ws://root:SENTINEL-SECRET-43@tdengine:6041\n").unwrap();
    let without_dsn = BASE.replace("dsn = \"ws://localhost:6041\"\n", "");
    let job = load(
        &without_dsn,
        &[("INFLUX2TD_TARGET_DSN_FILE", dsn_file.to_str().unwrap())],
        &[],
    )
    .unwrap();
    let json = serde_json::to_string(&job).unwrap();
    assert!(json.contains("tdengine:6041"), "{json}");
    assert!(!json.contains("SENTINEL-SECRET-43"), "{json}");
    assert!(!format!("{job:?}").contains("SENTINEL-SECRET-43"));
    let found = problems_with(
        BASE,
        &[("INFLUX2TD_TARGET_DSN_FILE", dsn_file.to_str().unwrap())],
        &[],
    );
    assert!(
        found[0].contains("give target.dsn or target.dsn_file, not both"),
        "{found:?}"
    );
    let found = problems_with(&without_dsn, &[], &[]);
    assert!(found[0].starts_with("target.dsn: "), "{found:?}");
}

#[test]
fn tls_files_must_exist_and_pair() {
    let found = problems_with(BASE, &[], &["source.tls.ca_file=/no/such/ca.pem"]);
    assert_eq!(
        found,
        [
            "source.tls.ca_file: invalid value \"/no/such/ca.pem\" (from the command line): no such file"
        ]
    );
    let directory = tempfile::tempdir().unwrap();
    let cert = directory.path().join("cert.pem");
    std::fs::write(&cert, "x").unwrap();
    let found = problems_with(
        BASE,
        &[],
        &[&format!("source.tls.cert_file={}", cert.display())],
    );
    assert!(found[0].contains("go together"), "{found:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = problems_with(BASE, &[], &["batch_size=0", "window=0s", "log_level=loud"]);
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn toml_syntax_errors_name_the_file() {
    let error = load("bucket = ", &[], &[]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("config file job.toml is not valid TOML"),
        "{error}"
    );
}

#[test]
fn example_job_documents_every_key_and_is_valid() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/job.toml"))
            .unwrap();
    for key in influx2td_config::keys::KEYS {
        let name = key.path.rsplit('.').next().unwrap();
        assert!(
            example.lines().any(|line| line
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{name} ="))),
            "examples/job.toml does not document {}",
            key.path
        );
    }
    load(&example, &[], &[]).unwrap();
}

#[test]
fn readme_reference_lists_every_key() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for key in influx2td_config::keys::KEYS {
        assert!(
            readme.contains(&format!("`{}`", key.path)),
            "README.md does not document {}",
            key.path
        );
    }
}

#[test]
fn the_nats_keys_alone_validate_for_the_console() {
    let mut layers = Layers::default();
    layers.env([
        ("INFLUX2TD_NATS_USER".to_owned(), "console".to_owned()),
        ("INFLUX2TD_NATS_PASSWORD".to_owned(), "pw".to_owned()),
        ("INFLUX2TD_BATCH_SIZE".to_owned(), "0".to_owned()),
        ("PATH".to_owned(), "/bin".to_owned()),
    ]);
    layers.flags(["nats.url=nats://queue:4222", "nats.prefix=tenant-a"]);
    let nats = influx2td_config::validate_nats(layers).unwrap();
    assert_eq!(nats.url.as_deref(), Some("nats://queue:4222"));
    assert_eq!(nats.prefix, "tenant-a");
    assert!(matches!(
        nats.auth,
        influx2td_config::NatsAuthConfig::UserPassword { ref user, .. } if user == "console"
    ));

    // Their problems are named as a job's would be; unknown keys still are.
    let mut layers = Layers::default();
    layers.flags([
        "nats.url=nats://queue:4222",
        "nats.user=alone",
        "bucket_size=1",
    ]);
    let error = influx2td_config::validate_nats(layers).unwrap_err();
    let found: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("bucket_size (from the command line): unknown key"),
        "{found:#?}"
    );
    assert_eq!(
        found[1],
        "nats.user: invalid value \"alone\" (from the command line): needs nats.password or nats.password_file",
    );
}

#[test]
fn the_insert_mode_is_bind_unless_sql_is_asked_for() {
    let job = load(BASE, &[], &[]).unwrap();
    assert_eq!(job.target.insert, influx2td_config::InsertMode::Bind);
    let job = load(BASE, &[("INFLUX2TD_TARGET_INSERT", "sql")], &[]).unwrap();
    assert_eq!(job.target.insert, influx2td_config::InsertMode::Sql);
    assert_eq!(
        problems_with(BASE, &[], &["target.insert=fast"]),
        ["target.insert: invalid value \"fast\" (from the command line): use bind or sql"]
    );
}

#[test]
fn nats_replicas_are_one_by_default_and_one_to_five() {
    assert_eq!(load(BASE, &[], &[]).unwrap().nats.replicas, 1);
    let job = load(BASE, &[("INFLUX2TD_NATS_REPLICAS", "3")], &[]).unwrap();
    assert_eq!(job.nats.replicas, 3);
    for bad in ["0", "6"] {
        let found = problems_with(BASE, &[], &[&format!("nats.replicas={bad}")]);
        assert_eq!(
            found,
            [format!(
                "nats.replicas: invalid value \"{bad}\" (from the command line): must be between 1 and 5"
            )]
        );
    }
}

/// A 1.x `[data] dir` holding `telegraf/autogen/1/` and `two policies/{a,b}/`, and a WAL dir.
fn storage_dirs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("data/telegraf/autogen/1")).unwrap();
    std::fs::create_dir_all(root.path().join("data/two policies/a")).unwrap();
    std::fs::create_dir_all(root.path().join("data/two policies/b")).unwrap();
    std::fs::create_dir_all(root.path().join("wal")).unwrap();
    std::fs::write(root.path().join("a file"), "").unwrap();
    root
}

#[test]
fn the_tsm_source_takes_its_directories_from_file_or_environment() {
    let root = storage_dirs();
    let data = root.path().join("data");
    let wal = root.path().join("wal");
    let job = load(BASE, &[], &[]).unwrap();
    assert_eq!(job.source.kind, influx2td_config::SourceKind::Query);
    let text = BASE.replace(
        "[source]\n",
        &format!(
            "[source]\nkind = \"tsm\"\ndata_dir = {:?}\nwal_dir = {:?}\n",
            data.display(),
            wal.display()
        ),
    );
    let job = load(&text, &[], &[]).unwrap();
    let expected = influx2td_config::SourceKind::Tsm(influx2td_config::tsm::TsmDirs {
        data_dir: data.clone(),
        wal_dir: wal.clone(),
    });
    assert_eq!(job.source.kind, expected);
    let env = [
        ("INFLUX2TD_SOURCE_KIND", "tsm"),
        ("INFLUX2TD_SOURCE_DATA_DIR", data.to_str().unwrap()),
        ("INFLUX2TD_SOURCE_WAL_DIR", wal.to_str().unwrap()),
    ];
    let job = load(BASE, &env, &[]).unwrap();
    assert_eq!(job.source.kind, expected);
    // A database alone takes its autogen policy.
    let job = load(&text.replace("telegraf/autogen", "telegraf"), &[], &[]).unwrap();
    assert_eq!(job.bucket, "telegraf");
}

#[test]
fn the_tsm_source_names_the_directory_database_or_policy_it_cannot_find() {
    let root = storage_dirs();
    let data = root.path().join("data");
    let wal = root.path().join("wal");
    let flags = |data: &std::path::Path, wal: &std::path::Path| {
        vec![
            "source.kind=tsm".to_owned(),
            format!("source.data_dir={}", data.display()),
            format!("source.wal_dir={}", wal.display()),
        ]
    };
    let problems_of = |text: &str, flags: Vec<String>| {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        problems_with(text, &[], &flags)
    };
    let missing = root.path().join("missing");
    let found = problems_of(BASE, flags(&missing, &wal));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(&format!(
            "source.data_dir: invalid value \"{}\" (from the command line): cannot read it:",
            missing.display()
        )),
        "{found:#?}"
    );
    let file = root.path().join("a file");
    assert_eq!(
        problems_of(BASE, flags(&data, &file)),
        [format!(
            "source.wal_dir: invalid value \"{}\" (from the command line): not a directory",
            file.display()
        )]
    );
    assert_eq!(
        problems_of(
            &BASE.replace("telegraf/autogen", "nope"),
            flags(&data, &wal)
        ),
        [format!(
            "bucket: invalid value \"nope\" (in job.toml): database \"nope\" not found in {}",
            data.display()
        )]
    );
    assert_eq!(
        problems_of(
            &BASE.replace("telegraf/autogen", "telegraf/weekly"),
            flags(&data, &wal)
        ),
        [format!(
            "bucket: invalid value \"telegraf/weekly\" (in job.toml): retention policy \"weekly\" not found in {}",
            data.join("telegraf").display()
        )]
    );
    let ambiguous = problems_of(
        &BASE.replace("telegraf/autogen", "two policies"),
        flags(&data, &wal),
    );
    assert!(
        ambiguous[0].contains("has retention policies [\"a\", \"b\"] and none is autogen"),
        "{ambiguous:#?}"
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.kind=tsm"]),
        [
            "source.data_dir: required: source.kind = \"tsm\" reads the server's files there",
            "source.wal_dir: required: source.kind = \"tsm\" reads the server's files there"
        ]
    );
    assert_eq!(
        problems_with(BASE, &[], &["source.kind=parquet"]),
        ["source.kind: invalid value \"parquet\" (from the command line): use query or tsm"]
    );
    // A coordinator that leaves discovery to the readers need not see the files.
    let mut remote = flags(&missing, &missing);
    remote.push("source.discovery=readers".to_owned());
    assert_eq!(problems_of(BASE, remote), Vec::<String>::new());
}
