//! `latchkey oauth-client ...`: manage OAuth clients (owner: OAuth work, issue 4).

use clap::Subcommand;
use std::process::ExitCode;

/// `latchkey oauth-client ...`.
#[derive(Subcommand, Debug)]
pub enum OAuthClientCommand {}

/// Runs an oauth-client command.
pub async fn run(cmd: OAuthClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
