//! A SQLite result row read by column name, whichever driver returned it: sqlx (the rare
//! reads and writes) or rusqlite (the hot reads, through [`NamedColumns`]). Each record is
//! mapped from a row in one place for both.

use std::cell::RefCell;
use std::rc::Rc;

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

/// A rusqlite row read by column name, with its statement's column names fetched from SQLite
/// once per thread and statement.
///
/// rusqlite's own `Row::get(name)` asks SQLite for the name of each column in turn until one
/// matches (`sqlite3_column_name`, which takes the connection's mutex, then a `strlen`): for
/// the 17 columns of a token and its grant, about 150 such calls per row, 5 % of the server's
/// CPU per introspection (issue 7). Here the names come from a small per-thread cache and the
/// lookups compare Rust strings; positional reads go to the row itself (`Deref`).
pub(super) struct NamedColumns<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: ColumnNames,
}

/// A statement's text, by address and length: the key of [`COLUMN_NAMES`]. Only `'static`
/// texts are keys. Such a text is never freed, so its address is never reused, and two
/// `'static` strings with the same address and length hold the same bytes.
type SqlKey = (usize, usize);

/// A statement's column names, in order.
type ColumnNames = Rc<[Box<str>]>;

thread_local! {
    /// Column names per statement text, for the few hot statements a thread runs.
    static COLUMN_NAMES: RefCell<Vec<(SqlKey, ColumnNames)>> = const { RefCell::new(Vec::new()) };
}

impl<'r, 's> NamedColumns<'r, 's> {
    /// The columns of `row`, a row of the statement `sql`.
    pub(super) fn of(row: &'r rusqlite::Row<'s>, sql: &'static str) -> Self {
        let key = (sql.as_ptr() as usize, sql.len());
        let count = row.as_ref().column_count();
        let names = COLUMN_NAMES.with(|cache| {
            // The count guards a statement whose columns could change under the same text (a
            // `SELECT *` after a migration); the hot statements name every column with `AS`.
            let cached = cache
                .borrow()
                .iter()
                .find(|(k, names)| *k == key && names.len() == count)
                .map(|(_, names)| names.clone());
            if let Some(names) = cached {
                return names;
            }
            let names: ColumnNames = row
                .as_ref()
                .column_names()
                .into_iter()
                .map(Box::from)
                .collect();
            let mut cache = cache.borrow_mut();
            cache.retain(|(k, _)| *k != key);
            cache.push((key, names.clone()));
            names
        });
        NamedColumns { row, names }
    }
}

impl<'s> std::ops::Deref for NamedColumns<'_, 's> {
    type Target = rusqlite::Row<'s>;

    fn deref(&self) -> &Self::Target {
        self.row
    }
}

impl ColumnRead for NamedColumns<'_, '_> {
    fn column<T: SqliteValue>(&self, name: &str) -> Result<T, StoreError> {
        let index = self
            .names
            .iter()
            .position(|column| &**column == name)
            .ok_or_else(|| StoreError::Corrupt(format!("column {name}: not in the row")))?;
        self.row
            .get(index)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the first row of `sql` with `check`.
    fn first_row(
        conn: &rusqlite::Connection,
        sql: &'static str,
        check: impl FnOnce(&NamedColumns),
    ) {
        let mut statement = conn.prepare(sql).expect("prepare");
        let mut rows = statement.query([]).expect("query");
        let row = rows.next().expect("step").expect("a row");
        check(&NamedColumns::of(row, sql));
    }

    #[test]
    fn columns_are_found_by_their_exact_name_whatever_their_position() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let sql = "SELECT 'x' AS a_text, 7 AS b_number, NULL AS c_none";
        for _ in 0..2 {
            first_row(&conn, sql, |columns| {
                assert_eq!(columns.column::<i64>("b_number").expect("b"), 7);
                assert_eq!(columns.column::<String>("a_text").expect("a"), "x");
                assert_eq!(columns.column::<Option<i64>>("c_none").expect("c"), None);
                assert_eq!(columns.get::<_, i64>(1).expect("by position"), 7);
                let missing = columns
                    .column::<i64>("B_NUMBER")
                    .expect_err("names are exact");
                assert!(matches!(missing, StoreError::Corrupt(_)), "{missing:?}");
                let mistyped = columns
                    .column::<i64>("a_text")
                    .expect_err("text is not a number");
                assert!(matches!(mistyped, StoreError::Corrupt(_)), "{mistyped:?}");
            });
        }
    }

    #[test]
    fn each_statement_keeps_its_own_names_on_one_thread() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let (one, other) = ("SELECT 1 AS x, 2 AS y", "SELECT 3 AS y, 4 AS x");
        for _ in 0..2 {
            first_row(&conn, one, |c| {
                assert_eq!(
                    (
                        c.column::<i64>("x").expect("x"),
                        c.column::<i64>("y").expect("y")
                    ),
                    (1, 2)
                );
            });
            first_row(&conn, other, |c| {
                assert_eq!(
                    (
                        c.column::<i64>("x").expect("x"),
                        c.column::<i64>("y").expect("y")
                    ),
                    (4, 3)
                );
            });
        }
    }
}
