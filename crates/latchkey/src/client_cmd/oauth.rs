//! `latchkey oauth token|revoke|introspect|info` (Kopo Kopo style OAuth 2.0).

use clap::Args;
use latchkey_client::{ClientAuthMethod, OAuthClient};

use super::common::{require, CliError, OutputArgs, Report};

/// The OAuth application's credentials and server.
#[derive(Args, Debug, Clone)]
pub struct OAuthCredentials {
    /// The authorization server's base URL (`/oauth/token` etc. are appended).
    #[arg(long, env = "BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// The application key (client id).
    #[arg(long, env = "CLIENT_ID", value_name = "ID", allow_hyphen_values = true)]
    pub client_id: Option<String>,
    /// The application secret.
    #[arg(
        long,
        env = "CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub client_secret: Option<String>,
    /// Send the credentials by HTTP Basic instead of as form fields.
    #[arg(long)]
    pub basic: bool,
}

impl OAuthCredentials {
    fn client(&self, output: &OutputArgs) -> Result<OAuthClient, CliError> {
        let base_url = require(
            &self.base_url,
            "BASE_URL",
            "--base-url",
            "the authorization server",
        )?;
        let client_id = require(
            &self.client_id,
            "CLIENT_ID",
            "--client-id",
            "the application key",
        )?;
        let client_secret = require(
            &self.client_secret,
            "CLIENT_SECRET",
            "--client-secret",
            "the application secret",
        )?;
        let method = if self.basic {
            ClientAuthMethod::Basic
        } else {
            ClientAuthMethod::Body
        };
        Ok(OAuthClient::new(&base_url, client_id, client_secret)?
            .with_auth_method(method)
            .with_timeout(output.timeout())?)
    }
}

/// `latchkey oauth token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Space-separated scopes to ask for.
    #[arg(long)]
    pub scope: Option<String>,
    #[command(flatten)]
    pub credentials: OAuthCredentials,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey oauth revoke` and `latchkey oauth introspect`.
#[derive(Args, Debug)]
pub struct TokenActionArgs {
    /// The access token.
    #[arg(
        long,
        env = "ACCESS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
    #[command(flatten)]
    pub credentials: OAuthCredentials,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey oauth info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The access token.
    #[arg(
        long,
        env = "ACCESS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
    /// The authorization server's base URL.
    #[arg(long, env = "BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn token_of(value: &Option<String>) -> Result<String, CliError> {
    require(value, "ACCESS_TOKEN", "--token", "the access token")
}

/// Runs `latchkey oauth token`.
pub async fn token(args: &TokenArgs) -> Result<Report, CliError> {
    let client = args.credentials.client(&args.output)?;
    let response = client
        .request_access_token_with_scope(args.scope.as_deref())
        .await?;
    Ok(Report::json(&response)?
        .line("ACCESS_TOKEN", &response.access_token)
        .line("TOKEN_TYPE", &response.token_type)
        .line("EXPIRES_IN", response.expires_in)
        .line("SCOPE", &response.scope))
}

/// Runs `latchkey oauth revoke`.
pub async fn revoke(args: &TokenActionArgs) -> Result<Report, CliError> {
    let token = token_of(&args.token)?;
    let client = args.credentials.client(&args.output)?;
    client.revoke_access_token(&token).await?;
    Ok(Report::json(&serde_json::json!({"revoked": true}))?
        .message("Access token revoked successfully"))
}

/// Runs `latchkey oauth introspect`.
pub async fn introspect(args: &TokenActionArgs) -> Result<Report, CliError> {
    let token = token_of(&args.token)?;
    let client = args.credentials.client(&args.output)?;
    let response = client.introspect(&token).await?;
    Ok(Report::json(&response)?
        .line("ACTIVE", response.active)
        .line_opt("CLIENT_ID", response.client_id.as_ref())
        .line_opt("SCOPE", response.scope.as_ref())
        .line_opt("EXPIRES_AT", response.exp)
        .line_opt("ISSUED_AT", response.iat))
}

/// Runs `latchkey oauth info` (no client credentials: the bearer token is enough).
pub async fn info(args: &InfoArgs) -> Result<Report, CliError> {
    let token = token_of(&args.token)?;
    let base_url = require(
        &args.base_url,
        "BASE_URL",
        "--base-url",
        "the authorization server",
    )?;
    // Token info needs no client credentials; the client id and secret are placeholders.
    let client = OAuthClient::new(&base_url, "-", "-")?.with_timeout(args.output.timeout())?;
    let response = client.token_info(&token).await?;
    Ok(Report::json(&response)?
        .line("APPLICATION", &response.application.uid)
        .line("SCOPE", response.scope.join(" "))
        .line("EXPIRES_IN", response.expires_in)
        .line("CREATED_AT", response.created_at))
}
