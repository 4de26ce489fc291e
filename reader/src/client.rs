//! HTTP client of InfluxDB's `/ping` and `/query` (1.x, and the v1-compatible endpoint of 2.x
//! and 3.x): TLS options, basic or token auth, and error responses turned into [`SourceError`].

use influx2td_config::check::NetworkFailure;
use std::collections::BTreeMap;
use std::time::Duration;

use influx2td_config::{SourceAuth, SourceConfig};
use serde::Deserialize;

use crate::error::SourceError;

/// What `/ping` tells about the server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    /// As the server reports it, e.g. `1.8.10`, `v2.7.4`, `3.0.1`.
    pub version: String,
    /// `OSS`, `Enterprise`, `Cloud`, ... when the server says.
    pub build: Option<String>,
    /// 1, 2 or 3 when the version string starts with it.
    pub major: Option<u8>,
}

/// One database (1.x) or bucket (2.x/3.x through DBRP) and how to reach it.
#[derive(Debug, Clone)]
pub struct InfluxClient {
    http: reqwest::Client,
    base_url: String,
    auth: SourceAuth,
    database: String,
    retention_policy: Option<String>,
    read_timeout: Duration,
    /// `source.version`, or what `/ping` said (asked once, when first needed).
    major: std::sync::Arc<tokio::sync::OnceCell<Option<u8>>>,
}

/// How a window's answer is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    /// Chunked MessagePack (1.x, 2.x): integers and floats kept apart.
    Msgpack,
    /// Chunked JSON, one object per line (3.x answers no MessagePack): the schema tells
    /// integers from floats.
    JsonLines,
}

/// The JSON answer of `/query`.
#[derive(Debug, Deserialize)]
struct QueryResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatementResult {
    #[serde(default)]
    statement_id: usize,
    #[serde(default)]
    series: Vec<JsonSeries>,
    error: Option<String>,
}

/// A series of a JSON answer (used for the small metadata queries).
#[derive(Debug, Clone, Deserialize)]
pub struct JsonSeries {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

impl InfluxClient {
    /// `bucket` is `database` or `database/retention_policy` for 1.x; the bucket name for 2.x/3.x.
    pub fn new(config: &SourceConfig, bucket: &str) -> Result<Self, SourceError> {
        // reqwest is built without a bundled crypto provider; ring is the one already in the tree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A server gone silent mid-answer (stalled, or a link dropped without a reset)
            // must end the read, not hold the window forever while heartbeats keep it alive.
            .read_timeout(config.read_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("influx2td/", env!("CARGO_PKG_VERSION")));
        let config_error = |detail: String| SourceError::Config { detail };
        if let Some(ca_file) = &config.tls.ca_file {
            let pem = std::fs::read(ca_file).map_err(|e| {
                config_error(format!(
                    "cannot read source.tls.ca_file {}: {e}",
                    ca_file.display()
                ))
            })?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                config_error(format!("source.tls.ca_file {}: {e}", ca_file.display()))
            })? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let (Some(cert_file), Some(key_file)) = (&config.tls.cert_file, &config.tls.key_file) {
            let mut pem = std::fs::read(cert_file).map_err(|e| {
                config_error(format!(
                    "cannot read source.tls.cert_file {}: {e}",
                    cert_file.display()
                ))
            })?;
            pem.extend(std::fs::read(key_file).map_err(|e| {
                config_error(format!(
                    "cannot read source.tls.key_file {}: {e}",
                    key_file.display()
                ))
            })?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| config_error(format!("client certificate/key: {e}")))?;
            builder = builder.identity(identity);
        }
        if config.tls.insecure_skip_verify {
            tracing::warn!(
                url = config.url,
                "source.tls.insecure_skip_verify is on: the InfluxDB server certificate is NOT checked"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        let (database, retention_policy) = match (config.version, bucket.split_once('/')) {
            (Some(3), Some(_)) => {
                return Err(config_error(format!(
                    "bucket {bucket:?}: InfluxDB 3 has no retention policies; name the database alone"
                )));
            }
            (Some(2), _) | (_, None) => (bucket.to_owned(), None),
            (_, Some((database, policy))) => (database.to_owned(), Some(policy.to_owned())),
        };
        let major = std::sync::Arc::new(tokio::sync::OnceCell::new());
        if let Some(version) = config.version {
            let _ = major.set(Some(version));
        }
        Ok(Self {
            http,
            base_url: config.url.trim_end_matches('/').to_owned(),
            auth: config.auth.clone(),
            database,
            retention_policy,
            read_timeout: config.read_timeout,
            major,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn retention_policy(&self) -> Option<&str> {
        self.retention_policy.as_deref()
    }

    /// The server's major version: `source.version`, else what `/ping` says (asked once).
    pub async fn major_version(&self) -> Result<Option<u8>, SourceError> {
        self.major
            .get_or_try_init(|| async { Ok(self.ping().await?.major) })
            .await
            .copied()
    }

    /// Whether the server is InfluxDB 3 (by `source.version`, else by `/ping`).
    pub async fn is_v3(&self) -> Result<bool, SourceError> {
        let is_v3 = self.major_version().await? == Some(3);
        if is_v3 && let Some(policy) = &self.retention_policy {
            return Err(SourceError::Config {
                detail: format!(
                    "bucket \"{}/{policy}\": InfluxDB 3 has no retention policies; name the database alone",
                    self.database
                ),
            });
        }
        Ok(is_v3)
    }

    /// The same client without credentials (to see whether the server enforces auth).
    pub fn anonymous(&self) -> Self {
        Self {
            auth: SourceAuth::None,
            ..self.clone()
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            SourceAuth::None => request,
            SourceAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            SourceAuth::Token { token, .. } => request.header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", token.expose()),
            ),
        }
    }

    /// [`Self::transport_error`] of a request sending `statement`, which it names; a server
    /// that closed the connection without an answer (InfluxDB 3 does that on statements it
    /// cannot answer) is said to have done exactly that.
    fn statement_transport_error(&self, error: &reqwest::Error, statement: &str) -> SourceError {
        let shown: String = statement.chars().take(300).collect();
        match self.transport_error(error) {
            SourceError::Unreachable { url, detail } => {
                let detail = if detail.starts_with(NetworkFailure::Closed.said()) {
                    format!("the server closed the connection without an answer to {shown:?}")
                } else {
                    format!("{detail} (sending {shown:?})")
                };
                SourceError::Unreachable { url, detail }
            }
            other => other,
        }
    }

    /// A transport failure in plain words, with what to check; the client's own chain of
    /// causes is logged at debug level, and shown only when it is none of the known failures.
    fn transport_error(&self, error: &reqwest::Error) -> SourceError {
        let mut raw = error.to_string();
        let mut source = std::error::Error::source(error);
        let mut last = raw.clone();
        while let Some(cause) = source {
            raw.push_str(": ");
            raw.push_str(&cause.to_string());
            last = cause.to_string();
            source = cause.source();
        }
        tracing::debug!(
            url = self.base_url,
            detail = raw,
            "the HTTP client's own words"
        );
        let url = self.base_url.clone();
        // Classified without the URL: its path or query could hold any word looked for.
        let words = match error.url() {
            Some(url) => raw.replace(url.as_str(), ""),
            None => raw.clone(),
        };
        let failure = if error.is_timeout() {
            Some(NetworkFailure::Timeout)
        } else {
            NetworkFailure::of(&words, self.base_url.starts_with("https"))
        };
        let advice = match failure {
            Some(NetworkFailure::Timeout) => {
                return SourceError::Timeout {
                    url,
                    detail: "is the host reachable from here (address, firewall), and is InfluxDB not overloaded?".to_owned(),
                };
            }
            Some(NetworkFailure::Refused) => "is InfluxDB running there, and is the port right? (1.x and 2.x listen on 8086 by default, InfluxDB 3 on 8181)".to_owned(),
            Some(NetworkFailure::UnknownHost) => "check the host in source.url".to_owned(),
            Some(NetworkFailure::NoRoute) => {
                "check the address in source.url, and the network or firewall between here and there".to_owned()
            }
            Some(NetworkFailure::Tls) => format!(
                "{} — is the server https:// (or plain http://), with a certificate for this host name from a CA this machine trusts (or source.tls.ca_file)?",
                last.trim()
            ),
            Some(NetworkFailure::Closed) => String::new(),
            None => return SourceError::Unreachable { url, detail: raw },
        };
        let said = failure.map_or("", NetworkFailure::said);
        let detail = if advice.is_empty() {
            said.to_owned()
        } else {
            format!("{said} — {advice}")
        };
        SourceError::Unreachable { url, detail }
    }

    /// `GET /ping`: reachable, and which server. Needs no credentials on 1.x and 2.x.
    pub async fn ping(&self) -> Result<ServerInfo, SourceError> {
        let response = self
            .authorize(self.http.get(format!("{}/ping", self.base_url)))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let (version, build) = (header("x-influxdb-version"), header("x-influxdb-build"));
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(SourceError::Unauthorized {
                detail: format!(
                    "/ping answered HTTP {}: a token is needed or wrong (InfluxDB 3 asks for it even there)",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(SourceError::Server {
                status: status.as_u16(),
                detail: format!("/ping at {} is not an InfluxDB endpoint", self.base_url),
            });
        }
        let Some(version) = version else {
            return Err(SourceError::Malformed {
                detail: format!(
                    "{}/ping answered without an X-Influxdb-Version header: not InfluxDB?",
                    self.base_url
                ),
            });
        };
        let major = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|digits| digits.parse().ok());
        Ok(ServerInfo {
            version,
            build,
            major,
        })
    }

    fn query_request(&self, statement: &str, extra: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut parameters = vec![
            ("q", statement),
            ("db", self.database.as_str()),
            ("epoch", "ns"),
        ];
        if let Some(policy) = &self.retention_policy {
            parameters.push(("rp", policy));
        }
        parameters.extend_from_slice(extra);
        self.authorize(
            self.http
                .get(format!("{}/query", self.base_url))
                .query(&parameters),
        )
    }

    /// Checks the HTTP status of a `/query` answer; errors carry the server's message.
    async fn check_status(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, SourceError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        // 1.x answers {"error": ...}; 2.x answers {"code": ..., "message": ...}.
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|parsed| {
                parsed
                    .get("error")
                    .or_else(|| parsed.get("message"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        Err(match status.as_u16() {
            401 | 403 => SourceError::Unauthorized { detail },
            404 if detail.contains("bucket") || detail.contains("database") => {
                SourceError::BucketNotFound {
                    bucket: self.database.clone(),
                    detail,
                }
            }
            code => SourceError::Server {
                status: code,
                detail,
            },
        })
    }

    /// Runs a small (metadata) statement and returns its series; an error inside the answer
    /// (InfluxDB reports those with HTTP 200) becomes [`SourceError::Query`].
    pub async fn query(&self, statement: &str) -> Result<Vec<JsonSeries>, SourceError> {
        Ok(self
            .query_results(statement)
            .await?
            .into_iter()
            .flat_map(|result| result.series)
            .collect())
    }

    /// Runs several small statements in one request and returns each one's series, in order.
    pub async fn query_each(
        &self,
        statements: &[String],
    ) -> Result<Vec<Vec<JsonSeries>>, SourceError> {
        let statement = statements.join(";");
        let mut answers = vec![None; statements.len()];
        for result in self.query_results(&statement).await? {
            if let Some(answer) = answers.get_mut(result.statement_id) {
                *answer = Some(result.series);
            }
        }
        answers
            .into_iter()
            .enumerate()
            .map(|(index, answer)| {
                answer.ok_or_else(|| SourceError::Malformed {
                    detail: format!("no answer to statement {index} of {statement}"),
                })
            })
            .collect()
    }

    async fn query_results(&self, statement: &str) -> Result<Vec<StatementResult>, SourceError> {
        let response = self
            .query_request(statement, &[])
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| self.statement_transport_error(&e, statement))?;
        let response = self
            .check_status(response)
            .await
            .map_err(|error| naming_statement(error, statement))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let parsed: QueryResponse =
            serde_json::from_slice(&body).map_err(|e| SourceError::Malformed {
                detail: format!("{e} in the answer to {statement}"),
            })?;
        let error = parsed.error.or_else(|| {
            parsed
                .results
                .iter()
                .find_map(|result| result.error.clone())
        });
        if let Some(message) = error {
            return Err(self.statement_error(statement, message));
        }
        Ok(parsed.results)
    }

    /// The databases of an InfluxDB 3 server (`GET /api/v3/configure/database?format=json`;
    /// its v1 endpoint closes the connection on `SHOW DATABASES`), sorted.
    pub async fn v3_databases(&self) -> Result<Vec<String>, SourceError> {
        #[derive(Deserialize)]
        struct Database {
            #[serde(rename = "iox::database")]
            name: String,
        }
        let response = self
            .authorize(
                self.http
                    .get(format!("{}/api/v3/configure/database", self.base_url))
                    .query(&[("format", "json")]),
            )
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let response = self.check_status(response).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let databases: Vec<Database> =
            serde_json::from_slice(&body).map_err(|e| SourceError::Malformed {
                detail: format!(
                    "{e} in the answer of /api/v3/configure/database: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            })?;
        let mut names: Vec<String> = databases.into_iter().map(|d| d.name).collect();
        names.sort();
        Ok(names)
    }

    /// Opens a streaming, chunked answer to a window's `statement`: MessagePack, or JSON lines
    /// from InfluxDB 3 (which answers MessagePack with 500 "invalid mime type").
    pub async fn query_window(
        &self,
        statement: &str,
        chunk_size: usize,
    ) -> Result<(reqwest::Response, AnswerFormat), SourceError> {
        if !self.is_v3().await? {
            let response = self.query_msgpack(statement, chunk_size).await?;
            return Ok((response, AnswerFormat::Msgpack));
        }
        let response = self
            .query_chunked(statement, chunk_size, "application/json")
            .await?;
        Ok((response, AnswerFormat::JsonLines))
    }

    /// Opens a streaming, chunked MessagePack answer to `statement`.
    pub async fn query_msgpack(
        &self,
        statement: &str,
        chunk_size: usize,
    ) -> Result<reqwest::Response, SourceError> {
        self.query_chunked(statement, chunk_size, "application/x-msgpack")
            .await
    }

    /// `GET /query` of `statement`, answered in chunks of `chunk_size` rows as `accept`; errors
    /// name the statement.
    async fn query_chunked(
        &self,
        statement: &str,
        chunk_size: usize,
        accept: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let chunk_size = chunk_size.to_string();
        let response = self
            .query_request(
                statement,
                &[("chunked", "true"), ("chunk_size", &chunk_size)],
            )
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| self.statement_transport_error(&e, statement))?;
        self.check_status(response)
            .await
            .map_err(|error| naming_statement(error, statement))
    }

    /// Opens a streaming annotated-CSV answer to a Flux query (`POST /api/v2/query`, 2.x).
    pub async fn query_flux(&self, query: &str) -> Result<reqwest::Response, SourceError> {
        let org = match &self.auth {
            SourceAuth::Token { org: Some(org), .. } => org.clone(),
            _ => {
                return Err(SourceError::Config {
                    detail: "Flux needs source.org and source.token".into(),
                });
            }
        };
        // An organization ID is 16 hex digits; anything else is a name.
        let org_parameter = if org.len() == 16 && org.bytes().all(|b| b.is_ascii_hexdigit()) {
            "orgID"
        } else {
            "org"
        };
        let body = serde_json::json!({
            "query": query,
            "type": "flux",
            "dialect": {
                "header": true,
                "delimiter": ",",
                "annotations": ["datatype", "group", "default"],
                "dateTimeFormat": "RFC3339Nano",
            },
        });
        let response = self
            .authorize(
                self.http
                    .post(format!("{}/api/v2/query", self.base_url))
                    .query(&[(org_parameter, org.as_str())]),
            )
            .header(reqwest::header::ACCEPT, "application/csv")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        self.check_status(response).await
    }

    pub(crate) fn statement_error(&self, statement: &str, message: String) -> SourceError {
        if message.starts_with("database not found")
            || message.starts_with("retention policy not found")
        {
            return SourceError::BucketNotFound {
                bucket: self.database.clone(),
                detail: message,
            };
        }
        if message.contains("authoriz") || message.contains("not authenticated") {
            return SourceError::Unauthorized { detail: message };
        }
        SourceError::Query {
            statement: statement.to_owned(),
            message,
        }
    }

    pub(crate) fn stream_error(&self, error: &reqwest::Error) -> SourceError {
        if error.is_timeout() {
            return SourceError::Truncated {
                detail: format!(
                    "InfluxDB fell silent for {} in the middle of the answer (source.read_timeout)",
                    humantime::format_duration(self.read_timeout)
                ),
            };
        }
        if error.is_decode() || error.is_body() {
            return SourceError::Truncated {
                detail: error.to_string(),
            };
        }
        self.transport_error(error)
    }
}

/// An InfluxQL identifier in double quotes, with `\` and `"` escaped.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An InfluxQL string literal in single quotes, with `\` and `'` escaped.
pub fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A server error of a request sending `statement`, naming it (InfluxDB 3 answers a statement
/// it cannot run with HTTP 500 and a plain-text reason).
fn naming_statement(error: SourceError, statement: &str) -> SourceError {
    match error {
        SourceError::Server { status, detail } => SourceError::Server {
            status,
            detail: format!(
                "{detail} (query: {})",
                statement.chars().take(300).collect::<String>()
            ),
        },
        other => other,
    }
}
