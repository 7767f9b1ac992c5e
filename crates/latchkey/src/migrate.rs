//! `latchkey migrate --database URL` (owner: PostgreSQL work, issue 6).

use clap::Args;
use std::process::ExitCode;

/// Options of `latchkey migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Database URL (sqlite:///path/file.db or postgres://...).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database: String,
}

/// Applies the migrations of the database's store.
pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    latchkey_server::store::open(&args.database).await?;
    println!("database is at the latest schema");
    Ok(ExitCode::SUCCESS)
}
