//! `latchkey migrate --database URL`: brings a database to the schema this binary knows.
//!
//! Works for SQLite (`sqlite:///path/file.db`) and PostgreSQL (`postgres://...`). Nodes also
//! migrate when they start, but running this first (say, as a deploy step) keeps schema changes
//! out of the serving path and shows what changed. A database migrated by a newer Latchkey is
//! refused with an error, never touched.

use clap::Args;
use std::process::ExitCode;

/// Options of `latchkey migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Database URL (sqlite:///path/file.db or postgres://user@host:5432/database).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database: String,
}

/// Applies the migrations of the database's store and prints what it did.
pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let shown = redact_password(&args.database);
    let report = latchkey_server::store::migrate(&args.database)
        .await
        .map_err(|e| anyhow::anyhow!("migrating {shown}: {e}"))?;
    println!("{shown}");
    if report.applied.is_empty() {
        println!("  schema already up to date ({} backend)", report.backend);
    } else {
        for m in &report.applied {
            println!("  applied {} {}", m.version, m.description);
        }
    }
    println!(
        "  {} migration(s) applied now, {} already in place; schema version {}",
        report.applied.len(),
        report.already_applied,
        report
            .latest
            .map_or_else(|| "none".to_string(), |v| v.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

/// The URL with any password replaced by `***`, fit to print.
fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_are_hidden_and_everything_else_kept() {
        assert_eq!(
            redact_password("postgres://lk:s3cret@db.internal:5432/latchkey?sslmode=require"),
            "postgres://lk:***@db.internal:5432/latchkey?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact_password("sqlite:///var/lib/latchkey/a@b.db"),
            "sqlite:///var/lib/latchkey/a@b.db"
        );
        assert_eq!(redact_password("sqlite::memory:"), "sqlite::memory:");
    }
}
