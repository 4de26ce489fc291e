//! Checkpoints of the embedded mode: a JSON file replaced atomically (write, fsync, rename, fsync
//! the directory) on every change, and an exclusive lock so that only one process uses it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{BusError, CheckpointStore, Versioned};

const FORMAT_VERSION: u32 = 1;

/// Checkpoint store in a file. Clones share one open file and its lock.
#[derive(Debug, Clone)]
pub struct StateFile {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Held for the life of the store: a second process on the same state is refused.
    _lock: File,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    revision: u64,
    value: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    format: u32,
    entries: BTreeMap<String, Entry>,
}

impl StateFile {
    /// Opens (or creates) the store at `path`; its directory is created when missing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, BusError> {
        let path = path.into();
        let error = |detail: String| BusError::StateFile {
            path: path.display().to_string(),
            detail,
        };
        let directory = parent(&path);
        fs::create_dir_all(directory)
            .map_err(|e| error(format!("cannot create directory: {e}")))?;
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                error(format!(
                    "cannot open lock file {}: {e}",
                    lock_path.display()
                ))
            })?;
        lock.try_lock().map_err(|e| {
            error(format!(
                "is in use by another influx2td process of the same job ({e})"
            ))
        })?;
        let entries = match fs::read(&path) {
            Ok(bytes) => {
                let document: Document = serde_json::from_slice(&bytes)
                    .map_err(|e| error(format!("is not a valid state file: {e}")))?;
                if document.format != FORMAT_VERSION {
                    return Err(error(format!(
                        "has format {}, this influx2td reads format {FORMAT_VERSION}",
                        document.format
                    )));
                }
                document.entries
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(error(format!("cannot read: {e}"))),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                entries: Mutex::new(entries),
                _lock: lock,
            }),
        })
    }

    /// Every entry of the state file at `path`, without taking its lock: for `status` while a
    /// job runs. Empty when the file does not exist yet.
    pub fn read_entries(path: &Path) -> Result<BTreeMap<String, crate::Versioned>, BusError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(BusError::StateFile {
                    path: path.display().to_string(),
                    detail: format!("cannot read: {e}"),
                });
            }
        };
        let document: Document =
            serde_json::from_slice(&bytes).map_err(|e| BusError::StateFile {
                path: path.display().to_string(),
                detail: format!("is not a valid state file: {e}"),
            })?;
        Ok(document
            .entries
            .into_iter()
            .map(|(key, entry)| {
                (
                    key,
                    crate::Versioned {
                        value: entry.value,
                        revision: entry.revision,
                    },
                )
            })
            .collect())
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn write(&self, entries: &BTreeMap<String, Entry>) -> Result<(), BusError> {
        let path = &self.inner.path;
        let error = |detail: String| BusError::StateFile {
            path: path.display().to_string(),
            detail,
        };
        let document = Document {
            format: FORMAT_VERSION,
            entries: entries.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|e| error(format!("cannot encode: {e}")))?;
        let temporary = path.with_extension("json.tmp");
        let mut file =
            File::create(&temporary).map_err(|e| error(format!("cannot create temp file: {e}")))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| error(format!("cannot write temp file: {e}")))?;
        fs::rename(&temporary, path).map_err(|e| error(format!("cannot replace: {e}")))?;
        // The rename is durable only once the directory entry is.
        File::open(parent(path))
            .and_then(|directory| directory.sync_all())
            .map_err(|e| error(format!("cannot sync directory: {e}")))?;
        Ok(())
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

impl CheckpointStore for StateFile {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, BusError> {
        let entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries.get(key).map(|entry| Versioned {
            value: entry.value.clone(),
            revision: entry.revision,
        }))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: String,
        expected: Option<u64>,
    ) -> Result<u64, BusError> {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        let found = entries.get(key).map(|entry| entry.revision);
        if found != expected {
            return Err(BusError::Conflict {
                key: key.to_owned(),
                expected,
                found,
            });
        }
        let revision = found.unwrap_or(0) + 1;
        let mut updated = entries.clone();
        updated.insert(key.to_owned(), Entry { revision, value });
        // Only what reached the disk becomes visible.
        self.write(&updated)?;
        *entries = updated;
        Ok(revision)
    }

    /// All checked first, then one write: many checkpoints cost one fsync, not one each.
    async fn compare_and_set_many(
        &self,
        updates: Vec<(String, String, Option<u64>)>,
    ) -> Result<Vec<u64>, BusError> {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut updated = entries.clone();
        let mut revisions = Vec::with_capacity(updates.len());
        for (key, value, expected) in updates {
            let found = updated.get(&key).map(|entry| entry.revision);
            if found != expected {
                return Err(BusError::Conflict {
                    key,
                    expected,
                    found,
                });
            }
            let revision = found.unwrap_or(0) + 1;
            updated.insert(key, Entry { revision, value });
            revisions.push(revision);
        }
        self.write(&updated)?;
        *entries = updated;
        Ok(revisions)
    }

    async fn keys(&self) -> Result<Vec<String>, BusError> {
        let entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries.keys().cloned().collect())
    }
}
