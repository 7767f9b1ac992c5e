//! `latchkey token rotate|revoke`.

use clap::Args;

use super::common::{require, AuthArgs, CliError, OutputArgs, Report};

/// `latchkey token rotate` and `latchkey token revoke`.
#[derive(Args, Debug)]
pub struct ManageArgs {
    /// The token's management URL.
    #[arg(long, env = "TOKEN_MANAGE_URL", value_name = "URL")]
    pub url: Option<String>,
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
    pub auth: AuthArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ManageArgs {
    fn url_and_token(&self) -> Result<(String, String), CliError> {
        Ok((
            require(
                &self.url,
                "TOKEN_MANAGE_URL",
                "--url",
                "the token's management URL",
            )?,
            require(&self.token, "ACCESS_TOKEN", "--token", "the access token")?,
        ))
    }
}

/// Runs `latchkey token rotate`.
pub async fn rotate(args: &ManageArgs) -> Result<Report, CliError> {
    let (url, token) = args.url_and_token()?;
    let client = args.auth.client(args.output.timeout())?;
    let response = client.token().rotate(&url, Some(&token)).await?;
    Ok(Report::json(&response)?
        .line("ACCESS_TOKEN", &response.access_token.value)
        .line("MANAGE_URL", &response.access_token.manage)
        .line_opt("EXPIRES_IN", response.access_token.expires_in))
}

/// Runs `latchkey token revoke`.
pub async fn revoke(args: &ManageArgs) -> Result<Report, CliError> {
    let (url, token) = args.url_and_token()?;
    let client = args.auth.client(args.output.timeout())?;
    client.token().revoke(&url, Some(&token)).await?;
    Ok(Report::json(&serde_json::json!({"revoked": true}))?
        .message("Access token revoked successfully"))
}
