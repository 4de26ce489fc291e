//! Rows ready for TDengine: per child table its tags, timestamps and one typed column per field,
//! each value already in the type of the column that holds it. The TDengine sink binds them as
//! they are; the file sink and the fallback that isolates refused rows render them as SQL.

use std::borrow::Cow;
use std::fmt::Write as _;

use influx2td_proto::ColumnType;

/// One column's values, `None` where a row has none (NULL).
#[derive(Debug, Clone, PartialEq)]
pub enum Cells<'a> {
    Double(Vec<Option<f64>>),
    BigInt(Vec<Option<i64>>),
    UBigInt(Vec<Option<u64>>),
    Bool(Vec<Option<bool>>),
    /// Already checked to fit TDengine (no NUL character, not too long).
    VarChar(Vec<Option<Cow<'a, str>>>),
}

impl Cells<'_> {
    /// No values yet, room for `rows`, for a column of `column_type`.
    pub fn with_capacity(column_type: ColumnType, rows: usize) -> Self {
        match column_type {
            ColumnType::Double => Self::Double(Vec::with_capacity(rows)),
            ColumnType::Int64 => Self::BigInt(Vec::with_capacity(rows)),
            ColumnType::Uint64 => Self::UBigInt(Vec::with_capacity(rows)),
            ColumnType::Bool => Self::Bool(Vec::with_capacity(rows)),
            ColumnType::String => Self::VarChar(Vec::with_capacity(rows)),
        }
    }

    pub fn column_type(&self) -> ColumnType {
        match self {
            Self::Double(_) => ColumnType::Double,
            Self::BigInt(_) => ColumnType::Int64,
            Self::UBigInt(_) => ColumnType::Uint64,
            Self::Bool(_) => ColumnType::Bool,
            Self::VarChar(_) => ColumnType::String,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Double(values) => values.len(),
            Self::BigInt(values) => values.len(),
            Self::UBigInt(values) => values.len(),
            Self::Bool(values) => values.len(),
            Self::VarChar(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends row `row`'s value as a SQL literal (`NULL`, a number, a quoted string).
    pub fn render(&self, row: usize, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = match self {
            Self::Double(values) => match values[row] {
                // Debug prints the shortest text that reads back as the same f64 (`1.5`, `1e300`).
                Some(number) => write!(out, "{number:?}"),
                None => write!(out, "NULL"),
            },
            Self::BigInt(values) => match values[row] {
                Some(number) => write!(out, "{number}"),
                None => write!(out, "NULL"),
            },
            Self::UBigInt(values) => match values[row] {
                Some(number) => write!(out, "{number}"),
                None => write!(out, "NULL"),
            },
            Self::Bool(values) => match values[row] {
                Some(flag) => write!(out, "{flag}"),
                None => write!(out, "NULL"),
            },
            Self::VarChar(values) => {
                match &values[row] {
                    Some(text) => {
                        crate::sql::push_escaped(out, text);
                    }
                    None => out.push_str("NULL"),
                }
                Ok(())
            }
        };
    }
}

/// A field column of a child table's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Column<'a> {
    /// The TDengine column.
    pub name: String,
    pub cells: Cells<'a>,
}

/// The rows of one child table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRows<'a> {
    pub child_table: String,
    /// (tag column, value; `None`: NULL), in the order to name them.
    pub tags: Vec<(String, Option<String>)>,
    /// In the database's precision.
    pub timestamps: Vec<i64>,
    /// Field columns, after the timestamp, each as long as `timestamps`.
    pub columns: Vec<Column<'a>>,
}

impl TableRows<'_> {
    pub fn row_count(&self) -> usize {
        self.timestamps.len()
    }
}

/// Rows `rows` of the table at index `table` of a list.
pub type Segment = (usize, std::ops::Range<usize>);

/// Cuts `tables` into groups of at most `batch_size` rows (a table's rows may straddle two).
pub fn cut(tables: &[TableRows<'_>], batch_size: usize) -> Vec<Vec<Segment>> {
    let batch_size = batch_size.max(1);
    let mut groups = Vec::new();
    let mut current: Vec<Segment> = Vec::new();
    let mut room = batch_size;
    for (index, table) in tables.iter().enumerate() {
        let mut start = 0;
        while start < table.row_count() {
            let end = table.row_count().min(start + room);
            current.push((index, start..end));
            room -= end - start;
            start = end;
            if room == 0 {
                groups.push(std::mem::take(&mut current));
                room = batch_size;
            }
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// How many rows `segments` hold.
pub fn rows_in(segments: &[Segment]) -> usize {
    segments.iter().map(|(_, range)| range.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize) -> TableRows<'static> {
        TableRows {
            child_table: "t".into(),
            tags: vec![],
            timestamps: (0..rows as i64).collect(),
            columns: vec![],
        }
    }

    #[test]
    fn groups_hold_at_most_batch_size_rows_across_tables() {
        let tables = [table(4), table(3), table(0), table(2)];
        assert_eq!(
            cut(&tables, 3),
            vec![
                vec![(0, 0..3)],
                vec![(0, 3..4), (1, 0..2)],
                vec![(1, 2..3), (3, 0..2)]
            ]
        );
        assert_eq!(
            cut(&tables, 100),
            vec![vec![(0, 0..4), (1, 0..3), (3, 0..2)]]
        );
        assert!(cut(&[table(0)], 5).is_empty());
    }

    #[test]
    fn cells_render_as_sql_literals() {
        let mut out = String::new();
        for (cells, row) in [
            (Cells::Double(vec![Some(1.5), None, Some(1e300)]), 2),
            (Cells::BigInt(vec![Some(i64::MIN)]), 0),
            (Cells::UBigInt(vec![Some(u64::MAX)]), 0),
            (Cells::Bool(vec![None]), 0),
            (Cells::VarChar(vec![Some(Cow::Borrowed("it's\n"))]), 0),
        ] {
            cells.render(row, &mut out);
            out.push(',');
        }
        assert_eq!(
            out,
            "1e300,-9223372036854775808,18446744073709551615,NULL,'it\\'s\\n',"
        );
    }
}
