//! `latchkey`: the server (`serve`), client commands, admin commands.

mod bench;
mod client_cmd;
mod migrate;
mod oauth_client;
mod serve;

/// Every allocation of the server and of `bench` goes to jemalloc (see `Cargo.toml`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Latchkey: an authorization server for the whole life of an access token.
#[derive(Parser)]
#[command(name = "latchkey", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authorization server (with no options: the sandbox on 127.0.0.1:8080).
    Serve(serve::ServeArgs),
    /// Open Payments grants: request, continue, cancel.
    #[command(subcommand)]
    Grant(client_cmd::GrantCommand),
    /// Open Payments access tokens: rotate, revoke.
    #[command(subcommand)]
    Token(client_cmd::TokenCommand),
    /// OAuth 2.0 client calls (Kopo Kopo style): token, revoke, introspect.
    #[command(subcommand)]
    Oauth(client_cmd::OAuthCommand),
    /// Manage OAuth clients in the database (create, list, disable, rotate-secret, delete).
    #[command(name = "oauth-client", subcommand)]
    OauthClient(oauth_client::OAuthClientCommand),
    /// Apply database migrations and exit.
    Migrate(migrate::MigrateArgs),
    /// Load generator for Open Payments and OAuth servers.
    Bench(bench::BenchArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Grant(cmd) => client_cmd::run_grant(cmd).await,
            Command::Token(cmd) => client_cmd::run_token(cmd).await,
            Command::Oauth(cmd) => client_cmd::run_oauth(cmd).await,
            Command::OauthClient(cmd) => oauth_client::run(cmd).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
