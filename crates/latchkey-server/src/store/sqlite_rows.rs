//! A SQLite result row read by column name, whichever driver returned it: sqlx (the rare
//! reads and writes) or rusqlite (the writer thread and the hot reads). Each record is mapped
//! from a row in one place for both.

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

impl ColumnRead for rusqlite::Row<'_> {
    fn column<T: SqliteValue>(&self, name: &str) -> Result<T, StoreError> {
        self.get(name)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}
