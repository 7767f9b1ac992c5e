//! Client commands: `latchkey grant|token|oauth ...` (owner: SDK/CLI work, issue 3).

use clap::Subcommand;
use std::process::ExitCode;

/// `latchkey grant ...`.
#[derive(Subcommand, Debug)]
pub enum GrantCommand {}

/// `latchkey token ...`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {}

/// `latchkey oauth ...`.
#[derive(Subcommand, Debug)]
pub enum OAuthCommand {}

/// Runs a grant command.
pub async fn run_grant(cmd: GrantCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}

/// Runs a token command.
pub async fn run_token(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}

/// Runs an OAuth command.
pub async fn run_oauth(cmd: OAuthCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
