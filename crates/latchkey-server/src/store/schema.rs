//! Schema migrations, shared by both stores.
//!
//! Each store embeds its own migration folder (`migrations/sqlite`, `migrations/postgres`) and
//! runs it through [`run_migrations`], which differs from sqlx's `Migrator::run` in three ways:
//!
//! - a database that holds a migration this binary does not know (written by a newer Latchkey)
//!   is refused with an error that says so, instead of sqlx's terse `VersionMissing`;
//! - it reports what it applied, so `latchkey migrate` can print it;
//! - the migration lock (a session advisory lock on PostgreSQL, nothing on SQLite) is released
//!   on failure too, not only on success.

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use std::collections::HashMap;
use std::fmt;

use super::StoreError;

/// One migration a run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Version (the file name's number).
    pub version: i64,
    /// Description (the file name's words).
    pub description: String,
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Migrations applied by this run, oldest first.
    pub applied: Vec<AppliedMigration>,
    /// Migrations that were already in place.
    pub already_applied: usize,
    /// The newest version the database is now at.
    pub latest: Option<i64>,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(f, "{}: schema already up to date", self.backend)?;
        } else {
            write!(
                f,
                "{}: applied {} migration(s):",
                self.backend,
                self.applied.len()
            )?;
            for m in &self.applied {
                write!(f, " {} ({})", m.version, m.description)?;
            }
        }
        if let Some(latest) = self.latest {
            write!(
                f,
                "; {} migration(s) were already applied; schema version is now {latest}",
                self.already_applied
            )?;
        }
        Ok(())
    }
}

fn migrate_error(backend: &str, e: MigrateError) -> StoreError {
    StoreError::Open(format!("{backend} migration failed: {e}"))
}

/// Applies every migration of `migrator` that `conn` lacks, after checking that the database
/// holds no migration unknown to this binary.
pub(crate) async fn run_migrations<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    backend: &'static str,
) -> Result<MigrationReport, StoreError> {
    conn.lock().await.map_err(|e| migrate_error(backend, e))?;
    let outcome = apply_missing(migrator, conn, backend).await;
    // PostgreSQL's migration lock is held by the session: release it on every path, or a
    // pooled connection would keep it and block every later migration.
    let unlocked = conn.unlock().await;
    let report = outcome?;
    unlocked.map_err(|e| migrate_error(backend, e))?;
    Ok(report)
}

async fn apply_missing<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    backend: &'static str,
) -> Result<MigrationReport, StoreError> {
    let fail = |e| migrate_error(backend, e);
    conn.ensure_migrations_table().await.map_err(fail)?;
    if let Some(version) = conn.dirty_version().await.map_err(fail)? {
        return Err(StoreError::Open(format!(
            "the {backend} schema is damaged: migration {version} failed part-way (its row in \
             _sqlx_migrations has success = false); repair the database by hand"
        )));
    }
    let applied: HashMap<i64, Vec<u8>> = conn
        .list_applied_migrations()
        .await
        .map_err(fail)?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect();
    let known_latest = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .max();
    let mut unknown: Vec<i64> = applied
        .keys()
        .copied()
        .filter(|v| !migrator.version_exists(*v))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let list: Vec<String> = unknown.iter().map(i64::to_string).collect();
        return Err(StoreError::Open(format!(
            "the {backend} database schema is newer than this Latchkey knows: migration(s) {} \
             were applied by a newer release, and this binary knows migrations up to {}; \
             refusing to use it (run a Latchkey at least as new as the one that migrated it)",
            list.join(", "),
            known_latest.map_or_else(|| "none".to_string(), |v| v.to_string()),
        )));
    }
    let mut report = MigrationReport {
        backend,
        applied: Vec::new(),
        already_applied: 0,
        latest: None,
    };
    for migration in migrator.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match applied.get(&migration.version) {
            Some(checksum) if checksum.as_slice() != &*migration.checksum => {
                return Err(StoreError::Open(format!(
                    "the {backend} migration {} ({}) was changed after it was applied to this \
                     database; refusing to use it",
                    migration.version, migration.description
                )));
            }
            Some(_) => report.already_applied += 1,
            None => {
                conn.apply(migration).await.map_err(fail)?;
                report.applied.push(AppliedMigration {
                    version: migration.version,
                    description: migration.description.to_string(),
                });
            }
        }
        report.latest = Some(
            report
                .latest
                .map_or(migration.version, |v| v.max(migration.version)),
        );
    }
    Ok(report)
}
