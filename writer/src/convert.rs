//! A row batch as TDengine rows: which columns and tags it needs, and each value rendered for
//! the column that holds it. Rows that cannot be written are set aside with the reason.

use std::collections::BTreeSet;

use influx2td_proto::pb::column::Values;
use influx2td_proto::{ColumnType, Value, pb};

use crate::mapping::{
    MAX_VAR_BYTES, NULL_TAG, child_table_name, field_column_name, tag_column_name, tag_value,
};
use crate::schema::{Cast, ColumnSpec, Needs, TableSchema, cast};
use std::borrow::Cow;

use crate::rows::{Cells, Column, TableRows};

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
            let rows = block.row_count();
            let longest = match &column.values {
                // Every row has a string: the longest of them, without a look at each.
                Some(Values::PackedStringValues(values)) if column.validity.is_empty() => {
                    values.longest()
                }
                Some(Values::PackedStringValues(_) | Values::StringValues(_)) => (0..rows)
                    .filter_map(|row| column.value(row))
                    .map(|value| value_length(&value))
                    .max()
                    .unwrap_or(0),
                // A number or a flag: the same length whichever it is.
                _ => (0..rows)
                    .find_map(|row| column.value(row))
                    .map_or(0, |value| value_length(&value)),
            };
            needs.column(&name, column_type, longest);
        }
    }
    needs
}

/// Rows ready for INSERT, and those that cannot be written.
#[derive(Debug, Default)]
pub struct Converted<'a> {
    pub tables: Vec<TableRows<'a>>,
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

/// The tags of a series as its child table is created with them; the reason when one cannot be
/// stored.
fn series_tags(
    block: &pb::SeriesBlock,
    schema: &TableSchema,
) -> Result<Vec<(String, Option<String>)>, String> {
    if block.tags.is_empty() {
        return Ok(vec![(null_tag(schema), None)]);
    }
    block
        .tags
        .iter()
        .map(|tag| {
            let value = tag_value(&tag.value);
            if value.contains('\0') || value.len() > MAX_VAR_BYTES as usize {
                return Err(format!(
                    "tag {:?}: value cannot be stored (NUL character or over {MAX_VAR_BYTES} bytes)",
                    tag.key
                ));
            }
            Ok((tag_column_name(&tag.key), Some(value)))
        })
        .collect()
}

/// Turns `batch` into typed rows for a super table whose schema (after any DDL) is `schema`,
/// every value in the type of its column; rows that cannot be stored are set aside.
pub fn convert<'a>(
    batch: &'a pb::RowBatch,
    schema: &TableSchema,
    precision: Precision,
) -> Converted<'a> {
    let tags = tag_keys(batch, Some(schema));
    let mut converted = Converted::default();
    for block in &batch.series {
        let child_table = child_table_of(&batch.measurement, block);
        let reject = |row: usize, reason: String, converted: &mut Converted<'a>| {
            converted.rejected.push(Rejected {
                child_table: child_table.clone(),
                timestamp_ns: block.timestamps_ns[row],
                reason,
            });
        };
        let table_tags = match series_tags(block, schema) {
            Ok(tags) => tags,
            Err(reason) => {
                for row in 0..block.timestamps_ns.len() {
                    reject(row, reason.clone(), &mut converted);
                }
                continue;
            }
        };
        let columns: Vec<(String, &pb::Column, Cast)> = block
            .columns
            .iter()
            .filter_map(|column| {
                let name = field_column_name(&column.name, &tags);
                let spec = schema
                    .columns
                    .get(&name)
                    .copied()
                    .unwrap_or(ColumnSpec::Other);
                Some((name, column, cast(spec, column.column_type()?)))
            })
            .collect();
        // Which rows TDengine can hold, before their values are copied: column by column, a
        // row's reason the first column in order that refuses it.
        let rows = block.row_count();
        let mut problems = Problems::default();
        for (name, column, cast) in &columns {
            find_problems(
                column,
                *cast,
                schema.columns.get(name).copied(),
                rows,
                &mut problems,
            );
        }
        let accepted: Vec<usize> = match problems.reasons {
            None => (0..rows).collect(),
            Some(reasons) => {
                let mut accepted = Vec::with_capacity(rows);
                for (row, reason) in reasons.into_iter().enumerate() {
                    match reason {
                        None => accepted.push(row),
                        Some(reason) => reject(row, reason, &mut converted),
                    }
                }
                accepted
            }
        };
        if accepted.is_empty() {
            continue;
        }
        let typed = columns
            .iter()
            .filter_map(|(name, column, cast)| {
                let Cast::Into(target) = cast else {
                    return None;
                };
                Some(Column {
                    name: name.clone(),
                    cells: cells(column, *target, &accepted),
                })
            })
            .collect();
        converted.tables.push(TableRows {
            child_table,
            tags: table_tags,
            timestamps: accepted
                .iter()
                .map(|row| precision.convert(block.timestamps_ns[*row]))
                .collect(),
            columns: typed,
        });
    }
    converted
}

/// Whether a value can be stored in its column; the reason when not.
fn check(
    value: &Value<'_>,
    cast: Cast,
    spec: Option<ColumnSpec>,
    field: &str,
) -> Result<(), String> {
    if cast == Cast::Refuse {
        let held = match spec {
            Some(ColumnSpec::Typed(column_type, _)) => column_type.to_string(),
            _ => "a type influx2td does not write".to_owned(),
        };
        return Err(format!(
            "field {field:?} is {held} in TDengine; a {} value cannot be stored there without loss",
            value.column_type()
        ));
    }
    match value {
        Value::Double(number) if !number.is_finite() => Err(format!(
            "field {field:?}: {number} cannot be stored in TDengine"
        )),
        Value::String(text) if text.len() > MAX_VAR_BYTES as usize => Err(format!(
            "field {field:?}: a string of {} bytes is longer than TDengine's {MAX_VAR_BYTES}",
            text.len()
        )),
        Value::String(text) if text.contains('\0') => Err(format!(
            "field {field:?}: TDengine cannot store a NUL character"
        )),
        _ => Ok(()),
    }
}

/// Why rows cannot be stored, by row; allocated at the first row refused.
#[derive(Debug, Default)]
struct Problems {
    reasons: Option<Vec<Option<String>>>,
}

impl Problems {
    fn has(&self, row: usize) -> bool {
        self.reasons
            .as_ref()
            .is_some_and(|reasons| reasons[row].is_some())
    }

    fn set(&mut self, rows: usize, row: usize, reason: String) {
        let reasons = self.reasons.get_or_insert_with(|| vec![None; rows]);
        reasons[row].get_or_insert(reason);
    }
}

/// Records the rows of `column` TDengine cannot hold (see [`check`]). A column whose every value
/// fits, as most do, is told apart as a whole: finite floats, strings without NUL and not too
/// long, numbers and flags into their own type.
fn find_problems(
    column: &pb::Column,
    cast: Cast,
    spec: Option<ColumnSpec>,
    rows: usize,
    problems: &mut Problems,
) {
    if cast != Cast::Refuse {
        let fits = match column.values.as_ref() {
            None
            | Some(Values::Int64Values(_) | Values::Uint64Values(_) | Values::BoolValues(_)) => {
                true
            }
            Some(Values::DoubleValues(values)) => values.values.iter().all(|v| v.is_finite()),
            Some(Values::PackedStringValues(values)) => {
                values.longest() <= MAX_VAR_BYTES as usize && !values.data.contains(&0)
            }
            Some(Values::StringValues(_)) => false,
        };
        if fits {
            return;
        }
    }
    for row in 0..rows {
        if problems.has(row) {
            continue;
        }
        let Some(value) = column.value(row) else {
            continue;
        };
        if let Err(reason) = check(&value, cast, spec, &column.name) {
            problems.set(rows, row, reason);
        }
    }
}

fn nulls<T: Clone>(rows: usize) -> Vec<Option<T>> {
    vec![None; rows]
}

/// `at(row)` for each of `rows`, `None` where the column has no value.
fn gather<U>(
    column: &pb::Column,
    rows: &[usize],
    at: impl Fn(usize) -> Option<U>,
) -> Vec<Option<U>> {
    if column.validity.is_empty() {
        return rows.iter().map(|row| at(*row)).collect();
    }
    rows.iter()
        .map(|row| {
            if column.is_present(*row) {
                at(*row)
            } else {
                None
            }
        })
        .collect()
}

/// The values of `column` at `rows`, as a column of `target` holds them: one pass per column,
/// the value type matched once. A value of a type the column cannot take is NULL (the schema
/// step refuses such rows before they come here).
fn cells<'a>(column: &'a pb::Column, target: ColumnType, rows: &[usize]) -> Cells<'a> {
    let Some(values) = column.values.as_ref() else {
        return match target {
            ColumnType::Double => Cells::Double(nulls(rows.len())),
            ColumnType::Int64 => Cells::BigInt(nulls(rows.len())),
            ColumnType::Uint64 => Cells::UBigInt(nulls(rows.len())),
            ColumnType::Bool => Cells::Bool(nulls(rows.len())),
            ColumnType::String => Cells::VarChar(nulls(rows.len())),
        };
    };
    match target {
        ColumnType::Double => Cells::Double(match values {
            Values::DoubleValues(values) => {
                gather(column, rows, |row| values.values.get(row).copied())
            }
            Values::Int64Values(values) => gather(column, rows, |row| {
                values.values.get(row).map(|n| *n as f64)
            }),
            Values::Uint64Values(values) => gather(column, rows, |row| {
                values.values.get(row).map(|n| *n as f64)
            }),
            _ => nulls(rows.len()),
        }),
        ColumnType::Int64 => Cells::BigInt(match values {
            Values::Int64Values(values) => {
                gather(column, rows, |row| values.values.get(row).copied())
            }
            _ => nulls(rows.len()),
        }),
        ColumnType::Uint64 => Cells::UBigInt(match values {
            Values::Uint64Values(values) => {
                gather(column, rows, |row| values.values.get(row).copied())
            }
            _ => nulls(rows.len()),
        }),
        ColumnType::Bool => Cells::Bool(match values {
            Values::BoolValues(values) => {
                gather(column, rows, |row| values.values.get(row).copied())
            }
            _ => nulls(rows.len()),
        }),
        // A number or a flag into a string column: its text.
        ColumnType::String => Cells::VarChar(match values {
            Values::PackedStringValues(values) => match values.strings() {
                Some(strings) => gather(column, rows, |row| strings.get(row).map(Cow::Borrowed)),
                None => gather(column, rows, |row| values.get(row).map(Cow::Borrowed)),
            },
            Values::StringValues(values) => gather(column, rows, |row| {
                values
                    .values
                    .get(row)
                    .map(|text| Cow::Borrowed(text.as_str()))
            }),
            Values::DoubleValues(values) => gather(column, rows, |row| {
                values.values.get(row).map(|n| Cow::Owned(n.to_string()))
            }),
            Values::Int64Values(values) => gather(column, rows, |row| {
                values.values.get(row).map(|n| Cow::Owned(n.to_string()))
            }),
            Values::Uint64Values(values) => gather(column, rows, |row| {
                values.values.get(row).map(|n| Cow::Owned(n.to_string()))
            }),
            Values::BoolValues(values) => gather(column, rows, |row| {
                values
                    .values
                    .get(row)
                    .map(|flag| Cow::Owned(flag.to_string()))
            }),
        }),
    }
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
        pb::RowBatch::decode(encoder.finish().payload()).unwrap()
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
        assert_eq!(table.tags, [("host".to_owned(), Some("a'b".to_owned()))]);
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["f", "i", "u", "b", "s", "host_field"]);
        assert_eq!(
            table.timestamps,
            [1_700_000_000_123, -1],
            "before 1970 rounds down"
        );
        let cells: Vec<&Cells<'_>> = table.columns.iter().map(|c| &c.cells).collect();
        assert_eq!(
            cells,
            [
                &Cells::Double(vec![Some(1.5), None]),
                &Cells::BigInt(vec![Some(-3), None]),
                &Cells::UBigInt(vec![Some(u64::MAX), None]),
                &Cells::Bool(vec![Some(true), None]),
                &Cells::VarChar(vec![Some(Cow::Borrowed("x\ny")), None]),
                &Cells::Double(vec![Some(1e300), None]),
            ]
        );
    }

    #[test]
    fn values_go_into_the_type_of_their_column() {
        let batch = batch(
            &[],
            &[("i", Int64), ("u", Uint64), ("b", Bool)],
            &[(
                1,
                vec![
                    Some(Value::Int64(-7)),
                    Some(Value::Uint64(7)),
                    Some(Value::Bool(false)),
                ],
            )],
        );
        let mut schema = TableSchema::default();
        schema
            .columns
            .insert("i".into(), ColumnSpec::Typed(Double, 0));
        schema
            .columns
            .insert("u".into(), ColumnSpec::Typed(String, 16));
        schema
            .columns
            .insert("b".into(), ColumnSpec::Typed(String, 16));
        let converted = convert(&batch, &schema, Precision::Nanoseconds);
        let cells: Vec<&Cells<'_>> = converted.tables[0]
            .columns
            .iter()
            .map(|c| &c.cells)
            .collect();
        assert_eq!(
            cells,
            [
                &Cells::Double(vec![Some(-7.0)]),
                &Cells::VarChar(vec![Some(Cow::Borrowed("7"))]),
                &Cells::VarChar(vec![Some(Cow::Borrowed("false"))]),
            ]
        );
    }

    #[test]
    fn values_that_cannot_be_stored_are_rejected_with_a_reason() {
        let long = "x".repeat(MAX_VAR_BYTES as usize + 1);
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
                // Two reasons: the first column's is given.
                (
                    4,
                    vec![
                        Some(Value::Double(f64::INFINITY)),
                        Some(Value::String("\0")),
                    ],
                ),
                (5, vec![None, Some(Value::String(&long))]),
                (6, vec![None, Some(Value::String("fine"))]),
            ],
        );
        let (_, schema) = crate::schema::plan("db", "cpu", None, &needs(&batch, None));
        let converted = convert(&batch, &schema, Precision::Nanoseconds);
        assert_eq!(converted.tables[0].timestamps, [3, 6]);
        assert_eq!(
            converted.tables[0].columns[1].cells,
            Cells::VarChar(vec![None, Some(Cow::Borrowed("fine"))])
        );
        assert_eq!(converted.tables[0].tags, [("_tag_null".to_owned(), None)]);
        let reasons: Vec<_> = converted
            .rejected
            .iter()
            .map(|r| (r.timestamp_ns, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, "field \"v\": NaN cannot be stored in TDengine"),
                (2, "field \"s\": TDengine cannot store a NUL character"),
                (4, "field \"v\": inf cannot be stored in TDengine"),
                (
                    5,
                    "field \"s\": a string of 65518 bytes is longer than TDengine's 65517"
                ),
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
