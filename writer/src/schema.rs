//! What a super table holds in TDengine, what a batch needs of it, and the DDL between the two:
//! `CREATE STABLE` for a new measurement, `ADD COLUMN` / `ADD TAG` for new fields and tags,
//! `MODIFY COLUMN` / `MODIFY TAG` when longer strings arrive. Column types never change in
//! TDengine, so a value of another type is converted where that loses nothing, and refused
//! (dead-lettered) where it would.

use std::collections::BTreeMap;

use influx2td_proto::ColumnType;

use crate::mapping::{NULL_TAG, TIMESTAMP_COLUMN, quote, sql_type, var_width};

/// A field column as TDengine has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSpec {
    Typed(ColumnType, u32),
    /// A type influx2td never creates (the table existed before): values are refused.
    Other,
}

/// The columns and tags of one super table in TDengine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSchema {
    /// Field columns (not `_ts`) and their types; VARCHAR with its width in bytes.
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Tags and their NCHAR width in characters.
    pub tags: BTreeMap<String, u32>,
}

/// What one batch needs of its super table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Column -> (type of the values, longest string value in bytes).
    pub columns: BTreeMap<String, (ColumnType, usize)>,
    /// Tag -> longest value in characters.
    pub tags: BTreeMap<String, usize>,
}

impl Needs {
    pub fn column(&mut self, name: &str, column_type: ColumnType, bytes: usize) {
        let entry = self
            .columns
            .entry(name.to_owned())
            .or_insert((column_type, 0));
        if entry.0 != column_type {
            entry.0 = crate::schema::wider(entry.0, column_type);
        }
        entry.1 = entry.1.max(bytes);
    }

    pub fn tag(&mut self, name: &str, chars: usize) {
        let entry = self.tags.entry(name.to_owned()).or_insert(0);
        *entry = (*entry).max(chars);
    }
}

/// The type that holds both (the same widening as the reader's).
pub fn wider(a: ColumnType, b: ColumnType) -> ColumnType {
    let numeric = |t: ColumnType| {
        matches!(
            t,
            ColumnType::Double | ColumnType::Int64 | ColumnType::Uint64
        )
    };
    match (a, b) {
        _ if a == b => a,
        _ if numeric(a) && numeric(b) => ColumnType::Double,
        _ => ColumnType::String,
    }
}

/// How values of one type go into an existing column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    /// Written as they are (or as the column's wider type: integer into DOUBLE).
    Into(ColumnType),
    /// Cannot be written without loss: such rows are dead-lettered with this reason.
    Refuse,
}

/// How a value of `value_type` is written into a column of `spec`.
pub fn cast(spec: ColumnSpec, value_type: ColumnType) -> Cast {
    match spec {
        ColumnSpec::Typed(column_type, _) if column_type == value_type => Cast::Into(column_type),
        ColumnSpec::Typed(ColumnType::Double, _)
            if matches!(value_type, ColumnType::Int64 | ColumnType::Uint64) =>
        {
            Cast::Into(ColumnType::Double)
        }
        ColumnSpec::Typed(ColumnType::String, _) => Cast::Into(ColumnType::String),
        _ => Cast::Refuse,
    }
}

/// The DDL to make `existing` (None: the super table does not exist) hold `needs`, and the
/// schema after it. Strings longer than TDengine allows are left for the rows to be refused.
pub fn plan(
    database: &str,
    super_table: &str,
    existing: Option<&TableSchema>,
    needs: &Needs,
) -> (Vec<String>, TableSchema) {
    let target = format!("{}.{}", quote(database), quote(super_table));
    let Some(existing) = existing else {
        let mut schema = TableSchema::default();
        for (name, (column_type, bytes)) in &needs.columns {
            let width = var_width(*bytes).unwrap_or(crate::mapping::MAX_VAR_BYTES);
            schema.columns.insert(
                name.clone(),
                ColumnSpec::Typed(*column_type, width_for(*column_type, width)),
            );
        }
        for (name, chars) in &needs.tags {
            schema.tags.insert(
                name.clone(),
                var_width(*chars).unwrap_or(crate::mapping::MAX_VAR_BYTES),
            );
        }
        let mut columns = vec![format!("{} TIMESTAMP", quote(TIMESTAMP_COLUMN))];
        columns.extend(
            schema
                .columns
                .iter()
                .map(|(name, spec)| column_definition(name, *spec)),
        );
        // Like TDengine's schemaless ingestion: a measurement without tags gets `_tag_null`.
        let tags: Vec<String> = if schema.tags.is_empty() {
            schema.tags.insert(NULL_TAG.to_owned(), 1);
            vec![format!("{} NCHAR(1)", quote(NULL_TAG))]
        } else {
            schema
                .tags
                .iter()
                .map(|(name, width)| format!("{} NCHAR({width})", quote(name)))
                .collect()
        };
        let ddl = format!(
            "CREATE STABLE IF NOT EXISTS {target} ({}) TAGS ({})",
            columns.join(","),
            tags.join(",")
        );
        return (vec![ddl], schema);
    };

    let mut schema = existing.clone();
    let mut ddl = Vec::new();
    for (name, (column_type, bytes)) in &needs.columns {
        match schema.columns.get(name).copied() {
            None => {
                let width = width_for(
                    *column_type,
                    var_width(*bytes).unwrap_or(crate::mapping::MAX_VAR_BYTES),
                );
                let spec = ColumnSpec::Typed(*column_type, width);
                ddl.push(format!(
                    "ALTER STABLE {target} ADD COLUMN {}",
                    column_definition(name, spec)
                ));
                schema.columns.insert(name.clone(), spec);
            }
            Some(ColumnSpec::Typed(ColumnType::String, width)) if *bytes > width as usize => {
                if let Some(wider) = var_width(*bytes) {
                    ddl.push(format!(
                        "ALTER STABLE {target} MODIFY COLUMN {} VARCHAR({wider})",
                        quote(name)
                    ));
                    schema
                        .columns
                        .insert(name.clone(), ColumnSpec::Typed(ColumnType::String, wider));
                }
            }
            Some(_) => {}
        }
    }
    for (name, chars) in &needs.tags {
        match schema.tags.get(name).copied() {
            None => {
                let width = var_width(*chars).unwrap_or(crate::mapping::MAX_VAR_BYTES);
                ddl.push(format!(
                    "ALTER STABLE {target} ADD TAG {} NCHAR({width})",
                    quote(name)
                ));
                schema.tags.insert(name.clone(), width);
            }
            Some(width) if *chars > width as usize => {
                if let Some(wider) = var_width(*chars) {
                    ddl.push(format!(
                        "ALTER STABLE {target} MODIFY TAG {} NCHAR({wider})",
                        quote(name)
                    ));
                    schema.tags.insert(name.clone(), wider);
                }
            }
            Some(_) => {}
        }
    }
    (ddl, schema)
}

fn width_for(column_type: ColumnType, width: u32) -> u32 {
    if column_type == ColumnType::String {
        width
    } else {
        0
    }
}

fn column_definition(name: &str, spec: ColumnSpec) -> String {
    match spec {
        ColumnSpec::Typed(column_type, width) => {
            format!("{} {}", quote(name), sql_type(column_type, width))
        }
        ColumnSpec::Other => quote(name),
    }
}

/// A schema from TDengine's `DESCRIBE` rows: (field, type, length, note), note `TAG` for tags.
pub fn from_describe(rows: &[(String, String, u32, String)]) -> TableSchema {
    let mut schema = TableSchema::default();
    for (field, type_name, length, note) in rows {
        if note.eq_ignore_ascii_case("TAG") {
            schema.tags.insert(field.clone(), *length);
            continue;
        }
        if field == TIMESTAMP_COLUMN {
            continue;
        }
        let spec = match type_name.to_ascii_uppercase().as_str() {
            "DOUBLE" => ColumnSpec::Typed(ColumnType::Double, 0),
            "BIGINT" => ColumnSpec::Typed(ColumnType::Int64, 0),
            "BIGINT UNSIGNED" => ColumnSpec::Typed(ColumnType::Uint64, 0),
            "BOOL" => ColumnSpec::Typed(ColumnType::Bool, 0),
            "VARCHAR" | "BINARY" => ColumnSpec::Typed(ColumnType::String, *length),
            _ => ColumnSpec::Other,
        };
        schema.columns.insert(field.clone(), spec);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(columns: &[(&str, ColumnType, usize)], tags: &[(&str, usize)]) -> Needs {
        let mut needs = Needs::default();
        for (name, column_type, bytes) in columns {
            needs.column(name, *column_type, *bytes);
        }
        for (name, chars) in tags {
            needs.tag(name, *chars);
        }
        needs
    }

    #[test]
    fn golden_create_stable() {
        let (ddl, schema) = plan(
            "metrics",
            "cpu",
            None,
            &needs(
                &[
                    ("value", ColumnType::Double, 0),
                    ("state", ColumnType::String, 20),
                    ("n", ColumnType::Uint64, 0),
                ],
                &[("host", 9), ("current", 3)],
            ),
        );
        assert_eq!(
            ddl,
            [
                "CREATE STABLE IF NOT EXISTS `metrics`.`cpu` (`_ts` TIMESTAMP,`n` BIGINT UNSIGNED,`state` VARCHAR(32),`value` DOUBLE) TAGS (`current` NCHAR(16),`host` NCHAR(16))"
            ]
        );
        assert_eq!(
            schema.columns["state"],
            ColumnSpec::Typed(ColumnType::String, 32)
        );
    }

    #[test]
    fn golden_tagless_measurement_gets_tag_null() {
        let (ddl, schema) = plan(
            "db",
            "mem",
            None,
            &needs(
                &[("used", ColumnType::Int64, 0), ("ok", ColumnType::Bool, 0)],
                &[],
            ),
        );
        assert_eq!(
            ddl,
            [
                "CREATE STABLE IF NOT EXISTS `db`.`mem` (`_ts` TIMESTAMP,`ok` BOOL,`used` BIGINT) TAGS (`_tag_null` NCHAR(1))"
            ]
        );
        assert_eq!(schema.tags.keys().collect::<Vec<_>>(), ["_tag_null"]);
    }

    #[test]
    fn golden_evolution_adds_and_widens_once() {
        let (_, existing) = plan(
            "db",
            "cpu",
            None,
            &needs(&[("state", ColumnType::String, 10)], &[("host", 5)]),
        );
        let wanted = needs(
            &[
                ("state", ColumnType::String, 100),
                ("load", ColumnType::Double, 0),
            ],
            &[("host", 40), ("rack", 2)],
        );
        let (ddl, evolved) = plan("db", "cpu", Some(&existing), &wanted);
        assert_eq!(
            ddl,
            [
                "ALTER STABLE `db`.`cpu` ADD COLUMN `load` DOUBLE",
                "ALTER STABLE `db`.`cpu` MODIFY COLUMN `state` VARCHAR(128)",
                "ALTER STABLE `db`.`cpu` MODIFY TAG `host` NCHAR(64)",
                "ALTER STABLE `db`.`cpu` ADD TAG `rack` NCHAR(16)",
            ]
        );
        let (again, _) = plan("db", "cpu", Some(&evolved), &wanted);
        assert!(again.is_empty(), "DDL only on change: {again:?}");
    }

    #[test]
    fn casts_follow_the_widening_rules() {
        let double = ColumnSpec::Typed(ColumnType::Double, 0);
        let bigint = ColumnSpec::Typed(ColumnType::Int64, 0);
        let varchar = ColumnSpec::Typed(ColumnType::String, 16);
        assert_eq!(
            cast(double, ColumnType::Int64),
            Cast::Into(ColumnType::Double)
        );
        assert_eq!(
            cast(varchar, ColumnType::Bool),
            Cast::Into(ColumnType::String)
        );
        assert_eq!(cast(bigint, ColumnType::Double), Cast::Refuse);
        assert_eq!(cast(ColumnSpec::Other, ColumnType::Double), Cast::Refuse);
        assert_eq!(
            wider(ColumnType::Int64, ColumnType::Double),
            ColumnType::Double
        );
        assert_eq!(
            wider(ColumnType::Bool, ColumnType::Double),
            ColumnType::String
        );
    }

    #[test]
    fn describe_rows_become_a_schema() {
        let rows = vec![
            ("_ts".to_owned(), "TIMESTAMP".to_owned(), 8, String::new()),
            ("value".to_owned(), "DOUBLE".to_owned(), 8, String::new()),
            ("state".to_owned(), "VARCHAR".to_owned(), 32, String::new()),
            ("n".to_owned(), "INT".to_owned(), 4, String::new()),
            ("host".to_owned(), "NCHAR".to_owned(), 16, "TAG".to_owned()),
        ];
        let schema = from_describe(&rows);
        assert_eq!(
            schema.columns["value"],
            ColumnSpec::Typed(ColumnType::Double, 0)
        );
        assert_eq!(
            schema.columns["state"],
            ColumnSpec::Typed(ColumnType::String, 32)
        );
        assert_eq!(schema.columns["n"], ColumnSpec::Other);
        assert_eq!(schema.tags["host"], 16);
        assert!(!schema.columns.contains_key("_ts"));
    }
}
