//! The SQL the writer sends: DDL for databases and super tables, and multi-table INSERTs
//! (`INSERT INTO t1 USING st (tags) TAGS (...) (cols) VALUES (...)(...) t2 USING ...`) cut at
//! `batch_size` rows and at TDengine's 1 MiB statement limit. String literals are escaped for
//! TDengine's parser exactly (see [`escape_string`]).

use std::fmt::Write as _;

use crate::mapping::{TIMESTAMP_COLUMN, quote};
use crate::rows::TableRows;

/// TDengine refuses statements of 1 MiB or more; stay clear of it.
pub const MAX_SQL_BYTES: usize = 1_000_000;

/// `CREATE DATABASE` for a migration target: nanosecond precision, and a retention long enough
/// for old history (TDengine's default KEEP would refuse it).
pub fn create_database(database: &str) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {} PRECISION 'ns' KEEP 36500",
        quote(database)
    )
}

/// A single-quoted TDengine string literal, or `None` for text TDengine cannot hold (a NUL
/// character ends a string in its C client). Mirrors the parser's `trimString`: backslash,
/// quote, newline, carriage return and tab are escaped; everything else is literal.
pub fn escape_string(text: &str) -> Option<String> {
    let mut literal = String::with_capacity(text.len() + 2);
    push_escaped(&mut literal, text).then_some(literal)
}

/// Appends `text` as a quoted SQL string literal (as [`escape_string`]); `false`, leaving `out`
/// as it was, when it holds a NUL character.
pub fn push_escaped(out: &mut String, text: &str) -> bool {
    if text.contains('\0') {
        return false;
    }
    out.reserve(text.len() + 2);
    out.push('\'');
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('\'');
    true
}

/// Builds INSERT statements of at most `batch_size` rows and [`MAX_SQL_BYTES`] bytes.
#[derive(Debug)]
pub struct InsertBuilder<'a> {
    database: &'a str,
    super_table: &'a str,
    batch_size: usize,
    max_bytes: usize,
    statements: Vec<Insert>,
    current: String,
    current_rows: usize,
    current_segments: Vec<Segment>,
    tables_added: usize,
}

/// One INSERT and how many rows it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub sql: String,
    pub rows: usize,
    /// Which rows: (index of the table as added, range of its rows).
    pub segments: Vec<Segment>,
}

pub use crate::rows::Segment;

impl<'a> InsertBuilder<'a> {
    pub fn new(database: &'a str, super_table: &'a str, batch_size: usize) -> Self {
        Self::with_max_bytes(database, super_table, batch_size, MAX_SQL_BYTES)
    }

    pub fn with_max_bytes(
        database: &'a str,
        super_table: &'a str,
        batch_size: usize,
        max_bytes: usize,
    ) -> Self {
        Self {
            database,
            super_table,
            batch_size: batch_size.max(1),
            max_bytes,
            statements: Vec::new(),
            current: String::new(),
            current_rows: 0,
            current_segments: Vec::new(),
            tables_added: 0,
        }
    }

    /// `` `db`.`t` USING `db`.`st` (`tags`) TAGS (values) (`_ts`, cols) VALUES ``
    fn table_clause(&self, super_table: &str, table: &TableRows<'_>) -> String {
        let mut clause = format!(
            " {}.{} USING {}.{}",
            quote(self.database),
            quote(&table.child_table),
            quote(self.database),
            quote(super_table)
        );
        let names: Vec<String> = table.tags.iter().map(|(name, _)| quote(name)).collect();
        let values: Vec<String> = table
            .tags
            .iter()
            .map(|(_, value)| {
                value
                    .as_deref()
                    .and_then(escape_string)
                    .unwrap_or_else(|| "NULL".to_owned())
            })
            .collect();
        let _ = write!(clause, " ({}) TAGS ({})", names.join(","), values.join(","));
        let mut columns = vec![quote(TIMESTAMP_COLUMN)];
        columns.extend(table.columns.iter().map(|column| quote(&column.name)));
        let _ = write!(clause, " ({}) VALUES ", columns.join(","));
        clause
    }

    /// Adds a table's rows, starting new statements as the limits require.
    pub fn add(&mut self, table: &TableRows<'_>) {
        self.add_rows(table, 0..table.row_count());
    }

    /// Adds some rows of a table (a table is numbered by the order of its first addition).
    pub fn add_rows(&mut self, table: &TableRows<'_>, rows: std::ops::Range<usize>) {
        self.add_rows_into(self.super_table, table, rows);
    }

    /// [`InsertBuilder::add_rows`] of a child table of another super table: one statement
    /// may write into several.
    pub fn add_rows_into(
        &mut self,
        super_table: &str,
        table: &TableRows<'_>,
        rows: std::ops::Range<usize>,
    ) {
        let index = self.tables_added;
        self.tables_added += 1;
        let clause = self.table_clause(super_table, table);
        let mut clause_open = false;
        // One row at a time, rendered once: `(ts,v1,v2)`.
        let mut rendered = String::with_capacity(64);
        for row in rows {
            rendered.clear();
            let _ = write!(rendered, "({}", table.timestamps[row]);
            for column in &table.columns {
                rendered.push(',');
                column.cells.render(row, &mut rendered);
            }
            rendered.push(')');
            let needed = rendered.len() + if clause_open { 0 } else { clause.len() };
            let full = self.current_rows >= self.batch_size
                || (self.current_rows > 0 && self.current.len() + needed > self.max_bytes);
            if full {
                self.finish_statement();
                clause_open = false;
            }
            if self.current.is_empty() {
                self.current.push_str("INSERT INTO");
            }
            if !clause_open {
                self.current.push_str(&clause);
                clause_open = true;
                self.current_segments.push((index, row..row));
            }
            self.current.push_str(&rendered);
            self.current_rows += 1;
            if let Some((_, range)) = self.current_segments.last_mut() {
                range.end = row + 1;
            }
        }
    }

    fn finish_statement(&mut self) {
        if self.current_rows == 0 {
            return;
        }
        self.statements.push(Insert {
            sql: std::mem::take(&mut self.current),
            rows: self.current_rows,
            segments: std::mem::take(&mut self.current_segments),
        });
        self.current_rows = 0;
    }

    pub fn finish(mut self) -> Vec<Insert> {
        self.finish_statement();
        self.statements
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// TDengine's `trimString` (parser/src/parUtil.c), rewritten to check the escaper against.
    fn tdengine_unescape(literal: &str) -> String {
        let bytes = literal.as_bytes();
        let delimiter = bytes[0];
        let mut out = Vec::new();
        let mut k = 1;
        while k < bytes.len() - 1 {
            if bytes[k] == delimiter && bytes[k + 1] == delimiter {
                out.push(delimiter);
                k += 2;
                continue;
            }
            if bytes[k] == b'\\' {
                match bytes[k + 1] {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'\\' => out.push(b'\\'),
                    b'\'' => out.push(b'\''),
                    b'"' => out.push(b'"'),
                    b'%' | b'_' | b'x' => out.extend_from_slice(&bytes[k..k + 2]),
                    other => out.push(other),
                }
                k += 2;
                continue;
            }
            out.push(bytes[k]);
            k += 1;
        }
        String::from_utf8(out).unwrap()
    }

    /// Where TDengine's tokenizer ends a string literal that starts at byte 0.
    fn literal_end(literal: &str) -> usize {
        let bytes = literal.as_bytes();
        let mut k = 1;
        while k < bytes.len() {
            match bytes[k] {
                b'\\' => k += 2,
                b'\'' if bytes.get(k + 1) == Some(&b'\'') => k += 2,
                b'\'' => return k + 1,
                _ => k += 1,
            }
        }
        bytes.len() + 1
    }

    #[test]
    fn golden_escapes() {
        for (text, literal) in [
            ("plain", "'plain'"),
            ("it's", "'it\\'s'"),
            ("back\\slash", "'back\\\\slash'"),
            ("line\nbreak\r\ttab", "'line\\nbreak\\r\\ttab'"),
            ("100%_done \\%", "'100%_done \\\\%'"),
            ("quote \" ok", "'quote \" ok'"),
            ("温度 🔥", "'温度 🔥'"),
        ] {
            assert_eq!(escape_string(text).as_deref(), Some(literal), "{text:?}");
        }
        assert_eq!(escape_string("nul\0inside"), None);
    }

    proptest! {
        #[test]
        fn any_string_round_trips_through_tdengines_parser(text in "[^\\x00]{0,64}") {
            let literal = escape_string(&text).unwrap();
            prop_assert_eq!(literal_end(&literal), literal.len(), "literal ends early: {}", literal);
            prop_assert_eq!(tdengine_unescape(&literal), text);
        }

        #[test]
        fn tricky_strings_round_trip(text in proptest::collection::vec(prop_oneof![Just("\\"), Just("'"), Just("\""), Just("%"), Just("_"), Just("x"), Just("\n"), Just("\\x"), Just("''")], 0..20).prop_map(|parts| parts.concat())) {
            let literal = escape_string(&text).unwrap();
            prop_assert_eq!(literal_end(&literal), literal.len());
            prop_assert_eq!(tdengine_unescape(&literal), text);
        }
    }

    fn table(child: &str, rows: usize) -> TableRows<'static> {
        TableRows {
            child_table: child.into(),
            tags: vec![("host".into(), Some("a".into()))],
            timestamps: (0..rows as i64).collect(),
            columns: vec![crate::rows::Column {
                name: "value".into(),
                cells: crate::rows::Cells::Double(
                    (0..rows).map(|i| Some(i as f64 + 0.5)).collect(),
                ),
            }],
        }
    }

    #[test]
    fn golden_multi_table_insert() {
        use crate::rows::{Cells, Column};
        let mut builder = InsertBuilder::new("metrics", "cpu", 5000);
        builder.add(&table("t_1", 2));
        builder.add(&TableRows {
            child_table: "t_2".into(),
            tags: vec![("host".into(), Some("b".into())), ("state".into(), None)],
            timestamps: vec![-5],
            columns: vec![
                Column {
                    name: "value".into(),
                    cells: Cells::Double(vec![None]),
                },
                Column {
                    name: "current".into(),
                    cells: Cells::VarChar(vec![Some("x".into())]),
                },
            ],
        });
        let statements = builder.finish();
        assert_eq!(
            statements,
            vec![Insert {
                sql: "INSERT INTO `metrics`.`t_1` USING `metrics`.`cpu` (`host`) TAGS ('a') (`_ts`,`value`) VALUES (0,0.5)(1,1.5) \
                      `metrics`.`t_2` USING `metrics`.`cpu` (`host`,`state`) TAGS ('b',NULL) (`_ts`,`value`,`current`) VALUES (-5,NULL,'x')"
                    .into(),
                rows: 3,
                segments: vec![(0, 0..2), (1, 0..1)],
            }]
        );
    }

    #[test]
    fn statements_are_cut_at_batch_size_and_byte_limit() {
        let mut builder = InsertBuilder::new("db", "st", 3);
        builder.add(&table("t_1", 4));
        builder.add(&table("t_2", 3));
        let statements = builder.finish();
        assert_eq!(
            statements.iter().map(|s| s.rows).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!(statements[1].segments, [(0, 3..4), (1, 0..2)]);
        assert!(statements[1].sql.contains("`t_1`") && statements[1].sql.contains("`t_2`"));

        let mut builder = InsertBuilder::with_max_bytes("db", "st", 5000, 200);
        builder.add(&table("t_1", 20));
        let statements = builder.finish();
        assert!(statements.len() > 1);
        assert!(
            statements.iter().all(|s| s.sql.len() <= 200),
            "{statements:#?}"
        );
        assert_eq!(statements.iter().map(|s| s.rows).sum::<usize>(), 20);
        assert!(
            statements
                .iter()
                .all(|s| s.sql.starts_with("INSERT INTO `db`.`t_1` USING"))
        );
    }

    #[test]
    fn create_database_has_ns_precision_and_long_keep() {
        assert_eq!(
            create_database("metrics"),
            "CREATE DATABASE IF NOT EXISTS `metrics` PRECISION 'ns' KEEP 36500"
        );
    }
}
