//! A job's progress as its checkpoints record it, and as its running coordinator reports it.

use influx2td_config::JobConfig;

use crate::connect::nats_bus;

/// Every measurement's checkpoint, from NATS KV or the embedded state file (read without its
/// lock, so it works while a run holds it).
pub async fn read_checkpoints(
    job: &JobConfig,
) -> anyhow::Result<std::collections::BTreeMap<String, influx2td_coordinator::tracker::Progress>> {
    use influx2td_bus::{Bus, CheckpointStore};
    let entries: std::collections::BTreeMap<String, influx2td_bus::Versioned> = match &job.nats.url
    {
        Some(_) => {
            let store = nats_bus(job, "status").await?.checkpoints().await?;
            let mut entries = std::collections::BTreeMap::new();
            for key in store.keys().await? {
                if let Some(value) = store.get(&key).await? {
                    entries.insert(key, value);
                }
            }
            entries
        }
        None => influx2td_bus::StateFile::read_entries(&influx2td_bus::MemoryBus::state_file(
            &job.state_dir.join(&job.job),
        ))?,
    };
    let mut measurements = std::collections::BTreeMap::new();
    for (key, entry) in &entries {
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

/// Where a job's streams live over NATS (replicas, leader), or `None` for the embedded bus.
pub async fn stream_placement(
    job: &JobConfig,
) -> anyhow::Result<Option<Vec<influx2td_bus::Placement>>> {
    if job.nats.url.is_none() {
        return Ok(None);
    }
    Ok(Some(nats_bus(job, "status").await?.placement().await?))
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
