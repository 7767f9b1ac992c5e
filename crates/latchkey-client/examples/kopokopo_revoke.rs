//! Revoke an application access token, Kopo Kopo style: request a `client_credentials` token,
//! then revoke it with `POST /oauth/revoke` (form fields `client_id`, `client_secret`, `token`).
//! With `ACCESS_TOKEN` set, that token is revoked instead of a fresh one.
//!
//! ```sh
//! CLIENT_ID=... CLIENT_SECRET=... BASE_URL=http://127.0.0.1:8080 \
//!   cargo run -p latchkey-client --example kopokopo_revoke
//! ```

use latchkey_client::{get_env_var, load_env, ClientError, OAuthClient};
use std::process::ExitCode;

async fn run() -> Result<(), ClientError> {
    load_env()?;

    // k2connect.initialize(CLIENT_ID, CLIENT_SECRET, BASE_URL)
    let client_id = get_env_var("CLIENT_ID")?;
    let client_secret = get_env_var("CLIENT_SECRET")?;
    let base_url = get_env_var("BASE_URL")?;
    let token_service = OAuthClient::new(&base_url, client_id, client_secret)?;

    // request the access token, unless one is given
    let access_token = match get_env_var("ACCESS_TOKEN") {
        Ok(token) => token,
        Err(_) => {
            let access_token_request = token_service.request_access_token().await?;
            println!("ACCESS_TOKEN = {}", access_token_request.access_token);
            access_token_request.access_token
        }
    };

    // revoke access token
    token_service.revoke_access_token(&access_token).await?;
    println!("Access token revoked successfully");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
