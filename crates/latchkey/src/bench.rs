//! `latchkey bench` (owner: performance work, issue 7).

use clap::Args;
use std::process::ExitCode;

/// Options of `latchkey bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {}

/// Runs a benchmark scenario.
pub async fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("latchkey bench is not implemented yet")
}
