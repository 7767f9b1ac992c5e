//! A SQLite result row read by column name, whichever driver returned it: sqlx (the rare
//! reads and writes) or rusqlite (the hot reads, through [`NamedColumns`]). Each record is mapped from a row in one place for both.

use rusqlite::types::FromSql;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, Sqlite};

use super::StoreError;

/// A column value both drivers can decode (text, integers, blobs, and their `Option`s).
pub(super) trait SqliteValue:
    for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + FromSql
{
}

impl<T> SqliteValue for T where T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + FromSql {}

/// A row whose columns are read by name.
pub(super) trait ColumnRead {
    /// The value of column `name`; a missing column or a value of another type means the
    /// database is not what this binary wrote.
    fn column<T: SqliteValue>(&self, name: &str) -> Result<T, StoreError>;
}

impl ColumnRead for SqliteRow {
    fn column<T: SqliteValue>(&self, name: &str) -> Result<T, StoreError> {
        self.try_get(name)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

/// A rusqlite row read by column name, with the statement's column names fetched once.
///
/// rusqlite's own `Row::get(name)` asks SQLite for the name of each column in turn until one
/// matches (`sqlite3_column_name`, which takes the connection's mutex, then a `strlen`): for
/// the 17 columns of a token and its grant, about 150 such calls per row, 5 % of the server's
/// CPU per introspection (issue 7). Here each name is asked for once per row, and the lookups
/// compare Rust strings.
pub(super) struct NamedColumns<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: Vec<&'r str>,
}

impl<'r, 's> NamedColumns<'r, 's> {
    /// The columns of `row`.
    pub(super) fn of(row: &'r rusqlite::Row<'s>) -> Self {
        NamedColumns {
            row,
            names: row.as_ref().column_names(),
        }
    }
}

impl ColumnRead for NamedColumns<'_, '_> {
    fn column<T: SqliteValue>(&self, name: &str) -> Result<T, StoreError> {
        let index = self
            .names
            .iter()
            .position(|column| *column == name)
            .ok_or_else(|| StoreError::Corrupt(format!("column {name}: not in the row")))?;
        self.row
            .get(index)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_their_exact_name_whatever_their_position() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let mut statement = conn
            .prepare("SELECT 'x' AS a_text, 7 AS b_number, NULL AS c_none")
            .expect("prepare");
        let mut rows = statement.query([]).expect("query");
        let row = rows.next().expect("step").expect("a row");
        let columns = NamedColumns::of(row);
        assert_eq!(columns.column::<i64>("b_number").expect("b"), 7);
        assert_eq!(columns.column::<String>("a_text").expect("a"), "x");
        assert_eq!(columns.column::<Option<i64>>("c_none").expect("c"), None);
        let missing = columns
            .column::<i64>("B_NUMBER")
            .expect_err("names are exact");
        assert!(matches!(missing, StoreError::Corrupt(_)), "{missing:?}");
        let mistyped = columns
            .column::<i64>("a_text")
            .expect_err("text is not a number");
        assert!(matches!(mistyped, StoreError::Corrupt(_)), "{mistyped:?}");
    }
}
