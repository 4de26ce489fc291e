//! The job configuration: a TOML file, overridden by `INFLUX2TD_*` environment variables,
//! overridden by flags; unknown keys are errors; one validation step reports every problem with
//! the key, the value and where it came from. Secrets never print.

pub mod check;
pub mod keys;
mod layers;
mod secret;
pub mod tsm;
mod validate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use layers::{Layers, Origin};
pub use secret::{REDACTED, Secret};
pub use validate::{format_time, parse_time};

/// A validated job.
#[derive(Debug, Clone, Serialize)]
pub struct JobConfig {
    pub job: String,
    pub bucket: String,
    pub measurements: Vec<MeasurementFilter>,
    /// UTC nanoseconds since the epoch, inclusive.
    #[serde(rename = "begin", serialize_with = "validate::serialize_time")]
    pub begin_ns: i64,
    /// UTC nanoseconds since the epoch, exclusive; `None` keeps syncing.
    #[serde(rename = "end", serialize_with = "validate::serialize_optional_time")]
    pub end_ns: Option<i64>,
    #[serde(serialize_with = "validate::serialize_duration")]
    pub window: Duration,
    #[serde(serialize_with = "validate::serialize_duration")]
    pub delay: Duration,
    /// Continuous sync reads each window again this much later than `delay` (zero: never).
    #[serde(serialize_with = "validate::serialize_duration")]
    pub lookback: Duration,
    pub log_level: LogLevel,
    pub read_concurrency: usize,
    pub write_concurrency: usize,
    pub batch_size: usize,
    pub max_window_rows: u64,
    /// Tries of a row batch TDengine keeps refusing with an error not known to heal by itself.
    pub retry_limit: u32,
    #[serde(serialize_with = "validate::serialize_duration")]
    pub ack_wait: Duration,
    #[serde(serialize_with = "validate::serialize_duration")]
    pub lease_ttl: Duration,
    pub state_dir: PathBuf,
    /// Where the HTTP endpoints are served; `None`: not at all.
    pub http_listen: Option<String>,
    /// Where OpenTelemetry traces go (OTLP/HTTP, `…/v1/traces`); `None`: the
    /// `OTEL_EXPORTER_OTLP_*` environment decides, and without it there are none.
    pub otlp_traces_endpoint: Option<String>,
    /// Who discovers the measurements of a job over NATS (`source.discovery`).
    pub discovery: Discovery,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub nats: NatsConfig,
}

/// Which measurements to copy.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MeasurementFilter {
    Name(String),
    Regex(#[serde(serialize_with = "validate::serialize_regex")] regex::Regex),
}

impl MeasurementFilter {
    pub fn matches(&self, measurement: &str) -> bool {
        match self {
            Self::Name(name) => name == measurement,
            Self::Regex(regex) => regex.is_match(measurement),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const NAMES: [&'static str; 5] = ["error", "warn", "info", "debug", "trace"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Who lists the measurements and their time bounds before a job over NATS starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    /// The coordinator queries InfluxDB itself.
    Coordinator,
    /// Only readers reach InfluxDB (agents at the source's site); the coordinator asks them.
    Readers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryLanguage {
    Influxql,
    Flux,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceConfig {
    /// Through the query engine (the default), or the storage files read directly.
    pub kind: SourceKind,
    /// `http://host:8086` when no port was given for http (https keeps its default, 443).
    pub url: String,
    /// `None`: detect from the server.
    pub version: Option<u8>,
    pub query_language: QueryLanguage,
    pub auth: SourceAuth,
    pub tls: TlsConfig,
    /// The longest silence inside an answer before the read is abandoned (and retried).
    #[serde(serialize_with = "validate::serialize_duration")]
    pub read_timeout: Duration,
}

/// What the reader reads (`source.kind`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// InfluxDB's query engine over HTTP, in `source.query_language`.
    #[default]
    Query,
    /// A 1.x server's TSM files and WAL, read on the host that sees them.
    Tsm(tsm::TsmDirs),
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceAuth {
    None,
    /// 1.x user and password (basic auth).
    Basic {
        username: String,
        password: Secret,
    },
    /// 2.x/3.x token (`Authorization: Token ...`) with the organization for 2.x.
    Token {
        org: Option<String>,
        token: Secret,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetConfig {
    pub dsn: Dsn,
    pub database: String,
    pub create_database: bool,
    pub allow_non_empty: bool,
    /// How rows go into TDengine (`taos://`, `ws://`); the file target always writes SQL.
    pub insert: InsertMode,
}

/// How the writer puts rows into TDengine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InsertMode {
    /// Parameter binding (`taos_stmt`): the batch's typed columns as they are, many child
    /// tables per round trip; no SQL text to render nor to parse.
    #[default]
    Bind,
    /// Multi-table INSERT statements.
    Sql,
}

/// Where rows go.
#[derive(Clone, PartialEq, Eq)]
pub enum Dsn {
    /// taosAdapter over WebSocket, `ws://` or `wss://`, with an explicit port.
    WebSocket { url: Secret, redacted: String },
    /// The native client library, `taos://`, with an explicit port.
    Native { url: Secret, redacted: String },
    /// SQL statements written to files in this directory.
    File { directory: PathBuf },
}

impl Dsn {
    /// The DSN with any password replaced by [`REDACTED`].
    pub fn redacted(&self) -> String {
        match self {
            Self::WebSocket { redacted, .. } | Self::Native { redacted, .. } => redacted.clone(),
            Self::File { directory } => format!("file://{}", directory.display()),
        }
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted())
    }
}

impl Serialize for Dsn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NatsConfig {
    /// `None`: the embedded in-process bus.
    pub url: Option<String>,
    pub prefix: String,
    pub auth: NatsAuthConfig,
    pub creds_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM).
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub tls_required: bool,
    /// Copies of each stream and of the checkpoint bucket (1-5).
    pub replicas: usize,
    /// The hub's JetStream domain, for a process on a leaf node (`None`: the server's own).
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NatsAuthConfig {
    None,
    UserPassword { user: String, password: Secret },
    Token { token: Secret },
    Nkey { seed: Secret },
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key (or environment variable) at fault.
    pub key: String,
    /// The offending value as given ([`REDACTED`] for secrets).
    pub value: Option<String>,
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                formatter,
                "{}: invalid value {value:?}{}: {}",
                self.key,
                self.origin.describe(),
                self.message
            ),
            None => write!(
                formatter,
                "{}{}: {}",
                self.key,
                self.origin.describe(),
                self.message
            ),
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("config file {path} is not valid TOML: {detail}")]
    Syntax { path: String, detail: String },
    #[error("{}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems found, empty for read and syntax errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn format_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    format!("invalid configuration:\n  {}", lines.join("\n  "))
}

/// Loads a job: the file (if any), then `env` (only `INFLUX2TD_*` variables are looked at),
/// then `KEY=VALUE` overrides, then one validation step.
pub fn load<'a>(
    file: Option<&std::path::Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: impl IntoIterator<Item = &'a str>,
) -> Result<JobConfig, ConfigError> {
    let mut layers = Layers::default();
    if let Some(path) = file {
        layers.file(path)?;
    }
    layers.env(env);
    layers.flags(overrides);
    validate::validate(layers)
}

/// Validates layers merged by hand (used by tests and the console's API).
pub fn validate(layers: Layers) -> Result<JobConfig, ConfigError> {
    validate::validate(layers)
}

/// Validates only the `nats.*` keys of `layers` (the others are not looked at).
pub fn validate_nats(layers: Layers) -> Result<NatsConfig, ConfigError> {
    validate::validate_nats(layers)
}
