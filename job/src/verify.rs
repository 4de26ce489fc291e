//! `influx2td verify`: compares, per measurement and field, what InfluxDB holds with what the
//! target holds, over the part of the job its checkpoints say is written
//! (`[begin, consistent up to)`):
//! - how many values each field has (InfluxDB's `COUNT(*)` counts the points that have each
//!   field, TDengine's `COUNT(column)` the non-null values of each column; a file target is
//!   replayed to count the same);
//! - for every numeric field its sum, smallest and largest value. Integer fields are summed
//!   modulo 2^64 on both sides (InfluxDB's `SUM` of an integer wraps around at 64 bits, and so
//!   does TDengine's of a BIGINT or BIGINT UNSIGNED), so their sums are equal exactly or not at
//!   all; float sums are equal up to the rounding of adding in another order; the smallest and
//!   largest values are equal exactly.
//!
//! Where a measurement differs, counts and sums are compared again per window of the job, to
//! say where.

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

/// How a numeric field is summed: exactly, modulo 2^64, or in floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SumKind {
    Integer,
    Unsigned,
    Float,
}

impl SumKind {
    /// Integers are exact where the field never changed type between shards; a field InfluxDB
    /// holds as integer in one shard and float in another is a DOUBLE column, summed as floats.
    fn of(field: &schema::Field) -> Option<Self> {
        if !field.conflicting_types.is_empty() {
            return matches!(
                field.column_type,
                ColumnType::Double | ColumnType::Int64 | ColumnType::Uint64
            )
            .then_some(Self::Float);
        }
        match field.column_type {
            ColumnType::Int64 => Some(Self::Integer),
            ColumnType::Uint64 => Some(Self::Unsigned),
            ColumnType::Double => Some(Self::Float),
            ColumnType::Bool | ColumnType::String => None,
        }
    }

    /// A number as this kind, from JSON (InfluxDB).
    fn read_json(self, value: &serde_json::Value) -> Option<Number> {
        match self {
            Self::Integer => value.as_i64().map(Number::Integer),
            Self::Unsigned => value.as_u64().map(Number::Unsigned),
            Self::Float => value.as_f64().map(Number::Float),
        }
    }

    /// A number as this kind, from its text (TDengine's answer, the file target's SQL).
    fn parse(self, text: &str) -> Option<Number> {
        match self {
            Self::Integer => text.parse().ok().map(Number::Integer),
            Self::Unsigned => text.parse().ok().map(Number::Unsigned),
            Self::Float => text.parse().ok().map(Number::Float),
        }
    }
}

/// A value or a sum as compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Number {
    Integer(i64),
    Unsigned(u64),
    Float(f64),
}

impl Number {
    /// `self + other` as the databases add: integers wrap around at 64 bits.
    fn add(self, other: Self) -> Self {
        match (self, other) {
            (Self::Integer(a), Self::Integer(b)) => Self::Integer(a.wrapping_add(b)),
            (Self::Unsigned(a), Self::Unsigned(b)) => Self::Unsigned(a.wrapping_add(b)),
            (a, b) => Self::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Self::Integer(number) => number as f64,
            Self::Unsigned(number) => number as f64,
            Self::Float(number) => number,
        }
    }

    /// Integers compare exactly; mixed or float values as floats.
    fn less(self, other: Self) -> bool {
        match (self, other) {
            (Self::Integer(a), Self::Integer(b)) => a < b,
            (Self::Unsigned(a), Self::Unsigned(b)) => a < b,
            (a, b) => a.as_f64() < b.as_f64(),
        }
    }

    fn min(self, other: Self) -> Self {
        if other.less(self) { other } else { self }
    }

    fn max(self, other: Self) -> Self {
        if self.less(other) { other } else { self }
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Integer(number) => write!(formatter, "{number}"),
            Self::Unsigned(number) => write!(formatter, "{number}"),
            Self::Float(number) => write!(formatter, "{number}"),
        }
    }
}

/// Sum, smallest and largest value of one numeric field on one side (`None`: no value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Aggregates {
    pub sum: Option<Number>,
    pub min: Option<Number>,
    pub max: Option<Number>,
}

impl Aggregates {
    fn add(&mut self, value: Number) {
        self.sum = Some(self.sum.map_or(value, |sum| sum.add(value)));
        self.min = Some(self.min.map_or(value, |min| min.min(value)));
        self.max = Some(self.max.map_or(value, |max| max.max(value)));
    }
}

/// Whether two sums of `count` values of `kind` are equal: integers exactly (modulo 2^64, as
/// both databases add); floats up to the rounding of adding them in another order — relative
/// 1e-9, and at most `4 · count · ε · largest magnitude` where large values cancel out.
fn sums_match(
    kind: SumKind,
    source: Option<Number>,
    target: Option<Number>,
    count: u64,
    largest: f64,
) -> bool {
    match (kind, source, target) {
        (SumKind::Float, Some(source), Some(target)) => {
            let (source, target) = (source.as_f64(), target.as_f64());
            let scale = source.abs().max(target.abs());
            let cancellation = 4.0 * count as f64 * f64::EPSILON * largest;
            (source - target).abs() <= scale * 1e-9 + cancellation
        }
        (_, source, target) => source == target,
    }
}

/// One numeric field's sum, smallest and largest value on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checksum {
    pub field: String,
    pub column: String,
    pub kind: SumKind,
    /// Values InfluxDB holds (for the float tolerance).
    pub count: u64,
    pub source: Aggregates,
    pub target: Aggregates,
}

impl Checksum {
    fn largest(&self) -> f64 {
        [
            self.source.min,
            self.source.max,
            self.target.min,
            self.target.max,
        ]
        .into_iter()
        .flatten()
        .map(|number| number.as_f64().abs())
        .fold(0.0, f64::max)
    }

    pub fn sum_matches(&self) -> bool {
        sums_match(
            self.kind,
            self.source.sum,
            self.target.sum,
            self.count,
            self.largest(),
        )
    }

    pub fn extremes_match(&self) -> bool {
        self.source.min == self.target.min && self.source.max == self.target.max
    }

    pub fn matches(&self) -> bool {
        self.sum_matches() && self.extremes_match()
    }
}

/// A numeric field's sum in one window that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SumDiff {
    pub field: String,
    pub source: Option<Number>,
    pub target: Option<Number>,
}

/// A window of the job whose values differ: how many each side holds (all fields together),
/// and the numeric fields whose sums differ there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowDiff {
    pub start: String,
    pub end: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub source: u64,
    pub target: u64,
    pub sums: Vec<SumDiff>,
}

/// One measurement's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct MeasurementCheck {
    pub measurement: String,
    pub from: String,
    pub until: String,
    pub fields: Vec<FieldCount>,
    /// Every numeric field's sum, smallest and largest value.
    pub checksums: Vec<Checksum>,
    /// Where counts or sums differ; empty when they match.
    pub windows: Vec<WindowDiff>,
}

impl MeasurementCheck {
    pub fn matches(&self) -> bool {
        self.fields.iter().all(|count| count.source == count.target)
            && self.checksums.iter().all(Checksum::matches)
    }
}

/// Where the target is read from.
enum Target {
    File(influx2td_writer::replay::Model),
    Tdengine(influx2td_writer::TdengineSink, influx2td_writer::Precision),
    None,
}

/// A numeric field compared: its name, its column and how it is summed.
struct Numeric {
    field: String,
    column: String,
    kind: SumKind,
}

/// At most this many numeric fields per aggregate query (three aggregates each).
const FIELDS_PER_QUERY: usize = 64;

/// Counts and checksums both sides for every measurement with a checkpoint.
pub async fn verify(
    job: &JobConfig,
    checkpoints: &BTreeMap<String, Progress>,
) -> anyhow::Result<Vec<MeasurementCheck>> {
    let client = InfluxClient::new(&job.source, &job.bucket)?;
    let target = match &job.target.dsn {
        Dsn::File { directory } => {
            Target::File(replay_directory(directory).map_err(|e| anyhow::anyhow!(e))?)
        }
        dsn => match influx2td_writer::open_sink(dsn, "verify", 1, job.target.insert).await? {
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
        checks.push(verify_measurement(job, &client, &target, measurement, from, until).await?);
    }
    Ok(checks)
}

async fn verify_measurement(
    job: &JobConfig,
    client: &InfluxClient,
    target: &Target,
    measurement: &str,
    from: i64,
    until: i64,
) -> anyhow::Result<MeasurementCheck> {
    let source_schema = schema::schema(client, measurement).await?;
    let tags: Vec<String> = source_schema
        .tag_keys
        .iter()
        .map(|tag| tag_column_name(tag))
        .collect();
    let source = count_in_source(client, measurement, from, until).await?;
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
    let counted = match target {
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
    // Every numeric field that has values: their sums and extremes check the values themselves.
    let numeric: Vec<Numeric> = source_schema
        .fields
        .iter()
        .filter(|field| source.get(&field.name).is_some_and(|count| *count > 0))
        .filter_map(|field| {
            Some(Numeric {
                kind: SumKind::of(field)?,
                column: field_column_name(&field.name, &tags),
                field: field.name.clone(),
            })
        })
        .collect();
    let source_sums = aggregates_in_source(client, measurement, &numeric, from, until).await?;
    let target_sums = match target {
        Target::File(model) => aggregates_in_model(model, &range, &numeric),
        Target::Tdengine(sink, precision) => {
            aggregates_in_tdengine(sink, job, *precision, &range, &numeric).await?
        }
        Target::None => BTreeMap::new(),
    };
    let checksums = numeric
        .iter()
        .map(|numeric| Checksum {
            field: numeric.field.clone(),
            column: numeric.column.clone(),
            kind: numeric.kind,
            count: source.get(&numeric.field).copied().unwrap_or(0),
            source: source_sums.get(&numeric.field).copied().unwrap_or_default(),
            target: target_sums.get(&numeric.field).copied().unwrap_or_default(),
        })
        .collect();
    let mut check = MeasurementCheck {
        measurement: measurement.to_owned(),
        from: format_time(from),
        until: format_time(until),
        fields,
        checksums,
        windows: Vec::new(),
    };
    if !check.matches() {
        let per_source = windows_in_source(client, job, measurement, &numeric, from, until).await?;
        let per_target = match target {
            Target::File(model) => windows_in_model(model, job, &range, &numeric),
            Target::Tdengine(sink, precision) => {
                windows_in_tdengine(sink, job, *precision, &range, &columns, &numeric).await?
            }
            Target::None => BTreeMap::new(),
        };
        check.windows = differing_windows(job, &numeric, &per_source, &per_target, until);
    }
    Ok(check)
}

/// A window read again by [`repair`]: what it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub measurement: String,
    pub start: String,
    pub end: String,
    pub rows_written: u64,
    pub rows_dead_lettered: u64,
}

/// Reads again every window of `checks` the target lacks rows of, or holds other values for,
/// and says what each wrote. Re-reading writes what the target lacks; it cannot take away what
/// it holds extra. A window with other values (equal counts, other sums) is overwritten by its
/// re-read. Verify again afterwards to see the outcome. `board`: where the re-reads' status
/// goes instead of a progress bar (the console). A re-read stopped before its end (a shutdown)
/// is an error: that window is not repaired.
pub async fn repair(
    job: &JobConfig,
    checks: &[MeasurementCheck],
    board: Option<&influx2td_coordinator::StatusBoard>,
) -> anyhow::Result<Vec<Repaired>> {
    let mut repaired = Vec::new();
    for check in checks {
        let repairable =
            |w: &&WindowDiff| w.source > w.target || (w.source == w.target && !w.sums.is_empty());
        for window in check.windows.iter().filter(repairable) {
            let summary = crate::backfill::read_again_on(
                job,
                &check.measurement,
                window.start_ns,
                window.end_ns,
                board.cloned(),
            )
            .await?;
            if !summary.complete {
                anyhow::bail!(
                    "the repair of {} [{} .. {}) stopped before its end (shut down?): run it again",
                    check.measurement,
                    window.start,
                    window.end
                );
            }
            repaired.push(Repaired {
                measurement: check.measurement.clone(),
                start: window.start.clone(),
                end: window.end.clone(),
                rows_written: summary.rows_written(),
                rows_dead_lettered: summary.rows_dead_lettered(),
            });
        }
    }
    Ok(repaired)
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
    let show = |number: Option<Number>| number.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for checksum in &check.checksums {
        let line = |out: &mut dyn std::io::Write, what: &str, same: bool, source, target| {
            let label = format!("{what}({})", checksum.field);
            writeln!(
                out,
                "  {} {label:<24} influxdb {:>12}  tdengine {:>12}",
                mark(same),
                show(source),
                show(target)
            )
        };
        line(
            out,
            "sum",
            checksum.sum_matches(),
            checksum.source.sum,
            checksum.target.sum,
        )?;
        // The extremes only where they differ: equal, they would double the listing.
        if checksum.source.min != checksum.target.min {
            line(out, "min", false, checksum.source.min, checksum.target.min)?;
        }
        if checksum.source.max != checksum.target.max {
            line(out, "max", false, checksum.source.max, checksum.target.max)?;
        }
    }
    for window in &check.windows {
        let sums: Vec<String> = window
            .sums
            .iter()
            .map(|sum| {
                format!(
                    ", sum({}) influxdb {} tdengine {}",
                    sum.field,
                    show(sum.source),
                    show(sum.target)
                )
            })
            .collect();
        writeln!(
            out,
            "  ! window [{} .. {})  influxdb {} values  tdengine {}{}",
            window.start,
            window.end,
            window.source,
            window.target,
            sums.concat()
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

/// One window on one side: values (all fields together), and each numeric field's sum.
#[derive(Debug, Default, Clone, PartialEq)]
struct WindowTotals {
    values: u64,
    sums: BTreeMap<String, Number>,
}

impl WindowTotals {
    fn add_sum(&mut self, field: &str, sum: Number) {
        let entry = self.sums.entry(field.to_owned());
        match entry {
            std::collections::btree_map::Entry::Vacant(vacant) => {
                vacant.insert(sum);
            }
            std::collections::btree_map::Entry::Occupied(mut occupied) => {
                let total = occupied.get().add(sum);
                occupied.insert(total);
            }
        }
    }
}

/// Windows whose totals or sums differ, in time order.
fn differing_windows(
    job: &JobConfig,
    numeric: &[Numeric],
    source: &BTreeMap<i64, WindowTotals>,
    target: &BTreeMap<i64, WindowTotals>,
    until: i64,
) -> Vec<WindowDiff> {
    let starts: std::collections::BTreeSet<i64> =
        source.keys().chain(target.keys()).copied().collect();
    let empty = WindowTotals::default();
    starts
        .into_iter()
        .filter_map(|start_ns| {
            let (source, target) = (
                source.get(&start_ns).unwrap_or(&empty),
                target.get(&start_ns).unwrap_or(&empty),
            );
            let sums: Vec<SumDiff> = numeric
                .iter()
                .filter_map(|numeric| {
                    let (a, b) = (
                        source.sums.get(&numeric.field).copied(),
                        target.sums.get(&numeric.field).copied(),
                    );
                    let largest = a
                        .into_iter()
                        .chain(b)
                        .map(|n| n.as_f64().abs())
                        .fold(0.0, f64::max);
                    // The window's sum bounds its values' magnitude well enough for the tolerance.
                    (!sums_match(numeric.kind, a, b, source.values.max(1), largest)).then(|| {
                        SumDiff {
                            field: numeric.field.clone(),
                            source: a,
                            target: b,
                        }
                    })
                })
                .collect();
            let end_ns = start_ns.saturating_add(window_ns(job)).min(until);
            (source.values != target.values || !sums.is_empty()).then(|| WindowDiff {
                start: format_time(start_ns),
                end: format_time(end_ns),
                start_ns,
                end_ns,
                source: source.values,
                target: target.values,
                sums,
            })
        })
        .collect()
}

/// Values per field in InfluxDB over `[from, until)`.
async fn count_in_source(
    client: &InfluxClient,
    measurement: &str,
    from: i64,
    until: i64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let statement = format!(
        "SELECT COUNT(*) FROM {} WHERE time >= {from} AND time < {until}",
        schema::from_clause(client, measurement)
    );
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for series in client.query(&statement).await? {
        for (column, value) in series
            .columns
            .iter()
            .zip(series.values.first().into_iter().flatten())
        {
            if let Some(field) = column.strip_prefix("count_") {
                *counts.entry(field.to_owned()).or_default() += value.as_u64().unwrap_or(0);
            }
        }
    }
    Ok(counts)
}

/// `SUM`, `MIN` and `MAX` of each of `numeric` (as `s<i>`, `n<i>`, `x<i>`).
fn aggregate_list(
    numeric: &[Numeric],
    quote: impl Fn(&str) -> String,
    with_extremes: bool,
) -> String {
    numeric
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let name = quote(&field.field);
            if with_extremes {
                format!("SUM({name}) AS s{index},MIN({name}) AS n{index},MAX({name}) AS x{index}")
            } else {
                format!("SUM({name}) AS s{index}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn aggregates_in_source(
    client: &InfluxClient,
    measurement: &str,
    numeric: &[Numeric],
    from: i64,
    until: i64,
) -> anyhow::Result<BTreeMap<String, Aggregates>> {
    let mut found = BTreeMap::new();
    for chunk in numeric.chunks(FIELDS_PER_QUERY) {
        let statement = format!(
            "SELECT {} FROM {} WHERE time >= {from} AND time < {until}",
            aggregate_list(chunk, influx2td_reader::client::quote_identifier, true),
            schema::from_clause(client, measurement)
        );
        for series in client.query(&statement).await? {
            let Some(row) = series.values.first() else {
                continue;
            };
            let cell = |name: String| {
                series
                    .columns
                    .iter()
                    .position(|column| *column == name)
                    .and_then(|at| row.get(at))
            };
            for (index, field) in chunk.iter().enumerate() {
                let number = |prefix: &str| {
                    cell(format!("{prefix}{index}")).and_then(|value| field.kind.read_json(value))
                };
                found.insert(
                    field.field.clone(),
                    Aggregates {
                        sum: number("s"),
                        min: number("n"),
                        max: number("x"),
                    },
                );
            }
        }
    }
    Ok(found)
}

/// Values (all fields together) and sums of `numeric` per window of the job.
async fn windows_in_source(
    client: &InfluxClient,
    job: &JobConfig,
    measurement: &str,
    numeric: &[Numeric],
    from: i64,
    until: i64,
) -> anyhow::Result<BTreeMap<i64, WindowTotals>> {
    let window = window_ns(job);
    let group = format!(
        "WHERE time >= {from} AND time < {until} GROUP BY time({window}ns, {}ns) fill(none)",
        job.begin_ns.rem_euclid(window)
    );
    let from_clause = schema::from_clause(client, measurement);
    let mut totals: BTreeMap<i64, WindowTotals> = BTreeMap::new();
    // The first bucket may start before `from`; it belongs to `from`'s window.
    let start_of = |time: i64| window_start(job, time.max(from));
    let statement = format!("SELECT COUNT(*) FROM {from_clause} {group}");
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
            totals.entry(start_of(time)).or_default().values += values;
        }
    }
    for chunk in numeric.chunks(FIELDS_PER_QUERY) {
        let list = aggregate_list(chunk, influx2td_reader::client::quote_identifier, false);
        let statement = format!("SELECT {list} FROM {from_clause} {group}");
        for series in client.query(&statement).await? {
            for row in &series.values {
                let Some(time) = row.first().and_then(serde_json::Value::as_i64) else {
                    continue;
                };
                let window = totals.entry(start_of(time)).or_default();
                for (index, field) in chunk.iter().enumerate() {
                    let at = series
                        .columns
                        .iter()
                        .position(|c| *c == format!("s{index}"));
                    if let Some(sum) = at
                        .and_then(|at| row.get(at))
                        .and_then(|value| field.kind.read_json(value))
                    {
                        window.add_sum(&field.field, sum);
                    }
                }
            }
        }
    }
    Ok(totals)
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

/// A number the file target holds in `column`, read as `kind`.
fn model_number(row: &BTreeMap<String, Literal>, column: &str, kind: SumKind) -> Option<Number> {
    match row.get(column) {
        Some(Literal::Number(text)) => kind.parse(text),
        _ => None,
    }
}

fn aggregates_in_model(
    model: &influx2td_writer::replay::Model,
    range: &Range<'_>,
    numeric: &[Numeric],
) -> BTreeMap<String, Aggregates> {
    let mut found: BTreeMap<String, Aggregates> = BTreeMap::new();
    for (_, row) in model_rows(model, range) {
        for field in numeric {
            if let Some(value) = model_number(row, &field.column, field.kind) {
                found.entry(field.field.clone()).or_default().add(value);
            }
        }
    }
    found
}

fn windows_in_model(
    model: &influx2td_writer::replay::Model,
    job: &JobConfig,
    range: &Range<'_>,
    numeric: &[Numeric],
) -> BTreeMap<i64, WindowTotals> {
    let mut totals: BTreeMap<i64, WindowTotals> = BTreeMap::new();
    for (time, row) in model_rows(model, range) {
        let window = totals.entry(window_start(job, time)).or_default();
        window.values += row
            .values()
            .filter(|value| **value != Literal::Null)
            .count() as u64;
        for field in numeric {
            if let Some(value) = model_number(row, &field.column, field.kind) {
                window.add_sum(&field.field, value);
            }
        }
    }
    totals
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

/// The target's columns of `numeric`, quoted for TDengine.
fn tdengine_columns(numeric: &[Numeric]) -> Vec<Numeric> {
    numeric
        .iter()
        .map(|field| Numeric {
            field: field.column.clone(),
            column: field.column.clone(),
            kind: field.kind,
        })
        .collect()
}

async fn aggregates_in_tdengine(
    sink: &influx2td_writer::TdengineSink,
    job: &JobConfig,
    precision: influx2td_writer::Precision,
    range: &Range<'_>,
    numeric: &[Numeric],
) -> anyhow::Result<BTreeMap<String, Aggregates>> {
    let mut found = BTreeMap::new();
    for chunk in numeric.chunks(FIELDS_PER_QUERY) {
        let statement = format!(
            "SELECT {} {}",
            aggregate_list(&tdengine_columns(chunk), quote, true),
            tdengine_where(job, precision, range)
        );
        let rows = sink.records(&statement).await?;
        let Some(row) = rows.first() else {
            continue;
        };
        for (index, field) in chunk.iter().enumerate() {
            let number = |offset: usize| {
                row.get(3 * index + offset)
                    .and_then(|text| field.kind.parse(text))
            };
            found.insert(
                field.field.clone(),
                Aggregates {
                    sum: number(0),
                    min: number(1),
                    max: number(2),
                },
            );
        }
    }
    Ok(found)
}

/// Values and sums per window of the job, with TDengine's `INTERVAL` aligned on its windows.
async fn windows_in_tdengine(
    sink: &influx2td_writer::TdengineSink,
    job: &JobConfig,
    precision: influx2td_writer::Precision,
    range: &Range<'_>,
    columns: &[(String, String)],
    numeric: &[Numeric],
) -> anyhow::Result<BTreeMap<i64, WindowTotals>> {
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
    let interval = format!(
        "{} INTERVAL({window_units}{unit}{offset})",
        tdengine_where(job, precision, range)
    );
    let mut totals: BTreeMap<i64, WindowTotals> = BTreeMap::new();
    let start_of = |start: &str| {
        let start = start.parse::<i64>().ok()?;
        Some(window_start(
            job,
            precision.to_nanoseconds(start).max(range.from),
        ))
    };
    let statement = format!(
        "SELECT CAST(_wstart AS BIGINT), {} {interval}",
        counted_columns(columns)
    );
    for row in sink.records(&statement).await? {
        let Some(start) = row.first().and_then(|start| start_of(start)) else {
            continue;
        };
        let values: u64 = row
            .iter()
            .skip(1)
            .filter_map(|count| count.parse::<u64>().ok())
            .sum();
        totals.entry(start).or_default().values += values;
    }
    for chunk in numeric.chunks(FIELDS_PER_QUERY) {
        let statement = format!(
            "SELECT CAST(_wstart AS BIGINT), {} {interval}",
            aggregate_list(&tdengine_columns(chunk), quote, false)
        );
        for row in sink.records(&statement).await? {
            let Some(start) = row.first().and_then(|start| start_of(start)) else {
                continue;
            };
            let window = totals.entry(start).or_default();
            for (index, field) in chunk.iter().enumerate() {
                if let Some(sum) = row.get(1 + index).and_then(|text| field.kind.parse(text)) {
                    window.add_sum(&field.field, sum);
                }
            }
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(kind: SumKind, source: Number, target: Number) -> Checksum {
        let side = |sum| Aggregates {
            sum: Some(sum),
            min: Some(Number::Float(-1.0)),
            max: Some(Number::Float(1.0)),
        };
        Checksum {
            field: "f".into(),
            column: "f".into(),
            kind,
            count: 1000,
            source: side(source),
            target: side(target),
        }
    }

    #[test]
    fn float_sums_allow_for_rounding_and_nothing_more() {
        let float = |a, b| checksum(SumKind::Float, Number::Float(a), Number::Float(b));
        assert!(float(1_155_049.193_709_999_8, 1_155_049.193_71).matches());
        assert!(float(0.0, 0.0).matches());
        assert!(!float(1_155_049.19, 1_155_050.19).matches());
        assert!(!float(0.0, 1e-6).matches());
    }

    #[test]
    fn float_sums_where_large_values_cancel_allow_for_the_order_of_adding() {
        // 1.5 + 2.5 + 1e300 - 1e300: 4 in one order, 0 in another (TDengine answers 0).
        let mut checked = checksum(SumKind::Float, Number::Float(4.0), Number::Float(0.0));
        checked.count = 4;
        checked.source.max = Some(Number::Float(1e300));
        checked.target.max = Some(Number::Float(1e300));
        assert!(checked.sum_matches());
    }

    #[test]
    fn integer_sums_wrap_at_64_bits_and_must_be_equal_exactly() {
        let integer = |a, b| checksum(SumKind::Integer, Number::Integer(a), Number::Integer(b));
        // Both databases wrap: -2602506343229148700 is the same sum on both sides.
        assert!(integer(-2_602_506_343_229_148_700, -2_602_506_343_229_148_700).matches());
        assert!(
            !integer(i64::MAX, i64::MAX - 1).matches(),
            "one unit off is a difference"
        );
        let mut total = Number::Integer(i64::MAX);
        total = total.add(Number::Integer(2));
        assert_eq!(total, Number::Integer(i64::MIN + 1));
        let unsigned = Number::Unsigned(u64::MAX).add(Number::Unsigned(3));
        assert_eq!(unsigned, Number::Unsigned(2));
    }

    #[test]
    fn extremes_must_be_equal_exactly() {
        let mut checked = checksum(SumKind::Float, Number::Float(1.0), Number::Float(1.0));
        assert!(checked.matches());
        checked.target.max = Some(Number::Float(1.000_000_000_1));
        assert!(!checked.matches());
        let mut aggregates = Aggregates::default();
        for value in [3, -7, 5] {
            aggregates.add(Number::Integer(value));
        }
        assert_eq!(
            (aggregates.sum, aggregates.min, aggregates.max),
            (
                Some(Number::Integer(1)),
                Some(Number::Integer(-7)),
                Some(Number::Integer(5))
            )
        );
    }
}
