//! The one validation step: turns merged layers into a [`JobConfig`] or the list of every problem.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serializer;
use toml::Value;

use crate::layers::{Layers, Origin, shown_value};
use crate::{
    ConfigError, Discovery, Dsn, InsertMode, JobConfig, LogLevel, MeasurementFilter,
    NatsAuthConfig, NatsConfig, Problem, QueryLanguage, Secret, SourceAuth, SourceConfig,
    SourceKind, TargetConfig, TlsConfig, keys,
};

const MAX_CONCURRENCY: i64 = 10_000;
const MAX_BATCH_SIZE: i64 = 1_000_000;

struct Checker {
    layers: Layers,
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        let value = keys::find(path)
            .zip(self.layers.value(path))
            .map(|(key, value)| shown_value(key, value));
        self.problems.push(Problem {
            key: path.to_owned(),
            value,
            origin: self.layers.origin(path),
            message: message.into(),
        });
    }

    fn missing(&mut self, path: &str) {
        self.problems.push(Problem {
            key: path.to_owned(),
            value: None,
            origin: Origin::Default,
            message: format!("required but not set (or set {})", env_name(path)),
        });
    }

    fn string(&self, path: &str) -> Option<String> {
        self.layers
            .value(path)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn required_string(&mut self, path: &str) -> Option<String> {
        match self.string(path) {
            Some(text) if !text.trim().is_empty() => Some(text),
            Some(_) => {
                self.problem(path, "must not be empty");
                None
            }
            None => {
                self.missing(path);
                None
            }
        }
    }

    fn bool(&self, path: &str) -> bool {
        self.layers
            .value(path)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn integer(&mut self, path: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> i64 {
        let Some(value) = self.layers.value(path).and_then(Value::as_integer) else {
            return default;
        };
        if !range.contains(&value) {
            self.problem(
                path,
                format!("must be between {} and {}", range.start(), range.end()),
            );
        }
        value
    }

    fn duration(&mut self, path: &str, default: Duration) -> Duration {
        let Some(text) = self.string(path) else {
            return default;
        };
        match humantime::parse_duration(&text) {
            Ok(duration) => duration,
            Err(e) => {
                self.problem(
                    path,
                    format!("{e}; use a duration like \"30s\", \"15m\", \"6h\" or \"1d\""),
                );
                default
            }
        }
    }

    fn time(&mut self, path: &str) -> Option<i64> {
        let text = self.string(path)?;
        match parse_time(&text) {
            Ok(nanos) => Some(nanos),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn existing_file(&mut self, path: &str) -> Option<PathBuf> {
        let file = PathBuf::from(self.string(path)?);
        if !file.is_file() {
            self.problem(path, "no such file");
        }
        Some(file)
    }

    /// A secret given inline or as a file, not both.
    fn secret(&mut self, path: &str, file_path: &str) -> Option<Secret> {
        match (self.string(path), self.string(file_path)) {
            (Some(_), Some(_)) => {
                self.problem(file_path, format!("give {path} or {file_path}, not both"));
                None
            }
            (Some(value), None) => Some(Secret::new(value)),
            (None, Some(file)) => match std::fs::read_to_string(&file) {
                Ok(content) => Some(Secret::new(content.trim_end_matches(['\r', '\n']))),
                Err(e) => {
                    self.problem(file_path, format!("cannot read: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }
}

fn env_name(path: &str) -> String {
    keys::find(path)
        .map(|key| key.env_var())
        .unwrap_or_default()
}

pub(crate) fn validate(mut layers: Layers) -> Result<JobConfig, ConfigError> {
    let problems = layers.take_problems();
    let mut checker = Checker { layers, problems };

    let bucket = checker.required_string("bucket");
    let measurements = measurements(&mut checker);
    let begin_ns = match checker.string("begin") {
        Some(_) => checker.time("begin"),
        None => {
            checker.missing("begin");
            None
        }
    };
    let end_ns = checker.time("end");
    if let (Some(begin), Some(end)) = (begin_ns, end_ns)
        && end <= begin
    {
        checker.problem("end", "must be after begin");
    }
    let window = checker.duration("window", Duration::from_secs(3600));
    if window.is_zero() {
        checker.problem("window", "must be longer than zero");
    }
    let delay = checker.duration("delay", Duration::from_secs(30));
    let lookback = checker.duration("lookback", Duration::ZERO);
    let log_level = log_level(&mut checker);
    let read_concurrency = checker.integer("read_concurrency", 50, 1..=MAX_CONCURRENCY);
    let write_concurrency = checker.integer("write_concurrency", 50, 1..=MAX_CONCURRENCY);
    let batch_size = checker.integer("batch_size", 5000, 1..=MAX_BATCH_SIZE);
    let max_window_rows = checker.integer("max_window_rows", 2_000_000, 1..=i64::MAX);
    let retry_limit = checker.integer("retry_limit", 10, 1..=1000);
    let ack_wait = checker.duration("ack_wait", Duration::from_secs(30));
    if ack_wait < Duration::from_secs(1) {
        checker.problem("ack_wait", "must be at least 1s");
    }
    let lease_ttl = checker.duration("lease_ttl", Duration::from_secs(30));
    if lease_ttl < Duration::from_secs(1) {
        checker.problem("lease_ttl", "must be at least 1s");
    }
    let state_dir = PathBuf::from(
        checker
            .string("state_dir")
            .unwrap_or_else(|| ".influx2td".into()),
    );

    let http_listen = checker.string("http.listen");
    if let Some(address) = &http_listen
        && let Err(message) = listen_address(address)
    {
        checker.problem("http.listen", message);
    }

    let otlp_traces_endpoint = checker.string("telemetry.otlp_endpoint").and_then(|text| {
        match http_url(&text, &[("http", 80), ("https", 443)]) {
            Ok(base) => Some(format!("{base}/v1/traces")),
            Err(message) => {
                checker.problem("telemetry.otlp_endpoint", message);
                None
            }
        }
    });

    let source = source(&mut checker);
    let target = target(&mut checker);
    let nats = nats(&mut checker);

    let job = match checker.string("job") {
        Some(job) => {
            if let Err(e) = influx2td_proto::names::validate_job(&job) {
                checker.problem("job", e.to_string());
            }
            job
        }
        None => default_job_name(
            bucket.as_deref().unwrap_or_default(),
            target
                .as_ref()
                .map(|t| t.database.as_str())
                .unwrap_or_default(),
        ),
    };

    let discovery = match checker.string("source.discovery").as_deref() {
        None | Some("coordinator") => Discovery::Coordinator,
        Some("readers") => Discovery::Readers,
        Some(_) => {
            checker.problem("source.discovery", "use coordinator or readers");
            Discovery::Coordinator
        }
    };

    let kind = source_kind(&mut checker, bucket.as_deref(), discovery);
    let source = source.map(|source| SourceConfig { kind, ..source });

    let problems = checker.problems;
    match (bucket, begin_ns, source, target) {
        (Some(bucket), Some(begin_ns), Some(source), Some(target)) if problems.is_empty() => {
            Ok(JobConfig {
                job,
                bucket,
                measurements,
                begin_ns,
                end_ns,
                window,
                delay,
                lookback,
                log_level,
                read_concurrency: read_concurrency as usize,
                write_concurrency: write_concurrency as usize,
                batch_size: batch_size as usize,
                max_window_rows: max_window_rows as u64,
                retry_limit: retry_limit as u32,
                ack_wait,
                lease_ttl,
                state_dir,
                http_listen,
                otlp_traces_endpoint,
                discovery,
                source,
                target,
                nats,
            })
        }
        _ => Err(ConfigError::Invalid(problems)),
    }
}

/// Only the `nats.*` keys, for a process that talks to NATS without a job (the console); the
/// job's other keys are left alone.
pub(crate) fn validate_nats(mut layers: Layers) -> Result<NatsConfig, ConfigError> {
    let problems = layers.take_problems();
    let mut checker = Checker { layers, problems };
    let nats = nats(&mut checker);
    if checker.problems.is_empty() {
        Ok(nats)
    } else {
        Err(ConfigError::Invalid(checker.problems))
    }
}

/// `<bucket>-to-<database>`, with characters a job name cannot hold replaced by `_`.
pub(crate) fn default_job_name(bucket: &str, database: &str) -> String {
    let name: String = format!("{bucket}-to-{database}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    name
}

fn measurements(checker: &mut Checker) -> Vec<MeasurementFilter> {
    let items: Vec<String> = checker
        .layers
        .value("measurements")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut filters = Vec::new();
    for item in items {
        if item.is_empty() {
            checker.problem("measurements", "a measurement name must not be empty");
        } else if let Some(pattern) = item
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
        {
            match regex::Regex::new(pattern) {
                Ok(regex) => filters.push(MeasurementFilter::Regex(regex)),
                Err(e) => checker.problem(
                    "measurements",
                    format!("bad regular expression {item:?}: {e}"),
                ),
            }
        } else {
            filters.push(MeasurementFilter::Name(item));
        }
    }
    filters
}

fn log_level(checker: &mut Checker) -> LogLevel {
    match checker.string("log_level").as_deref() {
        None | Some("info") => LogLevel::Info,
        Some("error") => LogLevel::Error,
        Some("warn") => LogLevel::Warn,
        Some("debug") => LogLevel::Debug,
        Some("trace") => LogLevel::Trace,
        Some(_) => {
            checker.problem(
                "log_level",
                format!("use one of {}", LogLevel::NAMES.join(", ")),
            );
            LogLevel::Info
        }
    }
}

fn source(checker: &mut Checker) -> Option<SourceConfig> {
    let url = checker.required_string("source.url").and_then(|text| {
        match http_url(&text, &[("http", 8086), ("https", 443)]) {
            Ok(url) => Some(url),
            Err(message) => {
                checker.problem("source.url", message);
                None
            }
        }
    });
    let version = match checker
        .layers
        .value("source.version")
        .and_then(Value::as_integer)
    {
        None => None,
        Some(version @ 1..=3) => Some(version as u8),
        Some(_) => {
            checker.problem(
                "source.version",
                "use 1, 2 or 3 (or leave it out to detect)",
            );
            None
        }
    };
    let query_language = match checker.string("source.query_language").as_deref() {
        None | Some("influxql") => QueryLanguage::Influxql,
        Some("flux") => QueryLanguage::Flux,
        Some(_) => {
            checker.problem("source.query_language", "use influxql or flux");
            QueryLanguage::Influxql
        }
    };
    if query_language == QueryLanguage::Flux && version != Some(2) {
        checker.problem("source.query_language", "flux needs source.version = 2");
    }

    let username = checker.string("source.username");
    let password = checker.secret("source.password", "source.password_file");
    let org = checker.string("source.org");
    let token = checker.secret("source.token", "source.token_file");
    let auth = match (username, password, token) {
        (Some(_), _, Some(_)) => {
            checker.problem(
                "source.token",
                "give source.username/password (1.x) or source.token (2.x/3.x), not both",
            );
            SourceAuth::None
        }
        (Some(username), Some(password), None) => SourceAuth::Basic { username, password },
        (Some(_), None, None) => {
            checker.problem(
                "source.username",
                "needs source.password or source.password_file",
            );
            SourceAuth::None
        }
        (None, Some(_), _) => {
            checker.problem("source.password", "needs source.username");
            SourceAuth::None
        }
        (None, None, Some(token)) => SourceAuth::Token {
            org: org.clone(),
            token,
        },
        (None, None, None) => SourceAuth::None,
    };
    match version {
        Some(1) if matches!(auth, SourceAuth::Token { .. }) => {
            checker.problem(
                "source.token",
                "InfluxDB 1.x takes source.username and source.password",
            );
        }
        Some(2) => {
            if !matches!(auth, SourceAuth::Token { .. }) {
                checker.missing_for("source.token", "InfluxDB 2.x needs a token");
            }
            if org.is_none() {
                checker.missing_for(
                    "source.org",
                    "InfluxDB 2.x needs the organization name or ID",
                );
            }
        }
        Some(3) if !matches!(auth, SourceAuth::Token { .. }) => {
            checker.missing_for("source.token", "InfluxDB 3.x needs a token");
        }
        _ => {}
    }

    let tls = TlsConfig {
        ca_file: checker.existing_file("source.tls.ca_file"),
        cert_file: checker.existing_file("source.tls.cert_file"),
        key_file: checker.existing_file("source.tls.key_file"),
        insecure_skip_verify: checker.bool("source.tls.insecure_skip_verify"),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        checker.problem(
            if tls.cert_file.is_some() {
                "source.tls.cert_file"
            } else {
                "source.tls.key_file"
            },
            "source.tls.cert_file and source.tls.key_file go together",
        );
    }
    let read_timeout = checker.duration("source.read_timeout", Duration::from_secs(300));
    if read_timeout < Duration::from_secs(1) {
        checker.problem("source.read_timeout", "must be at least 1s");
    }
    Some(SourceConfig {
        kind: SourceKind::Query,
        url: url?,
        version,
        query_language,
        auth,
        tls,
        read_timeout,
    })
}

/// `source.kind` and, for `tsm`, its directories: each must be a directory holding the bucket's
/// database and retention policy. A coordinator that leaves discovery to the readers
/// (`source.discovery = "readers"`) need not see them; the readers check them when they start.
fn source_kind(checker: &mut Checker, bucket: Option<&str>, discovery: Discovery) -> SourceKind {
    match checker.string("source.kind").as_deref() {
        None | Some("query") => {
            for path in ["source.data_dir", "source.wal_dir"] {
                if checker.string(path).is_some() {
                    checker.problem(path, "only read with source.kind = \"tsm\"");
                }
            }
            return SourceKind::Query;
        }
        Some("tsm") => {}
        Some(_) => {
            checker.problem("source.kind", "use query or tsm");
            return SourceKind::Query;
        }
    }
    let check = discovery == Discovery::Coordinator;
    let directory = |checker: &mut Checker, path: &str| -> Option<PathBuf> {
        let Some(text) = checker.string(path) else {
            checker.missing_for(path, "source.kind = \"tsm\" reads the server's files there");
            return None;
        };
        let directory = PathBuf::from(text);
        if check {
            match std::fs::metadata(&directory) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => checker.problem(path, "not a directory"),
                Err(error) => checker.problem(path, format!("cannot read it: {error}")),
            }
        }
        Some(directory)
    };
    let data_dir = directory(checker, "source.data_dir");
    let wal_dir = directory(checker, "source.wal_dir");
    let (Some(data_dir), Some(wal_dir)) = (data_dir, wal_dir) else {
        return SourceKind::Query;
    };
    if check
        && data_dir.is_dir()
        && let Some(bucket) = bucket
        && let Err(message) = crate::tsm::retention_policy_dir(&data_dir, bucket)
    {
        checker.problem("bucket", message);
    }
    SourceKind::Tsm(crate::tsm::TsmDirs { data_dir, wal_dir })
}

impl Checker {
    fn missing_for(&mut self, path: &str, why: &str) {
        self.problems.push(Problem {
            key: path.to_owned(),
            value: None,
            origin: Origin::Default,
            message: format!("required: {why}"),
        });
    }
}

fn target(checker: &mut Checker) -> Option<TargetConfig> {
    // The DSN may hold TDengine's password: it may come from a file (a mounted secret).
    let dsn_text = match checker.secret("target.dsn", "target.dsn_file") {
        Some(secret) => Some(secret.expose().to_owned()),
        None => checker.required_string("target.dsn"),
    };
    let dsn = dsn_text.and_then(|text| match parse_dsn(&text) {
        Ok(dsn) => Some(dsn),
        Err(message) => {
            checker.problem("target.dsn", message);
            None
        }
    });
    let database = checker.required_string("target.database");
    if let Some(name) = &database
        && !valid_tdengine_name(name)
    {
        checker.problem(
            "target.database",
            "a TDengine database name starts with a letter and has at most 64 letters, digits and _",
        );
    }
    Some(TargetConfig {
        dsn: dsn?,
        database: database?,
        create_database: checker.bool("target.create_database"),
        allow_non_empty: checker.bool("target.allow_non_empty"),
        insert: match checker.string("target.insert").as_deref() {
            None | Some("bind") => InsertMode::Bind,
            Some("sql") => InsertMode::Sql,
            Some(_) => {
                checker.problem("target.insert", "use bind or sql");
                InsertMode::Bind
            }
        },
    })
}

fn nats(checker: &mut Checker) -> NatsConfig {
    let url = checker.string("nats.url");
    if let Some(text) = &url {
        for server in text.split(',').map(str::trim) {
            if let Err(message) = nats_url(server) {
                checker.problem("nats.url", message);
            }
        }
    }
    let prefix = checker
        .string("nats.prefix")
        .unwrap_or_else(|| influx2td_proto::names::DEFAULT_PREFIX.into());
    if let Err(e) = influx2td_proto::names::validate_prefix(&prefix) {
        checker.problem("nats.prefix", e.to_string());
    }
    let user = checker.string("nats.user");
    let password = checker.secret("nats.password", "nats.password_file");
    let token = checker.secret("nats.token", "nats.token_file");
    let seed = checker.secret("nats.nkey_seed", "nats.nkey_seed_file");
    if let Some(seed) = &seed
        && !(seed.expose().starts_with("SU") && seed.expose().len() == 58)
    {
        checker.problem(
            "nats.nkey_seed",
            "must be a user NKey seed: 58 characters starting with SU (`nk -gen user`)",
        );
    }
    let creds_file = checker.existing_file("nats.creds_file");
    let ways: Vec<&str> = [
        ("nats.user", user.is_some() || password.is_some()),
        ("nats.token", token.is_some()),
        ("nats.nkey_seed", seed.is_some()),
        ("nats.creds_file", creds_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, given)| given.then_some(key))
    .collect();
    let auth = if ways.len() > 1 {
        checker.problem(
            ways[1],
            format!(
                "give one way to authenticate to NATS, not {}",
                ways.join(" and ")
            ),
        );
        NatsAuthConfig::None
    } else {
        match (user, password, token, seed) {
            (Some(user), Some(password), _, _) => NatsAuthConfig::UserPassword { user, password },
            (Some(_), None, _, _) => {
                checker.problem("nats.user", "needs nats.password or nats.password_file");
                NatsAuthConfig::None
            }
            (None, Some(_), _, _) => {
                checker.problem("nats.password", "needs nats.user");
                NatsAuthConfig::None
            }
            (None, None, Some(token), _) => NatsAuthConfig::Token { token },
            (None, None, None, Some(seed)) => NatsAuthConfig::Nkey { seed },
            (None, None, None, None) => NatsAuthConfig::None,
        }
    };
    let cert_file = checker.existing_file("nats.cert_file");
    let key_file = checker.existing_file("nats.key_file");
    let client_certificate = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => {
            checker.problem("nats.cert_file", "needs nats.key_file");
            None
        }
        (None, Some(_)) => {
            checker.problem("nats.key_file", "needs nats.cert_file");
            None
        }
        (None, None) => None,
    };
    NatsConfig {
        url,
        prefix,
        auth,
        creds_file,
        ca_file: checker.existing_file("nats.ca_file"),
        client_certificate,
        tls_required: checker.bool("nats.tls_required"),
        replicas: checker.integer("nats.replicas", 1, 1..=MAX_REPLICAS) as usize,
        domain: checker.string("nats.domain"),
    }
}

/// JetStream's own limit on the copies of a stream.
const MAX_REPLICAS: i64 = 5;

/// Parses a begin/end time: RFC 3339, or a date or date-time without zone (taken as UTC).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let utc = if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        time.with_timezone(&Utc)
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or("invalid date")?
    } else if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        time.and_utc()
    } else {
        let reason = DateTime::parse_from_rfc3339(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(format!(
            "not a time ({reason}); use RFC 3339 like \"2024-01-01T00:00:00Z\" or a date like \"2024-01-01\""
        ));
    };
    utc.timestamp_nanos_opt().ok_or_else(|| {
        "outside the range of nanosecond timestamps (1677-09-21 to 2262-04-11)".to_owned()
    })
}

/// Whether the authority of `text` names a port (the url crate drops a scheme's default port).
fn has_explicit_port(text: &str) -> bool {
    let authority = text
        .split_once("://")
        .map_or(text, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.ends_with(']') {
        return false;
    }
    host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks an http(s)-like URL and adds the default port for its scheme when none is given.
fn http_url(text: &str, schemes: &[(&str, u16)]) -> Result<String, String> {
    let allowed: Vec<&str> = schemes.iter().map(|(scheme, _)| *scheme).collect();
    if !text.contains("://") {
        return Err(format!(
            "needs a scheme: {}://host:port",
            allowed.join("://host:port or ")
        ));
    }
    let mut url = url::Url::parse(text).map_err(|e| e.to_string())?;
    let Some(default_port) = schemes
        .iter()
        .find(|(scheme, _)| *scheme == url.scheme())
        .map(|(_, port)| *port)
    else {
        return Err(format!(
            "scheme {:?} is not one of {}",
            url.scheme(),
            allowed.join(", ")
        ));
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err("needs a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials; use the username/password or token keys".into());
    }
    if !has_explicit_port(text) {
        url.set_port(Some(default_port))
            .map_err(|()| "cannot set a port on this URL".to_owned())?;
    }
    // A scheme's own default port (https 443) stays implicit in the text; it is still the port.
    Ok(url.to_string().trim_end_matches('/').to_owned())
}

/// `host:port`, the port a number (0 picks a free one).
fn listen_address(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("must be host:port, e.g. 0.0.0.0:9090".into());
    };
    if host.is_empty() {
        return Err("the host is missing: use 0.0.0.0:PORT to listen everywhere".into());
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))
}

fn nats_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?}: {e}; use nats://host:4222"))?;
    if !["nats", "tls", "ws", "wss"].contains(&url.scheme()) {
        return Err(format!("{text:?}: scheme must be nats, tls, ws or wss"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?}: needs a host"));
    }
    if !url.username().is_empty() {
        return Err(format!(
            "{text:?}: put credentials in nats.user/nats.password or nats.token"
        ));
    }
    Ok(())
}

fn parse_dsn(text: &str) -> Result<Dsn, String> {
    let scheme = text
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .unwrap_or_default();
    let default_port = match scheme {
        "ws" | "wss" => 6041,
        "taos" => 6030,
        "file" => {
            let directory = PathBuf::from(&text["file://".len()..]);
            if !directory.is_absolute() {
                return Err("a file DSN needs an absolute directory: file:///path/to/dir".into());
            }
            return Ok(Dsn::File { directory });
        }
        _ => {
            return Err(
                "scheme must be ws:// or wss:// (taosAdapter), taos:// (native) or file:///dir"
                    .into(),
            );
        }
    };
    let mut url = url::Url::parse(text).map_err(|e| e.to_string())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("needs a host".into());
    }
    if !has_explicit_port(text) {
        url.set_port(Some(default_port))
            .map_err(|()| "cannot set a port on this DSN".to_owned())?;
    }
    let full = dsn_text(&url);
    let mut redacted_url = url.clone();
    if redacted_url.password().is_some() {
        let _ = redacted_url.set_password(Some(crate::REDACTED));
    }
    // TDengine Cloud puts its token in the query: `wss://host?token=...`.
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case("token") {
                    crate::REDACTED.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        redacted_url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let redacted = dsn_text(&redacted_url);
    Ok(match scheme {
        "taos" => Dsn::Native {
            url: Secret::new(full),
            redacted,
        },
        _ => Dsn::WebSocket {
            url: Secret::new(full),
            redacted,
        },
    })
}

/// The DSN as text, without the `/` the url crate adds to an empty path of `ws://` URLs.
fn dsn_text(url: &url::Url) -> String {
    let text = url.to_string();
    if url.path() == "/" && url.query().is_none() {
        return text.trim_end_matches('/').to_owned();
    }
    text
}

fn valid_tdengine_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// A nanosecond timestamp as RFC 3339 UTC (`2024-01-01T00:00:00Z`, fractions when present).
pub fn format_time(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn serialize_time<S: Serializer>(nanos: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*nanos))
}

pub(crate) fn serialize_optional_time<S: Serializer>(
    nanos: &Option<i64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match nanos {
        Some(nanos) => serializer.serialize_str(&format_time(*nanos)),
        None => serializer.serialize_none(),
    }
}

pub(crate) fn serialize_duration<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

pub(crate) fn serialize_regex<S: Serializer>(
    regex: &regex::Regex,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("/{}/", regex.as_str()))
}
