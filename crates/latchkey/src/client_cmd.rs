//! Client commands: `latchkey grant|token|oauth ...`, the SDK (`latchkey-client`) on the command
//! line. URLs and tokens come from flags or from the variables the Open Payments and Kopo Kopo
//! snippets use (`TOKEN_MANAGE_URL`, `ACCESS_TOKEN`, `CONTINUE_URI`, `CONTINUE_ACCESS_TOKEN`,
//! `WALLET_ADDRESS_URL`, `PRIVATE_KEY`, `KEY_ID`, `CLIENT_ID`, `CLIENT_SECRET`, `BASE_URL`).
//! Output is `KEY = value` lines as the snippets print them, or the full response with `--json`.

mod common;
mod grant;
mod oauth;
mod token;

use clap::Subcommand;
use std::process::ExitCode;

use common::{finish, EXIT_HELP};

/// `latchkey grant ...`.
#[derive(Subcommand, Debug)]
pub enum GrantCommand {
    /// Request a grant (RFC 9635 §2): prints ACCESS_TOKEN, MANAGE_URL, CONTINUE_ACCESS_TOKEN,
    /// CONTINUE_URI (and INTERACT_REDIRECT when the resource owner must approve).
    #[command(after_help = EXIT_HELP)]
    Request(grant::RequestArgs),
    /// Continue a grant after interaction (--interact-ref) or poll it (RFC 9635 §5).
    #[command(after_help = EXIT_HELP)]
    Continue(grant::ContinueArgs),
    /// Cancel (revoke) a grant: every token of it stops working (RFC 9635 §5.4).
    #[command(after_help = EXIT_HELP)]
    Cancel(grant::CancelArgs),
}

/// `latchkey token ...`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Rotate an access token: prints the new ACCESS_TOKEN and MANAGE_URL (RFC 9635 §6.1).
    #[command(after_help = EXIT_HELP)]
    Rotate(token::ManageArgs),
    /// Revoke an access token (RFC 9635 §6.2).
    #[command(after_help = EXIT_HELP)]
    Revoke(token::ManageArgs),
}

/// `latchkey oauth ...`.
#[derive(Subcommand, Debug)]
pub enum OAuthCommand {
    /// Request a client_credentials access token (RFC 6749 §4.4).
    #[command(after_help = EXIT_HELP)]
    Token(oauth::TokenArgs),
    /// Revoke an access token (RFC 7009).
    #[command(after_help = EXIT_HELP)]
    Revoke(oauth::TokenActionArgs),
    /// Introspect an access token (RFC 7662).
    #[command(after_help = EXIT_HELP)]
    Introspect(oauth::TokenActionArgs),
    /// Show a token's scopes, lifetime and application (GET /oauth/token/info).
    #[command(after_help = EXIT_HELP)]
    Info(oauth::InfoArgs),
}

/// Runs a grant command.
pub async fn run_grant(cmd: GrantCommand) -> anyhow::Result<ExitCode> {
    Ok(match &cmd {
        GrantCommand::Request(args) => finish(grant::request(args).await, &args.output),
        GrantCommand::Continue(args) => finish(grant::continue_grant(args).await, &args.output),
        GrantCommand::Cancel(args) => finish(grant::cancel(args).await, &args.output),
    })
}

/// Runs a token command.
pub async fn run_token(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    Ok(match &cmd {
        TokenCommand::Rotate(args) => finish(token::rotate(args).await, &args.output),
        TokenCommand::Revoke(args) => finish(token::revoke(args).await, &args.output),
    })
}

/// Runs an OAuth command.
pub async fn run_oauth(cmd: OAuthCommand) -> anyhow::Result<ExitCode> {
    Ok(match &cmd {
        OAuthCommand::Token(args) => finish(oauth::token(args).await, &args.output),
        OAuthCommand::Revoke(args) => finish(oauth::revoke(args).await, &args.output),
        OAuthCommand::Introspect(args) => finish(oauth::introspect(args).await, &args.output),
        OAuthCommand::Info(args) => finish(oauth::info(args).await, &args.output),
    })
}
