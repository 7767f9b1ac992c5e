//! What every client command shares: the client's identity (flags or the seeds' environment
//! variables), output (`KEY = value` lines like the seeds print, or `--json`), and exit codes.

use clap::Args;
use latchkey_client::{AuthenticatedClient, ClientConfig, ClientError};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status: the server refused the request, or answered something unreadable.
pub const EXIT_REFUSED: u8 = 1;
/// Exit status: bad usage or configuration (missing variable, bad URL, unreadable key).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status: the server could not be reached or did not answer in time.
pub const EXIT_NETWORK: u8 = 3;

/// Exit statuses, shown in `--help`.
pub const EXIT_HELP: &str = "Exit status: 0 success; 1 the server refused (its error code and \
description are printed); 2 usage or configuration error (missing variable, bad URL, unreadable \
key); 3 server unreachable or timed out.";

/// The client's identity: its wallet address, private key and key id.
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// The client's wallet address URL.
    #[arg(long, env = "WALLET_ADDRESS_URL", value_name = "URL")]
    pub wallet_address_url: Option<String>,
    /// The client's Ed25519 private key: a PKCS#8 PEM file path or the PEM text itself.
    #[arg(
        long,
        env = "PRIVATE_KEY",
        value_name = "PATH|PEM",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub private_key: Option<String>,
    /// The id of that key in the wallet address' jwks.json.
    #[arg(long, env = "KEY_ID", value_name = "KID", allow_hyphen_values = true)]
    pub key_id: Option<String>,
}

impl AuthArgs {
    /// The authenticated client; errors name the variable (and flag) at fault.
    pub fn client(&self, timeout: Duration) -> Result<AuthenticatedClient, CliError> {
        let config = ClientConfig::from_lookup(|name| match name {
            "WALLET_ADDRESS_URL" => self.wallet_address_url.clone(),
            "PRIVATE_KEY" => self.private_key.clone(),
            "KEY_ID" => self.key_id.clone(),
            _ => None,
        })
        .map_err(|e| match e {
            ClientError::MissingEnv { name, hint } => CliError::Config(format!(
                "{name} is not set: set the environment variable {name} or pass {}{}",
                flag_of(&name),
                hint.map(|h| format!(" ({h})")).unwrap_or_default()
            )),
            ClientError::InvalidEnv { name, reason } => {
                CliError::Config(format!("invalid {name} ({}): {reason}", flag_of(&name)))
            }
            other => CliError::from(other),
        })?;
        Ok(AuthenticatedClient::new(config.with_timeout(timeout))?)
    }
}

fn flag_of(variable: &str) -> &'static str {
    match variable {
        "WALLET_ADDRESS_URL" => "--wallet-address-url",
        "PRIVATE_KEY" => "--private-key",
        "KEY_ID" => "--key-id",
        "CLIENT_ID" => "--client-id",
        "CLIENT_SECRET" => "--client-secret",
        "BASE_URL" => "--base-url",
        _ => "the matching flag",
    }
}

/// Output and transport options.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print the full response as JSON on stdout (errors too, as {"error": {...}}).
    #[arg(long)]
    pub json: bool,
    /// Time limit of the HTTP request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

impl OutputArgs {
    /// The time limit as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

/// Why a client command failed; each kind has its own exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage or configuration.
    #[error("{0}")]
    Config(String),
    /// Anything the SDK reports.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl CliError {
    fn exit_status(&self) -> u8 {
        match self {
            CliError::Config(_) => EXIT_CONFIG,
            CliError::Client(e) if e.is_network() => EXIT_NETWORK,
            CliError::Client(e) if e.is_config() => EXIT_CONFIG,
            CliError::Client(_) => EXIT_REFUSED,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            CliError::Client(ClientError::Server {
                status,
                code,
                description,
                url,
            }) => serde_json::json!({"error": {
                "status": status, "code": code, "description": description, "url": url
            }}),
            CliError::Client(e) => serde_json::json!({"error": {
                "status": e.status(), "code": null, "description": e.to_string()
            }}),
            CliError::Config(message) => serde_json::json!({"error": {
                "status": null, "code": null, "description": message
            }}),
        }
    }
}

/// A value from a flag or its environment variable, or a configuration error that names both.
pub fn require(
    value: &Option<String>,
    variable: &str,
    flag: &str,
    what: &str,
) -> Result<String, CliError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(CliError::Config(format!(
            "{variable} is not set: set the environment variable {variable} or pass {flag} ({what})"
        ))),
    }
}

/// What a successful command prints: `KEY = value` lines, a message, and the JSON form.
pub struct Report {
    lines: Vec<(String, String)>,
    message: Option<String>,
    json: serde_json::Value,
}

impl Report {
    /// A report whose JSON form is `value`.
    pub fn json<T: Serialize>(value: &T) -> Result<Report, CliError> {
        Ok(Report {
            lines: Vec::new(),
            message: None,
            json: serde_json::to_value(value)
                .map_err(|e| CliError::Config(format!("cannot render the response: {e}")))?,
        })
    }

    /// Adds a `KEY = value` line.
    pub fn line(mut self, key: &str, value: impl ToString) -> Report {
        self.lines.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a line when `value` is present.
    pub fn line_opt(self, key: &str, value: Option<impl ToString>) -> Report {
        match value {
            Some(v) => self.line(key, v),
            None => self,
        }
    }

    /// Sets the closing message (`Access token revoked successfully`).
    pub fn message(mut self, text: &str) -> Report {
        self.message = Some(text.to_string());
        self
    }

    fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "{}".into())
            );
            return;
        }
        for (key, value) in &self.lines {
            println!("{key} = {value}");
        }
        if let Some(message) = &self.message {
            println!("{message}");
        }
    }
}

/// Prints the outcome and turns it into the exit status.
pub fn finish(result: Result<Report, CliError>, output: &OutputArgs) -> ExitCode {
    match result {
        Ok(report) => {
            report.print(output.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            if output.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&e.to_json()).unwrap_or_else(|_| "{}".into())
                );
            }
            eprintln!("error: {e}");
            if let CliError::Client(ClientError::Server {
                code, description, ..
            }) = &e
            {
                if let Some(code) = code {
                    eprintln!("code: {code}");
                }
                if let Some(description) = description {
                    eprintln!("description: {description}");
                }
            }
            ExitCode::from(e.exit_status())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_by_kind() {
        assert_eq!(CliError::Config("x".into()).exit_status(), EXIT_CONFIG);
        let refused = CliError::Client(ClientError::Server {
            status: 400,
            code: Some("invalid_rotation".into()),
            description: Some("dead".into()),
            url: "u".into(),
        });
        assert_eq!(refused.exit_status(), EXIT_REFUSED);
        assert_eq!(refused.to_json()["error"]["code"], "invalid_rotation");
        let unreachable = CliError::Client(ClientError::Unreachable {
            url: "u".into(),
            reason: "refused".into(),
        });
        assert_eq!(unreachable.exit_status(), EXIT_NETWORK);
        let bad_url = CliError::Client(ClientError::InvalidUrl {
            url: "x".into(),
            reason: "no".into(),
        });
        assert_eq!(bad_url.exit_status(), EXIT_CONFIG);
    }

    #[test]
    fn require_names_variable_and_flag() {
        let e = require(&None, "ACCESS_TOKEN", "--token", "the access token").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "ACCESS_TOKEN is not set: set the environment variable ACCESS_TOKEN or pass --token \
             (the access token)"
        );
        assert_eq!(
            require(&Some(" v ".into()), "A", "--a", "a").expect("set"),
            "v"
        );
    }
}
