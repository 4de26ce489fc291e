//! What can go wrong reading InfluxDB, and whether retrying can help.

use influx2td_bus::Retry;
use influx2td_proto::EncodeError;
use thiserror::Error;

use crate::msgpack::MsgpackError;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot reach InfluxDB at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("InfluxDB at {url} did not answer in time: {detail}")]
    Timeout { url: String, detail: String },
    #[error(
        "InfluxDB refused the credentials ({detail}); check source.username/password or source.token"
    )]
    Unauthorized { detail: String },
    #[error("bucket {bucket:?} not found on InfluxDB: {detail}")]
    BucketNotFound { bucket: String, detail: String },
    #[error("InfluxDB query failed: {message} (query: {statement})")]
    Query { statement: String, message: String },
    #[error("InfluxDB answered HTTP {status}: {detail}")]
    Server { status: u16, detail: String },
    #[error("InfluxDB sent a response influx2td cannot read: {detail}")]
    Malformed { detail: String },
    #[error("InfluxDB response ended early: {detail}")]
    Truncated { detail: String },
    #[error("{0}")]
    Encode(#[from] EncodeError),
    #[error("measurement {measurement:?} has a field {field:?} that its known schema lacks")]
    SchemaChanged { measurement: String, field: String },
    #[error("invalid source configuration: {detail}")]
    Config { detail: String },
    /// InfluxDB's storage files (the TSM source): unreadable, or changed under the read.
    #[error("cannot read InfluxDB's storage files: {detail}")]
    Storage { detail: String, retryable: bool },
}

impl SourceError {
    /// A short name of what went wrong, for metrics labels.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Unauthorized { .. } => "unauthorized",
            Self::BucketNotFound { .. } => "bucket_not_found",
            Self::Query { .. } => "query",
            Self::Server { .. } => "server",
            Self::Malformed { .. } => "malformed",
            Self::Truncated { .. } => "truncated",
            Self::Encode(_) => "encode",
            Self::SchemaChanged { .. } => "schema_changed",
            Self::Config { .. } => "config",
            Self::Storage { .. } => "storage",
        }
    }

    /// Whether the error says InfluxDB is overloaded or away (so fewer reads should run at once).
    pub fn is_overload(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Server { status, .. } => *status >= 500 || *status == 429,
            Self::Query { message, .. } => {
                message.contains("timeout") || message.contains("killed")
            }
            _ => false,
        }
    }

    /// Whether nothing will work until a person acts (credentials revoked or expired): the
    /// reader keeps retrying, loudly, so that nothing is lost once they are fixed.
    pub fn needs_operator(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }

    pub fn retry(&self) -> Retry {
        // A cut answer is read again; a new field makes the caller refresh the schema first.
        if self.is_overload()
            || self.needs_operator()
            || matches!(
                self,
                Self::Truncated { .. }
                    | Self::SchemaChanged { .. }
                    | Self::Storage {
                        retryable: true,
                        ..
                    }
            )
        {
            Retry::Backoff
        } else {
            Retry::Never
        }
    }
}

impl From<MsgpackError> for SourceError {
    fn from(error: MsgpackError) -> Self {
        match error {
            MsgpackError::Truncated { .. } => Self::Truncated {
                detail: error.to_string(),
            },
            _ => Self::Malformed {
                detail: error.to_string(),
            },
        }
    }
}
