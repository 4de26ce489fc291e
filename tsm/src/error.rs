//! Errors that always name the file they are about, and say whether a retry can help.

use std::path::{Path, PathBuf};

/// A failure to read one of InfluxDB's storage files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("failed to read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's bytes are not what InfluxDB writes: truncated, damaged, or not such a file.
    #[error("corrupt file {}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Corrupt { path, .. } => path,
        }
    }

    /// Whether reading the shard again can succeed: a file that vanished was replaced by a
    /// compaction (or its shard deleted by retention), so opening the shard anew sees the new
    /// set of files. Corrupt bytes stay corrupt.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Self::Corrupt { .. } => false,
        }
    }
}

/// Why a block or entry could not be decoded; the caller names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}
