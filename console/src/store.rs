//! Where the console keeps its jobs: job files in its state directory, or (with `--nats-url`)
//! keys of the NATS KV bucket `<prefix>-console`, so that a console started anywhere with the
//! same NATS finds them. A job's secrets never go there: they are written to owner-only files
//! under the state directory and the stored job names them with `*_file` keys, as a job file
//! given by hand would.

use std::path::{Path, PathBuf};

use influx2td_bus::CheckpointStore;
use influx2td_bus::nats::NatsCheckpoints;
use serde_json::Value;

/// What a job should be doing, kept with it so that a console started again picks up where
/// the last one left off: running jobs run again, paused ones wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Running,
    /// `pause`: halted, `resume` goes on from its checkpoints.
    Paused,
    /// `stop`: ended for good; it stays listed (with its progress) until deleted.
    Stopped,
    /// Every window of a job with an end is written.
    Finished,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Finished => "finished",
        }
    }

    fn parse(text: &str) -> Self {
        match text.trim() {
            "paused" => Self::Paused,
            "stopped" => Self::Stopped,
            "finished" => Self::Finished,
            _ => Self::Running,
        }
    }
}

/// A stored job: its TOML text (the job file's keys) and what it should be doing.
pub struct Stored {
    pub text: String,
    pub desired: Desired,
}

#[derive(Clone)]
pub enum Store {
    /// `<dir>/<job>.toml` (a job file the CLI reads) and `<dir>/<job>.state`.
    Directory(PathBuf),
    /// Keys `job.<job>` and `state.<job>` of a KV bucket.
    Nats {
        bucket: String,
        kv: Box<NatsCheckpoints>,
    },
}

impl Store {
    pub fn describe(&self) -> String {
        match self {
            Self::Directory(directory) => directory.display().to_string(),
            Self::Nats { bucket, .. } => format!("NATS KV bucket {bucket}"),
        }
    }

    /// Every stored job, by name.
    pub async fn all(&self) -> anyhow::Result<Vec<(String, Stored)>> {
        let mut jobs = Vec::new();
        match self {
            Self::Directory(directory) => {
                for entry in std::fs::read_dir(directory)?.flatten() {
                    let path = entry.path();
                    let Some(name) = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_suffix(".toml"))
                    else {
                        continue;
                    };
                    let desired = std::fs::read_to_string(directory.join(format!("{name}.state")))
                        .map_or(Desired::Running, |text| Desired::parse(&text));
                    let text = std::fs::read_to_string(&path)?;
                    jobs.push((name.to_owned(), Stored { text, desired }));
                }
            }
            Self::Nats { kv, .. } => {
                for key in kv.keys().await? {
                    let Some(name) = key.strip_prefix("job.") else {
                        continue;
                    };
                    let Some(text) = kv.get(&key).await? else {
                        continue;
                    };
                    let desired = kv
                        .get(&format!("state.{name}"))
                        .await?
                        .map_or(Desired::Running, |state| Desired::parse(&state.value));
                    jobs.push((
                        name.to_owned(),
                        Stored {
                            text: text.value,
                            desired,
                        },
                    ));
                }
            }
        }
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(jobs)
    }

    /// Stores a new job; `false` when one of that name is stored already.
    pub async fn create(&self, name: &str, text: &str) -> anyhow::Result<bool> {
        match self {
            Self::Directory(directory) => {
                match write_private(&directory.join(format!("{name}.toml")), text, true) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            Self::Nats { kv, .. } => {
                match kv
                    .compare_and_set(&format!("job.{name}"), text.to_owned(), None)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(influx2td_bus::BusError::Conflict { .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    pub async fn text(&self, name: &str) -> anyhow::Result<String> {
        match self {
            Self::Directory(directory) => Ok(std::fs::read_to_string(
                directory.join(format!("{name}.toml")),
            )?),
            Self::Nats { kv, bucket } => match kv.get(&format!("job.{name}")).await? {
                Some(entry) => Ok(entry.value),
                None => anyhow::bail!("job {name:?} is not in {bucket}"),
            },
        }
    }

    pub async fn set_desired(&self, name: &str, desired: Desired) -> anyhow::Result<()> {
        match self {
            Self::Directory(directory) => write_private(
                &directory.join(format!("{name}.state")),
                desired.as_str(),
                false,
            )?,
            Self::Nats { kv, .. } => {
                kv.put(&format!("state.{name}"), desired.as_str().to_owned())
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn remove(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Self::Directory(directory) => {
                for file in [format!("{name}.toml"), format!("{name}.state")] {
                    match std::fs::remove_file(directory.join(file)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                        _ => {}
                    }
                }
            }
            Self::Nats { kv, .. } => {
                kv.delete(&format!("job.{name}")).await?;
                kv.delete(&format!("state.{name}")).await?;
            }
        }
        Ok(())
    }
}

/// Moves every secret of `job` (JSON shaped like the job file) into its own owner-only file in
/// `directory`, leaving the matching `*_file` key in its place: `source.password` becomes
/// `source.password_file = "<directory>/source.password"`.
pub fn move_secrets(job: &mut Value, directory: &Path) -> std::io::Result<()> {
    for key in influx2td_config::keys::KEYS.iter().filter(|key| key.secret) {
        let file_key = format!("{}_file", key.path);
        if influx2td_config::keys::find(&file_key).is_none() {
            continue;
        }
        let (table_path, name) = key.path.rsplit_once('.').unwrap_or(("", key.path));
        let mut table = Some(&mut *job);
        for part in table_path.split('.').filter(|part| !part.is_empty()) {
            table = table.and_then(|table| table.get_mut(part));
        }
        let Some(map) = table.and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(Value::String(secret)) = map.remove(name) else {
            continue;
        };
        create_private_dir(directory)?;
        let file = directory.join(key.path);
        write_private(&file, &secret, false)?;
        map.insert(
            format!("{name}_file"),
            Value::String(file.display().to_string()),
        );
    }
    Ok(())
}

fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory)
}

/// Writes a file only its owner can read (job files and secrets); with `new`, fails with
/// `AlreadyExists` rather than replace one.
pub fn write_private(path: &Path, text: &str, new: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
