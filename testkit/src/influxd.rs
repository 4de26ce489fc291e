//! A real InfluxDB 1.x `influxd` with its own config and data directories.

use std::time::Duration;

use base64::Engine as _;
use tempfile::TempDir;

use crate::http::{HttpResponse, http_request};
use crate::process::{ServerProcess, free_port, require_binary};

/// How to start `influxd`.
#[derive(Debug, Clone, Default)]
pub struct InfluxdOptions {
    /// Turns on authentication and creates this admin user.
    pub admin: Option<(String, String)>,
    /// Serves HTTPS with this certificate and key (PEM) instead of HTTP. The helpers that send
    /// statements (`query`, `write`) speak plain HTTP and do not work then.
    pub tls: Option<crate::TestCertificates>,
    /// `[data] cache-snapshot-write-cold-duration`: how long after the last write the cache
    /// is written to a TSM file (influxd's default: 10m). A short one (`"1s"`) puts data in TSM
    /// files within seconds.
    pub cache_snapshot_write_cold_duration: Option<String>,
    /// `[data] compact-full-write-cold-duration`: how long after the last write a shard's TSM
    /// files are compacted into one (influxd's default: 4h).
    pub compact_full_write_cold_duration: Option<String>,
}

/// `influxd` 1.x on free ports (HTTP and the RPC `bind-address`); killed on drop.
#[derive(Debug)]
pub struct Influxd {
    binary: std::path::PathBuf,
    directory: TempDir,
    http_port: u16,
    rpc_port: u16,
    options: InfluxdOptions,
    process: Option<ServerProcess>,
}

impl Influxd {
    /// Starts an influxd without authentication, or `None` (test skipped) when not installed.
    pub fn start() -> Option<Self> {
        Self::start_with(InfluxdOptions::default())
    }

    /// Starts an influxd with authentication on (admin `admin` / `admin-secret`), the database
    /// `database`, and `user` who may only read it; `None` (test skipped) when not installed.
    pub fn with_reader(database: &str, user: &str, password: &str) -> Option<Self> {
        let influxd = Self::start_with(InfluxdOptions {
            admin: Some(("admin".into(), "admin-secret".into())),
            ..InfluxdOptions::default()
        })?;
        influxd.query(&format!("CREATE DATABASE \"{database}\""));
        influxd.query(&format!(
            "CREATE USER \"{user}\" WITH PASSWORD '{}'",
            password.replace('\'', "\\'")
        ));
        influxd.query(&format!("GRANT READ ON \"{database}\" TO \"{user}\""));
        Some(influxd)
    }

    pub fn start_with(options: InfluxdOptions) -> Option<Self> {
        let binary = require_binary("influxd", "INFLUXD_BIN")?;
        // A port taken by another test between `free_port` and our bind: try other ports.
        let mut attempts = 0;
        let server = loop {
            let mut server = Self {
                binary: binary.clone(),
                directory: tempfile::tempdir().expect("cannot create temp dir"),
                http_port: free_port(),
                rpc_port: free_port(),
                options: options.clone(),
                process: None,
            };
            server.write_config();
            let started =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.start_again()));
            attempts += 1;
            match started {
                Ok(()) => break server,
                Err(panic) if attempts >= 3 => std::panic::resume_unwind(panic),
                Err(_) => continue,
            }
        };
        if let Some((user, password)) = server.options.admin.clone() {
            // With auth on, InfluxDB accepts exactly one unauthenticated statement: the first admin.
            let statement = format!(
                "CREATE USER \"{user}\" WITH PASSWORD '{}' WITH ALL PRIVILEGES",
                password.replace('\'', "\\'")
            );
            let response = server.query_as(None, &statement);
            assert!(
                response.status == 200 && !response.body.contains("\"error\""),
                "{response:?}"
            );
        }
        Some(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// `[data] dir`: `<database>/<retention policy>/<shard id>/*.tsm`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.directory.path().join("data")
    }

    /// `[data] wal-dir`: `<database>/<retention policy>/<shard id>/_NNNNN.wal`.
    pub fn wal_dir(&self) -> std::path::PathBuf {
        self.directory.path().join("wal")
    }

    fn write_config(&self) {
        let root = self.directory.path();
        let config = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
{data_options}

[coordinator]
  query-timeout = "0s"

[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  auth-enabled = {auth}
  log-enabled = false
{tls}

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"#,
            rpc = self.rpc_port,
            http = self.http_port,
            root = root.display(),
            auth = self.options.admin.is_some(),
            data_options = [
                (
                    "cache-snapshot-write-cold-duration",
                    &self.options.cache_snapshot_write_cold_duration
                ),
                (
                    "compact-full-write-cold-duration",
                    &self.options.compact_full_write_cold_duration
                ),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| format!("  {key} = \"{value}\"\n")))
            .collect::<String>(),
            tls = self.options.tls.as_ref().map_or_else(String::new, |tls| format!(
                "  https-enabled = true\n  https-certificate = \"{}\"\n  https-private-key = \"{}\"",
                tls.cert_file.display(),
                tls.key_file.display()
            )),
        );
        std::fs::write(root.join("influxdb.conf"), config).expect("cannot write influxd config");
    }

    /// Kills influxd (SIGKILL, like a crash).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts influxd again on the same ports with the same data, under other options (say, a
    /// different cold duration); `admin` and `tls` must stay as they were.
    pub fn start_again_with(&mut self, options: InfluxdOptions) {
        self.stop();
        self.options = options;
        self.write_config();
        self.start_again();
    }

    /// Starts influxd again on the same ports with the same data.
    pub fn start_again(&mut self) {
        self.stop();
        let config = self.directory.path().join("influxdb.conf");
        let args = [
            "run".to_owned(),
            "-config".to_owned(),
            config.display().to_string(),
        ];
        let mut process = ServerProcess::spawn(
            &self.binary,
            &args,
            self.directory.path().join("influxd.log"),
        );
        let port = self.http_port;
        let tls = self.options.tls.is_some();
        process.wait_until("influxd", port, Duration::from_secs(30), || {
            // Over TLS, that influxd itself listens on the port is the readiness we can see.
            tls || http_request(port, "GET", "/ping", &[], b"")
                .is_ok_and(|response| response.status == 204)
        });
        self.process = Some(process);
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        self.options
            .admin
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    fn query_as(&self, credentials: Option<(&str, &str)>, statement: &str) -> HttpResponse {
        self.query_as_in(credentials, None, statement)
    }

    fn query_as_in(
        &self,
        credentials: Option<(&str, &str)>,
        database: Option<&str>,
        statement: &str,
    ) -> HttpResponse {
        self.query_as_in_epoch(credentials, database, None, statement)
    }

    fn query_as_in_epoch(
        &self,
        credentials: Option<(&str, &str)>,
        database: Option<&str>,
        epoch: Option<&str>,
        statement: &str,
    ) -> HttpResponse {
        // In the URL, not the body: a refused request is answered before any body is read.
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("q", statement);
        if let Some(database) = database {
            query.append_pair("db", database);
        }
        if let Some(epoch) = epoch {
            query.append_pair("epoch", epoch);
        }
        let query = query.finish();
        let authorization = basic_auth(credentials);
        let mut headers = Vec::new();
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization.as_str()));
        }
        http_request(
            self.http_port,
            "POST",
            &format!("/query?{query}"),
            &headers,
            b"",
        )
        .unwrap_or_else(|e| panic!("influxd query {statement:?} failed: {e}"))
    }

    /// Runs an InfluxQL statement (as the admin when auth is on); panics on any error, which
    /// InfluxDB reports inside an HTTP 200 body.
    pub fn query(&self, statement: &str) -> String {
        self.query_in(None, statement)
    }

    /// Like [`Influxd::query`], in `database` (for statements that name no database).
    pub fn query_in(&self, database: Option<&str>, statement: &str) -> String {
        let response = self.query_as_in(self.credentials(), database, statement);
        assert!(
            response.status == 200 && !response.body.contains("\"error\""),
            "influxd query {statement:?}: {response:?}"
        );
        response.body
    }

    /// Like [`Influxd::query_in`], with times as integer nanoseconds (`epoch=ns`) instead of
    /// RFC 3339 text.
    pub fn query_ns(&self, database: &str, statement: &str) -> String {
        let response =
            self.query_as_in_epoch(self.credentials(), Some(database), Some("ns"), statement);
        assert!(
            response.status == 200 && !response.body.contains("\"error\""),
            "influxd query {statement:?}: {response:?}"
        );
        response.body
    }

    /// Writes line protocol with nanosecond timestamps into `database`.
    pub fn write(&self, database: &str, lines: &str) {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("db", database)
            .append_pair("precision", "ns")
            .finish();
        let authorization = basic_auth(self.credentials());
        let mut headers = Vec::new();
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization.as_str()));
        }
        let response = http_request(
            self.http_port,
            "POST",
            &format!("/write?{query}"),
            &headers,
            lines.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("influxd write failed: {e}"));
        assert_eq!(response.status, 204, "influxd write: {response:?}");
    }
}

fn basic_auth(credentials: Option<(&str, &str)>) -> Option<String> {
    credentials.map(|(user, password)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_a_crash_and_restart() {
        let Some(mut influxd) = Influxd::start() else {
            return;
        };
        influxd.query("CREATE DATABASE \"test db\"");
        influxd.write(
            "test db",
            "cpu,host=a value=1.5 1000000000000000001\ncpu,host=b value=2.5 1000000000000000002\n",
        );
        let before = influxd.query("SELECT count(*) FROM \"test db\"..\"cpu\"");
        assert!(
            before.contains("[0,2,0]") || before.contains(",2]"),
            "{before}"
        );
        influxd.stop();
        influxd.start_again();
        let after = influxd.query("SELECT * FROM \"test db\"..\"cpu\" WHERE host = 'b'");
        assert!(
            after.contains("\"value\"") && after.contains("2.5]"),
            "{after}"
        );
    }

    #[test]
    fn auth_rejects_wrong_password() {
        let options = InfluxdOptions {
            admin: Some(("admin".into(), "s3cret".into())),
            ..Default::default()
        };
        let Some(influxd) = Influxd::start_with(options) else {
            return;
        };
        influxd.query("CREATE DATABASE db");
        let denied = influxd.query_as(Some(("admin", "wrong")), "SHOW DATABASES");
        assert_eq!(denied.status, 401, "{denied:?}");
        let anonymous = influxd.query_as(None, "SHOW DATABASES");
        assert_eq!(anonymous.status, 401, "{anonymous:?}");
    }
}
