//! A row batch as TDengine rows: which columns and tags it needs, and each value rendered for
//! the column that holds it. Rows that cannot be written are set aside with the reason.

use std::collections::BTreeSet;

use influx2td_proto::{ColumnType, Value, pb};

use crate::mapping::{
    MAX_VAR_BYTES, NULL_TAG, child_table_name, field_column_name, tag_column_name, tag_value,
};
use crate::schema::{Cast, ColumnSpec, Needs, TableSchema, cast};
use std::fmt::Write as _;

use crate::sql::{TableRows, escape_string, push_escaped};

/// The timestamp precision of the target database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
}

impl Precision {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ns" => Self::Nanoseconds,
            "us" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            _ => return None,
        })
    }

    /// A nanosecond timestamp in this precision (rounded down, also before 1970).
    pub fn convert(self, nanos: i64) -> i64 {
        match self {
            Self::Nanoseconds => nanos,
            Self::Microseconds => nanos.div_euclid(1_000),
            Self::Milliseconds => nanos.div_euclid(1_000_000),
        }
    }

    /// A timestamp of this precision in nanoseconds.
    pub fn to_nanoseconds(self, value: i64) -> i64 {
        match self {
            Self::Nanoseconds => value,
            Self::Microseconds => value.saturating_mul(1_000),
            Self::Milliseconds => value.saturating_mul(1_000_000),
        }
    }
}

/// A row that will not be written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub child_table: String,
    pub timestamp_ns: i64,
    pub reason: String,
}

/// Column names of a batch's fields, given the tags of its super table.
fn tag_keys(batch: &pb::RowBatch, schema: Option<&TableSchema>) -> Vec<String> {
    let mut keys: BTreeSet<String> = batch
        .series
        .iter()
        .flat_map(|block| block.tags.iter().map(|tag| tag_column_name(&tag.key)))
        .collect();
    if let Some(schema) = schema {
        keys.extend(schema.tags.keys().cloned());
    }
    keys.into_iter().collect()
}

fn value_length(value: &Value<'_>) -> usize {
    match value {
        Value::String(text) => text.len(),
        // The longest text a number or boolean becomes when a string column holds it.
        _ => 24,
    }
}

/// What `batch` needs of its super table (`schema`: what it has, when known).
pub fn needs(batch: &pb::RowBatch, schema: Option<&TableSchema>) -> Needs {
    let tags = tag_keys(batch, schema);
    let mut needs = Needs::default();
    for block in &batch.series {
        for tag in &block.tags {
            needs.tag(
                &tag_column_name(&tag.key),
                tag_value(&tag.value).chars().count(),
            );
        }
        for column in &block.columns {
            let Some(column_type) = column.column_type() else {
                continue;
            };
            let name = field_column_name(&column.name, &tags);
            let longest = (0..block.row_count())
                .filter_map(|row| column.value(row))
                .map(|value| value_length(&value))
                .max()
                .unwrap_or(0);
            needs.column(&name, column_type, longest);
        }
    }
    needs
}

/// Rows ready for INSERT, and those that cannot be written.
#[derive(Debug, Default)]
pub struct Converted {
    pub tables: Vec<TableRows>,
    pub rejected: Vec<Rejected>,
}

/// The tag a tagless series names (NULL) in its `USING ... TAGS`: `_tag_null` where the super
/// table has it, else its first tag — a measurement holding tagged and tagless series keeps
/// whichever its super table was created with, as schemaless ingestion does.
fn null_tag(schema: &TableSchema) -> String {
    if schema.tags.contains_key(NULL_TAG) {
        return NULL_TAG.to_owned();
    }
    schema
        .tags
        .keys()
        .next()
        .cloned()
        .unwrap_or_else(|| NULL_TAG.to_owned())
}

/// Renders `batch` for a super table whose schema (after any DDL) is `schema`.
pub fn convert(batch: &pb::RowBatch, schema: &TableSchema, precision: Precision) -> Converted {
    let tags = tag_keys(batch, Some(schema));
    let mut converted = Converted::default();
    for block in &batch.series {
        let child_table = child_table_of(&batch.measurement, block);
        let reject_all = |reason: String, converted: &mut Converted| {
            for timestamp in &block.timestamps_ns {
                converted.rejected.push(Rejected {
                    child_table: child_table.clone(),
                    timestamp_ns: *timestamp,
                    reason: reason.clone(),
                });
            }
        };
        let mut rendered_tags = Vec::new();
        let mut tag_problem = None;
        for tag in &block.tags {
            let value = tag_value(&tag.value);
            match escape_string(&value) {
                Some(literal) if value.len() <= MAX_VAR_BYTES as usize => {
                    rendered_tags.push((tag_column_name(&tag.key), literal));
                }
                _ => {
                    tag_problem = Some(format!(
                        "tag {:?}: value cannot be stored (NUL character or over {MAX_VAR_BYTES} bytes)",
                        tag.key
                    ))
                }
            }
        }
        if let Some(reason) = tag_problem {
            reject_all(reason, &mut converted);
            continue;
        }
        if rendered_tags.is_empty() {
            rendered_tags.push((null_tag(schema), "NULL".to_owned()));
        }
        let columns: Vec<(String, &pb::Column)> = block
            .columns
            .iter()
            .map(|column| (field_column_name(&column.name, &tags), column))
            .collect();
        let mut table = TableRows {
            child_table: child_table.clone(),
            tags: rendered_tags,
            columns: columns.iter().map(|(name, _)| name.clone()).collect(),
            rows: Vec::with_capacity(block.row_count()),
        };
        let specs: Vec<ColumnSpec> = columns
            .iter()
            .map(|(name, _)| {
                schema
                    .columns
                    .get(name)
                    .copied()
                    .unwrap_or(ColumnSpec::Other)
            })
            .collect();
        // What a row took last time: the next one gets that much room at once.
        let mut row_capacity = 8 * columns.len();
        for (row, timestamp) in block.timestamps_ns.iter().enumerate() {
            let mut cells = String::with_capacity(row_capacity);
            let mut problem = None;
            for ((_, column), spec) in columns.iter().zip(&specs) {
                cells.push(',');
                if let Err(reason) = render(&mut cells, column.value(row), *spec, &column.name) {
                    problem = Some(reason);
                    break;
                }
            }
            row_capacity = row_capacity.max(cells.len());
            match problem {
                None => table.rows.push((precision.convert(*timestamp), cells)),
                Some(reason) => converted.rejected.push(Rejected {
                    child_table: child_table.clone(),
                    timestamp_ns: *timestamp,
                    reason,
                }),
            }
        }
        if !table.rows.is_empty() {
            converted.tables.push(table);
        }
    }
    converted
}

/// The child table a series of `measurement` goes into.
fn child_table_of(measurement: &str, block: &pb::SeriesBlock) -> String {
    let pairs: Vec<(&str, &str)> = block
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    child_table_name(measurement, &pairs)
}

/// Every row of `batch`, refused for `reason` (TDengine refuses the table they need).
pub fn refuse_batch(batch: &pb::RowBatch, reason: &str) -> Vec<Rejected> {
    let mut rejected = Vec::with_capacity(usize::try_from(batch.row_count()).unwrap_or(0));
    for block in &batch.series {
        let child_table = child_table_of(&batch.measurement, block);
        for timestamp in &block.timestamps_ns {
            rejected.push(Rejected {
                child_table: child_table.clone(),
                timestamp_ns: *timestamp,
                reason: reason.to_owned(),
            });
        }
    }
    rejected
}

/// Appends one cell as a SQL literal for a column of `spec`; the reason when it cannot be
/// stored (what was appended then is of no use).
fn render(
    out: &mut String,
    value: Option<Value<'_>>,
    spec: ColumnSpec,
    field: &str,
) -> Result<(), String> {
    let Some(value) = value else {
        out.push_str("NULL");
        return Ok(());
    };
    let target = match cast(spec, value.column_type()) {
        Cast::Into(target) => target,
        Cast::Refuse => {
            let held = match spec {
                ColumnSpec::Typed(column_type, _) => column_type.to_string(),
                ColumnSpec::Other => "a type influx2td does not write".to_owned(),
            };
            return Err(format!(
                "field {field:?} is {held} in TDengine; a {} value cannot be stored there without loss",
                value.column_type()
            ));
        }
    };
    match (target, value) {
        (ColumnType::Double, Value::Double(number)) if !number.is_finite() => {
            return Err(format!(
                "field {field:?}: {number} cannot be stored in TDengine"
            ));
        }
        // Debug prints the shortest text that reads back as the same f64 (`1.5`, `1e300`).
        (ColumnType::Double, Value::Double(number)) => write!(out, "{number:?}"),
        (ColumnType::Double, Value::Int64(number)) => write!(out, "{:?}", number as f64),
        (ColumnType::Double, Value::Uint64(number)) => write!(out, "{:?}", number as f64),
        (ColumnType::Int64, Value::Int64(number)) => write!(out, "{number}"),
        (ColumnType::Uint64, Value::Uint64(number)) => write!(out, "{number}"),
        (ColumnType::Bool, Value::Bool(flag)) => write!(out, "{flag}"),
        (ColumnType::String, Value::String(text)) => {
            if text.len() > MAX_VAR_BYTES as usize {
                return Err(format!(
                    "field {field:?}: a string of {} bytes is longer than TDengine's {MAX_VAR_BYTES}",
                    text.len()
                ));
            }
            if !push_escaped(out, text) {
                return Err(format!(
                    "field {field:?}: TDengine cannot store a NUL character"
                ));
            }
            Ok(())
        }
        // A number or a flag into a string column: its text, quoted (nothing to escape).
        (ColumnType::String, Value::Double(number)) => write!(out, "'{number}'"),
        (ColumnType::String, Value::Int64(number)) => write!(out, "'{number}'"),
        (ColumnType::String, Value::Uint64(number)) => write!(out, "'{number}'"),
        (ColumnType::String, Value::Bool(flag)) => write!(out, "'{flag}'"),
        (target, value) => {
            return Err(format!(
                "field {field:?}: a {} value in a {target} column",
                value.column_type()
            ));
        }
    }
    .map_err(|error| format!("field {field:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use influx2td_proto::batch::{BatchEncoder, WindowRef};
    use influx2td_proto::{ColumnType::*, Message};

    fn batch(
        tags: &[(&str, &str)],
        columns: &[(&str, ColumnType)],
        rows: &[(i64, Vec<Option<Value<'_>>>)],
    ) -> pb::RowBatch {
        let mut encoder = BatchEncoder::new(WindowRef {
            job: "j".into(),
            measurement: "cpu".into(),
            window_start_ns: 0,
            window_end_ns: 10,
            attempt: 1,
            read: 1,
        });
        encoder.begin_series(
            tags.iter()
                .map(|(k, v)| pb::Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            columns.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect(),
        );
        for (timestamp, values) in rows {
            assert!(encoder.push_row(*timestamp, values).unwrap().is_none());
        }
        pb::RowBatch::decode(encoder.finish().payload).unwrap()
    }

    #[test]
    fn renders_every_type_and_converts_precision() {
        let batch = batch(
            &[("host", "a'b")],
            &[
                ("f", Double),
                ("i", Int64),
                ("u", Uint64),
                ("b", Bool),
                ("s", String),
                ("host", Double),
            ],
            &[
                (
                    1_700_000_000_123_456_789,
                    vec![
                        Some(Value::Double(1.5)),
                        Some(Value::Int64(-3)),
                        Some(Value::Uint64(u64::MAX)),
                        Some(Value::Bool(true)),
                        Some(Value::String("x\ny")),
                        Some(Value::Double(1e300)),
                    ],
                ),
                (-1, vec![None, None, None, None, None, None]),
            ],
        );
        let needs = needs(&batch, None);
        assert_eq!(
            needs.columns.keys().collect::<Vec<_>>(),
            ["b", "f", "host_field", "i", "s", "u"]
        );
        let (_, schema) = crate::schema::plan("db", "cpu", None, &needs);
        let converted = convert(&batch, &schema, Precision::Milliseconds);
        assert!(converted.rejected.is_empty());
        let table = &converted.tables[0];
        assert_eq!(
            table.child_table,
            crate::mapping::child_table_name("cpu", &[("host", "a'b")])
        );
        assert_eq!(table.tags, [("host".to_owned(), "'a\\'b'".to_owned())]);
        assert_eq!(table.columns, ["f", "i", "u", "b", "s", "host_field"]);
        assert_eq!(
            table.rows[0],
            (
                1_700_000_000_123,
                ",1.5,-3,18446744073709551615,true,'x\\ny',1e300".to_owned()
            )
        );
        assert_eq!(
            table.rows[1],
            (-1, ",NULL".repeat(6)),
            "before 1970 rounds down"
        );
    }

    #[test]
    fn values_that_cannot_be_stored_are_rejected_with_a_reason() {
        let batch = batch(
            &[],
            &[("v", Double), ("s", String)],
            &[
                (1, vec![Some(Value::Double(f64::NAN)), None]),
                (
                    2,
                    vec![Some(Value::Double(2.0)), Some(Value::String("a\0b"))],
                ),
                (3, vec![Some(Value::Double(3.0)), None]),
            ],
        );
        let (_, schema) = crate::schema::plan("db", "cpu", None, &needs(&batch, None));
        let converted = convert(&batch, &schema, Precision::Nanoseconds);
        assert_eq!(converted.tables[0].rows.len(), 1);
        assert_eq!(
            converted.tables[0].tags,
            [("_tag_null".to_owned(), "NULL".to_owned())]
        );
        let reasons: Vec<_> = converted
            .rejected
            .iter()
            .map(|r| (r.timestamp_ns, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, "field \"v\": NaN cannot be stored in TDengine"),
                (2, "field \"s\": TDengine cannot store a NUL character")
            ]
        );
    }

    #[test]
    fn an_existing_narrower_column_type_refuses_lossy_values() {
        let batch = batch(
            &[],
            &[("v", Double)],
            &[(1, vec![Some(Value::Double(1.5))])],
        );
        let mut schema = TableSchema::default();
        schema
            .columns
            .insert("v".into(), ColumnSpec::Typed(Int64, 0));
        let converted = convert(&batch, &schema, Precision::Nanoseconds);
        assert!(converted.tables.is_empty());
        assert_eq!(
            converted.rejected[0].reason,
            "field \"v\" is integer in TDengine; a float value cannot be stored there without loss"
        );
    }

    #[test]
    fn precision_rounds_down() {
        assert_eq!(Precision::Microseconds.convert(-1), -1);
        assert_eq!(Precision::Microseconds.convert(1999), 1);
        assert_eq!(Precision::parse("us"), Some(Precision::Microseconds));
        assert_eq!(Precision::parse("s"), None);
    }
}
