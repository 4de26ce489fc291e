//! `source.discovery = "readers"`: only readers reach InfluxDB (agents at the source's site, a
//! NATS leaf node between them and the hub), so the coordinator asks one of them, over core
//! NATS request and reply on the job's discovery subject, for the measurements and their time
//! bounds it would otherwise query itself.
//!
//! First the coordinator asks `ping`, which a reader answers at once with `{"ready": true}`:
//! interest in the subject alone (a monitoring tap subscribed to `>`) is no reader, and only a
//! short wait tells them apart. Then the question is empty (the reader uses the job's own
//! settings: measurements, begin, end), and the answer is JSON, `{"measurements": [{"name": "cpu", "bounds": [first_ns, last_ns]}]}`
//! (`bounds` null for a measurement without points) or `{"error": "…"}`.

use std::time::Duration;

use influx2td_bus::Bus as _;
use influx2td_config::JobConfig;
use influx2td_coordinator::PlannedMeasurement;

/// How long the coordinator waits for a reader's answer: discovery of many measurements takes
/// a few queries per measurement.
const ANSWER_PATIENCE: Duration = Duration::from_secs(300);
/// How long the coordinator waits for a reader to say it is there.
const PING_PATIENCE: Duration = Duration::from_secs(2);
/// The question a reader answers at once.
const PING: &[u8] = b"ping";
/// The queue group of the readers answering (one of them answers each question).
const GROUP: &str = "readers";

/// The reader's side: answers discovery questions until `shutdown`.
pub async fn answer(
    job: &JobConfig,
    bus: &influx2td_bus::NatsBus,
    client: &influx2td_reader::InfluxClient,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let subject = bus.names().discovery_subject();
    tracing::info!(subject, "answering discovery questions of the coordinator");
    let answer = |question: bytes::Bytes| async move {
        if question.as_ref() == PING {
            return bytes::Bytes::from_static(br#"{"ready":true}"#);
        }
        let answer =
            match influx2td_coordinator::plan::discover(client, job, job.read_concurrency).await {
                Ok(planned) => {
                    tracing::info!(
                        measurements = planned.len(),
                        "discovered for the coordinator"
                    );
                    encode(&planned)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot discover for the coordinator");
                    serde_json::json!({ "error": error.to_string() })
                }
            };
        bytes::Bytes::from(answer.to_string())
    };
    Ok(bus.answer(subject, GROUP, answer, shutdown).await?)
}

/// The coordinator's side: asks until a reader answers, showing on `board` that it waits and
/// why; `None` when `shutdown` came first. A reader's failure to discover is this job's error.
pub async fn ask(
    bus: &influx2td_bus::NatsBus,
    board: &influx2td_coordinator::StatusBoard,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Option<Vec<PlannedMeasurement>>> {
    let subject = bus.names().discovery_subject();
    let mut pause = Duration::from_millis(200);
    loop {
        let asked = async {
            // Nobody there (`None`), or only listeners that never answer (an error: timed out).
            if bus
                .ask(subject.clone(), PING.into(), PING_PATIENCE)
                .await?
                .is_none()
            {
                return Ok(None);
            }
            bus.ask(subject.clone(), bytes::Bytes::new(), ANSWER_PATIENCE)
                .await
        };
        let asked = tokio::select! {
            asked = asked => asked,
            () = shutdown.as_mut() => return Ok(None),
        };
        let reason = match asked {
            Ok(Some(answer)) => {
                board.set_waiting(None);
                return decode(&answer).map(Some);
            }
            Ok(None) => format!(
                "no reader answers on {subject} yet: source.discovery = \"readers\" leaves listing the measurements to the readers; start `influx2td reader` where InfluxDB is reachable"
            ),
            Err(error) => format!(
                "no reader answers on {subject} yet ({error}): start `influx2td reader` where InfluxDB is reachable"
            ),
        };
        tracing::warn!(reason, "waiting for a reader to discover the measurements");
        board.set_waiting(Some(reason));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.as_mut() => return Ok(None),
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn encode(planned: &[PlannedMeasurement]) -> serde_json::Value {
    let measurements: Vec<serde_json::Value> = planned
        .iter()
        .map(|m| serde_json::json!({ "name": m.name, "bounds": m.bounds.map(|(a, b)| [a, b]) }))
        .collect();
    serde_json::json!({ "measurements": measurements })
}

fn decode(answer: &[u8]) -> anyhow::Result<Vec<PlannedMeasurement>> {
    let answer: serde_json::Value = serde_json::from_slice(answer)
        .map_err(|e| anyhow::anyhow!("a reader's discovery answer is not JSON: {e}"))?;
    if let Some(error) = answer["error"].as_str() {
        anyhow::bail!("a reader cannot discover the measurements: {error}");
    }
    let Some(measurements) = answer["measurements"].as_array() else {
        anyhow::bail!("a reader's discovery answer holds no measurements: {answer}");
    };
    measurements
        .iter()
        .map(|m| {
            let name = m["name"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("a discovered measurement without name: {m}"))?;
            let bounds = match &m["bounds"] {
                serde_json::Value::Null => None,
                bounds => match (bounds[0].as_i64(), bounds[1].as_i64()) {
                    (Some(first), Some(last)) => Some((first, last)),
                    _ => anyhow::bail!("measurement {name:?}: bounds {bounds} are not two times"),
                },
            };
            Ok(PlannedMeasurement {
                name: name.to_owned(),
                bounds,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_decodes_to_what_was_discovered_and_a_bad_one_is_named() {
        let planned = vec![
            PlannedMeasurement {
                name: "cpu load, \"α\"".into(),
                bounds: Some((i64::MIN, -1)),
            },
            PlannedMeasurement {
                name: "empty".into(),
                bounds: None,
            },
        ];
        let answer = encode(&planned).to_string();
        assert_eq!(decode(answer.as_bytes()).unwrap(), planned);
        let refused = decode(br#"{"error":"401 unauthorized"}"#).unwrap_err();
        assert!(
            refused.to_string().contains("401 unauthorized"),
            "{refused}"
        );
        let bad = decode(br#"{"measurements":[{"name":"m","bounds":[1]}]}"#).unwrap_err();
        assert!(bad.to_string().contains("\"m\""), "{bad}");
        assert!(
            decode(b"<html>")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
