//! The file sink (`target.dsn = "file:///dir"`): the exact DDL and INSERT statements the TDengine
//! sink would send, in order, one statement per line, in one file per writer process, fsynced
//! before a batch is acknowledged. For dry runs, for review before a real migration, and for
//! end-to-end tests without a TDengine server. Replay with `taos -f <file>`. A writer killed
//! while writing leaves its file's last statement cut short (no line end): that batch was not
//! acknowledged and is written again by another writer, in another file; drop that line before
//! `taos -f` (`verify` and [`crate::replay`] leave it out).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::convert::Precision;
use crate::schema::TableSchema;
use crate::sink::{DatabaseInfo, Sink, SinkError, SinkErrorKind};

/// Statements to a file.
#[derive(Debug, Clone)]
pub struct FileSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl FileSink {
    /// Creates `<directory>/<name>.sql` (the directory too); `name` should be unique per writer.
    pub fn create(directory: &Path, name: &str) -> Result<Self, SinkError> {
        let fatal = |detail: String| SinkError::new(SinkErrorKind::Fatal, detail);
        fs::create_dir_all(directory).map_err(|e| {
            fatal(format!(
                "cannot create directory {}: {e}",
                directory.display()
            ))
        })?;
        let path = directory.join(format!("{name}.sql"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| fatal(format!("cannot open {}: {e}", path.display())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                file: Mutex::new(BufWriter::with_capacity(1 << 20, file)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn io_error(&self, error: &std::io::Error) -> SinkError {
        // A full disk or a failed write may pass; retrying rewrites the batch (idempotent).
        SinkError::new(
            SinkErrorKind::Retryable,
            format!("cannot write {}: {error}", self.inner.path.display()),
        )
    }
}

impl Sink for FileSink {
    async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        let mut file = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(sql.as_bytes())
            .and_then(|()| file.write_all(b";\n"))
            .map_err(|e| self.io_error(&e))
    }

    /// A file holds no tables to describe: every writer creates what it writes
    /// (`CREATE STABLE IF NOT EXISTS`).
    async fn describe(
        &self,
        _database: &str,
        _super_table: &str,
    ) -> Result<Option<TableSchema>, SinkError> {
        Ok(None)
    }

    /// A file target is a fresh nanosecond-precision database.
    async fn database(&self, _database: &str) -> Result<Option<DatabaseInfo>, SinkError> {
        Ok(Some(DatabaseInfo {
            precision: Precision::Nanoseconds,
            tables: 0,
        }))
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let mut file = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        file.flush()
            .and_then(|()| file.get_ref().sync_data())
            .map_err(|e| self.io_error(&e))
    }
}
