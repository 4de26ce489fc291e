//! Where a 1.x server keeps a bucket on disk (`source.kind = "tsm"`): the database and retention
//! policy directories under `source.data_dir`, found read-only.

use std::path::{Path, PathBuf};

/// The storage directories of a 1.x server (`[data] dir` and `[data] wal-dir`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TsmDirs {
    pub data_dir: PathBuf,
    pub wal_dir: PathBuf,
}

/// The database and retention policy `bucket` names in `data_dir`: `database/policy`, or
/// `database` alone, whose policy is then `autogen` or the only one the database has (the
/// default policy lives in InfluxDB's meta store, which is not read). The error says which
/// directory lacks what.
pub fn retention_policy_dir(data_dir: &Path, bucket: &str) -> Result<(String, String), String> {
    let (database, policy) = match bucket.split_once('/') {
        Some((database, policy)) => (database, Some(policy)),
        None => (bucket, None),
    };
    let database_dir = data_dir.join(database);
    if !database_dir.is_dir() {
        return Err(format!(
            "database {database:?} not found in {}",
            data_dir.display()
        ));
    }
    if let Some(policy) = policy {
        if !database_dir.join(policy).is_dir() {
            return Err(format!(
                "retention policy {policy:?} not found in {}",
                database_dir.display()
            ));
        }
        return Ok((database.to_owned(), policy.to_owned()));
    }
    let mut policies: Vec<String> = std::fs::read_dir(&database_dir)
        .map_err(|error| format!("cannot list {}: {error}", database_dir.display()))?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('_'))
        .collect();
    policies.sort();
    if policies.iter().any(|name| name == "autogen") {
        return Ok((database.to_owned(), "autogen".to_owned()));
    }
    match policies.as_slice() {
        [only] => Ok((database.to_owned(), only.clone())),
        [] => Err(format!(
            "no retention policy found in {}",
            database_dir.display()
        )),
        several => Err(format!(
            "database {database:?} has retention policies {several:?} and none is autogen: name one as bucket = \"{database}/<policy>\""
        )),
    }
}
