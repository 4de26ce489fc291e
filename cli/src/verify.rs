//! `influx2td verify`: compares, per measurement and field, how many values InfluxDB holds and
//! how many the target holds, over the part of the job its checkpoints say is written
//! (`[begin, consistent up to)`), plus the sum of one numeric field as a checksum of the values.
//! Counting per field is exact on both sides and cheap: InfluxDB's `COUNT(*)` counts the points
//! that have each field, TDengine's `COUNT(column)` the non-null values of each column (a file
//! target is replayed to count the same). Where a measurement differs, the counts are compared
//! again per window of the job, to say where.

use std::collections::BTreeMap;

use influx2td_config::{Dsn, JobConfig, format_time};
use influx2td_coordinator::tracker::Progress;
use influx2td_proto::ColumnType;
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

/// The sum of one numeric field on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checksum {
    pub field: String,
    pub column: String,
    pub source: f64,
    pub target: f64,
}

impl Checksum {
    /// Equal up to the rounding of summing floating point numbers in another order.
    pub fn matches(&self) -> bool {
        let scale = self.source.abs().max(self.target.abs()).max(1.0);
        (self.source - self.target).abs() <= scale * 1e-9
    }
}

/// A window of the job whose values differ: how many each side holds (all fields together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowDiff {
    pub start: String,
    pub end: String,
    pub start_ns: i64,
    pub end_ns: i64,
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
    pub checksum: Option<Checksum>,
    /// Where the counts differ; empty when they match.
    pub windows: Vec<WindowDiff>,
}

impl MeasurementCheck {
    pub fn matches(&self) -> bool {
        self.fields.iter().all(|count| count.source == count.target)
            && self.checksum.as_ref().is_none_or(Checksum::matches)
    }
}

/// Where the target is read from.
enum Target {
    File(influx2td_writer::replay::Model),
    Tdengine(influx2td_writer::TdengineSink, influx2td_writer::Precision),
    None,
}

/// Counts both sides for every measurement with a checkpoint.
pub async fn verify(
    job: &JobConfig,
    checkpoints: &BTreeMap<String, Progress>,
) -> anyhow::Result<Vec<MeasurementCheck>> {
    let client = InfluxClient::new(&job.source, &job.bucket)?;
    let target = match &job.target.dsn {
        Dsn::File { directory } => {
            Target::File(replay_directory(directory).map_err(|e| anyhow::anyhow!(e))?)
        }
        dsn => match influx2td_writer::open_sink(dsn, "verify", 1).await? {
            influx2td_writer::AnySink::Tdengine(sink) => {
                use influx2td_writer::Sink;
                let precision = sink
                    .database(&job.target.database)
                    .await?
                    .map_or(influx2td_writer::Precision::Nanoseconds, |info| {
                        info.precision
                    });
                Target::Tdengine(sink, precision)
            }
            influx2td_writer::AnySink::File(_) => Target::None,
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
        let range = Range {
            super_table: &super_table,
            from,
            until,
        };
        let counted = match &target {
            Target::File(model) => count_in_model(model, &range),
            Target::Tdengine(sink, precision) => {
                count_in_tdengine(sink, job, *precision, &range, &columns).await?
            }
            Target::None => BTreeMap::new(),
        };
        let fields: Vec<FieldCount> = columns
            .iter()
            .map(|(field, column)| FieldCount {
                source: source.get(field).copied().unwrap_or(0),
                target: counted.get(column).copied().unwrap_or(0),
                field: field.clone(),
                column: column.clone(),
            })
            .collect();
        // The first numeric field that has values: its sum checks the values, not just their number.
        let numeric = source_schema.fields.iter().find(|field| {
            matches!(
                field.column_type,
                ColumnType::Double | ColumnType::Int64 | ColumnType::Uint64
            ) && source.get(&field.name).is_some_and(|count| *count > 0)
        });
        let checksum = match numeric {
            Some(field) => {
                let column = field_column_name(&field.name, &tags);
                let source_sum =
                    sum_in_source(&client, measurement, &field.name, from, until).await?;
                let target_sum = match &target {
                    Target::File(model) => sum_in_model(model, &range, &column),
                    Target::Tdengine(sink, precision) => {
                        sum_in_tdengine(sink, job, *precision, &range, &column).await?
                    }
                    Target::None => 0.0,
                };
                Some(Checksum {
                    field: field.name.clone(),
                    column,
                    source: source_sum,
                    target: target_sum,
                })
            }
            None => None,
        };
        let mut check = MeasurementCheck {
            measurement: measurement.clone(),
            from: format_time(from),
            until: format_time(until),
            fields,
            checksum,
            windows: Vec::new(),
        };
        if !check.matches() {
            let per_source = windows_in_source(&client, job, measurement, from, until).await?;
            let per_target = match &target {
                Target::File(model) => windows_in_model(model, job, &range),
                Target::Tdengine(sink, precision) => {
                    windows_in_tdengine(sink, job, *precision, &range, &columns).await?
                }
                Target::None => BTreeMap::new(),
            };
            check.windows = differing_windows(job, &per_source, &per_target, until);
        }
        checks.push(check);
    }
    Ok(checks)
}

/// Writes one measurement's comparison as text; `!` marks what differs.
pub fn print_check(out: &mut impl std::io::Write, check: &MeasurementCheck) -> std::io::Result<()> {
    let mark = |same: bool| if same { " " } else { "!" };
    writeln!(
        out,
        "{} {} [{} .. {})",
        if check.matches() { "ok  " } else { "DIFF" },
        check.measurement,
        check.from,
        check.until
    )?;
    for field in &check.fields {
        writeln!(
            out,
            "  {} {:<24} influxdb {:>12}  tdengine {:>12}",
            mark(field.source == field.target),
            field.field,
            field.source,
            field.target
        )?;
    }
    if let Some(checksum) = &check.checksum {
        writeln!(
            out,
            "  {} sum({}){:<width$} influxdb {:>12}  tdengine {:>12}",
            mark(checksum.matches()),
            checksum.field,
            "",
            checksum.source,
            checksum.target,
            width = 19usize.saturating_sub(checksum.field.len())
        )?;
    }
    for window in &check.windows {
        writeln!(
            out,
            "  ! window [{} .. {})  influxdb {} values  tdengine {}",
            window.start, window.end, window.source, window.target
        )?;
    }
    Ok(())
}

/// What is compared: a super table over `[from, until)`.
struct Range<'a> {
    super_table: &'a str,
    from: i64,
    until: i64,
}

/// The start of the job's window holding `time`.
fn window_start(job: &JobConfig, time: i64) -> i64 {
    let window = window_ns(job);
    influx2td_coordinator::service::align_down(time, job.begin_ns, window)
}

fn window_ns(job: &JobConfig) -> i64 {
    i64::try_from(job.window.as_nanos())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// Windows whose totals differ, in time order.
fn differing_windows(
    job: &JobConfig,
    source: &BTreeMap<i64, u64>,
    target: &BTreeMap<i64, u64>,
    until: i64,
) -> Vec<WindowDiff> {
    let starts: std::collections::BTreeSet<i64> =
        source.keys().chain(target.keys()).copied().collect();
    starts
        .into_iter()
        .filter_map(|start_ns| {
            let (source, target) = (
                source.get(&start_ns).copied().unwrap_or(0),
                target.get(&start_ns).copied().unwrap_or(0),
            );
            let end_ns = start_ns.saturating_add(window_ns(job)).min(until);
            (source != target).then(|| WindowDiff {
                start: format_time(start_ns),
                end: format_time(end_ns),
                start_ns,
                end_ns,
                source,
                target,
            })
        })
        .collect()
}

/// Sums the numbers of a query answer's first row (after its time column).
fn first_row_sum(series: &[influx2td_reader::client::JsonSeries]) -> f64 {
    series
        .iter()
        .filter_map(|series| series.values.first())
        .flat_map(|row| row.iter().skip(1))
        .filter_map(serde_json::Value::as_f64)
        .sum()
}

async fn sum_in_source(
    client: &InfluxClient,
    measurement: &str,
    field: &str,
    from: i64,
    until: i64,
) -> anyhow::Result<f64> {
    let statement = format!(
        "SELECT SUM({}) FROM {} WHERE time >= {from} AND time < {until}",
        influx2td_reader::client::quote_identifier(field),
        schema::from_clause(client, measurement)
    );
    Ok(first_row_sum(&client.query(&statement).await?))
}

/// Values per window of the job (all fields together).
async fn windows_in_source(
    client: &InfluxClient,
    job: &JobConfig,
    measurement: &str,
    from: i64,
    until: i64,
) -> anyhow::Result<BTreeMap<i64, u64>> {
    let window = window_ns(job);
    let statement = format!(
        "SELECT COUNT(*) FROM {} WHERE time >= {from} AND time < {until} GROUP BY time({window}ns, {}ns) fill(none)",
        schema::from_clause(client, measurement),
        job.begin_ns.rem_euclid(window)
    );
    let mut counts = BTreeMap::new();
    for series in client.query(&statement).await? {
        for row in &series.values {
            let Some(time) = row.first().and_then(serde_json::Value::as_i64) else {
                continue;
            };
            let values: u64 = row
                .iter()
                .skip(1)
                .filter_map(serde_json::Value::as_u64)
                .sum();
            // The first bucket may start before `from`; it belongs to `from`'s window.
            *counts.entry(window_start(job, time.max(from))).or_default() += values;
        }
    }
    Ok(counts)
}

fn model_rows<'a>(
    model: &'a influx2td_writer::replay::Model,
    range: &'a Range<'_>,
) -> impl Iterator<Item = (i64, &'a BTreeMap<String, Literal>)> + 'a {
    model
        .tables
        .values()
        .filter(|table| table.super_table == range.super_table)
        .flat_map(|table| table.rows.range(range.from..range.until))
        .map(|(time, row)| (*time, row))
}

fn count_in_model(
    model: &influx2td_writer::replay::Model,
    range: &Range<'_>,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (_, row) in model_rows(model, range) {
        for (column, value) in row {
            if *value != Literal::Null {
                *counts.entry(column.clone()).or_default() += 1;
            }
        }
    }
    counts
}

fn sum_in_model(model: &influx2td_writer::replay::Model, range: &Range<'_>, column: &str) -> f64 {
    model_rows(model, range)
        .filter_map(|(_, row)| match row.get(column) {
            Some(Literal::Number(number)) => number.parse::<f64>().ok(),
            _ => None,
        })
        .sum()
}

fn windows_in_model(
    model: &influx2td_writer::replay::Model,
    job: &JobConfig,
    range: &Range<'_>,
) -> BTreeMap<i64, u64> {
    let mut counts = BTreeMap::new();
    for (time, row) in model_rows(model, range) {
        let values = row
            .values()
            .filter(|value| **value != Literal::Null)
            .count() as u64;
        *counts.entry(window_start(job, time)).or_default() += values;
    }
    counts
}

fn tdengine_where(
    job: &JobConfig,
    precision: influx2td_writer::Precision,
    range: &Range<'_>,
) -> String {
    format!(
        "FROM {}.{} WHERE `_ts` >= {} AND `_ts` < {}",
        quote(&job.target.database),
        quote(range.super_table),
        precision.convert(range.from),
        precision.convert(range.until)
    )
}

fn counted_columns(columns: &[(String, String)]) -> String {
    columns
        .iter()
        .map(|(_, column)| format!("COUNT({})", quote(column)))
        .collect::<Vec<_>>()
        .join(",")
}

async fn count_in_tdengine(
    sink: &influx2td_writer::TdengineSink,
    job: &JobConfig,
    precision: influx2td_writer::Precision,
    range: &Range<'_>,
    columns: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, u64>> {
    let statement = format!(
        "SELECT {} {}",
        counted_columns(columns),
        tdengine_where(job, precision, range)
    );
    let rows = sink.records(&statement).await?;
    let values = rows.into_iter().next().unwrap_or_default();
    Ok(columns
        .iter()
        .zip(values)
        .map(|((_, column), count)| (column.clone(), count.parse().unwrap_or(0)))
        .collect())
}

async fn sum_in_tdengine(
    sink: &influx2td_writer::TdengineSink,
    job: &JobConfig,
    precision: influx2td_writer::Precision,
    range: &Range<'_>,
    column: &str,
) -> anyhow::Result<f64> {
    let statement = format!(
        "SELECT SUM({}) {}",
        quote(column),
        tdengine_where(job, precision, range)
    );
    let rows = sink.records(&statement).await?;
    Ok(rows
        .first()
        .and_then(|row| row.first())
        .and_then(|sum| sum.parse().ok())
        .unwrap_or(0.0))
}

/// Values per window of the job, with TDengine's `INTERVAL` aligned on the job's windows.
async fn windows_in_tdengine(
    sink: &influx2td_writer::TdengineSink,
    job: &JobConfig,
    precision: influx2td_writer::Precision,
    range: &Range<'_>,
    columns: &[(String, String)],
) -> anyhow::Result<BTreeMap<i64, u64>> {
    let window = window_ns(job);
    let unit = match precision {
        influx2td_writer::Precision::Nanoseconds => "b",
        influx2td_writer::Precision::Microseconds => "u",
        influx2td_writer::Precision::Milliseconds => "a",
    };
    let window_units = precision.convert(window);
    let offset_units = precision.convert(job.begin_ns.rem_euclid(window));
    // TDengine reads no zero duration (`0b`): an offset of zero is left out.
    let offset = if offset_units == 0 {
        String::new()
    } else {
        format!(", {offset_units}{unit}")
    };
    let statement = format!(
        "SELECT CAST(_wstart AS BIGINT), {} {} INTERVAL({window_units}{unit}{offset})",
        counted_columns(columns),
        tdengine_where(job, precision, range)
    );
    let mut counts = BTreeMap::new();
    for row in sink.records(&statement).await? {
        let Some(start) = row.first().and_then(|start| start.parse::<i64>().ok()) else {
            continue;
        };
        let start_ns = precision.to_nanoseconds(start);
        let values: u64 = row
            .iter()
            .skip(1)
            .filter_map(|count| count.parse::<u64>().ok())
            .sum();
        *counts
            .entry(window_start(job, start_ns.max(range.from)))
            .or_default() += values;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_allow_for_float_rounding_and_nothing_more() {
        let checksum = |source: f64, target: f64| Checksum {
            field: "f".into(),
            column: "f".into(),
            source,
            target,
        };
        assert!(checksum(1_155_049.193_709_999_8, 1_155_049.193_71).matches());
        assert!(checksum(0.0, 0.0).matches());
        assert!(!checksum(1_155_049.19, 1_155_050.19).matches());
        assert!(!checksum(0.0, 1e-6).matches());
    }
}
