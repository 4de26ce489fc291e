//! `influx2td plan`: what a job would do, without writing anything: per measurement the data's
//! time span, series, field types (and the conflicts between shards), windows to read, an
//! estimate of the rows, and the DDL the writer would start with.

use influx2td_config::JobConfig;
use influx2td_coordinator::service::{align_down, align_up};
use influx2td_reader::InfluxClient;
use influx2td_reader::schema::{self, Field};
use influx2td_writer::mapping::{field_column_name, super_table_name, tag_column_name};
use influx2td_writer::schema::{Needs, plan as plan_ddl};
use serde::Serialize;

/// What the job would do for one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct MeasurementPlan {
    pub measurement: String,
    pub super_table: String,
    /// First and last point (RFC 3339), when it has data.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Windows to read up to `end` (or up to now for a job without end).
    pub windows: u64,
    /// Series as InfluxDB counts them: a series in several shards may count more than once.
    pub series_estimate: u64,
    /// Points in the job's range: the most values any field has (a lower bound of the rows).
    pub estimated_rows: u64,
    pub fields: Vec<Field>,
    pub tags: Vec<String>,
    /// The first DDL the writer would run (strings start narrow and widen as data arrives).
    pub ddl: Vec<String>,
}

pub async fn plan(job: &JobConfig) -> anyhow::Result<Vec<MeasurementPlan>> {
    let client = InfluxClient::new(&job.source, &job.bucket)?;
    let window = i64::try_from(job.window.as_nanos())
        .unwrap_or(i64::MAX)
        .max(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_nanos()).ok())
        .unwrap_or(i64::MAX);
    let range_end = job.end_ns.unwrap_or(now);
    let mut plans = Vec::new();
    for planned in influx2td_coordinator::plan::discover(&client, job, job.read_concurrency).await?
    {
        let name = planned.name;
        let source = schema::schema(&client, &name).await?;
        let from = schema::from_clause(&client, &name);
        let windows = planned.bounds.map_or(0, |(first, last)| {
            let start = align_down(first.max(job.begin_ns), job.begin_ns, window);
            let stop = align_up(last.saturating_add(1), job.begin_ns, window).min(range_end);
            u64::try_from((stop - start).max(0) / window + i64::from((stop - start) % window != 0))
                .unwrap_or(0)
        });
        let series_estimate = if client.is_v3().await? {
            // InfluxDB 3 has no SHOW SERIES: a count per series, in the job's range.
            client
                .query(&format!(
                    "SELECT COUNT(*) FROM {from} WHERE time >= {} AND time < {range_end} GROUP BY *",
                    job.begin_ns
                ))
                .await?
                .len() as u64
        } else {
            client
                .query(&format!(
                    "SHOW SERIES EXACT CARDINALITY FROM {}",
                    influx2td_reader::client::quote_identifier(&name)
                ))
                .await?
                .first()
                .and_then(|series| series.values.first())
                .and_then(|row| row.first())
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let counts = client
            .query(&format!(
                "SELECT COUNT(*) FROM {from} WHERE time >= {} AND time < {range_end}",
                job.begin_ns
            ))
            .await?;
        let estimated_rows = counts
            .iter()
            .flat_map(|series| series.values.iter().flat_map(|row| row.iter().skip(1)))
            .filter_map(serde_json::Value::as_u64)
            .max()
            .unwrap_or(0);
        let super_table = super_table_name(&name);
        let tags: Vec<String> = source
            .tag_keys
            .iter()
            .map(|tag| tag_column_name(tag))
            .collect();
        let mut needs = Needs::default();
        for field in &source.fields {
            needs.column(&field_column_name(&field.name, &tags), field.column_type, 0);
        }
        for tag in &tags {
            needs.tag(tag, 0);
        }
        let (ddl, _) = plan_ddl(&job.target.database, &super_table, None, &needs);
        plans.push(MeasurementPlan {
            measurement: name,
            super_table,
            first: planned
                .bounds
                .map(|(first, _)| influx2td_config::format_time(first)),
            last: planned
                .bounds
                .map(|(_, last)| influx2td_config::format_time(last)),
            windows,
            series_estimate,
            estimated_rows,
            fields: source.fields,
            tags: source.tag_keys,
            ddl,
        });
    }
    Ok(plans)
}
