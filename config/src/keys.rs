//! Every configuration key: its TOML path, its type, its default and what it means. The loader,
//! the environment mapping, `--set`, the README reference and `examples/job.toml` agree with it.

/// The TOML type a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Bool,
    /// A list of strings; comma separated in environment variables and `--set`.
    StringList,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Bool => "true or false",
            Self::StringList => "a list of strings",
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted TOML path, e.g. `source.url`.
    pub path: &'static str,
    pub kind: Kind,
    /// The default, as documentation ("required" when there is none and the key is needed).
    pub default: &'static str,
    pub help: &'static str,
    /// Never printed.
    pub secret: bool,
}

impl Key {
    /// `INFLUX2TD_SOURCE_URL` for `source.url`.
    pub fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.path.replace('.', "_").to_uppercase())
    }
}

/// Environment variables that override keys start with this.
pub const ENV_PREFIX: &str = "INFLUX2TD_";

/// Environment variables of the CLI itself, not config keys.
pub const NON_KEY_ENV_VARS: &[&str] = &["INFLUX2TD_CONFIG", "INFLUX2TD_LOG_FORMAT"];

const fn key(path: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Key {
    Key {
        path,
        kind,
        default,
        help,
        secret: false,
    }
}

const fn secret(path: &'static str, help: &'static str) -> Key {
    Key {
        path,
        kind: Kind::String,
        default: "none",
        help,
        secret: true,
    }
}

/// Tables that may appear in the file.
pub const TABLES: &[&str] = &[
    "source",
    "source.tls",
    "target",
    "nats",
    "http",
    "telemetry",
];

pub const KEYS: &[Key] = &[
    key(
        "job",
        Kind::String,
        "<bucket>-to-<target.database>",
        "name of the job: NATS subjects, KV keys, state file, metrics label (A-Z a-z 0-9 _ -)",
    ),
    key(
        "bucket",
        Kind::String,
        "required",
        "the InfluxDB bucket to copy; for 1.x `database` or `database/retention_policy`",
    ),
    key(
        "measurements",
        Kind::StringList,
        "[] (all)",
        "measurements to copy; `/regex/` entries match by regular expression; empty copies all",
    ),
    key(
        "begin",
        Kind::String,
        "required",
        "UTC start of the data to copy, RFC 3339 (`2024-01-01T00:00:00Z`) or a date (`2024-01-01`)",
    ),
    key(
        "end",
        Kind::String,
        "none (keep syncing)",
        "UTC end, exclusive; without it influx2td copies history and then keeps syncing new data",
    ),
    key(
        "window",
        Kind::String,
        "60m",
        "time range read per query (`30s`, `15m`, `6h`, `1d`)",
    ),
    key(
        "delay",
        Kind::String,
        "30s",
        "how far behind now continuous sync stays, to absorb late points",
    ),
    key(
        "lookback",
        Kind::String,
        "0s (off)",
        "continuous sync: read every window once more when it is this much older than `delay` allows, to catch points later than `delay` (costs one more read per window)",
    ),
    key(
        "log_level",
        Kind::String,
        "info",
        "error, warn, info, debug or trace (RUST_LOG overrides per module)",
    ),
    key(
        "read_concurrency",
        Kind::Integer,
        "50",
        "windows read from InfluxDB at once",
    ),
    key(
        "write_concurrency",
        Kind::Integer,
        "50",
        "inserts in flight to TDengine at once",
    ),
    key(
        "batch_size",
        Kind::Integer,
        "5000",
        "maximum rows per TDengine INSERT",
    ),
    key(
        "max_window_rows",
        Kind::Integer,
        "2000000",
        "a window holding more rows is split in halves and re-queued instead of read to the end (dense stretches get small windows)",
    ),
    key(
        "retry_limit",
        Kind::Integer,
        "10",
        "tries of a row batch TDengine keeps refusing with an error that is not a connection, timeout or busy error, before the rows it refuses are dead-lettered (about 4 minutes at the default)",
    ),
    key(
        "ack_wait",
        Kind::String,
        "30s",
        "how long a window or batch taken by a reader or writer that died waits before another one gets it",
    ),
    key(
        "lease_ttl",
        Kind::String,
        "30s",
        "how long a coordinator that died keeps its job's lease before a standby takes over",
    ),
    key(
        "state_dir",
        Kind::String,
        ".influx2td",
        "directory for the embedded mode's checkpoint file (one file per job)",
    ),
    key(
        "http.listen",
        Kind::String,
        "none (no HTTP server)",
        "`host:port` where the process serves /healthz, /readyz, /metrics and (coordinator, run) /status, e.g. `0.0.0.0:9090`",
    ),
    key(
        "telemetry.otlp_endpoint",
        Kind::String,
        "none (OTEL_EXPORTER_OTLP_ENDPOINT, else no traces)",
        "base URL of an OTLP/HTTP collector (`http://collector:4318`; `/v1/traces` is appended): one trace per window across coordinator, reader and writer",
    ),
    key(
        "source.url",
        Kind::String,
        "required",
        "InfluxDB URL, `http://host:port` or `https://...`; port 8086 for http when not given, 443 for https",
    ),
    key(
        "source.read_timeout",
        Kind::String,
        "5m",
        "the longest InfluxDB may fall silent in the middle of an answer before the read is abandoned and retried",
    ),
    key(
        "source.version",
        Kind::Integer,
        "detect",
        "1, 2 or 3; detected from the server when not given",
    ),
    key(
        "source.discovery",
        Kind::String,
        "coordinator",
        "who lists the measurements and their time bounds before a job over NATS starts: `coordinator` (it reaches InfluxDB itself) or `readers` (only readers reach InfluxDB, e.g. agents at the source's site behind a NATS leaf node: the coordinator asks them over NATS)",
    ),
    key(
        "source.kind",
        Kind::String,
        "query",
        "`query`: read through InfluxDB's query engine over HTTP (source.query_language); `tsm`: read a 1.x server's storage files (TSM files and WAL) directly, on the host that sees source.data_dir and source.wal_dir",
    ),
    key(
        "source.data_dir",
        Kind::String,
        "required for source.kind = tsm",
        "the `[data] dir` of the InfluxDB 1.x server (holds `<database>/<retention policy>/<shard id>/`); read-only",
    ),
    key(
        "source.wal_dir",
        Kind::String,
        "required for source.kind = tsm",
        "the `[data] wal-dir` of the InfluxDB 1.x server (points not yet in TSM files); read-only",
    ),
    key(
        "source.query_language",
        Kind::String,
        "influxql",
        "influxql (1.x, and 2.x/3.x through /query) or flux (2.x only)",
    ),
    key(
        "source.username",
        Kind::String,
        "none",
        "1.x user (basic auth)",
    ),
    secret("source.password", "1.x password"),
    key(
        "source.password_file",
        Kind::String,
        "none",
        "file holding the 1.x password (instead of source.password)",
    ),
    key(
        "source.org",
        Kind::String,
        "none",
        "2.x organization name or ID",
    ),
    secret("source.token", "2.x/3.x API token with read access"),
    key(
        "source.token_file",
        Kind::String,
        "none",
        "file holding the token (instead of source.token)",
    ),
    key(
        "source.tls.ca_file",
        Kind::String,
        "system roots",
        "PEM CA certificate(s) to trust for https",
    ),
    key(
        "source.tls.cert_file",
        Kind::String,
        "none",
        "PEM client certificate (with source.tls.key_file)",
    ),
    key(
        "source.tls.key_file",
        Kind::String,
        "none",
        "PEM client key",
    ),
    key(
        "source.tls.insecure_skip_verify",
        Kind::Bool,
        "false",
        "accept any server certificate (testing only; logged as a warning)",
    ),
    key(
        "target.dsn",
        Kind::String,
        "required",
        "TDengine DSN: `ws://host:6041`, `wss://...`, `taos://host:6030` (native), or `file:///path` (write SQL to files)",
    ),
    key(
        "target.dsn_file",
        Kind::String,
        "none",
        "file holding `target.dsn` (it may hold TDengine's password), e.g. a mounted secret",
    ),
    key(
        "target.database",
        Kind::String,
        "required",
        "TDengine database to write into",
    ),
    key(
        "target.create_database",
        Kind::Bool,
        "false",
        "create the database (PRECISION 'ns', long KEEP) when it does not exist",
    ),
    key(
        "target.allow_non_empty",
        Kind::Bool,
        "false",
        "write into a database that already holds tables",
    ),
    key(
        "target.insert",
        Kind::String,
        "bind",
        "how rows go into TDengine: bind (parameter binding of the typed columns, the fastest) or sql (multi-table INSERT statements); the file target always writes SQL",
    ),
    key(
        "nats.url",
        Kind::String,
        "none (embedded bus)",
        "NATS server(s), `nats://host:4222`, comma separated; absent runs everything in one process",
    ),
    key(
        "nats.prefix",
        Kind::String,
        "influx2td",
        "first token of every subject, stream and KV bucket name (A-Z a-z 0-9 -)",
    ),
    key("nats.user", Kind::String, "none", "NATS user"),
    secret("nats.password", "NATS password"),
    key(
        "nats.password_file",
        Kind::String,
        "none",
        "file holding the NATS password",
    ),
    secret("nats.token", "NATS token"),
    key(
        "nats.token_file",
        Kind::String,
        "none",
        "file holding the NATS token",
    ),
    secret(
        "nats.nkey_seed",
        "NATS user NKey seed, `SU…` (secret: never printed)",
    ),
    key(
        "nats.nkey_seed_file",
        Kind::String,
        "none",
        "file holding the NKey seed (e.g. from `nk -gen user`)",
    ),
    key(
        "nats.creds_file",
        Kind::String,
        "none",
        "NATS credentials file (JWT + NKey seed)",
    ),
    key(
        "nats.ca_file",
        Kind::String,
        "system roots",
        "PEM CA certificate(s) for TLS to NATS",
    ),
    key(
        "nats.cert_file",
        Kind::String,
        "none",
        "PEM client certificate, for servers that verify clients (with nats.key_file)",
    ),
    key("nats.key_file", Kind::String, "none", "PEM client key"),
    key(
        "nats.tls_required",
        Kind::Bool,
        "false",
        "refuse a NATS server that does not offer TLS",
    ),
    key(
        "nats.replicas",
        Kind::Integer,
        "1",
        "copies JetStream keeps of the job's streams and checkpoint bucket (1-5; 3 on a 3-server cluster, so that losing a server loses nothing)",
    ),
    key(
        "nats.domain",
        Kind::String,
        "none",
        "JetStream domain of the hub holding the job's streams, for a process connected to a leaf node (a reader at the source's site: deploy/README.md)",
    ),
];

/// The key at `path`.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

/// The key whose environment variable is `name`.
pub fn find_env(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.env_var() == name)
}

/// The known key closest to a misspelt one, for "did you mean" hints.
pub fn closest(path: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|key| (edit_distance(path, key.path), key.path))
        .filter(|(distance, candidate)| *distance <= 3.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_are_unique_and_map_back() {
        for key in KEYS {
            assert_eq!(find_env(&key.env_var()).map(|k| k.path), Some(key.path));
        }
        assert_eq!(
            find("source.tls.ca_file").unwrap().env_var(),
            "INFLUX2TD_SOURCE_TLS_CA_FILE"
        );
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        assert_eq!(closest("source.tokn"), Some("source.token"));
        assert_eq!(closest("batchsize"), Some("batch_size"));
        assert_eq!(closest("completely.unrelated.thing"), None);
    }
}
