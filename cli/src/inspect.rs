//! `influx2td inspect`: one message of a job's stream, decoded into JSON a person can read.

use influx2td_bus::{StoredMessage, StreamKind, WhichMessage};
use influx2td_config::{JobConfig, format_time};
use influx2td_proto::{Message, Value, pb};
use serde_json::{Value as Json, json};

/// The stream of a job, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamName {
    Work,
    Data,
    Done,
    Dead,
}

impl StreamName {
    fn kind(self) -> StreamKind {
        match self {
            Self::Work => StreamKind::Work,
            Self::Data => StreamKind::Data,
            Self::Done => StreamKind::Done,
            Self::Dead => StreamKind::DeadLetter,
        }
    }
}

pub async fn inspect(
    job: &JobConfig,
    stream: StreamName,
    sequence: Option<u64>,
    measurement: Option<&str>,
) -> anyhow::Result<()> {
    let kind = stream.kind();
    let Some(bus) = influx2td_job::connect::nats_bus_unless_stopped(job, "inspect").await? else {
        return Ok(());
    };
    let which = match (sequence, measurement) {
        (Some(sequence), _) => WhichMessage::Sequence(sequence),
        (None, Some(measurement)) => {
            WhichMessage::LastOnSubject(influx2td_bus::Bus::names(&bus).subject(kind, measurement))
        }
        (None, None) => WhichMessage::First,
    };
    let Some(message) = bus.stored_message(kind, &which).await? else {
        anyhow::bail!(
            "stream {} holds no such message ({which:?}); acknowledged messages are gone from work queues",
            influx2td_bus::Bus::names(&bus).stream(kind)
        );
    };
    let mut document = render(kind, &message)?;
    // Where the stream lives: its copies on a cluster (nats.replicas) and the server leading it.
    let name = influx2td_bus::Bus::names(&bus).stream(kind);
    match bus.placement().await {
        Ok(placements) => {
            if let Some(placement) = placements.into_iter().find(|p| p.stream == name) {
                document["stream"] = json!({
                    "name": placement.stream,
                    "replicas": placement.replicas,
                    "current": placement.current,
                    "leader": placement.leader,
                });
            }
        }
        Err(error) => tracing::warn!(%error, "cannot tell where stream {name} lives"),
    }
    super::print_json(&mut std::io::stdout().lock(), &document)
}

/// The message with its stream sequence, subject and headers.
pub fn render(kind: StreamKind, message: &StoredMessage) -> anyhow::Result<Json> {
    let payload = message.payload.clone();
    let decoded = match kind {
        StreamKind::Work => work_item(&pb::WorkItem::decode(payload)?),
        StreamKind::Data => row_batch(&pb::RowBatch::decode_checked(payload)?),
        StreamKind::Done => window_done(&pb::WindowDone::decode(payload)?),
        StreamKind::DeadLetter => {
            let letter = pb::DeadLetter::decode(payload)?;
            json!({
                "rows": letter.rows.iter().map(|row| json!({
                    "child_table": row.child_table,
                    "time": format_time(row.timestamp_ns),
                    "timestamp_ns": row.timestamp_ns,
                    "reason": row.reason,
                })).collect::<Vec<_>>(),
                "batch": letter.batch.as_ref().map(row_batch),
            })
        }
    };
    let headers: serde_json::Map<String, Json> = message
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), Json::String(value.clone())))
        .collect();
    Ok(json!({
        "sequence": message.sequence,
        "subject": message.subject,
        "headers": headers,
        "message": decoded,
    }))
}

fn window(start_ns: i64, end_ns: i64) -> Json {
    json!({
        "start": format_time(start_ns),
        "end": format_time(end_ns),
        "start_ns": start_ns,
        "end_ns": end_ns,
    })
}

fn work_item(item: &pb::WorkItem) -> Json {
    json!({
        "job": item.job,
        "measurement": item.measurement,
        "window": window(item.window_start_ns, item.window_end_ns),
        "attempt": item.attempt,
        "split_depth": item.split_depth,
    })
}

fn value(value: Option<Value<'_>>) -> Json {
    match value {
        None => Json::Null,
        Some(Value::Double(number)) => json!(number),
        Some(Value::Int64(number)) => json!(number),
        Some(Value::Uint64(number)) => json!(number),
        Some(Value::String(text)) => json!(text),
        Some(Value::Bool(flag)) => json!(flag),
    }
}

fn row_batch(batch: &pb::RowBatch) -> Json {
    let series: Vec<Json> = batch
        .series
        .iter()
        .map(|block| {
            let tags: serde_json::Map<String, Json> = block
                .tags
                .iter()
                .map(|tag| (tag.key.clone(), Json::String(tag.value.clone())))
                .collect();
            let types: serde_json::Map<String, Json> = block
                .columns
                .iter()
                .map(|column| {
                    let name = column
                        .column_type()
                        .map_or_else(|| "none".to_owned(), |kind| kind.to_string());
                    (column.name.clone(), Json::String(name))
                })
                .collect();
            let rows: Vec<Json> = block
                .timestamps_ns
                .iter()
                .enumerate()
                .map(|(row, timestamp)| {
                    let mut fields = serde_json::Map::new();
                    fields.insert("time".into(), json!(format_time(*timestamp)));
                    for column in &block.columns {
                        fields.insert(column.name.clone(), value(column.value(row)));
                    }
                    Json::Object(fields)
                })
                .collect();
            json!({ "tags": tags, "field_types": types, "rows": rows })
        })
        .collect();
    json!({
        "job": batch.job,
        "measurement": batch.measurement,
        "window": window(batch.window_start_ns, batch.window_end_ns),
        "attempt": batch.attempt,
        "read": batch.read,
        "seq": batch.seq,
        "rows": batch.row_count(),
        "totals": batch.totals.map(|totals| json!({ "batches": totals.batches, "rows": totals.rows })),
        "series": series,
    })
}

fn window_done(done: &pb::WindowDone) -> Json {
    json!({
        "job": done.job,
        "measurement": done.measurement,
        "window": window(done.window_start_ns, done.window_end_ns),
        "attempt": done.attempt,
        "read": done.read,
        "seq": done.seq,
        "outcome": done.outcome().as_str_name(),
        "rows_written": done.rows_written,
        "rows_dead_lettered": done.rows_dead_lettered,
        "reason": done.reason,
        "totals": done.totals.map(|totals| json!({ "batches": totals.batches, "rows": totals.rows })),
        "split_at_ns": done.split_at_ns,
        "role": done.role,
        "tries": done.tries,
        "cause": done.cause,
        "retry_limit": done.retry_limit,
    })
}
