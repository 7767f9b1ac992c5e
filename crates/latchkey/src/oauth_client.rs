//! `latchkey oauth-client ...`: manage OAuth clients directly in the database (the server may
//! be running: it caches nothing about clients or tokens, so changes apply at once).
//!
//! Every command prints JSON on stdout. Secrets appear only in the output of `create` and
//! `rotate-secret`, once; the database keeps their SHA-256.

use anyhow::Context;
use clap::{Args, Subcommand};
use latchkey_server::oauth::{ClientAdmin, OAuthFailure};
use serde::Serialize;
use std::process::ExitCode;

/// Where the clients live.
#[derive(Args, Debug)]
pub struct DatabaseArg {
    /// Database URL, the same as `latchkey serve` uses (e.g. sqlite:///var/lib/latchkey/latchkey.db).
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        default_value = "sqlite://latchkey-data/latchkey.db"
    )]
    database: String,
}

/// `latchkey oauth-client ...`.
#[derive(Subcommand, Debug)]
pub enum OAuthClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} (the secret is shown only now).
    Create {
        /// Human-readable name of the application.
        #[arg(long)]
        name: String,
        /// A scope the client may request (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// List clients (never their secrets).
    List {
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Show one client.
    Show {
        /// The client id.
        client_id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Disable a client and revoke all its tokens (one transaction).
    Disable {
        /// The client id.
        client_id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Enable a disabled client again (its revoked tokens stay revoked).
    Enable {
        /// The client id.
        client_id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Replace a client's secret; prints the new one (shown only now). The old one stops working.
    RotateSecret {
        /// The client id.
        client_id: String,
        /// Also revoke every token of the client (for a leaked secret).
        #[arg(long)]
        revoke_tokens: bool,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Delete a client and all its tokens.
    Delete {
        /// The client id.
        client_id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

async fn admin(db: &DatabaseArg) -> anyhow::Result<ClientAdmin> {
    let stores = latchkey_server::store::open_stores(&db.database)
        .await
        .with_context(|| format!("cannot open the database {}", shown(&db.database)))?;
    Ok(ClientAdmin::new(stores.oauth))
}

/// The URL without a password, for messages.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority.len()..])
        }
        _ => url.to_string(),
    }
}

fn print<T: Serialize>(value: &T) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

fn failed(e: OAuthFailure) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Runs an oauth-client command.
pub async fn run(cmd: OAuthClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OAuthClientCommand::Create { name, scopes, db } => {
            let credentials = admin(&db)
                .await?
                .create(&name, &scopes)
                .await
                .map_err(failed)?;
            eprintln!("the client secret is shown only once: store it now");
            print(&credentials)
        }
        OAuthClientCommand::List { db } => print(&admin(&db).await?.list().await.map_err(failed)?),
        OAuthClientCommand::Show { client_id, db } => {
            print(&admin(&db).await?.get(&client_id).await.map_err(failed)?)
        }
        OAuthClientCommand::Disable { client_id, db } => print(
            &admin(&db)
                .await?
                .disable(&client_id)
                .await
                .map_err(failed)?,
        ),
        OAuthClientCommand::Enable { client_id, db } => {
            print(&admin(&db).await?.enable(&client_id).await.map_err(failed)?)
        }
        OAuthClientCommand::RotateSecret {
            client_id,
            revoke_tokens,
            db,
        } => {
            let credentials = admin(&db)
                .await?
                .rotate_secret(&client_id, revoke_tokens)
                .await
                .map_err(failed)?;
            eprintln!("the new client secret is shown only once: store it now");
            print(&credentials)
        }
        OAuthClientCommand::Delete { client_id, db } => {
            admin(&db).await?.delete(&client_id).await.map_err(failed)?;
            print(&serde_json::json!({"client_id": client_id, "deleted": true}))
        }
    }
}
