//! `influx2td verify`: compares, per measurement and field, how many values InfluxDB holds and
//! how many the target holds, over the part of the job its checkpoints say is written
//! (`[begin, consistent up to)`). Counting per field is exact on both sides and cheap: InfluxDB's
//! `COUNT(*)` counts the points that have each field, TDengine's `COUNT(column)` the non-null
//! values of each column (a file target is replayed to count the same).

use std::collections::BTreeMap;

use influx2td_config::{Dsn, JobConfig};
use influx2td_coordinator::tracker::Progress;
use influx2td_reader::{InfluxClient, schema};
use influx2td_writer::mapping::{field_column_name, quote, super_table_name, tag_column_name};
use influx2td_writer::replay::{Literal, replay_directory};
use serde::Serialize;

/// One field's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldCount {
    pub field: String,
    pub column: String,
    pub source: u64,
    pub target: u64,
}

/// One measurement's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct MeasurementCheck {
    pub measurement: String,
    pub from: String,
    pub until: String,
    pub fields: Vec<FieldCount>,
}

impl MeasurementCheck {
    pub fn matches(&self) -> bool {
        self.fields.iter().all(|count| count.source == count.target)
    }
}

/// Counts both sides for every measurement with a checkpoint.
pub async fn verify(
    job: &JobConfig,
    checkpoints: &BTreeMap<String, Progress>,
) -> anyhow::Result<Vec<MeasurementCheck>> {
    let client = InfluxClient::new(&job.source, &job.bucket)?;
    let model = match &job.target.dsn {
        Dsn::File { directory } => {
            Some(replay_directory(directory).map_err(|e| anyhow::anyhow!(e))?)
        }
        _ => None,
    };
    let sink = match &job.target.dsn {
        Dsn::File { .. } => None,
        dsn => match influx2td_writer::open_sink(dsn, "verify", 1).await? {
            influx2td_writer::AnySink::Tdengine(sink) => Some(sink),
            influx2td_writer::AnySink::File(_) => None,
        },
    };
    let mut checks = Vec::new();
    for (measurement, progress) in checkpoints {
        let (from, until) = (job.begin_ns, progress.watermark_ns);
        if until <= from {
            continue;
        }
        let source_schema = schema::schema(&client, measurement).await?;
        let tags: Vec<String> = source_schema
            .tag_keys
            .iter()
            .map(|tag| tag_column_name(tag))
            .collect();
        let statement = format!(
            "SELECT COUNT(*) FROM {} WHERE time >= {from} AND time < {until}",
            schema::from_clause(&client, measurement)
        );
        let mut source: BTreeMap<String, u64> = BTreeMap::new();
        for series in client.query(&statement).await? {
            for (column, value) in series
                .columns
                .iter()
                .zip(series.values.first().into_iter().flatten())
            {
                if let Some(field) = column.strip_prefix("count_") {
                    *source.entry(field.to_owned()).or_default() += value.as_u64().unwrap_or(0);
                }
            }
        }
        let super_table = super_table_name(measurement);
        let columns: Vec<(String, String)> = source
            .keys()
            .map(|field| (field.clone(), field_column_name(field, &tags)))
            .collect();
        let target = match (&model, &sink) {
            (Some(model), _) => count_in_model(model, &super_table, from, until),
            (None, Some(sink)) => {
                count_in_tdengine(sink, job, &super_table, &columns, from, until).await?
            }
            (None, None) => BTreeMap::new(),
        };
        let fields = columns
            .into_iter()
            .map(|(field, column)| FieldCount {
                source: source.get(&field).copied().unwrap_or(0),
                target: target.get(&column).copied().unwrap_or(0),
                field,
                column,
            })
            .collect();
        checks.push(MeasurementCheck {
            measurement: measurement.clone(),
            from: influx2td_config::format_time(from),
            until: influx2td_config::format_time(until),
            fields,
        });
    }
    Ok(checks)
}

fn count_in_model(
    model: &influx2td_writer::replay::Model,
    super_table: &str,
    from: i64,
    until: i64,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for table in model
        .tables
        .values()
        .filter(|table| table.super_table == super_table)
    {
        for row in table.rows.range(from..until).map(|(_, row)| row) {
            for (column, value) in row {
                if *value != Literal::Null {
                    *counts.entry(column.clone()).or_default() += 1;
                }
            }
        }
    }
    counts
}

async fn count_in_tdengine(
    sink: &influx2td_writer::TdengineSink,
    job: &JobConfig,
    super_table: &str,
    columns: &[(String, String)],
    from: i64,
    until: i64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    use influx2td_writer::Sink;
    let precision = sink
        .database(&job.target.database)
        .await?
        .map_or(influx2td_writer::Precision::Nanoseconds, |info| {
            info.precision
        });
    let counted: Vec<String> = columns
        .iter()
        .map(|(_, column)| format!("COUNT({})", quote(column)))
        .collect();
    let statement = format!(
        "SELECT {} FROM {}.{} WHERE `_ts` >= {} AND `_ts` < {}",
        counted.join(","),
        quote(&job.target.database),
        quote(super_table),
        precision.convert(from),
        precision.convert(until)
    );
    let rows = sink.records(&statement).await?;
    let values = rows.into_iter().next().unwrap_or_default();
    Ok(columns
        .iter()
        .zip(values)
        .map(|((_, column), count)| (column.clone(), count.parse().unwrap_or(0)))
        .collect())
}
