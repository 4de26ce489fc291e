//! A job's progress as its checkpoints record it, and as its running coordinator reports it.

use influx2td_config::JobConfig;

use crate::connect::nats_bus;

/// Every measurement's progress, by name.
pub type Checkpoints = std::collections::BTreeMap<String, influx2td_coordinator::tracker::Progress>;

/// How long a look at a job (`status`) waits for NATS: a person waits for the answer, and a
/// cluster without quorum does not answer however long one waits.
const LOOK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Every measurement's checkpoint, from NATS KV or the embedded state file (read without its
/// lock, so it works while a run holds it).
pub async fn read_checkpoints(job: &JobConfig) -> anyhow::Result<Checkpoints> {
    match &job.nats.url {
        Some(_) => checkpoints_over(&nats_bus(job, "status").await?).await,
        None => checkpoints_of_embedded(job),
    }
}

/// What `status` shows of a job besides its coordinator's live status: its checkpoints and,
/// over NATS, where its streams live; each an error of its own when NATS does not answer
/// within a few seconds.
#[derive(Debug)]
pub struct Look {
    pub checkpoints: anyhow::Result<Checkpoints>,
    /// `None` for the embedded bus.
    pub placement: anyhow::Result<Option<Vec<influx2td_bus::Placement>>>,
}

pub async fn look(job: &JobConfig) -> Look {
    if job.nats.url.is_none() {
        return Look {
            checkpoints: checkpoints_of_embedded(job),
            placement: Ok(None),
        };
    }
    let bus = match crate::connect::nats_bus_within(job, "status", LOOK_PATIENCE).await {
        Ok(bus) => bus,
        Err(error) => {
            let placement = Err(anyhow::anyhow!("{error:#}"));
            return Look {
                checkpoints: Err(error),
                placement,
            };
        }
    };
    let within = |what: &'static str| {
        move |_| anyhow::anyhow!("NATS did not answer within {LOOK_PATIENCE:?} ({what})")
    };
    let checkpoints = tokio::time::timeout(LOOK_PATIENCE, checkpoints_over(&bus))
        .await
        .map_err(within("reading the checkpoints"))
        .and_then(|read| read);
    let placement = tokio::time::timeout(LOOK_PATIENCE, bus.placement())
        .await
        .map_err(within("reading where the streams live"))
        .and_then(|placement| Ok(Some(placement?)));
    Look {
        checkpoints,
        placement,
    }
}

async fn checkpoints_over(bus: &influx2td_bus::NatsBus) -> anyhow::Result<Checkpoints> {
    use influx2td_bus::{Bus, CheckpointStore};
    let store = bus.checkpoints().await?;
    let mut entries = std::collections::BTreeMap::new();
    for key in store.keys().await? {
        if let Some(value) = store.get(&key).await? {
            entries.insert(key, value);
        }
    }
    progress_of(&entries)
}

fn checkpoints_of_embedded(job: &JobConfig) -> anyhow::Result<Checkpoints> {
    let entries = influx2td_bus::StateFile::read_entries(&influx2td_bus::MemoryBus::state_file(
        &job.state_dir.join(&job.job),
    ))?;
    progress_of(&entries)
}

fn progress_of(
    entries: &std::collections::BTreeMap<String, influx2td_bus::Versioned>,
) -> anyhow::Result<Checkpoints> {
    let mut measurements = std::collections::BTreeMap::new();
    for (key, entry) in entries {
        let Some(token) = key.strip_prefix("checkpoint.") else {
            continue;
        };
        let name = influx2td_proto::names::measurement_from_token(token)
            .unwrap_or_else(|| token.to_owned());
        let progress: influx2td_coordinator::tracker::Progress =
            serde_json::from_str(&entry.value)?;
        measurements.insert(name, progress);
    }
    Ok(measurements)
}

/// The running coordinator's `/status`, when `http.listen` says where it is and it answers.
pub async fn live_status(job: &JobConfig) -> Option<serde_json::Value> {
    let address = job.http_listen.as_ref()?;
    let address = address
        .strip_prefix("0.0.0.0:")
        .map_or_else(|| address.clone(), |port| format!("127.0.0.1:{port}"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{address}/status"))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}
