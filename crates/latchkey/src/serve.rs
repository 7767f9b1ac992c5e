//! `latchkey serve`.

use anyhow::Context;
use clap::Args;
use latchkey_server::config::{Config, ConfigLayer};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `latchkey serve`; each is also an environment variable, and a TOML file may set
/// them too (flags and env win over the file).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Development mode: sandbox wallets, http:// and loopback client wallet addresses.
    #[arg(long, env = "LATCHKEY_DEV", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    dev: Option<bool>,
    /// Public listener address (default 127.0.0.1:8080).
    #[arg(long, env = "LATCHKEY_LISTEN")]
    listen: Option<String>,
    /// Private listener address: introspection, admin, health (default 127.0.0.1:8081).
    #[arg(long, env = "LATCHKEY_PRIVATE_LISTEN")]
    private_listen: Option<String>,
    /// Database URL, e.g. sqlite:///var/lib/latchkey/latchkey.db (default: ./latchkey-data/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database: Option<String>,
    /// The URL clients reach the public listener at (default: http:// + the bound address).
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Folder for sandbox data (default ./latchkey-data).
    #[arg(long, env = "LATCHKEY_DATA_DIR")]
    data_dir: Option<String>,
    /// Admin API token (the admin API is off without one). May begin with `-`, as one random
    /// base64url token in 64 does.
    #[arg(
        long,
        env = "LATCHKEY_ADMIN_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    admin_token: Option<String>,
    /// OAuth access token lifetime in seconds (default 3600).
    #[arg(long, env = "LATCHKEY_OAUTH_TOKEN_LIFETIME", value_name = "SECS")]
    oauth_token_lifetime: Option<u64>,
    /// Secret the identity provider sends as `x-idp-secret` (the IdP API is off without one).
    /// May begin with `-`.
    #[arg(
        long,
        env = "LATCHKEY_IDP_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    idp_secret: Option<String>,
    /// An identity provider's consent page; the interaction start redirects there instead of to
    /// the built-in page, with `interactId`, `nonce`, `clientName`, `clientUri`.
    #[arg(long, env = "LATCHKEY_CONSENT_URL")]
    consent_url: Option<String>,
    /// Access token lifetime in seconds (default 600).
    #[arg(long, env = "LATCHKEY_ACCESS_TOKEN_LIFETIME")]
    access_token_lifetime: Option<u64>,
    /// Continuation `wait` in seconds (default 5).
    #[arg(long, env = "LATCHKEY_CONTINUE_WAIT")]
    continue_wait: Option<u64>,
    /// Optional TOML configuration file.
    #[arg(long, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
}

impl ServeArgs {
    fn layer(&self) -> ConfigLayer {
        ConfigLayer {
            dev: self.dev,
            listen: self.listen.clone(),
            private_listen: self.private_listen.clone(),
            database: self.database.clone(),
            public_url: self.public_url.clone(),
            data_dir: self.data_dir.clone(),
            admin_token: self.admin_token.clone(),
            oauth_token_lifetime_secs: self.oauth_token_lifetime,
            idp_secret: self.idp_secret.clone(),
            consent_url: self.consent_url.clone(),
            access_token_lifetime_secs: self.access_token_lifetime,
            continue_wait_secs: self.continue_wait,
            ..ConfigLayer::default()
        }
    }
}

/// Resolves the configuration layers.
pub fn resolve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(path) => ConfigLayer::from_file(path)?,
        None => ConfigLayer::default(),
    };
    Ok(Config::resolve(args.layer().over(file))?)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args)?;
    if config.dev {
        tracing::warn!("development mode: sandbox wallets on, http:// and loopback client wallet addresses allowed");
    }
    let server = latchkey_server::start(config)
        .await
        .context("cannot start the server")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PUBLIC_URL={}", server.public_url)?;
        writeln!(out, "PRIVATE_URL={}", server.private_url)?;
        writeln!(out, "PUBLIC_LISTEN={}", server.public_addr)?;
        writeln!(out, "PRIVATE_LISTEN={}", server.private_addr)?;
        writeln!(out, "GRANT_ENDPOINT={}/", server.public_url)?;
        if let Some(sandbox) = &server.sandbox {
            for line in sandbox.client_lines() {
                writeln!(out, "{line}")?;
            }
        }
        writeln!(out, "READY=1")?;
        out.flush()?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// A random base64url secret begins with `-` one time in 64; it is still the flag's value,
    /// not an unknown flag (the interop suite's random IdP secret once was).
    #[test]
    fn secrets_may_begin_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "latchkey",
            "--idp-secret",
            "-y1P5Aighw4DwrptjFGvVntma9fF0_zR",
            "--admin-token",
            "-abc",
            "--continue-wait",
            "1",
        ])
        .expect("parses");
        assert_eq!(
            cli.serve.idp_secret.as_deref(),
            Some("-y1P5Aighw4DwrptjFGvVntma9fF0_zR")
        );
        assert_eq!(cli.serve.admin_token.as_deref(), Some("-abc"));
    }
}
